#!/usr/bin/python3
"""The ONNX reference tier: models built with PyTorch (seeded), exported with torch.onnx.export,
imported by advtrain, and compared with PyTorch's own numbers.

For each model: PyTorch's logits (eval mode), mean cross-entropy and its gradient with respect to
the input, and the logits with batch norm on the batch's statistics (train mode, for the models
that keep batch norm), against onnx_dump's on the .onnx file and on the checkpoint
`advtrain import` makes of it (which must give the very same numbers). Every comparison must be
within 1e-4 relative error (max |a - b| over max |b|).

    onnx_reference.py --dump ONNX_DUMP --advtrain ADVTRAIN [--keep DIR]

Exit status 77 (a visible skip) when PyTorch is missing.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the optional tier: a visible skip, never a pass
    print(f"SKIPPED: the ONNX reference tier needs PyTorch and NumPy ({e})")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import PreActResNet18, SmallCNN  # noqa: E402  advtrain's own architectures

TOLERANCE = 1e-4
N = 4


class StridedNet(nn.Module):
    """Strided convolutions and no pooling; x.view(x.size(0), -1), which exports the arithmetic
    on shapes (Shape, Gather, Unsqueeze, Concat, Reshape)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 1, stride=2)
        self.fc = nn.Linear(16 * 2 * 2, 5)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.fc(x.view(x.size(0), -1))


