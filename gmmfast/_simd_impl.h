/*
 * gmmfast/_simd_impl.h — body of the vectorised block kernel, written once
 * for REAL (double or float). Included twice by _simd.h; see there.
 *
 * Block work is done in REAL (the data's dtype); statistics are added into
 * float64 accumulators after each block. Arguments are marked IN/OUT with
 * their shapes; nb is the number of rows in the block, D the features, K
 * the components, Dp = D rounded up to a multiple of 4 (GM(dpad)).
 */

/* Rows of the two (rows, nb) work arrays: xt (the transposed block, zero
 * padded to the template size) and et (tied: z = (x - c) U; full: the
 * scaled deviations sqrt(r) (x - mu), padded to a multiple of 4). */
GM_INLINE int64_t GM(xt_rows)(int64_t D)
{
    int64_t t = gm_template_d(D);
    return t > D ? t : D;
}

GM_INLINE int64_t GM(et_rows)(int64_t D)
{
    int64_t t = (gm_template_d(D) + 3) / 4 * 4;
    return t > D ? t : D;
}

/* xt (rows, nb) := x (nb, D) transposed; rows D..rows-1 zero. A constant
 * D lets the compiler vectorise the strided reads. */
GM_INLINE void GM(transpose_const)(const REAL* x, int64_t nb, const int D, REAL* xt)
{
    #pragma omp simd
    for (int64_t i = 0; i < nb; i++) {
        GM_UNROLL(16)
        for (int j = 0; j < D; j++) xt[j * nb + i] = x[i * D + j];
    }
}

#define GM_TRANSPOSE_CASE(DD) case DD: GM(transpose_const)(x, nb, DD, xt); break;

GM_INLINE void GM(transpose_in)(const REAL* x, int64_t nb, int64_t D, int64_t rows,
                                REAL* xt)
{
    switch (D) {
        GM_TRANSPOSE_CASE(1) GM_TRANSPOSE_CASE(2) GM_TRANSPOSE_CASE(3)
        GM_TRANSPOSE_CASE(4) GM_TRANSPOSE_CASE(5) GM_TRANSPOSE_CASE(6)
        GM_TRANSPOSE_CASE(7) GM_TRANSPOSE_CASE(8)
    default: {
        /* Eight columns at a time: each row's 8 values are one or two cache
         * lines, read once. Column by column, a block's rows (D * 8 bytes
         * apart: 2 KiB at D = 256) fell into a few L1 sets and every line was
         * fetched again for each of its columns. */
        int64_t j = 0;
        for (; j + 8 <= D; j += 8) {
            const REAL* xs = x + j;
            REAL* xd = xt + j * nb;
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) {
                GM_UNROLL(8)
                for (int q = 0; q < 8; q++) xd[q * nb + i] = xs[i * D + q];
            }
        }
        for (; j < D; j++) {
            REAL* xj = xt + j * nb;
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) xj[i] = x[i * D + j];
        }
    }
    }
    for (int64_t j = D; j < rows; j++)
        memset(xt + j * nb, 0, (size_t)nb * sizeof(REAL));
}
#undef GM_TRANSPOSE_CASE

/* gram (dp, dp) upper triangle := E E^T, E (dp, nb) with dp a multiple of 4.
 *
 * GM(gram_upper_narrow): 2x4 register tiles under `omp simd reduction`, any
 * C compiler and vector width: 8 vector accumulators and 6 loaded vectors
 * fit AVX2's 16 registers (and saturate its two FMA pipes: 8 independent
 * chains), entries below the diagonal of a tile computed and dropped.
 *
 * GM(gram_upper_wide), AVX-512 only (32 registers): 4x4 tiles of 64-byte
 * GCC vectors, 16 accumulators, 8 loads per 16 multiply-adds (the diagonal
 * tiles compute their upper 10 entries only), the horizontal sums one
 * transposing shuffle tree for all 16 (measured 40% faster than `omp simd
 * reduction` at D = 16, 128 rows, on AVX-512). Without AVX-512 a 64-byte
 * vector is two or four registers, and its 16 accumulators spilled to the
 * stack on every multiply-add (on an AVX2-only Zen 3 the E-step at D = 16,
 * K = 8 went from 735 to 286 ms on one thread with the narrow tiles and FMA).
 * Under the function-pointer dispatch the wide tiles are compiled into every
 * level's copy too, and only the AVX-512 one calls them. */
GM_CLONES static void GM(gram_upper_narrow)(const REAL* et, int64_t nb, int64_t dp, REAL* gram)
{
    for (int64_t jb = 0; jb < dp; jb += 2) {
        const REAL *e0 = et + jb * nb, *e1 = e0 + nb;
        for (int64_t lb = jb / 4 * 4; lb < dp; lb += 4) {
            const REAL *f0 = et + lb * nb, *f1 = f0 + nb, *f2 = f1 + nb, *f3 = f2 + nb;
            REAL t00 = 0, t01 = 0, t02 = 0, t03 = 0, t10 = 0, t11 = 0, t12 = 0, t13 = 0;
            #pragma omp simd reduction(+:t00, t01, t02, t03, t10, t11, t12, t13)
            for (int64_t i = 0; i < nb; i++) {
                const REAL x0 = e0[i], x1 = e1[i];
                const REAL y0 = f0[i], y1 = f1[i], y2 = f2[i], y3 = f3[i];
                t00 += x0 * y0; t01 += x0 * y1; t02 += x0 * y2; t03 += x0 * y3;
                t10 += x1 * y0; t11 += x1 * y1; t12 += x1 * y2; t13 += x1 * y3;
            }
            const REAL t[8] = {t00, t01, t02, t03, t10, t11, t12, t13};
            for (int q = 0; q < 2; q++)
                for (int r = 0; r < 4; r++)
                    if (lb + r >= jb + q) gram[(jb + q) * dp + lb + r] = t[q * 4 + r];
        }
    }
}

