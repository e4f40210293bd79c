/*
 * gmmfast/_kmeans_simd.h — the rows of a k-means++ seeding pass and of a
 * Lloyd pass (gmmfast/_kmeans_kernels.pyx, ``seed_pass``, ``lloyd_pass``),
 * vectorised over rows.
 *
 * scikit-learn's seeding forms every squared distance as
 *
 *     d = max((-2 c.xc + ||c||^2) + ||xc||^2, 0)
 *
 * in float64 (float32 data upcast, the result rounded to float32 before the
 * clip: its _euclidean_distances_upcast), keeps each row's running minimum
 * ``closest`` in the data's dtype, and sums w * closest (w in the data's
 * dtype). km_seed_rows_{d,f} compute exactly those numbers for a chunk of
 * rows; each dot product sums over the features in order (the order of a
 * BLAS dot aside, scikit-learn's numbers to rounding).
 *
 * The centres C (M, D), float64, are split in two: the first n_chosen are
 * centres already chosen (they lower each row's closest), the rest are
 * candidates (their potentials sum_i w_i min(closest_i, d(x_i, cand)) are
 * added to pots).
 *
 * Layout as the EM kernel's (gmmfast/_simd.h): the chunk transposed to
 * structure-of-arrays, xt[j * nb + i], so that every loop runs over rows in
 * SIMD lanes; compiled once per instruction set and picked at load time by
 * the dispatch of gmmfast/_simd_compat.h.
 */
#ifndef GMMFAST_KMEANS_SIMD_H
#define GMMFAST_KMEANS_SIMD_H

#include "_simd_compat.h"

/* doubles of scratch per chunk of nb rows */
/* the transposed rows' stride: nb plus one cache line of doubles, so that
 * the D rows of xt do not all fall in the same few cache sets (a stride of
 * 2 KiB did, and the transposition then missed L1 on every store) */
#define KM_STRIDE(nb) ((nb) + 8)
/* from this many features a row's dot products run along the row (vector
 * lanes over features) instead of over transposed rows */
#define KM_ROWWISE_D 8
static int64_t km_seed_scratch(int64_t nb, int64_t D, int64_t M)
{
    return KM_STRIDE(nb) * D + (3 + M) * nb + D;
}

#define KM_CAT3(a, b, c) a##b##c
#define KM_XCAT3(a, b, c) KM_CAT3(a, b, c)

