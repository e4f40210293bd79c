"""scikit-learn's BaseMixture hooks on gmmfast.GaussianMixture: each returns
what scikit-learn's returns on the same parameters, and scikit-learn's own
loop (BaseMixture.fit_predict) driving them gives scikit-learn's fit.

Tolerance: the hooks compute the same float64 quantities through other
summation orders (kernel blocks, shifted statistics), about 1e-15 relative
on this data; 1e-10 leaves room for EM's amplification over a few dozen
iterations and fails any wrong formula (a dropped log-determinant or
reg_covar, unnormalised weights move values by 1e-6 or more).
"""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.mixture._base import BaseMixture

from gmmfast import GaussianMixture
from gmmfast._hooks import MixtureHooksMixin

from conftest import COVARIANCE_TYPES, make_blobs

RTOL = 1e-10
PARAMS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


def assert_close(a, b, what=""):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, what
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * max(1.0, np.abs(b).max()),
                               err_msg=what)


def assert_same_params(gf, sk):
    for name in PARAMS:
        assert_close(getattr(gf, name), getattr(sk, name), name)


@pytest.fixture(scope="module")
def data():
    return make_blobs(500, 3, 3, seed=0)[0]


def fitted_pair(X, covariance_type):
    """A gmmfast model, and a scikit-learn one given the same parameters."""
    gf = GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                         max_iter=5).fit(X)
    sk = SkGM(3, covariance_type=covariance_type, reg_covar=gf.reg_covar)
    sk._set_parameters(gf._get_parameters())
    sk.n_features_in_ = X.shape[1]
    return gf, sk


def test_the_generic_hooks_are_a_mixin():
    assert issubclass(GaussianMixture, MixtureHooksMixin)
    for name in ("_estimate_weighted_log_prob", "_estimate_log_prob_resp", "_e_step"):
        assert name in vars(MixtureHooksMixin)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_estimation_hooks_return_sklearns(data, covariance_type):
    gf, sk = fitted_pair(data, covariance_type)
    X = data[:123]  # not a multiple of any block size
    assert_close(gf._estimate_log_prob(X), sk._estimate_log_prob(X), "log_prob")
    assert_close(gf._estimate_log_weights(), sk._estimate_log_weights(), "log_weights")
    assert_close(gf._estimate_weighted_log_prob(X), sk._estimate_weighted_log_prob(X))
    norm_gf, resp_gf = gf._estimate_log_prob_resp(X)
    norm_sk, resp_sk = sk._estimate_log_prob_resp(X)
    assert_close(norm_gf, norm_sk, "log_prob_norm")
    assert_close(resp_gf, resp_sk, "log_resp")
    mean_gf, resp_gf = gf._e_step(X)
    mean_sk, resp_sk = sk._e_step(X)
    assert float(mean_gf) == pytest.approx(float(mean_sk), rel=RTOL)
    assert_close(resp_gf, resp_sk, "e_step log_resp")
    # and they agree with gmmfast's own one-pass predictions
    assert_close(norm_gf, gf.score_samples(X))
    assert_close(np.exp(resp_gf), gf.predict_proba(X))
    # the same inputs give the same value (the E-step means above agree to
    # rounding only: one-pass sums against scikit-learn's)
    assert gf._compute_lower_bound(resp_sk, mean_sk) == sk._compute_lower_bound(
        resp_sk, mean_sk)
    assert gf._n_parameters() == sk._n_parameters()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_returns_sklearns(data, covariance_type):
    gf, sk = fitted_pair(data, covariance_type)
    _, log_resp = sk._e_step(data)
    assert gf._m_step(data, log_resp) is None
    sk._m_step(data, log_resp)
    sk._set_parameters(sk._get_parameters())  # scikit-learn's M-step leaves precisions_
    assert_same_params(gf, sk)
    assert abs(gf.weights_.sum() - 1) < 1e-12


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("resp_kind", ["soft", "one row per component"])
def test_initialize_returns_sklearns(data, covariance_type, resp_kind):
    rng = np.random.RandomState(1)
    n = data.shape[0]
    if resp_kind == "soft":
        resp = rng.uniform(size=(n, 3))
        resp /= resp.sum(axis=1, keepdims=True)
    else:  # what 'k-means++' and 'random_from_data' hand over: mostly zero rows
        resp = np.zeros((n, 3))
        resp[rng.choice(n, 3, replace=False), np.arange(3)] = 1
    gf = GaussianMixture(3, covariance_type=covariance_type)
    sk = SkGM(3, covariance_type=covariance_type)
    gf._initialize(data, resp)
    sk._initialize(data, resp)
    sk._set_parameters(sk._get_parameters())  # precisions_
    if resp_kind == "soft" or covariance_type == "tied":
        assert_same_params(gf, sk)
        return
    # one point per component: the covariance is reg_covar, up to the
    # cancellation of sums of squares in either method (a few eps times
    # max x^2, about 1e-14 here: the precisions amplify it by cov^-1.5, so
    # they are compared through the covariances only); a missing reg_covar
    # would be 1e-6 off
    for name in ("weights_", "means_"):
        assert_close(getattr(gf, name), getattr(sk, name), name)
    atol = 16 * np.finfo(float).eps * (data ** 2).max()
    np.testing.assert_allclose(gf.covariances_, sk.covariances_, rtol=0, atol=atol)
    expected = np.eye(3) * 1e-6 if covariance_type == "full" else 1e-6
    np.testing.assert_allclose(gf.covariances_, np.broadcast_to(expected, gf.covariances_.shape),
                               rtol=0, atol=atol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_initialize_takes_the_init_parameters(data, covariance_type):
    gf_fit = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(data)
    init = dict(weights_init=gf_fit.weights_, means_init=gf_fit.means_,
                precisions_init=gf_fit.precisions_)
    gf = GaussianMixture(3, covariance_type=covariance_type, **init)
    gf._initialize(data, None)
    for name in ("weights_", "means_", "precisions_"):
        assert_close(getattr(gf, name), getattr(gf_fit, name), name)
    assert_close(gf.covariances_, gf_fit.covariances_, "covariances_")


def test_get_set_parameters_round_trip(data):
    gf, _ = fitted_pair(data, "full")
    params = gf._get_parameters()
    other = GaussianMixture(3)
    other._set_parameters(params)
    for name in PARAMS:
        np.testing.assert_array_equal(getattr(other, name), getattr(gf, name))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random",
                                         "random_from_data"])
def test_sklearns_own_loop_on_the_hooks_gives_sklearns_fit(data, covariance_type,
                                                           init_params):
    """BaseMixture.fit_predict (scikit-learn's code: its start, its loop of
    _e_step / _m_step / _compute_lower_bound, _get/_set_parameters) run on
    gmmfast's hooks reaches scikit-learn's fit, and gmmfast's own fit."""
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=0,
              init_params=init_params, n_init=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkGM(**kw)
        labels_sk = sk.fit_predict(data)
        driven = GaussianMixture(**kw)
        labels = BaseMixture.fit_predict(driven, data)
        own = GaussianMixture(**kw).fit(data)
    assert driven.n_iter_ == sk.n_iter_ == own.n_iter_
    assert driven.converged_ == sk.converged_
    np.testing.assert_array_equal(labels, labels_sk)
    assert_same_params(driven, sk)
    assert_same_params(own, sk)
    assert driven.lower_bound_ == pytest.approx(sk.lower_bound_, rel=RTOL)
