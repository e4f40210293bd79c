"""Bad input gets a clear ValueError/TypeError that names the parameter and
what was expected; the caller's arrays are never modified or kept."""
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

import gmmfast
from gmmfast import GaussianMixture

from conftest import COVARIANCE_TYPES, make_blobs

X_GOOD = make_blobs(60, 3, 2, seed=0)[0]


def _fit(X, sample_weight=None, **params):
    params.setdefault("n_components", 2)
    params.setdefault("random_state", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(**params).fit(X, sample_weight=sample_weight)


def _with(value, row=3, col=1):
    X = X_GOOD.copy()
    X[row, col] = value
    return X


# --------------------------------------------------------------------- X

BAD_X = [
    ("nan", _with(np.nan), ValueError, "Input X contains NaN"),
    ("inf", _with(np.inf), ValueError, "Input X contains infinity"),
    ("-inf", _with(-np.inf), ValueError, "Input X contains infinity"),
    ("0-d", np.float64(3.0), ValueError, r"X must be a 2-D array .* got a scalar"),
    ("1-d", X_GOOD[:, 0], ValueError,
     r"X must be a 2-D array .* got a 1-D array of shape \(60,\)\. Reshape your data"),
    ("3-d", X_GOOD[:, :, None], ValueError,
     r"X must be a 2-D array .* got a 3-D array of shape \(60, 3, 1\)"),
    ("empty", np.empty((0, 3)), ValueError, r"0 sample\(s\) \(shape=\(0, 3\)\)"),
    ("no features", np.empty((10, 0)), ValueError, r"0 feature\(s\) \(shape=\(10, 0\)\)"),
    ("one sample", X_GOOD[:1], ValueError, r"1 sample\(s\) .* minimum of 2"),
    ("strings", np.array([["a", "b"], ["c", "d"], ["e", "f"]]), TypeError,
     "X must hold real numbers, but it holds strings"),
    ("numeric strings", X_GOOD.astype(str), TypeError, "X must hold real numbers.*astype"),
    ("bytes", X_GOOD.astype("S8"), TypeError, "X must hold real numbers, but it holds strings"),
    ("objects", np.array([[1.0, "a"], [2.0, None], [3.0, 4.0]], dtype=object), TypeError,
     "X must hold real numbers, but it holds values that are not numbers"),
    ("dict object", np.array([[1.0, {}], [2.0, 3.0], [3.0, 4.0]], dtype=object), TypeError,
     "argument must be a string or a (real )?number"),
    ("complex", X_GOOD + 1j, ValueError, r"Complex data not supported: X .* X\.real"),
    ("complex, zero imaginary", X_GOOD.astype(complex), ValueError,
     "Complex data not supported"),
    ("complex objects", X_GOOD.astype(complex).astype(object), TypeError,
     "X must hold real numbers"),
    ("datetimes", np.zeros((5, 2), dtype="datetime64[s]"), TypeError,
     "X must hold real numbers, but it holds dates"),
    ("structured", np.zeros((5, 2), dtype=[("a", "f8")]), TypeError,
     r"X must hold real numbers, but it holds values of dtype kind \['V'\]"),
    ("csr_matrix", sp.csr_matrix(X_GOOD), TypeError,
     r"X is a sparse csr_matrix of shape \(60, 3\), but gmmfast needs dense data.*"
     r"X\.toarray\(\)"),
    ("csr_array", sp.csr_array(X_GOOD), TypeError, r"gmmfast needs dense data.*toarray"),
    ("coo_matrix", sp.coo_matrix(X_GOOD), TypeError, r"gmmfast needs dense data"),
    ("ragged list", [[1.0, 2.0], [3.0]], ValueError, "X must be a 2-D array"),
]


@pytest.mark.parametrize("name,X,exc,match", BAD_X, ids=[b[0] for b in BAD_X])
def test_fit_rejects_bad_X(name, X, exc, match):
    with pytest.raises(exc, match=match):
        _fit(X)
    # the functional API validates the same way
    with pytest.raises(exc, match=match):
        gmmfast.fit(X, 2, random_state=0)


PREDICT_METHODS = ("predict", "predict_proba", "score_samples", "score", "bic", "aic")


@pytest.mark.parametrize("method", PREDICT_METHODS)
@pytest.mark.parametrize(
    "name,X,exc,match",
    [b for b in BAD_X if b[0] not in ("one sample", "empty")],
    ids=[b[0] for b in BAD_X if b[0] not in ("one sample", "empty")],
)
def test_predict_rejects_bad_X(fitted, method, name, X, exc, match):
    with pytest.raises(exc, match=match):
        getattr(fitted, method)(X)


@pytest.fixture(scope="module")
def fitted():
    return _fit(X_GOOD)


def test_fewer_samples_than_components():
    with pytest.raises(ValueError, match=r"n_samples >= n_components .* n_components = 5, "
                                         r"n_samples = 3"):
        _fit(X_GOOD[:3], n_components=5)


def test_numbers_stored_as_objects_or_other_numeric_dtypes_are_accepted():
    ref = _fit(X_GOOD)
    for X in (X_GOOD.astype(object), X_GOOD.tolist(), X_GOOD.astype(np.longdouble)):
        np.testing.assert_allclose(_fit(X).means_, ref.means_, rtol=1e-12)
    assert _fit(X_GOOD.astype(np.float16)).means_.dtype == np.float64
    assert _fit((X_GOOD * 10).astype(np.int32)).means_.dtype == np.float64
    assert _fit(X_GOOD > 0, n_components=1).means_.dtype == np.float64


def test_pandas_string_column_is_named():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": X_GOOD[:, 0], "b": ["x"] * len(X_GOOD)})
    with pytest.raises(TypeError, match="X must hold real numbers.*could not convert"):
        _fit(df)


def test_predict_wrong_number_of_features(fitted):
    for method in PREDICT_METHODS:
        with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is "
                                             "expecting 3 features"):
            getattr(fitted, method)(X_GOOD[:, :2])


