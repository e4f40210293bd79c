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
(chunk_size, n_features) (BLAS_GEMM: and (n_components, 2 n_features + 1)).

One block loop serves every job (``_run``: the E-step with statistics,
prediction, statistics of given responsibilities, the tied scatter): it cuts
X into blocks, spreads them over OpenMP threads in regions of about
WORK_PER_CALL multiply-adds, and checks for Ctrl-C between regions. Which
kernel serves a block is the caller's ``path`` (gmmfast/_dispatch.py owns
that choice); every entry point checks the path against that table first, so
a shape that no kernel serves raises instead of computing nothing.

The C entry points and their fused-type wrappers are declared once, in
gmmfast/_simd.pxd. Covariance type codes (``_dispatch.KERNEL_CODES``):
0 full, 1 tied, 2 diag, 3 spherical.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY, NAN, isfinite, lgamma, log, signbit, sqrt
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from cpython.exc cimport PyErr_CheckSignals
cimport numpy as cnp
from scipy.linalg.cython_blas cimport ddot as blas_ddot, dgemm as blas_dgemm
from scipy.linalg.cython_lapack cimport dpotrf, dtrtri

from gmmfast._simd cimport (
    GM_ISA_DISPATCH, GM_PORTABLE_BUILD, GM_SMALL_D_MAX, isize, block, block_stats, exp_array, gram_scratch, log_array,
    gemm_rowmajor, lp_full_rows, normalize_block, rows_to_lp, scale_rows, scratch_size, stats_gram,
    syrk_add_upper,
    tied_rows_to_lp, tied_stats_rows, trmm_right_upper,
)

import numpy as np

cnp.import_array()

from gmmfast._dispatch import KERNEL_NAMES, check_path

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

cdef enum:
    FULL = 0
    TIED = 1
    DIAG = 2
    SPHERICAL = 3

# paths (gmmfast/_dispatch.py)
cdef enum:
    VECTOR = 0
    BLAS_TILES = 1
    BLAS_SYRK = 2
    BLAS_GEMM = 3

# jobs of the block loop
cdef enum:
    ESTEP = 0        # log-likelihood and statistics
    PREDICT = 1      # log p(x), responsibilities and/or labels
    RESP_STATS = 2   # statistics of given responsibilities
    SCATTER = 3      # sum w (x - c)(x - c)^T

# Rough amount of work (in multiply-adds) handed to one OpenMP region before
# control returns to Python to check for Ctrl-C.
cdef isize WORK_PER_CALL = 1 << 30

# False: a pass on one thread runs on the calling thread, outside OpenMP (the
# default); True: inside a region of one thread, as the general path does
# (tests compare the two, _one_thread_region)
cdef bint ONE_THREAD_REGION = False


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


def _one_thread_region(bint on):
    """For tests: run one-thread passes inside an OpenMP region of one thread
    (True) or on the calling thread (False, the default); returns the
    previous setting. Not thread-safe."""
    global ONE_THREAD_REGION
    previous = ONE_THREAD_REGION
    ONE_THREAD_REGION = on
    return bool(previous)


def omp_max_threads():
    """omp_get_max_threads() (1 without OpenMP); honours OMP_NUM_THREADS."""
    return gmmfast_max_threads()


def small_d_max():
    """GM_SMALL_D_MAX as compiled (generated from _dispatch.SMALL_D_MAX)."""
    return GM_SMALL_D_MAX


# ---------------------------------------------------------------------------
# Block kernels (nogil). A block is rows [0, nb) starting at pointer x.
# The vector path is C (_simd.h); the BLAS paths (full and tied; diag and
# spherical by gemm) are here.
# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# BLAS_GEMM: diag and spherical by matrix products (many components)
#
# With g the block's mean row, x' = x - g, mu'_k = mu_k - g and p_kd the
# precisions (precisions_cholesky squared; spherical: p_k for every d),
#
#   lp_ik = lognorm_k - 1/2 sum_d p_kd (x'_id - mu'_kd)^2 = a_i . b_k,
#   a_i = [x'_i^2, x'_i, 1]            b_k = [-p_k/2, p_k mu'_k, c_k]
#   (spherical: a_i = [x'_i, |x'_i|^2, 1], b_k = [p_k mu'_k, -p_k/2, c_k]),
#   c_k = lognorm_k - 1/2 sum_d p_kd mu'_kd^2,
#
# so lp (K, nb) = B A^T is one gemm (inner size W = 2D + 1, spherical D + 2),
# and with the weighted responsibilities wr (K, nb), T = wr A (one gemm)
# holds sum r x'^2 (spherical: sum r |x'|^2), sum r x' and sum r per
# component, shifted onto mu_k in float64 (_gemm_stats).
#
# Rounding (u the unit roundoff of the data's dtype): a_i . b_k is a sum of
# W products, so |error of lp_ik| <= (W + 3) u sum_j |a_ij b_kj|
#   <= (W + 3) u (1/2 sum_d p_kd (|x'_id| + |mu'_kd|)^2 + |c_k|)
#   <= (W + 3) u (3/2 sum_d p_kd x'_id^2 + M_ik + |c_k|),
# M_ik = sum_d p_kd (x'_id - mu'_kd)^2 the Mahalanobis term itself; the
# direct form (the vector path) has (D + 2) u (M_ik / 2 + |lognorm_k|). The
# excess is the term in sum_d p_kd x'_id^2: the distance of row i from its
# block's mean in widths of component k, which centring on g keeps
# independent of where the data lie (uncentred, as scikit-learn computes it,
# it grows with |x|^2, and float32 data at 1e4 from the origin lose every
# digit). Likewise the statistics: sum r x'^2 comes with an error of
# (nb + 1) u sum_i r_ik x'_id^2, relative to S2_kd a factor
# 1 + (mu_kd - g_d)^2 / var_kd of the direct form's.
# ---------------------------------------------------------------------------

cdef inline isize _gemm_width(int cov_type, isize D) noexcept nogil:
    """Columns of a_i (and b_k)."""
    return 2 * D + 1 if cov_type == DIAG else D + 2


cdef isize _gemm_scratch(int cov_type, isize nb, isize D, isize K) noexcept nogil:
    """Scratch of _gemm_rows and _gemm_stats: A (nb, W), B or T (K, W), g (D)."""
    cdef isize W = _gemm_width(cov_type, D)
    return nb * W + K * W + D


cdef void _gemm_rows(
    int cov_type,
    const floating* x,          # IN (nb, D)
    isize nb, isize D,
    floating* a,                # OUT (nb, W) the rows a_i
    floating* g,                # OUT (D,) the block's mean row
) noexcept nogil:
    cdef isize W = _gemm_width(cov_type, D)
    cdef isize i, j
    cdef floating d, s
    cdef floating* ai
    cdef const floating* xi
    # any centre is exact (the statistics are shifted by the same g); the
    # mean keeps |x - g| small
    for j in range(D):
        g[j] = 0
    for i in range(nb):
        xi = x + i * D
        for j in range(D):
            g[j] += xi[j]
    for j in range(D):
        g[j] = g[j] / nb
    for i in range(nb):
        xi = x + i * D
        ai = a + i * W
        if cov_type == DIAG:
            for j in range(D):
                d = xi[j] - g[j]
                ai[j] = d * d
                ai[D + j] = d
            ai[2 * D] = 1
        else:
            s = 0
            for j in range(D):
                d = xi[j] - g[j]
                ai[j] = d
                s = s + d * d
            ai[D] = s
            ai[D + 1] = 1


cdef void _gemm_lp(
    int cov_type,
    const floating* a,          # IN (nb, W) from _gemm_rows
    const floating* g,          # IN (D,)
    isize nb, isize D, isize K,
    const floating* means,      # IN (K, D)
    const floating* prec,       # IN (K, D) diag, (K,) spherical
    const double* lognorm,      # IN (K,)
    floating* b,                # scratch (K, W)
    floating* lp,               # OUT (K, nb)
) noexcept nogil:
    cdef isize W = _gemm_width(cov_type, D)
    cdef isize j, k
    cdef double p, m, c
    cdef floating* bk
    for k in range(K):
        bk = b + k * W
        c = 0
        if cov_type == DIAG:
            for j in range(D):
                p = <double>prec[k * D + j] * <double>prec[k * D + j]
                m = <double>means[k * D + j] - <double>g[j]
                bk[j] = <floating>(-0.5 * p)
                bk[D + j] = <floating>(p * m)
                c += p * m * m
            bk[2 * D] = <floating>(lognorm[k] - 0.5 * c)
        else:
            p = <double>prec[k] * <double>prec[k]
            for j in range(D):
                m = <double>means[k * D + j] - <double>g[j]
                bk[j] = <floating>(p * m)
                c += m * m
            bk[D] = <floating>(-0.5 * p)
            bk[D + 1] = <floating>(lognorm[k] - 0.5 * p * c)
    gemm_rowmajor(True, <int>K, <int>nb, <int>W, b, <int>W, a, <int>W, lp, <int>nb)


cdef void _gemm_stats(
    int cov_type,
    const floating* a,          # IN (nb, W) from _gemm_rows
    const floating* g,          # IN (D,)
    isize nb, isize D, isize K,
    const floating* wr,         # IN (K, nb) w_i r_ik
    const floating* shift,      # IN (K, D) c_k
    floating* t,                # scratch (K, W)
    double* R, double* S1, double* S2,  # OUT += statistics around c_k
) noexcept nogil:
    """With delta = c_k - g: S1 = T1 - R delta, S2 = T2 - 2 delta T1 + R delta^2
    (spherical: summed over d), in float64."""
    cdef isize W = _gemm_width(cov_type, D)
    cdef isize j, k
    cdef double rk, t1, dl, cross, sq
    cdef const floating* tk
    gemm_rowmajor(False, <int>K, <int>W, <int>nb, wr, <int>nb, a, <int>W, t, <int>W)
    for k in range(K):
        tk = t + k * W
        rk = tk[W - 1]
        R[k] += rk
        cross = 0
        sq = 0
        for j in range(D):
            dl = <double>shift[k * D + j] - <double>g[j]
            if cov_type == DIAG:
                t1 = tk[D + j]
                S2[k * D + j] += <double>tk[j] - 2.0 * dl * t1 + rk * dl * dl
            else:
                t1 = tk[j]
                cross += dl * t1
                sq += dl * dl
            S1[k * D + j] += t1 - rk * dl
        if cov_type != DIAG:
            S2[k] += <double>tk[D] - 2.0 * cross + rk * sq


cdef void _block_stats_given(
    int cov_type, int path,
    const floating* x,          # IN (nb, D)
    isize nb, isize D, isize K,
    const floating* wr,         # IN (K, nb) w_i * r_ik
    const floating* shift,      # IN (K, D) c_k (tied: every row the centre)
    const floating* center,     # IN (D,) tied centre
    floating* scratch,          # scratch, _scratch_size elements
    double* R, double* S1, double* S2,  # OUT += statistics
) noexcept nogil:
    cdef isize W
    if path == VECTOR:
        block_stats(cov_type, x, nb, D, K, wr, shift, scratch, R, S1, S2)
        return
    if path == BLAS_GEMM:
        W = _gemm_width(cov_type, D)
        _gemm_rows(cov_type, x, nb, D, scratch, scratch + nb * W + K * W)
        _gemm_stats(cov_type, scratch, scratch + nb * W + K * W, nb, D, K, wr, shift,
                    scratch + nb * W, R, S1, S2)
        return
    if cov_type == TIED:
        tied_stats_rows(x, nb, D, K, wr, center, R, S1, scratch)
        return
    if path == BLAS_TILES:
        # S2_k += sum_i r_ik (x_i - c_k)(x_i - c_k)^T by register tiles (C)
        stats_gram(x, nb, D, K, wr, shift, scratch, R, S1, S2)
        return
    # BLAS_SYRK: syrk's packing is amortised at large D
    cdef isize k
    cdef floating* buf = scratch
    cdef floating* s2blk = buf + nb * D
    cdef floating* s1acc = s2blk + D * D
    for k in range(K):
        # buf = sqrt(r) (x - c_k); R_k, S1_k accumulated on the way
        scale_rows(x, nb, D, shift + k * D, wr + k * nb, buf, R + k, S1 + k * D, s1acc)
        # S2_k += buf^T buf  (symmetric rank-nb update, upper triangle)
        syrk_add_upper(buf, S2 + k * D * D, s2blk, <int>nb, <int>D)


