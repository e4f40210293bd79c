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
from libc.math cimport exp, expf, log, logf, sqrt, sqrtf, INFINITY
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

cdef enum:
    FULL = 0
    TIED = 1
    DIAG = 2
    SPHERICAL = 3

# Rough amount of work (in multiply-adds) handed to one OpenMP region before
# control returns to Python to check for Ctrl-C.
cdef isize WORK_PER_CALL = 1 << 25


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(GMMFAST_HAVE_OPENMP)


def debug_build():
    """True when compiled with GMMFAST_DEBUG=1 (bounds checks on)."""
    return bool(GMMFAST_DEBUG)


def omp_max_threads():
    """omp_get_max_threads() (1 without OpenMP); honours OMP_NUM_THREADS."""
    return gmmfast_max_threads()


# ---------------------------------------------------------------------------
# Small helpers (nogil)
# ---------------------------------------------------------------------------

cdef inline floating _exp(floating v) noexcept nogil:
    if floating is double:
        return exp(v)
    else:
        return expf(v)


cdef inline floating _log(floating v) noexcept nogil:
    if floating is double:
        return log(v)
    else:
        return logf(v)


cdef inline floating _sqrt(floating v) noexcept nogil:
    if floating is double:
        return sqrt(v)
    else:
        return sqrtf(v)


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
# ---------------------------------------------------------------------------

cdef void _block_logprob(
    int cov_type, bint use_blas,
    const floating* x,          # IN (nb, D) block of X
    isize nb, isize D, isize K,
    const floating* means,      # IN (K, D) means (unused for tied)
    const floating* prec,       # IN precisions_cholesky, flat: full (K, D, D),
                                #    tied (D, D), diag (K, D), spherical (K,)
    const double* lognorm,      # IN (K,) log pi_k + log det U_k - D/2 log 2pi
    const floating* center,     # IN (D,) tied: the global centre c
    const floating* mproj,      # IN (K, D) tied: (mu_k - c) @ U
    floating* lp,               # OUT (nb, K) weighted log-probabilities
    floating* buf,              # scratch (nb, D)
) noexcept nogil:
    cdef isize i, j, l, k
    cdef floating s, y, dv
    cdef const floating* xi
    cdef const floating* mu
    cdef const floating* U
    cdef floating* d

    if cov_type == FULL:
        if use_blas:
            for k in range(K):
                mu = means + k * D
                for i in range(nb):
                    for j in range(D):
                        buf[i * D + j] = x[i * D + j] - mu[j]
                # buf := (x - mu_k) U_k ; ||row||^2 = Mahalanobis distance
                _trmm_right_upper(buf, prec + k * D * D, <int>nb, <int>D)
                for i in range(nb):
                    s = 0
                    for j in range(D):
                        s = s + buf[i * D + j] * buf[i * D + j]
                    lp[i * K + k] = <floating>(lognorm[k] - 0.5 * s)
        else:
            for i in range(nb):
                xi = x + i * D
                d = buf + i * D
                for k in range(K):
                    mu = means + k * D
                    U = prec + k * D * D
                    for j in range(D):
                        d[j] = xi[j] - mu[j]
                    # y_j = sum_{l <= j} d_l U[l, j];  s = ||d U||^2
                    s = 0
                    for j in range(D):
                        y = 0
                        for l in range(j + 1):
                            y = y + d[l] * U[l * D + j]
                        s = s + y * y
                    lp[i * K + k] = <floating>(lognorm[k] - 0.5 * s)
    elif cov_type == TIED:
        # z = (x - c) U ; ||(x - mu_k) U||^2 = ||z - (mu_k - c) U||^2
        if use_blas:
            for i in range(nb):
                for j in range(D):
                    buf[i * D + j] = x[i * D + j] - center[j]
            _trmm_right_upper(buf, prec, <int>nb, <int>D)
        else:
            for i in range(nb):
                xi = x + i * D
                d = buf + i * D
                for j in range(D):
                    d[j] = xi[j] - center[j]
                # in place, from the last column down: z_j needs d_l, l <= j
                for j in range(D - 1, -1, -1):
                    y = 0
                    for l in range(j + 1):
                        y = y + d[l] * prec[l * D + j]
                    d[j] = y
        for i in range(nb):
            d = buf + i * D
            for k in range(K):
                mu = mproj + k * D
                s = 0
                for j in range(D):
                    dv = d[j] - mu[j]
                    s = s + dv * dv
                lp[i * K + k] = <floating>(lognorm[k] - 0.5 * s)
    elif cov_type == DIAG:
        for i in range(nb):
            xi = x + i * D
            for k in range(K):
                mu = means + k * D
                U = prec + k * D
                s = 0
                for j in range(D):
                    dv = (xi[j] - mu[j]) * U[j]
                    s = s + dv * dv
                lp[i * K + k] = <floating>(lognorm[k] - 0.5 * s)
    else:  # SPHERICAL
        for i in range(nb):
            xi = x + i * D
            for k in range(K):
                mu = means + k * D
                s = 0
                for j in range(D):
                    dv = xi[j] - mu[j]
                    s = s + dv * dv
                lp[i * K + k] = <floating>(lognorm[k] - 0.5 * s * prec[k] * prec[k])