@pytest.mark.parametrize("method", PREDICT_METHODS + ("sample", "save"))
def test_methods_before_fit_raise_not_fitted(method, tmp_path):
    gm = GaussianMixture(2)
    args = {"sample": (), "save": (tmp_path / "m.npz",)}.get(method, (X_GOOD,))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(gm, method)(*args)


# --------------------------------------------------------- sample_weight

n = len(X_GOOD)
BAD_WEIGHTS = [
    ("negative", -np.ones(n), ValueError, "sample_weight must be non-negative, got min "
                                          "value -1"),
    ("one negative", np.r_[np.ones(n - 1), -0.5], ValueError, "non-negative"),
    ("too short", np.ones(n - 1), ValueError,
     rf"sample_weight must have shape \(n_samples,\) = \({n},\), got shape \({n - 1},\)"),
    ("2-d", np.ones((n, 1)), ValueError, r"got shape \(60, 1\)"),
    ("nan", np.r_[np.ones(n - 1), np.nan], ValueError, "sample_weight contains NaN"),
    ("inf", np.r_[np.ones(n - 1), np.inf], ValueError, "sample_weight contains NaN or inf"),
    ("strings", np.array(["a"] * n), TypeError, "sample_weight must be an array of real "
                                               "numbers, got dtype <U1"),
    ("complex", np.ones(n) + 0j, TypeError, "real numbers, got dtype complex128"),
    ("objects", np.array([{}] * n, dtype=object), TypeError, "sample_weight must be an "
                                                             "array of real numbers"),
    ("bool scalar", True, TypeError, "got the bool True"),
    ("negative scalar", -1.0, ValueError, "non-negative"),
    ("all zero", np.zeros(n), ValueError, "sample_weight is zero everywhere"),
    ("fewer positive than components", np.r_[1.0, np.zeros(n - 1)], ValueError,
     "only 1 non-zero weights, but each of the n_components=2 components"),
    ("subnormal", np.full(n, 1e-320), ValueError, "sample_weight is too small"),
    ("sparse", sp.csr_matrix(np.ones((1, n))), TypeError, "sample_weight is a sparse"),
]


@pytest.mark.parametrize("name,sw,exc,match", BAD_WEIGHTS, ids=[b[0] for b in BAD_WEIGHTS])
def test_bad_sample_weight(name, sw, exc, match, fitted):
    with pytest.raises(exc, match=match):
        _fit(X_GOOD, sample_weight=sw)
    if name != "fewer positive than components":  # score needs one positive weight
        with pytest.raises(exc, match=match):
            fitted.score(X_GOOD, sample_weight=sw)


# ------------------------------------------------------ constructor params

