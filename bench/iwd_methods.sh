#!/usr/bin/env bash
# The IWD defence (seed 19, a reconstruction; docs/RESULTS.md "The IWD attack and defence"):
# trains iwd-at beside pgd-at at the same budget and seed on Fashion-MNIST (SmallCNN, L-inf eps
# 0.1; PGD-20 on the test set and the standard suite on 1,000 points after training), then
# attacks each (its best weights, those of the final report) with the IWD attack (its presets:
# CE - 10 IWD, 20 signed steps, pixel bound 0.3) and with Linf PGD-20 at the same bound on the
# first EVAL_N test points. Leaves NAME.json (the run's report), NAME-iwd.json (the IWD
# evaluation, with the mean and largest IWD of the points attacked), NAME-pgd.json, NAME.seconds
# and NAME.cmd in OUT; a row whose files exist is not run again. RECIPE and COMMON override the
# recipe.
#   bench/iwd_methods.sh [OUT] [NAME...]    (default results/iwd-methods; rows pgd-at iwd-at)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/iwd-methods}
shift || true
mkdir -p "$OUT"
BIN=${ADVTRAIN:-./build/advtrain}
RECIPE=${RECIPE:---data fashion-mnist --model smallcnn --epochs 5 --train-size 20000}
COMMON=${COMMON:---seed 0 --final-suite standard --final-n 1000 --quiet}
EVAL_N=${EVAL_N:-1000}
IWD_EVAL=${IWD_EVAL:---attack iwd --eps 0.3}
PGD_EVAL=${PGD_EVAL:---attack pgd --eps 0.3 --steps 20} # Linf PGD-20 at the same pixel bound
run() { # NAME OPTIONS...
    name=$1
    shift
    if [ ! -s "$OUT/$name.json" ]; then
        echo "== $name: $*"
        echo "$BIN train $COMMON $RECIPE $* --out $OUT/$name" >"$OUT/$name.cmd"
        start=$(date +%s.%N)
        $BIN train $COMMON $RECIPE "$@" --out "$OUT/$name" --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1
        echo "$(date +%s.%N) - $start" | bc >"$OUT/$name.seconds"
    fi
    # the weights of the run's final report: the best by validation PGD-10
    evaluate "$name" iwd $IWD_EVAL
    evaluate "$name" pgd $PGD_EVAL
}
evaluate() { # NAME SUFFIX EVAL-OPTIONS...
    name=$1 suffix=$2
    shift 2
    [ -s "$OUT/$name-$suffix.json" ] && return
    echo "$BIN eval --checkpoint $OUT/$name/best.safetensors $* --n $EVAL_N --seed 0" >>"$OUT/$name.cmd"
    $BIN eval --checkpoint "$OUT/$name/best.safetensors" "$@" --n "$EVAL_N" --seed 0 \
        --json "$OUT/$name-$suffix.json" --quiet >"$OUT/$name-$suffix.log" 2>&1
}
rows=" $* "
sel() { [ "$rows" = "  " ] || [[ $rows == *" $1 "* ]]; } # the row was asked for (all by default)
E="--eps 0.1"
sel pgd-at && run pgd-at --method pgd-at $E
sel iwd-at && run iwd-at --method iwd-at $E
exit 0
