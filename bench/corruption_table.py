#!/usr/bin/env python3
"""Markdown tables of bench/corruption_methods.sh's results for docs/RESULTS.md.

    bench/corruption_table.py DIR

Prints (1) one row per model: clean accuracy, mean corruption accuracy with its interval, mCE
and relative mCE against the standard model, corrupted ECE, training time; (2) the 15 x 5
accuracies of each model, one table per model; (3) the certified accuracies of each smoothed
model at radii 0, 0.25, 0.5, 0.75 and 1 with the ACR. Rows whose files are missing are skipped
and named on stderr."""
import json
import os
import sys

MODELS = ["standard", "fgsm-rs", "pgd-at", "gaussian", "rlat", "rlat-linf", "augmix", "augrmixat",
          "ada"]
SMOOTHED = ["gaussian-0.25", "smoothmix-0.25", "gaussian-0.5", "smoothmix-0.5"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def seconds(d, name):
    try:
        with open(os.path.join(d, name + ".seconds")) as f:
            return float(f.read())
    except (OSError, ValueError):
        return None


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f}"


def ratio(x):
    return "n/a" if x is None else f"{x:.3f}"


def summary(d):
    print("| model | clean % | mean corruption accuracy % (95% CI) | mCE (95% CI) | relative mCE "
          "(95% CI) | corrupted ECE % | training s |")
    print("|---|---|---|---|---|---|---|")
    for m in MODELS:
        r = load(os.path.join(d, m + ".corruptions.json"))
        if r is None:
            print(f"missing: {m}", file=sys.stderr)
            continue
        s, cal = r["corruption_suite"], r["calibration"]
        b = s.get("baseline", {})
        lo, hi = s["mean_accuracy_ci"]
        mlo, mhi = b.get("mce_ci", [None, None])
        rlo, rhi = b.get("relative_mce_ci", [None, None])
        t = seconds(d, m)
        print(f"| {m} | {pct(s['clean']['accuracy'])} | {pct(s['mean_accuracy'])} ({pct(lo)}-{pct(hi)}) | "
              f"{ratio(b.get('mce'))} ({ratio(mlo)}-{ratio(mhi)}) | {ratio(b.get('relative_mce'))} "
              f"({ratio(rlo)}-{ratio(rhi)}) | {pct(cal['corrupted']['ece'])} | "
              f"{'n/a' if t is None else f'{t:.0f}'} |")


def cells(d):
    for m in MODELS:
        r = load(os.path.join(d, m + ".corruptions.json"))
        if r is None:
            continue
        print(f"\n{m}: accuracy % at severity 1..5\n")
        print("| corruption | 1 | 2 | 3 | 4 | 5 | mean | CE |")
        print("|---|---|---|---|---|---|---|---|")
        for row in r["corruption_suite"]["corruptions"]:
            sev = " | ".join(pct(s["accuracy"]) for s in row["severities"])
            print(f"| {row['corruption']} | {sev} | {pct(row['accuracy'])} | {ratio(row.get('ce'))} |")


def certified(d):
    radii = ["0", "0.25", "0.5", "0.75", "1"]
    print("| model | sigma | " + " | ".join(f"r = {r}" for r in radii) +
          " | ACR | abstained % | R_max | noisy / plain forwards per s |")
    print("|---|---|" + "---|" * len(radii) + "---|---|---|---|")
    for m in SMOOTHED:
        r = load(os.path.join(d, m + ".certify.json"))
        if r is None:
            print(f"missing: {m}", file=sys.stderr)
            continue
        acc = {f"{float(x['radius']):g}": x["accuracy"] for x in r["certified"]}
        row = " | ".join(pct(acc.get(f"{float(x):g}")) for x in radii)
        print(f"| {m} | {r['sigma']:g} | {row} | {r['acr']:.3f} | {pct(r['abstention_rate'])} | "
              f"{r['max_radius']:.3f} | {r['noisy_forwards_per_second']:.0f} / "
              f"{r['plain_forwards_per_second']:.0f} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    summary(sys.argv[1])
    print()
    certified(sys.argv[1])
    cells(sys.argv[1])
