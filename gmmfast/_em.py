"""The EM driver: initialise, iterate to convergence, n_init, warm start.

Inputs here are trusted: the public boundary (``gmmfast.fit`` and the
estimator) validates them once. Per iteration the data is read once by the
Cython kernel (``_kernels.e_step``), which returns the sufficient statistics;
the M-step (K x D^3 work) is numpy on those statistics. Nothing allocated here
grows with n_samples, except what an initialiser needs (k-means labels).
"""
import contextlib
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from threadpoolctl import ThreadpoolController

from . import _kernels, _maths
from ._init import initial_params

# Kernel choice by shape (see README, "How it works"): per-sample loops below
# this many features, BLAS (trmm + syrk) on row blocks from here on.
BLAS_MIN_FEATURES = 17


@dataclass
class GMMParams:
    """Mixture parameters in the data's dtype (scikit-learn's conventions)."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # per covariance_type
    precisions_cholesky: np.ndarray  # per covariance_type

    def astype(self, dtype):
        # values beyond float32 become inf here; check_finite_params reports them
        with np.errstate(over="ignore"):
            return GMMParams(
                *(np.asarray(a, dtype=dtype) for a in (
                    self.weights, self.means, self.covariances, self.precisions_cholesky))
            )


@dataclass
class FitResult:
    """What ``gmmfast.fit`` returns: the fitted parameters and the record."""

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    precisions: np.ndarray
    converged: bool
    n_iter: int
    lower_bound: float
    lower_bounds: list = field(default_factory=list)

    @property
    def params(self):
        return GMMParams(self.weights, self.means, self.covariances,
                         self.precisions_cholesky)


# ---------------------------------------------------------------------------
# Kernel configuration and calls
# ---------------------------------------------------------------------------

@dataclass
class KernelConfig:
    n_threads: int
    chunk_size: int
    use_blas: bool


def resolve_n_threads(n_threads):
    """None or -1: every core OpenMP may use (OMP_NUM_THREADS honoured)."""
    if not _kernels.openmp_enabled():
        return 1
    if n_threads is None or n_threads == -1:
        return max(1, int(_kernels.omp_max_threads()))
    return int(n_threads)


# Rows per block (measured here, README "How it works"): the vectorised path
# keeps a block's work arrays in L1 at 120 float64 rows (240 float32: the same
# bytes); rows of 128 made the work arrays 4 KiB apart and slowed D = 16 by
# 20%. The BLAS path runs trmm and the scatter tiles best on 240 rows, fewer
# when one block would be more than ~2^28 multiply-adds (huge K * D^2), so
# that Ctrl-C, checked between OpenMP regions, still stops a fit within a
# fraction of a second.
VECTOR_CHUNK_BYTES = 960
BLAS_CHUNK = 240
BLOCK_WORK_MAX = 1 << 28


def kernel_config(n_features, covariance_type, n_threads, chunk_size=None,
                  n_components=1, dtype=np.float64):
    use_blas = covariance_type in ("full", "tied") and n_features >= BLAS_MIN_FEATURES
    if chunk_size is None:
        if use_blas:
            per_row = max(1, n_components) * n_features * n_features
            chunk_size = max(16, min(BLAS_CHUNK, BLOCK_WORK_MAX // per_row))
        else:
            chunk_size = VECTOR_CHUNK_BYTES // np.dtype(dtype).itemsize
    return KernelConfig(resolve_n_threads(n_threads), int(chunk_size), use_blas)


_blas_lock = threading.Lock()
_blas_state = {"depth": 0, "limiter": None, "controller": None}


def _release_blas_control():
    """Let any thread set OpenBLAS's thread count next.

    OpenBLAS's pthreads pool is process-wide, and threadpoolctl (>= 3.6)
    lets only one Python thread at a time set its size, silently ignoring
    the others; only its ``with`` blocks hand control back. blas_single_thread
    sets the limit from the first thread to enter and restores it from the
    last to leave, which may be another thread: it releases control around
    both, or the restore would be ignored and BLAS left at one thread (or a
    fit in a worker thread would not be limited at all).
    """
    try:
        from threadpoolctl import OpenBLASController
    except ImportError:  # threadpoolctl < 3.6 has no ownership to release
        return
    clear = getattr(OpenBLASController, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextlib.contextmanager
def blas_single_thread():
    """Hold BLAS to one thread during a fit or prediction.

    The kernels call BLAS from inside OpenMP threads, and the M-step's small
    K x D^3 work gains nothing from BLAS threads: worse, BLAS threads spinning
    beside OpenMP threads on the same cores slowed an iteration 3x here.
    Reference counted, so that fits in several Python threads at once restore
    the caller's setting exactly once.
    """
    with _blas_lock:
        if _blas_state["depth"] == 0:
            if _blas_state["controller"] is None:
                _blas_state["controller"] = ThreadpoolController()
            _release_blas_control()
            _blas_state["limiter"] = _blas_state["controller"].limit(
                limits=1, user_api="blas")
            _release_blas_control()
        _blas_state["depth"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["depth"] -= 1
            if _blas_state["depth"] == 0:
                _release_blas_control()
                _blas_state["limiter"].restore_original_limits()
                _release_blas_control()
                _blas_state["limiter"] = None


class KernelParams:
    """Parameters laid out for the kernels, in the data's dtype."""

    def __init__(self, params, covariance_type, dtype, center=None):
        means = np.ascontiguousarray(params.means, dtype=dtype)
        prec = np.ascontiguousarray(params.precisions_cholesky, dtype=dtype)
        n_components, n_features = means.shape
        self.covariance_type = covariance_type
        self.code = _maths.COV_CODE[covariance_type]
        self.means = means
        self.prec = prec.reshape(-1)
        self.lognorm = _maths.log_norm(params.weights, prec, covariance_type, n_features)
        if covariance_type == "tied":
            self.center = np.ascontiguousarray(center, dtype=dtype)
            c64 = self.center.astype(np.float64)
            # (mu_k - c) U: ||(x - mu_k) U||^2 = ||(x - c) U - (mu_k - c) U||^2
            self.mproj = np.ascontiguousarray(
                (means.astype(np.float64) - c64) @ prec.astype(np.float64), dtype=dtype
            )
        else:
            self.center = means[0]
            self.mproj = means

    @property
    def shift(self):
        """The c_k the statistics are taken around, float64 (K, D)."""
        if self.covariance_type == "tied":
            return np.broadcast_to(self.center.astype(np.float64), self.means.shape)
        return self.means.astype(np.float64)


