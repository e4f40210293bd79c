"""Online (stepwise) EM on the sufficient statistics, for ``partial_fit``.

Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009) keeps a running
estimate s of the expected sufficient statistics of one unit of weight,
and for each mini-batch b

    s_hat = E-step statistics of b under the current parameters / weight of b
    s     = (1 - rho_t) s + rho_t s_hat
    theta = M-step(s)

with rho_t = (t + learning_offset) ** (-learning_decay) for the t-th batch
after the one that started the stream (rho = 1 for that one). Convergence to
a stationary point needs sum rho_t = inf and sum rho_t^2 < inf, that is
learning_decay in (0.5, 1].

The statistics are the kernel's shifted sums (R, S1, S2; tied: R, S1 and the
scatter T about one centre). Each batch's statistics are taken around the
current means (tied: the current mixture mean), so before blending, the
running statistics are re-centred on the batch's shift by the exact algebra
of the covariance objects' ``reshift`` (gmmfast/_covariance.py); nothing here
uses raw moments.
"""
from dataclasses import dataclass

import numpy as np

from . import _covariance, _stats
from ._dispatch import KernelConfig
from ._missing import batch_statistics
from ._threads import blas_single_thread, threads_for_work


@dataclass
class OnlineState:
    """Running statistics per unit weight (float64) and the step counter.

    R : (K,); S1 : (K, D); S2 : full (K, D, D), diag (K, D), spherical (K,),
    tied: the scatter T (D, D); shift : (K, D), what they are taken around.
    n_steps : the number of blends so far, counting the start of the stream.
    """

    covariance_type: str
    R: np.ndarray
    S1: np.ndarray
    S2: np.ndarray
    shift: np.ndarray
    n_steps: int


def step_size(t, learning_decay, learning_offset):
    """rho_t = (t + learning_offset) ** (-learning_decay), t = 1, 2, ..."""
    return float((t + learning_offset) ** (-learning_decay))


def state_from_params(params, covariance_type, reg_covar):
    """The statistics a fitted model stands for: the start of a stream that
    continues a ``fit`` (warm start). Counts as the stream's first step."""
    (R, S1, S2), shift = _covariance.get(covariance_type).stats_from_params(
        params.weights, params.means, params.covariances, reg_covar)
    return OnlineState(covariance_type, R, S1, S2, shift, 1)


def online_step(X, sample_weight, params, state, *, covariance_type, reg_covar, cfg,
                learning_decay, learning_offset, missing=False):
    """One stepwise EM step on the batch X (validated, C-contiguous).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    sample_weight : float64 ndarray of shape (n_samples,) or None
    params : GMMParams, the current parameters (in X's dtype)
    state : OnlineState or None
        None starts the stream: the batch's statistics replace everything
        (rho = 1).
    missing : X has NaN entries, missing at random (nan_policy='marginalize').

    Returns
    -------
    params : GMMParams after the M-step, in X's dtype
    state : OnlineState, new arrays (the given state is not modified)
    lower_bound : float
        Mean (weighted) log-likelihood of the batch under the parameters
        before the step (the meaning of ``lower_bound_`` in ``fit``).
    rho : float, the step size used
    """
    cfg = batch_config(cfg, X, params.means.shape[0])
    with blas_single_thread():  # the M-step's small solves too
        return _step(X, sample_weight, params, state, covariance_type, reg_covar, cfg,
                     learning_decay, learning_offset, missing)


def batch_config(cfg, X, n_components):
    """``cfg`` for one batch: a small batch is not worth more threads (the
    sums agree to rounding)."""
    n_threads = threads_for_work(cfg.n_threads, X.shape[0], X.shape[1], n_components)
    if n_threads < cfg.n_threads:
        return KernelConfig(n_threads, cfg.chunk_size, cfg.path)
    return cfg


def _step(X, sample_weight, params, state, covariance_type, reg_covar, cfg,
          learning_decay, learning_offset, missing=False):
    dtype = X.dtype
    cov = _covariance.get(covariance_type)
    total_weight = float(X.shape[0]) if sample_weight is None else float(sample_weight.sum())
    kp = _stats.KernelParams(params, covariance_type, dtype)
    (R, S1, S2), ll = batch_statistics(X, sample_weight, kp, cfg, missing)
    new_state, rho = blend(state, (R, S1, S2), total_weight, kp.shift.copy(), cov,
                           learning_decay, learning_offset)
    new_params = _stats.m_step((new_state.R, new_state.S1, new_state.S2), new_state.shift,
                               cov, reg_covar, dtype)
    return new_params, new_state, ll / total_weight, rho


def blend(state, stats, batch_weight, shift, cov, learning_decay, learning_offset):
    """The running statistics after one batch: the batch's per unit weight,
    (1 - rho) old + rho batch with the old re-centred exactly on the batch's
    ``shift`` (rho = 1 when ``state`` is None, the stream's first step).
    Returns (OnlineState, rho)."""
    R, S1, S2 = stats
    batch = (R / batch_weight, S1 / batch_weight, S2 / batch_weight)
    if state is None:
        rho = 1.0
        R, S1, S2 = batch
        n_steps = 1
    else:
        rho = step_size(state.n_steps, learning_decay, learning_offset)
        old = cov.reshift(state.R, state.S1, state.S2, state.shift, shift)
        R, S1, S2 = ((1.0 - rho) * o + rho * b for o, b in zip(old, batch))
        n_steps = state.n_steps + 1
    return OnlineState(cov.name, R, S1, cov.symmetrize(S2), shift, n_steps), rho
