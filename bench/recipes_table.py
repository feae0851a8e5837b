#!/usr/bin/env python3
"""Prints the Markdown table of docs/RESULTS.md from the JSON files bench/recipes.sh leaves.

    bench/recipes_table.py [DIR]        (default results/recipes)

For every NAME.advtrain.json with a NAME.torch.json beside it: clean and PGD-20 test accuracy of
both (advtrain's with its 95% interval), the standard-suite accuracy advtrain measured, and the
median seconds per epoch of each (training loop only, validation excluded, as both time it).
Needs only the Python standard library."""
import json
import os
import statistics
import sys

directory = sys.argv[1] if len(sys.argv) > 1 else "results/recipes"
names = sorted(f[: -len(".advtrain.json")] for f in os.listdir(directory)
               if f.endswith(".advtrain.json")
               and os.path.exists(os.path.join(directory, f[: -len(".advtrain.json")] + ".torch.json")))
if not names:
    sys.exit(f"{directory}: no NAME.advtrain.json with a NAME.torch.json beside it")


def pct(x):
    return f"{100 * x:.2f}"


print("| recipe | clean: advtrain [95% CI] | clean: PyTorch | PGD-20: advtrain [95% CI] | "
      "PGD-20: PyTorch | suite: advtrain (points) | s/epoch advtrain | s/epoch PyTorch |")
print("|---|---|---|---|---|---|---|---|")
for name in names:
    with open(os.path.join(directory, name + ".advtrain.json")) as f:
        ours = json.load(f)
    with open(os.path.join(directory, name + ".torch.json")) as f:
        twin = json.load(f)
    final = ours["final"]
    clean, pgd = final["clean"], final["pgd20"]["robust"]
    suite = final.get("suite", {}).get("robust")
    epoch_seconds = statistics.median(e["seconds"] for e in ours["epochs"])
    twin_seconds = statistics.median(e["seconds"] for e in twin["epochs_log"])
    ci = lambda r: f"[{pct(r['ci95'][0])}, {pct(r['ci95'][1])}]"
    suite_cell = f"{pct(suite['accuracy'])} ({suite['n']})" if suite else "-"
    print(f"| {name} | {pct(clean['accuracy'])} {ci(clean)} | {pct(twin['clean'])} | "
          f"{pct(pgd['accuracy'])} {ci(pgd)} | {pct(twin['pgd20'])} | {suite_cell} | "
          f"{epoch_seconds:.1f} | {twin_seconds:.1f} |")
