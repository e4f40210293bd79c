"""Small fits without fixed costs: the thread count follows the work, a
one-thread pass runs outside OpenMP, the BLAS limit and the parameter names
are looked up once. Each shortcut must give bitwise the results of the
general path, and must skip no check."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_info, threadpool_limits

from gmmfast import GaussianMixture, _kernels, _source, _stats, _threads
from gmmfast._dispatch import KernelConfig, choose_path

from conftest import make_blobs

TYPES = ("full", "tied", "diag", "spherical")
ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
         "lower_bounds_", "n_iter_", "converged_")


def _fit(X, n_threads, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(n_threads=n_threads, **params).fit(X)


def _assert_same_fit(a, b):
    for name in ATTRS:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        else:
            assert x == y, name


@pytest.fixture
def one_thread_region():
    """Run one-thread passes inside an OpenMP region, as the general path."""
    previous = _kernels._one_thread_region(True)
    yield
    _kernels._one_thread_region(previous)


def _kernel_outputs(X, sw, covariance_type, n_threads, chunk):
    """Every job of the block loop on X: E-step statistics and log-likelihood,
    predictions, statistics of given responsibilities, the scatter."""
    n_components, n_features = 3, X.shape[1]
    rng = np.random.default_rng(1)
    means = X[rng.choice(len(X), n_components, replace=False)].astype(np.float64)
    cov = {"full": np.tile(np.eye(n_features), (n_components, 1, 1)),
           "tied": np.eye(n_features), "diag": np.ones((n_components, n_features)),
           "spherical": np.ones(n_components)}[covariance_type] * 2.0
    params = _stats.GMMParams(np.full(n_components, 1 / n_components), means, cov,
                              1 / np.sqrt(cov) if covariance_type in ("diag", "spherical")
                              else np.linalg.cholesky(np.linalg.inv(cov)).swapaxes(-1, -2))
    kp = _stats.KernelParams(params, covariance_type, X.dtype)
    cfg = KernelConfig(n_threads, chunk, choose_path(covariance_type, n_features))
    (R, S1, S2), ll = _stats.e_step_stats(X, sw, kp, cfg)
    logp, resp, labels = _stats.predict_arrays(X, kp, cfg, logp=True, resp=True,
                                               labels=True)
    blocks = [(0, len(X), resp)]
    shift = np.ascontiguousarray(kp.shift, dtype=X.dtype)
    given = _stats.stats_from_resp(X, sw, blocks, shift, kp.center, kp.cov, cfg)
    # the scatter serves tied covariance: its path
    T = _stats.scatter(X, sw, kp.center,
                       KernelConfig(n_threads, chunk, choose_path("tied", n_features)))
    return [R, S1, S2, np.float64(ll), logp, resp, labels, *given, T]


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", [2, 24])  # the vector path, and BLAS for full/tied
def test_one_thread_pass_outside_openmp_is_bitwise_the_region(covariance_type, dtype,
                                                              n_features):
    """The shortcut (blocks on the calling thread) against the same blocks in
    a region of one thread: every output of every job identical. Chunk
    boundaries cut the rows unevenly (7 blocks of 37 rows and one of 20)."""
    X = make_blobs(279, n_features, 3, seed=4, dtype=dtype)[0]
    sw = np.random.default_rng(2).uniform(0.2, 3.0, len(X))
    for weights in (None, sw):
        fast = _kernel_outputs(X, weights, covariance_type, 1, 37)
        previous = _kernels._one_thread_region(True)
        try:
            general = _kernel_outputs(X, weights, covariance_type, 1, 37)
        finally:
            _kernels._one_thread_region(previous)
        for a, b in zip(fast, general):
            if a is None:
                assert b is None
                continue
            assert np.asarray(a).dtype == np.asarray(b).dtype
            assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_small_fit_shortcut_is_bitwise_the_general_path(covariance_type, one_thread_region):
    """A whole default fit (k-means start) of 200 rows: with the shortcut and
    through OpenMP regions of one thread, bitwise the same fit."""
    X = make_blobs(200, 2, 3, seed=5)[0]
    general = _fit(X, 1, n_components=3, covariance_type=covariance_type, random_state=0)
    _kernels._one_thread_region(False)
    fast = _fit(X, 1, n_components=3, covariance_type=covariance_type, random_state=0)
    _assert_same_fit(fast, general)


def test_thread_count_follows_the_work():
    # a few blocks: one thread; large passes: every thread asked for
    assert _threads.threads_for_work(2, 200, 2, 3) == 1
    assert _threads.threads_for_work(2, 2_000, 4, 3) == 1
    assert _threads.threads_for_work(2, 100_000, 2, 2) == 2
    assert _threads.threads_for_work(8, 200_000, 16, 8) == 8
    assert _threads.threads_for_work(1, 10**7, 64, 64) == 1
    # one more thread per MIN_WORK_PER_THREAD of work, never below 1
    per_row = 3 * (4 + 8) + 8
    rows = -(-_threads.MIN_WORK_PER_THREAD // per_row)
    assert _threads.threads_for_work(4, rows - 1, 2, 3) == 1
    assert _threads.threads_for_work(4, 2 * rows, 2, 3) == 2
    assert _threads.threads_for_work(4, 0, 2, 3) == 1
    # the data source of a fit reads the rule
    small = _source.make_source(np.zeros((200, 2)), None, covariance_type="full",
                                n_components=3, n_threads=2)
    large = _source.make_source(np.zeros((200_000, 16)), None, covariance_type="full",
                                n_components=8, n_threads=2)
    assert small.cfg.n_threads == 1
    assert large.cfg.n_threads == 2


@pytest.mark.parametrize("covariance_type", TYPES)
def test_small_fit_on_two_threads_is_the_one_thread_fit(covariance_type):
    """Too little work for two threads: n_threads=2 runs on one, and gives
    bitwise the one-thread fit (reproducible for given data and n_threads)."""
    X = make_blobs(300, 3, 3, seed=6)[0]
    one = _fit(X, 1, n_components=3, covariance_type=covariance_type, random_state=1)
    two = _fit(X, 2, n_components=3, covariance_type=covariance_type, random_state=1)
    _assert_same_fit(one, two)


# ---------------------------------------------------------- no check skipped

def test_small_fits_still_check_their_input():
    X = make_blobs(200, 2, 3, seed=7)[0]
    gm = GaussianMixture(3, random_state=0).fit(X)  # a fit first: nothing cached
    bad = X.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        GaussianMixture(3, random_state=0).fit(bad)
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        GaussianMixture(3).fit(X, sample_weight=np.r_[-1.0, np.ones(199)])
    with pytest.raises(ValueError, match="Expected n_samples >= n_components"):
        GaussianMixture(3).fit(X[:2])
    # parameters are checked on every fit, also after set_params on a fitted model
    for name, value in (("n_components", 0), ("n_components", True), ("tol", -1.0),
                        ("covariance_type", "ful")):
        gm.set_params(**{name: value})
        with pytest.raises(InvalidParameterError, match=name):
            gm.fit(X)
        gm.set_params(n_components=3, tol=1e-3, covariance_type="full")
    gm.fit(X)
    # a model fitted on float64 data predicting NaN still says so
    with pytest.raises(ValueError, match="Input X contains NaN"):
        gm.predict(bad)


def test_parameter_names_are_per_class():
    """The names read once per class: a subclass with other parameters has
    its own, and get_params/clone see every one."""
    from sklearn.base import clone

    class WithExtra(GaussianMixture):
        def __init__(self, n_components=1, *, extra=2.0, covariance_type="full"):
            super().__init__(n_components, covariance_type=covariance_type)
            self.extra = extra

    GaussianMixture(2).get_params()
    assert WithExtra._get_param_names() == ["covariance_type", "extra", "n_components"]
    assert clone(WithExtra(3, extra=5.0)).get_params() == dict(
        covariance_type="full", extra=5.0, n_components=3)
    assert "n_threads" in GaussianMixture._get_param_names()


def _blas_threads():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info()
            if i["user_api"] == "blas"}


@pytest.mark.parametrize("outside", [1, 2])
def test_blas_limit_with_libraries_looked_up_once(outside):
    """Whether BLAS is on one thread already (nothing to set) or not: one
    thread inside, the caller's setting after, every time."""
    with threadpool_limits(limits=outside, user_api="blas"):
        before = _blas_threads()
        for _ in range(3):
            with _threads.blas_single_thread():
                assert set(_blas_threads().values()) == {1}
            assert _blas_threads() == before
    assert _threads._blas_state["depth"] == 0


