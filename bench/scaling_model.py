#!/usr/bin/env python3
"""Predicted data-parallel scaling of the reference workloads (docs/PERFORMANCE.md, "Many
processes: the cost model"), from measured allreduce times and single-rank training rates.

One optimiser step on N ranks, each with b images:
    T(N, b) = compute(b) + allreduce(P, N)
    compute(b)        = b / rate          rate: single-rank images/s of the PGD-10 training step
    allreduce(P, N)   = 2 (N - 1) alpha + 2 (N - 1) / N * P / beta     (ring allreduce)
P is the gradient slab in bytes (parameters x 4 B), alpha the latency of one message, beta the
link bandwidth. Efficiency against one rank doing the same images:
    global batch G split over N ranks (b = G / N):  E = T(1, G) / (N T(N, G / N)), T(1, G) = G / rate
    per-rank batch b (the global batch grows):      E = compute(b) / T(N, b)
E >= 0.8 needs compute(b) >= 4 allreduce(P, N), i.e. a per-rank batch of at least
4 rate allreduce(P, N) images.

The gather mode (rank 0 receives every slab, adds them in rank order, broadcasts the sum: the
same bits for any N) is bounded below by its root's traffic and additions:
    gather(P, N) >= (N - 1) alpha + (N - 1) P / beta + (N - 1) (P / 4) c_add + P / beta
c_add: seconds per float addition, from rank 0's measured add phase at N = 2.

The assumption to keep in mind: a rank runs at the single-rank rate measured at batch 128 whatever
its batch (smaller batches usually run slower per image), and computation and communication do not
overlap. The measured network is 2 processes on one machine; the cluster networks are stated
figures, not measurements.

    python3 bench/scaling_model.py shm-1.json shm-2.json ... [--rate-w1 R] [--rate-w2 R]
Each JSON is one `advtrain-allreduce-bench --json` run with 2 ranks; the median over the files of
each run's median is used.
"""
import argparse
import json
import statistics
import sys

# Single-rank PGD-10 training step, row (d), batch 128, 2 threads (docs/PERFORMANCE.md,
# "Results (2026-11-26)": W1 7-round table, W2 2-round table).
RATES = {"W1": 821.0, "W2": 16.4}
SIZE_NAMES = {"W1": "W1 smallcnn gradients", "W2": "W2 preact-resnet18 gradients"}
LATENCY_NAME = "latency (1 float)"
# Stated cluster figures (not measured here): bandwidth in bytes/s, one-message latency in s.
STATED = [("10 GbE, TCP (stated)", 1.25e9, 25e-6), ("100 Gb InfiniBand (stated)", 12e9, 2e-6)]
RANKS = [2, 4, 8, 16, 32, 64]
BATCH = 128


def fail(msg):
    sys.exit(f"scaling_model.py: {msg}")


def load(paths):
    """Median over runs of each run's median allreduce time, per size name."""
    times, adds = {}, {}
    for path in paths:
        try:
            with open(path) as f:
                run = json.load(f)
        except (OSError, ValueError) as e:
            fail(f"{path}: {e}")
        if run.get("ranks") != 2:
            fail(f"{path}: measured with {run.get('ranks')} ranks, the model reads 2-rank runs")
        try:
            for r in run["results"]:
                times.setdefault(r["name"], []).append(r["allreduce"]["median_s"])
                add = r["gather"].get("rank0_phases_median_s", {}).get("add")
                if add is not None and r["floats"] > 1000:
                    adds.setdefault(r["name"], []).append(add / r["floats"])
        except (KeyError, TypeError, AttributeError) as e:
            fail(f"{path}: not an advtrain-allreduce-bench --json file (missing {e})")
    for name in [LATENCY_NAME, *SIZE_NAMES.values()]:
        if name not in times:
            fail(f"no '{name}' in {', '.join(paths)}")
    if not adds:
        fail("no rank-0 add phase in the runs (measured by an older advtrain-allreduce-bench?)")
    c_add = statistics.median(c for v in adds.values() for c in v)
    return {name: statistics.median(t) for name, t in times.items()}, load_bytes(paths[0]), c_add


def load_bytes(path):
    with open(path) as f:
        return {r["name"]: r["bytes"] for r in json.load(f)["results"]}


def allreduce_s(p_bytes, n, alpha, beta):
    return 2 * (n - 1) * alpha + 2 * (n - 1) / n * p_bytes / beta


