"""Initial parameters, exactly as scikit-learn draws them.

For the same ``random_state`` (a RandomState consumed in the same order),
gmmfast starts from scikit-learn's parameters: k-means labels, random
responsibilities, data points or k-means++ seeds become responsibilities,
and the initial parameters are the M-step of those responsibilities (initial
weights n_k / n_samples, as scikit-learn). The statistics are computed by the
same Cython kernel as in EM, chunk by chunk, so that no n_samples x
n_components array is ever built (k-means' own labels aside).

With sample weights, the initialisers are weighted too: k-means and
k-means++ take ``sample_weight``, 'random_from_data' draws rows with
probability proportional to their weight, and every statistic is weighted.
"""
import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from . import _covariance, _stats

# rows of responsibilities materialised at a time
RESP_BLOCK = 16384

TIED_ORIGIN_HINT = (
    " With covariance_type='tied', init_params='k-means++' and "
    "'random_from_data' start from scikit-learn's tied covariance, which is "
    "taken about the origin: far from the origin it loses every digit. Centre "
    "the data (X - X.mean(axis=0)) or use init_params='kmeans' or 'random'."
)


def _one_hot_blocks(labels, n_components, dtype):
    n_samples = labels.shape[0]
    for a in range(0, n_samples, RESP_BLOCK):
        b = min(a + RESP_BLOCK, n_samples)
        resp = np.zeros((b - a, n_components), dtype=dtype)
        resp[np.arange(b - a), labels[a:b]] = 1
        yield a, b, resp


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
    X, sample_weight, cfg = data.X, data.sample_weight, data.cfg
    n_samples = X.shape[0]
    dtype = X.dtype
    cov = _covariance.get(covariance_type)
    # one common centre (tied): every component's statistics around it
    common = cov.uses_scatter
    center = data.center if common else np.zeros(X.shape[1], dtype=dtype)

    if init_params in ("kmeans", "random"):
        if init_params == "kmeans":
            km = KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            km.fit(X, sample_weight=sample_weight)
            blocks = _one_hot_blocks(km.labels_, n_components, dtype)
            shift = np.ascontiguousarray(km.cluster_centers_, dtype=dtype)
        else:
            blocks = _random_blocks(n_samples, n_components, random_state, dtype)
            shift = np.tile(data.center, (n_components, 1))
        if common:
            shift = np.tile(center, (n_components, 1))
        stats = _stats.stats_from_resp(X, sample_weight, blocks, shift, center, cov, cfg)
        return stats, shift.astype(np.float64), True

    # 'random_from_data' and 'k-means++': one row per component
    if init_params == "random_from_data":
        p = None if sample_weight is None else sample_weight / sample_weight.sum()
        indices = random_state.choice(n_samples, size=n_components, replace=False, p=p)
    else:
        _, indices = kmeans_plusplus(X, n_components, random_state=random_state,
                                     sample_weight=sample_weight)
    X_sub = np.ascontiguousarray(X[indices])
    sw_sub = None if sample_weight is None else np.ascontiguousarray(sample_weight[indices])
    shift = np.tile(center, (n_components, 1)) if common else X_sub
    blocks = [(0, n_components, np.eye(n_components, dtype=dtype))]
    stats = _stats.stats_from_resp(X_sub, sw_sub, blocks, shift, center, cov, cfg)
    return stats, shift.astype(np.float64), False


def initial_params(data, n_components, covariance_type, init_params, random_state,
                   reg_covar, weights_init, means_init, precisions_init):
    """Initial GMMParams in the data's dtype (scikit-learn's
    ``_initialize_parameters``); ``data`` is an in-memory ArrayData."""
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
