"""Model selection over the number of components and the covariance
structure by BIC or AIC: ``gmmfast.select`` (what R's mclust does)."""
import math
import numbers
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from . import _api, _covariance, _source
from ._mixture import GaussianMixture, fitted_model
from ._threads import blas_single_thread, resolve_n_threads
from ._validation import check_sample_weight, rescale_sample_weight

CRITERIA = ("bic", "aic")
COLUMNS = ("n_components", "covariance_type", "bic", "aic", "log_likelihood",
           "lower_bound", "n_iter", "converged", "n_parameters", "fit_seconds", "error")
# constructor parameters that select sets itself, or that depend on K
_NOT_OPTIONS = {
    "n_components": "pass the candidates as n_components=",
    "covariance_type": "pass the candidates as covariance_types=",
    "weights_init": "initial parameters depend on n_components; use init_params",
    "means_init": "initial parameters depend on n_components; use init_params",
    "precisions_init": "initial parameters depend on n_components; use init_params",
    "warm_start": "every candidate is fitted afresh",
}


class SelectionTable(Sequence):
    """Every candidate of :func:`gmmfast.select`, one dict per candidate.

    A read-only sequence of rows (dicts with the keys in ``columns``), in the
    order they were fitted (covariance type, then n_components).

    Attributes
    ----------
    criterion : {'bic', 'aic'}
        The criterion the selection minimised.
    best_index : int
        Position of the selected candidate.
    columns : tuple of str
        n_components, covariance_type, bic, aic (lower is better),
        log_likelihood (sum of w_i log p(x_i) under the fitted model),
        lower_bound, n_iter, converged (the fit's record), n_parameters,
        fit_seconds, error (None, or why the candidate could not be fitted;
        its numbers are then NaN).
    """

    columns = COLUMNS

    def __init__(self, rows, criterion, best_index):
        self._rows = [dict(r) for r in rows]
        self.criterion = criterion
        self.best_index = int(best_index)

    def __getitem__(self, index):
        return self._rows[index]

    def __len__(self):
        return len(self._rows)

    @property
    def best(self):
        """The selected candidate's row."""
        return self._rows[self.best_index]

    def column(self, name):
        """One column as a numpy array (object dtype for strings and errors)."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns are {', '.join(self.columns)}")
        values = [r[name] for r in self._rows]
        if name in ("covariance_type", "error"):
            return np.array(values, dtype=object)
        return np.array(values)

    def to_frame(self):
        """The table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "SelectionTable.to_frame() needs pandas: pip install pandas "
                "(or use the rows directly: list(model.selection_))."
            ) from None
        return pd.DataFrame(self._rows, columns=list(self.columns))

    def __repr__(self):
        crit = self.criterion
        lines = [f"{'K':>3} {'covariance':<10} {crit:>14} {'log-likelihood':>16} "
                 f"{'iter':>5} {'conv':>5} {'params':>7} {'seconds':>8}"]
        for i, r in enumerate(self._rows):
            mark = " *" if i == self.best_index else ""
            if r["error"] is not None:
                lines.append(f"{r['n_components']:>3} {r['covariance_type']:<10} "
                             f"failed: {r['error']}")
                continue
            lines.append(
                f"{r['n_components']:>3} {r['covariance_type']:<10} {r[crit]:>14.6g} "
                f"{r['log_likelihood']:>16.8g} {r['n_iter']:>5} "
                f"{str(r['converged']):>5} {r['n_parameters']:>7} "
                f"{r['fit_seconds']:>8.3f}{mark}")
        return "\n".join(lines)


def _check_candidates(n_components, covariance_types, criterion):
    if isinstance(n_components, numbers.Integral) and not isinstance(n_components, bool):
        n_components = [n_components]
    try:
        ks = list(n_components)
    except TypeError:
        raise TypeError(
            "n_components must be an int or an iterable of ints (e.g. range(1, 10)), "
            f"got {n_components!r}.") from None
    if not ks:
        raise ValueError("n_components is empty; pass at least one candidate, "
                         "e.g. n_components=range(1, 10).")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"n_components must hold positive integers, got {k!r}.")
    ks = list(dict.fromkeys(int(k) for k in ks))

    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    types = list(dict.fromkeys(covariance_types))
    if not types:
        raise ValueError("covariance_types is empty; pass some of "
                         f"{', '.join(_covariance.COVARIANCE_TYPES)}.")
    for t in types:
        if t not in _covariance.COVARIANCE_TYPES:
            raise ValueError(f"covariance_types holds {t!r}; each must be one of "
                             f"{', '.join(_covariance.COVARIANCE_TYPES)}.")
    if not isinstance(criterion, str) or criterion.lower() not in CRITERIA:
        raise ValueError(f"criterion must be 'bic' or 'aic', got {criterion!r}.")
    return ks, types, criterion.lower()


