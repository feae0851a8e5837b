#!/usr/bin/env python3
"""Prints the table of docs/RESULTS.md ("Seed methods") from what bench/seed_methods.sh (or
bench/iwd_methods.sh) leaves.

    bench/seed_methods_table.py [DIR [NAME...]]   (default results/seed-methods; every row)

One row per NAME.json: clean and PGD-20 accuracy on the whole test set with their 95% intervals,
the standard suite's accuracy (and its points), the training time, the wall time of the whole
command, and the median seconds per training epoch (skipped epochs left out). Then, where the
scripts evaluated a row again with another attack (NAME.jsa.json: the joint-space attack;
NAME-iwd.json: the IWD attack; NAME-pgd.json: PGD at the IWD attack's pixel bound), a second
table: that attack's accuracy and what it measured.
Needs only the Python standard library."""
import json
import os
import statistics
import sys

directory = sys.argv[1] if len(sys.argv) > 1 else "results/seed-methods"
EXTRA = (".jsa", "-iwd", "-pgd")  # suffixes of the second evaluations
OTHER = EXTRA + (".corruptions",)  # reports that are not training runs
names = sys.argv[2:] or sorted(f[:-5] for f in os.listdir(directory)
                               if f.endswith(".json") and not f[:-5].endswith(OTHER))
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

extra = [(name, name + suffix) for name in names for suffix in EXTRA
         if os.path.exists(os.path.join(directory, name + suffix + ".json"))]
if extra:
    print()
    print("| run | attack (points) | clean | robust [95% CI] | largest pixel Linf | largest latent Linf "
          "| IWD mean / largest | s |")
    print("|---|---|---|---|---|---|---|---|")
for name, evaluation in extra:
    with open(os.path.join(directory, evaluation + ".json")) as f:
        report = json.load(f)
    attack = report["attacks"][-1]
    robust = attack["robust_after"]
    joint = attack.get("joint_space")
    iwd = attack.get("iwd")
    pixel = joint["max_pixel_linf"] if joint else attack["max_perturbation"]["linf"]
    latent = f"{joint['max_latent_linf']:.4f}" if joint else "-"
    iwd_cell = f"{iwd['mean']:.4g} / {iwd['max']:.4g}" if iwd else "-"
    print(f"| {name} | {attack['name']} ({robust['n']}) | {pct(report['clean']['accuracy'])} | "
          f"{pct(robust['accuracy'])} {ci(robust)} | {pixel:.4f} | {latent} | {iwd_cell} | "
          f"{attack['seconds']:.0f} |")
