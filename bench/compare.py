#!/usr/bin/python3
"""Runs advtrain-bench and a PyTorch peer alternately, one row per process (so each process's
peak memory belongs to that row), and prints per-row medians over the rounds and their ratio.

    bench/compare.py --bench build/advtrain-bench --workload w1 --rounds 5 [--modes abc]
                     [--peer bench/torch_workloads.py] [--threads 2] [--json out.json]

The peer is any script taking --workload/--modes/--threads/--json and writing
{"results": {row: {"images_per_s": x}}}; the default is bench/torch_workloads.py, run with
Debian's /usr/bin/python3 (python3-torch). Every round also measures the sgemm ceiling
(advtrain-bench row s), and each advtrain row's achieved GFLOP/s is printed as a share of it.
Machines are noisy: quote medians and ratios.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, out_json):
    """Runs one benchmark process; returns (results dict, peak RSS of the child in MiB)."""
    proc = subprocess.Popen(cmd + ["--json", out_json], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"compare.py: {' '.join(cmd)} failed with status {status}")
    with open(out_json) as f:
        return json.load(f)["results"], usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "advtrain-bench"))
    ap.add_argument("--peer", default=os.path.join(HERE, "torch_workloads.py"))
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--workload", choices=["w1", "w2"], default="w1")
    ap.add_argument("--modes", default="abcde")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    ours = {m: [] for m in a.modes}
    theirs = {m: [] for m in a.modes}
    rss = {m: ([], []) for m in a.modes}
    gflops = {m: [] for m in a.modes}
    ceiling = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        for r in range(a.rounds):
            for m in a.modes:
                common = ["--workload", a.workload, "--modes", m, "--threads", str(a.threads)]
                first_ours = (r % 2 == 0)  # alternate which program goes first
                for who in ([0, 1] if first_ours else [1, 0]):
                    if who == 0:
                        res, peak = run([a.bench] + common, out)
                        ours[m].append(res[m]["images_per_s"])
                        gflops[m].append(res[m]["nominal_gflops"])
                    else:
                        res, peak = run([a.python, a.peer] + common, out)
                        theirs[m].append(res[m]["images_per_s"])
                    rss[m][who].append(peak)
            res, _ = run([a.bench, "--modes", "s", "--threads", str(a.threads)], out)
            ceiling.append(res["s"]["gflops"])
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    rows = {}
    print(f"workload {a.workload}, {a.threads} threads, {a.rounds} rounds, medians of per-process medians")
    top = statistics.median(ceiling)
    print(f"sgemm ceiling (n=1024, oneDNN): {top:.1f} GFLOP/s")
    print(f"{'row':4} {'advtrain img/s':>15} {'peer img/s':>12} {'ratio':>7} {'advtrain MiB':>13} "
          f"{'peer MiB':>9} {'GFLOP/s':>8} {'of ceiling':>10}")
    for m in a.modes:
        o, t = statistics.median(ours[m]), statistics.median(theirs[m])
        ro, rt = statistics.median(rss[m][0]), statistics.median(rss[m][1])
        g = statistics.median(gflops[m])
        rows[m] = dict(advtrain_images_per_s=o, peer_images_per_s=t, ratio=o / t,
                       advtrain_rss_mb=ro, peer_rss_mb=rt, advtrain_gflops=g,
                       advtrain_all=ours[m], peer_all=theirs[m])
        print(f"({m})  {o:15.1f} {t:12.1f} {o / t:7.2f} {ro:13.0f} {rt:9.0f} {g:8.1f} {g / top:10.0%}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(workload=a.workload, threads=a.threads, rounds=a.rounds, peer=a.peer,
                           sgemm_ceiling_gflops=top, sgemm_ceiling_all=ceiling, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
