"""``gmmfast bench``: a quick per-iteration comparison with scikit-learn.

A small, self-contained version of ``bench/run.py`` (which runs each library
in its own process, with more sizes and peers): the same method in one
process. Overlapping components (centres at scale 3/sqrt(D), unit noise), the
same start for both libraries (perturbed centres, identity covariances,
equal weights), tol disabled, and

    per-iteration = (t(hi) - t(lo)) / (iters(hi) - iters(lo))

with the iteration counts each library reports; the libraries alternate
within each repeat, and the table gives medians over the repeats.
"""
import time
import warnings

import numpy as np

# (n_samples, n_features, n_components) at scale 1
GRID = [(50_000, 2, 4), (20_000, 16, 8), (5_000, 64, 8)]


def make_data(n_samples, n_features, n_components, seed=0, dtype=np.float64):
    """Overlapping components (centres at scale 3/sqrt(D), unit noise) and
    perturbed centres to start from (shared/benchmarking.md)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0 / np.sqrt(n_features), size=(n_components, n_features))
    labels = rng.integers(0, n_components, n_samples)
    X = centers[labels] + rng.normal(size=(n_samples, n_features))
    means0 = centers + rng.normal(scale=1.0 / np.sqrt(n_features), size=centers.shape)
    return np.ascontiguousarray(X, dtype=dtype), means0


def start_for(covariance_type, means0):
    """Equal weights, the given means, identity precisions."""
    n_components, n_features = means0.shape
    precisions = {
        "full": np.tile(np.eye(n_features), (n_components, 1, 1)),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]
    return dict(weights_init=np.full(n_components, 1.0 / n_components),
                means_init=means0, precisions_init=precisions)


def _timed_fit(make_model, X, max_iter):
    model = make_model(max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(X)
        elapsed = time.perf_counter() - start
    return elapsed, model.n_iter_


def run_bench(covariance_type="full", scale=1.0, repeats=3, lo=2, hi=6, n_threads=None,
              out=print):
    """Time both libraries on GRID; print a table; return its rows.

    Returns
    -------
    rows : list of dict with n_samples, n_features, n_components,
        gmmfast and sklearn (seconds per iteration), speedup, label.
    """
    import sklearn
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    import gmmfast

    out(f"gmmfast {gmmfast.__version__} vs scikit-learn {sklearn.__version__}: seconds per "
        f"EM iteration, {covariance_type} covariance, float64, same start, tol=0,")
    out(f"(t({hi}) - t({lo})) / iterations, median of {repeats} "
        f"(OpenMP: {gmmfast.openmp_enabled()}, gmmfast threads: "
        f"{'all' if n_threads is None else n_threads})")
    header = f"{'N':>9} {'D':>4} {'K':>3} {'gmmfast':>12} {'scikit-learn':>13} {'speed-up':>9}"
    out(header)
    out("-" * len(header))
    rows = []
    for n_samples, n_features, n_components in GRID:
        n_samples = max(n_components * 10, int(round(n_samples * scale)))
        X, means0 = make_data(n_samples, n_features, n_components)
        start = dict(start_for(covariance_type, means0), covariance_type=covariance_type,
                     tol=0.0)
        makers = {
            "gmmfast": lambda it: gmmfast.GaussianMixture(
                n_components, max_iter=it, n_threads=n_threads, **start),
            "sklearn": lambda it: SkGaussianMixture(n_components, max_iter=it, **start),
        }
        for make in makers.values():  # warm-up: imports, thread pools, page faults
            _timed_fit(make, X, 1)
        samples = {name: [] for name in makers}
        for _ in range(repeats):
            for name, make in makers.items():  # alternate A B A B ...
                t_lo, it_lo = _timed_fit(make, X, lo)
                t_hi, it_hi = _timed_fit(make, X, hi)
                samples[name].append((t_hi - t_lo) / (it_hi - it_lo)
                                     if it_hi > it_lo else np.nan)
        t_fast = float(np.nanmedian(samples["gmmfast"]))
        t_sk = float(np.nanmedian(samples["sklearn"]))
        row = dict(n_samples=n_samples, n_features=n_features, n_components=n_components,
                   gmmfast=t_fast, sklearn=t_sk, speedup=t_sk / t_fast,
                   label=f"N={n_samples:,} K={n_components}")
        rows.append(row)
        out(f"{n_samples:>9,} {n_features:>4} {n_components:>3} {t_fast * 1e3:>9.3f} ms "
            f"{t_sk * 1e3:>10.3f} ms {row['speedup']:>8.1f}x")
    return rows
