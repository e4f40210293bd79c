"""Threads and signals: the kernels release the GIL, fits in several Python
threads at once give the same results as one after another, BLAS limits are
restored, and Ctrl-C stops a fit within a second leaving the estimator
unfitted or exactly as it was."""
import functools
import os
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

from gmmfast import GaussianMixture, _kernels, _stats, _threads

from conftest import make_blobs
from interrupt_child import interrupt

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
         "lower_bounds_", "n_iter_", "converged_")


def _jobs():
    """Four different fits: covariance types, dtypes, weights, initialisers."""
    jobs = []
    for i, (cov, dtype, init) in enumerate([("full", np.float64, "kmeans"),
                                            ("tied", np.float32, "k-means++"),
                                            ("diag", np.float64, "random"),
                                            ("spherical", np.float32, "random_from_data")]):
        X = make_blobs(10_000, 8, 3, seed=10 + i, dtype=dtype)[0]
        sw = np.random.default_rng(i).uniform(0.5, 2.0, len(X)) if i % 2 else None
        jobs.append((X, sw, dict(n_components=3, covariance_type=cov, init_params=init,
                                 random_state=i, max_iter=15, tol=0.0)))
    return jobs


def _run(job, n_threads):
    X, sw, params = job
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(n_threads=n_threads, **params).fit(X, sample_weight=sw)
    return {a: getattr(gm, a) for a in ATTRS}, gm.predict_proba(X[:500])


def _assert_bitwise_equal(a, b):
    (attrs_a, proba_a), (attrs_b, proba_b) = a, b
    for name in ATTRS:
        x, y = attrs_a[name], attrs_b[name]
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        else:
            assert x == y, name
    assert np.array_equal(proba_a, proba_b)


# warnings.catch_warnings (in _run) is not thread-safe: silence them here
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_threads", [1, None], ids=["n_threads=1", "n_threads=default"])
def test_concurrent_fits_equal_sequential_fits(n_threads):
    jobs = _jobs()
    sequential = [_run(job, n_threads) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda job: _run(job, n_threads), jobs))
    for a, b in zip(sequential, concurrent):
        _assert_bitwise_equal(a, b)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_estimator_predicting_from_many_threads():
    X = make_blobs(20_000, 4, 3, seed=3)[0]
    gm = GaussianMixture(3, random_state=0, n_threads=1).fit(X)
    ref = gm.predict_proba(X), gm.score_samples(X), gm.predict(X)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outs = list(pool.map(lambda _: (gm.predict_proba(X), gm.score_samples(X),
                                        gm.predict(X)), range(8)))
    for out in outs:
        for x, y in zip(out, ref):
            assert np.array_equal(x, y)


@pytest.mark.parametrize("kernel", ["e_step", "predict"])
def test_kernels_release_the_gil(kernel):
    """One kernel call over X as a single OpenMP region (one row block), in a
    background thread: the main thread keeps running Python meanwhile. A
    kernel holding the GIL would freeze it for the whole call."""
    X = make_blobs(400_000, 16, 4, seed=0)[0]
    # 12 components (the 4 centres three times): a call of ~0.1 s or more
    centers = np.tile(make_blobs(10, 16, 4, seed=0)[1], (3, 1))
    params = _stats.GMMParams(np.full(12, 1 / 12), centers, np.tile(np.eye(16), (12, 1, 1)),
                           np.tile(np.eye(16), (12, 1, 1)))
    kp = _stats.KernelParams(params, "full", X.dtype)
    cfg = _stats.kernel_config(16, "full", 1)
    cfg.chunk_size = len(X)  # one block, one region
    logp = np.empty(len(X))

    def call():
        if kernel == "e_step":
            _stats.e_step_stats(X, None, kp, cfg)
        else:
            _kernels.predict(X, kp.means, kp.prec, kp.lognorm, kp.center, kp.mproj,
                             kp.code, logp, None, None, cfg.chunk_size, cfg.n_threads,
                             cfg.path)

    ticks = []
    worker = threading.Thread(target=call)
    t0 = time.perf_counter()
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    t1 = time.perf_counter()
    worker.join()
    duration = t1 - t0
    assert duration > 0.05, "the kernel call is too short to tell"
    # Python ran in the middle of the call, not only at its edges
    middle = [t for t in ticks if t0 + 0.25 * duration < t < t1 - 0.25 * duration]
    assert len(middle) > 100, (len(ticks), len(middle), duration)


def _blas_threads():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info()
            if i["user_api"] == "blas"}


def test_blas_limit_reference_counting_across_threads():
    """Thread A enters, B enters, A leaves (still limited), B leaves (restored)."""
    with threadpool_limits(limits=2, user_api="blas"):
        outside = _blas_threads()
        assert set(outside.values()) == {2}
        a_in, b_in, a_out, b_out = (threading.Event() for _ in range(4))
        seen = {}

        def thread_a():
            with _threads.blas_single_thread():
                a_in.set()
                b_in.wait(10)
            seen["after A left"] = _blas_threads()
            a_out.set()

        def thread_b():
            a_in.wait(10)
            with _threads.blas_single_thread():
                b_in.set()
                a_out.wait(10)
                seen["inside B"] = _blas_threads()
            b_out.set()

        ta, tb = threading.Thread(target=thread_a), threading.Thread(target=thread_b)
        ta.start(), tb.start()
        ta.join(20), tb.join(20)
        assert b_out.is_set()
        assert set(seen["after A left"].values()) == {1}
        assert set(seen["inside B"].values()) == {1}
        assert _blas_threads() == outside
        assert _threads._blas_state["depth"] == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_blas_limits_restored_after_concurrent_fits():
    jobs = _jobs()
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        seen_during = set()
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen_during.update(_blas_threads().values())
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda job: _run(job, None), jobs * 2))
        stop.set()
        watcher.join()
        assert _blas_threads() == before
        assert 1 in seen_during  # the fits did hold BLAS to one thread
    assert _threads._blas_state["depth"] == 0


