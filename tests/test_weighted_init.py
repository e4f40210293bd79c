"""Integer sample weights start (and fit) where the repeated rows do.

scikit-learn's KMeans measures its tolerance with the unweighted variance of
X, also when given sample weights; gmmfast passes it the weighted one
(``_init.weighted_kmeans_tol``). The data below puts zero-weight rows far
away, so the unweighted variance is about 1000 times the weighted one: with
scikit-learn's tolerance, Lloyd's iterations on the weighted rows stop early,
and the starts differ by 1e-3 to 1 (the test checks that this known-wrong
tolerance fails it).
"""
import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

import gmmfast._init as init_module
from gmmfast import GaussianMixture
from gmmfast._init import weighted_kmeans_tol

from conftest import COVARIANCE_TYPES

# the two starts are the same arithmetic summed in another order: a few
# hundred rows' rounding, relative to the data's scale (about 1)
START_ATOL = 1e-12
# after EM the same, amplified by at most a few dozen iterations
FIT_ATOL = 1e-9


def weighted_data(seed):
    rng = np.random.RandomState(seed)
    X = rng.randn(300, 3)
    X[:150] += 1.5
    w = rng.randint(1, 5, size=300)
    X = np.vstack([X, rng.randn(30, 3) * 100])
    w = np.concatenate([w, np.zeros(30, dtype=int)])
    order = rng.permutation(X.shape[0])
    return X[order], w[order]


def fit_both(X, w, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        repeated = GaussianMixture(random_state=0, **kw).fit(np.repeat(X, w, axis=0))
        weighted = GaussianMixture(random_state=0, **kw).fit(X, sample_weight=w)
    return repeated, weighted


def max_param_difference(a, b):
    return max(np.abs(getattr(a, n) - getattr(b, n)).max()
               for n in ("weights_", "means_", "covariances_"))


@pytest.mark.parametrize("n_components", [2, 3, 5])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_integer_weights_start_and_fit_as_repeated_rows(n_components, covariance_type,
                                                        init_params):
    X, w = weighted_data(0)
    kw = dict(n_components=n_components, covariance_type=covariance_type,
              init_params=init_params)
    start_r, start_w = fit_both(X, w, max_iter=0, **kw)
    assert max_param_difference(start_r, start_w) < START_ATOL
    fit_r, fit_w = fit_both(X, w, tol=1e-6, **kw)
    assert fit_w.n_iter_ == fit_r.n_iter_
    assert max_param_difference(fit_r, fit_w) < FIT_ATOL
    assert fit_w.lower_bound_ == pytest.approx(fit_r.lower_bound_, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_unweighted_kmeans_tolerance_would_fail(seed, monkeypatch):
    """The known-wrong method (scikit-learn's tolerance) fails the test above."""
    X, w = weighted_data(seed)
    kw = dict(n_components=3, covariance_type="full", max_iter=0)
    start_r, start_w = fit_both(X, w, **kw)
    assert max_param_difference(start_r, start_w) < START_ATOL
    monkeypatch.setattr(init_module, "weighted_kmeans_tol",
                        lambda X, sample_weight, tol=1e-4: tol)
    start_r, start_w = fit_both(X, w, **kw)
    assert max_param_difference(start_r, start_w) > 1e3 * START_ATOL


def test_weighted_kmeans_tol_values():
    X, w = weighted_data(0)
    assert weighted_kmeans_tol(X, None) == 1e-4
    Xr = np.repeat(X, w, axis=0)
    expected = 1e-4 * np.var(Xr, axis=0).mean() / np.var(X, axis=0).mean()
    assert weighted_kmeans_tol(X, w.astype(np.float64)) == pytest.approx(expected,
                                                                          rel=1e-12)
    # so that KMeans' absolute tolerance on the weighted rows is the repeated rows'
    # (scikit-learn's private _tolerance: the absolute value KMeans stops at)
    from sklearn.cluster._kmeans import _tolerance
    assert _tolerance(X, weighted_kmeans_tol(X, w.astype(np.float64))) == pytest.approx(
        _tolerance(Xr, 1e-4), rel=1e-12)
    # float32 X: computed in float64, same value to float32 rounding of X
    assert weighted_kmeans_tol(X.astype(np.float32), w.astype(np.float64)) == \
        pytest.approx(expected, rel=1e-6)
    # every row equal: both variances are zero
    same = np.ones((5, 2))
    assert weighted_kmeans_tol(same, np.arange(5.0)) == 1e-4
    # the positive-weight rows equal, the others not: the weighted variance is
    # zero, so KMeans must stop only when the centres stop moving
    X2 = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 1.0]])
    assert weighted_kmeans_tol(X2, np.array([1.0, 2.0, 0.0])) == 0.0


def test_unweighted_start_is_scikit_learns_kmeans(monkeypatch):
    """Without weights the k-means start is KMeans(n_clusters=K, n_init=1,
    random_state=...) with its defaults: no tol passed."""
    seen = []

    class Recorder(KMeans):
        def fit(self, X, y=None, sample_weight=None):
            seen.append(self.get_params())
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(init_module, "KMeans", Recorder)
    X, w = weighted_data(0)
    GaussianMixture(3, random_state=0, max_iter=0).fit(X)
    GaussianMixture(3, random_state=0, max_iter=0).fit(X, sample_weight=w)
    defaults = KMeans().get_params()
    assert {k: v for k, v in seen[0].items() if k != "random_state"} == \
        {**{k: v for k, v in defaults.items() if k != "random_state"}, "n_clusters": 3,
         "n_init": 1}
    assert seen[1]["tol"] == pytest.approx(weighted_kmeans_tol(X, w.astype(float)))
