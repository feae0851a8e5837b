#!/bin/sh
# cli_test.sh ADVTRAIN: the command-line tool's contract. Good invocations succeed and write what
# they promise; bad ones exit non-zero with a one-line message naming the option or file.
# Uses the Fashion-MNIST files of the dataset-fashion-mnist package.
set -u
BIN=$1
. "$(dirname "$0")/cli_common.sh"

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
expect 2 "name one cell (--data cifar10-c:fog:3)" -- "$BIN" eval --checkpoint x --data cifar10-c --data-dir "$TMP/empty"
expect 1 "$TMP/empty/fog.npy: cannot open" -- "$BIN" eval --checkpoint x --data cifar10-c:fog:2 --data-dir "$TMP/empty"
expect 1 "unknown CIFAR-C corruption 'rain'" -- "$BIN" eval --checkpoint x --data cifar100-c:rain:2 --data-dir "$TMP/empty"
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
grep -q "clean calibration *ECE" "$TMP/out" || fail "eval prints no clean calibration error"
for key in '"calibration"' '"ece"' '"mce"' '"brier"' '"table"' '"bins": 15'; do
    grep -q "$key" "$TMP/eval.json" || fail "eval report has no $key"
done
# standard error is a file here, not a terminal: progress comes as plain lines, the last one
# at the end of the work, and no terminal control characters
expect 0 "after pgd" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --attack pgd --eps 0.1 --steps 2 --n 60 --batch-size 20 --no-checks
grep -q "^evaluating: 20/60 (33%) " "$TMP/out" || fail "a logged eval prints no line after its first batch"
grep -q "^evaluating: 60/60 (100%) " "$TMP/out" || fail "a logged eval prints no line at its end"
grep -q "$(printf '\033')" "$TMP/out" && fail "a logged eval writes terminal control characters"
expect 2 "--calibration-bins out of range" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --calibration-bins 0
expect 2 "--calibration-bins out of range" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --calibration-bins 1001
# the checkpoint describes its own model; naming another one is an error naming a tensor
expect 1 "missing tensor fc1.weight" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --model mlp-16

# --- an image folder (--data folder): 80 Fashion-MNIST test images written as PNG by Python's
# zlib into class directories 0..9 (test/: the first 40), read by eval, train and attack; eval on
# test/ counts the same correct images, with the same loss, as eval on the first 40 IDX images
/usr/bin/python3 - "$DATA" "$TMP/folder" <<'PY' || fail "could not write the PNG folder"
import gzip, os, struct, sys, zlib
src, out = sys.argv[1], sys.argv[2]
images = gzip.open(os.path.join(src, "t10k-images-idx3-ubyte.gz")).read()[16:]
labels = gzip.open(os.path.join(src, "t10k-labels-idx1-ubyte.gz")).read()[8:]
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
for i in range(80):  # test/: images 0..39, train/: 40..79 (each has every class)
    split = "test" if i < 40 else "train"
    d = os.path.join(out, split, str(labels[i]))
    os.makedirs(d, exist_ok=True)
    raw = b"".join(b"\0" + images[784 * i + 28 * r:784 * i + 28 * r + 28] for r in range(28))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    open(os.path.join(d, "%03d.png" % i), "wb").write(png)
PY
expect 0 "folder" -- "$BIN" list datasets
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data folder \
    --data-dir "$TMP/folder" --json "$TMP/folder.json"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --n 40 --json "$TMP/idx40.json"
/usr/bin/python3 -c '
import json, sys
a, b = (json.load(open(f))["clean"] for f in sys.argv[1:])
assert a["n"] == b["n"] == 40 and a["correct"] == b["correct"], (a, b)
assert abs(a["loss"] - b["loss"]) < 1e-5, (a, b)
' "$TMP/folder.json" "$TMP/idx40.json" || fail "eval on the PNG folder differs from eval on the same IDX images"
printf 'not a picture' >"$TMP/folder/test/3/zz-bad.png"
expect 1 "$TMP/folder/test/3/zz-bad.png: not a PNG or JPEG image" -- "$BIN" eval \
    --checkpoint "$TMP/run/last.safetensors" --data folder --data-dir "$TMP/folder"
expect 0 "skipped 1 unreadable image" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" \
    --data folder:skip-bad --data-dir "$TMP/folder"
expect 1 "folder needs its directory (--data-dir DIR)" -- "$BIN" eval \
    --checkpoint "$TMP/run/last.safetensors" --data folder
expect 1 "folder option size=28: expected HEIGHTxWIDTH" -- "$BIN" eval \
    --checkpoint "$TMP/run/last.safetensors" --data folder:size=28 --data-dir "$TMP/folder"
expect 0 "(test split): skipped 1 unreadable image" -- "$BIN" train --data folder:skip-bad --data-dir "$TMP/folder" --val-size 0 \
    --epochs 1 --batch-size 20 --model mlp-16 --no-final-pgd --out "$TMP/folder-run" --quiet
expect 0 "wrote" -- "$BIN" attack --checkpoint "$TMP/folder-run/last.safetensors" --data folder:skip-bad \
    --data-dir "$TMP/folder" --n 4 --attack fgsm --eps 0.1 --out "$TMP/folder-adv.safetensors"

# --- resume: stopping after epoch 1 and resuming gives the same weights as one run
expect 0 "continue with --resume" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 \
    --epochs 2 --batch-size 64 --out "$TMP/split" --stop-after 1
expect 0 "resuming" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --out "$TMP/split" --resume --json "$TMP/split.json"
cmp -s "$TMP/run/last.safetensors" "$TMP/split/last.safetensors" ||
    fail "resumed run differs from the uninterrupted run"
[ "$(wc -l <"$TMP/split/log.jsonl")" -eq 2 ] || fail "resumed log.jsonl should have 2 lines"
/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
log = [json.loads(l) for l in open(sys.argv[2])]
assert [e["epoch"] for e in r["epochs"]] == [1, 2], r["epochs"]
for a, b in zip(r["epochs"], log):  # the log rounds to float32 precision
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 * max(1, abs(b[k])) for k in a), (a, b)
assert r["train_seconds"] >= sum(e["seconds"] for e in log), r["train_seconds"]
' "$TMP/split.json" "$TMP/split/log.jsonl" || fail "a resumed run's report does not cover the epochs before it"
expect 2 "option 'lr' was" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 \
    --epochs 2 --batch-size 64 --out "$TMP/split" --resume --lr 0.1
expect 1 "no optimiser state\|last.safetensors" -- "$BIN" train --data-dir "$DATA" --out "$TMP/none" --resume

