"""The k-means start and whole fits with every default, side by side with
scikit-learn, and the memory of a memmap fit with defaults.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/kmeans_start.py
    ... --scale 0.01 --repeats 1 --memmap-rows 100000      # a smoke run
    ... --big                                               # the 10^8 x 8 memmap

Rows (1,000,000 rows at --scale 1):

1. k-means alone, N x 16, K = 8: scikit-learn's ``KMeans(n_clusters=8,
   n_init=1, random_state=0).fit(X)`` against gmmfast's streamed k-means
   (``gmmfast._kmeans.kmeans``), with the largest centre difference, whether
   the labels and n_iter are equal;
2. whole fits with defaults, ``GaussianMixture(K, random_state=0).fit(X)``,
   N x 16 x 8 and N x 2 x 2, with both n_iter_ and the lower-bound
   difference;
3. a memmap fit with defaults (``--memmap-rows`` x 8 float64, 10^7 by
   default, 10^8 with ``--big``: 6.4 GB on disk) in a fresh process, which
   reports its peak anonymous resident memory (RssAnon sampled every 20 ms:
   what the fit allocates, the mapped file's page cache excluded) and its
   peak RSS (VmHWM, which counts the file pages it touched).

Libraries alternate within a repeat (A B A B ...); medians over repeats and
their ratio. Check ``uptime`` first (bench/README.md: a quiet machine, or no
figure); the header prints threadpoolctl's BLAS/OpenMP configuration.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def make_data(n_samples, n_features, n_components, seed=0, dtype=np.float64):
    """Overlapping blobs: centres at scale 3/sqrt(D), unit noise."""
    rng = np.random.default_rng(seed)
    centres = 3.0 / np.sqrt(n_features) * rng.normal(size=(n_components, n_features))
    labels = rng.integers(0, n_components, n_samples)
    X = rng.normal(size=(n_samples, n_features))
    X += centres[labels]
    return X.astype(dtype, copy=False)


def _timed(func):
    t0 = time.perf_counter()
    out = func()
    return time.perf_counter() - t0, out


def _alternate(funcs, repeats, pause=0.2):
    """{name: [seconds...]} and the last output of each, A B A B ..."""
    times = {name: [] for name in funcs}
    outs = {}
    for _ in range(repeats):
        for name, func in funcs.items():
            t, outs[name] = _timed(func)
            times[name].append(t)
            time.sleep(pause)
    return times, outs


def _row(label, times, extra):
    sk, gm = np.median(times["scikit-learn"]), np.median(times["gmmfast"])
    print(f"| {label} | {sk:.3f} s | {gm:.3f} s | {sk / gm:.1f}x | {extra} |", flush=True)
    return dict(label=label, sklearn_s=sk, gmmfast_s=gm, ratio=sk / gm, check=extra)


def bench_kmeans(n_samples, repeats, n_threads):
    from sklearn.cluster import KMeans

    from gmmfast import _kmeans
    from gmmfast._threads import resolve_n_threads

    X = make_data(n_samples, 16, 8)
    n_threads = resolve_n_threads(n_threads)
    funcs = {
        "scikit-learn": lambda: KMeans(n_clusters=8, n_init=1, random_state=0).fit(X),
        "gmmfast": lambda: _kmeans.kmeans(_kmeans.ArrayBlocks(X, None, n_threads), 8,
                                          np.random.RandomState(0)),
    }
    times, outs = _alternate(funcs, repeats)
    sk, km = outs["scikit-learn"], outs["gmmfast"]
    labels_equal = bool(np.array_equal(km.labels(X), sk.labels_))
    check = (f"max |centre diff| {np.abs(km.centres - sk.cluster_centers_).max():.1e}, "
             f"labels equal {labels_equal}, n_iter {km.n_iter} / {sk.n_iter_}")
    return _row(f"k-means alone, {n_samples:,} x 16, K=8", times, check)


def bench_fit(n_samples, n_features, n_components, repeats, n_threads):
    from sklearn.mixture import GaussianMixture as SK

    from gmmfast import GaussianMixture as GM

    X = make_data(n_samples, n_features, n_components, seed=1)
    funcs = {
        "scikit-learn": lambda: SK(n_components, random_state=0).fit(X),
        "gmmfast": lambda: GM(n_components, random_state=0, n_threads=n_threads).fit(X),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times, outs = _alternate(funcs, repeats)
    sk, gm = outs["scikit-learn"], outs["gmmfast"]
    check = (f"n_iter_ {gm.n_iter_} / {sk.n_iter_}, "
             f"|lower bound diff| {abs(gm.lower_bound_ - sk.lower_bound_):.1e}")
    return _row(f"fit with defaults, {n_samples:,} x {n_features} x {n_components}",
                times, check)


# --- the memmap fit, in its own process -------------------------------------

CHILD = r"""
import json, sys, threading, time, warnings
import numpy as np
sys.path.insert(0, {root!r})
from gmmfast import GaussianMixture

