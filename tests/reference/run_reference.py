#!/usr/bin/python3
"""Reference tier: advtrain against PyTorch on the same weights and inputs.

For smallcnn, preact-resnet18 (with input normalisation) and generator-critic (the layers those
do not use: batch norm without affine parameters, PReLU, tanh), in train and eval batch-norm
modes: logits, mean cross-entropy loss, every weight gradient, the input gradient and the running
statistics after the forward must match PyTorch's with relative error < 1e-4 (max |a - b| over
max |b|, per tensor).

Adam and AdamW take three steps from the same weights and gradients as torch.optim.Adam and
torch.optim.AdamW, and the weight changes must agree with relative error < 1e-4.

FGSM and PGD from the clean point (eval mode, cross-entropy) must give the same adversarial
examples as a PyTorch implementation, pixel for pixel, except at pixels where the input gradient
was within rounding of 0 at some step in PyTorch (its sign is then a coin toss).

A ReLU's derivative jumps at 0, and a wide network has millions of units: a few of them sit
within float32 rounding of 0, where advtrain and PyTorch (which sum in different orders) can land
on opposite sides and so route the gradient differently. The comparison therefore runs PyTorch's
ReLUs with advtrain's active/inactive state of every unit (the function is the same up to those
rounding-level values), and checks that every unit where the two states differ is such a case:
|PyTorch's pre-activation| below 1e-5 of the layer's largest. Then `advtrain eval` on a PyTorch state_dict saved as safetensors must give
the accuracy PyTorch computes on the same data.

With --jsigr-dump (the test suite passes it): J-SIGR's weight gradient (finite-difference
double backpropagation through a pass following x's activation pattern, in float32) against
PyTorch's exact double backpropagation (create_graph=True, in float64) on the same SmallCNN
weights, batch and random projections, for a standard-trained model and a PGD-AT fine-tuned one;
the bar is 1e-2 relative error (L2 norm of the difference of the penalties' gradients over the L2
norm of PyTorch's) at the preset step, and the table of error against step is printed.

Exit status: 0 pass, 1 mismatch, 77 skipped (python3-torch is not installed; ctest shows the test
as "Skipped", never as passed).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy  # noqa: F401  (torch's .numpy() needs it)
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"reference tier skipped: {e} (install python3-torch)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import safetensors_io  # noqa: E402
from torch_models import GeneratorCritic, Normalized, PreActResNet18, SmallCNN  # noqa: E402

CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.2471, 0.2435, 0.2616]
TOL = 1e-4
failures = []


def rel_err(a, b):
    a, b = a.double(), b.double()
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def check(label, a, b):
    if tuple(a.shape) != tuple(b.shape):
        failures.append(f"{label}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
        return 0.0
    e = rel_err(a, b)
    if not e < TOL:
        failures.append(f"{label}: relative error {e:.3g}")
    return e


class MaskedReLU(torch.autograd.Function):
    """ReLU whose active units are given: forward x * mask, backward grad * mask."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class ReluStates:
    """Replaces F.relu while active: the k-th call uses advtrain's k-th ReLU state and records
    the units where PyTorch's own state differs."""

    def __init__(self, outputs, label):
        self.outputs, self.label, self.calls, self.flipped = outputs, label, 0, 0

    def __enter__(self):
        self.saved = F.relu
        F.relu = self.relu
        return self

    def __exit__(self, *exc):
        F.relu = self.saved

    def relu(self, x, inplace=False):
        ours = self.outputs["relu.%03d" % self.calls].reshape(x.shape)
        self.calls += 1
        mask = (ours > 0).to(x.dtype)
        theirs = (x.detach() > 0).to(x.dtype)
        differ = mask != theirs
        if differ.any():
            self.flipped += int(differ.sum())
            worst = x.detach()[differ].abs().max().item()
            scale = x.detach().abs().max().item()
            if worst > 1e-5 * scale:
                failures.append(f"{self.label}: ReLU {self.calls - 1} differs at a unit whose "
                                f"pre-activation is {worst:.3g} (layer max {scale:.3g})")
        return MaskedReLU.apply(x, mask)


def randomize_buffers(model, gen):
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(0.2 * torch.randn(buf.shape, generator=gen))
        elif name.endswith("running_var"):
            buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))


