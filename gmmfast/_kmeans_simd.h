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
 * added to pots). With ``dst`` each candidate's distances are kept too,
 * dst[(k - n_chosen) * ldd + i] = d(x_i, cand_k), so that the next step
 * lowers closest by the chosen candidate without reading X again.
 *
 * Compiled once per instruction set and picked at load time by the
 * dispatch of gmmfast/_simd_compat.h.
 */
#ifndef GMMFAST_KMEANS_SIMD_H
#define GMMFAST_KMEANS_SIMD_H

#include "_simd_compat.h"

/* C99's restrict, spelled as gcc, clang and MSVC all take it */
#define GM_RESTRICT __restrict

/* Every pass's distances run along the rows: a register block of KM_RB
 * rows times KM_KT centres (one 64-byte vector of the type), each row's
 * features broadcast against the centres transposed (Ct, D x Kp, Kp = the
 * centres padded to KM_KT), so that no row is transposed and no dot
 * product is reduced across lanes; each dot product sums over the features
 * in order. (Measured at 10^6 rows, 8 centres, 2 threads, a Lloyd pass:
 * 7 ms at 2 features and 14 ms at 16, against 12.5 and 30 ms for rows
 * transposed into lanes and for a gemm per chunk.) */
#define KM_RB 4
#define KM_KT(T) (64 / (int)sizeof(T))
#define KM_PAD(K, T) (((K) + KM_KT(T) - 1) / KM_KT(T) * KM_KT(T))
/* acc[r][q] = sum_j xr[r * D + j] * Ct[j * Kp + kt + q] over the features
 * in order, for NL lanes q (KM_KT, or half of it for a few centres) */
#define KM_TILE_N(T, xr, Ct, Kp, kt, D, acc, NL)                               \
    for (int r_ = 0; r_ < KM_RB; r_++)                                          \
        for (int q_ = 0; q_ < (NL); q_++) acc[r_][q_] = 0;                      \
    for (int64_t j_ = 0; j_ < (D); j_++) {                                      \
        const T* cj_ = (Ct) + j_ * (Kp) + (kt);                                 \
        for (int r_ = 0; r_ < KM_RB; r_++) {                                    \
            const T xv_ = (xr)[r_ * (D) + j_];                                  \
            _Pragma("omp simd")                                                 \
            for (int q_ = 0; q_ < (NL); q_++) acc[r_][q_] += xv_ * cj_[q_];     \
        }                                                                       \
    }
#define KM_TILE(T, xr, Ct, Kp, kt, D, acc) KM_TILE_N(T, xr, Ct, Kp, kt, D, acc, KM_KT(T))

/* Ct (D, Kp) := C (K, D) transposed, the padding columns zero */
#define KM_TRANSPOSE(T, C, K, D, Ct, Kp)                                        \
    for (int64_t j_ = 0; j_ < (D); j_++)                                        \
        for (int64_t k_ = 0; k_ < (Kp); k_++)                                   \
            (Ct)[j_ * (Kp) + k_] = k_ < (K) ? (C)[k_ * (D) + j_] : (T)0;

/* Every pass's rows are compiled once more for each of 1 - 4 features
 * (KM_SMALL_D): with the feature loops' trip count known they unroll. A
 * Lloyd pass, 1 thread, float64: 2 000 x 2 x 3 from 14 to 10 ns a row,
 * 60 000 x 2 x 3 from 13 to 6.7, 60 000 x 2 x 9 from 32 to 17 (the loop
 * overhead of a few features per row was most of it). The same
 * operations in the same order; the seeding's ||x||^2 is a reduction the
 * compiler may vectorise in either build. */
#define KM_SMALL_D(CALL, NAME)                                                  \
    switch (D) {                                                                \
    case 1: CALL(NAME, 1); break;                                               \
    case 2: CALL(NAME, 2); break;                                               \
    case 3: CALL(NAME, 3); break;                                               \
    case 4: CALL(NAME, 4); break;                                               \
    default: CALL(NAME, D); break;                                              \
    }
#define KM_LLOYD_CALL(NAME, DV)                                                 \
    NAME##_body(X, sw, offset, C, norms, K, nb, DV, S, W, inertia, counts, want, buf)

