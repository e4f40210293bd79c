"""The BLAS_GEMM path (diag and spherical by matrix products) against the
vector path, the float64 reference and scikit-learn, at the error bound
derived in gmmfast/_kernels.pyx (its "BLAS_GEMM" comment)."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGM

from gmmfast import GaussianMixture, _dispatch, _kernels, _stats
from gmmfast._dispatch import BLAS_GEMM, VECTOR, KernelConfig

from conftest import make_blobs, start_params
from test_kernels import random_params, reference_stats, run_kernel

TYPES = ("diag", "spherical")
UNIT = {np.float64: np.finfo(np.float64).eps / 2, np.float32: np.finfo(np.float32).eps / 2}


def test_switch_rule():
    """The many-component rows take the gemm path; the small grid rows, full
    and tied do not; block rows do not depend on n_samples."""
    for cov, d, k in [("diag", 128, 1024), ("diag", 40, 256), ("diag", 64, 256),
                      ("spherical", 16, 512), ("diag", 8, 128), ("spherical", 16, 16)]:
        assert _dispatch.choose_path(cov, d, k) == BLAS_GEMM, (cov, d, k)
    for cov, d, k in [("diag", 2, 2), ("diag", 2, 4), ("diag", 16, 8), ("diag", 128, 16),
                      ("diag", 2, 1024), ("spherical", 2, 4), ("spherical", 8, 8)]:
        assert _dispatch.choose_path(cov, d, k) == VECTOR, (cov, d, k)
    for cov in ("full", "tied"):
        assert _dispatch.choose_path(cov, 128, 1024) != BLAS_GEMM
    for n in (10, 10**7):
        cfg = _stats.kernel_config(40, "diag", 2, 256, np.float32, n_samples=n)
        assert cfg.path == BLAS_GEMM and cfg.chunk_size == _dispatch.GEMM_CHUNK


def gemm_bounds(X, sw, params, covariance_type, chunk, unit):
    """The bounds of gmmfast/_kernels.pyx for these data, blocks and
    parameters: (lp (n, K) absolute, S2-sized (K, D) absolute)."""
    X = X.astype(np.float64)
    n, D = X.shape
    mu = params.means.astype(np.float64)
    pc = params.precisions_cholesky.astype(np.float64)
    p = pc**2 if covariance_type == "diag" else np.repeat((pc**2)[:, None], D, axis=1)
    W = 2 * D + 1 if covariance_type == "diag" else D + 2
    lognorm = _stats.log_norm(params.weights, pc, _stats._covariance.get(covariance_type), D)
    lp_bound = np.empty((n, mu.shape[0]))
    s2_terms = np.zeros((n, mu.shape[0], D))
    for a in range(0, n, chunk):
        xb = X[a:a + chunk]
        g = xb.mean(axis=0)
        xa = np.abs(xb - g)[:, None, :]
        ma = np.abs(mu - g)[None, :, :]
        c = np.abs(lognorm - 0.5 * (p * (mu - g) ** 2).sum(axis=1))
        lp_bound[a:a + chunk] = (W + 3) * unit * (0.5 * (p * (xa + ma) ** 2).sum(axis=2) + c)
        s2_terms[a:a + chunk] = (xa + ma) ** 2
    return lp_bound, s2_terms


def check_against(stats, ll, ref, lp_bound, s2_terms, X, sw, chunk, unit, slack):
    """stats within the derived bound (plus ``slack``, the relative error the
    direct form has too) of ``ref``: ((R, S1, S2), ll, log p, weighted
    responsibilities, the statistics' shift), the responsibilities those of
    the float64 reference."""
    (R, S1, S2), ((Rr, S1r, S2r), llr, logp, resp, shift) = stats, ref
    w = np.ones(len(X)) if sw is None else sw
    # responsibilities move by a factor exp(+-2 delta), delta = max_k lp bound
    # and the rounding of exp(lp - max) and log (a few ulp of their arguments)
    delta = lp_bound.max(axis=1) + 64 * unit * (1 + np.abs(logp))
    dresp = resp * np.expm1(2 * delta)[:, None]
    X64 = X.astype(np.float64)
    gamma = (chunk + 3) * unit
    tol_R = dresp.sum(axis=0) + gamma * resp.sum(axis=0) + slack * max(1, np.abs(Rr).max())
    np.testing.assert_array_less(np.abs(R - Rr), tol_R)
    dev1 = np.stack([np.abs(X64 - c).T @ dresp[:, k] for k, c in enumerate(shift)])
    tol_S1 = dev1 + gamma * np.sqrt(np.einsum("ik,ikd->kd", resp, s2_terms)
                                    * resp.sum(axis=0)[:, None]) \
        + slack * max(1, np.abs(S1r).max())
    np.testing.assert_array_less(np.abs(S1 - S1r), tol_S1)
    dev2 = np.stack([((X64 - c) ** 2).T @ dresp[:, k] for k, c in enumerate(shift)])
    s2_gemm = gamma * np.einsum("ik,ikd->kd", resp, s2_terms)
    if S2r.ndim == 1:
        dev2, s2_gemm = dev2.sum(axis=1), s2_gemm.sum(axis=1)
    tol_S2 = dev2 + s2_gemm + slack * np.abs(S2r).max()
    np.testing.assert_array_less(np.abs(S2 - S2r), tol_S2)
    tol_ll = np.sum(w * delta) + slack * max(1, abs(llr)) + 8 * unit * np.sum(w * np.abs(logp))
    assert abs(ll - llr) <= tol_ll


def problem(covariance_type, dtype, offset, weighted, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    n_components, n_features = 70, 9
    params = random_params(covariance_type, n_components, n_features, rng)
    params.means = params.means + offset
    X = (rng.normal(size=(n_samples, n_features)) * 1.5 + offset).astype(dtype)
    sw = rng.uniform(0, 3, n_samples) if weighted else None
    return X, sw, params


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_gemm_matches_vector_and_reference(covariance_type, dtype, offset, weighted,
                                           n_threads):
    """Statistics and log-likelihood of one E-step within the derived bound of
    the float64 reference and of the vector path, far from the origin too,
    over the default block rows with a partial last block."""
    chunk = _dispatch.GEMM_CHUNK
    X, sw, params = problem(covariance_type, dtype, offset, weighted, 2 * chunk + 37)
    unit = UNIT[dtype]
    stats, ll, kp = run_kernel(X, sw, params, covariance_type, n_threads, BLAS_GEMM,
                               chunk=chunk)
    vstats, vll, _ = run_kernel(X, sw, params, covariance_type, n_threads, VECTOR,
                                chunk=_dispatch.block_rows(VECTOR, 9, 70, dtype))
    ref_params = params.astype(dtype).astype(np.float64)
    (Rr, S1r, S2r), llr, logp, resp = reference_stats(X, sw, ref_params, covariance_type,
                                                      None)
    lp_bound, s2_terms = gemm_bounds(X, sw, ref_params, covariance_type, chunk, unit)
    ref = ((Rr, S1r, S2r), llr, logp, resp, ref_params.means)
    check_against(stats, ll, ref, lp_bound, s2_terms, X, sw, chunk, unit, 0.0)
    # the vector path: the direct form's error is within the same bound (its
    # blocks are no longer), so the two paths are within twice of each other
    check_against(stats, ll, (vstats, vll, logp, resp, ref_params.means), 2 * lp_bound,
                  2 * s2_terms, X, sw, chunk, unit, 0.0)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_samples", [1, 36, 37, 38, 3 * 37 + 5])
def test_gemm_block_boundaries(covariance_type, dtype, n_samples):
    """Blocks of 37 rows: one row, a block less one, exact, one over, a tail."""
    X, sw, params = problem(covariance_type, dtype, 3.0, True, n_samples, seed=n_samples)
    a = run_kernel(X, sw, params, covariance_type, 2, BLAS_GEMM, chunk=37)
    b = run_kernel(X, sw, params, covariance_type, 2, VECTOR, chunk=37)
    rtol = 1e-10 if dtype == np.float64 else 3e-3
    for u, v in zip(a[0], b[0]):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol * max(1, np.abs(v).max()))
    np.testing.assert_allclose(a[1], b[1], rtol=rtol)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gemm_reproducible_across_runs(covariance_type, dtype):
    """A thread count gives bitwise the same sums every time; counts agree."""
    X, sw, params = problem(covariance_type, dtype, 0.0, True, 1500)
    runs = {t: [run_kernel(X, sw, params, covariance_type, t, BLAS_GEMM, chunk=64)[:2]
                for _ in range(2)] for t in (1, 2)}
    for a, b in runs.values():
        assert a[1] == b[1]
        for u, v in zip(a[0], b[0]):
            np.testing.assert_array_equal(u, v)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(runs[1][0][1], runs[2][0][1], rtol=rtol)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gemm_predict_and_stats_from_resp(covariance_type, dtype):
    """Prediction outputs and statistics of given responsibilities match the
    vector path."""
    X, sw, params = problem(covariance_type, dtype, 5.0, True, 301)
    kp = _stats.KernelParams(params.astype(dtype), covariance_type, dtype)
    given = np.random.default_rng(1).dirichlet(np.ones(70), len(X)).astype(dtype)
    outs = {}
    for path in (VECTOR, BLAS_GEMM):
        logp = np.empty(len(X), dtype)
        resp = np.empty((len(X), 70), dtype)
        labels = np.empty(len(X), np.int64)
        _kernels.predict(X, kp.means, kp.prec, kp.lognorm, kp.center, kp.mproj, kp.code,
                         logp, resp, labels, 64, 2, path)
        cfg = KernelConfig(2, 64, path)
        blocks = [(0, 150, given[:150]), (150, len(X), given[150:])]
        stats = _stats.stats_from_resp(X, sw, blocks, kp.means, kp.center, kp.cov, cfg)
        outs[path] = (logp, resp, labels, stats)
    rtol = 1e-10 if dtype == np.float64 else 2e-3
    (la, ra, ya, sa), (lb, rb, yb, sb) = outs[VECTOR], outs[BLAS_GEMM]
    np.testing.assert_allclose(lb, la, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(rb, ra, atol=rtol)
    close = np.sort(ra, axis=1)[:, -1] - np.sort(ra, axis=1)[:, -2] > 10 * rtol
    np.testing.assert_array_equal(yb[close], ya[close])
    for u, v in zip(sb, sa):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol * max(1, np.abs(v).max()))


def force_path(monkeypatch, gemm):
    """Every diag and spherical shape on the gemm path (or none)."""
    rule = (1, 1, 1) if gemm else (10**9, 10**9, 10**18)
    monkeypatch.setattr(_dispatch, "GEMM_MIN", {"diag": rule, "spherical": rule})


def quiet_fit(model, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **kw)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype,offset", [(np.float64, 0.0), (np.float64, 1e6),
                                          (np.float32, 0.0), (np.float32, 1e4)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fit_on_gemm_path_matches_sklearn(monkeypatch, covariance_type, dtype, offset,
                                          n_threads):
    """Whole fits (the initial statistics, EM and the final E-step) on the
    gemm path against scikit-learn from the same start, and against the
    vector path."""
    X, centers = make_blobs(1500, 6, 12, seed=4, offset=offset, dtype=dtype)
    kwargs = dict(n_components=12, covariance_type=covariance_type, max_iter=15, tol=0.0,
                  **start_params(covariance_type, centers))
    force_path(monkeypatch, True)
    gf = quiet_fit(GaussianMixture(**kwargs, n_threads=n_threads), X)
    assert _stats.kernel_config(6, covariance_type, n_threads, 12, dtype).path == BLAS_GEMM
    force_path(monkeypatch, False)
    gv = quiet_fit(GaussianMixture(**kwargs, n_threads=n_threads), X)
    # scikit-learn's uncentred sums lose its digits far from the origin: there
    # it fits the same data moved back to the origin (exactly, in float64)
    if offset:
        kwargs["means_init"] = kwargs["means_init"] - offset
        sk = quiet_fit(SkGM(**kwargs), X.astype(np.float64) - offset)
    else:
        sk = quiet_fit(SkGM(**kwargs), X)
    rtol = 1e-7 if dtype == np.float64 else 3e-3
    for name in ("weights_", "means_", "covariances_"):
        a, b, c = (getattr(m, name).astype(np.float64) for m in (gf, gv, sk))
        if name == "means_":  # relative to the spread, not the offset
            a, b = a - offset, b - offset
        scale = np.abs(c).max()
        np.testing.assert_allclose(a, c, rtol=0, atol=rtol * scale, err_msg=name)
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale, err_msg=name)
    assert gf.lower_bound_ == pytest.approx(sk.lower_bound_, rel=rtol)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_weighted_fit_on_gemm_path(monkeypatch, covariance_type):
    """Integer weights on the gemm path: the fit of the repeated rows."""
    X, centers = make_blobs(600, 5, 10, seed=6)
    w = np.random.default_rng(0).integers(1, 4, len(X))
    kwargs = dict(n_components=10, covariance_type=covariance_type, max_iter=10, tol=0.0,
                  **start_params(covariance_type, centers))
    force_path(monkeypatch, True)
    a = quiet_fit(GaussianMixture(**kwargs), X, sample_weight=w.astype(np.float64))
    b = quiet_fit(GaussianMixture(**kwargs), np.repeat(X, w, axis=0))
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-8,
                                   atol=1e-10)
