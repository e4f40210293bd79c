# cython: language_level=3
"""The C entry points of the block kernels (gmmfast/_simd.h) and the BLAS
routines they use, declared once, each behind one fused-type ``cdef inline``
wrapper: the only place where float32 and float64 part ways (C templating
by double inclusion gives the _d/_f twins; the wrappers pick one)."""
from cython cimport floating
from libc.stdint cimport int64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm, dtrmm, strmm, dsyrk, ssyrk

ctypedef Py_ssize_t isize

cdef extern from "_simd.h" nogil:
    int GM_SMALL_D_MAX
    int GM_PORTABLE_BUILD          # 1: the plain-C vector path
    const char* GM_ISA_DISPATCH    # "target_clones", "cpu_supports" or ""
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
    int lp_full_rows_d(const double* x, int64_t nb, int64_t D, int64_t K,
                       const double* means, const double* prec, const double* lognorm,
                       double* xt, double* lp)
    int lp_full_rows_f(const float* x, int64_t nb, int64_t D, int64_t K,
                       const float* means, const float* prec, const double* lognorm,
                       float* xt, float* lp)
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


# -- fused wrappers (one per C pair) -------------------------------------------

cdef inline isize scratch_size(floating* tag, isize nb, isize D, isize K) noexcept nogil:
    """Elements of scratch the vector path's block and block_stats need."""
    if floating is double:
        return scratch_size_d(nb, D, K)
    else:
        return scratch_size_f(nb, D, K)


cdef inline isize gram_scratch(floating* tag, isize nb, isize D) noexcept nogil:
    if floating is double:
        return gram_scratch_d(nb, D)
    else:
        return gram_scratch_f(nb, D)


cdef inline double block(int cov_type, const floating* x, isize nb, isize D, isize K,
                         const floating* means, const floating* prec,
                         const double* lognorm, const floating* center,
                         const floating* mproj, const double* sw, floating* scratch,
                         double* R, double* S1, double* S2, floating* out_logp,
                         floating* out_resp, int64_t* out_labels) noexcept nogil:
    if floating is double:
        return block_d(cov_type, x, nb, D, K, means, prec, lognorm, center, mproj, sw,
                       scratch, R, S1, S2, out_logp, out_resp, out_labels)
    else:
        return block_f(cov_type, x, nb, D, K, means, prec, lognorm, center, mproj, sw,
                       scratch, R, S1, S2, out_logp, out_resp, out_labels)


cdef inline void block_stats(int cov_type, const floating* x, isize nb, isize D, isize K,
                             const floating* wr, const floating* shift,
                             floating* scratch, double* R, double* S1,
                             double* S2) noexcept nogil:
    if floating is double:
        block_stats_d(cov_type, x, nb, D, K, wr, shift, scratch, R, S1, S2)
    else:
        block_stats_f(cov_type, x, nb, D, K, wr, shift, scratch, R, S1, S2)


cdef inline double normalize_block(floating* lp, isize nb, isize K, const double* sw,
                                   floating* out_logp, floating* out_resp,
                                   int64_t* out_labels, bint weight_resp) noexcept nogil:
    """lp (K, nb) followed by three (nb,) scratch rows."""
    if floating is double:
        return normalize_block_d(lp, nb, K, sw, out_logp, out_resp, out_labels, weight_resp)
    else:
        return normalize_block_f(lp, nb, K, sw, out_logp, out_resp, out_labels, weight_resp)


cdef inline bint lp_full_rows(const floating* x, isize nb, isize D, isize K,
                              const floating* means, const floating* prec,
                              const double* lognorm, floating* xt, floating* lp) noexcept nogil:
    if floating is double:
        return lp_full_rows_d(x, nb, D, K, means, prec, lognorm, xt, lp)
    else:
        return lp_full_rows_f(x, nb, D, K, means, prec, lognorm, xt, lp)


cdef inline void rows_to_lp(const floating* y, isize nb, isize D, double c,
                            floating* lp_k) noexcept nogil:
    if floating is double:
        rows_to_lp_d(y, nb, D, c, lp_k)
    else:
        rows_to_lp_f(y, nb, D, c, lp_k)


