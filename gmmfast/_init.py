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

from . import _kernels, _maths

# rows of responsibilities materialised at a time
RESP_BLOCK = 16384

TIED_ORIGIN_HINT = (
    " With covariance_type='tied', init_params='k-means++' and "
    "'random_from_data' start from scikit-learn's tied covariance, which is "
    "taken about the origin: far from the origin it loses every digit. Centre "
    "the data (X - X.mean(axis=0)) or use init_params='kmeans' or 'random'."
)


def _stats_from_resp(X, sample_weight, resp_blocks, shift, center, covariance_type, cfg):
    from ._em import alloc_stats, reduce_stats

    n_components, n_features = shift.shape
    R, S1, S2 = alloc_stats(cfg, covariance_type, n_components, n_features)
    code = _maths.COV_CODE[covariance_type]
    for a, b, resp in resp_blocks:
        _kernels.stats_from_resp(
            X[a:b], np.ascontiguousarray(resp, dtype=X.dtype),
            None if sample_weight is None else sample_weight[a:b],
            shift, center, code, R, S1, S2, cfg.chunk_size, cfg.n_threads,
            cfg.use_blas,
        )
    return reduce_stats(R, S1, S2, covariance_type, n_components, n_features)


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
    tied = covariance_type == "tied"
    center = data.center if tied else np.zeros(X.shape[1], dtype=dtype)

    if init_params in ("kmeans", "random"):
        if init_params == "kmeans":
            km = KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            km.fit(X, sample_weight=sample_weight)
            blocks = _one_hot_blocks(km.labels_, n_components, dtype)
            shift = np.ascontiguousarray(km.cluster_centers_, dtype=dtype)
        else:
            blocks = _random_blocks(n_samples, n_components, random_state, dtype)
            shift = np.tile(data.center, (n_components, 1))
        if tied:
            shift = np.tile(center, (n_components, 1))
        stats = _stats_from_resp(X, sample_weight, blocks, shift, center,
                                 covariance_type, cfg)
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
    shift = np.tile(center, (n_components, 1)) if tied else X_sub
    blocks = [(0, n_components, np.eye(n_components, dtype=dtype))]
    stats = _stats_from_resp(X_sub, sw_sub, blocks, shift, center, covariance_type, cfg)
    return stats, shift.astype(np.float64), False


def initial_params(data, n_components, covariance_type, init_params, random_state,
                   reg_covar, weights_init, means_init, precisions_init):
    """Initial GMMParams in the data's dtype (scikit-learn's
    ``_initialize_parameters``); ``data`` is an in-memory ArrayData."""
    from ._em import GMMParams

    dtype = data.dtype
    eps = float(np.finfo(dtype).eps)
    weights = means = covariances = prec_chol = None
    if weights_init is None or means_init is None or precisions_init is None:
        (R, S1, S2), shift, rows_sum_to_one = resp_statistics(
            data, n_components, covariance_type, init_params, random_state)
        T = None
        if covariance_type == "tied":
            T = data.T
            if not rows_sum_to_one:
                T = T + _maths.tied_origin_correction(
                    R, S1, data.center.astype(np.float64), data.total_weight, data.mean)
        nk, means, covariances = _maths.params_from_stats(
            R, S1, S2, shift, covariance_type, reg_covar, eps, T=T)
        weights = nk / data.total_weight
        if precisions_init is None:
            try:
                prec_chol = _maths.compute_precision_cholesky(
                    covariances, covariance_type, float32=(dtype == np.float32))
            except ValueError as exc:
                if covariance_type == "tied" and not rows_sum_to_one:
                    raise ValueError(str(exc) + TIED_ORIGIN_HINT) from None
                raise
    if weights_init is not None:
        weights = weights_init
    if means_init is not None:
        means = means_init
    if precisions_init is not None:
        prec_chol = _maths.precision_cholesky_from_precisions(precisions_init, covariance_type)
        covariances = _maths.covariances_from_precisions(prec_chol, covariance_type)
    return GMMParams(weights, means, covariances, prec_chol).astype(dtype)
