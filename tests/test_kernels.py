"""The Cython block kernels against a slow, obviously correct numpy reference."""
import numpy as np
from threadpoolctl import threadpool_limits
import pytest
from scipy.special import logsumexp

from gmmfast import _covariance, _dispatch, _kernels, _stats
from gmmfast._dispatch import BLAS_GEMM, BLAS_SYRK, BLAS_TILES, VECTOR, KernelConfig, serves

from conftest import COVARIANCE_TYPES

CHUNK = 8
RTOL = {np.float64: 1e-11, np.float32: 2e-4}
PATHS = (VECTOR, BLAS_TILES, BLAS_SYRK, BLAS_GEMM)


def served(n_features):
    """(covariance_type, path) for every path that serves n_features."""
    return [(c, p) for c in COVARIANCE_TYPES for p in PATHS if serves(p, c, n_features)]


def random_params(covariance_type, n_components, n_features, rng):
    means = rng.normal(size=(n_components, n_features))
    weights = rng.uniform(0.5, 1.5, n_components)
    weights /= weights.sum()

    def spd():
        A = rng.normal(size=(n_features, n_features))
        return A @ A.T / n_features + np.eye(n_features)

    if covariance_type == "full":
        cov = np.stack([spd() for _ in range(n_components)])
    elif covariance_type == "tied":
        cov = spd()
    elif covariance_type == "diag":
        cov = rng.uniform(0.5, 2.0, (n_components, n_features))
    else:
        cov = rng.uniform(0.5, 2.0, n_components)
    prec_chol = _covariance.get(covariance_type).precision_cholesky(cov)
    return _stats.GMMParams(weights, means, cov, prec_chol)


def full_covariances(params, covariance_type, n_components, n_features):
    cov = params.covariances
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.tile(cov, (n_components, 1, 1))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([np.eye(n_features) * c for c in cov])


def reference_log_prob(X, params, covariance_type):
    """log pi_k + log N(x | mu_k, Sigma_k) by the textbook formula."""
    X = X.astype(np.float64)
    n_components, n_features = params.means.shape
    covs = full_covariances(params, covariance_type, n_components, n_features)
    out = np.empty((X.shape[0], n_components))
    for k in range(n_components):
        diff = X - params.means[k]
        sol = np.linalg.solve(covs[k], diff.T).T
        maha = np.sum(diff * sol, axis=1)
        _, logdet = np.linalg.slogdet(covs[k])
        out[:, k] = (np.log(params.weights[k]) - 0.5 * (n_features * np.log(2 * np.pi)
                     + logdet + maha))
    return out


def reference_stats(X, sample_weight, params, covariance_type, center):
    """R, S1, S2 (or T for tied) from explicit responsibilities."""
    X = X.astype(np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    wlp = reference_log_prob(X, params, covariance_type)
    logp = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - logp[:, None]) * w[:, None]
    n_components, n_features = params.means.shape
    shift = np.tile(center, (n_components, 1)) if covariance_type == "tied" else params.means
    R = resp.sum(axis=0)
    S1 = np.stack([(resp[:, k, None] * (X - shift[k])).sum(axis=0) for k in range(n_components)])
    if covariance_type == "full":
        S2 = np.stack([(resp[:, k, None] * (X - shift[k])).T @ (X - shift[k])
                       for k in range(n_components)])
    elif covariance_type == "diag":
        S2 = np.stack([(resp[:, k, None] * (X - shift[k]) ** 2).sum(axis=0)
                       for k in range(n_components)])
    elif covariance_type == "spherical":
        S2 = np.array([(resp[:, k] * ((X - shift[k]) ** 2).sum(axis=1)).sum()
                       for k in range(n_components)])
    else:
        S2 = None
    return (R, S1, S2), float(np.sum(w * logp)), logp, resp


def run_kernel(X, sample_weight, params, covariance_type, n_threads, path, chunk=CHUNK):
    center = X.astype(np.float64).mean(axis=0).astype(X.dtype)
    kp = _stats.KernelParams(params.astype(X.dtype), covariance_type, X.dtype, center)
    cfg = KernelConfig(n_threads, chunk, path)
    stats, ll = _stats.e_step_stats(X, sample_weight, kp, cfg)
    return stats, ll, kp


