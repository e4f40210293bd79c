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
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
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


def _fit(X, sample_weight, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            return GaussianMixture(**params).fit(X, sample_weight=sample_weight)
        except ValueError as exc:
            # the one error a legal input may get: it names the fix
            assert "increase reg_covar" in str(exc), str(exc)
            event("ill-defined covariance error (names reg_covar)")
            return None


def _rounding_scale(gm, X):
    """How large the lower bound's rounding can be, relative to eps.

    Each sample's term is -1/2 (x - mu)^T Sigma^-1 (x - mu) + log-det terms.
    x - mu is computed in the data's dtype (error eps |x|), and the
    covariance from statistics rounded at eps |x - mean|^2, which a thin
    covariance (reg_covar-sized eigenvalue) magnifies by 1/lambda_min. So:
    1 + |lower bound| + D * ||Sigma^-1|| * spread * (spread + size), over the
    components that hold weight (an empty component's terms do not count).
    """
    X = X.astype(np.float64)
    spread = np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=1).max())
    size = np.sqrt((X ** 2).sum(axis=1).max())
    prec = np.asarray(gm.precisions_, dtype=np.float64)
    n_features = X.shape[1]
    if gm.covariance_type == "full":
        lam = np.linalg.eigvalsh(prec).max(axis=1)
    elif gm.covariance_type == "tied":
        lam = np.full(gm.n_components, np.linalg.eigvalsh(prec).max())
    elif gm.covariance_type == "diag":
        lam = prec.max(axis=1)
    else:
        lam = prec
    lam = lam[gm.weights_ > 1e-6].max()
    return n_features * lam * spread * (spread + size)


@SETTINGS
@given(problems())
def test_outputs_finite_and_responsibilities_sum_to_one(problem):
    X, sample_weight, params = problem
    gm = _fit(X, sample_weight, params)
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


@SETTINGS
@given(problems(kinds=("blobs",), per_component=4, scales=(1e-3, 1.0, 1e3),
                offsets=(0.0, 10.0, 1e3), inits=("kmeans", "random")))
def test_lower_bound_never_decreases_beyond_rounding(problem):
    """EM never decreases the likelihood. That holds for reg_covar=0 only:
    adding reg_covar to the covariances makes the M-step differ from the
    likelihood's maximiser (by an amount that depends on n_k), and then the
    lower bound can dip (scikit-learn's too). So reg_covar=0 here, on blobs
    with enough samples per component, from the initialisers that do not
    start from single points: a collapsing covariance then raises the
    reg_covar error, which is allowed."""
    X, sample_weight, params = problem
    params = dict(params, tol=0.0, max_iter=max(params["max_iter"], 10), reg_covar=0.0)
    gm = _fit(X, sample_weight, params)
    if gm is None:
        return
    lb = np.asarray(gm.lower_bounds_)
    assert len(lb) == gm.n_iter_
    drops = lb[:-1] - lb[1:]
    eps = float(np.finfo(X.dtype).eps)
    allowed = 64 * eps * (1.0 + np.abs(lb[1:]) + _rounding_scale(gm, X))
    assert np.all(drops <= allowed), (lb, drops, allowed)
