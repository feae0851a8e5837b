#!/bin/sh
# deps_tiers_test.sh SOURCE_DIR: the demo's package tier (scripts/install-deps.sh demo) installs
# what the build needs and nothing of the test tiers (no browser, no PyTorch, no MPI), and is
# part of the test tier.
set -u
DEPS=$1/scripts/install-deps.sh
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
demo=$(bash "$DEPS" demo --list) || fail "the demo tier does not list"
test=$(bash "$DEPS" test --list) || fail "the test tier does not list"
for p in chromium python3-torch python3-numpy python3-scipy python3-onnx libopenmpi-dev; do
    echo "$demo" | grep -qx "$p" && fail "the demo tier installs $p"
    echo "$test" | grep -qx "$p" || fail "the test tier lacks $p"
done
for p in build-essential cmake libdnnl-dev libjansson-dev libonnx-dev dataset-fashion-mnist; do
    echo "$demo" | grep -qx "$p" || fail "the demo tier lacks $p"
done
for p in $demo; do
    echo "$test" | grep -qx "$p" || fail "$p is in the demo tier but not the test tier"
done
bash "$DEPS" nonsense >/dev/null 2>&1 && fail "an unknown tier was accepted"
[ "$failures" -eq 0 ] && echo "dependency tiers: all passed"
exit "$failures"
