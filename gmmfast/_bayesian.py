"""Variational Bayesian Gaussian mixture (scikit-learn's BayesianGaussianMixture):
the priors, the variational M-step, the kernels' per-component constants and
the lower bound, all from the same shifted statistics (R, S1, S2) as EM.

This module sits beside the EM loop's GaussianMixture model (gmmfast/_em.py,
``GMMModel``) and implements the same seam (``BGMModel``), so the loop, its
n_init/warm start/stopping rule and verbose output serve both estimators. It
reads the data only through a data source (gmmfast/_data.py, gmmfast/_dask.py)
and the initial responsibilities through gmmfast/_init.py. Every formula and
the order of operations are scikit-learn's (``sklearn/mixture/_bayesian_mixture.py``).

``partial_fit`` (``online_step``) is streaming variational Bayes on the same
statistics: the running statistics per unit weight are blended with each
batch's as in stepwise EM (gmmfast/_online.py), and the posterior is the
prior updated by them scaled to the total weight seen so far.

The variational E-step is EM's block work with other constants: the kernel
adds lognorm_k to -1/2 ||(x - m_k) U_k||^2, with U_k the Cholesky factor of the
expected precision nu_k W_k (scikit-learn's ``precisions_cholesky_``) and

    lognorm_k = log det U_k - D/2 log(2 pi) - D/2 log nu_k
                + 1/2 (log Lambda~_k - D / beta_k) + E[log pi_k]

(``_estimate_log_prob`` + ``_estimate_log_weights``).

The lower bound needs -sum_i w_i sum_k r_ik log r_ik. As sum_k r_ik = 1 and
log r_ik = lp_ik - log p_i, it is ll - sum_k sum_i w_i r_ik lp_ik, with
ll = sum_i w_i log p_i from the kernel and

    sum_i w_i r_ik lp_ik = R_k lognorm_k - 1/2 tr(P_k M_k),
    M_k = sum_i w_i r_ik (x_i - m_k)(x_i - m_k)^T,

where M_k is the second-order statistic itself (taken around m_k) and, for
'tied', sum_k M_k follows from the scatter T and S1. No N x K array, no extra
kernel statistic. The cancellation costs about eps * sum_i w_i |lp_i|, far
below the lower bound's own rounding (tests/test_bayesian.py checks it on
well separated clusters, where the entropy is 0 to many digits).

Sample weights count observations: integer weights are repeated rows, and
the total weight, not the number of rows, is what the priors are weighed
against (so the weights are never rescaled here).
"""
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import betaln, digamma, gammaln
from sklearn.utils import check_array

from . import _covariance, _kernels, _stats
from ._init import resp_statistics
from ._missing import batch_statistics
from ._online import batch_config, blend
from ._threads import blas_single_thread
from ._maths import FLOAT32_HINT, ILL_DEFINED_MESSAGE, LOG_2PI
from ._stats import GMMParams, KernelParams
from ._validation import _check_shape

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
_ZERO, _ONE = np.zeros(1), np.ones(1)  # scikit-learn's hstack((0, ...)), hstack((1, ...))


# ---------------------------------------------------------------------------
# Priors (scikit-learn's _check_parameters)
# ---------------------------------------------------------------------------

@dataclass
class Priors:
    """The priors as fitted (scikit-learn's ``*_prior_`` attributes)."""

    weight_concentration_prior_type: str
    weight_concentration_prior: float
    mean_precision_prior: float
    mean_prior: np.ndarray          # (D,)
    degrees_of_freedom_prior: float
    covariance_prior: Any           # full/tied (D, D), diag (D,), spherical float

    def as_dict(self):
        return dict(
            weight_concentration_prior_=self.weight_concentration_prior,
            mean_precision_prior_=self.mean_precision_prior,
            mean_prior_=self.mean_prior,
            degrees_of_freedom_prior_=self.degrees_of_freedom_prior,
            covariance_prior_=self.covariance_prior,
        )


def _check_precision_matrix(precision, covariance_type):
    """scikit-learn's check (and message) of a matrix prior."""
    if not (np.all(np.isclose(precision, precision.T))
            and np.all(np.linalg.eigvalsh(precision) > 0.0)):
        raise ValueError(
            "'%s precision' should be symmetric, positive-definite" % covariance_type)