def compare(dump, tmp, arch, net, x, y, mode, norm):
    """One model in one BN mode: advtrain's dump against torch autograd."""
    core = net.model if isinstance(net, Normalized) else net
    weights = os.path.join(tmp, f"{arch}.safetensors")
    before = {k: v.clone() for k, v in core.state_dict().items()}
    safetensors_io.save(weights, before)
    inp = os.path.join(tmp, "input.safetensors")
    safetensors_io.save(inp, {"x": x, "y": y})
    out = os.path.join(tmp, "out.safetensors")
    cmd = [dump, "--model", arch, "--weights", weights, "--input", inp, "--bn", mode, "--out", out]
    if norm:
        cmd += ["--mean", ",".join(map(str, CIFAR_MEAN)), "--std", ",".join(map(str, CIFAR_STD))]
    subprocess.run(cmd, check=True)
    ours = safetensors_io.load(out)

    net.train(mode == "train")
    net.zero_grad()
    xg = x.clone().requires_grad_(True)
    with ReluStates(ours, f"{arch}/{mode}") as states:
        logits = net(xg)
        loss = F.cross_entropy(logits, y)
    loss.backward()
    if states.calls != sum(1 for k in ours if k.startswith("relu.")):
        failures.append(f"{arch}/{mode}: PyTorch ran {states.calls} ReLUs, advtrain dumped "
                        f"{sum(1 for k in ours if k.startswith('relu.'))}")
    worst = {}
    worst["logits"] = check(f"{arch}/{mode} logits", ours["logits"], logits.detach())
    worst["loss"] = check(f"{arch}/{mode} loss", ours["loss"], loss.detach().reshape(1))
    worst["input_grad"] = check(f"{arch}/{mode} input gradient", ours["input_grad"], xg.grad)
    gmax = 0.0
    for name, p in core.named_parameters():
        gmax = max(gmax, check(f"{arch}/{mode} grad {name}", ours["grad." + name], p.grad))
    worst["weight_grads"] = gmax
    bmax = 0.0
    for name, b in core.named_buffers():
        if b.dtype == torch.float32:
            bmax = max(bmax, check(f"{arch}/{mode} {name} after forward", ours["after." + name], b))
    worst["running_stats"] = bmax
    core.load_state_dict(before)  # undo the running-statistics update of the train forward
    print(f"  {arch:16s} bn {mode:5s} " + "  ".join(f"{k} {v:.1e}" for k, v in worst.items())
          + f"  (ReLU units at a kink: {states.flipped})")


