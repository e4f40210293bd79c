/*
 * gmmfast/_simd.h — the vectorised parts of the EM block kernel.
 *
 * Included by _kernels.pyx. This file defines the dtype-independent
 * helpers, then includes _simd_impl.h twice, once with REAL = double
 * (suffix _d) and once with REAL = float (suffix _f): one source, two dtypes,
 * like Cython's fused types.
 *
 * Layout: a block of nb rows is transposed to structure-of-arrays,
 * xt[j * nb + i] = x[i, j], so that every per-sample computation runs over
 * i in SIMD lanes (`#pragma omp simd`); log-probabilities and
 * responsibilities are kept as lp[k * nb + i].
 *
 * exp() and log() are our own vectorisable versions (Cody-Waite range
 * reduction and a polynomial for exp; the FreeBSD/musl log kernel for log):
 * libm's scalar calls cost more than all the arithmetic of a small-D sample.
 * Accuracy: within 2 ulp of libm over the ranges used (tests compare).
 *
 * The entry points are compiled once per instruction set (AVX-512, AVX2 with
 * FMA, baseline x86-64) and picked at load time, so one build runs everywhere
 * and uses the widest vectors the machine has: by target_clones (ifunc; GCC
 * >= 12 on x86-64 Linux/glibc), or on other x86-64 GCC/clang targets by
 * __builtin_cpu_supports through function pointers (GM_ISA_FNPTR).
 * Elsewhere (aarch64, MSVC) they are compiled once, for the compiler's
 * target (GMMFAST_NATIVE=1 in setup.py: -march=native).
 *
 * Two paths for the few routines written with GCC vector extensions
 * (GM(gram_upper)): the vector one (GCC, clang) and a plain-C one
 * (GM_PORTABLE: loops under `#pragma omp simd`), which compilers without
 * the extensions (MSVC) get, and which GMMFAST_PORTABLE=1 in setup.py
 * selects for testing. Everything compiler-specific is in
 * gmmfast/_simd_compat.h.
 */
#ifndef GMMFAST_SIMD_H
#define GMMFAST_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- compat: gmmfast/_simd_compat.h ---------------------------------- */
#include "_simd_compat.h"

/* GM_SMALL_D_MAX and gm_template_d(): generated from the kernel-path table
 * (gmmfast/_dispatch.py) by tools/gen_simd_full.py. */
#include "_simd_sizes.h"

typedef union { double d; int64_t i; uint64_t u; } gm_b64;
typedef union { float f; int32_t i; uint32_t u; } gm_b32;

/* ---- exp / log, double ------------------------------------------------ */

GM_INLINE double gm_exp_d(double x)
{
    /* exp(x) = 2^n e^r, n = round(x / ln 2), |r| <= ln2 / 2 */
    const double big = 6755399441055744.0; /* 0x1.8p52: rounds to integer */
    double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
    double kd = xc * 1.4426950408889634 + big;
    gm_b64 u; u.d = kd;
    double n = kd - big;
    double r = xc - n * 6.93147180369123816490e-01;
    r = r - n * 1.90821492927058770002e-10;
    /* Taylor to degree 13 on |r| <= 0.347: truncation < 1e-17 */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    gm_b64 s; s.u = (u.u - 0x4338000000000000ULL + 1023ULL) << 52;
    double y = p * s.d;
    return x < -708.0 ? 0.0 : y;
}

/* gm_log_d and gm_log_f are the FreeBSD/musl log and logf (fdlibm's
 * e_log.c and e_logf.c): their algorithm and coefficients Lg1..Lg7, under
 * this notice (also in LICENSE):
 *
 * ====================================================
 * Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
 *
 * Developed at SunPro, a Sun Microsystems, Inc. business.
 * Permission to use, copy, modify, and distribute this
 * software is freely granted, provided that this notice
 * is preserved.
 * ====================================================
 */
GM_INLINE double gm_log_d(double x)
{
    /* x > 0 and normal (callers guarantee it). musl/FreeBSD log. */
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    const double big = 6755399441055744.0;
    gm_b64 u; u.d = x;
    uint64_t hx = u.u + (0x3ff0000000000000ULL - 0x3fe6a09e667f3bcdULL);
    int64_t k = (int64_t)(hx >> 52) - 0x3ff;
    gm_b64 m; m.u = (hx & 0x000fffffffffffffULL) + 0x3fe6a09e667f3bcdULL;
    double f = m.d - 1.0;
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    double R = t2 + t1;
    gm_b64 kb; kb.i = k + 0x4338000000000000LL;
    double dk = kb.d - big;
    return s * (hfsq + R) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
}

/* log of a product of sums of exp()s (GM(normalize)): each factor is 0, NaN
 * or in [1, K], so the product is 0 (a dead row: log p = -inf), NaN, or
 * finite and at least 1. */
