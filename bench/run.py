"""Seconds per EM iteration: gmmfast side by side with scikit-learn and peers.

Method (bench/README.md): overlapping components (centres at scale
3/sqrt(D), unit noise), the same start for every library that takes one
(perturbed centres, identity covariances, equal weights), tol disabled, and

    per-iteration = (t(hi) - t(lo)) / (iters(hi) - iters(lo))

with the iteration counts each library reports. Each library runs in its own
worker process (no library's thread pool spins beside another's); libraries
alternate within a repeat (A B A B ...), with a pause between calls; tables
give medians over repeats and ratios.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py            # quick
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py --full
    ... --types all --dtypes float64,float32 --libs gmmfast,scikit-learn,oneDAL
    ... --predict          # predict / predict_proba / score_samples instead
    ... --bgm              # BayesianGaussianMixture (gmmfast's and scikit-learn's)
    ... --many             # the many-component rows (K = 64 - 1024)
    ... --small            # whole fits with defaults, and select(), vs scikit-learn
    ... --bgm-vs-gm        # GaussianMixture and BayesianGaussianMixture in one run

Writes bench/results/NAME.md (tables), NAME.json (raw medians) and, for EM
runs, NAME.png (speed-up over each peer against D).

The machine limit column: the GEMM-shaped flops of one iteration at this
machine's measured GEMM rate for the thread count and the row's dtype (sgemm
for float32, dgemm for float64), or one read of X (4 or 8 bytes a value) at
the measured read bandwidth if that is longer. Flops per iteration (two per
multiply-add; ``gemm_flops``): full 2 N K D^2 (triangular product and
symmetric update) + 4 N K D; tied 2 N D^2 + 4 N K D; diag and spherical
four GEMMs of N K D (the log-densities as X^2 L^T and X (M L)^T, the
statistics R^T X and R^T X^2): 8 N K D.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from peers import LIBRARIES, available_libraries  # noqa: E402

from quickbench import make_data as _make_data, start_for  # noqa: E402

# (n_samples, n_features, n_components): the speed issue's grid
FULL_GRID = [
    (100_000, 2, 2),
    (1_000_000, 2, 4),
    (200_000, 16, 8),
    (100_000, 64, 16),
    (20_000, 256, 8),
]
QUICK_GRID = [(n // 10, d, k) for (n, d, k) in FULL_GRID]
# (n_samples, n_features, n_components, covariance_type, dtype): many
# components (speech UBMs, Fisher-vector and IVF codebooks), --many
MANY_ROWS = [
    (100_000, 40, 256, "diag", "float64"),
    (100_000, 40, 256, "diag", "float32"),
    (50_000, 64, 256, "diag", "float32"),
    (100_000, 16, 512, "spherical", "float64"),
    (50_000, 32, 64, "full", "float64"),
    (50_000, 128, 1024, "diag", "float32"),
]
# whole fits with every default (k-means start, tol=1e-3), --small:
# (kind, n_samples, n_features, n_components or the candidates, covariance_type,
#  calls per repeat)
SMALL_CASES = [
    ("fit", 200, 2, 3, "full", 30),
    ("fit", 2_000, 4, 3, "full", 20),
] + [("select", 2_000, 2, tuple(range(1, 10)), cov, 2)
     for cov in ("full", "tied", "diag", "spherical")]
SLOW_ITERATION = 0.4  # seconds: slower libraries time 1 -> 3 iterations


def make_data(n_samples, n_features, n_components, dtype, seed=0):
    return _make_data(n_samples, n_features, n_components, seed=seed, dtype=dtype)


# ---------------------------------------------------------------------------
# Machine facts
# ---------------------------------------------------------------------------

def blas_header():
    import threadpoolctl

    import gmmfast

    lines = [
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"machine: {platform.machine()} {_cpu_model()}, {os.cpu_count()} cpus; "
        f"python {platform.python_version()}, numpy {np.__version__}",
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


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def measure_machine(threads):
    """dgemm flop/s and exp/s per thread count, and read bandwidth (B/s)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    A = rng.normal(size=(2048, 2048))
    A32 = A.astype(np.float32)
    rates = {}
    for n in threads:
        rates[n] = {}
        with threadpool_limits(n, user_api="blas"):
            for name, M in (("dgemm", A), ("sgemm", A32)):
                M @ M
                best = min(_timed(lambda: M @ M) for _ in range(3))
                rates[n][name] = 2 * 2048**3 / best
    big = rng.normal(size=32_000_000)
    bandwidth = big.nbytes / min(_timed(lambda: big.sum()) for _ in range(3))
    for n in threads:
        rates[n]["exp"] = _exp_rate(n, rng)
    return {"threads": rates, "bandwidth": bandwidth}


