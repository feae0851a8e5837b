#!/bin/sh
# onnx_cli_test.sh ADVTRAIN ONNX_FIXTURE: ONNX files on the command line. eval takes a .onnx file
# as --checkpoint, import turns it into a checkpoint that evaluates to the same numbers, train
# --init fine-tunes its graph, export --onnx writes a checkpoint as a file that evaluates alike; a
# broken file and a misuse exit non-zero with one line naming the file, node and operator. Uses
# the Fashion-MNIST files of the dataset-fashion-mnist package.
set -u
BIN=$1
FIXTURE=$2
. "$(dirname "$0")/cli_common.sh"
"$FIXTURE" "$TMP" || { echo "FAIL: onnx_fixture"; exit 1; }
M=$TMP/tiny.onnx
EVAL="--data-dir $DATA --n 100 --attack fgsm --eps 0.1 --quiet"

expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$M" $EVAL
grep "clean accuracy\|after fgsm" "$TMP/out" >"$TMP/from_onnx"
expect 0 "imported .*tiny.onnx (5 layers, 10 classes)" -- "$BIN" import "$M" --out "$TMP/tiny.safetensors"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/tiny.safetensors" $EVAL --json "$TMP/tiny.json"
grep -q "\"imported_from\": \"$M\"" "$TMP/tiny.json" &&
    grep -q "\"imported_sha256\": \"$(sha256sum "$M" | cut -c1-64)\"" "$TMP/tiny.json" ||
    fail "the report of an imported checkpoint does not name its source file and SHA-256"
grep "clean accuracy\|after fgsm" "$TMP/out" | sed 's/[0-9.]* s$//' >"$TMP/from_checkpoint"
sed -i 's/[0-9.]* s$//' "$TMP/from_onnx"
[ -s "$TMP/from_onnx" ] || fail "eval of the .onnx file printed no accuracy"
cmp -s "$TMP/from_onnx" "$TMP/from_checkpoint" || fail "the imported checkpoint evaluates otherwise than the .onnx file: $(cat "$TMP/from_onnx" "$TMP/from_checkpoint")"
expect 0 "" -- "$BIN" attack --checkpoint "$M" --data-dir "$DATA" --n 20 --attack pgd --eps 0.1 \
    --steps 3 --out "$TMP/adv.safetensors"
[ -s "$TMP/adv.safetensors" ] || fail "attack on the .onnx file wrote no examples"
expect 0 "starting from the weights of .*tiny.onnx" -- "$BIN" train --init "$M" --data-dir "$DATA" \
    --train-size 128 --epochs 1 --batch-size 64 --out "$TMP/run"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/run/last.safetensors" $EVAL
# a run of the imported graph stopped after its first epoch continues with that graph
expect 0 "" -- "$BIN" train --init "$M" --data-dir "$DATA" --train-size 128 --epochs 2 \
    --stop-after 1 --batch-size 64 --out "$TMP/run3"
expect 0 "epoch 2/2" -- "$BIN" train --resume --data-dir "$DATA" --train-size 128 --epochs 2 \
    --batch-size 64 --out "$TMP/run3"

# export --onnx: a trained checkpoint (input normalisation inside) as an ONNX file that
# evaluates as the checkpoint does; the imported graph exports too
# (trained past chance, about 50%, so that the comparison means something)
expect 0 "" -- "$BIN" train --model smallcnn --mean 0.286 --std 0.353 --data-dir "$DATA" \
    --train-size 1024 --epochs 1 --batch-size 64 --lr 0.05 --out "$TMP/cnn"
expect 0 "exported .*last.safetensors (.* layers, 10 classes) to .*cnn.onnx" -- "$BIN" export \
    --checkpoint "$TMP/cnn/last.safetensors" --onnx "$TMP/cnn.onnx"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/cnn/last.safetensors" $EVAL
