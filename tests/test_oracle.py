"""scikit-learn is the oracle: from the same start, the same model."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGM

import gmmfast
from gmmfast import GaussianMixture
from gmmfast._demo import demo_data

from conftest import COVARIANCE_TYPES, make_blobs, start_params

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


def fit_both(X, sample_weight=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkGM(**kwargs).fit(X)
        gf = GaussianMixture(**kwargs).fit(X, sample_weight=sample_weight)
    return sk, gf


def assert_same_model(sk, gf, rtol=1e-8, first_bound_rtol=None):
    """first_bound_rtol: the first lower bound's tolerance where scikit-learn's
    start carries more rounding than the fit (see its caller)."""
    assert gf.n_iter_ == sk.n_iter_
    assert gf.converged_ == sk.converged_
    first = rtol if first_bound_rtol is None else first_bound_rtol
    if hasattr(sk, "lower_bounds_"):  # scikit-learn >= 1.7 records every bound
        np.testing.assert_allclose(gf.lower_bounds_[:1], sk.lower_bounds_[:1], rtol=first,
                                   atol=first)
        np.testing.assert_allclose(gf.lower_bounds_[1:], sk.lower_bounds_[1:], rtol=rtol,
                                   atol=rtol)
    else:
        assert len(gf.lower_bounds_) == gf.n_iter_
    np.testing.assert_allclose(gf.lower_bound_, sk.lower_bound_, rtol=rtol, atol=rtol)
    for name in ATTRS:
        a, b = getattr(gf, name), getattr(sk, name)
        assert a.shape == b.shape, name
        scale = max(np.abs(b).max(), 1e-300)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=name)


def digits():
    return load_digits().data.astype(np.float64)


DATASETS = {
    "demo": lambda: demo_data(4000, random_state=0),
    "blobs_d5": lambda: make_blobs(3000, 5, 4, seed=2)[0],
    "blobs_d20": lambda: make_blobs(2000, 20, 3, seed=3)[0],
    "digits": digits,
}


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_start_same_model(dataset, covariance_type):
    X = DATASETS[dataset]()
    n_components = 2 if dataset == "demo" else 3
    rng = np.random.default_rng(0)
    centers = X[rng.choice(X.shape[0], n_components, replace=False)]
    scale = X.std()
    kwargs = dict(n_components=n_components, covariance_type=covariance_type,
                  max_iter=40, tol=1e-4, reg_covar=1e-2 if dataset == "digits" else 1e-6,
                  **start_params(covariance_type, centers, scale=scale))
    sk, gf = fit_both(X, **kwargs)
    assert gf.n_iter_ > 2  # EM really moved
    assert_same_model(sk, gf)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_random_state_same_model(init_params, covariance_type):
    """The initialisers draw exactly what scikit-learn draws."""
    X = make_blobs(1500, 3, 3, seed=4, offset=2.0)[0]
    sk, gf = fit_both(X, n_components=3, covariance_type=covariance_type,
                      init_params=init_params, random_state=42, max_iter=25)
    # From one point per component (k-means++, random_from_data) the start's
    # diag/spherical variances are reg_covar-sized, and scikit-learn's are raw
    # moments E[x^2] - mu^2 at |x| ~ 3: relative rounding ~ eps 3^2 / 1e-6, 2e-9,
    # which the first lower bound (Mahalanobis terms over reg_covar) carries
    # (measured 1.5e-8); every later bound and every parameter agrees to 1e-8.
    single_point = init_params in ("k-means++", "random_from_data")
    raw_start = single_point and covariance_type in ("diag", "spherical")
    assert_same_model(sk, gf, first_bound_rtol=5e-8 if raw_start else None)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_initial_parameters_equal(covariance_type):
    """max_iter=0 returns the initial parameters; they equal scikit-learn's."""
    X = make_blobs(3000, 4, 3, seed=5, offset=5.0)[0]
    for init_params in ["kmeans", "k-means++", "random", "random_from_data"]:
        sk, gf = fit_both(X, n_components=3, covariance_type=covariance_type,
                          init_params=init_params, random_state=0, max_iter=0)
        for name in ("weights_", "means_"):
            np.testing.assert_allclose(getattr(gf, name), getattr(sk, name),
                                       rtol=1e-9, atol=1e-9, err_msg=f"{init_params} {name}")
        # scikit-learn's diag/spherical/tied covariances are raw moments
        # E[x^2] - mu^2: their rounding error is about eps * max(x^2); ours
        # are shifted sums (exact here to rounding of the variance itself).
        np.testing.assert_allclose(gf.covariances_, sk.covariances_, rtol=1e-9,
                                   atol=1e-12 * np.max(X**2),
                                   err_msg=f"{init_params} covariances_")
        assert gf.n_iter_ == 0 and gf.lower_bound_ == -np.inf and gf.lower_bounds_ == []