def select(X, n_components=range(1, 10),
           covariance_types=_covariance.COVARIANCE_TYPES, criterion="bic",
           *, sample_weight=None, n_jobs=None, **options):
    """Fit every candidate and return the best by BIC or AIC.

    Model selection over the number of components and the covariance
    structure, as R's mclust does (with scikit-learn's sign: lower is
    better).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Validated once and shared by every candidate.
    n_components : int or iterable of int, default=range(1, 10)
    covariance_types : str or iterable of str, default=all four
        Among 'full', 'tied', 'diag', 'spherical'.
    criterion : {'bic', 'aic'}, default='bic'
        BIC = -2 log L + p log n, AIC = -2 log L + 2 p, with p the number of
        free parameters and log L the log-likelihood of X under the fitted
        candidate (as ``GaussianMixture.bic``/``aic``). With sample weights,
        log L = sum_i w_i log p(x_i) and n = sum_i w_i (integer weights then
        give the criterion of the replicated rows).
    sample_weight : array-like of shape (n_samples,), default=None
    n_jobs : int, default=None
        Candidates fitted at once, in threads (the kernels release the GIL);
        with n_jobs > 1 each candidate gets n_threads // n_jobs OpenMP
        threads (n_threads: the option below, default every core). 1 (and
        None): one at a time, each with every thread; side by side was no
        faster on 2 cores, and slower on small data, whose fits are mostly
        Python under the GIL. Fits with another
        thread count agree with a lone fit to rounding.
    **options
        Other :class:`gmmfast.GaussianMixture` parameters shared by every
        candidate: tol, reg_covar, max_iter, n_init, init_params,
        random_state, n_threads, ... (not n_components, covariance_type,
        the *_init parameters or warm_start). An int random_state starts
        every candidate from the same seed (reproducible, also with n_jobs).

    Returns
    -------
    GaussianMixture
        The selected candidate, fitted on X, with ``selection_``: a
        :class:`SelectionTable` of every candidate (``.to_frame()`` gives a
        pandas DataFrame; ``.best`` the selected row).

    Notes
    -----
    Convergence warnings of the candidates are not raised one by one: the
    table's ``converged`` column records them, and one ConvergenceWarning is
    raised if the selected candidate did not converge. A candidate that
    cannot be fitted (a collapsed component: "increase reg_covar") is kept in
    the table with its ``error``; selection fails only if every one does.
    """
    ks, types, criterion = _check_candidates(n_components, covariance_types, criterion)
    for name, why in _NOT_OPTIONS.items():
        if name in options:
            raise TypeError(f"select() does not take {name}: {why}.")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)
                               or n_jobs < 1):
        raise ValueError(f"n_jobs must be None or a positive integer, got {n_jobs!r}.")

    max_k = max(ks)
    proto = GaussianMixture(n_components=max_k, covariance_type=types[0], **options)
    _api.validate_params(proto.get_params(deep=False))
    X = _source.validate_X(X, proto, reset=True, ensure_min_samples=2)
    n_samples, n_features = X.shape
    if max_k > n_samples:
        raise ValueError(
            f"n_components holds {max_k}, but X has only {n_samples} samples; "
            "every candidate needs n_components <= n_samples.")
    # the criterion's n is the total weight as given; the fits see the
    # weights rescaled only if their magnitude is extreme (the same model)
    raw_weight = check_sample_weight(sample_weight, n_samples, max_k, rescale=False)
    total_weight = float(n_samples) if raw_weight is None else float(raw_weight.sum())
    log_n = math.log(total_weight)
    sample_weight = None if raw_weight is None else rescale_sample_weight(raw_weight)

    candidates = [(k, t) for t in types for k in ks]
    n_cores = resolve_n_threads(options.get("n_threads"))
    if n_jobs is None:
        # one at a time, every thread to each fit's kernels (measured on 2
        # cores, README: candidates side by side in threads were 1.4-1.5x
        # slower on 2,000 x 2, where a fit is mostly Python under the GIL,
        # and no faster on 20,000 x 4 or 200,000 x 5)
        n_jobs = 1
    n_jobs = max(1, min(int(n_jobs), len(candidates)))
    per_job_threads = options.get("n_threads")
    if n_jobs > 1:
        per_job_threads = max(1, n_cores // n_jobs)

    features = {name: getattr(proto, name) for name in ("n_features_in_", "feature_names_in_")
                if hasattr(proto, name)}

    def fit_one(candidate):
        k, cov = candidate
        params = {**proto.get_params(deep=False), "n_components": k, "covariance_type": cov}
        row = dict.fromkeys(COLUMNS)
        row.update(n_components=k, covariance_type=cov,
                   n_parameters=_covariance.get(cov).n_parameters(k, n_features))
        start = time.perf_counter()
        try:
            result = _api.fit_arrays(X, sample_weight, {**params, "n_threads": per_job_threads})
        except ValueError as exc:
            row.update(bic=math.nan, aic=math.nan, log_likelihood=math.nan,
                       lower_bound=math.nan, n_iter=0, converged=False,
                       fit_seconds=time.perf_counter() - start, error=str(exc))
            return row, None
        logp = _api.predict(result.params, cov, X, per_job_threads,
                            logp=True)[0].astype(np.float64)
        ll = float(logp.sum() if raw_weight is None else raw_weight @ logp)
        p = row["n_parameters"]
        row.update(bic=-2.0 * ll + p * log_n, aic=-2.0 * ll + 2.0 * p,
                   log_likelihood=ll, lower_bound=result.lower_bound, n_iter=result.n_iter,
                   converged=result.converged, fit_seconds=time.perf_counter() - start)
        return row, fitted_model(params, {**result.as_dict(), **features})

    # one filter for all candidates (warnings filters are process-global);
    # BLAS held to one thread once for them all (each fit and prediction
    # would otherwise set and restore it: tens of microseconds each time)
    with warnings.catch_warnings(), blas_single_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if n_jobs == 1:
            results = [fit_one(c) for c in candidates]
        else:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                results = list(pool.map(fit_one, candidates))

    rows = [r for r, _ in results]
    values = np.array([r[criterion] for r in rows], dtype=np.float64)
    if not np.any(np.isfinite(values)):
        raise ValueError("no candidate could be fitted; the first error was: "
                         + str(rows[0]["error"]))
    best = int(np.nanargmin(np.where(np.isfinite(values), values, np.nan)))
    model = results[best][1]
    model.selection_ = SelectionTable(rows, criterion, best)
    if not model.converged_:
        warnings.warn(
            f"The selected candidate (n_components={model.n_components}, "
            f"covariance_type={model.covariance_type!r}) did not converge. "
            "Increase max_iter or tol, or check the data.", ConvergenceWarning)
    return model