#define KM_SEED_CALL(NAME, DV)                                                  \
    NAME##_body(X, sw, offset, C, cc, M, n_chosen, closest, first, vals, pots, dst, \
                ldd, nb, DV, buf)
#define KM_ONEHOT_CALL(NAME, DV)                                                \
    NAME##_body(X, sw, offset, C, norms, K, nb, DV, shift, cov_type, R, S1, S2, \
                counts, ybuf, buf)

/* doubles of scratch per chunk of nb rows */
static int64_t km_seed_scratch(int64_t nb, int64_t D, int64_t M)
{
    return (D + 2) * KM_PAD(M, double) + KM_RB * D + 2 * nb;
}

#define KM_CAT3(a, b, c) a##b##c
#define KM_XCAT3(a, b, c) KM_CAT3(a, b, c)

/* One register block of rows against the centres in tiles of NL lanes:
 * per row and lane the distance exactly as scikit-learn forms it; the
 * chosen lanes lower the row's running minimum (they come first, so before
 * any candidate sees it), every lane adds w min(d, cur) to its potential
 * (only the candidates' are read) and, with dst, a candidate's distance is
 * kept. */
#define KM_SEED_TILES(NL)                                                       \
    for (int64_t kt = 0; kt < Mp; kt += (NL)) {                                 \
        double acc[KM_RB][NL];                                                  \
        KM_TILE_N(double, xr, Ct, Mp, kt, D, acc, NL)                           \
        for (int r = 0; r < KM_RB; r++) {                                       \
            double dv[NL];                                                      \
            _Pragma("omp simd")                                                 \
            for (int q = 0; q < (NL); q++) {                                    \
                KM_REAL dist = (KM_REAL)((-2.0 * acc[r][q] + ccp[kt + q]) + xq[r]); \
                dv[q] = dist > 0 ? (double)dist : 0.0;                          \
            }                                                                   \
            if (kt < n_chosen) {                                                \
                const int64_t qc = n_chosen - kt < (NL) ? n_chosen - kt : (NL); \
                for (int64_t q = 0; q < qc; q++)                                \
                    cr[r] = dv[q] < cr[r] ? dv[q] : cr[r];                      \
            }                                                                   \
            if (kt + (NL) > n_chosen) {                                         \
                const double c_ = cr[r], w_ = wr[r];                            \
                _Pragma("omp simd")                                             \
                for (int q = 0; q < (NL); q++)                                  \
                    spot[kt + q] += (dv[q] < c_ ? dv[q] : c_) * w_;             \
                if (dst && r < rb)                                              \
                    for (int64_t q = 0; q < (NL); q++) {                        \
                        const int64_t k = kt + q;                               \
                        if (k >= n_chosen && k < M)                             \
                            dst[(k - n_chosen) * ldd + i0 + r] = (KM_REAL)dv[q]; \
                    }                                                           \
            }                                                                   \
        }                                                                       \
    }

