#!/usr/bin/env bash
# Finds where fast FGSM training (fgsm-rs, Wong et al. 2020) overfits catastrophically on
# Fashion-MNIST when its check is off: SmallCNN, 5 epochs on 20,000 images, seed 0, for each eps
# of the list; prints per epoch the training accuracy (on FGSM points) and the validation PGD-10
# accuracy (1,000 held-out images, at that eps). A collapse is PGD-10 falling to near 0 while
# the FGSM training accuracy rises. docs/RESULTS.md ("FGSM-SDI") runs both methods at the eps
# found here.
#   bench/fgsm_collapse.sh [OUT] [EPS...]   (default results/fgsm-collapse; 0.15 0.2 0.25 0.3)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/fgsm-collapse}
shift || true
EPSS=${*:-0.15 0.2 0.25 0.3}
BIN=${ADVTRAIN:-./build/advtrain}
mkdir -p "$OUT"
for eps in $EPSS; do
    dir=$OUT/fgsm-rs-$eps
    [ -s "$dir/log.jsonl" ] && [ "$(wc -l <"$dir/log.jsonl")" -eq 5 ] ||
        $BIN train --data fashion-mnist --model smallcnn --method fgsm-rs --no-overfit-check \
            --eps "$eps" --epochs 5 --train-size 20000 --seed 0 --no-final-pgd --quiet \
            --out "$dir" >"$dir.log" 2>&1
    python3 - "$eps" "$dir/log.jsonl" <<'PY'
import json, sys
eps, path = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(path)]
print(f"eps {eps}: " + "  ".join(
    f"e{r['epoch']} train {100 * r['train_acc']:.1f} PGD-10 {100 * r['val_robust_acc']:.1f}"
    for r in rows))
PY
done