cdef double _block_normalize(
    floating* lp,               # IN (nb, K) weighted log-probabilities
                                # OUT (nb, K) w_i * r_ik
    isize nb, isize K,
    const double* sw,           # IN (nb,) sample weights or NULL (all 1)
    floating* out_logp,         # OUT (nb,) log p(x_i), or NULL
    long long* out_labels,      # OUT (nb,) argmax_k, or NULL
    bint weight_resp,           # multiply the responsibilities by w_i
) noexcept nogil:
    """log p(x) = logsumexp_k lp; lp := w * exp(lp - log p). Returns sum w log p."""
    cdef isize i, k, kmax
    cdef floating m, e, s, logp, inv, w
    cdef floating* row
    cdef double ll = 0.0
    for i in range(nb):
        row = lp + i * K
        m = row[0]
        kmax = 0
        for k in range(1, K):
            if row[k] > m:
                m = row[k]
                kmax = k
        if out_labels != NULL:
            out_labels[i] = kmax
        w = 1
        if sw != NULL:
            w = <floating>sw[i]
        if not (m > -INFINITY):
            # every component has zero density here: no information
            logp = -INFINITY
            for k in range(K):
                row[k] = 1.0 / K
        else:
            s = 0
            for k in range(K):
                e = _exp(row[k] - m)
                row[k] = e
                s = s + e
            logp = m + _log(s)
            inv = 1 / s
            for k in range(K):
                row[k] = row[k] * inv
        if weight_resp and sw != NULL:
            for k in range(K):
                row[k] = row[k] * w
        if out_logp != NULL:
            out_logp[i] = logp
        if sw == NULL:
            ll += logp
        elif sw[i] != 0:
            ll += sw[i] * logp
    return ll


