"""One object per covariance type: everything that differs between 'full',
'tied', 'diag' and 'spherical' lives here, and nowhere else.

Each object holds its parameter shapes, the layout of its statistics, the
M-step from shifted sufficient statistics, the re-centring of statistics on
another shift, the log-determinant, the parameter count, the conversions
between covariances, precisions and their Cholesky factors, sampling, the
kernel's code and parameter layout, and BayesianGaussianMixture's per-type
pieces (the Wishart update, the default covariance prior, the trace of the
precisions against a statistic; gmmfast/_bayesian.py). Callers look one up with
``get(covariance_type)`` and never branch on the name.

Conventions are scikit-learn's: ``precisions_cholesky`` holds, per component,
the upper-triangular U with precision = U U^T (full, tied), or the square root
of the precisions (diag, spherical). Everything is computed in float64;
callers cast to the data's dtype.

Statistics (gmmfast/_kernels.pyx): R_k = sum_i w_i r_ik, S1_k = sum_i w_i r_ik
(x_i - c_k), and the second-order statistic S2 (full: (K, D, D); diag: (K, D);
spherical: (K,)) taken around shifts c_k (the current means). 'tied' takes
every statistic around one centre c and replaces S2 by the scatter
T = sum_i w_i (x_i - c)(x_i - c)^T, which does not depend on the parameters
and is computed once per fit (``uses_scatter``).

Adding a covariance type: a subclass here, registered in ``_TYPES``, and
its kernel in the path table (gmmfast/_dispatch.py) and the C kernels.
"""
import numpy as np
from scipy import linalg

from . import _kernels
from ._dispatch import KERNEL_CODES
from ._maths import ILL_DEFINED_MESSAGE, FLOAT32_HINT, symmetrize_upper
from ._threads import algebra_threads


# up to this many features the M-step's per-component algebra runs in the
# compiled loops of gmmfast/_kernels.pyx (a few microseconds); beyond,
# LAPACK's and BLAS's blocked routines, a component per thread of the fit
# (``_threads.m_step_threads``), and numpy
SMALL_ALGEBRA_D = 16


def small_algebra(n_features):
    """True when the M-step's algebra for this many features runs compiled."""
    return n_features <= SMALL_ALGEBRA_D


def _cholesky_precisions(stack, message):
    """U (upper) with U U^T = Sigma^-1 for each Sigma of a (n, D, D) stack."""
    if stack.shape[-1] <= SMALL_ALGEBRA_D:
        out, ok = _kernels.cholesky_precisions(np.ascontiguousarray(stack, dtype=np.float64))
        if not ok:
            raise ValueError(message)
        return out
    if not np.all(np.isfinite(stack)):
        raise ValueError(message)
    # Sigma = L L^T  =>  Sigma^-1 = L^-T L^-1 = U U^T with U = L^-T: LAPACK's
    # potrf and trtri called from compiled code (the scipy.linalg wrappers'
    # checks cost more than a small factorisation), the components on the
    # fit's threads (each factorisation is single-threaded LAPACK)
    out, ok = _kernels.lapack_cholesky_precisions(
        np.ascontiguousarray(stack, dtype=np.float64), algebra_threads())
    if not ok:
        # not positive definite, or too close to singular
        raise ValueError(message)
    return out


def _f64(a):
    """``a`` as C-contiguous float64 (no copy when it is already)."""
    return np.ascontiguousarray(a, dtype=np.float64)


def _upper_cholesky(p):
    """U upper with p = U U^T (flip, lower Cholesky, flip back)."""
    return np.linalg.cholesky(p[::-1, ::-1])[::-1, ::-1]


def _covariances_of_factors(stack):
    """(U U^T)^-1 = U^-T U^-1 for each U of a (n, D, D) stack."""
    eye = np.eye(stack.shape[-1])
    out = np.empty_like(stack)
    for k in range(stack.shape[0]):
        u_inv = linalg.solve_triangular(stack[k], eye, lower=False)
        out[k] = u_inv.T @ u_inv
    return out


