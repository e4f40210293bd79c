"""The scikit-learn-compatible estimator: parameters, fitted attributes,
methods. Fitting and predicting go through the functional core
(gmmfast/_api.py); the estimator holds the state and never asks what kind of
array it was given."""
import math
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from sklearn.mixture._base import BaseMixture

from . import (_api, _bayesian_mixture, _covariance, _missing, _online, _persist,
               _source, _stats)
from ._em import make_result
from ._hooks import MixtureHooksMixin
from ._threads import blas_single_thread
from ._validation import check_sample_weight

_FIT_ATTRIBUTES = (
    "weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
    "converged_", "n_iter_", "lower_bound_", "lower_bounds_",
    "n_features_in_", "feature_names_in_",
)
# what a failed fit or partial_fit restores
_STATE_ATTRIBUTES = _FIT_ATTRIBUTES + ("_online_state", "selection_")
# each estimator class's constructor parameter names, read once
_PARAM_NAMES = {}


class GaussianMixture(MixtureHooksMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by one-pass EM (drop-in for scikit-learn's).

    Same parameters, attributes, methods and answers as
    :class:`sklearn.mixture.GaussianMixture`; see its documentation. Each EM
    iteration reads X once in a Cython kernel (GIL released, OpenMP threads)
    and keeps only K x D x D statistics, so fitting allocates nothing that
    grows with n_samples.

    X may also be a ``numpy.memmap`` (fitted out of core, one pass per
    iteration, without a copy) or a ``dask.array.Array`` (fitted on the Dask
    chunks, on the active ``dask.distributed`` cluster or Dask's local
    scheduler; predictions then return Dask arrays, lazily). See the README,
    "Out-of-core and Dask".

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Stop when the change of the lower bound (mean log-likelihood) is below.
    reg_covar : float, default=1e-6
        Added to the covariances' diagonal.
    max_iter : int, default=100
    n_init : int, default=1
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weights_init : array-like of shape (n_components,), default=None
    means_init : array-like of shape (n_components, n_features), default=None
    precisions_init : array-like, default=None
        Shape (n_components,), (n_features, n_features), (n_components,
        n_features) or (n_components, n_features, n_features) for
        'spherical', 'tied', 'diag', 'full'.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
    verbose : int, default=0
    verbose_interval : int, default=10
    n_threads : int or None, default=None
        OpenMP threads for the kernels; None or -1 uses every core
        (OMP_NUM_THREADS is honoured).
    learning_decay : float in (0.5, 1], default=0.6
        ``partial_fit`` only (``fit`` ignores it): the exponent kappa of the
        online EM step size rho_t = (t + learning_offset) ** -kappa (the
        names and formula of scikit-learn's LatentDirichletAllocation).
        Smaller forgets old batches faster; (0.5, 1] is the range where
        stepwise EM converges.
    learning_offset : float >= 0, default=2.0
        ``partial_fit`` only: t0 in the step size above. Larger gives the
        start of the stream (the first batch, or the ``fit`` a warm start
        continues) more weight.
    nan_policy : {'raise', 'marginalize'}, default='raise'
        'raise' refuses NaN in X (scikit-learn's behaviour). 'marginalize'
        treats NaN entries as missing at random: ``fit``, ``partial_fit`` and
        every prediction use each row's observed coordinates (exact EM on the
        observed-data likelihood), and ``impute`` fills the NaN in. +-inf is
        refused under both. See README, "Missing values".

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        In the dtype of the training data (float32 stays float32).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
    lower_bounds_ : list of float
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when X has feature names.

    Notes
    -----
    After ``partial_fit``, ``n_iter_`` is the number of batches of the current
    stream, ``lower_bounds_`` holds each batch's mean log-likelihood under
    the parameters before its step (one float per batch), ``lower_bound_``
    the last one, and ``converged_`` is False (online EM has no stopping
    rule: the stream decides when to stop).
    """

    _parameter_constraints: dict = dict(_api.PARAMETER_CONSTRAINTS)

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
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
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.nan_policy = nan_policy

    # ------------------------------------------------------------------ fit

    @classmethod
    def _get_param_names(cls):
        """scikit-learn's, read once per class: its inspect.signature, run on
        each of the three get_params calls of a fit, was a tenth of a fit of
        200 rows (docs/small-fits.md)."""
        names = _PARAM_NAMES.get(cls)
        if names is None:
            names = _PARAM_NAMES[cls] = tuple(super()._get_param_names())
        return list(names)

    def _validate_params(self):
        """scikit-learn's constraint checks, plus: no bool where a count is due."""
        super()._validate_params()
        _api.check_integer_parameters(self.get_params(deep=False), type(self).__name__)

    def _warm_start_from(self, n_features):
        if not (self.warm_start and hasattr(self, "converged_")):
            return None
        if self.means_.shape != (self.n_components, n_features) or \
                self.precisions_cholesky_.shape != _covariance.get(
                    self.covariance_type).shape(self.n_components, n_features):
            raise ValueError(
                "warm_start=True continues from the previous fit, whose parameters "
                f"have shape means_={self.means_.shape} and covariance_type was "
                "different or n_components/n_features changed; set "
                "warm_start=False to start afresh."
            )
        return self._params(), self.lower_bound_

    def _params(self):
        return _stats.GMMParams(self.weights_, self.means_, self.covariances_,
                                self.precisions_cholesky_)

    def _fit(self, X, sample_weight, callback=None):
        """Validate, run EM, and switch to the new fit all at once;
        ``callback(n_iter, lower_bound)`` is called after every EM iteration
        (the command line's progress).

        On any exception (bad input, an EM failure, KeyboardInterrupt) the
        estimator is left exactly as it was: unfitted, or its previous fit.
        The new attributes are installed by one ``dict.update`` (a C call, so
        a signal handler cannot run half-way through it).
        """
        saved = self._save_fit_state()
        try:
            # BLAS on one thread from validation on: a multi-threaded BLAS call
            # (the *_init checks) leaves OpenBLAS's threads spinning for a
            # while, beside the kernels' OpenMP threads
            with blas_single_thread():
                X = _source.validate_X(X, self, reset=True, ensure_min_samples=2,
                                       allow_nan=self._allow_nan)
                result = _api.fit_arrays(
                    X, sample_weight, self.get_params(deep=False),
                    warm_start_from=self._warm_start_from(X.shape[1]), callback=callback,
                    feature_names=getattr(self, "feature_names_in_", None))
            self._set_result(result)
        except BaseException:
            self._restore_fit_state(saved)
            raise
        return X

    def _save_fit_state(self):
        return {a: self.__dict__[a] for a in _STATE_ATTRIBUTES if a in self.__dict__}

    def _restore_fit_state(self, saved):
        # leave the estimator as it was (unfitted, or its previous fit)
        for a in _STATE_ATTRIBUTES:
            self.__dict__.pop(a, None)
        self.__dict__.update(saved)

    def _set_result(self, result):
        """Install a FitResult's parameters and record, in one update. A new
        fit ends any partial_fit stream and any model selection record."""
        self.__dict__.pop("_online_state", None)
        self.__dict__.pop("selection_", None)
        self.__dict__.update(result.as_dict())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM (best of ``n_init`` runs).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            float32 is kept (computed and returned in float32); other numeric
            dtypes are converted to float64. A ``numpy.memmap`` is read in
            place (no copy); a Dask array is fitted chunk by chunk where its
            chunks live, initialised on a random sample of its rows (README,
            "Out-of-core and Dask").
        y : Ignored
        sample_weight : array-like or dask.array.Array of shape (n_samples,), default=None
            Non-negative weights; integer weights give the model of the
            replicated rows, zero drops a row.

        Returns
        -------
        self
        """
        self._fit(X, sample_weight)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most likely component of each row of X.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A Dask array (lazy) when X is one.
        """
        X = self._fit(X, sample_weight)
        return self._predict(X, labels=True)[2]

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on a mini-batch.

        For streams that do not fit in memory: each call reads its batch once
        (one E-step), blends the batch's sufficient statistics per unit
        weight into running statistics, and sets the parameters from them
        (one M-step)::

            s <- (1 - rho_t) s + rho_t s_batch,
            rho_t = (t + learning_offset) ** (-learning_decay)

        for the t-th batch after the one that started the stream (Cappé &
        Moulines 2009; Liang & Klein 2009). The statistics are sums shifted by
        the current means, re-centred exactly before blending (never raw
        moments), so float32 batches and data far from the origin are safe.

        The first call starts the stream: it initialises from its batch with
        ``init_params``/``random_state`` (or ``weights_init``, ``means_init``,
        ``precisions_init``), then takes a step with rho = 1. After ``fit``,
        ``partial_fit`` starts a new stream the same way, unless
        ``warm_start=True``: then the fitted model stands for the first step
        (its statistics are those its parameters imply) and the batch is
        blended in with rho_1. ``fit`` ends a stream; to start a new one
        without fitting, use a fresh estimator (``sklearn.base.clone``).
        ``n_init``, ``max_iter`` and ``tol`` do not apply (one step per call).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The batch. Its dtype after the first batch: the model's (float32
            models take float32 batches). The first batch needs at least
            max(2, n_components) rows; later batches may have any number.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the batch's rows. Within a batch, integer
            weights act as replicated rows; every batch has the same say in
            the blend (rho_t) whatever its total weight.

        Returns
        -------
        self

        Notes
        -----
        Afterwards the fitted attributes are those of the current parameters;
        ``n_iter_`` counts the stream's batches, ``lower_bound_`` is the
        batch's mean (weighted) log-likelihood under the parameters before
        the step, ``lower_bounds_`` the list of these, one per batch, and
        ``converged_`` is False. The running statistics are kept in the
        private ``_online_state`` and pickle with the estimator.
        """
        saved = self._save_fit_state()
        try:
            self._partial_fit(X, sample_weight)
        except BaseException:
            self._restore_fit_state(saved)
            raise
        return self

    def _partial_fit(self, X, sample_weight):
        state = self.__dict__.get("_online_state")
        continues_fit = (state is None and self.warm_start
                         and hasattr(self, "converged_"))
        if state is not None or continues_fit:
            params = self._params()
            if state is not None and (
                    state.covariance_type != self.covariance_type
                    or state.R.shape[0] != self.n_components):
                raise ValueError(
                    "partial_fit continues a stream of a model with "
                    f"n_components={state.R.shape[0]}, covariance_type="
                    f"{state.covariance_type!r}, but the estimator now has "
                    f"n_components={self.n_components}, covariance_type="
                    f"{self.covariance_type!r}; call fit, or start a new stream "
                    "on a fresh estimator (sklearn.base.clone)."
                )
            X = _source.validate_X(X, self, reset=False, dtype=self.means_.dtype,
                                   allow_nan=self._allow_nan)
            sample_weight = check_sample_weight(sample_weight, X.shape[0], 1)
            if continues_fit:
                self._warm_start_from(X.shape[1])  # shape checks
                state = _online.state_from_params(params, self.covariance_type,
                                                  self.reg_covar)
            # a new list: copies of the estimator must not see this batch
            lower_bounds = [] if continues_fit else list(self.lower_bounds_)
        else:
            X = _source.validate_X(X, self, reset=True, ensure_min_samples=2,
                                   allow_nan=self._allow_nan)
            params, sample_weight = _api.start_stream(X, sample_weight,
                                                      self.get_params(deep=False))
            lower_bounds = []
        cfg = _stats.kernel_config(X.shape[1], self.covariance_type, self.n_threads,
                                   self.n_components, X.dtype)
        params, state, lower_bound, _ = _online.online_step(
            X, sample_weight, params, state,
            covariance_type=self.covariance_type, reg_covar=self.reg_covar, cfg=cfg,
            learning_decay=self.learning_decay, learning_offset=self.learning_offset,
            missing=self._allow_nan and _missing.has_nan(X),
        )
        self._set_result(make_result(
            params, self.covariance_type, False, len(lower_bounds) + 1, lower_bound, []))
        lower_bounds.append(lower_bound)
        self.lower_bounds_ = lower_bounds
        self._online_state = state

    # -------------------------------------------------------------- predict

    def _predict(self, X, logp=False, resp=False, labels=False, n_threads=None):
        """One pass of the prediction kernel over validated X (numpy arrays;
        lazy Dask arrays for a Dask X, one output at a time)."""
        return _api.predict(self._params(), self.covariance_type, X,
                            self.n_threads if n_threads is None else n_threads,
                            logp=logp, resp=resp, labels=labels,
                            nan_policy=self.nan_policy)

    @property
    def _allow_nan(self):
        return self.nan_policy == "marginalize"

    def _check_predict_input(self, X):
        check_is_fitted(self)
        return _source.validate_X(X, self, reset=False, allow_nan=self._allow_nan)

    def score_samples(self, X):
        """Log-likelihood log p(x) of each row of X, shape (n_samples,).

        A Dask array for a Dask X (lazy).
        """
        X = self._check_predict_input(X)
        return self._predict(X, logp=True)[0]

    def score(self, X, y=None, sample_weight=None):
        """Mean (weighted) log-likelihood of X under the model, a float
        (computed, also for a Dask X)."""
        X = self._check_predict_input(X)
        return self._score(X, sample_weight)

    def _score(self, X, sample_weight=None):
        """score() on validated X (numpy or Dask)."""
        return _api.predict(self._params(), self.covariance_type, X, self.n_threads,
                            sample_weight, score=True, nan_policy=self.nan_policy)

    def predict(self, X):
        """Most likely component of each row of X, shape (n_samples,).

        A Dask array for a Dask X (lazy).
        """
        X = self._check_predict_input(X)
        return self._predict(X, labels=True)[2]

    def predict_proba(self, X):
        """Responsibilities p(k | x), shape (n_samples, n_components).

        A Dask array for a Dask X (lazy).
        """
        X = self._check_predict_input(X)
        return self._predict(X, resp=True)[1]

    def impute(self, X):
        """A copy of X with each NaN replaced by its conditional expectation
        under the fitted mixture, sum_k p(k | x_o) E[x_m | x_o, k] (the
        observed entries are kept). Works whatever ``nan_policy`` the model
        was fitted with; an entirely missing row gets the mixture mean.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features), X's dtype
        """
        check_is_fitted(self)
        X = _source.validate_X(X, self, reset=False, allow_nan=True)
        return _api.impute(self._params(), self.covariance_type, X, self.n_threads)

    # ---------------------------------------------------------------- other

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
            # scikit-learn's sentence word for word (it shows n_components
            # where n_samples belongs), then the value received
            raise ValueError(
                "Invalid value for 'n_samples': %d . The sampling requires at "
                "least one sample." % self.n_components
                + f" Got n_samples={n_samples}; pass an int >= 1."
            )
        rng = check_random_state(self.random_state)
        n_samples_comp = rng.multinomial(n_samples, self.weights_.astype(np.float64))
        X = _covariance.get(self.covariance_type).sample(
            rng, self.means_, self.covariances_, n_samples_comp)
        y = np.concatenate([
            np.full(int(n), i, dtype=np.int64) for i, n in enumerate(n_samples_comp)
        ])
        return np.asarray(X, dtype=np.float64), y

    # ------------------------------------------------- scikit-learn's hooks
    # BaseMixture's methods, with its signatures and return values (numpy
    # arrays; ``xp`` is accepted and ignored). They may build n_samples x
    # n_components arrays, which is their contract; fit never calls them.
    # Driven by scikit-learn's own loop (BaseMixture.fit_predict) they give
    # scikit-learn's fit (tests/test_hooks.py).

    # scikit-learn's own code: the start's responsibilities (k-means labels,
    # random, data points, k-means++), handed to _initialize; and the
    # verbose messages of its loop
    _initialize_parameters = BaseMixture._initialize_parameters
    _print_verbose_msg_init_beg = BaseMixture._print_verbose_msg_init_beg
    _print_verbose_msg_iter_end = BaseMixture._print_verbose_msg_iter_end
    _print_verbose_msg_init_end = BaseMixture._print_verbose_msg_init_end

    def _hook_X(self, X):
        """X as the kernels take it (C-contiguous float32/float64), no checks
        beyond that: hooks trust their callers, as scikit-learn's do."""
        X = np.asarray(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return np.ascontiguousarray(X, dtype=dtype)

    def _check_parameters(self, X, xp=None):
        """Validate weights_init, means_init, precisions_init for X (errors as
        in fit); the constructor parameters are left as they are."""
        X = self._hook_X(X)
        _api.check_init_arrays(self.get_params(deep=False), X.shape[1], X.dtype)

    def _initialize(self, X, resp, xp=None):
        """Parameters from the responsibilities ``resp`` (n_samples,
        n_components), or from weights_init / means_init / precisions_init
        where given; weights n_k / n_samples (scikit-learn's start)."""
        X = self._hook_X(X)
        init = _api.check_init_arrays(self.get_params(deep=False), X.shape[1], X.dtype)
        cov = _covariance.get(self.covariance_type)
        weights = means = covariances = prec_chol = None
        if resp is not None:
            nk, means, covariances = _api.gaussian_params_from_resp(
                X, np.asarray(resp), self.covariance_type, self.reg_covar, self.n_threads)
            weights = nk / X.shape[0]
        if init["weights_init"] is not None:
            weights = init["weights_init"]
        if init["means_init"] is not None:
            means = init["means_init"]
        if init["precisions_init"] is None:
            prec_chol = cov.precision_cholesky(covariances,
                                               float32=(X.dtype == np.float32))
        else:
            prec_chol = cov.precision_cholesky_from_precisions(init["precisions_init"])
            covariances = cov.covariances_from_precision_cholesky(prec_chol)
        self._set_parameters(tuple(
            np.asarray(a, dtype=X.dtype) for a in (weights, means, covariances, prec_chol)))

    def _m_step(self, X, log_resp, xp=None):
        """M-step from the log responsibilities (n_samples, n_components):
        weights n_k / sum n_k, means, covariances (+ reg_covar), and the
        precisions' Cholesky factors."""
        X = self._hook_X(X)
        nk, means, covariances = _api.gaussian_params_from_resp(
            X, np.asarray(log_resp), self.covariance_type, self.reg_covar,
            self.n_threads, log=True)
        prec_chol = _covariance.get(self.covariance_type).precision_cholesky(
            covariances, float32=(X.dtype == np.float32))
        self._set_parameters(tuple(np.asarray(a, dtype=X.dtype) for a in (
            nk / nk.sum(), means, covariances, prec_chol)))

    def _estimate_log_prob(self, X, xp=None):
        """log N(x_i | mu_k, Sigma_k), shape (n_samples, n_components)."""
        X = self._hook_X(X)
        return _api.component_log_prob(self._params(), self.covariance_type, X,
                                       self.n_threads)

    def _estimate_log_weights(self, xp=None):
        """log weights_, shape (n_components,)."""
        return np.log(self.weights_)

    def _compute_lower_bound(self, _, log_prob_norm):
        """The lower bound is the mean log-likelihood itself (EM)."""
        return log_prob_norm

    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _set_parameters(self, params, xp=None):
        """Set (weights, means, covariances, precisions_cholesky) and the
        precisions_ they imply."""
        (self.weights_, self.means_, self.covariances_,
         self.precisions_cholesky_) = params
        self.precisions_ = _covariance.get(self.covariance_type).precisions(
            self.precisions_cholesky_).astype(self.precisions_cholesky_.dtype)

    def _n_parameters(self):
        """Number of free parameters in the model."""
        _, n_features = self.means_.shape
        return _covariance.get(self.covariance_type).n_parameters(
            self.n_components, n_features)

    def bic(self, X):
        """Bayesian information criterion on X (lower is better)."""
        X = self._check_predict_input(X)
        n_samples = X.shape[0]
        return -2 * self._score(X) * n_samples + self._n_parameters() * math.log(n_samples)

    def aic(self, X):
        """Akaike information criterion on X (lower is better)."""
        X = self._check_predict_input(X)
        n_samples = X.shape[0]
        return -2 * self._score(X) * n_samples + 2 * self._n_parameters()

    # ---------------------------------------------------------- persistence

    def save(self, path):
        """Save the fitted model to ``path`` as a plain ``.npz`` file.

        Numbers and strings only (no pickle): ``gmmfast.load(path)`` reads it
        back with ``allow_pickle=False``, so loading a file never runs code.
        The constructor parameters that are plain values and every fitted
        attribute are stored, dtypes preserved, with a format version.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; ``.npz`` is appended when missing (numpy's rule).

        Returns
        -------
        path : str
            The path written.
        """
        check_is_fitted(self)
        fitted = {a: self.__dict__[a] for a in _FIT_ATTRIBUTES if a in self.__dict__}
        return _persist.write_model(self.get_params(deep=False), fitted, path)


def load_model(path):
    """Read a model saved by ``GaussianMixture.save`` or
    ``BayesianGaussianMixture.save`` (``gmmfast.load``).

    Never unpickles anything; the file is checked completely before the model
    is built (see ``GaussianMixture.save``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    gmmfast.GaussianMixture or gmmfast.BayesianGaussianMixture
        The estimator the file holds, fitted, with the saved constructor
        parameters and attributes (arrays in their saved dtype, bit for bit).
    """
    name, params, fitted = _persist.read_model(path)
    if name == _persist.BGM_FORMAT_NAME:
        model = _bayesian_mixture.BayesianGaussianMixture(**params)
        model.__dict__.update(fitted)
        return model
    return fitted_model(params, fitted)


def fitted_model(params, fitted):
    """A GaussianMixture with these constructor parameters and fitted
    attributes (plain dicts; ``FitResult.as_dict()`` gives the latter, less
    ``n_features_in_``): what loading, ``select`` and the CLI build."""
    model = GaussianMixture(**params)
    model.__dict__.update(fitted)
    return model