BAD_PARAMS = [
    ("n_components", 0), ("n_components", 1.5), ("n_components", True),
    ("n_components", "2"), ("n_components", None),
    ("covariance_type", "ful"), ("covariance_type", None),
    ("tol", -1e-3), ("tol", np.nan), ("tol", np.inf), ("tol", "1"),
    ("reg_covar", -1e-6), ("reg_covar", np.nan), ("reg_covar", np.inf),
    ("max_iter", -1), ("max_iter", 1.5), ("max_iter", False),
    ("n_init", 0), ("n_init", 2.0), ("n_init", True),
    ("init_params", "kmean"), ("init_params", None),
    ("random_state", "0"), ("random_state", -1), ("random_state", 1.5),
    ("warm_start", "yes"), ("warm_start", 1),
    ("verbose", -1), ("verbose", "1"),
    ("verbose_interval", 0), ("verbose_interval", 1.0), ("verbose_interval", True),
    ("n_threads", 0), ("n_threads", -2), ("n_threads", 1.5), ("n_threads", True),
    ("weights_init", "a"), ("means_init", 3),
    ("weights_init", sp.csr_matrix([[0.5, 0.5]])),
]


def _param_id(p, v):
    return f"{p}={v!r}" if np.isscalar(v) or v is None else f"{p}={type(v).__name__}"


@pytest.mark.parametrize("name,value", BAD_PARAMS, ids=[_param_id(p, v) for p, v in BAD_PARAMS])
def test_constructor_parameter_out_of_range(name, value):
    params = {"n_components": 2, name: value}
    with pytest.raises(InvalidParameterError, match=rf"The '{name}' parameter of "
                                                    "GaussianMixture must be"):
        GaussianMixture(**params).fit(X_GOOD)
    if name != "warm_start":  # gmmfast.fit takes no warm_start at all
        with pytest.raises(InvalidParameterError, match=rf"The '{name}' parameter"):
            gmmfast.fit(X_GOOD, **params)


def test_constructor_never_validates_or_converts():
    gm = GaussianMixture(n_components=-3, tol="x", means_init=[[1, 2]])
    assert gm.n_components == -3 and gm.tol == "x" and gm.means_init == [[1, 2]]


# ------------------------------------------------------------- *_init

def _prec(covariance_type, n_components=2, n_features=3, scale=1.0):
    return {
        "full": np.tile(np.eye(n_features), (n_components, 1, 1)),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type] * scale


not_pd = np.tile(np.eye(3), (2, 1, 1))
not_pd[1, 2, 2] = -1.0
not_sym = np.tile(np.eye(3), (2, 1, 1))
not_sym[0, 0, 1] = 0.5
BAD_INIT = [
    ("weights not summing to 1", dict(weights_init=[0.3, 0.3]), ValueError,
     r"'weights' should be normalized, but got sum\(weights\) = 0\.60000; "
     "divide weights_init by its sum"),
    ("weights out of [0, 1]", dict(weights_init=[1.5, -0.5]), ValueError,
     r"'weights' should be in the range \[0, 1\].*weights_init has min value -0\.5 and "
     r"max value 1\.5"),
    ("weights wrong shape", dict(weights_init=[0.2, 0.3, 0.5]), ValueError,
     r"'weights' should have the shape of \(2,\), but got \(3,\): weights_init"),
    ("weights nan", dict(weights_init=[np.nan, 0.5]), ValueError,
     r"Input contains NaN\. \(the parameter weights_init; pass finite values"),
    ("weights strings", dict(weights_init=["a", "b"]), TypeError,
     "weights_init must hold real numbers"),
    ("precisions dict", dict(precisions_init={"a": 1}), TypeError,
     "precisions_init must hold real numbers.*not 'dict'"),
    ("means wrong shape", dict(means_init=np.zeros((2, 2))), ValueError,
     r"'means' should have the shape of \(2, 3\), but got \(2, 2\): means_init must "
     r"have shape \(n_components, n_features\)"),
    ("means wrong count", dict(means_init=np.zeros((3, 3))), ValueError,
     r"'means' should have the shape of \(2, 3\).*means_init"),
    ("means inf", dict(means_init=np.full((2, 3), np.inf)), ValueError,
     r"Input contains infinity .*\(the parameter means_init; pass finite values"),
    ("means complex", dict(means_init=np.zeros((2, 3)) + 1j), ValueError,
     "Complex data not supported: means_init"),
    ("full precision not PD", dict(precisions_init=not_pd), ValueError,
     r"'full precision' should be symmetric, positive-definite: precisions_init\[1\] has "
     "smallest eigenvalue -1"),
    ("full precision not symmetric", dict(precisions_init=not_sym), ValueError,
     r"precisions_init\[0\] is not symmetric"),
    ("full precision wrong shape", dict(precisions_init=np.tile(np.eye(2), (2, 1, 1))),
     ValueError, r"'full precision' should have the shape of \(2, 3, 3\).*precisions_init "
                 r"\(covariance_type='full'\)"),
    ("full precision nan", dict(precisions_init=_prec("full") * np.nan), ValueError,
     r"Input contains NaN\. \(the parameter precisions_init"),
    ("full precision overflowing covariance", dict(precisions_init=_prec("full", scale=1e-320)),
     ValueError, r"precisions_init\[0\] is too small for float64: the precisions or the "
                 r"covariances \(their inverses\) overflow"),
    ("tied precision not PD", dict(covariance_type="tied", precisions_init=-np.eye(3)),
     ValueError, "'tied precision' should be symmetric, positive-definite"),
    ("diag precision negative",
     dict(covariance_type="diag", precisions_init=-_prec("diag")), ValueError,
     "'diag precision' should be positive: precisions_init has min value -1"),
    ("diag precision inf", dict(covariance_type="diag", precisions_init=_prec("diag") * np.inf),
     ValueError, r"Input contains infinity.*precisions_init"),
    ("spherical precision zero",
     dict(covariance_type="spherical", precisions_init=np.zeros(2)), ValueError,
     "'spherical precision' should be positive"),
    ("spherical precision wrong shape",
     dict(covariance_type="spherical", precisions_init=np.ones(3)), ValueError,
     r"'spherical precision' should have the shape of \(2,\).*precisions_init"),
]


