"""A quick per-iteration comparison with scikit-learn:

    python bench/quickbench.py [--covariance-type full] [--plot speedup.png]


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
    perturbed centres to start from (bench/README.md)."""
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


def plot_speedup(rows, path, title="gmmfast vs scikit-learn, seconds per EM iteration"):
    """Speed-up (scikit-learn / gmmfast time per iteration) against n_features.

    Parameters
    ----------
    rows : list of dict with keys n_features, speedup, and label (the
        N, D, K and covariance type of the row)
    path : str or path-like, where the figure is saved
    """
    from gmmfast.plotting import _matplotlib

    Figure, FigureCanvasAgg, _, _ = _matplotlib()
    fig = Figure(figsize=(6.0, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    d = np.array([r["n_features"] for r in rows], dtype=float)
    s = np.array([r["speedup"] for r in rows], dtype=float)
    ax.plot(d, s, "o-", color="C0")
    for r in rows:
        ax.annotate(f"{r['speedup']:.1f}x\n{r['label']}", (r["n_features"], r["speedup"]),
                    textcoords="offset points", xytext=(6, 6), fontsize="small")
    ax.axhline(1.0, color="grey", linewidth=1, linestyle="--")
    ax.set_xscale("log", base=2)
    ax.set_xticks(d)
    ax.set_xticklabels([f"{int(v)}" for v in d])
    ax.set_xlabel("n_features (D)")
    ax.set_ylabel("speed-up over scikit-learn")
    ax.set_ylim(0, max(1.5, float(np.nanmax(s)) * 1.3) if np.any(np.isfinite(s)) else 2)
    ax.set_title(title, fontsize="medium")
    fig.savefig(path, bbox_inches="tight")
    return ax


def main(argv=None):
    import argparse

    def positive(kind):
        def parse(text):
            value = kind(text)
            if value <= 0:
                raise argparse.ArgumentTypeError(f"must be positive, got {text}")
            return value
        return parse

    _positive_int, _positive_float = positive(int), positive(float)
    COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
    parser = argparse.ArgumentParser(
        description="Seconds per EM iteration of gmmfast and scikit-learn from the same "
        "start (tol=0, (t(6) - t(2)) / iterations, median of repeats) for D = 2, 16, "
        "64. The full harness, with more sizes and peers, is bench/run.py.")

    parser.add_argument("--covariance-type", choices=COVARIANCE_TYPES, default="full",
                       help="default: full")
    parser.add_argument("--scale", type=_positive_float, default=1.0,
                       help="multiply the sample counts (50k, 20k, 5k) by this (default 1)")
    parser.add_argument("--repeats", type=_positive_int, default=3,
                       help="repeats; the median is reported (default 3)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="gmmfast's OpenMP threads (default: every core)")
    parser.add_argument("--plot", default=None, metavar="PATH",
                       help="write the speed-up against D to PATH, e.g. speedup.png")
    args = parser.parse_args(argv)
    rows = run_bench(covariance_type=args.covariance_type, scale=args.scale,
                     repeats=args.repeats, n_threads=args.threads)
    if args.plot is not None:
        plot_speedup(rows, args.plot,
                     title=f"gmmfast vs scikit-learn per EM iteration "
                           f"({args.covariance_type} covariance)")
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
