"""Ctrl-C latency of GaussianMixture.fit across shapes.

For each shape a child process starts a fit that would run for minutes, is
sent SIGINT ``--delay`` seconds after it starts, and reports when
KeyboardInterrupt arrived; the estimator's state afterwards is checked too
(unfitted, or exactly its previous fit). The kernels return to Python to
check for signals after each OpenMP region (a slice of about 2**30
multiply-adds, at least one row block per thread; a block is at most about
2**28 multiply-adds), so the latency is about one slice, plus the M-step in
progress.

    python bench/interrupt_latency.py [--repeats 3] [--delay 1.0] [--quick]

Prints one line per shape: median and max latency over the repeats.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
from interrupt_child import interrupt  # noqa: E402

SHAPES = [
    # (n_samples, n_features, n_components, covariance_type, dtype, n_threads, init)
    (2_000_000, 2, 3, "full", "float64", 1, "given"),
    (2_000_000, 2, 3, "full", "float64", 2, "given"),
    (2_000_000, 2, 3, "full", "float32", 2, "given"),
    (200_000, 64, 8, "full", "float64", 1, "given"),
    (200_000, 64, 8, "full", "float32", 2, "given"),
    (200_000, 64, 8, "tied", "float64", 2, "given"),
    (200_000, 64, 8, "diag", "float64", 2, "given"),
    (200_000, 64, 8, "spherical", "float64", 2, "given"),
    (50_000, 256, 8, "full", "float64", 1, "given"),
    (20_000, 512, 8, "full", "float64", 1, "given"),
    (10_000, 1024, 4, "full", "float64", 1, "given"),
    (2_000_000, 2, 8, "full", "float64", 2, "kmeans"),
    (2_000_000, 2, 8, "full", "float64", 2, "k-means++"),
    (500_000, 64, 8, "tied", "float64", 1, "random"),
]
QUICK = [SHAPES[0], SHAPES[3], SHAPES[5], SHAPES[11]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="four shapes only")
    args = ap.parse_args()
    print(f"SIGINT {args.delay:g} s after the fit starts; {args.repeats} repeats; "
          "latency = signal -> KeyboardInterrupt caught")
    print(f"{'n_samples':>10} {'D':>5} {'K':>3} {'cov':>9} {'dtype':>7} {'thr':>3} "
          f"{'init':>9}  {'median':>8} {'max':>8}  state")
    for n, d, k, cov, dtype, n_threads, init in (QUICK if args.quick else SHAPES):
        spec = dict(n_samples=n, n_features=d, n_components=k, covariance_type=cov,
                    dtype=dtype, n_threads=n_threads, init=init)
        latencies, states = [], set()
        for r in range(args.repeats):
            spec["refit"] = ("none", "cold", "warm")[r % 3]
            report = interrupt(spec, delay=args.delay, timeout=600)
            if report["status"] != "interrupted":
                states.add("finished before the signal")
                continue
            latencies.append(report["latency"])
            states.add("ok" if report["unchanged"] else "CHANGED")
        if latencies:
            print(f"{n:>10} {d:>5} {k:>3} {cov:>9} {dtype:>7} {n_threads:>3} {init:>9}  "
                  f"{statistics.median(latencies):8.3f} {max(latencies):8.3f}  "
                  f"{','.join(sorted(states))}", flush=True)


if __name__ == "__main__":
    main()
