# cython: language_level=3
"""The passes of the streamed k-means (gmmfast/_kmeans.py): Lloyd,
k-means++ seeding, moments; each one read of X.

The Lloyd pass:

For each row, in the data's dtype as scikit-learn's Lloyd step computes it:

    xc    = x - offset                         (the data centred on its mean)
    d_k   = ||c_k||^2 - 2 xc.c_k               (scikit-learn's gemm formula)
    label = the first k of minimal d_k         (strict '<' scan)

and into per-thread float64 slabs

    W[label]    += w                           (the cluster's weight)
    S[label, :] += w xc                        (its weighted sum)

and, when asked, the inertia sum_i w_i ||xc_i - c_label||^2 (float64) and
the per-cluster row counts. Rows are cut into blocks of ``chunk_size`` rows
spread over OpenMP threads; each thread adds into its own slab row (the
caller sums them in thread order: bitwise reproducible for a given thread
count). The rows of the seeding, one-hot and Lloyd passes (up to
LLOYD_ROWS_MAX_K clusters) are gmmfast/_kmeans_simd.h: vectorised, compiled
per instruction set
with the EM kernel's dispatch (gmmfast/_simd_compat.h); each dot product
sums over the features in order, so scikit-learn's numbers to the rounding
of a BLAS dot. Beyond LLOYD_ROWS_MAX_K clusters the Lloyd distances are
scikit-learn's own gemm call per chunk of rows.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from scipy.linalg.cython_blas cimport dgemm, sgemm
from cpython.exc cimport PyErr_CheckSignals
from libc.math cimport sqrt
from libc.string cimport memcpy, memset

import numpy as np

ctypedef Py_ssize_t isize


cdef extern from "_kmeans_simd.h" nogil:
    long long km_lloyd_scratch(long long nb, long long D, long long K)
    void km_lloyd_rows_d(const double* X, const double* sw, const double* offset,
                         const double* C, const double* norms, long long K,
                         long long nb, long long D, double* S, double* W,
                         double* inertia, double* counts, int want, double* buf)
    void km_lloyd_rows_f(const float* X, const double* sw, const float* offset,
                         const float* C, const float* norms, long long K,
                         long long nb, long long D, double* S, double* W,
                         double* inertia, double* counts, int want, float* buf)


cdef extern from "_kmeans_simd.h" nogil:
    void km_moments_rows_d(const double* X, const double* sw, const double* center,
                           long long nb, long long D, double* o)
    void km_moments_rows_f(const float* X, const double* sw, const double* center,
                           long long nb, long long D, double* o)


cdef extern from "_kmeans_simd.h" nogil:
    void km_onehot_rows_d(const double* X, const double* sw, const double* offset,
                          const double* C, const double* norms, long long K,
                          long long nb, long long D, const double* shift, int cov_type,
                          double* R, double* S1, double* S2, double* counts, double* ybuf,
                          double* buf)
    void km_onehot_rows_f(const float* X, const double* sw, const float* offset,
                          const float* C, const float* norms, long long K,
                          long long nb, long long D, const double* shift, int cov_type,
                          double* R, double* S1, double* S2, double* counts, double* ybuf,
                          float* buf)


cdef inline void _rows_simd(
    const floating* X, const double* sw, const floating* offset,
    const floating* centres, const floating* norms,
    isize a, isize b, isize D, isize K, floating* buf,
    double* S, double* W, double* inertia, double* counts,
    bint want_inertia,
) noexcept nogil:
    if floating is double:
        km_lloyd_rows_d(X + a * D, NULL if sw == NULL else sw + a, offset, centres,
                        norms, K, b - a, D, S, W, inertia, counts, want_inertia, buf)
    else:
        km_lloyd_rows_f(X + a * D, NULL if sw == NULL else sw + a, offset, centres,
                        norms, K, b - a, D, S, W, inertia, counts, want_inertia, buf)


cdef inline void _distances(const floating* xc, const floating* centres,
                            const floating* norms, floating* P,
                            int nb, int D, int K) noexcept nogil:
    """P (nb, K) := ||c_k||^2 - 2 xc.c_k: scikit-learn's gemm call
    (row-major P = norms + (-2) xc C^T; column-major that is
    P^T = -2 C^T^T xc^T + P^T)."""
    cdef int i, k
    for i in range(nb):
        for k in range(K):
            P[i * K + k] = norms[k]
    cdef char ta = b'T'
    cdef char tb = b'N'
    cdef floating alpha = -2.0
    cdef floating beta = 1.0
    if floating is double:
        dgemm(&ta, &tb, &K, &nb, &D, &alpha, <double*>centres, &D, <double*>xc, &D,
              &beta, P, &K)
    else:
        sgemm(&ta, &tb, &K, &nb, &D, &alpha, <float*>centres, &D, <float*>xc, &D,
              &beta, P, &K)


cdef inline void _rows_blas(
    const floating* X, const double* sw, const floating* offset,
    const floating* centres, const floating* norms,
    isize a, isize b, isize D, isize K,
    floating* xc, floating* P,
    double* S, double* W, double* inertia, double* counts,
    bint want_inertia,
) noexcept nogil:
    cdef isize i, d, k, label, nb = b - a
    cdef floating v, best, diff
    cdef double wi, sq
    # the block centred (scikit-learn centres X once; the same subtraction)
    for i in range(nb):
        for d in range(D):
            xc[i * D + d] = X[(a + i) * D + d] - offset[d]
    _distances(xc, centres, norms, P, <int>nb, <int>D, <int>K)
    for i in range(nb):
        best = P[i * K]
        label = 0
        for k in range(1, K):
            v = P[i * K + k]
            if v < best:
                best = v
                label = k
        wi = 1.0 if sw == NULL else sw[a + i]
        W[label] += wi
        for d in range(D):
            S[label * D + d] += wi * xc[i * D + d]
        if want_inertia:
            sq = 0
            for d in range(D):
                diff = xc[i * D + d] - centres[label * D + d]
                sq += diff * diff
            inertia[0] += wi * sq
            counts[label] += 1


# up to this many clusters the Lloyd rows are the vectorised ones
# (gmmfast/_kmeans_simd.h); beyond, scikit-learn's gemm per chunk of rows,
# which reuses each loaded value more. Measured (2 threads, float64, a pass):
# vectorised / gemm 0.66-0.91 at K = 8 for 2-64 features, 0.97-1.07 at
# K = 32-64, 1.4 at K = 256 (40 features) and K = 64 (128 features).
cdef isize LLOYD_ROWS_MAX_K = 16


cdef inline void _rows(
    const floating* X, const double* sw, const floating* offset,
    const floating* centres, const floating* norms,
    isize a, isize b, isize D, isize K, floating* buf, isize chunk_size,
    double* S, double* W, double* inertia, double* counts,
    bint want_inertia,
) noexcept nogil:
    if K <= LLOYD_ROWS_MAX_K:
        _rows_simd(X, sw, offset, centres, norms, a, b, D, K, buf, S, W, inertia,
                   counts, want_inertia)
    else:
        _rows_blas(X, sw, offset, centres, norms, a, b, D, K, buf, buf + chunk_size * D,
                   S, W, inertia, counts, want_inertia)


def lloyd_scratch(isize chunk_size, isize n_features, isize n_clusters):
    """Values (the data's dtype) of scratch per thread for ``lloyd_pass``
    and ``onehot_pass``."""
    return max(km_lloyd_scratch(chunk_size, n_features, n_clusters),
               chunk_size * (n_features + n_clusters))


cdef void _lloyd_chunks(
    const floating* X, const double* sw, const floating* offset,
    const floating* centres, const floating* norms, floating[:, ::1] scratch,
    double[:, ::1] S, double[:, ::1] W, double[:, ::1] extra, bint want_inertia,
    isize n, isize D, isize K, isize chunk_size, int n_threads,
) noexcept nogil:
    # the chunks of rows spread over the OpenMP threads, each into its rows
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize c, a, b
    cdef int tid
    n_threads = <int>min(<isize>n_threads, n_chunks)
    with parallel(num_threads=n_threads):
        tid = threadid()
        for c in prange(n_chunks, schedule='static'):
            a = c * chunk_size
            b = min(a + chunk_size, n)
            _rows(X, sw, offset, centres, norms, a, b, D, K,
                  &scratch[tid, 0], chunk_size, &S[tid, 0], &W[tid, 0],
                  &extra[tid, 0], &extra[tid, 1], want_inertia)


def lloyd_pass(
    const floating[:, ::1] X,            # IN (n_samples, n_features)
    const double[::1] sample_weight,     # IN (n_samples,) or None
    const floating[::1] offset,          # IN (n_features,)
    const floating[:, ::1] centres,      # IN (n_clusters, n_features), offset coordinates
    const floating[::1] norms,           # IN (n_clusters,) ||c_k||^2 in X's dtype
    floating[:, ::1] scratch,            # (n_threads, lloyd_scratch(chunk_size, D, K))
    double[:, ::1] S,                    # OUT += (n_threads, n_clusters * n_features)
    double[:, ::1] W,                    # OUT += (n_threads, n_clusters)
    double[:, ::1] extra,                # OUT += (n_threads, 1 + n_clusters): inertia, counts
    bint want_inertia,
    isize chunk_size,
    int n_threads,
):
    """One Lloyd pass over X: per-thread cluster sums S and weights W (and
    the inertia and row counts in ``extra`` when ``want_inertia``). BLAS
    must be held to one thread by the caller (it runs inside OpenMP threads)."""
    cdef isize n = X.shape[0], D = X.shape[1], K = centres.shape[0]
    if n == 0:
        return
    cdef const double* sw = NULL
    if sample_weight is not None:
        sw = &sample_weight[0]
    with nogil:
        _lloyd_chunks(&X[0, 0], sw, &offset[0], &centres[0, 0], &norms[0], scratch,
                      S, W, extra, want_inertia, n, D, K, chunk_size, n_threads)


# ---------------------------------------------------------------------------
# The Lloyd loop of an in-memory array (gmmfast/_kmeans.py, ``lloyd``)
# ---------------------------------------------------------------------------

cdef floating _shift_sq(const floating* a, const floating* b, isize D) noexcept nogil:
    """||a - b||^2 in the data's dtype in scikit-learn's order of sums (its
    ``_euclidean_dense_dense``: four squares at a time, then the rest)."""
    cdef isize i
    cdef floating r = 0
    for i in range(D // 4):
        r += ((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])
              + (a[2] - b[2]) * (a[2] - b[2]) + (a[3] - b[3]) * (a[3] - b[3]))
        a += 4
        b += 4
    for i in range(D % 4):
        r += (a[i] - b[i]) * (a[i] - b[i])
    return r


cdef floating _pairwise_sum(const floating* a, isize n) noexcept nogil:
    """numpy's sum of a contiguous vector (pairwise: eight accumulators in
    blocks of up to 128 values), bit for bit."""
    cdef floating r[8]
    cdef floating res = 0
    cdef isize i, j, n2
    if n < 8:
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        for j in range(8):
            r[j] = a[j]
        for i in range(8, n - n % 8, 8):
            for j in range(8):
                r[j] += a[i + j]
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for i in range(n - n % 8, n):
            res += a[i]
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, n2) + _pairwise_sum(a + n2, n - n2)


cdef floating _shift_total(const floating* new, const floating* old, floating* shift,
                           isize K, isize D) noexcept nogil:
    # scikit-learn's ``(center_shift ** 2).sum()``: each centre's shift a
    # square root in the data's dtype, squared again, numpy's sum over them
    cdef isize k
    cdef floating s
    for k in range(K):
        s = <floating>sqrt(_shift_sq(new + k * D, old + k * D, D))
        shift[k] = s * s
    return _pairwise_sum(shift, K)


def centre_shift_total(const floating[:, ::1] new, const floating[:, ::1] old):
    """scikit-learn's Lloyd stopping value, the squared centre shifts summed
    (float; the data's dtype rounding)."""
    cdef isize K = new.shape[0], D = new.shape[1]
    if K == 0:
        return 0.0
    cdef floating[::1] shift = np.empty(K, dtype=np.float64 if floating is double
                                        else np.float32)
    return _shift_total(&new[0, 0], &old[0, 0], &shift[0], K, D)


def lloyd_loop(
    const floating[:, ::1] X,            # IN (n_samples, n_features)
    const double[::1] sample_weight,     # IN (n_samples,) or None
    const floating[::1] offset,          # IN (n_features,)
    floating[:, ::1] centres,            # IN/OUT (n_clusters, n_features)
    floating[:, ::1] new,                # scratch (n_clusters, n_features)
    floating[::1] norms,                 # scratch (n_clusters,)
    floating[:, ::1] scratch,            # as lloyd_pass
    double[:, ::1] S,                    # per-thread sums, as lloyd_pass
    double[:, ::1] W,
    double[:, ::1] extra,
    double tol,
    bint tol_in_dtype,
    isize max_iter,
    isize chunk_size,
    int n_threads,
):
    """Up to ``max_iter`` Lloyd iterations on X (one call: the passes, the
    centres' averages and the shift test without Python between them).

    Each iteration is ``gmmfast/_kmeans.py``'s: the squared norms of the
    centres (``row_norms_sq``), one pass, the threads'
    sums added in thread order into row 0 of S and W, the centres
    S_k * (1 / W_k) rounded to the data's dtype, and a stop when
    ``centre_shift_total(new, old) <= tol`` (compared in the data's dtype
    when ``tol_in_dtype``: numpy's rule for a float32 scalar against a
    Python float since NEP 50).

    Returns (n_iter, status): status 0 stopped by the shift test, 1 ran
    max_iter iterations, 2 iteration n_iter left a cluster of zero weight:
    its summed S and W are in row 0, ``centres`` are the ones it started
    from, and the caller relocates (scikit-learn's relocation) and goes on.
    """
    cdef isize n = X.shape[0], D = X.shape[1], K = centres.shape[0]
    cdef isize it, k, d, t, T = S.shape[0]
    cdef const double* sw = NULL
    cdef double inv
    cdef floating total
    if sample_weight is not None:
        sw = &sample_weight[0]
    centres_arr, norms_arr = np.asarray(centres), np.asarray(norms)
    for it in range(1, max_iter + 1):
        PyErr_CheckSignals()
        # the norms as scikit-learn's row_norms forms them (numpy's einsum,
        # whose order of sums is numpy's build's: not reproduced here)
        np.einsum("ij,ij->i", centres_arr, centres_arr, out=norms_arr)
        with nogil:
            memset(&S[0, 0], 0, S.shape[0] * S.shape[1] * sizeof(double))
            memset(&W[0, 0], 0, W.shape[0] * W.shape[1] * sizeof(double))
            _lloyd_chunks(&X[0, 0], sw, &offset[0], &centres[0, 0], &norms[0], scratch,
                          S, W, extra, False, n, D, K, chunk_size, n_threads)
            for t in range(1, T):
                for k in range(K * D):
                    S[0, k] += S[t, k]
                for k in range(K):
                    W[0, k] += W[t, k]
        for k in range(K):
            if W[0, k] == 0:
                return it, 2
        with nogil:
            for k in range(K):
                inv = 1.0 / W[0, k]
                for d in range(D):
                    new[k, d] = <floating>(S[0, k * D + d] * inv)
            total = _shift_total(&new[0, 0], &centres[0, 0], &norms[0], K, D)
            memcpy(&centres[0, 0], &new[0, 0], K * D * sizeof(floating))
        if (total <= <floating>tol) if tol_in_dtype else (<double>total <= tol):
            return it, 0
    return max_iter, 1


# ---------------------------------------------------------------------------
# k-means++ seeding passes (gmmfast/_kmeans.py, ``kmeans_plusplus``)
# ---------------------------------------------------------------------------
#
# The rows of a pass are gmmfast/_kmeans_simd.h (vectorised, one build per
# instruction set); this file spreads chunks of rows over OpenMP threads.

cdef extern from "_kmeans_simd.h" nogil:
    long long km_seed_scratch(long long nb, long long D, long long M)
    void km_seed_rows_d(const double* X, const double* sw, const double* offset,
                        const double* C, const double* cc, long long M,
                        long long n_chosen, double* closest, int first,
                        double* vals, double* pots, double* dst, long long ldd,
                        long long nb, long long D, double* buf)
    void km_seed_rows_f(const float* X, const double* sw, const float* offset,
                        const double* C, const double* cc, long long M,
                        long long n_chosen, float* closest, int first,
                        float* vals, double* pots, float* dst, long long ldd,
                        long long nb, long long D, double* buf)


cdef inline void _seed_rows(
    const floating* X, const double* sw, const floating* offset,
    const double* C, const double* cc, isize M, isize n_chosen,
    floating* closest, bint first, floating* vals, double* pots,
    floating* dst, isize ldd, isize a, isize b, isize D, double* buf,
) noexcept nogil:
    cdef isize nb = b - a
    if floating is double:
        km_seed_rows_d(X + a * D, NULL if sw == NULL else sw + a, offset, C, cc, M,
                       n_chosen, NULL if closest == NULL else closest + a, first,
                       vals, pots, NULL if dst == NULL else dst + a, ldd, nb, D, buf)
    else:
        km_seed_rows_f(X + a * D, NULL if sw == NULL else sw + a, offset, C, cc, M,
                       n_chosen, NULL if closest == NULL else closest + a, first,
                       vals, pots, NULL if dst == NULL else dst + a, ldd, nb, D, buf)


cdef void _seed_chunks(
    const floating* X, const double* sw, const floating* offset,
    const double* C, const double* cc, isize M, isize n_chosen,
    floating* closest, bint first, floating* vals, double[:, ::1] pots,
    floating* dst, isize ldd, isize n, isize D, double[:, ::1] scratch,
    isize chunk_size, int n_threads,
) noexcept nogil:
    # the chunks of rows spread over the OpenMP threads, each into its rows
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize c, a, b
    cdef int tid
    n_threads = <int>min(<isize>n_threads, n_chunks)
    with parallel(num_threads=n_threads):
        tid = threadid()
        for c in prange(n_chunks, schedule='static'):
            a = c * chunk_size
            b = min(a + chunk_size, n)
            _seed_rows(X, sw, offset, C, cc, M, n_chosen, closest, first,
                       NULL if vals == NULL else vals + a, &pots[tid, 0], dst, ldd,
                       a, b, D, &scratch[tid, 0])


def seed_scratch(isize chunk_size, isize n_features, isize n_centres):
    """Doubles of scratch per thread for ``seed_pass`` with n_centres rows of C."""
    return km_seed_scratch(chunk_size, n_features, n_centres)


def seed_pass(
    const floating[:, ::1] X,            # IN (nb, n_features): a block of rows
    const double[::1] sample_weight,     # IN (nb,) or None
    const floating[::1] offset,          # IN (n_features,)
    const double[:, ::1] C,              # IN (M, n_features), offset coordinates, upcast
    const double[::1] cc,                # IN (M,) ||c||^2 in float64
    isize n_chosen,                      # the first n_chosen rows of C are chosen centres
    floating[::1] closest,               # IN/OUT (nb,) the running minimum, or None
    bint first,                          # closest := min over the chosen only
    floating[::1] vals,                  # OUT (nb,) w * closest, or None
    double[:, ::1] pots,                 # OUT += (n_threads, M - n_chosen)
    double[:, ::1] scratch,              # (n_threads, seed_scratch(chunk_size, D, M))
    isize chunk_size,
    int n_threads,
    floating[:, ::1] dists=None,         # OUT (M - n_chosen, n_total) or None
    isize base=0,                        # the block's first row in dists
):
    """One seeding pass over a block: lower ``closest`` by the chosen
    centres (or compute it from them when ``closest`` is None), write
    ``vals`` = w * closest, add the candidates' potentials into ``pots``
    and, with ``dists``, write each candidate's distances to the block's
    rows into dists[:, base:base + nb]. BLAS must be held to one thread by
    the caller."""
    cdef isize n = X.shape[0], D = X.shape[1], M = C.shape[0]
    if n == 0:
        return
    cdef const double* sw = NULL
    cdef floating* cl = NULL
    cdef floating* vp = NULL
    cdef const double* Cp = NULL
    cdef const double* ccp = NULL
    if sample_weight is not None:
        sw = &sample_weight[0]
    if closest is not None:
        cl = &closest[0]
    if vals is not None:
        vp = &vals[0]
    cdef floating* dp = NULL
    cdef isize ldd = 0
    if M > 0:
        Cp = &C[0, 0]
        ccp = &cc[0]
    if dists is not None and M > n_chosen:
        if dists.shape[0] != M - n_chosen or base < 0 or base + n > dists.shape[1]:
            raise ValueError("dists must be (n_candidates, n_total) covering the block")
        ldd = dists.shape[1]
        dp = &dists[0, base]
    with nogil:
        _seed_chunks(&X[0, 0], sw, &offset[0], Cp, ccp, M, n_chosen, cl, first, vp, pots,
                     dp, ldd, n, D, scratch, chunk_size, n_threads)


def choice_index(const double[::1] sample_weight, isize n, double total,
                 bint single, double u):
    """numpy's ``choice(n, p=w / total)`` for the uniform draw u: p in the
    data's dtype (float32 when ``single``; ones for None), its float64
    cumulative sum, cdf /= cdf[-1], the first i with cdf_i > u (-1 for
    none): the numbers numpy's sequential cumsum and searchsorted form."""
    cdef isize i, found = -1
    cdef double last = 0, running = 0
    cdef const double* sw = NULL
    if sample_weight is not None:
        if sample_weight.shape[0] != n:
            raise ValueError("sample_weight must have n entries")
        sw = &sample_weight[0]
    with nogil:
        for i in range(n):
            last = last + _choice_p(sw, i, total, single)
        for i in range(n):
            running = running + _choice_p(sw, i, total, single)
            if running / last > u:
                found = i
                break
    return found


cdef inline double _choice_p(const double* sw, isize i, double total,
                             bint single) noexcept nogil:
    cdef double w = 1.0 if sw == NULL else sw[i]
    if single:
        return <double>(<float>w / <float>total)
    return w / total


def seed_lower_scan(floating[::1] closest, const floating[::1] lower,
                    const double[::1] sample_weight, const double[::1] targets,
                    long long[::1] found):
    """The draw of a step whose distances are stored: closest :=
    min(closest, lower) (the chosen candidate's distances; None leaves it),
    then found[t] := np.searchsorted(np.cumsum(w * closest), targets[t])
    (the first i with cumsum_i >= targets[t]), the products and their
    cumulative sum in the data's dtype, exactly as ``seed_pass`` and
    ``seed_scan`` form them; ``targets`` sorted ascending, ``found`` left
    as it was where the total stays below a target."""
    cdef isize n = closest.shape[0], nt = targets.shape[0]
    cdef const double* sw = NULL
    cdef const floating* lw = NULL
    if lower is not None:
        if lower.shape[0] != n:
            raise ValueError("lower must have closest's length")
        lw = &lower[0]
    if sample_weight is not None:
        if sample_weight.shape[0] != n:
            raise ValueError("sample_weight must have closest's length")
        sw = &sample_weight[0]
    if n == 0:
        return
    with nogil:
        _lower_scan(&closest[0], lw, sw, n, &targets[0] if nt > 0 else NULL, nt,
                    &found[0] if nt > 0 else NULL)


cdef void _lower_scan(floating* cp, const floating* lw, const double* sw, isize n,
                      const double* targets, isize nt, long long* found) noexcept nogil:
    cdef isize i, j = 0
    cdef floating cs = 0, c
    if lw != NULL:  # a loop of its own, vectorised
        for i in range(n):
            cp[i] = lw[i] if lw[i] < cp[i] else cp[i]
    # the sequential sum (numpy's cumsum), as far as the last target
    for i in range(n):
        if j == nt:
            break
        c = cp[i] if sw == NULL else (<floating>sw[i]) * cp[i]
        cs = cs + c
        while j < nt and <double>cs >= targets[j]:
            found[j] = i
            j += 1


def seed_steps(
    const floating[:, ::1] X,            # IN (n_samples, n_features), one call
    const double[::1] sample_weight,     # IN (n_samples,) or None
    const floating[::1] offset,          # IN (n_features,)
    floating[:, ::1] centres,            # IN/OUT (n_clusters, n_features): row 0 set
    long long[::1] indices,              # IN/OUT (n_clusters,): entry 0 set
    floating[::1] closest,               # IN/OUT (n_samples,) after the first centre
    floating[:, ::1] dists,              # (n_local_trials, n_samples), or None (K < 3)
    const double[:, ::1] uniforms,       # IN (n_clusters - 1, n_local_trials) draws
    double current_pot,                  # the first centre's potential (dtype value)
    double[:, ::1] pots,                 # scratch (n_threads, >= n_local_trials)
    double[:, ::1] scratch,              # (n_threads, seed_scratch(chunk, D, n_local_trials))
    isize chunk_size,
    int n_threads,
):
    """The steps c = 1 .. n_clusters - 1 of ``kmeans_plusplus`` on an array
    of one kernel call whose distances are kept, without Python between
    them; each step's numbers are the Python step's: rand_vals = u *
    current_pot (float64), the draw ``seed_lower_scan`` (targets sorted
    stably, closest lowered by the previous step's chosen candidate's
    distances), the candidates x - offset in the data's dtype and upcast,
    their squared norms by numpy's einsum (``row_norms_sq``), one
    ``seed_pass`` (their distances kept but for the last step), the
    potentials summed over the threads in order and rounded to the data's
    dtype, the first smallest chosen. ``uniforms`` are the step's
    ``random_state.uniform(size=n_local_trials)`` draws, drawn at once (the
    same numbers: each is the generator's next double)."""
    cdef isize n = X.shape[0], D = X.shape[1], K = centres.shape[0]
    cdef isize L = uniforms.shape[1], T = pots.shape[0]
    cdef isize c, t, u, d, j, prev = -1
    cdef double v
    cdef floating best, p
    cdef const double* sw = NULL
    cdef floating* dp
    if sample_weight is not None:
        sw = &sample_weight[0]
    if K < 2 or L == 0:
        return
    dtype = np.float64 if floating is double else np.float32
    cand_arr = np.empty((L, D))
    cc_arr = np.empty(L)
    cdef double[:, ::1] cand = cand_arr
    cdef double[::1] cc = cc_arr
    cdef double[::1] targets = np.empty(L)
    cdef long long[::1] order = np.empty(L, dtype=np.int64)
    cdef long long[::1] found = np.empty(L, dtype=np.int64)
    cdef long long[::1] ids = np.empty(L, dtype=np.int64)
    cdef floating[:, ::1] cand_dtype = np.empty((L, D), dtype=dtype)
    for c in range(1, K):
        PyErr_CheckSignals()
        with nogil:
            # np.argsort(rand_vals, kind="stable"): insertion, equal values kept in order
            for t in range(L):
                v = uniforms[c - 1, t] * current_pot
                u = t
                while u > 0 and targets[u - 1] > v:
                    targets[u] = targets[u - 1]
                    order[u] = order[u - 1]
                    u -= 1
                targets[u] = v
                order[u] = t
                found[t] = n - 1
            _lower_scan(&closest[0], NULL if prev < 0 else &dists[prev, 0], sw, n,
                        &targets[0], L, &found[0])
            for t in range(L):
                ids[order[t]] = found[t]
            for t in range(L):
                for d in range(D):
                    cand_dtype[t, d] = X[ids[t], d] - offset[d]
                    cand[t, d] = cand_dtype[t, d]
        np.einsum("ij,ij->i", cand_arr, cand_arr, out=cc_arr)
        with nogil:
            pots[:, :] = 0.0
            dp = &dists[0, 0] if (dists is not None and c < K - 1) else NULL
            _seed_chunks(&X[0, 0], sw, &offset[0], &cand[0, 0], &cc[0], L, 0,
                         &closest[0], False, NULL, pots, dp, n, n, D, scratch,
                         chunk_size, n_threads)
            for t in range(1, T):
                for u in range(L):
                    pots[0, u] += pots[t, u]
            j = 0
            best = <floating>pots[0, 0]
            for t in range(1, L):
                p = <floating>pots[0, t]
                if p < best:
                    best = p
                    j = t
            current_pot = best
            indices[c] = ids[j]
            for d in range(D):
                centres[c, d] = cand_dtype[j, d]
            prev = j if dp != NULL else -1


def seed_scan(const floating[::1] vals, double carry, const double[::1] targets,
              isize j, long long[::1] found, isize base):
    """np.searchsorted(np.cumsum(vals), targets) continued from a previous
    block: the cumulative sum runs in the data's dtype from ``carry`` (the
    previous blocks' total, so the sum is numpy's sequential cumsum over the
    whole array), ``targets`` sorted ascending, ``targets[:j]`` already
    found. found[t] := base + the first i with cumsum_i >= targets[t].
    Returns (the running total, the new j)."""
    cdef isize i, n = vals.shape[0], nt = targets.shape[0]
    cdef floating cs = <floating>carry
    with nogil:
        for i in range(n):
            cs = cs + vals[i]
            while j < nt and <double>cs >= targets[j]:
                found[j] = base + i
                j += 1
    return <double>cs, j


# ---------------------------------------------------------------------------
# Weighted moments about a centre (k-means' mean and tolerance variance)
# ---------------------------------------------------------------------------

def moments_pass(
    const floating[:, ::1] X,            # IN (nb, n_features)
    const double[::1] sample_weight,     # IN (nb,) or None
    const double[::1] center,            # IN (n_features,)
    double[:, ::1] out,                  # OUT += (n_threads, 1 + 2 n_features)
    isize chunk_size,
    int n_threads,
):
    """Per-thread float64 sums of w, w (x - c) and w (x - c)^2."""
    cdef isize n = X.shape[0], D = X.shape[1]
    if n == 0:
        return
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize c, a, b
    cdef int tid
    cdef const double* sw = NULL
    if sample_weight is not None:
        sw = &sample_weight[0]
    n_threads = <int>min(<isize>n_threads, n_chunks)
    with nogil, parallel(num_threads=n_threads):
        tid = threadid()
        for c in prange(n_chunks, schedule='static'):
            a = c * chunk_size
            b = min(a + chunk_size, n)
            if floating is double:
                km_moments_rows_d(&X[a, 0], NULL if sw == NULL else sw + a, &center[0],
                                  b - a, D, &out[tid, 0])
            else:
                km_moments_rows_f(&X[a, 0], NULL if sw == NULL else sw + a, &center[0],
                                  b - a, D, &out[tid, 0])


def onehot_pass(
    const floating[:, ::1] X,            # IN (n_samples, n_features)
    const double[::1] sample_weight,     # IN (n_samples,) or None
    const floating[::1] offset,          # IN (n_features,)
    const floating[:, ::1] centres,      # IN (n_clusters, n_features), offset coordinates
    const floating[::1] norms,           # IN (n_clusters,)
    const double[:, ::1] shift,          # IN (n_clusters, n_features), data coordinates
    int cov_type,                        # 0 full, 1 tied, 2 diag, 3 spherical
    floating[:, ::1] scratch,            # (n_threads, lloyd_scratch(chunk_size, D, K))
    double[:, ::1] ybuf,                 # (n_threads, n_features)
    double[:, ::1] R,                    # OUT += (n_threads, n_clusters)
    double[:, ::1] S1,                   # OUT += (n_threads, n_clusters * n_features)
    double[:, ::1] S2,                   # OUT += (n_threads, the type's S2 size)
    double[:, ::1] counts,               # OUT += (n_threads, n_clusters): rows per label
    isize chunk_size,
    int n_threads,
):
    """The statistics (R, S1, S2 around ``shift``) of one-hot
    responsibilities of the labels the Lloyd pass assigns (a mixture's
    k-means start), and the rows per label, per thread. BLAS is not used."""
    cdef isize n = X.shape[0], D = X.shape[1], K = centres.shape[0]
    if n == 0:
        return
    cdef isize n_chunks = (n + chunk_size - 1) // chunk_size
    cdef isize c, a, b
    cdef int tid
    cdef const double* sw = NULL
    if sample_weight is not None:
        sw = &sample_weight[0]
    n_threads = <int>min(<isize>n_threads, n_chunks)
    with nogil, parallel(num_threads=n_threads):
        tid = threadid()
        for c in prange(n_chunks, schedule='static'):
            a = c * chunk_size
            b = min(a + chunk_size, n)
            if floating is double:
                km_onehot_rows_d(&X[a, 0], NULL if sw == NULL else sw + a, &offset[0],
                                 &centres[0, 0], &norms[0], K, b - a, D, &shift[0, 0],
                                 cov_type, &R[tid, 0], &S1[tid, 0], &S2[tid, 0],
                                 &counts[tid, 0], &ybuf[tid, 0], &scratch[tid, 0])
            else:
                km_onehot_rows_f(&X[a, 0], NULL if sw == NULL else sw + a, &offset[0],
                                 &centres[0, 0], &norms[0], K, b - a, D, &shift[0, 0],
                                 cov_type, &R[tid, 0], &S1[tid, 0], &S2[tid, 0],
                                 &counts[tid, 0], &ybuf[tid, 0], &scratch[tid, 0])