class AvgPoolLeaky(nn.Module):
    """Average pooling and LeakyReLU, a global average pool and a Softplus."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 12, 3)
        self.act = nn.LeakyReLU(0.1)
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 6)

    def forward(self, x):
        x = F.avg_pool2d(self.act(self.conv1(x)), 2)
        x = self.act(self.conv2(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc2(F.softplus(self.fc1(x)))


class Residual(nn.Module):
    """Two branches joined by an addition: 3x3 convolutions with batch norm, and a 1x1 shortcut."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.shortcut = nn.Conv2d(8, 16, 1, stride=2, bias=False)
        self.bn_sc = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        y = F.relu(y + self.bn_sc(self.shortcut(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class Normalised(nn.Module):
    """Input normalisation as Sub and Div by per-channel constants; x.view(-1, features)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8 * 6 * 6, 4)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(x.view(-1, 8 * 6 * 6))


class SiLUNet(nn.Module):
    """SiLU (x * sigmoid(x)), a dropout, and a product with a matrix plus a bias (MatMul, Add)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.drop = nn.Dropout(0.3)
        self.w = nn.Parameter(torch.randn(6 * 4 * 4, 7) * 0.1)
        self.b = nn.Parameter(torch.randn(7) * 0.1)

    def forward(self, x):
        x = self.conv1(x)
        x = x * torch.sigmoid(x)
        x = F.max_pool2d(x, 2)
        x = self.conv2(x)
        x = x * torch.sigmoid(x)
        x = F.max_pool2d(x, 2)
        x = self.drop(torch.flatten(x, 1))
        return x @ self.w + self.b


class ZeroPadded(nn.Module):
    """nn.ZeroPad2d before convolutions (F.pad's pads are computed by integer operators from
    opset 11 on), one of them padded itself as well."""

    def __init__(self):
        super().__init__()
        self.pad1 = nn.ZeroPad2d(2)
        self.conv1 = nn.Conv2d(1, 4, 5)
        self.pad2 = nn.ZeroPad2d(1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 6 * 6, 4)

    def forward(self, x):
        x = F.relu(self.conv1(self.pad1(x)))
        x = F.relu(self.conv2(self.pad2(x)))
        return self.fc(torch.flatten(x, 1))


class Stem(nn.Module):
    """The padding the layers themselves lack: a ResNet stem's max-pool with padding, an average
    pool counting its zero padding, an uneven "same" padding before a strided convolution, and
    a max-pool in ceil_mode."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool2 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.smooth = nn.AvgPool2d(3, stride=1, padding=1)
        self.same = nn.ZeroPad2d((0, 1, 0, 1))
        self.conv2 = nn.Conv2d(8, 8, 2, stride=2)
        self.fc = nn.Linear(8 * 3 * 3, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.conv2(self.same(self.smooth(x))))
        return self.fc(torch.flatten(self.pool2(x), 1))


class Refused(nn.Module):
    """Models the import must refuse, naming the node's operator: never a wrong model."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(2, 2, 3, padding=1, groups=2 if kind == "depthwise" else 1)
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        if self.kind == "reflect":
            x = F.pad(x, (1, 1, 1, 1), mode="reflect")[:, :, 1:-1, 1:-1]
        elif self.kind == "upsample":
            x = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2.0)
        elif self.kind == "avgpool_uncounted":
            x = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        elif self.kind == "avgpool_ceil_mode":
            x = F.interpolate(F.avg_pool2d(x, 3, 2, ceil_mode=True), size=(8, 8))
        x = self.conv(x)
        if self.kind == "einsum":
            x = torch.einsum("nchw->nchw", x)
        return self.fc(torch.flatten(x, 1))


# kind, opset, what the one-line error must name
REFUSED = [
    ("depthwise", 13, "(Conv): grouped convolution"),
    ("reflect", 13, "(Pad): only constant padding"),
    ("upsample", 13, "(Resize)"),
    ("avgpool_uncounted", 13, "(AveragePool): padding not counted"),
    ("avgpool_ceil_mode", 13, "(AveragePool): ceil_mode is supported for MaxPool only"),
    ("einsum", 13, "(Einsum): operator Einsum is not supported"),
]


def randomise_batchnorm(model):
    """Running statistics and affine parameters away from their defaults, so every one counts."""
    g = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)


STATE_DICT = "the module's whole state_dict"
RESIDUAL_BN_NAMES = {f"{b}.{t}" for b in ("bn0", "bn1", "bn2", "bn_sc")
                     for t in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}

# name, constructor, input shape, opset, export keeps batch norm (TrainingMode.PRESERVE), and
# tensors the imported checkpoint must hold (the module's state_dict names), or must not
CASES = [
    ("smallcnn", SmallCNN, (1, 28, 28), 13, False, STATE_DICT, set()),
    ("preact_resnet18", PreActResNet18, (3, 32, 32), 14, True, STATE_DICT, set()),
    ("strided", StridedNet, (3, 16, 16), 9, False, {"conv3.weight", "fc.bias"}, set()),
    ("strided_unfolded", StridedNet, (3, 16, 16), 15, True, {"conv3.weight", "fc.bias"}, set()),
    ("avgpool_leaky", AvgPoolLeaky, (3, 12, 12), 17, False, {"fc2.weight"}, set()),
    ("residual_folded", Residual, (3, 8, 8), 13, False, {"fc.weight"}, RESIDUAL_BN_NAMES),
    ("residual_bn", Residual, (3, 8, 8), 13, True, RESIDUAL_BN_NAMES | {"shortcut.weight"}, set()),
    ("normalised", Normalised, (3, 14, 14), 11, False, {"conv.weight", "fc.weight"}, set()),
    ("silu", SiLUNet, (1, 16, 16), 14, False, {"conv1.weight", "conv2.bias"}, set()),
    ("stem", Stem, (3, 19, 19), 13, False, {"conv2.weight", "fc.weight"}, {"bn1.weight"}),
    ("stem_bn", Stem, (3, 19, 19), 17, True, STATE_DICT, set()),
    ("zero_padded", ZeroPadded, (1, 10, 10), 13, False, STATE_DICT, set()),
    ("zero_padded_unfolded", ZeroPadded, (1, 10, 10), 15, True, STATE_DICT, set()),
    ("zero_padded_opset9", ZeroPadded, (1, 10, 10), 9, False, STATE_DICT, set()),
]


def tensor_names(path):
    """The tensors of a safetensors file: its JSON header after the 8-byte length."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return set(header) - {"__metadata__"}


def export(model, shape, opset, keep_bn, path):
    x = torch.zeros(1, *shape)
    kwargs = dict(opset_version=opset, input_names=["x"], output_names=["logits"],
                  dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    if keep_bn:
        kwargs.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    torch.onnx.export(model, x, path, **kwargs)


def relative(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def run_case(name, make, shape, opset, keep_bn, present, absent, tmp, dump, advtrain):
    torch.manual_seed(0)
    model = make()
    randomise_batchnorm(model)
    model.eval()
    onnx_path = os.path.join(tmp, name + ".onnx")
    export(model, shape, opset, keep_bn, onnx_path)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, *shape, generator=g)
    y = torch.randint(0, 4, (N,), generator=g)
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    loss = F.cross_entropy(logits, y)
    (grad,) = torch.autograd.grad(loss, xg)
    model.train()
    with torch.no_grad():
        batch_logits = model(x)
    model.eval()
    want = {"logits": logits.detach().numpy(), "loss": np.array([loss.item()], dtype=np.float32),
            "input_grad": grad.numpy(), "batch_logits": batch_logits.numpy()}
    x_path, y_path = os.path.join(tmp, name + ".x"), os.path.join(tmp, name + ".y")
    x.numpy().astype(np.float32).tofile(x_path)
    y.numpy().astype(np.int32).tofile(y_path)

    ckpt = os.path.join(tmp, name + ".safetensors")
    r = subprocess.run([advtrain, "import", onnx_path, "--out", ckpt], capture_output=True,
                       text=True)
    if r.returncode != 0:
        print(f"FAIL {name}: advtrain import: {r.stderr.strip()}")
        return False
    names = tensor_names(ckpt)
    if present == STATE_DICT:  # under the very names PyTorch (and advtrain's own model) use
        present = set(model.state_dict())
        absent = names - present
    if not present <= names or absent & names:
        print(f"FAIL {name}: the checkpoint lacks {sorted(present - names)} or holds "
              f"{sorted(absent & names)}")
        return False
    outputs = {}
    for label, source in (("onnx", onnx_path), ("checkpoint", ckpt)):
        out = os.path.join(tmp, f"{name}.{label}.out")
        r = subprocess.run([dump, source, x_path, y_path, str(N), out], capture_output=True,
                           text=True)
        if r.returncode != 0:
            print(f"FAIL {name}: onnx_dump {label}: {r.stderr.strip()}")
            return False
        outputs[label] = np.fromfile(out, dtype=np.float32)
    if not np.array_equal(outputs["onnx"], outputs["checkpoint"]):
        print(f"FAIL {name}: the imported checkpoint computes other numbers than the .onnx file")
        return False
    flat = outputs["onnx"]
    ok, errors, at = True, [], 0
    for key in ("logits", "loss", "input_grad", "batch_logits"):
        ref = want[key].astype(np.float64)
        got = flat[at:at + ref.size].reshape(ref.shape).astype(np.float64)
        at += ref.size
        if key == "batch_logits" and not keep_bn:
            continue  # no batch norm in the graph: PyTorch's train mode is another function
        e = relative(got, ref)
        errors.append(f"{key} {e:.1e}")
        ok = ok and e <= TOLERANCE
    print(f"{'ok  ' if ok else 'FAIL'} {name:20s} opset {opset:2d}  " + "  ".join(errors))
    return ok


def run_refused(kind, opset, expected, tmp, advtrain):
    torch.manual_seed(0)
    path = os.path.join(tmp, f"refused_{kind}.onnx")
    export(Refused(kind).eval(), (2, 8, 8), opset, False, path)
    r = subprocess.run([advtrain, "import", path, "--out", path + ".safetensors"],
                       capture_output=True, text=True)
    message = r.stderr.strip()
    ok = r.returncode == 1 and expected in message and path in message and "\n" not in message
    print(f"{'ok  ' if ok else 'FAIL'} refused {kind:15s} {message[message.find('node'):]}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--advtrain", required=True)
    ap.add_argument("--keep")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or tmp
        os.makedirs(where, exist_ok=True)
        results = [run_case(*case, where, args.dump, args.advtrain) for case in CASES]
        results += [run_refused(*case, where, args.advtrain) for case in REFUSED]
    failed = results.count(False)
    print(f"{len(CASES)} ONNX models and {len(REFUSED)} refusals, {failed} failure(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
