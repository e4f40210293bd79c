"""Covariance types, float32, sample weights, and stability far from the origin."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGM

from gmmfast import GaussianMixture

from conftest import COVARIANCE_TYPES, make_blobs, start_params

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


def quiet_fit(model, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **kw)


def assert_params_close(a, b, rtol, atol_scale=None):
    for name in ATTRS:
        x, y = getattr(a, name), getattr(b, name)
        scale = np.abs(y).max() if atol_scale is None else atol_scale
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_parameter_shapes_match_sklearn(covariance_type):
    X = make_blobs(400, 3, 2, seed=0)[0]
    sk = quiet_fit(SkGM(2, covariance_type=covariance_type, random_state=0), X)
    gf = quiet_fit(GaussianMixture(2, covariance_type=covariance_type, random_state=0), X)
    for name in ATTRS:
        assert getattr(gf, name).shape == getattr(sk, name).shape
    assert gf._n_parameters() == sk._n_parameters()
    assert gf.bic(X) == pytest.approx(sk.bic(X), rel=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_in_float32_out_close_to_sklearn(covariance_type):
    X64, centers = make_blobs(4000, 4, 3, seed=1)
    X = X64.astype(np.float32)
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=30, tol=1e-5,
                  **start_params(covariance_type, centers))
    gf = quiet_fit(GaussianMixture(**kwargs), X)
    sk = quiet_fit(SkGM(**kwargs), X)
    gf64 = quiet_fit(GaussianMixture(**kwargs), X64)
    for name in ATTRS:
        assert getattr(gf, name).dtype == np.float32, name
    for out in (gf.predict_proba(X), gf.score_samples(X)):
        assert out.dtype == np.float32
    # same cluster structure: labels differ only at float32 near-ties
    mismatch = gf.predict(X) != sk.predict(X)
    assert mismatch.mean() < 2e-3
    if mismatch.any():  # the parameters differ by ~1e-3: so may ties
        top2 = np.sort(gf.predict_proba(X[mismatch]).astype(np.float64), axis=1)[:, -2:]
        assert np.all(top2[:, 1] - top2[:, 0] < 1e-2)
    assert_params_close(gf, sk, rtol=2e-3)
    # and close to the float64 fit of the same data
    assert_params_close(gf, gf64, rtol=2e-3)
    assert abs(gf.lower_bound_ - gf64.lower_bound_) < 1e-4 * abs(gf64.lower_bound_)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.int32])
def test_other_dtypes_become_float64(dtype):
    X = (make_blobs(300, 2, 2, seed=2)[0] * 10).astype(dtype)
    gm = GaussianMixture(2, random_state=0).fit(X)
    assert gm.means_.dtype == np.float64


def test_float32_model_predicts_float64_data():
    X = make_blobs(300, 2, 2, seed=3)[0]
    gm = GaussianMixture(2, random_state=0).fit(X.astype(np.float32))
    p64 = gm.predict_proba(X)
    assert p64.dtype == np.float64
    np.testing.assert_allclose(p64, gm.predict_proba(X.astype(np.float32)), atol=1e-4)


# ------------------------------------------------------------- sample weights

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_replicated_rows(covariance_type):
    X, centers = make_blobs(700, 3, 3, seed=4)
    w = np.random.default_rng(0).integers(0, 4, X.shape[0])
    X_rep = np.repeat(X, w, axis=0)
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=50, tol=1e-6,
                  **start_params(covariance_type, centers))
    weighted = quiet_fit(GaussianMixture(**kwargs), X, sample_weight=w)
    replicated = quiet_fit(GaussianMixture(**kwargs), X_rep)
    assert weighted.n_iter_ == replicated.n_iter_
    np.testing.assert_allclose(weighted.lower_bounds_, replicated.lower_bounds_, rtol=1e-10)
    assert_params_close(weighted, replicated, rtol=1e-9)
    assert weighted.score(X, sample_weight=w) == pytest.approx(replicated.score(X_rep),
                                                               rel=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weight_equals_dropping_the_row(covariance_type):
    X, centers = make_blobs(600, 2, 3, seed=5)
    w = np.ones(X.shape[0])
    w[::3] = 0.0
    X[::3] += 1000.0  # zero-weight rows are far away: they must not matter at all
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=50, tol=1e-6,
                  **start_params(covariance_type, centers))
    weighted = quiet_fit(GaussianMixture(**kwargs), X, sample_weight=w)
    dropped = quiet_fit(GaussianMixture(**kwargs), X[w > 0])
    assert weighted.n_iter_ == dropped.n_iter_
    assert_params_close(weighted, dropped, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random"])
def test_equal_weights_equal_unweighted(covariance_type, init_params):
    X = make_blobs(800, 3, 3, seed=6)[0]
    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=0,
                  init_params=init_params, max_iter=30)
    if init_params == "k-means++" and covariance_type == "tied":
        # scikit-learn's tied start from seeds is (sum_i x_i x_i^T - sum_k
        # n_k mu_k mu_k^T) / sum_k n_k: with one unit of weight per seed (as
        # for repeated rows) it grows with the total weight, here 2.5 times
        kwargs["max_iter"] = 0
        unweighted = GaussianMixture(**kwargs).fit(X)
        weighted = GaussianMixture(**kwargs).fit(X, sample_weight=np.full(len(X), 2.5))
        np.testing.assert_allclose(weighted.means_, unweighted.means_, rtol=1e-15)
        mu = unweighted.means_
        seeds_term = mu.T @ mu / mu.shape[0]  # sum_k mu_k mu_k^T / sum_k n_k
        np.testing.assert_allclose(
            weighted.covariances_ - 1e-6 * np.eye(3),
            2.5 * (unweighted.covariances_ - 1e-6 * np.eye(3)) + 1.5 * seeds_term,
            rtol=1e-12)
        return
    unweighted = quiet_fit(GaussianMixture(**kwargs), X)
    weighted = quiet_fit(GaussianMixture(**kwargs), X, sample_weight=np.full(len(X), 2.5))
    assert weighted.n_iter_ == unweighted.n_iter_
    assert_params_close(weighted, unweighted, rtol=1e-7)
    lb_w, lb_u = np.array(weighted.lower_bounds_), np.array(unweighted.lower_bounds_)
    if init_params == "k-means++":
        # each seed is one unit of weight (one of the repeated rows integer
        # weights stand for), so the start's weights are 1 / (2.5 N) instead
        # of 1 / N: the first lower bound, taken before the first M-step,
        # moves by exactly -log(2.5); the responsibilities, hence everything
        # after, are the same
        np.testing.assert_allclose(lb_w[0], lb_u[0] - np.log(2.5), rtol=1e-12)
        lb_w, lb_u = lb_w[1:], lb_u[1:]
    np.testing.assert_allclose(lb_w, lb_u, rtol=1e-9)


def test_weights_reach_the_initialisation():
    """A cluster with all the weight on one side moves k-means' start."""
    X = make_blobs(600, 2, 2, seed=7)[0]
    w = np.where(X[:, 0] > np.median(X[:, 0]), 1.0, 1e-3)
    a = GaussianMixture(2, random_state=0, max_iter=0).fit(X)
    b = GaussianMixture(2, random_state=0, max_iter=0).fit(X, sample_weight=w)
    assert not np.allclose(np.sort(a.means_[:, 0]), np.sort(b.means_[:, 0]))
    # random_from_data never draws a zero-weight row
    w0 = np.zeros(len(X))
    w0[:5] = 1.0
    c = GaussianMixture(2, init_params="random_from_data", random_state=0, max_iter=0)
    c.fit(X, sample_weight=w0)
    for mean in c.means_:
        assert np.min(np.abs(X[:5] - mean).sum(axis=1)) < 1e-9


