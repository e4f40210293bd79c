"""gmmfast.select: model selection over n_components and covariance_type."""
import math
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import gmmfast
from gmmfast import GaussianMixture, SelectionTable


def full_truth(n_samples=1200, seed=0):
    """3 well-separated components with different, correlated covariances."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
    covs = [np.array([[2.0, 1.6], [1.6, 2.0]]), np.array([[1.0, -0.8], [-0.8, 1.0]]),
            np.array([[3.0, 0.9], [0.9, 0.5]])]
    labels = rng.integers(0, 3, n_samples)
    X = np.empty((n_samples, 2))
    for k in range(3):
        idx = labels == k
        X[idx] = rng.multivariate_normal(centers[k], covs[k], idx.sum())
    return X


def diag_truth(n_samples=1600, seed=1):
    """4 well-separated axis-aligned components, 3 features, unequal variances."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=float)
    scales = rng.uniform(0.4, 2.0, size=(4, 3))
    labels = rng.integers(0, 4, n_samples)
    return centers[labels] + rng.normal(size=(n_samples, 3)) * scales[labels]


def test_picks_true_k_and_full_structure():
    X = full_truth()
    best = gmmfast.select(X, n_components=range(1, 7), random_state=0)
    assert isinstance(best, GaussianMixture)
    assert (best.n_components, best.covariance_type) == (3, "full")
    table = best.selection_
    assert isinstance(table, SelectionTable) and table.criterion == "bic"
    assert len(table) == 6 * 4
    assert [(r["covariance_type"], r["n_components"]) for r in table][:7] == [
        ("full", k) for k in range(1, 7)] + [("tied", 1)]
    assert table.best is table[table.best_index]
    assert table.best["bic"] == min(r["bic"] for r in table)
    # the table's criterion is the model's own (unweighted data)
    assert best.bic(X) == pytest.approx(table.best["bic"], rel=1e-10)
    assert best.aic(X) == pytest.approx(table.best["aic"], rel=1e-10)
    for r in table:
        assert r["error"] is None and r["n_iter"] >= 1 and r["fit_seconds"] >= 0
        assert r["n_parameters"] == gmmfast._covariance.get(
            r["covariance_type"]).n_parameters(r["n_components"], 2)
    # the returned model is fitted and usable
    assert best.predict(X).shape == (len(X),)


def test_picks_true_k_and_diag_structure():
    X = diag_truth()
    best = gmmfast.select(X, n_components=range(2, 7), random_state=0)
    assert (best.n_components, best.covariance_type) == (4, "diag")


def test_aic_minimises_aic():
    X = full_truth(400, seed=3)
    best = gmmfast.select(X, n_components=[1, 2, 3, 4], covariance_types=["diag", "full"],
                          criterion="AIC", random_state=0)
    table = best.selection_
    assert table.criterion == "aic"
    assert table.best["aic"] == min(r["aic"] for r in table)
    assert best.n_components == table.best["n_components"]


def test_sample_weight_gives_weighted_criterion():
    X = full_truth(500, seed=4)
    w = np.random.default_rng(0).integers(0, 4, len(X)).astype(float)
    best = gmmfast.select(X, n_components=[2, 3], covariance_types="full",
                          sample_weight=w, random_state=0)
    for r in best.selection_:
        if r["n_components"] == best.n_components:
            ll = float(w @ best.score_samples(X))
            p = r["n_parameters"]
            assert r["log_likelihood"] == pytest.approx(ll, rel=1e-10)
            assert r["bic"] == pytest.approx(-2 * ll + p * math.log(w.sum()), rel=1e-10)
            assert r["aic"] == pytest.approx(-2 * ll + 2 * p, rel=1e-10)


def test_jobs_in_threads_give_the_same_table():
    X = full_truth(600, seed=5)
    kwargs = dict(n_components=range(1, 5), random_state=0, n_threads=1)
    one = gmmfast.select(X, n_jobs=1, **kwargs)
    two = gmmfast.select(X, n_jobs=2, **kwargs)
    assert one.n_threads == two.n_threads == 1
    drop = lambda rows: [{k: v for k, v in r.items() if k != "fit_seconds"} for r in rows]
    assert drop(one.selection_) == drop(two.selection_)
    np.testing.assert_array_equal(one.means_, two.means_)


