"""The one factory that turns what a user passes (X, sample_weight) into a
validated data source (gmmfast/_data.py for arrays and memmaps,
gmmfast/_dask.py for Dask arrays). Above this module nothing asks what kind
of array it holds."""
import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

from . import _covariance, _dask, _missing, _stats
from ._data import ArrayData
from ._validation import (
    check_sample_weight,
    check_X_kind,
    sklearn_check_array,
    sklearn_message_first,
)


def validate_X(X, estimator=None, reset=True, ensure_min_samples=1, dtype=None,
               allow_nan=False):
    """X validated for the kernels: a C-contiguous float32/float64 array (the
    caller's when it needs no conversion), or a checked Dask array.

    With an ``estimator``, its ``n_features_in_``/``feature_names_in_`` are
    set (``reset``) or checked, as scikit-learn's ``validate_data`` does.
    ``dtype`` forces one dtype (a model's, for the batches of a stream).
    ``allow_nan`` (nan_policy='marginalize') lets NaN through; +-inf is
    refused either way.
    """
    if _dask.is_dask_array(X):
        return _dask.check_dask_array(X, estimator=estimator, reset=reset,
                                      ensure_min_samples=ensure_min_samples)
    dtypes = [np.float64, np.float32] if dtype is None else dtype
    finite = {"ensure_all_finite": "allow-nan"} if allow_nan else {}
    try:
        X = check_X_kind(X)
    except (TypeError, ValueError) as exc:
        # scikit-learn's message for the same X first: what its fit (reset)
        # or its predict methods (dtype 'numeric') would raise
        raise sklearn_message_first(exc, sklearn_check_array(
            X, dtype=dtypes if (reset or dtype is not None) else "numeric",
            ensure_min_samples=ensure_min_samples, input_name="X",
            estimator=None if estimator is None else type(estimator).__name__)) from None
    if estimator is None:
        return check_array(X, dtype=dtypes, order="C", input_name="X",
                           ensure_min_samples=ensure_min_samples, **finite)
    return validate_data(estimator, X, dtype=dtypes, order="C",
                         ensure_min_samples=ensure_min_samples, reset=reset, **finite)


def make_source(X, sample_weight, *, covariance_type, n_components, n_threads,
                random_state=None, min_positive_weights=None, nan_policy="raise",
                fitting=False, feature_names=None, rescale_weights=True):
    """The data source of a validated X (``validate_X``), with its sample
    weights validated by the one set of rules (gmmfast/_validation.py).

    min_positive_weights : how many rows need a positive weight
        (default n_components: each component needs one to start from).
    random_state : a RandomState instance; a Dask source draws its
        initialisation sample with it.
    nan_policy : 'raise' (X was checked finite) or 'marginalize': an X with
        NaN entries becomes a source of missing values (gmmfast/_missing.py);
        ``fitting`` refuses rows and features without an observed entry.
    rescale_weights : whether weights of extreme magnitude may be rescaled
        (``check_sample_weight``); False where the weights count observations
        (BayesianGaussianMixture: the total weight is weighed against the priors).
    """
    need = n_components if min_positive_weights is None else min_positive_weights
    if _dask.is_dask_array(X):
        sample_weight, total_weight = _dask.check_dask_sample_weight(
            sample_weight, X, need, rescale=rescale_weights)
        data = _dask.DaskData(X, sample_weight, covariance_type, n_components,
                              random_state, total_weight=total_weight, n_threads=n_threads,
                              missing=nan_policy == "marginalize")
        if data.missing and fitting:
            _missing.check_scan(data.scan_missing(), feature_names)
        return data
    sample_weight = check_sample_weight(sample_weight, X.shape[0], need,
                                        rescale=rescale_weights)
    cfg = _stats.kernel_config(X.shape[1], covariance_type, n_threads, n_components, X.dtype,
                               n_samples=X.shape[0])
    if nan_policy == "marginalize" and _missing.has_nan(X):
        scan = _missing.scan_missing(X)
        if fitting:
            _missing.check_scan(scan, feature_names)
        return _missing.MissingArrayData(X, sample_weight, cfg,
                                         _covariance.get(covariance_type),
                                         n_components, scan)
    return ArrayData(X, sample_weight, cfg)
