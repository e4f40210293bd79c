"""BayesianGaussianMixture: scikit-learn's BayesianGaussianMixture is the oracle.

From the same random_state both start from the same responsibilities, so
parameters, lower bounds and iteration counts agree to rounding (1e-8, float64).
"""
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SkBGM
from sklearn.utils.estimator_checks import check_estimator

from gmmfast import BayesianGaussianMixture
from gmmfast import _bayesian, _covariance, _dispatch, _stats
from gmmfast._data import ArrayData
from gmmfast._demo import demo_data

from conftest import COVARIANCE_TYPES, make_blobs

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
         "mean_precision_", "degrees_of_freedom_", "mean_prior_", "covariance_prior_")


def fit_both(X, sample_weight=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkBGM(**kwargs).fit(X)
        gf = BayesianGaussianMixture(**kwargs).fit(X, sample_weight=sample_weight)
    return sk, gf


def _concentration(m):
    wc = m.weight_concentration_
    return np.concatenate(wc) if isinstance(wc, tuple) else np.asarray(wc)


def assert_same_model(sk, gf, rtol=1e-8):
    assert gf.n_iter_ == sk.n_iter_
    assert gf.converged_ == sk.converged_
    # scikit-learn's tied bound is a (1,) array: ravel
    sk_bounds = np.array([np.ravel(v)[0] for v in sk.lower_bounds_])
    np.testing.assert_allclose(gf.lower_bounds_, sk_bounds, rtol=rtol)
    np.testing.assert_allclose(gf.lower_bound_, np.ravel(sk.lower_bound_)[0], rtol=rtol)
    for name in ATTRS:
        a, b = np.asarray(getattr(gf, name)), np.asarray(getattr(sk, name))
        assert a.shape == b.shape, name
        scale = max(np.abs(b).max(), 1e-300)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=name)
    b = _concentration(sk)
    np.testing.assert_allclose(_concentration(gf), b, rtol=rtol, atol=rtol * np.abs(b).max())


DATASETS = {
    "demo": lambda: demo_data(3000, random_state=0),
    "blobs_d5": lambda: make_blobs(2000, 5, 4, seed=2)[0],
    "digits": lambda: load_digits().data.astype(np.float64),
}


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_same_random_state_same_model(dataset, covariance_type, prior_type):
    X = DATASETS[dataset]()
    n_components = {"demo": 4, "blobs_d5": 6, "digits": 4}[dataset]
    sk, gf = fit_both(X, n_components=n_components, covariance_type=covariance_type,
                      weight_concentration_prior_type=prior_type, random_state=0,
                      max_iter=25 if dataset == "digits" else 40,
                      reg_covar=1e-3 if dataset == "digits" else 1e-6)
    assert sk.n_iter_ > 3  # several iterations compared, not only the start
    assert_same_model(sk, gf)


def _priors(covariance_type, n_features):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(n_features, n_features))
    cp = {"full": a @ a.T / n_features + np.eye(n_features),
          "tied": a @ a.T / n_features + np.eye(n_features),
          "diag": rng.uniform(0.5, 2.0, n_features), "spherical": 1.7}[covariance_type]
    return dict(weight_concentration_prior=0.3, mean_precision_prior=0.05,
                mean_prior=rng.normal(size=n_features),
                degrees_of_freedom_prior=n_features + 1.5, covariance_prior=cp)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_non_default_priors(covariance_type, prior_type):
    X = make_blobs(1500, 4, 3, seed=7)[0]
    sk, gf = fit_both(X, n_components=5, covariance_type=covariance_type,
                      weight_concentration_prior_type=prior_type, random_state=1,
                      max_iter=25, **_priors(covariance_type, 4))
    assert_same_model(sk, gf)
    # the priors matter: the default priors give another model
    _, default = fit_both(X, n_components=5, covariance_type=covariance_type,
                          weight_concentration_prior_type=prior_type, random_state=1,
                          max_iter=25)
    assert not np.allclose(default.means_, gf.means_, rtol=1e-4)


