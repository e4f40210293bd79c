"""The estimator is a scikit-learn estimator: API surface, composition, memory."""
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gmmfast import GaussianMixture

from conftest import make_blobs


def test_same_constructor_defaults_as_sklearn():
    ours = GaussianMixture().get_params()
    theirs = SkGM().get_params()
    assert ours.pop("n_threads") is None
    # partial_fit's step-size schedule (scikit-learn's LDA names)
    assert ours.pop("learning_decay") == 0.6
    assert ours.pop("learning_offset") == 2.0
    # missing values: 'raise' is scikit-learn's behaviour
    assert ours.pop("nan_policy") == "raise"
    assert ours == theirs


def test_get_set_params_and_clone():
    gm = GaussianMixture(3, covariance_type="diag", n_threads=1)
    gm2 = clone(gm)
    assert gm2.get_params() == gm.get_params()
    gm2.set_params(n_components=5)
    assert gm2.n_components == 5 and gm.n_components == 3


def test_pipeline_and_grid_search():
    X = make_blobs(600, 3, 3, seed=0)[0]
    pipe = make_pipeline(StandardScaler(), GaussianMixture(random_state=0))
    search = GridSearchCV(pipe, {"gaussianmixture__n_components": [1, 2, 3, 4]}, cv=3)
    search.fit(X)
    assert search.best_params_["gaussianmixture__n_components"] >= 2
    assert pipe.fit(X).score(X) < 0


def test_feature_names_from_dataframe():
    pd = pytest.importorskip("pandas")
    X = make_blobs(300, 3, 2, seed=1)[0]
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    gm = GaussianMixture(2, random_state=0).fit(df)
    assert list(gm.feature_names_in_) == ["a", "b", "c"]
    assert gm.n_features_in_ == 3
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        labels = gm.predict(X)
    np.testing.assert_array_equal(gm.predict(df), labels)
    with pytest.raises(ValueError, match="feature names should match"):
        gm.predict(df.rename(columns={"a": "z"}))


def test_predict_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixture().predict(np.zeros((2, 2)))


def test_fit_does_not_store_responsibilities_or_grow_with_n():
    """Peak extra memory during fit does not grow with n_samples (init aside)."""
    def peak(n_samples):
        X, centers = make_blobs(n_samples, 4, 3, seed=2)
        kwargs = dict(weights_init=np.full(3, 1 / 3), means_init=centers,
                      precisions_init=np.tile(np.eye(4), (3, 1, 1)),
                      max_iter=5, tol=0.0, n_threads=2)
        GaussianMixture(3, **kwargs).fit(X)  # warm-up
        tracemalloc.start()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = GaussianMixture(3, **kwargs).fit(X)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert gm.n_iter_ == 5
        return top

    small, large = peak(20_000), peak(80_000)
    # 80k x 3 float64 responsibilities alone would be 1.9 MB
    assert large < small + 64 * 1024, (small, large)
    assert large < 512 * 1024


def test_attributes_are_set_and_typed():
    X = make_blobs(500, 2, 2, seed=3)[0]
    gm = GaussianMixture(2, random_state=0).fit(X)
    assert isinstance(gm.converged_, bool)
    assert isinstance(gm.n_iter_, int)
    assert isinstance(gm.lower_bound_, float)
    assert len(gm.lower_bounds_) == gm.n_iter_
    assert gm.n_features_in_ == 2
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).dtype == np.float64
