#!/usr/bin/env bash
# Does every method's preset learn? Each method of `advtrain list methods` trains SmallCNN on
# TRAIN Fashion-MNIST images for 2 epochs (at batch 128: TRAIN / 128 steps each; free-at 8
# "epochs" of minibatch replays, the same number of passes' worth of steps x 4) with its presets
# and nothing else but eps 0.1 for the adversarial ones (and the autoencoder or flow that ada and
# ijsat need, trained briefly first); prints each method's last-epoch training accuracy (on its
# own training inputs: adversarial ones for the adversarial methods, averaged over the epoch) and
# the final model's clean accuracy on the first 1,000 test images, and flags a preset at chance
# when the clean test accuracy is below 1.5 / 10 (the threshold of the tool's own warning). The
# training accuracy is printed, not judged: an adversarial method's starts near chance however
# well the model learns.
#   bench/presets_learn.sh [TRAIN] [SEED] [METHOD...]
#   (default 3200 images: 25 steps an epoch, 50 in all; seed 0; every method, each with and
#   without --awp where it has it)
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN=${1:-3200}
SEED=${2:-0}
shift 2 || shift $#
only=" $* "
BIN=${ADVTRAIN:-./build/advtrain}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
common="--data fashion-mnist --model smallcnn --train-size $TRAIN --val-size 0 --no-final-pgd --quiet --seed $SEED"
# ada's autoencoder and ijsat's flow: one epoch on the same images (a flow's epoch on all 60,000
# would take half an hour)
wanted() { [ "$only" = "  " ] || [[ $only == *" $1 "* ]]; }
if wanted ada; then
    $BIN train-autoencoder --data fashion-mnist --epochs 1 --train-size "$TRAIN" --out "$TMP/ae" >/dev/null 2>&1
fi
if wanted ijsat; then
    $BIN train-flow --data fashion-mnist --epochs 1 --train-size "$TRAIN" --out "$TMP/flow" >/dev/null 2>&1
fi
stalled=0
for m in $($BIN list methods | awk '/^  with any method/ {exit} /^  [a-z]/ {print $1}'); do
    wanted "$m" || continue
    extra="--epochs 2"
    [ "$m" = free-at ] && extra="--epochs 8"
    [ "$m" = ada ] && extra="$extra --autoencoder $TMP/ae/autoencoder.safetensors"
    [ "$m" = ijsat ] && extra="$extra --flow $TMP/flow/flow.safetensors"
    variants="$m"
    [ "$m" = pgd-at ] || [ "$m" = trades ] && variants="$m $m+awp"
    for v in $variants; do
        opts="--method $m $extra"
        [ "$v" != "$m" ] && opts="$opts --awp"
        # shellcheck disable=SC2086
        if ! $BIN train $common $opts --eps 0.1 --out "$TMP/$v" >"$TMP/$v.out" 2>&1; then
            if grep -q "does not use eps" "$TMP/$v.out"; then
                # shellcheck disable=SC2086
                $BIN train $common $opts --out "$TMP/$v" >"$TMP/$v.out" 2>&1 ||
                    { echo "$v: failed: $(tail -1 "$TMP/$v.out")"; stalled=$((stalled + 1)); continue; }
            else
                echo "$v: failed: $(tail -1 "$TMP/$v.out")"; stalled=$((stalled + 1)); continue
            fi
        fi
        acc=$(tail -1 "$TMP/$v/log.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["train_acc"])')
        $BIN eval --checkpoint "$TMP/$v/last.safetensors" --n 1000 --no-checks --quiet \
            --json "$TMP/$v.eval.json" >/dev/null 2>&1 || { echo "$v: eval failed"; stalled=$((stalled + 1)); continue; }
        clean=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["clean"]["accuracy"])' "$TMP/$v.eval.json")
        verdict=$(python3 -c "print('learns' if $clean >= 0.15 else 'AT CHANCE')")
        [ "$verdict" = learns ] || stalled=$((stalled + 1))
        printf '%-16s training accuracy %5.1f%%  clean test accuracy %5.1f%%  %s\n' "$v" \
            "$(python3 -c "print(100 * $acc)")" "$(python3 -c "print(100 * $clean)")" "$verdict"
    done
done
echo "$stalled preset(s) at chance or failed"
exit "$stalled"
