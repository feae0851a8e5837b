#!/bin/sh
# cli_test.sh ADVTRAIN: the command-line tool's contract. Good invocations succeed and write what
# they promise; bad ones exit non-zero with a one-line message naming the option or file.
# Uses the Fashion-MNIST files of the dataset-fashion-mnist package.
set -u
BIN=$1
DATA=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE PATTERN -- command...: exit status CODE and stderr+stdout matching PATTERN
expect() {
    code=$1 pattern=$2
    shift 3
    "$@" >"$TMP/out" 2>&1
    got=$?
    if [ "$got" -ne "$code" ]; then
        fail "$* exited $got, expected $code: $(head -c 300 "$TMP/out")"
    elif ! grep -q -e "$pattern" "$TMP/out"; then
        fail "$* printed no '$pattern': $(head -c 300 "$TMP/out")"
    fi
}

[ -d "$DATA" ] || { echo "FAIL: $DATA missing (install dataset-fashion-mnist)"; exit 1; }

# --- usage and listings
expect 2 "usage: advtrain COMMAND" -- "$BIN"
expect 0 "advtrain 0\." -- "$BIN" --version
expect 0 "smallcnn" -- "$BIN" list
expect 0 "fashion-mnist" -- "$BIN" list datasets
expect 0 "standard" -- "$BIN" list methods
expect 2 "unknown category" -- "$BIN" list nonsense
expect 2 "unknown command 'trian'" -- "$BIN" trian
expect 0 "--epochs" -- "$BIN" train --help
expect 0 "--checkpoint" -- "$BIN" eval --help

# --- strict options: unknown, missing value, out of range, wrong type, duplicated, stray
expect 2 "unknown option '--bogus'" -- "$BIN" train --out "$TMP/r" --bogus 1
expect 2 "usage: advtrain train" -- "$BIN" train --out "$TMP/r" --bogus 1
expect 2 "--out DIR is required" -- "$BIN" train --epochs 1
expect 2 "--epochs out of range" -- "$BIN" train --out "$TMP/r" --epochs 0
expect 2 "--epochs expects an integer, got 'abc'" -- "$BIN" train --out "$TMP/r" --epochs abc
expect 2 "--lr out of range" -- "$BIN" train --out "$TMP/r" --lr -1
expect 2 "--lr expects a number, got 'nan'" -- "$BIN" train --out "$TMP/r" --lr nan
expect 2 "--momentum out of range" -- "$BIN" train --out "$TMP/r" --momentum 1.5
expect 2 "--lr-schedule must be one of" -- "$BIN" train --out "$TMP/r" --lr-schedule linear
expect 2 "--epochs needs a value" -- "$BIN" train --out "$TMP/r" --epochs
expect 2 "option --seed given twice" -- "$BIN" train --out "$TMP/r" --seed 1 --seed 2
expect 2 "unexpected argument 'extra'" -- "$BIN" train --out "$TMP/r" extra
expect 2 "piecewise needs --milestones" -- "$BIN" train --out "$TMP/r" --lr-schedule piecewise
expect 2 "unknown model 'resnet-9000'" -- "$BIN" train --out "$TMP/r" --data-dir "$DATA" --train-size 64 --model resnet-9000
expect 2 "--mean and --std need 1 value" -- "$BIN" train --out "$TMP/r" --data-dir "$DATA" --train-size 64 --mean 0.5,0.5 --std 1,1
expect 2 "--val-size 64 leaves no training images" -- "$BIN" train --out "$TMP/r" --data-dir "$DATA" --train-size 64 --val-size 64
expect 2 "--checkpoint FILE is required" -- "$BIN" eval
expect 2 "--split must be one of" -- "$BIN" eval --checkpoint x --split valid

# --- bad files: named in the message, exit 1
mkdir -p "$TMP/empty"
expect 1 "$TMP/empty" -- "$BIN" train --out "$TMP/r" --data-dir "$TMP/empty"
expect 1 "$TMP/nothing.safetensors" -- "$BIN" eval --checkpoint "$TMP/nothing.safetensors" --data-dir "$DATA"
printf 'this is not a safetensors file' >"$TMP/junk.safetensors"
expect 1 "$TMP/junk.safetensors" -- "$BIN" eval --checkpoint "$TMP/junk.safetensors" --data-dir "$DATA" --model smallcnn

# --- a short run end to end: log lines, checkpoint, report, evaluation
expect 0 "clean accuracy" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --out "$TMP/run" --json "$TMP/run.json" --quiet
[ "$(wc -l <"$TMP/run/log.jsonl")" -eq 2 ] || fail "log.jsonl should have 2 lines"
grep -q '"val_acc"' "$TMP/run/log.jsonl" || fail "log.jsonl has no validation accuracy"
[ -s "$TMP/run/last.safetensors" ] || fail "no checkpoint written"
[ -s "$TMP/run/report.json" ] && [ -s "$TMP/run.json" ] || fail "no report written"
ls "$TMP/run" | grep -q tmp && fail "temporary files left in the run directory"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --n 300 --json "$TMP/eval.json"
grep -q '"ci95"' "$TMP/eval.json" || fail "eval report has no confidence interval"
grep -q '"bn_mode": "eval"' "$TMP/eval.json" || fail "eval report does not state the BN mode"
# the checkpoint describes its own model; naming another one is an error naming a tensor
expect 1 "missing tensor fc1.weight" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --model mlp-16

