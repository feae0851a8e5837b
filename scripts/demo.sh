#!/usr/bin/env bash
# The demo: installs what is missing, builds advtrain, trains the TRADES SmallCNN on Fashion-MNIST
# to resist L-inf perturbations of eps 0.1 with fast adversarial training (FGSM from a random
# start, Wong et al. 2020: 5 epochs, cyclic learning rate peaking at 0.05, catastrophic-
# overfitting check), then evaluates it: clean and PGD-20 accuracy on the 10,000 test images and
# the standard attack suite (APGD-CE, APGD-T, FAB-T, Square) on the first 1,000, each with a 95%
# confidence interval, and writes an HTML report of the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh demo # the build and the demo only: no test tiers
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target advtrain
start=$(date +%s)
./build/advtrain train --data fashion-mnist --model smallcnn --method fgsm-rs --eps 0.1 \
    --epochs 5 --batch-size 128 --lr 0.05 --momentum 0.9 --weight-decay 5e-4 \
    --final-suite standard --final-n 1000 --out runs/demo
./build/advtrain report runs/demo
echo "demo finished in $(( $(date +%s) - start )) s; report: runs/demo/report.html"