#ifndef GM_PORTABLE
typedef REAL GM(vec) __attribute__((vector_size(64)));
#define GM_VL ((int64_t)(64 / sizeof(REAL)))

/* v := the GM_VL values at p (unaligned). A macro, not a function returning
 * a vector: clang rejects 64-byte vector returns in the clones without
 * AVX-512 ("changes the ABI"). */
#define GM_VLOAD(v, p) memcpy(&(v), (p), sizeof(v))

/* t[q] = sum of the lanes of a[q], q < 16: a transposing tree of two-input
 * shuffles (15 adds and 30 shuffles for all 16, against 16 separate trees of
 * 3 or 4 steps each). */
GM_INLINE void GM(hsum16)(const GM(vec)* a, REAL* t)
{
#if GM_IS_DOUBLE
    typedef long long iv __attribute__((vector_size(64)));
    (void)sizeof(iv); /* clang: only GCC's GM_SHUFFLE names it */
    GM(vec) z[8], w[4], r[2];
    for (int p = 0; p < 8; p++)
        z[p] = GM_SHUFFLE(iv, a[2 * p], a[2 * p + 1], 0, 1, 2, 3, 8, 9, 10, 11)
             + GM_SHUFFLE(iv, a[2 * p], a[2 * p + 1], 4, 5, 6, 7, 12, 13, 14, 15);
    for (int p = 0; p < 4; p++)
        w[p] = GM_SHUFFLE(iv, z[2 * p], z[2 * p + 1], 0, 1, 8, 9, 4, 5, 12, 13)
             + GM_SHUFFLE(iv, z[2 * p], z[2 * p + 1], 2, 3, 10, 11, 6, 7, 14, 15);
    for (int p = 0; p < 2; p++)
        r[p] = GM_SHUFFLE(iv, w[2 * p], w[2 * p + 1], 0, 8, 2, 10, 4, 12, 6, 14)
             + GM_SHUFFLE(iv, w[2 * p], w[2 * p + 1], 1, 9, 3, 11, 5, 13, 7, 15);
    /* r[0] = sums of a0 a4 a2 a6 a1 a5 a3 a7, r[1] the same plus 8 */
    static const int order[8] = {0, 4, 2, 6, 1, 5, 3, 7};
    for (int l = 0; l < 8; l++) {
        t[order[l]] = r[0][l];
        t[order[l] + 8] = r[1][l];
    }
#else
    typedef int iv __attribute__((vector_size(64)));
    (void)sizeof(iv);
    /* lane indices into the concatenation (a, b) of the two inputs */
#define GM_H0 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define GM_H1 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define GM_Q0 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define GM_Q1 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define GM_E0 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define GM_E1 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define GM_O0 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define GM_O1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
    GM(vec) z[8], w[4], q[2], r;
    for (int p = 0; p < 8; p++)
        z[p] = GM_SHUFFLE(iv, a[2 * p], a[2 * p + 1], GM_H0)
             + GM_SHUFFLE(iv, a[2 * p], a[2 * p + 1], GM_H1);
    for (int p = 0; p < 4; p++)
        w[p] = GM_SHUFFLE(iv, z[2 * p], z[2 * p + 1], GM_Q0)
             + GM_SHUFFLE(iv, z[2 * p], z[2 * p + 1], GM_Q1);
    for (int p = 0; p < 2; p++)
        q[p] = GM_SHUFFLE(iv, w[2 * p], w[2 * p + 1], GM_E0)
             + GM_SHUFFLE(iv, w[2 * p], w[2 * p + 1], GM_E1);
    r = GM_SHUFFLE(iv, q[0], q[1], GM_O0) + GM_SHUFFLE(iv, q[0], q[1], GM_O1);
#undef GM_H0
#undef GM_H1
#undef GM_Q0
#undef GM_Q1
#undef GM_E0
#undef GM_E1
#undef GM_O0
#undef GM_O1
    static const int order[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
    for (int l = 0; l < 16; l++) t[order[l]] = r[l];
#endif
}

GM_CLONES static void GM(gram_upper_wide)(const REAL* et, int64_t nb, int64_t dp, REAL* gram)
{
    const int64_t nv = nb / GM_VL * GM_VL;
    for (int64_t jb = 0; jb < dp; jb += 4) {
        const REAL *e0 = et + jb * nb, *e1 = e0 + nb, *e2 = e1 + nb, *e3 = e2 + nb;
        {
            GM(vec) a[16];
            for (int q = 0; q < 16; q++) a[q] = (GM(vec)){0};
            for (int64_t i = 0; i < nv; i += GM_VL) {
                GM(vec) x0, x1;
                GM_VLOAD(x0, e0 + i); GM_VLOAD(x1, e1 + i);
                GM(vec) x2, x3;
                GM_VLOAD(x2, e2 + i); GM_VLOAD(x3, e3 + i);
                a[0] += x0 * x0; a[1] += x0 * x1; a[2] += x0 * x2; a[3] += x0 * x3;
                a[5] += x1 * x1; a[6] += x1 * x2; a[7] += x1 * x3;
                a[10] += x2 * x2; a[11] += x2 * x3;
                a[15] += x3 * x3;
            }
            REAL t[16];
            GM(hsum16)(a, t);
            for (int64_t i = nv; i < nb; i++) {
                REAL x0 = e0[i], x1 = e1[i], x2 = e2[i], x3 = e3[i];
                t[0] += x0 * x0; t[1] += x0 * x1; t[2] += x0 * x2; t[3] += x0 * x3;
                t[5] += x1 * x1; t[6] += x1 * x2; t[7] += x1 * x3;
                t[10] += x2 * x2; t[11] += x2 * x3;
                t[15] += x3 * x3;
            }
            for (int q = 0; q < 4; q++)
                for (int r = q; r < 4; r++)
                    gram[(jb + q) * dp + jb + r] = t[q * 4 + r];
        }
        for (int64_t lb = jb + 4; lb < dp; lb += 4) {
            const REAL *f0 = et + lb * nb, *f1 = f0 + nb, *f2 = f1 + nb, *f3 = f2 + nb;
            GM(vec) a[16];
            for (int q = 0; q < 16; q++) a[q] = (GM(vec)){0};
            for (int64_t i = 0; i < nv; i += GM_VL) {
                GM(vec) x0, x1;
                GM_VLOAD(x0, e0 + i); GM_VLOAD(x1, e1 + i);
                GM(vec) x2, x3;
                GM_VLOAD(x2, e2 + i); GM_VLOAD(x3, e3 + i);
                GM(vec) y0, y1;
                GM_VLOAD(y0, f0 + i); GM_VLOAD(y1, f1 + i);
                GM(vec) y2, y3;
                GM_VLOAD(y2, f2 + i); GM_VLOAD(y3, f3 + i);
                a[0] += x0 * y0; a[1] += x0 * y1; a[2] += x0 * y2; a[3] += x0 * y3;
                a[4] += x1 * y0; a[5] += x1 * y1; a[6] += x1 * y2; a[7] += x1 * y3;
                a[8] += x2 * y0; a[9] += x2 * y1; a[10] += x2 * y2; a[11] += x2 * y3;
                a[12] += x3 * y0; a[13] += x3 * y1; a[14] += x3 * y2; a[15] += x3 * y3;
            }
            REAL t[16];
            GM(hsum16)(a, t);
            for (int64_t i = nv; i < nb; i++) {
                REAL x0 = e0[i], x1 = e1[i], x2 = e2[i], x3 = e3[i];
                REAL y0 = f0[i], y1 = f1[i], y2 = f2[i], y3 = f3[i];
                t[0] += x0 * y0; t[1] += x0 * y1; t[2] += x0 * y2; t[3] += x0 * y3;
                t[4] += x1 * y0; t[5] += x1 * y1; t[6] += x1 * y2; t[7] += x1 * y3;
                t[8] += x2 * y0; t[9] += x2 * y1; t[10] += x2 * y2; t[11] += x2 * y3;
                t[12] += x3 * y0; t[13] += x3 * y1; t[14] += x3 * y2; t[15] += x3 * y3;
            }
            for (int q = 0; q < 4; q++)
                for (int r = 0; r < 4; r++)
                    gram[(jb + q) * dp + lb + r] = t[q * 4 + r];
        }
    }
}
#undef GM_VL
#undef GM_VLOAD

#endif /* GM_PORTABLE */

GM_INLINE void GM(gram_upper)(const REAL* et, int64_t nb, int64_t dp, REAL* gram)
{
#ifndef GM_PORTABLE
    if (gm_isa_level() == 2) {
        GM(gram_upper_wide)(et, nb, dp, gram);
        return;
    }
#endif
    GM(gram_upper_narrow)(et, nb, dp, gram);
}

#include "_simd_full.h"

/* ---- log-probabilities: lp (K, nb) := lognorm_k - 1/2 Mahalanobis ------ */
/* Sample loops are innermost everywhere: lp rows double as accumulators. */

GM_INLINE void GM(finish_lp)(REAL* row, int64_t nb, double lognorm, REAL scale)
{
    const REAL c = (REAL)lognorm;
    const REAL h = (REAL)-0.5 * scale;
    #pragma omp simd
    for (int64_t i = 0; i < nb; i++) row[i] = c + h * row[i];
}

/* tied: z = (x - c) U once per sample (zt (D, nb)), then ||z - (mu_k - c) U||^2 */
GM_INLINE void GM(lp_tied)(const REAL* xt, int64_t nb, int64_t D, int64_t K,
                           const REAL* prec, const REAL* center, const REAL* mproj,
                           const double* lognorm, REAL* zt, REAL* lp)
{
    for (int64_t j = 0; j < D; j++) {
        REAL* zj = zt + j * nb;
        memset(zj, 0, (size_t)nb * sizeof(REAL));
        for (int64_t l = 0; l <= j; l++) {
            const REAL ulj = prec[l * D + j];
            const REAL cl = center[l];
            const REAL* xl = xt + l * nb;
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) zj[i] += (xl[i] - cl) * ulj;
        }
    }
    for (int64_t k = 0; k < K; k++) {
        const REAL* m = mproj + k * D;
        REAL* row = lp + k * nb;
        memset(row, 0, (size_t)nb * sizeof(REAL));
        for (int64_t j = 0; j < D; j++) {
            const REAL* zj = zt + j * nb;
            const REAL mj = m[j];
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) {
                REAL t = zj[i] - mj;
                row[i] += t * t;
            }
        }
        GM(finish_lp)(row, nb, lognorm[k], 1);
    }
}

