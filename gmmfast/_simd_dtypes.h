/*
 * gmmfast/_simd_dtypes.h — the kernels of _simd_impl.h for REAL = double
 * (names suffixed _d) and REAL = float (_f). Included by _simd.h once, or
 * once per instruction set with GM_SFX (a further suffix: _avx512f, _avx2,
 * _base) when the instruction set is picked through function pointers.
 */
#define REAL double
#define GM_IS_DOUBLE 1
#ifdef GM_SFX
#define GM(name) GM_XCAT3(name, _d, GM_SFX)
#else
#define GM(name) name##_d
#endif
#define GM_EXP gm_exp_d
#define GM_LOG gm_log_d
#define GM_SQRT sqrt
#include "_simd_impl.h"
#undef REAL
#undef GM_IS_DOUBLE
#undef GM
#undef GM_EXP
#undef GM_LOG
#undef GM_SQRT

#define REAL float
#define GM_IS_DOUBLE 0
#ifdef GM_SFX
#define GM(name) GM_XCAT3(name, _f, GM_SFX)
#else
#define GM(name) name##_f
#endif
#define GM_EXP gm_exp_f
#define GM_LOG gm_log_f
#define GM_SQRT sqrtf
#include "_simd_impl.h"
#undef REAL
#undef GM_IS_DOUBLE
#undef GM
#undef GM_EXP
#undef GM_LOG
#undef GM_SQRT

