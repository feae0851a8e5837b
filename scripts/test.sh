#!/usr/bin/env bash
# The test suite: installs what is missing, builds with warnings as errors, and runs every test
# twice: in the optimised build and under AddressSanitizer + UndefinedBehaviorSanitizer (all but
# the tests labelled "process" (mpirun, kill -9, a PyTorch-trained model) and "real-data" (a model
# trained on real data to check what it learns), whose C paths the unit tests reach under the
# sanitizers too), and the command line's fast cases under valgrind's memcheck. The PyTorch reference tier runs when python3-torch is installed (ctest reports it as
# skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DADVTRAIN_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure)

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DADVTRAIN_WERROR=ON \
      -DADVTRAIN_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure --label-exclude "process|real-data")

# The parsers under libFuzzer, 30 s each (one harness per core at a time), where clang can link a
# fuzzer (install-deps.sh installs clang and libclang-rt-dev; a machine without them says so and
# goes on).
probe=$(mktemp -d)
if command -v clang >/dev/null &&
   echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
   clang -fsanitize=fuzzer,address,undefined -x c - -o "$probe/probe" 2>/dev/null; then
    bash scripts/fuzz.sh 30
    fuzzed=" and 30 s of fuzzing per parser"
else
    echo "fuzzing skipped: clang with libFuzzer (clang, libclang-rt-dev) is not available"
    fuzzed=""
fi
rm -rf "$probe"
echo "all tests passed (optimised and sanitizer builds${fuzzed})"