# ------------------------------------------------------------------ Ctrl-C

INTERRUPT_CASES = [
    # a first fit: left unfitted
    dict(n_samples=1_000_000, n_features=2, n_components=3, covariance_type="full",
         n_threads=1, refit="none"),
    # a refit (BLAS path, float32, 2 threads): left exactly as before
    dict(n_samples=100_000, n_features=32, n_components=4, covariance_type="full",
         dtype="float32", n_threads=2, refit="cold"),
    # a warm-started refit of a tied model
    dict(n_samples=200_000, n_features=16, n_components=4, covariance_type="tied",
         n_threads=2, refit="warm"),
    # during the k-means initialisation or the first iterations
    dict(n_samples=1_000_000, n_features=4, n_components=8, covariance_type="diag",
         n_threads=2, refit="none", init="kmeans"),
]


def test_ctrl_c_stops_fit_within_a_second():
    """Each case in a child process, SIGINT 1 s into the fit (two children at
    a time, to keep the test short)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda spec: interrupt(spec, delay=1.0), INTERRUPT_CASES))
    for spec, report in zip(INTERRUPT_CASES, reports):
        assert report["status"] == "interrupted", ("ended before the signal", spec)
        assert report["latency"] < 1.0, (spec, report)
        # it did run for about the delay before the signal
        assert report["t_sent"] - report["t_start"] > 0.9, (spec, report)
        assert report["fitted_before"] == (spec["refit"] != "none"), (spec, report)
        # unfitted, or exactly the previous fit: never half-updated
        assert report["unchanged"], (spec, report)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("kernel", ["e_step", "predict"])
def test_kernel_checks_for_signals_between_slices(kernel):
    """A SIGINT during one long kernel call interrupts the call itself (the
    kernels run PyErr_CheckSignals after each OpenMP region), not only the
    Python code after it."""
    rng = np.random.default_rng(0)
    d, k = 15, 512  # register kernels
    centers = rng.normal(size=(k, d))
    params = _stats.GMMParams(np.full(k, 1 / k), centers, np.tile(np.eye(d), (k, 1, 1)),
                              np.tile(np.eye(d), (k, 1, 1)))
    kp = _stats.KernelParams(params, "full", np.float64)
    cfg = _stats.kernel_config(d, "full", 1)

    def call(X):
        if kernel == "e_step":
            _stats.e_step_stats(X, None, kp, cfg)
        else:
            _kernels.predict(X, kp.means, kp.prec, kp.lognorm, kp.center, kp.mproj,
                             kp.code, np.empty(len(X)), None, None, cfg.chunk_size,
                             cfg.n_threads, cfg.path)

    # size one call to take about 3 s on this machine (measured, not assumed)
    probe = rng.normal(size=(5_000, d))
    t = time.perf_counter()
    call(probe)
    per_row = (time.perf_counter() - t) / len(probe)
    n = int(min(8_000_000, max(50_000, 3.0 / per_row)))
    X = rng.normal(size=(n, d))
    estimate = n * per_row
    if estimate < 0.8:
        pytest.skip(f"even {n} rows take only {estimate:.2f} s here: too fast to tell")
    call = functools.partial(call, X)

    def handler(signum, frame):
        raise _Stop

    sent = {}

    def send():
        sent["t"] = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(0.3, send)
    try:
        t0 = time.perf_counter()
        timer.start()
        with pytest.raises(_Stop):
            try:
                call()
            finally:
                t_caught = time.perf_counter()
            time.sleep(2.0)  # (a late signal would land here, and fail the test below)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert t_caught - sent["t"] < 0.5
    assert t_caught - t0 < 0.5 * estimate  # the call was cut short


def test_m_step_algebra_uses_the_fits_threads(monkeypatch):
    # beyond the compiled small shapes the M-step's factorisations run on the
    # data source's kernel threads during a fit, on one thread outside one
    from gmmfast import _covariance

    seen = []
    real = _kernels.lapack_cholesky_precisions

    def spy(stack, n_threads):
        seen.append(n_threads)
        return real(stack, n_threads)

    monkeypatch.setattr(_kernels, "lapack_cholesky_precisions", spy)
    X = make_blobs(4_000, 20, 3, seed=3)[0]
    fits = {}
    for n_threads in (1, 2):
        seen.clear()
        gm = GaussianMixture(3, random_state=0, n_threads=n_threads, max_iter=5).fit(X)
        assert seen and set(seen) == {_stats.kernel_config(
            20, "full", n_threads, 3, X.dtype, n_samples=len(X)).n_threads}
        fits[n_threads] = gm
    assert _threads.algebra_threads() == 1
    seen.clear()
    _covariance.get("full").precision_cholesky(fits[2].covariances_)
    assert seen == [1]
    with _threads.m_step_threads(3):
        assert _threads.algebra_threads() == 3
        with pytest.raises(RuntimeError):
            with _threads.m_step_threads(2):
                assert _threads.algebra_threads() == 2
                raise RuntimeError
        assert _threads.algebra_threads() == 3
        # per Python thread: another thread sees its own count (1)
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(_threads.algebra_threads).result() == 1
    assert _threads.algebra_threads() == 1
    # the thread count changes only the E-step's summation order
    for attr in ("means_", "covariances_", "lower_bound_"):
        np.testing.assert_allclose(getattr(fits[1], attr), getattr(fits[2], attr),
                                   rtol=1e-10, atol=1e-12)