def check_prior_arguments(params, n_features):
    """The checks of scikit-learn's ``_check_parameters`` that need no data
    pass (run before the data's mean and scatter are computed); returns the
    user's mean_prior and covariance_prior validated, or None each."""
    covariance_type = params["covariance_type"]
    dof = params["degrees_of_freedom_prior"]
    if dof is not None and not dof > n_features - 1.0:
        raise ValueError(
            "The parameter 'degrees_of_freedom_prior' "
            "should be greater than %d, but got %.3f." % (n_features - 1, dof))
    mean_prior = params["mean_prior"]
    if mean_prior is not None:
        mean_prior = check_array(mean_prior, dtype=[np.float64, np.float32],
                                 ensure_2d=False)
        _check_shape(mean_prior, (n_features,), "means", "mean_prior", "(n_features,)")
    cp = params["covariance_prior"]
    if cp is not None:
        if covariance_type in ("full", "tied"):
            cp = check_array(cp, dtype=[np.float64, np.float32], ensure_2d=False)
            _check_shape(cp, (n_features, n_features), "%s covariance_prior" % covariance_type,
                         "covariance_prior", "(n_features, n_features)")
            _check_precision_matrix(cp, covariance_type)
        elif covariance_type == "diag":
            cp = check_array(cp, dtype=[np.float64, np.float32], ensure_2d=False)
            _check_shape(cp, (n_features,), "%s covariance_prior" % covariance_type,
                         "covariance_prior", "(n_features,)")
            if np.any(cp <= 0.0):
                raise ValueError("'%s precision' should be positive" % covariance_type)
        else:
            arr = np.asarray(cp)
            if arr.ndim != 0 or arr.dtype.kind not in "iuf" or not float(arr) > 0.0:
                raise ValueError(
                    "The parameter 'covariance_prior' with covariance_type='spherical' "
                    f"must be a positive number (the prior variance), got {cp!r}.")
            cp = float(arr)
    return mean_prior, cp


def priors_from_data(data, params, mean_prior, covariance_prior):
    """Priors with scikit-learn's defaults, taken from the data source
    (weighted: the weights count rows). ``mean_prior``/``covariance_prior``
    come validated from ``check_prior_arguments``.

    Defaults: mean_prior the (weighted) mean; covariance_prior the (weighted)
    covariance with ddof=1, sum_i w_i (x_i - m)(x_i - m)^T / (sum_i w_i - 1)
    (numpy's np.cov / np.var(ddof=1) for unit weights); its diagonal for
    'diag', the mean of that for 'spherical'.
    """
    covariance_type = params["covariance_type"]
    n_components = params["n_components"]
    n_features = data.n_features
    wcp = params["weight_concentration_prior"]
    mpp = params["mean_precision_prior"]
    dof = params["degrees_of_freedom_prior"]
    if mean_prior is None:
        mean_prior = data.mean.copy()
    if covariance_prior is None:
        total = data.total_weight
        if not total > 1.0:
            raise ValueError(
                f"sample_weight sums to {total:g}, but the default covariance_prior "
                "(the data's covariance with ddof=1, the weights counting rows) needs "
                "a total weight above 1. Pass weights that count observations, or "
                "set covariance_prior.")
        # the scatter about the data's centre, moved to the exact mean
        delta = data.mean - np.asarray(data.center, dtype=np.float64)
        scatter = data.T - total * np.outer(delta, delta)
        covariance_prior = _covariance.get(covariance_type).default_covariance_prior(
            np.atleast_2d(scatter / (total - 1.0)))
    return Priors(
        weight_concentration_prior_type=params["weight_concentration_prior_type"],
        weight_concentration_prior=1.0 / n_components if wcp is None else wcp,
        mean_precision_prior=1.0 if mpp is None else mpp,
        mean_prior=mean_prior,
        degrees_of_freedom_prior=n_features if dof is None else dof,
        covariance_prior=covariance_prior,
    )


# ---------------------------------------------------------------------------
# Parameters and the variational M-step
# ---------------------------------------------------------------------------

