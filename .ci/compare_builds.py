"""Fit the oracle data sets (tests/test_oracle.py) and save or compare the
fitted parameters, so that two builds of the kernels can be checked against
each other (.ci/run: the GMMFAST_PORTABLE=1 build against the vector build).

    python .ci/compare_builds.py save vector.npz
    python .ci/compare_builds.py compare vector.npz [--rtol 1e-12] [--dtype float64]

"compare" fits again with the installed build and checks every saved array
to rtol (relative to the array's largest magnitude); it prints the largest
relative difference per array and exits 1 on a mismatch.
"""
import argparse
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from conftest import COVARIANCE_TYPES, start_params  # noqa: E402
from test_oracle import DATASETS  # noqa: E402

import gmmfast  # noqa: E402
from gmmfast import GaussianMixture  # noqa: E402

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bound_")


def fits(dtypes):
    """Yield (key, array) for every data set, covariance type and dtype."""
    for name, make in DATASETS.items():
        X64 = make()
        n_components = 2 if name == "demo" else 3
        rng = np.random.default_rng(0)
        centers = X64[rng.choice(X64.shape[0], n_components, replace=False)]
        for dtype in dtypes:
            X = X64.astype(dtype)
            for cov in COVARIANCE_TYPES:
                kwargs = dict(n_components=n_components, covariance_type=cov,
                              max_iter=40, tol=1e-4,
                              reg_covar=1e-2 if name == "digits" else 1e-6,
                              **start_params(cov, centers, scale=X64.std()))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gm = GaussianMixture(**kwargs).fit(X)
                key = f"{name}/{np.dtype(dtype).name}/{cov}"
                yield key + "/n_iter_", np.asarray(gm.n_iter_)
                for attr in ATTRS:
                    yield f"{key}/{attr}", np.asarray(getattr(gm, attr), dtype=np.float64)
                yield key + "/score_samples", np.asarray(gm.score_samples(X[:500]), np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["save", "compare"])
    ap.add_argument("path")
    ap.add_argument("--rtol", type=float, default=1e-12)
    ap.add_argument("--dtype", action="append", choices=["float64", "float32"])
    args = ap.parse_args()
    dtypes = args.dtype or ["float64"]
    from gmmfast import _kernels
    portable = getattr(_kernels, "portable_build", lambda: False)()
    print(f"kernels: {_kernels.__file__} portable={portable} "
          f"openmp={_kernels.openmp_enabled()} dtypes={dtypes}")
    if args.mode == "save":
        np.savez(args.path, **dict(fits(dtypes)))
        print("saved", args.path)
        return 0
    ref = np.load(args.path)
    worst, bad = 0.0, []
    for key, a in fits(dtypes):
        b = ref[key]
        if key.endswith("n_iter_"):
            if int(a) != int(b):
                bad.append(f"{key}: {int(a)} != {int(b)}")
            continue
        scale = max(np.abs(b).max(), 1e-300)
        rel = float(np.abs(a - b).max() / scale)
        worst = max(worst, rel)
        if not rel <= args.rtol:
            bad.append(f"{key}: max rel diff {rel:.3g} > {args.rtol:g}")
    print(f"largest relative difference: {worst:.3g} (rtol {args.rtol:g})")
    for line in bad:
        print("MISMATCH", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
