"""Whichever build of the kernels is installed (GCC or clang vector path,
GMMFAST_PORTABLE=1 plain-C path, debug) against the slow numpy reference of
tests/test_kernels.py, at block sizes that exercise the vector bodies and
their tails (tests/test_kernels.py uses 8-row blocks). (tests/test_kernels.py checks the
generated headers against their generator.)"""

import numpy as np
import pytest

from gmmfast import _kernels
from gmmfast._dispatch import BLAS_SYRK, BLAS_TILES

from conftest import COVARIANCE_TYPES
from test_kernels import RTOL, check_every_path, random_params, reference_stats, run_kernel



def test_build_flags():
    portable = _kernels.portable_build()
    assert isinstance(portable, bool)
    # the plain-C path is compiled once, without per-ISA clones
    assert not (portable and _kernels.isa_dispatch())


# Template sizes of the register kernels (gram tiles from D = 5), the first
# sizes of the BLAS path (D = 17, 24), a BLAS size above the tiles' padding
# multiple (D = 37).
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", [1, 4, 5, 7, 12, 16, 17, 37])
@pytest.mark.parametrize("chunk", [37, 128])
def test_e_step_vector_blocks(covariance_type, dtype, n_features, chunk):
    # float32 sums over a block of 128 rows: a few times the 8-row error
    check_every_path(covariance_type, dtype, n_features, chunk, 2 * chunk + 19,
                     seed=100 + n_features,
                     rtol=RTOL[dtype] * (30 if dtype == np.float32 else 1))


def test_gram_tiles_and_syrk():
    """Full covariance on the BLAS path: S2 by the gram tiles (GM(gram_upper))
    and by syrk give the reference."""
    rng = np.random.default_rng(7)
    n_components, n_features = 2, 21
    params = random_params("full", n_components, n_features, rng)
    X = rng.normal(size=(300, n_features))
    (Rr, S1r, S2r), llr, _, _ = reference_stats(X, None, params, "full", X.mean(axis=0))
    for path in (BLAS_TILES, BLAS_SYRK):
        (R, S1, S2), ll, _ = run_kernel(X, None, params, "full", 1, path, chunk=64)
        np.testing.assert_allclose(S2, S2r, rtol=1e-11, atol=1e-11 * np.abs(S2r).max())
        np.testing.assert_allclose(ll, llr, rtol=1e-11)