/* diag (p = precisions_cholesky rows) and spherical (p_j = p_k for all j):
 * sum_j ((x_j - mu_kj) p_kj)^2, four features per pass over the rows. The
 * feature loop is outside the component loop: a group of features of the
 * block (4 nb values) and lp (K nb) stay in L1 while every component reads
 * them. Components outside (the whole block read K times) ran from L2 at
 * D = 64 (a block's xt is D nb values, 61 KB), at half the speed. */
GM_INLINE void GM(lp_diag_sph)(int spherical, const REAL* xt, int64_t nb, int64_t D,
                               int64_t K, const REAL* means, const REAL* prec,
                               const double* lognorm, REAL* lp)
{
    memset(lp, 0, (size_t)(K * nb) * sizeof(REAL));
    int64_t j = 0;
    for (; j + 4 <= D; j += 4) {
        const REAL *x0 = xt + j * nb, *x1 = x0 + nb, *x2 = x1 + nb, *x3 = x2 + nb;
        for (int64_t k = 0; k < K; k++) {
            const REAL* mu = means + k * D;
            REAL* row = lp + k * nb;
            const REAL m0 = mu[j], m1 = mu[j + 1], m2 = mu[j + 2], m3 = mu[j + 3];
            const REAL p0 = spherical ? 1 : prec[k * D + j];
            const REAL p1 = spherical ? 1 : prec[k * D + j + 1];
            const REAL p2 = spherical ? 1 : prec[k * D + j + 2];
            const REAL p3 = spherical ? 1 : prec[k * D + j + 3];
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) {
                REAL t0 = (x0[i] - m0) * p0, t1 = (x1[i] - m1) * p1;
                REAL t2 = (x2[i] - m2) * p2, t3 = (x3[i] - m3) * p3;
                row[i] += (t0 * t0 + t1 * t1) + (t2 * t2 + t3 * t3);
            }
        }
    }
    for (; j < D; j++) {
        const REAL* x0 = xt + j * nb;
        for (int64_t k = 0; k < K; k++) {
            REAL* row = lp + k * nb;
            const REAL m0 = means[k * D + j];
            const REAL p0 = spherical ? 1 : prec[k * D + j];
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) {
                REAL t0 = (x0[i] - m0) * p0;
                row[i] += t0 * t0;
            }
        }
    }
    for (int64_t k = 0; k < K; k++)
        GM(finish_lp)(lp + k * nb, nb, lognorm[k], spherical ? prec[k] * prec[k] : (REAL)1);
}