def _exp_rate(n_threads, rng):
    """exp() per second with n_threads Python threads at once, each on its own
    array (numpy's exp releases the GIL): measured, never assumed to scale."""
    from concurrent.futures import ThreadPoolExecutor

    parts = [-np.abs(rng.normal(size=4_000_000)) * 10 for _ in range(n_threads)]
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        def run():
            list(pool.map(np.exp, parts))
        run()
        best = min(_timed(run) for _ in range(5))
    return sum(p.size for p in parts) / best


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def gemm_flops(n_samples, n_features, n_components, covariance_type):
    """GEMM-shaped flops of one EM iteration (module docstring)."""
    n, d, k = float(n_samples), float(n_features), float(n_components)
    if covariance_type == "full":
        return 2.0 * n * k * d * d + 4.0 * n * k * d
    if covariance_type == "tied":
        return 2.0 * n * d * d + 4.0 * n * k * d
    return 8.0 * n * k * d  # diag, spherical


def machine_limit(machine, n_samples, n_features, n_components, n_threads,
                  covariance_type="full", dtype="float64"):
    """Seconds per iteration at the measured GEMM rate of the dtype, or one
    read of X if that is longer."""
    r = machine["threads"][n_threads]
    single = np.dtype(dtype) == np.float32
    compute = (gemm_flops(n_samples, n_features, n_components, covariance_type)
               / r["sgemm" if single else "dgemm"])
    read = n_samples * n_features * (4 if single else 8) / machine["bandwidth"]
    return max(compute, read)


# ---------------------------------------------------------------------------
# Timing, one library per worker process
# ---------------------------------------------------------------------------

def time_library(lib, X, start, covariance_type, n_threads, lo, hi):
    """(t_hi - t_lo) / (iters_hi - iters_lo) for one library, one repeat."""
    times, iters = {}, {}
    for n_iter in (lo, hi):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            iters[n_iter] = lib.fit(X, start, covariance_type, n_iter, n_threads)
            times[n_iter] = time.perf_counter() - t0
            if iters[n_iter] is None:  # not reported: read off the results, untimed
                iters[n_iter] = lib.count_iterations(X, start, covariance_type, n_iter,
                                                     n_threads)
    if iters[hi] <= iters[lo]:
        return float("nan"), iters
    return (times[hi] - times[lo]) / (iters[hi] - iters[lo]), iters


def time_predict(lib, X, start, covariance_type, n_threads, method, repeats=5):
    """Median seconds of one ``method`` call on X (model fitted in 3 iterations)."""
    model = lib.fitted_model(X, start, covariance_type, 3, n_threads)
    getattr(model, method)(X)
    times = [_timed(lambda: lib.call(model, method, X, n_threads)) for _ in range(repeats)]
    return float(np.median(times)), None


def time_whole(lib, X, case, n_threads, calls, seed0):
    """Seconds of each of ``calls`` whole fits (or select calls) with seeds
    seed0, seed0 + 1, ...; and what each returned (n_iter_ or the chosen K).

    The thread limits are set once around all the calls, for either library
    alike: a threadpoolctl limit costs milliseconds (it inspects every loaded
    library), as much as a whole small fit, and a user sets it once if at all.
    """
    from threadpoolctl import threadpool_limits

    kind, _, _, n_components, covariance_type, _ = case
    times, answers = [], []
    with threadpool_limits(n_threads):
        _whole_calls(lib, X, kind, n_components, covariance_type, n_threads,
                     range(seed0, seed0 + calls), times, answers)
    return times, answers


def _whole_calls(lib, X, kind, n_components, covariance_type, n_threads, seeds, times,
                 answers):
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            if kind == "fit":
                answer = lib.whole_fit(X, n_components, seed, n_threads)
            else:
                answer = lib.select(X, n_components, covariance_type, seed, n_threads)
            times.append(time.perf_counter() - t0)
        answers.append(answer)
    return times, answers