GM_INLINE double gm_log_product(double p)
{
    return p >= 1.0 && p < INFINITY ? gm_log_d(p) : (p == 0.0 ? -INFINITY : p);
}

/* ---- exp / log, float -------------------------------------------------- */

GM_INLINE float gm_exp_f(float x)
{
    const float big = 12582912.0f; /* 0x1.8p23 */
    float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float kd = xc * 1.44269504088896341f + big;
    gm_b32 u; u.f = kd;
    float n = kd - big;
    float r = xc - n * 6.93145752e-01f;
    r = r - n * 1.42860677e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    gm_b32 s; s.u = (u.u - 0x4B400000U + 127U) << 23;
    float y = p * s.f;
    return x < -87.0f ? 0.0f : y;
}

GM_INLINE float gm_log_f(float x)
{
    const float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
    const float Lg1 = 0xaaaaaa.0p-24f, Lg2 = 0xccce13.0p-25f,
                Lg3 = 0x91e9ee.0p-25f, Lg4 = 0xf89e26.0p-26f;
    const float big = 12582912.0f;
    gm_b32 u; u.f = x;
    uint32_t ix = u.u + (0x3f800000U - 0x3f3504f3U);
    int32_t k = (int32_t)(ix >> 23) - 0x7f;
    gm_b32 m; m.u = (ix & 0x007fffffU) + 0x3f3504f3U;
    float f = m.f - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float w = z * z;
    float t1 = w * (Lg2 + w * Lg4);
    float t2 = z * (Lg1 + w * Lg3);
    float R = t2 + t1;
    float hfsq = 0.5f * f * f;
    gm_b32 kb; kb.i = k + 0x4B400000;
    float dk = kb.f - big;
    return s * (hfsq + R) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
}

/* Python-visible checks of the above (vectorised loops, cloned). */
GM_CLONES static void gm_exp_array_d(const double* x, double* y, int64_t n)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = gm_exp_d(x[i]);
}
GM_CLONES static void gm_log_array_d(const double* x, double* y, int64_t n)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = gm_log_d(x[i]);
}
GM_CLONES static void gm_exp_array_f(const float* x, float* y, int64_t n)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = gm_exp_f(x[i]);
}
GM_CLONES static void gm_log_array_f(const float* x, float* y, int64_t n)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = gm_log_f(x[i]);
}

/* ---- the two dtypes (gmmfast/_simd_dtypes.h), once or once per ISA ------ */

#define GM_CAT3(a, b, c) a##b##c
#define GM_XCAT3(a, b, c) GM_CAT3(a, b, c)

#if GM_ISA_FNPTR
GM_TARGET_PUSH("avx512f")
#define GM_SFX _avx512f
#include "_simd_dtypes.h"
#undef GM_SFX
GM_TARGET_POP
GM_TARGET_PUSH(GM_TARGET_AVX2)
#define GM_SFX _avx2
#include "_simd_dtypes.h"
#undef GM_SFX
GM_TARGET_POP
#define GM_SFX _base
#include "_simd_dtypes.h"
#undef GM_SFX

#define GM_PICK(f) (gm_isa_level() == 2 ? f##_avx512f : gm_isa_level() == 1 ? f##_avx2 : f##_base)
#define scratch_size_d GM_PICK(scratch_size_d)
#define scratch_size_f GM_PICK(scratch_size_f)
#define block_d GM_PICK(block_d)
#define block_f GM_PICK(block_f)
#define block_stats_d GM_PICK(block_stats_d)
#define block_stats_f GM_PICK(block_stats_f)
#define normalize_block_d GM_PICK(normalize_block_d)
#define normalize_block_f GM_PICK(normalize_block_f)
#define rows_to_lp_d GM_PICK(rows_to_lp_d)
#define lp_full_rows_d GM_PICK(lp_full_rows_d)
#define lp_full_rows_f GM_PICK(lp_full_rows_f)
#define rows_to_lp_f GM_PICK(rows_to_lp_f)
#define tied_rows_to_lp_d GM_PICK(tied_rows_to_lp_d)
#define tied_rows_to_lp_f GM_PICK(tied_rows_to_lp_f)
#define tied_stats_rows_d GM_PICK(tied_stats_rows_d)
#define tied_stats_rows_f GM_PICK(tied_stats_rows_f)
#define scale_rows_d GM_PICK(scale_rows_d)
#define scale_rows_f GM_PICK(scale_rows_f)
#define gram_scratch_d GM_PICK(gram_scratch_d)
#define gram_scratch_f GM_PICK(gram_scratch_f)
#define stats_gram_d GM_PICK(stats_gram_d)
#define stats_gram_f GM_PICK(stats_gram_f)
#define gram_upper_d GM_PICK(gram_upper_d)
#define gram_upper_f GM_PICK(gram_upper_f)
#else
#include "_simd_dtypes.h"
#endif

#endif /* GMMFAST_SIMD_H */