cdef inline double _resp_lp_sum(const floating* wr, const floating* lp, isize n) noexcept nogil:
    """sum of wr * lp over a block's (K, nb) arrays: the weighted
    responsibilities w_i r_ik after normalize_block, lp_ik before it. A term
    whose r is 0 adds nothing (its lp may be -inf: 0 * -inf would be NaN)."""
    cdef double total = 0.0
    cdef isize i
    for i in range(n):
        if wr[i] > 0:
            total += <double>wr[i] * <double>lp[i]
    return total


cdef double _block(
    int cov_type, int path,
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
    double* resp_lp,            # OUT += sum_i w_i sum_k r_ik lp_ik, or NULL
    floating* lp_copy,          # scratch (K, nb) for resp_lp
) noexcept nogil:
    """Log-probabilities, log-likelihood, responsibilities and statistics of
    one block. Returns sum_i w_i log p(x_i). ``resp_lp`` (the paths other
    than VECTOR; there it must be NULL) receives the block's
    sum_i w_i sum_k r_ik lp_ik, lp_ik the weighted log-probabilities:
    BayesianGaussianMixture's sum w r log r is that less the log-likelihood
    (gmmfast/_bayesian.py), without the trace sum_k tr(P_k M_k) of the
    statistics."""
    cdef isize i, j, k, W
    cdef floating* lp
    cdef floating* buf
    cdef floating* g
    cdef const floating* mu
    cdef double ll
    if path == VECTOR:
        return block(cov_type, x, nb, D, K, means, prec, lognorm, center, mproj,
                     sw, scratch, R, S1, S2, out_logp, out_resp, out_labels)
    lp = scratch                    # (K, nb) and three (nb,) rows for normalize_block
    buf = scratch + (K + 3) * nb    # (nb, D); BLAS_GEMM: _gemm_scratch
    if path == BLAS_GEMM:
        W = _gemm_width(cov_type, D)
        g = buf + nb * W + K * W
        _gemm_rows(cov_type, x, nb, D, buf, g)
        _gemm_lp(cov_type, buf, g, nb, D, K, means, prec, lognorm, buf + nb * W, lp)
        if resp_lp != NULL:
            memcpy(lp_copy, lp, K * nb * sizeof(floating))
        ll = normalize_block(lp, nb, K, sw, out_logp, out_resp, out_labels, R != NULL)
        if resp_lp != NULL:
            resp_lp[0] += _resp_lp_sum(lp, lp_copy, K * nb)
        if R != NULL:
            _gemm_stats(cov_type, buf, g, nb, D, K, lp, means, buf + nb * W, R, S1, S2)
        return ll
    if cov_type == FULL:
        # the register kernel on x transposed into buf (AVX-512, D <= 64), or
        # where it does not serve a trmm per component
        if not lp_full_rows(x, nb, D, K, means, prec, lognorm, buf, lp):
            for k in range(K):
                mu = means + k * D
                for i in range(nb):
                    for j in range(D):
                        buf[i * D + j] = x[i * D + j] - mu[j]
                # buf := (x - mu_k) U_k ; ||row||^2 = Mahalanobis distance
                trmm_right_upper(buf, prec + k * D * D, <int>nb, <int>D)
                rows_to_lp(buf, nb, D, lognorm[k], lp + k * nb)
    else:  # TIED: z = (x - c) U, then ||z - (mu_k - c) U||^2
        for i in range(nb):
            for j in range(D):
                buf[i * D + j] = x[i * D + j] - center[j]
        trmm_right_upper(buf, prec, <int>nb, <int>D)
        tied_rows_to_lp(buf, nb, D, K, mproj, lognorm, lp)
    if resp_lp != NULL:
        memcpy(lp_copy, lp, K * nb * sizeof(floating))
    ll = normalize_block(lp, nb, K, sw, out_logp, out_resp, out_labels, R != NULL)
    if resp_lp != NULL:
        resp_lp[0] += _resp_lp_sum(lp, lp_copy, K * nb)
    if R != NULL:
        _block_stats_given(cov_type, path, x, nb, D, K, lp, means, center,
                           buf, R, S1, S2)
    return ll


cdef void _block_scatter(
    int path,
    const floating* x,          # IN (nb, D)
    isize nb, isize D,
    const double* sw,           # IN (nb,) or NULL
    const floating* center,     # IN (D,)
    double* T,                  # OUT += (D, D) upper: sum w (x - c)(x - c)^T
    floating* scratch,          # scratch (nb, D) then (D, D)
) noexcept nogil:
    cdef isize i, j, l
    cdef floating sr
    cdef double w, rd
    cdef floating* buf = scratch
    cdef floating* s2blk = scratch + nb * D
    if path != VECTOR:
        for i in range(nb):
            sr = 1
            if sw != NULL:
                sr = <floating>sqrt(sw[i])
            for j in range(D):
                buf[i * D + j] = sr * (x[i * D + j] - center[j])
        syrk_add_upper(buf, T, s2blk, <int>nb, <int>D)
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
# The block loop
# ---------------------------------------------------------------------------

ctypedef struct Work:
    int job, cov_type, path, n_threads
    isize n, D, K, chunk_size
    const void* X               # (n, D)
    const double* sw            # (n,) or NULL
    const void* means           # (K, D); RESP_STATS: the shift c_k
    const void* prec
    const double* lognorm
    const void* center          # (D,)
    const void* mproj
    const void* resp            # RESP_STATS: (n, K)
    double* R                   # per-thread slabs, rows ``*_stride`` apart
    double* S1
    double* S2                  # SCATTER: T
    isize R_stride, S1_stride, S2_stride
    void* out_logp
    void* out_resp
    int64_t* out_labels
    double* ll                  # (n_threads, 8): a cache line per thread
    void* scratch
    isize scratch_stride
    bint want_resp_lp           # ESTEP: sum w r lp into ll[tid, 1] (not VECTOR)
    isize lp_copy_offset        # where in a thread's scratch _block's lp_copy starts
    double resp_lp              # ESTEP with want_resp_lp: the threads' sum


cdef isize _scratch_size(int job, int cov_type, int path, isize nb, isize D, isize K,
                         floating* tag):
    """Per-thread scratch (elements) of one job's blocks."""
    if job == SCATTER:
        return nb * D + D * D
    cdef isize vec = scratch_size(tag, nb, D, K)
    cdef isize blas = (K + 3) * nb + max(nb * D + D * D + D, gram_scratch(tag, nb, D))
    cdef isize gemm = (K + 3) * nb + _gemm_scratch(cov_type, nb, D, K)
    # RESP_STATS keeps the weighted responsibilities (K, nb) in front
    return K * nb + (vec if path == VECTOR else gemm if path == BLAS_GEMM else blas)


cdef inline void _one_block(floating* scratch0, Work* w, isize c, int tid) noexcept nogil:
    cdef isize start = c * w.chunk_size
    cdef isize nb = min(w.chunk_size, w.n - start)
    cdef isize D = w.D, K = w.K, i, k
    cdef const floating* x = <const floating*>w.X + start * D
    cdef const double* sw = w.sw + start if w.sw != NULL else NULL
    cdef floating* scratch = scratch0 + tid * w.scratch_stride
    cdef floating* out_logp = NULL
    cdef floating* out_resp = NULL
    cdef int64_t* out_labels = NULL
    cdef const floating* resp
    if w.job == SCATTER:
        _block_scatter(w.path, x, nb, D, sw, <const floating*>w.center,
                       w.S2 + tid * w.S2_stride, scratch)
    elif w.job == RESP_STATS:
        resp = <const floating*>w.resp + start * K
        for i in range(nb):     # scratch (K, nb) := w_i r_ik
            for k in range(K):
                if sw != NULL:
                    scratch[k * nb + i] = <floating>(resp[i * K + k] * sw[i])
                else:
                    scratch[k * nb + i] = resp[i * K + k]
        _block_stats_given(w.cov_type, w.path, x, nb, D, K, scratch,
                           <const floating*>w.means, <const floating*>w.center,
                           scratch + K * nb, w.R + tid * w.R_stride,
                           w.S1 + tid * w.S1_stride, w.S2 + tid * w.S2_stride)
    elif w.job == ESTEP:
        w.ll[tid * 8] += _block(
            w.cov_type, w.path, x, nb, D, K, <const floating*>w.means,
            <const floating*>w.prec, w.lognorm, <const floating*>w.center,
            <const floating*>w.mproj, sw, scratch, w.R + tid * w.R_stride,
            w.S1 + tid * w.S1_stride, w.S2 + tid * w.S2_stride, NULL, NULL, NULL,
            (w.ll + tid * 8 + 1) if w.want_resp_lp else <double*>NULL,
            scratch + w.lp_copy_offset)
    else:
        if w.out_logp != NULL:
            out_logp = <floating*>w.out_logp + start
        if w.out_resp != NULL:
            out_resp = <floating*>w.out_resp + start * K
        if w.out_labels != NULL:
            out_labels = w.out_labels + start
        _block(w.cov_type, w.path, x, nb, D, K, <const floating*>w.means,
               <const floating*>w.prec, w.lognorm, <const floating*>w.center,
               <const floating*>w.mproj, NULL, scratch, NULL, NULL, NULL,
               out_logp, out_resp, out_labels, NULL, NULL)