cdef void _block_stats(
    int cov_type, bint use_blas,
    const floating* x,          # IN (nb, D)
    isize nb, isize D, isize K,
    const floating* wr,         # IN (nb, K) w_i * r_ik
    const floating* shift,      # IN (K, D) per-component shift c_k (not tied)
    const floating* center,     # IN (D,) tied: global shift c
    double* R,                  # OUT += (K,)
    double* S1,                 # OUT += (K, D)
    double* S2,                 # OUT += full (K, D, D) upper; diag (K, D);
                                #        spherical (K,); tied: unused
    floating* buf,              # scratch (nb, D)
    floating* s2blk,            # scratch (D, D) (float32 BLAS path)
) noexcept nogil:
    cdef isize i, j, l, k
    cdef floating r, sr
    cdef double rd, acc, rk
    cdef const floating* xi
    cdef const floating* mu
    cdef floating* d
    cdef double* S2k

    if cov_type == FULL and use_blas:
        for k in range(K):
            mu = shift + k * D
            rk = 0
            for i in range(nb):
                r = wr[i * K + k]
                rk += r
                sr = _sqrt(r)
                for j in range(D):
                    rd = x[i * D + j] - mu[j]
                    S1[k * D + j] += r * rd
                    buf[i * D + j] = <floating>(sr * rd)
            R[k] += rk
            # S2_k += sum_i r_i (x_i - c_k)(x_i - c_k)^T  (symmetric rank-nb update)
            if floating is double:
                _syrk_upper(buf, S2 + k * D * D, <int>nb, <int>D, 1.0)
            else:
                _syrk_upper(buf, s2blk, <int>nb, <int>D, 0.0)
                S2k = S2 + k * D * D
                for j in range(D):
                    for l in range(j, D):
                        S2k[j * D + l] += s2blk[j * D + l]
        return

    if cov_type == TIED:
        for i in range(nb):
            xi = x + i * D
            d = buf + i * D
            for j in range(D):
                d[j] = xi[j] - center[j]
            for k in range(K):
                r = wr[i * K + k]
                if r == 0:
                    continue
                R[k] += r
                for j in range(D):
                    S1[k * D + j] += r * <double>d[j]
        return

    for i in range(nb):
        xi = x + i * D
        d = buf + i * D
        for k in range(K):
            r = wr[i * K + k]
            if r == 0:
                continue
            R[k] += r
            mu = shift + k * D
            for j in range(D):
                d[j] = xi[j] - mu[j]
            if cov_type == FULL:
                S2k = S2 + k * D * D
                for j in range(D):
                    rd = r * <double>d[j]
                    S1[k * D + j] += rd
                    for l in range(j, D):
                        S2k[j * D + l] += rd * d[l]
            elif cov_type == DIAG:
                for j in range(D):
                    rd = r * <double>d[j]
                    S1[k * D + j] += rd
                    S2[k * D + j] += rd * d[j]
            else:  # SPHERICAL
                acc = 0
                for j in range(D):
                    rd = r * <double>d[j]
                    S1[k * D + j] += rd
                    acc += rd * d[j]
                S2[k] += acc


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
    cdef isize per_row = K * (D * D + 8) + 8
    cdef isize c = WORK_PER_CALL // (chunk_size * per_row)
    if c < 4 * n_threads:
        c = 4 * n_threads
    return c


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
    cdef const double* sw = NULL
    cdef const double* swb
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] lp_scratch = np.empty((n_threads, chunk_size * K), dtype)
    cdef floating[:, ::1] buf_scratch = np.empty((n_threads, chunk_size * D), dtype)
    cdef floating[:, ::1] s2_scratch = np.empty((n_threads, D * D), dtype)
    cdef double[::1] ll = np.zeros(n_threads)
    cdef double total = 0.0
    if n == 0:
        return 0.0
    if sample_weight is not None:
        sw = &sample_weight[0]

    for c0 in range(0, n_chunks, per_call):
        c1 = min(c0 + per_call, n_chunks)
        with nogil, parallel(num_threads=n_threads):
            tid = threadid()
            for c in prange(c0, c1, schedule='static'):
                start = c * chunk_size
                nb = min(chunk_size, n - start)
                swb = NULL
                if sw != NULL:
                    swb = sw + start
                _block_logprob(cov_type, use_blas, &X[start, 0], nb, D, K,
                               &means[0, 0], &prec[0], &lognorm[0],
                               &center[0], &mproj[0, 0],
                               &lp_scratch[tid, 0], &buf_scratch[tid, 0])
                ll[tid] += _block_normalize(&lp_scratch[tid, 0], nb, K, swb,
                                            NULL, NULL, True)
                _block_stats(cov_type, use_blas, &X[start, 0], nb, D, K,
                             &lp_scratch[tid, 0], &means[0, 0], &center[0],
                             &R[tid, 0], &S1[tid, 0], &S2[tid, 0],
                             &buf_scratch[tid, 0], &s2_scratch[tid, 0])
        PyErr_CheckSignals()

    for tid in range(n_threads):
        total += ll[tid]
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
    long long[::1] out_labels,          # OUT (n_samples,) argmax, or None
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
    cdef floating* lpp
    cdef floating* logp_ptr = NULL
    cdef floating* resp_ptr = NULL
    cdef long long* lab_ptr = NULL
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] lp_scratch = np.empty((n_threads, chunk_size * K), dtype)
    cdef floating[:, ::1] buf_scratch = np.empty((n_threads, chunk_size * D), dtype)
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
        with nogil, parallel(num_threads=n_threads):
            tid = threadid()
            for c in prange(c0, c1, schedule='static'):
                start = c * chunk_size
                nb = min(chunk_size, n - start)
                if resp_ptr != NULL:
                    lpp = resp_ptr + start * K
                else:
                    lpp = &lp_scratch[tid, 0]
                _block_logprob(cov_type, use_blas, &X[start, 0], nb, D, K,
                               &means[0, 0], &prec[0], &lognorm[0],
                               &center[0], &mproj[0, 0],
                               lpp, &buf_scratch[tid, 0])
                _block_normalize(lpp, nb, K, NULL,
                                 logp_ptr + start if logp_ptr != NULL else NULL,
                                 lab_ptr + start if lab_ptr != NULL else NULL,
                                 False)
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
    """Sufficient statistics of X for given responsibilities (initialisation)."""
    cdef isize n = X.shape[0]
    cdef isize D = X.shape[1]
    cdef isize K = resp.shape[1]
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize c, start, nb, i, k
    cdef int tid
    cdef const double* sw = NULL
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] wr_scratch = np.empty((n_threads, chunk_size * K), dtype)
    cdef floating[:, ::1] buf_scratch = np.empty((n_threads, chunk_size * D), dtype)
    cdef floating[:, ::1] s2_scratch = np.empty((n_threads, D * D), dtype)
    cdef floating* wr
    if n == 0:
        return
    if sample_weight is not None:
        sw = &sample_weight[0]
    with nogil, parallel(num_threads=n_threads):
        tid = threadid()
        for c in prange(n_chunks, schedule='static'):
            start = c * chunk_size
            nb = min(chunk_size, n - start)
            wr = &wr_scratch[tid, 0]
            for i in range(nb):
                for k in range(K):
                    if sw != NULL:
                        wr[i * K + k] = <floating>(resp[start + i, k] * sw[start + i])
                    else:
                        wr[i * K + k] = resp[start + i, k]
            _block_stats(cov_type, use_blas, &X[start, 0], nb, D, K,
                         wr, &shift[0, 0], &center[0],
                         &R[tid, 0], &S1[tid, 0], &S2[tid, 0],
                         &buf_scratch[tid, 0], &s2_scratch[tid, 0])


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
        with nogil, parallel(num_threads=n_threads):
            tid = threadid()
            for c in prange(c0, c1, schedule='static'):
                start = c * chunk_size
                nb = min(chunk_size, n - start)
                _block_scatter(use_blas, &X[start, 0], nb, D,
                               sw + start if sw != NULL else NULL,
                               &center[0], &T[tid, 0],
                               &buf_scratch[tid, 0], &s2_scratch[tid, 0])
        PyErr_CheckSignals()
