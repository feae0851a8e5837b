#!/usr/bin/env bash
# Trains each seed method of docs/RESULTS.md ("Seed methods") beside its base at the same budget
# and seed on Fashion-MNIST (SmallCNN, L-inf eps 0.1), and leaves NAME.json (the run's report),
# NAME.seconds (wall time of the whole command: training, PGD-20 on the test set, the standard
# suite on 1,000 points) and NAME.cmd in OUT. A row whose JSON exists is not run again, so the
# script can be stopped and started. Long: about four hours on 2 cores, and seed 1 more (its flow
# alone about 200 s an epoch on idle cores).
#   bench/seed_methods.sh [OUT] [NAME...]    (default results/seed-methods; all rows)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/seed-methods}
shift || true
mkdir -p "$OUT"
BIN=${ADVTRAIN:-./build/advtrain}
COMMON="--seed 0 --final-suite standard --quiet"
FINAL_N=1000 # points of the standard suite
run() { # NAME OPTIONS...
    name=$1
    shift
    [ -s "$OUT/$name.json" ] && return
    echo "== $name: $*"
    echo "$BIN train $COMMON --final-n $FINAL_N $* --out $OUT/$name" >"$OUT/$name.cmd"
    start=$(date +%s.%N)
    $BIN train $COMMON --final-n $FINAL_N "$@" --out "$OUT/$name" --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1
    echo "$(date +%s.%N) - $start" | bc >"$OUT/$name.seconds"
}
rows=" $* "
sel() { [ "$rows" = "  " ] || [[ $rows == *" $1 "* ]]; } # the row was asked for (all by default)
R5="--data fashion-mnist --model smallcnn --epochs 5 --train-size 20000"
E="--eps 0.1"
# the bases
sel pgd-at && run pgd-at --method pgd-at $E $R5
sel trades && run trades --method trades $E $R5
# seed 2: interpolated AT (input and manifold mixup) beside pgd-at
sel iat && run iat --method iat --steps 10 $E $R5 # pgd-at's attack (the preset is PGD-7)
sel iat-manifold && run iat-manifold --method iat --mix manifold --steps 10 $E $R5
# seed 8: OOD rows (textures) beside pgd-at and trades
sel pgd-at-ood && run pgd-at-ood --method pgd-at --ood textures $E $R5
sel trades-ood && run trades-ood --method trades --ood textures $E $R5
# seed 9: budget schedules beside a fixed eps
sel pgd-at-curriculum && run pgd-at-curriculum --method pgd-at --eps-schedule curriculum $E $R5
sel pgd-at-adaptive && run pgd-at-adaptive --method pgd-at --eps-schedule adaptive $E $R5
sel pgd-at-train-0.08 && run pgd-at-train-0.08 --method pgd-at --eps 0.08 --eval-eps 0.1 $R5
# seed 12: weight averaging, CutMix with 4 repetitions, beside trades
sel trades-ema && run trades-ema --method trades --ema 0.995 $E $R5
sel trades-cutmix-ema && run trades-cutmix-ema --method trades --cutmix --repeat 4 --ema 0.995 $E $R5
# seed 13: generated data where real data is scarce (6,000 images): a GMM fitted to them,
# pseudo-labelled by a standard SmallCNN trained on them, 70% of every batch
R6="--data fashion-mnist --model smallcnn --epochs 15 --train-size 6000"
sel trades-6k && run trades-6k --method trades $E $R6
if sel trades-6k-extra; then
    if [ ! -s "$OUT/gen-6k.safetensors" ]; then
        $BIN train --data fashion-mnist --train-size 6000 --epochs 5 --seed 0 --out "$OUT/labeller-6k" --quiet
        $BIN generate --sampler gmm --train-size 6000 --n 50000 --seed 0 \
            --labeller "$OUT/labeller-6k/last.safetensors" --out "$OUT/gen-6k.safetensors" >"$OUT/gen-6k.log"
    fi
    run trades-6k-extra --method trades --extra-data "$OUT/gen-6k.safetensors" $E $R6