#define KM_BODY                                                                 \
{                                                                               \
    const int64_t NLs = KM_KT(double) / 2;                                      \
    const int64_t Mp = M <= NLs ? NLs : KM_PAD(M, double);                      \
    double* Ct = buf; /* (D, Mp) */                                             \
    double* ccp = Ct + D * Mp; /* (Mp,) ||c||^2, padded with zeros */           \
    double* spot = ccp + Mp; /* (Mp,) the lanes' potentials over the chunk */   \
    double* xr = spot + Mp; /* (KM_RB, D) centred rows, upcast */               \
    double* cur = xr + KM_RB * D;                                               \
    double* wv = cur + nb;                                                      \
    const double big = KM_BIG;                                                  \
    for (int64_t i = 0; i < nb; i++) {                                          \
        wv[i] = (double)(KM_REAL)(sw ? sw[i] : 1.0);                            \
        cur[i] = (closest && !first) ? (double)closest[i] : big;                \
    }                                                                           \
    if (M > 0) {                                                                \
        KM_TRANSPOSE(double, C, M, D, Ct, Mp)                                   \
        for (int64_t k = 0; k < Mp; k++) {                                      \
            ccp[k] = k < M ? cc[k] : 0.0;                                       \
            spot[k] = 0.0;                                                      \
        }                                                                       \
        for (int64_t i0 = 0; i0 < nb; i0 += KM_RB) {                            \
            const int64_t rb = nb - i0 < KM_RB ? nb - i0 : KM_RB;               \
            double xq[KM_RB], cr[KM_RB], wr[KM_RB];                             \
            for (int64_t r = 0; r < KM_RB; r++) {                               \
                /* rows past the chunk repeat its first one, weight 0 */        \
                const int64_t ir = i0 + (r < rb ? r : 0);                       \
                const KM_REAL* xi = X + ir * D;                                 \
                double q = 0;                                                   \
                _Pragma("omp simd reduction(+:q)")                              \
                for (int64_t j = 0; j < D; j++) {                               \
                    xr[r * D + j] = (double)(xi[j] - offset[j]);                \
                    q += xr[r * D + j] * xr[r * D + j];                         \
                }                                                               \
                xq[r] = q;                                                      \
                cr[r] = cur[ir];                                                \
                wr[r] = r < rb ? wv[ir] : 0.0;                                  \
            }                                                                   \
            if (Mp == NLs) {                                                    \
                KM_SEED_TILES(KM_KT(double) / 2)                                \
            } else {                                                            \
                KM_SEED_TILES(KM_KT(double))                                    \
            }                                                                   \
            for (int64_t r = 0; r < rb; r++) cur[i0 + r] = cr[r];               \
        }                                                                       \
        for (int64_t k = n_chosen; k < M; k++) pots[k - n_chosen] += spot[k];   \
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
GM_INLINE void NAME##_body(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const double* C, const double* cc, int64_t M,             \
                      int64_t n_chosen, KM_REAL* closest, int first,            \
                      KM_REAL* vals, double* pots, KM_REAL* dst, int64_t ldd,   \
                      int64_t nb, const int64_t D, double* buf)                 \
KM_BODY                                                                         \
ATTR static void NAME(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const double* C, const double* cc, int64_t M,             \
                      int64_t n_chosen, KM_REAL* closest, int first,            \
                      KM_REAL* vals, double* pots, KM_REAL* dst, int64_t ldd,   \
                      int64_t nb, int64_t D, double* buf)                       \
{                                                                               \
    KM_SMALL_D(KM_SEED_CALL, NAME)                                              \
}


/* ---- Lloyd rows ---------------------------------------------------------
 *
 * One Lloyd pass over a chunk, in the data's dtype as scikit-learn's Lloyd
 * step computes it: xc = x - offset, d_k = ||c_k||^2 - 2 xc.c_k, the label
 * the first k of minimal d_k (strict '<' in k order), and into float64
 * sums W[label] += w, S[label, :] += w xc; with ``want``, the inertia
 * sum_i w_i ||xc_i - c_label||^2 and the rows per label.
 *
 * The distances run along the rows: a register block of KM_RB rows times
 * KM_KT centres (one 64-byte vector of the data's dtype), each row's
 * features broadcast against the centres transposed (Ct, D x Kp, Kp = K
 * padded to KM_KT), so that no row is transposed and no dot product is
 * reduced across lanes; each dot product sums over the features in order.
 * (Measured at 10^6 rows, 8 clusters, 2 threads: 7 ms a pass at 2 features
 * and 14 ms at 16, against 12.5 and 30 ms for rows transposed into lanes
 * and for a gemm per chunk.) The sums are per row, in row order.
 */
static int64_t km_lloyd_scratch(int64_t nb, int64_t D, int64_t K)
{
    /* in elements of the data's dtype: K padded to float32's 16 lanes
     * covers float64's 8; KM_LABELS_LANES takes (D + 3) nb */
    const int64_t Kp = (K + 15) / 16 * 16;
    const int64_t rows = D * Kp + Kp + KM_RB * D + nb;
    const int64_t lanes = (D + 3) * nb;
    return rows > lanes ? rows : lanes;
}

/* lab[i] for the nb rows: the first k of minimal ||c_k||^2 - 2 xc.c_k.
 * A few centres (K <= KM_KT / 2) take one tile of half a 64-byte vector
 * whose K lanes are scanned in order with a strict '<' (no padded lane is
 * looked at; scanning a full tile so was slower than the reductions below,
 * 22.6 against 14.2 ms a pass at 10^6 x 2 x 8); more centres take tiles of
 * KM_KT lanes, each reduced branch-free to its minimum and first lane
 * (the padded lanes hold +inf and come after the real ones, so an
 * infinite d_k still wins the tie), then strict '<' against the earlier
 * tiles. Either way overflowing data (||c||^2 = inf) gives NaN distances
 * and such a row takes label 0, as scikit-learn's argmin does, never a
 * padded lane. */
#define KM_LABEL_ONE_TILE(NL)                                                   \
    {                                                                           \
        KM_REAL acc[KM_RB][NL];                                                 \
        KM_TILE_N(KM_REAL, xr, Ct, Kp, 0, D, acc, NL)                           \
        for (int r = 0; r < KM_RB; r++) {                                       \
            KM_REAL m = nrm[0] + (KM_REAL)-2 * acc[r][0];                       \
            int32_t f = 0;                                                      \
            for (int q = 1; q < (NL); q++) {                                    \
                if (q >= K) break;                                              \
                const KM_REAL v = nrm[q] + (KM_REAL)-2 * acc[r][q];             \
                f = v < m ? q : f;                                              \
                m = v < m ? v : m;                                              \
            }                                                                   \
            bl[r] = f;                                                          \
        }                                                                       \
    }
#define KM_LABELS_ROWS                                                          \
    const int64_t Kp = KM_PAD(K, KM_REAL);                                      \
    KM_REAL* Ct = buf; /* (D, Kp) */                                            \
    KM_REAL* nrm = Ct + D * Kp; /* (Kp,) padded with +inf */                    \
    KM_REAL* xr = nrm + Kp; /* (KM_RB, D) centred rows */                       \
    /* (nb,) labels in the last nb elements of the scratch */                  \
    lab = (int32_t*)(void*)(xr + KM_RB * D);                                    \
    KM_TRANSPOSE(KM_REAL, C, K, D, Ct, Kp)                                      \
    for (int64_t k = 0; k < Kp; k++) nrm[k] = k < K ? norms[k] : (KM_REAL)INFINITY; \
    for (int64_t i0 = 0; i0 < nb; i0 += KM_RB) {                                \
        const int64_t rb = nb - i0 < KM_RB ? nb - i0 : KM_RB;                   \
        for (int64_t r = 0; r < KM_RB; r++) {                                   \
            const KM_REAL* xi = X + (i0 + (r < rb ? r : 0)) * D;                \
            _Pragma("omp simd")                                                 \
            for (int64_t j = 0; j < D; j++) xr[r * D + j] = xi[j] - offset[j];  \
        }                                                                       \
        /* a whole block's labels go straight to lab (stored one by one and  \
         * then copied, the copy's wide load waited on the narrow stores:  \
         * 15% of a pass at 10^6 x 2 x 2); the chunk's last, partial block \
         * through a buffer */                                              \
        int32_t blbuf[KM_RB];                                                   \
        int32_t* GM_RESTRICT bl = rb == KM_RB ? lab + i0 : blbuf;               \
        if (K <= KM_KT(KM_REAL) / 2) KM_LABEL_ONE_TILE(KM_KT(KM_REAL) / 2)     \
        else {                                                                  \
        KM_REAL bv[KM_RB];                                                      \
        for (int64_t kt = 0; kt < Kp; kt += KM_KT(KM_REAL)) {                   \
            KM_REAL acc[KM_RB][KM_KT(KM_REAL)];                                 \
            KM_TILE(KM_REAL, xr, Ct, Kp, kt, D, acc)                            \
            for (int r = 0; r < KM_RB; r++) {                                   \
                KM_REAL v[KM_KT(KM_REAL)];                                      \
                KM_REAL m = nrm[kt] + (KM_REAL)-2 * acc[r][0];                  \
                _Pragma("omp simd reduction(min:m)")                            \
                for (int q = 0; q < KM_KT(KM_REAL); q++) {                      \
                    v[q] = nrm[kt + q] + (KM_REAL)-2 * acc[r][q];               \
                    m = v[q] < m ? v[q] : m;                                    \
                }                                                               \
                int first = KM_KT(KM_REAL);                                     \
                _Pragma("omp simd reduction(min:first)")                        \
                for (int q = 0; q < KM_KT(KM_REAL); q++)                        \
                    first = (v[q] == m && q < first) ? q : first;               \
                first = kt + first < K ? first : 0;                             \
                if (kt == 0 || m < bv[r]) {                                     \
                    bv[r] = m;                                                  \
                    bl[r] = (int32_t)(kt + first);                              \
                }                                                               \
            }                                                                   \
        }                                                                       \
        }                                                                       \
        if (rb < KM_RB)                                                         \
            for (int64_t r = 0; r < rb; r++) lab[i0 + r] = blbuf[r];            \
    }

/* The labels with the rows in lanes, for KM_LANES_MAX_D features or fewer:
 * the centred rows transposed (xt, D x nb), then centre after centre over
 * all the rows, d = ||c_k||^2 - 2 xc.c_k with the dot product over the
 * features in order (as the tiles form it), the running minimum and its
 * first centre by a strict '<' (the one-tile scan's order and ties; a NaN
 * distance of centre 0 keeps label 0). Centres in lanes spent most of a
 * pass reducing each row's lanes to its minimum: a Lloyd pass at
 * 2,000 x 2, one core, K = 5 10.1 -> 5.0 ns a row, K = 9 13.6 -> 4.1,
 * K = 16 16.2 -> 5.2 (C harness; the same labels and sums). */
#define KM_LANES_MAX_D 4
#define KM_LABELS_LANES                                                         \
    KM_REAL* GM_RESTRICT xt = buf;              /* (D, nb) */                 \
    KM_REAL* GM_RESTRICT best = xt + D * nb;    /* (nb,) */                   \
    KM_REAL* GM_RESTRICT labr = best + nb;      /* (nb,) labels, exact */     \
    lab = (int32_t*)(void*)(labr + nb);                                         \
    for (int64_t j = 0; j < D; j++) {                                           \
        const KM_REAL o_ = offset[j];                                           \
        _Pragma("omp simd")                                                     \
        for (int64_t i = 0; i < nb; i++) xt[j * nb + i] = X[i * D + j] - o_;    \
    }                                                                           \
    for (int64_t k = 0; k < K; k++) {                                           \
        const KM_REAL* ck = C + k * D;                                          \
        const KM_REAL nk = norms[k], kr = (KM_REAL)k;                           \
        if (k == 0) {                                                           \
            _Pragma("omp simd")                                                 \
            for (int64_t i = 0; i < nb; i++) {                                  \
                KM_REAL acc = 0;                                                \
                for (int64_t j = 0; j < D; j++) acc += xt[j * nb + i] * ck[j];  \
                best[i] = nk + (KM_REAL)-2 * acc;                               \
                labr[i] = 0;                                                    \
            }                                                                   \
        } else {                                                                \
            _Pragma("omp simd")                                                 \
            for (int64_t i = 0; i < nb; i++) {                                  \
                KM_REAL acc = 0;                                                \
                for (int64_t j = 0; j < D; j++) acc += xt[j * nb + i] * ck[j];  \
                const KM_REAL v = nk + (KM_REAL)-2 * acc;                       \
                const int lt = v < best[i];                                     \
                best[i] = lt ? v : best[i];                                     \
                labr[i] = lt ? kr : labr[i];                                    \
            }                                                                   \
        }                                                                       \
    }                                                                           \
    _Pragma("omp simd")                                                         \
    for (int64_t i = 0; i < nb; i++) lab[i] = (int32_t)labr[i];

/* lab (declared by the caller) := the labels of the nb rows */
#define KM_LABELS                                                               \
    if (D <= KM_LANES_MAX_D) { KM_LABELS_LANES } else { KM_LABELS_ROWS }

#define KM_LLOYD_BODY                                                           \
{                                                                               \
    int32_t* lab;                                                               \
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
    int32_t* lab;                                                               \
    KM_LABELS                                                                   \
    /* the accumulators, y and the rows never overlap: restrict lets the      \
     * per-label updates run as vector loads and stores (the full type's     \
     * D (D + 1) / 2 products a row were scalar, a one-hot pass at 10^6 x 16 \
     * x 8 five times a Lloyd pass) */                                       \
    double* GM_RESTRICT y = ybuf;                                               \
    for (int64_t i = 0; i < nb; i++) {                                          \
        const int64_t l = (int64_t)lab[i];                                      \
        const double wi = sw ? sw[i] : 1.0;                                     \
        const KM_REAL* GM_RESTRICT xi = X + i * D;                              \
        const double* GM_RESTRICT sh = shift + l * D;                           \
        _Pragma("omp simd")                                                     \
        for (int64_t j = 0; j < D; j++) y[j] = (double)xi[j] - sh[j];           \
        R[l] += wi;                                                             \
        counts[l] += 1;                                                         \
        double* GM_RESTRICT S1l = S1 + l * D;                                   \
        _Pragma("omp simd")                                                     \
        for (int64_t j = 0; j < D; j++) S1l[j] += wi * y[j];                    \
        if (cov_type == 0) {                                                    \
            double* GM_RESTRICT S2l = S2 + l * D * D;                           \
            for (int64_t j = 0; j < D; j++) {                                   \
                const double wy = wi * y[j];                                    \
                double* GM_RESTRICT S2r = S2l + j * D;                          \
                _Pragma("omp simd")                                             \
                for (int64_t m = j & ~(int64_t)3; m < D; m++) S2r[m] += wy * y[m]; \
            }                                                                   \
        } else if (cov_type == 2) {                                             \
            double* GM_RESTRICT S2l = S2 + l * D;                               \
            _Pragma("omp simd")                                                 \
            for (int64_t j = 0; j < D; j++) S2l[j] += wi * y[j] * y[j];         \
        } else if (cov_type == 3) {                                             \
            double sq = 0;                                                      \
            for (int64_t j = 0; j < D; j++) sq += y[j] * y[j];                  \
            S2[l] += wi * sq;                                                   \
        }                                                                       \
    }                                                                           \
}

#define KM_DEFINE_ONEHOT(NAME, ATTR)                                            \
GM_INLINE void NAME##_body(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const KM_REAL* C, const KM_REAL* norms, int64_t K,        \
                      int64_t nb, const int64_t D, const double* shift, int cov_type, \
                      double* R, double* S1, double* S2, double* counts,        \
                      double* ybuf, KM_REAL* buf)                               \