#define KM_BODY                                                                 \
{                                                                               \
    double* xt = buf;                                                           \
    const int64_t ns = KM_STRIDE(nb);                                           \
    const int rows = D >= KM_ROWWISE_D; /* row-major dots: no transposition */  \
    double* xx = rows ? buf : xt + D * ns;                                      \
    double* cur = xx + nb;                                                      \
    double* wv = cur + nb;                                                      \
    double* dot = wv + nb; /* (M, nb) */                                        \
    double* row = dot + M * nb; /* (D,) */                                      \
    const double big = KM_BIG;                                                  \
    for (int64_t i = 0; i < nb; i++) {                                          \
        wv[i] = (double)(KM_REAL)(sw ? sw[i] : 1.0);                            \
        cur[i] = (closest && !first) ? (double)closest[i] : big;                \
    }                                                                           \
    if (M > 0 && rows) {                                                        \
        for (int64_t i = 0; i < nb; i++) {                                      \
            const KM_REAL* xi = X + i * D;                                      \
            double q = 0;                                                       \
            _Pragma("omp simd reduction(+:q)")                                  \
            for (int64_t j = 0; j < D; j++) {                                   \
                row[j] = (double)(xi[j] - offset[j]);                           \
                q += row[j] * row[j];                                           \
            }                                                                   \
            xx[i] = q;                                                          \
            for (int64_t k = 0; k < M; k++) {                                   \
                const double* ck = C + k * D;                                   \
                double t = 0;                                                   \
                _Pragma("omp simd reduction(+:t)")                              \
                for (int64_t j = 0; j < D; j++) t += row[j] * ck[j];            \
                dot[k * nb + i] = t;                                            \
            }                                                                   \
        }                                                                       \
    } else if (M > 0) {                                                         \
        for (int64_t i = 0; i < nb; i++)                                        \
            for (int64_t j = 0; j < D; j++)                                     \
                xt[j * ns + i] = (double)(X[i * D + j] - offset[j]);            \
        for (int64_t i = 0; i < nb; i++) xx[i] = 0;                             \
        for (int64_t j = 0; j < D; j++) {                                       \
            const double* xj = xt + j * ns;                                     \
            _Pragma("omp simd")                                                 \
            for (int64_t i = 0; i < nb; i++) xx[i] += xj[i] * xj[i];            \
        }                                                                       \
        for (int64_t k = 0; k < M; k++) {                                       \
            double* dk = dot + k * nb;                                          \
            for (int64_t i = 0; i < nb; i++) dk[i] = 0;                         \
            for (int64_t j = 0; j < D; j++) {                                   \
                const double* xj = xt + j * ns;                                 \
                const double c = C[k * D + j];                                  \
                _Pragma("omp simd")                                             \
                for (int64_t i = 0; i < nb; i++) dk[i] += xj[i] * c;            \
            }                                                                   \
        }                                                                       \
    }                                                                           \
    for (int64_t k = 0; k < M; k++) {                                           \
        const double* dk = dot + k * nb;                                        \
        const double ccv = cc[k];                                               \
        if (k < n_chosen) {                                                     \
            _Pragma("omp simd")                                                 \
            for (int64_t i = 0; i < nb; i++) {                                  \
                KM_REAL dist = (KM_REAL)((-2.0 * dk[i] + ccv) + xx[i]);         \
                dist = dist > 0 ? dist : (KM_REAL)0;                            \
                cur[i] = (double)dist < cur[i] ? (double)dist : cur[i];         \
            }                                                                   \
        } else {                                                                \
            double s = 0;                                                       \
            _Pragma("omp simd reduction(+:s)")                                  \
            for (int64_t i = 0; i < nb; i++) {                                  \
                KM_REAL dist = (KM_REAL)((-2.0 * dk[i] + ccv) + xx[i]);         \
                dist = dist > 0 ? dist : (KM_REAL)0;                            \
                double m = (double)dist < cur[i] ? (double)dist : cur[i];       \
                s += m * wv[i];                                                 \
            }                                                                   \
            pots[k - n_chosen] += s;                                            \
        }                                                                       \
    }                                                                           \
    if (closest && n_chosen > 0)                                                \
        for (int64_t i = 0; i < nb; i++) closest[i] = (KM_REAL)cur[i];          \
    if (vals)                                                                   \
        for (int64_t i = 0; i < nb; i++)                                        \
            vals[i] = (KM_REAL)wv[i] * (KM_REAL)cur[i];                         \
}

/* One definition per dtype (and per ISA suffix SFX when picked through
 * function pointers): X, closest and vals point at the chunk's first row. */
#define KM_DEFINE(NAME, ATTR)                                                   \
ATTR static void NAME(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const double* C, const double* cc, int64_t M,             \
                      int64_t n_chosen, KM_REAL* closest, int first,            \
                      KM_REAL* vals, double* pots, int64_t nb, int64_t D,       \
                      double* buf)                                              \
KM_BODY


/* ---- Lloyd rows ---------------------------------------------------------
 *
 * One Lloyd pass over a chunk, in the data's dtype as scikit-learn's Lloyd
 * step computes it: xc = x - offset, d_k = ||c_k||^2 - 2 xc.c_k, the label
 * the first k of minimal d_k (strict '<' in k order), and into float64
 * sums W[label] += w, S[label, :] += w xc; with ``want``, the inertia
 * sum_i w_i ||xc_i - c_label||^2 and the rows per label. The distances run
 * over rows in SIMD lanes (xt transposed as above, each dot product summed
 * over the features in order); the sums are per row, in row order.
 */
/* rows per register block of the distance loops */
#define KM_V 16
static int64_t km_lloyd_scratch(int64_t nb, int64_t D)
{
    const int64_t nbp = (nb + KM_V - 1) / KM_V * KM_V;
    return KM_STRIDE(nbp) * D + 2 * nbp;
}

