"""Statistics and the M-step: the kernels' calls, their per-thread slabs, and
the parameters that come out of the statistics.

This layer sits on the kernels (gmmfast/_kernels.pyx, the path table in
gmmfast/_dispatch.py) and the covariance objects (gmmfast/_covariance.py);
the data sources, the initialisers, the EM loop and online EM call it. Inputs
are trusted (validated at the public boundary).
"""
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _covariance, _dispatch, _kernels
from ._maths import FLOAT32_HINT, ILL_DEFINED_MESSAGE, LOG_2PI, symmetrize_upper
from ._threads import resolve_n_threads, threads_for_work


@dataclass
class GMMParams:
    """Mixture parameters in the data's dtype (scikit-learn's conventions)."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # per covariance_type
    precisions_cholesky: np.ndarray  # per covariance_type
    # the kernels' constants of exactly these values (``log_norm``, float64
    # (K,)) where the M-step computed them beside the parameters, else None;
    # not part of the state (a copy in another dtype drops them)
    lognorm: Any = field(default=None, repr=False, compare=False)

    def astype(self, dtype):
        arrays = (self.weights, self.means, self.covariances, self.precisions_cholesky)
        if np.dtype(dtype) == np.float64:  # nothing can overflow (every EM iteration)
            return GMMParams(*(np.asarray(a, dtype=np.float64) for a in arrays))
        # values beyond float32 become inf here; check_finite_params reports them
        with np.errstate(over="ignore"):
            return GMMParams(*(np.asarray(a, dtype=dtype) for a in arrays))


# machine epsilon per dtype (np.finfo is a lookup costing microseconds)
_EPS = {np.dtype(t): float(np.finfo(t).eps) for t in (np.float32, np.float64)}


def machine_eps(dtype):
    """np.finfo(dtype).eps for float32 and float64, as a float, looked up."""
    return _EPS[np.dtype(dtype)]


def kernel_config(n_features, covariance_type, n_threads, n_components=1,
                  dtype=np.float64, n_samples=None):
    """The kernels' configuration (path, block rows, threads) for this shape;
    ``n_threads`` None or -1 means every core. With ``n_samples`` (the rows
    of the passes this configuration serves), no more threads than the work
    is worth (``_threads.threads_for_work``)."""
    n_threads = resolve_n_threads(n_threads)
    if n_samples is not None:
        n_threads = threads_for_work(n_threads, n_samples, n_features, n_components)
    return _dispatch.kernel_config(n_features, covariance_type, n_threads,
                                   n_components, dtype)


def log_norm(weights, precisions_cholesky, cov, n_features):
    """lognorm_k = log pi_k + log det U_k - D/2 log(2 pi), float64 (K,)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.all():  # the usual case: no log(0) to silence
        log_w = np.log(weights)
    else:
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
    log_det = cov.log_det(precisions_cholesky, weights.shape[0], n_features)
    return log_w + log_det - 0.5 * n_features * LOG_2PI


class KernelParams:
    """Parameters laid out for the kernels, in the data's dtype.

    ``center`` is the common centre of the statistics for covariance types
    that have one (tied); None takes the covariance type's default (the
    mixture mean for tied). ``lognorm`` (float64 (K,)) replaces the EM
    constants log pi_k + log det U_k - D/2 log(2 pi) (BayesianGaussianMixture's
    variational constants, gmmfast/_bayesian.py); params.weights is then
    read only for a default centre.
    """

    # whether the E-step should also give sum_i w_i sum_k r_ik lp_ik where its
    # kernel can (BayesianGaussianMixture's lower bound, gmmfast/_bayesian.py)
    want_resp_lp = False

    def __init__(self, params, covariance_type, dtype, center=None, lognorm=None):
        cov = _covariance.get(covariance_type)
        means = np.ascontiguousarray(params.means, dtype=dtype)
        prec = np.ascontiguousarray(params.precisions_cholesky, dtype=dtype)
        n_components, n_features = means.shape
        if center is None and cov.uses_scatter:
            # (only tied has a common centre: the others' is None, and their
            # params need no weights, e.g. BayesianGaussianMixture's)
            center = cov.statistics_center(params.means, params.weights)
        if center is not None:
            center = np.ascontiguousarray(center, dtype=dtype)
        self.cov = cov
        self.covariance_type = covariance_type
        self.code = cov.code
        self.means = means
        self.prec = prec.reshape(-1)
        if lognorm is None:
            lognorm = params.lognorm
        self.lognorm = (log_norm(params.weights, prec, cov, n_features)
                        if lognorm is None else lognorm)
        self.center, self.mproj = cov.kernel_layout(means, prec, center)
        self.shift = cov.shift(means, self.center)


def thread_slabs(n_threads, size):
    """Zeroed float64 accumulators, one row per thread, each row ``size``
    values and then padding, so that rows are at least a cache line apart:
    threads adding into neighbouring rows of one line made 2 threads slower
    than 1 here (false sharing). Read them with ``[:, :size]``."""
    stride = (size + 7) // 8 * 8 + 8
    return np.zeros((n_threads, stride))