def reduce_stats(R, S1, S2, covariance_type, n_components, n_features):
    """Sum per-thread slabs in a fixed order; shape and symmetrise."""
    R = R[:, :n_components].sum(axis=0)
    S1 = S1[:, :n_components * n_features].sum(axis=0).reshape(n_components, n_features)
    S2 = S2[:, :_maths.s2_size(covariance_type, n_components, n_features)].sum(axis=0)
    if covariance_type == "full":
        S2 = _maths.symmetrize_upper(S2.reshape(n_components, n_features, n_features))
    elif covariance_type == "diag":
        S2 = S2.reshape(n_components, n_features)
    elif covariance_type == "tied":
        S2 = None
    return R, S1, S2


def thread_slabs(n_threads, size):
    """Zeroed float64 accumulators, one row per thread, each row ``size``
    values and then padding, so that rows are at least a cache line apart:
    threads adding into neighbouring rows of one line made 2 threads slower
    than 1 here (false sharing). Read them with ``[:, :size]``."""
    stride = (size + 7) // 8 * 8 + 8
    return np.zeros((n_threads, stride))


def alloc_stats(cfg, covariance_type, n_components, n_features):
    return (
        thread_slabs(cfg.n_threads, n_components),
        thread_slabs(cfg.n_threads, n_components * n_features),
        thread_slabs(cfg.n_threads,
                     _maths.s2_size(covariance_type, n_components, n_features)),
    )