# --- resume: stopping after epoch 1 and resuming gives the same weights as one run
expect 0 "continue with --resume" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 \
    --epochs 2 --batch-size 64 --out "$TMP/split" --stop-after 1
expect 0 "resuming" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --out "$TMP/split" --resume
cmp -s "$TMP/run/last.safetensors" "$TMP/split/last.safetensors" ||
    fail "resumed run differs from the uninterrupted run"
[ "$(wc -l <"$TMP/split/log.jsonl")" -eq 2 ] || fail "resumed log.jsonl should have 2 lines"
expect 2 "option 'lr' was" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 \
    --epochs 2 --batch-size 64 --out "$TMP/split" --resume --lr 0.1
expect 1 "no optimiser state\|last.safetensors" -- "$BIN" train --data-dir "$DATA" --out "$TMP/none" --resume

# --- thread count does not change the result
expect 0 "clean accuracy" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --out "$TMP/one" --threads 1 --quiet
cmp -s "$TMP/run/last.safetensors" "$TMP/one/last.safetensors" ||
    fail "1 thread and the default thread count gave different weights"

# --- robustness evaluation, curves, adversarial examples
expect 0 "after pgd" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --n 60 \
    --attack pgd --eps 0.1 --steps 5 --json "$TMP/robust.json" --quiet
for key in '"max_perturbation"' '"outputs_outside_0_1": 0' '"bn_mode": "eval"' '"mean_loss_per_step"' \
    '"zero_gradients"' '"flags"' '"large_eps"' '"more_steps"'; do
    grep -q "$key" "$TMP/robust.json" || fail "eval report has no $key"
done
expect 0 "eps 0.1" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --n 40 \
    --attack fgsm --curve 0,0.05,0.1 --svg "$TMP/curve.svg" --json "$TMP/curve.json" --no-checks --quiet