def _trace_precisions(stack, M):
    """sum_k tr(U_k U_k^T M_k) for upper-triangular U_k and symmetric M_k,
    (n, D, D) stacks: compiled loops up to 16 features, beyond them gemm
    blocks of the triangle per component on the fit's algebra threads."""
    stack = np.ascontiguousarray(stack, dtype=np.float64)
    M = np.ascontiguousarray(M, dtype=np.float64)
    if stack.shape[-1] <= SMALL_ALGEBRA_D:
        return _kernels.trace_upper_products(stack, M)
    return _kernels.trace_upper_blocked(stack, M, algebra_threads())


class Covariance:
    """The interface; see the module docstring. Subclasses set ``name``."""

    name = None
    uses_scatter = False   # tied: S2 is the once-per-fit scatter T
    matrix = False         # dense (D, D) covariances and triangular factors

    def stack(self, a):
        """The matrix types' per-component (n, D, D) view of a parameter."""
        raise TypeError(f"{self.name} covariances are not matrices")

    @property
    def code(self):
        """The kernels' covariance type code."""
        return KERNEL_CODES[self.name]

    # -- shapes --------------------------------------------------------------

    def shape(self, n_components, n_features):
        """Shape of covariances_/precisions_/precisions_cholesky_."""
        raise NotImplementedError

    def s2_size(self, n_components, n_features):
        """Length of one thread's second-order statistics slab."""
        raise NotImplementedError

    def s2_from_slab(self, S2, n_components, n_features):
        """The summed slab (flat) as the M-step takes it."""
        raise NotImplementedError

    def n_covariance_parameters(self, n_components, n_features):
        raise NotImplementedError

    def n_parameters(self, n_components, n_features):
        """Free parameters of the mixture (for BIC/AIC)."""
        return int(self.n_covariance_parameters(n_components, n_features)
                   + n_features * n_components + n_components - 1)

    # -- conversions -----------------------------------------------------------

    def precision_cholesky(self, covariances, float32=False):
        """precisions_cholesky_ from covariances_; raises ValueError naming
        reg_covar when a covariance is not positive definite."""
        raise NotImplementedError

    def precisions(self, precisions_cholesky):
        """precisions_ from precisions_cholesky_."""
        raise NotImplementedError

    def precision_cholesky_from_precisions(self, precisions):
        raise NotImplementedError

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        raise NotImplementedError

    def log_det(self, precisions_cholesky, n_components, n_features):
        """sum_d log U[d, d] per component: -1/2 log det Sigma_k, shape (K,)."""
        raise NotImplementedError

    def per_component(self, covariances, n_components, n_features):
        """Each component's full (D, D) covariance, (K, D, D)."""
        raise NotImplementedError

    def trace_precisions(self, precisions_cholesky, M):
        """sum_k tr(P_k M_k), P_k = U_k U_k^T the precisions of
        ``precisions_cholesky`` (float64) and M a second-order statistic in
        the covariances' layout (diag: its diagonal; spherical: its trace;
        tied: one matrix for every component)."""
        return float(np.sum(self.precisions(precisions_cholesky) * M))

    # -- BayesianGaussianMixture (gmmfast/_bayesian.py) -------------------------

    def default_covariance_prior(self, covariance):
        """scikit-learn's default covariance_prior from the data's (D, D)
        covariance."""
        raise NotImplementedError

    def wishart(self, nk, xk, sk, priors, mean_precision):
        """scikit-learn's ``_estimate_wishart_*``: the posterior's degrees of
        freedom and covariances from (nk, xk, sk) of
        ``_estimate_gaussian_parameters`` and the priors (gmmfast/_bayesian.py,
        ``Priors``)."""
        raise NotImplementedError

    # -- kernel layout ---------------------------------------------------------

    def statistics_center(self, means, weights):
        """The common centre of the statistics (tied), or None: each
        component's statistics are then taken around its own mean."""
        return None

    def kernel_layout(self, means, prec, center):
        """(center (D,), mproj (K, D)) as the kernels take them."""
        return means[0], means

    def shift(self, means, center):
        """The c_k the statistics are taken around, float64 (K, D)."""
        return np.asarray(means, dtype=np.float64)

    # -- M-step and statistics algebra -----------------------------------------

    def params_from_stats(self, R, S1, S2, shift, reg_covar, eps, anchor=None):
        """M-step from shifted sufficient statistics (all float64).

        R (K,), S1 (K, D), S2 per type (tied: the scatter T); shift (K, D)
        the c_k they were taken around; eps the data dtype's machine epsilon
        (n_k = R_k + 10 eps, as scikit-learn); anchor (K, D) or None, where the
        10 eps guard pulls a mean (None: the shift).

        Returns nk (K,), means (K, D), covariances (per type).

        mu_k = (R_k c_k + S1_k) / n_k and, with d_k = mu_k - c_k,
        sum_i w_i r_ik (x_i - mu_k)(x_i - mu_k)^T
            = S2_k - S1_k d_k^T - d_k S1_k^T + R_k d_k d_k^T,
        exact for any shift and free of cancellation when c_k is near mu_k
        (never the raw moments E[x x^T] - mu mu^T).
        """
        nk, d, means = self._moments(R, S1, shift, eps, anchor)
        return nk, means, self._covariances(R, S1, S2, d, nk, reg_covar)

    def _moments(self, R, S1, shift, eps, anchor):
        """``params_from_stats``' nk, d_k = mu_k - c_k and means."""
        nk = R + 10.0 * eps
        # mu_k = a_k + sum_i w r (x_i - a_k) / n_k, with the anchor a_k (the
        # shift, or the previous mean): the guard shrinks the step from the
        # anchor, not the position. scikit-learn's sum_i w r x_i / n_k pulls
        # every mean towards the origin by 10 eps / n_k of its distance from
        # it: far from the origin, in float32, more than a collapsed
        # component's width, and an empty component jumps to the origin. The
        # two agree to 10 eps / n_k.
        if anchor is None or anchor is shift:
            # (the anchor is the shift: a - c = 0 and the general form is
            # this one, exactly, up to the sign of a zero)
            d = S1 / nk[:, None]
        else:
            anchor = np.asarray(anchor, dtype=np.float64)
            # sum w r (x - a) = S1 - R (a - c)
            d = anchor - shift + (S1 - R[:, None] * (anchor - shift)) / nk[:, None]
        return nk, d, shift + d

    def _covariances(self, R, S1, S2, d, nk, reg_covar):
        raise NotImplementedError

    def wishart_from_stats(self, R, S1, S2, shift, reg_covar, eps, priors, anchor=None):
        """BayesianGaussianMixture's M-step from shifted statistics up to the
        precisions' factors: ``params_from_stats`` then ``wishart``. Returns
        (nk, xk, mean_precision (beta_k), degrees_of_freedom, covariances),
        float64."""
        nk, xk, sk = self.params_from_stats(R, S1, S2, shift, reg_covar, eps, anchor=anchor)
        mean_precision = priors.mean_precision_prior + nk
        return (nk, xk, mean_precision) + tuple(self.wishart(nk, xk, sk, priors,
                                                              mean_precision))

    def em_params(self, R, S1, S2, shift, reg_covar, eps, anchor=None, total=None,
                  float32=False):
        """EM's M-step: ``params_from_stats``, the weights n_k / sum_k n_k
        (or n_k / ``total``) and ``precision_cholesky``. Returns (weights,
        means, covariances, precisions_cholesky, lognorm), float64; lognorm
        (K,) holds the next E-step's kernel constants (gmmfast/_stats.py's
        ``log_norm`` of these parameters in the data's dtype, float32 when
        ``float32``), or is None where they are left to the caller. Raises
        ValueError naming reg_covar for an ill-defined covariance.

        Up to SMALL_ALGEBRA_D features one compiled call does it all
        (gmmfast/_kernels.pyx ``em_m_step``, the numpy forms' operations in
        their order): a small fit runs this every iteration, where numpy's
        per-call costs were most of the iteration."""
        if small_algebra(S1.shape[1]):
            out = _kernels.em_m_step(
                self.code, R, S1, S2, shift,
                None if anchor is None or anchor is shift else _f64(anchor),
                reg_covar, eps, total, float32)
            if out is None:
                raise ValueError(ILL_DEFINED_MESSAGE + (FLOAT32_HINT if float32 else ""))
            return out
        nk, means, covariances = self.params_from_stats(R, S1, S2, shift, reg_covar, eps,
                                                        anchor=anchor)
        prec_chol = self.precision_cholesky(covariances, float32=float32)
        return (nk / (nk.sum() if total is None else total), means, covariances,
                prec_chol, None)

    def reshift(self, R, S1, S2, old_shift, new_shift):
        """Re-centre shifted statistics on another shift (float64, exact).

        With delta_k = c'_k - c_k and x - c'_k = (x - c_k) - delta_k:
        R' = R, S1'_k = S1_k - R_k delta_k, and
        S2'_k = S2_k - S1_k delta_k^T - delta_k S1_k^T + R_k delta_k delta_k^T
        (diag: its diagonal; spherical: its trace; tied: the scatter's, with
        g = sum_k S1_k and N = sum_k R_k). Returns new arrays.
        """
        R = np.asarray(R, dtype=np.float64)
        S1 = np.asarray(S1, dtype=np.float64)
        S2 = np.asarray(S2, dtype=np.float64)
        delta = np.broadcast_to(
            np.asarray(new_shift, dtype=np.float64) - np.asarray(old_shift, dtype=np.float64),
            S1.shape)
        return R.copy(), S1 - R[:, None] * delta, self._reshift_s2(R, S1, S2, delta)

    def _reshift_s2(self, R, S1, S2, delta):
        raise NotImplementedError

    def symmetrize(self, S2):
        """S2 after blending (exact symmetry for the matrix types)."""
        return S2

    def stats_from_params(self, weights, means, covariances, reg_covar):
        """Statistics per unit weight whose M-step gives back these
        parameters (up to its 10 eps guard): ((R, S1, S2), shift)."""
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum()
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        return (w.copy(), np.zeros_like(mu), self._s2_of(w, cov, reg_covar, mu.shape[1])), mu.copy()

    def _s2_of(self, w, cov, reg_covar, n_features):
        raise NotImplementedError

    def sample(self, rng, means, covariances, counts):
        """Rows drawn from each component (scikit-learn's algorithm)."""
        n_features = means.shape[1]
        return np.vstack([
            mean + rng.standard_normal(size=(n, n_features)) * np.sqrt(cov)
            for mean, cov, n in zip(means, covariances, counts)
        ])


