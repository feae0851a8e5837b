#!/bin/sh
# memcheck_test.sh ADVTRAIN: the command line's fast cases under valgrind's memcheck, with zero
# errors and zero leaks (definite or indirect). Two parts, side by side: good runs of the commands
# on a few Fashion-MNIST images (eval, certify, corrupt, export and import through safetensors and
# ONNX), and the whole catalogue of bad inputs (bad_inputs_test.sh).
#
# valgrind.supp hides only what memcheck reports from code with no object file: the kernels oneDNN
# generates at run time. Memcheck cannot see that their wide loads past a buffer's end are masked,
# and marks their reads below the stack pointer; every frame of advtrain and the libraries it
# links still counts. OpenMP runs on one thread (valgrind runs threads one at a time, and a team's
# spin-waiting makes it crawl).
set -u
BIN=$1
. "$(dirname "$0")/cli_common.sh"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
command -v valgrind >/dev/null || { echo "FAIL: valgrind is not installed (scripts/install-deps.sh test)"; exit 1; }

# the catalogue runs one case as user nobody, who may not reach the source tree: the
# suppressions and the logs live in the temporary directory, open to every user
LOGS=$TMP/logs
mkdir -p "$LOGS" && chmod 1777 "$LOGS" "$TMP"
cp "$(dirname "$0")/valgrind.supp" "$TMP/valgrind.supp" && chmod 644 "$TMP/valgrind.supp"
MEMCHECK="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
  --suppressions=$TMP/valgrind.supp --log-file=$LOGS/%p.log"

# vg NAME ARGS...: one run of the tool under memcheck; it must exit 0
vg() {
    name=$1
    shift
    # shellcheck disable=SC2086 # MEMCHECK is a command line
    $MEMCHECK "$BIN" "$@" >"$TMP/out" 2>&1
    status=$?
    [ "$status" -eq 0 ] || fail "$name: exit $status under memcheck: $(tail -c 600 "$TMP/out")"
}

# --- a small data set: the first 256 training and 64 test images, gzip'd IDX as the package has
SMALL=$TMP/small
/usr/bin/python3 "$(dirname "$0")/fashion_subset.py" "$DATA" "$SMALL" 256 64 ||
    { echo "FAIL: could not write the small data set"; exit 1; }
S="--data-dir $SMALL --val-size 0 --batch-size 32 --quiet"
CK=$TMP/run/last.safetensors
"$BIN" train $S --epochs 1 --out "$TMP/run" >"$TMP/setup.log" 2>&1 ||
    { echo "FAIL: could not train the model to check: $(tail -c 500 "$TMP/setup.log")"; exit 1; }

# --- good runs: the commands once, on few points, forward passes only. Backward passes
# (training, gradient attacks) are left to the sanitizer build: under valgrind oneDNN's
# generated kernels run about a thousand times slower, the more so the more shapes a run uses
# (two training batches of 32 images take 3 minutes even under valgrind's no-op tool, 0.5 s
# natively; 8 points of FGSM and PGD-2, or 4 of Square with 10 queries, minutes).
good_runs() {
    vg list list
    vg help train --help
    vg eval-clean eval --checkpoint "$CK" --data-dir "$SMALL" --n 16 --quiet --json "$TMP/e.json"
    vg certify certify --checkpoint "$CK" --data-dir "$SMALL" --sigma 0.25 --n-points 1 --n0 16 \
        --n 16 --batch-size 16 --quiet --json "$TMP/c.json"
    vg corrupt corrupt --data-dir "$SMALL" --n 2 --corruption all --severity 3 \
        --out "$TMP/all.safetensors" --png "$TMP/all.png"
    vg export-safetensors export --checkpoint "$CK" --out "$TMP/sd.safetensors"
    vg export-onnx export --checkpoint "$CK" --onnx "$TMP/m.onnx"
    vg import-safetensors import --model smallcnn --weights "$TMP/sd.safetensors" --out "$TMP/i.safetensors"
    vg import-onnx import "$TMP/m.onnx" --out "$TMP/o.safetensors"
    echo "$failures" >"$TMP/good.failures"
}

# --- the catalogue of bad inputs, every case under memcheck, beside the good runs (each valgrind
# run is one thread: the two parts take a core each)
good_runs >"$TMP/good.out" 2>&1 &
good=$!
if ! BAD_INPUTS_WRAPPER=$MEMCHECK sh "$(dirname "$0")/bad_inputs_test.sh" "$BIN" >"$TMP/bad.out" 2>&1; then
    fail "the catalogue under memcheck: $(grep FAIL "$TMP/bad.out" | head -c 1500)"
fi
wait "$good"
cat "$TMP/good.out"
[ -s "$TMP/good.failures" ] || fail "the good runs did not finish"
failures=$((failures + $(cat "$TMP/good.failures" 2>/dev/null || echo 0)))

# what memcheck said, for any run above that it failed
for log in "$LOGS"/*.log; do
    [ -s "$log" ] && fail "memcheck: $(head -c 1500 "$log")"
done
echo "memcheck: $(ls "$LOGS" | wc -l) runs, $failures failures"
[ "$failures" -eq 0 ]