def e_step_stats(X, sample_weight, kp, cfg):
    """One pass: returns (R, S1, S2) and sum_i w_i log p(x_i)."""
    n_components, n_features = kp.means.shape
    R, S1, S2 = alloc_stats(cfg, kp.covariance_type, n_components, n_features)
    ll = _kernels.e_step(
        X, sample_weight, kp.means, kp.prec, kp.lognorm, kp.center, kp.mproj,
        kp.code, R, S1, S2, cfg.chunk_size, cfg.n_threads, cfg.use_blas,
    )
    return reduce_stats(R, S1, S2, kp.covariance_type, n_components, n_features), ll


def scatter(X, sample_weight, center, cfg):
    """T = sum_i w_i (x_i - c)(x_i - c)^T, float64 (D, D)."""
    n_features = X.shape[1]
    T = thread_slabs(cfg.n_threads, n_features * n_features)
    _kernels.scatter(X, sample_weight, np.ascontiguousarray(center, dtype=X.dtype),
                     T, cfg.chunk_size, cfg.n_threads, cfg.use_blas)
    return _maths.symmetrize_upper(T[:, :n_features * n_features].sum(axis=0).reshape(n_features, n_features))


class ArrayData:
    """Data held in memory (or a numpy memmap): what the EM loop reads.

    The EM loop (``run_em``) and the initialisers see data only through
    this interface, so other sources (Dask arrays, streams) plug into the
    same loop by providing the same members:

    dtype, n_features, total_weight
    e_step(kp) -> ((R, S1, S2), sum_i w_i log p(x_i))   one pass over the data
    mean   weighted mean, float64 (D,)
    center the mean in the data's dtype: the shift of tied statistics
    T      tied scatter sum_i w_i (x_i - c)(x_i - c)^T about center, float64
    init_data() -> ArrayData in memory that the initialisers run on

    mean and T are computed at most once (lazily).
    """

    def __init__(self, X, sample_weight, cfg):
        self.X = X
        self.sample_weight = sample_weight
        self.cfg = cfg
        self.dtype = X.dtype
        self.n_features = X.shape[1]
        self.total_weight = (
            float(X.shape[0]) if sample_weight is None else float(sample_weight.sum())
        )
        self._mean = None
        self._T = None

    def e_step(self, kp):
        return e_step_stats(self.X, self.sample_weight, kp, self.cfg)

    def init_data(self):
        return self

    @property
    def mean(self):
        if self._mean is None:
            self._mean = weighted_mean(self.X, self.sample_weight)
        return self._mean

    @property
    def center(self):
        return self.mean.astype(self.dtype)

    @property
    def T(self):
        if self._T is None:
            with blas_single_thread():
                self._T = scatter(self.X, self.sample_weight, self.center, self.cfg)
        return self._T


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


def params_from_stats(stats, shift, covariance_type, reg_covar, dtype, T=None,
                      anchor=None):
    """M-step: parameters (in dtype) and n_k from summed statistics."""
    R, S1, S2 = stats
    eps = float(np.finfo(dtype).eps)
    nk, means, covariances = _maths.params_from_stats(
        R, S1, S2, np.asarray(shift, dtype=np.float64), covariance_type,
        reg_covar, eps, T=T, anchor=anchor,
    )
    precisions_cholesky = _maths.compute_precision_cholesky(
        covariances, covariance_type, float32=(dtype == np.float32)
    )
    return nk, means, covariances, precisions_cholesky