def _worker(name, conn, bgm=False):
    libs, _ = available_libraries([name], bgm=bgm)
    lib = libs[0]
    cache = {}
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, (n_samples, n_features, n_components, dtype, covariance_type,
               n_threads), extra = msg
        # whole fits: the data of 3 components (select: whatever the candidates)
        n_data = n_components if isinstance(n_components, int) else 3
        key = (n_samples, n_features, n_data, dtype)
        if key not in cache:
            cache.clear()
            cache[key] = make_data(n_samples, n_features, n_data, np.dtype(dtype).type)
        X, means0 = cache[key]
        start = start_for(covariance_type, means0)
        try:
            if kind == "whole":
                case, calls, seed0 = extra
                conn.send(time_whole(lib, X, case, n_threads, calls, seed0))
            elif kind == "fit":
                conn.send(time_library(lib, X, start, covariance_type, n_threads, *extra))
            else:
                conn.send(time_predict(lib, X, start, covariance_type, n_threads, extra))
        except Exception as exc:  # report, keep serving
            conn.send((float("nan"), {"error": f"{type(exc).__name__}: {exc}"}))


class Worker:
    def __init__(self, name, bgm=False):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.name = name
        self.bgm = bgm
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(name, child, bgm), daemon=True)
        self.proc.start()

    def ask(self, kind, args, extra):
        """The worker's answer; a worker that died (a library that aborts
        the process, e.g. mlpack's fatal errors) answers NaN with the reason,
        and a fresh worker takes the next question."""
        try:
            self.conn.send((kind, args, extra))
            return self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self.proc.join(timeout=5)
            code = self.proc.exitcode
            self.__init__(self.name, self.bgm)
            if kind == "whole":
                return [float("nan")], [None]
            return float("nan"), {"error": f"the {self.name} worker died (exit code {code})"}

    def close(self):
        try:
            self.conn.send(None)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.proc.join(timeout=30)


def choose_span(worker, args, target=0.3):
    """(lo, hi) iterations for one library: hi - lo iterations take about
    ``target`` seconds (at least 4, at most 400), so that the difference is
    well above the timer's noise; slow libraries time 1 -> 3."""
    t, _ = worker.ask("fit", args, (1, 2))  # warm-up, and a first estimate
    if np.isfinite(t) and t > SLOW_ITERATION:
        return (1, 3)
    t, _ = worker.ask("fit", args, (2, 6))
    if np.isfinite(t) and t > SLOW_ITERATION:
        return (1, 3)
    per_iter = t if np.isfinite(t) and t > 0 else 1e-4
    return (2, 2 + int(min(400, max(4, np.ceil(target / per_iter)))))


def grid_cases(grid, covariance_types, dtypes):
    """(n_samples, n_features, n_components, covariance_type, dtype) of every
    grid row, dtype and covariance type, in the tables' order."""
    return [(n, d, k, cov, np.dtype(dtype).name) for (n, d, k) in grid
            for dtype in dtypes for cov in covariance_types]


def run_fit(cases, libraries, threads, repeats, out, machine, pause=0.2, bgm=False,
            span=0.3):
    workers = {lib.name: Worker(lib.name, bgm) for lib in libraries}
    names = [lib.name for lib in libraries]
    rows = []
    try:
        for (n_samples, n_features, n_components, covariance_type, dtype) in cases:
            libs = [lib.name for lib in libraries
                    if lib.supports(covariance_type, np.dtype(dtype).type)]
            for n_threads in threads:
                args = (n_samples, n_features, n_components, dtype, covariance_type,
                        n_threads)
                spans = {}
                for name in libs:  # warm-up, and the span to time
                    spans[name] = choose_span(workers[name], args, span)
                    time.sleep(pause)
                samples = {name: [] for name in libs}
                reported = {}
                for _ in range(repeats):
                    for name in libs:  # alternate A B A B ...
                        t, iters = workers[name].ask("fit", args, spans[name])
                        samples[name].append(t)
                        reported[name] = iters
                        time.sleep(pause)  # let idle pools stop spinning
                med = {name: _median(v) for name, v in samples.items()}
                row = dict(n=n_samples, d=n_features, k=n_components, dtype=dtype,
                           cov=covariance_type, threads=n_threads, med=med,
                           reported={k: str(v) for k, v in reported.items()},
                           limit=machine_limit(machine, n_samples, n_features,
                                               n_components, n_threads,
                                               covariance_type, dtype),
                           limit_model="gemm")
                rows.append(row)
                out(format_row(row, names))
    finally:
        for w in workers.values():
            w.close()
    return rows