@dataclass
class BGMParams:
    """The variational posterior (scikit-learn's fitted attributes)."""

    weight_concentration: Any       # DP: tuple of two (K,); else (K,)
    mean_precision: np.ndarray      # (K,)
    means: np.ndarray               # (K, D)
    degrees_of_freedom: Any         # (K,); tied: a scalar
    covariances: np.ndarray         # per covariance type
    precisions_cholesky: np.ndarray  # per covariance type
    # what the E-step's constants and the lower bound share (``_shared``),
    # computed once for these values; not part of the state
    shared: Any = field(default=None, repr=False, compare=False)

    def astype(self, dtype):
        dtype = np.dtype(dtype)

        def cast(a):
            a = np.asarray(a, dtype=dtype)
            return dtype.type(a) if a.ndim == 0 else a

        wc = self.weight_concentration
        wc = tuple(cast(a) for a in wc) if isinstance(wc, tuple) else cast(wc)
        with np.errstate(over="ignore"):
            return BGMParams(wc, cast(self.mean_precision), cast(self.means),
                             cast(self.degrees_of_freedom), cast(self.covariances),
                             cast(self.precisions_cholesky))

    def as_tuple(self):
        """scikit-learn's ``_get_parameters`` order."""
        return (self.weight_concentration, self.mean_precision, self.means,
                self.degrees_of_freedom, self.covariances, self.precisions_cholesky)


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def estimate_weights(nk, priors):
    """scikit-learn's ``_estimate_weights``: the Dirichlet (process) posterior."""
    if priors.weight_concentration_prior_type == "dirichlet_process":
        return (1.0 + nk,
                priors.weight_concentration_prior
                + np.concatenate((np.cumsum(nk[::-1])[-2::-1], _ZERO)))
    return priors.weight_concentration_prior + nk


def variational_m_step(nk, xk, sk, priors, covariance_type, float32=False):
    """BGMParams (float64) from scikit-learn's (nk, xk, sk) of
    ``_estimate_gaussian_parameters``: ``_estimate_weights``,
    ``_estimate_means``, ``_estimate_precisions``."""
    cov = _covariance.get(covariance_type)
    mean_precision = priors.mean_precision_prior + nk
    dof, covariances = cov.wishart(nk, xk, sk, priors, mean_precision)
    return variational_params(nk, xk, mean_precision, dof, covariances, priors, cov, float32)


def variational_params(nk, xk, mean_precision, dof, covariances, priors, cov, float32):
    """BGMParams (float64) from the Wishart update's (``cov.wishart``,
    ``cov.wishart_from_stats``): the weight concentration, the means and the
    precisions' factors."""
    weight_concentration = estimate_weights(nk, priors)
    means = ((priors.mean_precision_prior * _f64(priors.mean_prior) + nk[:, np.newaxis] * xk)
             / mean_precision[:, np.newaxis])
    prec_chol = cov.precision_cholesky(covariances, float32=float32)
    return BGMParams(weight_concentration, mean_precision, means, dof, covariances,
                     prec_chol)


def mixture_weights(weight_concentration, prior_type):
    """scikit-learn's ``weights_`` (``_set_parameters``), float64."""
    if prior_type == "dirichlet_process":
        a, b = _f64(weight_concentration[0]), _f64(weight_concentration[1])
        total = a + b
        tmp = b / total
        weights = a / total * np.concatenate((_ONE, np.cumprod(tmp[:-1])))
        return weights / weights.sum()
    wc = _f64(weight_concentration)
    return wc / wc.sum()


# ---------------------------------------------------------------------------
# The E-step's constants and the lower bound
# ---------------------------------------------------------------------------

def log_weights(weight_concentration, prior_type):
    """E[log pi_k], scikit-learn's ``_estimate_log_weights``, float64 (K,)."""
    if prior_type == "dirichlet_process":
        a, b = _f64(weight_concentration[0]), _f64(weight_concentration[1])
        digamma_sum = digamma(a + b)
        digamma_a = digamma(a)
        digamma_b = digamma(b)
        return (digamma_a - digamma_sum
                + np.concatenate((_ZERO, np.cumsum(digamma_b - digamma_sum)[:-1])))
    wc = _f64(weight_concentration)
    return digamma(wc) - digamma(wc.sum())


