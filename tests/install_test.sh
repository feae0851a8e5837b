#!/bin/sh
# install_test.sh BUILD_DIR SOURCE_DIR [CFLAGS]: installs the build into a fresh prefix, then compiles and
# runs examples/train_and_attack.c against the installed header, library and pkg-config file.
set -eu
BUILD=$1
SRC=$2
EXTRA_CFLAGS=${3:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
for f in include/advtrain.h bin/advtrain; do
    [ -e "$TMP/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
PC=$(find "$TMP/prefix" -name advtrain.pc | head -n 1)
[ -n "$PC" ] || { echo "FAIL: advtrain.pc not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$PC")
LIBDIR=$(pkg-config --variable=libdir advtrain)
cc -std=c11 -Wall -Wextra -Werror $EXTRA_CFLAGS "$SRC/examples/train_and_attack.c" $(pkg-config --cflags --libs advtrain) \
    -o "$TMP/train_and_attack"
LD_LIBRARY_PATH=$LIBDIR "$TMP/train_and_attack"
"$TMP/prefix/bin/advtrain" --version
echo "install, pkg-config and the example program work"