# ----------------------------------------------------- far from the origin

def _far_tolerances(dtype, offset, n_samples):
    """How close a fit of X + offset (in dtype) must come to the fit of X.

    The data themselves differ: fl(x + offset) - offset - fl(x) is up to half
    an ulp of the offset, u = ulp(offset) / 2, uniform, independent of x. It
    moves a variance by 2 cov(x, delta) + var(delta): at most about
    2 sigma (u / sqrt 3) / sqrt(n_k) + u^2 / 3 relative to sigma^2 = 1
    (make_blobs' unit noise), and a mean by u / sqrt(3 n_k), on top of the
    means' own rounding at the offset (half an ulp). The shifted sums add
    about (block rows) eps relative. So: means within one ulp of the offset,
    covariances and weights within 8x the data term plus 256 eps.
    """
    eps = float(np.finfo(dtype).eps)
    ulp = float(np.spacing(dtype(offset)))
    n_k = n_samples / 4  # the smallest component of make_blobs(3000, 3, 2) has more
    u = ulp / 2
    data = 2 * (u / np.sqrt(3)) / np.sqrt(n_k) + u * u / 3
    return dict(means=ulp, covariances=8 * data + 256 * eps, weights=8 * data + 256 * eps)


def _raw_moment_variances(X, resp):
    """sum r x^2 / n_k - mu^2 in X's dtype: the raw moments gmmfast never uses
    (scikit-learn's diag, spherical and tied M-steps)."""
    nk = resp.sum(axis=0)
    mu = (resp.T @ X) / nk[:, None]
    return (resp.T @ (X * X)) / nk[:, None] - mu * mu


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype,offset", [(np.float64, 1e8), (np.float32, 1e4)])
def test_stable_far_from_origin(covariance_type, dtype, offset):
    """Shifted statistics: an offset changes the means, not the covariances.
    Raw moments from the same responsibilities fail the same tolerance."""
    X, centers = make_blobs(3000, 3, 2, seed=8)
    kwargs = dict(n_components=2, covariance_type=covariance_type, max_iter=20, tol=0.0)
    start = start_params(covariance_type, centers)
    base = quiet_fit(GaussianMixture(**kwargs, **start), X.astype(dtype))
    start["means_init"] = start["means_init"] + offset
    X_far = (X + offset).astype(dtype)
    far = quiet_fit(GaussianMixture(**kwargs, **start), X_far)
    tol = _far_tolerances(dtype, offset, len(X))
    assert np.all(np.isfinite(far.covariances_))
    np.testing.assert_allclose(far.means_.astype(np.float64) - offset, base.means_,
                               rtol=0, atol=tol["means"])
    # relative to the variances' size (off-diagonal entries are small)
    np.testing.assert_allclose(far.covariances_, base.covariances_, rtol=0,
                               atol=tol["covariances"] * np.abs(base.covariances_).max())
    np.testing.assert_allclose(far.weights_, base.weights_, rtol=0, atol=tol["weights"])
    # a known-wrong method (raw moments, in the data's dtype) fails it
    variances = _raw_moment_variances(X_far, far.predict_proba(X_far))
    reference = _raw_moment_variances(X.astype(np.float64),
                                      base.predict_proba(X.astype(dtype)).astype(np.float64))
    rel = np.abs(variances - reference) / np.abs(reference)
    assert rel.max() > 100 * tol["covariances"], rel.max()
    # the default (k-means) start works there too, with positive variances
    gm = quiet_fit(GaussianMixture(2, covariance_type=covariance_type, random_state=0),
                   (X + offset).astype(dtype))
    assert np.all(np.isfinite(gm.covariances_))
    if covariance_type in ("diag", "spherical"):
        assert np.all(gm.covariances_ > 0)
