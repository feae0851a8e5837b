#!/usr/bin/python3
"""Reference tier: the statistics of randomized smoothing against SciPy.

The Clopper-Pearson lower bound (scipy.stats.beta.ppf(alpha, k, n - k + 1), the bound Cohen et
al.'s code takes from statsmodels' proportion_confint(method="beta") at 2 alpha), the two-sided
binomial test at p = 1/2 (scipy.stats.binomtest), Phi^-1 (scipy.stats.norm.ppf) and the largest
certifiable radius sigma Phi^-1(alpha^(1/n)), on a grid of (k, n, alpha) up to n = 100000, the
n of the published certifications. Relative error must stay below 1e-9 (1e-12 for Phi^-1).

Exit status: 0 pass, 1 mismatch, 77 skipped (python3-scipy is not installed; ctest shows the test
as "Skipped", never as passed).
"""
import argparse
import subprocess
import sys

try:
    from scipy import stats
except ImportError as e:
    print(f"smoothing reference tier skipped: {e} (install python3-scipy)")
    sys.exit(77)


def grid():
    queries = []
    for n in (1, 2, 10, 100, 1000, 10000, 100000):
        ks = sorted({0, 1, 2, n // 3, n // 2, n // 2 + 1, (3 * n) // 4, (99 * n) // 100, n - 2,
                     n - 1, n} - {-1, -2})
        for k in ks:
            if 0 <= k <= n:
                for alpha in (0.001, 0.01, 0.05):
                    queries.append(("cp", k, n, alpha))
                queries.append(("binom", k, n))
    for p in (1e-300, 1e-20, 1e-8, 1e-3, 0.01, 0.02425, 0.1, 0.25, 0.5, 0.6, 0.9, 0.975, 0.999,
              0.99993093, 1 - 1e-9):
        queries.append(("ppf", p))
    for n in (100, 1000, 10000, 100000):
        queries.append(("rmax", 0.25, n, 0.001))
    return queries


def expected(q):
    if q[0] == "cp":
        _, k, n, alpha = q
        return 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    if q[0] == "binom":
        _, k, n = q
        return float(stats.binomtest(k, n, 0.5).pvalue)
    if q[0] == "ppf":
        return float(stats.norm.ppf(q[1]))
    _, sigma, n, alpha = q
    return sigma * float(stats.norm.ppf(alpha ** (1.0 / n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True, help="the smoothing_dump program")
    args = ap.parse_args()
    queries = grid()
    text = "".join(" ".join(repr(v) for v in q[1:]).join([q[0] + " ", "\n"]) for q in queries)
    out = subprocess.run([args.dump], input=text, capture_output=True, text=True, check=True)
    got = [float(v) for v in out.stdout.split()]
    if len(got) != len(queries):
        print(f"smoothing_dump answered {len(got)} of {len(queries)} queries")
        return 1
    failures, worst = [], {}
    for q, g in zip(queries, got):
        want = expected(q)
        tol = 1e-12 if q[0] == "ppf" else 1e-9
        err = abs(g - want) / max(abs(want), 1e-300) if want != 0 else abs(g)
        worst[q[0]] = max(worst.get(q[0], 0.0), err)
        if not err <= tol:
            failures.append(f"{q}: advtrain {g!r}, scipy {want!r}, relative error {err:.3g}")
    for kind, err in sorted(worst.items()):
        print(f"{kind}: {sum(q[0] == kind for q in queries)} values, worst relative error {err:.3g}")
    for f in failures:
        print("MISMATCH", f)
    print("smoothing reference tier:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
