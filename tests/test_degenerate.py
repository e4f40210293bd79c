"""Degenerate but legal data: finite parameters, or a clear error that names
reg_covar; never NaN. And what becomes of a component with no points."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import gmmfast
from gmmfast import GaussianMixture, _covariance, _data, _em, _stats

from conftest import COVARIANCE_TYPES, make_blobs

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")
DTYPES = (np.float64, np.float32)
INIT_PARAMS = ("kmeans", "random", "k-means++", "random_from_data")


def _base(n_samples=240, seed=0):
    X = make_blobs(n_samples, 3, 2, seed=seed)[0]
    X[: n_samples // 2] += 4.0
    return X


def _degenerate_cases():
    rng = np.random.default_rng(0)
    X = _base()
    return {
        "all points equal": np.tile(rng.normal(size=(1, 3)), (len(X), 1)),
        "each point 8 times": np.repeat(X[:30], 8, axis=0),
        "2 distinct points, 3 components": np.repeat(X[:2], len(X) // 2, axis=0),
        "constant feature": np.c_[X[:, :2], np.full(len(X), 7.0)],
        "offset 1e8": X + 1e8,
        "scaled 1e-8": X * 1e-8,
        "scaled 1e-8, offset 1": X * 1e-8 + 1.0,
        "scaled 1e8": X * 1e8,
    }


CASES = _degenerate_cases()


def _assert_finite_model(gm, X):
    for name in ATTRS:
        assert np.all(np.isfinite(getattr(gm, name))), name
        assert getattr(gm, name).dtype == X.dtype, name
    assert np.isfinite(gm.lower_bound_) and np.all(np.isfinite(gm.lower_bounds_))
    logp = gm.score_samples(X)
    assert np.all(np.isfinite(logp))
    proba = gm.predict_proba(X)
    assert np.all(np.isfinite(proba))
    tol = 1e-4 if X.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=tol)
    assert np.isfinite(gm.score(X)) and np.isfinite(gm.bic(X))


def _fit(X, **params):
    with warnings.catch_warnings():
        # k-means warns about fewer distinct points than clusters; EM may not converge
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(**params).fit(X)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_degenerate_data_gives_finite_parameters(case, covariance_type, dtype):
    """With the default reg_covar every case fits to finite parameters."""
    X = CASES[case].astype(dtype)
    for init_params in INIT_PARAMS:
        try:
            gm = _fit(X, n_components=3, covariance_type=covariance_type, random_state=0,
                      init_params=init_params, n_threads=1)
        except ValueError as exc:
            # the one exception: scikit-learn's tied start for these two
            # initialisers is taken about the origin (see test below)
            assert covariance_type == "tied" and "offset" in case
            assert init_params in ("k-means++", "random_from_data")
            assert "increase reg_covar" in str(exc) and "Centre the data" in str(exc)
            continue
        _assert_finite_model(gm, X)
        # reg_covar is on the diagonal of every covariance (scaled 1e-8: it dominates)
        cov = np.asarray(gm.covariances_, dtype=np.float64)
        diag = cov if covariance_type in ("diag", "spherical") else np.diagonal(
            cov, axis1=-2, axis2=-1)
        assert np.all(diag >= 1e-6 * (1 - 1e-3))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_degenerate_data_without_reg_covar_is_finite_or_names_reg_covar(
        case, covariance_type, dtype):
    """reg_covar=0 on collapsed data: finite parameters where a covariance
    exists, scikit-learn's error naming reg_covar where none does; never NaN.
    Which is which is stated, case by case (``_without_reg_covar_outcome``)."""
    X = CASES[case].astype(dtype)
    expected = _without_reg_covar_outcome(case, covariance_type, dtype)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            gm = GaussianMixture(n_components=3, covariance_type=covariance_type,
                                 random_state=0, reg_covar=0.0, n_threads=1).fit(X)
    except ValueError as exc:
        assert expected in ("raise", "either"), (case, str(exc))
        assert "increase reg_covar" in str(exc)
        if dtype == np.float32:
            assert "float64" in str(exc)
        return
    diverged = [str(w.message) for w in caught if "EM diverged" in str(w.message)]
    if expected == "raise":
        # a singular start raises; a covariance that becomes singular during
        # EM stops the fit with the last finite parameters, saying why
        assert diverged, case
    if diverged:
        assert "increase reg_covar" in diverged[0]
        assert not gm.converged_
    assert expected in ("fit", "either") or diverged, case
    _assert_finite_model(gm, X)


def _without_reg_covar_outcome(case, covariance_type, dtype):
    """'raise' where some component's covariance is singular with reg_covar=0:
    no spread at all (all points equal; 2 distinct points for 3 components),
    a constant feature (every type but spherical, which averages over the
    features), or float32 data offset by 1e8 (ulp 8: unit noise rounds away).
    'either' where float32 keeps only a few distinct values (scaled 1e-8 at
    offset 1: ulp 1.2e-7) and the start decides whether a component keeps
    any spread. 'fit' otherwise."""
    if case in ("all points equal", "2 distinct points, 3 components"):
        return "raise"
    if case == "constant feature" and covariance_type != "spherical":
        return "raise"
    if dtype == np.float32 and case == "offset 1e8":
        return "raise"
    if dtype == np.float32 and case == "scaled 1e-8, offset 1":
        return "either"
    return "fit"


@pytest.mark.parametrize("init_params", ("k-means++", "random_from_data"))
def test_tied_origin_start_far_from_the_origin_names_the_fix(init_params):
    """scikit-learn's tied start for these initialisers is about the origin:
    at an offset of 1e8 it has no correct digit left. Either the start still
    works, or the error says to centre the data; centred data always fits."""
    X = CASES["offset 1e8"]
    failures = 0
    for seed in range(3):
        try:
            gm = _fit(X, n_components=3, covariance_type="tied", random_state=seed,
                      init_params=init_params)
            _assert_finite_model(gm, X)
        except ValueError as exc:
            assert "Centre the data (X - X.mean(axis=0))" in str(exc)
            failures += 1
        centred = X - X.mean(axis=0)
        _assert_finite_model(_fit(centred, n_components=3, covariance_type="tied",
                                  random_state=seed, init_params=init_params), centred)
    assert failures > 0  # the case is reached


def test_all_points_equal_without_reg_covar_raises():
    """The failing side of the previous test is reached (it is not vacuous)."""
    X = CASES["all points equal"]
    with pytest.raises(ValueError, match="ill-defined empirical covariance.*increase "
                                         "reg_covar"):
        _fit(X, n_components=1, reg_covar=0.0)


# ------------------------------------------------------- empty components

def _far_start(covariance_type, n_features=2):
    """Component 1 starts 500 away from every point: it gets no responsibility."""
    prec = {
        "full": np.tile(np.eye(n_features), (2, 1, 1)),
        "tied": np.eye(n_features),
        "diag": np.ones((2, n_features)),
        "spherical": np.ones(2),
    }[covariance_type]
    return dict(weights_init=[0.5, 0.5],
                means_init=[[5.0] * n_features, [500.0] * n_features],
                precisions_init=prec)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_empty_component(covariance_type, dtype):
    """A component that loses all its points (README, "Reliability"):
    n_k = 10*eps, so its weight is 10*eps / (n_samples + K*10*eps); its mean
    stays where it was (full, diag, spherical: 0 / n_k moves it nowhere) and
    its covariance becomes reg_covar * I (tied: it shares the covariance, and
    its mean is anchored at its previous mean too). Everything stays finite
    and the empty component claims no point, not even at the origin."""
    X = (np.random.default_rng(0).normal(size=(300, 2)) + 5.0).astype(dtype)
    reg_covar = 1e-6
    gm = _fit(X, n_components=2, covariance_type=covariance_type, max_iter=5, tol=0.0,
              reg_covar=reg_covar, **_far_start(covariance_type))
    _assert_finite_model(gm, X)
    eps = np.finfo(dtype).eps
    assert gm.weights_[0] == pytest.approx(1.0, abs=1e-6)
    if covariance_type == "tied":
        # the far component keeps a sliver of responsibility under the
        # shared covariance; its weight stays negligible
        assert gm.weights_[1] < 1e3 * eps
        assert np.all(np.linalg.eigvalsh(gm.covariances_.astype(np.float64)) > 0.5)
    else:
        expected_weight = 10 * eps / (len(X) + 10 * eps)
        assert gm.weights_[1] == pytest.approx(expected_weight, rel=1e-3)
        np.testing.assert_array_equal(gm.means_[1], 500.0)
        cov1 = np.asarray(gm.covariances_[1], dtype=np.float64)
        expected_cov = {"full": reg_covar * np.eye(2), "diag": np.full(2, reg_covar),
                        "spherical": reg_covar}[covariance_type]
        np.testing.assert_allclose(cov1, expected_cov, rtol=1e-5)
    # its responsibility for the data, and for the origin, is nil
    assert gm.predict_proba(X)[:, 1].max() < 1e-6
    assert np.all(gm.predict(X) == 0)
    assert gm.predict_proba(np.zeros((1, 2), dtype=dtype))[0, 1] < 1e-6


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_collapsed_components_far_from_the_origin_float32(covariance_type):
    """Pairs of equal points at 1e4 in float32: each component collapses onto
    its pair (width sqrt(reg_covar) = 1e-3). scikit-learn's mean, sum r x /
    (n_k + 10 eps), sits 1e4 * 1.2e-6 / 2 = 6e-3 (6 widths) off the point;
    gmmfast's guard shrinks the step, not the position: the means are the
    points, the fit is 3 nats per sample better, and EM is monotone."""
    points = np.array([[1e4, -3e4], [2e4, 5e3]])
    X = np.repeat(points, 2, axis=0).astype(np.float32)
    gm = _fit(X, n_components=2, covariance_type=covariance_type, random_state=0,
              max_iter=20, tol=0.0)
    order = np.argsort(gm.means_[:, 0])
    np.testing.assert_array_equal(gm.means_[order], points.astype(np.float32))
    lb = np.asarray(gm.lower_bounds_)
    if covariance_type != "tied":  # tied: its k-means start rounds at 1e9 scale
        assert np.all(np.diff(lb) >= 0)
    # log N(x | x, 1e-6 I) + log(1/2) = -log(2 pi 1e-6) - log 2
    assert lb[-1] == pytest.approx(-np.log(2 * np.pi * 1e-6) - np.log(2), abs=1e-3)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", ("full", "diag", "spherical"))
def test_more_components_than_distinct_points(covariance_type, dtype):
    """k-means finds 2 clusters for 3 components: the third is empty."""
    X = CASES["2 distinct points, 3 components"].astype(dtype)
    gm = _fit(X, n_components=3, covariance_type=covariance_type, random_state=0)
    _assert_finite_model(gm, X)
    weights = np.sort(gm.weights_)
    assert weights[0] < 1e-6 and weights[1] == pytest.approx(0.5, abs=1e-6)


# --------------------------------------------------- weights of any scale

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_weight_scale_does_not_matter(covariance_type, dtype):
    """Only the weights' ratios matter: 1e-300 to 1e300 times the same
    weights give the same model (scikit-learn's 10*eps guard on n_k would
    swamp tiny weights, and float32 would overflow on huge ones, without the
    rescaling in check_sample_weight)."""
    X = _base(200).astype(dtype)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    ref = _fit(X, n_components=2, covariance_type=covariance_type, random_state=0,
               max_iter=20, tol=0.0, n_threads=1)
    ref_w = _fit(X, n_components=2, covariance_type=covariance_type, random_state=0,
                 max_iter=20, tol=0.0, n_threads=1)
    ref_w.fit(X, sample_weight=w)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    # 1e306: the weights sum to about 2.5e308, past float64's maximum, so
    # the rescaling must divide by the largest weight before summing
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum(w * 1e306))
    for scale in (1e-300, 1e-30, 1e-10, 1e30, 1e300, 1e306):
        gm = _fit(X, n_components=2, covariance_type=covariance_type, random_state=0,
                  max_iter=20, tol=0.0, n_threads=1)
        gm.fit(X, sample_weight=w * scale)
        _assert_finite_model(gm, X)
        for name in ATTRS:
            a, b = getattr(gm, name), getattr(ref_w, name)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(),
                                       err_msg=f"{name}, scale {scale:g}")
    assert not np.allclose(ref.means_, ref_w.means_, rtol=1e-6)  # the weights matter


# ------------------------------------------------------ never NaN silently

class _Source:
    """A data source (ArrayData's interface) whose E-step returns a given
    log-likelihood: what run_em does with it."""

    def __init__(self, X, ll):
        self.inner = _data.ArrayData(X, None, _stats.kernel_config(X.shape[1], "full", 1))
        self.ll = ll
        self.dtype, self.n_features = X.dtype, X.shape[1]
        self.total_weight, self.center = self.inner.total_weight, self.inner.center

    def e_step(self, kp):
        stats, _ = self.inner.e_step(kp)
        return stats, self.ll


@pytest.mark.parametrize("ll,why", [(np.nan, "not a number"),
                                    (-np.inf, "zero density under every component"),
                                    (np.inf, "the density overflows")])
def test_em_never_returns_a_non_finite_lower_bound(ll, why):
    X, centers = make_blobs(100, 2, 2, seed=0)
    params = _stats.GMMParams(np.array([0.5, 0.5]), centers, np.tile(np.eye(2), (2, 1, 1)),
                           np.tile(np.eye(2), (2, 1, 1)))
    with pytest.raises(ValueError, match=f"EM failed at iteration 1: the lower bound .* is "
                                         f"{ll}, because .*{why}.*Increase reg_covar"):
        _em.run_em(_Source(X, ll), params, "full", tol=1e-3, max_iter=5, reg_covar=1e-6)


def test_precision_overflowing_float32_is_reported_not_carried():
    params = _stats.GMMParams(np.array([0.5, 0.5]), np.zeros((2, 2)),
                           np.full((2, 2), 1e-80), np.full((2, 2), 1e40))
    with pytest.raises(ValueError, match="increase reg_covar.*passing float64 data"):
        _stats.check_finite_params(params.astype(np.float32), np.float32)
    _stats.check_finite_params(params, np.float64)  # fine in float64


@pytest.mark.parametrize("covariance_type", ("diag", "spherical"))
def test_infinite_covariance_is_ill_defined(covariance_type):
    cov = np.ones((2, 3)) if covariance_type == "diag" else np.ones(2)
    cov[1] = np.inf
    with pytest.raises(ValueError, match="increase reg_covar"):
        _covariance.get(covariance_type).precision_cholesky(cov)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_data_too_small_for_its_precisions(covariance_type):
    """Variances of 1e-80 need precisions of 1e40, beyond float32: the
    ill-defined error with its float64 hint, never inf/NaN parameters."""
    X = (_base(200) * 1e-40).astype(np.float32)
    with pytest.raises(ValueError, match="increase reg_covar.*passing float64 data"):
        _fit(X, n_components=2, covariance_type=covariance_type, reg_covar=0.0,
             random_state=0)


def test_functional_api_on_degenerate_data():
    res = gmmfast.fit(CASES["constant feature"], 3, random_state=0)
    assert all(np.all(np.isfinite(a)) for a in
               (res.weights, res.means, res.covariances, res.precisions_cholesky))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_guard_shrinks_the_step_not_the_position(covariance_type):
    """The covariance objects' params_from_stats against the direct formula, for any shift and
    anchor: mu = a + sum r (x - a) / (R + 10 eps); the covariance is the
    weighted scatter about mu over n_k, plus reg_covar."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) + 1e3
    resp = rng.dirichlet(np.ones(2), size=50)
    R = resp.sum(axis=0)
    shift = np.tile(X.mean(axis=0), (2, 1)) + rng.normal(size=(2, 3))
    if covariance_type == "tied":
        shift = np.tile(shift[0], (2, 1))
    S1 = resp.T @ X - R[:, None] * shift
    diffs = X[None] - shift[:, None]  # (K, N, D)
    S2 = np.einsum("nk,kni,knj->kij", resp, diffs, diffs)
    S2 = {"full": S2, "diag": np.diagonal(S2, axis1=1, axis2=2).copy(),
          "spherical": np.trace(S2, axis1=1, axis2=2),
          "tied": (X - shift[0]).T @ (X - shift[0])}[covariance_type]
    eps = 1e-3  # a large guard, to see it
    for anchor in (None, X[:2] + 0.5):
        nk, means, cov = _covariance.get(covariance_type).params_from_stats(
            R, S1, S2, shift, 1e-6, eps, anchor=anchor)
        a = shift if anchor is None else anchor
        expected = a + (resp.T @ X - R[:, None] * a) / (R + 10 * eps)[:, None]
        np.testing.assert_allclose(means, expected, rtol=1e-12)
        scatter = np.einsum("nk,kni,knj->kij", resp, X[None] - means[:, None],
                            X[None] - means[:, None])
        if covariance_type == "tied":
            ref = scatter.sum(axis=0) / nk.sum() + 1e-6 * np.eye(3)
        else:
            ref = scatter / nk[:, None, None] + 1e-6 * np.eye(3)
            ref = {"full": ref, "diag": np.diagonal(ref, axis1=1, axis2=2),
                   "spherical": np.trace(ref, axis1=1, axis2=2) / 3}[covariance_type]
        np.testing.assert_allclose(cov, ref, rtol=1e-9)
