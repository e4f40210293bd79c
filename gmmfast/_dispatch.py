"""Kernel paths: which block kernel serves a covariance type and a shape.

This module owns every threshold that chooses a kernel path, in one table.
The Python side reads it (``kernel_config``), the Cython wrappers check each
call against it (``check_path``: a path that nothing serves is an error, never
a silent no-op), and the code generator ``tools/gen_simd_full.py`` writes
``TEMPLATE_SIZES`` and ``SMALL_D_MAX`` into ``gmmfast/_simd_full.h`` (a test
checks the committed header is current). It imports nothing of the package
(and nothing else but numpy), so every layer may read it.

Paths (measured crossovers: README, "How it works"):

VECTOR      C register kernels (``_simd.h``) on structure-of-arrays blocks;
            every covariance type; full and tied up to SMALL_D_MAX features.
BLAS_TILES  the Mahalanobis term by BLAS trmm on row blocks (full at 17-64
            features on AVX-512: by the register kernel lp_full_any_wide
            instead, _simd_full.h); full statistics S2 by the register
            tiles of ``stats_gram`` (tied: first-order rows only); the tied
            scatter by syrk.
BLAS_SYRK   as BLAS_TILES, but full S2 by BLAS syrk, whose packing is
            amortised above GRAM_MAX_FEATURES features.
BLAS_GEMM   diag and spherical by matrix products: the log-densities of a
            block as one gemm of its centred rows [x'^2, x', 1] with the
            components' coefficients, the statistics as one gemm of the
            responsibilities with the same rows (gmmfast/_kernels.pyx);
            at shapes of at least GEMM_MIN (components, features, K * D).
"""
from dataclasses import dataclass

import numpy as np

# the kernels' covariance type codes
KERNEL_CODES = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}
KERNEL_NAMES = {code: name for name, code in KERNEL_CODES.items()}

VECTOR, BLAS_TILES, BLAS_SYRK, BLAS_GEMM = 0, 1, 2, 3
PATH_NAMES = {VECTOR: "vector", BLAS_TILES: "blas-tiles", BLAS_SYRK: "blas-syrk",
              BLAS_GEMM: "blas-gemm"}

# Full-covariance register kernels exist for these feature counts; a D between
# two of them runs the next one up with zero padding.
TEMPLATE_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16)
SMALL_D_MAX = TEMPLATE_SIZES[-1]
# full S2 by register tiles up to here, syrk above
GRAM_MAX_FEATURES = 384

# which paths each covariance type has: {name: (paths, vector_max_features)}
# (None: the vector path takes any number of features)
_SERVED = {
    "full": ((VECTOR, BLAS_TILES, BLAS_SYRK), SMALL_D_MAX),
    "tied": ((VECTOR, BLAS_TILES, BLAS_SYRK), SMALL_D_MAX),
    "diag": ((VECTOR, BLAS_GEMM), None),
    "spherical": ((VECTOR, BLAS_GEMM), None),
}
# diag and spherical take BLAS_GEMM at n_components >= K0, n_features >= D0
# and n_components * n_features >= KD0: {name: (K0, D0, KD0)}. Measured here
# (one E-step with statistics, alternated, 1 thread, float64 and float32):
# diag's vector kernel held its own below 64 components (D = 128, K = 16:
# gemm 1.06-1.15x its time; D = 32, K = 32: 0.9x) and at D = 2 (K = 1024:
# 1.13x, a gemm of inner size 5), gemm 0.84-0.9x at K = 128, D = 8 and
# K = 64, D = 16, and 0.5-0.7x at the many-component rows; spherical's gemm
# (inner size D + 2, one |x'|^2 a row for every component) gained from
# K * D = 256 (0.6-0.94x; K * D = 128: 0.83-1.12x; K * D <= 64: 1.3-2.2x).
GEMM_MIN = {"diag": (64, 8, 1024), "spherical": (1, 1, 256)}

# Rows per block (measured here, README "How it works"): the vectorised path
# keeps a block's work arrays in L1 at 120 float64 rows (240 float32: the same
# bytes); rows of 128 made the work arrays 4 KiB apart and slowed D = 16 by
# 20%. The BLAS path runs trmm and the scatter tiles best on 240 rows, fewer
# when one block would be more than ~2^28 multiply-adds (huge K * D^2), so
# that Ctrl-C, checked between OpenMP regions, still stops a fit within a
# fraction of a second. BLAS_GEMM's blocks of 256 rows: 128 rows were 6%
# slower at D = 128, K = 1024 float32 and 512 no faster over the
# many-component rows (their responsibilities, K x 256, are the largest
# work array: 1 MiB there).
VECTOR_CHUNK_BYTES = 960
BLAS_CHUNK = 240
BLOCK_WORK_MAX = 1 << 28
GEMM_CHUNK = 256


def choose_path(covariance_type, n_features, n_components=1):
    """The path for a covariance type and a shape."""
    paths, vector_max = _SERVED[covariance_type]
    if covariance_type in GEMM_MIN:
        k0, d0, kd0 = GEMM_MIN[covariance_type]
        if n_components >= k0 and n_features >= d0 and n_components * n_features >= kd0:
            return BLAS_GEMM
    if vector_max is None or n_features <= vector_max:
        return VECTOR
    return BLAS_TILES if n_features <= GRAM_MAX_FEATURES else BLAS_SYRK


def serves(path, covariance_type, n_features):
    """True when ``path`` has a kernel for this covariance type and shape."""
    paths, vector_max = _SERVED[covariance_type]
    if path not in paths:
        return False
    return not (path == VECTOR and vector_max is not None and n_features > vector_max)


def check_path(path, covariance_type, n_features):
    """Raise ValueError unless ``path`` serves this covariance type and shape."""
    if not serves(path, covariance_type, n_features):
        raise ValueError(
            f"no {PATH_NAMES.get(path, path)!r} kernel for covariance_type="
            f"{covariance_type!r} with {n_features} features; "
            f"choose_path gives {PATH_NAMES[choose_path(covariance_type, n_features)]!r}"
        )


@dataclass
class KernelConfig:
    """How the kernels walk the data: threads, rows per block, path."""

    n_threads: int
    chunk_size: int
    path: int

    @property
    def uses_blas(self):
        return self.path != VECTOR


def block_rows(path, n_features, n_components, dtype):
    """Rows per block for a path and shape."""
    if path == VECTOR:
        return VECTOR_CHUNK_BYTES // np.dtype(dtype).itemsize
    if path == BLAS_GEMM:
        return GEMM_CHUNK
    per_row = max(1, n_components) * n_features * n_features
    return max(16, min(BLAS_CHUNK, BLOCK_WORK_MAX // per_row))


def kernel_config(n_features, covariance_type, n_threads, n_components=1,
                  dtype=np.float64):
    """The KernelConfig for data of this shape; ``n_threads`` already resolved
    (``_threads.resolve_n_threads``)."""
    path = choose_path(covariance_type, n_features, n_components)
    return KernelConfig(int(n_threads), int(block_rows(path, n_features, n_components, dtype)),
                        path)
