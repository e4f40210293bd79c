# cython: language_level=3
"""The Lloyd pass of the streamed k-means (gmmfast/_kmeans.py): one read of X.

For each row, in the data's dtype as scikit-learn's Lloyd step computes it:

    xc    = x - offset                         (the data centred on its mean)
    d_k   = ||c_k||^2 - 2 xc.c_k               (scikit-learn's gemm call, per
                                                block of rows)
    label = the first k of minimal d_k         (strict '<' scan)

and into per-thread float64 slabs

    W[label]    += w                           (the cluster's weight)
    S[label, :] += w xc                        (its weighted sum)

and, when asked, the inertia sum_i w_i ||xc_i - c_label||^2 (float64) and
the per-cluster row counts. Rows are cut into blocks of ``chunk_size`` rows
spread over OpenMP threads; each thread adds into its own slab row (the
caller sums them in thread order: bitwise reproducible for a given thread
count). The distances are BLAS gemm on a block (as scikit-learn's Lloyd
step, and as gmmfast's BLAS path calls trmm); the rest is plain C loops, so
every compiler and the portable build compile it alike.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from scipy.linalg.cython_blas cimport dgemm, sgemm

ctypedef Py_ssize_t isize


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


cdef inline void _rows(
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


def lloyd_pass(
    const floating[:, ::1] X,            # IN (n_samples, n_features)
    const double[::1] sample_weight,     # IN (n_samples,) or None
    const floating[::1] offset,          # IN (n_features,)
    const floating[:, ::1] centres,      # IN (n_clusters, n_features), offset coordinates
    const floating[::1] norms,           # IN (n_clusters,) ||c_k||^2 in X's dtype
    floating[:, ::1] scratch,            # IN/OUT (n_threads, chunk_size * (n_features + n_clusters))
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
            _rows(&X[0, 0], sw, &offset[0], &centres[0, 0], &norms[0], a, b, D, K,
                  &scratch[tid, 0], &scratch[tid, chunk_size * D], &S[tid, 0], &W[tid, 0],
                  &extra[tid, 0], &extra[tid, 1], want_inertia)