class _Matrix(Covariance):
    """Shared by full and tied: dense (D, D) covariances and Cholesky factors."""

    matrix = True

    def _unstack(self, stack):
        raise NotImplementedError

    def precision_cholesky(self, covariances, float32=False):
        message = ILL_DEFINED_MESSAGE + (FLOAT32_HINT if float32 else "")
        stack = self.stack(np.asarray(covariances, dtype=np.float64))
        return self._unstack(_cholesky_precisions(stack, message))

    def precisions(self, precisions_cholesky):
        pc = np.asarray(precisions_cholesky)
        return np.matmul(pc, np.swapaxes(pc, -1, -2))

    def precision_cholesky_from_precisions(self, precisions):
        stack = self.stack(np.asarray(precisions, dtype=np.float64))
        return self._unstack(np.stack([_upper_cholesky(p) for p in stack]))

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        stack = self.stack(np.asarray(precisions_cholesky, dtype=np.float64))
        return self._unstack(_covariances_of_factors(stack))

    def symmetrize(self, S2):
        return 0.5 * (S2 + np.swapaxes(S2, -1, -2))


class Full(_Matrix):
    name = "full"

    def stack(self, a):
        return a

    def _unstack(self, stack):
        return stack

    def shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def s2_size(self, n_components, n_features):
        return n_components * n_features * n_features

    def s2_from_slab(self, S2, n_components, n_features):
        return symmetrize_upper(S2.reshape(n_components, n_features, n_features))

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) / 2.0

    def log_det(self, precisions_cholesky, n_components, n_features):
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        return np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)

    def per_component(self, covariances, n_components, n_features):
        return covariances

    def trace_precisions(self, precisions_cholesky, M):
        return _trace_precisions(precisions_cholesky, M)

    def default_covariance_prior(self, covariance):
        return covariance

    def wishart(self, nk, xk, sk, priors, mean_precision):
        # scikit-learn's per-component loop, each entry by the same
        # operations in its order (compiled: at D = 256 the numpy form's six
        # passes over the (K, D, D) stack took 1.3 ms an iteration)
        return _kernels.full_wishart(
            *(np.ascontiguousarray(a, dtype=np.float64) for a in (
                nk, xk, sk, priors.mean_prior, priors.covariance_prior)),
            priors.mean_precision_prior, priors.degrees_of_freedom_prior,
            np.ascontiguousarray(mean_precision, dtype=np.float64))

    def wishart_from_stats(self, R, S1, S2, shift, reg_covar, eps, priors, anchor=None):
        # S_k and the Wishart update in one compiled pass over the (K, D, D)
        # stack, the two calls' values (``full_wishart_stats``)
        nk, d, xk = self._moments(R, S1, shift, eps, anchor)
        mean_precision = priors.mean_precision_prior + nk
        dof, covariances = _kernels.full_wishart_stats(
            *(np.ascontiguousarray(a, dtype=np.float64) for a in (R, S1, S2, d, nk)),
            reg_covar, *(np.ascontiguousarray(a, dtype=np.float64) for a in (
                xk, priors.mean_prior, priors.covariance_prior)),
            priors.mean_precision_prior, priors.degrees_of_freedom_prior,
            np.ascontiguousarray(mean_precision, dtype=np.float64), algebra_threads())
        return nk, xk, mean_precision, dof, covariances

    def _covariances(self, R, S1, S2, d, nk, reg_covar):
        # Sigma_k = sym(S2_k - S1_k d_k^T - d_k S1_k^T + R_k d_k d_k^T) / n_k
        # + reg I in one compiled pass over the stack, at every D: numpy's
        # six passes with (K, D, D) temporaries took 7.0 against 0.7 ms at
        # K = 8, D = 256 (every iteration; 3-5x at D = 20-64), the same values;
        # the components on the fit's threads
        return _kernels.full_covariances(*(np.ascontiguousarray(a, dtype=np.float64)
                                           for a in (R, S1, S2, d, nk)), reg_covar,
                                         algebra_threads())

    def _reshift_s2(self, R, S1, S2, delta):
        outer = S1[:, :, None] * delta[:, None, :]
        S2_new = S2 - outer - np.swapaxes(outer, 1, 2)
        S2_new += R[:, None, None] * delta[:, :, None] * delta[:, None, :]
        return S2_new

    def _s2_of(self, w, cov, reg_covar, n_features):
        return w[:, None, None] * (cov - reg_covar * np.eye(n_features))

    def sample(self, rng, means, covariances, counts):
        return np.vstack([rng.multivariate_normal(mean, cov, int(n))
                          for mean, cov, n in zip(means, covariances, counts)])


