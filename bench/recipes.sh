#!/usr/bin/env bash
# Trains every recipe with advtrain and with its PyTorch twin (tests/reference/recipes_torch.py)
# on Fashion-MNIST at eps 0.1, one after the other, and leaves the JSON results in $OUT for
# docs/RESULTS.md. Long: about two hours on 2 cores.
#   bench/recipes.sh [OUT]      (default results/recipes)
# With ADVTRAIN_ONLY=1 the twins are not run (their JSON files already in OUT are kept), e.g.
# to measure advtrain again after a change to the library.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/recipes}
mkdir -p "$OUT"
BIN=./build/advtrain
TWIN="/usr/bin/python3 tests/reference/recipes_torch.py"
run() { # name, advtrain options, twin options
    local name=$1 ours=$2 twin=$3
    echo "== $name"
    $BIN train --data fashion-mnist --model smallcnn --eps 0.1 $ours --out "$OUT/$name" \
        --final-suite standard --final-n 300 --json "$OUT/$name.advtrain.json" --quiet
    [ "${ADVTRAIN_ONLY:-0}" = 1 ] && return
    $TWIN --eps 0.1 $twin --json "$OUT/$name.torch.json" > "$OUT/$name.torch.log"
}
run pgd-at "--method pgd-at --epochs 5 --train-size 20000" "--method pgd-at --epochs 5 --train-size 20000"
run pgd-at-awp "--method pgd-at --awp --awp-warmup 0 --epochs 5 --train-size 20000" "--method pgd-at-awp --epochs 5 --train-size 20000"
run trades "--method trades --epochs 5 --train-size 20000" "--method trades --epochs 5 --train-size 20000"
run mart "--method mart --epochs 5 --train-size 20000" "--method mart --epochs 5 --train-size 20000"
run free-at "--method free-at --epochs 8 --replays 4" "--method free-at --epochs 8 --replays 4"
run fgsm-rs "--method fgsm-rs --step-size 0.125 --epochs 5 --val-size 0 --no-early-stop" \
    "--method fgsm-rs --epochs 5 --val-size 0"