cdef double _run(floating* tag, Work* w) except? -1.0:
    """Run ``w``'s job over every block of X; returns sum w log p (ESTEP).

    Blocks go to OpenMP threads in regions of about WORK_PER_CALL
    multiply-adds (at least one block per thread, never more threads than
    blocks: idle OpenMP threads only spin), statically, so that a thread
    count gives bitwise the same sums every time; Ctrl-C is checked between
    regions. A region of one thread runs on the calling thread, outside
    OpenMP: a small pass (the caller asks for one thread when the work is
    small, gmmfast/_threads.py) starts or wakes no thread team."""
    cdef isize n_chunks = (w.n + w.chunk_size - 1) // w.chunk_size
    # multiply-adds per row: D^2 per component (full), about 2 D (BLAS_GEMM)
    cdef isize per_row = w.K * ((2 * w.D if w.path == BLAS_GEMM else w.D * w.D) + 8) + 8
    cdef isize per_call = max(<isize>w.n_threads, WORK_PER_CALL // (w.chunk_size * per_row))
    cdef isize c0, c1, c
    cdef int tid
    cdef double total = 0.0
    # each thread's scratch starts on a 64-byte boundary: the work arrays
    # inside it are laid out 32-byte aligned from there (gmmfast/_simd_impl.h,
    # GM(gap)), and a vector load that straddles two cache lines costs
    # twice (numpy's 16-byte aligned buffer made a 2 x 2 E-step 13% slower)
    cdef isize lanes = 64 // sizeof(floating)
    cdef isize size = _scratch_size(w.job, w.cov_type, w.path, w.chunk_size, w.D, w.K, tag)
    w.lp_copy_offset = size
    if w.want_resp_lp:
        size += w.K * w.chunk_size  # _block's lp_copy behind the rest
    w.scratch_stride = (size + lanes - 1) // lanes * lanes
    # (numpy arrays read by pointer: a typed memoryview costs ~0.2 us to
    # acquire, a sizeable part of a small fit's E-step)
    cdef cnp.npy_intp n_scratch = w.n_threads * w.scratch_stride + lanes
    cdef cnp.npy_intp ll_dims[2]
    ll_dims[0], ll_dims[1] = w.n_threads, 8
    cdef cnp.ndarray scratch_buf = <cnp.ndarray>cnp.PyArray_EMPTY(
        1, &n_scratch, cnp.NPY_DOUBLE if floating is double else cnp.NPY_FLOAT, 0)
    cdef floating* scratch0 = <floating*>cnp.PyArray_DATA(scratch_buf)
    scratch0 += (lanes - (<size_t>scratch0 // sizeof(floating)) % lanes) % lanes
    cdef cnp.ndarray ll_arr = <cnp.ndarray>cnp.PyArray_ZEROS(2, ll_dims, cnp.NPY_DOUBLE, 0)
    cdef double* ll = <double*>cnp.PyArray_DATA(ll_arr)
    w.ll = ll
    for c0 in range(0, n_chunks, per_call):
        c1 = min(c0 + per_call, n_chunks)
        if min(<isize>w.n_threads, c1 - c0) == 1 and not ONE_THREAD_REGION:
            # one thread: the same blocks in the same order as a region of one
            # thread, without entering OpenMP (no team to start or wake)
            with nogil:
                for c in range(c0, c1):
                    _one_block(scratch0, w, c, 0)
        else:
            with nogil, parallel(num_threads=min(<isize>w.n_threads, c1 - c0)):
                tid = threadid()
                for c in prange(c0, c1, schedule='static'):
                    _one_block(scratch0, w, c, tid)
        PyErr_CheckSignals()
    w.resp_lp = 0.0
    for tid in range(w.n_threads):
        total += ll[tid * 8]
        w.resp_lp += ll[tid * 8 + 1]
    return total


# the last (path, covariance type, D) that check_path accepted (a pure
# check, run with the GIL held: a small fit's every E-step asks the same)
cdef int _checked_path = -1, _checked_cov = -1
cdef isize _checked_D = -1


cdef Work _work(int job, int cov_type, int path, isize n, isize D, isize K,
                isize chunk_size, int n_threads):
    global _checked_path, _checked_cov, _checked_D
    if n_threads < 1 or chunk_size < 1:
        # (0 threads: OpenMP's default team would write past the slabs' rows)
        raise ValueError(f"n_threads ({n_threads}) and chunk_size ({chunk_size}) must be "
                         "at least 1")
    if not (path == _checked_path and cov_type == _checked_cov and D == _checked_D):
        check_path(path, KERNEL_NAMES[cov_type], D)
        _checked_path, _checked_cov, _checked_D = path, cov_type, D
    cdef Work w
    w.job, w.cov_type, w.path, w.n_threads = job, cov_type, path, n_threads
    w.n, w.D, w.K, w.chunk_size = n, D, K, chunk_size
    w.X = w.means = w.prec = w.center = w.mproj = w.resp = NULL
    w.sw = w.lognorm = NULL
    w.R = w.S1 = w.S2 = NULL
    w.R_stride = w.S1_stride = w.S2_stride = 0
    w.out_logp = w.out_resp = NULL
    w.out_labels = NULL
    w.want_resp_lp = False
    w.lp_copy_offset = 0
    w.resp_lp = 0.0
    return w


cdef const double* _weights_ptr(const double[::1] sample_weight):
    return NULL if sample_weight is None else &sample_weight[0]


# ---------------------------------------------------------------------------
# Python-facing entry points. Inputs are validated by the caller.
# ---------------------------------------------------------------------------

def e_step(
    object X,                           # IN (n_samples, n_features) float32/float64
    object sample_weight,               # IN (n_samples,) float64, or None
    object means,                       # IN (n_components, n_features), X's dtype
    object prec,                        # IN precisions_cholesky_.ravel(), X's dtype
    object lognorm,                     # IN (n_components,) float64
    object center,                      # IN (n_features,) tied centre, X's dtype
    object mproj,                       # IN (n_components, n_features) tied, X's dtype
    int cov_type,
    object R,                           # OUT += (n_threads, n_components)
    object S1,                          # OUT += (n_threads, n_components * n_features)
    object S2,                          # OUT += (n_threads, size of S2)
    isize chunk_size,
    int n_threads,
    int path,
    object resp_lp=None,                # OUT (1,) float64: sum_i w_i sum_k r_ik lp_ik, or None
):
    """E-step and sufficient statistics in one pass over X.

    Adds the statistics of X into the per-thread slabs R, S1, S2 (thread t
    owns row t) and returns sum_i w_i log p(x_i) (float64). With
    ``resp_lp`` (any path but VECTOR), also sets resp_lp[0] to
    sum_i w_i sum_k r_ik lp_ik (lp_ik the weighted log-probabilities, r_ik
    the responsibilities), summed per thread in block order and over the
    threads in thread order.

    Every array is read through its data pointer after a check of its
    dtype, layout and size (a TypeError naming it otherwise): typed
    memoryviews cost about 0.2 us each to acquire, three quarters of a
    small E-step's fixed cost.
    """
    cdef isize n = 0, D = 0, K = 0, D2 = 0
    _matrix_shape(X, "X", &n, &D)
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>X)
    if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
        raise TypeError(f"X: expected float32 or float64, got {_describe(X)}")
    _matrix_shape(means, "means", &K, &D2)
    if D2 != D:
        raise TypeError(f"means: expected {D} features (X's), got {_describe(means)}")
    cdef Work w = _work(ESTEP, cov_type, path, n, D, K, chunk_size, n_threads)
    cdef double ll
    cdef double* out_resp_lp = NULL
    if resp_lp is not None:
        if path == VECTOR:
            raise ValueError("resp_lp: the VECTOR path does not accumulate it")
        out_resp_lp = _out(resp_lp, 1, "resp_lp")
        out_resp_lp[0] = 0.0
    if n == 0:
        return 0.0
    w.X = _in_typed(X, n * D, typenum, "X")
    if sample_weight is not None:
        w.sw = _in(sample_weight, n, "sample_weight")
    w.means = _in_typed(means, K * D, typenum, "means")
    w.prec = _in_typed(prec, _n_cov(cov_type, K, D), typenum, "prec")
    w.lognorm = _in(lognorm, K, "lognorm")
    w.center = _in_typed(center, D, typenum, "center")
    w.mproj = _in_typed(mproj, K * D, typenum, "mproj")
    w.R = _slab(R, n_threads, K, "R", &w.R_stride)
    w.S1 = _slab(S1, n_threads, K * D, "S1", &w.S1_stride)
    w.S2 = _slab(S2, n_threads, _s2_size(cov_type, K, D), "S2", &w.S2_stride)
    w.want_resp_lp = resp_lp is not None
    if typenum == cnp.NPY_DOUBLE:
        ll = _run(<double*>NULL, &w)
    else:
        ll = _run(<float*>NULL, &w)
    if out_resp_lp != NULL:
        out_resp_lp[0] = w.resp_lp
    return ll


cdef isize _s2_size(int code, isize K, isize D) noexcept nogil:
    """One thread's second-order slab (gmmfast/_covariance.py's ``s2_size``)."""
    if code == FULL:
        return K * D * D
    if code == TIED:
        return 1
    return K * D if code == DIAG else K


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
    int path,
):
    """Log-likelihoods, responsibilities and/or labels, one pass, no statistics."""
    cdef Work w = _work(PREDICT, cov_type, path, X.shape[0], X.shape[1], means.shape[0],
                        chunk_size, n_threads)
    if w.n == 0:
        return
    w.X = &X[0, 0]
    w.means, w.prec, w.lognorm = &means[0, 0], &prec[0], &lognorm[0]
    w.center, w.mproj = &center[0], &mproj[0, 0]
    if out_logp is not None:
        w.out_logp = &out_logp[0]
    if out_resp is not None:
        w.out_resp = &out_resp[0, 0]
    if out_labels is not None:
        w.out_labels = &out_labels[0]
    _run(<floating*>NULL, &w)


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
    int path,
):
    """Sufficient statistics of X for given responsibilities (initialisation).

    For tied covariance every row of ``shift`` must be ``center``.
    """
    cdef Work w = _work(RESP_STATS, cov_type, path, X.shape[0], X.shape[1], resp.shape[1],
                        chunk_size, n_threads)
    if w.n == 0:
        return
    w.X, w.sw, w.resp = &X[0, 0], _weights_ptr(sample_weight), &resp[0, 0]
    w.means, w.center = &shift[0, 0], &center[0]
    w.R, w.S1, w.S2 = &R[0, 0], &S1[0, 0], &S2[0, 0]
    w.R_stride, w.S1_stride, w.S2_stride = R.shape[1], S1.shape[1], S2.shape[1]
    _run(<floating*>NULL, &w)


def scatter(
    const floating[:, ::1] X,           # IN (n_samples, n_features)
    const double[::1] sample_weight,    # IN (n_samples,) or None
    const floating[::1] center,         # IN (n_features,)
    double[:, ::1] T,                   # OUT += (n_threads, n_features**2) upper
    isize chunk_size,
    int n_threads,
    int path,
):
    """T += sum_i w_i (x_i - c)(x_i - c)^T (row-major upper triangle)."""
    cdef Work w = _work(SCATTER, TIED, path, X.shape[0], X.shape[1], 1,
                        chunk_size, n_threads)
    if w.n == 0:
        return
    w.X, w.sw, w.center = &X[0, 0], _weights_ptr(sample_weight), &center[0]
    w.S2, w.S2_stride = &T[0, 0], T.shape[1]
    _run(<floating*>NULL, &w)


def _elementwise(x, bint log):
    """The kernels' vectorised exp() or log() of a float64/float32 array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    cdef double[::1] xd, yd
    cdef float[::1] xf, yf
    if x.size == 0:
        return y
    if x.dtype == np.float64:
        xd, yd = x.reshape(-1), y.reshape(-1)
        if log:
            log_array(&xd[0], &yd[0], xd.shape[0])
        else:
            exp_array(&xd[0], &yd[0], xd.shape[0])
    else:
        xf, yf = x.reshape(-1), y.reshape(-1)
        if log:
            log_array(&xf[0], &yf[0], xf.shape[0])
        else:
            exp_array(&xf[0], &yf[0], xf.shape[0])
    return y


def _log_sum_exp(lp_terms):
    """For tests: the kernels' log-sum-exp of one block's terms, a (K, nb)
    float64 or float32 array (component k's weighted log-probabilities of
    the nb rows): (responsibilities (nb, K), log p (nb,)), the prediction's
    path (no statistics)."""
    terms = np.ascontiguousarray(lp_terms)
    cdef isize K = terms.shape[0], nb = terms.shape[1]
    work = np.empty((K + 3) * nb, dtype=terms.dtype)
    work[:K * nb] = terms.reshape(-1)
    resp = np.empty((nb, K), dtype=terms.dtype)
    logp = np.empty(nb, dtype=terms.dtype)
    cdef double[::1] wd, ld
    cdef double[:, ::1] rd
    cdef float[::1] wf, lf
    cdef float[:, ::1] rf
    if terms.dtype == np.float64:
        wd, rd, ld = work, resp, logp
        normalize_block(&wd[0], nb, K, NULL, &ld[0], &rd[0, 0], NULL, 0)
    else:
        wf, rf, lf = work, resp, logp
        normalize_block(&wf[0], nb, K, NULL, &lf[0], &rf[0, 0], NULL, 0)
    return resp, logp


def _exp(x):
    """The kernels' vectorised exp() (for tests): float64 or float32 array."""
    return _elementwise(x, False)