@dataclass
class _Shared:
    """What the fit's E-step constants and lower bound take from one set of
    parameters, computed once for them by gmmfast/_kernels.pyx's
    ``bgm_constants`` (one compiled call for the digammas and log-gammas
    that ``log_prob_constant``, ``log_weights`` and ``lower_bound`` spell out
    in numpy for the hooks): the kernels' lognorm_k (K,) and the lower
    bound without its -sum w r log r term."""

    lognorm: np.ndarray
    bound_terms: float


def _shared(params, cov, prior_type):
    """``params.shared``, computed the first time it is asked for."""
    if params.shared is None:
        n_components, n_features = params.means.shape
        log_det = _f64(cov.log_det(params.precisions_cholesky, n_components, n_features))
        dof = _f64(params.degrees_of_freedom)
        if dof.ndim == 0:  # tied
            dof = np.full(n_components, dof)
        wc = params.weight_concentration
        process = prior_type == "dirichlet_process"
        conc_a, conc_b = (wc if process else (wc, wc))
        lognorm = np.empty(n_components)
        bound_terms = _kernels.bgm_constants(
            log_det, dof, _f64(params.mean_precision),
            _f64(conc_a), _f64(conc_b), n_features, process, cov.uses_scatter, lognorm)
        params.shared = _Shared(lognorm, bound_terms)
    return params.shared


def _dof_terms(params, n_features):
    """nu (K,; tied: a scalar) in float64, log nu and the (D, K)
    half-arguments (nu - j) / 2, j = 0..D-1, of the digammas and log-gammas."""
    dof = _f64(params.degrees_of_freedom)
    return dof, np.log(dof), 0.5 * (dof - np.arange(0, n_features)[:, np.newaxis])


def log_prob_constant(params, covariance_type, n_features):
    """The per-component constant of scikit-learn's ``_estimate_log_prob``:
    log det U_k - D/2 log(2 pi) - D/2 log nu_k + 1/2 (log Lambda~_k - D/beta_k),
    float64 (K,)."""
    dof, log_dof, half_dof = _dof_terms(params, n_features)
    log_det = _covariance.get(covariance_type).log_det(
        params.precisions_cholesky, params.means.shape[0], n_features)
    log_lambda = n_features * math.log(2.0) + digamma(half_dof).sum(0)
    return (log_det - 0.5 * n_features * LOG_2PI - 0.5 * n_features * log_dof
            + 0.5 * (log_lambda - n_features / _f64(params.mean_precision)))


def kernel_lognorm(params, covariance_type, prior_type):
    """lognorm_k for the kernels: the log-probability constant plus E[log pi_k]."""
    return _shared(params, _covariance.get(covariance_type), prior_type).lognorm


def kernel_params(params, covariance_type, prior_type, dtype, center=None):
    """KernelParams whose kernel computes scikit-learn's weighted log
    probabilities of the variational model (``_estimate_weighted_log_prob``)."""
    cov = _covariance.get(covariance_type)
    # the mixture weights only place a default centre (tied)
    weights = (mixture_weights(params.weight_concentration, prior_type)
               if center is None and cov.uses_scatter else None)
    gmm = GMMParams(weights, params.means, params.covariances, params.precisions_cholesky)
    kp = KernelParams(gmm, covariance_type, dtype, center, lognorm=kernel_lognorm(
        params, covariance_type, prior_type))
    # the lower bound's sum w r log r from the kernel, where it gives it: for
    # full and tied, whose trace of the statistics costs O(K D^3) (diag and
    # spherical's costs O(K D), less than the kernel's copy of lp)
    kp.want_resp_lp = cov.name in _RESP_LP_TYPES
    return kp


# the types whose E-step gives the lower bound's sum w r lp (``kernel_params``)
_RESP_LP_TYPES = ("full", "tied")


