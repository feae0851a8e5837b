#!/usr/bin/env bash
# The rows of docs/RESULTS.md "Beyond Lp balls": on Fashion-MNIST (SmallCNN, 5 epochs on 20,000
# images, seed 0) trains the corruption methods beside a standard and two Lp-AT models, measures
# each under the 15 corruptions x 5 severities on the first 1,000 test images (mCE against the
# standard model), and trains the randomized-smoothing models (Gaussian noise and SmoothMix at
# sigma 0.25 and 0.5) and certifies each at its sigma (n0 100, n 10,000, alpha 0.001, every 50th
# test image: 200 points). Leaves, in OUT, NAME/ (the run), NAME.corruptions.json,
# NAME.certify.json and NAME.seconds (training wall time). A row whose result exists is not run
# again, so the script can be stopped and started. Long: several hours on 2 cores.
#   bench/corruption_methods.sh [OUT] [NAME...]    (default results/corruption-methods; all rows)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/corruption-methods}
shift || true
mkdir -p "$OUT"
BIN=${ADVTRAIN:-./build/advtrain}
R5="--data fashion-mnist --model smallcnn --epochs 5 --train-size 20000 --seed 0 --quiet --no-final-pgd"
N_CORRUPTED=1000
rows=" $* "
sel() { [ "$rows" = "  " ] || [[ $rows == *" $1 "* ]]; } # the row was asked for (all by default)

train() { # NAME OPTIONS...: the run, unless its checkpoint exists
    name=$1
    shift
    [ -s "$OUT/$name/last.safetensors" ] && return
    echo "== train $name: $*"
    start=$(date +%s.%N)
    $BIN train $R5 "$@" --out "$OUT/$name" >"$OUT/$name.log" 2>&1
    echo "$(date +%s.%N) - $start" | bc >"$OUT/$name.seconds"
}
corruptions() { # NAME: the corruption suite against the standard model
    [ -s "$OUT/$1.corruptions.json" ] && return
    echo "== corruptions $1"
    $BIN eval --checkpoint "$OUT/$1/last.safetensors" --suite corruptions --n $N_CORRUPTED \
        --baseline "$OUT/standard/last.safetensors" --quiet --json "$OUT/$1.corruptions.json" \
        >"$OUT/$1.corruptions.log"
}
certify() { # NAME SIGMA
    [ -s "$OUT/$1.certify.json" ] && return
    echo "== certify $1 at sigma $2"
    $BIN certify --checkpoint "$OUT/$1/last.safetensors" --sigma "$2" --n0 100 --n 10000 \
        --alpha 0.001 --n-points 200 --skip 50 --quiet --json "$OUT/$1.certify.json" \
        >"$OUT/$1.certify.log"
}
row() { # NAME OPTIONS...: train it and measure it under the corruptions
    name=$1
    sel "$name" || return 0
    train "$@"
    corruptions "$name"
}

row standard --method standard
row fgsm-rs --method fgsm-rs --eps 0.1
row pgd-at --method pgd-at --eps 0.1
row gaussian --method gaussian --gauss-sigma 0.1 --gauss-part 0.5
row rlat --method rlat --norm l2 --eps 0.08
row rlat-linf --method rlat --norm linf --eps 0.1
row augmix --method augmix
row augrmixat --method augrmixat --eps 0.1
if sel ada; then
    [ -s "$OUT/autoencoder/autoencoder.safetensors" ] ||
        $BIN train-autoencoder --data fashion-mnist --epochs 3 --seed 0 --out "$OUT/autoencoder" \
            >"$OUT/autoencoder.log" 2>&1
    row ada --method ada --autoencoder "$OUT/autoencoder/autoencoder.safetensors"
fi
# randomized smoothing: the base classifier of Cohen et al. and SmoothMix (batch 64 = one chunk
# of the paper's 256 with m = 4; the warm-up of eta, 10 of the paper's 90 epochs, here 1 of 5), each
# certified at the sigma it was trained at
for sigma in 0.25 0.5; do
    if sel "gaussian-$sigma"; then
        train "gaussian-$sigma" --method gaussian --gauss-sigma "$sigma" --gauss-part 1 --no-gauss-clip
        certify "gaussian-$sigma" "$sigma"
    fi
    if sel "smoothmix-$sigma"; then
        train "smoothmix-$sigma" --method smoothmix --smooth-sigma "$sigma" --batch-size 64 \
            --smoothmix-warmup 1
        certify "smoothmix-$sigma" "$sigma"
    fi
done
