#!/usr/bin/python3
"""PyTorch twin of advtrain-bench: the same workloads and rows, timed the same way.

Run with Debian's /usr/bin/python3 (python3-torch). Usage mirrors advtrain-bench:
    torch_workloads.py --workload w1|w2 [--modes abcde] [--threads 2] [--batch 128]
                       [--repeats-scale X] [--json FILE]
W1: TRADES SmallCNN (no dropout) on 1x28x28.  W2: PreAct ResNet-18 (Rice et al.) on 3x32x32 with
the CIFAR mean/std normalisation inside the model. Rows: (a) eval forward under no_grad, (b) SGD
step, (c) one PGD step (input gradient only), (d) PGD-10 + SGD step, (e) FGSM-RS + SGD step;
attacks in train mode. JSON: {"results": {row: {"images_per_s": ..., ...}}}.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 32, 3)
        self.conv3, self.conv4 = nn.Conv2d(32, 64, 3), nn.Conv2d(64, 64, 3)
        self.fc1, self.fc2, self.fc3 = nn.Linear(1024, 200), nn.Linear(200, 200), nn.Linear(200, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.max_pool2d(F.relu(self.conv4(F.relu(self.conv3(x)))), 2)
        x = F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))))
        return self.fc3(x)


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        return self.conv2(F.relu(self.bn2(self.conv1(out)))) + sc


class PreActResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        blocks, cin = [], 64
        for i, c in enumerate([64, 128, 256, 512]):
            for b in range(2):
                blocks.append(PreActBlock(cin, c, 2 if i > 0 and b == 0 else 1))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.bn, self.linear = nn.BatchNorm2d(512), nn.Linear(512, 10)

    def forward(self, x):
        out = self.blocks(self.conv1((x - self.mean) / self.std))
        return self.linear(torch.flatten(F.avg_pool2d(F.relu(self.bn(out)), 4), 1))


def flops_per_image(model, shape):
    total = [0]
    def conv(m, i, o): total[0] += 2 * o.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
    def lin(m, i, o): total[0] += 2 * o.numel() * m.in_features
    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else lin)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return total[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=["w1", "w2"], default="w1")
    ap.add_argument("--modes", default="abcde")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats-scale", type=float, default=1.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.workload == "w1":
        name, shape, model = "fmnist-smallcnn", (1, 28, 28), SmallCNN()
        eps, alpha, fgsm_alpha = 0.1, 0.01, 0.125
        plan = dict(a=(5, 30), b=(5, 20), c=(5, 20), d=(2, 7), e=(3, 15))
    else:
        name, shape, model = "cifar-preactresnet18", (3, 32, 32), PreActResNet18()
        eps, alpha, fgsm_alpha = 8 / 255, 2 / 255, 10 / 255
        plan = dict(a=(1, 5), b=(1, 4), c=(1, 4), d=(0, 3), e=(1, 3))
    flops = flops_per_image(model, shape)
    B = a.batch
    x, y = torch.rand(B, *shape), torch.randint(0, 10, (B,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step(xb):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), y).backward()
        opt.step()

    def pgd(steps, step_size):
        d = torch.empty_like(x).uniform_(-eps, eps)
        d = torch.clamp(x + d, 0, 1) - x
        for _ in range(steps):
            xa = (x + d).requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
            d = torch.clamp(d + step_size * g.sign(), -eps, eps)
            d = torch.clamp(x + d, 0, 1) - x
        return (x + d).detach()

    def row(m):
        if m == "a":
            model.eval()
            with torch.no_grad():
                model(x)
            return
        model.train()
        if m == "b":
            step(x)
        elif m == "c":
            pgd(1, alpha)
        elif m == "d":
            step(pgd(10, alpha))
        else:
            step(pgd(1, fgsm_alpha))

    cost = dict(a=1, b=3, c=2, d=23, e=5)
    print(f"workload {name}  batch {B}  threads {torch.get_num_threads()}  "
          f"forward {flops / 1e6:.3f} MFLOP/image  (torch {torch.__version__})")
    results = {}
    for m in a.modes:
        warm, reps = plan[m][0], math.ceil(plan[m][1] * a.repeats_scale)
        for _ in range(warm):
            row(m)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            row(m)
            ts.append(time.perf_counter() - t0)
        med = statistics.median(ts)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ips = B / med
        results[m] = dict(images_per_s=ips, images_per_s_best=B / min(ts), median_s=med,
                          min_s=min(ts), max_s=max(ts), nominal_gflops=cost[m] * flops * ips / 1e9,
                          repeats=reps, peak_rss_mb=rss)
        print(f"({m}) {ips:9.1f} img/s (median) {B / min(ts):9.1f} (best)  step {med * 1e3:8.1f} ms"
              f"  {cost[m] * flops * ips / 1e9:6.1f} GFLOP/s  peak RSS {rss:.0f} MiB", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(workload=name, batch=B, threads=a.threads, flops_fwd_per_image=flops,
                           results=results), f, indent=1)


if __name__ == "__main__":
    main()
