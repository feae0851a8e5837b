#!/usr/bin/env bash
# Data-parallel training on this machine: one epoch of W1's recipe (SmallCNN, Fashion-MNIST,
# PGD-10 adversarial training, eps 0.1, step 0.01, batch 128; no validation, no final
# evaluation) on TRAIN images, as 1 process x 1 thread, 2 processes x 1 thread (mpirun,
# --sync-bn; --allreduce in a fourth column) and 1 process x 2 threads, the set-ups taking turns
# for ROUNDS rounds. Prints each one's median training seconds per epoch (log.jsonl) and the
# speed-ups, and whether the 2-process checkpoint equals the 1-process one (it should, byte for
# byte: same seed, same batches).
#   bench/mpi_train_speed.sh [ROUNDS [TRAIN]]   (defaults 3 and 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
TRAIN=${2:-10000}
BIN=${ADVTRAIN:-./build/advtrain}
MPIRUN=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
run() {
    "$@" --data fashion-mnist --model smallcnn --method pgd-at --eps 0.1 --steps 10 \
        --step-size 0.01 --batch-size 128 --epochs 1 --train-size "$TRAIN" --val-size 0 \
        --no-early-stop --no-final-pgd --sync-bn --quiet >/dev/null
}
for r in $(seq "$ROUNDS"); do
    OMP_NUM_THREADS=1 run "$BIN" train --threads 1 --out "$TMP/1x1-$r"
    OMP_NUM_THREADS=1 run "$MPIRUN" --oversubscribe -np 2 "$BIN" train --threads 1 --out "$TMP/2x1-$r"
    OMP_NUM_THREADS=1 run "$MPIRUN" --oversubscribe -np 2 "$BIN" train --threads 1 --allreduce \
        --out "$TMP/2x1a-$r"
    OMP_NUM_THREADS=2 run "$BIN" train --threads 2 --out "$TMP/1x2-$r"
done
python3 - "$TMP" "$ROUNDS" <<'PY'
import filecmp, json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
setups = {"1x1": "1 process x 1 thread", "2x1": "2 processes x 1 thread",
          "2x1a": "2 processes x 1 thread, --allreduce", "1x2": "1 process x 2 threads"}
med = {}
for s, label in setups.items():
    seconds = [json.loads(open(f"{tmp}/{s}-{r}/log.jsonl").readline())["seconds"]
               for r in range(1, rounds + 1)]
    med[s] = statistics.median(seconds)
    print(f"{label:38s} {med[s]:8.2f} s/epoch (median of {rounds}; "
          f"{min(seconds):.2f}-{max(seconds):.2f})")
print(f"speed-up of 2x1 over 1x1: {med['1x1'] / med['2x1']:.2f}x; "
      f"with --allreduce {med['1x1'] / med['2x1a']:.2f}x")
print(f"2x1 against 1x2: {med['1x2'] / med['2x1']:.2f}x (above 1: the processes are faster)")
same = all(filecmp.cmp(f"{tmp}/1x1-{r}/last.safetensors", f"{tmp}/2x1-{r}/last.safetensors",
                       shallow=False) for r in range(1, rounds + 1))
print("2 processes wrote the 1-process checkpoint byte for byte:", "yes" if same else "NO")
PY