# --- fine-tuning: --init starts a run of any method from a file's weights, all else fresh
I="train --data-dir $DATA --train-size 64 --val-size 0 --epochs 1 --batch-size 64 --quiet"
# a learning rate too small to move the weights: the run is judged as the file it started from
expect 0 "clean accuracy" -- "$BIN" $I --lr 1e-8 --init "$TMP/run/last.safetensors" --out "$TMP/ft0"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --json "$TMP/init.json" --quiet
[ "$(grep '"correct"' "$TMP/ft0/report.json" | tr -d ' ,')" = "$(grep '"correct"' "$TMP/init.json" | tr -d ' ,')" ] ||
    fail "a run from --init does not start from the file's weights"
# trades from a standard run's checkpoint; stopped, then resumed without --init: bit for bit
F="train --data-dir $DATA --train-size 256 --val-size 64 --epochs 2 --batch-size 64 --method trades --eps 0.1
   --steps 2 --no-final-pgd"
expect 0 "starting from the weights of" -- "$BIN" $F --init "$TMP/run/last.safetensors" --out "$TMP/ft"
init_hash=$(sha256sum "$TMP/run/last.safetensors" | cut -d' ' -f1)
grep -q "\"init_sha256\": \"$init_hash\"" "$TMP/ft/report.json" || fail "the report does not hash the --init file"
grep -q "^init-sha256 = $init_hash" "$TMP/ft/run.cfg" || fail "run.cfg does not record the --init file's hash"
expect 0 "continue with --resume" -- "$BIN" $F --init "$TMP/run/last.safetensors" --out "$TMP/ft2" --stop-after 1
expect 2 "drop --init" -- "$BIN" $F --init "$TMP/run/last.safetensors" --out "$TMP/ft2" --resume
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "--init with --resume: more than one line"
expect 0 "resuming" -- "$BIN" $F --out "$TMP/ft2" --resume
cmp -s "$TMP/ft/last.safetensors" "$TMP/ft2/last.safetensors" || fail "a resumed --init run differs from the uninterrupted run"
grep -q "\"init_sha256\": \"$init_hash\"" "$TMP/ft2/report.json" || fail "the resumed run's report lost the --init file"
# its run.cfg replays it, and resumes it, from the same file
expect 0 "continue with --resume" -- "$BIN" train --config "$TMP/ft/run.cfg" --out "$TMP/ft3" --stop-after 1
expect 0 "resuming" -- "$BIN" train --config "$TMP/ft/run.cfg" --out "$TMP/ft3" --resume
cmp -s "$TMP/ft/last.safetensors" "$TMP/ft3/last.safetensors" || fail "run.cfg of an --init run replayed other weights"
# files that do not fit the model: one line naming the file (and the tensor), before training
head -c 3000 "$TMP/run/last.safetensors" >"$TMP/cut_init.safetensors"
zeros=0000000000000000000000000000000000000000000000000000000000000000
for bad in "1|missing tensor fc1.weight|--model mlp-16 --init $TMP/run/last.safetensors" \
    "1|$TMP/cut_init.safetensors|--init $TMP/cut_init.safetensors" \
    "1|$TMP/junk.safetensors|--init $TMP/junk.safetensors" \
    "1|$TMP/nothing.safetensors|--init $TMP/nothing.safetensors" \
    "1|normalise inputs|--init $TMP/run/last.safetensors --mean 0.5 --std 0.25" \
    "1|as --init-sha256 says|--init $TMP/run/last.safetensors --init-sha256 $zeros" \
    "2|--init-sha256 needs --init|--init-sha256 $init_hash"; do
    code=${bad%%|*} rest=${bad#*|}
    expect "$code" "${rest%%|*}" -- "$BIN" $I ${rest#*|} --out "$TMP/bad_init"
    [ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "--init ${rest#*|}: more than one line: $(head -c 300 "$TMP/out")"
    [ -e "$TMP/bad_init" ] && fail "a run with ${rest#*|} started"
done
# --- Adam: options of another optimiser are refused; a resumed run is the uninterrupted run; the
# saved state resumes only with the optimiser that wrote it; run.cfg replays it
expect 0 "--adam-eps" -- "$BIN" train --help
expect 2 "optimizer adam does not use --momentum" -- "$BIN" train --data-dir "$DATA" --optimizer adam \
    --momentum 0.8 --out "$TMP/bad"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "--momentum with adam: more than one line: $(head -c 300 "$TMP/out")"
expect 2 "optimizer adamw does not use --nesterov" -- "$BIN" train --data-dir "$DATA" --optimizer adamw \
    --nesterov --out "$TMP/bad"
expect 2 "optimizer sgd does not use --beta1" -- "$BIN" train --data-dir "$DATA" --beta1 0.8 --out "$TMP/bad"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "--beta1 with sgd: more than one line: $(head -c 300 "$TMP/out")"
expect 2 "optimizer sgd does not use --adam-eps" -- "$BIN" train --data-dir "$DATA" --optimizer sgd \
    --adam-eps 1e-6 --out "$TMP/bad"
expect 2 "--optimizer must be one of" -- "$BIN" train --data-dir "$DATA" --optimizer rmsprop --out "$TMP/bad"
A="train --data-dir $DATA --train-size 512 --val-size 128 --epochs 2 --batch-size 64 --optimizer adam
   --lr 0.001 --weight-decay 1e-4 --beta2 0.99"
expect 0 "clean accuracy" -- "$BIN" $A --out "$TMP/adam" --quiet
grep -q '"optimizer": "adam"' "$TMP/adam/report.json" && grep -q '"beta2": 0.99' "$TMP/adam/report.json" ||
    fail "the report does not give the optimiser and its settings"
grep -q '^optimizer = adam' "$TMP/adam/run.cfg" && ! grep -q '^momentum' "$TMP/adam/run.cfg" ||
    fail "run.cfg does not record the optimiser, or records momentum for adam"
expect 0 "continue with --resume" -- "$BIN" $A --out "$TMP/adam2" --stop-after 1
expect 0 "resuming" -- "$BIN" $A --out "$TMP/adam2" --resume
cmp -s "$TMP/adam/last.safetensors" "$TMP/adam2/last.safetensors" ||
    fail "resumed Adam run differs from the uninterrupted run"
expect 1 "adam2/last.safetensors holds the state of optimizer adam, but the optimizer to resume is adamw" -- \
    "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 --batch-size 64 \
    --optimizer adamw --lr 0.001 --weight-decay 1e-4 --beta2 0.99 --out "$TMP/adam2" --resume
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "resuming adam as adamw: more than one line: $(head -c 300 "$TMP/out")"
expect 1 "split/last.safetensors holds the state of optimizer sgd, but the optimizer to resume is adam" -- \
    "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 --batch-size 64 \
    --optimizer adam --out "$TMP/split" --resume
expect 0 "" -- "$BIN" train --config "$TMP/adam/run.cfg" --out "$TMP/adam3" --quiet
cmp -s "$TMP/adam/last.safetensors" "$TMP/adam3/last.safetensors" || fail "replayed Adam run.cfg gave other weights"

# --- thread count does not change the result
expect 0 "clean accuracy" -- "$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --out "$TMP/one" --threads 1 --quiet
cmp -s "$TMP/run/last.safetensors" "$TMP/one/last.safetensors" ||
    fail "1 thread and the default thread count gave different weights"

# --- robustness evaluation, curves, adversarial examples
expect 0 "after pgd" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --n 60 \
    --attack pgd --eps 0.1 --steps 5 --calibration-bins 10 --json "$TMP/robust.json" --quiet
grep -q "adversarial calibration *ECE" "$TMP/out" || fail "eval prints no adversarial calibration error"
for key in '"max_perturbation"' '"outputs_outside_0_1": 0' '"bn_mode": "eval"' '"mean_loss_per_step"' \
    '"zero_gradients"' '"flags"' '"large_eps"' '"more_steps"' '"adversarial"' '"bins": 10'; do
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
expect 0 "Gini coefficient" -- "$BIN" gradients --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --n 32 --png "$TMP/maps.png" --json "$TMP/maps.json"
[ "$(head -c 4 "$TMP/maps.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "the gradient maps are not a PNG"
grep -q '"top10_share"' "$TMP/maps.json" || fail "the gradient report lacks its measures"
expect 2 "checkpoint is required" -- "$BIN" gradients --n 4
expect 1 "nowhere.safetensors" -- "$BIN" gradients --checkpoint "$TMP/nowhere.safetensors" --data-dir "$DATA"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "gradients of a missing file: more than one line"

# --- preemptive robustification (Moon et al.): images inside delta, the man-in-the-middle protocol
R="--checkpoint $TMP/run/last.safetensors --data-dir $DATA --iters 3 --inner-steps 3"
expect 0 "robust loss" -- "$BIN" robustify $R --n 6 --delta 0.05 --eps 0.1 --reconstruct \
    --out "$TMP/rob.safetensors" --png "$TMP/rob.png" --json "$TMP/rob.json"
grep -q "0 values outside \[0,1\], 0 non-finite" "$TMP/out" || fail "robustify does not report its range"
[ "$(head -c 4 "$TMP/rob.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "the robustify grid is not a PNG"
/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("robustify", "reconstruction"):
    s = r[k]
    assert s["within_budget"] and s["out_of_range"] == 0 and s["measured_max_linf"] <= s["delta"] + 1e-6, k
' "$TMP/rob.json" || fail "robustify report: outside the budget"
expect 0 "robustified .*clean" -- "$BIN" eval $R --n 6 --attack pgd --eps 0.1 --steps 3 --robustify \
    --delta 0.05 --reconstruct --robustify-png "$TMP/mitm.png" --json "$TMP/mitm.json" --no-checks --quiet
grep -q "reconstructed" "$TMP/out" || fail "eval --robustify --reconstruct reports no reconstruction"
for key in '"robustify"' '"original"' '"robustified"' '"reconstruction_attack"' '"within_budget": true'; do
    grep -q "$key" "$TMP/mitm.json" || fail "eval --robustify report has no $key"
done
expect 2 "--delta must be given and > 0" -- "$BIN" robustify --checkpoint x --eps 0.1 --out "$TMP/r.st"
expect 2 "--eps must be given" -- "$BIN" robustify --checkpoint x --delta 0.1 --out "$TMP/r.st"
expect 2 "--checkpoint and --out are required" -- "$BIN" robustify --delta 0.1 --eps 0.1
expect 2 "--noise-samples needs --noise-sigma" -- "$BIN" robustify --checkpoint x --delta 0.1 --eps 0.1 \
    --noise-samples 2 --out "$TMP/r.st"
expect 2 "--iters out of range" -- "$BIN" robustify --checkpoint x --delta 0.1 --eps 0.1 --iters -2 --out "$TMP/r.st"
expect 1 "nowhere.safetensors" -- "$BIN" robustify --checkpoint "$TMP/nowhere.safetensors" --data-dir "$DATA" \
    --delta 0.1 --eps 0.1 --out "$TMP/r.st"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "robustify of a missing file: more than one line"
expect 2 "need --robustify" -- "$BIN" eval --checkpoint x --attack pgd --eps 0.1 --delta 0.1
expect 2 "--robustify needs --attack" -- "$BIN" eval --checkpoint x --robustify --delta 0.1
expect 2 "supports --norm linf or l2" -- "$BIN" eval --checkpoint x --attack pgd --eps 1 --norm l1 --robustify --delta 0.1
expect 0 "preempt-direction" -- "$BIN" train --method preemptive --help
expect 0 "clean accuracy" -- "$BIN" train --data-dir "$DATA" --train-size 64 --val-size 0 --epochs 1 \
    --batch-size 32 --model mlp-16 --method preemptive --eps 0.1 --steps 2 --no-final-pgd --out "$TMP/pre" --quiet
expect 2 "preempt-delta out of range" -- "$BIN" train --data-dir "$DATA" --method preemptive --eps 0.1 \
    --preempt-delta -1 --out "$TMP/bad"

# --- certify: randomized smoothing of the short run's model, few points and few draws
C="certify --checkpoint $TMP/run/last.safetensors --data-dir $DATA --n-points 3 --sigma 0.25 --n0 20 --n 300"
expect 0 "average certified radius" -- "$BIN" $C --batch-size 64 --radii 0,0.1,0.2 --json "$TMP/cert.json"
for key in '"acr"' '"max_radius"' '"certified"' '"per_point"' '"p_lower"' '"n0_count"' '"abstention_rate"' \
    '"noisy_forwards_per_second"' '"plain_forwards_per_second"'; do
    grep -q "$key" "$TMP/cert.json" || fail "the certify report has no $key"
done
[ "$(grep -c '"index"' "$TMP/cert.json")" -eq 3 ] || fail "the certify report should hold 3 points"
# per-point records do not depend on the batch size
"$BIN" $C --batch-size 7 --radii 0,0.1,0.2 --json "$TMP/cert7.json" >/dev/null 2>&1 || fail "certify --batch-size 7 failed"
grep -E '"(count|n0_count|p_lower|prediction|radius)"' "$TMP/cert.json" >"$TMP/cert.a"
grep -E '"(count|n0_count|p_lower|prediction|radius)"' "$TMP/cert7.json" >"$TMP/cert.b"
[ -s "$TMP/cert.a" ] && cmp -s "$TMP/cert.a" "$TMP/cert.b" || fail "certify results changed with the batch size"
# a certification stopped and continued (--state) gives the uninterrupted run's records, whatever
# the batch size of each part; the state of another certification or a corrupt one is refused
expect 0 "stopped after 1 of 3 points" -- "$BIN" $C --state "$TMP/cert.state" --stop-after 1
expect 0 "stopped after 2 of 3 points" -- "$BIN" $C --state "$TMP/cert.state" --stop-after 1 --batch-size 7
expect 2 "cert.state holds another certification" -- "$BIN" $C --state "$TMP/cert.state" --seed 1
expect 0 "average certified radius" -- "$BIN" $C --state "$TMP/cert.state" --radii 0,0.1,0.2 --json "$TMP/cert-resumed.json"
grep -E '"(count|n0_count|p_lower|prediction|radius)"' "$TMP/cert-resumed.json" >"$TMP/cert.c"
cmp -s "$TMP/cert.a" "$TMP/cert.c" || fail "a resumed certification differs from an uninterrupted one"
head -c 40 "$TMP/cert.state" >"$TMP/cert-cut.state"
expect 1 "cert-cut.state: not a certification state file" -- "$BIN" $C --state "$TMP/cert-cut.state"
expect 2 "--stop-after needs --state" -- "$BIN" $C --stop-after 1
expect 0 "smoothed accuracy" -- "$BIN" $C --predict --json "$TMP/pred.json"
grep -q '"p_value"' "$TMP/pred.json" || fail "the predict report has no p-values"
expect 0 "--n-points" -- "$BIN" certify --help
expect 2 "--checkpoint FILE is required" -- "$BIN" certify --sigma 0.25
expect 2 "--sigma must be given and > 0" -- "$BIN" certify --checkpoint x
expect 2 "--sigma must be given and > 0" -- "$BIN" certify --checkpoint x --sigma 0
expect 2 "--sigma out of range" -- "$BIN" certify --checkpoint x --sigma -1
expect 2 "--n0 must be at least 1" -- "$BIN" certify --checkpoint x --sigma 0.25 --n0 0
expect 2 "--n must be at least 1" -- "$BIN" certify --checkpoint x --sigma 0.25 --n 0
expect 2 "--alpha must be in (0, 1)" -- "$BIN" certify --checkpoint x --sigma 0.25 --alpha 0
expect 2 "--alpha must be in (0, 1)" -- "$BIN" certify --checkpoint x --sigma 0.25 --alpha 1
expect 2 "--radii expects comma-separated numbers" -- "$BIN" certify --checkpoint x --sigma 0.25 --radii 0,abc
expect 2 "--radii value out of range" -- "$BIN" certify --checkpoint x --sigma 0.25 --radii 0,-0.5
expect 1 "nowhere.safetensors" -- "$BIN" certify --checkpoint "$TMP/nowhere.safetensors" --data-dir "$DATA" --sigma 0.25
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "certify of a missing file: more than one line"
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
    --n 10 --suite standard --eps 0.1 --queries 300 --no-checks --json "$TMP/masked.json" --quiet

# --- adversarial training: early stopping keeps a best checkpoint; resume with AWP (its preset
# warm-up waits for an epoch above chance: the checkpoint keeps the last training accuracy) and a
# weight average (on the first 512 training and 500 test images: the final PGD-20 attacks the
# whole test split)
/usr/bin/python3 "$(dirname "$0")/fashion_subset.py" "$DATA" "$TMP/fm500" 512 500 ||
    fail "could not write the small data set"
expect 0 "PGD-20" -- "$BIN" train --data-dir "$TMP/fm500" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --method pgd-at --awp --eps 0.1 --steps 3 --ema 0.9 --out "$TMP/at" --quiet
[ -s "$TMP/at/best.safetensors" ] && [ -s "$TMP/at/last_ema.safetensors" ] || fail "no best or averaged checkpoint"
grep -q '"val_robust_acc"' "$TMP/at/log.jsonl" || fail "no robust validation in the log"
grep -q '"attack_step_size": 0.025' "$TMP/at/report.json" ||
    fail "the report does not give the preset step size (eps/4) the run used"
expect 0 "continue with --resume" -- "$BIN" train --data-dir "$TMP/fm500" --train-size 512 --val-size 128 \
    --epochs 2 --batch-size 64 --method pgd-at --awp --eps 0.1 --steps 3 --ema 0.9 --out "$TMP/at2" --stop-after 1
expect 0 "resuming" -- "$BIN" train --data-dir "$TMP/fm500" --train-size 512 --val-size 128 --epochs 2 \
    --batch-size 64 --method pgd-at --awp --eps 0.1 --steps 3 --ema 0.9 --out "$TMP/at2" --resume
cmp -s "$TMP/at/last.safetensors" "$TMP/at2/last.safetensors" && \
    cmp -s "$TMP/at/last_ema.safetensors" "$TMP/at2/last_ema.safetensors" ||
    fail "resumed adversarial run with AWP and a weight average differs from the uninterrupted run"
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

# --- generated training data: safetensors and .npz, with and without a labeller
G="generate --data-dir $DATA --train-size 600 --dims 8 --components 2 --iterations 5 --n 40 --quiet"
expect 0 "wrote .*gen.safetensors: 40 images 1x28x28" -- "$BIN" $G --out "$TMP/gen.safetensors"
# 8-byte header length, the JSON header, then 40 x 784 pixels and 40 int64 labels
hlen=$(od -An -t u8 -N 8 "$TMP/gen.safetensors" | tr -d ' ')
[ "$(wc -c <"$TMP/gen.safetensors")" -eq $((8 + hlen + 40 * 784 + 40 * 8)) ] || fail "generated file has the wrong size"
for key in '"images":{"dtype":"U8","shape":\[40,1,28,28\]' '"labels":{"dtype":"I64","shape":\[40\]' \
    '"sampler":"gmm"' '"data_sha256":"' '"dims":"8"'; do
    head -c $((8 + hlen)) "$TMP/gen.safetensors" | grep -q "$key" || fail "generated file lacks $key"
done
expect 0 "wrote .*gen.npz" -- "$BIN" $G --out "$TMP/gen.npz"
expect 0 "agreeing with the drawn class on" -- "$BIN" $G --out "$TMP/gen_l.safetensors" \
    --labeller "$TMP/run/last.safetensors" --batch-size 16
head -c 4096 "$TMP/gen_l.safetensors" | grep -q '"labeller_sha256":"' || fail "no labeller hash in the metadata"
expect 0 "wrote" -- "$BIN" $G --out "$TMP/gen2.safetensors"
cmp -s "$TMP/gen.safetensors" "$TMP/gen2.safetensors" || fail "the same seed gave another file"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    # numpy reads the archive, and it holds what the safetensors file holds
    /usr/bin/python3 - "$TMP/gen.npz" "$TMP/gen.safetensors" <<'PY' || fail "numpy disagrees with the generated files"
import json, struct, sys
import numpy as np
z = np.load(sys.argv[1])
raw = open(sys.argv[2], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
data = raw[8 + n:]
def tensor(name, dtype):
    a, b = head[name]["data_offsets"]
    return np.frombuffer(data[a:b], dtype=dtype).reshape(head[name]["shape"])
assert z["image"].shape == (40, 28, 28, 1) and z["image"].dtype == np.uint8
assert z["label"].dtype == np.int64 and z["label"].shape == (40,)
assert (z["image"].transpose(0, 3, 1, 2) == tensor("images", np.uint8)).all()
assert (z["label"] == tensor("labels", np.int64)).all()
assert json.loads(str(z["metadata"]))["sampler"] == "gmm"
PY
    # a state_dict without the model description cannot label: its architecture is unknown
    /usr/bin/python3 - "$TMP/sd.safetensors" "$TMP/weights_only.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
del head["__metadata__"]
text = json.dumps(head).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
    expect 1 "holds weights only" -- "$BIN" $G --labeller "$TMP/weights_only.safetensors" --out "$TMP/bad.npz"
fi
expect 2 "unknown sampler 'ddpm'" -- "$BIN" $G --sampler ddpm --out "$TMP/bad.safetensors"
expect 2 "must end in .safetensors or .npz" -- "$BIN" $G --out "$TMP/gen.png"
expect 2 "--n N and --out FILE are required" -- "$BIN" generate --out "$TMP/bad.npz"
expect 2 "--components out of range" -- "$BIN" generate --components 0 --n 4 --out "$TMP/bad.npz"
expect 2 "--dims 1000: fashion-mnist images have only 784 pixels" -- "$BIN" generate --data-dir "$DATA" \
    --train-size 100 --dims 1000 --n 4 --out "$TMP/bad.npz"
expect 2 "give --labeller too" -- "$BIN" $G --batch-size 8 --out "$TMP/bad.npz"
expect 1 "$TMP/nothing.safetensors" -- "$BIN" $G --labeller "$TMP/nothing.safetensors" --out "$TMP/bad.npz"
expect 1 "$TMP/empty" -- "$BIN" generate --data-dir "$TMP/empty" --n 4 --out "$TMP/bad.npz"
[ -e "$TMP/bad.npz" ] || [ -e "$TMP/bad.safetensors" ] && fail "a failed generate left a file"

# --- what a batch holds, budget schedules, coreset: a run of them all resumes bit for bit
expect 0 "--mix input|manifold" -- "$BIN" train --method iat --help
expect 0 "options: --mix" -- "$BIN" list methods
M="train --data-dir $DATA --train-size 512 --val-size 64 --epochs 4 --batch-size 64 --method pgd-at --eps 0.1
   --steps 2 --ood textures --cutmix --repeat 2 --eps-schedule adaptive --eps-min 0.05 --coreset 0.5
   --coreset-period 1 --coreset-start 2 --coreset-warmup 1 --extra-data $TMP/gen.safetensors
   --extra-ratio 0.25 --no-final-pgd"
expect 0 "coreset of 224 images chosen" -- "$BIN" $M --out "$TMP/mix"
grep -q '"skipped":true' "$TMP/mix/log.jsonl" || fail "the coreset warm start skipped no epoch"
expect 0 "continue with --resume" -- "$BIN" $M --out "$TMP/mix2" --stop-after 3
expect 0 "" -- "$BIN" $M --out "$TMP/mix2" --resume --quiet
cmp -s "$TMP/mix/last.safetensors" "$TMP/mix2/last.safetensors" ||
    fail "a resumed run with a coreset and adaptive budgets differs from the uninterrupted run"
grep -q '"extra_data_sha256"' "$TMP/mix/report.json" || fail "the report does not hash the extra data"
expect 0 "PGD-20" -- "$BIN" train --data-dir "$TMP/fm500" --train-size 256 --epochs 1 --method iat \
    --mix manifold --eps 0.1 --steps 2 --ood "$TMP/fm500" --ood-batch 32 --eps-schedule curriculum --eval-eps 0.15 \
    --out "$TMP/iat" --quiet
grep -q '"eval_eps": 0.15' "$TMP/iat/report.json" || fail "the report does not give the evaluation eps"
head -c 300 "$TMP/gen.safetensors" >"$TMP/cut.safetensors"
expect 1 "cut.safetensors" -- "$BIN" train --data-dir "$DATA" --train-size 256 --method pgd-at --eps 0.1 \
    --extra-data "$TMP/cut.safetensors" --out "$TMP/bad"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "a cut extra-data file: more than one line"
[ -e "$TMP/bad/log.jsonl" ] && fail "training started on a cut extra-data file"
expect 1 "gen.npz" -- "$BIN" train --data fashion-mnist-clips-2 --model smallcnn-clip --data-dir "$DATA" \
    --train-size 64 --method pgd-at --eps 0.1 --extra-data "$TMP/gen.npz" --out "$TMP/bad"
expect 2 "--cutmix-alpha needs --cutmix" -- "$BIN" train --data-dir "$DATA" --cutmix-alpha 2 --out "$TMP/bad"
expect 2 "--extra-ratio needs --extra-data" -- "$BIN" train --data-dir "$DATA" --extra-ratio 0.5 --out "$TMP/bad"
expect 2 "one label per example" -- "$BIN" train --data-dir "$DATA" --train-size 256 --method mart --eps 0.1 \
    --cutmix --out "$TMP/bad"
expect 2 "needs an adversarial method" -- "$BIN" train --data-dir "$DATA" --train-size 256 --coreset 0.5 \
    --out "$TMP/bad"
expect 2 "no such file or directory" -- "$BIN" train --data-dir "$DATA" --train-size 256 --method pgd-at \
    --eps 0.1 --ood "$TMP/nowhere" --out "$TMP/bad"

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

# --- networks trained beside the classifier (fgsm-sdi's generator) checkpoint with it and resume
S="train --data-dir $DATA --train-size 384 --val-size 64 --epochs 2 --batch-size 64 --method fgsm-sdi
   --eps 0.1 --sdi-period 2 --generator-width 8 --no-final-pgd"
expect 0 "clean accuracy" -- "$BIN" $S --out "$TMP/sdi" --quiet
grep -aq '"generator.optimizer.exp_avg.conv2.weight"' "$TMP/sdi/last.safetensors" ||
    fail "the checkpoint does not hold the generator's Adam state"
expect 0 "continue with --resume" -- "$BIN" $S --out "$TMP/sdi2" --stop-after 1
expect 0 "" -- "$BIN" $S --out "$TMP/sdi2" --resume --quiet
cmp -s "$TMP/sdi/last.safetensors" "$TMP/sdi2/last.safetensors" ||
    fail "a resumed fgsm-sdi run differs from the uninterrupted run"
I="train --data-dir $DATA --train-size 384 --val-size 64 --epochs 2 --batch-size 64 --method infoat
   --base trades --eps 0.1 --steps 2 --critic-width 8 --no-final-pgd"
expect 0 "continue with --resume" -- "$BIN" $I --out "$TMP/info" --stop-after 1
grep -aq '"critic.optimizer.exp_avg_sq.fc1.weight"' "$TMP/info/last.safetensors" ||
    fail "the checkpoint does not hold the critic's Adam state"
expect 0 "" -- "$BIN" $I --out "$TMP/info" --resume --quiet
expect 0 "" -- "$BIN" $I --out "$TMP/info2" --quiet
cmp -s "$TMP/info/last.safetensors" "$TMP/info2/last.safetensors" ||
    fail "a resumed infoat run differs from the uninterrupted run"
expect 2 "method pgd-at does not use sdi-period" -- "$BIN" train --data-dir "$DATA" --method pgd-at --eps 0.1 \
    --sdi-period 5 --out "$TMP/bad"
expect 2 "fgsm-sdi is an L-inf method" -- "$BIN" train --data-dir "$DATA" --method fgsm-sdi --norm l2 --eps 1 \
    --train-size 64 --out "$TMP/bad"

# --- common corruptions: a file and a grid, the same bytes from the same seed, bad options refused
expect 0 "stand-in" -- "$BIN" list corruptions
expect 0 "under fog at severity 3" -- "$BIN" corrupt --data-dir "$DATA" --n 6 --corruption fog --severity 3 \
    --out "$TMP/fog.safetensors" --png "$TMP/fog.png"
head -c 600 "$TMP/fog.safetensors" | grep -a -q '"images":{"dtype":"F32","shape":\[6,1,28,28\]' ||
    fail "the corrupted file lacks images F32 [6, 1, 28, 28]"
head -c 600 "$TMP/fog.safetensors" | grep -a -q '"corruption":"fog"' || fail "the corrupted file lacks its metadata"
head -c 600 "$TMP/fog.safetensors" | grep -a -q '"labels":{"dtype":"I32"' || fail "the corrupted file lacks labels"
[ "$(head -c 4 "$TMP/fog.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "the corruption grid is not a PNG"
expect 0 "under all at severity 2" -- "$BIN" corrupt --data-dir "$DATA" --n 3 --corruption all --severity 2 \
    --out "$TMP/all.safetensors" --png "$TMP/all.png"
for name in gaussian_noise glass_blur snow frost elastic_transform jpeg_compression; do
    head -c 3000 "$TMP/all.safetensors" 2>/dev/null | grep -a -q "\"images_$name\":{\"dtype\":\"F32\",\"shape\":\[3,1,28,28\]" ||
        fail "corrupt --corruption all lacks images_$name"
done
for run in 1:a 1:b 2:a; do
    "$BIN" corrupt --data-dir "$DATA" --n 4 --corruption shot_noise --severity 2 --seed "${run%:*}" \
        --out "$TMP/shot$run.safetensors" >/dev/null 2>&1 || fail "corrupt --seed ${run%:*} failed"
done
cmp -s "$TMP/shot1:a.safetensors" "$TMP/shot1:b.safetensors" || fail "the same seed gave other corrupted images"
cmp -s "$TMP/shot1:a.safetensors" "$TMP/shot2:a.safetensors" && fail "another seed gave the same shot noise"
expect 2 "unknown corruption 'fgo'; one of: gaussian_noise" -- "$BIN" corrupt --data-dir "$DATA" --corruption fgo \
    --severity 1 --out "$TMP/c.safetensors"
expect 2 "--severity out of range" -- "$BIN" corrupt --data-dir "$DATA" --corruption fog --severity 6 --out "$TMP/c.safetensors"
expect 2 "--severity out of range" -- "$BIN" corrupt --data-dir "$DATA" --corruption fog --severity 0 --out "$TMP/c.safetensors"
expect 2 "--n 10001 is beyond the test split" -- "$BIN" corrupt --data-dir "$DATA" --corruption fog --severity 2 \
    --n 10001 --out "$TMP/c.safetensors"
expect 2 "are required" -- "$BIN" corrupt --data-dir "$DATA" --corruption fog --severity 2
[ -e "$TMP/c.safetensors" ] && fail "a refused corrupt command wrote its file"

# --- the corruption suite: a model against itself has every CE 1; CIFAR-10-C files are read as released
expect 0 "mean corruption accuracy" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --n 40 --suite corruptions --corruptions fog,contrast,jpeg_compression --baseline "$TMP/run/last.safetensors" \
    --json "$TMP/corr.json" --quiet
/usr/bin/python3 - "$TMP/corr.json" <<'PY' || fail "the corruption suite's report is wrong"
import json, sys
r = json.load(open(sys.argv[1]))["corruption_suite"]
rows = r["corruptions"]
assert [x["corruption"] for x in rows] == ["fog", "contrast", "jpeg_compression"], rows
for x in rows:
    assert len(x["severities"]) == 5 and abs(x["accuracy"] - sum(s["correct"] for s in x["severities"]) / 200) < 1e-6
    assert x["ce"] == 1.0, x
mean = sum(x["accuracy"] for x in rows) / 3
assert abs(r["mean_accuracy"] - mean) < 1e-6 and r["mean_accuracy_ci"][0] <= mean <= r["mean_accuracy_ci"][1]
assert r["baseline"]["mce"] == 1.0 and r["baseline"]["mce_ci"] == [1.0, 1.0]
cal = json.load(open(sys.argv[1]))["calibration"]
assert cal["corrupted"]["n"] == 600 and cal["clean"]["n"] == 40 and all(0 <= x["ece"] <= 1 for x in rows)
PY
expect 2 "unknown corruption 'fgo'" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --suite corruptions --corruptions fgo
expect 2 "need --suite corruptions" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --baseline "$TMP/run/last.safetensors"
expect 2 "runs alone" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --suite corruptions --eps 0.1
mkdir -p "$TMP/cifar-c"
/usr/bin/python3 - "$TMP/cifar-c" "$TMP/linear.safetensors" <<'PY'
import json, struct, sys
import numpy as np
names = ("gaussian_noise shot_noise impulse_noise defocus_blur glass_blur motion_blur zoom_blur snow "
         "frost fog brightness contrast elastic_transform pixelate jpeg_compression").split()
rng = np.random.default_rng(0)
for name in names:  # 5 severities of 4 images each, NHWC uint8
    np.save(f"{sys.argv[1]}/{name}.npy", rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8))
np.save(f"{sys.argv[1]}/labels.npy", np.tile(np.arange(4, dtype=np.int64), 5))
# a linear model whose class is the sign of the first pixel's red value minus one half
w = np.zeros((10, 3072), np.float32); b = np.zeros(10, np.float32)
w[1, 0] = 10.0; b[1] = -5.0
tensors = {"fc.weight": w, "fc.bias": b}
header, blobs, off = {}, [], 0
for k, v in tensors.items():
    header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
    blobs.append(v.tobytes()); off += v.nbytes
h = json.dumps(header).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
expect 0 "CIFAR-10-C files" -- "$BIN" eval --checkpoint "$TMP/linear.safetensors" --model linear --data cifar10-c \
    --data-dir "$TMP/cifar-c" --suite corruptions --json "$TMP/cifar-c.json" --quiet
/usr/bin/python3 - "$TMP/cifar-c" "$TMP/cifar-c.json" <<'PY' || fail "the CIFAR-10-C cells were not read as released"
import json, sys
import numpy as np
r = json.load(open(sys.argv[2]))["corruption_suite"]
labels = np.load(f"{sys.argv[1]}/labels.npy")
assert r["source"] == "cifar10-c" and r["clean"] is None and len(r["corruptions"]) == 15
for row in r["corruptions"]:
    x = np.load(f"{sys.argv[1]}/{row['corruption']}.npy")
    for s in range(5):
        rows = slice(4 * s, 4 * s + 4)
        predicted = np.where(x[rows, 0, 0, 0] / 255.0 * 10.0 - 5.0 > 0, 1, 0)
        assert row["severities"][s]["correct"] == int((predicted == labels[rows]).sum()), (row, s)
PY
rm "$TMP/cifar-c/snow.npy"
expect 1 "snow.npy" -- "$BIN" eval --checkpoint "$TMP/linear.safetensors" --model linear --data cifar10-c \
    --data-dir "$TMP/cifar-c" --suite corruptions

# --- AugMix (JSD over a 3n-row batch) and AugRmixAT (a reconstruction) train; their options are theirs
expect 0 "clean accuracy" -- "$BIN" train --data-dir "$DATA" --train-size 128 --val-size 64 --epochs 1 \
    --batch-size 64 --method augmix --augmix-width 2 --out "$TMP/augmix" --quiet
expect 0 "clean accuracy" -- "$BIN" train --data-dir "$DATA" --train-size 128 --val-size 64 --epochs 1 \
    --batch-size 64 --method augrmixat --eps 0.1 --steps 2 --rmix-mode mask --no-final-pgd \
    --out "$TMP/augrmixat" --quiet
expect 2 "method augmix does not use eps" -- "$BIN" train --data-dir "$DATA" --method augmix --eps 0.1 \
    --out "$TMP/bad"
expect 2 "jsd-weight has no effect with no-jsd" -- "$BIN" train --data-dir "$DATA" --train-size 64 \
    --method augmix --no-jsd --jsd-weight 3 --out "$TMP/bad"
expect 2 "method augrmixat does not use no-jsd" -- "$BIN" train --data-dir "$DATA" --method augrmixat \
    --eps 0.1 --no-jsd --out "$TMP/bad"

# --- an interrupted evaluation resumes to the same per-point results
E="eval --checkpoint $TMP/run/last.safetensors --data-dir $DATA --n 40 --batch-size 10 --attack pgd --eps 0.05 --steps 3 --no-checks --quiet"
expect 0 "after pgd" -- "$BIN" $E --points "$TMP/straight.csv" --json "$TMP/straight.json"
expect 0 "stopped after 20" -- "$BIN" $E --state "$TMP/state.json" --stop-after 20
expect 2 "started with --calibration-bins 15" -- "$BIN" $E --state "$TMP/state.json" --calibration-bins 9
expect 0 "after pgd" -- "$BIN" $E --state "$TMP/state.json" --points "$TMP/resumed.csv" --json "$TMP/resumed.json"
cmp -s "$TMP/straight.csv" "$TMP/resumed.csv" || fail "resumed evaluation gave other per-point results"
# the calibration tables agree (sums merged from the two parts may differ in the last digits)
/usr/bin/python3 -c '
import json, sys
a, b = (json.load(open(f))["calibration"] for f in sys.argv[1:3])
for s in ("clean", "adversarial"):
    assert [r["count"] for r in a[s]["table"]] == [r["count"] for r in b[s]["table"]], s
    assert a[s]["n"] == b[s]["n"] == 40 and abs(a[s]["ece"] - b[s]["ece"]) < 1e-6, s
' "$TMP/straight.json" "$TMP/resumed.json" || fail "resumed evaluation gave another calibration"

# --- ada: a tiny autoencoder, then a classifier trained on its perturbed reconstructions
expect 0 "test mse" -- "$BIN" train-autoencoder --data-dir "$DATA" --train-size 128 --test-size 64 \
    --epochs 2 --width 2 --batch 32 --out "$TMP/ae"
[ -s "$TMP/ae/autoencoder.safetensors" ] || fail "train-autoencoder wrote no autoencoder.safetensors"
A="train --data-dir $DATA --train-size 64 --val-size 0 --epochs 1 --batch-size 32 --method ada"
expect 0 "clean accuracy" -- "$BIN" $A --autoencoder "$TMP/ae/autoencoder.safetensors" --ada-steps 1 \
    --model mlp-16 --out "$TMP/ada"
grep -q '"autoencoder_sha256"' "$TMP/ada/report.json" || fail "the ada report does not hash the autoencoder"
expect 2 "needs an autoencoder" -- "$BIN" $A --out "$TMP/bad"
expect 2 "does not use an autoencoder" -- "$BIN" train --data-dir "$DATA" --train-size 64 \
    --autoencoder "$TMP/ae/autoencoder.safetensors" --out "$TMP/bad"
expect 1 "$TMP/nothing.safetensors" -- "$BIN" $A --autoencoder "$TMP/nothing.safetensors" --out "$TMP/bad"
expect 1 "not an autoencoder" -- "$BIN" $A --autoencoder "$TMP/run/last.safetensors" --out "$TMP/bad"
expect 2 "--out DIR is required" -- "$BIN" train-autoencoder --data-dir "$DATA"
[ "$(wc -l <"$TMP/out")" -le 2 ] || fail "train-autoencoder without --out: too many lines"
[ -e "$TMP/bad" ] && fail "a refused ada run started"

# --- the IWD attack and defence (reconstructions): the IWD of the attacked points in the report,
# of every output in the examples file; a budget holds; the options are the IWD attack's alone
expect 0 "IWD of the" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --n 30 \
    --attack pgd,iwd --eps 0.3 --steps 3 --iwd-lambda 10 --iwd-iters 20 --json "$TMP/iwd.json" --quiet
for key in '"over_budget": 0' '"lambda": 10' '"iters": 20' '"mean":'; do
    grep -q "$key" "$TMP/iwd.json" || fail "the IWD evaluation report has no $key"
done
expect 0 "mean IWD" -- "$BIN" attack --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --n 8 \
    --attack iwd --eps 1 --steps 3 --iwd-budget 0.002 --iwd-stride 3 --out "$TMP/iwd.safetensors" \
    --png "$TMP/iwd.png"
[ "$(head -c 4 "$TMP/iwd.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "the IWD grid is not a PNG"
grep -a -q '"iwd"' "$TMP/iwd.safetensors" || fail "the IWD examples file has no iwd tensor"
expect 2 "--iwd-\* does not apply" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" \
    --attack pgd --eps 0.1 --iwd-lambda 3
expect 1 "iwd-patch must be in 1..28" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" \
    --data-dir "$DATA" --n 4 --attack iwd --eps 0.3 --iwd-patch 40
expect 1 "the loss must be ce or cw" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" \
    --data-dir "$DATA" --n 4 --attack iwd --eps 0.3 --loss dlr
expect 0 "clean accuracy" -- "$BIN" train --data-dir "$DATA" --train-size 64 --val-size 0 --epochs 1 \
    --batch-size 32 --method iwd-at --eps 0.1 --steps 2 --iwd-steps 2 --iwd-iters 10 --no-final-pgd \
    --out "$TMP/iwdat" --quiet
expect 2 "iwd-samples" -- "$BIN" train --data-dir "$DATA" --method iwd-at --eps 0.1 --iwd-samples 1 \
    --out "$TMP/bad"
expect 2 "does not use iwd-lambda" -- "$BIN" train --data-dir "$DATA" --method pgd-at --eps 0.1 \
    --iwd-lambda 3 --out "$TMP/bad"

# --- flow and jsa: a tiny flow, its samples, the joint-space attack and what its report measures
expect 0 "test bits/dim" -- "$BIN" train-flow --data-dir "$DATA" --train-size 128 --test-size 64 \
    --epochs 1 --steps 1 --hidden 4 --batch 32 --samples 4 --out "$TMP/flow"
[ -s "$TMP/flow/flow.safetensors" ] || fail "train-flow wrote no flow.safetensors"
head -c 8 "$TMP/flow/samples.png" | grep -q PNG || fail "train-flow wrote no PNG samples"
# a resumed flow run ends with the weights and the optimiser of an uninterrupted one
F="train-flow --data-dir $DATA --train-size 128 --test-size 64 --steps 1 --hidden 4 --batch 32 --samples 4 --quiet"
expect 0 "wrote" -- "$BIN" $F --epochs 2 --out "$TMP/flow-whole"
cp -r "$TMP/flow" "$TMP/flow-resumed"
expect 0 "wrote" -- "$BIN" $F --epochs 2 --resume --out "$TMP/flow-resumed"
cmp -s "$TMP/flow-whole/flow.safetensors" "$TMP/flow-resumed/flow.safetensors" &&
    cmp -s "$TMP/flow-whole/optimizer.safetensors" "$TMP/flow-resumed/optimizer.safetensors" ||
    fail "train-flow --resume did not continue the run exactly"
expect 0 "already trained 2 epochs" -- "$BIN" $F --epochs 2 --resume --out "$TMP/flow-resumed"
expect 2 "trained with --lr 0.001, this command has 0.01" -- "$BIN" $F --epochs 3 --lr 0.01 --resume \
    --out "$TMP/flow-resumed"
cp "$TMP/flow-whole/optimizer.safetensors" "$TMP/flow-resumed/optimizer.safetensors"
cp "$TMP/flow/flow.safetensors" "$TMP/flow-resumed/flow.safetensors"
expect 1 "written for another" -- "$BIN" $F --epochs 3 --resume --out "$TMP/flow-resumed"
expect 1 "no-flow/flow.safetensors" -- "$BIN" $F --epochs 3 --resume --out "$TMP/no-flow"
J="eval --checkpoint $TMP/run/last.safetensors --data-dir $DATA --n 20 --batch-size 10 --no-checks --quiet"
expect 0 "latent linf" -- "$BIN" $J --attack jsa --flow "$TMP/flow/flow.safetensors" --eps 0.05 \
    --eps-z 0.1 --steps 3 --json "$TMP/jsa.json"
/usr/bin/python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))["attacks"][0]
j = a["joint_space"]
assert a["name"] == "jsa" and a["options"]["eps_z"] > 0.0999, a["options"]
assert 0 < j["max_latent_linf"] <= 0.1 + 1e-6 and 0 < j["max_pixel_linf"] <= 0.05 + 1e-6, j
assert j["max_flow_reconstruction_error"] < 1e-4 and a["outputs_outside_0_1"] == 0, j
' "$TMP/jsa.json" || fail "the jsa report does not measure its two budgets"
grep -q "threat-model-violated" "$TMP/jsa.json" && fail "jsa flagged as outside its threat model"
expect 0 "wrote" -- "$BIN" attack --checkpoint "$TMP/run/last.safetensors" --data-dir "$DATA" --n 4 \
    --attack jsa --flow "$TMP/flow/flow.safetensors" --eps 0.05 --eps-z 0.1 --steps 2 \
    --out "$TMP/jsa.safetensors" --png "$TMP/jsa.png"
[ -s "$TMP/jsa.png" ] || fail "attack jsa wrote no PNG grid"
expect 2 "jsa needs --flow" -- "$BIN" $J --attack jsa --eps 0.05 --eps-z 0.1
expect 2 "jsa needs --eps-z" -- "$BIN" $J --attack jsa --eps 0.05 --flow "$TMP/flow/flow.safetensors"
expect 2 "--flow/--eps-z/--step-size-z does not apply" -- "$BIN" $J --attack pgd --eps 0.05 --eps-z 0.1
expect 1 "not a flow file" -- "$BIN" $J --attack jsa --eps 0.05 --eps-z 0.1 --flow "$TMP/run/last.safetensors"
expect 1 "$TMP/none.safetensors" -- "$BIN" $J --attack jsa --eps 0.05 --eps-z 0.1 --flow "$TMP/none.safetensors"
I="train --data-dir $DATA --train-size 64 --val-size 0 --epochs 1 --batch-size 32 --model mlp-16 --no-final-pgd"
expect 0 "clean accuracy" -- "$BIN" $I --method ijsat --flow "$TMP/flow/flow.safetensors" --eps 0.05 \
    --steps 1 --trades --out "$TMP/ijsat"
grep -q '"flow_sha256"' "$TMP/ijsat/report.json" || fail "the ijsat report does not hash the flow"
expect 2 "needs a flow file" -- "$BIN" $I --method ijsat --eps 0.05 --out "$TMP/bad"
expect 2 "does not use a flow" -- "$BIN" $I --method pgd-at --eps 0.05 --flow "$TMP/flow/flow.safetensors" --out "$TMP/bad"
expect 1 "not a flow file" -- "$BIN" $I --method ijsat --eps 0.05 --flow "$TMP/run/last.safetensors" --out "$TMP/bad"
expect 2 "--out DIR is required" -- "$BIN" train-flow --data-dir "$DATA"
expect 2 "multiples of 2^scales = 8" -- "$BIN" train-flow --data-dir "$DATA" --scales 3 --out "$TMP/bad-flow"

if [ "$failures" -ne 0 ]; then
    echo "$failures CLI check(s) failed"
    exit 1
fi
echo "all CLI checks passed"