def weighted_mahalanobis(stats, kp):
    """sum_k sum_i w_i r_ik ||(x_i - m_k) U_k||^2 = sum_k tr(P_k M_k) from the
    statistics the kernel returned for ``kp`` (around kp.shift; tied: S2 is
    the scatter T)."""
    R, S1, S2 = stats
    cov = kp.cov
    n_components, n_features = kp.means.shape
    prec_chol = _f64(kp.prec).reshape(cov.shape(n_components, n_features))
    if cov.uses_scatter:
        # sum_k M_k = T - S1^T d - d^T S1 + sum_k R_k d_k d_k^T, d_k = m_k - c
        d = _f64(kp.means) - kp.shift
        cross = S1.T @ d
        return cov.trace_precisions(prec_chol, S2 - cross - cross.T + (R[:, None] * d).T @ d)
    # the statistics are taken around the kernel's means: S2_k is M_k
    return cov.trace_precisions(prec_chol, S2)


def log_resp_sum(stats, ll, kp):
    """sum_i w_i sum_k r_ik log r_ik = sum_k sum_i w_i r_ik lp_ik - ll (up to
    SMALL_ALGEBRA_D features one compiled call, gmmfast/_kernels.pyx's
    ``log_resp_sum``, these forms' operations)."""
    R, S1, S2 = stats
    if _covariance.small_algebra(S1.shape[1]):
        d = _f64(kp.means) - kp.shift if kp.cov.uses_scatter else kp.shift
        prec = kp.prec if kp.prec.dtype == np.float64 else kp.prec.astype(np.float64)
        return _kernels.log_resp_sum(kp.code, R, S1, S2, prec, kp.lognorm, d, float(ll))
    return float(R @ kp.lognorm) - 0.5 * weighted_mahalanobis(stats, kp) - ll


def _log_wishart_norm(degrees_of_freedom, log_det_precisions_chol, n_features, half_dof):
    # scikit-learn's, without its np.log(np.pi) term; half_dof: ``_dof_terms``'s
    # (nu - j) / 2
    return -(degrees_of_freedom * log_det_precisions_chol
             + degrees_of_freedom * n_features * 0.5 * math.log(2.0)
             + gammaln(half_dof).sum(0))


def lower_bound(params, priors, covariance_type, resp_log_resp):
    """scikit-learn's ``_compute_lower_bound`` of the new parameters, with
    ``resp_log_resp`` = sum_i w_i sum_k r_ik log r_ik of the E-step (the
    hooks' numpy form; a fit takes ``fit_lower_bound``)."""
    cov = _covariance.get(covariance_type)
    n_components, n_features = params.means.shape
    dof, log_dof, half_dof = _dof_terms(params, n_features)
    log_det = (cov.log_det(params.precisions_cholesky, n_components, n_features)
               - 0.5 * n_features * log_dof)
    if cov.uses_scatter:
        log_wishart = n_components * float(
            _log_wishart_norm(dof, log_det[0], n_features, half_dof)[0])
    else:
        log_wishart = float(_log_wishart_norm(dof, log_det, n_features, half_dof).sum())
    wc = params.weight_concentration
    if priors.weight_concentration_prior_type == "dirichlet_process":
        log_norm_weight = -float(betaln(_f64(wc[0]), _f64(wc[1])).sum())
    else:
        wc = _f64(wc)
        log_norm_weight = float(gammaln(wc.sum()) - gammaln(wc).sum())
    return (-resp_log_resp - log_wishart - log_norm_weight
            - 0.5 * n_features * float(np.log(_f64(params.mean_precision)).sum()))


def fit_lower_bound(params, priors, covariance_type, resp_log_resp):
    """``lower_bound`` from the compiled constants (``_shared``), which the
    next E-step's kernel constants reuse; equal to it to rounding."""
    return (_shared(params, _covariance.get(covariance_type),
                    priors.weight_concentration_prior_type).bound_terms
            - resp_log_resp)


# ---------------------------------------------------------------------------
# The model the EM loop drives (gmmfast/_em.py, GMMModel's interface)
# ---------------------------------------------------------------------------

def non_finite_bound_error(value, n_iter, reg_covar):
    return ValueError(
        f"Variational inference failed at iteration {n_iter}: the lower bound is "
        f"{value}, because the data, the weights or the statistics overflow. Increase "
        f"reg_covar (now {reg_covar:g}), scale the input data (e.g. "
        "sklearn.preprocessing.StandardScaler), or check the priors.")


