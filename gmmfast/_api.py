"""The functional core: ``gmmfast.fit`` and what the estimator, ``select``
and the command line share with it.

Owns the parameters' rules (constraints, defaults) and the public boundary's
order of checks: parameters, then X, then the data source (sample weights),
then the ``*_init`` arrays, then EM. ``gmmfast.GaussianMixture`` is built on
``fit_arrays`` and ``predict``; so are ``gmmfast.select`` and the CLI.
"""
import contextlib
import threading
from numbers import Integral, Real

import numpy as np
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)

from . import _covariance, _em, _source
from ._init import RESP_BLOCK, initial_params, params_from_resp
from ._stats import GMMParams, KernelParams
from ._threads import blas_single_thread
from ._validation import check_means, check_precisions, check_weights

PARAMETER_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "covariance_type": [StrOptions(set(_covariance.COVARIANCE_TYPES))],
    "tol": [Interval(Real, 0.0, None, closed="left")],
    "reg_covar": [Interval(Real, 0.0, None, closed="left")],
    "max_iter": [Interval(Integral, 0, None, closed="left")],
    "n_init": [Interval(Integral, 1, None, closed="left")],
    "init_params": [StrOptions({"kmeans", "random", "random_from_data", "k-means++"})],
    "weights_init": ["array-like", None],
    "means_init": ["array-like", None],
    "precisions_init": ["array-like", None],
    "random_state": ["random_state"],
    "warm_start": ["boolean"],
    "verbose": ["verbose"],
    "verbose_interval": [Interval(Integral, 1, None, closed="left")],
    "n_threads": [None, Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
    "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
    "learning_offset": [Interval(Real, 0.0, None, closed="left")],
    "nan_policy": [StrOptions({"raise", "marginalize"})],
}

# scikit-learn's own constraint objects where they say the same: their
# messages list the options in the set's order, which only the same set
# object repeats (the error then reads word for word as scikit-learn's)
_SKLEARN_CONSTRAINTS = SkGaussianMixture._parameter_constraints
for _name, _ours in PARAMETER_CONSTRAINTS.items():
    _theirs = _SKLEARN_CONSTRAINTS.get(_name)
    if _theirs is not None and all(isinstance(c, StrOptions) for c in _ours + _theirs) \
            and [c.options for c in _theirs] == [c.options for c in _ours]:
        PARAMETER_CONSTRAINTS[_name] = list(_theirs)
del _name, _ours, _theirs

DEFAULTS = dict(
    n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6, max_iter=100,
    n_init=1, init_params="kmeans", weights_init=None, means_init=None,
    precisions_init=None, random_state=None, warm_start=False, verbose=0,
    verbose_interval=10, n_threads=None, learning_decay=0.6, learning_offset=2.0,
    nan_policy="raise",
)

# integer parameters: bool is an Integral to Python, never a count to us
INTEGER_PARAMETERS = ("n_components", "max_iter", "n_init", "verbose_interval", "n_threads")


def check_integer_parameters(params, caller_name):
    """No bool where a count is due (scikit-learn's constraints accept one)."""
    for name in INTEGER_PARAMETERS:
        value = params[name]
        if isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(
                f"The {name!r} parameter of {caller_name} must be an int, "
                f"not a bool. Got {value!r} instead."
            )


def validate_params(params, caller_name="GaussianMixture"):
    """scikit-learn's constraint checks on a dict of every parameter."""
    validate_parameter_constraints(PARAMETER_CONSTRAINTS, params, caller_name=caller_name)
    check_integer_parameters(params, caller_name)


def check_n_samples(n_samples, n_components):
    if n_samples < n_components:
        raise ValueError(
            "Expected n_samples >= n_components "
            f"but got n_components = {n_components}, "
            f"n_samples = {n_samples}; pass more samples or fewer components."
        )