def check_finite_params(params, dtype):
    """Raise scikit-learn's 'increase reg_covar' error when a parameter is not
    finite in the data's dtype (float32 overflows long before float64)."""
    if dtype != np.float32:
        # float64 parameters come from finite statistics through an M-step
        # that checks the covariances (and their Cholesky factors) already
        return params
    arrays = (params.weights, params.means, params.covariances, params.precisions_cholesky)
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(sum(float(a.sum()) for a in arrays)):
            return params  # every entry finite (the usual case: one cheap test)
    for a in arrays:
        if not np.all(np.isfinite(a)):
            raise ValueError(
                _maths.ILL_DEFINED_MESSAGE
                + (_maths.FLOAT32_HINT if dtype == np.float32 else "")
            )
    return params


def m_step(stats, kp, data, covariance_type, reg_covar, dtype):
    T = data.T if covariance_type == "tied" else None
    # tied statistics are taken about one centre: anchor the means at the
    # previous ones (the other types' shift is the previous mean already)
    anchor = kp.means if covariance_type == "tied" else None
    nk, means, covariances, prec_chol = params_from_stats(
        stats, kp.shift, covariance_type, reg_covar, dtype, T=T, anchor=anchor
    )
    return check_finite_params(
        GMMParams(nk / nk.sum(), means, covariances, prec_chol).astype(dtype), dtype)


def non_finite_lower_bound_error(lower_bound, n_iter, reg_covar):
    """The error run_em raises when the mean log-likelihood is not finite."""
    if np.isnan(lower_bound):
        why = ("the log-likelihood is not a number (the data, the weights or the "
               "statistics overflow)")
    elif lower_bound < 0:
        why = ("some samples have zero density under every component: the "
               "covariances are too small for the data's spread")
    else:
        why = ("the density overflows: a covariance collapsed to almost nothing, or "
               "the weights are too large")
    return ValueError(
        f"EM failed at iteration {n_iter}: the lower bound (mean log-likelihood) is "
        f"{lower_bound}, because {why}. Increase reg_covar (now {reg_covar:g}), "
        "scale the input data (e.g. sklearn.preprocessing.StandardScaler), or check "
        "weights_init/means_init/precisions_init."
    )


# ---------------------------------------------------------------------------
# The fit loop
# ---------------------------------------------------------------------------

class _Verbose:
    """scikit-learn's verbose messages, word for word."""

    def __init__(self, verbose, verbose_interval):
        self.verbose = verbose
        self.interval = verbose_interval

    def init_beg(self, n_init):
        if self.verbose >= 1:
            print("Initialization %d" % n_init)
        if self.verbose >= 2:
            self.t_init = self.t_iter = time.time()

    def iter_end(self, n_iter, diff_ll):
        if n_iter % self.interval == 0:
            if self.verbose == 1:
                print("  Iteration %d" % n_iter)
            elif self.verbose >= 2:
                now = time.time()
                print("  Iteration %d\t time lapse %.5fs\t ll change %.5f"
                      % (n_iter, now - self.t_iter, diff_ll))
                self.t_iter = now

    def init_end(self, lb, converged):
        msg = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {msg}.")
        elif self.verbose >= 2:
            t = time.time() - self.t_init
            print(f"Initialization {msg}. time lapse {t:.5f}s\t lower bound {lb:.5f}.")


def run_em(data, params, covariance_type, *, tol, max_iter, reg_covar,
           lower_bound=-np.inf, verbose=None, callback=None):
    """Iterate EM on ``data`` (an ArrayData or alike) from ``params``.

    scikit-learn's stopping rule: the lower bound of iteration t is the mean
    (weighted) log-likelihood under the parameters before that iteration's
    M-step; stop when it changes by less than tol.
    ``callback(n_iter, lower_bound)``, if given, is called after every
    iteration (progress reports; it sees no arrays and costs nothing when
    None).
    Returns (params, lower_bound, lower_bounds, n_iter, converged).
    """
    dtype = data.dtype
    lower_bounds = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        prev_lower_bound = lower_bound
        kp = KernelParams(params, covariance_type, dtype,
                          data.center if covariance_type == "tied" else None)
        stats, ll = data.e_step(kp)
        lower_bound = ll / data.total_weight
        if not np.isfinite(lower_bound):
            # never carry NaN/inf into the parameters or return it silently
            raise non_finite_lower_bound_error(lower_bound, n_iter, reg_covar)
        params = m_step(stats, kp, data, covariance_type, reg_covar, dtype)
        lower_bounds.append(lower_bound)
        change = lower_bound - prev_lower_bound
        if verbose is not None:
            verbose.iter_end(n_iter, change)
        if callback is not None:
            callback(n_iter, lower_bound)
        if abs(change) < tol:
            converged = True
            break
    return params, lower_bound, lower_bounds, n_iter, converged


