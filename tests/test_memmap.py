"""Out-of-core on one machine: a numpy memmap is fitted in place.

Validation must not copy it, and the extra memory a fit allocates must be
bounded by the kernels' block buffers, not by n_samples: fitting a memmap
4x longer allocates no more (tracemalloc sees every numpy allocation; the
mapped file itself is not an allocation).
"""
import os
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from gmmfast import GaussianMixture, _source
from gmmfast._validation import check_sample_weight

from conftest import make_blobs, start_params

N_FEATURES = 8
N_COMPONENTS = 4


def _save_memmap(tmp_path, name, array):
    path = tmp_path / f"{name}.npy"
    np.save(path, array)
    return np.load(path, mmap_mode="r")


@pytest.fixture(scope="module")
def memmaps(tmp_path_factory):
    """Memmaps of n and 4n rows (float64 and float32) with their weights."""
    tmp_path = tmp_path_factory.mktemp("memmap")
    out = {}
    for n_samples in (40_000, 160_000):
        X, centers = make_blobs(n_samples, N_FEATURES, N_COMPONENTS, seed=3)
        weights = np.random.default_rng(4).uniform(0.0, 2.0, n_samples)
        out[n_samples] = dict(
            float64=_save_memmap(tmp_path, f"x64_{n_samples}", X),
            float32=_save_memmap(tmp_path, f"x32_{n_samples}", X.astype(np.float32)),
            weights=_save_memmap(tmp_path, f"w_{n_samples}", weights),
            centers=centers,
        )
    return out


def _peak_during(func):
    """(result, peak bytes traced while func runs)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_validation_does_not_copy_memmap(memmaps, dtype):
    X = memmaps[160_000][dtype]
    weights = memmaps[160_000]["weights"]
    assert isinstance(X, np.memmap) and not X.flags.writeable
    def validate():
        X_valid = _source.validate_X(X, GaussianMixture(N_COMPONENTS), ensure_min_samples=2)
        data = _source.make_source(X_valid, weights, covariance_type="full",
                                   n_components=N_COMPONENTS, n_threads=1)
        return data.X, data.sample_weight

    (X_valid, sw_valid), peak = _peak_during(validate)
    assert np.shares_memory(X_valid, X)
    assert np.shares_memory(sw_valid, weights)
    assert X_valid.dtype == np.dtype(dtype)
    # no n_samples-sized temporary either (the finiteness checks reduce)
    assert peak < weights.nbytes // 8, peak


def test_check_sample_weight_finite_without_temporaries():
    # a finite sum proves finiteness; an overflowing sum of finite weights
    # must not be mistaken for an infinite weight
    big = np.full(4, np.finfo(np.float64).max)
    assert check_sample_weight(big, 4, 2) is not None
    with pytest.raises(ValueError, match="NaN or infinity"):
        check_sample_weight(np.array([1.0, np.inf, 1.0]), 3, 2)
    with pytest.raises(ValueError, match="NaN or infinity"):
        check_sample_weight(np.array([1.0, np.nan, 1.0]), 3, 2)
    with pytest.raises(ValueError, match="non-negative, got min value -2"):
        check_sample_weight(np.array([1.0, -2.0, 1.0]), 3, 2)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_memmap_memory_does_not_grow_with_n_samples(memmaps, covariance_type,
                                                        dtype, weighted):
    peaks = {}
    for n_samples, data in memmaps.items():
        X = data[dtype]
        sw = data["weights"] if weighted else None
        # explicit start: no initialiser (k-means keeps labels) allocates
        gm = GaussianMixture(N_COMPONENTS, covariance_type=covariance_type,
                             tol=0.0, max_iter=3, n_threads=2,
                             **start_params(covariance_type, data["centers"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(X[:1000], sample_weight=None if sw is None else sw[:1000])  # imports, caches
            _, peaks[n_samples] = _peak_during(lambda: gm.fit(X, sample_weight=sw))
        assert gm.n_iter_ == 3
    small, large = peaks[40_000], peaks[160_000]
    # the block buffers (< 512 KiB), not the data (1.3 to 10 MB) ...
    assert small < 512 * 1024, peaks
    # ... and 4x the rows allocate no more (a few KiB of allocator noise)
    assert large <= small + 16 * 1024, peaks


def test_memmap_fit_equals_in_memory(memmaps, covariance_type):
    data = memmaps[40_000]
    X = data["float64"]
    sw = data["weights"]
    start = start_params(covariance_type, data["centers"])
    kwargs = dict(covariance_type=covariance_type, tol=0.0, max_iter=5, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        on_disk = GaussianMixture(N_COMPONENTS, **kwargs).fit(X, sample_weight=sw)
        in_memory = GaussianMixture(N_COMPONENTS, **kwargs).fit(
            np.array(X), sample_weight=np.array(sw))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(on_disk, name), getattr(in_memory, name))
    np.testing.assert_array_equal(on_disk.predict(X[:500]), in_memory.predict(X[:500]))


def test_file_truncated_under_a_running_fit_is_a_clear_error(tmp_path):
    """A memmapped file cut short between two iterations: OSError naming the
    file before the next pass reads a vanished page (a bus error would kill
    the process)."""
    import gmmfast

    X, centers = make_blobs(20_000, 3, N_COMPONENTS, seed=3)
    path = tmp_path / "x.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    start = dict(weights_init=np.full(N_COMPONENTS, 1 / N_COMPONENTS), means_init=centers,
                 precisions_init=np.tile(np.eye(3), (N_COMPONENTS, 1, 1)))

    def cut(n_iter, lower_bound):
        if n_iter == 2:
            os.truncate(path, 4096)

    with pytest.raises(OSError, match=r"x\.npy .*shrank to 4096 bytes during the fit"):
        gmmfast.fit(Xm, N_COMPONENTS, tol=0.0, max_iter=10, callback=cut, **start)
