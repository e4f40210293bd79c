# cython: language_level=3
"""One-pass EM block kernels.

Every kernel walks X once, in row blocks of ``chunk_size`` rows spread over
OpenMP threads. For a block it computes, per component k,

    log N(x | mu_k, Sigma_k) + log pi_k
        = lognorm_k - 1/2 ||(x - mu_k) U_k||^2,
    lognorm_k = log pi_k + sum_d log U_k[d, d] - D/2 log(2 pi),

the log-likelihood log p(x) = logsumexp_k(...), the responsibilities, and adds
the block's shifted sufficient statistics into per-thread float64 slabs:

    R_k  = sum_i w_i r_ik
    S1_k = sum_i w_i r_ik (x_i - c_k)
    S2_k = sum_i w_i r_ik (x_i - c_k)(x_i - c_k)^T    (full: upper triangle,
                                                       row-major; diag: the
                                                       diagonal; spherical:
                                                       the trace)

The shift c_k is the current mean (full, diag, spherical); tied covariance
uses one global centre c for every component and needs only R and S1 per
iteration (its scatter T = sum_i w_i (x_i - c)(x_i - c)^T comes from
``scatter``, once per fit).

Block work runs in the data's dtype (fused ``floating``); statistics and the
log-likelihood accumulate in float64. Nothing allocated here grows with
n_samples: the per-thread scratch is (chunk_size, n_components) and
(chunk_size, n_features).

Covariance type codes: 0 full, 1 tied, 2 diag, 3 spherical.
"""

cimport cython
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport sqrt
from libc.stdint cimport int64_t
from cpython.exc cimport PyErr_CheckSignals
from scipy.linalg.cython_blas cimport dtrmm, strmm, dsyrk, ssyrk

