"""Initial parameters, exactly as scikit-learn draws them.

For the same ``random_state`` (a RandomState consumed in the same order),
gmmfast starts from scikit-learn's parameters: k-means labels, random
responsibilities, data points or k-means++ seeds become responsibilities,
and the initial parameters are the M-step of those responsibilities (initial
weights n_k / n_samples, as scikit-learn). The statistics are computed by the
same Cython kernel as in EM, chunk by chunk, so that no n_samples x
n_components array is ever built.

'kmeans' and 'k-means++' run gmmfast's streamed k-means (gmmfast/_kmeans.py:
scikit-learn's KMeans and kmeans_plusplus to rounding) over the data
source's blocks, so they need no copy of X and work on memmaps and Dask
arrays alike; the final labels are recomputed block by block from the final
centres where the statistics need them.

With sample weights, the initialisers are weighted too: k-means and
k-means++ take ``sample_weight``, 'random_from_data' draws rows with
probability proportional to their weight, and every statistic is weighted.
k-means' tolerance is the weighted one (the weighted variance), and a seed
row counts once whatever its weight, so that integer weights start 'kmeans'
and 'k-means++' where the repeated rows (in the same order) start them.
Where weights and repeated rows still part ways (draws of 'random' and
'random_from_data') is listed in the README, "Sample weights".
"""
import numpy as np

from . import _covariance, _kmeans, _stats
from ._threads import blas_single_thread

# rows of responsibilities materialised at a time
RESP_BLOCK = 16384

TIED_ORIGIN_HINT = (
    " With covariance_type='tied', init_params='k-means++' and "
    "'random_from_data' start from scikit-learn's tied covariance, which is "
    "taken about the origin: far from the origin it loses every digit. Centre "
    "the data (X - X.mean(axis=0)) or use init_params='kmeans' or 'random'."
)


def _random_blocks(n_samples, n_components, random_state, dtype):
    # The same stream as scikit-learn's random_state.uniform(size=(n, K)).
    for a in range(0, n_samples, RESP_BLOCK):
        b = min(a + RESP_BLOCK, n_samples)
        resp = np.asarray(random_state.uniform(size=(b - a, n_components)), dtype=dtype)
        resp /= np.sum(resp, axis=1)[:, np.newaxis]
        yield a, b, resp


def resp_statistics(data, n_components, covariance_type, init_params, random_state):
    """Statistics of the initial responsibilities.

    Returns (stats, shift, rows_sum_to_one), shift being the float64 (K, D)
    array the statistics were taken around.
    """
    dtype = data.dtype
    n_features = data.n_features
    cov = _covariance.get(covariance_type)
    # one common centre (tied): every component's statistics around it
    common = cov.uses_scatter
    center = data.center if common else np.zeros(n_features, dtype=dtype)

    if init_params == "kmeans":
        # streamed over the source's blocks: no labels array, no copy of X
        walker = data.kmeans_walker()
        # the final labels in the one-hot pass, not in a k-means pass of their own
        km = _kmeans.kmeans(walker, n_components, random_state, final_pass=False)
        shift = np.tile(center, (n_components, 1)) if common else km.centres
        stats, counts = _kmeans.one_hot_stats(walker, km, shift, covariance_type)
        _kmeans.warn_distinct(counts, n_components)
        return stats, shift.astype(np.float64), True

    if init_params == "random":
        X, sample_weight, cfg = data.X, data.sample_weight, data.cfg
        blocks = _random_blocks(X.shape[0], n_components, random_state, dtype)
        shift = np.tile(data.center, (n_components, 1))
        stats = _stats.stats_from_resp(X, sample_weight, blocks, shift, center, cov, cfg)
        return stats, shift.astype(np.float64), True

    # 'random_from_data' and 'k-means++': one row per component
    if init_params == "random_from_data":
        X, sample_weight = data.X, data.sample_weight
        n_samples = X.shape[0]
        p = None if sample_weight is None else sample_weight / sample_weight.sum()
        indices = random_state.choice(n_samples, size=n_components, replace=False, p=p)
        X_sub = np.ascontiguousarray(X[indices])
        sw_sub = None  # one unit of weight per seed, as below
    else:
        walker = data.kmeans_walker()
        with blas_single_thread():
            _, indices = _kmeans.kmeans_plusplus(walker, n_components, random_state)
        X_sub = walker.rows(indices)
        # each seed is one unit of weight, whatever its row's weight: one copy of
        # the row among the w_i that integer weights stand for (scikit-learn's
        # one-hot responsibility on one of the repeated rows)
        sw_sub = None
    cfg = _stats.kernel_config(n_features, covariance_type, 1, n_components, dtype)
    shift = np.tile(center, (n_components, 1)) if common else X_sub
    blocks = [(0, n_components, np.eye(n_components, dtype=dtype))]
    stats = _stats.stats_from_resp(X_sub, sw_sub, blocks, shift, center, cov, cfg)
    return stats, shift.astype(np.float64), False