def test_n_init_picks_the_same_best():
    X = make_blobs(2000, 2, 4, seed=6)[0]
    sk, gf = fit_both(X, n_components=4, n_init=4, init_params="random", random_state=3,
                      max_iter=50)
    assert_same_model(sk, gf)


def test_warm_start_continues_like_sklearn():
    X = make_blobs(2000, 3, 3, seed=7)[0]
    kwargs = dict(n_components=3, warm_start=True, max_iter=3, random_state=0, tol=1e-12)
    sk, gf = SkGM(**kwargs), GaussianMixture(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            sk.fit(X)
            gf.fit(X)
            assert_same_model(sk, gf)


def test_fit_predict_and_predict_match_sklearn():
    X = demo_data(3000, random_state=1)
    sk, gf = fit_both(X, n_components=2, random_state=0)
    np.testing.assert_array_equal(gf.predict(X), sk.predict(X))
    np.testing.assert_allclose(gf.predict_proba(X), sk.predict_proba(X), atol=1e-10)
    np.testing.assert_allclose(gf.score_samples(X), sk.score_samples(X), rtol=1e-10)
    assert gf.score(X) == pytest.approx(sk.score(X), rel=1e-10)
    assert gf.bic(X) == pytest.approx(sk.bic(X), rel=1e-10)
    assert gf.aic(X) == pytest.approx(sk.aic(X), rel=1e-10)
    assert gf._n_parameters() == sk._n_parameters()
    labels = GaussianMixture(n_components=2, random_state=0).fit_predict(X)
    np.testing.assert_array_equal(labels, gf.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_matches_sklearn(covariance_type):
    X = make_blobs(500, 3, 2, seed=8)[0]
    sk, gf = fit_both(X, n_components=2, covariance_type=covariance_type, random_state=0)
    Xs, ys = gf.sample(300)
    Xk, yk = sk.sample(300)
    np.testing.assert_array_equal(ys, yk)
    np.testing.assert_allclose(Xs, Xk, rtol=1e-7, atol=1e-7)
    assert Xs.dtype == np.float64


def test_convergence_warning_and_flags():
    X = make_blobs(1000, 2, 3, seed=9)[0]
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm = GaussianMixture(3, max_iter=1, tol=0.0, random_state=0).fit(X)
    assert gm.converged_ is False and gm.n_iter_ == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gm = GaussianMixture(3, random_state=0).fit(X)
    assert gm.converged_ is True


def test_verbose_output_matches_sklearn(capsys):
    X = make_blobs(500, 2, 2, seed=10)[0]
    for verbose in (1,):
        SkGM(2, verbose=verbose, verbose_interval=1, random_state=0).fit(X)
        sk_out = capsys.readouterr().out
        GaussianMixture(2, verbose=verbose, verbose_interval=1, random_state=0).fit(X)
        assert capsys.readouterr().out == sk_out
    GaussianMixture(2, verbose=2, verbose_interval=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "ll change" in out and "lower bound" in out
    # verbose=0 prints nothing (scikit-learn's default)
    GaussianMixture(2, verbose=0, random_state=0).fit(X)
    assert capsys.readouterr().out == ""


def test_functional_fit_equals_estimator():
    X = make_blobs(1000, 3, 3, seed=11)[0]
    res = gmmfast.fit(X, 3, random_state=0, covariance_type="diag")
    gm = GaussianMixture(3, random_state=0, covariance_type="diag").fit(X)
    assert isinstance(res, gmmfast.FitResult)
    for name in ATTRS:
        np.testing.assert_array_equal(getattr(res, name.rstrip("_")), getattr(gm, name))
    assert res.n_iter == gm.n_iter_ and res.lower_bounds == gm.lower_bounds_
    with pytest.raises(TypeError, match="warm_start"):
        gmmfast.fit(X, 3, warm_start=True)
    with pytest.raises(TypeError):
        gmmfast.fit(X, 3, not_an_option=1)