def _log(x):
    """The kernels' vectorised log() (for tests): float64 or float32 array."""
    return _elementwise(x, True)


# ---------------------------------------------------------------------------
# The M-step's small dense algebra (gmmfast/_covariance.py): per component,
# the covariance from shifted statistics and the Cholesky factor of its
# precision. A few microseconds of arithmetic that numpy's per-call costs
# (tens of array operations on (K, D, D) stacks, a LAPACK call pair per
# component) made the largest part of a small fit's iteration.
# ---------------------------------------------------------------------------

# Tile edge of the full type's per-component M-step pass (``_cov_tiles``):
# a (32, 32) tile of S_k and its transposed partner stay in L1 while both
# are read, so the pair sum of entry (i, j) reads S2[j, i] from a small
# buffer rather than down a column of S2 (a new cache line per entry at
# D = 256), and the inner loops run over contiguous memory, vectorised.
cdef enum:
    _TILE = 32

# below this many values of the (K, D, D) stack the M-step pass runs on one
# thread (~0.1 ms of work: an OpenMP team's start costs a few microseconds)
cdef isize COV_THREADS_MIN = 1 << 15

# The reference forms of the two passes, which tests/test_kernels.py checks
# bitwise, are scikit-learn's operations entry by entry: S_k as
# gmmfast/_covariance.py's ``_reshift_s2`` and ``symmetrize`` spell it in
# numpy (S2 - S1 d^T - d S1^T + R d d^T, then (S + S^T) / 2 / n_k, + reg on
# the diagonal), and the Wishart update as scikit-learn's
# ``_estimate_wishart_full``. (A compiler that contracts a * b + c into a
# fused multiply-add, as GCC does with an FMA target, e.g. GMMFAST_NATIVE=1
# or aarch64, gives those values to rounding only; the x86-64 baseline that
# these loops are compiled for has no FMA.)


cdef inline double _pair_sum(double s_ij, double s_ji, double s1i, double s1j,
                             double di, double dj, double R, double nk) noexcept nogil:
    """Entry (i, j) of sym(S2 - S1 d^T - d S1^T + R d d^T) / n_k in the
    reference form's order; also entry (j, i), bitwise (the two halves of
    the pair swap, and + commutes; NaN payloads aside)."""
    cdef double a = (s_ij - s1i * dj) - s1j * di
    a = a + R * di * dj
    cdef double b = (s_ji - s1j * di) - s1i * dj
    b = b + R * dj * di
    return 0.5 * (a + b) / nk


cdef inline double _wishart_entry(double s, double p, double ei, double ej,
                                  double nk, double scale, double dof) noexcept nogil:
    """(n_k S_k + Psi_0 + ((x_k - m_0)_i (x_k - m_0)_j) n_k beta_0 / beta_k)
    / nu_k, entry by entry in scikit-learn's order (as ``full_wishart``)."""
    cdef double c = nk * s
    c = c + p
    c = c + (ei * ej) * scale
    return c / dof


cdef void _cov_tiles(isize D, const double* S2, const double* s1, const double* d,
                     double R, double nk, double reg_covar, bint wishart, bint square,
                     const double* e, const double* prior, double scale, double dof,
                     double* o) noexcept nogil:
    """One component of ``full_covariances`` (``wishart`` false) or
    ``full_wishart_stats`` (true; e = x_k - m_0) into o (D, D), tile by
    tile. Every entry (i, j) is computed by the same formula, which gives
    (j, i) the bits of (i, j) for S_k (``_pair_sum``) and for the Wishart
    entries where the prior is bitwise symmetric: then the tiles on and
    above the diagonal are computed and each one above copied to its
    mirror; ``square``: every tile computed (a prior whose two triangles
    differ, each entry from its own prior entry). The diagonal is computed
    again afterwards with reg_covar added to S_k's, as the two-step forms
    add it."""
    cdef double bt[_TILE * _TILE]
    cdef isize i0, j0, ni, nj, ii, jj, i, tile = _TILE
    cdef double s1i, di, ei, a
    cdef const double* row
    cdef const double* btr
    cdef const double* s1j
    cdef const double* dj
    cdef const double* ej
    cdef const double* prow
    cdef double* out
    cdef isize n_tiles = (D + tile - 1) // tile, ib, jb
    for ib in range(n_tiles):
        i0 = ib * tile
        ni = min(tile, D - i0)
        for jb in range(0 if square else ib, n_tiles):
            j0 = jb * tile
            nj = min(tile, D - j0)
            for jj in range(nj):  # bt[ii, jj] = S2[j0 + jj, i0 + ii]
                row = S2 + (j0 + jj) * D + i0
                for ii in range(ni):
                    bt[ii * tile + jj] = row[ii]
            for ii in range(ni):
                i = i0 + ii
                s1i, di = s1[i], d[i]
                row = S2 + i * D + j0
                btr = bt + ii * tile
                out = o + i * D + j0
                s1j, dj = s1 + j0, d + j0
                if wishart:
                    ei = e[i]
                    ej, prow = e + j0, prior + i * D + j0
                    for jj in range(nj):
                        out[jj] = _wishart_entry(
                            _pair_sum(row[jj], btr[jj], s1i, s1j[jj], di, dj[jj], R, nk),
                            prow[jj], ei, ej[jj], nk, scale, dof)
                else:
                    for jj in range(nj):
                        out[jj] = _pair_sum(row[jj], btr[jj], s1i, s1j[jj], di, dj[jj], R, nk)
            if j0 > i0 and not square:
                for jj in range(nj):
                    out = o + (j0 + jj) * D + i0
                    for ii in range(ni):
                        out[ii] = o[(i0 + ii) * D + j0 + jj]
    for i in range(D):
        a = _pair_sum(S2[i * D + i], S2[i * D + i], s1[i], s1[i], d[i], d[i], R, nk)
        if wishart:
            o[i * D + i] = _wishart_entry(a + reg_covar, prior[i * D + i], e[i], e[i],
                                          nk, scale, dof)
        else:
            o[i * D + i] = a + reg_covar


cdef int _cov_threads(int n_threads, isize K, isize D) noexcept nogil:
    return 1 if K * D * D < COV_THREADS_MIN else max(1, min(n_threads, <int>K))


cdef int _check_stats_shapes(const double[::1] R, const double[:, ::1] S1,
                             const double[:, :, ::1] S2, const double[:, ::1] d,
                             const double[::1] nk) except -1:
    cdef isize K = S2.shape[0], D = S2.shape[1]
    if not (S2.shape[2] == D and R.shape[0] == K and nk.shape[0] == K
            and S1.shape[0] == K and S1.shape[1] == D and d.shape[0] == K
            and d.shape[1] == D):
        raise ValueError(
            f"expected R, nk ({K},), S1, d ({K}, {D}) and S2 ({K}, {D}, {D}); got R "
            f"({R.shape[0]},), nk ({nk.shape[0]},), S1 ({S1.shape[0]}, {S1.shape[1]}), "
            f"d ({d.shape[0]}, {d.shape[1]}), S2 ({K}, {D}, {S2.shape[2]})")
    return 0


def full_covariances(const double[::1] R, const double[:, ::1] S1,
                     const double[:, :, ::1] S2, const double[:, ::1] d,
                     const double[::1] nk, double reg_covar, int n_threads=1):
    """Sigma_k = sym(S2_k - S1_k d_k^T - d_k S1_k^T + R_k d_k d_k^T) / n_k
    + reg I, entry by entry in the reference form's order (float64 (K, D,
    D)); ``_cov_tiles``, the components on up to ``n_threads`` OpenMP
    threads (the same values on any number)."""
    _check_stats_shapes(R, S1, S2, d, nk)
    cdef isize K = S2.shape[0], D = S2.shape[1], k
    out = np.empty((K, D, D))
    cdef double[:, :, ::1] o = out
    cdef int nt = _cov_threads(n_threads, K, D)
    if K == 0 or D == 0:
        return out
    with nogil:
        for k in prange(K, schedule='static', num_threads=nt):
            _cov_tiles(D, &S2[k, 0, 0], &S1[k, 0], &d[k, 0], R[k], nk[k], reg_covar,
                       False, False, NULL, NULL, 0.0, 0.0, &o[k, 0, 0])
    return out


cdef inline bint _same_bits(double x, double y) noexcept nogil:
    return x == y and (signbit(x) != 0) == (signbit(y) != 0)


def full_wishart_stats(const double[::1] R, const double[:, ::1] S1,
                       const double[:, :, ::1] S2, const double[:, ::1] d,
                       const double[::1] nk, double reg_covar, const double[:, ::1] xk,
                       const double[::1] mean_prior, const double[:, ::1] covariance_prior,
                       double mean_precision_prior, double degrees_of_freedom_prior,
                       const double[::1] mean_precision, int n_threads=1):
    """``full_covariances`` then ``full_wishart`` in one pass over the
    (K, D, D) stack, without S_k's stack between them: BayesianGaussianMixture's
    full-covariance M-step beyond the small shapes, (dof (K,), covariances
    (K, D, D)), the values of the two calls. Where the prior is bitwise
    symmetric (the default, the data's symmetrised scatter, is; so is
    numpy's np.cov) so is the result, and ``_cov_tiles`` computes the tiles
    on and above the diagonal only; otherwise every tile, each entry from
    its own prior entry. The components on up to ``n_threads`` OpenMP
    threads (the same values on any number). At K = 8, D = 256, one thread:
    the two calls 1.5 ms, this one 1.0 (two divisions an entry, as
    scikit-learn takes them, against ``full_covariances``' one: 0.6)."""
    _check_stats_shapes(R, S1, S2, d, nk)
    cdef isize K = S2.shape[0], D = S2.shape[1], k, i, j
    if not (xk.shape[0] == K and xk.shape[1] == D and mean_prior.shape[0] == D
            and covariance_prior.shape[0] == D and covariance_prior.shape[1] == D
            and mean_precision.shape[0] == K):
        raise ValueError(
            f"expected xk ({K}, {D}), mean_prior ({D},), covariance_prior ({D}, {D}) and "
            f"mean_precision ({K},); got xk ({xk.shape[0]}, {xk.shape[1]}), mean_prior "
            f"({mean_prior.shape[0]},), covariance_prior ({covariance_prior.shape[0]}, "
            f"{covariance_prior.shape[1]}), mean_precision ({mean_precision.shape[0]},)")
    dof_out = np.empty(K)
    out = np.empty((K, D, D))
    e_buf = np.empty((K, D))
    cdef double[::1] dof = dof_out
    cdef double[:, :, ::1] o = out
    cdef double[:, ::1] e = e_buf
    cdef bint square = False
    cdef int nt = _cov_threads(n_threads, K, D)
    with nogil:
        for k in range(K):
            dof[k] = degrees_of_freedom_prior + nk[k]
            for i in range(D):
                e[k, i] = xk[k, i] - mean_prior[i]
        for i in range(D):
            for j in range(i + 1, D):
                if not _same_bits(covariance_prior[i, j], covariance_prior[j, i]):
                    square = True
                    break
            if square:
                break
    if K == 0 or D == 0:
        return dof_out, out
    with nogil:
        for k in prange(K, schedule='static', num_threads=nt):
            _cov_tiles(D, &S2[k, 0, 0], &S1[k, 0], &d[k, 0], R[k], nk[k], reg_covar,
                       True, square, &e[k, 0], &covariance_prior[0, 0],
                       nk[k] * mean_precision_prior / mean_precision[k], dof[k],
                       &o[k, 0, 0])
    return dof_out, out