@pytest.mark.parametrize("name,params,exc,match", BAD_INIT, ids=[b[0] for b in BAD_INIT])
def test_bad_init_parameters(name, params, exc, match):
    with pytest.raises(exc, match=match):
        _fit(X_GOOD, **params)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_init_parameters_must_fit_float32(covariance_type):
    X32 = X_GOOD.astype(np.float32)
    with pytest.raises(ValueError, match="means_init has values too large for float32"):
        _fit(X32, means_init=np.full((2, 3), 1e300))
    # the whole message: the component's index for the full type, and the
    # float32 range the fix asks for (1 / max up to max)
    f32 = np.finfo(np.float32)
    where = "[0]" if covariance_type == "full" else ""
    message = (f"precisions_init{where} is too small for float32: the precisions or the "
               "covariances (their inverses) overflow. Pass precisions between "
               f"{1.0 / float(f32.max):g} and {float(f32.max):g}.")
    with pytest.raises(ValueError, match=re.escape(message)):
        _fit(X32, covariance_type=covariance_type,
             precisions_init=_prec(covariance_type, scale=1e-50))
    # the same precisions are fine for float64 data
    _fit(X_GOOD, covariance_type=covariance_type,
         precisions_init=_prec(covariance_type, scale=1e-50), max_iter=1)


def test_sample_checks_n_samples(fitted):
    with pytest.raises(ValueError, match="Invalid value for 'n_samples': .* Got n_samples=0"):
        fitted.sample(0)
    for bad in (1.5, "3", None, True):
        with pytest.raises(TypeError, match="n_samples must be an int"):
            fitted.sample(bad)
    assert fitted.sample(np.int64(4))[0].shape == (4, 3)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_data_too_large_for_float64_names_the_fix():
    """Squares of 1e200 overflow: a clear error, never NaN parameters."""
    with pytest.raises(ValueError, match="increase reg_covar, or scale the input data"):
        _fit(X_GOOD * 1e200)


def test_predict_far_from_every_component_is_minus_inf_not_nan(fitted):
    """Densities that underflow to 0 give log p = -inf and uniform
    responsibilities; never NaN."""
    X = np.full((2, 3), 1e300)
    logp = fitted.score_samples(X)
    assert np.all(logp == -np.inf)
    proba = fitted.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)


# ---------------------------------------------- the caller's arrays, untouched

