"""Missing values (nan_policy='marginalize') against a slow, obviously correct
numpy implementation of EM with data missing at random: a loop over rows and
components, raw moments in float64, every covariance type expanded to its
full matrix."""
import re

import numpy as np
import pytest
from scipy.special import logsumexp

from gmmfast import GaussianMixture, GaussianMixtureImputer
from gmmfast import _covariance

TYPES = ("full", "tied", "diag", "spherical")


def _holes(rng, X, fraction):
    """X with a ``fraction`` of its entries NaN, no row entirely NaN."""
    Xn = X.copy()
    mask = rng.uniform(size=X.shape) < fraction
    mask[mask.all(axis=1), 0] = False
    Xn[mask] = np.nan
    return Xn


def _data(seed=0, n=240, d=4, fraction=0.25):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(3, d))
    A = rng.normal(size=(3, d, d)) * 0.5 + np.eye(d)
    labels = rng.integers(0, 3, size=n)
    X = centers[labels] + np.einsum("nij,nj->ni", A[labels], rng.normal(size=(n, d)))
    return X, _holes(rng, X, fraction)


def _full_covs(cov_type, covariances, K, D):
    return _covariance.get(cov_type).per_component(np.asarray(covariances), K, D)


def reference_em(X, w, weights, means, covariances, cov_type, n_iter, reg_covar):
    """n_iter EM iterations; returns (lower_bounds, weights, means, covariances)."""
    n, D = X.shape
    K = means.shape[0]
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    lower_bounds = []
    for _ in range(n_iter):
        S = _full_covs(cov_type, covariances, K, D)
        N = np.zeros(K)
        M1 = np.zeros((K, D))
        M2 = np.zeros((K, D, D))
        ll = 0.0
        for i in range(n):
            x = X[i]
            o = ~np.isnan(x)
            m = ~o
            lp = np.empty(K)
            xh = np.empty((K, D))
            C = np.zeros((K, D, D))
            for k in range(K):
                Soo = S[k][np.ix_(o, o)]
                diff = x[o] - means[k][o]
                _, logdet = np.linalg.slogdet(Soo)
                maha = diff @ np.linalg.solve(Soo, diff)
                lp[k] = (np.log(weights[k]) - 0.5 * (o.sum() * np.log(2 * np.pi)
                                                     + logdet + maha))
                xh[k] = x
                if m.any():
                    Smo = S[k][np.ix_(m, o)]
                    xh[k][m] = means[k][m] + Smo @ np.linalg.solve(Soo, diff)
                    C[k][np.ix_(m, m)] = S[k][np.ix_(m, m)] - Smo @ np.linalg.solve(Soo, Smo.T)
            lse = logsumexp(lp)
            r = np.exp(lp - lse)
            ll += w[i] * lse
            for k in range(K):
                N[k] += w[i] * r[k]
                M1[k] += w[i] * r[k] * xh[k]
                M2[k] += w[i] * r[k] * (np.outer(xh[k], xh[k]) + C[k])
        lower_bounds.append(ll / w.sum())
        nk = N + 10 * eps
        means = M1 / nk[:, None]
        full = M2 / nk[:, None, None] - np.einsum("ki,kj->kij", means, means)
        if cov_type == "full":
            covariances = full + reg_covar * np.eye(D)
        elif cov_type == "tied":
            covariances = (np.einsum("k,kij->ij", nk, full) / nk.sum()
                           + reg_covar * np.eye(D))
        elif cov_type == "diag":
            covariances = np.diagonal(full, axis1=1, axis2=2) + reg_covar
        else:
            covariances = np.diagonal(full, axis1=1, axis2=2).mean(axis=1) + reg_covar
        weights = nk / nk.sum()
    return lower_bounds, weights, means, covariances


def _start(cov_type, X, K, D, seed=1):
    rng = np.random.default_rng(seed)
    rows = X[~np.isnan(X).any(axis=1)]
    means = rows[rng.choice(rows.shape[0], K, replace=False)]
    weights = np.full(K, 1.0 / K)
    covariances = {
        "full": np.tile(np.eye(D) * 2.0, (K, 1, 1)),
        "tied": np.eye(D) * 2.0,
        "diag": np.full((K, D), 2.0),
        "spherical": np.full(K, 2.0),
    }[cov_type]
    return weights, means, covariances


