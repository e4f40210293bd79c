"""Drop-in details: a fit that diverges, and score's dtype."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGM

from gmmfast import GaussianMixture, _data, _em, _stats

from conftest import make_blobs

# scikit-learn's non-regression test for its issue 18216 (test_gaussian_mixture.py,
# test_gaussian_mixture_setting_best_params): these start parameters put two
# components on single points, and with reg_covar=0 their covariance collapses
RND = np.random.RandomState(0)
X_18216 = RND.uniform(size=(30, 3))
START_18216 = dict(
    covariance_type="spherical", reg_covar=0, n_components=6,
    means_init=np.array([
        [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
        [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
        [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
        [0.18578301420435747, 0.5531158970919143, 0.19388943970532435],
        [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
        [0.609279894978321, 0.7929063819678847, 0.9620097270828052]]),
    precisions_init=np.array([999999.999604483, 999999.9990869573, 553.7603944542167,
                              204.78596008931834, 15.867423501783637, 85.4595728389735]),
    weights_init=[0.03333333333333341, 0.03333333333333341, 0.06666666666666674,
                  0.06666666666666674, 0.7000000000000001, 0.10000000000000007],
)


@pytest.mark.parametrize("max_iter", [1, 100])
def test_diverging_fit_keeps_its_best_parameters(max_iter):
    """scikit-learn's test for issue 18216, on gmmfast: no error, not
    converged, every attribute set, finite. gmmfast's covariance of the
    collapsed components is exactly zero (shifted statistics), so EM stops at
    the first M-step and keeps the parameters its lower bound belongs to:
    here the start (scikit-learn's raw moments leave rounding noise of
    either sign there instead, and go on when it happens to be positive)."""
    gm = GaussianMixture(**START_18216, max_iter=max_iter)
    with pytest.warns(ConvergenceWarning, match="EM diverged at iteration 1.*"
                                                "increase reg_covar"):
        gm.fit(X_18216)
    assert not gm.converged_
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "n_iter_", "lower_bound_", "lower_bounds_"):
        assert np.all(np.isfinite(getattr(gm, attr))), attr
    assert gm.n_iter_ == 1 and len(gm.lower_bounds_) == 1
    np.testing.assert_allclose(gm.means_, START_18216["means_init"], rtol=0, atol=0)
    np.testing.assert_allclose(gm.precisions_, START_18216["precisions_init"], rtol=1e-12)
    # the lower bound is the one of those parameters: scikit-learn's first
    # (its lower_bound_ after one iteration; lower_bounds_ needs 1.7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkGM(**START_18216, max_iter=1).fit(X_18216)
    assert gm.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-12)
    assert gm.lower_bound_ == pytest.approx(gm.score(X_18216), rel=1e-12)
    assert np.all(np.isfinite(gm.predict_proba(X_18216)))


class _NonFiniteAfter:
    """An in-memory data source whose log-likelihood turns NaN at the
    iteration ``bad`` (what an overflowing E-step would return)."""

    def __init__(self, X, bad):
        self.inner = _data.ArrayData(X, None, _stats.kernel_config(X.shape[1], "full", 1))
        self.dtype, self.total_weight = X.dtype, self.inner.total_weight
        self.center, self.bad, self.calls, self.params = self.inner.center, bad, 0, []

    def e_step(self, kp):
        self.calls += 1
        self.params.append(kp.means.copy())
        stats, ll = self.inner.e_step(kp)
        return stats, (np.nan if self.calls == self.bad else ll)


@pytest.mark.parametrize("bad", [2, 4])
def test_non_finite_lower_bound_later_keeps_the_previous_parameters(bad):
    """Lower bound t is that of the parameters after M-step t - 1; when it is
    not finite, EM returns the parameters of the iteration before, with
    lower bound t - 1, n_iter t - 1."""
    X, centers = make_blobs(200, 2, 2, seed=3)
    start = _stats.GMMParams(np.array([0.5, 0.5]), centers + 0.5,
                             np.tile(np.eye(2), (2, 1, 1)), np.tile(np.eye(2), (2, 1, 1)))
    source = _NonFiniteAfter(X, bad)
    with pytest.warns(ConvergenceWarning, match=f"EM diverged at iteration {bad}.*not a "
                                                "number.*Increase reg_covar"):
        params, lower_bound, lower_bounds, n_iter, converged = _em.run_em(
            source, start, "full", tol=0.0, max_iter=10, reg_covar=1e-6)
    assert not converged and n_iter == bad - 1 == len(lower_bounds)
    assert lower_bound == lower_bounds[-1]
    # the parameters lower bound bad-1 was computed under
    np.testing.assert_array_equal(params.means, source.params[bad - 2])
    # and the first iteration's failure still raises (no finite lower bound)
    with pytest.raises(ValueError, match="EM failed at iteration 1"):
        _em.run_em(_NonFiniteAfter(X, 1), start, "full", tol=0.0, max_iter=10,
                   reg_covar=1e-6)


@pytest.mark.parametrize("n_samples", [1000, 100003])
def test_score_is_the_mean_of_score_samples_in_the_data_dtype(n_samples):
    """scikit-learn's score is float(score_samples(X).mean()): for float32
    data a float32 mean. A float64 mean of the same values differs."""
    X = make_blobs(n_samples, 3, 2, seed=0)[0].astype(np.float32) * 30
    gm = GaussianMixture(2, random_state=0).fit(X)
    logp = gm.score_samples(X)
    assert logp.dtype == np.float32
    assert gm.score(X) == float(logp.mean())
    assert float(logp.mean()) != float(logp.mean(dtype=np.float64))  # the test can fail
    n = X.shape[0]
    assert gm.bic(X) == -2 * float(logp.mean()) * n + gm._n_parameters() * np.log(n)
