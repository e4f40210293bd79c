"""The EM loop: initialise, iterate to convergence, n_init, warm start.

Owns the stopping rule, the n_init choice and the verbose output; reads data
only through a data source (gmmfast/_data.py) and parameters only through the
statistics layer (gmmfast/_stats.py). Inputs are trusted: the public
boundary (gmmfast/_api.py) validates them once. Per iteration the data is
read once by the kernel, which returns the sufficient statistics; the M-step
(K x D^3 work) is numpy on those statistics. Nothing allocated here grows
with n_samples; the k-means starts are streamed too (gmmfast/_kmeans.py), and
of the initialisers only 'random_from_data' allocates per row (numpy's
choice without replacement).
"""
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from . import _covariance, _stats
from ._init import initial_params
from ._stats import GMMParams, KernelParams, check_finite_params
from ._threads import blas_single_thread


@dataclass
class FitResult:
    """What ``gmmfast.fit`` returns: the fitted parameters and the record."""

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    precisions: np.ndarray
    converged: bool
    n_iter: int
    lower_bound: float
    lower_bounds: list = field(default_factory=list)

    @property
    def params(self):
        return GMMParams(self.weights, self.means, self.covariances,
                         self.precisions_cholesky)

    def as_dict(self):
        """The fitted attributes of an estimator, by their names there."""
        return dict(
            weights_=self.weights, means_=self.means, covariances_=self.covariances,
            precisions_cholesky_=self.precisions_cholesky, precisions_=self.precisions,
            converged_=self.converged, n_iter_=self.n_iter,
            lower_bound_=self.lower_bound, lower_bounds_=list(self.lower_bounds),
        )


def non_finite_lower_bound_error(lower_bound, n_iter, reg_covar):
    """The error run_em raises when the mean log-likelihood is not finite."""
    if np.isnan(lower_bound):
        why = ("the log-likelihood is not a number (the data, the weights or the "
               "statistics overflow)")
    elif lower_bound < 0:
        why = ("some samples have zero density under every component: the "
               "covariances are too small for the data's spread")
    else:
        why = ("the density overflows: a covariance collapsed to almost nothing, or "
               "the weights are too large")
    return ValueError(
        f"EM failed at iteration {n_iter}: the lower bound (mean log-likelihood) is "
        f"{lower_bound}, because {why}. Increase reg_covar (now {reg_covar:g}), "
        "scale the input data (e.g. sklearn.preprocessing.StandardScaler), or check "
        "weights_init/means_init/precisions_init."
    )


# ---------------------------------------------------------------------------
# The fit loop
# ---------------------------------------------------------------------------

class _Verbose:
    """scikit-learn's verbose messages, word for word."""

    def __init__(self, verbose, verbose_interval):
        self.verbose = verbose
        self.interval = verbose_interval

    def init_beg(self, n_init):
        if self.verbose >= 1:
            print("Initialization %d" % n_init)
        if self.verbose >= 2:
            self.t_init = self.t_iter = time.time()

    def iter_end(self, n_iter, diff_ll):
        if n_iter % self.interval == 0:
            if self.verbose == 1:
                print("  Iteration %d" % n_iter)
            elif self.verbose >= 2:
                now = time.time()
                print("  Iteration %d\t time lapse %.5fs\t ll change %.5f"
                      % (n_iter, now - self.t_iter, diff_ll))
                self.t_iter = now

    def init_end(self, lb, converged):
        msg = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {msg}.")
        elif self.verbose >= 2:
            t = time.time() - self.t_init
            print(f"Initialization {msg}. time lapse {t:.5f}s\t lower bound {lb:.5f}.")