KM_ONEHOT_BODY                                                                  \
ATTR static void NAME(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const KM_REAL* C, const KM_REAL* norms, int64_t K,        \
                      int64_t nb, int64_t D, const double* shift, int cov_type, \
                      double* R, double* S1, double* S2, double* counts,        \
                      double* ybuf, KM_REAL* buf)                               \
{                                                                               \
    KM_SMALL_D(KM_ONEHOT_CALL, NAME)                                            \
}

#define KM_DEFINE_LLOYD(NAME, ATTR)                                             \
GM_INLINE void NAME##_body(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const KM_REAL* C, const KM_REAL* norms, int64_t K,        \
                      int64_t nb, const int64_t D, double* S, double* W,        \
                      double* inertia, double* counts, int want, KM_REAL* buf)  \
KM_LLOYD_BODY                                                                   \
ATTR static void NAME(const KM_REAL* X, const double* sw, const KM_REAL* offset,\
                      const KM_REAL* C, const KM_REAL* norms, int64_t K,        \
                      int64_t nb, int64_t D, double* S, double* W,              \
                      double* inertia, double* counts, int want, KM_REAL* buf)  \
{                                                                               \
    KM_SMALL_D(KM_LLOYD_CALL, NAME)                                             \
}

/* ---- Weighted moments about a centre ------------------------------------
 *
 * o[0] += w, o[1 + j] += w v_j, o[1 + D + j] += w v_j^2 with v = x - c, row
 * after row. For the 1 - 4 features KM_SMALL_D compiles the sums are carried
 * in local variables (registers) and stored once a chunk: added through o
 * (which may alias the rows and the centre, so every addition waited on the
 * store of the one before) a pass at 10^6 x 2 took 4.9 ns a row on one
 * thread, 1.4 now. The same additions in the same order (the compiler may
 * fuse a multiply-add where the ISA has FMA: rounding-level differences).
 * At D = 16 a 2-thread pass went from 10.5 to 5 ms (the former loop was
 * Cython's), a 1-thread pass from about 8 to 9. */
