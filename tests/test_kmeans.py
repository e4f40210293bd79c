"""The streamed k-means start (gmmfast/_kmeans.py) against scikit-learn.

scikit-learn's ``KMeans(n_clusters=K, n_init=1, random_state=s)`` and
``kmeans_plusplus`` are the oracle: the same seeds (indices exactly), the
same labels and iteration counts (exactly), centres and inertia to
summation rounding. Tolerances: a centre is a weighted mean of at most n
rows, each summation a recursive one in some order; two orders differ by at
most 2 (n - 1) u max|x| (u the unit roundoff of the accumulating dtype:
float64 for gmmfast, X's dtype for scikit-learn), the bound used below. A
wrong method (another seed, one Lloyd iteration more or less, the
unweighted tolerance with weights) moves a centre by far more: the cluster
spacing is of order 1.
"""
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from gmmfast import GaussianMixture, _kmeans

from conftest import make_blobs

U64 = np.finfo(np.float64).eps / 2
U32 = np.finfo(np.float32).eps / 2


def _data(n_samples, n_features, n_clusters, seed, dtype, offset=5.0):
    """Overlapping blobs off the origin (the centring matters)."""
    rng = np.random.default_rng(seed)
    centres = 3.0 / np.sqrt(n_features) * rng.normal(size=(n_clusters, n_features))
    X = rng.normal(size=(n_samples, n_features)) + centres[rng.integers(0, n_clusters,
                                                                        n_samples)]
    return np.ascontiguousarray(X + offset, dtype=dtype)


def _centre_tol(X):
    """Two summation orders of a mean of at most n rows: 2 (n - 1) u max|x|
    with u scikit-learn's accumulator (X's dtype); gmmfast's is float64."""
    u = U32 if X.dtype == np.float32 else U64
    return 2 * (X.shape[0] - 1) * (u + U64) * float(np.abs(X).max())


def _walker(X, sample_weight=None, n_threads=1, block=None, store=True):
    walker = _kmeans.ArrayBlocks(X, sample_weight, n_threads, block=block)
    # k-means++ keeps each row's closest distance for in-memory data; a
    # memmap (or Dask) recomputes it from the chosen centres
    walker.store_closest = store
    return walker