def full_wishart(const double[::1] nk, const double[:, ::1] xk,
                 const double[:, :, ::1] sk, const double[::1] mean_prior,
                 const double[:, ::1] covariance_prior, double mean_precision_prior,
                 double degrees_of_freedom_prior, const double[::1] mean_precision):
    """BayesianGaussianMixture's full-covariance Wishart update,
    (dof (K,), covariances (K, D, D)) with nu_k = nu_0 + n_k and

        (n_k S_k + Psi_0 + (n_k beta_0 / beta_k) (x_k - m_0)(x_k - m_0)^T) / nu_k,

    each entry by the operations of gmmfast/_covariance.py's numpy form in
    its order (the same values)."""
    cdef isize K = sk.shape[0], D = sk.shape[1], k, i, j
    dof_out = np.empty(K)
    out = np.empty((K, D, D))
    cdef double[::1] dof = dof_out
    cdef double[:, :, ::1] o = out
    cdef double scale
    with nogil:
        for k in range(K):
            dof[k] = degrees_of_freedom_prior + nk[k]
            scale = nk[k] * mean_precision_prior / mean_precision[k]
            for i in range(D):
                for j in range(D):
                    o[k, i, j] = _wishart_entry(sk[k, i, j], covariance_prior[i, j],
                                                xk[k, i] - mean_prior[i],
                                                xk[k, j] - mean_prior[j], nk[k], scale, dof[k])
    return dof_out, out


cdef double _trace_upper(const double* U, const double* M, isize D) noexcept nogil:
    """tr(U U^T M) = sum_l u_l^T M u_l over the columns u_l of an upper
    triangular U (D, D) (only U[i, l], i <= l, non-zero), M symmetric."""
    cdef isize i, j, l
    cdef double total = 0.0, col, v
    for l in range(D):
        col = 0.0
        for i in range(l + 1):
            v = 0.0
            for j in range(l + 1):
                v = v + M[i * D + j] * U[j * D + l]
            col = col + U[i * D + l] * v
        total = total + col
    return total


def trace_upper_products(const double[:, :, ::1] U, const double[:, :, ::1] M):
    """sum_k tr(U_k U_k^T M_k) = sum_k sum_l u_kl^T M_k u_kl over the
    columns u_kl of the upper-triangular U_k (rows l..., as only
    U_k[i, l], i <= l, are non-zero), for symmetric M_k; float64."""
    cdef isize K = U.shape[0], D = U.shape[1], k
    cdef double total = 0.0
    if D == 0:
        return 0.0
    with nogil:
        for k in range(K):
            total = total + _trace_upper(&U[k, 0, 0], &M[k, 0, 0], D)
    return total


cdef bint _cholesky_precision(const double* S, isize D, double* L, double* U) noexcept nogil:
    """U upper (D, D, row-major, zeros below) with U U^T = S^-1 for one
    symmetric S (D, D): the lower Cholesky factor L (LAPACK potf2's column
    order), then M = L^-1 by forward substitution on the identity's columns
    (trsm's order, as scikit-learn's ``solve_triangular(L, I, lower=True)``),
    and U = M^T. L: D (D + 1) values of scratch. False when S has a
    non-finite entry or is not positive definite, or M is not finite."""
    cdef isize i, j, m, W = D + 1
    cdef double s, v
    for i in range(D * D):
        if not isfinite(S[i]):
            return False
    # L, column by column
    for j in range(D):
        s = S[j * D + j]
        for m in range(j):
            s = s - L[j * W + m] * L[j * W + m]
        if not (s > 0):
            return False
        s = sqrt(s)
        L[j * W + j] = s
        for i in range(j + 1, D):
            v = S[i * D + j]
            for m in range(j):
                v = v - L[i * W + m] * L[j * W + m]
            L[i * W + j] = v / s
    # column j of M = L^-1 into the spare column L[:, D], then U[j, :]
    for j in range(D):
        for i in range(D):
            L[i * W + D] = 1.0 if i == j else 0.0
        for m in range(j, D):
            L[m * W + D] = L[m * W + D] / L[m * W + m]
            for i in range(m + 1, D):
                L[i * W + D] = L[i * W + D] - L[m * W + D] * L[i * W + m]
        for i in range(D):
            U[j * D + i] = 0.0
        for i in range(j, D):
            v = L[i * W + D]
            if not isfinite(v):
                return False
            U[j * D + i] = v
    return True


def cholesky_precisions(const double[:, :, ::1] stack):
    """U_k upper with U_k U_k^T = Sigma_k^-1 for each Sigma_k of a (K, D, D)
    stack (``_cholesky_precision``). Returns (U float64 (K, D, D), ok): ok
    False when a Sigma_k has a non-finite entry or is not positive definite,
    or U_k is not finite (the caller raises scikit-learn's message)."""
    cdef isize K = stack.shape[0], D = stack.shape[1], k
    out = np.zeros((K, D, D))
    work = np.empty((D, D + 1))
    cdef double[:, :, ::1] U = out
    cdef double[:, ::1] L = work
    cdef bint ok = True
    if K == 0 or D == 0:
        return out, True
    with nogil:
        for k in range(K):
            ok = _cholesky_precision(&stack[k, 0, 0], D, &L[0, 0], &U[k, 0, 0])
            if not ok:
                break
    return out, bool(ok)


cdef int _lapack_cholesky_precision(const double* A, isize D, double* U) noexcept nogil:
    """U (row-major, upper) with U U^T = A^-1 for one symmetric positive
    definite A (row-major, D x D), by LAPACK's potrf and trtri as
    ``scipy.linalg.lapack.dpotrf(A, lower=1, clean=1)`` then ``dtrtri(L,
    lower=1)`` and ``.T``: U's buffer is A copied in column-major order (the
    Fortran copy the wrappers make), factorised and inverted in place; read
    row-major it is L^-1 transposed. 0 on success, else LAPACK's info or -1
    for a non-finite entry of U."""
    cdef isize i, j
    cdef int n = <int>D, info = 0
    cdef char lo = b'L'
    cdef char nd = b'N'
    for j in range(D):
        for i in range(D):
            U[j * D + i] = A[i * D + j]
    dpotrf(&lo, &n, U, &n, &info)
    if info != 0:
        return info
    for j in range(D):  # clean=1: the strict upper triangle (column-major) zero
        for i in range(j):
            U[j * D + i] = 0.0
    dtrtri(&lo, &nd, &n, U, &n, &info)
    if info != 0:
        return info
    for i in range(D * D):
        if not isfinite(U[i]):
            return -1
    return 0


def lapack_cholesky_precisions(const double[:, :, ::1] stack, int n_threads):
    """``cholesky_precisions`` for larger D by LAPACK (potrf, trtri), the
    components on up to ``n_threads`` OpenMP threads (each LAPACK call on
    one thread: the caller holds BLAS to one thread). The numbers of
    ``scipy.linalg.lapack``'s wrappers called one component after another,
    bit for bit. Returns (U float64 (K, D, D), ok)."""
    cdef isize K = stack.shape[0], D = stack.shape[1], k
    out = np.empty((K, D, D))
    status = np.zeros(max(K, 1), dtype=np.int32)
    cdef double[:, :, ::1] U = out
    cdef int[::1] st = status
    cdef int nt = max(1, min(n_threads, <int>K))
    if K == 0 or D == 0:
        return np.zeros((K, D, D)), True
    if nt == 1:
        with nogil:
            for k in range(K):
                st[k] = _lapack_cholesky_precision(&stack[k, 0, 0], D, &U[k, 0, 0])
                if st[k] != 0:
                    break
    else:
        with nogil:
            for k in prange(K, schedule='dynamic', chunksize=1, num_threads=nt):
                st[k] = _lapack_cholesky_precision(&stack[k, 0, 0], D, &U[k, 0, 0])
    return out, not status.any()


# below this many features tr(U U^T M) is one product U U^T; from it the
# triangle's blocks (half the multiply-adds touch zeros)
cdef isize TRACE_SPLIT = 128


cdef double _dot_blocks(const double* P, isize ldp, const double* Mt, isize ldm,
                        isize m, isize n) noexcept nogil:
    """sum_ij P[j * ldp + i] Mt[j * ldm + i] over i < m, j < n, a column
    at a time (BLAS ddot): a column-major (m, n) product against the block
    of a symmetric M it pairs with, read as M's transpose (rows of M where
    the product has columns, so that both run contiguously)."""
    cdef isize j
    cdef int len_ = <int>m, inc = 1
    cdef double total = 0.0
    for j in range(n):
        total = total + blas_ddot(&len_, P + j * ldp, &inc, Mt + j * ldm, &inc)
    return total


cdef double _trace_upper_blocked(const double* U, const double* M, isize D, isize ld,
                                 double* work) noexcept nogil:
    """tr(U U^T M) for an upper-triangular U and a symmetric M, both (D, D)
    row-major with leading dimension ld (blocks of larger matrices); work
    holds D * D doubles. With U = [[A, B], [0, C]]: U U^T = [[A A^T + B
    B^T, B C^T], [C B^T, C C^T]], the diagonal blocks recursing (about D^3 /
    3 multiply-adds). Each product is a single-threaded gemm: a row-major X
    is X^T to BLAS, so X Y^T is gemm('T', 'N') of the two buffers."""
    cdef isize h, r
    cdef int m, n, k, lda
    cdef double one = 1.0, zero = 0.0, total
    cdef char tr = b'T'
    cdef char nt = b'N'
    lda = <int>ld
    if D < TRACE_SPLIT:
        m = <int>D
        blas_dgemm(&tr, &nt, &m, &m, &m, &one, U, &lda, U, &lda, &zero, work, &m)
        return _dot_blocks(work, D, M, ld, D, D)
    h = D // 2
    r = D - h
    total = (_trace_upper_blocked(U, M, h, ld, work)
             + _trace_upper_blocked(U + h * ld + h, M + h * ld + h, r, ld, work))
    m = <int>h
    k = <int>r
    # B B^T against M's top-left block
    blas_dgemm(&tr, &nt, &m, &m, &k, &one, U + h, &lda, U + h, &lda, &zero, work, &m)
    total = total + _dot_blocks(work, h, M, ld, h, h)
    # 2 (B C^T) against M's top-right block (its transpose: M's bottom-left)
    n = <int>r
    blas_dgemm(&tr, &nt, &m, &n, &k, &one, U + h, &lda, U + h * ld + h, &lda, &zero,
               work, &m)
    return total + 2.0 * _dot_blocks(work, h, M + h * ld, ld, h, r)