def _precisions(cov_type, covariances):
    c = np.asarray(covariances)
    return np.linalg.inv(c) if cov_type in ("full", "tied") else 1.0 / c


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_matches_reference_em(cov_type, weighted, n_threads):
    X, Xn = _data(seed=3)
    n, D = X.shape
    K = 3
    w = np.random.default_rng(5).uniform(0.2, 3.0, size=n) if weighted else None
    weights, means, covariances = _start(cov_type, Xn, K, D)
    n_iter = 6
    ref_lb, ref_w, ref_m, ref_c = reference_em(Xn, w, weights, means, covariances,
                                               cov_type, n_iter, 1e-6)
    gm = GaussianMixture(K, covariance_type=cov_type, nan_policy="marginalize",
                         weights_init=weights, means_init=means,
                         precisions_init=_precisions(cov_type, covariances),
                         tol=0.0, max_iter=n_iter, n_threads=n_threads)
    with pytest.warns(Warning):  # did not converge (tol=0)
        gm.fit(Xn, sample_weight=w)
    np.testing.assert_allclose(gm.lower_bounds_, ref_lb, rtol=1e-10, atol=0)
    np.testing.assert_allclose(gm.weights_, ref_w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gm.means_, ref_m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gm.covariances_, ref_c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cov_type", TYPES)
def test_reference_catches_a_missing_conditional_covariance(cov_type, monkeypatch):
    """The known-wrong M-step that fills in conditional means but drops C_k
    (what fitting imputed rows does) is far outside the 1e-10 above."""
    from gmmfast import _missing
    X, Xn = _data(seed=3)
    K, D = 3, X.shape[1]
    weights, means, covariances = _start(cov_type, Xn, K, D)
    _, _, _, ref_c = reference_em(Xn, None, weights, means, covariances, cov_type, 2, 1e-6)
    monkeypatch.setattr(_missing.Marginals, "conditional_cov", lambda self, f: 0.0 * (
        f["cond"] if self.cov.matrix else f["cond_var"]))
    gm = GaussianMixture(K, covariance_type=cov_type, nan_policy="marginalize",
                         weights_init=weights, means_init=means,
                         precisions_init=_precisions(cov_type, covariances),
                         tol=0.0, max_iter=2)
    with pytest.warns(Warning):
        gm.fit(Xn)
    assert np.abs(gm.covariances_ - ref_c).max() > 1e-3 * np.abs(ref_c).max()


@pytest.mark.parametrize("cov_type", TYPES)
def test_no_nan_is_exactly_raise(cov_type):
    X, _ = _data(seed=4, fraction=0.0)
    a = GaussianMixture(3, covariance_type=cov_type, random_state=0).fit(X)
    b = GaussianMixture(3, covariance_type=cov_type, random_state=0,
                        nan_policy="marginalize").fit(X)
    for attr in ("weights_", "means_", "covariances_", "lower_bounds_", "n_iter_"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("seed", range(6))
def test_lower_bound_never_decreases(cov_type, seed):
    rng = np.random.default_rng(seed)
    fraction = rng.uniform(0.0, 0.5)
    X, Xn = _data(seed=seed + 10, n=300, d=int(rng.integers(2, 6)), fraction=fraction)
    gm = GaussianMixture(3, covariance_type=cov_type, nan_policy="marginalize",
                         tol=0.0, max_iter=40, random_state=seed)
    with pytest.warns(Warning):
        gm.fit(Xn)
    lb = np.asarray(gm.lower_bounds_)
    # each lower bound is a mean of per-row log-likelihoods, each good to a
    # few hundred ulps of its largest term; EM cannot decrease it in exact
    # arithmetic, so a drop beyond that is a bug
    allowance = 1e3 * np.finfo(np.float64).eps * (1.0 + np.abs(lb[1:]))
    assert np.all(np.diff(lb) >= -allowance), np.diff(lb).min()


def test_float32_close_to_float64():
    X, Xn = _data(seed=6)
    a = GaussianMixture(3, nan_policy="marginalize", random_state=0).fit(Xn)
    b = GaussianMixture(3, nan_policy="marginalize", random_state=0).fit(
        Xn.astype(np.float32))
    assert b.means_.dtype == np.float32
    # float32 rounding of the data (6e-8 relative) grown by the fit's
    # sensitivity; the same fixed point to ~1e-4
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-3, atol=1e-3)
    assert b.n_iter_ == a.n_iter_


def test_predictions_use_observed_marginal():
    X, Xn = _data(seed=7)
    gm = GaussianMixture(3, covariance_type="full", nan_policy="marginalize",
                         random_state=0).fit(Xn)
    logp = gm.score_samples(Xn)
    resp = gm.predict_proba(Xn)
    labels = gm.predict(Xn)
    K, D = gm.means_.shape
    for i in range(0, Xn.shape[0], 17):
        o = ~np.isnan(Xn[i])
        lp = np.array([
            np.log(gm.weights_[k]) - 0.5 * (
                o.sum() * np.log(2 * np.pi)
                + np.linalg.slogdet(gm.covariances_[k][np.ix_(o, o)])[1]
                + (Xn[i, o] - gm.means_[k, o]) @ np.linalg.solve(
                    gm.covariances_[k][np.ix_(o, o)], Xn[i, o] - gm.means_[k, o]))
            for k in range(K)])
        assert abs(logp[i] - logsumexp(lp)) < 1e-10 * (1 + abs(logp[i]))
        np.testing.assert_allclose(resp[i], np.exp(lp - logsumexp(lp)), atol=1e-12)
        assert labels[i] == np.argmax(lp)
    assert gm.score(Xn) == pytest.approx(logp.mean(), rel=1e-12)
    gm.bic(Xn), gm.aic(Xn)


def test_empty_row_predicts_the_weights():
    X, Xn = _data(seed=8)
    gm = GaussianMixture(3, nan_policy="marginalize", random_state=0).fit(Xn)
    Z = Xn[:3].copy()
    Z[1] = np.nan
    np.testing.assert_allclose(gm.predict_proba(Z)[1], gm.weights_, rtol=1e-12)
    assert gm.score_samples(Z)[1] == pytest.approx(0.0, abs=1e-12)


def test_impute_is_the_conditional_expectation():
    X, Xn = _data(seed=9)
    gm = GaussianMixture(3, nan_policy="marginalize", random_state=0).fit(Xn)
    out = gm.impute(Xn)
    assert not np.isnan(out).any()
    obs = ~np.isnan(Xn)
    np.testing.assert_array_equal(out[obs], Xn[obs])
    resp = gm.predict_proba(Xn)
    for i in np.flatnonzero(~obs.all(axis=1))[:10]:
        o, m = obs[i], ~obs[i]
        expect = np.zeros(m.sum())
        for k in range(3):
            S = gm.covariances_[k]
            expect += resp[i, k] * (gm.means_[k, m] + S[np.ix_(m, o)] @ np.linalg.solve(
                S[np.ix_(o, o)], Xn[i, o] - gm.means_[k, o]))
        np.testing.assert_allclose(out[i, m], expect, rtol=1e-10, atol=1e-10)
    # the input is not modified
    assert np.isnan(Xn).sum() == (~obs).sum()


def test_imputer_in_a_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import LinearRegression
    X, Xn = _data(seed=11)
    y = X[:, 0] * 2.0
    imp = GaussianMixtureImputer(n_components=3, random_state=0)
    out = imp.fit_transform(Xn)
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out, imp.transform(Xn))
    make_pipeline(GaussianMixtureImputer(n_components=2, random_state=0),
                  LinearRegression()).fit(Xn, y)
    # closer to the truth than column means, on correlated data
    mean_fill = np.where(np.isnan(Xn), np.nanmean(Xn, axis=0), Xn)
    assert np.abs(out - X).sum() < np.abs(mean_fill - X).sum()