/* ---- log-sum-exp and responsibilities ---------------------------------- */

/* lp (K, nb) IN weighted log-probabilities, OUT responsibilities (times w_i
 * when weight_resp). mx, sm, lg: (nb,) scratch. Returns sum_i w_i log p(x_i)
 * (float64). A row where every component has zero density gets
 * log p = -inf and uniform responsibilities (it carries no information).
 * No loop here reads or writes through a pointer that may be NULL: masked
 * vector accesses to an invalid address cost a microcode assist each.
 *
 * The work is the exp() of every component but the largest (whose term is
 * exactly 1), one log() and one division a row: at small D these, not the
 * Mahalanobis terms, are the block's cost. Two shortcuts, each exact:
 * - K = 2: the smaller component's exp(-|lp_1 - lp_0|) is the only one
 *   computed (the other is exp(0) = 1): the same values as the general
 *   loop, which computes both (rows with a -inf, +inf or NaN term
 *   included: their responsibilities and log p come out as there).
 * - Without sample weights, when only the sum of log p is wanted (the
 *   E-step), log p_i = m_i + log s_i (m_i the row's largest term, s_i in
 *   [1, K] the sum of the exp()s) is summed as sum_i m_i + log prod_i s_i:
 *   four float64 products of a quarter of the block's s_i each (at most
 *   K^64 for blocks of up to GM_PRODUCT_MAX_ROWS rows: finite for
 *   K <= GM_PRODUCT_MAX_K), so four log()s a block in place of one a row.
 *   For float64 data the rounding differs from the per-row sum by a few
 *   units in the last place of the block's sum; for float32 data this sum
 *   is the more accurate one (the per-row form rounds each log p_i to
 *   float32, as the weighted E-step and prediction still do: the two agree
 *   to that rounding, about 1e-9 relative). */
