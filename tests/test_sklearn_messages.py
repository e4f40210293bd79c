"""Every error gmmfast raises on GaussianMixture's inputs starts with
scikit-learn's message for the same input, word for word, and has
scikit-learn's exception type: ``pytest.raises(..., match=...)`` written for
scikit-learn still matches. scikit-learn's message is captured here, at test
time, from the installed version (the CI runs 1.6 to the newest)."""
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.mixture import GaussianMixture as SkGM

from gmmfast import GaussianMixture

RNG = np.random.RandomState(0)
X_GOOD = RNG.randn(20, 2)
SPD = np.array([[2.0, 0.5], [0.5, 1.0]])

BAD_PARAMETERS = {
    "weights wrong shape": dict(n_components=2, weights_init=[1.0]),
    "weights 2-d": dict(n_components=2, weights_init=[[0.5, 0.5]]),
    "weights out of range": dict(n_components=2, weights_init=[1.5, -0.5]),
    "weights not normalised": dict(n_components=2, weights_init=[0.2, 0.2]),
    "weights nan": dict(n_components=2, weights_init=[np.nan, 0.5]),
    "weights strings": dict(n_components=2, weights_init=["a", "b"]),
    "weights sparse": dict(n_components=2, weights_init=sp.csr_matrix([[0.5, 0.5]])),
    "means wrong shape": dict(n_components=2, means_init=np.zeros((3, 2))),
    "means 1-d": dict(n_components=2, means_init=[0.0, 0.0]),
    "means nan": dict(n_components=2, means_init=[[np.nan, 0.0], [0.0, 0.0]]),
    "means inf": dict(n_components=2, means_init=[[np.inf, 0.0], [0.0, 0.0]]),
    "means complex": dict(n_components=2, means_init=np.zeros((2, 2)) + 1j),
    "full precision wrong shape": dict(n_components=2, precisions_init=SPD),
    "full precision not symmetric": dict(
        n_components=2, precisions_init=np.array([[[1.0, 0.5], [0.0, 1.0]]] * 2)),
    "full precision not PD": dict(
        n_components=2, precisions_init=np.array([[[1.0, 2.0], [2.0, 1.0]]] * 2)),
    "tied precision wrong shape": dict(n_components=2, covariance_type="tied",
                                       precisions_init=np.ones(2)),
    "tied precision not PD": dict(n_components=2, covariance_type="tied",
                                  precisions_init=np.array([[1.0, 2.0], [2.0, 1.0]])),
    "diag precision negative": dict(n_components=2, covariance_type="diag",
                                    precisions_init=-np.ones((2, 2))),
    "diag precision wrong shape": dict(n_components=2, covariance_type="diag",
                                       precisions_init=np.ones(2)),
    "spherical precision zero": dict(n_components=2, covariance_type="spherical",
                                     precisions_init=np.array([1.0, 0.0])),
    "spherical precision wrong shape": dict(n_components=2, covariance_type="spherical",
                                            precisions_init=np.ones((2, 2))),
    "spherical precision nan": dict(n_components=2, covariance_type="spherical",
                                    precisions_init=np.array([1.0, np.nan])),
    "n_components 0": dict(n_components=0),
    "n_components float": dict(n_components=1.5),
    "n_components > n_samples": dict(n_components=30),
    "covariance_type": dict(covariance_type="foo"),
    "tol": dict(tol=-1.0),
    "reg_covar": dict(reg_covar=-1.0),
    "max_iter": dict(max_iter=-1),
    "n_init": dict(n_init=0),
    "init_params": dict(init_params="x"),
    "random_state": dict(random_state="x"),
    "warm_start": dict(warm_start="x"),
    "verbose_interval": dict(verbose_interval=0),
}

