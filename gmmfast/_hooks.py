"""scikit-learn's BaseMixture hooks that need nothing but a model's
``_estimate_log_prob(X)`` and ``_estimate_log_weights()``: the same code as
scikit-learn's (sklearn/mixture/_base.py), for numpy arrays. A mixin for the
estimators (GaussianMixture, BayesianGaussianMixture), which provide those
two.

These hooks build n_samples x n_components arrays: that is their contract
(subclasses and other libraries call them, and scikit-learn's test helpers
do). ``fit`` and the prediction methods never call them.
"""
import numpy as np
from scipy.special import logsumexp


class MixtureHooksMixin:
    """``_estimate_weighted_log_prob``, ``_estimate_log_prob_resp`` and
    ``_e_step`` with scikit-learn's signatures and return values."""

    def _estimate_weighted_log_prob(self, X, xp=None):
        """log P(X | Z) + log weights, shape (n_samples, n_components)."""
        return self._estimate_log_prob(X) + self._estimate_log_weights()

    def _estimate_log_prob_resp(self, X, xp=None):
        """(log p(x_i) of shape (n_samples,), log responsibilities of shape
        (n_samples, n_components))."""
        weighted_log_prob = self._estimate_weighted_log_prob(X)
        log_prob_norm = logsumexp(weighted_log_prob, axis=1)
        with np.errstate(under="ignore"):
            log_resp = weighted_log_prob - log_prob_norm[:, np.newaxis]
        return log_prob_norm, log_resp

    def _e_step(self, X, xp=None):
        """(mean log p(x_i), a numpy scalar; log responsibilities)."""
        log_prob_norm, log_resp = self._estimate_log_prob_resp(X)
        return np.mean(log_prob_norm), log_resp
