#!/usr/bin/env python3
"""Prints the table of docs/RESULTS.md ("Seed methods") from what bench/seed_methods.sh leaves.

    bench/seed_methods_table.py [DIR [NAME...]]   (default results/seed-methods; every row)

One row per NAME.json: clean and PGD-20 accuracy on the whole test set with their 95% intervals,
the standard suite's accuracy (and its points), the training time, the wall time of the whole
command, and the median seconds per training epoch (skipped epochs left out). Needs only the
Python standard library."""
import json
import os
import statistics
import sys

directory = sys.argv[1] if len(sys.argv) > 1 else "results/seed-methods"
names = sys.argv[2:] or sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".json"))
if not names:
    sys.exit(f"{directory}: no NAME.json")


def pct(x):
    return f"{100 * x:.2f}"


def ci(r):
    return f"[{pct(r['ci95'][0])}, {pct(r['ci95'][1])}]"


print("| run | clean [95% CI] | PGD-20 [95% CI] | suite (points) | train s | wall s | s/epoch |")
print("|---|---|---|---|---|---|---|")
for name in names:
    with open(os.path.join(directory, name + ".json")) as f:
        report = json.load(f)
    final = report["final"]
    clean, pgd = final["clean"], final["pgd20"]["robust"]
    suite = final.get("suite", {}).get("robust")
    suite_cell = f"{pct(suite['accuracy'])} ({suite['n']})" if suite else "-"
    seconds_file = os.path.join(directory, name + ".seconds")
    wall = float(open(seconds_file).read()) if os.path.exists(seconds_file) else float("nan")
    epochs = [e["seconds"] for e in report["epochs"] if not e.get("skipped")]
    print(f"| {name} | {pct(clean['accuracy'])} {ci(clean)} | {pct(pgd['accuracy'])} {ci(pgd)} | "
          f"{suite_cell} | {report['train_seconds']:.0f} | {wall:.0f} | "
          f"{statistics.median(epochs):.1f} |")
