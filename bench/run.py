"""Seconds per EM iteration: gmmfast side by side with scikit-learn (and peers).

Method (shared/benchmarking.md): overlapping components (centres at scale
3/sqrt(D), unit noise), the same start for every library (perturbed centres,
identity covariances, equal weights), tol disabled, and

    per-iteration = (t(hi) - t(lo)) / (iters(hi) - iters(lo))

with the iteration counts each library reports; libraries alternate within a
repeat (A B A B ...), and the table gives medians over repeats and ratios.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py --quick
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py --full

Writes bench/results/<name>.md (the table) and prints it.
"""
import argparse
import datetime
import os
import platform
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from peers import LIBRARIES, available_libraries  # noqa: E402

# (n_samples, n_features, n_components): the speed issue's grid
FULL_GRID = [
    (100_000, 2, 2),
    (1_000_000, 2, 4),
    (200_000, 16, 8),
    (100_000, 64, 16),
    (20_000, 256, 8),
]
QUICK_GRID = [(n // 10, d, k) for (n, d, k) in FULL_GRID]


def make_data(n_samples, n_features, n_components, dtype, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0 / np.sqrt(n_features), size=(n_components, n_features))
    labels = rng.integers(0, n_components, n_samples)
    X = centers[labels] + rng.normal(size=(n_samples, n_features))
    means0 = centers + rng.normal(scale=1.0 / np.sqrt(n_features), size=centers.shape)
    return np.ascontiguousarray(X, dtype=dtype), means0


def start_for(covariance_type, means0):
    n_components, n_features = means0.shape
    precisions = {
        "full": np.tile(np.eye(n_features), (n_components, 1, 1)),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]
    return dict(weights_init=np.full(n_components, 1.0 / n_components),
                means_init=means0, precisions_init=precisions)


def blas_header():
    import threadpoolctl

    import gmmfast

    lines = [
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"machine: {platform.machine()} {platform.processor() or ''} "
        f"{os.cpu_count()} cpus; python {platform.python_version()}",
        f"gmmfast {gmmfast.__version__} (OpenMP: {gmmfast.openmp_enabled()})",
        "OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s" % (
            os.environ.get("OPENBLAS_CORETYPE"), os.environ.get("OPENBLAS_L2_SIZE")),
    ]
    for info in threadpoolctl.threadpool_info():
        lines.append("threadpool: %s %s %s threads=%s arch=%s (%s)" % (
            info.get("user_api"), info.get("internal_api"), info.get("version"),
            info.get("num_threads"), info.get("architecture"),
            os.path.basename(info.get("filepath", ""))))
    return lines


def time_library(lib, X, start, covariance_type, n_threads, lo, hi):
    """(t_hi - t_lo) / (iters_hi - iters_lo) for one library, one repeat."""
    times, iters = {}, {}
    for n_iter in (lo, hi):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            iters[n_iter] = lib.fit(X, start, covariance_type, n_iter, n_threads)
            times[n_iter] = time.perf_counter() - t0
    if iters[hi] <= iters[lo]:
        return float("nan"), iters
    return (times[hi] - times[lo]) / (iters[hi] - iters[lo]), iters


def _worker(name, conn):
    """One library per process: thread pools and BLAS copies of one library
    never spin beside another's, and each keeps its own data in memory."""
    libs, _ = available_libraries([name])
    lib = libs[0]
    cache = {}
    while True:
        msg = conn.recv()
        if msg is None:
            return
        (n_samples, n_features, n_components, dtype, covariance_type,
         n_threads, lo, hi) = msg
        key = (n_samples, n_features, n_components, dtype)
        if key not in cache:
            cache.clear()
            cache[key] = make_data(n_samples, n_features, n_components, np.dtype(dtype).type)
        X, means0 = cache[key]
        try:
            conn.send(time_library(lib, X, start_for(covariance_type, means0),
                                   covariance_type, n_threads, lo, hi))
        except Exception as exc:  # report, keep serving
            conn.send((float("nan"), {"error": f"{type(exc).__name__}: {exc}"}))


class Worker:
    def __init__(self, name):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.name = name
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(name, child), daemon=True)
        self.proc.start()

    def time(self, *args):
        self.conn.send(args)
        return self.conn.recv()

    def close(self):
        self.conn.send(None)
        self.proc.join(timeout=30)


def run(grid, libraries, threads, covariance_types, dtypes, repeats, lo, hi, out, pause=0.2):
    workers = {lib.name: Worker(lib.name) for lib in libraries}
    rows = []
    try:
        for (n_samples, n_features, n_components) in grid:
            for dtype in dtypes:
                for covariance_type in covariance_types:
                    libs = [lib.name for lib in libraries
                            if lib.supports(covariance_type, dtype)]
                    for n_threads in threads:
                        args = (n_samples, n_features, n_components, np.dtype(dtype).name,
                                covariance_type, n_threads)
                        for name in libs:  # warm-up (imports, pools, page faults)
                            workers[name].time(*args, 1, 2)
                            time.sleep(pause)
                        samples = {name: [] for name in libs}
                        reported = {}
                        for _ in range(repeats):
                            for name in libs:  # alternate A B A B ...
                                t, iters = workers[name].time(*args, lo, hi)
                                samples[name].append(t)
                                reported[name] = iters
                                time.sleep(pause)  # let idle pools stop spinning
                        med = {name: float(np.nanmedian(v)) if np.any(np.isfinite(v))
                               else float("nan") for name, v in samples.items()}
                        row = dict(n=n_samples, d=n_features, k=n_components,
                                   dtype=np.dtype(dtype).name, cov=covariance_type,
                                   threads=n_threads, med=med, reported=reported)
                        rows.append(row)
                        out(format_row(row, [lib.name for lib in libraries]))
    finally:
        for w in workers.values():
            w.close()
    return rows


def format_ms(seconds):
    if not np.isfinite(seconds):
        return "—"
    return f"{seconds * 1e3:.3g} ms" if seconds < 10 else f"{seconds:.3g} s"


def table_header(names):
    cols = ["N, D, K", "type", "dtype", "threads"] + names + [
        f"{n} / gmmfast" for n in names if n != "gmmfast"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def format_row(row, names):
    med = row["med"]
    g = med.get("gmmfast", float("nan"))
    cells = [f"{row['n']:,}, {row['d']}, {row['k']}", row["cov"], row["dtype"],
             str(row["threads"])]
    cells += [format_ms(med.get(n, float("nan"))) for n in names]
    for n in names:
        if n == "gmmfast":
            continue
        t = med.get(n, float("nan"))
        cells.append(f"{t / g:.1f}×" if np.isfinite(t) and np.isfinite(g) else "—")
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the grid at N/10 (default)")
    size.add_argument("--full", action="store_true", help="the speed issue's grid")
    p.add_argument("--threads", default="1,2", help="comma list (default 1,2)")
    p.add_argument("--types", default="full", help="covariance types, comma list or 'all'")
    p.add_argument("--dtypes", default="float64", help="float64,float32")
    p.add_argument("--libs", default="all", help="comma list of " + ",".join(LIBRARIES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", default=None, help="indices of grid rows to run, e.g. 0,2")
    p.add_argument("--lo", type=int, default=2)
    p.add_argument("--hi", type=int, default=6)
    p.add_argument("--name", default=None, help="results file name (bench/results/NAME.md)")
    args = p.parse_args(argv)

    grid = FULL_GRID if args.full else QUICK_GRID
    if args.rows:
        grid = [grid[int(i)] for i in args.rows.split(",")]
    types = (["full", "tied", "diag", "spherical"] if args.types == "all"
             else args.types.split(","))
    dtypes = [np.dtype(d).type for d in args.dtypes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    wanted = None if args.libs == "all" else args.libs.split(",")
    libraries, missing = available_libraries(wanted)

    lines = []

    def out(line=""):
        print(line, flush=True)
        lines.append(line)

    out("# Seconds per EM iteration, same start, median of %d repeats" % args.repeats)
    out()
    for line in blas_header():
        out("    " + line)
    for name, why in missing:
        out(f"    not run: {name} ({why})")
    out(f"    per-iteration = (t({args.hi}) - t({args.lo})) / (iterations reported)")
    out()
    names = [lib.name for lib in libraries]
    out(table_header(names))
    run(grid, libraries, threads, types, dtypes, args.repeats, args.lo, args.hi, out)

    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = args.name or ("full" if args.full else "quick")
    path = os.path.join(HERE, "results", f"{name}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
