"""Rows per second per EM iteration at scale: in memory, memmap and Dask.

The same data set, written once to a .npy file (in blocks: never held in
memory whole), is fitted four ways from the same start (perturbed centres,
identity precisions, tol disabled):

    in-memory     np.load(path)                      (the whole array in RAM)
    memmap        np.load(path, mmap_mode='r')       (read in place, out of core)
    dask-npy      a Dask array whose chunks the workers read from the file
                  at every iteration (out of core on the cluster)
    dask-persist  the same Dask array persisted in the workers' memory

per-iteration = (t(hi) - t(lo)) / (n_iter(hi) - n_iter(lo)), which removes
the fixed costs (validation, graph set-up, cluster round trips of the
start); rows/s = n_samples / per-iteration. Modes alternate within a repeat,
the table gives medians. In-memory and dask-persist are skipped for sizes
above --max-memory-fraction of the memory available at start.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/scale.py          # --quick
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/scale.py --full   # to 1e8 rows
    python bench/scale.py --scheduler tcp://10.0.0.1:8786 --tmpdir /shared/scratch

--quick (default): 1e5 and 1e6 rows x 8 features (about a minute).
--full: 1e6, 1e7 and 1e8 rows x 8 features; the 1e8 file is 6.4 GB (float64)
        in --tmpdir (checked against the free disk space first).
Without --scheduler a LocalCluster is started (--workers processes with
--threads-per-worker threads, no dashboard). With --scheduler ADDRESS the
existing cluster is used: its workers must import gmmfast, and for the
'npy' source they must see --tmpdir (a shared filesystem); else use
--dask-source generate (data generated and persisted on the workers).

Writes bench/results/scale-<quick|full|custom>.md and prints it.
"""
import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import blas_header, start_for  # noqa: E402

QUICK_SIZES = [100_000, 1_000_000]
FULL_SIZES = [1_000_000, 10_000_000, 100_000_000]
MODES = ["in-memory", "memmap", "dask-npy", "dask-persist"]
WRITE_BLOCK = 1_000_000  # rows generated and written at a time


# ---------------------------------------------------------------------------
# Data: written to disk in blocks
# ---------------------------------------------------------------------------

def mixture(n_features, n_components, seed):
    """Centres (scale 3/sqrt(D)) and a perturbed start, as bench/run.py."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0 / np.sqrt(n_features), size=(n_components, n_features))
    means0 = centers + rng.normal(scale=1.0 / np.sqrt(n_features), size=centers.shape)
    return centers, means0


def draw_rows(centers, n_rows, seed, dtype):
    """n_rows from the mixture (unit noise), generated with ``seed``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, centers.shape[0], n_rows)
    return (centers[labels] + rng.normal(size=(n_rows, centers.shape[1]))).astype(dtype)


def write_npy(path, n_samples, centers, dtype, seed):
    """The data set as a .npy file, WRITE_BLOCK rows at a time."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype,
                                    shape=(n_samples, centers.shape[1]))
    for i, a in enumerate(range(0, n_samples, WRITE_BLOCK)):
        b = min(n_samples, a + WRITE_BLOCK)
        out[a:b] = draw_rows(centers, b - a, seed + 1 + i, dtype)
    out.flush()
    del out


def available_memory():
    """Bytes of memory available now (Linux MemAvailable; else total)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# ---------------------------------------------------------------------------
# Dask arrays over the file, or generated on the workers
# ---------------------------------------------------------------------------

def load_rows(path, start, stop):
    """Rows [start, stop) of a .npy file, read in place on the worker."""
    return np.load(path, mmap_mode="r")[start:stop]


def dask_from_npy(path, n_samples, n_features, dtype, chunk_rows):
    import dask
    import dask.array as da

    blocks = []
    for a in range(0, n_samples, chunk_rows):
        b = min(n_samples, a + chunk_rows)
        part = dask.delayed(load_rows, pure=True)(path, a, b)
        blocks.append(da.from_delayed(part, shape=(b - a, n_features), dtype=dtype))
    return da.concatenate(blocks, axis=0)


