"""The scikit-learn-compatible BayesianGaussianMixture: parameters, fitted
attributes, methods and BaseMixture's hooks. The maths is in
gmmfast/_bayesian.py; the loop (n_init, warm start, stopping rule, verbose)
is the EM loop of gmmfast/_em.py; the data goes through gmmfast/_source.py,
so memmaps and Dask arrays are fitted like in-memory arrays."""
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _api, _bayesian, _covariance, _em, _missing, _persist, _source, _stats
from ._hooks import MixtureHooksMixin
from ._threads import blas_single_thread
from ._validation import check_sample_weight

_PARAMS_ATTRIBUTES = (
    "weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_",
    "covariances_", "precisions_cholesky_",
)
_FIT_ATTRIBUTES = _PARAMS_ATTRIBUTES + (
    "weights_", "precisions_", "converged_", "n_iter_", "lower_bound_", "lower_bounds_",
    "weight_concentration_prior_", "mean_precision_prior_", "mean_prior_",
    "degrees_of_freedom_prior_", "covariance_prior_",
    "n_features_in_", "feature_names_in_",
)
# what a failed fit or partial_fit restores
_STATE_ATTRIBUTES = _FIT_ATTRIBUTES + ("_online_state",)

_BASE_PARAMETERS = ("n_components", "tol", "reg_covar", "max_iter", "n_init",
                    "init_params", "random_state", "warm_start", "verbose",
                    "verbose_interval", "covariance_type", "n_threads",
                    "learning_decay", "learning_offset")