BAD_X = {
    "nan": np.array([[np.nan, 0.0]] * 5),
    "inf": np.array([[np.inf, 0.0]] * 5),
    "1-d": np.arange(5.0),
    "3-d": np.zeros((3, 2, 2)),
    "0-d": np.float64(3.0),
    "empty": np.zeros((0, 2)),
    "one sample": np.zeros((1, 2)),
    "no features": np.zeros((5, 0)),
    "strings": np.array([["a", "b"]] * 5),
    "numeric strings": X_GOOD.astype(str),
    "bytes": X_GOOD.astype("S8"),
    "complex": np.ones((5, 2)) * 1j,
    "csr_matrix": sp.csr_matrix(np.ones((5, 2))),
    "csr_array": sp.csr_array(np.ones((5, 2))),
    "ragged list": [[1.0, 2.0], [3.0]],
    "objects": np.array([[object(), 1]] * 5, dtype=object),
    "datetimes": np.zeros((5, 2), dtype="datetime64[s]"),
}


def sklearn_error(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - any error scikit-learn raises
            return exc
    return None


def assert_same_error(sk_call, gf_call):
    sk = sklearn_error(sk_call)
    assert sk is not None, "scikit-learn accepts this input"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(type(sk), match=re.escape(str(sk))) as info:
            gf_call()
    # scikit-learn's message comes first, not somewhere inside ours
    assert str(info.value).startswith(str(sk))
    return info.value


@pytest.mark.parametrize("name", list(BAD_PARAMETERS))
def test_fit_parameter_errors_start_with_sklearns(name):
    params = BAD_PARAMETERS[name]
    assert_same_error(lambda: SkGM(**params).fit(X_GOOD),
                      lambda: GaussianMixture(**params).fit(X_GOOD))


# X that scikit-learn's fit converts to float64 and gmmfast rejects (README,
# "Differences from scikit-learn"): numbers stored as text (scikit-learn's
# own predict methods reject them) and datetimes (as nanosecond counts)
STRICTER_FIT = ("numeric strings", "bytes", "datetimes")


@pytest.mark.parametrize("name", STRICTER_FIT)
def test_fit_X_gmmfast_is_stricter(name):
    X = BAD_X[name]
    assert sklearn_error(lambda: SkGM().fit(X)) is None
    with pytest.raises(TypeError, match="X must hold real numbers"):
        GaussianMixture().fit(X)


@pytest.mark.parametrize("name", [n for n in BAD_X if n not in STRICTER_FIT])
def test_fit_X_errors_start_with_sklearns(name):
    X = BAD_X[name]
    assert_same_error(lambda: SkGM().fit(X), lambda: GaussianMixture().fit(X))
    assert_same_error(lambda: SkGM().fit_predict(X),
                      lambda: GaussianMixture().fit_predict(X))


@pytest.fixture(scope="module")
def fitted_pair():
    return SkGM(2, random_state=0).fit(X_GOOD), GaussianMixture(2, random_state=0).fit(X_GOOD)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score",
                                    "bic", "aic"])
# datetimes: scikit-learn's validation lets them through to its maths, which
# fails with numpy's ufunc error; gmmfast's names the problem
@pytest.mark.parametrize("name", [n for n in BAD_X
                                  if n not in ("empty", "one sample", "datetimes")]
                         + ["wrong n_features"])
def test_predict_X_errors_start_with_sklearns(fitted_pair, method, name):
    sk, gf = fitted_pair
    X = np.zeros((3, 3)) if name == "wrong n_features" else BAD_X[name]
    assert_same_error(lambda: getattr(sk, method)(X), lambda: getattr(gf, method)(X))


@pytest.mark.parametrize("n_samples", [0, -1])
def test_sample_error_starts_with_sklearns(fitted_pair, n_samples):
    sk, gf = fitted_pair
    err = assert_same_error(lambda: sk.sample(n_samples), lambda: gf.sample(n_samples))
    assert f"n_samples={n_samples}" in str(err)


def test_unfitted_error_is_sklearns():
    assert_same_error(lambda: SkGM().predict(X_GOOD), lambda: GaussianMixture().predict(X_GOOD))


def test_the_hint_follows():
    """gmmfast's own hint is still there, after scikit-learn's sentence."""
    with pytest.raises(ValueError, match=r"\(1,\): weights_init must have shape "
                                         r"\(n_components,\)"):
        GaussianMixture(2, weights_init=[1.0]).fit(X_GOOD)
    with pytest.raises(TypeError, match="X is a sparse csr_matrix.*gmmfast needs dense"):
        GaussianMixture().fit(sp.csr_matrix(X_GOOD))