class BGMModel:
    """The variational model for ``_em.run_model``/``fit_model``."""

    def __init__(self, data, n_components, covariance_type, reg_covar, priors):
        self.data = data
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.cov = _covariance.get(covariance_type)
        self.reg_covar = reg_covar
        self.priors = priors
        self.prior_type = priors.weight_concentration_prior_type
        self.float32 = data.dtype == np.float32
        self._eps = _stats.machine_eps(data.dtype)
        self._small_algebra = _covariance.small_algebra(data.n_features)
        self._want_resp_lp = self.cov.name in _RESP_LP_TYPES
        # the priors as the compiled M-step of small shapes takes them
        self._compiled_priors = (
            self.prior_type == "dirichlet_process", float(priors.weight_concentration_prior),
            float(priors.mean_precision_prior),
            np.ascontiguousarray(priors.mean_prior, dtype=np.float64),
            float(priors.degrees_of_freedom_prior),
            np.ascontiguousarray(np.reshape(priors.covariance_prior, -1), dtype=np.float64))

    @property
    def center(self):
        return self.data.center if self.cov.uses_scatter else None

    def params_from_gaussian(self, nk, xk, sk):
        """The variational M-step, rounded to the data's dtype (the state the
        next E-step and the fitted attributes both see)."""
        params = variational_m_step(nk, xk, sk, self.priors, self.covariance_type,
                                    float32=self.float32)
        return self._in_dtype(params)

    def _in_dtype(self, params):
        if not self.float32:
            return params  # float64 already
        shared = params.shared
        params = params.astype(self.data.dtype)
        if not all(np.all(np.isfinite(a)) for a in (
                params.means, params.covariances, params.precisions_cholesky)):
            _stats.check_finite_params(GMMParams(
                np.ones(1), params.means, params.covariances, params.precisions_cholesky),
                np.float32)
        params.shared = shared  # computed from the float32 values
        return params

    def m_step(self, stats, kp):
        """The variational M-step of the E-step's statistics (taken around
        kp.shift; the 10 eps guard pulls each mean towards kp.means), in the
        data's dtype. Up to SMALL_ALGEBRA_D features (gmmfast/_covariance.py)
        one compiled call, gmmfast/_kernels.pyx's ``bgm_m_step``, which also
        computes the next E-step's constants (``_shared``); beyond, numpy."""
        R, S1, S2 = stats
        eps = self._eps
        if not self._small_algebra:
            return self._in_dtype(variational_params(
                *self.cov.wishart_from_stats(R, S1, S2, kp.shift, self.reg_covar, eps,
                                             self.priors, anchor=kp.means),
                self.priors, self.cov, self.float32))
        anchor = kp.means
        if anchor is kp.shift:
            anchor = None
        elif anchor.dtype != np.float64:
            anchor = anchor.astype(np.float64)
        out = _kernels.bgm_m_step(
            self.cov.code, R, S1, S2, kp.shift, anchor,
            self.reg_covar, eps, *self._compiled_priors, self.float32)
        if out is None:
            raise ValueError(ILL_DEFINED_MESSAGE + (FLOAT32_HINT if self.float32 else ""))
        conc_a, conc_b, mean_precision, means, dof, covariances, prec_chol, lognorm, \
            bound_terms = out
        params = BGMParams(conc_a if conc_b is None else (conc_a, conc_b), mean_precision,
                           means, dof, covariances, prec_chol,
                           shared=_Shared(lognorm, bound_terms))
        return self._in_dtype(params)

    def initial_params(self, random_state, init_params, *_):
        """scikit-learn's ``_initialize_parameters`` then ``_initialize``: the
        variational M-step of the initial responsibilities."""
        init = self.data.init_data(init_params)
        dtype = init.dtype
        (R, S1, S2), shift, rows_sum_to_one = resp_statistics(
            init, self.n_components, self.covariance_type, init_params, random_state)
        if self.cov.uses_scatter:
            S2 = init.T
            if not rows_sum_to_one:
                S2 = S2 + self.cov.origin_correction(
                    R, S1, init.center.astype(np.float64), init.total_weight, init.mean)
        nk, xk, sk = self.cov.params_from_stats(
            R, S1, S2, shift, self.reg_covar, float(np.finfo(dtype).eps))
        return self.params_from_gaussian(nk, xk, sk)

    def start(self, params):
        return params.astype(self.data.dtype)

    def kernel_params(self, params):
        if self.cov.uses_scatter:
            return kernel_params(params, self.covariance_type, self.prior_type,
                                 self.data.dtype, self.center)
        # ``kernel_params``' KernelParams without its lookups and wrapper
        # (every iteration: 1.9 against EM's 1.3 us at 2 x 2)
        kp = KernelParams(params, self.covariance_type, self.data.dtype,
                          lognorm=_shared(params, self.cov, self.prior_type).lognorm)
        kp.want_resp_lp = self._want_resp_lp
        return kp

    def iterate(self, params, kp, stats, ll, n_iter):
        """scikit-learn's order: M-step on the E-step's responsibilities, then
        the lower bound of the new parameters with those responsibilities."""
        if not math.isfinite(ll):
            raise non_finite_bound_error(ll, n_iter, self.reg_covar)
        new = self.m_step(stats, kp)
        terms = getattr(self.data, "missing_terms", None)
        if terms is None:
            # sum w r log r = sum w r lp - ll: from the E-step's kernel where
            # it gave sum w r lp (beyond the vector kernels: no trace of the
            # statistics then), else from the statistics
            resp_lp_for = getattr(self.data, "resp_lp_for", None)
            resp_lp = None if resp_lp_for is None else resp_lp_for(kp)
            value = fit_lower_bound(new, self.priors, self.covariance_type,
                                    log_resp_sum(stats, ll, kp) if resp_lp is None
                                    else resp_lp - ll)
        else:
            # missing values (gmmfast/_missing.py): the missing coordinates
            # are latent too, q(x_m | z = k) the Gaussian the E-step used; the
            # complete rows' sum r log r from their statistics, the others'
            # directly, plus the entropy of q(x_m | z)
            value = fit_lower_bound(
                new, self.priors, self.covariance_type,
                log_resp_sum(terms.complete_stats, terms.complete_ll, kp)
                + terms.hole_rlogr) + terms.hole_entropy
        if not math.isfinite(value):
            raise non_finite_bound_error(value, n_iter, self.reg_covar)
        return new, value


