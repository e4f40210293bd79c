"""Per-component maths: the K x D^3 work, in numpy/scipy, testable alone.

Conventions are scikit-learn's: ``precisions_cholesky`` holds, per component,
the upper-triangular U with precision = U U^T (full, tied), or the square root
of the precisions (diag, spherical).

Everything here is computed in float64; callers cast to the data's dtype.
"""
import math

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

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
    """The symmetric matrix whose upper triangle S holds; S is (..., D, D)
    with zeros below the diagonal (the kernels write the upper triangle
    only)."""
    out = S + np.swapaxes(S, -1, -2)
    idx = np.arange(S.shape[-1])
    out[..., idx, idx] = S[..., idx, idx]
    return out


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
        if not np.all(np.isfinite(stack)):
            raise ValueError(message)
        out = np.empty_like(stack)
        for k in range(stack.shape[0]):
            # Sigma = L L^T  =>  Sigma^-1 = L^-T L^-1 = U U^T with U = L^-T.
            # LAPACK directly (potrf, trtri): this runs every M-step, and the
            # scipy.linalg wrappers' checks cost more than a small factorisation.
            cov_chol, info = lapack.dpotrf(stack[k], lower=1, clean=1)
            if info != 0:
                raise ValueError(message)
            inv_chol, info = lapack.dtrtri(cov_chol, lower=1)
            if info != 0 or not np.all(np.isfinite(inv_chol)):
                # not positive definite, or too close to singular
                raise ValueError(message)
            out[k] = inv_chol.T
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


def reshift_stats(R, S1, S2, old_shift, new_shift, covariance_type):
    """Re-centre shifted sufficient statistics on another shift (float64).

    Statistics taken around different shifts (two mini-batches, or a running
    sum and a new batch) must be brought to one shift before they are added.
    The algebra is exact (no raw moments): with delta_k = c'_k - c_k and
    x - c'_k = (x - c_k) - delta_k,

        R'_k  = R_k
        S1'_k = S1_k - R_k delta_k
        S2'_k = S2_k - S1_k delta_k^T - delta_k S1_k^T + R_k delta_k delta_k^T

    (diag: its diagonal, S2 - 2 delta S1 + R delta^2; spherical: its trace,
    S2 - 2 delta.S1 + R |delta|^2). Tied keeps the scatter
    T = sum_i w_i (x_i - c)(x_i - c)^T about one common centre c instead of
    S2; as every row's responsibilities sum to one, sum_k S1_k = sum_i w_i
    (x_i - c) and sum_k R_k = sum_i w_i, so with g = sum_k S1_k, N = sum_k R_k,

        T' = T - g delta^T - delta g^T + N delta delta^T.

    Parameters
    ----------
    R : ndarray of shape (n_components,)
    S1 : ndarray of shape (n_components, n_features)
    S2 : ndarray
        full (n_components, n_features, n_features); diag (n_components,
        n_features); spherical (n_components,); tied: T, (n_features,
        n_features).
    old_shift, new_shift : ndarray of shape (n_components, n_features)
        The c_k the statistics are taken around, and the c'_k wanted. Tied:
        every row is the common centre (a (n_features,) array also works).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    R, S1, S2 : new float64 arrays (the inputs are not modified), around
        new_shift.
    """
    R = np.asarray(R, dtype=np.float64)
    S1 = np.asarray(S1, dtype=np.float64)
    S2 = np.asarray(S2, dtype=np.float64)
    delta = np.broadcast_to(
        np.asarray(new_shift, dtype=np.float64) - np.asarray(old_shift, dtype=np.float64),
        S1.shape,
    )
    S1_new = S1 - R[:, None] * delta
    if covariance_type == "full":
        outer = S1[:, :, None] * delta[:, None, :]
        S2_new = S2 - outer - np.swapaxes(outer, 1, 2)
        S2_new += R[:, None, None] * delta[:, :, None] * delta[:, None, :]
    elif covariance_type == "tied":
        d = delta[0]
        g = S1.sum(axis=0)
        outer = np.outer(g, d)
        S2_new = S2 - outer - outer.T + R.sum() * np.outer(d, d)
    elif covariance_type == "diag":
        S2_new = S2 - 2.0 * delta * S1 + R[:, None] * delta * delta
    else:
        S2_new = (S2 - 2.0 * np.einsum("kd,kd->k", delta, S1)
                  + R * np.einsum("kd,kd->k", delta, delta))
    return R.copy(), S1_new, S2_new


def stats_from_params(weights, means, covariances, covariance_type, reg_covar):
    """Statistics per unit weight whose M-step gives back these parameters.

    The inverse of :func:`params_from_stats` (up to its 10 eps guard): the
    expected sufficient statistics of one unit of weight drawn from the
    mixture, around its means (tied: around the mixture mean).

    Returns
    -------
    (R, S1, S2), shift : float64; S2 is T for 'tied'; shift (n_components,
        n_features).
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu = np.asarray(means, dtype=np.float64)
    cov = np.asarray(covariances, dtype=np.float64)
    n_components, n_features = mu.shape
    if covariance_type == "tied":
        c = w @ mu
        shift = np.tile(c, (n_components, 1))
        d = mu - c
        S1 = w[:, None] * d
        # params_from_stats: Sigma = T - sum_k R_k d_k d_k^T + reg I  (N = 1)
        T = cov - reg_covar * np.eye(n_features) + S1.T @ d
        return (w.copy(), S1, 0.5 * (T + T.T)), shift
    shift = mu.copy()
    S1 = np.zeros_like(mu)
    if covariance_type == "full":
        S2 = w[:, None, None] * (cov - reg_covar * np.eye(n_features))
    elif covariance_type == "diag":
        S2 = w[:, None] * (cov - reg_covar)
    else:
        S2 = w * n_features * (cov - reg_covar)
    return (w.copy(), S1, S2), shift