def params_from_resp(data, resp_blocks, n_components, covariance_type, reg_covar):
    """scikit-learn's ``_estimate_gaussian_parameters`` from given
    responsibilities, through the kernel statistics: (nk, means,
    covariances), float64, nk with scikit-learn's 10 eps guard.

    ``resp_blocks`` yields (start, end, resp rows) and may be iterated twice
    (a list); rows need not sum to one (scikit-learn's 'k-means++' and
    'random_from_data' starts have zero rows), which only 'tied' has to know.
    """
    X, sample_weight, cfg = data.X, data.sample_weight, data.cfg
    dtype = X.dtype
    cov = _covariance.get(covariance_type)
    center = data.center if cov.uses_scatter else np.zeros(X.shape[1], dtype=dtype)
    shift = np.tile(data.center, (n_components, 1))
    R, S1, S2 = _stats.stats_from_resp(X, sample_weight, resp_blocks, shift, center, cov,
                                       cfg)
    if cov.uses_scatter:
        rows_sum_to_one = all(np.allclose(resp.sum(axis=1), 1.0, rtol=0,
                                          atol=100 * np.finfo(dtype).eps)
                              for _, _, resp in resp_blocks)
        S2 = data.T
        if not rows_sum_to_one:
            S2 = S2 + cov.origin_correction(
                R, S1, data.center.astype(np.float64), data.total_weight, data.mean)
    return cov.params_from_stats(R, S1, S2, shift.astype(np.float64), reg_covar,
                                 float(np.finfo(dtype).eps))


def initial_params(data, n_components, covariance_type, init_params, random_state,
                   reg_covar, weights_init, means_init, precisions_init):
    """Initial GMMParams in the data's dtype (scikit-learn's
    ``_initialize_parameters``); ``data`` is a data source: an in-memory
    ArrayData, or for 'kmeans' and 'k-means++' any source (gmmfast/_data.py)."""
    dtype = data.dtype
    cov = _covariance.get(covariance_type)
    weights = means = covariances = prec_chol = None
    if weights_init is None or means_init is None or precisions_init is None:
        (R, S1, S2), shift, rows_sum_to_one = resp_statistics(
            data, n_components, covariance_type, init_params, random_state)
        if cov.uses_scatter:
            S2 = data.T
            if not rows_sum_to_one:
                S2 = S2 + cov.origin_correction(
                    R, S1, data.center.astype(np.float64), data.total_weight, data.mean)
        nk, means, covariances = cov.params_from_stats(
            R, S1, S2, shift, reg_covar, float(np.finfo(dtype).eps))
        weights = nk / data.total_weight
        if precisions_init is None:
            try:
                prec_chol = cov.precision_cholesky(covariances,
                                                   float32=(dtype == np.float32))
            except ValueError as exc:
                if cov.uses_scatter and not rows_sum_to_one:
                    raise ValueError(str(exc) + TIED_ORIGIN_HINT) from None
                raise
    if weights_init is not None:
        weights = weights_init
    if means_init is not None:
        means = means_init
    if precisions_init is not None:
        prec_chol = cov.precision_cholesky_from_precisions(precisions_init)
        covariances = cov.covariances_from_precision_cholesky(prec_chol)
    return _stats.GMMParams(weights, means, covariances, prec_chol).astype(dtype)
