#!/usr/bin/env bash
# Fuzzes every parser: builds the libFuzzer harnesses of tests/fuzz with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer (build-fuzz), runs each for SECONDS (default 60) on a scratch
# copy of its seed corpus (tests/fuzz/corpus/<name>, left unchanged), FUZZ_PARALLEL harnesses at a
# time (default: one per core; each is one process on one core), and prints per harness
# libFuzzer's final statistics (executions, coverage). Exits non-zero on any crash, leak, timeout
# or out-of-memory; the input that caused it is kept in the scratch dir (printed) to be added to
# the corpus as a regression file once the parser is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
harnesses=(idx cifar safetensors checkpoint config eval_state certify_state flow_state npz onnx)
cores=$(nproc) # before OMP_NUM_THREADS=1 below, which nproc would report instead

if ! command -v clang >/dev/null; then
    echo "fuzz.sh: clang is not installed (scripts/install-deps.sh installs it)" >&2
    exit 1
fi
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DADVTRAIN_FUZZ=ON \
      -DADVTRAIN_MPI=OFF -DADVTRAIN_BUILD_BENCH=OFF >/dev/null
targets=()
for name in "${harnesses[@]}"; do
    targets+=("fuzz_$name")
done
cmake --build build-fuzz -j"${FUZZ_JOBS:-$cores}" --target "${targets[@]}"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/advtrain-fuzz.XXXXXX")
parallel=${FUZZ_PARALLEL:-$cores}
export OMP_NUM_THREADS=1 # each harness is one single-threaded process
echo "fuzzing ${#harnesses[@]} harnesses for ${seconds}s each, $parallel at a time; corpora and" \
     "logs in $scratch"
fuzz_one() { # NAME: runs the harness, leaving its log and exit status in $scratch/NAME
    work="$scratch/$1"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp tests/fuzz/corpus/"$1"/* "$work/corpus/"
    status=0
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        build-fuzz/tests/fuzz/fuzz_"$1" "$work/corpus" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
        >"$work/log" 2>&1 || status=$?
    echo "$status" >"$work/status"
}
running=0
for name in "${harnesses[@]}"; do
    if [ "$running" -ge "$parallel" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    fuzz_one "$name" &
    running=$((running + 1))
done
wait
failed=()
printf '%-12s %10s %8s %8s %8s %s\n' harness executions exec/s cov ft result
for name in "${harnesses[@]}"; do
    work="$scratch/$name"
    status=$(cat "$work/status" 2>/dev/null || echo "?")
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$work/log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    result=ok
    if [ "$status" != 0 ]; then
        result="FAILED (exit $status): $(ls "$work/artifacts" | tr '\n' ' ')"
        failed+=("$name")
    fi
    printf '%-12s %10s %8s %8s %8s %s\n' "$name" "${runs:-?}" "${speed:-?}" "${cov:-?}" \
        "${ft:-?}" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
    for name in "${failed[@]}"; do
        echo "--- $name: $scratch/$name/log" >&2
        grep -E -A12 'ERROR|runtime error|Sanitizer|==[0-9]+==' "$scratch/$name/log" | head -40 >&2 || true
    done
    echo "fuzz.sh: ${failed[*]} failed; the inputs are in $scratch/<name>/artifacts" >&2
    exit 1
fi
rm -rf "$scratch"
echo "fuzz.sh: no crash, leak or timeout in ${#harnesses[@]} harnesses"
