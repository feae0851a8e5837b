#!/usr/bin/python3
"""PyTorch twins of advtrain's training recipes, for the accuracy comparison in docs/RESULTS.md.

Each recipe is written from the same definition as advtrain's (src/train/*.c): SmallCNN with the
TRADES initialisation, SGD momentum 0.9, weight decay 5e-4, batch 128, learning rate per
iteration (cosine, or cyclic for fgsm-rs), a held-out validation split whose PGD-10 accuracy picks
the best epoch (early stopping), then clean and PGD-20 (eps 0.1, step 0.01, uniform start) test
accuracy of the chosen weights. Long-running: not part of ctest.

    /usr/bin/python3 recipes_torch.py --method pgd-at --epochs 5 --train-size 20000 --json r.json
"""
import argparse
import gzip
import json
import math
import os
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--method", required=True,
                choices=["standard", "pgd-at", "pgd-at-awp", "trades", "mart", "fgsm-rs", "free-at"])
ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--train-size", type=int, default=0)
ap.add_argument("--val-size", type=int, default=1000)
ap.add_argument("--eps", type=float, default=0.1)
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--replays", type=int, default=4)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--awp-warmup", type=int, default=0, help="pgd-at-awp: first epoch (0-based) with AWP")
ap.add_argument("--json")
a = ap.parse_args()
torch.set_num_threads(2)
torch.manual_seed(a.seed)
EPS, B = a.eps, 128


def idx(name):
    with gzip.open(os.path.join(a.data, name)) as f:
        raw = f.read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


x_all = torch.from_numpy(idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
y_all = torch.from_numpy(idx("train-labels-idx1-ubyte.gz").astype(np.int64))
if a.train_size:
    x_all, y_all = x_all[:a.train_size], y_all[:a.train_size]
perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(a.seed))
val_idx, train_idx = perm[:a.val_size], perm[a.val_size:].sort().values
xv, yv = x_all[val_idx], y_all[val_idx]
x, y = x_all[train_idx], y_all[train_idx]
xt = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
yt = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))


def smallcnn():
    act = nn.ReLU()
    m = nn.Sequential(OrderedDict([
        ("feature_extractor", nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, 32, 3)), ("r1", act), ("conv2", nn.Conv2d(32, 32, 3)), ("r2", act),
            ("p1", nn.MaxPool2d(2)), ("conv3", nn.Conv2d(32, 64, 3)), ("r3", act),
            ("conv4", nn.Conv2d(64, 64, 3)), ("r4", act), ("p2", nn.MaxPool2d(2))]))),
        ("flatten", nn.Flatten()),
        ("classifier", nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(1024, 200)), ("r1", act), ("fc2", nn.Linear(200, 200)), ("r2", act),
            ("fc3", nn.Linear(200, 10))])))]))
    for mod in m.modules():  # the TRADES initialisation, as advtrain's smallcnn
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight)
            nn.init.zeros_(mod.bias)
    nn.init.zeros_(m.classifier.fc3.weight)
    nn.init.zeros_(m.classifier.fc3.bias)
    return m


def project(xa, x0):
    return torch.min(torch.max(xa, x0 - EPS), x0 + EPS).clamp(0, 1)


def pgd(model, x0, y0, steps, alpha, start="uniform", loss="ce", target=None):
    if start == "uniform":
        xa = (x0 + torch.empty_like(x0).uniform_(-EPS, EPS)).clamp(0, 1)
    else:
        xa = (x0 + 0.001 * torch.randn_like(x0)).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        z = model(xa)
        l = F.cross_entropy(z, y0, reduction="sum") if loss == "ce" else \
            F.kl_div(F.log_softmax(z, 1), target, reduction="sum")
        (g,) = torch.autograd.grad(l, xa)
        xa = project(xa.detach() + alpha * g.sign(), x0)
    return xa.detach()


def robust_acc(model, xs, ys, steps, alpha):
    model.eval()
    torch.manual_seed(1)
    correct = 0
    for i in range(0, len(ys), 500):
        xa = pgd(model, xs[i:i + 500], ys[i:i + 500], steps, alpha)
        with torch.no_grad():
            correct += int((model(xa).argmax(1) == ys[i:i + 500]).sum())
    return correct / len(ys)


def clean_acc(model, xs, ys):
    model.eval()
    with torch.no_grad():
        return sum(int((model(xs[i:i + 1000]).argmax(1) == ys[i:i + 1000]).sum())
                   for i in range(0, len(ys), 1000)) / len(ys)


model = smallcnn()
opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
replays = a.replays if a.method == "free-at" else 1
passes = a.epochs // replays
iters = math.ceil(len(y) / B)
total = a.epochs * iters
step = 0
delta = torch.zeros(B, 1, 28, 28)
proxy = smallcnn()
use_val = a.method != "standard" and a.val_size > 0 and a.method != "fgsm-rs"
best, best_state, records = -1.0, None, []
prev_pgd, prev_fgsm, snapshot = -1.0, -1.0, None