def trace_upper_blocked(const double[:, :, ::1] U, const double[:, :, ::1] M, int n_threads):
    """sum_k tr(U_k U_k^T M_k) for upper-triangular U_k and symmetric M_k,
    (K, D, D) stacks: ``_trace_upper_blocked`` per component, the
    components on up to n_threads OpenMP threads (the caller holds BLAS to
    one thread), their traces added in component order (the same sum on
    any thread count)."""
    cdef isize K = U.shape[0], D = U.shape[1], k
    cdef int nt = max(1, min(n_threads, <int>K))
    if K == 0 or D == 0:
        return 0.0
    parts = np.zeros(K)
    work = np.empty((nt, D * D))
    cdef double[::1] p = parts
    cdef double[:, ::1] wk = work
    if nt == 1:
        with nogil:
            for k in range(K):
                p[k] = _trace_upper_blocked(&U[k, 0, 0], &M[k, 0, 0], D, D, &wk[0, 0])
    else:
        with nogil, parallel(num_threads=nt):
            for k in prange(K, schedule='dynamic', chunksize=1):
                p[k] = _trace_upper_blocked(&U[k, 0, 0], &M[k, 0, 0], D, D,
                                            &wk[threadid(), 0])
    return float(sum(parts))


def log_resp_sum(int code, object R, object S1, object S2, object prec, object lognorm,
                 object d, double ll):
    """sum_i w_i sum_k r_ik log r_ik of an E-step from its statistics, in one
    call (gmmfast/_bayesian.py's ``log_resp_sum`` and
    ``weighted_mahalanobis``): sum_k R_k lognorm_k - 1/2 sum_k tr(P_k M_k)
    - ll, with P_k = U_k U_k^T of the E-step's precisions_cholesky ``prec``
    (flat, float64) and M_k the second-order statistic around the E-step's
    means: S2 itself (flat as em_m_step takes it), but for tied
    T - S1^T d - d^T S1 + sum_k R_k d_k d_k^T summed over the components,
    d (K, D) the means less the centre (read for tied only)."""
    cdef isize K = 0, D = 0, k, i, j
    _matrix_shape(S1, "S1", &K, &D)
    cdef isize n_cov = _n_cov(code, K, D)
    cdef const double* r = _in(R, K, "R")
    cdef const double* s1 = _in(S1, K * D, "S1")
    cdef const double* s2 = _in(S2, n_cov, "S2")
    cdef const double* p = _in(prec, n_cov, "prec")
    cdef const double* ln = _in(lognorm, K, "lognorm")
    cdef const double* dk = NULL
    if code == TIED:
        dk = _in(d, K * D, "d")
    cdef double lin = 0.0, trace = 0.0, a, b
    cdef cnp.ndarray work_arr
    cdef double* M
    cdef double* cross
    with nogil:
        for k in range(K):
            lin = lin + r[k] * ln[k]
    if code == FULL:
        with nogil:
            for k in range(K):
                trace = trace + _trace_upper(&p[k * D * D], &s2[k * D * D], D)
    elif code == TIED:
        work_arr = _new(1, 2 * D * D)
        M = _data(work_arr)
        with nogil:
            # M := T - cross - cross^T + sum_k R_k d_k d_k^T, cross = S1^T d
            cross = &M[D * D]
            for i in range(D):
                for j in range(D):
                    a = 0.0
                    for k in range(K):
                        a = a + s1[k * D + i] * dk[k * D + j]
                    cross[i * D + j] = a
            for i in range(D):
                for j in range(D):
                    b = 0.0
                    for k in range(K):
                        b = b + r[k] * dk[k * D + i] * dk[k * D + j]
                    M[i * D + j] = ((s2[i * D + j] - cross[i * D + j]) - cross[j * D + i]) + b
            trace = _trace_upper(p, M, D)
    elif code == DIAG:
        with nogil:
            for k in range(K * D):
                trace = trace + p[k] * p[k] * s2[k]
    else:
        with nogil:
            for k in range(K):
                trace = trace + p[k] * p[k] * s2[k]
    return lin - 0.5 * trace - ll


def symmetrize_upper_stack(const double[:, :, ::1] S):
    """The symmetric matrices whose upper triangles a (K, D, D) stack holds
    (zeros below the diagonal, as the kernels write them)."""
    cdef isize K = S.shape[0], D = S.shape[1]
    out = np.empty((K, D, D))
    cdef double[:, :, ::1] o = out
    if K > 0 and D > 0:
        with nogil:
            _symmetrize_upper(&S[0, 0, 0], K, D, &o[0, 0, 0])
    return out


cdef void _symmetrize_upper(const double* f, isize K, isize D, double* o) noexcept nogil:
    """o[k] = S[k] + S[k]^T off the diagonal, the diagonal as it is, for a
    (K, D, D) stack f (``symmetrize_upper_stack``, ``reduce_slabs``)."""
    cdef isize k, i, j
    for k in range(K):
        for i in range(D):
            o[(k * D + i) * D + i] = f[(k * D + i) * D + i]
            for j in range(i + 1, D):
                o[(k * D + i) * D + j] = f[(k * D + i) * D + j] + f[(k * D + j) * D + i]
                o[(k * D + j) * D + i] = o[(k * D + i) * D + j]


def alloc_slabs(int code, isize K, isize D, int n_threads):
    """``_stats.alloc_stats`` in one call: zeroed per-thread accumulators R,
    S1, S2 for an E-step, (n_threads, stride) each, every row ``size``
    values then padding to at least a cache line past the next row's start
    (``_stats.thread_slabs``' layout: rows of threads adding into one line
    made 2 threads slower than 1)."""
    return (_zero_slab(n_threads, K), _zero_slab(n_threads, K * D),
            _zero_slab(n_threads, _s2_size(code, K, D)))


cdef cnp.ndarray _zero_slab(isize n_threads, isize size):
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = n_threads, (size + 7) // 8 * 8 + 8
    return <cnp.ndarray>cnp.PyArray_ZEROS(2, dims, cnp.NPY_DOUBLE, 0)


cdef void _sum_rows(const double* src, isize rows, isize stride, isize n,
                    double* out) noexcept nogil:
    """out = the first n values of each row, summed in strict row order: row
    0, then += each next row, for every column. (numpy's sum over axis 0
    gives the same for several columns over a few rows, but sums a single
    column of 8 or more rows pairwise, and gives +0.0 where every row holds
    -0.0; ``_stats.thread_sum`` uses this order too.)"""
    cdef isize t, x
    for x in range(n):
        out[x] = src[x]
    for t in range(1, rows):
        for x in range(n):
            out[x] += src[t * stride + x]


def reduce_slabs(int code, object R, object S1, object S2, isize K, isize D):
    """``_stats.reduce_stats`` in one call: the per-thread slabs summed in
    strict row order (``_sum_rows``) into new arrays (never views of the
    slabs; S1 and S2 must have R's row count), R (K,), S1 (K, D)
    and S2 as the M-step takes it: full, the symmetric (K, D, D) matrices
    whose upper triangles the kernels wrote (``symmetrize_upper``'s values:
    S[i, j] + S[j, i], the diagonal as it is); tied None (its scatter comes
    once per fit); diag (K, D); spherical (K,). About 0.5 against 4.4 us of
    numpy calls at K = 2, D = 2, every E-step."""
    if code not in (FULL, TIED, DIAG, SPHERICAL):
        raise ValueError(f"unknown covariance code {code}")
    cdef isize sr = 0, s1s = 0, s2s = 0, n_s2 = _s2_size(code, K, D)
    cdef const double* r = _slab(R, 1, K, "R", &sr)
    cdef isize rows = cnp.PyArray_DIM(<cnp.ndarray>R, 0)
    cdef const double* s1 = _slab(S1, rows, K * D, "S1", &s1s)
    cdef const double* s2 = NULL
    if cnp.PyArray_DIM(<cnp.ndarray>S1, 0) != rows:
        raise TypeError(f"S1: expected R's {rows} rows, got {_describe(S1)}")
    if code != TIED:
        s2 = _slab(S2, rows, n_s2, "S2", &s2s)
        if cnp.PyArray_DIM(<cnp.ndarray>S2, 0) != rows:
            raise TypeError(f"S2: expected R's {rows} rows, got {_describe(S2)}")
    cdef cnp.ndarray R_out = _new(1, K), S1_out = _new(2, K, D)
    cdef cnp.ndarray S2_out = None, flat
    cdef double* o
    cdef double* f
    _sum_rows(r, rows, sr, K, _data(R_out))
    _sum_rows(s1, rows, s1s, K * D, _data(S1_out))
    if code == FULL:
        flat = _new(1, n_s2)
        S2_out = _new(3, K, D, D)
        f, o = _data(flat), _data(S2_out)
        with nogil:
            _sum_rows(s2, rows, s2s, n_s2, f)
            _symmetrize_upper(f, K, D, o)
    elif code == DIAG:
        S2_out = _new(2, K, D)
        _sum_rows(s2, rows, s2s, n_s2, _data(S2_out))
    elif code == SPHERICAL:
        S2_out = _new(1, K)
        _sum_rows(s2, rows, s2s, n_s2, _data(S2_out))
    return R_out, S1_out, S2_out


# ---------------------------------------------------------------------------
# The M-step of a small shape in one call (gmmfast/_covariance.py's
# ``em_params``, gmmfast/_bayesian.py's compiled variational step): the
# Gaussian parameters from shifted statistics, the precisions' factors, and
# the next E-step's kernel constants. Each formula is the numpy form's, term
# by term in its order; sums of a few terms run in index order (numpy may
# pair them: the same values to rounding).
# ---------------------------------------------------------------------------

cdef double LOG_2PI = log(2.0 * 3.141592653589793)


cdef inline double _rounded(double v, bint float32) noexcept nogil:
    """v as the data's dtype holds it (float32: rounded to float)."""
    return <double>(<float>v) if float32 else v


# The entry points that every EM iteration calls (e_step, em_m_step,
# bgm_m_step, log_resp_sum) take numpy arrays and read them through their
# data pointers: acquiring a typed memoryview costs about 0.2 us, and at
# 2 x 2 the 16 of bgm_m_step were three quarters of its 49,000 instructions
# (callgrind). Each array is checked first, and one the kernels cannot read
# as they are (another dtype or byte order, not C-contiguous, another size)
# raises a TypeError naming the argument: the callers' arrays are gmmfast's
# own, so such an error is a bug, never a property of the data (a ValueError
# from the M-step means an ill-defined covariance to the EM loop).

cdef str _type_name(int typenum):
    return "float64" if typenum == cnp.NPY_DOUBLE else "float32"


cdef str _describe(object a):
    if not cnp.PyArray_Check(a):
        return type(a).__name__
    return (f"{a.dtype.str} {a.shape}, C-contiguous {a.flags.c_contiguous}, "
            f"aligned {a.flags.aligned}, writeable {a.flags.writeable}")


cdef inline bint _readable(object a, int typenum) noexcept:
    return (cnp.PyArray_Check(a)
            and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a))


cdef const void* _in_typed(object a, isize n, int typenum, str name) except NULL:
    """The values of ``a``, a C-contiguous native-order ndarray of n values
    (any shape) of numpy type ``typenum`` (NPY_DOUBLE or NPY_FLOAT);
    TypeError naming it otherwise. Not necessarily aligned, as typed
    memoryviews accepted: arrays that Dask unpickles from a message may start
    at any byte (the kernels' results are the same, tests/test_kernels.py)."""
    if not (_readable(a, typenum) and cnp.PyArray_SIZE(<cnp.ndarray>a) == n):
        raise TypeError(f"{name}: expected a C-contiguous native {_type_name(typenum)} "
                        f"array of {n} values, got {_describe(a)}")
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline const double* _in(object a, isize n, str name) except NULL:
    """``_in_typed`` for float64."""
    return <const double*>_in_typed(a, n, cnp.NPY_DOUBLE, name)


