/*
 * gmmfast/_simd_compat.h — every per-compiler spelling of the vectorised
 * kernels (gmmfast/_simd.h, the EM block kernel; gmmfast/_kmeans_simd.h,
 * the k-means++ seeding rows): forced inlining, pragmas, the runtime ISA
 * dispatch (target_clones, or __builtin_cpu_supports through function
 * pointers), the vector shuffles. Standard C headers first.
 */
#ifndef GMMFAST_SIMD_COMPAT_H
#define GMMFAST_SIMD_COMPAT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- compat: every per-compiler spelling lives here ------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define GM_GNUC_LIKE 1 /* GCC, clang, Apple clang, icx: GNU C extensions */
#else
#define GM_GNUC_LIKE 0 /* MSVC and others: standard C only */
#endif

/* GM_PORTABLE (setup.py: GMMFAST_PORTABLE=1) selects the plain-C path;
 * compilers without GCC vector extensions get it whatever was asked. */
#if !GM_GNUC_LIKE && !defined(GM_PORTABLE)
#define GM_PORTABLE 1
#endif
#ifdef GM_PORTABLE
#define GM_PORTABLE_BUILD 1
#else
#define GM_PORTABLE_BUILD 0
#endif

/* Forced inlining. */
#if defined(_MSC_VER) && !defined(__clang__)
#define GM_INLINE static __forceinline
#elif GM_GNUC_LIKE
#define GM_INLINE static inline __attribute__((always_inline))
#else
#define GM_INLINE static inline
#endif

/* Unroll an inner loop of constant trip count n (so that the loop around it
 * vectorises). clang: full unrolling, which runs before its vectoriser
 * (unroll_count(n) runs after it, and the outer loop stayed scalar). */
#define GM_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define GM_UNROLL(n) GM_PRAGMA(clang loop unroll(full))
#elif defined(__GNUC__) && __GNUC__ >= 8
#define GM_UNROLL(n) GM_PRAGMA(GCC unroll n)
#else
#define GM_UNROLL(n)
#endif

/* Runtime ISA dispatch, three levels: AVX-512F; AVX2 with FMA (x86-64-v3:
 * every x86-64 with AVX2 has FMA, and a clone for plain "avx2" had no fused
 * multiply-add, which halved the register kernels' arithmetic rate on
 * AVX2-only machines); baseline x86-64.
 * target_clones needs ifunc (ELF, glibc's loader) and, for the middle level,
 * GCC >= 12, whose resolver checks "arch=x86-64-v3" by CPU features
 * (clang 14's resolver checks it by CPU model, so clang takes the
 * function-pointer dispatch below); __GLIBC__ comes from <math.h> above.
 * The portable path is compiled once (as MSVC would). */
#if defined(__clang__)
#define GM_CLONES_COMPILER 0
#elif defined(__GNUC__)
#define GM_CLONES_COMPILER (__GNUC__ >= 12)
#else
#define GM_CLONES_COMPILER 0
#endif
#if GM_CLONES_COMPILER && defined(__x86_64__) && defined(__linux__) && \
    defined(__GLIBC__) && !defined(GMMFAST_NO_CLONES) && !defined(GM_PORTABLE) && \
    !(defined(GM_ISA_FNPTR) && GM_ISA_FNPTR)
#define GM_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#define GM_CLONES_BUILD 1
#else
#define GM_CLONES
#define GM_CLONES_BUILD 0
#endif

/* Elsewhere on x86-64 with GCC or clang (clang, macOS, musl, GCC < 12; or
 * -DGM_ISA_FNPTR=1 to test it): the kernels compiled once per instruction
 * set under target pragmas, the entry points' names standing for a choice
 * by __builtin_cpu_supports (GM_PICK below). */
#ifndef GM_ISA_FNPTR
#if !GM_CLONES_BUILD && GM_GNUC_LIKE && defined(__x86_64__) && \
    !defined(GMMFAST_NO_CLONES) && !defined(GM_PORTABLE)
#define GM_ISA_FNPTR 1
#else
#define GM_ISA_FNPTR 0
#endif
#endif
/* the middle level's target (GM_TARGET_PUSH(GM_TARGET_AVX2)) */
#define GM_TARGET_AVX2 "avx2,fma"
#if defined(__clang__)
#define GM_TARGET_PUSH(t) \
    GM_PRAGMA(clang attribute push(__attribute__((target(t))), apply_to = function))
#define GM_TARGET_POP GM_PRAGMA(clang attribute pop)
#elif defined(__GNUC__)
#define GM_TARGET_PUSH(t) GM_PRAGMA(GCC push_options) GM_PRAGMA(GCC target(t))
#define GM_TARGET_POP GM_PRAGMA(GCC pop_options)
#endif
#if GM_CLONES_BUILD
#define GM_ISA_DISPATCH "target_clones"
#elif GM_ISA_FNPTR
#define GM_ISA_DISPATCH "cpu_supports"
#else
#define GM_ISA_DISPATCH ""
#endif

/* Two-input vector shuffle with constant lane indices (the vector path
 * only): clang spells it __builtin_shufflevector with the indices as
 * arguments, GCC __builtin_shuffle with an index vector of type IV. */
#if defined(__clang__)
#define GM_SHUFFLE(IV, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#elif defined(__GNUC__)
#define GM_SHUFFLE(IV, a, b, ...) __builtin_shuffle(a, b, (IV){__VA_ARGS__})
#endif

/* ---- end of compat ------------------------------------------------------ */

/* 2: AVX-512F, 1: AVX2 and FMA, 0: baseline (and every build without the
 * per-ISA kernels); checked once (a race between threads at the first call
 * writes the same value). The function-pointer dispatch picks by it; with
 * target_clones it agrees with the clone the loader picked, and lets a
 * clone choose a routine written for one width (GM(gram_upper)). */
#if GM_ISA_FNPTR || GM_CLONES_BUILD
static inline int gm_isa_level(void)
{
    static volatile int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512f") ? 2 : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    }
    return level;
}
#else
static inline int gm_isa_level(void) { return 0; }
#endif

#endif /* GMMFAST_SIMD_COMPAT_H */