#define KM_LABELS                                                               \
    const int64_t nbp = (nb + KM_V - 1) / KM_V * KM_V; /* padded rows */        \
    KM_REAL* xt = buf;                                                          \
    const int64_t ns = KM_STRIDE(nbp);                                          \
    KM_REAL* best = xt + D * ns;                                                \
    KM_REAL* lab = best + nbp; /* labels, exact as values below 2^24 */         \
    for (int64_t i = 0; i < nb; i++)                                            \
        for (int64_t j = 0; j < D; j++)                                         \
            xt[j * ns + i] = X[i * D + j] - offset[j];                          \
    for (int64_t i = nb; i < nbp; i++)                                          \
        for (int64_t j = 0; j < D; j++) xt[j * ns + i] = 0;                     \
    for (int64_t k = 0; k < K; k++) {                                           \
        const KM_REAL nk = norms[k];                                            \
        const KM_REAL kv = (KM_REAL)k;                                          \
        for (int64_t i0 = 0; i0 < nbp; i0 += KM_V) {                            \
            KM_REAL acc[KM_V];                                                  \
            for (int ii = 0; ii < KM_V; ii++) acc[ii] = 0;                      \
            for (int64_t j = 0; j < D; j++) {                                   \
                const KM_REAL* xj = xt + j * ns + i0;                           \
                const KM_REAL ck = C[k * D + j];                                \
                _Pragma("omp simd")                                             \
                for (int ii = 0; ii < KM_V; ii++) acc[ii] += xj[ii] * ck;       \
            }                                                                   \
            KM_REAL* bi = best + i0;                                            \
            KM_REAL* li = lab + i0;                                             \
            if (k == 0) {                                                       \
                _Pragma("omp simd")                                             \
                for (int ii = 0; ii < KM_V; ii++) {                             \
                    bi[ii] = nk + (KM_REAL)-2 * acc[ii];                        \
                    li[ii] = 0;                                                 \
                }                                                               \
            } else {                                                            \
                _Pragma("omp simd")                                             \
                for (int ii = 0; ii < KM_V; ii++) {                             \
                    KM_REAL v = nk + (KM_REAL)-2 * acc[ii];                     \
                    int better = v < bi[ii];                                    \
                    bi[ii] = better ? v : bi[ii];                               \
                    li[ii] = better ? kv : li[ii];                              \
                }                                                               \
            }                                                                   \
        }                                                                       \
    }                                                                           \

#define KM_LLOYD_BODY                                                           \
{                                                                               \
    KM_LABELS                                                                   \
    for (int64_t i = 0; i < nb; i++) {                                          \
        const int64_t l = (int64_t)lab[i];                                      \
        const double wi = sw ? sw[i] : 1.0;                                     \
        double* Sl = S + l * D;                                                 \
        const KM_REAL* xi = X + i * D;                                          \
        W[l] += wi;                                                             \
        /* xc again from the row (contiguous; the same rounding as xt) */       \
        _Pragma("omp simd")                                                     \
        for (int64_t j = 0; j < D; j++) Sl[j] += wi * (double)(xi[j] - offset[j]); \
        if (want) {                                                             \
            double sq = 0;                                                      \
            for (int64_t j = 0; j < D; j++) {                                   \
                KM_REAL diff = (xi[j] - offset[j]) - C[l * D + j];              \
                sq += (double)(diff * diff);                                    \
            }                                                                   \
            inertia[0] += wi * sq;                                              \
            counts[l] += 1;                                                     \
        }                                                                       \
    }                                                                           \
}

/* The one-hot statistics of the labels (a mixture's k-means start): per
 * row, y = x - shift_label in float64, and R[l] += w, S1[l] += w y and the
 * covariance type's S2[l]: full the upper triangle of w y y^T (row-major,
 * D x D per label), diag w y^2, spherical w ||y||^2, tied none. */
#define KM_ONEHOT_BODY                                                          \
{                                                                               \
    KM_LABELS                                                                   \
    for (int64_t i = 0; i < nb; i++) {                                          \
        const int64_t l = (int64_t)lab[i];                                      \
        const double wi = sw ? sw[i] : 1.0;                                     \
        const KM_REAL* xi = X + i * D;                                          \
        const double* sh = shift + l * D;                                       \
        double* y = ybuf;                                                       \
        for (int64_t j = 0; j < D; j++) y[j] = (double)xi[j] - sh[j];           \
        R[l] += wi;                                                             \
        double* S1l = S1 + l * D;                                               \
        for (int64_t j = 0; j < D; j++) S1l[j] += wi * y[j];                    \
        if (cov_type == 0) {                                                    \
            double* S2l = S2 + l * D * D;                                       \
            for (int64_t j = 0; j < D; j++) {                                   \
                const double wy = wi * y[j];                                    \
                for (int64_t m = j; m < D; m++) S2l[j * D + m] += wy * y[m];    \
            }                                                                   \
        } else if (cov_type == 2) {                                             \
            double* S2l = S2 + l * D;                                           \
            for (int64_t j = 0; j < D; j++) S2l[j] += wi * y[j] * y[j];         \
        } else if (cov_type == 3) {                                             \
            double sq = 0;                                                      \
            for (int64_t j = 0; j < D; j++) sq += y[j] * y[j];                  \
            S2[l] += wi * sq;                                                   \
        }                                                                       \
    }                                                                           \
}