def fit_arrays(X, sample_weight, params, *, warm_start_from=None, callback=None,
               feature_names=None):
    """EM on validated X (``_source.validate_X``) with validated ``params``
    (every parameter, by name); returns a ``FitResult``.

    warm_start_from : (GMMParams, lower_bound) or None.
    callback : callable(n_iter, lower_bound) or None, after every iteration.
    feature_names : X's column names (for the messages about missing values).
    """
    n_samples, n_features = X.shape
    n_components = params["n_components"]
    covariance_type = params["covariance_type"]
    check_n_samples(n_samples, n_components)
    with seeded_random_state(params["random_state"]) as random_state:
        data = _source.make_source(
            X, sample_weight, covariance_type=covariance_type, n_components=n_components,
            n_threads=params["n_threads"], random_state=random_state,
            nan_policy=params["nan_policy"], fitting=True, feature_names=feature_names)
        init = check_init_arrays(params, n_features, X.dtype)
        return _em.fit_em(
            data, n_components=n_components, covariance_type=covariance_type,
            tol=params["tol"], reg_covar=params["reg_covar"], max_iter=params["max_iter"],
            n_init=params["n_init"], init_params=params["init_params"],
            random_state=random_state, warm_start_from=warm_start_from,
            verbose=params["verbose"], verbose_interval=params["verbose_interval"],
            callback=callback, **init)


_free_random_states = threading.local()


@contextlib.contextmanager
def seeded_random_state(seed):
    """``check_random_state(seed)`` for the length of a fit.

    For an int seed, ``np.random.RandomState(seed)`` spends ~120 us building
    a bit generator from fresh OS entropy before it reseeds it (the
    legacy seeding), more than a whole EM iteration of a small fit;
    ``RandomState.seed(seed)`` on an existing one sets the identical state
    (the same legacy seeding, the Gaussian cache cleared) in ~2 us. So fits
    borrow a RandomState from a per-thread pool and reseed it, and hand it
    back when they end; a fit started inside another (a callback) borrows a
    second one. None and RandomState instances are scikit-learn's.
    """
    if not isinstance(seed, Integral) or isinstance(seed, bool):
        yield check_random_state(seed)
        return
    pool = _free_random_states.__dict__.setdefault("pool", [])
    rng = pool.pop() if pool else np.random.RandomState()
    rng.seed(seed)
    try:
        yield rng
    finally:
        pool.append(rng)


def check_init_arrays(params, n_features, dtype):
    """weights_init, means_init, precisions_init validated (copies) for data
    of ``dtype``, or None each."""
    n_components = params["n_components"]
    return dict(
        weights_init=None if params["weights_init"] is None
        else check_weights(params["weights_init"], n_components),
        means_init=None if params["means_init"] is None
        else check_means(params["means_init"], n_components, n_features, dtype),
        precisions_init=None if params["precisions_init"] is None
        else check_precisions(params["precisions_init"], params["covariance_type"],
                              n_components, n_features, dtype),
    )


def start_stream(X, sample_weight, params):
    """The initial parameters of a ``partial_fit`` stream on its first batch
    (validated X), as ``fit`` would start: (GMMParams, validated weights)."""
    n_components = params["n_components"]
    check_n_samples(X.shape[0], n_components)
    data = _source.make_source(
        X, sample_weight, covariance_type=params["covariance_type"],
        n_components=n_components, n_threads=params["n_threads"],
        nan_policy=params["nan_policy"], fitting=True)
    init = check_init_arrays(params, X.shape[1], X.dtype)
    with blas_single_thread():
        start = initial_params(
            data.init_data(params["init_params"]), n_components,
            params["covariance_type"], params["init_params"],
            check_random_state(params["random_state"]), params["reg_covar"],
            init["weights_init"], init["means_init"], init["precisions_init"])
    return start, data.sample_weight


def predict(params, covariance_type, X, n_threads=None, sample_weight=None, *,
            logp=False, resp=False, labels=False, score=False, nan_policy="raise"):
    """Predictions of fitted ``params`` (GMMParams) on validated X: the tuple
    (logp, resp, labels), each None unless asked for (numpy arrays, or lazy
    Dask arrays for a Dask X), or with ``score`` the mean (weighted)
    log-likelihood, a float."""
    kp = KernelParams(params, covariance_type, X.dtype)
    data = _source.make_source(
        X, sample_weight, covariance_type=covariance_type,
        n_components=kp.means.shape[0], n_threads=n_threads, min_positive_weights=1,
        nan_policy=nan_policy)
    if score:
        return data.mean_log_likelihood(kp)
    return data.predict(kp, logp=logp, resp=resp, labels=labels)


def impute(params, covariance_type, X, n_threads=None):
    """A copy of validated X (NaN allowed) with each NaN replaced by its
    conditional expectation under the mixture ``params``."""
    kp = KernelParams(params, covariance_type, X.dtype)
    data = _source.make_source(
        X, None, covariance_type=covariance_type, n_components=kp.means.shape[0],
        n_threads=n_threads, min_positive_weights=1, nan_policy="marginalize")
    if not hasattr(data, "impute"):
        return np.array(X, copy=True)
    with blas_single_thread():
        return data.impute(kp)