def lr_at(it):
    if a.method == "fgsm-rs":  # Wong et al.: np.interp(it + 1, [0, T/2, T], [0, lr, 0])
        t = it + 1
        return a.lr * t / (total / 2) if t <= total / 2 else max(0.0, a.lr * (total - t) / (total / 2))
    return a.lr * 0.5 * (1 + math.cos(math.pi * it / total))


for epoch in range(passes):
    order = torch.randperm(len(y))
    start = time.time()
    for b in range(iters):
        bi = order[b * B:(b + 1) * B]
        xb, yb = x[bi], y[bi]
        for _ in range(replays):
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            m = a.method
            if m in ("pgd-at", "pgd-at-awp"):
                model.train()
                xa = pgd(model, xb, yb, 10, EPS / 4)
                awp_now = m == "pgd-at-awp" and epoch >= a.awp_warmup
                if awp_now:  # Wu et al.: proxy ascent, per-layer relative perturbation
                    proxy.load_state_dict(model.state_dict())
                    proxy.train()
                    popt = torch.optim.SGD(proxy.parameters(), lr=0.01)
                    popt.zero_grad()
                    (-F.cross_entropy(proxy(xa), yb)).backward()
                    popt.step()
                    diffs = {}
                    with torch.no_grad():
                        for (n, p), (_, q) in zip(model.named_parameters(), proxy.named_parameters()):
                            if p.dim() >= 2:
                                d = q - p
                                diffs[n] = 0.01 * d * p.norm() / (d.norm() + 1e-20)
                                p.add_(diffs[n])
                loss = F.cross_entropy(model(xa), yb)
            elif m == "trades":
                model.eval()
                with torch.no_grad():
                    target = F.softmax(model(xb), 1)
                xa = pgd(model, xb, yb, 10, EPS / 4, start="gauss", loss="kl", target=target)
                model.train()
                zc = model(xb)
                loss = F.cross_entropy(zc, yb) + 6.0 * F.kl_div(F.log_softmax(model(xa), 1),
                                                               F.softmax(zc, 1), reduction="batchmean")
            elif m == "mart":
                model.eval()
                xa = pgd(model, xb, yb, 10, EPS / 4, start="gauss")
                model.train()
                zc, za = model(xb), model(xa)
                q = F.softmax(za, 1)
                top2 = q.argsort(1)[:, -2:]
                new_y = torch.where(top2[:, -1] == yb, top2[:, -2], top2[:, -1])
                loss_adv = F.cross_entropy(za, yb) + F.nll_loss(torch.log(1.0001 - q + 1e-12), new_y)
                p = F.softmax(zc, 1)
                kl = (p * (torch.log(p) - torch.log(q + 1e-12))).sum(1)
                loss = loss_adv + 6.0 * (kl * (1.0000001 - p.gather(1, yb[:, None]).squeeze(1))).mean()
            elif m == "fgsm-rs":
                model.train()
                d = torch.empty_like(xb).uniform_(-EPS, EPS)
                xa = (xb + d).clamp(0, 1).requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xa), yb), xa)
                xa = project(xa.detach() + 1.25 * EPS * g.sign(), xb)
                loss = F.cross_entropy(model(xa), yb)
            elif m == "free-at":
                model.train()
                n = len(yb)
                xa = (xb + delta[:n]).clamp(0, 1).requires_grad_(True)
                loss = F.cross_entropy(model(xa), yb)
            else:
                model.train()
                loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            if m == "free-at":
                gx, = torch.autograd.grad(loss, xa, retain_graph=True)
                loss.backward()
                delta[:n] = (delta[:n] + EPS * gx.sign()).clamp(-EPS, EPS)
            else:
                loss.backward()
            opt.step()
            if m == "pgd-at-awp" and awp_now:
                with torch.no_grad():
                    for n_, p in model.named_parameters():
                        if n_ in diffs:
                            p.sub_(diffs[n_])
            step += 1
    seconds = time.time() - start
    rec = dict(epoch=epoch + 1, seconds=seconds)
    if use_val:
        rec["val_pgd10"] = robust_acc(model, xv, yv, 10, EPS / 4)
        if rec["val_pgd10"] > best:
            best, best_state = rec["val_pgd10"], {k: v.clone() for k, v in model.state_dict().items()}
    if a.method == "fgsm-rs":  # Wong et al.'s check on a fixed training batch
        pgd_acc = robust_acc(model, x[:512], y[:512], 10, EPS / 4)
        rec["check_pgd"] = pgd_acc
        if prev_pgd >= 0 and pgd_acc < prev_pgd - 0.2:
            model.load_state_dict(snapshot)
            rec["rolled_back"] = True
            records.append(rec)
            break
        prev_pgd, snapshot = pgd_acc, {k: v.clone() for k, v in model.state_dict().items()}
    records.append(rec)
    print(json.dumps(rec), flush=True)
if best_state is not None:
    model.load_state_dict(best_state)
result = dict(method=a.method, epochs=a.epochs, train_size=len(y), clean=clean_acc(model, xt, yt),
              pgd20=robust_acc(model, xt, yt, 20, EPS / 10), epochs_log=records,
              seconds_per_epoch=sorted(r["seconds"] for r in records)[len(records) // 2])
print(json.dumps(result))
if a.json:
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1)