def dask_generated(centers, n_samples, dtype, chunk_rows, seed):
    import dask
    import dask.array as da

    blocks = []
    for i, a in enumerate(range(0, n_samples, chunk_rows)):
        b = min(n_samples, a + chunk_rows)
        part = dask.delayed(draw_rows, pure=True)(centers, b - a, seed + 1 + i, dtype)
        blocks.append(da.from_delayed(part, shape=(b - a, centers.shape[1]), dtype=dtype))
    return da.concatenate(blocks, axis=0)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def fit_iterations(X, start, covariance_type, n_iter, n_threads):
    from gmmfast import GaussianMixture

    gm = GaussianMixture(len(start["weights_init"]), covariance_type=covariance_type,
                         tol=0.0, max_iter=n_iter, n_threads=n_threads, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        gm.fit(X)
        return time.perf_counter() - t0, gm.n_iter_


def per_iteration(X, start, covariance_type, n_threads, lo, hi):
    t_lo, it_lo = fit_iterations(X, start, covariance_type, lo, n_threads)
    t_hi, it_hi = fit_iterations(X, start, covariance_type, hi, n_threads)
    if it_hi <= it_lo:
        return float("nan")
    return (t_hi - t_lo) / (it_hi - it_lo)


def fmt_rate(rows_per_s):
    if not math.isfinite(rows_per_s):
        return "—"
    return f"{rows_per_s / 1e6:.3g} M"


def fmt_seconds(seconds):
    if not math.isfinite(seconds):
        return "—"
    return f"{seconds * 1e3:.3g} ms" if seconds < 10 else f"{seconds:.3g} s"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="1e5 and 1e6 rows (default; about a minute)")
    size.add_argument("--full", action="store_true",
                      help="1e6, 1e7, 1e8 rows (the 1e8 file: 6.4 GB at D=8, float64)")
    p.add_argument("--sizes", default=None, help="comma list of n_samples (overrides)")
    p.add_argument("--n-features", type=int, default=8)
    p.add_argument("--n-components", type=int, default=4)
    p.add_argument("--covariance-type", default="full")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--modes", default=",".join(MODES), help="comma list of " + ",".join(MODES))
    p.add_argument("--n-threads", type=int, default=None,
                   help="OpenMP threads of the in-memory/memmap fits (default: all cores)")
    p.add_argument("--scheduler", default=None,
                   help="address of an existing Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--threads-per-worker", type=int, default=1)
    p.add_argument("--chunk-rows", type=int, default=None,
                   help="Dask chunk rows (default: n/(4 x cluster threads), at most 1.25e6)")
    p.add_argument("--dask-source", choices=["npy", "generate"], default="npy",
                   help="'npy': workers read the file (needs a shared filesystem on a "
                   "remote cluster); 'generate': generated and persisted on the workers")
    p.add_argument("--tmpdir", default=None, help="where the .npy files go")
    p.add_argument("--keep", action="store_true", help="keep the .npy files")
    p.add_argument("--max-memory-fraction", type=float, default=0.25,
                   help="skip in-memory and dask-persist above this fraction of the "
                   "memory available at start")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lo", type=int, default=None, help="default 2 (quick), 1 (full)")
    p.add_argument("--hi", type=int, default=None, help="default 6 (quick), 3 (full)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import dask
    import distributed

    import gmmfast
    from gmmfast._threads import resolve_n_threads

    sizes = ([int(float(s)) for s in args.sizes.split(",")] if args.sizes
             else FULL_SIZES if args.full else QUICK_SIZES)
    lo = args.lo if args.lo is not None else (1 if args.full else 2)
    hi = args.hi if args.hi is not None else (3 if args.full else 6)
    modes = args.modes.split(",")
    if args.dask_source == "generate":
        modes = [m for m in modes if m != "dask-npy"]
    dtype = np.dtype(args.dtype)
    n_features, n_components = args.n_features, args.n_components
    itemsize_row = dtype.itemsize * n_features
    tmpdir = tempfile.mkdtemp(prefix="gmmfast-scale-", dir=args.tmpdir)
    mem_start = available_memory()

    lines = []

    def out(line=""):
        print(line, flush=True)
        lines.append(line)

    # before a LocalCluster exists: it sets OMP_NUM_THREADS=1 in this process
    # too (distributed's pre-spawn environment), which would then hold the
    # in-memory fits of a later-loaded OpenMP runtime to one thread
    omp_env = os.environ.get("OMP_NUM_THREADS")
    n_threads = resolve_n_threads(args.n_threads)
    load_start = os.getloadavg()
    if args.scheduler:
        client = distributed.Client(args.scheduler)
        cluster = None
    else:
        cluster = distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=args.threads_per_worker,
            processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    info = client.scheduler_info()
    workers = info.get("workers", {})
    cluster_threads = sum(w.get("nthreads", 1) for w in workers.values()) or 1
    cluster_memory = sum(w.get("memory_limit", 0) or 0 for w in workers.values())

    out("# Rows per second per EM iteration: in memory, memmap, Dask")
    out()
    for line in blas_header():
        out("    " + line)
    out(f"    dask {dask.__version__}, distributed {distributed.__version__}; "
        f"cluster: {args.scheduler or 'LocalCluster (processes)'} with {len(workers)} "
        f"workers, {cluster_threads} threads, "
        f"{cluster_memory / 2**30:.1f} GiB memory limit; 1 kernel thread per Dask task")
    out(f"    in-memory/memmap n_threads={n_threads}; OMP_NUM_THREADS={omp_env}; "
        "load average at start %.2f %.2f %.2f" % load_start)
    out(f"    D={n_features}, K={n_components}, covariance_type={args.covariance_type}, "
        f"{dtype.name}; memory available at start {mem_start / 2**30:.1f} GiB; "
        f"files in {tmpdir}")
    out(f"    sizes {', '.join(f'{n:,}' for n in sizes)} rows; largest file "
        f"{max(sizes) * itemsize_row / 1e9:.2f} GB (one file on disk at a time)")
    out(f"    per-iteration = (t({hi}) - t({lo})) / (iterations reported); "
        f"median of {args.repeats}, modes alternating")
    out()
    out("| N | file | mode | chunks | s / iteration | rows / s | vs in-memory |")
    out("|---|---|---|---|---|---|---|")

    centers, means0 = mixture(n_features, n_components, args.seed)
    start = start_for(args.covariance_type, means0)
    try:
        for n_samples in sizes:
            nbytes = n_samples * itemsize_row
            need = nbytes * 1.02 + 2**20
            free = shutil.disk_usage(tmpdir).free
            path = None
            if args.dask_source == "npy" or "memmap" in modes or "in-memory" in modes:
                if free < need:
                    out(f"| {n_samples:,} | {nbytes / 1e9:.2f} GB | not run: "
                        f"{free / 1e9:.1f} GB free in {tmpdir} | | | | |")
                    continue
                path = os.path.join(tmpdir, f"x_{n_samples}_{n_features}_{dtype.name}.npy")
                write_npy(path, n_samples, centers, dtype, args.seed)
            chunk_rows = args.chunk_rows or max(
                1, min(1_250_000, math.ceil(n_samples / (4 * cluster_threads))))
            fits_memory = nbytes <= args.max_memory_fraction * mem_start
            sources = {}
            skipped = {}
            X = None
            for mode in modes:
                if mode in ("in-memory", "dask-persist") and not fits_memory:
                    skipped[mode] = (f"skipped: {nbytes / 1e9:.2f} GB > "
                                     f"{args.max_memory_fraction:g} x available memory")
                    continue
                if mode == "dask-persist" and cluster_memory and nbytes > 0.5 * cluster_memory:
                    skipped[mode] = "skipped: over half the cluster's memory limit"
                    continue
                if mode == "in-memory":
                    sources[mode] = np.load(path)
                elif mode == "memmap":
                    sources[mode] = np.load(path, mmap_mode="r")
                elif mode == "dask-npy":
                    sources[mode] = dask_from_npy(path, n_samples, n_features, dtype,
                                                  chunk_rows)
                elif mode == "dask-persist":
                    X = (dask_generated(centers, n_samples, dtype, chunk_rows, args.seed)
                         if args.dask_source == "generate"
                         else dask_from_npy(path, n_samples, n_features, dtype, chunk_rows))
                    X = X.persist()
                    distributed.wait(X)
                    sources[mode] = X
            for mode, X in sources.items():  # warm-up: imports, page cache, workers
                fit_iterations(X, start, args.covariance_type, 1, n_threads)
            samples = {mode: [] for mode in sources}
            for _ in range(args.repeats):
                for mode, X in sources.items():  # alternate A B C ...
                    samples[mode].append(per_iteration(X, start, args.covariance_type,
                                                       n_threads, lo, hi))
            med = {m: statistics.median(v) for m, v in samples.items()}
            for mode in modes:
                if mode in skipped:
                    out(f"| {n_samples:,} | {nbytes / 1e9:.2g} GB | {mode} | | "
                        f"{skipped[mode]} | | |")
                    continue
                t = med[mode]
                ref = med.get("in-memory", float("nan"))
                chunks = (f"{math.ceil(n_samples / chunk_rows)} x {chunk_rows:,}"
                          if mode.startswith("dask") else "")
                ratio = (f"{ref / t:.2f}×" if math.isfinite(ref) and math.isfinite(t)
                         and mode != "in-memory" else "")
                out(f"| {n_samples:,} | {nbytes / 1e9:.2g} GB | {mode} | {chunks} | "
                    f"{fmt_seconds(t)} | {fmt_rate(n_samples / t)} | {ratio} |")
            del sources, X  # release the in-memory copy and the persisted chunks
            if path is not None and not args.keep:
                os.remove(path)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        if not args.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)

    out()
    out("load average at the end: %.2f %.2f %.2f" % os.getloadavg())
    out("rows / s: n_samples / (seconds per iteration), M = 10^6; "
        "'vs in-memory' > 1 is faster than in memory")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = "custom" if args.sizes else "full" if args.full else "quick"
    path = os.path.join(HERE, "results", f"scale-{name}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