SHAPES = [(2000, 2, 3), (3000, 16, 8), (1500, 5, 20), (700, 1, 2)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_samples,n_features,n_clusters", SHAPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("store,n_threads", [(True, 1), (False, 1), (True, 2), (False, 2)])
def test_kmeans_plusplus_same_seeds(n_samples, n_features, n_clusters, seed, dtype,
                                    store, n_threads):
    X = _data(n_samples, n_features, n_clusters, seed, dtype)
    sk_centres, sk_idx = kmeans_plusplus(X, n_clusters, random_state=seed)
    # blocks of 97 rows: the cumulative sums cross many block boundaries
    walker = _walker(X, block=97, store=store, n_threads=n_threads)
    centres, idx = _kmeans.kmeans_plusplus(walker, n_clusters, np.random.RandomState(seed))
    np.testing.assert_array_equal(idx, sk_idx)
    np.testing.assert_array_equal(centres, sk_centres)


@pytest.mark.parametrize("n_local_trials", [1, 5, 11])
@pytest.mark.parametrize("store", [True, False])
def test_kmeans_plusplus_same_seeds_any_number_of_trials(n_local_trials, store):
    # the kernel's tiles: 4 lanes up to 4 centres, then 8-lane tiles, the
    # chosen centres and the candidates sharing a tile when not stored
    X = _data(1200, 3, 9, 4, np.float64)
    sk_centres, sk_idx = kmeans_plusplus(X, 9, random_state=4,
                                         n_local_trials=n_local_trials)
    centres, idx = _kmeans.kmeans_plusplus(_walker(X, block=89, store=store), 9,
                                           np.random.RandomState(4),
                                           n_local_trials=n_local_trials)
    np.testing.assert_array_equal(idx, sk_idx)
    np.testing.assert_array_equal(centres, sk_centres)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("store", [True, False])
def test_kmeans_plusplus_weighted_same_seeds(seed, dtype, store):
    X = _data(2500, 4, 6, seed, dtype)
    w = np.random.default_rng(seed).uniform(0.0, 3.0, X.shape[0])
    w[::7] = 0.0  # zero-weight rows are never drawn
    sk_centres, sk_idx = kmeans_plusplus(X, 6, random_state=seed, sample_weight=w)
    centres, idx = _kmeans.kmeans_plusplus(_walker(X, w, block=211, store=store), 6,
                                           np.random.RandomState(seed))
    np.testing.assert_array_equal(idx, sk_idx)
    assert np.all(w[idx] > 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_samples,n_features,n_clusters", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("block", [331, None])  # None: the Lloyd loop in the kernel
def test_kmeans_equals_sklearn(n_samples, n_features, n_clusters, seed, dtype, n_threads,
                               block):
    X = _data(n_samples, n_features, n_clusters, seed, dtype)
    sk = KMeans(n_clusters, n_init=1, random_state=seed).fit(X)
    km = _kmeans.kmeans(_walker(X, n_threads=n_threads, block=block), n_clusters,
                        np.random.RandomState(seed))
    assert km.n_iter == sk.n_iter_
    assert km.centres.dtype == X.dtype
    np.testing.assert_allclose(km.centres, sk.cluster_centers_, rtol=0,
                               atol=_centre_tol(X))
    np.testing.assert_array_equal(km.labels(X), sk.labels_)
    u = U32 if dtype == np.float32 else U64
    np.testing.assert_allclose(km.inertia, sk.inertia_, rtol=4 * n_samples * u)


def test_threads_and_blocks():
    # a thread count gives bitwise the same result every time; 1 and 2
    # threads, and other blocks, the same to rounding
    X = _data(5000, 6, 5, 0, np.float64)
    one = _kmeans.kmeans(_walker(X, n_threads=1, block=256), 5, np.random.RandomState(0))
    two = _kmeans.kmeans(_walker(X, n_threads=2, block=256), 5, np.random.RandomState(0))
    again = _kmeans.kmeans(_walker(X, n_threads=2, block=256), 5, np.random.RandomState(0))
    np.testing.assert_array_equal(two.centres, again.centres)
    assert one.n_iter == two.n_iter
    np.testing.assert_allclose(two.centres, one.centres, rtol=0, atol=_centre_tol(X))
    other = _kmeans.kmeans(_walker(X, block=4999), 5, np.random.RandomState(0))
    np.testing.assert_allclose(other.centres, one.centres, rtol=0, atol=_centre_tol(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_samples", [1, 255, 256, 257, 1000])
@pytest.mark.parametrize("n_features,n_clusters",
                         [(1, 1), (2, 3), (16, 8), (5, 17), (8, 4), (9, 4), (2, 9), (3, 16)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_lloyd_kernel_against_numpy(dtype, n_samples, n_features, n_clusters, weighted,
                                    n_threads):
    # the fused kernel's pass against the numpy reference, at the OpenMP
    # block size (256) and around it: the same labels (hence counts), sums
    # and weights to float64 summation rounding, inertia likewise
    X = _data(n_samples, n_features, max(n_clusters, 2), 3, dtype)
    w = np.random.default_rng(1).uniform(0, 2, n_samples) if weighted else None
    rng = np.random.default_rng(2)
    offset = X.mean(axis=0).astype(dtype)
    centres = np.ascontiguousarray(X[rng.integers(0, n_samples, n_clusters)] - offset
                                   + rng.normal(scale=0.1, size=(n_clusters, n_features)),
                                   dtype=dtype)
    args = (offset, centres, True)
    S, W, inertia, counts = _kmeans.lloyd_kernel_block(X, w, 0, args, n_threads)
    S0, W0, inertia0, counts0 = _kmeans.lloyd_numpy_block(X, w, 0, args)
    np.testing.assert_array_equal(counts, counts0)
    # two summation orders of n terms a_i differ by at most 2 (n - 1) u sum|a_i|
    terms = np.abs(X - offset).astype(np.float64) * (1 if w is None else w[:, None])
    atol = 2 * n_samples * U64 * float(terms.sum(axis=0).max())
    np.testing.assert_allclose(S, S0, rtol=0, atol=atol)
    np.testing.assert_allclose(W, W0, rtol=2 * n_samples * U64)
    u = U32 if dtype == np.float32 else U64
    # a sum of n positive terms, each of D squares: relative 2 (D u + n u64)
    np.testing.assert_allclose(inertia, inertia0,
                               rtol=2 * (n_features * u + n_samples * U64), atol=1e-300)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_equal_repetition(seed):
    rng = np.random.default_rng(seed)
    X = _data(1200, 3, 4, seed, np.float64)
    counts = rng.integers(0, 4, X.shape[0])
    repeated = np.repeat(X, counts, axis=0)
    sk = KMeans(4, n_init=1, random_state=seed).fit(repeated)
    km = _kmeans.kmeans(_walker(X, counts.astype(np.float64), block=150), 4,
                        np.random.RandomState(seed))
    assert km.n_iter == sk.n_iter_
    np.testing.assert_allclose(km.centres, sk.cluster_centers_, rtol=0,
                               atol=_centre_tol(repeated))
    np.testing.assert_array_equal(np.repeat(km.labels(X), counts), sk.labels_)
    np.testing.assert_allclose(km.inertia, sk.inertia_, rtol=4 * repeated.shape[0] * U64)


def test_weighted_tolerance_is_the_repeated_rows_variance():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 3)) * [1.0, 10.0, 0.1] + 100.0
    counts = rng.integers(0, 5, 500)
    counts[:250] *= 3  # the weights change the variance
    mean, var = _kmeans.mean_and_variance(_walker(X, counts.astype(np.float64), block=64))
    repeated = np.repeat(X, counts, axis=0)
    # float64 two-pass variance: error of order n u var
    np.testing.assert_allclose(var, np.var(repeated, axis=0), rtol=4 * len(repeated) * U64)
    np.testing.assert_allclose(mean, repeated.mean(axis=0), rtol=4 * len(repeated) * U64)
    # the negative control: scikit-learn's unweighted variance is another number
    assert not np.allclose(np.var(X, axis=0), var, rtol=1e-3)


@pytest.mark.parametrize("block", [128, None])  # None: the Lloyd loop in the kernel
def test_empty_cluster_relocation_as_sklearn(block):
    # a start centre far from every row gets no rows: scikit-learn relocates
    # it to the row farthest from its centre
    X = _data(3000, 2, 3, 7, np.float64)
    init = np.array([[5.0, 5.0], [6.0, 4.0], [500.0, 500.0]])
    sk = KMeans(3, init=init, n_init=1).fit(X)
    walker = _walker(X, block=block)
    mean, var = _kmeans.mean_and_variance(walker)
    offset = mean.astype(X.dtype)
    centred, n_iter = _kmeans.lloyd(walker, init - offset, offset,
                                    float(np.mean(var) * _kmeans.KMEANS_TOL))
    assert n_iter == sk.n_iter_
    np.testing.assert_allclose(centred + offset, sk.cluster_centers_, rtol=0,
                               atol=_centre_tol(X))


def _sklearn_shift_total(new, old):
    # scikit-learn's ``(center_shift ** 2).sum()`` written out: per centre
    # its _euclidean_dense_dense (four squares summed, added to the running
    # sum; then the rest one by one) and sqrt, in the data's dtype
    q = (new - old) * (new - old)
    K, D = q.shape
    r = np.zeros(K, q.dtype)
    for g in range(D // 4):
        c = q[:, 4 * g:4 * g + 4]
        r = r + (((c[:, 0] + c[:, 1]) + c[:, 2]) + c[:, 3])
    for i in range(D - D % 4, D):
        r = r + q[:, i]
    return (np.sqrt(r) ** 2).sum()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_centre_shift_total_is_sklearns_bit_for_bit(dtype):
    # every order of sums exactly (the stopping test sits on it): numpy's
    # pairwise sum over K (blocks of 8, split beyond 128) and the features
    # in fours; a sequential sum over K, or over the features, fails
    rng = np.random.default_rng(0)
    for K in list(range(1, 20)) + [127, 128, 129, 300, 1000]:
        for D in (1, 2, 3, 4, 5, 8, 9, 33):
            old = rng.standard_normal((K, D)).astype(dtype)
            new = (old + rng.standard_normal((K, D)) * 1e-3).astype(dtype)
            got = _kmeans._kmeans_kernels.centre_shift_total(new, old)
            assert dtype(got) == _sklearn_shift_total(new, old), (K, D)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", ["usual", "empty", "max_iter"])
def test_lloyd_loop_equals_the_python_iterations(dtype, weighted, n_threads, case,
                                                monkeypatch):
    # the kernel's loop (one in-memory call) against the same iterations
    # one pass at a time from Python: bitwise the same centres and count,
    # through a relocation (a start centre with no rows) and a max_iter stop
    X = _data(1500, 3, 4, 11, dtype)
    w = np.random.default_rng(3).uniform(0.5, 2, X.shape[0]) if weighted else None
    walker = _walker(X, w, n_threads=n_threads)
    mean, var = _kmeans.mean_and_variance(walker)
    offset = mean.astype(dtype)
    init = X[[0, 1, 2, 3]] - offset
    if case == "empty":
        init[3] = 1000.0
    tol = float(np.mean(var) * _kmeans.KMEANS_TOL)
    max_iter = 3 if case == "max_iter" else 300
    loop = _kmeans.lloyd(walker, init.copy(), offset, tol, max_iter)
    real = _kmeans._lloyd_passer
    monkeypatch.setattr(_kmeans, "_lloyd_passer", lambda walker, K: (real(walker, K)[0], None))
    python = _kmeans.lloyd(walker, init.copy(), offset, tol, max_iter)
    assert loop[1] == python[1]
    if case == "max_iter":
        assert loop[1] == 3
    assert loop[0].dtype == dtype
    np.testing.assert_array_equal(loop[0], python[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("n_clusters", [2, 3, 9])
def test_seed_steps_equal_the_python_steps(dtype, weighted, n_threads, n_clusters,
                                           monkeypatch):
    # k-means++'s steps in the kernel (one in-memory call) against the same
    # steps from Python: bitwise the same centres and indices, and the
    # generator left in the same state (the uniforms drawn at once)
    X = _data(1300, 3, n_clusters, 4, dtype)
    w = np.random.default_rng(6).uniform(0, 2, X.shape[0]) if weighted else None
    offset = X.mean(axis=0).astype(dtype)
    rs_kernel, rs_python = np.random.RandomState(8), np.random.RandomState(8)
    kernel = _kmeans.kmeans_plusplus(_walker(X, w, n_threads), n_clusters, rs_kernel,
                                     offset=offset)
    monkeypatch.setattr(_kmeans, "_one_kernel_call", lambda walker: False)
    python = _kmeans.kmeans_plusplus(_walker(X, w, n_threads), n_clusters, rs_python,
                                     offset=offset)
    np.testing.assert_array_equal(kernel[1], python[1])
    assert kernel[0].dtype == dtype
    np.testing.assert_array_equal(kernel[0], python[0])
    assert rs_kernel.random_sample() == rs_python.random_sample()


def test_fewer_distinct_points_warns_as_sklearn():
    X = np.repeat(np.arange(4.0).reshape(4, 1) * [1.0, 2.0], 25, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"Number of distinct clusters \(4\) "
                      r"found smaller than n_clusters \(6\)"):
        sk = KMeans(6, n_init=1, random_state=0).fit(X)
    with pytest.warns(ConvergenceWarning, match=r"Number of distinct clusters \(4\) "
                      r"found smaller than n_clusters \(6\)"):
        km = _kmeans.kmeans(_walker(X, block=30), 6, np.random.RandomState(0))
    np.testing.assert_array_equal(km.labels(X), sk.labels_)
    np.testing.assert_allclose(km.centres, sk.cluster_centers_, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# The mixture's default start
# ---------------------------------------------------------------------------

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
@pytest.mark.parametrize("n_features,n_components", [(2, 2), (16, 8)])
def test_mixture_defaults_equal_sklearn(covariance_type, init_params, n_features,
                                        n_components):
    X = _data(6000, n_features, n_components, 11, np.float64, offset=0.5)
    kwargs = dict(covariance_type=covariance_type, init_params=init_params,
                  random_state=0)
    sk = SKGaussianMixture(n_components, **kwargs).fit(X)
    gm = GaussianMixture(n_components, **kwargs).fit(X)
    assert gm.n_iter_ == sk.n_iter_
    assert abs(gm.lower_bound_ - sk.lower_bound_) < 1e-8
    np.testing.assert_allclose(gm.weights_, sk.weights_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(gm.means_, sk.means_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(gm.covariances_, sk.covariances_, rtol=0, atol=1e-8)


def test_mixture_float32_default_start():
    # float32: scikit-learn's KMeans also works in float32; the start (and
    # then EM) agrees to float32 rounding of the k-means sums
    X = _data(6000, 4, 3, 12, np.float32)
    sk = SKGaussianMixture(3, random_state=0, max_iter=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, random_state=0, max_iter=0).fit(X)
    np.testing.assert_allclose(gm.means_, sk.means_, rtol=0, atol=_centre_tol(X))
    np.testing.assert_allclose(gm.weights_, sk.weights_, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------
# Out of core with every default
# ---------------------------------------------------------------------------

def _peak_during(func):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weighted", [False, True])
def test_memmap_defaults_memory_does_not_grow(tmp_path, dtype, weighted):
    peaks = {}
    for n_samples in (40_000, 160_000):
        X, _ = make_blobs(n_samples, 8, 4, seed=3)
        path = tmp_path / f"x_{n_samples}.npy"
        np.save(path, X.astype(dtype))
        Xm = np.load(path, mmap_mode="r")
        w = None
        if weighted:
            wpath = tmp_path / f"w_{n_samples}.npy"
            np.save(wpath, np.random.default_rng(4).uniform(0.0, 2.0, n_samples))
            w = np.load(wpath, mmap_mode="r")
        gm = GaussianMixture(4, random_state=0, n_threads=1, max_iter=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            _, peaks[n_samples] = _peak_during(lambda: gm.fit(Xm, sample_weight=w))
        del Xm, w
    # scikit-learn's KMeans copies X (and builds n_samples-sized labels,
    # norms and distances): at 160,000 x 8 float64 the copy alone is 10 MB;
    # the streamed start's block buffers are a few MB at either size
    small, large = peaks[40_000], peaks[160_000]
    assert large <= 1.1 * small + 65536, (small, large)
    assert large < 160_000 * 8 * 8 // 2, (small, large)


@pytest.mark.parametrize("sample_weight", [False, True])
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_dask_defaults_equal_in_memory(sample_weight, covariance_type):
    dask = pytest.importorskip("dask")
    import dask.array as da

    X = _data(9000, 3, 4, 13, np.float64)
    w = np.random.default_rng(2).uniform(0.0, 2.0, X.shape[0]) if sample_weight else None
    kwargs = dict(covariance_type=covariance_type, random_state=0)
    ref = GaussianMixture(4, **kwargs).fit(X, sample_weight=w)
    with dask.config.set(scheduler="threads"):
        Xd = da.from_array(X, chunks=(2500, -1))
        wd = None if w is None else da.from_array(w, chunks=2500)
        got = GaussianMixture(4, **kwargs).fit(Xd, sample_weight=wd)
    assert got.n_iter_ == ref.n_iter_
    assert abs(got.lower_bound_ - ref.lower_bound_) < 1e-10
    np.testing.assert_allclose(got.means_, ref.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.covariances_, ref.covariances_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.weights_, ref.weights_, rtol=0, atol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_one_hot_stats_equal_the_responsibilities_kernel(covariance_type, dtype,
                                                         weighted, n_threads):
    # the fused pass against the E-step kernel's statistics of the one-hot
    # responsibilities of KMeansResult.labels (numpy's gemm and argmin)
    from gmmfast import _covariance, _stats

    X = _data(3001, 5, 4, 7, dtype)
    w = np.random.default_rng(1).uniform(0.0, 2.0, X.shape[0]) if weighted else None
    walker = _walker(X, w, n_threads=n_threads, block=1000)
    km = _kmeans.kmeans(walker, 4, np.random.RandomState(0))
    cov = _covariance.get(covariance_type)
    center = X.mean(axis=0).astype(dtype)
    shift = np.tile(center, (4, 1)) if cov.uses_scatter else km.centres
    (R, S1, S2), counts = _kmeans.one_hot_stats(walker, km, shift, covariance_type)
    # the rows per label, as KMeans' last pass counts them
    np.testing.assert_array_equal(counts, km.counts)
    u = U32 if dtype == np.float32 else U64
    resp = np.zeros((X.shape[0], 4), dtype=dtype)
    resp[np.arange(X.shape[0]), km.labels(X)] = 1
    cfg = _stats.kernel_config(5, covariance_type, 1, 4, dtype)
    R0, S10, S20 = _stats.stats_from_resp(X, w, [(0, X.shape[0], resp)], shift,
                                          center, cov, cfg)
    # the same rows per label; sums in other orders (and float64 here where
    # the responsibilities' kernel forms float32 products): n u |terms|
    scale = float(np.abs(X - shift.mean(axis=0)).max()) ** 2 * X.shape[0] * 2
    # (the responsibilities' kernel rounds w r to float32 for float32 data)
    np.testing.assert_allclose(R, R0, rtol=4 * (X.shape[0] * U64 + u))
    np.testing.assert_allclose(S1, S10, rtol=0, atol=8 * u * scale)
    if S2 is None:
        assert S20 is None
    else:
        np.testing.assert_allclose(S2, S20, rtol=0, atol=8 * u * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", [1, 2, 4, 5])
@pytest.mark.parametrize("n_clusters", [3, 9, 20])
def test_lloyd_labels_of_equal_distances_take_the_first_centre(dtype, n_features,
                                                               n_clusters):
    """Duplicate centres (exactly equal distances): every row goes to the
    first of them, as numpy's argmin, in the rows-in-lanes labels (up to 4
    features) and the centres-in-lanes ones (more) alike; the duplicate's
    count is 0."""
    X = _data(600, n_features, 3, 5, dtype)
    rng = np.random.default_rng(4)
    offset = X.mean(axis=0).astype(dtype)
    centres = np.ascontiguousarray(X[rng.integers(0, 600, n_clusters)] - offset, dtype=dtype)
    centres[-1] = centres[1]
    centres[2] = centres[0]
    S, W, inertia, counts = _kmeans.lloyd_kernel_block(X, None, 0, (offset, centres, True))
    S0, W0, inertia0, counts0 = _kmeans.lloyd_numpy_block(X, None, 0, (offset, centres, True))
    np.testing.assert_array_equal(counts, counts0)
    assert counts[-1] == 0 and counts[2] == 0 and counts[0] + counts[1] > 0
