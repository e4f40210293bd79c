"""``python -m gmmfast demo``: the mixture this project started from."""
import time
import warnings

import numpy as np
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from ._kernels import openmp_enabled
from ._mixture import GaussianMixture
from ._version import __version__
from .plotting import _matplotlib, plot_mixture

TRUE_WEIGHTS = np.array([0.3, 0.7])
TRUE_MEANS = np.array([[0.0, 0.0], [10.0, 10.0]])
TRUE_COVARIANCES = np.array([np.diag([1.0, 10.0]), np.diag([10.0, 1.0])])


def demo_data(n_samples, random_state=0):
    """30% N([0,0], diag(1,10)) and 70% N([10,10], diag(10,1))."""
    rng = np.random.default_rng(random_state)
    n0 = int(round(TRUE_WEIGHTS[0] * n_samples))
    X = np.vstack([
        rng.multivariate_normal(TRUE_MEANS[0], TRUE_COVARIANCES[0], n0),
        rng.multivariate_normal(TRUE_MEANS[1], TRUE_COVARIANCES[1], n_samples - n0),
    ])
    return X[rng.permutation(n_samples)]


def per_iteration_seconds(make_model, X, lo=2, hi=6, repeats=3):
    """Median over repeats of (t(hi) - t(lo)) / (hi - lo), tol disabled."""
    times = []
    for _ in range(repeats):
        t = {}
        for n_iter in (lo, hi):
            model = make_model(n_iter)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                model.fit(X)
                t[n_iter] = time.perf_counter() - start
        times.append((t[hi] - t[lo]) / (hi - lo))
    return float(np.median(times))


def run_demo(n_samples=1_000_000, random_state=0, compare=True, out=print, plot=None):
    """Fit the demo mixture, print recovered vs true parameters and timings;
    with ``plot`` (a path), also draw the fit there (needs matplotlib)."""
    if plot is not None:
        _matplotlib()  # fail before the fit, not after
    X = demo_data(n_samples, random_state)
    out(f"gmmfast {__version__} demo: {n_samples:,} samples, 2 features, "
        f"2 components (OpenMP: {openmp_enabled()})")
    start = time.perf_counter()
    gm = GaussianMixture(n_components=2, random_state=random_state).fit(X)
    elapsed = time.perf_counter() - start
    out(f"fit (k-means init + EM): {elapsed:.3f} s, {gm.n_iter_} iterations, "
        f"converged={gm.converged_}, lower bound {gm.lower_bound_:.6f}")
    order = np.argsort(gm.means_[:, 0])
    np.set_printoptions(precision=3, suppress=True)
    out("\n            true                         recovered")
    for k, j in enumerate(order):
        out(f"weight {k}:  {TRUE_WEIGHTS[k]:<28.3f} {gm.weights_[j]:.3f}")
        out(f"mean {k}:    {np.array2string(TRUE_MEANS[k]):<28} "
            f"{np.array2string(gm.means_[j])}")
        tc = np.array2string(TRUE_COVARIANCES[k]).replace("\n", "")
        rc = np.array2string(gm.covariances_[j]).replace("\n", "")
        out(f"cov {k}:     {tc:<28} {rc}")
    if plot is not None:
        plot_mixture(gm, X, path=plot)
        out(f"\nwrote {plot}")

    if compare:
        # same start for both: perturbed true means, identity covariances
        start_params = dict(
            weights_init=np.array([0.5, 0.5]),
            means_init=TRUE_MEANS + np.array([[1.0, -1.0], [-1.0, 1.0]]),
            precisions_init=np.array([np.eye(2), np.eye(2)]),
            tol=0.0,
        )
        t_fast = per_iteration_seconds(
            lambda it: GaussianMixture(2, max_iter=it, **start_params), X)
        t_sk = per_iteration_seconds(
            lambda it: SkGaussianMixture(2, max_iter=it, **start_params), X)
        out("\nseconds per EM iteration (same start, median of 3):")
        out(f"  gmmfast      {t_fast * 1e3:9.2f} ms")
        out(f"  scikit-learn {t_sk * 1e3:9.2f} ms")
        out(f"  speed-up     {t_sk / t_fast:9.1f}x")
    return gm
