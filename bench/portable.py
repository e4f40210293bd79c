"""Seconds per EM iteration of the installed build, to compare builds of the
kernels (vector vs GMMFAST_PORTABLE=1, gcc vs clang) one after the other:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/portable.py vector
    GMMFAST_PORTABLE=1 pip install --no-build-isolation --no-deps -e .
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/portable.py portable
    python bench/portable.py --compare vector portable

Each run writes bench/results/portable-NAME.json; --compare prints B / A per
row (above 1: B is slower). One thread, tol disabled, per-iteration =
(t(hi) - t(lo)) / (iters(hi) - iters(lo)) as in bench/run.py, the median of
--repeats. The data and start are bench/quickbench.py's (bench/run.py's).
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)

from quickbench import make_data, start_for  # noqa: E402

# (n_samples, n_features, n_components): the register kernels (D <= 16,
# gram tiles in the statistics from D = 5), and the BLAS path (D = 64)
GRID = [(100_000, 2, 4), (50_000, 8, 8), (20_000, 16, 8), (10_000, 64, 8)]
TYPES = ("full", "tied", "diag", "spherical")


def per_iteration(X, n_components, covariance_type, means0, repeats, lo=2, hi=6):
    import gmmfast

    start = dict(start_for(covariance_type, means0), covariance_type=covariance_type, tol=0.0)

    def timed(it):
        gm = gmmfast.GaussianMixture(n_components, max_iter=it, n_threads=1, **start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            gm.fit(X)
            return time.perf_counter() - t, gm.n_iter_

    timed(1)
    out = []
    for _ in range(repeats):
        t_lo, i_lo = timed(lo)
        t_hi, i_hi = timed(hi)
        out.append((t_hi - t_lo) / (i_hi - i_lo))
    return float(np.median(out))


def run(name, repeats, dtypes):
    from gmmfast import _kernels

    info = dict(name=name, portable=bool(getattr(_kernels, "portable_build", lambda: False)()),
                isa_dispatch=bool(getattr(_kernels, "isa_dispatch", lambda: False)()),
                load=os.getloadavg()[0], rows={})
    print(f"{name}: portable={info['portable']} isa_dispatch={info['isa_dispatch']} "
          f"load average {info['load']:.2f}")
    for dtype in dtypes:
        for n, d, k in GRID:
            X, means0 = make_data(n, d, k, dtype=np.dtype(dtype))
            for cov in TYPES:
                t = per_iteration(X, k, cov, means0, repeats)
                key = f"{n},{d},{k} {cov} {dtype}"
                info["rows"][key] = t
                print(f"  {key:<34} {t * 1e3:8.3f} ms")
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"portable-{name}.json")
    with open(path, "w") as f:
        json.dump(info, f, indent=1)
    print("wrote", path)


def compare(a, b):
    ra, rb = (json.load(open(os.path.join(RESULTS, f"portable-{n}.json"))) for n in (a, b))
    print(f"| N,D,K type dtype | {a} | {b} | {b} / {a} |")
    print("|---|---|---|---|")
    ratios = []
    for key, ta in ra["rows"].items():
        tb = rb["rows"].get(key)
        if tb is None:
            continue
        ratios.append(tb / ta)
        print(f"| {key} | {ta * 1e3:.3f} ms | {tb * 1e3:.3f} ms | {tb / ta:.2f} |")
    print(f"geometric mean {b} / {a}: {float(np.exp(np.mean(np.log(ratios)))):.2f} "
          f"(load averages {ra['load']:.2f}, {rb['load']:.2f})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name", nargs="?")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtypes", default="float64,float32")
    args = p.parse_args()
    if args.compare:
        compare(*args.compare)
    elif args.name:
        run(args.name, args.repeats, args.dtypes.split(","))
    else:
        p.error("give a NAME or --compare A B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
