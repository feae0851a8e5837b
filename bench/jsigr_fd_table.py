#!/usr/bin/python3
"""Prints the table of docs/RESULTS.md ("J-SIGR: finite differences against double
backpropagation"): the relative error of J-SIGR's penalty gradient (finite differences of
weight gradients, tests/reference/jsigr_dump) against PyTorch's double backpropagation at
several steps, per model and per build of jsigr_dump.

    /usr/bin/python3 bench/jsigr_fd_table.py [--tier-models DIR] \\
        --dump LABEL=PATH [--dump LABEL=PATH ...] [NAME=WEIGHTS ...]

--tier-models DIR trains the reference tier's two models into DIR (a SmallCNN trained by
PyTorch, and the same fine-tuned by advtrain's PGD-AT; needs build/advtrain) and adds them as
rows. The batch, projections and penalty weights are the tier's (first 16 Fashion-MNIST test
images, seed 7, jacobian-weight 0.01, selective-weight 1). Needs python3-torch."""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import run_reference as rr  # noqa: E402
import torch  # noqa: E402

STEPS = ("1e-1", "3e-2", "1e-2", "3e-3", "1e-3", "3e-4", "1e-4", "3e-5", "1e-5", "3e-6", "1e-6")
DATA = "/usr/share/datasets/fashion-mnist"

ap = argparse.ArgumentParser()
ap.add_argument("--dump", action="append", required=True, help="LABEL=PATH of a jsigr_dump")
ap.add_argument("--tier-models")
ap.add_argument("--advtrain", default=os.path.join(HERE, "..", "build", "advtrain"))
ap.add_argument("models", nargs="*", help="NAME=WEIGHTS (a SmallCNN state_dict or checkpoint)")
a = ap.parse_args()
torch.set_num_threads(2)
models = [m.split("=", 1) for m in a.models]
if a.tier_models:
    os.makedirs(a.tier_models, exist_ok=True)
    trained = rr.trained_smallcnn(DATA)
    models += [(f"tier {label}", w) for label, w in
               rr.jsigr_models(a.advtrain, a.tier_models, DATA, trained)]
x, y = rr.fashion_test(DATA, 16)
print("| model | shifted pass | " + " | ".join(STEPS) + " |")
print("|---|---|" + "---|" * len(STEPS))
with tempfile.TemporaryDirectory() as tmp:
    for name, weights in models:
        for label, dump in (d.split("=", 1) for d in a.dump):
            errors = rr.jsigr_errors(dump, weights, x, y, STEPS, tmp)
            print(f"| {name} | {label} | " + " | ".join(f"{errors[s]:.1e}" for s in STEPS) + " |",
                  flush=True)