#define GM_PRODUCT_MAX_K 1024
#define GM_PRODUCT_MAX_ROWS 256
GM_INLINE double GM(normalize)(REAL* lp, int64_t nb, int64_t K, const double* sw,
                               REAL* out_logp, int64_t* out_labels, int weight_resp,
                               REAL* mx, REAL* sm, REAL* lg)
{
    /* max (and argmax) over components */
    if (out_labels) {
        memcpy(mx, lp, (size_t)nb * sizeof(REAL));
        memset(out_labels, 0, (size_t)nb * sizeof(int64_t));
        for (int64_t k = 1; k < K; k++) {
            const REAL* row = lp + k * nb;
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) {
                int gt = row[i] > mx[i];
                mx[i] = gt ? row[i] : mx[i];
                out_labels[i] = gt ? k : out_labels[i];
            }
        }
    } else if (K == 1) {
        memcpy(mx, lp, (size_t)nb * sizeof(REAL));
    } else {
        const REAL *r0 = lp, *r1 = lp + nb;
        #pragma omp simd
        for (int64_t i = 0; i < nb; i++) mx[i] = r1[i] > r0[i] ? r1[i] : r0[i];
        for (int64_t k = 2; k < K; k++) {
            const REAL* row = lp + k * nb;
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) mx[i] = row[i] > mx[i] ? row[i] : mx[i];
        }
    }
    /* e = exp(lp - max); s = sum_k e. Rows whose max is -inf or NaN use 0
     * instead of it: every e is then 0 (or NaN). */
    if (K == 2) {
        REAL *r0 = lp, *r1 = lp + nb;
        #pragma omp simd
        for (int64_t i = 0; i < nb; i++) {
            const REAL m = mx[i];
            const int live = m > -(REAL)INFINITY;
            mx[i] = live ? m : (REAL)0;
            /* d > 0: row 1 is the max, e0 = exp(lp0 - lp1) = exp(-d);
             * otherwise e0 = exp(0) = 1 and e1 = exp(d) (d <= 0) */
            const REAL d = r1[i] - r0[i];
            const int one_max = d > (REAL)0;
            const REAL e = GM_EXP(one_max ? -d : d);
            /* a dead row: 0 for -inf, NaN for NaN, as exp(lp - 0) */
            const REAL z0 = r0[i] == r0[i] ? (REAL)0 : r0[i];
            const REAL z1 = r1[i] == r1[i] ? (REAL)0 : r1[i];
            /* a +inf term: the general loop's exp(inf - inf) is NaN */
            const REAL top = m == (REAL)INFINITY ? m - m : (REAL)0;
            const REAL e0 = live ? (one_max ? e : (REAL)1) + top : z0;
            const REAL e1 = live ? (one_max ? (REAL)1 : e) + top : z1;
            r0[i] = e0;
            r1[i] = e1;
            sm[i] = e0 + e1;
        }
    } else {
        REAL* row = lp;
        #pragma omp simd
        for (int64_t i = 0; i < nb; i++) {
            REAL m = mx[i] > -(REAL)INFINITY ? mx[i] : (REAL)0;
            mx[i] = m;
            REAL e = GM_EXP(row[i] - m);
            row[i] = e;
            sm[i] = e;
        }
        for (int64_t k = 1; k < K; k++) {
            row = lp + k * nb;
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++) {
                REAL e = GM_EXP(row[i] - mx[i]);
                row[i] = e;
                sm[i] += e;
            }
        }
    }
    const REAL inv_k = (REAL)1 / (REAL)K;
    if (!sw && !out_logp && K <= GM_PRODUCT_MAX_K && nb <= GM_PRODUCT_MAX_ROWS) {
        /* the E-step without weights: scale = 1 / s (0 for a dead row) into
         * mx, the row's max into lg, s kept in sm */
        #pragma omp simd
        for (int64_t i = 0; i < nb; i++) {
            const REAL s = sm[i];
            lg[i] = mx[i];
            mx[i] = s == (REAL)0 ? (REAL)0 : (REAL)1 / s;
        }
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        double p0 = 1.0, p1 = 1.0, p2 = 1.0, p3 = 1.0;
        int64_t i4 = 0;
        for (; i4 + 4 <= nb; i4 += 4) {
            a0 += (double)lg[i4]; p0 *= (double)sm[i4];
            a1 += (double)lg[i4 + 1]; p1 *= (double)sm[i4 + 1];
            a2 += (double)lg[i4 + 2]; p2 *= (double)sm[i4 + 2];
            a3 += (double)lg[i4 + 3]; p3 *= (double)sm[i4 + 3];
        }
        if (i4 < nb) { a0 += (double)lg[i4]; p0 *= (double)sm[i4]; }
        if (i4 + 1 < nb) { a1 += (double)lg[i4 + 1]; p1 *= (double)sm[i4 + 1]; }
        if (i4 + 2 < nb) { a2 += (double)lg[i4 + 2]; p2 *= (double)sm[i4 + 2]; }
        const double ll = ((a0 + a1) + (a2 + a3))
            + ((gm_log_product(p0) + gm_log_product(p1))
               + (gm_log_product(p2) + gm_log_product(p3)));
        for (int64_t k = 0; k < K; k++) {
            REAL* row = lp + k * nb;
            #pragma omp simd
            for (int64_t i = 0; i < nb; i++)
                row[i] = sm[i] == (REAL)0 ? inv_k : row[i] * mx[i];
        }
        return ll;
    }
    /* log p = max + log s; responsibilities = e * scale (mx) + offset (sm).
     * A dead row gets log p = -inf and uniform responsibilities. */
    if (sw) {
        #pragma omp simd
        for (int64_t i = 0; i < nb; i++) {
            REAL s = sm[i];
            int dead = s == (REAL)0;
            REAL logp = dead ? -(REAL)INFINITY : mx[i] + GM_LOG(dead ? (REAL)1 : s);
            logp = s == s ? logp : s;  /* NaN in, NaN out (our log does not check) */
            lg[i] = logp;
            double w = sw[i];
            REAL wr = weight_resp ? (REAL)w : (REAL)1;
            mx[i] = dead ? (REAL)0 : wr / s;
            sm[i] = dead ? inv_k * wr : (REAL)0;
        }
    } else {
        #pragma omp simd
        for (int64_t i = 0; i < nb; i++) {
            REAL s = sm[i];
            int dead = s == (REAL)0;
            REAL logp = dead ? -(REAL)INFINITY : mx[i] + GM_LOG(dead ? (REAL)1 : s);
            logp = s == s ? logp : s;
            lg[i] = logp;
            mx[i] = dead ? (REAL)0 : (REAL)1 / s;
            sm[i] = dead ? inv_k : (REAL)0;
        }
    }
    /* sum_i w_i log p_i in four float64 accumulators (row i into i % 4), a
     * loop of its own and the same order in every build. As an omp simd
     * reduction inside the loop above, float32 log p widened to float64
     * lanes, GCC 12 returned a wrong sum (about 1/26 of it) in the builds
     * that pick the instruction set through function pointers (macOS
     * x86-64), while every statistic was right. A zero-weight row adds 0
     * (its log p may be -inf). The four sums are named scalars, four rows
     * an iteration: as an array indexed by i % 4 they stayed on the stack,
     * each addition waiting on the store before it (8% of an E-step at
     * 10^5 x 2 x 2). */
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
#define GM_LL_TERM(i) (sw ? (sw[i] != 0.0 ? sw[i] * (double)lg[i] : 0.0) : (double)lg[i])
    int64_t i4 = 0;
    for (; i4 + 4 <= nb; i4 += 4) {
        a0 += GM_LL_TERM(i4);
        a1 += GM_LL_TERM(i4 + 1);
        a2 += GM_LL_TERM(i4 + 2);
        a3 += GM_LL_TERM(i4 + 3);
    }
    if (i4 < nb) a0 += GM_LL_TERM(i4);
    if (i4 + 1 < nb) a1 += GM_LL_TERM(i4 + 1);
    if (i4 + 2 < nb) a2 += GM_LL_TERM(i4 + 2);
#undef GM_LL_TERM
    const double ll = (a0 + a1) + (a2 + a3);
    if (out_logp) memcpy(out_logp, lg, (size_t)nb * sizeof(REAL));
    for (int64_t k = 0; k < K; k++) {
        REAL* row = lp + k * nb;
        #pragma omp simd
        for (int64_t i = 0; i < nb; i++) row[i] = row[i] * mx[i] + sm[i];
    }
    return ll;
}

/* ---- sufficient statistics -------------------------------------------- */

/* diag / spherical / tied statistics over xt (any D). shift_stride is D
 * (row k of shift for component k) or 0 (tied: one centre for all).
 * Features in groups of four outside the component loop (L1 reuse, as in
 * lp_diag_sph); inside, eight independent accumulators hide the add latency
 * (one feature at a time was latency-bound: 15 dependent vector adds). */
