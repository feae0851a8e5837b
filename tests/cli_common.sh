# cli_common.sh: what the command-line tests share (sourced by cli_test.sh and onnx_cli_test.sh):
# a temporary directory TMP removed at exit, the Fashion-MNIST directory DATA, and the failure
# count `failures` kept by fail and expect. The sourcing script ends with its own summary.
DATA=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE PATTERN -- command...: exit status CODE and stderr+stdout matching PATTERN
expect() {
    code=$1 pattern=$2
    shift 3
    "$@" >"$TMP/out" 2>&1
    got=$?
    if [ "$got" -ne "$code" ]; then
        fail "$* exited $got, expected $code: $(head -c 300 "$TMP/out")"
    elif ! grep -q -e "$pattern" "$TMP/out"; then
        fail "$* printed no '$pattern': $(head -c 300 "$TMP/out")"
    fi
}

[ -d "$DATA" ] || { echo "FAIL: $DATA missing (install dataset-fashion-mnist)"; exit 1; }
