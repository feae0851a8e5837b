#!/bin/sh
# mpi_eval_test.sh ADVTRAIN MPIRUN: `advtrain eval` shared between two processes by mpirun
# writes the same report and per-point file as one process, byte for byte (wall-clock
# "seconds" aside), for an even and an odd number of points, and with fewer batches than
# processes; so does `advtrain certify` (its times aside); a failure on every rank ends the job
# promptly with one line naming the file.
set -u
BIN=$1
MPIRUN=$2
. "$(dirname "$0")/cli_common.sh"
. "$(dirname "$0")/mpi_common.sh"
two() { timeout 300 "$MPIRUN" --oversubscribe -np 2 "$@"; }

"$BIN" --version | grep -q "^MPI: " || fail "--version names no MPI library"
"$BIN" train --data fashion-mnist --model smallcnn --epochs 1 --train-size 1000 --batch-size 50 \
    --quiet --out "$TMP/run" >"$TMP/train.out" 2>&1 || fail "training the model: $(tail -3 "$TMP/train.out")"
CK=$TMP/run/last.safetensors

# N BATCH: one process and two, the same cascade (restarts: several loss records per step),
# the sanity checks and a curve over eps
compare() {
    n=$1 batch=$2 tag=$1-$2
    set -- eval --checkpoint "$CK" --attack pgd,apgd-ce --eps 0.1 --steps 5 --step-size 0.03 \
        --restarts 2 --curve 0,0.05 --n "$n" --batch-size "$batch" --quiet
    "$BIN" "$@" --json "$TMP/one-$tag.json" --points "$TMP/one-$tag.csv" >"$TMP/one-$tag.out" 2>&1 ||
        { fail "one process, --n $n --batch-size $batch: $(head -c 300 "$TMP/one-$tag.out")"; return; }
    two "$BIN" "$@" --json "$TMP/two-$tag.json" --points "$TMP/two-$tag.csv" >"$TMP/two-$tag.out" 2>&1 ||
        { fail "two processes, --n $n --batch-size $batch: $(head -c 300 "$TMP/two-$tag.out")"; return; }
    [ "$(grep -c '^[0-9]' "$TMP/one-$tag.csv")" -eq "$n" ] || fail "one-$tag.csv does not hold $n points"
    cmp -s "$TMP/one-$tag.csv" "$TMP/two-$tag.csv" || fail "--n $n --batch-size $batch: the per-point files differ"
    # the report is indented one field a line; "seconds" are the only wall-clock fields
    grep -v '"seconds":' "$TMP/one-$tag.json" >"$TMP/one-$tag.cmp"
    grep -v '"seconds":' "$TMP/two-$tag.json" >"$TMP/two-$tag.cmp"
    grep -q '"mean_loss_per_step"' "$TMP/one-$tag.cmp" || fail "one-$tag.json holds no loss per step"
    cmp -s "$TMP/one-$tag.cmp" "$TMP/two-$tag.cmp" ||
        fail "--n $n --batch-size $batch: the reports differ: $(diff "$TMP/one-$tag.cmp" "$TMP/two-$tag.cmp" | head -5)"
    grep -v 's$' "$TMP/one-$tag.out" >"$TMP/one-$tag.txt" # the printed lines that end in seconds aside
    grep -v 's$' "$TMP/two-$tag.out" >"$TMP/two-$tag.txt"
    cmp -s "$TMP/one-$tag.txt" "$TMP/two-$tag.txt" || fail "--n $n: rank 0 printed other lines than one process"
}
compare 64 16  # four batches, two each
compare 63 10  # seven batches, the last of three points: three and four
compare 63 500 # one batch: one process has nothing to do

# certify: each rank certifies a range of points; the report is rank 0's (times aside)
set -- certify --checkpoint "$CK" --sigma 0.25 --n-points 15 --skip 7 --n0 20 --n 200 --quiet
if "$BIN" "$@" --json "$TMP/one-cert.json" >"$TMP/one-cert.out" 2>&1 &&
    two "$BIN" "$@" --json "$TMP/two-cert.json" >"$TMP/two-cert.out" 2>&1; then
    times='"seconds":\|"noisy_forwards_per_second":\|"plain_forwards_per_second":'
    grep -v "$times" "$TMP/one-cert.json" >"$TMP/one-cert.cmp"
    grep -v "$times" "$TMP/two-cert.json" >"$TMP/two-cert.cmp"
    [ "$(grep -c '"radius":' "$TMP/one-cert.cmp")" -ge 15 ] || fail "one-cert.json holds no per-point radii"
    cmp -s "$TMP/one-cert.cmp" "$TMP/two-cert.cmp" ||
        fail "certify: the reports differ: $(diff "$TMP/one-cert.cmp" "$TMP/two-cert.cmp" | head -5)"
else
    fail "certify, one or two processes: $(head -c 300 "$TMP/one-cert.out" "$TMP/two-cert.out")"
fi

# a bad checkpoint on every rank: both exit non-zero, promptly, with one line naming it
two "$BIN" eval --checkpoint "$TMP/missing.safetensors" --attack pgd --eps 0.1 --n 8 \
    >"$TMP/bad.out" 2>&1
code=$?
if [ "$code" -eq 0 ] || [ "$code" -eq 124 ]; then
    fail "a missing checkpoint under mpirun exited $code (0: no error; 124: it hung)"
elif [ "$(grep -c 'missing.safetensors' "$TMP/bad.out")" -ne 1 ]; then
    fail "a missing checkpoint under mpirun: not one line naming it: $(head -c 400 "$TMP/bad.out")"
fi
# what is not shared yet is refused by name
two "$BIN" eval --checkpoint "$CK" --n 8 >"$TMP/clean.out" 2>&1 &&
    fail "a clean evaluation under mpirun was not refused"
grep -q "clean evaluation" "$TMP/clean.out" || fail "clean evaluation refused without naming it: $(head -c 300 "$TMP/clean.out")"
two "$BIN" attack --checkpoint "$CK" --eps 0.1 --n 4 --out "$TMP/adv" >"$TMP/attack2.out" 2>&1 &&
    fail "advtrain attack under mpirun was not refused"
grep -q "runs as one process" "$TMP/attack2.out" || fail "attack refused without saying why: $(head -c 300 "$TMP/attack2.out")"

[ "$failures" -eq 0 ] && echo "mpi eval: all passed"
exit "$failures"