class BayesianGaussianMixture(MixtureHooksMixin, DensityMixin, BaseEstimator):
    """Variational Bayesian Gaussian mixture (drop-in for scikit-learn's).

    Same parameters, attributes, methods and answers as
    :class:`sklearn.mixture.BayesianGaussianMixture`; see its documentation.
    Each iteration reads X once in the same Cython kernel as
    :class:`gmmfast.GaussianMixture` (the variational E-step is the same
    Mahalanobis block work with other per-component constants) and keeps only
    K x D x D statistics: fitting allocates nothing that grows with n_samples.
    X may be a ``numpy.memmap`` or a ``dask.array.Array``, as for
    GaussianMixture; float32 is kept.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
    reg_covar : float, default=1e-6
    max_iter : int, default=100
    n_init : int, default=1
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}, \
default='dirichlet_process'
    weight_concentration_prior : float or None, default=None (1 / n_components)
    mean_precision_prior : float or None, default=None (1)
    mean_prior : array-like of shape (n_features,), default=None (the data's mean)
    degrees_of_freedom_prior : float or None, default=None (n_features)
    covariance_prior : float or array-like, default=None (the data's covariance)
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
    verbose : int, default=0
    verbose_interval : int, default=10
    n_threads : int or None, default=None
        OpenMP threads for the kernels; None or -1 uses every core.
    learning_decay : float in (0.5, 1], default=0.6
        ``partial_fit`` only: kappa in the step size
        rho_t = (t + learning_offset) ** -kappa (as GaussianMixture's).
    learning_offset : float >= 0, default=2.0
        ``partial_fit`` only: t0 in the step size above.
    nan_policy : {'raise', 'marginalize'}, default='raise'
        As GaussianMixture's: 'marginalize' treats NaN entries as missing at
        random. The missing coordinates become latent variables of the
        variational model, q(x_m | z = k) Gaussian (README, "Missing values").

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
    weight_concentration_ : ndarray, or a tuple of two (dirichlet_process)
    mean_precision_, degrees_of_freedom_ : ndarray (tied: degrees_of_freedom_ is a number)
    converged_, n_iter_, lower_bound_, lower_bounds_
    weight_concentration_prior_, mean_precision_prior_, mean_prior_,
    degrees_of_freedom_prior_, covariance_prior_
    n_features_in_, feature_names_in_

    Notes
    -----
    ``sample_weight`` (an extension: scikit-learn's has none) counts
    observations: integer weights give the model of the repeated rows, and
    the default priors are the weighted mean and the weighted covariance with
    ddof=1 (so the total weight must exceed 1 unless covariance_prior is set).
    """

    _parameter_constraints: dict = {
        **{name: _api.PARAMETER_CONSTRAINTS[name] for name in _BASE_PARAMETERS},
        "weight_concentration_prior_type": [StrOptions(set(_bayesian.PRIOR_TYPES))],
        "weight_concentration_prior": [None, Interval(Real, 0.0, None, closed="neither")],
        "mean_precision_prior": [None, Interval(Real, 0.0, None, closed="neither")],
        "mean_prior": [None, "array-like"],
        "degrees_of_freedom_prior": [None, Interval(Real, 0.0, None, closed="neither")],
        "covariance_prior": [None, "array-like", Interval(Real, 0.0, None, closed="neither")],
        "nan_policy": _api.PARAMETER_CONSTRAINTS["nan_policy"],
    }

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_threads=None,
        learning_decay=0.6,
        learning_offset=2.0,
        nan_policy="raise",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.nan_policy = nan_policy

    # ------------------------------------------------------------------ fit

    def _validate_params(self):
        """scikit-learn's constraint checks, plus: no bool where a count is due."""
        super()._validate_params()
        _api.check_integer_parameters(self.get_params(deep=False), type(self).__name__)

    def _params(self):
        return _bayesian.BGMParams(*(getattr(self, a) for a in _PARAMS_ATTRIBUTES))

    def _warm_start_from(self, n_features):
        if not (self.warm_start and hasattr(self, "converged_")):
            return None
        if self.means_.shape != (self.n_components, n_features) or \
                self.precisions_cholesky_.shape != _covariance.get(
                    self.covariance_type).shape(self.n_components, n_features) or \
                isinstance(self.weight_concentration_, tuple) != (
                    self.weight_concentration_prior_type == "dirichlet_process"):
            raise ValueError(
                "warm_start=True continues from the previous fit, whose parameters "
                f"have shape means_={self.means_.shape} and covariance_type or "
                "weight_concentration_prior_type was different or "
                "n_components/n_features changed; set warm_start=False to start afresh."
            )
        return self._params(), self.lower_bound_

    def _fit(self, X, sample_weight):
        """Validate, fit, and switch to the new fit all at once; on any
        exception the estimator is left exactly as it was."""
        saved = self._save_state()
        try:
            with blas_single_thread():
                X = _source.validate_X(X, self, reset=True, ensure_min_samples=2,
                                       allow_nan=self._allow_nan)
                result = fit_arrays(X, sample_weight, self.get_params(deep=False),
                                    self._warm_start_from(X.shape[1]))
            self.__dict__.pop("_online_state", None)  # a fit ends a stream
            self.__dict__.update(result)
        except BaseException:
            self._restore_state(saved)
            raise
        return X

    def _save_state(self):
        return {a: self.__dict__[a] for a in _STATE_ATTRIBUTES if a in self.__dict__}

    def _restore_state(self, saved):
        for a in _STATE_ATTRIBUTES:
            self.__dict__.pop(a, None)
        self.__dict__.update(saved)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the variational posterior (best of ``n_init`` runs).

        Parameters
        ----------
        X : array-like, numpy.memmap or dask.array.Array of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights counting observations (integer weights act
            as repeated rows).

        Returns
        -------
        self
        """
        self._fit(X, sample_weight)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most likely component of each row of X."""
        X = self._fit(X, sample_weight)
        return self._predict(X, labels=True)[2]

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of streaming variational Bayes on a mini-batch.

        Each call reads its batch once (one variational E-step), blends the
        batch's sufficient statistics per unit weight into running ones,
        s <- (1 - rho_t) s + rho_t s_batch with GaussianMixture's step size
        rho_t = (t + learning_offset) ** (-learning_decay), and sets the
        posterior to the prior updated by the running statistics scaled to
        the total weight seen so far (stochastic variational inference on the
        natural parameters, the stream so far standing for the data set).

        The first call starts the stream: the priors are taken from its
        batch (as ``fit`` takes them from X), the start is drawn with
        ``init_params``/``random_state``, then a step with rho = 1. ``fit``
        ends a stream, and a stream always starts afresh (a ``fit`` is not
        continued, whatever ``warm_start``). ``n_init``, ``max_iter`` and
        ``tol`` do not apply.

        Afterwards ``n_iter_`` counts the stream's batches, ``lower_bounds_``
        holds each batch's mean (weighted) ``score_samples`` under the
        posterior before its step, ``lower_bound_`` the last one, and
        ``converged_`` is False.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The batch (after the first: in the model's dtype).
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Weights counting observations, as in ``fit``.

        Returns
        -------
        self
        """
        saved = self._save_state()
        try:
            self._partial_fit(X, sample_weight)
        except BaseException:
            self._restore_state(saved)
            raise
        return self

    def _partial_fit(self, X, sample_weight):
        stream = self.__dict__.get("_online_state")
        params = self.get_params(deep=False)
        if stream is None:
            X = _source.validate_X(X, self, reset=True, ensure_min_samples=2,
                                   allow_nan=self._allow_nan)
            _api.check_n_samples(X.shape[0], self.n_components)
            mean_prior, covariance_prior = _bayesian.check_prior_arguments(
                params, X.shape[1])
            data = _source.make_source(
                X, sample_weight, covariance_type=self.covariance_type,
                n_components=self.n_components, n_threads=self.n_threads,
                rescale_weights=False, nan_policy=self.nan_policy, fitting=True)
            priors = _bayesian.priors_from_data(data, params, mean_prior, covariance_prior)
            model = _bayesian.BGMModel(data, self.n_components, self.covariance_type,
                                       self.reg_covar, priors)
            with blas_single_thread():
                start = model.initial_params(check_random_state(self.random_state),
                                             self.init_params)
            state, total_weight, lower_bounds = None, 0.0, []
            sample_weight = data.sample_weight
        else:
            state, total_weight, priors = stream
            if state.covariance_type != self.covariance_type or \
                    state.R.shape[0] != self.n_components or \
                    priors.weight_concentration_prior_type != \
                    self.weight_concentration_prior_type:
                raise ValueError(
                    "partial_fit continues a stream of a model with "
                    f"n_components={state.R.shape[0]}, covariance_type="
                    f"{state.covariance_type!r}, weight_concentration_prior_type="
                    f"{priors.weight_concentration_prior_type!r}, but the estimator "
                    "now has others; call fit, or start a new stream on a fresh "
                    "estimator (sklearn.base.clone).")
            X = _source.validate_X(X, self, reset=False, dtype=self.means_.dtype,
                                   allow_nan=self._allow_nan)
            sample_weight = check_sample_weight(sample_weight, X.shape[0], 1, rescale=False)
            start = self._params()
            lower_bounds = list(self.lower_bounds_)
        cfg = _stats.kernel_config(X.shape[1], self.covariance_type, self.n_threads,
                                   self.n_components, X.dtype)
        new, state, total_weight, lower_bound = _bayesian.online_step(
            X, sample_weight, start, state, total_weight, priors=priors,
            covariance_type=self.covariance_type, reg_covar=self.reg_covar, cfg=cfg,
            learning_decay=self.learning_decay, learning_offset=self.learning_offset,
            missing=self._allow_nan and _missing.has_nan(X))
        lower_bounds.append(float(lower_bound))
        out = _attributes(new, self.covariance_type, priors.weight_concentration_prior_type)
        out.update(priors.as_dict())
        out.update(converged_=False, n_iter_=len(lower_bounds),
                   lower_bound_=float(lower_bound), lower_bounds_=lower_bounds,
                   _online_state=(state, total_weight, priors))
        self.__dict__.update(out)

    # -------------------------------------------------------------- predict

    def _kernel_params(self, dtype):
        return _bayesian.kernel_params(self._params(), self.covariance_type,
                                       self.weight_concentration_prior_type, dtype)

    def _source(self, X, sample_weight=None):
        return _source.make_source(
            X, sample_weight, covariance_type=self.covariance_type,
            n_components=self.n_components, n_threads=self.n_threads,
            min_positive_weights=1, nan_policy=self.nan_policy)

    def _predict(self, X, logp=False, resp=False, labels=False):
        return self._source(X).predict(self._kernel_params(X.dtype), logp=logp,
                                       resp=resp, labels=labels)

    @property
    def _allow_nan(self):
        return self.nan_policy == "marginalize"

    def _check_predict_input(self, X):
        check_is_fitted(self)
        return _source.validate_X(X, self, reset=False, allow_nan=self._allow_nan)

    def score_samples(self, X):
        """scikit-learn's score_samples: logsumexp_k of the weighted log
        probabilities, shape (n_samples,) (a Dask array for a Dask X)."""
        X = self._check_predict_input(X)
        return self._predict(X, logp=True)[0]

    def score(self, X, y=None, sample_weight=None):
        """Mean (weighted) of score_samples, a float."""
        X = self._check_predict_input(X)
        return self._source(X, sample_weight).mean_log_likelihood(
            self._kernel_params(X.dtype))

    def predict(self, X):
        """Most likely component of each row of X, shape (n_samples,)."""
        X = self._check_predict_input(X)
        return self._predict(X, labels=True)[2]

    def predict_proba(self, X):
        """Responsibilities, shape (n_samples, n_components)."""
        X = self._check_predict_input(X)
        return self._predict(X, resp=True)[1]

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture (scikit-learn's algorithm).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features), float64
        y : ndarray of shape (n_samples,), component labels
        """
        check_is_fitted(self)
        if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, Integral):
            raise TypeError(
                f"n_samples must be an int, got {type(n_samples).__name__} {n_samples!r}."
            )
        if n_samples < 1:
            raise ValueError(
                "Invalid value for 'n_samples': %d . The sampling requires at "
                "least one sample." % n_samples
            )
        rng = check_random_state(self.random_state)
        n_samples_comp = rng.multinomial(n_samples, self.weights_.astype(np.float64))
        X = _covariance.get(self.covariance_type).sample(
            rng, self.means_, self.covariances_, n_samples_comp)
        y = np.concatenate([
            np.full(int(n), i, dtype=np.int64) for i, n in enumerate(n_samples_comp)
        ])
        return np.asarray(X, dtype=np.float64), y

    # ---------------------------------------------------------- persistence

    def save(self, path):
        """Save the fitted model to ``path`` as a plain ``.npz`` file, as
        ``GaussianMixture.save`` does (gmmfast/_persist.py has the layout).

        Numbers and strings only (no pickle): ``gmmfast.load(path)`` reads it
        back as a BayesianGaussianMixture with ``allow_pickle=False``. The
        plain constructor parameters, ``mean_prior``/``covariance_prior`` and
        every fitted attribute (the priors and the variational parameters
        included) are stored, dtypes preserved. A ``partial_fit`` stream's
        running statistics are not: ``partial_fit`` on a loaded model starts
        a new stream. ``path`` (str or os.PathLike; ``.npz`` appended when
        missing) and the return value (the path written, a str) are
        ``GaussianMixture.save``'s.
        """
        check_is_fitted(self)
        fitted = {a: self.__dict__[a] for a in _FIT_ATTRIBUTES if a in self.__dict__}
        return _persist.write_model(self.get_params(deep=False),
                                    _persist.bgm_entries(fitted), path, _persist.BGM_SCHEMA)

    # ------------------------------------------------ BaseMixture's hooks
    # scikit-learn's signatures and return values; these build n_samples x
    # n_components arrays (their contract). fit itself never calls them.

    def _check_parameters(self, X, xp=None):
        """Set the ``*_prior_`` attributes from X (scikit-learn's checks)."""
        X = np.asarray(X)
        mean_prior, covariance_prior = _bayesian.check_prior_arguments(
            self.get_params(deep=False), X.shape[1])
        data = self._source(np.ascontiguousarray(X))
        priors = _bayesian.priors_from_data(data, self.get_params(deep=False), mean_prior,
                                            covariance_prior)
        self.__dict__.update(priors.as_dict())

    def _priors(self):
        return _bayesian.Priors(
            self.weight_concentration_prior_type, self.weight_concentration_prior_,
            self.mean_precision_prior_, self.mean_prior_, self.degrees_of_freedom_prior_,
            self.covariance_prior_)

    def _gaussian_from_resp(self, X, resp):
        """scikit-learn's ``_estimate_gaussian_parameters`` (nk, xk, sk) of
        responsibilities whose rows sum to one, by the kernels' statistics."""
        X = np.ascontiguousarray(X)
        data = self._source(X)
        cov = _covariance.get(self.covariance_type)
        eps = float(np.finfo(np.asarray(resp).dtype).eps)
        blocks = [(0, X.shape[0], resp)]
        center = data.center
        shift = np.tile(data.mean, (self.n_components, 1))
        stats = _stats.stats_from_resp(X, None, blocks, shift, center, cov, data.cfg)
        if cov.uses_scatter:
            stats = (stats[0], stats[1], data.T)
        else:
            # once more around the components' means: no cancellation
            shift = np.ascontiguousarray(
                cov.params_from_stats(*stats, shift, self.reg_covar, eps)[1], dtype=X.dtype)
            stats = _stats.stats_from_resp(X, None, blocks, shift, center, cov, data.cfg)
        return cov.params_from_stats(*stats, shift.astype(np.float64), self.reg_covar, eps)

    def _set_from_gaussian(self, nk, xk, sk, dtype):
        params = _bayesian.variational_m_step(
            nk, xk, sk, self._priors(), self.covariance_type,
            float32=(dtype == np.float32)).astype(dtype)
        self._set_parameters(params.as_tuple())

    def _initialize(self, X, resp):
        """The variational M-step of the initial responsibilities."""
        self._set_from_gaussian(*self._gaussian_from_resp(X, resp), np.asarray(X).dtype)

    def _m_step(self, X, log_resp, xp=None):
        """The variational M-step of exp(log_resp)."""
        self._set_from_gaussian(*self._gaussian_from_resp(X, np.exp(log_resp)),
                                np.asarray(X).dtype)

    def _estimate_log_weights(self, xp=None):
        """E[log pi_k], shape (n_components,)."""
        return _bayesian.log_weights(self.weight_concentration_,
                                     self.weight_concentration_prior_type)

    def _estimate_log_prob(self, X, xp=None):
        """Per-component variational log probabilities, (n_samples, n_components)."""
        X = np.asarray(X)
        n_features = X.shape[1]
        cov = _covariance.get(self.covariance_type)
        factors = cov.per_component(np.asarray(self.precisions_cholesky_, dtype=np.float64),
                                    self.n_components, n_features)
        X64 = X.astype(np.float64)
        maha = np.stack([
            np.sum(np.square((X64 - mu) @ u), axis=1)
            for mu, u in zip(np.asarray(self.means_, dtype=np.float64), factors)
        ], axis=1)
        const = _bayesian.log_prob_constant(self._params(), self.covariance_type, n_features)
        # log_prob_constant holds -D/2 log(2 pi); scikit-learn's order of terms
        return (-0.5 * maha + const).astype(X.dtype, copy=False)

    def _compute_lower_bound(self, log_resp, log_prob_norm):
        """scikit-learn's lower bound of the current parameters."""
        return _bayesian.lower_bound(self._params(), self._priors(), self.covariance_type,
                                     float(np.sum(np.exp(log_resp) * log_resp)))

    def _get_parameters(self):
        return self._params().as_tuple()

    def _set_parameters(self, params, xp=None):
        params = _bayesian.BGMParams(*params)
        self.__dict__.update(_attributes(params, self.covariance_type,
                                         self.weight_concentration_prior_type))


