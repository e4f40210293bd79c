"""Dask arrays: EM over the chunks on a real LocalCluster (2 worker processes).

From the same start, the Dask fit equals the in-memory fit to 1e-10 (only
the order of the per-chunk sums differs); predictions are lazy Dask arrays
equal to the in-memory ones; initialisation reads a sample of rows, never the
whole array. The cluster is started once for the module.
"""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

dask = pytest.importorskip("dask", reason="the Dask tests need the 'dask' extra")
da = pytest.importorskip("dask.array", reason="the Dask tests need the 'dask' extra")
distributed = pytest.importorskip("distributed",
                                  reason="the Dask tests need the 'dask' extra")
from dask.callbacks import Callback  # noqa: E402

from gmmfast import GaussianMixture, _dask, _data, _stats  # noqa: E402

from conftest import COVARIANCE_TYPES, make_blobs, start_params  # noqa: E402

N_COMPONENTS = 3
TOL = 1e-10


@pytest.fixture(scope="module")
def client():
    """A real cluster: 2 worker processes, 1 thread each, no dashboard."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def blobs():
    X, centers = make_blobs(2_000, 3, N_COMPONENTS, seed=5)
    weights = np.random.default_rng(6).uniform(0.0, 3.0, X.shape[0])
    weights[::7] = 0.0  # zero weight drops a row
    return X, centers, weights


def _to_dask(X, row_chunks=(450, 450, 0, 450, 450, 200), col_chunks=(2, 1)):
    # uneven row chunks, an empty one, and features split (rechunked to whole
    # rows inside)
    return da.from_array(X, chunks=(row_chunks, col_chunks))


def _assert_same_fit(got, expected, tol):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "precisions_"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name),
                                   rtol=tol, atol=tol, err_msg=name)
        assert getattr(got, name).dtype == getattr(expected, name).dtype
    np.testing.assert_allclose(got.lower_bounds_, expected.lower_bounds_,
                               rtol=tol, atol=tol)
    assert got.n_iter_ == expected.n_iter_
    assert got.converged_ == expected.converged_


def _fit_quietly(estimator, X, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, sample_weight=sample_weight)


class RowsComputed(Callback):
    """Largest number of rows any task of the local scheduler produced."""

    def __init__(self):
        super().__init__()
        self.max_rows = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        for value in result if isinstance(result, tuple) else (result,):
            if isinstance(value, np.ndarray) and value.ndim >= 1:
                self.max_rows = max(self.max_rows, value.shape[0])


# ---------------------------------------------------------------------------
# Equality with the in-memory fit, on the cluster
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("weights", [None, "numpy", "dask"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_fit_equals_in_memory(client, blobs, covariance_type, weights):
    X, centers, sw = blobs
    sw = None if weights is None else sw
    # persisted on the workers, as one would a dataset used every iteration
    sw_dask = {None: None, "numpy": sw,
               "dask": None if sw is None else da.from_array(sw, chunks=600).persist()
               }[weights]
    kwargs = dict(covariance_type=covariance_type, tol=1e-12, max_iter=8,
                  **start_params(covariance_type, centers))
    expected = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), X, sw)
    got = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), _to_dask(X).persist(),
                       sw_dask)
    _assert_same_fit(got, expected, TOL)


def test_dask_fit_float32_stays_float32(client, blobs):
    X, centers, _ = blobs
    X32 = X.astype(np.float32)
    kwargs = dict(covariance_type="full", tol=0.0, max_iter=5,
                  **start_params("full", centers))
    expected = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), X32)
    got = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), _to_dask(X32))
    assert got.means_.dtype == np.float32
    _assert_same_fit(got, expected, 1e-5)


def test_dask_fit_many_features_blas_path(client):
    # D >= 16 takes the kernels' BLAS path (BLAS held to one thread per task)
    X, centers = make_blobs(1_200, 16, 2, seed=8)
    kwargs = dict(covariance_type="full", tol=0.0, max_iter=4,
                  **start_params("full", centers))
    expected = _fit_quietly(GaussianMixture(2, **kwargs), X)
    got = _fit_quietly(GaussianMixture(2, **kwargs),
                       da.from_array(X, chunks=(500, 16)))
    _assert_same_fit(got, expected, TOL)


def test_dask_kmeans_init_on_whole_small_array_matches(client, blobs):
    # fewer rows than the sample size: the sample is the whole array, so the
    # k-means start, hence the whole fit, is the in-memory one
    X, _, sw = blobs
    kwargs = dict(covariance_type="diag", random_state=0, n_init=1, max_iter=6)
    expected = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), X, sw)
    got = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), _to_dask(X), sw)
    _assert_same_fit(got, expected, 1e-8)
    # n_init=2 here gives two starts that reach the same optimum (a permutation
    # of each other): which one wins is decided by the last bit of the lower
    # bound, which summation order changes; the bound itself must agree
    kwargs["n_init"] = 2
    expected = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), X, sw)
    got = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), _to_dask(X), sw)
    assert got.lower_bound_ == pytest.approx(expected.lower_bound_, rel=1e-12)
    np.testing.assert_allclose(np.sort(got.weights_), np.sort(expected.weights_), rtol=1e-8)


# ---------------------------------------------------------------------------
# Lazy predictions
# ---------------------------------------------------------------------------

def test_predictions_are_lazy_dask_arrays(client, blobs, covariance_type):
    X, centers, sw = blobs
    gm = _fit_quietly(GaussianMixture(N_COMPONENTS, covariance_type=covariance_type,
                                      max_iter=5, **start_params(covariance_type, centers)),
                      X)
    Xd = _to_dask(X)
    for method, expected in (("predict", gm.predict(X)),
                             ("predict_proba", gm.predict_proba(X)),
                             ("score_samples", gm.score_samples(X))):
        lazy = getattr(gm, method)(Xd)
        assert isinstance(lazy, da.Array), method
        assert lazy.shape == expected.shape and lazy.dtype == expected.dtype, method
        assert lazy.chunks[0] == Xd.chunks[0], method
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12, atol=1e-12,
                                   err_msg=method)
    score = gm.score(Xd)
    assert isinstance(score, float)
    assert score == pytest.approx(gm.score(X), rel=1e-12)
    assert gm.score(Xd, sample_weight=da.from_array(sw, chunks=333)) == \
        pytest.approx(gm.score(X, sample_weight=sw), rel=1e-12)
    assert gm.score(Xd, sample_weight=sw) == \
        pytest.approx(gm.score(X, sample_weight=sw), rel=1e-12)
    assert gm.bic(Xd) == pytest.approx(gm.bic(X), rel=1e-12)
    assert gm.aic(Xd) == pytest.approx(gm.aic(X), rel=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_predict_returns_lazy_labels(client, blobs):
    X, centers, _ = blobs
    kwargs = dict(covariance_type="tied", max_iter=5, **start_params("tied", centers))
    expected = GaussianMixture(N_COMPONENTS, **kwargs).fit_predict(X)
    labels = GaussianMixture(N_COMPONENTS, **kwargs).fit_predict(_to_dask(X))
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), expected)


def _poisoned(n_samples, n_features, chunk):
    """A Dask array whose chunks raise when computed."""
    def boom(block_info=None):
        raise RuntimeError("chunk computed")
    return da.map_blocks(boom, chunks=((chunk,) * (n_samples // chunk), (n_features,)),
                         dtype=np.float64, meta=np.empty((0, 0)))


def test_predictions_do_not_compute(blobs):
    X, centers, _ = blobs
    gm = GaussianMixture(N_COMPONENTS, max_iter=2, **start_params("full", centers))
    _fit_quietly(gm, X)
    Xd = _poisoned(1_000, 3, 250)
    with dask.config.set(scheduler="sync"):
        lazy = [gm.predict(Xd), gm.predict_proba(Xd), gm.score_samples(Xd)]
        for out in lazy:
            with pytest.raises(RuntimeError, match="chunk computed"):
                out.compute()


# ---------------------------------------------------------------------------
# Initialisation on a sample; what travels
# ---------------------------------------------------------------------------

def test_init_sample_size_rule():
    assert _dask.init_sample_size(500, 3) == 500
    assert _dask.init_sample_size(10**8, 3) == 10_000
    assert _dask.init_sample_size(10**8, 500) == 50_000
    assert _dask.init_sample_size(20_000, 500) == 20_000


@pytest.mark.parametrize("n_samples,n_sample", [(50, 50), (30_000, 10_000),
                                                (10**9, 10_000)])
def test_sample_indices_distinct_sorted_seeded(n_samples, n_sample):
    idx = _dask.sample_indices(n_samples, n_sample, np.random.RandomState(0))
    assert idx.shape == (n_sample,) and idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < n_samples
    again = _dask.sample_indices(n_samples, n_sample, np.random.RandomState(0))
    np.testing.assert_array_equal(idx, again)
    if n_sample < n_samples:
        other = _dask.sample_indices(n_samples, n_sample, np.random.RandomState(1))
        assert not np.array_equal(idx, other)
        # uniform: the sample's mean position is near the middle
        assert abs(idx.mean() / n_samples - 0.5) < 0.02


def test_init_never_computes_the_whole_array():
    n_samples, chunk = 60_000, 5_000
    X = da.random.default_rng(0).normal(size=(n_samples, 2), chunks=(chunk, 2))
    weights = da.random.default_rng(1).uniform(size=n_samples, chunks=chunk)
    # the instrument sees a whole-array compute ...
    with dask.config.set(scheduler="sync"), RowsComputed() as rows:
        X.compute()
    assert rows.max_rows == n_samples
    # ... and none during a k-means-initialised, weighted fit (the k-means
    # start streams over the chunks; tied: the mean and the scatter passes
    # too), nor with a start on the sample ('random')
    gm = GaussianMixture(N_COMPONENTS, covariance_type="tied", max_iter=2,
                         random_state=0)
    with dask.config.set(scheduler="sync"), RowsComputed() as rows:
        _fit_quietly(gm, X, weights)
    assert rows.max_rows == chunk
    assert gm.n_iter_ == 2
    gm = GaussianMixture(N_COMPONENTS, covariance_type="tied", max_iter=2,
                         random_state=0, init_params="random")
    with dask.config.set(scheduler="sync"), RowsComputed() as rows:
        _fit_quietly(gm, X, weights)
    assert rows.max_rows == _dask.init_sample_size(n_samples, N_COMPONENTS) == 10_000


def test_sample_carries_weights_and_is_drawn_once():
    X_np = np.arange(60_000, dtype=np.float64).reshape(30_000, 2)
    sw_np = np.arange(30_000, dtype=np.float64)
    X = da.from_array(X_np, chunks=(7_000, 2))
    sw = da.from_array(sw_np, chunks=7_000)
    data = _dask.DaskData(X, sw, "full", N_COMPONENTS, np.random.RandomState(0),
                          n_threads=1)
    with dask.config.set(scheduler="sync"):
        sample = data.init_data()
        assert sample.dtype == np.float64 and data._sample is None  # not drawn yet
        rows = sample.X  # first read draws
        assert rows.shape == (10_000, 2)
        idx = (rows[:, 0] // 2).astype(np.int64)
        np.testing.assert_array_equal(rows, X_np[idx])
        np.testing.assert_array_equal(sample.sample_weight, sw_np[idx])
        assert data.init_data().X is rows  # reused by every n_init run
    assert data.worker_cfg.n_threads == 1


def test_no_sample_when_all_inits_given(blobs, monkeypatch):
    X, centers, _ = blobs

    def no_draw(self):
        raise AssertionError("sample drawn")

    monkeypatch.setattr(_dask.DaskData, "draw_sample", no_draw)
    start = start_params("full", centers)
    with dask.config.set(scheduler="sync"):
        _fit_quietly(GaussianMixture(N_COMPONENTS, max_iter=2, **start), _to_dask(X))
        # the negative control: a missing init needs the sample ('random'; the
        # default 'kmeans' streams over the chunks and draws none)
        del start["precisions_init"]
        _fit_quietly(GaussianMixture(N_COMPONENTS, max_iter=2, **start), _to_dask(X))
        with pytest.raises(AssertionError, match="sample drawn"):
            _fit_quietly(GaussianMixture(N_COMPONENTS, max_iter=2, init_params="random",
                                         **start), _to_dask(X))


def test_parameters_are_one_node_per_iteration():
    # K x D x D parameters enter the graph once, not once per chunk task
    n_components, n_features, n_chunks = 4, 32, 20
    X = da.zeros((n_chunks * 100, n_features), chunks=(100, n_features))
    X_np, centers = make_blobs(200, n_features, n_components)
    start = start_params("full", centers)
    params = _stats.GMMParams(start["weights_init"], start["means_init"],
                           np.linalg.inv(start["precisions_init"]),
                           start["precisions_init"])
    kp = _stats.KernelParams(params, "full", np.float64)
    param_bytes = kp.means.nbytes + kp.prec.nbytes
    data = _dask.DaskData(X, None, "full", n_components, np.random.RandomState(0))
    graph = dict(data.e_step_graph(kp).__dask_graph__())
    graph_bytes = len(pickle.dumps(graph))
    assert param_bytes < graph_bytes < 2 * param_bytes, (param_bytes, graph_bytes)


def test_mean_and_scatter_passes_equal_in_memory(blobs):
    X, _, sw = blobs
    with dask.config.set(scheduler="sync"):
        data = _dask.DaskData(_to_dask(X).rechunk({1: -1}),
                              da.from_array(sw, chunks=(_to_dask(X).chunks[0],)),
                              "tied", N_COMPONENTS, np.random.RandomState(0))
        ref = _data.ArrayData(X, sw, _stats.kernel_config(3, "tied", 1))
        np.testing.assert_allclose(data.mean, ref.mean, rtol=1e-13)
        np.testing.assert_allclose(data.T, ref.T, rtol=1e-12)
        assert data.total_weight == pytest.approx(ref.total_weight, rel=1e-14)


def test_sample_based_init_fits_large_array_well():
    # more rows than the sample: k-means on 10_000 rows, EM on all of them,
    # reaches the in-memory optimum
    X, _ = make_blobs(40_000, 2, N_COMPONENTS, seed=11)
    kwargs = dict(covariance_type="full", tol=1e-9, max_iter=300, random_state=0)
    expected = GaussianMixture(N_COMPONENTS, **kwargs).fit(X)
    with dask.config.set(scheduler="threads"):
        got = GaussianMixture(N_COMPONENTS, **kwargs).fit(
            da.from_array(X, chunks=(8_000, 2)))
    assert got.converged_
    assert got.lower_bound_ == pytest.approx(expected.lower_bound_, abs=1e-6)
    order = np.argsort(got.means_[:, 0]), np.argsort(expected.means_[:, 0])
    np.testing.assert_allclose(got.means_[order[0]], expected.means_[order[1]],
                               atol=1e-3)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_errors_for_bad_dask_input(blobs):
    X, centers, sw = blobs
    Xd = _to_dask(X)
    gm = GaussianMixture(N_COMPONENTS, max_iter=2, **start_params("full", centers))
    with pytest.raises(ValueError, match="2-dimensional Dask array.*ndim=3"):
        gm.fit(da.zeros((10, 3, 2), chunks=5))
    with pytest.raises(ValueError, match="unknown chunk sizes.*compute_chunk_sizes"):
        gm.fit(Xd[Xd[:, 0] > 0])
    with pytest.raises(ValueError, match="real numbers.*complex"):
        gm.fit(Xd.astype(np.complex128))
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        gm.fit(Xd[:1])
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        gm.fit(Xd, sample_weight=da.ones(5))
    with pytest.raises(ValueError, match="non-negative, got min value -1"):
        gm.fit(Xd, sample_weight=da.from_array(np.r_[-1.0, sw[1:]], chunks=500))
    with pytest.raises(ValueError, match="NaN or infinity"):
        gm.fit(Xd, sample_weight=da.from_array(np.r_[np.nan, sw[1:]], chunks=500))
    X_nan = X.copy()
    X_nan[1234, 1] = np.nan
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match="NaN or inf"):
        gm.fit(_to_dask(X_nan))
    assert not hasattr(gm, "means_")  # a failed fit leaves it unfitted

    with dask.config.set(scheduler="sync"):
        gm.fit(Xd.astype(np.int64))  # other real dtypes: float64, lazily
    assert gm.means_.dtype == np.float64 and gm.n_features_in_ == 3
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture "
                                         "is expecting 3 features"):
        gm.predict(Xd[:, :2])
    with pytest.raises(ValueError, match="2-dimensional"):
        gm.predict_proba(Xd[:, 0])


# ---------------------------------------------------------------------------
# The functional API; a memmap through Dask's local scheduler
# ---------------------------------------------------------------------------

def test_functional_fit_takes_dask_arrays(blobs):
    import gmmfast

    X, centers, sw = blobs
    start = start_params("spherical", centers)
    kwargs = dict(covariance_type="spherical", tol=0.0, max_iter=4, **start)
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        got = gmmfast.fit(_to_dask(X), N_COMPONENTS, sample_weight=sw, **kwargs)
        expected = gmmfast.fit(X, N_COMPONENTS, sample_weight=sw, **kwargs)
    np.testing.assert_allclose(got.means, expected.means, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(got.lower_bounds, expected.lower_bounds, rtol=TOL)


def test_memmap_through_dask_streams_the_start(tmp_path):
    # scikit-learn's k-means on a memmap would copy it whole; wrapped in a
    # Dask array on the local scheduler, the k-means start streams over the
    # chunks (views of the memmap) in block-sized buffers
    import tracemalloc

    X, _ = make_blobs(160_000, 8, N_COMPONENTS, seed=12)
    np.save(tmp_path / "x.npy", X)
    X = np.load(tmp_path / "x.npy", mmap_mode="r")
    Xd = da.from_array(X, chunks=(40_000, -1))
    with dask.config.set(scheduler="threads"):
        _fit_quietly(GaussianMixture(N_COMPONENTS, max_iter=1, random_state=0), Xd[:2000])
        tracemalloc.start()
        try:
            gm = _fit_quietly(GaussianMixture(N_COMPONENTS, max_iter=3, random_state=0), Xd)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert gm.n_iter_ == 3
    assert peak < X.nbytes // 3, (peak, X.nbytes)  # 10 MB of data


# ----------------------------------------------------------- faults

def _own_cluster():
    """A cluster of this test's own (2 worker processes behind nannies), so
    that killing a worker touches nothing else."""
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    memory_limit="1GiB", dashboard_address=None)


def _kill_one_worker(client):
    """SIGKILL one worker process of ``client``'s cluster (its nanny restarts
    it); returns the pid killed."""
    import os
    import signal

    pids = client.run(os.getpid)  # {worker address: pid}, processes we started
    pid = sorted(pids.values())[0]
    os.kill(pid, signal.SIGKILL)
    return pid


def test_worker_killed_during_fit_and_predict_gives_the_same_answers():
    """A worker process dies in the middle of a fit (its persisted chunks of X
    with it): Dask recomputes the lost chunks, and the fit ends with the
    parameters of the fit without the fault. The same for a prediction."""
    import threading

    import gmmfast

    X, centers = make_blobs(40_000, 3, N_COMPONENTS, seed=11)
    start = start_params("full", centers)
    kwargs = dict(tol=0.0, max_iter=12, **start)
    with _own_cluster() as cluster, distributed.Client(cluster) as client:
        Xd = da.from_array(X, chunks=(2_500, 3)).persist()
        distributed.wait(Xd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reference = gmmfast.fit(Xd, N_COMPONENTS, **kwargs)
        killed = {}

        def kill_soon(n_iter, lower_bound):
            if n_iter == 3:  # during the next iterations' passes over the chunks
                threading.Timer(0.05, lambda: killed.setdefault(
                    "pid", _kill_one_worker(client))).start()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            got = gmmfast.fit(Xd, N_COMPONENTS, callback=kill_soon, **kwargs)
        assert "pid" in killed
        for name in ("weights", "means", "covariances", "precisions_cholesky"):
            np.testing.assert_array_equal(getattr(got, name), getattr(reference, name))
        assert got.lower_bounds == reference.lower_bounds and got.n_iter == reference.n_iter

        gm = _fit_quietly(GaussianMixture(N_COMPONENTS, **kwargs), Xd)
        expected = gm.predict(X)
        client.wait_for_workers(2, timeout=60)
        labels = gm.predict(Xd)
        _kill_one_worker(client)  # its chunks of X are lost before the compute
        np.testing.assert_array_equal(labels.compute(), expected)