fi
# seed 15: a coreset of half the data beside full pgd-at
sel pgd-at-coreset && run pgd-at-coreset --method pgd-at --coreset 0.5 $E $R5
# seed 3: stylized max-margin AT beside pgd-at (its preset: the entry's attack and weights)
sel sat && run sat --method sat $E $R5
# seed 10: J-SIGR beside standard training (no attack in training)
# (they take no training eps: evaluated at --eval-eps after training)
sel standard && run standard --method standard --eval-eps 0.1 $R5
sel jsigr && run jsigr --method jsigr --eval-eps 0.1 $R5
# fine-tuning: one epoch of trades from the README demo's model (DEMO, its last.safetensors)
DEMO=${DEMO:-runs/demo}
if sel finetune-trades && [ -s "$DEMO/last.safetensors" ]; then
    run finetune-trades --init "$DEMO/last.safetensors" --method trades --epochs 1 --lr 0.01 \
        $E --data fashion-mnist --model smallcnn
fi
# seed 4: FGSM-SDI beside fgsm-rs (its check on) and pgd-at at the same budget, then both fast
# methods at COLLAPSE_EPS, where fgsm-rs without its check overfits catastrophically
# (bench/fgsm_collapse.sh finds it)
sel fgsm-rs && run fgsm-rs --method fgsm-rs $E $R5
sel fgsm-sdi && run fgsm-sdi --method fgsm-sdi $E $R5
CO="--eps ${COLLAPSE_EPS:-0.3}"
sel fgsm-rs-collapse && run fgsm-rs-collapse --method fgsm-rs --no-overfit-check $CO $R5
sel fgsm-sdi-collapse && run fgsm-sdi-collapse --method fgsm-sdi $CO $R5
# seed 17: InfoAT on pgd-at
sel infoat && run infoat --method infoat $E $R5
# seed 1: IJSAT beside pgd-at and trades (attack steps 10 as theirs), its flow trained first
# (2 scales x 8 steps of 64 maps, FLOW_EPOCHS epochs on all 60,000 images, resumed when a
# previous run stopped); then the joint-space attack (eps 0.1, eps-z 0.1) on the best weights of
# all four, as NAME.jsa.json
FLOW="$OUT/flow/flow.safetensors"
if sel ijsat || sel ijsat-trades || sel jsa; then
    resume=
    [ -s "$OUT/flow/optimizer.safetensors" ] && resume=--resume
    $BIN train-flow --data fashion-mnist --hidden 64 --steps 8 --epochs "${FLOW_EPOCHS:-20}" \
        --seed 0 --out "$OUT/flow" $resume >>"$OUT/flow.log" 2>&1
fi
sel ijsat && run ijsat --method ijsat --flow "$FLOW" $E $R5
sel ijsat-trades && run ijsat-trades --method ijsat --trades --flow "$FLOW" $E $R5
if sel jsa; then
    for m in pgd-at trades ijsat ijsat-trades; do
        # NAME.json marks a finished run: best.safetensors alone may be an epoch of one in progress
        if [ -s "$OUT/$m.json" ] && [ ! -s "$OUT/$m.jsa.json" ]; then
            $BIN eval --checkpoint "$OUT/$m/best.safetensors" --data fashion-mnist --n 1000 \
                --attack jsa --flow "$FLOW" --eps 0.1 --eps-z 0.1 --seed 0 --quiet \
                --json "$OUT/$m.jsa.json" >"$OUT/$m.jsa.log" 2>&1
        fi
    done
fi
# seed 9 in its own setting: 4-frame clips, SmallCNN per frame, fixed / curriculum / adaptive;
# each clip 4 images to attack, so the suite runs on 250 clips (as long as 1,000 images)
FINAL_N=250
C="--data fashion-mnist-clips-4 --model smallcnn-clip --epochs 5 --train-size 5000"
sel clips-fixed && run clips-fixed --method pgd-at $E $C
sel clips-curriculum && run clips-curriculum --method pgd-at --eps-schedule curriculum $E $C
sel clips-adaptive && run clips-adaptive --method pgd-at --eps-schedule adaptive $E $C
exit 0