def _state_equal(a, b):
    return all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
               for x, y in zip(a.get_state(), b.get_state()))


def test_pooled_random_state_is_a_fresh_one():
    # an int seed borrows a pooled RandomState and reseeds it: its state must
    # be RandomState(seed)'s exactly, even after a fit drew from it (normals
    # leave a cached Gaussian behind, which reseeding must clear); nested
    # fits borrow distinct ones
    from gmmfast._api import seeded_random_state

    with seeded_random_state(3) as rng:
        rng.standard_normal(3)  # leaves the Gaussian cache full
        first = rng
        with seeded_random_state(4) as inner:
            assert inner is not rng
            assert _state_equal(inner, np.random.RandomState(4))
    with seeded_random_state(5) as rng:
        assert _state_equal(rng, np.random.RandomState(5))
        assert np.array_equal(rng.standard_normal(5),
                              np.random.RandomState(5).standard_normal(5))
    assert first in (rng, inner)  # handed back and reused
    given = np.random.RandomState(0)
    with seeded_random_state(given) as rng:
        assert rng is given
    with seeded_random_state(None) as rng:
        assert rng is np.random.mtrand._rand


def test_fits_with_one_seed_repeat_exactly():
    # consecutive fits reuse the pooled generator: each must start afresh
    X, _ = make_blobs(300, 2, 3, seed=4)
    a = _fit(X, 1, n_components=3, random_state=7, init_params="random")
    b = _fit(X, 1, n_components=3, random_state=7, init_params="random")
    _assert_same_fit(a, b)