def run_em(data, params, covariance_type, *, tol, max_iter, reg_covar,
           lower_bound=-np.inf, verbose=None, callback=None):
    """Iterate EM on the data source ``data`` from ``params``.

    scikit-learn's stopping rule: the lower bound of iteration t is the mean
    (weighted) log-likelihood under the parameters before that iteration's
    M-step; stop when it changes by less than tol.
    ``callback(n_iter, lower_bound)``, if given, is called after every
    iteration (progress reports; it sees no arrays and costs nothing when
    None).
    Returns (params, lower_bound, lower_bounds, n_iter, converged).
    """
    dtype = data.dtype
    cov = _covariance.get(covariance_type)
    # the common centre of the statistics, for a type that has one (tied)
    center = data.center if cov.uses_scatter else None
    lower_bounds = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        prev_lower_bound = lower_bound
        kp = KernelParams(params, covariance_type, dtype, center)
        stats, ll = data.e_step(kp)
        lower_bound = ll / data.total_weight
        if not np.isfinite(lower_bound):
            # never carry NaN/inf into the parameters or return it silently
            raise non_finite_lower_bound_error(lower_bound, n_iter, reg_covar)
        # the guard on n_k pulls each mean towards its previous value
        params = _stats.m_step(stats, kp.shift, cov, reg_covar, dtype, anchor=kp.means)
        lower_bounds.append(lower_bound)
        change = lower_bound - prev_lower_bound
        if verbose is not None:
            verbose.iter_end(n_iter, change)
        if callback is not None:
            callback(n_iter, lower_bound)
        if abs(change) < tol:
            converged = True
            break
    return params, lower_bound, lower_bounds, n_iter, converged


def fit_em(data, *, n_components, covariance_type="full", tol=1e-3,
           reg_covar=1e-6, max_iter=100, n_init=1, init_params="kmeans",
           weights_init=None, means_init=None, precisions_init=None,
           random_state=None, warm_start_from=None, verbose=0, verbose_interval=10,
           callback=None):
    """Fit a Gaussian mixture by EM on a data source; inputs already validated.

    data : a data source (gmmfast/_data.py).
    warm_start_from : (GMMParams, lower_bound) to continue from, or None.
    callback : callable(n_iter, lower_bound) or None, called after every EM
        iteration of every initialisation (n_iter restarts at 1 for each).
    """
    dtype = data.dtype
    random_state = check_random_state(random_state)
    verbose_printer = _Verbose(verbose, verbose_interval)

    do_init = warm_start_from is None
    n_init = n_init if do_init else 1
    max_lower_bound = -np.inf
    best = None

    with blas_single_thread():
        for init in range(n_init):
            verbose_printer.init_beg(init)
            if do_init:
                params = check_finite_params(initial_params(
                    data.init_data(init_params), n_components, covariance_type,
                    init_params, random_state, reg_covar, weights_init,
                    means_init, precisions_init,
                ), dtype)
                lower_bound = -np.inf
            else:
                params, lower_bound = warm_start_from
                params = params.astype(dtype)

            if max_iter == 0:
                best = (params, [], 0, False)
                continue
            params, lower_bound, lower_bounds, n_iter, converged = run_em(
                data, params, covariance_type, tol=tol, max_iter=max_iter,
                reg_covar=reg_covar, lower_bound=lower_bound, verbose=verbose_printer,
                callback=callback,
            )
            verbose_printer.init_end(lower_bound, converged)
            if lower_bound > max_lower_bound or max_lower_bound == -np.inf:
                max_lower_bound = lower_bound
                best = (params, lower_bounds, n_iter, converged)

    params, lower_bounds, n_iter, converged = best
    if not converged and max_iter > 0:
        warnings.warn(
            "Best performing initialization did not converge. "
            "Try different init parameters, or increase max_iter, "
            "tol, or check for degenerate data.",
            ConvergenceWarning,
        )
    return make_result(params, covariance_type, converged, n_iter, max_lower_bound,
                       lower_bounds)


def make_result(params, covariance_type, converged, n_iter, lower_bound, lower_bounds):
    dtype = params.means.dtype
    return FitResult(
        covariance_type=covariance_type,
        weights=params.weights,
        means=params.means,
        covariances=params.covariances,
        precisions_cholesky=params.precisions_cholesky,
        precisions=_covariance.get(covariance_type).precisions(
            params.precisions_cholesky).astype(dtype),
        converged=bool(converged),
        n_iter=int(n_iter),
        lower_bound=float(lower_bound),
        lower_bounds=[float(v) for v in lower_bounds],
    )
