"""Per-component maths: the K x D^3 work, in numpy/scipy, testable alone.

Conventions are scikit-learn's: ``precisions_cholesky`` holds, per component,
the upper-triangular U with precision = U U^T (full, tied), or the square root
of the precisions (diag, spherical).

Everything here is computed in float64; callers cast to the data's dtype.
"""
import math

import numpy as np
from scipy import linalg

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
COV_CODE = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}

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


def covariance_shape(covariance_type, n_components, n_features):
    """Shape of covariances_/precisions_/precisions_cholesky_."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def s2_size(covariance_type, n_components, n_features):
    """Length of one thread's second-order statistics slab."""
    return {
        "full": n_components * n_features * n_features,
        "tied": 1,  # tied uses the scatter T, computed once per fit
        "diag": n_components * n_features,
        "spherical": n_components,
    }[covariance_type]


def symmetrize_upper(S):
    """Fill the lower triangle from the upper one; S is (..., D, D)."""
    upper = np.triu(S)
    return upper + np.swapaxes(np.triu(S, 1), -1, -2)


def n_parameters(covariance_type, n_components, n_features):
    """Number of free parameters of the mixture (for BIC/AIC)."""
    if covariance_type == "full":
        cov_params = n_components * n_features * (n_features + 1) / 2.0
    elif covariance_type == "diag":
        cov_params = n_components * n_features
    elif covariance_type == "tied":
        cov_params = n_features * (n_features + 1) / 2.0
    else:
        cov_params = n_components
    mean_params = n_features * n_components
    return int(cov_params + mean_params + n_components - 1)


def compute_precision_cholesky(covariances, covariance_type, float32=False):
    """Upper Cholesky factor of the precisions from the covariances.

    Raises ValueError naming reg_covar when a covariance is not positive
    definite.
    """
    message = ILL_DEFINED_MESSAGE + (FLOAT32_HINT if float32 else "")
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        stack = covariances if covariance_type == "full" else covariances[None]
        n_features = stack.shape[-1]
        eye = np.eye(n_features)
        out = np.empty_like(stack)
        for k in range(stack.shape[0]):
            if not np.all(np.isfinite(stack[k])):
                raise ValueError(message)
            try:
                # Sigma = L L^T  =>  Sigma^-1 = L^-T L^-1 = U U^T with U = L^-T
                cov_chol = linalg.cholesky(stack[k], lower=True, check_finite=False)
            except linalg.LinAlgError:
                raise ValueError(message) from None
            out[k] = linalg.solve_triangular(
                cov_chol, eye, lower=True, check_finite=False
            ).T
            if not np.all(np.isfinite(out[k])):  # a covariance too close to singular
                raise ValueError(message)
        return out if covariance_type == "full" else out[0]
    # positive and finite (NaN fails both comparisons)
    if not np.all((covariances > 0.0) & (covariances < np.inf)):
        raise ValueError(message)
    return 1.0 / np.sqrt(covariances)


def precision_cholesky_from_precisions(precisions, covariance_type):
    """U with precision = U U^T, U upper (flip, lower Cholesky, flip back)."""
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type == "full":
        return np.stack(
            [
                np.linalg.cholesky(p[::-1, ::-1])[::-1, ::-1]
                for p in precisions
            ]
        )
    if covariance_type == "tied":
        return np.linalg.cholesky(precisions[::-1, ::-1])[::-1, ::-1]
    return np.sqrt(precisions)


def precisions_from_cholesky(precisions_cholesky, covariance_type):
    """precision = U U^T (full, tied) or U**2 (diag, spherical)."""
    pc = np.asarray(precisions_cholesky)
    if covariance_type == "full":
        return np.matmul(pc, np.swapaxes(pc, -1, -2))
    if covariance_type == "tied":
        return pc @ pc.T
    return pc**2


def covariances_from_precisions(precisions_cholesky, covariance_type):
    """Covariance = (U U^T)^-1 = U^-T U^-1 (used when only precisions are given)."""
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        stack = pc if covariance_type == "full" else pc[None]
        eye = np.eye(stack.shape[-1])
        out = np.empty_like(stack)
        for k in range(stack.shape[0]):
            u_inv = linalg.solve_triangular(stack[k], eye, lower=False)
            out[k] = u_inv.T @ u_inv
        return out if covariance_type == "full" else out[0]
    return 1.0 / pc**2


def log_det_cholesky(precisions_cholesky, covariance_type, n_features, n_components):
    """sum_d log U[d, d] per component: -1/2 log det Sigma_k, shape (K,)."""
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type == "full":
        return np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.full(n_components, np.log(np.diag(pc)).sum())
    if covariance_type == "diag":
        return np.log(pc).sum(axis=1)
    return n_features * np.log(pc)


