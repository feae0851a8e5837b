#!/usr/bin/python3
"""A PyTorch-trained model attacked from its ONNX export and from its state_dict: the same
PGD-20 result, point for point.

PyTorch trains advtrain's SmallCNN (tests/reference/torch_models.py; seeded, Adam, 2 epochs on
the first 2,000 Fashion-MNIST training images), then writes it twice: torch.onnx.export (eval
mode) and its state_dict as safetensors. `advtrain attack` runs PGD-20 (L-inf 0.1, random start,
seed 0) on the first N test points against each; the adversarial images, labels and per-point
predictions must be bit-identical, and both evals must count the same robust points.

    onnx_pgd_reference.py --advtrain ADVTRAIN [--data DIR] [--n N] [--keep DIR]

Exit status 77 (a visible skip) when PyTorch or NumPy is missing.
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the optional tier: a visible skip, never a pass
    print(f"SKIPPED: the ONNX PGD reference needs PyTorch and NumPy ({e})")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import SmallCNN  # noqa: E402  advtrain's own architecture


def idx(path, header):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read()[header:], dtype=np.uint8)


def write_safetensors(path, tensors):
    """A state_dict as safetensors: an 8-byte header length, the JSON header, the raw data."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    header.pop("__metadata__", None)
    return {name: data[h["data_offsets"][0]:h["data_offsets"][1]] for name, h in header.items()}


def train(data_dir):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"), 16).reshape(-1, 1, 28, 28)[:2000]
    y = idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), 8)[:2000]
    x = torch.tensor(x, dtype=torch.float32) / 255
    y = torch.tensor(y, dtype=torch.int64)
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            b = order[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    return model.eval()


def attack(advtrain, checkpoint, extra, data_dir, n, out):
    cmd = [advtrain, "attack", "--checkpoint", checkpoint, *extra, "--data-dir", data_dir,
           "--n", str(n), "--attack", "pgd", "--eps", "0.1", "--steps", "20", "--seed", "0",
           "--out", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}: {r.stdout}{r.stderr}")
    return read_safetensors(out)


def robust_count(advtrain, checkpoint, extra, data_dir, n, out):
    cmd = [advtrain, "eval", "--checkpoint", checkpoint, *extra, "--data-dir", data_dir,
           "--n", str(n), "--attack", "pgd", "--eps", "0.1", "--steps", "20", "--seed", "0",
           "--quiet", "--json", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}: {r.stdout}{r.stderr}")
    with open(out) as f:
        report = json.load(f)
    return report["clean"]["correct"], report["robust"]["correct"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--advtrain", required=True)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--keep")
    args = ap.parse_args()
    tmp = args.keep or tempfile.mkdtemp()
    os.makedirs(tmp, exist_ok=True)
    model = train(args.data)
    onnx_path = os.path.join(tmp, "smallcnn.onnx")
    sd_path = os.path.join(tmp, "smallcnn.safetensors")
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), onnx_path, opset_version=13,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    write_safetensors(sd_path, model.state_dict())
    sources = {"onnx": (onnx_path, []), "state_dict": (sd_path, ["--model", "smallcnn"])}
    adv = {k: attack(args.advtrain, p, e, args.data, args.n, os.path.join(tmp, k + "-adv.safetensors"))
           for k, (p, e) in sources.items()}
    counts = {k: robust_count(args.advtrain, p, e, args.data, args.n, os.path.join(tmp, k + ".json"))
              for k, (p, e) in sources.items()}
    failures = 0
    if adv["onnx"].keys() != adv["state_dict"].keys():
        print(f"FAIL: the attack files hold other tensors: {sorted(adv['onnx'])} vs {sorted(adv['state_dict'])}")
        failures += 1
    for name in sorted(adv["onnx"].keys() & adv["state_dict"].keys()):
        same = adv["onnx"][name] == adv["state_dict"][name]
        print(f"{name}: {'bit-identical' if same else 'DIFFERENT'} ({len(adv['onnx'][name])} bytes)")
        failures += not same
    clean, robust = counts["onnx"]
    print(f"PGD-20 on {args.n} points: from ONNX {clean} clean / {robust} robust, "
          f"from the state_dict {counts['state_dict'][0]} / {counts['state_dict'][1]}")
    if counts["onnx"] != counts["state_dict"]:
        print("FAIL: the two evaluations count other points")
        failures += 1
    if robust == clean or robust == 0:  # an attack that changes nothing proves nothing
        print(f"FAIL: PGD-20 should break some points and not all ({robust} of {clean} robust)")
        failures += 1
    print("onnx_pgd_reference:", "FAILED" if failures else "passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