@pytest.mark.parametrize("cov_type", TYPES)
def test_partial_fit_with_holes(cov_type):
    X, Xn = _data(seed=12, n=600)
    gm = GaussianMixture(3, covariance_type=cov_type, nan_policy="marginalize",
                         random_state=0)
    for a in range(0, 600, 200):
        gm.partial_fit(Xn[a:a + 200])
    assert np.all(np.isfinite(gm.means_)) and gm.n_iter_ == 3


def test_memmap_equals_in_memory(tmp_path):
    X, Xn = _data(seed=13)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64,
                                   shape=Xn.shape)
    mm[:] = Xn
    mm.flush()
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = GaussianMixture(3, nan_policy="marginalize", random_state=0).fit(Xn)
    b = GaussianMixture(3, nan_policy="marginalize", random_state=0).fit(mm)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_bad_input():
    X, Xn = _data(seed=14)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        GaussianMixture(2).fit(Xn)
    Z = Xn.copy()
    Z[[5, 9]] = np.nan
    with pytest.raises(ValueError, match=re.escape("X has 2 rows whose entries are all "
                                                   "NaN (the first is row 5)")):
        GaussianMixture(2, nan_policy="marginalize").fit(Z)
    Z = X.copy()
    Z[:, 2] = np.nan
    with pytest.raises(ValueError, match="no observed value of feature 2"):
        GaussianMixture(2, nan_policy="marginalize").fit(Z)
    Z = Xn.copy()
    Z[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(2, nan_policy="marginalize").fit(Z)
    with pytest.raises(ValueError, match="nan_policy"):
        GaussianMixture(2, nan_policy="drop").fit(X)


@pytest.mark.parametrize("cov_type", TYPES)
def test_dask_equals_in_memory(cov_type):
    da = pytest.importorskip("dask.array")
    import dask
    X, Xn = _data(seed=15, n=400)
    weights, means, covariances = _start(cov_type, Xn, 3, X.shape[1])
    kw = dict(covariance_type=cov_type, nan_policy="marginalize", weights_init=weights,
              means_init=means, precisions_init=_precisions(cov_type, covariances),
              max_iter=20)
    a = GaussianMixture(3, **kw).fit(Xn)
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(Xn, chunks=(150, -1))
        b = GaussianMixture(3, **kw).fit(Xd)
        np.testing.assert_allclose(b.means_, a.means_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-10, atol=1e-12)
        assert b.n_iter_ == a.n_iter_
        np.testing.assert_allclose(b.predict_proba(Xd).compute(), a.predict_proba(Xn),
                                   rtol=1e-9, atol=1e-12)
        # the default start (k-means on the sample's complete rows) runs too
        GaussianMixture(3, covariance_type=cov_type, nan_policy="marginalize",
                        random_state=0, max_iter=5).fit(Xd)
        Z = Xn.copy()
        Z[7] = np.nan
        with pytest.raises(ValueError, match="the first is row 7"):
            GaussianMixture(3, nan_policy="marginalize").fit(da.from_array(Z, chunks=100))


# ---------------------------------------------------------------------------
# BayesianGaussianMixture(nan_policy='marginalize')
# ---------------------------------------------------------------------------

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


def _bgm(**kw):
    from gmmfast import BayesianGaussianMixture
    return BayesianGaussianMixture(n_components=4, random_state=0, **kw)


@pytest.mark.parametrize("cov_type", TYPES)
def test_bayesian_no_nan_is_exactly_raise(cov_type):
    X, _ = _data(seed=20, fraction=0.0)
    a = _bgm(covariance_type=cov_type).fit(X)
    b = _bgm(covariance_type=cov_type, nan_policy="marginalize").fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.lower_bounds_ == b.lower_bounds_


def _bayesian_bounds(Xn, cov_type, prior_type):
    gm = _bgm(covariance_type=cov_type, weight_concentration_prior_type=prior_type,
              nan_policy="marginalize", tol=0.0, max_iter=40)
    with pytest.warns(Warning):
        gm.fit(Xn)
    return gm, np.asarray(gm.lower_bounds_)


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
def test_bayesian_lower_bound_never_decreases(cov_type, prior_type):
    """The missing coordinates are latent variables of the variational model
    with q(x_m | z = k) the conditional Gaussian of the E-step; the lower
    bound then gains sum w r H[q(x_m | k)] and takes sum w r log r over the
    rows with holes directly. Coordinate ascent: it never decreases."""
    X, Xn = _data(seed=21, n=400, fraction=0.3)
    _, lb = _bayesian_bounds(Xn, cov_type, prior_type)
    allowance = 1e3 * np.finfo(np.float64).eps * (1.0 + np.abs(lb[1:]))
    assert np.all(np.diff(lb) >= -allowance), np.diff(lb).min()


@pytest.mark.parametrize("drop", ["hole_entropy", "hole_rlogr"])
def test_bayesian_bound_without_a_term_decreases(drop, monkeypatch):
    """Known-wrong lower bounds (either missing-value term left out) are not
    monotone: the test above can fail."""
    from gmmfast import _missing
    terms = _missing.MissingTerms

    def wrong(*args):
        t = terms(*args)
        setattr(t, drop, 0.0)
        return t

    monkeypatch.setattr(_missing, "MissingTerms", wrong)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    X[:300] += 4.0
    Xn = _holes(rng, X, 0.3)
    for cov_type in ("full", "diag"):
        _, lb = _bayesian_bounds(Xn, cov_type, "dirichlet_process")
        assert np.diff(lb).min() < -1.0


def test_bayesian_predictions_on_holes():
    """log rho_ik = c_k + log N(x_o | m_k,o, Sigma_k,oo): each component's
    constant c_k of the complete-data E-step, with the observed marginal of
    covariances_ (the expected precision's inverse)."""
    X, Xn = _data(seed=22, fraction=0.3)
    gm = _bgm(covariance_type="full", nan_policy="marginalize").fit(Xn)
    full = X[:1]
    wlp = gm._estimate_weighted_log_prob(full)[0]
    K = gm.means_.shape[0]

    def log_gauss(x, o, k):
        S = gm.covariances_[k][np.ix_(o, o)]
        d = x[o] - gm.means_[k, o]
        return -0.5 * (o.sum() * np.log(2 * np.pi) + np.linalg.slogdet(S)[1]
                       + d @ np.linalg.solve(S, d))

    c = np.array([wlp[k] - log_gauss(full[0], np.ones(X.shape[1], bool), k)
                  for k in range(K)])
    resp = gm.predict_proba(Xn)
    for i in np.flatnonzero(np.isnan(Xn).any(axis=1))[:10]:
        o = ~np.isnan(Xn[i])
        lp = c + np.array([log_gauss(Xn[i], o, k) for k in range(K)])
        np.testing.assert_allclose(resp[i], np.exp(lp - logsumexp(lp)), atol=1e-10)


def test_bayesian_partial_fit_and_dask():
    da = pytest.importorskip("dask.array")
    import dask
    X, Xn = _data(seed=23, n=400, fraction=0.2)
    gm = _bgm(nan_policy="marginalize")
    for a in range(0, 400, 100):
        gm.partial_fit(Xn[a:a + 100])
    assert np.all(np.isfinite(gm.means_))
    a = _bgm(covariance_type="diag", nan_policy="marginalize", max_iter=20).fit(Xn)
    with dask.config.set(scheduler="synchronous"):
        b = _bgm(covariance_type="diag", nan_policy="marginalize", max_iter=20).fit(
            da.from_array(Xn, chunks=(150, -1)))
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-10)