cdef double* _out(object a, isize n, str name) except NULL:
    """``_in``, and also aligned and writeable: what a kernel writes into."""
    if not (_readable(a, cnp.NPY_DOUBLE) and cnp.PyArray_SIZE(<cnp.ndarray>a) == n
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>a)
            and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)):
        raise TypeError(f"{name}: expected a writeable aligned C-contiguous native float64 "
                        f"array of {n} values, got {_describe(a)}")
    return <double*>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef double* _slab(object a, isize rows, isize cols, str name, isize* stride) except NULL:
    """Per-thread accumulators: a writeable aligned C-contiguous native
    float64 2-d ndarray of at least (rows, cols); sets its row stride."""
    if not (_readable(a, cnp.NPY_DOUBLE) and cnp.PyArray_NDIM(<cnp.ndarray>a) == 2
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>a)
            and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)
            and cnp.PyArray_DIM(<cnp.ndarray>a, 0) >= rows
            and cnp.PyArray_DIM(<cnp.ndarray>a, 1) >= cols):
        raise TypeError(f"{name}: expected writeable aligned C-contiguous native float64 "
                        f"accumulators of at least ({rows}, {cols}), got {_describe(a)}")
    stride[0] = cnp.PyArray_DIM(<cnp.ndarray>a, 1)
    return <double*>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int _matrix_shape(object a, str name, isize* rows, isize* cols) except -1:
    """The shape of ``a``, a 2-d ndarray (TypeError naming it otherwise)."""
    if not (cnp.PyArray_Check(a) and cnp.PyArray_NDIM(<cnp.ndarray>a) == 2):
        raise TypeError(f"{name}: expected a 2-d array, got {_describe(a)}")
    rows[0] = cnp.PyArray_DIM(<cnp.ndarray>a, 0)
    cols[0] = cnp.PyArray_DIM(<cnp.ndarray>a, 1)
    return 0


cdef cnp.ndarray _new(int nd, isize d0, isize d1=0, isize d2=0):
    """An uninitialised float64 array of shape (d0, d1, d2)[:nd]."""
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = d0, d1, d2
    return <cnp.ndarray>cnp.PyArray_EMPTY(nd, dims, cnp.NPY_DOUBLE, 0)


cdef inline double* _data(cnp.ndarray a) noexcept:
    return <double*>cnp.PyArray_DATA(a)


cdef cnp.ndarray _new_cov(int code, isize K, isize D):
    """Uninitialised covariances (or their factors) in the type's shape."""
    if code == FULL:
        return _new(3, K, D, D)
    if code == TIED:
        return _new(2, D, D)
    if code == DIAG:
        return _new(2, K, D)
    return _new(1, K)


cdef isize _n_cov(int code, isize K, isize D) noexcept nogil:
    """Values in one covariance type's covariances (and their factors)."""
    if code == FULL:
        return K * D * D
    if code == TIED:
        return D * D
    return K * D if code == DIAG else K


ctypedef struct StepOut:
    double* means               # (K, D)
    double* cov                 # the type's shape
    double* prec                # the type's shape
    double* lognorm             # (K,)
    double* work                # scratch


cdef tuple _step_out(int code, isize K, isize D, isize n_work, StepOut* o):
    """The arrays both M-steps return (means, covariances, precisions'
    factors, kernel constants) and their scratch, uninitialised, with their
    data pointers in ``o``."""
    means_arr, cov_arr, prec_arr = _new(2, K, D), _new_cov(code, K, D), _new_cov(code, K, D)
    lognorm_arr, work_arr = _new(1, K), _new(1, n_work)
    o.means, o.cov, o.prec = _data(means_arr), _data(cov_arr), _data(prec_arr)
    o.lognorm, o.work = _data(lognorm_arr), _data(work_arr)
    return means_arr, cov_arr, prec_arr, lognorm_arr, work_arr


ctypedef struct Shifted:
    isize K, D
    const double* R             # (K,)
    const double* S1            # (K, D)
    const double* S2            # flat, the type's layout (_n_cov values)
    const double* shift         # (K, D)
    const double* anchor        # (K, D), or NULL: the shift


cdef int _shifted(int code, object R, object S1, object S2, object shift, object anchor,
                  Shifted* st) except -1:
    """The M-steps' shifted statistics as ``_gaussian`` reads them, each
    argument checked (``_in``)."""
    _matrix_shape(S1, "S1", &st.K, &st.D)
    cdef isize K = st.K, D = st.D
    st.R = _in(R, K, "R")
    st.S1 = _in(S1, K * D, "S1")
    st.S2 = _in(S2, _n_cov(code, K, D), "S2")
    st.shift = _in(shift, K * D, "shift")
    st.anchor = NULL
    if anchor is not None:
        st.anchor = _in(anchor, K * D, "anchor")
    return 0


cdef double _gaussian(int code, isize K, isize D, const double* R, const double* S1,
                      const double* S2, const double* shift, const double* anchor,
                      double reg_covar, double eps, double* nk, double* means, double* d,
                      double* cov, double* work) noexcept nogil:
    """``params_from_stats``: n_k = R_k + 10 eps into nk (K,), the means
    (K, D) and the covariances (the type's layout, reg_covar added); S1,
    shift and anchor (NULL: the shift) are (K, D) row-major; d (K, D) and
    work (D^2) are scratch. Returns sum_k n_k."""
    cdef isize k, i, j
    cdef double a, b, t, nsum = 0.0
    for k in range(K):
        nk[k] = R[k] + 10.0 * eps
        nsum = nsum + nk[k]
        for j in range(D):
            if anchor == NULL:
                d[k * D + j] = S1[k * D + j] / nk[k]
            else:
                # sum w r (x - a) = S1 - R (a - c): the guard shrinks the step
                # from the anchor a, not the position
                t = anchor[k * D + j] - shift[k * D + j]
                d[k * D + j] = t + (S1[k * D + j] - R[k] * t) / nk[k]
            means[k * D + j] = shift[k * D + j] + d[k * D + j]
    if code == FULL:
        for k in range(K):
            for i in range(D):
                for j in range(i, D):
                    a = ((S2[(k * D + i) * D + j] - S1[k * D + i] * d[k * D + j])
                         - S1[k * D + j] * d[k * D + i])
                    a = a + R[k] * d[k * D + i] * d[k * D + j]
                    b = ((S2[(k * D + j) * D + i] - S1[k * D + j] * d[k * D + i])
                         - S1[k * D + i] * d[k * D + j])
                    b = b + R[k] * d[k * D + j] * d[k * D + i]
                    a = 0.5 * (a + b) / nk[k]
                    cov[(k * D + i) * D + j] = a
                    cov[(k * D + j) * D + i] = a
                cov[(k * D + i) * D + i] += reg_covar
    elif code == TIED:
        # T - S1^T d - d^T S1 + sum_k R_k d_k d_k^T, symmetrised, / sum n_k
        for i in range(D):
            for j in range(D):
                a = 0.0
                for k in range(K):
                    a = a + S1[k * D + i] * d[k * D + j]
                work[i * D + j] = a
        for i in range(D):
            for j in range(D):
                b = 0.0
                for k in range(K):
                    b = b + R[k] * d[k * D + i] * d[k * D + j]
                cov[i * D + j] = ((S2[i * D + j] - work[i * D + j]) - work[j * D + i]) + b
        for i in range(D):
            for j in range(i, D):
                a = 0.5 * (cov[i * D + j] + cov[j * D + i]) / nsum
                cov[i * D + j] = a
                cov[j * D + i] = a
            cov[i * D + i] += reg_covar
    elif code == DIAG:
        for k in range(K):
            for j in range(D):
                cov[k * D + j] = ((S2[k * D + j] - 2.0 * d[k * D + j] * S1[k * D + j])
                                  + R[k] * d[k * D + j] * d[k * D + j]) / nk[k] + reg_covar
    else:
        for k in range(K):
            a = 0.0
            b = 0.0
            for j in range(D):
                a = a + d[k * D + j] * S1[k * D + j]
                b = b + d[k * D + j] * d[k * D + j]
            cov[k] = ((S2[k] - 2.0 * a) + R[k] * b) / (nk[k] * D) + reg_covar
    return nsum


cdef bint _precision_factors(int code, isize K, isize D, const double* cov, double* prec,
                             double* work) noexcept nogil:
    """``precision_cholesky``: U_k (full, tied) or 1 / sqrt(variances) (diag,
    spherical); False for a covariance not finite or not positive definite.
    work: D (D + 1) values."""
    cdef isize k, n
    cdef double a
    if code == FULL:
        for k in range(K):
            if not _cholesky_precision(&cov[k * D * D], D, work, &prec[k * D * D]):
                return False
        return True
    if code == TIED:
        return _cholesky_precision(cov, D, work, prec)
    n = _n_cov(code, K, D)
    for k in range(n):
        a = cov[k]
        if not (a > 0.0 and a < INFINITY):
            return False
        prec[k] = 1.0 / sqrt(a)
    return True


cdef double _log_det(int code, const double* prec, isize k, isize D,
                     bint float32) noexcept nogil:
    """sum_d log U_k[d, d] of component k (``log_det``), of the factors as
    the data's dtype holds them."""
    cdef isize j
    cdef double s = 0.0
    if code == SPHERICAL:
        return D * log(_rounded(prec[k], float32))
    for j in range(D):
        if code == FULL:
            s = s + log(_rounded(prec[(k * D + j) * D + j], float32))
        elif code == TIED:
            s = s + log(_rounded(prec[j * D + j], float32))
        else:
            s = s + log(_rounded(prec[k * D + j], float32))
    return s


def em_m_step(int code, object R, object S1, object S2, object shift, object anchor,
              double reg_covar, double eps, object total, bint float32):
    """EM's M-step for covariance type ``code`` from shifted statistics, in
    one call, with the next E-step's kernel constants (gmmfast/_covariance.py's
    ``em_params``).

    R (K,) and S1 (K, D) are taken around ``shift`` (K, D); S2, flat, is
    full: the (K, D, D) symmetric matrices; tied: the scatter T (D, D);
    diag: (K, D); spherical: (K,). ``anchor`` (K, D) or None (the shift) is
    where the 10 eps guard on n_k pulls each mean. ``total`` (a float)
    divides n_k for the weights, None: sum_k n_k. ``float32``: the kernel constants are those
    of the parameters rounded to float32 (the data's dtype).

    Returns (weights (K,), means (K, D), covariances, precisions_cholesky,
    lognorm (K,)), float64, the two matrices in the type's shape; None when
    a covariance is not finite or not positive definite (the caller raises
    scikit-learn's message). lognorm_k = log pi_k + log det U_k - D/2 log 2 pi.
    """
    cdef isize K = 0, D = 0, k
    cdef Shifted st
    _shifted(code, R, S1, S2, shift, anchor, &st)
    K, D = st.K, st.D
    cdef isize n_cov = _n_cov(code, K, D)
    cdef StepOut o
    means_arr, cov_arr, prec_arr, lognorm_arr, work_arr = _step_out(
        code, K, D, K * D + D * (D + 1) + 1, &o)
    cdef cnp.ndarray nk_arr = _new(1, K)
    cdef double* nk = _data(nk_arr)
    cdef double nsum, half = 0.5 * D * LOG_2PI
    cdef bint ok, by_total = total is not None
    cdef double total_weight = float(total) if by_total else 0.0
    with nogil:
        nsum = _gaussian(code, K, D, st.R, st.S1, st.S2, st.shift, st.anchor, reg_covar,
                         eps, nk, o.means, o.work, o.cov, &o.work[K * D])
        ok = _precision_factors(code, K, D, o.cov, o.prec, &o.work[K * D])
        if ok:
            if by_total:
                nsum = total_weight
            for k in range(K):
                nk[k] = nk[k] / nsum   # the weights
                o.lognorm[k] = ((log(_rounded(nk[k], float32))
                                 + _log_det(code, o.prec, k, D, float32)) - half)
    if not ok:
        return None
    return nk_arr, means_arr, cov_arr, prec_arr, lognorm_arr