#define KM_DEFINE_ONEHOT(NAME, ATTR)                                            \
ATTR static void NAME(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const KM_REAL* C, const KM_REAL* norms, int64_t K,        \
                      int64_t nb, int64_t D, const double* shift, int cov_type, \
                      double* R, double* S1, double* S2, double* ybuf,          \
                      KM_REAL* buf)                                             \
KM_ONEHOT_BODY

#define KM_DEFINE_LLOYD(NAME, ATTR)                                             \
ATTR static void NAME(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const KM_REAL* C, const KM_REAL* norms, int64_t K,        \
                      int64_t nb, int64_t D, double* S, double* W,              \
                      double* inertia, double* counts, int want, KM_REAL* buf)  \
KM_LLOYD_BODY

/* float64 */
#define KM_REAL double
#define KM_BIG 1e300
#if GM_ISA_FNPTR
GM_TARGET_PUSH("avx512f")
KM_DEFINE(km_seed_rows_d_avx512f, )
KM_DEFINE_LLOYD(km_lloyd_rows_d_avx512f, )
KM_DEFINE_ONEHOT(km_onehot_rows_d_avx512f, )
GM_TARGET_POP
GM_TARGET_PUSH("avx2")
KM_DEFINE(km_seed_rows_d_avx2, )
KM_DEFINE_LLOYD(km_lloyd_rows_d_avx2, )
KM_DEFINE_ONEHOT(km_onehot_rows_d_avx2, )
GM_TARGET_POP
KM_DEFINE(km_seed_rows_d_base, )
KM_DEFINE_LLOYD(km_lloyd_rows_d_base, )
KM_DEFINE_ONEHOT(km_onehot_rows_d_base, )
#else
KM_DEFINE(km_seed_rows_d, GM_CLONES)
KM_DEFINE_LLOYD(km_lloyd_rows_d, GM_CLONES)
KM_DEFINE_ONEHOT(km_onehot_rows_d, GM_CLONES)
#endif
#undef KM_REAL
#undef KM_BIG

/* float32 */
#define KM_REAL float
#define KM_BIG 3e38
#if GM_ISA_FNPTR
GM_TARGET_PUSH("avx512f")
KM_DEFINE(km_seed_rows_f_avx512f, )
KM_DEFINE_LLOYD(km_lloyd_rows_f_avx512f, )
KM_DEFINE_ONEHOT(km_onehot_rows_f_avx512f, )
GM_TARGET_POP
GM_TARGET_PUSH("avx2")
KM_DEFINE(km_seed_rows_f_avx2, )
KM_DEFINE_LLOYD(km_lloyd_rows_f_avx2, )
KM_DEFINE_ONEHOT(km_onehot_rows_f_avx2, )
GM_TARGET_POP
KM_DEFINE(km_seed_rows_f_base, )
KM_DEFINE_LLOYD(km_lloyd_rows_f_base, )
KM_DEFINE_ONEHOT(km_onehot_rows_f_base, )
#else
KM_DEFINE(km_seed_rows_f, GM_CLONES)
KM_DEFINE_LLOYD(km_lloyd_rows_f, GM_CLONES)
KM_DEFINE_ONEHOT(km_onehot_rows_f, GM_CLONES)
#endif
#undef KM_REAL
#undef KM_BIG

#if GM_ISA_FNPTR
#define KM_PICK(f) (gm_isa_level() == 2 ? f##_avx512f : gm_isa_level() == 1 ? f##_avx2 : f##_base)
#define km_seed_rows_d KM_PICK(km_seed_rows_d)
#define km_seed_rows_f KM_PICK(km_seed_rows_f)
#define km_lloyd_rows_d KM_PICK(km_lloyd_rows_d)
#define km_lloyd_rows_f KM_PICK(km_lloyd_rows_f)
#define km_onehot_rows_d KM_PICK(km_onehot_rows_d)
#define km_onehot_rows_f KM_PICK(km_onehot_rows_f)
#endif

#endif /* GMMFAST_KMEANS_SIMD_H */