def test_save_and_load_keep_the_policy(tmp_path):
    from gmmfast import load
    X, Xn = _data(seed=24)
    gm = GaussianMixture(3, nan_policy="marginalize", random_state=0).fit(Xn)
    gm.save(tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert back.nan_policy == "marginalize"
    np.testing.assert_array_equal(back.predict_proba(Xn), gm.predict_proba(Xn))


def test_a_file_from_before_nan_policy_loads(tmp_path):
    """Files written before nan_policy existed have no such parameter: they
    load with the default, 'raise'."""
    import json
    from gmmfast import load
    X, _ = _data(seed=25, fraction=0.0)
    GaussianMixture(2, random_state=0).fit(X).save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        entries = {k: f[k] for k in f.files}
    params = json.loads(str(entries["params"]))
    del params["nan_policy"]
    entries["params"] = np.array(json.dumps(params))
    np.savez(tmp_path / "old.npz", **entries)
    assert load(tmp_path / "old.npz").nan_policy == "raise"


@pytest.mark.parametrize("model", ["GaussianMixture", "BayesianGaussianMixture"])
def test_kept_accumulators_change_no_missing_value_fit(model, monkeypatch):
    """The complete rows' passes keep their accumulators (every size here,
    gmmfast/_stats.py's stat_slabs) across blocks and iterations: the fit is
    bitwise the one that allocates them afresh."""
    import gmmfast
    from gmmfast import _stats

    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 6)) + rng.integers(0, 3, 3000)[:, None] * 2.0
    X[rng.random(X.shape) < 0.05] = np.nan
    params = dict(n_components=3, nan_policy="marginalize", random_state=0, max_iter=4,
                  tol=0.0)
    fits = []
    for limit in (0, 1 << 62):
        monkeypatch.setattr(_stats, "KEEP_SLAB_BYTES", limit)
        with pytest.warns(Warning):  # not converged in 4 iterations
            fits.append(getattr(gmmfast, model)(**params).fit(X))
    for name in ("means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name)), name