grep "clean accuracy\|after fgsm" "$TMP/out" | sed 's/[0-9.]* s$//' >"$TMP/cnn_checkpoint"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/cnn.onnx" $EVAL
grep "clean accuracy\|after fgsm" "$TMP/out" | sed 's/[0-9.]* s$//' >"$TMP/cnn_onnx"
[ -s "$TMP/cnn_onnx" ] || fail "eval of the exported file printed no accuracy"
cmp -s "$TMP/cnn_onnx" "$TMP/cnn_checkpoint" || fail "the exported file evaluates otherwise than its checkpoint: $(cat "$TMP/cnn_checkpoint" "$TMP/cnn_onnx")"
expect 0 "to .*graph.onnx" -- "$BIN" export --checkpoint "$TMP/tiny.safetensors" --onnx "$TMP/graph.onnx"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/graph.onnx" $EVAL
grep "clean accuracy\|after fgsm" "$TMP/out" | sed 's/[0-9.]* s$//' >"$TMP/graph_onnx"
cmp -s "$TMP/graph_onnx" "$TMP/from_checkpoint" || fail "the re-exported graph evaluates otherwise: $(cat "$TMP/from_checkpoint" "$TMP/graph_onnx")"
expect 0 "to .*again.onnx" -- "$BIN" export --checkpoint "$TMP/cnn.onnx" --onnx "$TMP/again.onnx"
expect 0 "clean accuracy" -- "$BIN" eval --checkpoint "$TMP/again.onnx" $EVAL
grep "clean accuracy\|after fgsm" "$TMP/out" | sed 's/[0-9.]* s$//' >"$TMP/again_onnx"
cmp -s "$TMP/again_onnx" "$TMP/cnn_onnx" || fail "an ONNX file exported again evaluates otherwise: $(cat "$TMP/cnn_onnx" "$TMP/again_onnx")"
expect 1 "einsum.onnx: node 'fc' (Einsum)" -- "$BIN" export --checkpoint "$TMP/einsum.onnx" --onnx "$TMP/e.onnx"
expect 2 "one of --out or --onnx" -- "$BIN" export --checkpoint "$TMP/cnn/last.safetensors"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "the usage error is not one line: $(cat "$TMP/out")"
expect 2 "one of --out or --onnx" -- "$BIN" export --checkpoint "$TMP/cnn/last.safetensors" \
    --out "$TMP/x.safetensors" --onnx "$TMP/x.onnx"
expect 2 "goes with --out" -- "$BIN" export --checkpoint "$TMP/cnn/last.safetensors" \
    --onnx "$TMP/x.onnx" --wrap-normalization
expect 1 "cannot create" -- "$BIN" export --checkpoint "$TMP/cnn/last.safetensors" \
    --onnx "$TMP/no/such/dir/x.onnx"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "the write error is not one line: $(cat "$TMP/out")"

# refused: an unsupported operator, a file that is not ONNX, an architecture beside a graph
expect 1 "einsum.onnx: node 'fc' (Einsum): operator Einsum is not supported" -- \
    "$BIN" eval --checkpoint "$TMP/einsum.onnx" $EVAL
expect 1 "einsum.onnx: node 'fc' (Einsum)" -- "$BIN" import "$TMP/einsum.onnx" --out "$TMP/x.safetensors"
expect 1 "einsum.onnx: node 'fc' (Einsum)" -- "$BIN" train --init "$TMP/einsum.onnx" \
    --data-dir "$DATA" --epochs 1 --out "$TMP/run2"
printf 'not a model' >"$TMP/text.onnx"
expect 1 "text.onnx: not an ONNX model" -- "$BIN" eval --checkpoint "$TMP/text.onnx" $EVAL
expect 2 "describes its model" -- "$BIN" eval --checkpoint "$M" --model smallcnn $EVAL
expect 2 "give only --out" -- "$BIN" import "$M" --model smallcnn --out "$TMP/y.safetensors"
expect 2 "only an ONNX file" -- "$BIN" import "$TMP/tiny.safetensors" --out "$TMP/z.safetensors"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "the error is not one line: $(cat "$TMP/out")"

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "onnx cli: all passed"