GM_INLINE void GM(stats_vec)(int cov_type, const REAL* xt, int64_t nb, int64_t D,
                             int64_t K, const REAL* wr, const REAL* shift,
                             int64_t shift_stride, double* R, double* S1, double* S2)
{
    /* Tied block sums are float64 even for float32 data: tied covariance
     * subtracts S1-sized terms from the scatter, where float32 sums lose
     * digits. */
    for (int64_t k = 0; k < K; k++) {
        const REAL* r = wr + k * nb;
        double racc = 0;
        #pragma omp simd reduction(+:racc)
        for (int64_t i = 0; i < nb; i++) racc += (double)r[i];
        R[k] += racc;
    }
    int64_t j = 0;
    for (; j + 4 <= D; j += 4) {
        const REAL *x0 = xt + j * nb, *x1 = x0 + nb, *x2 = x1 + nb, *x3 = x2 + nb;
        for (int64_t k = 0; k < K; k++) {
            const REAL* r = wr + k * nb;
            const REAL* mu = shift + k * shift_stride;
            const REAL m0 = mu[j], m1 = mu[j + 1], m2 = mu[j + 2], m3 = mu[j + 3];
            double a10 = 0, a11 = 0, a12 = 0, a13 = 0;
            double a20 = 0, a21 = 0, a22 = 0, a23 = 0;
            if (cov_type == 1) {  /* tied: first order only */
                #pragma omp simd reduction(+:a10, a11, a12, a13)
                for (int64_t i = 0; i < nb; i++) {
                    const REAL ri = r[i];
                    a10 += (double)(ri * (x0[i] - m0));
                    a11 += (double)(ri * (x1[i] - m1));
                    a12 += (double)(ri * (x2[i] - m2));
                    a13 += (double)(ri * (x3[i] - m3));
                }
            } else {
                /* diag/spherical: the block's sums in REAL, like the full
                 * path's scatter tiles (nb / lanes terms per lane), then
                 * float64 across blocks. Converting every float32 term to
                 * float64 had made float32 no faster than float64. */
                REAL b10 = 0, b11 = 0, b12 = 0, b13 = 0;
                REAL b20 = 0, b21 = 0, b22 = 0, b23 = 0;
                #pragma omp simd reduction(+:b10, b11, b12, b13, b20, b21, b22, b23)
                for (int64_t i = 0; i < nb; i++) {
                    const REAL ri = r[i];
                    const REAL d0 = x0[i] - m0, d1 = x1[i] - m1;
                    const REAL d2 = x2[i] - m2, d3 = x3[i] - m3;
                    const REAL e0 = ri * d0, e1 = ri * d1, e2 = ri * d2, e3 = ri * d3;
                    b10 += e0; b11 += e1; b12 += e2; b13 += e3;
                    b20 += e0 * d0; b21 += e1 * d1; b22 += e2 * d2; b23 += e3 * d3;
                }
                a10 = b10; a11 = b11; a12 = b12; a13 = b13;
                a20 = b20; a21 = b21; a22 = b22; a23 = b23;
            }
            double* s1 = S1 + k * D + j;
            s1[0] += a10; s1[1] += a11; s1[2] += a12; s1[3] += a13;
            if (cov_type == 2) {
                double* s2 = S2 + k * D + j;
                s2[0] += a20; s2[1] += a21; s2[2] += a22; s2[3] += a23;
            } else if (cov_type == 3) {
                S2[k] += (a20 + a21) + (a22 + a23);
            }
        }
    }
    for (; j < D; j++) {
        const REAL* xj = xt + j * nb;
        for (int64_t k = 0; k < K; k++) {
            const REAL* r = wr + k * nb;
            const REAL m = shift[k * shift_stride + j];
            double a1 = 0, a2 = 0;
            if (cov_type == 1) {
                #pragma omp simd reduction(+:a1)
                for (int64_t i = 0; i < nb; i++) a1 += (double)(r[i] * (xj[i] - m));
            } else {
                #pragma omp simd reduction(+:a1, a2)
                for (int64_t i = 0; i < nb; i++) {
                    REAL d = xj[i] - m;
                    double rd = (double)(r[i] * d);
                    a1 += rd;
                    a2 += rd * (double)d;
                }
            }
            S1[k * D + j] += a1;
            if (cov_type == 2) S2[k * D + j] += a2;
            else if (cov_type == 3) S2[k] += a2;
        }
    }
}

/* ---- entry points ------------------------------------------------------ */

/* Gap between the work arrays of a block, in elements: half a row and a
 * cache line. Arrays whose distance is a multiple of 4 KiB make a store to
 * one and a load from the other falsely depend on each other (4K aliasing):
 * building sqrt(r) (x - mu) from xt into et ran 40% slower at D = 16 before
 * this gap (and rows of 120 values instead of 128). */
GM_INLINE int64_t GM(gap)(int64_t nb)
{
    return nb / 2 + 64 / (int64_t)sizeof(REAL);
}

/* Scratch needed by GM(block) and GM(block_stats), in elements of REAL. */
static int64_t GM(scratch_size)(int64_t nb, int64_t D, int64_t K)
{
    return (GM(xt_rows)(D) + GM(et_rows)(D) + K + 3) * nb + 2 * GM(gap)(nb);
}

/*
 * One block, vectorised path: every covariance type, except full with
 * D > GM_SMALL_D_MAX (the Cython BLAS path does those, and tied above it).
 *
 * x        IN  (nb, D) rows of X
 * means    IN  (K, D); the statistics' shift for full/diag/spherical
 * prec     IN  precisions_cholesky, flat
 * lognorm  IN  (K,) log pi_k + log det U_k - D/2 log 2 pi
 * center   IN  (D,) tied centre;  mproj IN (K, D) tied (mu_k - c) U
 * sw       IN  (nb,) sample weights or NULL
 * scratch  --  GM(scratch_size)(nb, D, K) elements
 * R, S1, S2 OUT += statistics (float64), or R == NULL for none
 * out_logp OUT (nb,) or NULL; out_resp OUT (nb, K) or NULL;
 * out_labels OUT (nb,) or NULL
 * Returns sum_i w_i log p(x_i).
 */
