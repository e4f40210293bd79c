"""GaussianMixtureImputer: fill missing values from a Gaussian mixture fitted
on the observed entries (scikit-learn's imputer conventions)."""

from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _api
from ._mixture import GaussianMixture

_PASSED = ("n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
           "init_params", "random_state", "n_threads")

class GaussianMixtureImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Replace NaN by its conditional expectation under a Gaussian mixture.

    ``fit`` fits ``GaussianMixture(nan_policy='marginalize')`` on the
    observed entries of X (exact EM, data missing at random); ``transform``
    returns a copy of X where each NaN is sum_k p(k | x_o) E[x_m | x_o, k],
    the observed entries kept. Unlike a column mean (SimpleImputer), the fill
    follows each row's observed coordinates and the clusters.

    Parameters
    ----------
    n_components, covariance_type, tol, reg_covar, max_iter, n_init,
    init_params, random_state, n_threads
        As for :class:`gmmfast.GaussianMixture`.

    Attributes
    ----------
    mixture_ : GaussianMixture, the fitted mixture
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when X has feature names.
    """

    _parameter_constraints: dict = {name: _api.PARAMETER_CONSTRAINTS[name]
                                    for name in _PASSED}

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3,
                 reg_covar=1e-6, max_iter=100, n_init=1, init_params="kmeans",
                 random_state=None, n_threads=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.n_threads = n_threads

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture on the observed entries of X."""
        X = validate_data(self, X, dtype=["float64", "float32"], order="C",
                          ensure_all_finite="allow-nan", ensure_min_samples=2)
        params = {name: getattr(self, name) for name in _PASSED}
        self.mixture_ = GaussianMixture(nan_policy="marginalize", **params).fit(
            X, sample_weight=sample_weight)
        return self

    def transform(self, X):
        """A copy of X with its NaN entries imputed."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=["float64", "float32"], order="C",
                          ensure_all_finite="allow-nan", reset=False)
        return self.mixture_.impute(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