def log_norm(weights, precisions_cholesky, covariance_type, n_features):
    """lognorm_k = log pi_k + log det U_k - D/2 log(2 pi), float64 (K,)."""
    weights = np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    log_det = log_det_cholesky(
        precisions_cholesky, covariance_type, n_features, weights.shape[0]
    )
    return log_w + log_det - 0.5 * n_features * LOG_2PI


def params_from_stats(
    R, S1, S2, shift, covariance_type, reg_covar, eps, T=None, center=None,
    anchor=None,
):
    """M-step from shifted sufficient statistics (all float64).

    Parameters
    ----------
    R : (K,) sum_i w_i r_ik
    S1 : (K, D) sum_i w_i r_ik (x_i - c_k)
    S2 : full (K, D, D) symmetric; diag (K, D); spherical (K,); tied: unused.
        sum_i w_i r_ik (x_i - c_k)(x_i - c_k)^T, or its diagonal / trace.
    shift : (K, D) the c_k the statistics were taken around (tied: the
        centre c in every row).
    reg_covar : float added to the covariances' diagonal.
    eps : float, the data dtype's machine epsilon (n_k = R_k + 10 eps, as
        scikit-learn).
    T : (D, D) tied only: sum_i w_i (x_i - c)(x_i - c)^T.
    anchor : (K, D) or None, where the 10 eps guard pulls a mean (None: the
        shift). Tied statistics share one shift; the previous means are the
        better anchor there.

    Returns
    -------
    nk : (K,), means : (K, D), covariances : per covariance_type.

    Notes
    -----
    mu_k = (R_k c_k + S1_k) / n_k and, with d_k = mu_k - c_k,
    sum_i w_i r_ik (x_i - mu_k)(x_i - mu_k)^T
        = S2_k - S1_k d_k^T - d_k S1_k^T + R_k d_k d_k^T,
    which is exact for any shift and free of cancellation when c_k is near
    mu_k (never the raw moments E[x x^T] - mu mu^T).
    """
    nk = R + 10.0 * eps
    # mu_k = a_k + sum_i w r (x_i - a_k) / n_k, with the anchor a_k (the
    # shift, or the previous mean): the guard shrinks the step from the
    # anchor, not the position. scikit-learn's sum_i w r x_i / n_k pulls every
    # mean towards the origin by 10 eps / n_k of its distance from it: far
    # from the origin, in float32, more than a collapsed component's width,
    # and an empty component jumps to the origin. The two agree to 10 eps / n_k.
    if anchor is None:
        d = S1 / nk[:, None]
    else:
        anchor = np.asarray(anchor, dtype=np.float64)
        # sum w r (x - a) = S1 - R (a - c)
        d = anchor - shift + (S1 - R[:, None] * (anchor - shift)) / nk[:, None]
    means = shift + d
    if covariance_type == "full":
        n_features = shift.shape[1]
        outer = S1[:, :, None] * d[:, None, :]
        cov = S2 - outer - np.swapaxes(outer, 1, 2)
        cov += R[:, None, None] * d[:, :, None] * d[:, None, :]
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        cov /= nk[:, None, None]
        idx = np.arange(n_features)
        cov[:, idx, idx] += reg_covar
        return nk, means, cov
    if covariance_type == "tied":
        # sum_k sum_i w r (y_i - m_k)(y_i - m_k)^T with y = x - c, m_k = mu_k - c
        # = T - S1^T m - m^T S1 + sum_k R_k m_k m_k^T   (as sum_k r_ik = 1)
        cross = S1.T @ d
        cov = T - cross - cross.T + (R[:, None] * d).T @ d
        cov = 0.5 * (cov + cov.T)
        cov /= nk.sum()
        cov[np.diag_indices_from(cov)] += reg_covar
        return nk, means, cov
    if covariance_type == "diag":
        cov = (S2 - 2.0 * d * S1 + R[:, None] * d * d) / nk[:, None] + reg_covar
        return nk, means, cov
    n_features = shift.shape[1]
    trace = S2 - 2.0 * np.einsum("kd,kd->k", d, S1) + R * np.einsum("kd,kd->k", d, d)
    return nk, means, trace / (nk * n_features) + reg_covar


def tied_origin_correction(R, S1, center, total_weight, data_mean):
    """Term that turns the tied scatter about ``center`` into scikit-learn's.

    scikit-learn's tied M-step is (X^T X - sum_k n_k mu_k mu_k^T) / sum n_k,
    which equals ours only when every row's responsibilities sum to one. Its
    'k-means++' and 'random_from_data' initialisations put responsibility on
    n_components rows only; there scikit-learn's tied covariance is taken
    about the origin, and this (D, D) term, added to the scatter before
    dividing by sum n_k, reproduces it exactly.
    """
    g = total_weight * (data_mean - center) - S1.sum(axis=0)
    c = center
    return (total_weight - R.sum()) * np.outer(c, c) + np.outer(g, c) + np.outer(c, g)