def _caller_arrays(dtype, covariance_type, readonly):
    X, centers = make_blobs(300, 3, 2, seed=1, dtype=dtype)
    X = np.asfortranarray(X) if dtype == np.float32 else X  # a layout that gets copied
    arrays = dict(
        X=X,
        sample_weight=np.random.default_rng(2).uniform(0.5, 2.0, len(X)),
        weights_init=np.array([0.4, 0.6]),
        means_init=centers.astype(dtype),
        precisions_init=_prec(covariance_type, 2, 3, scale=0.5).astype(dtype),
    )
    if readonly:
        for a in arrays.values():
            a.setflags(write=False)
    return arrays


@pytest.mark.parametrize("readonly", [False, True], ids=["writable", "readonly"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_caller_arrays_are_never_modified(covariance_type, dtype, readonly, tmp_path):
    arrays = _caller_arrays(dtype, covariance_type, readonly)
    before = {k: v.copy() for k, v in arrays.items()}
    X, sw = arrays["X"], arrays["sample_weight"]
    init = {k: arrays[k] for k in ("weights_init", "means_init", "precisions_init")}

    gm = GaussianMixture(2, covariance_type=covariance_type, max_iter=5, tol=0.0,
                         n_threads=2, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X, sample_weight=sw)
        gm.fit_predict(X, sample_weight=sw)
        gmmfast.fit(X, 2, sample_weight=sw, covariance_type=covariance_type, max_iter=3,
                    **init)
        GaussianMixture(2, covariance_type=covariance_type, max_iter=0, **init).fit(X)
        warm = GaussianMixture(2, covariance_type=covariance_type, warm_start=True,
                               max_iter=2, random_state=0)
        warm.fit(X, sample_weight=sw)
        warm.fit(X, sample_weight=sw)
    gm.predict(X), gm.predict_proba(X), gm.score_samples(X)
    gm.score(X), gm.score(X, sample_weight=sw), gm.bic(X), gm.aic(X), gm.sample(5)
    gmmfast.load(gm.save(tmp_path / "m.npz")).predict(X)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
        assert v.flags.writeable is not readonly
    # the model keeps no reference to the caller's arrays
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "precisions_"):
        for v in arrays.values():
            assert not np.shares_memory(getattr(gm, attr), v), attr


def test_max_iter_zero_model_does_not_alias_init_arrays():
    means = make_blobs(50, 3, 2, seed=3)[1]
    weights = np.array([0.5, 0.5])
    gm = GaussianMixture(2, weights_init=weights, means_init=means, max_iter=0).fit(X_GOOD)
    np.testing.assert_array_equal(gm.means_, means)
    means[0, 0] += 100.0
    weights[:] = [0.9, 0.1]
    assert gm.means_[0, 0] != means[0, 0] and gm.weights_[0] == 0.5


def test_readonly_memmap_input(tmp_path):
    X = make_blobs(400, 3, 2, seed=4)[0]
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    a = _fit(Xm)
    b = _fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.predict(Xm), b.predict(X))


def test_float32_weights_init_sum_is_checked_at_float32_precision():
    """float32 weights are normalised to float32 rounding (1e-6), float64 ones
    to 1e-8: a sum off by 5e-7 passes in float32 and fails in float64."""
    from gmmfast._validation import check_weights
    w32 = np.array([0.5, 0.5 + 5e-7], dtype=np.float32)
    check_weights(w32, 2)
    w64 = np.array([0.5, 0.5 + 5e-7])
    with pytest.raises(ValueError, match="should be normalized"):
        check_weights(w64, 2)
    X = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    gm = GaussianMixture(3, weights_init=np.full(3, 1 / 3, dtype=np.float32),
                         max_iter=0, random_state=0).fit(X)
    np.testing.assert_allclose(gm.weights_, 1 / 3, rtol=1e-6)


def test_full_precisions_init_gives_its_inverse():
    """A non-diagonal precisions_init: the start's covariances_ are its
    inverse (the triangular solve in the conversion must take the upper
    factor, which a diagonal precision would not show)."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(2, 3, 3))
    prec = A @ np.swapaxes(A, 1, 2) + 3 * np.eye(3)
    X = rng.normal(size=(50, 3))
    gm = GaussianMixture(2, precisions_init=prec, max_iter=0, random_state=0).fit(X)
    np.testing.assert_allclose(gm.covariances_, np.linalg.inv(prec), rtol=1e-10)