@pytest.mark.parametrize("covariance_type,path", served(4))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_samples", [1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 3])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_e_step_matches_reference(covariance_type, path, dtype, n_samples, n_threads,
                                  weighted):
    rng = np.random.default_rng(n_samples)
    n_components, n_features = 3, 4
    params = random_params(covariance_type, n_components, n_features, rng)
    X = rng.normal(size=(n_samples, n_features)).astype(dtype)
    sw = rng.uniform(0, 3, n_samples) if weighted else None
    (R, S1, S2), ll, kp = run_kernel(X, sw, params, covariance_type, n_threads, path)
    # the reference takes the parameters the kernel saw (rounded to dtype)
    ref_params = params.astype(dtype).astype(np.float64)
    (Rr, S1r, S2r), llr, _, _ = reference_stats(
        X, sw, ref_params, covariance_type, kp.center.astype(np.float64))
    rtol = RTOL[dtype]
    scale = max(1.0, np.abs(S1r).max())
    np.testing.assert_allclose(R, Rr, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(S1, S1r, rtol=rtol, atol=rtol * scale)
    if S2r is not None:
        np.testing.assert_allclose(S2, S2r, rtol=rtol, atol=rtol * np.abs(S2r).max())
    np.testing.assert_allclose(ll, llr, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", [1, 2, 3, 5, 6, 8, 9, 11, 13, 16, 17, 24])
def test_e_step_every_feature_count(covariance_type, dtype, n_features):
    """Each register-kernel size (and its zero padding) and the BLAS path."""
    check_every_path(covariance_type, dtype, n_features, CHUNK, 2 * CHUNK + 3,
                     seed=n_features, rtol=RTOL[dtype] * (10 if dtype == np.float32 else 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", [6, 7, 12, 16, 17, 33, 64, 65])
def test_e_step_full_vectors_and_tails(dtype, n_features):
    """Blocks of 20 rows, so that each has whole vectors and a scalar tail in
    both dtypes (AVX-512's full-covariance log-probabilities run 8 float64 or
    16 float32 rows a vector, the rest one by one), and a last block of 3:
    the register templates (D <= 16), the BLAS path's register kernel in
    column blocks of 16 (17 <= D <= 64: one partial block, two whole blocks
    and one partial) and its trmm beyond (65)."""
    check_every_path("full", dtype, n_features, 20, 2 * 20 + 3, seed=100 + n_features,
                     rtol=RTOL[dtype] * (10 if dtype == np.float32 else 1))


def check_every_path(covariance_type, dtype, n_features, chunk, n_samples, seed, rtol):
    """The E-step statistics of every path that serves this shape against the
    reference, with weights, in blocks of ``chunk`` rows."""
    rng = np.random.default_rng(seed)
    params = random_params(covariance_type, 3, n_features, rng)
    X = (rng.normal(size=(n_samples, n_features)) * 1.5).astype(dtype)
    sw = rng.uniform(0, 3, X.shape[0])
    ref_params = params.astype(dtype).astype(np.float64)
    for path in PATHS:
        if not serves(path, covariance_type, n_features):
            continue
        (R, S1, S2), ll, kp = run_kernel(X, sw, params, covariance_type, 2, path,
                                         chunk=chunk)
        (Rr, S1r, S2r), llr, _, _ = reference_stats(
            X, sw, ref_params, covariance_type, kp.center.astype(np.float64))
        np.testing.assert_allclose(R, Rr, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(S1, S1r, rtol=rtol, atol=rtol * max(1, np.abs(S1r).max()))
        if S2r is not None:
            np.testing.assert_allclose(S2, S2r, rtol=rtol, atol=rtol * np.abs(S2r).max())
        np.testing.assert_allclose(ll, llr, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vectorised_exp_log_match_libm(dtype):
    x = np.concatenate([np.linspace(-800, 5, 200001), [-np.inf, 0.0, -1e-300]]).astype(dtype)
    y = _kernels._exp(x)
    ref = np.exp(x.astype(np.float64))
    ulp = np.spacing(ref.astype(dtype)).astype(np.float64)
    tiny = np.finfo(dtype).tiny
    ok = ref > tiny * 4  # normal range: within 2 ulp of the correctly rounded value
    assert np.all(np.abs(y[ok] - ref[ok]) <= 2 * ulp[ok])
    assert np.all(y[~ok] <= tiny * 4) and np.all(y >= 0)
    assert y[-3] == 0.0 and y[-2] == 1.0
    s = np.concatenate([np.linspace(1.0, 64.0, 100001), np.geomspace(1e-30, 1e30, 1001)]).astype(dtype)
    ls = _kernels._log(s)
    lref = np.log(s.astype(np.float64))
    lulp = np.spacing(np.abs(lref).astype(dtype)).astype(np.float64)
    assert np.all(np.abs(ls - lref) <= 2 * lulp + (1e-300 if dtype == np.float64 else 0))
    assert _kernels._log(np.array([1.0], dtype))[0] == 0.0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_predict_kernel_matches_reference(covariance_type, dtype, n_threads):
    rng = np.random.default_rng(3)
    n_samples, n_components, n_features = 3 * CHUNK + 1, 4, 5
    params = random_params(covariance_type, n_components, n_features, rng)
    X = (rng.normal(size=(n_samples, n_features)) * 2).astype(dtype)
    center = X.astype(np.float64).mean(axis=0)
    for path in PATHS:
        if not serves(path, covariance_type, n_features):
            continue
        kp = _stats.KernelParams(params.astype(dtype), covariance_type, dtype, center)
        logp = np.empty(n_samples, dtype)
        resp = np.empty((n_samples, n_components), dtype)
        labels = np.empty(n_samples, np.int64)
        _kernels.predict(X, kp.means, kp.prec, kp.lognorm, kp.center, kp.mproj, kp.code,
                         logp, resp, labels, CHUNK, n_threads, path)
        wlp = reference_log_prob(X, params.astype(dtype).astype(np.float64), covariance_type)
        ref_logp = logsumexp(wlp, axis=1)
        rtol = RTOL[dtype]
        np.testing.assert_allclose(logp, ref_logp, rtol=rtol * 10, atol=rtol * 10)
        np.testing.assert_allclose(resp, np.exp(wlp - ref_logp[:, None]), atol=rtol * 100)
        np.testing.assert_array_equal(labels, np.argmax(wlp, axis=1))
        # each output alone gives the same values
        logp2 = np.empty(n_samples, dtype)
        _kernels.predict(X, kp.means, kp.prec, kp.lognorm, kp.center, kp.mproj, kp.code,
                         logp2, None, None, CHUNK, n_threads, path)
        np.testing.assert_array_equal(logp, logp2)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_threads_reproducible_and_consistent(covariance_type):
    """Bitwise reproducible for a thread count; equal to rounding across counts."""
    rng = np.random.default_rng(5)
    params = random_params(covariance_type, 3, 3, rng)
    X = rng.normal(size=(1000, 3))
    runs = {nt: [run_kernel(X, None, params, covariance_type, nt, VECTOR)[:2]
                 for _ in range(2)] for nt in (1, 2, 3)}
    for nt, (a, b) in runs.items():
        assert a[1] == b[1]
        for u, v in zip(a[0], b[0]):
            if u is not None:
                np.testing.assert_array_equal(u, v)
    np.testing.assert_allclose(runs[1][0][1], runs[2][0][1], rtol=1e-13)
    np.testing.assert_allclose(runs[1][0][0][1], runs[3][0][0][1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", PATHS)
def test_scatter_matches_reference(dtype, path):
    rng = np.random.default_rng(7)
    X = (rng.normal(size=(2 * CHUNK + 3, 5)) + 3).astype(dtype)
    sw = rng.uniform(0, 2, X.shape[0])
    center = X.astype(np.float64).mean(axis=0)
    T = _stats.scatter(X, sw, center, KernelConfig(2, CHUNK, path))
    c = center.astype(dtype).astype(np.float64)
    Y = X.astype(np.float64) - c
    np.testing.assert_allclose(T, (sw[:, None] * Y).T @ Y, rtol=RTOL[dtype] * 10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stats_from_resp_matches_reference(covariance_type, dtype):
    rng = np.random.default_rng(11)
    n_samples, n_components, n_features = 2 * CHUNK + 5, 3, 4
    X = rng.normal(size=(n_samples, n_features)).astype(dtype)
    resp = rng.uniform(size=(n_samples, n_components)).astype(dtype)
    sw = rng.uniform(0, 2, n_samples)
    shift = rng.normal(size=(n_components, n_features)).astype(dtype)
    center = shift[0].copy()
    if covariance_type == "tied":
        shift = np.tile(center, (n_components, 1))
    cov = _covariance.get(covariance_type)
    for path in PATHS:
        if not serves(path, covariance_type, n_features):
            continue
        cfg = KernelConfig(2, CHUNK, path)
        R, S1, S2 = _stats.alloc_stats(cfg, cov, n_components, n_features)
        _kernels.stats_from_resp(X, resp, sw, shift, center, cov.code, R, S1, S2,
                                 CHUNK, 2, path)
        R, S1, S2 = _stats.reduce_stats(R, S1, S2, cov, n_components, n_features)
        wr = resp.astype(np.float64) * sw[:, None]
        Xd = X.astype(np.float64)
        sd = shift.astype(np.float64)
        np.testing.assert_allclose(R, wr.sum(0), rtol=RTOL[dtype])
        for k in range(n_components):
            Y = Xd - sd[k]
            np.testing.assert_allclose(S1[k], wr[:, k] @ Y, rtol=RTOL[dtype] * 10,
                                       atol=RTOL[dtype] * 10)
            full = (wr[:, k, None] * Y).T @ Y
            expected = {"full": full, "diag": np.diag(full), "spherical": np.trace(full),
                        "tied": None}[covariance_type]
            if expected is not None:
                np.testing.assert_allclose(S2[k], expected, rtol=RTOL[dtype] * 10,
                                           atol=RTOL[dtype] * 10)


def test_openmp_enabled():
    """Fails if the build silently lost OpenMP (unless it was turned off on purpose)."""
    import os

    import gmmfast

    if os.environ.get("GMMFAST_OPENMP") == "0":
        pytest.skip("built without OpenMP on purpose (GMMFAST_OPENMP=0)")
    assert gmmfast.openmp_enabled()


def test_path_table_choice():
    """The table's choice by shape, and the C header generated from it."""
    assert _kernels.small_d_max() == _dispatch.SMALL_D_MAX
    for cov in COVARIANCE_TYPES:
        assert _dispatch.choose_path(cov, 2) == VECTOR
    assert _dispatch.choose_path("full", _dispatch.SMALL_D_MAX + 1) == BLAS_TILES
    assert _dispatch.choose_path("full", _dispatch.GRAM_MAX_FEATURES + 1) == BLAS_SYRK
    assert _dispatch.choose_path("diag", 1000) == VECTOR


@pytest.mark.parametrize("covariance_type,path,n_features", [
    ("full", VECTOR, _dispatch.SMALL_D_MAX + 1), ("tied", VECTOR, _dispatch.SMALL_D_MAX + 1),
    ("diag", BLAS_TILES, 4), ("spherical", BLAS_SYRK, 4), ("full", 7, 4)])
def test_unserved_path_is_an_error(covariance_type, path, n_features):
    """A shape or type no kernel serves raises; it never computes nothing."""
    rng = np.random.default_rng(0)
    params = random_params(covariance_type, 2, n_features, rng)
    X = rng.normal(size=(10, n_features))
    with pytest.raises(ValueError, match="kernel for covariance_type"):
        run_kernel(X, None, params, covariance_type, 1, path)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_syrk_path_above_gram_max_features(dtype):
    """The default path above GRAM_MAX_FEATURES (syrk) against the reference."""
    n_features = _dispatch.GRAM_MAX_FEATURES + 1
    rng = np.random.default_rng(2)
    params = random_params("full", 2, n_features, rng)
    X = (rng.normal(size=(2 * CHUNK + 1, n_features)) * 0.2).astype(dtype)
    cfg = _stats.kernel_config(n_features, "full", 2, 2, dtype)
    assert cfg.path == BLAS_SYRK
    (R, S1, S2), ll, kp = run_kernel(X, None, params, "full", 2, cfg.path)
    ref = params.astype(dtype).astype(np.float64)
    (Rr, S1r, S2r), llr, _, _ = reference_stats(X, None, ref, "full", None)
    rtol = RTOL[dtype] * (50 if dtype == np.float32 else 10)
    np.testing.assert_allclose(R, Rr, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(S2, S2r, rtol=rtol, atol=rtol * np.abs(S2r).max())
    np.testing.assert_allclose(ll, llr, rtol=rtol)


def test_generated_headers_are_current():
    """gmmfast/_simd_full.h and _simd_sizes.h are what tools/gen_simd_full.py
    writes from the path table."""
    import importlib.util
    import os

    root = os.path.join(os.path.dirname(__file__), os.pardir)
    path = os.path.join(root, "tools", "gen_simd_full.py")
    if not os.path.exists(path):
        pytest.skip("not a source checkout")
    spec = importlib.util.spec_from_file_location("gen_simd_full", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for out, text in gen.outputs().items():
        with open(out) as f:
            assert f.read() == text, f"{out} is stale: run python tools/gen_simd_full.py"


# ---------------------------------------------------------------------------
# The M-step's small dense algebra (gmmfast/_kernels.pyx)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("n_features", [1, 2, 3, 7, 16])
def test_cholesky_precisions_equals_lapack(n_features):
    from scipy import linalg

    rng = np.random.default_rng(n_features)
    A = rng.normal(size=(4, n_features, n_features + 3))
    stack = A @ np.swapaxes(A, 1, 2) + 1e-3 * np.eye(n_features)
    U, ok = _kernels.cholesky_precisions(stack)
    assert ok
    for k in range(stack.shape[0]):
        # scikit-learn's _compute_precision_cholesky
        L = linalg.cholesky(stack[k], lower=True)
        ref = linalg.solve_triangular(L, np.eye(n_features), lower=True).T
        # both are backward stable: a relative error of a few D u cond(L)
        cond = np.linalg.cond(L)
        np.testing.assert_allclose(U[k], ref, rtol=0,
                                   atol=8 * n_features * 2.2e-16 * cond * np.abs(ref).max())
        assert np.all(np.tril(U[k], -1) == 0)
        np.testing.assert_allclose(U[k] @ U[k].T @ stack[k], np.eye(n_features),
                                   atol=1e-8 * cond ** 2)


def test_cholesky_precisions_refuses_what_lapack_refuses():
    good = np.eye(3)[None].repeat(2, axis=0)
    for bad in (np.diag([1.0, -1.0, 1.0]), np.diag([1.0, 0.0, 1.0]),
                np.diag([1.0, np.nan, 1.0]), np.diag([1.0, np.inf, 1.0]),
                np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])):
        stack = good.copy()
        stack[1] = bad
        _, ok = _kernels.cholesky_precisions(np.ascontiguousarray(stack))
        assert not ok


@pytest.mark.parametrize("n_features", [17, 40])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_lapack_cholesky_precisions_equals_the_wrappers(n_features, n_threads):
    # the compiled LAPACK calls on any thread count are scipy.linalg.lapack's
    # potrf(lower=1, clean=1), trtri(lower=1) and .T, one component after
    # another, bit for bit; and they refuse a matrix that is not positive
    # definite at whatever component a thread meets it (non-finite entries
    # are refused before, by the caller: last test below)
    from scipy.linalg import lapack

    rng = np.random.default_rng(n_features + n_threads)
    stack = _gram_stack(rng, 5, n_features) + 1e-3 * np.eye(n_features)
    ref = np.empty_like(stack)
    with threadpool_limits(1, user_api="blas"):
        for k in range(stack.shape[0]):
            L, info = lapack.dpotrf(stack[k], lower=1, clean=1)
            assert info == 0
            inv, info = lapack.dtrtri(L, lower=1)
            assert info == 0
            ref[k] = inv.T
        U, ok = _kernels.lapack_cholesky_precisions(stack, n_threads)
        assert ok
        np.testing.assert_array_equal(U, ref)
        # the wrappers' copy, not a transposed one: potrf(lower=1) reads the
        # lower triangle only, so junk in the upper one changes nothing, and a
        # copy that read the upper triangle as the lower would fail here
        junk = stack + np.triu(rng.normal(size=stack.shape), 1)
        U, ok = _kernels.lapack_cholesky_precisions(junk, n_threads)
        assert ok
        np.testing.assert_array_equal(U, ref)
        for position in range(stack.shape[0]):
            indefinite = stack[position].copy()
            indefinite[n_features // 2, n_features // 2] = -1.0
            for bad in (-np.eye(n_features), np.zeros((n_features, n_features)), indefinite):
                broken = stack.copy()
                broken[position] = bad
                _, ok = _kernels.lapack_cholesky_precisions(broken, n_threads)
                assert not ok


@pytest.mark.parametrize("n_features", [2, 17])
def test_precision_cholesky_names_the_problem_for_non_finite_covariances(n_features):
    stack = np.eye(n_features)[None].repeat(3, axis=0)
    for value in (np.nan, np.inf):
        broken = stack.copy()
        broken[1, 0, 0] = value
        with pytest.raises(ValueError, match="ill-defined empirical covariance"):
            _covariance.get("full").precision_cholesky(broken)


def _gram_stack(rng, K, n_features):
    """K symmetric positive definite (D, D) matrices, A A^T."""
    A = rng.normal(size=(K, n_features, n_features + 2))
    return A @ np.swapaxes(A, 1, 2)


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


@pytest.mark.parametrize("n_features", [1, 2, 5, 16, 31, 32, 33, 65, 130])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_full_covariances_equals_the_numpy_form(n_features, n_threads):
    """``full_covariances`` (tiles of 32, the components on the threads)
    bitwise the numpy form: S2 - S1 d^T - d S1^T + R d d^T, (S + S^T) / 2,
    / n_k, + reg on the diagonal. S2 not quite symmetric, so that a wrong
    transposition of a tile's partner shows; feature counts on both sides
    of the tile edge; 130 features: a stack large enough for the threads."""
    rng = np.random.default_rng(3)
    K = 3
    R = rng.uniform(1, 50, K)
    S1 = rng.normal(size=(K, n_features))
    S2 = _gram_stack(rng, K, n_features)
    S2 += np.triu(rng.normal(size=(K, n_features, n_features)) * 1e-6, 1)
    d = rng.normal(size=(K, n_features)) * 0.1
    nk = R + 1e-15
    got = _kernels.full_covariances(R, S1, S2, d, nk, 1e-6, n_threads)
    outer = S1[:, :, None] * d[:, None, :]
    ref = S2 - outer - np.swapaxes(outer, 1, 2)
    ref += R[:, None, None] * d[:, :, None] * d[:, None, :]
    ref = 0.5 * (ref + np.swapaxes(ref, 1, 2)) / nk[:, None, None]
    ref[:, np.arange(n_features), np.arange(n_features)] += 1e-6
    # the same operations in the same order: equal to the last bit (and the
    # sign of a zero)
    assert np.array_equal(_bits(got), _bits(ref))


def test_full_covariance_passes_take_empty_stacks_and_check_shapes():
    """No component or no feature: empty results (and the Wishart pass's
    degrees of freedom nu_0 + n_k); mismatched shapes raise rather than
    read out of bounds."""
    z = np.zeros
    assert _kernels.full_covariances(z(0), z((0, 3)), z((0, 3, 3)), z((0, 3)), z(0),
                                     1e-6).shape == (0, 3, 3)
    assert _kernels.full_covariances(z(2), z((2, 0)), z((2, 0, 0)), z((2, 0)),
                                     np.ones(2), 1e-6).shape == (2, 0, 0)
    dof, cov = _kernels.full_wishart_stats(
        z(2), z((2, 0)), z((2, 0, 0)), z((2, 0)), np.array([1.0, 2.0]), 1e-6, z((2, 0)),
        z(0), z((0, 0)), 1.0, 3.0, np.array([2.0, 3.0]))
    assert cov.shape == (2, 0, 0) and np.array_equal(dof, [4.0, 5.0])
    R, S1, S2, d, nk = z(2), z((2, 3)), z((2, 3, 3)), z((2, 3)), np.ones(2)
    with pytest.raises(ValueError, match="expected R, nk"):
        _kernels.full_covariances(R, S1, z((2, 3, 4)), d, nk, 1e-6)
    with pytest.raises(ValueError, match="expected R, nk"):
        _kernels.full_covariances(R, S1, S2, z((2, 2)), nk, 1e-6)
    with pytest.raises(ValueError, match="expected xk"):
        _kernels.full_wishart_stats(R, S1, S2, d, nk, 1e-6, z((2, 3)), z(3), z((3, 2)),
                                    1.0, 3.0, np.ones(2))


@pytest.mark.parametrize("n_features", [1, 2, 5, 16, 40])
def test_full_wishart_equals_the_numpy_form(n_features):
    rng = np.random.default_rng(4)
    K = 3
    # per component: counts (one of them 0), means, scatters; the priors
    nk = np.array([0.0, 3.5, 48.0])
    xk, sk = rng.normal(size=(K, n_features)), _gram_stack(rng, K, n_features)
    m0, psi0 = rng.normal(size=n_features), _gram_stack(rng, 1, n_features)[0]
    beta0, nu0 = 0.7, n_features + 0.5
    beta = beta0 + nk
    dof, got = _kernels.full_wishart(nk, xk, sk, m0, psi0, beta0, nu0, beta)
    # scikit-learn's per-component loop, as gmmfast/_covariance.py's numpy form
    ref = np.empty_like(sk)
    for k in range(K):
        diff = xk[k] - m0
        ref[k] = (nk[k] * sk[k] + psi0
                  + nk[k] * beta0 / beta[k] * np.outer(diff, diff)) / (nu0 + nk[k])
    np.testing.assert_array_equal(dof, nu0 + nk)
    # the same operations per entry; numpy's outer-product scaling associates
    # as (diff_i diff_j) (n_k beta_0 / beta_k) too
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("n_features", [1, 2, 5, 17, 33, 65, 110])
@pytest.mark.parametrize("prior", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("n_threads", [1, 3])
def test_full_wishart_stats_equals_the_two_calls(n_features, prior, n_threads):
    """The fused M-step pass (``full_wishart_stats``) gives bitwise
    ``full_covariances`` then ``full_wishart``. A prior whose two triangles
    differ (in the last bit; by 1e-3 inside the first tile and, beyond 32
    features, across tiles; in the sign of a zero) has each entry computed
    from its own prior entry, not copied from the other triangle (a kernel
    that mirrors regardless fails here)."""
    rng = np.random.default_rng(6)
    K = 3
    R = np.array([0.0, 3.5, 48.0])
    S1 = rng.normal(size=(K, n_features))
    S2 = _gram_stack(rng, K, n_features)
    # S2 as the kernels' reduction gives it, and a not quite symmetric one
    S2[1] += np.triu(rng.normal(size=(n_features, n_features)) * 1e-9, 1)
    d = rng.normal(size=(K, n_features)) * 0.1
    nk = R + 1e-15
    xk = rng.normal(size=(K, n_features))
    m0, psi0 = rng.normal(size=n_features), _gram_stack(rng, 1, n_features)[0]
    if prior == "asymmetric" and n_features > 1:
        psi0[-1, 0] = -0.0
        psi0[0, -1] = 0.0
        psi0[0, 1] = np.nextafter(psi0[1, 0], np.inf)
        if n_features > 2:
            psi0[1, 2] = psi0[2, 1] + 1e-3
        if n_features > 32:
            psi0[0, n_features - 1] = psi0[n_features - 1, 0] + 1e-3
            psi0[n_features - 2, 3] = psi0[3, n_features - 2] - 1e-3
    beta0, nu0 = 0.7, n_features + 0.5
    beta = beta0 + nk
    sk = _kernels.full_covariances(R, S1, S2, d, nk, 1e-6)
    dof_ref, ref = _kernels.full_wishart(nk, xk, sk, m0, psi0, beta0, nu0, beta)
    # (110 features: a stack large enough for the components' threads)
    dof, got = _kernels.full_wishart_stats(R, S1, S2, d, nk, 1e-6, xk, m0, psi0,
                                           beta0, nu0, beta, n_threads)
    np.testing.assert_array_equal(dof, dof_ref)
    assert np.array_equal(_bits(got), _bits(ref))


def test_full_wishart_from_stats_equals_params_from_stats_then_wishart():
    """``Full.wishart_from_stats`` (the fused pass) against the base class's
    form, ``params_from_stats`` then ``wishart``, with an anchor."""
    rng = np.random.default_rng(7)
    K, D = 4, 20
    full = _covariance.get("full")
    R = rng.uniform(0.5, 30, K)
    S1 = rng.normal(size=(K, D))
    S2 = _gram_stack(rng, K, D)
    shift, anchor = rng.normal(size=(K, D)), rng.normal(size=(K, D))

    class P:
        mean_precision_prior = 0.3
        degrees_of_freedom_prior = D + 1.0
        mean_prior = rng.normal(size=D)
        covariance_prior = _gram_stack(rng, 1, D)[0]
    got = full.wishart_from_stats(R, S1, S2, shift, 1e-6, 2.2e-16, P, anchor=anchor)
    want = _covariance.Covariance.wishart_from_stats(full, R, S1, S2, shift, 1e-6,
                                                     2.2e-16, P, anchor=anchor)
    for g, w in zip(got, want):
        assert np.array_equal(np.asarray(g).view(np.int64), np.asarray(w).view(np.int64))


@pytest.mark.parametrize("n_features", [1, 2, 5, 16])
def test_trace_upper_products_equals_the_product_form(n_features):
    rng = np.random.default_rng(5)
    K = 4
    U = np.triu(rng.normal(size=(K, n_features, n_features)))
    M = _gram_stack(rng, K, n_features)
    got = _kernels.trace_upper_products(U, M)
    ref = float(np.einsum("kij,kij->", U @ np.swapaxes(U, 1, 2), M))
    # two summation orders of the same products, none deeper than
    # n = D^2 K + 2 D additions: each within n u of the sum of their
    # magnitudes (the same form on |U|, |M|)
    magnitudes = float(np.einsum("kij,kij->", np.abs(U) @ np.swapaxes(np.abs(U), 1, 2),
                                 np.abs(M)))
    n = n_features ** 2 * K + 2 * n_features
    assert abs(got - ref) <= 2 * n * 2.2e-16 * magnitudes
    # a known-wrong form (U^T U) is far outside that
    wrong = float(np.einsum("kij,kij->", np.swapaxes(U, 1, 2) @ U, M))
    assert n_features == 1 or abs(wrong - ref) > 2 * n * 2.2e-16 * magnitudes
    # a lower triangle is not read: U's zeros are structural
    L = U + np.tril(rng.normal(size=U.shape), -1)
    assert _kernels.trace_upper_products(L, M) == got


@pytest.mark.parametrize("n_features", [17, 100, 128, 257])
def test_trace_upper_blocked_equals_the_product_form(n_features):
    # beyond 16 features: gemm blocks of the triangle per component, the
    # components on OpenMP threads, their traces added in component order
    rng = np.random.default_rng(n_features)
    K = 3
    U = np.triu(rng.normal(size=(K, n_features, n_features)))
    M = _gram_stack(rng, K, n_features)
    with threadpool_limits(1, user_api="blas"):
        got = [_kernels.trace_upper_blocked(U, M, n_threads) for n_threads in (1, 2, 3)]
    assert got[0] == got[1] == got[2]
    ref = float(np.einsum("kij,kij->", U @ np.swapaxes(U, 1, 2), M))
    # as above: sums of the same products, none deeper than D^2 K + 2 D terms
    magnitudes = float(np.einsum("kij,kij->", np.abs(U) @ np.swapaxes(np.abs(U), 1, 2),
                                 np.abs(M)))
    bound = 2 * (n_features ** 2 * K + 2 * n_features) * 2.2e-16 * magnitudes
    assert abs(got[0] - ref) <= bound
    wrong = float(np.einsum("kij,kij->", np.swapaxes(U, 1, 2) @ U, M))
    assert abs(wrong - ref) > bound


def test_digamma_equals_scipy():
    from scipy.special import digamma

    x = np.concatenate([np.logspace(-8, 8, 4001), np.linspace(0.01, 30, 6001)])
    got = _kernels.digamma(x)
    ref = digamma(x)
    # the recurrence adds at most 10 rounded terms and the series' first
    # omitted term is below 1e-16 at x >= 10: a few ulps of max(|psi|, 1)
    assert np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1.0)) < 16 * 2.2e-16
    np.testing.assert_array_equal(_kernels.digamma(np.array([np.inf, 0.0, -1.0, np.nan])),
                                  [np.inf, np.nan, np.nan, np.nan])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_features", [2, 8, 24])
def test_log_likelihood_at_the_default_chunk(covariance_type, dtype, weighted, n_features):
    # the E-step's sum_i w_i log p_i at the chunk a fit uses (hundreds of
    # rows: the tests above use 8): a float32 vector reduction of this sum
    # came out wrong, at about 1/26 of the value, in the builds that pick the
    # instruction set through function pointers, with every statistic right
    rng = np.random.default_rng(n_features)
    params = random_params(covariance_type, 3, n_features, rng)
    X = rng.normal(size=(3000, n_features)).astype(dtype)
    sw = rng.uniform(0, 3, X.shape[0]) if weighted else None
    kp = _stats.KernelParams(params.astype(dtype), covariance_type, dtype,
                             X.astype(np.float64).mean(axis=0).astype(dtype))
    cfg = _stats.kernel_config(n_features, covariance_type, 2, 3, dtype, X.shape[0])
    assert cfg.chunk_size >= 64
    _, ll = _stats.e_step_stats(X, sw, kp, cfg)
    logp = _stats.predict_arrays(X, kp, cfg, logp=True)[0].astype(np.float64)
    expected = float(logp.sum() if sw is None else sw @ logp)
    # two orders of summing the same float64 terms: n u sum |terms|
    terms = np.abs(logp) * (1.0 if sw is None else sw)
    bound = 4 * X.shape[0] * 2.2e-16 * terms.sum()
    if sw is None and dtype == np.float32:
        # without weights the E-step sums log p_i = m_i + log s_i as
        # sum_i m_i + log prod_i s_i in float64 (gmmfast/_simd_impl.h,
        # GM(normalize)), where the prediction rounds each log p_i to
        # float32: |log p_i - fl32(m_i + logf(s_i))| <= u (|log p_i| + 2 log K),
        # u = 2^-24 (logf within an ulp, s_i in [1, K])
        u32 = 2.0 ** -24
        bound += u32 * (np.abs(logp).sum() + 2 * X.shape[0] * np.log(3))
    assert abs(ll - expected) <= bound


# ------------------------------------------- the compiled M-step of small shapes


def _shifted_stats(covariance_type, n_components, n_features, rng, scale=1.0):
    """Statistics of random data and responsibilities around random shifts
    (tied: one centre, the scatter as S2), float64, as the kernels sum them."""
    X = rng.normal(size=(60, n_features)) * scale + 3.0
    resp = rng.dirichlet(np.ones(n_components), size=60) * rng.uniform(0.5, 2, (60, 1))
    if covariance_type == "tied":
        shift = np.tile(X.mean(axis=0) + 0.1, (n_components, 1))
    else:
        shift = rng.normal(size=(n_components, n_features)) + 3.0
    R = resp.sum(axis=0)
    diff = X[None] - shift[:, None]                          # (K, n, D)
    S1 = np.einsum("nk,knd->kd", resp, diff)
    S2 = {
        "full": np.einsum("nk,knd,kne->kde", resp, diff, diff),
        "tied": np.einsum("nd,ne->de", diff[0], diff[0]) * 1.0,
        "diag": np.einsum("nk,knd->kd", resp, diff ** 2),
        "spherical": np.einsum("nk,knd->k", resp, diff ** 2),
    }[covariance_type]
    if covariance_type == "tied":  # the scatter is unweighted: every row's resp sums to w
        S2 = np.einsum("n,nd,ne->de", resp.sum(axis=1), diff[0], diff[0])
    return R, S1, np.ascontiguousarray(S2), shift


def _numpy_em_params(monkeypatch, cov, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(_covariance, "small_algebra", lambda n_features: False)
        return cov.em_params(*args, **kwargs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("anchored", [False, True])
@pytest.mark.parametrize("n_features", [1, 3, 16])
@pytest.mark.parametrize("K", [3, 9])
def test_em_m_step_equals_the_numpy_forms(monkeypatch, covariance_type, dtype, anchored,
                                          n_features, K):
    """The compiled M-step (``em_params`` up to SMALL_ALGEBRA_D features)
    against the numpy forms it replaces (``params_from_stats``,
    ``precision_cholesky``, the weights, ``log_norm``): the same formulas,
    sums of at most max(K, D) terms taken in another order, each result
    within (K + D) u of its terms' magnitudes (a few, here) times the
    covariances' condition (below 10 here): 1e-12 relative."""
    rng = np.random.default_rng(n_features + K)
    cov = _covariance.get(covariance_type)
    R, S1, S2, shift = _shifted_stats(covariance_type, K, n_features, rng)
    anchor = None
    if anchored:
        anchor = (shift + rng.normal(size=shift.shape) * 0.5).astype(dtype)
        # component 0 empty: the 10 eps guard keeps its mean at the anchor
        R[0] = 0.0
        S1[0] = 0.0
        if covariance_type != "tied":
            S2[0] = 0.0
    eps = float(np.finfo(dtype).eps)
    float32 = dtype == np.float32
    for total in (None, 123.0):
        got = cov.em_params(R, S1, S2, shift, 1e-6, eps, anchor=anchor, total=total,
                            float32=float32)
        want = _numpy_em_params(monkeypatch, cov, R, S1, S2, shift, 1e-6, eps,
                                anchor=anchor, total=total, float32=float32)
        assert want[4] is None and got[4] is not None
        for g, w in zip(got[:4], want[:4]):
            assert g.shape == w.shape and g.dtype == np.float64
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * np.abs(w).max())
        # the kernel constants of the parameters as the data's dtype holds them
        params = _stats.GMMParams(*want[:4]).astype(dtype)
        ref = _stats.log_norm(params.weights, params.precisions_cholesky, cov, n_features)
        np.testing.assert_allclose(got[4], ref, rtol=1e-13, atol=1e-13)
    # an empty component's mean stays at its anchor (without one: at the shift)
    if anchored:
        np.testing.assert_allclose(got[1][0], anchor[0], rtol=1e-6)
        plain = cov.em_params(R, S1, S2, shift, 1e-6, eps, float32=float32)
        np.testing.assert_allclose(plain[1][0], shift[0], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("float32", [False, True])
def test_em_m_step_refuses_ill_defined_covariances(covariance_type, float32):
    """A negative variance (statistics that no data gives) or a NaN: the
    compiled M-step raises scikit-learn's message, as the numpy form does."""
    rng = np.random.default_rng(0)
    cov = _covariance.get(covariance_type)
    R, S1, S2, shift = _shifted_stats(covariance_type, 2, 3, rng)
    for bad in (-1e6, np.nan):
        S2_bad = S2.copy()
        S2_bad.reshape(-1)[0] = bad
        with pytest.raises(ValueError, match="ill-defined empirical covariance") as info:
            cov.em_params(R, S1, S2_bad, shift, 0.0, 2.2e-16, float32=float32)
        assert ("float64" in str(info.value)) == float32


def _small_step_calls(covariance_type):
    """Valid arguments of the compiled per-iteration steps, K = 2, D = 3,
    with the positions of their arrays by name."""
    rng = np.random.default_rng(1)
    cov = _covariance.get(covariance_type)
    R, S1, S2, shift = _shifted_stats(covariance_type, 2, 3, rng)
    prec = cov.em_params(R, S1, S2, shift, 1e-6, 2.2e-16)[3]
    cov_prior = {"full": np.eye(3), "tied": np.eye(3), "diag": np.ones(3),
                 "spherical": np.ones(1)}[covariance_type]
    eps = 2.2e-16
    return {
        "em_m_step": ((cov.code, R, S1, S2, shift, shift.copy(), 1e-6, eps, None, False),
                      dict(R=1, S1=2, S2=3, shift=4, anchor=5)),
        "bgm_m_step": ((cov.code, R, S1, S2, shift, shift.copy(), 1e-6, eps, True, 0.5, 1.0,
                        np.zeros(3), 3.0, cov_prior, False),
                       dict(R=1, S1=2, S2=3, shift=4, anchor=5, mean_prior=11,
                            cov_prior=13)),
        "log_resp_sum": ((cov.code, R, S1, S2, prec, np.zeros(2), shift - 0.5, -10.0),
                         dict(R=1, S1=2, S2=3, prec=4, lognorm=5)
                         | ({"d": 6} if covariance_type == "tied" else {})),
    }


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("entry", ["em_m_step", "bgm_m_step", "log_resp_sum"])
def test_small_steps_refuse_arrays_they_cannot_read(covariance_type, entry):
    """The compiled per-iteration steps read their arrays through data
    pointers, not typed memoryviews (whose acquisition was most of their
    cost at 2 x 2): each array of another dtype, byte order, layout or size,
    or not an array, raises a TypeError naming it, rather than being read as
    the wrong bytes. The valid call runs (and its values are the numpy forms':
    the tests above)."""
    args, arrays = _small_step_calls(covariance_type)[entry]
    fn = getattr(_kernels, entry)
    assert fn(*args) is not None
    for name, i in arrays.items():
        a = args[i]
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],)) if a.ndim else None
        bad = [a.astype(np.float32), list(a.reshape(-1)), np.append(a.reshape(-1), 0.0),
               _swapped(a)]
        if wide is not None and a.size > 1:
            wide[..., ::2] = a
            bad.append(wide[..., ::2])          # strided: not C-contiguous
        for b in bad:
            with pytest.raises(TypeError, match=f"^{name}: "):
                fn(*args[:i], b, *args[i + 1:])
    # S1 sets K and D: a 1-d S1 is refused before anything is read
    with pytest.raises(TypeError, match="^S1: expected a 2-d"):
        fn(*args[:2], args[2].reshape(-1), *args[3:])


def _row_order_sum(rows):
    """Rows summed one after another, column by column, in plain Python
    floats: the strict row order ``reduce_slabs`` and ``thread_sum`` keep."""
    out = [float(v) for v in rows[0]]
    for row in rows[1:]:
        out = [a + float(b) for a, b in zip(out, row)]
    return np.array(out)


def _symmetrised(flat, K, D):
    """S[i, j] + S[j, i] off the diagonal, the diagonal as it is, element by
    element (with whatever lies below the diagonal)."""
    S = flat.reshape(K, D, D)
    out = np.empty_like(S)
    for k in range(K):
        for i in range(D):
            out[k, i, i] = S[k, i, i]
            for j in range(i + 1, D):
                out[k, i, j] = out[k, j, i] = S[k, i, j] + S[k, j, i]
    return out


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_threads", [1, 2, 3, 8, 9, 16])
@pytest.mark.parametrize("K, D", [(3, 4), (1, 1), (1, 3)])
def test_slabs_reduce_in_row_order(covariance_type, n_threads, K, D):
    """``alloc_stats`` and ``reduce_stats`` are one compiled call each
    (gmmfast/_kernels.pyx ``alloc_slabs``, ``reduce_slabs``): zeroed slabs in
    ``thread_slabs``' padded layout, and their sums bitwise a strict
    row-by-row sum and the full type's S[i, j] + S[j, i], in new arrays that
    share no memory with the slabs (kept accumulators are overwritten by the
    next pass). 8 or more rows of one column (K = 1; K * D = 1) are where
    numpy's ``sum(axis=0)`` would sum pairwise instead, and values below the
    diagonal check that both triangles are read. ``thread_sum`` (scatter,
    k-means) keeps the same order."""
    rng = np.random.default_rng(n_threads * 100 + K * 10 + D)
    cov = _covariance.get(covariance_type)
    cfg = KernelConfig(n_threads=n_threads, chunk_size=16, path=VECTOR)
    slabs = _stats.alloc_stats(cfg, cov, K, D)
    sizes = (K, K * D, cov.s2_size(K, D))
    for slab, size in zip(slabs, sizes):
        want = _stats.thread_slabs(n_threads, size)
        assert slab.shape == want.shape and slab.dtype == np.float64 and not slab.any()
        # magnitudes spread over 10^-8..10^8 so that the order of the sum shows
        slab[:, :size] = rng.normal(size=(n_threads, size)) * 10.0 ** rng.integers(
            -8, 9, size=(n_threads, size))
    got = _stats.reduce_stats(*slabs, cov, K, D)
    sums = [_row_order_sum(slab[:, :size]) for slab, size in zip(slabs, sizes)]
    want = [sums[0], sums[1].reshape(K, D),
            {"full": lambda: _symmetrised(sums[2], K, D), "tied": lambda: None,
             "diag": lambda: sums[2].reshape(K, D), "spherical": lambda: sums[2]}[covariance_type]()]
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        assert g.shape == w.shape and g.dtype == w.dtype
        assert np.array_equal(g.view(np.int64), np.ascontiguousarray(w).view(np.int64))
        assert not any(np.may_share_memory(g, slab) for slab in slabs)
    for slab, size, w in zip(slabs, sizes, sums):
        t = _stats.thread_sum(slab, 0, size)
        assert np.array_equal(t.view(np.int64), w.view(np.int64))


def test_slab_reduction_refuses_mismatched_rows():
    """S1 and S2 must have R's row count: extra threads' rows would otherwise
    be left out of the sums without a word. An unknown type code raises."""
    cov = _covariance.get("diag")
    cfg = KernelConfig(n_threads=2, chunk_size=16, path=VECTOR)
    R, S1, S2 = _stats.alloc_stats(cfg, cov, 2, 3)
    R3, S13, S23 = _stats.alloc_stats(KernelConfig(n_threads=3, chunk_size=16, path=VECTOR),
                                      cov, 2, 3)
    with pytest.raises(TypeError, match="^S1: expected R's 2 rows"):
        _kernels.reduce_slabs(cov.code, R, S13, S2, 2, 3)
    with pytest.raises(TypeError, match="^S2: expected R's 2 rows"):
        _kernels.reduce_slabs(cov.code, R, S1, S23, 2, 3)
    with pytest.raises(TypeError, match="^S1: expected writeable"):
        _kernels.reduce_slabs(cov.code, R3, S1, S23, 2, 3)
    with pytest.raises(ValueError, match="unknown covariance code 7"):
        _kernels.reduce_slabs(7, R, S1, S2, 2, 3)


def _swapped(a):
    """The same values in the other byte order."""
    return a.astype(a.dtype.newbyteorder())


def _unaligned(a):
    """A C-contiguous copy of ``a`` starting one byte past an aligned
    address (as pickle-5 buffers of a Dask message may)."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["vector", "blas"])
def test_e_step_refuses_arrays_it_cannot_read(covariance_type, dtype, path):
    """e_step reads its arrays through their data pointers (typed memoryviews
    were three quarters of a small E-step's fixed cost): each array of
    another dtype, byte order, size or layout, and accumulators too small,
    1-d, unaligned or read-only, raise a TypeError naming the argument,
    where reading them would give wrong sums or write out of bounds; 0
    threads or an empty block a ValueError. Inputs at an odd byte offset
    (pickle-5 buffers of a Dask message) are read in place: the same sums as
    aligned copies. On the VECTOR path and on a BLAS path with 2 threads
    (per-thread strides, and resp_lp)."""
    rng = np.random.default_rng(7)
    K, D, n = 3, 2, 50
    X = rng.normal(size=(n, D)).astype(dtype)
    kp = _stats.KernelParams(random_params(covariance_type, K, D, rng).astype(dtype),
                             covariance_type, dtype)
    code = (VECTOR if path == "vector"
            else BLAS_GEMM if covariance_type in ("diag", "spherical") else BLAS_TILES)
    t = 1 if path == "vector" else 2
    cfg = KernelConfig(n_threads=t, chunk_size=16, path=code)
    cov = kp.cov
    with_lp = path != "vector" and dtype == np.float64

    def run(**change):
        R, S1, S2 = _stats.alloc_stats(cfg, cov, K, D)
        args = dict(X=X, sample_weight=np.linspace(0.5, 2, n), means=kp.means,
                    prec=kp.prec, lognorm=kp.lognorm, center=kp.center, mproj=kp.mproj,
                    cov_type=kp.code, R=R, S1=S1, S2=S2, chunk_size=cfg.chunk_size,
                    n_threads=cfg.n_threads, path=cfg.path,
                    resp_lp=np.zeros(1) if with_lp else None)
        args.update(change)
        ll = _kernels.e_step(*args.values())
        lp = None if args["resp_lp"] is None else float(args["resp_lp"][0])
        return ll, args["R"].copy(), args["S1"].copy(), args["S2"].copy(), lp

    want = run()
    other = np.float32 if dtype == np.float64 else np.float64
    s2_cols = cov.s2_size(K, D)
    bad = {
        # (X of the other float type or width sets them: the parameters are refused)
        "X": [X.astype(np.float16), np.asfortranarray(X), X[::2], X.tolist(), _swapped(X)],
        "sample_weight": [np.ones(n, np.float32), np.ones(n + 1), np.ones((n, 2))[:, 0],
                          _swapped(np.ones(n))],
        "means": [kp.means.astype(other), np.zeros((K, D + 1), dtype), _swapped(kp.means)],
        "prec": [kp.prec.astype(other), kp.prec[:-1].copy(), _swapped(kp.prec)],
        "lognorm": [kp.lognorm.astype(np.float32), kp.lognorm[:2].copy(),
                    _swapped(kp.lognorm)],
        "center": [np.asarray(kp.center).astype(other), np.zeros(D + 1, dtype)],
        "mproj": [kp.mproj.astype(other), np.zeros((K + 1, D), dtype)],
        "R": [np.zeros((t - 1, K)), np.zeros((t, K - 1)), np.zeros((t, K), np.float32),
              np.zeros(t * K), _unaligned(np.zeros((t, K))), _swapped(np.zeros((t, K)))],
        "S1": [np.zeros((t, K * D - 1)), np.zeros((t, 2 * K * D))[:, ::2]],
    }
    readonly = np.zeros((t, s2_cols))
    readonly.flags.writeable = False
    bad["S2"] = [readonly, np.zeros((t - 1, s2_cols)), np.zeros((t, s2_cols - 1))]
    if with_lp:
        frozen = np.zeros(1)
        frozen.flags.writeable = False
        bad["resp_lp"] = [frozen, np.zeros(1, np.float32), np.zeros(2), _unaligned(np.zeros(1))]
    for name, arrays in bad.items():
        for a in arrays:
            with pytest.raises(TypeError, match=f"^{name}: "):
                run(**{name: a})
    for change in (dict(n_threads=0), dict(chunk_size=0)):
        with pytest.raises(ValueError, match="must be at least 1"):
            run(**change)
    if path == "vector":
        with pytest.raises(ValueError, match="^resp_lp: the VECTOR path"):
            run(resp_lp=np.zeros(1))
    got = run(X=_unaligned(X), sample_weight=_unaligned(np.linspace(0.5, 2, n)),
              means=_unaligned(kp.means), prec=_unaligned(kp.prec),
              lognorm=_unaligned(kp.lognorm), center=_unaligned(np.asarray(kp.center)),
              mproj=_unaligned(kp.mproj))
    assert got[0] == want[0] and got[4] == want[4]
    for g, w in zip(got[1:4], want[1:4]):
        np.testing.assert_array_equal(g, w)


def test_two_components_take_the_general_log_sum_exp_values():
    """K = 2 computes one exp() a row (the other term is exp(0) = 1): its
    responsibilities, log p and statistics equal, bit for bit, those of the
    general loop, run here as K = 3 with a third component of weight 0
    (lognorm -inf: its terms are exactly 0), on rows of every kind: usual,
    one component's density 0, every density 0 (log p = -inf) and NaN."""
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32):
        X = rng.normal(size=(300, 2)) * 3
        X[5] = [1e200 if dtype == np.float64 else 1e30, 0.0]   # every density 0
        X[7] = np.nan
        X = X.astype(dtype)
        p2 = random_params("full", 2, 2, rng)
        p2.precisions_cholesky[1] *= 40          # a narrow component: far rows underflow
        p3 = _stats.GMMParams(np.append(p2.weights, 0.0), np.vstack([p2.means, [[0, 0]]]),
                              np.concatenate([p2.covariances, np.eye(2)[None]]),
                              np.concatenate([p2.precisions_cholesky, np.eye(2)[None]]))
        outs = []
        for params in (p2, p3):
            K = params.weights.shape[0]
            kp = _stats.KernelParams(params.astype(dtype), "full", dtype)
            cfg = _stats.kernel_config(2, "full", 1, K, dtype, X.shape[0])
            with np.errstate(divide="ignore"):
                logp, resp, _ = _stats.predict_arrays(X, kp, cfg, logp=True, resp=True)
            ok = np.isfinite(X).all(axis=1)
            ok[5] = False  # a dead row's responsibilities are 1 / K
            (R, S1, S2), ll = _stats.e_step_stats(X[ok], None, kp, cfg)
            outs.append((logp, resp[:, :2], R[:2], S1[:2], S2[:2], ll))
        live = np.ones(300, bool)
        live[5] = False
        assert np.isneginf(outs[0][0][5]) and np.isnan(outs[0][0][7])
        # the E-step's log-likelihood of a dead row is -inf, of a NaN row NaN
        for row, check in ((5, np.isneginf), (7, np.isnan)):
            lls = [_stats.e_step_stats(X[[0, row, 1]], None,
                                       _stats.KernelParams(p.astype(dtype), "full", dtype),
                                       _stats.kernel_config(2, "full", 1, p.weights.shape[0],
                                                            dtype, 3))[1]
                   for p in (p2, p3)]
            assert check(lls[0]) and check(lls[1])
        assert np.array_equal(outs[0][0], outs[1][0], equal_nan=True)
        assert np.array_equal(outs[0][1][live], outs[1][1][live], equal_nan=True)
        np.testing.assert_array_equal(outs[0][1][5], [0.5, 0.5])
        for a, b in zip(outs[0][2:5], outs[1][2:5]):
            assert np.array_equal(a, b)
        assert outs[0][5] == outs[1][5] and np.isfinite(outs[0][5])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_components_with_infinite_or_nan_terms(dtype):
    """Rows whose two terms are (+inf, finite), (NaN, finite) or (finite,
    -inf), given directly to the log-sum-exp of a block (the kernels' lp
    rows): K = 2 gives the responsibilities and log p of K = 3 with a third
    term -inf (the general loop)."""
    terms = np.array([[np.inf, -1.0], [-1.0, np.inf], [np.nan, -2.0], [-2.0, np.nan],
                      [-3.0, -np.inf], [-np.inf, -3.0], [-1.0, -2.0], [-5.0, -5.0]],
                     dtype=dtype)
    outs = []
    for K in (2, 3):
        lp = np.full((K, terms.shape[0]), -np.inf, dtype=dtype)
        lp[:2] = terms.T
        resp, logp = _kernels._log_sum_exp(lp)
        outs.append((resp[:, :2], logp))
    assert np.array_equal(outs[0][1], outs[1][1], equal_nan=True)
    assert np.array_equal(outs[0][0], outs[1][0], equal_nan=True)
    assert np.isnan(outs[0][1][:4]).all() and np.isfinite(outs[0][1][4:]).all()


def test_log_likelihood_product_stays_finite_at_many_components():
    """The unweighted E-step sums log p_i as sum m_i + log prod s_i, s_i up to
    K: with 1024 identical components every s_i is exactly K, the extreme.
    On the many-component path (blocks of 256 rows) the sum is still
    finite and equals the prediction's per-row log p summed."""
    rng = np.random.default_rng(0)
    K, D = 1024, 8
    X = rng.normal(size=(600, D))
    params = _stats.GMMParams(np.full(K, 1.0 / K), np.zeros((K, D)), np.ones((K, D)),
                              np.ones((K, D)))
    kp = _stats.KernelParams(params, "diag", np.float64)
    cfg = _stats.kernel_config(D, "diag", 1, K, np.float64, X.shape[0])
    assert cfg.path == BLAS_GEMM and cfg.chunk_size == 256
    _, ll = _stats.e_step_stats(X, None, kp, cfg)
    logp = _stats.predict_arrays(X, kp, cfg, logp=True)[0]
    assert np.isfinite(ll)
    assert abs(ll - logp.sum()) <= 4 * X.shape[0] * 2.2e-16 * np.abs(logp).sum()
