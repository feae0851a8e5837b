#!/usr/bin/env bash
# The demo: installs what is missing, builds advtrain, trains the TRADES SmallCNN on
# Fashion-MNIST (5 epochs, SGD momentum 0.9, lr 0.05 with cosine decay, weight decay 5e-4,
# batch 128) and evaluates the result on the 10,000 test images.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target advtrain
start=$(date +%s)
./build/advtrain train --data fashion-mnist --model smallcnn --epochs 5 --batch-size 128 \
    --lr 0.05 --lr-schedule cosine --momentum 0.9 --weight-decay 5e-4 --out runs/demo
./build/advtrain eval --checkpoint runs/demo/last.safetensors --data fashion-mnist --split test \
    --json runs/demo/eval.json
echo "demo finished in $(( $(date +%s) - start )) s; run directory: runs/demo"
