/* A C-only check of gmmfast/_simd.h, for cross-compiled targets (.ci/run
 * builds it for aarch64 and runs it under qemu when available): exp/log
 * against libm and GM(gram_upper) against a plain triple loop, both dtypes.
 *
 *   cc -O2 -I gmmfast .ci/simd_smoke.c -lm && ./a.out
 */
#include <stdio.h>
#include <stdlib.h>
#include "_simd.h"

#define N 1000

static int check(const char* what, double err, double tol)
{
    printf("%-28s max rel err %.3g (tol %.3g) %s\n", what, err, tol,
           err <= tol ? "ok" : "FAIL");
    return err <= tol ? 0 : 1;
}

int main(void)
{
    static double xd[N], yd[N];
    static float xf[N], yf[N];
    double e1 = 0, e2 = 0, e3 = 0, e4 = 0;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        xd[i] = -700.0 + 1400.0 * i / (N - 1);
        xf[i] = (float)(-80.0 + 160.0 * i / (N - 1));
    }
    gm_exp_array_d(xd, yd, N);
    gm_exp_array_f(xf, yf, N);
    for (int i = 0; i < N; i++) {
        double r = exp(xd[i]);
        e1 = fmax(e1, fabs(yd[i] - r) / r);
        double rf = exp((double)xf[i]);
        e2 = fmax(e2, fabs(yf[i] - rf) / rf);
    }
    for (int i = 0; i < N; i++) {
        xd[i] = pow(10.0, -300.0 + 600.0 * i / (N - 1));
        xf[i] = (float)pow(10.0, -30.0 + 60.0 * i / (N - 1));
    }
    gm_log_array_d(xd, yd, N);
    gm_log_array_f(xf, yf, N);
    for (int i = 0; i < N; i++) {
        double r = log(xd[i]);
        e3 = fmax(e3, fabs(yd[i] - r) / fmax(fabs(r), 1.0));
        double rf = log((double)xf[i]);
        e4 = fmax(e4, fabs(yf[i] - rf) / fmax(fabs(rf), 1.0));
    }
    bad += check("exp float64", e1, 1e-15);
    bad += check("exp float32", e2, 1e-6);
    bad += check("log float64", e3, 1e-15);
    bad += check("log float32", e4, 1e-6);

    /* gram (dp, dp) upper := E E^T, E (dp, nb): a tail after the vectors */
    enum { DP = 8, NB = 37 };
    static double ed[DP * NB], gd[DP * DP];
    static float ef[DP * NB], gf[DP * DP];
    unsigned s = 12345;
    for (int i = 0; i < DP * NB; i++) {
        s = s * 1103515245u + 12345u;
        ed[i] = (double)(s >> 8) / (1 << 24) - 0.5;
        ef[i] = (float)ed[i];
    }
    gram_upper_d(ed, NB, DP, gd);
    gram_upper_f(ef, NB, DP, gf);
    double g1 = 0, g2 = 0;
    for (int j = 0; j < DP; j++)
        for (int l = j; l < DP; l++) {
            double r = 0;
            for (int i = 0; i < NB; i++) r += ed[j * NB + i] * ed[l * NB + i];
            g1 = fmax(g1, fabs(gd[j * DP + l] - r));
            g2 = fmax(g2, fabs(gf[j * DP + l] - r));
        }
    bad += check("gram_upper float64 (abs)", g1, 1e-13);
    bad += check("gram_upper float32 (abs)", g2, 1e-5);
    printf("portable build: %d, isa dispatch: \"%s\"\n", GM_PORTABLE_BUILD, GM_ISA_DISPATCH);
    return bad;
}
