#!/usr/bin/env bash
# An imported graph against the built-in architecture, in one run: PyTorch's PreAct ResNet-18
# (tests/reference/torch_models.py) with the CIFAR normalisation as Sub/Div in front, exported by
# torch.onnx.export with its batch norms kept (TrainingMode.PRESERVE, no constant folding), then
# advtrain-bench's W2 rows on the built-in preact-resnet18 and on that .onnx file, taking turns
# for ROUNDS rounds so both see the same machine load. Prints each row's median images/s and the
# imported graph's ratio to the built-in one's (docs/PERFORMANCE.md).
#   bench/onnx_speed.sh [ROUNDS] [MODES]   (default 3 rounds, rows abc; needs python3-torch)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
MODES=${2:-abc}
BENCH=${ADVTRAIN_BENCH:-./build/advtrain-bench}
THREADS=${THREADS:-2}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 -W ignore - "$TMP/preact.onnx" <<'PY'
import os, sys
import torch
sys.path.insert(0, os.path.join("tests", "reference"))
from torch_models import PreActResNet18

class Normalized(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)

torch.manual_seed(0)
torch.onnx.export(Normalized(PreActResNet18()), torch.zeros(1, 3, 32, 32), sys.argv[1],
                  opset_version=13, input_names=["x"], dynamic_axes={"x": {0: "n"}},
                  training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
PY
for r in $(seq "$ROUNDS"); do
    $BENCH --workload w2 --modes "$MODES" --threads "$THREADS" --json "$TMP/builtin-$r.json" >/dev/null
    $BENCH --workload w2 --modes "$MODES" --threads "$THREADS" --onnx "$TMP/preact.onnx" \
        --json "$TMP/onnx-$r.json" >/dev/null
done
/usr/bin/python3 - "$TMP" "$ROUNDS" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
def rows(kind):
    runs = [json.load(open(f"{tmp}/{kind}-{r}.json"))["results"] for r in range(1, rounds + 1)]
    return {row: statistics.median(run[row]["images_per_s"] for run in runs) for row in runs[0]}
builtin, onnx = rows("builtin"), rows("onnx")
print(f"{'row':4s} {'built-in img/s':>15s} {'imported img/s':>15s} {'ratio':>6s}  (median of {rounds})")
for row in builtin:
    print(f"{row:4s} {builtin[row]:15.1f} {onnx[row]:15.1f} {onnx[row] / builtin[row]:6.3f}")
PY
