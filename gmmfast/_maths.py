"""Numerical constants and messages shared by every layer: the error that
names reg_covar, log(2 pi), and the upper-triangle symmetrisation of the
kernels' matrix statistics. The per-covariance-type maths is in
gmmfast/_covariance.py."""
import math

import numpy as np

from . import _kernels

LOG_2PI = math.log(2.0 * math.pi)

ILL_DEFINED_MESSAGE = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)
FLOAT32_HINT = (
    " The numerical accuracy can also be improved by passing float64"
    " data instead of float32."
)


def symmetrize_upper(S):
    """The symmetric matrix whose upper triangle S holds; S is (..., D, D)
    with zeros below the diagonal (the kernels write the upper triangle
    only)."""
    if S.ndim == 3 and S.dtype == np.float64:
        # compiled loops, one pass (at K = 8, D = 256: 0.8 against numpy's 2.3 ms)
        return _kernels.symmetrize_upper_stack(np.ascontiguousarray(S))
    out = S + np.swapaxes(S, -1, -2)
    idx = np.arange(S.shape[-1])
    out[..., idx, idx] = S[..., idx, idx]
    return out
