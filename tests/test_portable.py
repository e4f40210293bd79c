"""Whichever build of the kernels is installed (GCC or clang vector path,
GMMFAST_PORTABLE=1 plain-C path, debug) against the slow numpy reference of
tests/test_kernels.py, at block sizes that exercise the vector bodies and
their tails (tests/test_kernels.py uses 8-row blocks); and the generated
header gmmfast/_simd_full.h against its generator."""
import importlib.util
import pathlib

import numpy as np
import pytest

from gmmfast import _kernels

from conftest import COVARIANCE_TYPES
from test_kernels import RTOL, random_params, reference_stats, run_kernel

ROOT = pathlib.Path(__file__).resolve().parents[1]


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
    rng = np.random.default_rng(100 + n_features)
    n_components = 3
    params = random_params(covariance_type, n_components, n_features, rng)
    X = (rng.normal(size=(2 * chunk + 19, n_features)) * 1.5).astype(dtype)
    sw = rng.uniform(0, 3, X.shape[0])
    ref_params = params.astype(dtype).astype(np.float64)
    for use_blas in (False, True):
        (R, S1, S2), ll, kp = run_kernel(X, sw, params, covariance_type, 2, use_blas,
                                         chunk=chunk)
        (Rr, S1r, S2r), llr, _, _ = reference_stats(
            X, sw, ref_params, covariance_type, kp.center.astype(np.float64))
        # float32 sums over a block of 128 rows: a few times the 8-row error
        rtol = RTOL[dtype] * (30 if dtype == np.float32 else 1)
        np.testing.assert_allclose(R, Rr, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(S1, S1r, rtol=rtol, atol=rtol * max(1, np.abs(S1r).max()))
        if S2r is not None:
            np.testing.assert_allclose(S2, S2r, rtol=rtol, atol=rtol * np.abs(S2r).max())
        np.testing.assert_allclose(ll, llr, rtol=rtol)


def test_gram_tiles_below_and_above_crossover():
    """Full covariance on the BLAS path: S2 by the gram tiles (GM(gram_upper))
    and by syrk give the reference."""
    rng = np.random.default_rng(7)
    n_components, n_features = 2, 21
    params = random_params("full", n_components, n_features, rng)
    X = rng.normal(size=(300, n_features))
    (Rr, S1r, S2r), llr, _, _ = reference_stats(X, None, params, "full", X.mean(axis=0))
    try:
        for crossover in (1, 1000):  # syrk, tiles
            _kernels._set_gram_max_features(crossover)
            (R, S1, S2), ll, _ = run_kernel(X, None, params, "full", 1, True, chunk=64)
            np.testing.assert_allclose(S2, S2r, rtol=1e-11, atol=1e-11 * np.abs(S2r).max())
            np.testing.assert_allclose(ll, llr, rtol=1e-11)
    finally:
        _kernels._set_gram_max_features(384)


def _generator():
    for rel in ("gmmfast/_gen_simd_full.py", "tools/gen_simd_full.py"):
        path = ROOT / rel
        if path.exists():
            return path
    return None


def test_generated_header_is_current():
    gen, header = _generator(), ROOT / "gmmfast" / "_simd_full.h"
    if gen is None or not header.exists():
        pytest.skip("not a source checkout (generator or header missing)")
    spec = importlib.util.spec_from_file_location("gen_simd_full", gen)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate() == header.read_text(), (
        f"gmmfast/_simd_full.h is stale: run python {gen.relative_to(ROOT)}")
