#!/usr/bin/env bash
# Installs the Debian packages advtrain needs. Idempotent: only missing packages are installed.
# Runs apt-get as root (through sudo when not root).
#   scripts/install-deps.sh demo   what building the tool and running the demo need
#   scripts/install-deps.sh [test] that, and what the test suite's tiers use (the default)
#   scripts/install-deps.sh TIER --list   prints the tier's packages, installs nothing
set -euo pipefail

tier=${1:-test}
case $tier in demo | test) ;; *) echo "usage: $0 [demo|test] [--list]" >&2; exit 2 ;; esac

packages=(
    build-essential cmake pkg-config   # compiler and build
    libdnnl-dev                        # oneDNN: matrix products (JIT kernels for the CPU found)
    zlib1g-dev                         # gzip-compressed IDX files
    libjansson-dev                     # JSON: safetensors headers, logs, reports
    nettle-dev                         # SHA-256 of checkpoints and data in reports; base64
    libpng-dev                         # PNG example grids written by the tool; PNG image folders
    libjpeg62-turbo-dev                # the JPEG corruption (compress and decode); JPEG image folders
    libzip-dev                         # .npz files (zip archives of .npy arrays) of extra data
    liblapacke-dev                     # eigenvectors of the covariance for the data generator's PCA
    libonnx-dev                        # onnx.proto, the schema of ONNX files (import, eval, export)
    protobuf-c-compiler                # protoc-c: generates the C parser for onnx.proto at build time
    libprotobuf-c-dev                  # the protobuf-c runtime that parser links against
    dataset-fashion-mnist              # the real data set of the demo and tests
)
if [ "$tier" = test ]; then
    packages+=(
        libopenmpi-dev openmpi-bin     # MPI: training and evaluation under mpirun (optional)
        python3-torch python3-numpy    # the PyTorch reference tier of the tests (optional at run time)
        python3-scipy                  # the SciPy tier: randomized smoothing's statistics (optional)
        python3-onnx python3-opencv    # the ONNX export tier: onnx.checker and OpenCV's dnn (optional)
        chromium                       # the test that renders the HTML report headless
        clang libclang-rt-dev          # scripts/fuzz.sh: clang and its libFuzzer + sanitizer runtimes
        valgrind                       # the memcheck test of the command line's fast cases
    )
fi

if [ "${2:-}" = --list ]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
echo "installing: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