#define KM_MOMENTS_MAXD 4
#define KM_MOMENTS_ROWS(A)                                                      \
    for (int64_t i = 0; i < nb; i++) {                                          \
        const double wi = sw ? sw[i] : 1.0;                                     \
        const KM_REAL* xi = X + i * D;                                          \
        (A)[0] += wi;                                                           \
        for (int64_t j = 0; j < D; j++) {                                       \
            const double v = (double)xi[j] - center[j];                         \
            (A)[1 + j] += wi * v;                                               \
            (A)[1 + D + j] += wi * v * v;                                       \
        }                                                                       \
    }
#define KM_DEFINE_MOMENTS(NAME, ATTR)                                           \
GM_INLINE void NAME##_body(const KM_REAL* X, const double* sw,                  \
                           const double* center, int64_t nb, const int64_t D,   \
                           double* o)                                           \
{                                                                               \
    if (D <= KM_MOMENTS_MAXD) {                                                 \
        double acc[1 + 2 * KM_MOMENTS_MAXD];                                    \
        for (int64_t j = 0; j < 1 + 2 * D; j++) acc[j] = o[j];                  \
        KM_MOMENTS_ROWS(acc)                                                    \
        for (int64_t j = 0; j < 1 + 2 * D; j++) o[j] = acc[j];                  \
    } else {                                                                    \
        KM_MOMENTS_ROWS(o)                                                      \
    }                                                                           \
}                                                                               \
ATTR static void NAME(const KM_REAL* X, const double* sw, const double* center, \
                      int64_t nb, int64_t D, double* o)                         \
{                                                                               \
    KM_SMALL_D(KM_MOMENTS_CALL, NAME)                                           \
}
#define KM_MOMENTS_CALL(NAME, DV) NAME##_body(X, sw, center, nb, DV, o)