PAIR_LIBRARIES = ("gmmfast", "scikit-learn")
PAIR_TITLE = ("GaussianMixture and BayesianGaussianMixture in one run: seconds per "
              "iteration, the four alternated in every repeat, medians")


def run_pair(cases, threads, repeats, out, machine, pause=0.2, span=0.3):
    """--bgm-vs-gm: gmmfast and scikit-learn, GaussianMixture and
    BayesianGaussianMixture, the four alternated within every repeat (GM
    gmmfast, GM scikit-learn, BGM gmmfast, BGM scikit-learn, ...), so that
    the two speed-ups of a row are measured under the same load: the
    mixture-module issue asks for BGM's speed-up over scikit-learn to be at
    least GM's at the same shape. Returns the rows (med keyed by 'GM
    gmmfast', ...)."""
    specs = [(f"{model} {lib}", lib, model == "BGM") for model in ("GM", "BGM")
             for lib in PAIR_LIBRARIES]
    workers = {label: Worker(lib, bgm) for label, lib, bgm in specs}
    rows = []
    try:
        for (n_samples, n_features, n_components, covariance_type, dtype) in cases:
            for n_threads in threads:
                args = (n_samples, n_features, n_components, dtype, covariance_type,
                        n_threads)
                spans = {}
                for label, _, _ in specs:
                    spans[label] = choose_span(workers[label], args, span)
                    time.sleep(pause)
                samples = {label: [] for label, _, _ in specs}
                for _ in range(repeats):
                    for label, _, _ in specs:
                        t, _ = workers[label].ask("fit", args, spans[label])
                        samples[label].append(t)
                        time.sleep(pause)
                med = {label: _median(v) for label, v in samples.items()}
                row = dict(n=n_samples, d=n_features, k=n_components, dtype=dtype,
                           cov=covariance_type, threads=n_threads, med=med, pair=True)
                rows.append(row)
                out(format_pair_row(row))
    finally:
        for w in workers.values():
            w.close()
    return rows


def pair_table_header():
    return ("| N, D, K | threads | GM gmmfast | GM scikit-learn | GM speed-up | "
            "BGM gmmfast | BGM scikit-learn | BGM speed-up | BGM / GM speed-up |\n"
            "|---|---|---|---|---|---|---|---|---|")


def format_pair_row(row):
    m = row["med"]
    gm = m["GM scikit-learn"] / m["GM gmmfast"]
    bgm = m["BGM scikit-learn"] / m["BGM gmmfast"]
    return (f"| {row['n']:,}, {row['d']}, {row['k']} | {row['threads']} | "
            f"{format_time(m['GM gmmfast'])} | {format_time(m['GM scikit-learn'])} | "
            f"{gm:.1f}× | {format_time(m['BGM gmmfast'])} | "
            f"{format_time(m['BGM scikit-learn'])} | {bgm:.1f}× | {bgm / gm:.2f} |")


WHOLE_LIBRARIES = ("gmmfast", "scikit-learn")
WHOLE_TITLE = ("Whole fits with defaults (k-means start, tol=1e-3) and select() against "
               "a loop of scikit-learn fits choosing by BIC: median seconds per call "
               "over every call of every repeat")


def run_whole(cases, libraries, threads, repeats, out, pause=0.2):
    """Whole fits with defaults and select() calls, gmmfast against
    scikit-learn: each repeat times every case's ``calls`` calls (seeds
    0, 1, ...; the same seeds in every repeat) of each library in turn
    (A B A B ...); the median over every call of every repeat."""
    libraries = [lib for lib in libraries if lib.name in WHOLE_LIBRARIES]
    workers = {lib.name: Worker(lib.name) for lib in libraries}
    names = [lib.name for lib in libraries]
    rows = []
    try:
        for case in cases:
            kind, n_samples, n_features, n_components, covariance_type, calls = case
            for n_threads in threads:
                args = (n_samples, n_features, n_components, "float64", covariance_type,
                        n_threads)
                for name in names:  # warm-up
                    workers[name].ask("whole", args, (case, 1, 10_000))
                samples = {name: [] for name in names}
                answers = {name: [] for name in names}
                for _ in range(repeats):
                    for name in names:
                        t, a = workers[name].ask("whole", args, (case, calls, 0))
                        samples[name] += list(t)
                        answers[name] = a
                        time.sleep(pause)
                row = dict(case=case_name(case), kind=kind, threads=n_threads,
                           med={name: _median(v) for name, v in samples.items()},
                           calls={name: len(v) for name, v in samples.items()},
                           answers={name: [None if x is None else int(x) for x in v]
                                    for name, v in answers.items()})
                rows.append(row)
                out(format_whole_row(row, names))
    finally:
        for w in workers.values():
            w.close()
    return rows