class Tied(_Matrix):
    """One covariance shared by every component. The statistics are taken
    around one centre c (the data mean in a fit, the mixture mean in a
    prediction or an online step); the second-order statistic is the scatter
    T about c, which the M-step combines with the first-order statistics."""

    name = "tied"
    uses_scatter = True

    def stack(self, a):
        return a[None]

    def _unstack(self, stack):
        return stack[0]

    def shape(self, n_components, n_features):
        return (n_features, n_features)

    def s2_size(self, n_components, n_features):
        return 1  # tied uses the scatter T, computed once per fit

    def s2_from_slab(self, S2, n_components, n_features):
        return None

    def n_covariance_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) / 2.0

    def log_det(self, precisions_cholesky, n_components, n_features):
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        return np.full(n_components, np.log(np.diag(pc)).sum())

    def per_component(self, covariances, n_components, n_features):
        return np.tile(covariances, (n_components, 1, 1))

    def trace_precisions(self, precisions_cholesky, M):
        return _trace_precisions(np.asarray(precisions_cholesky)[None], np.asarray(M)[None])

    def default_covariance_prior(self, covariance):
        return covariance

    def wishart(self, nk, xk, sk, priors, mean_precision):
        n_components = xk.shape[0]
        dof = priors.degrees_of_freedom_prior + nk.sum() / n_components
        diff = xk - priors.mean_prior
        covariances = (priors.covariance_prior + sk * nk.sum() / n_components
                       + priors.mean_precision_prior / n_components
                       * np.dot((nk / mean_precision) * diff.T, diff))
        return dof, covariances / dof

    def statistics_center(self, means, weights):
        # the mixture mean: near the data, so the scatter loses no digits
        weights = np.asarray(weights, dtype=np.float64)
        return weights @ np.asarray(means, dtype=np.float64) / float(weights.sum())

    def kernel_layout(self, means, prec, center):
        # (mu_k - c) U: ||(x - mu_k) U||^2 = ||(x - c) U - (mu_k - c) U||^2
        # (asarray: float64 parameters are not copied, every EM iteration)
        mproj = ((np.asarray(means, dtype=np.float64) - np.asarray(center, dtype=np.float64))
                 @ np.asarray(prec, dtype=np.float64))
        return center, np.ascontiguousarray(mproj, dtype=means.dtype)

    def shift(self, means, center):
        # the centre in every row, as an array of its own: np.broadcast_to's
        # view costs twice as much (2.8 against 1.4 us at K = 9, D = 2), once
        # per EM iteration of every small fit
        return np.repeat(np.asarray(center, dtype=np.float64)[np.newaxis],
                         np.shape(means)[0], axis=0)

    def _covariances(self, R, S1, T, d, nk, reg_covar):
        # sum_k sum_i w r (y_i - m_k)(y_i - m_k)^T with y = x - c, m_k = mu_k - c
        # = T - S1^T m - m^T S1 + sum_k R_k m_k m_k^T   (as sum_k r_ik = 1)
        cross = S1.T @ d
        cov = T - cross - cross.T + (R[:, None] * d).T @ d
        cov = 0.5 * (cov + cov.T)
        cov /= nk.sum()
        cov.flat[::cov.shape[0] + 1] += reg_covar  # the diagonal, in any layout
        return cov

    def _reshift_s2(self, R, S1, T, delta):
        # every row's responsibilities sum to one: sum_k S1_k = sum_i w (x - c),
        # sum_k R_k = sum_i w, and T' = T - g d^T - d g^T + N d d^T
        d = delta[0]
        outer = np.outer(S1.sum(axis=0), d)
        return T - outer - outer.T + R.sum() * np.outer(d, d)

    def stats_from_params(self, weights, means, covariances, reg_covar):
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum()
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        n_components, n_features = mu.shape
        c = w @ mu
        d = mu - c
        S1 = w[:, None] * d
        # params_from_stats: Sigma = T - sum_k R_k d_k d_k^T + reg I  (N = 1)
        T = cov - reg_covar * np.eye(n_features) + S1.T @ d
        return (w.copy(), S1, 0.5 * (T + T.T)), np.tile(c, (n_components, 1))

    def origin_correction(self, R, S1, center, total_weight, data_mean):
        """Term that turns the tied scatter about ``center`` into scikit-learn's.

        scikit-learn's tied M-step is (X^T X - sum_k n_k mu_k mu_k^T) / sum n_k,
        which equals ours only when every row's responsibilities sum to one.
        Its 'k-means++' and 'random_from_data' initialisations put
        responsibility on n_components rows only; there scikit-learn's tied
        covariance is taken about the origin, and this (D, D) term, added to
        the scatter before dividing by sum n_k, reproduces it exactly.
        """
        g = total_weight * (data_mean - center) - S1.sum(axis=0)
        c = center
        return (total_weight - R.sum()) * np.outer(c, c) + np.outer(g, c) + np.outer(c, g)

    def sample(self, rng, means, covariances, counts):
        return np.vstack([rng.multivariate_normal(mean, covariances, int(n))
                          for mean, n in zip(means, counts)])