@pytest.mark.parametrize("init_params", ["k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_every_init_params(init_params, covariance_type):
    X = make_blobs(1000, 3, 3, seed=4)[0]
    sk, gf = fit_both(X, n_components=4, covariance_type=covariance_type,
                      init_params=init_params, random_state=3, max_iter=40)
    assert_same_model(sk, gf)


def test_n_init_warm_start_and_max_iter_zero():
    X = make_blobs(1200, 3, 3, seed=9)[0]
    sk, gf = fit_both(X, n_components=3, n_init=3, random_state=2)
    assert sk.converged_  # the stopping rule, not max_iter, ended the fits
    assert_same_model(sk, gf)
    kw = dict(n_components=4, warm_start=True, max_iter=3, random_state=0)
    sk, gf = SkBGM(**kw), BayesianGaussianMixture(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            sk.fit(X)
            gf.fit(X)
    assert_same_model(sk, gf)
    sk, gf = fit_both(X, n_components=3, max_iter=0, random_state=0)
    assert gf.n_iter_ == 0 and gf.lower_bounds_ == [] and gf.lower_bound_ == -np.inf
    np.testing.assert_allclose(gf.means_, sk.means_, rtol=1e-10)


def test_predictions_match_sklearn():
    X = make_blobs(800, 3, 3, seed=1)[0]
    for prior_type in PRIOR_TYPES:
        sk, gf = fit_both(X, n_components=4, random_state=0, max_iter=25,
                          weight_concentration_prior_type=prior_type)
        np.testing.assert_allclose(gf.score_samples(X), sk.score_samples(X), rtol=1e-8)
        np.testing.assert_allclose(gf.score(X), sk.score(X), rtol=1e-8)
        np.testing.assert_allclose(gf.predict_proba(X), sk.predict_proba(X), atol=1e-8)
        np.testing.assert_array_equal(gf.predict(X), sk.predict(X))
        np.testing.assert_array_equal(clone(gf).fit_predict(X), gf.predict(X))
        Xs, ys = gf.sample(50)
        Xk, yk = sk.sample(50)
        np.testing.assert_allclose(Xs, Xk, rtol=1e-7, atol=1e-7)
        np.testing.assert_array_equal(ys, yk)


# --------------------------------------------------------------- the hooks

@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_hooks_equal_sklearn_hooks(covariance_type, prior_type):
    X = make_blobs(500, 3, 3, seed=3)[0]
    kw = dict(n_components=3, covariance_type=covariance_type,
              weight_concentration_prior_type=prior_type, random_state=0, max_iter=5)
    sk, gf = fit_both(X, **kw)
    for hook in ("_estimate_log_prob", "_estimate_weighted_log_prob"):
        np.testing.assert_allclose(getattr(gf, hook)(X), getattr(sk, hook)(X), rtol=1e-9,
                                   err_msg=hook)
    np.testing.assert_allclose(gf._estimate_log_weights(), sk._estimate_log_weights(),
                               rtol=1e-9)
    for a, b in zip(gf._estimate_log_prob_resp(X), sk._estimate_log_prob_resp(X)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    (lpn_g, lr_g), (lpn_s, lr_s) = gf._e_step(X), sk._e_step(X)
    np.testing.assert_allclose(lpn_g, lpn_s, rtol=1e-10)
    np.testing.assert_allclose(lr_g, lr_s, atol=1e-9)
    np.testing.assert_allclose(gf._compute_lower_bound(lr_s, lpn_s),
                               np.ravel(sk._compute_lower_bound(lr_s, lpn_s))[0], rtol=1e-10)
    for a, b in zip(gf._get_parameters(), sk._get_parameters()):
        a, b = (np.concatenate(v) if isinstance(v, tuple) else v for v in (a, b))
        np.testing.assert_allclose(a, b, rtol=1e-8)
    # _check_parameters, _m_step and _initialize set the same parameters
    g2, s2 = BayesianGaussianMixture(**kw), SkBGM(**kw)
    g2._check_parameters(X)
    s2._check_parameters(X)
    for name in ("mean_prior_", "covariance_prior_", "degrees_of_freedom_prior_",
                 "weight_concentration_prior_", "mean_precision_prior_"):
        np.testing.assert_allclose(getattr(g2, name), getattr(s2, name), rtol=1e-12)
    resp = np.random.default_rng(0).uniform(size=(X.shape[0], 3))
    resp /= resp.sum(axis=1, keepdims=True)
    for method, arg in (("_initialize", resp), ("_m_step", np.log(resp))):
        getattr(g2, method)(X, arg)
        getattr(s2, method)(X, arg)
        # (scikit-learn sets weights_ and precisions_ in _set_parameters only)
        for name in ("means_", "covariances_", "precisions_cholesky_",
                     "degrees_of_freedom_", "mean_precision_"):
            np.testing.assert_allclose(getattr(g2, name), getattr(s2, name), rtol=1e-9,
                                       err_msg=f"{method}: {name}")
    s2._set_parameters(g2._get_parameters())
    np.testing.assert_allclose(s2.weights_, g2.weights_, rtol=1e-12)


# ------------------------------------------- the entropy from the statistics

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_entropy_from_statistics(covariance_type):
    """sum w r log r = sum_k (R_k lognorm_k - 1/2 tr(P_k M_k)) - ll, from the
    kernel's statistics, against the direct N x K sum; on overlapping blobs
    (entropy far from 0) and on well separated ones, where it is ~0 and all
    that is left is the cancellation error of two sums of size ~N |lp|."""
    for sep, seed in ((1.0, 0), (200.0, 1)):
        X, _ = make_blobs(3000, 4, 3, seed=seed)
        X = X + sep * np.repeat(np.eye(3, 4), 1000, axis=0)
        w = np.random.default_rng(seed).uniform(0.2, 3.0, X.shape[0])
        gf = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                     random_state=0, max_iter=3, tol=0).fit(X)
        data = ArrayData(X, w, _stats.kernel_config(4, covariance_type, 2, 3))
        # tied: the statistics' centre is the one the scatter is taken about
        kp = _bayesian.kernel_params(gf._params(), covariance_type,
                                     gf.weight_concentration_prior_type, X.dtype,
                                     data.center if covariance_type == "tied" else None)
        stats, ll = data.e_step(kp)
        got = _bayesian.log_resp_sum(stats, ll, kp)
        _, log_resp = gf._estimate_log_prob_resp(X)
        direct = float(w @ np.sum(np.exp(log_resp) * log_resp, axis=1))
        lp = gf._estimate_weighted_log_prob(X)
        # rounding of the two sums: a few eps per term of size w |lp|
        bound = 64 * np.finfo(float).eps * float(w @ np.abs(lp).max(axis=1))
        assert abs(got - direct) <= bound, (sep, got, direct, bound)
        if sep > 100:
            assert abs(direct) < 1e-6  # the clusters are separated: entropy ~ 0
        else:
            assert abs(direct) > 100 * bound  # overlapping: a real entropy is checked


# shapes on the paths beyond the vector kernels (gmmfast/_dispatch.py):
# full and tied beyond 16 features; diag and spherical on BLAS_GEMM
# (BLAS_TILES up to 384 features, BLAS_SYRK forced at 24); diag and
# spherical on BLAS_GEMM (a fit asks for it only for full and tied)
RESP_LP_SHAPES = [("full", 24, 3, None), ("full", 64, 4, None), ("tied", 24, 3, None),
                  ("full", 24, 3, _dispatch.BLAS_SYRK), ("tied", 24, 3, _dispatch.BLAS_SYRK),
                  ("diag", 16, 64, None), ("spherical", 16, 16, None)]


@pytest.mark.parametrize("covariance_type,n_features,n_components,path", RESP_LP_SHAPES)
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_resp_lp_gives_the_entropy(covariance_type, n_features, n_components, path,
                                          n_threads, weighted):
    """Beyond the vector kernels the E-step's kernel also sums
    sum_i w_i sum_k r_ik lp_ik, and sum w r log r is that less ll (no trace
    of the statistics): against the direct N x K sum of the hooks, within
    the rounding of two sums of terms of size w |lp| (as the statistics'
    form above). A sum without the weights, or of r log r for lp, fails."""
    rng = np.random.default_rng(3)
    X, _ = make_blobs(2000, n_features, 4, seed=3)
    w = rng.uniform(0.2, 3.0, X.shape[0]) if weighted else None
    gf = BayesianGaussianMixture(n_components=n_components, covariance_type=covariance_type,
                                 random_state=0, max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gf.fit(X)
    cfg = _stats.kernel_config(n_features, covariance_type, n_threads, n_components)
    if path is not None:
        cfg = _dispatch.KernelConfig(n_threads, 240, path)
    assert cfg.path != _dispatch.VECTOR
    data = ArrayData(X, w, cfg)
    kp = _bayesian.kernel_params(gf._params(), covariance_type,
                                 gf.weight_concentration_prior_type, X.dtype,
                                 data.center if covariance_type == "tied" else None)
    assert kp.want_resp_lp == (covariance_type in ("full", "tied"))
    kp.want_resp_lp = True
    stats, ll = data.e_step(kp)
    assert data.resp_lp_for(kp) is not None
    assert data.resp_lp_for(_bayesian.kernel_params(
        gf._params(), covariance_type, gf.weight_concentration_prior_type, X.dtype,
        data.center if covariance_type == "tied" else None)) is None  # another kp's
    got = data.resp_lp_for(kp) - ll
    ww = np.ones(X.shape[0]) if w is None else w
    _, log_resp = gf._estimate_log_prob_resp(X)
    direct = float(ww @ np.sum(np.exp(log_resp) * log_resp, axis=1))
    lp = gf._estimate_weighted_log_prob(X)
    bound = 64 * np.finfo(float).eps * float(ww @ np.abs(lp).max(axis=1))
    assert abs(got - direct) <= bound, (got, direct, bound)
    assert abs(got - _bayesian.log_resp_sum(stats, ll, kp)) <= bound
    assert abs(direct) > 100 * bound  # overlapping blobs: a real entropy is checked


def test_kernel_resp_lp_skips_impossible_components():
    """A component whose lp is -inf for every row (r = 0) adds nothing to
    sum w r lp (0 * -inf would make it NaN); the vector path gives none."""
    X, _ = make_blobs(500, 24, 3, seed=4)
    gf = BayesianGaussianMixture(n_components=3, random_state=0, max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gf.fit(X)
    data = ArrayData(X, None, _stats.kernel_config(24, "full", 1, 3))
    kp = _bayesian.kernel_params(gf._params(), "full", gf.weight_concentration_prior_type,
                                 X.dtype)
    lognorm = kp.lognorm.copy()
    kp.lognorm = lognorm.copy()
    kp.lognorm[1] = -np.inf
    _, ll = data.e_step(kp)
    got = data.resp_lp_for(kp)
    kp.lognorm = lognorm[[0, 2]].copy()
    kp.means, kp.prec = kp.means[[0, 2]].copy(), kp.prec.reshape(3, -1)[[0, 2]].ravel().copy()
    kp.mproj = kp.means
    _, ll2 = data.e_step(kp)
    assert np.isfinite(got) and got == pytest.approx(data.resp_lp_for(kp), rel=1e-12)
    assert ll == pytest.approx(ll2, rel=1e-12)
    small = ArrayData(X[:, :4].copy(), None, _stats.kernel_config(4, "full", 1, 3))
    kp4 = _bayesian.kernel_params(
        BayesianGaussianMixture(n_components=3, random_state=0, max_iter=2).fit(X[:, :4])
        ._params(), "full", "dirichlet_process", X.dtype)
    small.e_step(kp4)
    assert small.resp_lp_for(kp4) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_takes_the_kernel_resp_lp_for_float64(dtype, monkeypatch):
    """A float64 fit beyond 16 features takes sum w r lp from the kernel and
    never computes the statistics' trace form; float32 keeps that form. The
    lower bounds agree with a fit that uses the trace form throughout."""
    X, _ = make_blobs(1500, 24, 3, seed=6, dtype=dtype)
    calls = []
    real = _bayesian.log_resp_sum

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(_bayesian, "log_resp_sum", spy)
    params = dict(n_components=3, random_state=0, max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fast = BayesianGaussianMixture(**params).fit(X)
        assert bool(calls) == (dtype == np.float32)
        real_kp = _bayesian.kernel_params

        def no_resp_lp(*args, **kwargs):
            kp = real_kp(*args, **kwargs)
            kp.want_resp_lp = False
            return kp

        monkeypatch.setattr(_bayesian, "kernel_params", no_resp_lp)
        slow = BayesianGaussianMixture(**params).fit(X)
    np.testing.assert_allclose(fast.lower_bounds_, slow.lower_bounds_, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_many_features_same_model(covariance_type):
    """Beyond 16 features the entropy's trace sum_k tr(P_k M_k) is gemm
    blocks (gmmfast/_kernels.pyx, ``trace_upper_blocked``), the triangle
    split from 128 features on: 150 takes a split."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 150)) + 3.0 * np.repeat(np.eye(2, 150), 300, axis=0)
    sk, gf = fit_both(X, n_components=2, covariance_type=covariance_type,
                      random_state=0, max_iter=4, tol=0)
    assert_same_model(sk, gf)


@pytest.mark.parametrize("n_features", [3, 127, 128, 200, 257])
def test_trace_precisions_by_blocks(n_features):
    """sum_k tr(U_k U_k^T M_k) against the plain products, every split."""
    from gmmfast import _covariance

    rng = np.random.default_rng(n_features)
    A = rng.normal(size=(3, n_features, n_features))
    U = np.triu(A)
    M = A @ np.swapaxes(A, 1, 2)
    want = [float(np.sum((u @ u.T) * m)) for u, m in zip(U, M)]
    got = _covariance.get("full").trace_precisions(U, M)
    np.testing.assert_allclose(got, sum(want), rtol=1e-12)
    got = _covariance.get("tied").trace_precisions(U[0], M[0])
    np.testing.assert_allclose(got, want[0], rtol=1e-12)


# ------------------------------------------------------------------ float32

EPS32 = float(np.finfo(np.float32).eps)


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.abs(b).max())


@pytest.mark.parametrize("offset", [0.0, 100.0])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_stays_float32_and_close_to_float64(covariance_type, offset):
    """float32 in, float32 out, and the float64 fit of the same values to

        rtol = n_iter (D + 1) eps32 (1 + |offset| / sigma):

    per iteration the kernel's float32 block work (D-term Mahalanobis and
    outer products of x - m, where m carries |m| eps32 of rounding) perturbs
    the float64 statistics by about (D + 1) eps32 (1 + |m| / sigma) relative,
    the parameters are rounded to float32 once, and a fit near its optimum
    does not amplify the perturbations of 8 iterations beyond their sum. Far
    from the origin, scikit-learn's raw moments in float32 fail this bound
    (tied: ~3e-3 at offset 100, the bound ~5e-4).
    """
    n_iter, n_features, sigma = 8, 4, 1.0
    X32 = (make_blobs(2000, n_features, 3, seed=5)[0] + offset).astype(np.float32)
    X64 = X32.astype(np.float64)
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=0,
              max_iter=n_iter, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g32 = BayesianGaussianMixture(**kw).fit(X32)
        g64 = BayesianGaussianMixture(**kw).fit(X64)
        sk32 = SkBGM(**kw).fit(X32)
    rtol = n_iter * (n_features + 1) * EPS32 * (1 + offset / sigma)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "precisions_", "mean_precision_", "degrees_of_freedom_"):
        assert np.asarray(getattr(g32, name)).dtype == np.float32, name
        assert _rel(getattr(g32, name), getattr(g64, name)) <= rtol, name
    assert _rel(g32.lower_bounds_, g64.lower_bounds_) <= rtol
    for out in (g32.predict_proba(X32), g32.score_samples(X32)):
        assert out.dtype == np.float32
    if offset and covariance_type == "tied":
        assert _rel(sk32.covariances_, g64.covariances_) > rtol


# ----------------------------------------------------------- sample weights

@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(covariance_type, prior_type):
    """From the same start (k-means is not weight-equivalent: its start is
    taken on the repeated rows and given to both), integer weights fit the
    model of the repeated rows: priors, every iteration's bound, parameters."""
    X = make_blobs(400, 3, 3, seed=8)[0]
    w = np.random.default_rng(1).integers(0, 4, X.shape[0])
    Xr = np.repeat(X, w, axis=0)
    kw = dict(n_components=3, covariance_type=covariance_type,
              weight_concentration_prior_type=prior_type, random_state=0)
    start = BayesianGaussianMixture(max_iter=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(Xr)
    fits = []
    for data, sw in ((Xr, None), (X, w), (X, w.astype(np.float64))):
        model = BayesianGaussianMixture(warm_start=True, max_iter=30, tol=1e-8, **kw)
        model.__dict__.update({k: v for k, v in start.__dict__.items() if k.endswith("_")})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(model.fit(data, sample_weight=sw))
    ref = fits[0]
    assert ref.n_iter_ > 5
    for got in fits[1:]:
        assert got.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
        for name in ATTRS:
            b = np.asarray(getattr(ref, name))
            np.testing.assert_allclose(getattr(got, name), b, rtol=1e-9,
                                       atol=1e-9 * np.abs(b).max(), err_msg=name)
    # the weights matter
    unweighted = clone(fits[1]).set_params(warm_start=False).fit(X)
    assert not np.allclose(unweighted.covariance_prior_, ref.covariance_prior_, rtol=1e-3)


def test_weights_count_observations_never_rescaled():
    """The total weight is weighed against the priors: weights of any
    magnitude are used as they are (sum_k beta_k = K beta_0 + sum_i w_i)."""
    X = make_blobs(300, 2, 2, seed=3)[0]
    for scale in (1.0, 1e6):
        w = np.full(X.shape[0], scale)
        gf = BayesianGaussianMixture(n_components=2, random_state=0).fit(X, sample_weight=w)
        np.testing.assert_allclose(gf.mean_precision_.sum(), 2 * 1.0 + w.sum(), rtol=1e-12)
    ones = BayesianGaussianMixture(n_components=2, random_state=0).fit(
        X, sample_weight=np.ones(X.shape[0]))
    plain = BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    assert_same_model(plain, ones, rtol=1e-12)
    with pytest.raises(ValueError, match="sample_weight sums to 0.3, but the default "
                                         "covariance_prior .* set covariance_prior"):
        BayesianGaussianMixture(n_components=2).fit(X, sample_weight=np.full(300, 1e-3))


# -------------------------------------------------------------- data sources

def test_memmap_and_dask_equal_in_memory(tmp_path):
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    X = make_blobs(2000, 3, 3, seed=5)[0]
    w = np.random.default_rng(6).uniform(0.0, 3.0, X.shape[0])
    path = tmp_path / "x.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    for covariance_type in COVARIANCE_TYPES:
        kw = dict(n_components=3, covariance_type=covariance_type, random_state=0,
                  max_iter=10)
        ref = BayesianGaussianMixture(**kw).fit(X, sample_weight=w)
        got = BayesianGaussianMixture(**kw).fit(Xm, sample_weight=w)
        assert_same_model(ref, got, rtol=1e-12)
        # fewer rows than the Dask initialisation sample: the same k-means start
        with dask.config.set(scheduler="synchronous"):
            Xd = da.from_array(X, chunks=(450, 3))
            got = BayesianGaussianMixture(**kw).fit(Xd, sample_weight=w)
            assert_same_model(ref, got, rtol=1e-10)
            np.testing.assert_allclose(got.predict_proba(Xd).compute(),
                                       ref.predict_proba(X), atol=1e-10)


# --------------------------------------------------------------- estimator

def test_check_parameters_messages_equal_sklearn():
    X = make_blobs(100, 3, 2, seed=0)[0]
    cases = [
        dict(degrees_of_freedom_prior=1.5),
        dict(mean_prior=np.zeros(2)),
        dict(covariance_type="full", covariance_prior=np.ones((2, 2))),
        dict(covariance_type="tied", covariance_prior=-np.eye(3)),
        dict(covariance_type="full", covariance_prior=np.array([[1, 2, 0], [0, 1, 0],
                                                                [0, 0, 1.0]])),
        dict(covariance_type="diag", covariance_prior=np.array([1.0, -1.0, 1.0])),
        dict(covariance_type="diag", covariance_prior=np.ones(4)),
        dict(weight_concentration_prior_type="dirichlet"),
        dict(weight_concentration_prior=0.0),
        dict(mean_precision_prior=-1),
        dict(covariance_prior=0),
        dict(n_components=200),
    ]
    for params in cases:
        with pytest.raises(Exception) as sk_exc:
            SkBGM(**params).fit(X)
        with pytest.raises(type(sk_exc.value)) as gf_exc:
            BayesianGaussianMixture(**params).fit(X)
        assert str(gf_exc.value).startswith(str(sk_exc.value)), params


def test_failed_fit_leaves_the_estimator_as_it_was():
    X = make_blobs(200, 2, 2, seed=0)[0]
    gf = BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    before = {k: v for k, v in gf.__dict__.items()}
    gf.set_params(degrees_of_freedom_prior=0.5)
    with pytest.raises(ValueError, match="degrees_of_freedom_prior"):
        gf.fit(X + 1.0)
    gf.set_params(degrees_of_freedom_prior=None)
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        gf.fit(X + 1.0, sample_weight=-np.ones(200))
    assert gf.__dict__.keys() == before.keys()
    for k, v in before.items():
        assert gf.__dict__[k] is v, k
    fresh = BayesianGaussianMixture(covariance_prior=-1.0)
    with pytest.raises(ValueError):
        fresh.fit(X)
    assert not hasattr(fresh, "means_") and not hasattr(fresh, "mean_prior_")


def test_spherical_covariance_prior_must_be_a_number():
    X = make_blobs(100, 3, 2, seed=0)[0]
    with pytest.raises(ValueError, match="'covariance_prior' with covariance_type="
                                         "'spherical' must be a positive number"):
        BayesianGaussianMixture(covariance_type="spherical",
                                covariance_prior=np.ones(3)).fit(X)


def test_verbose_output_matches_sklearn(capsys):
    X = make_blobs(300, 2, 2, seed=0)[0]
    kw = dict(n_components=2, random_state=0, verbose=1, verbose_interval=1, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        SkBGM(**kw).fit(X)
        sk_out = capsys.readouterr().out
        BayesianGaussianMixture(**kw).fit(X)
        gf_out = capsys.readouterr().out
    assert gf_out == sk_out


# check_estimator: every check at n_components 1, 2, 3 for every covariance
# type. The sample-weight equivalence check refits with k-means, whose start
# is not weight-equivalent here (weighted k-means stops at another
# tolerance-limited solution than k-means on the repeated rows); from one
# start the weights are exact (test_integer_weights_equal_repeated_rows).
SW_CHECK = "check_sample_weight_equivalence_on_dense_data"
ARRAY_API_SKIP = "SCIPY_ARRAY_API is not set"


def _check_results(n_components, covariance_type):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check_estimator(BayesianGaussianMixture(
            n_components=n_components, covariance_type=covariance_type), on_fail=None)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_check_estimator(n_components, covariance_type):
    results = _check_results(n_components, covariance_type)
    assert len(results) >= 45
    bad = [(r["check_name"], r["status"], repr(r["exception"])[:300]) for r in results
           if r["status"] != "passed" and r["check_name"] != SW_CHECK
           and not (r["status"] == "skipped" and ARRAY_API_SKIP in repr(r["exception"]))]
    assert bad == []
    assert [r["check_name"] for r in results].count(SW_CHECK) == 1


# the check shuffles the weighted rows and not the repeated ones, so a random
# start (k-means++ draws rows by position) seeds from other rows; scikit-learn
# marks the same check an expected failure for its KMeans. From a start that
# draws nothing, and with rows in the same order, weights equal repetition
# (the integer-weight tests above).
SHUFFLED = ("the check shuffles the weighted rows only: a random start seeds from "
            "other rows (as for scikit-learn's KMeans)")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_components", [
    1,
    pytest.param(2, marks=pytest.mark.xfail(strict=True, reason=SHUFFLED)),
    pytest.param(3, marks=pytest.mark.xfail(strict=True, reason=SHUFFLED)),
])
def test_check_sample_weight_equivalence(n_components, covariance_type):
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_sample_weight_equivalence_on_dense_data(
            "BayesianGaussianMixture",
            BayesianGaussianMixture(n_components=n_components,
                                    covariance_type=covariance_type))


# --------------------------------------------------- partial_fit (streaming VB)

def _stream(n_batches, batch_size, seed, n_features=5):
    """Mini-batches from one fixed mixture of 4 components (weights .1-.4)."""
    fixed = np.random.default_rng(5)
    centers = fixed.normal(scale=4.0, size=(4, n_features))
    A = fixed.normal(size=(4, n_features, n_features)) * 0.3 + np.eye(n_features)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        labels = rng.choice(4, size=batch_size, p=[0.1, 0.2, 0.3, 0.4])
        Z = rng.normal(size=(batch_size, n_features))
        out.append(centers[labels] + np.einsum("nd,nde->ne", Z, A[labels]))
    return out


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_partial_fit_first_two_steps_equal_the_variational_updates(covariance_type):
    """Step 1 is fit(max_iter=1) on the first batch; step 2 is scikit-learn's
    variational M-step (its own _estimate_* on its _check_parameters priors)
    of the blended responsibilities: batch b's rows weighted by its share
    of the blend, (1 - rho) for the first and rho for the second, scaled to
    the total weight seen, N_2 / n_b."""
    X1, X2 = _stream(2, 300, seed=1, n_features=3)
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=0)
    online = BayesianGaussianMixture(**kw).partial_fit(X1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = BayesianGaussianMixture(max_iter=1, **kw).fit(X1)
        start = BayesianGaussianMixture(max_iter=0, **kw).fit(X1)
    for name in ATTRS:
        np.testing.assert_allclose(getattr(online, name), getattr(one, name), rtol=1e-12,
                                   atol=1e-13, err_msg=name)
    resp1 = np.exp(start._estimate_log_prob_resp(X1)[1])
    resp2 = np.exp(online._estimate_log_prob_resp(X2)[1])
    online.partial_fit(X2)
    rho = (1 + 2.0) ** -0.6
    total = 600.0
    resp = np.vstack([resp1 * (1 - rho) * total / 300, resp2 * rho * total / 300])
    ref = SkBGM(**kw)
    ref._check_parameters(X1)  # the stream's priors: the first batch's
    from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters
    X12 = np.vstack([X1, X2])
    nk, xk, sk = _estimate_gaussian_parameters(X12, resp, 1e-6, covariance_type)
    if covariance_type == "tied":
        # scikit-learn's tied formula takes rows whose responsibilities sum
        # to one (X^T X unweighted); here row i counts f_i = sum_k resp_ik
        f = resp.sum(axis=1)
        sk = ((X12 * f[:, None]).T @ X12 - (nk[:, None] * xk).T @ xk) / nk.sum()
        sk.flat[::4] += 1e-6
    ref._estimate_weights(nk)
    ref._estimate_means(nk, xk)
    ref._estimate_precisions(nk, xk, sk)
    for name in ("means_", "covariances_", "precisions_cholesky_", "mean_precision_",
                 "degrees_of_freedom_"):
        b = np.asarray(getattr(ref, name))
        np.testing.assert_allclose(getattr(online, name), b, rtol=1e-8,
                                   atol=1e-8 * np.abs(b).max(), err_msg=name)
    np.testing.assert_allclose(_concentration(online), _concentration(ref), rtol=1e-8)
    assert online.n_iter_ == 2 and len(online.lower_bounds_) == 2
    # a batch's bound: its mean score under the posterior before its step
    after_one = BayesianGaussianMixture(**kw).partial_fit(X1)
    np.testing.assert_allclose(online.lower_bounds_, [start.score(X1), after_one.score(X2)],
                               rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_partial_fit_stream_reaches_the_batch_fit(covariance_type):
    """150 batches of 100 rows: the held-out mean score is within 1% of the
    batch fit on the same 15 000 rows (or better: from k-means that fit
    can stop at a worse optimum), and the first batch alone is not."""
    stream = _stream(150, 100, seed=12)
    X_test = np.vstack(_stream(10, 1000, seed=11))
    batch = BayesianGaussianMixture(n_components=4, covariance_type=covariance_type,
                                    n_init=2, random_state=0).fit(np.vstack(stream))
    online = BayesianGaussianMixture(n_components=4, covariance_type=covariance_type,
                                     random_state=0)
    online.partial_fit(stream[0])
    first = online.score(X_test)
    for X in stream[1:]:
        online.partial_fit(X)
    ll_batch, ll_online = batch.score(X_test), online.score(X_test)
    assert ll_online >= ll_batch - 0.01 * abs(ll_batch), (ll_online, ll_batch)
    assert ll_online - first > 0.01 * abs(ll_batch), (first, ll_online)
    assert online.n_iter_ == 150 and online.converged_ is False
    # the posterior counts the whole stream
    np.testing.assert_allclose(online.mean_precision_.sum(), 4 * 1.0 + 15000, rtol=1e-9)


def test_partial_fit_interplay_with_fit_and_failures():
    X1, X2 = _stream(2, 200, seed=3, n_features=2)
    gf = BayesianGaussianMixture(n_components=2, random_state=0).partial_fit(X1)
    before = dict(gf.__dict__)
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        gf.partial_fit(X2, sample_weight=-np.ones(200))
    assert gf.__dict__.keys() == before.keys()
    assert all(gf.__dict__[k] is v for k, v in before.items())
    gf.set_params(covariance_type="diag")
    with pytest.raises(ValueError, match="partial_fit continues a stream of a model with"):
        gf.partial_fit(X2)
    gf.set_params(covariance_type="full").partial_fit(X2)
    assert gf.n_iter_ == 2
    gf.fit(X1)  # a fit ends the stream: the next batch starts a new one
    assert "_online_state" not in gf.__dict__
    gf.partial_fit(X2)
    assert gf.n_iter_ == 1
    X32 = X1.astype(np.float32)
    g32 = BayesianGaussianMixture(n_components=2, random_state=0).partial_fit(X32)
    g32.partial_fit(X2)  # later batches take the model's dtype
    assert g32.means_.dtype == np.float32


@pytest.mark.parametrize("prior_type", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_samples", [300, 200_000])
def test_compiled_constants_equal_the_numpy_forms(covariance_type, prior_type, n_samples):
    """A fit's kernel constants and lower bound come from one compiled call
    (gmmfast/_kernels.pyx ``bgm_constants``); the hooks keep the numpy and
    scipy.special forms, which are scikit-learn's. Fitted parameters, small
    and large counts (concentrations and degrees of freedom near 1e5)."""
    from scipy.special import gammaln

    D, K = 4, 3
    X = make_blobs(n_samples, D, K, seed=7)[0]
    gf = BayesianGaussianMixture(n_components=K, covariance_type=covariance_type,
                                 weight_concentration_prior_type=prior_type,
                                 random_state=0, max_iter=3).fit(X)
    params, priors = gf._params(), gf._priors()
    sh = _bayesian._shared(params, _covariance.get(covariance_type), prior_type)
    ref = (_bayesian.log_prob_constant(params, covariance_type, D)
           + _bayesian.log_weights(params.weight_concentration, prior_type))
    # each lognorm_k sums about D + 8 terms computed to a few ulps (digamma:
    # 16 u, tests/test_kernels.py): within 32 u of the sum of their magnitudes
    dof = np.broadcast_to(np.asarray(params.degrees_of_freedom, dtype=float), (K,))
    magnitude = np.abs(ref) + D * np.abs(np.log(dof)) + D / params.mean_precision + 10.0
    assert np.all(np.abs(sh.lognorm - ref) <= 32 * (D + 8) * 2.2e-16 * magnitude)
    # the bound: K (D + 4) log-gamma and product terms, each to a few ulps;
    # the Beta normaliser's lgamma(a) + lgamma(b) - lgamma(a + b) cancels, so
    # the yardstick is the terms' magnitudes, not the value
    wc = params.weight_concentration
    conc = np.concatenate(wc) if isinstance(wc, tuple) else np.asarray(wc)
    half = 0.5 * (dof - np.arange(D)[:, None])
    terms = (np.abs(gammaln(conc)).sum() * 3 + np.abs(gammaln(half)).sum()
             + np.sum(dof * (np.abs(np.log(dof)) * D + D + 10.0))
             + D * np.abs(np.log(params.mean_precision)).sum())
    got = _bayesian.fit_lower_bound(params, priors, covariance_type, 0.0)
    want = _bayesian.lower_bound(params, priors, covariance_type, 0.0)
    assert abs(got - want) <= 32 * 2.2e-16 * terms, (got, want, terms)
    # and the lower bound's -sum w r log r enters with its sign
    assert (_bayesian.fit_lower_bound(params, priors, covariance_type, 2.5)
            == pytest.approx(got - 2.5, abs=1e-9 * terms))


def _e_step_of_a_fit(covariance_type, dtype, D, K, prior_type, seed):
    """(X, the fitted model, its BGMModel, kernel parameters, statistics
    and log-likelihood of one E-step) after two iterations on blobs."""
    X = make_blobs(500, D, max(K, 2), seed=seed)[0].astype(dtype)
    gf = BayesianGaussianMixture(n_components=K, covariance_type=covariance_type,
                                 weight_concentration_prior_type=prior_type,
                                 random_state=0, max_iter=2).fit(X)
    data = ArrayData(np.ascontiguousarray(X), None,
                     _stats.kernel_config(D, covariance_type, 1, K, dtype))
    model = _bayesian.BGMModel(data, K, covariance_type, 1e-6, gf._priors())
    kp = model.kernel_params(gf._params())
    stats, ll = data.e_step(kp)
    return X, gf, model, kp, stats, ll


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", [(4, 3), (1, 1), (16, 9)])
def test_compiled_m_step_equals_the_numpy_forms(monkeypatch, covariance_type, prior_type,
                                                dtype, D, K):
    """Up to SMALL_ALGEBRA_D features the variational M-step is one compiled
    call (gmmfast/_kernels.pyx ``bgm_m_step``) that also computes the next
    E-step's constants and the bound's parameter terms; the numpy forms
    (``params_from_stats``, ``variational_m_step``, ``_shared``) beside it.
    The same formulas with sums of at most max(K, D) terms in another order:
    within 1e-12 of the values' magnitudes (the constants: the tolerance of
    test_compiled_constants_equal_the_numpy_forms)."""
    _, _, model, kp, stats, _ = _e_step_of_a_fit(covariance_type, dtype, D, K, prior_type, 3)
    got = model.m_step(stats, kp)
    with monkeypatch.context() as m:
        m.setattr(model, "_small_algebra", False)  # decided once, for the fit's D
        want = model.m_step(stats, kp)
    assert got.shared is not None and want.shared is None
    for g, w in zip(got.as_tuple(), want.as_tuple()):
        for a, b in zip(g if isinstance(g, tuple) else (g,), w if isinstance(w, tuple) else (w,)):
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype == dtype and a.shape == b.shape
            rtol = 1e-12 if dtype == np.float64 else 2e-7  # float32: one rounding apart
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    cov = _covariance.get(covariance_type)
    ref = _bayesian._shared(want, cov, prior_type)
    magnitude = np.abs(ref.lognorm) + 10.0 * D
    np.testing.assert_allclose(got.shared.lognorm, ref.lognorm, rtol=0,
                               atol=1e-12 * magnitude.max())
    assert got.shared.bound_terms == pytest.approx(ref.bound_terms, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", [(4, 3), (1, 1), (16, 9)])
def test_compiled_log_resp_sum_equals_the_numpy_form(monkeypatch, covariance_type, dtype,
                                                     D, K):
    """sum_i w_i sum_k r_ik log r_ik from an E-step's statistics, compiled up
    to SMALL_ALGEBRA_D features (gmmfast/_kernels.pyx ``log_resp_sum``)
    against the numpy form (``weighted_mahalanobis``), and both against the
    direct sum over the E-step's responsibilities: the statistics' form
    cancels to about eps times sum_i w_i |lp_i| (module docstring)."""
    X, gf, _, kp, stats, ll = _e_step_of_a_fit(covariance_type, dtype, D, K,
                                               "dirichlet_process", 5)
    got = _bayesian.log_resp_sum(stats, ll, kp)
    with monkeypatch.context() as m:
        m.setattr(_covariance, "small_algebra", lambda n_features: False)
        want = _bayesian.log_resp_sum(stats, ll, kp)
    log_resp = gf._estimate_log_prob_resp(X)[1].astype(np.float64)
    direct = float(np.sum(np.exp(log_resp) * log_resp))
    weighted_lp = np.abs(gf._estimate_weighted_log_prob(X).astype(np.float64)).sum()
    u = np.finfo(dtype).eps
    assert got == pytest.approx(want, rel=0, abs=64 * 2.2e-16 * weighted_lp)
    assert got == pytest.approx(direct, rel=0, abs=16 * u * weighted_lp + 1e-9)
