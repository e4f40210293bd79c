# cython: language_level=3
"""The Lloyd pass of the streamed k-means (gmmfast/_kmeans.py): one read of X.

For each row, in the data's dtype as scikit-learn's Lloyd step computes it:

    xc    = x - offset                         (the data centred on its mean)
    d_k   = ||c_k||^2 - 2 xc.c_k               (scikit-learn's gemm form)
    label = the first k of minimal d_k         (strict '<' scan)

and into per-thread float64 slabs

    W[label]    += w                           (the cluster's weight)
    S[label, :] += w xc                        (its weighted sum)

and, when asked, the inertia sum_i w_i ||xc_i - c_label||^2 (float64) and
the per-cluster row counts. Rows are cut into blocks of ``chunk_size`` rows
spread over OpenMP threads; each thread adds into its own slab row (the
caller sums them in thread order: bitwise reproducible for a given thread
count). Plain C loops only (the inner loop over clusters vectorises), so
every compiler and the portable build compile it alike.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid

ctypedef Py_ssize_t isize


cdef inline void _rows(
    const floating* X, const double* sw, const floating* offset,
    const floating* centres_t, const floating* norms,
    isize a, isize b, isize D, isize K,
    floating* acc, floating* xc,
    double* S, double* W, double* inertia, double* counts,
    const floating* centres, bint want_inertia,
) noexcept nogil:
    cdef isize i, d, k, label
    cdef floating xd, v, best, diff
    cdef double wi, sq
    for i in range(a, b):
        for k in range(K):
            acc[k] = 0
        for d in range(D):
            xd = X[i * D + d] - offset[d]
            xc[d] = xd
            for k in range(K):
                acc[k] += xd * centres_t[d * K + k]
        best = norms[0] - 2 * acc[0]
        label = 0
        for k in range(1, K):
            v = norms[k] - 2 * acc[k]
            if v < best:
                best = v
                label = k
        wi = 1.0 if sw == NULL else sw[i]
        W[label] += wi
        for d in range(D):
            S[label * D + d] += wi * xc[d]
        if want_inertia:
            sq = 0
            for d in range(D):
                diff = xc[d] - centres[label * D + d]
                sq += diff * diff
            inertia[0] += wi * sq
            counts[label] += 1


def lloyd_pass(
    const floating[:, ::1] X,            # IN (n_samples, n_features)
    const double[::1] sample_weight,     # IN (n_samples,) or None
    const floating[::1] offset,          # IN (n_features,)
    const floating[:, ::1] centres,      # IN (n_clusters, n_features), offset coordinates
    const floating[:, ::1] centres_t,    # IN (n_features, n_clusters), centres transposed
    const floating[::1] norms,           # IN (n_clusters,) ||c_k||^2 in X's dtype
    floating[:, ::1] scratch,            # IN/OUT (n_threads, n_clusters + n_features)
    double[:, ::1] S,                    # OUT += (n_threads, n_clusters * n_features)
    double[:, ::1] W,                    # OUT += (n_threads, n_clusters)
    double[:, ::1] extra,                # OUT += (n_threads, 1 + n_clusters): inertia, counts
    bint want_inertia,
    isize chunk_size,
    int n_threads,
):
    """One Lloyd pass over X: per-thread cluster sums S and weights W (and
    the inertia and row counts in ``extra`` when ``want_inertia``)."""
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
            _rows(&X[0, 0], sw, &offset[0], &centres_t[0, 0], &norms[0], a, b, D, K,
                  &scratch[tid, 0], &scratch[tid, K], &S[tid, 0], &W[tid, 0],
                  &extra[tid, 0], &extra[tid, 1], &centres[0, 0], want_inertia)
