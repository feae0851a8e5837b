#!/usr/bin/env bash
# The training cost of the fast methods beside PGD-AT, measured in one run: one epoch of SmallCNN
# on 5,000 Fashion-MNIST images (eps 0.1, no validation, no final evaluation) for each method,
# the methods taking turns for ROUNDS rounds; prints each method's median seconds per epoch and
# its ratio to pgd-at's. Taking turns puts every method under the same machine load.
#   bench/fast_at_cost.sh [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BIN=${ADVTRAIN:-./build/advtrain}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
METHODS="pgd-at fgsm-rs fgsm-sdi"
for r in $(seq "$ROUNDS"); do
    for m in $METHODS; do
        $BIN train --data fashion-mnist --model smallcnn --method "$m" --eps 0.1 --epochs 1 \
            --train-size 5000 --val-size 0 --no-early-stop --no-final-pgd --seed "$r" --quiet \
            --out "$TMP/$m-$r" >/dev/null
    done
done
python3 - "$TMP" "$ROUNDS" $METHODS <<'PY'
import json, statistics, sys
tmp, rounds, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = {}
for m in methods:
    seconds = [json.loads(open(f"{tmp}/{m}-{r}/log.jsonl").readline())["seconds"]
               for r in range(1, rounds + 1)]
    med[m] = statistics.median(seconds)
for m in methods:
    print(f"{m:9s} {med[m]:7.2f} s/epoch (median of {rounds})  {med[m] / med['pgd-at']:.2f} x pgd-at")
PY