def case_name(case):
    kind, n_samples, n_features, n_components, covariance_type, _ = case
    if kind == "fit":
        return f"fit, {n_samples:,} x {n_features}, K = {n_components}, defaults"
    ks = list(n_components)
    return (f"select(n_components=range({ks[0]}, {ks[-1] + 1})), {n_samples:,} x "
            f"{n_features}, {covariance_type}")


def whole_table_header(names):
    cols = ["case", "threads"] + names + [f"{n} / gmmfast" for n in names if n != "gmmfast"]
    cols += ["n_iter / chosen K (first seeds)"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def format_whole_row(row, names):
    med = row["med"]
    g = med.get("gmmfast", float("nan"))
    cells = [row["case"], str(row["threads"])]
    cells += [format_time(med.get(n, float("nan"))) for n in names]
    for n in names:
        if n != "gmmfast":
            t = med.get(n, float("nan"))
            cells.append(f"{t / g:.1f}×" if np.isfinite(t) and np.isfinite(g) else "—")
    cells.append("; ".join(f"{n} {','.join(str(a) for a in row['answers'].get(n, [])[:5])}"
                           for n in names))
    return "| " + " | ".join(cells) + " |"


def run_predict(grid, libraries, threads, covariance_types, dtypes, repeats, out,
                pause=0.2, bgm=False):
    libraries = [lib for lib in libraries if hasattr(lib, "fitted_model")]
    workers = {lib.name: Worker(lib.name, bgm) for lib in libraries}
    names = [lib.name for lib in libraries]
    rows = []
    try:
        for (n_samples, n_features, n_components) in grid:
            for dtype in dtypes:
                for covariance_type in covariance_types:
                    for n_threads in threads:
                        args = (n_samples, n_features, n_components, np.dtype(dtype).name,
                                covariance_type, n_threads)
                        for method in ("predict", "predict_proba", "score_samples"):
                            samples = {name: [] for name in names}
                            for _ in range(repeats):
                                for name in names:
                                    t, _ = workers[name].ask("predict", args, method)
                                    samples[name].append(t)
                                    time.sleep(pause)
                            row = dict(n=n_samples, d=n_features, k=n_components,
                                       dtype=np.dtype(dtype).name, cov=covariance_type,
                                       threads=n_threads, method=method,
                                       med={n: _median(v) for n, v in samples.items()})
                            rows.append(row)
                            out(format_row(row, names, method=True))
    finally:
        for w in workers.values():
            w.close()
    return rows


def _median(values):
    values = np.asarray(values, dtype=float)
    return float(np.nanmedian(values)) if np.any(np.isfinite(values)) else float("nan")


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def format_time(seconds):
    if not np.isfinite(seconds):
        return "—"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def table_header(names, method=False, limit=True):
    cols = ["N, D, K", "type", "dtype", "threads"] + (["method"] if method else [])
    cols += names + [f"{n} / gmmfast" for n in names if n != "gmmfast"]
    if limit and not method:
        cols += ["machine limit", "gmmfast / limit"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def format_row(row, names, method=False):
    med = row["med"]
    g = med.get("gmmfast", float("nan"))
    cells = [f"{row['n']:,}, {row['d']}, {row['k']}", row["cov"], row["dtype"],
             str(row["threads"])] + ([row["method"]] if method else [])
    cells += [format_time(med.get(n, float("nan"))) for n in names]
    for n in names:
        if n == "gmmfast":
            continue
        t = med.get(n, float("nan"))
        cells.append(f"{t / g:.1f}×" if np.isfinite(t) and np.isfinite(g) else "—")
    if not method and "limit" in row:
        if row["cov"] != "full" and row.get("limit_model") != "gemm":
            # a run before the GEMM limit of every type: its limit counted
            # full covariance's 2 N K D^2 flops, not a bound for the others
            cells += ["—", "—"]
        else:
            cells += [format_time(row["limit"]),
                      f"{g / row['limit']:.1f}×" if np.isfinite(g) else "—"]
    return "| " + " | ".join(cells) + " |"


def derived_tables(rows):
    """gmmfast's thread scaling and float32 speed-up, from the same runs."""
    lines = []
    by = {(r["n"], r["d"], r["k"], r["cov"], r["dtype"], r["threads"]): r["med"].get("gmmfast")
          for r in rows}
    shapes = sorted({(r["n"], r["d"], r["k"], r["cov"]) for r in rows},
                    key=lambda s: (s[3], s[1]))
    scal = []
    for (n, d, k, cov) in shapes:
        for dt in ("float64", "float32"):
            a, b = by.get((n, d, k, cov, dt, 1)), by.get((n, d, k, cov, dt, 2))
            if a and b:
                scal.append(f"| {n:,}, {d}, {k} | {cov} | {dt} | {format_time(a)} | "
                            f"{format_time(b)} | {a / b:.2f}× |")
    if scal:
        lines += ["", "gmmfast, 2 threads against 1:", "",
                  "| N, D, K | type | dtype | 1 thread | 2 threads | speed-up |",
                  "|---|---|---|---|---|---|"] + scal
    f32 = []
    for (n, d, k, cov) in shapes:
        for t in (1, 2):
            a, b = by.get((n, d, k, cov, "float64", t)), by.get((n, d, k, cov, "float32", t))
            if a and b:
                f32.append(f"| {n:,}, {d}, {k} | {cov} | {t} | {format_time(a)} | "
                           f"{format_time(b)} | {a / b:.2f}× |")
    if f32:
        lines += ["", "gmmfast, float32 against float64:", "",
                  "| N, D, K | type | threads | float64 | float32 | speed-up |",
                  "|---|---|---|---|---|---|"] + f32
    return lines


def plot_speedup(rows, path, title):
    """Speed-up of gmmfast over each peer against D (log scale), per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    peers = sorted({n for r in rows for n in r["med"] if n != "gmmfast"})
    colors = dict(zip(peers, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    # one x position per grid row (two rows share D = 2), in order of D
    shapes = sorted({(r["d"], r["n"], r["k"]) for r in rows}, key=lambda s: (s[0], s[1]))
    xpos = {s: i for i, s in enumerate(shapes)}
    for peer in peers:
        for threads, style, face in ((1, "--", "white"), (2, "-", None)):
            pts = sorted((xpos[(r["d"], r["n"], r["k"])], r["med"][peer] / r["med"]["gmmfast"])
                         for r in rows
                         if r["threads"] == threads and r["cov"] == "full"
                         and r["dtype"] == "float64" and peer in r["med"]
                         and np.isfinite(r["med"][peer]) and np.isfinite(r["med"]["gmmfast"]))
            if pts:
                ax.plot(*zip(*pts), style, marker="o", color=colors[peer],
                        markerfacecolor=face or colors[peer],
                        label=f"vs {peer}, {threads} thread{'s' if threads > 1 else ''}")
    ax.set_xticks(range(len(shapes)))
    ax.set_xticklabels([f"D={d}\nN={n:,}, K={k}" for d, n, k in shapes], fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("grid row (n_features D, n_samples N, n_components K)")
    ax.set_ylabel("peer time / gmmfast time per EM iteration")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2, handlelength=4)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _library_names(rows):
    names = []
    for r in rows:
        for n in r["med"]:
            if n not in names:
                names.append(n)
    return sorted(names, key=lambda n: (n != "gmmfast", n != "scikit-learn", n))


def write_outputs(name, header, rows, predict=False):
    base = os.path.join(HERE, "results", name)
    whole = [r for r in rows if "case" in r]
    per_iteration = [r for r in rows if "case" not in r]
    lines = list(header)
    if per_iteration:
        names = _library_names(per_iteration)
        lines += ["", table_header(names, method=predict)]
        lines += [format_row(r, names, method=predict) for r in per_iteration]
        if not predict:
            lines += derived_tables(per_iteration)
    if whole:
        names = _library_names(whole)
        lines += ["", WHOLE_TITLE, "", whole_table_header(names)]
        lines += [format_whole_row(r, names) for r in whole]
    rows = per_iteration + whole
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(base + ".json", "w") as f:
        json.dump({"header": header, "rows": rows, "predict": predict}, f, indent=1)
    print(f"wrote {base}.md, {base}.json")
    if not predict and any(r.get("cov") == "full" and r.get("dtype") == "float64"
                           for r in per_iteration):
        try:
            date = next((h.split("date: ")[1][:10] for h in header if "date: " in h),
                        datetime.date.today().isoformat())
            plot_speedup(per_iteration, base + ".png",
                         f"gmmfast speed-up per EM iteration, full covariance, float64 "
                         f"({date}, {os.cpu_count()} cores)")
            print(f"wrote {base}.png")
        except ImportError:
            print("matplotlib not installed: no plot (pip install matplotlib)")


def render(name):
    with open(os.path.join(HERE, "results", name + ".json")) as f:
        saved = json.load(f)
    header = saved["header"]
    cut = next((i for i, h in enumerate(header) if h.startswith("|")), len(header))
    header = header[:cut]
    while header and header[-1] == "":
        header.pop()
    write_outputs(name, header, saved["rows"], saved.get("predict", False))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the grid at N/10 (default)")
    size.add_argument("--full", action="store_true", help="the speed issue's grid")
    p.add_argument("--predict", action="store_true",
                   help="time predict/predict_proba/score_samples instead of EM")
    p.add_argument("--many", action="store_true",
                   help="the many-component rows (MANY_ROWS: their own types and dtypes)")
    p.add_argument("--small", action="store_true",
                   help="whole fits with defaults and select() (SMALL_CASES) against "
                        "scikit-learn, instead of per-iteration rows")
    p.add_argument("--scale", type=float, default=None,
                   help="multiply every row's N by this (e.g. 0.01: a check that rows run)")
    p.add_argument("--threads", default="1,2", help="comma list (default 1,2)")
    p.add_argument("--types", default="full", help="covariance types, comma list or 'all'")
    p.add_argument("--dtypes", default="float64", help="float64,float32")
    p.add_argument("--libs", default="all", help="comma list of " + ",".join(LIBRARIES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--span", type=float, default=0.3,
                   help="seconds each timed span of iterations (hi - lo) aims at "
                        "(default 0.3; longer spans average over more of a noisy "
                        "host's slow phases)")
    p.add_argument("--bgm", action="store_true",
                   help="BayesianGaussianMixture, gmmfast's against scikit-learn's")
    p.add_argument("--bgm-vs-gm", action="store_true",
                   help="GaussianMixture and BayesianGaussianMixture of gmmfast and "
                        "scikit-learn in one run, alternated (both speed-ups per row)")
    p.add_argument("--rows", default=None, help="indices of grid rows to run, e.g. 0,2")
    p.add_argument("--name", default=None, help="results file name (bench/results/NAME.*)")
    p.add_argument("--render", default=None, metavar="NAME",
                   help="rewrite bench/results/NAME.md and .png from NAME.json, run nothing")
    args = p.parse_args(argv)
    if args.render:
        return render(args.render)

    grid = FULL_GRID if args.full else QUICK_GRID
    if args.rows:
        pick = [int(i) for i in args.rows.split(",")]
    types = (["full", "tied", "diag", "spherical"] if args.types == "all"
             else args.types.split(","))
    dtypes = [np.dtype(d).type for d in args.dtypes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    wanted = None if args.libs == "all" else args.libs.split(",")
    libraries, missing = available_libraries(wanted, bgm=args.bgm)
    if args.small:
        cases = SMALL_CASES
    elif args.many:
        cases = list(MANY_ROWS)
    else:
        cases = grid_cases(grid, types, dtypes)
    if args.rows:
        if args.small or args.many:
            cases = [cases[i] for i in pick]
        else:
            grid = [grid[i] for i in pick]
            cases = grid_cases(grid, types, dtypes)
    if args.scale is not None:
        def scale(n, k):  # at least two rows per component
            k = max(k) if isinstance(k, tuple) else k
            return max(2 * k, 20, int(round(n * args.scale)))

        if args.small:
            cases = [(c[0], scale(c[1], c[3])) + c[2:] for c in cases]
        else:
            cases = [(scale(c[0], c[2]),) + c[1:] for c in cases]
            grid = [(scale(n, k), d, k) for (n, d, k) in grid]
    if args.bgm_vs_gm:
        return main_pair(args, cases)
    name = args.name or (("bgm-" if args.bgm else "") + ("predict-" if args.predict else "")
                         + ("small" if args.small else "many" if args.many
                            else "full" if args.full else "quick"))

    lines = []

    def out(line=""):
        print(line, flush=True)
        lines.append(line)

    what = ("seconds per call of predict, predict_proba, score_samples" if args.predict
            else "seconds per whole fit or select() call, defaults" if args.small
            else "seconds per EM iteration, same start")
    if args.bgm:
        what = "BayesianGaussianMixture: " + what.replace("EM iteration", "iteration")
    out(f"# {what}, median of {args.repeats} repeats")
    out()
    for line in blas_header():
        out("    " + line)
    for lib_name, why in missing:
        out(f"    not run: {lib_name} ({why})")
    machine = None
    if not args.predict:
        machine = measure_machine(threads)
        for t, r in machine["threads"].items():
            out(f"    measured, {t} thread(s): dgemm {r['dgemm'] / 1e9:.1f} GFlop/s, "
                f"sgemm {r['sgemm'] / 1e9:.1f} GFlop/s, exp {r['exp'] / 1e9:.2f} G/s")
        out(f"    measured read bandwidth: {machine['bandwidth'] / 1e9:.1f} GB/s")
        out("    per-iteration = (t(hi) - t(lo)) / (iterations reported); lo = 2 and "
            f"hi - lo iterations take ~{args.span:g} s (at least 4), or 1 -> 3 above "
            f"{SLOW_ITERATION} s per iteration")
        out("    mlpack starts from its own k-means (no start can be passed from "
            "Python); OpenCV from trainM on the start's one-hot responsibilities")
        out("    machine limit: GEMM-shaped flops per iteration (full 2NKD^2 + 4NKD, "
            "tied 2ND^2 + 4NKD, diag/spherical 8NKD) at the dtype's measured sgemm/dgemm "
            "rate, or one read of X (4/8-byte values), whichever is longer")
    out()
    if args.small:
        names = [lib.name for lib in libraries if lib.name in WHOLE_LIBRARIES]
        first = whole_table_header(names)
        out(WHOLE_TITLE)
        out()
        out(first)
        rows = run_whole(cases, libraries, threads, args.repeats, out)
    else:
        names = [lib.name for lib in libraries
                 if not args.predict or hasattr(lib, "fitted_model")]
        first = table_header(names, method=args.predict)
        out(first)
    if args.predict:
        rows = run_predict(grid, libraries, threads, types, dtypes, args.repeats, out,
                           bgm=args.bgm)
    elif not args.small:
        rows = run_fit(cases, libraries, threads, args.repeats, out, machine, bgm=args.bgm,
                       span=args.span)
        for line in derived_tables(rows):
            out(line)

    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    header = lines[:lines.index(WHOLE_TITLE if args.small else first)]
    while header and header[-1] == "":
        header.pop()
    write_outputs(name, header, rows, args.predict)


def main_pair(args, cases):
    """--bgm-vs-gm: the table, bench/results/NAME.md and NAME.json."""
    threads = [int(t) for t in args.threads.split(",")]
    lines = []

    def out(line=""):
        print(line, flush=True)
        lines.append(line)

    out(f"# {PAIR_TITLE} of {args.repeats}")
    out()
    for line in blas_header():
        out("    " + line)
    machine = measure_machine(threads)
    for t, r in machine["threads"].items():
        out(f"    measured, {t} thread(s): dgemm {r['dgemm'] / 1e9:.1f} GFlop/s, "
            f"sgemm {r['sgemm'] / 1e9:.1f} GFlop/s, exp {r['exp'] / 1e9:.2f} G/s")
    out("    per-iteration = (t(hi) - t(lo)) / (iterations reported), as the other modes; "
        f"hi - lo iterations take ~{args.span:g} s (at least 4)")
    out()
    out(pair_table_header())
    rows = run_pair(cases, threads, args.repeats, out, machine, span=args.span)
    met = sum(r["med"]["BGM scikit-learn"] / r["med"]["BGM gmmfast"]
              >= r["med"]["GM scikit-learn"] / r["med"]["GM gmmfast"] for r in rows)
    out()
    out(f"BGM speed-up at least GM's: {met} of {len(rows)} rows")
    name = args.name or "bgm-vs-gm"
    base = os.path.join(HERE, "results", name)
    os.makedirs(os.path.dirname(base), exist_ok=True)
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(base + ".json", "w") as f:
        json.dump({"header": lines[:4], "rows": rows}, f, indent=1)
    print(f"wrote {base}.md, {base}.json")


if __name__ == "__main__":
    main()
