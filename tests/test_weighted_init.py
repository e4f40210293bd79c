"""Integer sample weights start (and fit) where the repeated rows do.

scikit-learn's KMeans measures its tolerance with the unweighted variance of
X, also when given sample weights; gmmfast's streamed k-means
(gmmfast/_kmeans.py) uses the weighted one, and a k-means++ seed counts once
whatever its weight. The data below puts zero-weight rows far away, so the
unweighted variance is about 1000 times the weighted one: with scikit-learn's
tolerance, Lloyd's iterations on the weighted rows stop early, and the
starts differ by 1e-3 to 1 (the test checks that this known-wrong tolerance
fails it).
"""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from gmmfast import GaussianMixture, _kmeans

from conftest import COVARIANCE_TYPES


def start_atol(X, w):
    """The two starts are the same sums in another order (and on other
    threads): each of the n_rows terms of a second moment is good to an ulp of
    the largest, max_i |x_i - mean|^2, relative to which the sum of n_rows
    terms rounds to n_rows * eps (the first moments' error is smaller)."""
    rows = X[w > 0]
    scale = float(((rows - rows.mean(axis=0)) ** 2).sum(axis=1).max())
    return int(w.sum()) * np.finfo(np.float64).eps * scale


# after EM the same, amplified by at most a few dozen iterations
FIT_FACTOR = 1e3


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
    atol = start_atol(X, w)
    start_r, start_w = fit_both(X, w, max_iter=0, **kw)
    assert max_param_difference(start_r, start_w) < atol
    fit_r, fit_w = fit_both(X, w, tol=1e-6, **kw)
    assert fit_w.n_iter_ == fit_r.n_iter_
    assert max_param_difference(fit_r, fit_w) < FIT_FACTOR * atol
    assert fit_w.lower_bound_ == pytest.approx(fit_r.lower_bound_, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_unweighted_kmeans_tolerance_would_fail(seed, monkeypatch):
    """The known-wrong method (scikit-learn's unweighted tolerance) fails the
    test above."""
    X, w = weighted_data(seed)
    atol = start_atol(X, w)
    kw = dict(n_components=3, covariance_type="full", max_iter=0)
    start_r, start_w = fit_both(X, w, **kw)
    assert max_param_difference(start_r, start_w) < atol
    right = _kmeans.mean_and_variance

    def unweighted_variance(walker):
        mean, variance = right(walker)
        if walker.weighted:
            variance = np.var(walker.X, axis=0)
        return mean, variance

    monkeypatch.setattr(_kmeans, "mean_and_variance", unweighted_variance)
    start_r, start_w = fit_both(X, w, **kw)
    assert max_param_difference(start_r, start_w) > 1e3 * atol