def gather_s(p_bytes, n, alpha, beta, c_add):
    return (n - 1) * alpha + (n - 1) * p_bytes / beta + (n - 1) * p_bytes / 4 * c_add + p_bytes / beta


def networks(times, nbytes):
    """(name, {workload: (alpha, beta)}): the measured loopback takes beta from the 2-rank time
    at each workload's own size, less the latency (at N = 2 the model reads t = 2 alpha + P / beta,
    and busbw = 2 (N-1)/N P / t = P / t); alpha is half the one-float time, so that the model
    gives back the measured one-float time at N = 2."""
    alpha = times[LATENCY_NAME] / 2
    measured = {}
    for w, name in SIZE_NAMES.items():
        measured[w] = (alpha, nbytes[name] / max(times[name] - 2 * alpha, 1e-12))
    nets = [("loopback, 2 processes (measured)", measured)]
    for name, beta, a in STATED:
        nets.append((name, {w: (a, beta) for w in SIZE_NAMES}))
    return nets


def efficiency_rows(nets, nbytes, rates, cost):
    """Table rows of predicted efficiency, at the global batch and at BATCH per rank, where
    cost(bytes, ranks, alpha, beta) is the seconds one step's gradient sum takes."""
    for w in SIZE_NAMES:
        p = nbytes[SIZE_NAMES[w]]
        for net, params in nets:
            a, b = params[w]
            step = BATCH / rates[w]
            glob = [step / (n * (step / n + cost(p, n, a, b))) for n in RANKS]
            local = [step / (step + cost(p, n, a, b)) for n in RANKS]
            print(f"| {w} | {net} | global {BATCH} | " + " | ".join(f"{e:.0%}" for e in glob) + " |")
            print(f"| {w} | {net} | {BATCH} per rank | " + " | ".join(f"{e:.0%}" for e in local)
                  + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="advtrain-allreduce-bench --json files (2 ranks)")
    ap.add_argument("--rate-w1", type=float, default=RATES["W1"])
    ap.add_argument("--rate-w2", type=float, default=RATES["W2"])
    args = ap.parse_args()
    rates = {"W1": args.rate_w1, "W2": args.rate_w2}
    if min(rates.values()) <= 0:
        fail("rates must be positive")
    times, nbytes, c_add = load(args.runs)
    nets = networks(times, nbytes)

    print(f"inputs: {len(args.runs)} runs; allreduce medians (2 ranks): "
          + ", ".join(f"{n} {t * 1e6:.2f} us" for n, t in times.items()))
    print(f"c_add (rank 0, gather mode): {c_add * 1e9:.2f} ns per float")
    for w, name in SIZE_NAMES.items():
        print(f"{w}: P = {nbytes[name]:,} bytes, rate {rates[w]:g} img/s, "
              f"compute(128) = {BATCH / rates[w] * 1e3:.1f} ms")
    for net, params in nets:
        print(f"{net}: " + ", ".join(f"{w} alpha {a * 1e6:.2f} us beta {b / 1e9:.3f} GB/s"
                                     for w, (a, b) in params.items()))
    print()
    header = "| workload | network | batch | " + " | ".join(f"N={n}" for n in RANKS) + " |"
    print("Predicted efficiency (percent of linear speed-up)\n")
    print(header)
    print("|" + "---|" * (3 + len(RANKS)))
    efficiency_rows(nets, nbytes, rates, allreduce_s)
    print("\nSmallest per-rank batch for 80% efficiency (images; 4 x rate x allreduce)\n")
    print("| workload | network | " + " | ".join(f"N={n}" for n in RANKS) + " |")
    print("|" + "---|" * (2 + len(RANKS)))
    for w in SIZE_NAMES:
        p = nbytes[SIZE_NAMES[w]]
        for net, params in nets:
            a, b = params[w]
            need = [4 * rates[w] * allreduce_s(p, n, a, b) for n in RANKS]
            print(f"| {w} | {net} | " + " | ".join(f"{x:.1f}" for x in need) + " |")

    print("\nGather mode (bit-identical for any N), lower bound: predicted efficiency\n")
    print(header)
    print("|" + "---|" * (3 + len(RANKS)))
    efficiency_rows(nets, nbytes, rates, lambda p, n, a, b: gather_s(p, n, a, b, c_add))


if __name__ == "__main__":
    main()