GM_CLONES static double GM(block)(
    int cov_type, const REAL* x, int64_t nb, int64_t D, int64_t K,
    const REAL* means, const REAL* prec, const double* lognorm,
    const REAL* center, const REAL* mproj, const double* sw, REAL* scratch,
    double* R, double* S1, double* S2,
    REAL* out_logp, REAL* out_resp, int64_t* out_labels)
{
    const int64_t xrows = GM(xt_rows)(D);
    REAL* xt = scratch;
    REAL* et = xt + xrows * nb + GM(gap)(nb);
    REAL* lp = et + GM(et_rows)(D) * nb + GM(gap)(nb);
    REAL* mx = lp + K * nb;
    REAL* sm = mx + nb;
    REAL* lg = sm + nb;
    GM(transpose_in)(x, nb, D, xrows, xt);
    switch (cov_type) {
    case 0: GM(full_dispatch)(0, xt, nb, D, K, means, prec, lognorm, lp, R, S1, S2, et, mx); break;
    case 1: GM(lp_tied)(xt, nb, D, K, prec, center, mproj, lognorm, et, lp); break;
    case 2: GM(lp_diag_sph)(0, xt, nb, D, K, means, prec, lognorm, lp); break;
    default: GM(lp_diag_sph)(1, xt, nb, D, K, means, prec, lognorm, lp); break;
    }
    double ll = GM(normalize)(lp, nb, K, sw, out_logp, out_labels, R != NULL, mx, sm, lg);
    if (out_resp)
        for (int64_t i = 0; i < nb; i++)
            for (int64_t k = 0; k < K; k++)
                out_resp[i * K + k] = lp[k * nb + i];
    if (R) {
        if (cov_type == 0)
            GM(full_dispatch)(1, xt, nb, D, K, means, prec, lognorm, lp, R, S1, S2, et, mx);
        else if (cov_type == 1)
            GM(stats_vec)(1, xt, nb, D, K, lp, center, 0, R, S1, S2);
        else
            GM(stats_vec)(cov_type, xt, nb, D, K, lp, means, D, R, S1, S2);
    }
    return ll;
}

/* Statistics of a block for given weighted responsibilities wr (K, nb)
 * (initialisation): the vectorised path's statistics alone. shift (K, D),
 * for tied every row the centre. */
GM_CLONES static void GM(block_stats)(
    int cov_type, const REAL* x, int64_t nb, int64_t D, int64_t K,
    const REAL* wr, const REAL* shift, REAL* scratch,
    double* R, double* S1, double* S2)
{
    const int64_t xrows = GM(xt_rows)(D);
    REAL* xt = scratch;
    REAL* et = xt + xrows * nb + GM(gap)(nb);
    REAL* sr = et + GM(et_rows)(D) * nb + GM(gap)(nb); /* GM(block)'s lp rows: unused here */
    GM(transpose_in)(x, nb, D, xrows, xt);
    if (cov_type == 0)
        GM(full_dispatch)(1, xt, nb, D, K, shift, NULL, NULL, (REAL*)wr, R, S1, S2, et, sr);
    else
        GM(stats_vec)(cov_type, xt, nb, D, K, wr, shift, D, R, S1, S2);
}

/* Vectorised log-sum-exp for the BLAS path: lp (K, nb) then three (nb,)
 * scratch rows. */
GM_CLONES static double GM(normalize_block)(REAL* lp, int64_t nb, int64_t K,
                                            const double* sw, REAL* out_logp,
                                            REAL* out_resp, int64_t* out_labels,
                                            int weight_resp)
{
    REAL* mx = lp + K * nb;
    double ll = GM(normalize)(lp, nb, K, sw, out_logp, out_labels, weight_resp,
                              mx, mx + nb, mx + 2 * nb);
    if (out_resp)
        for (int64_t i = 0; i < nb; i++)
            for (int64_t k = 0; k < K; k++)
                out_resp[i * K + k] = lp[k * nb + i];
    return ll;
}

/* BLAS path, full covariance with 16 < D <= GM_ANY_WIDE_MAX on AVX-512:
 * lp (K, nb) := lognorm_k - 1/2 ||(x - mu_k) U_k||^2 by the register kernel
 * GM(lp_full_any_wide) on x transposed into xt (D, nb), in place of a trmm
 * per component (measured on one Zen 4 core: an E-step with statistics at
 * 50,000 x 32 x 64 from 250 to 161 ms; the kernel alone at 50 GFlop/s of
 * D (D + 1) flops a row and component). Returns 0, computing nothing, where that
 * kernel does not serve (other ISAs, other D, the portable build): the
 * caller then takes trmm. */
GM_CLONES static int GM(lp_full_rows)(const REAL* x, int64_t nb, int64_t D, int64_t K,
                                      const REAL* means, const REAL* prec,
                                      const double* lognorm, REAL* xt, REAL* lp)
{
#ifndef GM_PORTABLE
    if (gm_isa_level() == 2 && D > GM_SMALL_D_MAX && D <= GM_ANY_WIDE_MAX) {
        GM(transpose_in)(x, nb, D, D, xt);
        GM(lp_full_any_wide)(xt, nb, D, K, means, prec, lognorm, lp);
        return 1;
    }
#endif
    (void)x; (void)nb; (void)D; (void)K; (void)means; (void)prec; (void)lognorm;
    (void)xt; (void)lp;
    return 0;
}

/* Row norms for the BLAS path: lp[k * nb + i] = c - 1/2 ||y_i||^2, y (nb, D). */
GM_CLONES static void GM(rows_to_lp)(const REAL* y, int64_t nb, int64_t D, double c,
                                     REAL* lp_k)
{
    for (int64_t i = 0; i < nb; i++) {
        const REAL* yi = y + i * D;
        REAL s = 0;
        #pragma omp simd reduction(+:s)
        for (int64_t j = 0; j < D; j++) s += yi[j] * yi[j];
        lp_k[i] = (REAL)c - (REAL)0.5 * s;
    }
}