def _attributes(params, covariance_type, prior_type):
    """The parameter attributes, weights_ and precisions_ included."""
    dtype = params.means.dtype
    out = dict(zip(_PARAMS_ATTRIBUTES, params.as_tuple()))
    out["weights_"] = _bayesian.mixture_weights(params.weight_concentration,
                                                prior_type).astype(dtype)
    out["precisions_"] = _covariance.get(covariance_type).precisions(
        params.precisions_cholesky).astype(dtype)
    return out


def fit_arrays(X, sample_weight, params, warm_start_from=None):
    """Variational inference on validated X with validated ``params`` (every
    constructor parameter); returns the fitted attributes (a dict)."""
    n_samples, n_features = X.shape
    n_components = params["n_components"]
    covariance_type = params["covariance_type"]
    _api.check_n_samples(n_samples, n_components)
    mean_prior, covariance_prior = _bayesian.check_prior_arguments(params, n_features)
    with _api.seeded_random_state(params["random_state"]) as random_state:
        data = _source.make_source(
            X, sample_weight, covariance_type=covariance_type, n_components=n_components,
            n_threads=params["n_threads"], random_state=random_state, rescale_weights=False,
            nan_policy=params["nan_policy"], fitting=True)
        priors = _bayesian.priors_from_data(data, params, mean_prior, covariance_prior)
        model = _bayesian.BGMModel(data, n_components, covariance_type, params["reg_covar"],
                                   priors)
        best, lower_bound, lower_bounds, n_iter, converged = _em.fit_model(
            data, model, tol=params["tol"], max_iter=params["max_iter"],
            n_init=params["n_init"], init_params=params["init_params"],
            random_state=random_state, warm_start_from=warm_start_from,
            verbose=params["verbose"], verbose_interval=params["verbose_interval"])
    out = _attributes(best, covariance_type, priors.weight_concentration_prior_type)
    out.update(priors.as_dict())
    out.update(converged_=bool(converged), n_iter_=int(n_iter),
               lower_bound_=float(lower_bound),
               lower_bounds_=[float(v) for v in lower_bounds])
    return out