def scratch_rows(n_threads, size, dtype=np.float64):
    """Uninitialised per-thread scratch, (n_threads, size rounded up to a
    cache line), each row starting on a 64-byte boundary: the kernels' vector
    loads from a row then never straddle two cache lines (numpy aligns its
    buffers to 16 bytes only)."""
    dtype = np.dtype(dtype)
    lanes = 64 // dtype.itemsize
    stride = (max(1, size) + lanes - 1) // lanes * lanes
    buf = np.empty(n_threads * stride + lanes, dtype)
    skip = (-(buf.ctypes.data // dtype.itemsize)) % lanes
    return buf[skip:skip + n_threads * stride].reshape(n_threads, stride)


def thread_sum(slabs, start, stop):
    """Values start:stop summed over the threads' rows of ``slabs`` in strict
    row order (row 0, then += each next row: the order of
    gmmfast/_kernels.pyx ``reduce_slabs``; numpy's ``sum(axis=0)`` sums one
    column of 8 or more rows pairwise); one thread's row is its own sum (a
    view, no reduction: a small fit reads tens of slabs)."""
    if slabs.shape[0] == 1:
        return slabs[0, start:stop]
    out = slabs[0, start:stop].copy()
    for t in range(1, slabs.shape[0]):
        out += slabs[t, start:stop]
    return out


def alloc_stats(cfg, cov, n_components, n_features):
    """Zeroed per-thread accumulators R, S1, S2 (``thread_slabs``' layout),
    in one compiled call (gmmfast/_kernels.pyx ``alloc_slabs``)."""
    return _kernels.alloc_slabs(cov.code, n_components, n_features, cfg.n_threads)


def reduce_stats(R, S1, S2, cov, n_components, n_features):
    """Sum per-thread slabs in a fixed order (row order); shape and
    symmetrise (``cov.s2_from_slab``'s layout): one compiled call
    (gmmfast/_kernels.pyx ``reduce_slabs``), whose arrays are new, never
    views of the slabs."""
    return _kernels.reduce_slabs(cov.code, R, S1, S2, n_components, n_features)



# Accumulators of at least this many bytes are kept between a fit's E-steps
# (glibc's default M_MMAP_THRESHOLD): a fresh allocation this large can come
# from new pages of the kernel, and the first touch of each page faults. At
# K = 8, D = 256 on 2 threads (8.4 MB of slabs) BayesianGaussianMixture's
# M-step left the heap trimmed, so that every E-step faulted 482 times and
# took 2-4 ms longer than GaussianMixture's.
KEEP_SLAB_BYTES = 1 << 17
# ... and at most this many (glibc's largest dynamic mmap threshold): beyond,
# a pass's work dwarfs its page faults, and accumulators kept through the
# M-step would raise the fit's peak memory (K = 50, D = 1000 on 2 threads:
# 800 MB)
KEEP_SLAB_MAX_BYTES = 1 << 25


def stat_slabs(keep, cfg, cov, n_components, n_features):
    """``alloc_stats``'s zeroed accumulators, and whether they are kept:
    ``keep`` (a dict the data source owns for its life, or None) holds the
    last large ones, zeroed again and reused by the next pass of the same
    shape."""
    size = (n_components * (1 + n_features) + cov.s2_size(n_components, n_features))
    if keep is None or not KEEP_SLAB_BYTES <= 8 * cfg.n_threads * size <= KEEP_SLAB_MAX_BYTES:
        return alloc_stats(cfg, cov, n_components, n_features), False
    key = (cfg.n_threads, cov.code, n_components, n_features)
    slabs = keep.get(key)
    if slabs is None:
        keep.clear()
        slabs = keep[key] = alloc_stats(cfg, cov, n_components, n_features)
    else:
        for slab in slabs:
            slab.fill(0.0)
    return slabs, True


def e_step_stats(X, sample_weight, kp, cfg, keep=None, resp_lp=None):
    """One pass: returns (R, S1, S2) and sum_i w_i log p(x_i). ``keep``:
    ``stat_slabs``'s; the statistics returned never share memory with kept
    accumulators, which the next pass overwrites. ``resp_lp``: None, or a
    float64 (1,) array that receives sum_i w_i sum_k r_ik lp_ik (any path
    but VECTOR: gmmfast/_kernels.pyx's ``e_step``)."""
    n_components, n_features = kp.means.shape
    (R, S1, S2), _ = stat_slabs(keep, cfg, kp.cov, n_components, n_features)
    ll = _kernels.e_step(
        X, sample_weight, kp.means, kp.prec, kp.lognorm, kp.center, kp.mproj,
        kp.code, R, S1, S2, cfg.chunk_size, cfg.n_threads, cfg.path, resp_lp,
    )
    # new arrays: the next pass may overwrite kept accumulators
    return reduce_stats(R, S1, S2, kp.cov, n_components, n_features), ll


def stats_from_resp(X, sample_weight, resp_blocks, shift, center, cov, cfg):
    """Statistics of given responsibilities, ``resp_blocks`` yielding
    (start, end, resp rows): R, S1, S2 around ``shift`` (tied: ``center``)."""
    n_components, n_features = shift.shape
    R, S1, S2 = alloc_stats(cfg, cov, n_components, n_features)
    for a, b, resp in resp_blocks:
        _kernels.stats_from_resp(
            X[a:b], np.ascontiguousarray(resp, dtype=X.dtype),
            None if sample_weight is None else sample_weight[a:b],
            shift, center, cov.code, R, S1, S2, cfg.chunk_size, cfg.n_threads,
            cfg.path,
        )
    return reduce_stats(R, S1, S2, cov, n_components, n_features)


def scatter(X, sample_weight, center, cfg):
    """T = sum_i w_i (x_i - c)(x_i - c)^T, float64 (D, D).

    ``cfg`` may be any covariance type's: where its path has no scatter
    kernel for this shape (diag or spherical beyond the register kernels'
    sizes), the tied configuration's path is used instead.
    """
    n_features = X.shape[1]
    if not _dispatch.serves(cfg.path, "tied", n_features):
        cfg = _dispatch.kernel_config(n_features, "tied", cfg.n_threads, 1, X.dtype)
    T = thread_slabs(cfg.n_threads, n_features * n_features)
    _kernels.scatter(X, sample_weight, np.ascontiguousarray(center, dtype=X.dtype),
                     T, cfg.chunk_size, cfg.n_threads, cfg.path)
    return symmetrize_upper(thread_sum(T, 0, n_features * n_features)
                            .reshape(n_features, n_features))


def predict_arrays(X, kp, cfg, logp=False, resp=False, labels=False):
    """One pass of the prediction kernel over an in-memory block.

    Parameters
    ----------
    X : C-contiguous float32/float64 ndarray of shape (n_samples, n_features)
    kp : KernelParams in X's dtype
    cfg : _dispatch.KernelConfig
    logp, resp, labels : bool
        Which outputs to compute.

    Returns
    -------
    (logp (n_samples,) X.dtype, resp (n_samples, n_components) X.dtype,
    labels (n_samples,) int64), each None when not asked for.
    """
    n_samples = X.shape[0]
    n_components = kp.means.shape[0]
    out_logp = np.empty(n_samples, dtype=X.dtype) if logp else None
    out_resp = np.empty((n_samples, n_components), dtype=X.dtype) if resp else None
    out_labels = np.empty(n_samples, dtype=np.int64) if labels else None
    _kernels.predict(X, kp.means, kp.prec, kp.lognorm, kp.center, kp.mproj,
                     kp.code, out_logp, out_resp, out_labels,
                     cfg.chunk_size, cfg.n_threads, cfg.path)
    return out_logp, out_resp, out_labels


def weighted_mean(X, sample_weight, block=None):
    """sum_i w_i x_i / sum_i w_i in float64, without an n_samples-sized copy.

    Rows are read ``block`` at a time (default: about 256 KiB of float64), so
    a float32 block's float64 copy stays small whatever n_samples (X may be a
    memmap larger than memory); float64 blocks are not copied.
    """
    if block is None:
        block = max(256, (1 << 18) // (8 * max(1, X.shape[1])))
    total = np.zeros(X.shape[1])
    if sample_weight is None:
        for a in range(0, X.shape[0], block):
            total += X[a:a + block].sum(axis=0, dtype=np.float64)
        return total / X.shape[0]
    for a in range(0, X.shape[0], block):
        total += sample_weight[a:a + block] @ X[a:a + block].astype(np.float64, copy=False)
    return total / sample_weight.sum()


def check_finite_params(params, dtype):
    """Raise scikit-learn's 'increase reg_covar' error when a float32
    parameter is not finite (float32 overflows long before float64, whose
    parameters come from finite statistics through an M-step that checks the
    covariances and their Cholesky factors already)."""
    if dtype != np.float32:
        return params
    arrays = (params.weights, params.means, params.covariances, params.precisions_cholesky)
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(sum(float(a.sum()) for a in arrays)):
            return params  # every entry finite (the usual case: one cheap test)
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError(ILL_DEFINED_MESSAGE + FLOAT32_HINT)
    return params


def m_step(stats, shift, cov, reg_covar, dtype, anchor=None, weights_from=None):
    """Parameters (GMMParams in ``dtype``, checked finite, with their kernel
    constants where the covariance type computed them) from summed
    statistics (R, S1, S2; tied: S2 is the scatter T).

    weights_from : the total weight n_k is divided by, or None for sum n_k
    (the EM M-step); the initialisation divides by the data's total weight,
    as scikit-learn does.
    """
    R, S1, S2 = stats
    dtype = np.dtype(dtype)
    float32 = dtype == np.float32
    weights, means, covariances, prec_chol, lognorm = cov.em_params(
        R, S1, S2, np.asarray(shift, dtype=np.float64), reg_covar, _EPS[dtype],
        anchor=anchor, total=weights_from, float32=float32)
    params = GMMParams(weights, means, covariances, prec_chol)
    if not float32:  # already float64, from finite statistics
        params.lognorm = lognorm
        return params
    params = check_finite_params(params.astype(dtype), dtype)
    params.lognorm = lognorm  # those of the float32 values
    return params
