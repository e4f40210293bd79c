"""Data sources: what the EM loop, the initialisers and the predictions read.

Every source (arrays in memory or numpy memmaps here; Dask arrays in
gmmfast/_dask.py; the factory that picks one in gmmfast/_source.py) offers
the same small interface, so the layers above never ask what kind of array
they hold:

dtype, n_samples, n_features, total_weight
e_step(kp)       one pass: ((R, S1, S2), sum_i w_i log p(x_i)); for a
                 covariance type that uses the scatter (tied), S2 is T
mean             weighted mean, float64 (D,)
center           the mean in the data's dtype: the shift of tied statistics
T                tied scatter sum_i w_i (x_i - c)(x_i - c)^T about center
init_data(init_params)  what the initialisers run on: the source itself
                 for 'kmeans' and 'k-means++' (streamed), else an
                 in-memory ArrayData
kmeans_walker()  the block walker of the streamed k-means (gmmfast/_kmeans.py)
predict(kp, logp=, resp=, labels=)   the prediction outputs (numpy, or Dask)
mean_log_likelihood(kp)              score: the mean (weighted) log p(x)

mean and T are computed at most once (lazily).
"""
import os

import numpy as np

from . import _dispatch, _kmeans, _stats
from ._threads import blas_single_thread


class DataSource:
    """What every source shares: lazy mean and scatter, the scatter standing
    in for S2 when the covariance type uses it."""

    def __init__(self, dtype, n_samples, n_features):
        self.dtype = np.dtype(dtype)
        self.n_samples = n_samples
        self.n_features = n_features
        self._mean = None
        self._T = None

    # OpenMP threads of the M-step's per-component algebra during a fit
    # (``_threads.m_step_threads``); sources with kernel threads say theirs
    algebra_threads = 1
    # (kp, sum_i w_i sum_k r_ik lp_ik) of the last E-step, where the source's
    # kernel gave it (ArrayData: float64 data on the paths beyond the vector
    # kernels, when the parameters ask for it); None elsewhere
    _resp_lp = None

    def resp_lp_for(self, kp):
        """sum_i w_i sum_k r_ik lp_ik of the last E-step if it ran with ``kp``
        (the same object) and its kernel gave it, else None."""
        tagged = self._resp_lp
        return tagged[1] if tagged is not None and tagged[0] is kp else None

    def e_step(self, kp):
        (R, S1, S2), ll = self._e_step_pass(kp)
        return (R, S1, self.T if kp.cov.uses_scatter else S2), ll

    @property
    def mean(self):
        if self._mean is None:
            self._mean = self._compute_mean()
        return self._mean

    @property
    def center(self):
        return self.mean.astype(self.dtype)

    @property
    def T(self):
        if self._T is None:
            self._T = self._compute_scatter()
        return self._T


def _mapped_files(*arrays):
    """(path, bytes the mapping needs) of each numpy memmap behind ``arrays``."""
    files = []
    for a in arrays:
        while a is not None and not isinstance(a, np.memmap):
            a = getattr(a, "base", None)
        if isinstance(a, np.memmap) and getattr(a, "filename", None):
            files.append((a.filename, int(a.offset) + int(a.nbytes)))
    return files


class ArrayData(DataSource):
    """Data held in memory, or a numpy memmap read in place.

    X : C-contiguous float32/float64 (n_samples, n_features), validated.
    sample_weight : float64 (n_samples,) or None, validated.
    cfg : _dispatch.KernelConfig.

    A memmapped file that shrinks under a fit would make the next read of a
    vanished page a bus error (the process killed); each pass checks first that
    every mapped file still holds the bytes it maps, and raises otherwise.

    One source serves one fit at a time: its E-steps share kept accumulators
    and the last pass's sum w r lp, so two E-steps on one instance must not
    run at once (every fit builds its own source).
    """

    def __init__(self, X, sample_weight, cfg):
        super().__init__(X.dtype, X.shape[0], X.shape[1])
        self.X = X
        self.sample_weight = sample_weight
        self.cfg = cfg
        self.total_weight = (
            float(X.shape[0]) if sample_weight is None else float(sample_weight.sum())
        )
        self._files = _mapped_files(X, sample_weight)
        self._slabs = {}  # the E-step's large accumulators (_stats.stat_slabs)

    @property
    def algebra_threads(self):
        return self.cfg.n_threads

    def _check_files(self):
        for path, needed in self._files:
            try:
                size = os.stat(path).st_size
            except OSError as exc:
                raise OSError(f"the memory-mapped file {path} behind X or sample_weight "
                              f"cannot be read any more ({exc}).") from None
            if size < needed:
                raise OSError(
                    f"the memory-mapped file {path} behind X or sample_weight shrank to "
                    f"{size} bytes during the fit, but its array needs {needed}: it was "
                    "truncated or rewritten. Fit again once the file is complete.")

    def _e_step_pass(self, kp):
        self._resp_lp = None
        self._check_files()
        # float64 only: float32 data's lp_ik are rounded to float32, where the
        # trace of the float64 statistics is the more accurate form
        out = (np.zeros(1) if kp.want_resp_lp and self.cfg.path != _dispatch.VECTOR
               and self.dtype == np.float64 else None)
        result = _stats.e_step_stats(self.X, self.sample_weight, kp, self.cfg,
                                     keep=self._slabs, resp_lp=out)
        if out is not None:
            self._resp_lp = (kp, float(out[0]))
        return result

    def _compute_mean(self):
        self._check_files()
        return _stats.weighted_mean(self.X, self.sample_weight)

    def _compute_scatter(self):
        self._check_files()
        with blas_single_thread():
            return _stats.scatter(self.X, self.sample_weight, self.center, self.cfg)

    def init_data(self, init_params=None):
        return self

    def kmeans_walker(self):
        """Row blocks of X read in place, a memmap's file checked before each
        pass (an in-memory array has nothing to check)."""
        return _kmeans.ArrayBlocks(self.X, self.sample_weight, self.cfg.n_threads,
                                   check=self._check_files if self._files else None)

    def predict(self, kp, logp=False, resp=False, labels=False):
        self._check_files()
        with blas_single_thread():
            return _stats.predict_arrays(self.X, kp, self.cfg, logp=logp, resp=resp,
                                         labels=labels)

    def mean_log_likelihood(self, kp):
        logp = self.predict(kp, logp=True)[0]
        if self.sample_weight is None:
            # scikit-learn's score: score_samples(X).mean() in the data's
            # dtype (numpy's pairwise sum in float32 for float32 data)
            return float(np.mean(logp))
        return float(np.average(logp.astype(np.float64), weights=self.sample_weight))