def fit_em(X, sample_weight, *, n_components, covariance_type="full", tol=1e-3,
           reg_covar=1e-6, max_iter=100, n_init=1, init_params="kmeans",
           weights_init=None, means_init=None, precisions_init=None,
           random_state=None, warm_start_from=None, n_threads=None,
           verbose=0, verbose_interval=10, chunk_size=None, data=None,
           callback=None):
    """Fit a Gaussian mixture by EM; inputs already validated.

    X : C-contiguous float32/float64 (n_samples, n_features), or None when
        ``data`` is given.
    sample_weight : float64 (n_samples,) or None.
    warm_start_from : (GMMParams, lower_bound) to continue from, or None.
    data : a data source with ArrayData's interface (Dask, streams); by
        default ArrayData(X, sample_weight).
    callback : callable(n_iter, lower_bound) or None, called after every EM
        iteration of every initialisation (n_iter restarts at 1 for each).
    """
    if data is None:
        cfg = kernel_config(X.shape[1], covariance_type, n_threads, chunk_size,
                            n_components, X.dtype)
        data = ArrayData(X, sample_weight, cfg)
    dtype = data.dtype
    random_state = check_random_state(random_state)
    verbose_printer = _Verbose(verbose, verbose_interval)

    do_init = warm_start_from is None
    n_init = n_init if do_init else 1
    max_lower_bound = -np.inf
    best = None

    with blas_single_thread():
        for init in range(n_init):
            verbose_printer.init_beg(init)
            if do_init:
                params = check_finite_params(initial_params(
                    data.init_data(), n_components, covariance_type,
                    init_params, random_state, reg_covar, weights_init,
                    means_init, precisions_init,
                ), dtype)
                lower_bound = -np.inf
            else:
                params, lower_bound = warm_start_from
                params = params.astype(dtype)

            if max_iter == 0:
                best = (params, [], 0, False)
                continue
            params, lower_bound, lower_bounds, n_iter, converged = run_em(
                data, params, covariance_type, tol=tol, max_iter=max_iter,
                reg_covar=reg_covar, lower_bound=lower_bound, verbose=verbose_printer,
                callback=callback,
            )
            verbose_printer.init_end(lower_bound, converged)
            if lower_bound > max_lower_bound or max_lower_bound == -np.inf:
                max_lower_bound = lower_bound
                best = (params, lower_bounds, n_iter, converged)

    params, lower_bounds, n_iter, converged = best
    if not converged and max_iter > 0:
        warnings.warn(
            "Best performing initialization did not converge. "
            "Try different init parameters, or increase max_iter, "
            "tol, or check for degenerate data.",
            ConvergenceWarning,
        )
    return make_result(params, covariance_type, converged, n_iter, max_lower_bound,
                       lower_bounds)


def make_result(params, covariance_type, converged, n_iter, lower_bound, lower_bounds):
    dtype = params.means.dtype
    return FitResult(
        covariance_type=covariance_type,
        weights=params.weights,
        means=params.means,
        covariances=params.covariances,
        precisions_cholesky=params.precisions_cholesky,
        precisions=_maths.precisions_from_cholesky(
            params.precisions_cholesky, covariance_type).astype(dtype),
        converged=bool(converged),
        n_iter=int(n_iter),
        lower_bound=float(lower_bound),
        lower_bounds=[float(v) for v in lower_bounds],
    )
