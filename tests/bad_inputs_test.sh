#!/bin/sh
# bad_inputs_test.sh ADVTRAIN: the catalogue of bad inputs. Each case below is damaged or
# contradictory input to one command; the command must exit with the status given, print the
# message given (a fixed string) as its one line on stderr (a bad command line may add the usage
# line), finish within 60 s without a crash or sanitizer report, and leave no output file behind.
# The damaged files are made here from real ones: Fashion-MNIST, and a checkpoint, a state_dict
# and an ONNX model written by the tool itself.
# `bad_inputs_test.sh --markdown` prints the table for docs/BAD-INPUTS.md instead.
# BAD_INPUTS_WRAPPER, when set, is a command put before the tool in every case (memcheck_test.sh
# runs the catalogue under valgrind with it); the files to damage are made without it.
set -u

# name | exit | message (fixed string) | file that must not be left ("-": none) | arguments
# $T is the test's temporary directory, $CK a one-epoch smallcnn checkpoint in it, $DATA the
# Fashion-MNIST directory. "as-nobody" runs the command as user nobody (root reads any file).
cases() {
    cat <<'EOF'
idx-raw-truncated | 1 | $T/idx-raw-trunc/t10k-images-idx3-ubyte: truncated: header promises 78416 bytes, file has 40000 | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-raw-trunc --json $T/e.json
idx-gz-truncated | 1 | $T/idx-gz-trunc/t10k-images-idx3-ubyte.gz: truncated: header promises 78416 bytes, file has | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-gz-trunc --json $T/e.json
idx-gz-corrupt | 1 | $T/idx-gz-corrupt/t10k-images-idx3-ubyte.gz: corrupt gzip stream | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-gz-corrupt --json $T/e.json
idx-raw-oversized | 1 | $T/idx-raw-over/t10k-images-idx3-ubyte: trailing garbage: 5000 bytes after the 78416 the header describes | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-raw-over --json $T/e.json
idx-gz-oversized | 1 | $T/idx-gz-over/t10k-images-idx3-ubyte.gz: trailing garbage: 5000 bytes after the 78416 the header describes | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-gz-over --json $T/e.json
idx-wrong-magic | 1 | $T/idx-magic/t10k-images-idx3-ubyte: wrong magic 0x12345678, expected 0x00000803 (IDX uint8 images) | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-magic --json $T/e.json
idx-wrong-dims | 1 | $T/idx-dims/t10k-labels-idx1-ubyte: wrong number of dims: 3 | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-dims --json $T/e.json
idx-header-past-end | 1 | $T/idx-hdr/t10k-images-idx3-ubyte: truncated: header promises 16 bytes, file has 10 | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-hdr --json $T/e.json
idx-huge-dims | 1 | $T/idx-huge/t10k-images-idx3-ubyte: oversized header: dimensions give more than | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-huge --json $T/e.json
idx-count-mismatch | 1 | has 100 images but $T/idx-count/t10k-labels-idx1-ubyte has 99 labels | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-count --json $T/e.json
idx-label-range | 1 | $T/idx-label/t10k-labels-idx1-ubyte: label 10 of example 3 is out of range | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-label --json $T/e.json
idx-empty-set | 1 | $T/idx-empty/t10k-images-idx3-ubyte: no examples (dimension 0 is 0) | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-empty --json $T/e.json
idx-fifo | 1 | $T/idx-fifo/t10k-images-idx3-ubyte: cannot open: not a regular file | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-fifo --json $T/e.json
idx-missing | 1 | $T/empty | $T/e.json | eval --checkpoint $CK --data-dir $T/empty --json $T/e.json
idx-directory | 1 | $T/idx-dir/t10k-images-idx3-ubyte: cannot open: not a regular file | $T/e.json | eval --checkpoint $CK --data-dir $T/idx-dir --json $T/e.json
cifar-truncated | 1 | $T/cifar-trunc/data_batch_1.bin: size 61360 bytes is not a non-zero multiple of the 3073-byte record | $T/r-cifar/last.safetensors | train --data cifar10 --data-dir $T/cifar-trunc --epochs 1 --out $T/r-cifar --quiet
cifar-label-range | 1 | $T/cifar-label/data_batch_1.bin: label 12 of record 1 is out of range [0, 10) | $T/r-cifar/last.safetensors | train --data cifar10 --data-dir $T/cifar-label --epochs 1 --out $T/r-cifar --quiet
cifar-empty | 1 | $T/cifar-empty/data_batch_1.bin: size 0 bytes is not a non-zero multiple of the 3073-byte record | $T/r-cifar/last.safetensors | train --data cifar10 --data-dir $T/cifar-empty --epochs 1 --out $T/r-cifar --quiet
cifar-fifo | 1 | $T/cifar-fifo/data_batch_1.bin: cannot open: not a regular file | $T/r-cifar/last.safetensors | train --data cifar10 --data-dir $T/cifar-fifo --epochs 1 --out $T/r-cifar --quiet
cifar-incomplete | 1 | $T/cifar-part/data_batch_2.bin: not found: the cifar10 train split is incomplete | $T/r-cifar/last.safetensors | train --data cifar10 --data-dir $T/cifar-part --epochs 1 --out $T/r-cifar --quiet
cifar-oversized | 1 | $T/cifar-huge/data_batch_1.bin: 700000 records, more than the limit of | $T/r-cifar/last.safetensors | train --data cifar10 --data-dir $T/cifar-huge --epochs 1 --out $T/r-cifar --quiet
ckpt-truncated | 1 | $T/ck-trunc.safetensors: | $T/e.json | eval --checkpoint $T/ck-trunc.safetensors --data-dir $DATA --json $T/e.json
ckpt-tiny | 1 | $T/ck-tiny.safetensors: file shorter than 8 bytes (4 bytes) | $T/e.json | eval --checkpoint $T/ck-tiny.safetensors --data-dir $DATA --json $T/e.json
ckpt-oversized | 1 | $T/ck-over.safetensors: 1000 unused bytes in the data buffer after the last tensor | $T/e.json | eval --checkpoint $T/ck-over.safetensors --data-dir $DATA --json $T/e.json
ckpt-header-past-end | 1 | $T/ck-hdrlen.safetensors: oversized header: length 50000000 but the file has | $T/e.json | eval --checkpoint $T/ck-hdrlen.safetensors --data-dir $DATA --json $T/e.json
ckpt-header-huge | 1 | $T/ck-hdrhuge.safetensors: oversized header: 9223372036854775808 bytes (the limit is | $T/e.json | eval --checkpoint $T/ck-hdrhuge.safetensors --data-dir $DATA --json $T/e.json
ckpt-header-not-json | 1 | $T/ck-notjson.safetensors: header is not valid JSON | $T/e.json | eval --checkpoint $T/ck-notjson.safetensors --data-dir $DATA --json $T/e.json
ckpt-wrong-magic | 1 | $T/ck-magic.safetensors: oversized header: length 67324752 but the file has | $T/e.json | eval --checkpoint $T/ck-magic.safetensors --data-dir $DATA --json $T/e.json
ckpt-overlap | 1 | $T/ck-overlap.safetensors: tensors classifier.fc1.bias and classifier.fc1.weight overlap in the data buffer | $T/e.json | eval --checkpoint $T/ck-overlap.safetensors --data-dir $DATA --json $T/e.json
ckpt-offsets-past-end | 1 | $T/ck-pastend.safetensors: tensor optimizer.momentum.feature_extractor.conv4.weight: data_offsets end 2501712 is beyond the data buffer (2497616 bytes) | $T/e.json | eval --checkpoint $T/ck-pastend.safetensors --data-dir $DATA --json $T/e.json
ckpt-wrong-dtype | 1 | $T/ck-dtype.safetensors: tensor feature_extractor.conv1.weight has dtype I32 but the model expects F32 | $T/e.json | eval --checkpoint $T/ck-dtype.safetensors --data-dir $DATA --json $T/e.json
ckpt-wrong-shape | 1 | $T/ck-shape.safetensors: tensor feature_extractor.conv1.weight has shape | $T/e.json | eval --checkpoint $T/ck-shape.safetensors --data-dir $DATA --json $T/e.json
ckpt-nan-weight | 1 | $T/ck-nan.safetensors: tensor feature_extractor.conv1.weight holds a non-finite value (nan at | $T/e.json | eval --checkpoint $T/ck-nan.safetensors --data-dir $DATA --json $T/e.json
ckpt-inf-weight | 1 | $T/ck-inf.safetensors: tensor feature_extractor.conv1.weight holds a non-finite value (inf at | $T/e.json | eval --checkpoint $T/ck-inf.safetensors --data-dir $DATA --json $T/e.json
ckpt-bad-model-json | 1 | $T/ck-model.safetensors: model description is not valid JSON | $T/e.json | eval --checkpoint $T/ck-model.safetensors --data-dir $DATA --json $T/e.json
ckpt-directory | 1 | $T/ckdir: cannot open: not a regular file | $T/e.json | eval --checkpoint $T/ckdir --data-dir $DATA --json $T/e.json
ckpt-fifo | 1 | $T/fifo: cannot open: not a regular file | $T/e.json | eval --checkpoint $T/fifo --data-dir $DATA --json $T/e.json
ckpt-missing | 1 | $T/nothing.safetensors: cannot open: No such file or directory | $T/e.json | eval --checkpoint $T/nothing.safetensors --data-dir $DATA --json $T/e.json
ckpt-unreadable | 1 | $T/locked.safetensors: cannot open: Permission denied | $T/e.json | as-nobody eval --checkpoint $T/locked.safetensors --data-dir $DATA --json $T/e.json
ckpt-export-truncated | 1 | $T/ck-trunc.safetensors: | $T/x.onnx | export --checkpoint $T/ck-trunc.safetensors --onnx $T/x.onnx
statedict-truncated | 1 | $T/sd-trunc.safetensors: | $T/x.safetensors | import --model smallcnn --weights $T/sd-trunc.safetensors --out $T/x.safetensors
statedict-oversized | 1 | $T/sd-over.safetensors: 64 unused bytes in the data buffer after the last tensor | $T/x.safetensors | import --model smallcnn --weights $T/sd-over.safetensors --out $T/x.safetensors
statedict-wrong-model | 1 | $T/sd.safetensors: no tensor fc1.weight (nor with a model. or module. prefix): is this a state_dict of mlp-16? | $T/x.safetensors | import --model mlp-16 --weights $T/sd.safetensors --out $T/x.safetensors
onnx-truncated | 1 | $T/m-trunc.onnx: not an ONNX model (not a valid protobuf message, or truncated) | $T/e.json | eval --checkpoint $T/m-trunc.onnx --data-dir $DATA --json $T/e.json
onnx-oversized | 1 | $T/m-over.onnx: not an ONNX model (not a valid protobuf message, or truncated) | $T/e.json | eval --checkpoint $T/m-over.onnx --data-dir $DATA --json $T/e.json
onnx-directory | 1 | $T/onnxdir.onnx: cannot open: not a regular file | $T/e.json | eval --checkpoint $T/onnxdir.onnx --data-dir $DATA --json $T/e.json
onnx-fifo | 1 | $T/fifo.onnx: cannot open: not a regular file | $T/x.safetensors | import $T/fifo.onnx --out $T/x.safetensors
onnx-wrong-magic | 1 | $T/m-magic.onnx: not an ONNX model | $T/x.safetensors | import $T/m-magic.onnx --out $T/x.safetensors
onnx-import-truncated | 1 | $T/m-trunc.onnx: not an ONNX model (not a valid protobuf message, or truncated) | $T/x.safetensors | import $T/m-trunc.onnx --out $T/x.safetensors
npz-truncated | 1 | --extra-data: $T/trunc.npz: not a readable zip archive: Not a zip archive | $T/r-npz/last.safetensors | train --data-dir $DATA --train-size 200 --val-size 0 --epochs 1 --quiet --out $T/r-npz --extra-data $T/trunc.npz
npz-oversized | 1 | --extra-data: $T/over.npz: not a readable zip archive: Zip archive inconsistent | $T/r-npz/last.safetensors | train --data-dir $DATA --train-size 200 --val-size 0 --epochs 1 --quiet --out $T/r-npz --extra-data $T/over.npz
npz-empty | 1 | --extra-data: $T/empty.npz: image holds no images (N = 0) | $T/r-npz/last.safetensors | train --data-dir $DATA --train-size 200 --val-size 0 --epochs 1 --quiet --out $T/r-npz --extra-data $T/empty.npz
npz-no-image | 1 | --extra-data: $T/noimage.npz: no array 'image' (nor 'images') | $T/r-npz/last.safetensors | train --data-dir $DATA --train-size 200 --val-size 0 --epochs 1 --quiet --out $T/r-npz --extra-data $T/noimage.npz
npz-wrong-dtype | 1 | --extra-data: $T/float.npz: image has dtype '<f4', expected uint8 | $T/r-npz/last.safetensors | train --data-dir $DATA --train-size 200 --val-size 0 --epochs 1 --quiet --out $T/r-npz --extra-data $T/float.npz
npz-wrong-shape | 1 | --extra-data: $T/shape.npz: image has shape (16, 32, 32), expected (N, 28, 28) or (N, 28, 28, 1) | $T/r-npz/last.safetensors | train --data-dir $DATA --train-size 200 --val-size 0 --epochs 1 --quiet --out $T/r-npz --extra-data $T/shape.npz
npz-label-range | 1 | --extra-data: $T/label.npz: label[0] = 11 is out of range [0, 10) | $T/r-npz/last.safetensors | train --data-dir $DATA --train-size 200 --val-size 0 --epochs 1 --quiet --out $T/r-npz --extra-data $T/label.npz
npz-header-past-end | 1 | --extra-data: $T/npyhdr.npz: image.npy: truncated: the .npy header promises 60010 bytes, the array has 12672 | $T/r-npz/last.safetensors | train --data-dir $DATA --train-size 200 --val-size 0 --epochs 1 --quiet --out $T/r-npz --extra-data $T/npyhdr.npz
config-no-equals | 2 | $T/cfg-noeq:2: expected 'name = value' | $T/r-cfg/last.safetensors | train --config $T/cfg-noeq --out $T/r-cfg
config-unknown | 2 | $T/cfg-unknown:1: unknown option 'epoch' | $T/r-cfg/last.safetensors | train --config $T/cfg-unknown --out $T/r-cfg
config-out-of-range | 2 | $T/cfg-range:1: --epochs out of range | $T/r-cfg/last.safetensors | train --config $T/cfg-range --out $T/r-cfg
config-truncated | 2 | $T/cfg-trunc:2: --epochs expects an integer, got '' | $T/r-cfg/last.safetensors | train --config $T/cfg-trunc --out $T/r-cfg
config-oversized-line | 2 | $T/cfg-long:1: line longer than | $T/r-cfg/last.safetensors | train --config $T/cfg-long --out $T/r-cfg
config-twice | 2 | option --epochs given twice (or also in --config) | $T/r-cfg/last.safetensors | train --config $T/cfg-ok --epochs 1 --out $T/r-cfg
config-directory | 2 | $T/ckdir: cannot open the configuration file: | $T/r-cfg/last.safetensors | train --config $T/ckdir --out $T/r-cfg
config-fifo | 2 | $T/fifo: cannot open the configuration file: not a regular file | $T/r-cfg/last.safetensors | train --config $T/fifo --out $T/r-cfg
folder-empty | 1 | $T/empty | $T/r-x/last.safetensors | train --data folder --data-dir $T/empty --epochs 1 --out $T/r-x --quiet
config-missing | 2 | $T/nothing.cfg: cannot open the configuration file: | $T/r-cfg/last.safetensors | train --config $T/nothing.cfg --out $T/r-cfg
export-both-targets | 2 | one of --out or --onnx | $T/x.onnx | export --checkpoint $CK --out $T/x.safetensors --onnx $T/x.onnx
train-resume-and-init | 2 | --init | $T/r-x/last.safetensors | train --data-dir $DATA --train-size 200 --out $T/r-x --resume --init $CK
train-ratio-without-extra | 2 | --extra-ratio | $T/r-x/last.safetensors | train --data-dir $DATA --train-size 200 --out $T/r-x --extra-ratio 0.5
train-epochs-zero | 2 | --epochs out of range | $T/r-x/last.safetensors | train --out $T/r-x --epochs 0
train-batch-negative | 2 | --batch-size out of range | $T/r-x/last.safetensors | train --out $T/r-x --batch-size -3
eval-state-truncated | 1 | $T/eval-state-cut.json: not an evaluation state file: | $T/e.json | eval --checkpoint $CK --data-dir $DATA --n 20 --attack fgsm --eps 0.1 --state $T/eval-state-cut.json --json $T/e.json
certify-state-truncated | 1 | $T/cert-state-cut.json: not a certification state file: | $T/c.json | certify --checkpoint $CK --data-dir $DATA --sigma 0.25 --n-points 2 --n0 10 --n 100 --state $T/cert-state-cut.json --json $T/c.json
certify-state-other-run | 2 | $T/cert-state-other.json holds another certification (other checkpoint, data, points or options); remove it or use another --state file | $T/c.json | certify --checkpoint $CK --data-dir $DATA --sigma 0.25 --n-points 2 --n0 10 --n 100 --state $T/cert-state-other.json --json $T/c.json
flow-resume-truncated | 1 | $T/flow-cut/optimizer.safetensors: | $T/flow-cut/samples.png | train-flow --data-dir $DATA --train-size 64 --test-size 32 --steps 1 --hidden 4 --batch 32 --epochs 2 --resume --out $T/flow-cut
flow-resume-other-settings | 2 | $T/flow-other/optimizer.safetensors: the run was trained with --batch 32, this command has 16 (resume with the run's own settings) | $T/flow-other/samples.png | train-flow --data-dir $DATA --train-size 64 --test-size 32 --steps 1 --hidden 4 --batch 16 --epochs 2 --resume --out $T/flow-other
eval-n-zero | 2 | --n out of range | $T/e.json | eval --checkpoint $CK --n 0 --json $T/e.json
eval-eps-nan | 2 | --eps expects a number, got 'nan' | $T/e.json | eval --checkpoint $CK --eps nan --json $T/e.json
eval-json-no-dir | 1 | $T/no/such/dir/e.json | $T/no/such/dir/e.json | eval --checkpoint $CK --data-dir $DATA --n 20 --json $T/no/such/dir/e.json
eval-points-without-attack | 2 | --points records each point's outcome under attack: give --attack or --suite and --eps | $T/p.csv | eval --checkpoint $CK --data-dir $DATA --n 20 --points $T/p.csv
eval-points-directory | 1 | $T/ckdir: cannot open for writing: Is a directory | - | eval --checkpoint $CK --data-dir $DATA --n 20 --attack fgsm --eps 0.1 --points $T/ckdir
EOF
}

trim() { echo "$1" | sed 's/^ *//; s/ *$//'; }

if [ "${1:-}" = "--markdown" ]; then
    echo "| input | command (after \`advtrain\`) | exit | message (printed after \`advtrain CMD: \`) |"
    echo "|---|---|---|---|"
    cases | while IFS='|' read -r name code msg out args; do
        printf '| %s | `%s` | %s | `%s` |\n' "$(trim "$name")" "$(trim "$args" | sed 's/^as-nobody //')" \
            "$(trim "$code")" "$(trim "$msg")"
    done
    exit 0
fi

BIN=$1
. "$(dirname "$0")/cli_common.sh"
T=$TMP
CK=$T/ck.safetensors
FLOW="--train-size 64 --test-size 32 --steps 1 --hidden 4 --batch 32 --samples 4 --quiet"
export OMP_NUM_THREADS=1

# --- the real files the damaged ones are made from
"$BIN" train --data-dir "$DATA" --train-size 200 --val-size 0 --epochs 1 --no-final-pgd --quiet \
    --out "$T/run" >"$T/setup.log" 2>&1 && cp "$T/run/last.safetensors" "$CK" &&
    "$BIN" export --checkpoint "$CK" --out "$T/sd.safetensors" >>"$T/setup.log" 2>&1 &&
    "$BIN" export --checkpoint "$CK" --onnx "$T/m.onnx" >>"$T/setup.log" 2>&1 &&
    "$BIN" train-flow --data-dir "$DATA" $FLOW --epochs 1 --out "$T/flow" >>"$T/setup.log" 2>&1 ||
    { echo "FAIL: could not write the files to damage: $(tail -c 500 "$T/setup.log")"; exit 1; }
mkdir -p "$T/empty" "$T/ckdir" "$T/onnxdir.onnx" "$T/idx-dir/t10k-images-idx3-ubyte" "$T/idx-fifo" "$T/cifar-fifo"
# FIFOs: nothing ever writes to them, so a reader that opens one blindly waits for ever
mkfifo "$T/fifo" "$T/fifo.onnx" "$T/idx-fifo/t10k-images-idx3-ubyte" "$T/cifar-fifo/data_batch_1.bin"
cp "$DATA/t10k-labels-idx1-ubyte.gz" "$T/idx-fifo/"
cp "$DATA/t10k-labels-idx1-ubyte.gz" "$T/idx-dir/"

/usr/bin/python3 - "$DATA" "$T" <<'PY' || { echo "FAIL: could not write the damaged files"; exit 1; }
import gzip, io, json, os, struct, sys, zipfile
data, t = sys.argv[1], sys.argv[2]
images = gzip.open(os.path.join(data, "t10k-images-idx3-ubyte.gz")).read()
labels = gzip.open(os.path.join(data, "t10k-labels-idx1-ubyte.gz")).read()
N = 100  # the first 100 test images, header rewritten
img = struct.pack(">IIII", 0x803, N, 28, 28) + images[16:16 + N * 784]
lab = struct.pack(">II", 0x801, N) + labels[8:8 + N]

def put(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)

def idx_dir(name, image_bytes, label_bytes, gz=False):
    suffix = ".gz" if gz else ""
    put(f"{t}/{name}/t10k-images-idx3-ubyte{suffix}", image_bytes)
    put(f"{t}/{name}/t10k-labels-idx1-ubyte{suffix}", label_bytes)

idx_dir("idx-raw-trunc", img[:40000], lab)
idx_dir("idx-gz-trunc", gzip.compress(img)[:20000], gzip.compress(lab), gz=True)
corrupt = bytearray(gzip.compress(img))
for k in range(2000, 2100):
    corrupt[k] ^= 0x5a
idx_dir("idx-gz-corrupt", bytes(corrupt), gzip.compress(lab), gz=True)
idx_dir("idx-raw-over", img + bytes(5000), lab)
idx_dir("idx-gz-over", gzip.compress(img + bytes(5000)), gzip.compress(lab), gz=True)
idx_dir("idx-magic", struct.pack(">I", 0x12345678) + img[4:], lab)
idx_dir("idx-dims", img, struct.pack(">I", 0x803) + lab[4:])
idx_dir("idx-hdr", img[:10], lab)
idx_dir("idx-huge", struct.pack(">IIII", 0x803, 0xffffffff, 0xffffff, 28) + img[16:], lab)
idx_dir("idx-count", img, struct.pack(">II", 0x801, N - 1) + labels[8:8 + N - 1])
bad = bytearray(lab); bad[8 + 3] = 10
idx_dir("idx-label", img, bytes(bad))
idx_dir("idx-empty", struct.pack(">IIII", 0x803, 0, 28, 28), struct.pack(">II", 0x801, 0))

# CIFAR-10 binary batches: records of 1 label byte and 3072 pixel bytes, from the IDX images
def cifar_records(n, label=None):
    out = bytearray()
    for i in range(n):
        out.append(labels[8 + i] if label is None or i != 1 else label)
        px = images[16 + i * 784:16 + (i + 1) * 784]
        plane = bytes(px[(y * 28 // 32) * 28 + (x * 28 // 32)] for y in range(32) for x in range(32))
        out += plane * 3
    return bytes(out)
names = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]
good = cifar_records(20)
def cifar_dir(name, content):
    for n in names:
        put(f"{t}/{name}/{n}", content)
cifar_dir("cifar-trunc", good[:-100])
cifar_dir("cifar-label", cifar_records(20, label=12))
cifar_dir("cifar-empty", b"")
put(f"{t}/cifar-part/data_batch_1.bin", good)
for n in names[1:]:
    put(f"{t}/cifar-fifo/{n}", good)
os.makedirs(f"{t}/cifar-huge", exist_ok=True)
for n in names:  # sparse: the size of 700000 records costs no disk
    with open(f"{t}/cifar-huge/{n}", "wb") as f:
        f.truncate(700000 * 3073)

# safetensors checkpoints
raw = open(f"{t}/ck.safetensors", "rb").read()
hlen = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + hlen])
body = raw[8 + hlen:]
def st(hdr, body):
    h = json.dumps(hdr).encode()
    return struct.pack("<Q", len(h)) + h + body
def edit(fn):
    h = json.loads(json.dumps(header)); b = bytearray(body)
    fn(h, b)
    return st(h, bytes(b))
W = "feature_extractor.conv1.weight"
tensors = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
put(f"{t}/ck-trunc.safetensors", raw[:len(raw) // 2])
put(f"{t}/ck-tiny.safetensors", raw[:4])
put(f"{t}/ck-over.safetensors", raw + bytes(1000))
put(f"{t}/ck-hdrlen.safetensors", struct.pack("<Q", 50000000) + raw[8:])
put(f"{t}/ck-hdrhuge.safetensors", struct.pack("<Q", 1 << 63) + raw[8:])
put(f"{t}/ck-notjson.safetensors", raw[:8] + b"#" * hlen + body)
put(f"{t}/ck-magic.safetensors", b"PK\x03\x04" + raw[4:])
def overlap(h, b):
    a, c = tensors[0], tensors[1]
    h[c]["data_offsets"] = [h[a]["data_offsets"][0], h[a]["data_offsets"][0] + h[c]["data_offsets"][1] - h[c]["data_offsets"][0]]
put(f"{t}/ck-overlap.safetensors", edit(overlap))
def pastend(h, b):
    last = tensors[-1]
    h[last]["data_offsets"][1] += 4096
put(f"{t}/ck-pastend.safetensors", edit(pastend))
put(f"{t}/ck-dtype.safetensors", edit(lambda h, b: h[W].update(dtype="I32")))
put(f"{t}/ck-shape.safetensors", edit(lambda h, b: h[W].update(shape=list(reversed(h[W]["shape"])))))
def poke(value):
    def fn(h, b):
        off = h[W]["data_offsets"][0] + 4 * 5
        b[off:off + 4] = struct.pack("<f", value)
    return fn
put(f"{t}/ck-nan.safetensors", edit(poke(float("nan"))))
put(f"{t}/ck-inf.safetensors", edit(poke(float("inf"))))
put(f"{t}/ck-model.safetensors", edit(lambda h, b: h["__metadata__"].update(model="{not json")))
put(f"{t}/locked.safetensors", raw)
sd = open(f"{t}/sd.safetensors", "rb").read()
put(f"{t}/sd-trunc.safetensors", sd[:len(sd) * 2 // 3])
put(f"{t}/sd-over.safetensors", sd + bytes(64))

# ONNX
onnx = open(f"{t}/m.onnx", "rb").read()
put(f"{t}/m-trunc.onnx", onnx[:len(onnx) // 2])
put(f"{t}/m-over.onnx", onnx + b"\xff" * 64)
put(f"{t}/m-magic.onnx", b"\x00\x01garbage" * 50)

# npz archives of .npy arrays (written by hand: NumPy's format 1.0)
def npy(dtype, shape, payload):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (dtype, "".join(f"{s}, " for s in shape))
    d += " " * (63 - (10 + len(d)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode() + payload
def npz(path, arrays):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in arrays.items():
            z.writestr(name + ".npy", content)
    put(path, buf.getvalue())
n = 16
pix = images[16:16 + n * 784]
lbl = bytes(labels[8:8 + n])
good_image, good_label = npy("|u1", (n, 28, 28), pix), npy("|u1", (n,), lbl)
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("image.npy", good_image); z.writestr("label.npy", good_label)
put(f"{t}/trunc.npz", buf.getvalue()[:len(buf.getvalue()) // 2])
put(f"{t}/over.npz", buf.getvalue() + b"\xff" * 4096)
npz(f"{t}/empty.npz", {"image": npy("|u1", (0, 28, 28), b""), "label": npy("|u1", (0,), b"")})
npz(f"{t}/noimage.npz", {"label": good_label})
npz(f"{t}/float.npz", {"image": npy("<f4", (n, 28, 28), bytes(4 * n * 784)), "label": good_label})
npz(f"{t}/shape.npz", {"image": npy("|u1", (n, 32, 32), bytes(n * 1024)), "label": good_label})
npz(f"{t}/label.npz", {"image": good_image, "label": npy("|u1", (n,), bytes([11] * n))})
npz(f"{t}/npyhdr.npz", {"image": good_image[:8] + struct.pack("<H", 60000) + good_image[10:], "label": good_label})

# --config files
put(f"{t}/cfg-noeq", b"epochs = 1\nlr 0.1\n")
put(f"{t}/cfg-unknown", b"epoch = 1\n")
put(f"{t}/cfg-range", b"epochs = 0\n")
put(f"{t}/cfg-trunc", b"lr = 0.1\nepochs = ")
put(f"{t}/cfg-ok", b"epochs = 1\n")
put(f"{t}/cfg-long", b"data-dir = /" + b"x" * 5000 + b"\n")

# resumable runs' state files: cut short, and another run's
put(f"{t}/eval-state-cut.json", b'{"fingerprint": "{\\"checkpoint\\": \\"ab')
put(f"{t}/cert-state-cut.json", b'{"fingerprint": "{\\"alpha\\": 0.001, \\"chec')
put(f"{t}/cert-state-other.json", json.dumps({"fingerprint": "another run", "points": 2,
    "seconds": 1.0, "plain_seconds": 0.1, "plain_images": 500, "results": []}).encode())
flow, adam = (open(f"{t}/flow/{name}.safetensors", "rb").read() for name in ("flow", "optimizer"))
for d in ("flow-cut", "flow-other"):
    put(f"{t}/{d}/flow.safetensors", flow)
put(f"{t}/flow-cut/optimizer.safetensors", adam[:len(adam) // 2])
put(f"{t}/flow-other/optimizer.safetensors", adam)
PY
chmod 000 "$T/locked.safetensors"

# Files of mode 000 stop every user but root: as root, the unreadable case runs as nobody.
nobody=""
if [ "$(id -u)" -eq 0 ]; then
    nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
    chmod 755 "$T"
    # a build directory under a private one (a fresh clone in a mktemp -d) is out of nobody's
    # reach: then nobody runs a copy of the tool from the test's own directory
    if ! $nobody test -x "$BIN"; then
        cp "$BIN" "$T/advtrain-copy" && chmod 755 "$T/advtrain-copy"
        NOBODY_BIN=$T/advtrain-copy
    fi
    $nobody test -x "${NOBODY_BIN:-$BIN}" ||
        { echo "FAIL: user nobody cannot run $BIN (for the unreadable case)"; exit 1; }
fi

count=0
cases | while IFS='|' read -r name code msg out args; do
    name=$(trim "$name") code=$(trim "$code") msg=$(trim "$msg") out=$(trim "$out")
    eval "set -- $args"
    eval "msg=\"$msg\" out=\"$out\""
    prefix="" tool=$BIN
    if [ "$1" = as-nobody ]; then
        prefix=$nobody tool=${NOBODY_BIN:-$BIN}
        shift
    fi
    [ "$out" = - ] || rm -rf "$out"
    $prefix timeout 60 ${BAD_INPUTS_WRAPPER:-} "$tool" "$@" >"$T/stdout" 2>"$T/stderr"
    got=$?
    first=$(head -n 1 "$T/stderr")
    if [ "$got" -eq 124 ]; then
        fail "$name: no answer within 60 s"
    elif [ "$got" -ge 128 ] || grep -q -e "Sanitizer" -e "runtime error:" "$T/stderr"; then
        fail "$name: crashed (exit $got): $(head -c 600 "$T/stderr")"
    elif [ "$got" -ne "$code" ]; then
        fail "$name: exit $got, expected $code: $first"
    elif ! printf '%s\n' "$first" | grep -q -F -e "$msg"; then
        fail "$name: printed '$first', expected '$msg'"
    elif [ "$(sed '/^usage: /d' "$T/stderr" | wc -l)" -ne 1 ]; then
        fail "$name: more than one line: $(head -c 600 "$T/stderr")"
    elif [ "$out" != - ] && [ -e "$out" ]; then
        fail "$name: left $out behind"
    fi
    [ -n "${BAD_INPUTS_VERBOSE:-}" ] && echo "$name: $got: $(cat "$T/stderr")"
    count=$((count + 1))
    echo "$count $failures" >"$T/tally"
done
read -r count failures <"$T/tally"
# docs/BAD-INPUTS.md holds this table, as --markdown prints it
doc="$(dirname "$0")/../docs/BAD-INPUTS.md"
sh "$0" --markdown >"$T/table.md"
sed -n '/^| input /,$p' "$doc" | diff -u "$T/table.md" - >"$T/table.diff" ||
    fail "$doc is not the table of the test (write it with --markdown): $(head -c 600 "$T/table.diff")"
[ "$count" -ge 40 ] || fail "only $count cases in the catalogue"
echo "bad inputs: $count cases, $failures failures"
[ "$failures" -eq 0 ]