/* float64 */
#define KM_REAL double
#define KM_BIG 1e300
#if GM_ISA_FNPTR
GM_TARGET_PUSH("avx512f")
KM_DEFINE(km_seed_rows_d_avx512f, )
KM_DEFINE_LLOYD(km_lloyd_rows_d_avx512f, )
KM_DEFINE_ONEHOT(km_onehot_rows_d_avx512f, )
KM_DEFINE_MOMENTS(km_moments_rows_d_avx512f, )
GM_TARGET_POP
GM_TARGET_PUSH(GM_TARGET_AVX2)
KM_DEFINE(km_seed_rows_d_avx2, )
KM_DEFINE_LLOYD(km_lloyd_rows_d_avx2, )
KM_DEFINE_ONEHOT(km_onehot_rows_d_avx2, )
KM_DEFINE_MOMENTS(km_moments_rows_d_avx2, )
GM_TARGET_POP
KM_DEFINE(km_seed_rows_d_base, )
KM_DEFINE_LLOYD(km_lloyd_rows_d_base, )
KM_DEFINE_ONEHOT(km_onehot_rows_d_base, )
KM_DEFINE_MOMENTS(km_moments_rows_d_base, )
#else
KM_DEFINE(km_seed_rows_d, GM_CLONES)
KM_DEFINE_LLOYD(km_lloyd_rows_d, GM_CLONES)
KM_DEFINE_ONEHOT(km_onehot_rows_d, GM_CLONES)
KM_DEFINE_MOMENTS(km_moments_rows_d, GM_CLONES)
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
KM_DEFINE_MOMENTS(km_moments_rows_f_avx512f, )
GM_TARGET_POP
GM_TARGET_PUSH(GM_TARGET_AVX2)
KM_DEFINE(km_seed_rows_f_avx2, )
KM_DEFINE_LLOYD(km_lloyd_rows_f_avx2, )
KM_DEFINE_ONEHOT(km_onehot_rows_f_avx2, )
KM_DEFINE_MOMENTS(km_moments_rows_f_avx2, )
GM_TARGET_POP
KM_DEFINE(km_seed_rows_f_base, )
KM_DEFINE_LLOYD(km_lloyd_rows_f_base, )
KM_DEFINE_ONEHOT(km_onehot_rows_f_base, )
KM_DEFINE_MOMENTS(km_moments_rows_f_base, )
#else
KM_DEFINE(km_seed_rows_f, GM_CLONES)
KM_DEFINE_LLOYD(km_lloyd_rows_f, GM_CLONES)
KM_DEFINE_ONEHOT(km_onehot_rows_f, GM_CLONES)
KM_DEFINE_MOMENTS(km_moments_rows_f, GM_CLONES)
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
#define km_moments_rows_d KM_PICK(km_moments_rows_d)
#define km_moments_rows_f KM_PICK(km_moments_rows_f)
#endif

#endif /* GMMFAST_KMEANS_SIMD_H */