def test_to_frame_and_columns_and_pickle():
    pd = pytest.importorskip("pandas")
    X = full_truth(300, seed=6)
    best = gmmfast.select(X, n_components=[1, 2, 3], covariance_types=("full", "spherical"),
                          random_state=0)
    frame = best.selection_.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(SelectionTable.columns)
    assert len(frame) == 6
    assert frame["bic"].idxmin() == best.selection_.best_index
    np.testing.assert_array_equal(best.selection_.column("n_components"), [1, 2, 3] * 2)
    with pytest.raises(KeyError, match="no column 'nope'"):
        best.selection_.column("nope")
    assert "*" in repr(best.selection_)
    copy = pickle.loads(pickle.dumps(best))
    assert list(copy.selection_) == list(best.selection_)


def test_refit_drops_the_selection_record():
    X = full_truth(300, seed=7)
    best = gmmfast.select(X, n_components=[1, 2], covariance_types="diag", random_state=0)
    assert hasattr(best, "selection_")
    best.fit(X)
    assert not hasattr(best, "selection_")


def test_failed_candidates_are_recorded_not_fatal():
    # three distinct points: 6 components collapse (ill-defined covariance, reg_covar=0)
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 3.0], [4.0, 1.0]]), 20, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = gmmfast.select(X, n_components=[1, 6], covariance_types="full",
                              reg_covar=0.0, random_state=0)
    rows = {r["n_components"]: r for r in best.selection_}
    assert rows[1]["error"] is None
    assert "reg_covar" in rows[6]["error"] and math.isnan(rows[6]["bic"])
    assert best.n_components == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no candidate could be fitted.*reg_covar"):
            gmmfast.select(X, n_components=[6], covariance_types="full", reg_covar=0.0,
                           random_state=0)


def test_selected_candidate_not_converged_warns_once():
    X = full_truth(300, seed=8)
    with pytest.warns(ConvergenceWarning, match="selected candidate") as record:
        gmmfast.select(X, n_components=[2, 3], covariance_types="full", max_iter=1,
                       tol=0.0, random_state=0)
    assert len([w for w in record if issubclass(w.category, ConvergenceWarning)]) == 1


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_components=[]), ValueError, "n_components is empty"),
    (dict(n_components=range(1, 1)), ValueError, "n_components is empty"),
    (dict(n_components=[0, 2]), ValueError, "positive integers, got 0"),
    (dict(n_components=[2.5]), ValueError, "positive integers, got 2.5"),
    (dict(n_components="3"), ValueError, "positive integers, got '3'"),
    (dict(n_components=None), TypeError, "an int or an iterable of ints"),
    (dict(n_components=[50]), ValueError, "n_components holds 50, but X has only 40 samples"),
    (dict(covariance_types=()), ValueError, "covariance_types is empty"),
    (dict(covariance_types=("full", "banana")), ValueError, "covariance_types holds 'banana'"),
    (dict(criterion="icl"), ValueError, "criterion must be 'bic' or 'aic', got 'icl'"),
    (dict(means_init=np.zeros((2, 2))), TypeError, "does not take means_init"),
    (dict(covariance_type="full"), TypeError, "pass the candidates as covariance_types"),
    (dict(warm_start=True), TypeError, "does not take warm_start"),
    (dict(tol=-1.0), ValueError, "'tol' parameter"),
    (dict(bogus=1), TypeError, "bogus"),
    (dict(n_jobs=0), ValueError, "n_jobs must be None or a positive integer"),
    (dict(sample_weight=np.ones(3)), ValueError, r"sample_weight must have shape \(n_samples,\)"),
])
def test_bad_arguments(kwargs, error, match):
    X = full_truth(40, seed=9)
    with pytest.raises(error, match=match):
        gmmfast.select(X, **kwargs)


def test_bad_x():
    with pytest.raises(ValueError, match="must be a 2-D array"):
        gmmfast.select(np.arange(10.0))
    with pytest.raises(ValueError, match="NaN"):
        gmmfast.select(np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), n_components=[1])