def fit(X, n_components=1, *, sample_weight=None, callback=None, **options):
    """Fit a Gaussian mixture by EM and return its parameters and record.

    The functional core that :class:`gmmfast.GaussianMixture`,
    :func:`gmmfast.select` and the command line are built on: the same
    validation, the same EM, without an estimator object.

    Parameters
    ----------
    X : array-like, numpy.memmap or dask.array.Array of shape (n_samples, n_features)
    n_components : int, default=1
    sample_weight : array-like of shape (n_samples,), default=None
    callback : callable(n_iter, lower_bound), default=None
        Called after every EM iteration of every initialisation (n_iter
        restarts at 1 for each): progress reports.
    **options
        Any other constructor parameter of :class:`gmmfast.GaussianMixture`
        (covariance_type, tol, reg_covar, max_iter, n_init, init_params,
        weights_init, means_init, precisions_init, random_state, verbose,
        verbose_interval, n_threads, nan_policy). ``warm_start`` is not accepted here.

    Returns
    -------
    FitResult
        ``weights``, ``means``, ``covariances``, ``precisions_cholesky``,
        ``precisions``, ``converged``, ``n_iter``, ``lower_bound``,
        ``lower_bounds`` (scikit-learn's meaning, without the trailing
        underscores).
    """
    if "warm_start" in options:
        raise TypeError(
            "gmmfast.fit() does not take warm_start; use "
            "GaussianMixture(warm_start=True) to continue a fit."
        )
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"gmmfast.fit() got an unexpected keyword argument {unknown[0]!r}")
    params = {**DEFAULTS, **options, "n_components": n_components}
    validate_params(params, "GaussianMixture")
    X = _source.validate_X(X, ensure_min_samples=2,
                           allow_nan=params["nan_policy"] == "marginalize")
    return fit_arrays(X, sample_weight, params, callback=callback)


# ---------------------------------------------------------------------------
# What scikit-learn's BaseMixture hooks compute (N x K arrays by their
# contract; ``fit`` never calls these)
# ---------------------------------------------------------------------------

def component_params(params, covariance_type, k):
    """Component k alone, with weight 1: GMMParams of one component."""
    one = slice(k, k + 1)
    cov = _covariance.get(covariance_type)
    shared = cov.uses_scatter  # tied: one covariance for every component
    return GMMParams(
        np.ones(1, dtype=params.means.dtype), params.means[one],
        params.covariances if shared else params.covariances[one],
        params.precisions_cholesky if shared else params.precisions_cholesky[one])


def component_log_prob(params, covariance_type, X, n_threads=None):
    """log N(x_i | mu_k, Sigma_k), shape (n_samples, n_components), in X's
    dtype: scikit-learn's ``_estimate_log_gaussian_prob``. One pass of the
    prediction kernel per component, each with weight 1 (log pi = 0)."""
    n_components = params.means.shape[0]
    out = np.empty((X.shape[0], n_components), dtype=X.dtype)
    for k in range(n_components):
        out[:, k] = predict(component_params(params, covariance_type, k),
                            covariance_type, X, n_threads, logp=True)[0]
    return out


def _resp_blocks(resp, from_log):
    blocks = []
    for a in range(0, resp.shape[0], RESP_BLOCK):
        b = min(a + RESP_BLOCK, resp.shape[0])
        blocks.append((a, b, np.exp(resp[a:b]) if from_log else resp[a:b]))
    return blocks


def gaussian_params_from_resp(X, resp, covariance_type, reg_covar, n_threads=None,
                              log=False):
    """scikit-learn's ``_estimate_gaussian_parameters(X, resp, ...)`` (or of
    exp(resp) with ``log``), through the kernel statistics: (nk, means,
    covariances), float64; X validated (C-contiguous float32/float64)."""
    n_components = resp.shape[1]
    data = _source.make_source(X, None, covariance_type=covariance_type,
                               n_components=n_components, n_threads=n_threads,
                               min_positive_weights=1)
    with blas_single_thread():
        return params_from_resp(data, _resp_blocks(resp, log), n_components,
                                covariance_type, reg_covar)