def _kernel_params(X, covariance_type, n_components, seed):
    rng = np.random.default_rng(seed)
    n_features = X.shape[1]
    means = X[rng.choice(len(X), n_components, replace=False)].astype(np.float64)
    scale = rng.uniform(1.0, 3.0, n_components)
    cov = {"full": np.eye(n_features) * scale[:, None, None],
           "tied": np.eye(n_features) * scale[0], "diag": np.outer(scale, np.ones(n_features)),
           "spherical": scale}[covariance_type]
    params = _stats.GMMParams(np.full(n_components, 1 / n_components), means, cov,
                              1 / np.sqrt(cov) if covariance_type in ("diag", "spherical")
                              else np.linalg.cholesky(np.linalg.inv(cov)).swapaxes(-1, -2))
    return _stats.KernelParams(params, covariance_type, X.dtype)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_kept_accumulators_give_fresh_statistics_never_shared(covariance_type, n_threads,
                                                              monkeypatch):
    """The E-step's kept accumulators (_stats.stat_slabs, every size kept
    here): each pass gives bitwise the statistics of fresh ones (a pass that
    did not zero them would add the last pass's in), and what a pass
    returned survives the next (on one thread the sums are the slabs' rows:
    returned as views, the next pass would overwrite them)."""
    monkeypatch.setattr(_stats, "KEEP_SLAB_BYTES", 0)
    X, _ = make_blobs(600, 5, 3, seed=0)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, len(X))
    cfg = KernelConfig(n_threads, 128, choose_path(covariance_type, X.shape[1]))
    keep = {}
    first_kp, second_kp = (_kernel_params(X, covariance_type, 3, seed) for seed in (0, 1))
    first, ll_first = _stats.e_step_stats(X, sw, first_kp, cfg, keep=keep)
    assert keep, "nothing was kept"
    saved = [None if s is None else s.copy() for s in first]
    second, ll_second = _stats.e_step_stats(X, sw, second_kp, cfg, keep=keep)
    for kp, (stats, ll) in ((first_kp, (saved, ll_first)), (second_kp, (second, ll_second))):
        fresh, ll_fresh = _stats.e_step_stats(X, sw, kp, cfg)
        assert ll == ll_fresh
        for a, b in zip(stats, fresh):
            assert (a is None and b is None) or np.array_equal(a, b)
    for a, b in zip(first, saved):
        assert (a is None and b is None) or np.array_equal(a, b)
    slabs = next(iter(keep.values()))
    for s in second:
        assert s is None or not any(np.may_share_memory(s, slab) for slab in slabs)


def test_large_accumulators_are_kept_for_the_fit_and_change_no_result(monkeypatch):
    """At K = 3, D = 80 (150 KiB of slabs a thread) a fit keeps its
    accumulators, and gives bitwise the fit that allocates them afresh."""
    X, _ = make_blobs(400, 80, 3, seed=1)
    kept = []
    real = _stats.stat_slabs

    def spy(keep, *args):
        out = real(keep, *args)
        kept.append((out[1], out[0][2]))
        return out

    monkeypatch.setattr(_stats, "stat_slabs", spy)
    params = dict(n_components=3, covariance_type="full", random_state=0, max_iter=5, tol=0.0)
    a = _fit(X, 1, **params)
    # every E-step's: the first pass allocates them, the other four reuse them
    assert len(kept) == 5 and all(k and s2 is kept[0][1] for k, s2 in kept)
    monkeypatch.setattr(_stats, "KEEP_SLAB_BYTES", 1 << 62)
    _assert_same_fit(a, _fit(X, 1, **params))


def test_accumulators_beyond_the_cap_are_not_kept(monkeypatch):
    """Above KEEP_SLAB_MAX_BYTES nothing is kept (a pass's work dwarfs its
    page faults; kept through the M-step they would raise the peak)."""
    X, _ = make_blobs(400, 80, 3, seed=1)
    kept = []
    real = _stats.stat_slabs

    def spy(keep, *args):
        out = real(keep, *args)
        kept.append(out[1])
        return out

    monkeypatch.setattr(_stats, "stat_slabs", spy)
    monkeypatch.setattr(_stats, "KEEP_SLAB_MAX_BYTES", 1 << 17)  # below 150 KiB
    _fit(X, 1, n_components=3, random_state=0, max_iter=3, tol=0.0)
    assert kept == [False] * 3