class _Vector(Covariance):
    """Shared by diag and spherical: positive variances, U = 1 / sqrt."""

    def precision_cholesky(self, covariances, float32=False):
        message = ILL_DEFINED_MESSAGE + (FLOAT32_HINT if float32 else "")
        covariances = np.asarray(covariances, dtype=np.float64)
        # positive and finite: the smallest above 0, the largest below inf
        # (a NaN makes both NaN, which fails the comparisons); two reductions
        # in place of two (K, D) temporaries, every M-step of a small fit
        if not (covariances.min() > 0.0 and covariances.max() < np.inf):
            raise ValueError(message)
        return 1.0 / np.sqrt(covariances)

    def precisions(self, precisions_cholesky):
        return np.asarray(precisions_cholesky) ** 2

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(np.asarray(precisions, dtype=np.float64))

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return 1.0 / np.asarray(precisions_cholesky, dtype=np.float64) ** 2


class Diag(_Vector):
    name = "diag"

    def shape(self, n_components, n_features):
        return (n_components, n_features)

    def s2_size(self, n_components, n_features):
        return n_components * n_features

    def s2_from_slab(self, S2, n_components, n_features):
        return S2.reshape(n_components, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features

    def log_det(self, precisions_cholesky, n_components, n_features):
        return np.log(np.asarray(precisions_cholesky, dtype=np.float64)).sum(axis=1)

    def per_component(self, covariances, n_components, n_features):
        return np.stack([np.diag(c) for c in covariances])

    def default_covariance_prior(self, covariance):
        return np.diag(covariance).copy()

    def wishart(self, nk, xk, sk, priors, mean_precision):
        dof = priors.degrees_of_freedom_prior + nk
        diff = xk - priors.mean_prior
        covariances = priors.covariance_prior + nk[:, np.newaxis] * (
            sk + (priors.mean_precision_prior / mean_precision)[:, np.newaxis]
            * np.square(diff))
        return dof, covariances / dof[:, np.newaxis]

    def _covariances(self, R, S1, S2, d, nk, reg_covar):
        return (S2 - 2.0 * d * S1 + R[:, None] * d * d) / nk[:, None] + reg_covar

    def _reshift_s2(self, R, S1, S2, delta):
        return S2 - 2.0 * delta * S1 + R[:, None] * delta * delta

    def _s2_of(self, w, cov, reg_covar, n_features):
        return w[:, None] * (cov - reg_covar)


class Spherical(_Vector):
    name = "spherical"

    def shape(self, n_components, n_features):
        return (n_components,)

    def s2_size(self, n_components, n_features):
        return n_components

    def s2_from_slab(self, S2, n_components, n_features):
        return S2

    def n_covariance_parameters(self, n_components, n_features):
        return n_components

    def log_det(self, precisions_cholesky, n_components, n_features):
        return n_features * np.log(np.asarray(precisions_cholesky, dtype=np.float64))

    def per_component(self, covariances, n_components, n_features):
        return np.stack([np.eye(n_features) * c for c in covariances])

    def default_covariance_prior(self, covariance):
        return float(np.diag(covariance).mean())

    def wishart(self, nk, xk, sk, priors, mean_precision):
        dof = priors.degrees_of_freedom_prior + nk
        diff = xk - priors.mean_prior
        covariances = priors.covariance_prior + nk * (
            sk + priors.mean_precision_prior / mean_precision * np.mean(np.square(diff), 1))
        return dof, covariances / dof

    def _covariances(self, R, S1, S2, d, nk, reg_covar):
        n_features = S1.shape[1]
        trace = S2 - 2.0 * np.einsum("kd,kd->k", d, S1) + R * np.einsum("kd,kd->k", d, d)
        return trace / (nk * n_features) + reg_covar

    def _reshift_s2(self, R, S1, S2, delta):
        return (S2 - 2.0 * np.einsum("kd,kd->k", delta, S1)
                + R * np.einsum("kd,kd->k", delta, delta))

    def _s2_of(self, w, cov, reg_covar, n_features):
        return w * n_features * (cov - reg_covar)


_TYPES = {cls.name: cls() for cls in (Full, Tied, Diag, Spherical)}
COVARIANCE_TYPES = tuple(_TYPES)


def get(covariance_type):
    """The covariance object of a type name ('full', 'tied', 'diag', 'spherical')."""
    return _TYPES[covariance_type]