import numpy as np

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define GMMFAST_HAVE_OPENMP 1
    static int gmmfast_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define GMMFAST_HAVE_OPENMP 0
    static int gmmfast_max_threads(void) { return 1; }
    #endif
    """
    int GMMFAST_HAVE_OPENMP
    int gmmfast_max_threads() noexcept nogil

ctypedef Py_ssize_t isize

cdef extern from "_simd.h" nogil:
    int GM_SMALL_D_MAX
    int GM_PORTABLE_BUILD
    const char* GM_ISA_DISPATCH
    int64_t scratch_size_d(int64_t nb, int64_t D, int64_t K)
    int64_t scratch_size_f(int64_t nb, int64_t D, int64_t K)
    double block_d(int cov_type, const double* x, int64_t nb, int64_t D, int64_t K,
                   const double* means, const double* prec, const double* lognorm,
                   const double* center, const double* mproj, const double* sw,
                   double* scratch, double* R, double* S1, double* S2,
                   double* out_logp, double* out_resp, int64_t* out_labels)
    double block_f(int cov_type, const float* x, int64_t nb, int64_t D, int64_t K,
                   const float* means, const float* prec, const double* lognorm,
                   const float* center, const float* mproj, const double* sw,
                   float* scratch, double* R, double* S1, double* S2,
                   float* out_logp, float* out_resp, int64_t* out_labels)
    void block_stats_d(int cov_type, const double* x, int64_t nb, int64_t D, int64_t K,
                       const double* wr, const double* shift, double* scratch,
                       double* R, double* S1, double* S2)
    void block_stats_f(int cov_type, const float* x, int64_t nb, int64_t D, int64_t K,
                       const float* wr, const float* shift, float* scratch,
                       double* R, double* S1, double* S2)
    double normalize_block_d(double* lp, int64_t nb, int64_t K, const double* sw,
                             double* out_logp, double* out_resp, int64_t* out_labels,
                             int weight_resp)
    double normalize_block_f(float* lp, int64_t nb, int64_t K, const double* sw,
                             float* out_logp, float* out_resp, int64_t* out_labels,
                             int weight_resp)
    void rows_to_lp_d(const double* y, int64_t nb, int64_t D, double c, double* lp_k)
    void rows_to_lp_f(const float* y, int64_t nb, int64_t D, double c, float* lp_k)
    void tied_rows_to_lp_d(const double* z, int64_t nb, int64_t D, int64_t K,
                           const double* mproj, const double* lognorm, double* lp)
    void tied_rows_to_lp_f(const float* z, int64_t nb, int64_t D, int64_t K,
                           const float* mproj, const double* lognorm, float* lp)
    void tied_stats_rows_d(const double* x, int64_t nb, int64_t D, int64_t K,
                           const double* wr, const double* center, double* R,
                           double* S1, double* dbuf)
    void tied_stats_rows_f(const float* x, int64_t nb, int64_t D, int64_t K,
                           const float* wr, const float* center, double* R,
                           double* S1, float* dbuf)
    void scale_rows_d(const double* x, int64_t nb, int64_t D, const double* mu,
                      const double* r, double* buf, double* Rk, double* S1k, double* s1acc)
    void scale_rows_f(const float* x, int64_t nb, int64_t D, const float* mu,
                      const float* r, float* buf, double* Rk, double* S1k, float* s1acc)
    int64_t gram_scratch_d(int64_t nb, int64_t D)
    int64_t gram_scratch_f(int64_t nb, int64_t D)
    void stats_gram_d(const double* x, int64_t nb, int64_t D, int64_t K,
                      const double* wr, const double* means, double* scratch,
                      double* R, double* S1, double* S2)
    void stats_gram_f(const float* x, int64_t nb, int64_t D, int64_t K,
                      const float* wr, const float* means, float* scratch,
                      double* R, double* S1, double* S2)
    void gm_exp_array_d(const double* x, double* y, int64_t n)
    void gm_log_array_d(const double* x, double* y, int64_t n)
    void gm_exp_array_f(const float* x, float* y, int64_t n)
    void gm_log_array_f(const float* x, float* y, int64_t n)

SMALL_D_MAX = GM_SMALL_D_MAX

cdef enum:
    FULL = 0
    TIED = 1
    DIAG = 2
    SPHERICAL = 3

# BLAS path: the scatter S2 by our register tiles up to this many features,
# by BLAS syrk above (measured crossover; see README "How it works").
cdef isize GRAM_MAX_FEATURES = 384


def _set_gram_max_features(isize value):
    """Change the tiles/syrk crossover (benchmarks only)."""
    global GRAM_MAX_FEATURES
    GRAM_MAX_FEATURES = value


# Rough amount of work (in multiply-adds) handed to one OpenMP region before
# control returns to Python to check for Ctrl-C.
cdef isize WORK_PER_CALL = 1 << 30


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(GMMFAST_HAVE_OPENMP)


def debug_build():
    """True when compiled with GMMFAST_DEBUG=1 (bounds checks on)."""
    return bool(GMMFAST_DEBUG)


def portable_build():
    """True when the vector kernels are the plain-C path (GMMFAST_PORTABLE=1,
    or a compiler without GCC vector extensions)."""
    return bool(GM_PORTABLE_BUILD)


def isa_dispatch():
    """How the kernels pick an instruction set at load time: "target_clones"
    (ifunc), "cpu_supports" (function pointers), or "" (compiled once)."""
    return GM_ISA_DISPATCH.decode()


def omp_max_threads():
    """omp_get_max_threads() (1 without OpenMP); honours OMP_NUM_THREADS."""
    return gmmfast_max_threads()


# ---------------------------------------------------------------------------
# Small helpers (nogil)
# ---------------------------------------------------------------------------

cdef inline void _trmm_right_upper(floating* buf, const floating* U,
                                   int nb, int D) noexcept nogil:
    """buf (nb, D) := buf @ U, U (D, D) upper triangular; both row-major.

    Column-major, buf is buf^T (D x nb) and U's storage is U^T (lower), so
    this is B := U^T B with side='L', uplo='L'.
    """
    cdef char side = b'L'
    cdef char uplo = b'L'
    cdef char trans = b'N'
    cdef char diag = b'N'
    cdef floating one = 1.0
    if floating is double:
        dtrmm(&side, &uplo, &trans, &diag, &D, &nb, &one, <double*>U, &D,
              buf, &D)
    else:
        strmm(&side, &uplo, &trans, &diag, &D, &nb, &one, <float*>U, &D,
              buf, &D)


cdef inline void _syrk_upper(const floating* buf, floating* C, int nb, int D,
                             floating beta) noexcept nogil:
    """C (D, D) := beta C + buf^T @ buf, buf (nb, D); row-major upper triangle.

    Column-major, buf is A = buf^T (D x nb) and C := A A^T; uplo='L' there is
    the row-major upper triangle.
    """
    cdef char uplo = b'L'
    cdef char trans = b'N'
    cdef floating one = 1.0
    if floating is double:
        dsyrk(&uplo, &trans, &D, &nb, &one, <double*>buf, &D, &beta, C, &D)
    else:
        ssyrk(&uplo, &trans, &D, &nb, &one, <float*>buf, &D, &beta, C, &D)


# ---------------------------------------------------------------------------
# Block kernels (nogil). A block is rows [0, nb) starting at pointer x.
# The vectorised path (every type; full and tied up to GM_SMALL_D_MAX
# features) is C in _simd.h; the BLAS path (full and tied above that) is here.
# ---------------------------------------------------------------------------

cdef inline void _rows_to_lp(const floating* y, isize nb, isize D, double c,
                             floating* lp_k) noexcept nogil:
    if floating is double:
        rows_to_lp_d(y, nb, D, c, lp_k)
    else:
        rows_to_lp_f(y, nb, D, c, lp_k)


cdef inline double _normalize(floating* lp, isize nb, isize K, const double* sw,
                              floating* out_logp, floating* out_resp,
                              int64_t* out_labels, bint weight_resp) noexcept nogil:
    """lp (K, nb) followed by three (nb,) scratch rows."""
    if floating is double:
        return normalize_block_d(lp, nb, K, sw, out_logp, out_resp, out_labels, weight_resp)
    else:
        return normalize_block_f(lp, nb, K, sw, out_logp, out_resp, out_labels, weight_resp)


cdef isize _scratch_size(bint use_blas, isize nb, isize D, isize K, bint is_double):
    """Per-thread scratch (elements) for _block and _block_stats_given."""
    cdef isize vec = scratch_size_d(nb, D, K) if is_double else scratch_size_f(nb, D, K)
    cdef isize gram = gram_scratch_d(nb, D) if is_double else gram_scratch_f(nb, D)
    cdef isize blas = (K + 3) * nb + max(nb * D + D * D + D, gram)
    # stats_from_resp keeps the weighted responsibilities (K, nb) in front
    return K * nb + (blas if blas > vec else vec)


cdef void _block_stats_given(
    int cov_type, bint use_blas,
    const floating* x,          # IN (nb, D)
    isize nb, isize D, isize K,
    const floating* wr,         # IN (K, nb) w_i * r_ik
    const floating* shift,      # IN (K, D) c_k (tied: every row the centre)
    const floating* center,     # IN (D,) tied centre
    floating* scratch,          # scratch, _scratch_size elements
    double* R, double* S1, double* S2,  # OUT += statistics
) noexcept nogil:
    if not use_blas:
        if floating is double:
            block_stats_d(cov_type, x, nb, D, K, wr, shift, scratch, R, S1, S2)
        else:
            block_stats_f(cov_type, x, nb, D, K, wr, shift, scratch, R, S1, S2)
        return
    if cov_type == TIED:
        if floating is double:
            tied_stats_rows_d(x, nb, D, K, wr, center, R, S1, scratch)
        else:
            tied_stats_rows_f(x, nb, D, K, wr, center, R, S1, scratch)
        return
    if D <= GRAM_MAX_FEATURES:
        # S2_k += sum_i r_ik (x_i - c_k)(x_i - c_k)^T by register tiles (C)
        if floating is double:
            stats_gram_d(x, nb, D, K, wr, shift, scratch, R, S1, S2)
        else:
            stats_gram_f(x, nb, D, K, wr, shift, scratch, R, S1, S2)
        return
    # larger D: syrk's packing is amortised and it runs near trmm's speed
    cdef isize k, j, l
    cdef floating* buf = scratch
    cdef floating* s2blk = buf + nb * D
    cdef floating* s1acc = s2blk + D * D
    cdef double* S2k
    for k in range(K):
        # buf = sqrt(r) (x - c_k); R_k, S1_k accumulated on the way
        if floating is double:
            scale_rows_d(x, nb, D, shift + k * D, wr + k * nb, buf, R + k, S1 + k * D, s1acc)
        else:
            scale_rows_f(x, nb, D, shift + k * D, wr + k * nb, buf, R + k, S1 + k * D, s1acc)
        # S2_k += buf^T buf  (symmetric rank-nb update, upper triangle)
        if floating is double:
            _syrk_upper(buf, S2 + k * D * D, <int>nb, <int>D, 1.0)
        else:
            _syrk_upper(buf, s2blk, <int>nb, <int>D, 0.0)
            S2k = S2 + k * D * D
            for j in range(D):
                for l in range(j, D):
                    S2k[j * D + l] += s2blk[j * D + l]


cdef double _block(
    int cov_type, bint use_blas,
    const floating* x,          # IN (nb, D) block of X
    isize nb, isize D, isize K,
    const floating* means,      # IN (K, D)
    const floating* prec,       # IN precisions_cholesky, flat
    const double* lognorm,      # IN (K,)
    const floating* center,     # IN (D,) tied centre
    const floating* mproj,      # IN (K, D) tied (mu_k - c) U
    const double* sw,           # IN (nb,) sample weights or NULL
    floating* scratch,          # scratch, _scratch_size elements
    double* R, double* S1, double* S2,   # OUT += statistics, R NULL: none
    floating* out_logp,         # OUT (nb,) or NULL
    floating* out_resp,         # OUT (nb, K) or NULL
    int64_t* out_labels,        # OUT (nb,) or NULL
) noexcept nogil:
    """Log-probabilities, log-likelihood, responsibilities and statistics of
    one block. Returns sum_i w_i log p(x_i)."""
    cdef isize i, j, k
    cdef floating* lp
    cdef floating* buf
    cdef const floating* mu
    cdef double ll
    if not use_blas:
        if floating is double:
            return block_d(cov_type, x, nb, D, K, means, prec, lognorm, center, mproj,
                           sw, scratch, R, S1, S2, out_logp, out_resp, out_labels)
        else:
            return block_f(cov_type, x, nb, D, K, means, prec, lognorm, center, mproj,
                           sw, scratch, R, S1, S2, out_logp, out_resp, out_labels)
    lp = scratch                    # (K, nb) and three (nb,) rows for _normalize
    buf = scratch + (K + 3) * nb    # (nb, D)
    if cov_type == FULL:
        for k in range(K):
            mu = means + k * D
            for i in range(nb):
                for j in range(D):
                    buf[i * D + j] = x[i * D + j] - mu[j]
            # buf := (x - mu_k) U_k ; ||row||^2 = Mahalanobis distance
            _trmm_right_upper(buf, prec + k * D * D, <int>nb, <int>D)
            _rows_to_lp(buf, nb, D, lognorm[k], lp + k * nb)
    else:  # TIED: z = (x - c) U, then ||z - (mu_k - c) U||^2
        for i in range(nb):
            for j in range(D):
                buf[i * D + j] = x[i * D + j] - center[j]
        _trmm_right_upper(buf, prec, <int>nb, <int>D)
        if floating is double:
            tied_rows_to_lp_d(buf, nb, D, K, mproj, lognorm, lp)
        else:
            tied_rows_to_lp_f(buf, nb, D, K, mproj, lognorm, lp)
    ll = _normalize(lp, nb, K, sw, out_logp, out_resp, out_labels, R != NULL)
    if R != NULL:
        _block_stats_given(cov_type, True, x, nb, D, K, lp, means, center,
                           buf, R, S1, S2)
    return ll


cdef void _block_scatter(
    bint use_blas,
    const floating* x,          # IN (nb, D)
    isize nb, isize D,
    const double* sw,           # IN (nb,) or NULL
    const floating* center,     # IN (D,)
    double* T,                  # OUT += (D, D) upper: sum w (x - c)(x - c)^T
    floating* buf,              # scratch (nb, D)
    floating* s2blk,            # scratch (D, D)
) noexcept nogil:
    cdef isize i, j, l
    cdef floating sr
    cdef double w, rd
    if use_blas:
        for i in range(nb):
            sr = 1
            if sw != NULL:
                sr = <floating>sqrt(sw[i])
            for j in range(D):
                buf[i * D + j] = sr * (x[i * D + j] - center[j])
        if floating is double:
            _syrk_upper(buf, T, <int>nb, <int>D, 1.0)
        else:
            _syrk_upper(buf, s2blk, <int>nb, <int>D, 0.0)
            for j in range(D):
                for l in range(j, D):
                    T[j * D + l] += s2blk[j * D + l]
        return
    for i in range(nb):
        w = 1
        if sw != NULL:
            w = sw[i]
            if w == 0:
                continue
        for j in range(D):
            buf[j] = x[i * D + j] - center[j]
        for j in range(D):
            rd = w * <double>buf[j]
            for l in range(j, D):
                T[j * D + l] += rd * buf[l]


# ---------------------------------------------------------------------------
# Python-facing wrappers. Inputs are validated by the caller (gmmfast._em).
# ---------------------------------------------------------------------------

cdef isize _chunks_per_call(isize chunk_size, isize D, isize K, int n_threads):
    """Blocks per OpenMP region: about WORK_PER_CALL multiply-adds, and at
    least one block per thread (the caller sizes blocks so that one block is
    never more than a fraction of a second)."""
    cdef isize per_row = K * (D * D + 8) + 8
    cdef isize c = WORK_PER_CALL // (chunk_size * per_row)
    if c < n_threads:
        c = n_threads
    return c


cdef bint _path(int cov_type, isize D, bint use_blas):
    """The BLAS path serves full and tied only; full above GM_SMALL_D_MAX
    features has no vectorised kernel and always takes it."""
    if cov_type == FULL and D > GM_SMALL_D_MAX:
        return True
    return use_blas and (cov_type == FULL or cov_type == TIED)


def e_step(
    const floating[:, ::1] X,           # IN (n_samples, n_features)
    const double[::1] sample_weight,    # IN (n_samples,) or None
    const floating[:, ::1] means,       # IN (n_components, n_features)
    const floating[::1] prec,           # IN precisions_cholesky_.ravel()
    const double[::1] lognorm,          # IN (n_components,)
    const floating[::1] center,         # IN (n_features,) tied centre
    const floating[:, ::1] mproj,       # IN (n_components, n_features) tied
    int cov_type,
    double[:, ::1] R,                   # OUT += (n_threads, n_components)
    double[:, ::1] S1,                  # OUT += (n_threads, n_components * n_features)
    double[:, ::1] S2,                  # OUT += (n_threads, size of S2)
    isize chunk_size,
    int n_threads,
    bint use_blas,
):
    """E-step and sufficient statistics in one pass over X.

    Adds the statistics of X into the per-thread slabs R, S1, S2 (thread t
    owns row t) and returns sum_i w_i log p(x_i) (float64).
    """
    cdef isize n = X.shape[0]
    cdef isize D = X.shape[1]
    cdef isize K = means.shape[0]
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize per_call = _chunks_per_call(chunk_size, D, K, n_threads)
    cdef isize c0, c1, c, start, nb
    cdef int tid
    cdef bint blas = _path(cov_type, D, use_blas)
    cdef const double* sw = NULL
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] scratch = np.empty(
        (n_threads, _scratch_size(blas, chunk_size, D, K, floating is double)), dtype)
    cdef double[:, ::1] ll = np.zeros((n_threads, 8))  # a cache line per thread
    cdef double total = 0.0
    if n == 0:
        return 0.0
    if sample_weight is not None:
        sw = &sample_weight[0]

    for c0 in range(0, n_chunks, per_call):
        c1 = min(c0 + per_call, n_chunks)
        # never more threads than blocks: idle OpenMP threads only spin
        with nogil, parallel(num_threads=min(n_threads, c1 - c0)):
            tid = threadid()
            for c in prange(c0, c1, schedule='static'):
                start = c * chunk_size
                nb = min(chunk_size, n - start)
                ll[tid, 0] += _block(cov_type, blas, &X[start, 0], nb, D, K,
                                  &means[0, 0], &prec[0], &lognorm[0],
                                  &center[0], &mproj[0, 0],
                                  sw + start if sw != NULL else NULL,
                                  &scratch[tid, 0], &R[tid, 0], &S1[tid, 0], &S2[tid, 0],
                                  NULL, NULL, NULL)
        PyErr_CheckSignals()

    for tid in range(n_threads):
        total += ll[tid, 0]
    return total


def predict(
    const floating[:, ::1] X,           # IN (n_samples, n_features)
    const floating[:, ::1] means,       # IN (n_components, n_features)
    const floating[::1] prec,           # IN precisions_cholesky_.ravel()
    const double[::1] lognorm,          # IN (n_components,)
    const floating[::1] center,         # IN (n_features,) tied centre
    const floating[:, ::1] mproj,       # IN (n_components, n_features) tied
    int cov_type,
    floating[::1] out_logp,             # OUT (n_samples,) log p(x), or None
    floating[:, ::1] out_resp,          # OUT (n_samples, n_components), or None
    int64_t[::1] out_labels,            # OUT (n_samples,) argmax, or None
    isize chunk_size,
    int n_threads,
    bint use_blas,
):
    """Log-likelihoods, responsibilities and/or labels, one pass, no statistics."""
    cdef isize n = X.shape[0]
    cdef isize D = X.shape[1]
    cdef isize K = means.shape[0]
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize per_call = _chunks_per_call(chunk_size, D, K, n_threads)
    cdef isize c0, c1, c, start, nb
    cdef int tid
    cdef bint blas = _path(cov_type, D, use_blas)
    cdef floating* logp_ptr = NULL
    cdef floating* resp_ptr = NULL
    cdef int64_t* lab_ptr = NULL
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] scratch = np.empty(
        (n_threads, _scratch_size(blas, chunk_size, D, K, floating is double)), dtype)
    if n == 0:
        return
    if out_logp is not None:
        logp_ptr = &out_logp[0]
    if out_resp is not None:
        resp_ptr = &out_resp[0, 0]
    if out_labels is not None:
        lab_ptr = &out_labels[0]

    for c0 in range(0, n_chunks, per_call):
        c1 = min(c0 + per_call, n_chunks)
        # never more threads than blocks: idle OpenMP threads only spin
        with nogil, parallel(num_threads=min(n_threads, c1 - c0)):
            tid = threadid()
            for c in prange(c0, c1, schedule='static'):
                start = c * chunk_size
                nb = min(chunk_size, n - start)
                _block(cov_type, blas, &X[start, 0], nb, D, K,
                       &means[0, 0], &prec[0], &lognorm[0], &center[0], &mproj[0, 0],
                       NULL, &scratch[tid, 0], NULL, NULL, NULL,
                       logp_ptr + start if logp_ptr != NULL else NULL,
                       resp_ptr + start * K if resp_ptr != NULL else NULL,
                       lab_ptr + start if lab_ptr != NULL else NULL)
        PyErr_CheckSignals()


def stats_from_resp(
    const floating[:, ::1] X,           # IN (n_samples, n_features)
    const floating[:, ::1] resp,        # IN (n_samples, n_components)
    const double[::1] sample_weight,    # IN (n_samples,) or None
    const floating[:, ::1] shift,       # IN (n_components, n_features) c_k
    const floating[::1] center,         # IN (n_features,) tied centre
    int cov_type,
    double[:, ::1] R,                   # OUT += (n_threads, n_components)
    double[:, ::1] S1,                  # OUT += (n_threads, n_components * n_features)
    double[:, ::1] S2,                  # OUT += (n_threads, size of S2)
    isize chunk_size,
    int n_threads,
    bint use_blas,
):
    """Sufficient statistics of X for given responsibilities (initialisation).

    For tied covariance every row of ``shift`` must be ``center``.
    """
    cdef isize n = X.shape[0]
    cdef isize D = X.shape[1]
    cdef isize K = resp.shape[1]
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize c, start, nb, i, k
    cdef int tid
    cdef bint blas = _path(cov_type, D, use_blas)
    cdef const double* sw = NULL
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] scratch = np.empty(
        (n_threads, _scratch_size(blas, chunk_size, D, K, floating is double)), dtype)
    cdef floating* wr
    if n == 0:
        return
    if sample_weight is not None:
        sw = &sample_weight[0]
    with nogil, parallel(num_threads=min(n_threads, n_chunks)):
        tid = threadid()
        for c in prange(n_chunks, schedule='static'):
            start = c * chunk_size
            nb = min(chunk_size, n - start)
            wr = &scratch[tid, 0]       # (K, nb)
            for i in range(nb):
                for k in range(K):
                    if sw != NULL:
                        wr[k * nb + i] = <floating>(resp[start + i, k] * sw[start + i])
                    else:
                        wr[k * nb + i] = resp[start + i, k]
            _block_stats_given(cov_type, blas, &X[start, 0], nb, D, K, wr,
                               &shift[0, 0], &center[0], wr + K * nb,
                               &R[tid, 0], &S1[tid, 0], &S2[tid, 0])


def scatter(
    const floating[:, ::1] X,           # IN (n_samples, n_features)
    const double[::1] sample_weight,    # IN (n_samples,) or None
    const floating[::1] center,         # IN (n_features,)
    double[:, ::1] T,                   # OUT += (n_threads, n_features**2) upper
    isize chunk_size,
    int n_threads,
    bint use_blas,
):
    """T += sum_i w_i (x_i - c)(x_i - c)^T (row-major upper triangle)."""
    cdef isize n = X.shape[0]
    cdef isize D = X.shape[1]
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize per_call = _chunks_per_call(chunk_size, D, 1, n_threads)
    cdef isize c0, c1, c, start, nb
    cdef int tid
    cdef const double* sw = NULL
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] buf_scratch = np.empty((n_threads, chunk_size * D), dtype)
    cdef floating[:, ::1] s2_scratch = np.empty((n_threads, D * D), dtype)
    if n == 0:
        return
    if sample_weight is not None:
        sw = &sample_weight[0]
    for c0 in range(0, n_chunks, per_call):
        c1 = min(c0 + per_call, n_chunks)
        # never more threads than blocks: idle OpenMP threads only spin
        with nogil, parallel(num_threads=min(n_threads, c1 - c0)):
            tid = threadid()
            for c in prange(c0, c1, schedule='static'):
                start = c * chunk_size
                nb = min(chunk_size, n - start)
                _block_scatter(use_blas, &X[start, 0], nb, D,
                               sw + start if sw != NULL else NULL,
                               &center[0], &T[tid, 0],
                               &buf_scratch[tid, 0], &s2_scratch[tid, 0])
        PyErr_CheckSignals()


def _exp(x):
    """The kernels' vectorised exp() (for tests): float64 or float32 array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    cdef double[::1] xd, yd
    cdef float[::1] xf, yf
    if x.dtype == np.float64:
        xd, yd = x.reshape(-1), y.reshape(-1)
        gm_exp_array_d(&xd[0], &yd[0], xd.shape[0])
    else:
        xf, yf = x.reshape(-1), y.reshape(-1)
        gm_exp_array_f(&xf[0], &yf[0], xf.shape[0])
    return y


def _log(x):
    """The kernels' vectorised log() (for tests): float64 or float32 array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    cdef double[::1] xd, yd
    cdef float[::1] xf, yf
    if x.dtype == np.float64:
        xd, yd = x.reshape(-1), y.reshape(-1)
        gm_log_array_d(&xd[0], &yd[0], xd.shape[0])
    else:
        xf, yf = x.reshape(-1), y.reshape(-1)
        gm_log_array_f(&xf[0], &yf[0], xf.shape[0])
    return y