# ---------------------------------------------------------------------------
# Streaming variational Bayes (partial_fit)
# ---------------------------------------------------------------------------

def online_step(X, sample_weight, params, state, total_weight, *, priors,
                covariance_type, reg_covar, cfg, learning_decay, learning_offset,
                missing=False):
    """One streaming step on the batch X (validated, C-contiguous).

    The running statistics s per unit weight (R, S1, S2 around a shift, as
    stepwise EM keeps them) are blended with the batch's,
    s <- (1 - rho_t) s + rho_t s_batch (rho = 1 for the stream's first
    batch, ``state`` None), and the posterior is the variational M-step of
    the statistics N_t s, N_t the total weight seen so far (``total_weight``
    before the batch plus the batch's): the stochastic variational update of
    the natural parameters, prior + N_t s, whose "data set size" is the
    stream so far.

    Returns (BGMParams in X's dtype, OnlineState, new total weight, mean
    (weighted) score of the batch under the parameters before the step).
    """
    cfg = batch_config(cfg, X, params.means.shape[0])
    dtype = X.dtype
    cov = _covariance.get(covariance_type)
    with blas_single_thread():
        batch_weight = (float(X.shape[0]) if sample_weight is None
                        else float(sample_weight.sum()))
        kp = kernel_params(params, covariance_type,
                           priors.weight_concentration_prior_type, dtype)
        (R, S1, S2), ll = batch_statistics(X, sample_weight, kp, cfg, missing)
        if not np.isfinite(ll):
            raise non_finite_bound_error(ll, 1, reg_covar)
        state, _ = blend(state, (R, S1, S2), batch_weight, kp.shift.copy(), cov,
                         learning_decay, learning_offset)
        R, S1, S2, shift = state.R, state.S1, state.S2, state.shift
        total_weight = total_weight + batch_weight
        nk, xk, sk = cov.params_from_stats(
            total_weight * R, total_weight * S1, total_weight * S2, shift, reg_covar,
            float(np.finfo(dtype).eps))
        new = variational_m_step(nk, xk, sk, priors, covariance_type,
                                 float32=(dtype == np.float32)).astype(dtype)
    return new, state, total_weight, ll / batch_weight