/* BLAS path, tied: lp[k * nb + i] = lognorm_k - 1/2 ||z_i - mproj_k||^2,
 * z (nb, D) = (x - c) U row-major. */
GM_CLONES static void GM(tied_rows_to_lp)(const REAL* z, int64_t nb, int64_t D,
                                          int64_t K, const REAL* mproj,
                                          const double* lognorm, REAL* lp)
{
    for (int64_t k = 0; k < K; k++) {
        const REAL* m = mproj + k * D;
        const REAL c = (REAL)lognorm[k];
        for (int64_t i = 0; i < nb; i++) {
            const REAL* zi = z + i * D;
            REAL s = 0;
            #pragma omp simd reduction(+:s)
            for (int64_t j = 0; j < D; j++) {
                REAL t = zi[j] - m[j];
                s += t * t;
            }
            lp[k * nb + i] = c - (REAL)0.5 * s;
        }
    }
}

/* BLAS path statistics prep for one component (large D, syrk follows):
 * with d_i = x_i - mu, buf_i = sqrt(r_i) d_i, *Rk += sum r_i,
 * S1k += sum r_i d_i; x, buf (nb, D) row-major, r (nb,), s1acc (D,). */
GM_CLONES static void GM(scale_rows)(const REAL* x, int64_t nb, int64_t D,
                                     const REAL* mu, const REAL* r, REAL* buf,
                                     double* Rk, double* S1k, REAL* s1acc)
{
    REAL racc = 0;
    for (int64_t j = 0; j < D; j++) s1acc[j] = 0;
    for (int64_t i = 0; i < nb; i++) {
        const REAL ri = r[i];
        const REAL sr = GM_SQRT(ri);
        const REAL* xi = x + i * D;
        REAL* bi = buf + i * D;
        racc += ri;
        #pragma omp simd
        for (int64_t j = 0; j < D; j++) {
            REAL d = xi[j] - mu[j];
            s1acc[j] += ri * d;
            bi[j] = sr * d;
        }
    }
    *Rk += (double)racc;
    for (int64_t j = 0; j < D; j++) S1k[j] += (double)s1acc[j];
}

/* BLAS path, tied statistics: R_k += sum r, S1_k += sum r (x - c);
 * wr (K, nb). */
GM_CLONES static void GM(tied_stats_rows)(const REAL* x, int64_t nb, int64_t D,
                                          int64_t K, const REAL* wr,
                                          const REAL* center, double* R,
                                          double* S1, REAL* dbuf)
{
    for (int64_t k = 0; k < K; k++) {
        REAL racc = 0;
        for (int64_t i = 0; i < nb; i++) racc += wr[k * nb + i];
        R[k] += (double)racc;
    }
    for (int64_t i = 0; i < nb; i++) {
        const REAL* xi = x + i * D;
        #pragma omp simd
        for (int64_t j = 0; j < D; j++) dbuf[j] = xi[j] - center[j];
        for (int64_t k = 0; k < K; k++) {
            const REAL r = wr[k * nb + i];
            double* s1 = S1 + k * D;
            #pragma omp simd
            for (int64_t j = 0; j < D; j++) s1[j] += (double)(r * dbuf[j]);
        }
    }
}

/* BLAS path, full covariance statistics without syrk: with d = x - mu_k,
 * e = sqrt(r) d in structure-of-arrays (Dp, nb), R_k += sum r,
 * S1_k += sum r d, S2_k (upper) += E E^T by the register tiles of
 * GM(gram_upper). OpenBLAS's syrk spends more time packing these thin
 * (nb x D) blocks than multiplying (measured: half the speed of its trmm).
 * scratch: GM(gram_scratch)(nb, D) elements; wr (K, nb); means (K, D). */
static int64_t GM(gram_scratch)(int64_t nb, int64_t D)
{
    int64_t Dp = (D + 3) / 4 * 4;
    return 2 * Dp * nb + nb + Dp * Dp + 2 * GM(gap)(nb);
}

GM_CLONES static void GM(stats_gram)(const REAL* x, int64_t nb, int64_t D, int64_t K,
                                     const REAL* wr, const REAL* means, REAL* scratch,
                                     double* R, double* S1, double* S2)
{
    const int64_t Dp = (D + 3) / 4 * 4;
    REAL* xt = scratch;
    REAL* et = xt + Dp * nb + GM(gap)(nb);
    REAL* sr = et + Dp * nb + GM(gap)(nb);
    REAL* gram = sr + nb;
    GM(transpose_in)(x, nb, D, Dp, xt);
    for (int64_t j = D; j < Dp; j++) memset(et + j * nb, 0, (size_t)nb * sizeof(REAL));
    for (int64_t k = 0; k < K; k++) {
        const REAL* r = wr + k * nb;
        const REAL* mu = means + k * D;
        REAL racc = 0;
        #pragma omp simd reduction(+:racc)
        for (int64_t i = 0; i < nb; i++) {
            racc += r[i];
            sr[i] = GM_SQRT(r[i]);
        }
        R[k] += (double)racc;
        for (int64_t j = 0; j < D; j++) {
            const REAL* xj = xt + j * nb;
            REAL* ej = et + j * nb;
            const REAL m = mu[j];
            REAL a1 = 0;
            #pragma omp simd reduction(+:a1)
            for (int64_t i = 0; i < nb; i++) {
                REAL d = xj[i] - m;
                a1 += r[i] * d;
                ej[i] = sr[i] * d;
            }
            S1[k * D + j] += (double)a1;
        }
        GM(gram_upper)(et, nb, Dp, gram);
        double* S2k = S2 + k * D * D;
        for (int64_t j = 0; j < D; j++)
            for (int64_t l = j; l < D; l++)
                S2k[j * D + l] += (double)gram[j * Dp + l];
    }
}
