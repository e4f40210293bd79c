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

The loop drives a model object: ``GMMModel`` here (EM), or
BayesianGaussianMixture's ``BGMModel`` (gmmfast/_bayesian.py, variational
Bayes); each gives its start, its kernel parameters, and one iteration's
M-step and lower bound from the E-step's statistics.
"""
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from . import _covariance, _stats
from ._init import initial_params
from ._stats import GMMParams, KernelParams, check_finite_params
from ._threads import blas_single_thread, m_step_threads


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


def _warn_diverged(n_iter, error):
    warnings.warn(
        f"EM diverged at iteration {n_iter} and stopped there, keeping the last "
        f"parameters with a finite lower bound (converged_ is False): {error}",
        ConvergenceWarning,
    )


class Diverged(Exception):
    """Raised by a model's ``iterate`` when EM diverges: ``error`` says why;
    ``lower_bound`` is this iteration's (finite) lower bound when the M-step
    failed, None when the lower bound itself is not finite."""

    def __init__(self, error, lower_bound=None):
        super().__init__(str(error))
        self.error = error
        self.lower_bound = lower_bound


class GMMModel:
    """What the loop asks of a model (the seam BayesianGaussianMixture's model,
    gmmfast/_bayesian.py, implements too): its start, its kernel parameters,
    and one iteration's M-step and lower bound from the E-step's statistics.
    """

    def __init__(self, data, n_components, covariance_type, reg_covar):
        self.data = data
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.cov = _covariance.get(covariance_type)
        self.reg_covar = reg_covar

    @property
    def center(self):
        """The common centre of the statistics, for a type that has one (tied);
        read when the loop starts (a data pass the first time)."""
        return self.data.center if self.cov.uses_scatter else None

    def initial_params(self, random_state, init_params, weights_init, means_init,
                       precisions_init):
        return check_finite_params(initial_params(
            self.data.init_data(init_params), self.n_components, self.covariance_type,
            init_params, random_state, self.reg_covar, weights_init, means_init,
            precisions_init,
        ), self.data.dtype)

    def start(self, params):
        """A warm start's parameters in the data's dtype."""
        return params.astype(self.data.dtype)

    def kernel_params(self, params):
        return KernelParams(params, self.covariance_type, self.data.dtype, self.center)

    def iterate(self, params, kp, stats, ll, n_iter):
        """(new params, lower bound): scikit-learn's lower bound is the mean
        (weighted) log-likelihood under the parameters before the M-step."""
        lower_bound = ll / self.data.total_weight
        if not math.isfinite(lower_bound):
            # never carry NaN/inf into the parameters or return it silently
            raise Diverged(non_finite_lower_bound_error(lower_bound, n_iter, self.reg_covar))
        try:
            # the guard on n_k pulls each mean towards its previous value
            params = _stats.m_step(stats, kp.shift, self.cov, self.reg_covar,
                                   self.data.dtype, anchor=kp.means)
        except ValueError as error:
            # an ill-defined covariance
            raise Diverged(error, lower_bound) from None
        return params, lower_bound


def run_model(data, model, params, *, tol, max_iter, lower_bound=-np.inf, verbose=None,
              callback=None):
    """Iterate ``model`` (GMMModel's interface) on the data source ``data``
    from ``params``: one E-step pass, then the model's M-step and lower
    bound; stop when the lower bound changes by less than tol (scikit-learn's
    rule). ``callback(n_iter, lower_bound)``, if given, is called after every
    iteration (progress reports; it sees no arrays and costs nothing when
    None).

    A fit that diverges (``model.iterate`` raises Diverged; scikit-learn's
    issue 18216: with reg_covar=0 a component collapses onto a single point)
    stops with the last parameters whose lower bound is finite, ``converged``
    False and a ConvergenceWarning naming reg_covar: when the M-step of
    iteration t finds an ill-defined covariance, the parameters before it
    (whose lower bound is the t-th); when the lower bound of iteration t > 1
    is not finite, those of iteration t - 1 with the (t-1)-th. Only a start
    that is ill-defined itself (the first lower bound not finite) raises.
    Returns (params, lower_bound, lower_bounds, n_iter, converged).
    """
    lower_bounds = []
    converged = False
    n_iter = 0
    previous = None  # (params, lower_bound) of the iteration before
    for n_iter in range(1, max_iter + 1):
        prev_lower_bound = lower_bound
        kp = model.kernel_params(params)
        stats, ll = data.e_step(kp)
        try:
            new_params, lower_bound = model.iterate(params, kp, stats, ll, n_iter)
        except Diverged as diverged:
            if diverged.lower_bound is None:
                if previous is None:
                    raise diverged.error from None
                _warn_diverged(n_iter, diverged.error)
                params, lower_bound = previous
                return params, lower_bound, lower_bounds, n_iter - 1, False
            lower_bounds.append(diverged.lower_bound)
            _warn_diverged(n_iter, diverged.error)
            return params, diverged.lower_bound, lower_bounds, n_iter, False
        previous = (params, lower_bound)
        params = new_params
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


def run_em(data, params, covariance_type, *, tol, max_iter, reg_covar,
           lower_bound=-np.inf, verbose=None, callback=None):
    """Iterate EM on the data source ``data`` from ``params`` (GMMParams).

    scikit-learn's stopping rule: the lower bound of iteration t is the mean
    (weighted) log-likelihood under the parameters before that iteration's
    M-step; stop when it changes by less than tol.
    Returns (params, lower_bound, lower_bounds, n_iter, converged).
    """
    model = GMMModel(data, params.means.shape[0], covariance_type, reg_covar)
    return run_model(data, model, params, tol=tol, max_iter=max_iter,
                     lower_bound=lower_bound, verbose=verbose, callback=callback)


def fit_model(data, model, *, tol=1e-3, max_iter=100, n_init=1, init_params="kmeans",
              weights_init=None, means_init=None, precisions_init=None,
              random_state=None, warm_start_from=None, verbose=0, verbose_interval=10,
              callback=None):
    """scikit-learn's fit loop for any model with GMMModel's interface: n_init
    starts (or one warm start), the best by final lower bound, the
    ConvergenceWarning. Returns (params, lower_bound, lower_bounds, n_iter,
    converged) of the best start.

    warm_start_from : (params, lower_bound) to continue from, or None.
    """
    random_state = check_random_state(random_state)
    verbose_printer = _Verbose(verbose, verbose_interval)

    do_init = warm_start_from is None
    n_init = n_init if do_init else 1
    max_lower_bound = -np.inf
    best = None

    with blas_single_thread(), m_step_threads(getattr(data, "algebra_threads", 1)):
        for init in range(n_init):
            verbose_printer.init_beg(init)
            if do_init:
                params = model.initial_params(random_state, init_params, weights_init,
                                              means_init, precisions_init)
                lower_bound = -np.inf
            else:
                params, lower_bound = warm_start_from
                params = model.start(params)

            if max_iter == 0:
                best = (params, [], 0, False)
                continue
            params, lower_bound, lower_bounds, n_iter, converged = run_model(
                data, model, params, tol=tol, max_iter=max_iter,
                lower_bound=lower_bound, verbose=verbose_printer, callback=callback,
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
    return params, max_lower_bound, lower_bounds, n_iter, converged


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
    model = GMMModel(data, n_components, covariance_type, reg_covar)
    params, lower_bound, lower_bounds, n_iter, converged = fit_model(
        data, model, tol=tol, max_iter=max_iter, n_init=n_init, init_params=init_params,
        weights_init=weights_init, means_init=means_init, precisions_init=precisions_init,
        random_state=random_state, warm_start_from=warm_start_from, verbose=verbose,
        verbose_interval=verbose_interval, callback=callback)
    return make_result(params, covariance_type, converged, n_iter, lower_bound,
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