def maxpool_near_ties(net, x):
    """Per image: whether a 2x2 max-pool window has its two largest (positive) inputs within
    1e-5 of the layer's scale, where float rounding decides which one the gradient goes to."""
    inputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach()))
             for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    tied = torch.zeros(x.shape[0], dtype=torch.bool)
    for a in inputs:
        n, c, h, w = a.shape
        top = a[:, :, :h // 2 * 2, :w // 2 * 2].unfold(2, 2, 2).unfold(3, 2, 2).reshape(
            n, c, h // 2, w // 2, 4).topk(2, -1).values
        scale = a.flatten(1).abs().max(1).values.view(-1, 1, 1, 1)
        near = ((top[..., 0] - top[..., 1]) <= 1e-5 * scale) & (top[..., 0] > 0)
        tied |= near.flatten(1).any(1)
    return tied


def compare_attacks(dump, tmp, net, x, y):
    """FGSM and PGD from the clean point, step by step: advtrain's k-th iterate (the attack run
    with k steps) against one PyTorch step taken from advtrain's (k-1)-th iterate, with PyTorch's
    ReLUs in advtrain's states at that point (see ReluStates). A pixel may differ only where the
    gradient sign is ambiguous: PyTorch's gradient within rounding of 0 there, or the image has a
    max-pool window whose two largest inputs are within rounding of each other (the gradient's
    route through it is then a coin toss)."""
    weights = os.path.join(tmp, "attack_weights.safetensors")
    safetensors_io.save(weights, net.state_dict())
    inp = os.path.join(tmp, "attack_input.safetensors")
    out = os.path.join(tmp, "attack_out.safetensors")
    net.eval()
    for name, eps, steps, alpha in (("fgsm", 0.1, 1, 0.1), ("pgd", 0.1, 10, 0.01)):
        previous, differ_total, ambiguous_total = x.clone(), 0, 0
        for k in range(1, steps + 1):
            safetensors_io.save(inp, {"x": x, "y": y})
            subprocess.run([dump, "--model", "smallcnn", "--weights", weights, "--input", inp,
                            "--bn", "eval", "--out", out, "--attack", name, "--eps", str(eps),
                            "--steps", str(k), "--step-size", str(alpha)], check=True)
            ours_k = safetensors_io.load(out)["x_adv"]
            # advtrain's ReLU states at its previous iterate
            safetensors_io.save(inp, {"x": previous, "y": y})
            subprocess.run([dump, "--model", "smallcnn", "--weights", weights, "--input", inp,
                            "--bn", "eval", "--out", out], check=True)
            states = safetensors_io.load(out)
            xg = previous.clone().requires_grad_(True)
            with ReluStates(states, f"{name} step {k}"):
                loss = F.cross_entropy(net(xg), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, xg)
            theirs = torch.min(torch.max(previous + alpha * g.sign(), x - eps), x + eps).clamp(0.0, 1.0)
            scale = g.abs().flatten(1).max(1).values.view(-1, 1, 1, 1)
            ambiguous = g.abs() <= 1e-5 * scale
            ambiguous |= maxpool_near_ties(net, previous).view(-1, 1, 1, 1).expand_as(ambiguous)
            differ = ours_k != theirs
            differ_total += int(differ.sum())
            ambiguous_total += int((differ & ambiguous).sum())
            unexplained = int((differ & ~ambiguous).sum())
            if unexplained:
                failures.append(f"{name} step {k}: {unexplained} pixels differ where PyTorch's "
                                f"gradient sign was clear")
            previous = ours_k
        print(f"  {name:4s} eps {eps}, {steps} step(s): {differ_total} pixel updates of "
              f"{steps * x.numel()} differ from PyTorch's, {ambiguous_total} of them where the "
              f"gradient sign was ambiguous")


def compare_optimizers(dump, tmp, net, x, y):
    """Adam and AdamW against torch.optim.Adam and torch.optim.AdamW (their defaults, weight decay
    0.05): three steps from the same weights with the same gradients (advtrain's, scaled by 1, -0.5
    and 2) at learning rates 1e-3, 5e-4 and 2e-3 rounded to float32 as advtrain takes them. The
    change of every weight tensor must agree, relative to its largest change."""
    weights = os.path.join(tmp, "optimizer_weights.safetensors")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    safetensors_io.save(weights, before)
    inp = os.path.join(tmp, "optimizer_input.safetensors")
    out = os.path.join(tmp, "optimizer_out.safetensors")
    safetensors_io.save(inp, {"x": x, "y": y})
    lrs = [torch.tensor(lr, dtype=torch.float32).item() for lr in (1e-3, 5e-4, 2e-3)]
    for kind, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        subprocess.run([dump, "--model", "smallcnn", "--weights", weights, "--input", inp, "--bn",
                        "train", "--out", out, "--optimizer", kind, "--weight-decay", "0.05"],
                       check=True)
        ours = safetensors_io.load(out)
        params = {name: p.detach().clone() for name, p in net.named_parameters()}
        opt = cls(params.values(), lr=lrs[0], weight_decay=0.05)
        for scale, lr in zip((1.0, -0.5, 2.0), lrs):
            opt.param_groups[0]["lr"] = lr
            for name, p in params.items():
                p.grad = ours["grad." + name] * scale
            opt.step()
        worst = 0.0
        for name, p in params.items():
            worst = max(worst, check(f"{kind} update of {name}", ours["stepped." + name] - before[name],
                                     p - before[name]))
        print(f"  {kind:5s} 3 steps: weight updates agree with torch.optim to {worst:.1e}")


def round_trip(advtrain, tmp):
    """PyTorch -> advtrain -> PyTorch: a state_dict saved by torch.save goes through
    scripts/convert_pt.py, advtrain import and advtrain export and back, and must come out with
    the same names and bit-identical tensors, so the reloaded model gives identical logits."""
    convert = [sys.executable, os.path.join(HERE, "..", "..", "scripts", "convert_pt.py")]
    torch.manual_seed(5)
    cases = [("smallcnn", SmallCNN(), [], torch.rand(4, 1, 28, 28)),
             ("preact-resnet18", Normalized(PreActResNet18(), CIFAR_MEAN, CIFAR_STD),
              ["--wrap-normalization"], torch.rand(4, 3, 32, 32))]
    for arch, net, export_flags, x in cases:
        randomize_buffers(net, torch.Generator().manual_seed(6))
        net.eval()
        pt, st, ckpt = (os.path.join(tmp, f"{arch}.{ext}") for ext in ("pt", "in.safetensors", "ckpt"))
        st2, pt2 = os.path.join(tmp, f"{arch}.out.safetensors"), os.path.join(tmp, f"{arch}.out.pt")
        torch.save(net.state_dict(), pt)
        subprocess.run(convert + ["to-safetensors", pt, st], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([advtrain, "import", "--model", arch, "--weights", st, "--out", ckpt],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([advtrain, "export", "--checkpoint", ckpt, "--out", st2] + export_flags,
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(convert + ["to-pt", st2, pt2], check=True, stdout=subprocess.DEVNULL)
        back = torch.load(pt2)
        before = net.state_dict()
        if set(back) != set(before):
            failures.append(f"{arch} round trip: names differ: {sorted(set(back) ^ set(before))[:4]}")
            continue
        changed = [k for k in before if not torch.equal(before[k], back[k])]
        if changed:
            failures.append(f"{arch} round trip: tensors changed: {changed[:4]}")
        with torch.no_grad():
            logits = net(x)
            net.load_state_dict(back)
            same = torch.equal(logits, net(x))
        if not same:
            failures.append(f"{arch} round trip: logits differ")
        print(f"  round trip PyTorch -> advtrain -> PyTorch, {arch}: {len(before)} tensors "
              f"{'bit-identical' if not changed else 'CHANGED'}, logits {'identical' if same else 'DIFFER'}")
    # a state_dict of another architecture is refused, naming what is missing
    bad = subprocess.run([advtrain, "import", "--model", "preact-resnet18", "--weights",
                          os.path.join(tmp, "smallcnn.in.safetensors"), "--out",
                          os.path.join(tmp, "bad.ckpt")], capture_output=True, text=True)
    if bad.returncode != 1 or "conv1.weight" not in bad.stderr:
        failures.append(f"importing a smallcnn state_dict as preact-resnet18: exit {bad.returncode}, "
                        f"{bad.stderr.strip()}")


def fashion_test(data_dir, n):
    """The first n Fashion-MNIST test images ([n, 1, 28, 28] in [0, 1]) and labels (int64)."""
    import gzip
    import numpy as np
    with gzip.open(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16, count=n * 784).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8, count=n)
    return (torch.tensor(images.copy(), dtype=torch.float32) / 255,
            torch.tensor(labels.copy(), dtype=torch.int64))


def trained_smallcnn(data_dir):
    """A SmallCNN trained for two epochs on the first 2000 training images, so that it is a real
    classifier (about two thirds of the test images right)."""
    import gzip
    import numpy as np
    torch.manual_seed(3)
    net = SmallCNN()
    with gzip.open(os.path.join(data_dir, "train-images-idx3-ubyte.gz")) as f:
        train_x = np.frombuffer(f.read(), np.uint8, offset=16, count=2000 * 784).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")) as f:
        train_y = np.frombuffer(f.read(), np.uint8, offset=8, count=2000)
    tx = torch.from_numpy(train_x.astype(np.float32) / 255)
    ty = torch.from_numpy(train_y.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        for i in range(0, 2000, 50):
            opt.zero_grad()
            F.cross_entropy(net(tx[i:i + 50]), ty[i:i + 50]).backward()
            opt.step()
    return net


def eval_cli(advtrain, tmp, data_dir, net):
    """advtrain eval on a weights-only PyTorch state_dict (the trained `net`): same accuracy as
    PyTorch."""
    import gzip
    import numpy as np
    with gzip.open(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    n = 1000
    x = torch.from_numpy(images[:n].astype(np.float32) / 255)
    y = torch.from_numpy(labels[:n].astype(np.int64))
    net.eval()
    with torch.no_grad():
        logits = net(x)
    top2 = logits.topk(2, 1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-4  # predictions float rounding cannot flip
    torch_correct = (logits.argmax(1) == y)
    weights = os.path.join(tmp, "torch_state_dict.safetensors")
    safetensors_io.save(weights, net.state_dict())
    report = os.path.join(tmp, "eval.json")
    subprocess.run([advtrain, "eval", "--model", "smallcnn", "--checkpoint", weights, "--data",
                    "fashion-mnist", "--data-dir", data_dir, "--n", str(n), "--json", report],
                   check=True, stdout=subprocess.DEVNULL)
    with open(report) as f:
        ours = json.load(f)["clean"]["correct"]
    lo = int((torch_correct & clear).sum())
    hi = lo + int((~clear).sum())
    print(f"  advtrain eval on a PyTorch state_dict: {ours}/{n} correct, PyTorch {int(torch_correct.sum())}/{n}")
    if not lo <= ours <= hi:
        failures.append(f"advtrain eval counted {ours} correct, PyTorch {int(torch_correct.sum())}")


JSIGR_TOL = 1e-2
JSIGR_STEPS = ("1e-2", "3e-3", "1e-3", "3e-4", "1e-4", "3e-5", "1e-5", "1e-6")


def jsigr_preset_step(advtrain):
    """jsigr's preset fd-step, as the tool's help prints it."""
    import re
    text = subprocess.run([advtrain, "train", "--method", "jsigr", "--help"], capture_output=True,
                          text=True).stdout
    m = re.search(r"--fd-step .*preset (\S+)", text)
    return m.group(1) if m else None


def jsigr_errors(dump, weights, x, y, steps, tmp, lj=0.01, ls=1.0, seed=7):
    """Relative error (L2 norm of the difference over the L2 norm of the exact one) of J-SIGR's
    penalty gradient at each finite-difference step, against double backprop in float64 on the
    same weights, batch and projections."""
    net64 = SmallCNN().double()
    saved = safetensors_io.load(weights)
    net64.load_state_dict({k: saved[k].double() for k in net64.state_dict()})
    params = [p for _, p in net64.named_parameters()]
    names = [name for name, _ in net64.named_parameters()]
    inp = os.path.join(tmp, "jsigr-input.safetensors")
    safetensors_io.save(inp, {"x": x, "y": y})
    exact, errors = None, {}
    for step in steps:
        out = os.path.join(tmp, "jsigr-out.safetensors")
        subprocess.run([dump, "--weights", weights, "--input", inp, "--out", out, "--fd-step", step,
                        "--jacobian-weight", str(lj), "--selective-weight", str(ls), "--seed",
                        str(seed)], check=True)
        ours = safetensors_io.load(out)
        if exact is None:  # the projections are the same at every step (one seed)
            x64 = x.double().requires_grad_(True)
            z = net64(x64)
            n, k = z.shape
            g = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), x64, create_graph=True)[0]
            jv = torch.autograd.grad((z * ours["v"].double()).sum(), x64, create_graph=True)[0]
            penalty = ls * g.pow(2).sum() / n + lj * k * jv.pow(2).sum() / n
            grads = torch.autograd.grad(penalty, params, allow_unused=True)  # fc3.bias: unused
            exact = torch.cat([(e if e is not None else torch.zeros_like(p)).flatten()
                               for e, p in zip(grads, params)])
        ours_flat = torch.cat([ours["penalty_grad." + name].double().flatten() for name in names])
        errors[step] = ((ours_flat - exact).norm() / exact.norm()).item()
    return errors


def jsigr_models(advtrain, tmp, data_dir, standard):
    """The SmallCNNs J-SIGR is measured on: `standard` (a state_dict trained with the
    cross-entropy), and the same fine-tuned by PGD-AT for one short epoch (an adversarially
    trained model has smaller, smoother input gradients)."""
    weights = os.path.join(tmp, "jsigr-standard.safetensors")
    safetensors_io.save(weights, standard.state_dict())
    run = os.path.join(tmp, "jsigr-pgd-at")
    subprocess.run([advtrain, "train", "--data", "fashion-mnist", "--data-dir", data_dir,
                    "--model", "smallcnn", "--init", weights, "--method", "pgd-at", "--eps", "0.1",
                    "--steps", "3", "--epochs", "1", "--train-size", "1000", "--batch-size", "50",
                    "--optimizer", "adam", "--lr", "1e-3", "--weight-decay", "0", "--val-size",
                    "0", "--no-early-stop", "--no-final-pgd", "--seed", "0", "--quiet", "--out", run],
                   check=True, stdout=subprocess.DEVNULL)
    return [("standard", weights), ("PGD-AT", os.path.join(run, "last.safetensors"))]


def compare_jsigr(dump, advtrain, tmp, data_dir, standard):
    """J-SIGR's penalty gradient (finite differences of weight gradients) against double
    backprop at several steps, on two trained SmallCNNs and the first 16 test images (a random
    network on noise has input gradients too small to measure anything but rounding)."""
    preset = jsigr_preset_step(advtrain)
    if preset is None:
        failures.append("jsigr: no preset fd-step in 'advtrain train --method jsigr --help'")
        return
    steps = JSIGR_STEPS if preset in JSIGR_STEPS else JSIGR_STEPS + (preset,)
    x, y = fashion_test(data_dir, 16)
    print("  jsigr: relative error of the penalty gradient (finite differences vs double backprop)")
    print("    fd-step " + "".join(f"{s:>9s}" for s in steps))
    for label, weights in jsigr_models(advtrain, tmp, data_dir, standard):
        errors = jsigr_errors(dump, weights, x, y, steps, tmp)
        print(f"    {label:8s}" + "".join(f"{errors[s]:9.1e}" for s in steps))
        if not errors[preset] < JSIGR_TOL:
            failures.append(f"jsigr ({label}): relative error {errors[preset]:.3g} at the preset "
                            f"step {preset}")
    print(f"    (preset {preset}; the bar there is {JSIGR_TOL:g})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--advtrain", required=True)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--jsigr-dump")
    a = ap.parse_args()
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(1234)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        small = SmallCNN()
        x1 = torch.rand(16, 1, 28, 28, generator=gen)
        y1 = torch.randint(0, 10, (16,), generator=gen)
        torch.manual_seed(1)
        preact = Normalized(PreActResNet18(), CIFAR_MEAN, CIFAR_STD)
        randomize_buffers(preact.model, gen)
        with torch.no_grad():  # BN affine parameters away from (1, 0), so their gradients matter
            for name, p in preact.model.named_parameters():
                if ".bn" in name or name.startswith("bn"):
                    p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
        x2 = torch.rand(8, 3, 32, 32, generator=gen)
        y2 = torch.randint(0, 10, (8,), generator=gen)
        torch.manual_seed(2)
        aux = GeneratorCritic(channels=3, size=12)
        randomize_buffers(aux, gen)
        with torch.no_grad():  # slopes of either sign, away from PyTorch's initial 0.25
            for name, p in aux.named_parameters():
                if name in ("gen.2.weight", "critic.1.weight"):
                    p.copy_(0.25 + 0.5 * torch.randn(p.shape, generator=gen))
        x3 = torch.rand(8, 3, 12, 12, generator=gen)
        y3 = torch.randint(0, 10, (8,), generator=gen)
        for mode in ("train", "eval"):
            compare(a.dump, tmp, "smallcnn", small, x1, y1, mode, False)
            compare(a.dump, tmp, "preact-resnet18", preact, x2, y2, mode, True)
            compare(a.dump, tmp, "generator-critic", aux, x3, y3, mode, False)
        compare_attacks(a.dump, tmp, small, x1, y1)
        compare_optimizers(a.dump, tmp, small, x1, y1)
        round_trip(a.advtrain, tmp)
        path = os.path.join(a.data_dir, "t10k-images-idx3-ubyte.gz")
        if not os.path.exists(path):
            failures.append(f"{path} missing (install dataset-fashion-mnist)")
        else:
            trained = trained_smallcnn(a.data_dir)
            eval_cli(a.advtrain, tmp, a.data_dir, trained)
            if a.jsigr_dump:
                compare_jsigr(a.jsigr_dump, a.advtrain, tmp, a.data_dir, trained)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("reference tier: all comparisons within relative error 1e-4"
          + (f" (J-SIGR's finite differences: {JSIGR_TOL:g})" if a.jsigr_dump else ""))


if __name__ == "__main__":
    main()