grep -q "</svg>" "$TMP/curve.svg" || fail "no SVG curve written"
[ "$(grep -c '"eps"' "$TMP/curve.json")" -ge 3 ] || fail "curve report lacks its points"
expect 0 "under the attack" -- "$BIN" attack --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --n 16 --attack pgd --eps 0.1 --steps 5 --out "$TMP/adv.safetensors" --png "$TMP/adv.png"
[ -s "$TMP/adv.safetensors" ] || fail "no adversarial examples written"
[ "$(head -c 4 "$TMP/adv.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "the grid is not a PNG"
expect 2 "unknown attack 'deepfool'" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --attack deepfool --eps 0.1
expect 2 "need --eps" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --attack pgd
expect 2 "--queries/--p-init does not apply" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" \
    --data-dir "$DATA" --attack pgd --eps 0.1 --queries 10
expect 2 "need --attack or --suite" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --eps 0.1
expect 2 "--attack or --suite, not both" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" \
    --data-dir "$DATA" --attack pgd --suite quick --eps 0.1

# --- a gradient-masked model (inputs quantised to 2 levels) is flagged, not called robust
expect 0 "clean accuracy" -- "$BIN" train --data-dir "$DATA" --train-size 2000 --epochs 2 --batch-size 64 \
    --input-levels 2 --out "$TMP/masked" --quiet
expect 0 "FLAG zero-gradients" -- "$BIN" eval --checkpoint "$TMP/masked/last.safetensors" --data-dir "$DATA" \
    --n 40 --suite standard --eps 0.1 --queries 300 --json "$TMP/masked.json" --quiet

# --- adversarial training: early stopping keeps a best checkpoint; resume with a weight average
expect 0 "PGD-20" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --method pgd-at --eps 0.1 --steps 3 --ema 0.9 --out "$TMP/at" --quiet
[ -s "$TMP/at/best.safetensors" ] && [ -s "$TMP/at/last_ema.safetensors" ] || fail "no best or averaged checkpoint"
grep -q '"val_robust_acc"' "$TMP/at/log.jsonl" || fail "no robust validation in the log"
grep -q '"attack_step_size": 0.025' "$TMP/at/report.json" ||
    fail "the report does not give the preset step size (eps/4) the run used"
expect 0 "continue with --resume" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 \
    --epochs 2 --batch-size 64 --method pgd-at --eps 0.1 --steps 3 --ema 0.9 --out "$TMP/at2" --stop-after 1
expect 0 "resuming" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --method pgd-at --eps 0.1 --steps 3 --ema 0.9 --out "$TMP/at2" --resume
cmp -s "$TMP/at/last.safetensors" "$TMP/at2/last.safetensors" && \
    cmp -s "$TMP/at/last_ema.safetensors" "$TMP/at2/last_ema.safetensors" ||
    fail "resumed adversarial run with a weight average differs from the uninterrupted run"
# --- a run that stays at chance says so (a learning rate too small to move the zero-initialised
# last layer: every prediction is the same class)
expect 0 "did not learn" -- "$BIN" train --data-dir "$DATA" --train-size 256 --epochs 1 --lr 1e-8 \
    --out "$TMP/stall" --quiet
grep -q '"warning": "training accuracy' "$TMP/stall/report.json" || fail "no warning in the report"
expect 2 "does not use beta" -- "$BIN" train --data-dir "$DATA" --train-size 256 --method pgd-at --eps 0.1 \
    --beta 3 --out "$TMP/bad"
expect 2 "needs eps" -- "$BIN" train --data-dir "$DATA" --train-size 256 --method trades --out "$TMP/bad"
expect 2 "multiple of 8" -- "$BIN" train --data-dir "$DATA" --train-size 256 --method free-at --eps 0.1 \
    --epochs 5 --out "$TMP/bad"

# --- a run replays from its saved configuration, bit for bit
expect 0 "" -- "$BIN" train --config "$TMP/at/run.cfg" --out "$TMP/replay" --quiet
cmp -s "$TMP/at/last.safetensors" "$TMP/replay/last.safetensors" || fail "replayed run.cfg gave other weights"
printf 'epochs = 1\nwarp-speed = 9\n' >"$TMP/bad.cfg"
expect 2 "bad.cfg:2: unknown option 'warp-speed'" -- "$BIN" train --config "$TMP/bad.cfg" --out "$TMP/bad"
expect 2 "given twice" -- "$BIN" train --config "$TMP/at/run.cfg" --epochs 3 --out "$TMP/bad"

# --- PyTorch state_dicts in and out
expect 0 "exported" -- "$BIN" export --checkpoint "$TMP/run/last.safetensors" --out "$TMP/sd.safetensors"
expect 0 "imported" -- "$BIN" import --model smallcnn --weights "$TMP/sd.safetensors" --out "$TMP/imp.safetensors"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/imp.safetensors" --data-dir "$DATA" --n 200 \
    --json "$TMP/imp.json"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --n 200 \
    --json "$TMP/orig.json"
[ "$(grep '"correct"' "$TMP/imp.json")" = "$(grep '"correct"' "$TMP/orig.json")" ] ||
    fail "export then import changed the model's predictions"
grep -q '"checkpoint_sha256"' "$TMP/imp.json" || fail "eval report has no checkpoint hash"
expect 1 "no tensor conv1.weight" -- "$BIN" import --model wrn-16-1 --input 1,28,28 --weights "$TMP/sd.safetensors" \
    --out "$TMP/bad.safetensors"

# --- video clips: a set derived from Fashion-MNIST and SmallCNN run on each frame
expect 0 "fashion-mnist-clips" -- "$BIN" list datasets
expect 0 "smallcnn-clip" -- "$BIN" list models
expect 0 "fashion-mnist-clips-2/test" -- "$BIN" train --data fashion-mnist-clips-2 --model smallcnn-clip \
    --data-dir "$DATA" --train-size 256 --epochs 1 --batch-size 64 --out "$TMP/clip" --quiet
grep -q '"fashion-mnist-clips-2"' "$TMP/clip/report.json" || fail "the clip run's report does not name its data"
expect 0 "after pgd" -- "$BIN" eval --checkpoint "$TMP/clip/last.safetensors" --data fashion-mnist-clips-2 \
    --data-dir "$DATA" --n 64 --attack pgd --eps 0.1 --steps 3 --no-checks --quiet
expect 1 "takes 2x28x28 inputs" -- "$BIN" eval --checkpoint "$TMP/clip/last.safetensors" --data-dir "$DATA" --n 64
expect 2 "model 'smallcnn' cannot take 2x28x28 inputs: shape mismatch" -- "$BIN" train \
    --data fashion-mnist-clips-2 --model smallcnn --data-dir "$DATA" --train-size 256 --out "$TMP/bad"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "smallcnn on clips: more than one line: $(head -c 300 "$TMP/out")"
expect 1 "clips have 1..64 frames" -- "$BIN" train --data fashion-mnist-clips-65 --model smallcnn-clip \
    --data-dir "$DATA" --out "$TMP/bad"

# --- an interrupted evaluation resumes to the same per-point results
E="eval --checkpoint $TMP/run/last.safetensors --data-dir $DATA --n 40 --batch-size 10 --attack pgd --eps 0.05 --steps 3 --no-checks --quiet"
expect 0 "after pgd" -- "$BIN" $E --points "$TMP/straight.csv"
expect 0 "stopped after 20" -- "$BIN" $E --state "$TMP/state.json" --stop-after 20
expect 0 "after pgd" -- "$BIN" $E --state "$TMP/state.json" --points "$TMP/resumed.csv"
cmp -s "$TMP/straight.csv" "$TMP/resumed.csv" || fail "resumed evaluation gave other per-point results"

if [ "$failures" -ne 0 ]; then
    echo "$failures CLI check(s) failed"
    exit 1
fi
echo "all CLI checks passed"