def rss_anon_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return -1

X = np.load({path!r}, mmap_mode="r")
base = rss_anon_kib()
peak = [base]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_anon_kib())
        time.sleep(0.02)
t = threading.Thread(target=sample, daemon=True)
t.start()
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    gm = GaussianMixture(8, random_state=0, n_threads={n_threads}).fit(X)
seconds = time.perf_counter() - t0
done.set(); t.join()
peak[0] = max(peak[0], rss_anon_kib())
hwm = -1
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
print(json.dumps(dict(seconds=seconds, n_iter=gm.n_iter_, base_anon_kib=base,
                      peak_anon_kib=peak[0], vm_hwm_kib=hwm)))
"""


def write_memmap(path, n_samples, n_features=8, block=1_000_000):
    """An .npy of blobs written block by block (never whole in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64,
                                    shape=(n_samples, n_features))
    for a in range(0, n_samples, block):
        b = min(a + block, n_samples)
        out[a:b] = make_data(b - a, n_features, 8, seed=a)
    out.flush()
    del out


def bench_memmap(n_samples, n_threads, directory=None):
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = os.path.join(tmp, "x.npy")
        write_memmap(path, n_samples)
        code = CHILD.format(root=ROOT, path=path, n_threads=n_threads)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        out = json.loads(res.stdout.strip().splitlines()[-1])
    grown = (out["peak_anon_kib"] - out["base_anon_kib"]) / 1024
    print(f"| memmap fit with defaults, {n_samples:,} x 8 float64 "
          f"({n_samples * 64 / 1e9:.2f} GB) | {out['seconds']:.2f} s, n_iter_ "
          f"{out['n_iter']} | peak anonymous RSS {out['peak_anon_kib'] / 1024:.0f} MiB "
          f"(+{grown:.0f} MiB during the fit) | peak RSS with file pages "
          f"{out['vm_hwm_kib'] / 1024:.0f} MiB |", flush=True)
    return dict(n_samples=n_samples, **out)


def header(n_threads):
    import threadpoolctl

    import gmmfast

    print(f"# k-means start and default fits ({time.strftime('%Y-%m-%d %H:%M')})")
    print(f"gmmfast {gmmfast.__file__}, n_threads={n_threads}; load {os.getloadavg()}")
    for info in threadpoolctl.threadpool_info():
        print(f"  {info.get('internal_api')} {info.get('version')} "
              f"threads={info.get('num_threads')}")
    A = np.random.default_rng(0).normal(size=(2048, 2048))
    A @ A
    best = min(_timed(lambda: A @ A)[0] for _ in range(3))
    print(f"  dgemm {2 * 2048 ** 3 / best / 1e9:.1f} GFLOP/s (every BLAS thread); "
          "rerun when this is low (a shared machine)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="rows as a fraction of 1,000,000 (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="gmmfast n_threads (default: every core)")
    parser.add_argument("--memmap-rows", type=int, default=10**7)
    parser.add_argument("--big", action="store_true", help="the memmap at 10^8 rows")
    parser.add_argument("--no-memmap", action="store_true")
    parser.add_argument("--tmpdir", default=None, help="where the memmap file goes")
    args = parser.parse_args(argv)
    n = max(1000, int(round(1_000_000 * args.scale)))
    header(args.threads)
    print("\n| row | scikit-learn | gmmfast | ratio | check |\n|---|---|---|---|---|")
    rows = [bench_kmeans(n, args.repeats, args.threads),
            bench_fit(n, 16, 8, args.repeats, args.threads),
            bench_fit(n, 2, 2, args.repeats, args.threads)]
    if not args.no_memmap:
        print()
        rows.append(bench_memmap(10**8 if args.big else args.memmap_rows, args.threads,
                                 args.tmpdir))
    return rows


if __name__ == "__main__":
    main()