# ---------------------------------------------------------------------------
# BayesianGaussianMixture's per-iteration constants (gmmfast/_bayesian.py).
# A few dozen digammas and log-gammas of (K,) and (D, K) arrays: in numpy and
# scipy.special about 40 calls, most of a small fit's variational iteration
# beside its kernel pass; here one call.
# ---------------------------------------------------------------------------

cdef double _digamma(double x) noexcept nogil:
    """psi(x) for x > 0 (the callers' arguments: concentrations and half
    degrees of freedom (nu - j) / 2, j < D, with nu > D - 1): the recurrence
    psi(x) = psi(x + 1) - 1/x up to x >= 10, then the asymptotic series to
    B_14, whose first omitted term is below 3617/8160 * 10^-16, under an ulp
    of psi(10) = 2.25. NaN below or at 0 (never reached by valid priors)."""
    cdef double r = 0.0, f
    if x == INFINITY:
        return INFINITY
    if not (x > 0.0):
        return NAN
    while x < 10.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return r + log(x) - 0.5 / x - f * (
        1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (
            1.0 / 240 - f * (1.0 / 132 - f * (691.0 / 32760 - f / 12.0))))))


def digamma(const double[::1] x):
    """``_digamma`` elementwise (tests compare it with scipy.special.digamma)."""
    out = np.empty(x.shape[0])
    cdef double[::1] o = out
    cdef isize i
    for i in range(x.shape[0]):
        o[i] = _digamma(x[i])
    return out


cdef double _bgm_constants(const double* log_det, const double* dof,
                          const double* mean_precision, const double* conc_a,
                          const double* conc_b, isize K, isize D, bint process, bint tied,
                          double* lognorm) noexcept:
    """``bgm_constants`` on raw arrays (K values each)."""
    cdef isize k, j
    cdef double log2 = log(2.0), log_2pi = LOG_2PI
    cdef double acc = 0.0, ds, total = 0.0, log_norm_weight = 0.0
    cdef double log_wishart = 0.0, sum_log_beta = 0.0
    cdef double nu, lnu, h, sdig = 0.0, slg = 0.0, ld, lwn
    # E[log pi_k] and the weights' normaliser
    if process:
        for k in range(K):
            ds = _digamma(conc_a[k] + conc_b[k])
            lognorm[k] = _digamma(conc_a[k]) - ds + acc
            acc += _digamma(conc_b[k]) - ds
            log_norm_weight -= (lgamma(conc_a[k]) + lgamma(conc_b[k])
                                - lgamma(conc_a[k] + conc_b[k]))
    else:
        for k in range(K):
            total += conc_a[k]
        ds = _digamma(total)
        log_norm_weight = lgamma(total)
        for k in range(K):
            lognorm[k] = _digamma(conc_a[k]) - ds
            log_norm_weight -= lgamma(conc_a[k])
    # the Gaussian-Wishart part
    for k in range(K):
        nu = dof[k]
        lnu = log(nu)
        if k == 0 or not tied:
            sdig = 0.0
            slg = 0.0
            for j in range(D):
                h = 0.5 * (nu - j)
                sdig += _digamma(h)
                slg += lgamma(h)
        lognorm[k] += (log_det[k] - 0.5 * D * log_2pi - 0.5 * D * lnu
                       + 0.5 * (D * log2 + sdig - D / mean_precision[k]))
        ld = log_det[k] - 0.5 * D * lnu
        lwn = -(nu * ld + nu * D * 0.5 * log2 + slg)
        if not tied:
            log_wishart += lwn
        elif k == 0:
            log_wishart = K * lwn
        sum_log_beta += log(mean_precision[k])
    return -log_wishart - log_norm_weight - 0.5 * D * sum_log_beta


def bgm_constants(const double[::1] log_det, const double[::1] dof,
                  const double[::1] mean_precision, const double[::1] conc_a,
                  const double[::1] conc_b, isize n_features, bint process, bint tied,
                  double[::1] lognorm):
    """The variational model's per-component kernel constant and the
    parameters' part of its lower bound, float64.

    log_det (K,): log det U_k of the precisions' Cholesky factors; dof (K,):
    nu_k (tied: nu repeated); mean_precision (K,): beta_k; the concentrations
    (process: conc_a, conc_b the two (K,) Beta parameters; otherwise conc_a
    the Dirichlet's, conc_b unread). Writes into lognorm (K,)

        log det U_k - D/2 log(2 pi) - D/2 log nu_k
        + 1/2 (D log 2 + sum_j psi((nu_k - j)/2) - D / beta_k) + E[log pi_k]

    and returns -log_wishart - log_norm_weight - D/2 sum_k log beta_k, so
    that the lower bound is that minus sum_i w_i sum_k r_ik log r_ik (the
    terms and their order: gmmfast/_bayesian.py's ``log_prob_constant``,
    ``log_weights`` and ``lower_bound``, which are scikit-learn's)."""
    return _bgm_constants(&log_det[0], &dof[0], &mean_precision[0], &conc_a[0],
                          &conc_b[0], dof.shape[0], n_features, process, tied, &lognorm[0])


def bgm_m_step(int code, object R, object S1, object S2, object shift, object anchor,
               double reg_covar, double eps, bint process, double conc_prior, double beta0,
               object mean_prior, double nu0, object cov_prior, bint float32):
    """BayesianGaussianMixture's variational M-step from shifted statistics,
    in one call, with the next E-step's kernel constants and the parameters'
    part of the lower bound (gmmfast/_bayesian.py's ``variational_m_step``
    of ``params_from_stats``, then ``_shared``; scikit-learn's
    ``_estimate_weights``, ``_estimate_means``, ``_estimate_wishart_*``).

    The statistics as ``em_m_step`` takes them; the priors: the weight
    concentration prior (``process``: the Dirichlet process's), beta0,
    mean_prior (D,), nu0 and cov_prior flat (full/tied (D, D), diag (D,),
    spherical one value). ``float32``: the constants are those of the
    parameters rounded to float32.

    Returns (conc_a (K,), conc_b (K,) or None, mean_precision (K,), means
    (K, D), degrees_of_freedom ((K,); tied: a float64), covariances,
    precisions_cholesky, lognorm (K,), bound_terms), float64; None when a
    covariance is not finite or not positive definite.
    """
    cdef isize K = 0, D = 0, k, i, j
    cdef Shifted st
    _shifted(code, R, S1, S2, shift, anchor, &st)
    K, D = st.K, st.D
    cdef isize n_cov = _n_cov(code, K, D)
    cdef const double* mean_prior_ = _in(mean_prior, D, "mean_prior")
    cdef const double* cov_prior_ = _in(
        cov_prior, D * D if code == FULL or code == TIED else (D if code == DIAG else 1),
        "cov_prior")
    # o.work: nk, xk, d, sk, then the rounded constants' inputs (5 K), then scratch
    cdef StepOut o
    means_arr, cov_arr, prec_arr, lognorm_arr, work_arr = _step_out(
        code, K, D, K + 2 * K * D + n_cov + 5 * K + D * (D + 1) + 1, &o)
    cdef cnp.ndarray ca_arr = _new(1, K), cb_arr = _new(1, K), beta_arr = _new(1, K)
    cdef cnp.ndarray dof_arr = _new(1, K)
    cdef double* ca = _data(ca_arr)
    cdef double* cb = _data(cb_arr)
    cdef double* beta = _data(beta_arr)
    cdef double* dof = _data(dof_arr)
    cdef double* nk = &o.work[0]
    cdef double* xk = nk + K
    cdef double* d = xk + K * D
    cdef double* sk = d + K * D
    cdef double* r_logdet = sk + n_cov
    cdef double* r_dof = r_logdet + K
    cdef double* r_beta = r_dof + K
    cdef double* r_ca = r_beta + K
    cdef double* r_cb = r_ca + K
    cdef double* scratch = r_cb + K
    cdef double nsum, acc = 0.0, scale, c, g, m
    cdef bint ok
    with nogil:
        nsum = _gaussian(code, K, D, st.R, st.S1, st.S2, st.shift, st.anchor, reg_covar,
                         eps, nk, xk, d, sk, scratch)
        # the Dirichlet (process) posterior
        for k in range(K - 1, -1, -1):
            if process:
                ca[k] = 1.0 + nk[k]
                cb[k] = conc_prior + acc   # sum_{j > k} n_j, summed from the end
                acc = acc + nk[k]
            else:
                ca[k] = conc_prior + nk[k]
        for k in range(K):
            beta[k] = beta0 + nk[k]
            for j in range(D):
                o.means[k * D + j] = (beta0 * mean_prior_[j] + nk[k] * xk[k * D + j]) / beta[k]
        # the Wishart posterior
        if code == FULL:
            for k in range(K):
                dof[k] = nu0 + nk[k]
                scale = nk[k] * beta0 / beta[k]
                for i in range(D):
                    for j in range(D):
                        c = nk[k] * sk[(k * D + i) * D + j]
                        c = c + cov_prior_[i * D + j]
                        c = c + ((xk[k * D + i] - mean_prior_[i])
                                 * (xk[k * D + j] - mean_prior_[j])) * scale
                        o.cov[(k * D + i) * D + j] = c / dof[k]
        elif code == TIED:
            c = nu0 + nsum / K
            for k in range(K):
                dof[k] = c
            for i in range(D):
                for j in range(D):
                    g = 0.0
                    for k in range(K):
                        g = g + ((nk[k] / beta[k]) * (xk[k * D + i] - mean_prior_[i])
                                 * (xk[k * D + j] - mean_prior_[j]))
                    o.cov[i * D + j] = ((cov_prior_[i * D + j] + sk[i * D + j] * nsum / K)
                                        + beta0 / K * g) / dof[0]
        elif code == DIAG:
            for k in range(K):
                dof[k] = nu0 + nk[k]
                for j in range(D):
                    m = xk[k * D + j] - mean_prior_[j]
                    o.cov[k * D + j] = (cov_prior_[j] + nk[k] * (
                        sk[k * D + j] + (beta0 / beta[k]) * (m * m))) / dof[k]
        else:
            for k in range(K):
                dof[k] = nu0 + nk[k]
                g = 0.0
                for j in range(D):
                    m = xk[k * D + j] - mean_prior_[j]
                    g = g + m * m
                o.cov[k] = (cov_prior_[0] + nk[k] * (sk[k] + beta0 / beta[k] * (g / D))) / dof[k]
        ok = _precision_factors(code, K, D, o.cov, o.prec, scratch)
        if ok:
            for k in range(K):
                r_logdet[k] = _log_det(code, o.prec, k, D, float32)
                r_dof[k] = _rounded(dof[k], float32)
                r_beta[k] = _rounded(beta[k], float32)
                r_ca[k] = _rounded(ca[k], float32)
                r_cb[k] = _rounded(cb[k], float32) if process else r_ca[k]
    if not ok:
        return None
    bound_terms = _bgm_constants(r_logdet, r_dof, r_beta, r_ca, r_cb, K, D, process,
                                 code == TIED, o.lognorm)
    return (ca_arr, cb_arr if process else None, beta_arr, means_arr,
            np.float64(dof[0]) if code == TIED else dof_arr,
            cov_arr, prec_arr, lognorm_arr, bound_terms)