cdef inline void tied_rows_to_lp(const floating* z, isize nb, isize D, isize K,
                                 const floating* mproj, const double* lognorm,
                                 floating* lp) noexcept nogil:
    if floating is double:
        tied_rows_to_lp_d(z, nb, D, K, mproj, lognorm, lp)
    else:
        tied_rows_to_lp_f(z, nb, D, K, mproj, lognorm, lp)


cdef inline void tied_stats_rows(const floating* x, isize nb, isize D, isize K,
                                 const floating* wr, const floating* center, double* R,
                                 double* S1, floating* dbuf) noexcept nogil:
    if floating is double:
        tied_stats_rows_d(x, nb, D, K, wr, center, R, S1, dbuf)
    else:
        tied_stats_rows_f(x, nb, D, K, wr, center, R, S1, dbuf)


cdef inline void scale_rows(const floating* x, isize nb, isize D, const floating* mu,
                            const floating* r, floating* buf, double* Rk, double* S1k,
                            floating* s1acc) noexcept nogil:
    if floating is double:
        scale_rows_d(x, nb, D, mu, r, buf, Rk, S1k, s1acc)
    else:
        scale_rows_f(x, nb, D, mu, r, buf, Rk, S1k, s1acc)


cdef inline void stats_gram(const floating* x, isize nb, isize D, isize K,
                            const floating* wr, const floating* means, floating* scratch,
                            double* R, double* S1, double* S2) noexcept nogil:
    if floating is double:
        stats_gram_d(x, nb, D, K, wr, means, scratch, R, S1, S2)
    else:
        stats_gram_f(x, nb, D, K, wr, means, scratch, R, S1, S2)


cdef inline void trmm_right_upper(floating* buf, const floating* U,
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
        dtrmm(&side, &uplo, &trans, &diag, &D, &nb, &one, <double*>U, &D, buf, &D)
    else:
        strmm(&side, &uplo, &trans, &diag, &D, &nb, &one, <float*>U, &D, buf, &D)


cdef inline void gemm_rowmajor(bint trans_b, int m, int n, int k, const floating* A,
                               int lda, const floating* B, int ldb, floating* C,
                               int ldc) noexcept nogil:
    """C (m, n) := A @ op(B), all row-major: A (m, k); B (k, n), or (n, k)
    when ``trans_b`` (op(B) = B^T).

    Column-major, C is C^T = op(B)^T A^T: gemm with B first, A second.
    """
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'N'
    cdef floating one = 1.0
    cdef floating zero = 0.0
    if floating is double:
        dgemm(&ta, &tb, &n, &m, &k, &one, <double*>B, &ldb, <double*>A, &lda, &zero,
              C, &ldc)
    else:
        sgemm(&ta, &tb, &n, &m, &k, &one, <float*>B, &ldb, <float*>A, &lda, &zero,
              C, &ldc)


cdef inline void syrk_upper(const floating* buf, floating* C, int nb, int D,
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


cdef inline void syrk_add_upper(const floating* buf, double* C, floating* scratch,
                                int nb, int D) noexcept nogil:
    """C (D, D) float64 upper triangle += buf^T @ buf, buf (nb, D); float32
    through ``scratch`` (D, D) and an add (the accumulators are float64)."""
    cdef isize j, l
    if floating is double:
        syrk_upper(buf, C, nb, D, 1.0)
    else:
        syrk_upper(buf, scratch, nb, D, 0.0)
        for j in range(D):
            for l in range(j, D):
                C[j * D + l] += scratch[j * D + l]


cdef inline void exp_array(floating* x, floating* y, isize n) noexcept nogil:
    if floating is double:
        gm_exp_array_d(x, y, n)
    else:
        gm_exp_array_f(x, y, n)


cdef inline void log_array(floating* x, floating* y, isize n) noexcept nogil:
    if floating is double:
        gm_log_array_d(x, y, n)
    else:
        gm_log_array_f(x, y, n)
