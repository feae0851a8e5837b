#!/bin/sh
# mpi_train_test.sh ADVTRAIN MPIRUN: `advtrain train` shared by processes under mpirun. With
# --sync-bn, 2 and 4 processes write the checkpoint of one process byte for byte (pgd-at and
# trades on a network with batch norm); a run stopped after an epoch on 2 processes resumes on 1,
# and one stopped on 1 resumes on 2, ending where one process would have; a killed process ends the job promptly with a line
# naming the checkpoint, which then resumes; uneven shards and per-process batch norm train.
set -u
BIN=$1
MPIRUN=$2
. "$(dirname "$0")/cli_common.sh"
. "$(dirname "$0")/mpi_common.sh"
np() { n=$1; shift; timeout 600 "$MPIRUN" --oversubscribe -np "$n" "$@"; }

# a wide-resnet with batch norm, small enough for seconds: 64 rows split into shards of 32 and 16
common="--data fashion-mnist --model wrn-10-1 --eps 0.1 --steps 2 --train-size 256 --val-size 0
        --batch-size 64 --no-final-pgd --sync-bn --quiet"
for method in pgd-at trades; do
    # shellcheck disable=SC2086
    "$BIN" train $common --method "$method" --epochs 1 --out "$TMP/$method-1" >"$TMP/out" 2>&1 ||
        { fail "$method, one process: $(tail -c 300 "$TMP/out")"; continue; }
    for n in 2 4; do
        # shellcheck disable=SC2086
        np "$n" "$BIN" train $common --method "$method" --epochs 1 --out "$TMP/$method-$n" \
            >"$TMP/out" 2>&1 || { fail "$method, $n processes: $(tail -c 300 "$TMP/out")"; continue; }
        cmp -s "$TMP/$method-1/last.safetensors" "$TMP/$method-$n/last.safetensors" ||
            fail "$method: $n processes wrote another checkpoint than one process"
    done
done
# the same without --sync-bn on 2 processes: each normalises by its own rows, another result
# shellcheck disable=SC2086
np 2 "$BIN" train $(echo $common | sed 's/--sync-bn//') --method pgd-at --epochs 1 \
    --out "$TMP/own-bn" >"$TMP/out" 2>&1 || fail "per-process batch norm: $(tail -c 300 "$TMP/out")"
cmp -s "$TMP/pgd-at-1/last.safetensors" "$TMP/own-bn/last.safetensors" &&
    fail "per-process batch norm gave the weights of synchronised batch norm"

# two epochs in one process, and the first on 2 processes with the second resumed on 1
# shellcheck disable=SC2086
"$BIN" train $common --method pgd-at --epochs 2 --out "$TMP/whole" >"$TMP/out" 2>&1 ||
    fail "two epochs, one process: $(tail -c 300 "$TMP/out")"
# shellcheck disable=SC2086
np 2 "$BIN" train $common --method pgd-at --epochs 2 --stop-after 1 --out "$TMP/moved" \
    >"$TMP/out" 2>&1 || fail "first epoch on 2 processes: $(tail -c 300 "$TMP/out")"
# shellcheck disable=SC2086
"$BIN" train $common --method pgd-at --epochs 2 --resume --out "$TMP/moved" >"$TMP/out" 2>&1 ||
    fail "resuming on one process: $(tail -c 300 "$TMP/out")"
cmp -s "$TMP/whole/last.safetensors" "$TMP/moved/last.safetensors" ||
    fail "2 processes then 1 (resumed) ended elsewhere than one process throughout"
# and the other way: the first epoch on one process, the second resumed on 2
# shellcheck disable=SC2086
"$BIN" train $common --method pgd-at --epochs 2 --stop-after 1 --out "$TMP/spread" >"$TMP/out" 2>&1 ||
    fail "first epoch on one process: $(tail -c 300 "$TMP/out")"
# shellcheck disable=SC2086
np 2 "$BIN" train $common --method pgd-at --epochs 2 --resume --out "$TMP/spread" >"$TMP/out" 2>&1 ||
    fail "resuming on 2 processes: $(tail -c 300 "$TMP/out")"
cmp -s "$TMP/whole/last.safetensors" "$TMP/spread/last.safetensors" ||
    fail "1 process then 2 (resumed) ended elsewhere than one process throughout"

# uneven shards: 3 processes on batches of 50 (17, 17, 16 rows), a clean method on smallcnn
np 3 "$BIN" train --data fashion-mnist --model smallcnn --epochs 1 --train-size 230 --val-size 0 \
    --batch-size 50 --quiet --out "$TMP/uneven" >"$TMP/out" 2>&1 ||
    fail "3 processes, uneven shards: $(tail -c 300 "$TMP/out")"
[ -f "$TMP/uneven/last.safetensors" ] || fail "3 processes wrote no checkpoint"

# a process killed mid-run: the job ends within seconds, a survivor names the checkpoint to
# resume, and it resumes (on one process)
np 2 "$BIN" train --data fashion-mnist --model smallcnn --method pgd-at --eps 0.1 --steps 3 \
    --epochs 30 --train-size 1024 --val-size 0 --batch-size 64 --no-final-pgd --quiet \
    --out "$TMP/killed" >"$TMP/killed.out" 2>&1 &
job=$!
i=0
while [ ! -f "$TMP/killed/last.safetensors" ] && [ $i -lt 600 ]; do sleep 0.5; i=$((i + 1)); done
victim=$(pgrep -f "train.*$TMP/killed" | sort -n | tail -1)
if [ -z "$victim" ] || [ ! -f "$TMP/killed/last.safetensors" ]; then
    fail "the run to kill wrote no checkpoint: $(tail -c 300 "$TMP/killed.out")"
    kill "$job" 2>/dev/null
else
    kill -9 "$victim"
    i=0
    while kill -0 "$job" 2>/dev/null && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
    if kill -0 "$job" 2>/dev/null; then
        fail "the job still runs 60 s after a process was killed"
        pkill -9 -f "train.*$TMP/killed"
    fi
    wait "$job" && fail "the job exited 0 after a process was killed"
    grep -q "stopped: another process of the job ended; --resume continues from .*killed/last.safetensors" \
        "$TMP/killed.out" || fail "no line names the checkpoint to resume: $(tail -c 400 "$TMP/killed.out")"
    "$BIN" train --resume --stop-after 2 --quiet --out "$TMP/killed" --data fashion-mnist \
        --model smallcnn --method pgd-at --eps 0.1 --steps 3 --epochs 30 --train-size 1024 \
        --val-size 0 --batch-size 64 --no-final-pgd >"$TMP/out" 2>&1 ||
        fail "the killed run does not resume: $(tail -c 300 "$TMP/out")"
fi

[ "$failures" -eq 0 ] && echo "mpi train: all passed"
exit "$failures"
