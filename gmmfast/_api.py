"""The functional API: ``gmmfast.fit``."""
from . import _em


def fit(X, n_components=1, *, sample_weight=None, **options):
    """Fit a Gaussian mixture by EM and return its parameters and record.

    The thin functional core that :class:`gmmfast.GaussianMixture` is built on:
    the same validation, the same EM, without an estimator object.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : int, default=1
    sample_weight : array-like of shape (n_samples,), default=None
    **options
        Any other constructor parameter of :class:`gmmfast.GaussianMixture`
        (covariance_type, tol, reg_covar, max_iter, n_init, init_params,
        weights_init, means_init, precisions_init, random_state, verbose,
        verbose_interval, n_threads). ``warm_start`` is not accepted here.

    Returns
    -------
    FitResult
        ``weights``, ``means``, ``covariances``, ``precisions_cholesky``,
        ``precisions``, ``converged``, ``n_iter``, ``lower_bound``,
        ``lower_bounds`` (scikit-learn's meaning, without the trailing
        underscores).
    """
    from ._mixture import GaussianMixture

    if "warm_start" in options:
        raise TypeError(
            "gmmfast.fit() does not take warm_start; use "
            "GaussianMixture(warm_start=True) to continue a fit."
        )
    est = GaussianMixture(n_components=n_components, **options)
    est._validate_params()
    X, sample_weight, fit_options = est._validate_fit_data(X, sample_weight)
    return _em.fit_em(X, sample_weight, **fit_options)
