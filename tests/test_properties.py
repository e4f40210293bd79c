"""Property tests (hypothesis): over random small shapes, dtypes, weights,
covariance types and initialisers, every output is finite, responsibilities
sum to 1, and the lower bound never decreases by more than rounding.

The examples are drawn data (including duplicated points, constant columns,
far offsets and tiny scales), not only nice blobs. A fit may instead raise
scikit-learn's ill-defined-covariance ValueError, which names reg_covar;
nothing else is allowed.

GMMFAST_HYPOTHESIS_EXAMPLES raises the number of examples for a longer hunt.
"""
import os
import warnings

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from gmmfast import GaussianMixture

from conftest import COVARIANCE_TYPES

EXAMPLES = int(os.environ.get("GMMFAST_HYPOTHESIS_EXAMPLES", "100"))
# the default run draws the same examples every time (CI is reproducible);
# a longer hunt (GMMFAST_HYPOTHESIS_EXAMPLES) draws new ones
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    derandomize="GMMFAST_HYPOTHESIS_EXAMPLES" not in os.environ,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, kinds=("blobs", "duplicates", "constant column", "integers"),
             per_component=0, scales=(1e-6, 1.0, 1e3), offsets=(0.0, 10.0, 1e4),
             inits=("kmeans", "k-means++", "random", "random_from_data")):
    """(X, sample_weight or None, constructor parameters).

    per_component: the least number of samples per component and feature
    (0: any n_samples >= n_components).
    """
    n_components = draw(st.integers(1, 4))
    n_features = draw(st.integers(1, 4))
    least = max(2, n_components, per_component * n_components * (n_features + 1))
    n_samples = draw(st.integers(least, max(least, 60)))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(kinds))
    scale = draw(st.sampled_from(scales))
    offset = draw(st.sampled_from(offsets))
    if kind == "integers":
        X = rng.integers(-3, 4, size=(n_samples, n_features)).astype(np.float64)
    else:
        centers = rng.normal(scale=3.0, size=(n_components, n_features))
        X = centers[rng.integers(0, n_components, n_samples)]
        X = X + rng.normal(size=(n_samples, n_features))
        if kind == "duplicates":
            X = X[rng.integers(0, max(1, n_samples // 4), n_samples)]
        elif kind == "constant column":
            X[:, rng.integers(0, n_features)] = rng.normal()
    X = (X * scale + offset).astype(dtype)

    sample_weight = None
    if draw(st.booleans()):
        sample_weight = rng.uniform(0.0, 3.0, n_samples)
        sample_weight[rng.random(n_samples) < 0.2] = 0.0
        sample_weight[:n_components] += 0.5  # enough positive weights
    params = dict(
        n_components=n_components,
        covariance_type=draw(st.sampled_from(COVARIANCE_TYPES)),
        init_params=draw(st.sampled_from(inits)),
        max_iter=draw(st.integers(1, 30)),
        tol=draw(st.sampled_from([0.0, 1e-3])),
        random_state=seed % 1000,
        n_threads=draw(st.sampled_from([1, 2])),
    )
    return X, sample_weight, params


def _may_raise(X, params):
    """Where a legal input may get the reg_covar error (the README's
    Reliability section says so):

    - scikit-learn's 'tied' start from single points ('k-means++',
      'random_from_data') is taken about the origin, and far from it that
      covariance loses every digit;
    - float32 data too few or too degenerate to keep every component's
      covariance full-rank (fewer distinct rows than 3 n_components
      (n_features + 1), where EM can shrink a component onto n_features
      points, or a constant column), where reg_covar is below float32's
      resolution at the data's spread (reg_covar < eps * spread^2).
    """
    if (params["covariance_type"] == "tied"
            and params["init_params"] in ("k-means++", "random_from_data")):
        return True
    if X.dtype != np.float32:
        return False
    X64 = X.astype(np.float64)
    distinct = np.unique(X64, axis=0).shape[0]
    degenerate = (distinct < 3 * params["n_components"] * (X.shape[1] + 1)
                  or np.any(np.ptp(X64, axis=0) == 0))
    spread = float(np.ptp(X64, axis=0).max())
    reg = params.get("reg_covar", 1e-6)
    return degenerate and reg < float(np.finfo(np.float32).eps) * spread ** 2


def _fit(X, sample_weight, params, outcomes, may_raise=_may_raise):
    """The fitted model, or None after the reg_covar error where ``may_raise``
    allows it; ``outcomes`` counts both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            gm = GaussianMixture(**params).fit(X, sample_weight=sample_weight)
        except ValueError as exc:
            # the one error a legal input may get: it names the fix
            assert "increase reg_covar" in str(exc), str(exc)
            assert may_raise(X, params), (str(exc), X.dtype, X.shape, params)
            event("ill-defined covariance error (names reg_covar)")
            outcomes.append(False)
            return None
    outcomes.append(True)
    return gm


def _check_outcomes(outcomes, max_error_fraction):
    """Most drawn examples fit: errors are a small, stated minority."""
    assert outcomes, "no example ran"
    errors = outcomes.count(False)
    assert errors <= max_error_fraction * len(outcomes), (errors, len(outcomes))


def _largest_precision(gm):
    """The largest eigenvalue of a precision among components holding weight."""
    prec = np.asarray(gm.precisions_, dtype=np.float64)
    if gm.covariance_type == "full":
        lam = np.linalg.eigvalsh(prec).max(axis=1)
    elif gm.covariance_type == "tied":
        lam = np.full(gm.n_components, np.linalg.eigvalsh(prec).max())
    elif gm.covariance_type == "diag":
        lam = prec.max(axis=1)
    else:
        lam = prec
    return lam[gm.weights_ > 1e-6].max()


def _rounding_allowance(gm, X, lb):
    """How much rounding can lower the lower bound from one iteration to the
    next, (n_iter - 1,) in nats per sample.

    The lower bound is the mean of log p(x_i) evaluated in the data's dtype:
    lognorm_k - 1/2 m_ik, with the Mahalanobis term m_ik = ||(x_i - mu_k) U_k||^2
    from D^2 multiply-adds, then a log-sum-exp. Each value carries about
    eps (|log p(x_i)| + (D + 2) m_ik) of rounding, and at an M-step's
    parameters the responsibility-weighted mean of m_ik is D (the trace
    identity), so the mean carries eps (|lb| + (D + 2) D); two iterations are
    compared, 4x margin: 8 eps (1 + |lb_t| + |lb_t+1| + (D + 2) D).
    The parameters themselves are rounded to the dtype: a mean far from the
    origin by eps |mu| / 2 per coordinate. Its first-order effect on the mean
    log-likelihood vanishes at a stationary point (the only place EM's
    increase is small enough for rounding to show), the second order is
    1/2 lambda_max D (eps |mu|_max / 2)^2 per iteration: twice that.
    """
    eps = float(np.finfo(X.dtype).eps)
    n_features = X.shape[1]
    evaluation = 8 * eps * (1.0 + np.abs(lb[:-1]) + np.abs(lb[1:])
                            + (n_features + 2) * n_features)
    mu_max = float(np.abs(np.asarray(gm.means_, dtype=np.float64)).max())
    means = _largest_precision(gm) * n_features * (eps * mu_max) ** 2 / 4
    return evaluation + means


def test_outputs_finite_and_responsibilities_sum_to_one():
    outcomes = []
    _outputs_finite_and_responsibilities_sum_to_one(outcomes)
    # measured: 5 of 300 drawn examples (1.7%) raise, most of them tied from
    # k-means++/random_from_data
    _check_outcomes(outcomes, max_error_fraction=0.05)


@SETTINGS
@given(problem=problems())
def _outputs_finite_and_responsibilities_sum_to_one(outcomes, problem):
    X, sample_weight, params = problem
    gm = _fit(X, sample_weight, params, outcomes)
    if gm is None:
        return
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "precisions_"):
        value = getattr(gm, name)
        assert value.dtype == X.dtype, name
        assert np.all(np.isfinite(value)), name
    assert np.isfinite(gm.lower_bound_) and np.all(np.isfinite(gm.lower_bounds_))
    assert abs(float(gm.weights_.astype(np.float64).sum()) - 1.0) < 1e-5

    proba = gm.predict_proba(X)
    assert proba.dtype == X.dtype and np.all(np.isfinite(proba))
    assert np.all(proba >= 0) and np.all(proba <= 1 + 1e-6)
    atol = 1e-5 if X.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(proba.sum(axis=1, dtype=np.float64), 1.0, atol=atol)

    logp = gm.score_samples(X)
    assert np.all(np.isfinite(logp))
    np.testing.assert_array_equal(gm.predict(X), np.argmax(proba, axis=1))
    assert np.isfinite(gm.score(X, sample_weight=sample_weight))
    assert np.isfinite(gm.bic(X)) and np.isfinite(gm.aic(X))


def test_lower_bound_never_decreases_beyond_rounding():
    outcomes = []
    _lower_bound_never_decreases_beyond_rounding(outcomes)
    # measured: 3 of 300 drawn examples (1%) collapse a covariance
    _check_outcomes(outcomes, max_error_fraction=0.05)


@SETTINGS
@given(problem=problems(kinds=("blobs",), per_component=4, scales=(1e-3, 1.0, 1e3),
                        offsets=(0.0, 10.0, 1e3), inits=("kmeans", "random")))
def _lower_bound_never_decreases_beyond_rounding(outcomes, problem):
    """EM never decreases the likelihood. That holds for reg_covar=0 only:
    adding reg_covar to the covariances makes the M-step differ from the
    likelihood's maximiser (by an amount that depends on n_k), and then the
    lower bound can dip (scikit-learn's too). So reg_covar=0 here, on blobs
    with enough samples per component, from the initialisers that do not
    start from single points: a collapsing covariance then raises the
    reg_covar error, which is allowed."""
    X, sample_weight, params = problem
    params = dict(params, tol=0.0, max_iter=max(params["max_iter"], 10), reg_covar=0.0)
    # with reg_covar=0 a component may collapse onto a few points: allowed
    gm = _fit(X, sample_weight, params, outcomes, may_raise=lambda X, params: True)
    if gm is None:
        return
    lb = np.asarray(gm.lower_bounds_)
    assert len(lb) == gm.n_iter_
    drops = lb[:-1] - lb[1:]
    allowed = _rounding_allowance(gm, X, lb)
    assert np.all(drops <= allowed), (lb, drops, allowed)
