#!/bin/sh
# allreduce_bench_test.sh BENCH MPIRUN: advtrain-allreduce-bench under mpirun times every slab
# three ways and writes them to --json; the two rank-ordered sums agree bit for bit (the program
# fails otherwise) with 2 ranks and with 3, whose chunks of an odd slab are uneven; a bad option
# ends the job with one line naming it and a non-zero status.
set -u
BENCH=$1
MPIRUN=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# the container runs as root; the ranks share however few cores the machine has
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# In the sanitizer build: Open MPI's plugins keep allocations to the end of the process (seen
# by LeakSanitizer as leaks in unloaded modules, which no suppression can name), so leak checks
# are off for this test's processes; the same evaluation code is leak-checked in one process
# by the cli test. Address and undefined-behaviour checks stay on.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ranks() { n=$1; shift; timeout 300 "$MPIRUN" --oversubscribe -np "$n" "$@"; }

for n in 2 3; do
    ranks "$n" "$BENCH" --repeats 2 --warmup 0 --floats 1001 --json "$TMP/$n.json" >"$TMP/$n.out" 2>&1 ||
        { fail "$n ranks: $(tail -c 300 "$TMP/$n.out")"; continue; }
    python3 - "$TMP/$n.json" "$n" <<'PY' || fail "$n ranks: $TMP/$n.json is not what it should be"
import json, sys
run, n = json.load(open(sys.argv[1])), int(sys.argv[2])
names = [r["name"] for r in run["results"]]
assert run["ranks"] == n and run["repeats"] == 2, run
assert names[0] == "latency (1 float)" and names[-1] == "1001 floats", names
assert any(name.startswith("W1") for name in names) and any(name.startswith("W2") for name in names)
for r in run["results"]:
    assert r["bytes"] == 4 * r["floats"] > 0, r
    for mode in ("allreduce", "gather", "ordered_rs"):
        assert 0 < r[mode]["min_s"] <= r[mode]["median_s"], (r["name"], mode)
        assert abs(r[mode]["algbw_bytes_per_s"] * r[mode]["median_s"] - r["bytes"]) < 1e-6 * r["bytes"]
    bus = r["allreduce"]["busbw_bytes_per_s"] / r["allreduce"]["algbw_bytes_per_s"]
    assert abs(bus - 2 * (n - 1) / n) < 1e-9, bus
PY
done

ranks 2 "$BENCH" --repeats 0 >"$TMP/bad.out" 2>&1
[ $? -ne 0 ] || fail "--repeats 0 was accepted"
[ "$(grep -c "advtrain-allreduce-bench: bad option or value: --repeats" "$TMP/bad.out")" -eq 1 ] ||
    fail "--repeats 0: not one line naming it: $(head -c 300 "$TMP/bad.out")"

[ "$failures" -eq 0 ] && echo "allreduce bench: all passed"
exit "$failures"
