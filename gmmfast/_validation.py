"""Checks at the public boundary. Errors name the parameter, what was received
and the fix; the caller's arrays are never modified (anything we change is a
copy)."""
import numbers

import numpy as np
from sklearn.utils import check_array


def check_sample_weight(sample_weight, n_samples, n_components):
    """float64 (n_samples,) C-contiguous copy-if-needed, or None.

    A scalar means the same weight for every row.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf":
        raise TypeError(
            f"sample_weight must be an array of real numbers, got dtype {sw.dtype}."
        )
    sw = np.ascontiguousarray(sw, dtype=np.float64)
    if sw.ndim != 1 or sw.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape (n_samples,) = ({n_samples},), "
            f"got shape {sw.shape}."
        )
    # Reductions only: no n_samples-sized temporaries (sw may be a memmap
    # larger than memory). A finite sum means every weight is finite; an
    # infinite one may be an overflow, hence the element-wise look then.
    with np.errstate(over="ignore"):
        total = sw.sum()
    if not np.isfinite(total) and not np.isfinite(sw).all():
        raise ValueError("sample_weight contains NaN or infinity; pass finite weights.")
    min_weight = sw.min()
    if min_weight < 0:
        raise ValueError(
            f"sample_weight must be non-negative, got min value {min_weight:g}."
        )
    n_positive = int(np.count_nonzero(sw))
    if n_positive < n_components:
        raise ValueError(
            f"sample_weight must have at least n_components={n_components} "
            f"positive entries, got {n_positive}."
        )
    return sw


def _check_shape(param, param_shape, name):
    if param.shape != param_shape:
        raise ValueError(
            "The parameter '%s' should have the shape of %s, but got %s"
            % (name, param_shape, param.shape)
        )


def check_weights(weights, n_components):
    weights = check_array(weights, dtype=[np.float64, np.float32], ensure_2d=False,
                          input_name="weights_init")
    _check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got "
            "max value %.5f, min value %.5f" % (np.max(weights), np.min(weights))
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(np.abs(1.0 - np.sum(weights)), 0.0, atol=atol):
        raise ValueError(
            "The parameter 'weights' should be normalized, but got sum(weights) = %.5f"
            % np.sum(weights)
        )
    return weights


def check_means(means, n_components, n_features):
    means = check_array(means, dtype=[np.float64, np.float32], ensure_2d=False,
                        input_name="means_init")
    _check_shape(means, (n_components, n_features), "means")
    return means


def check_precisions(precisions, covariance_type, n_components, n_features):
    precisions = check_array(
        precisions, dtype=[np.float64, np.float32], ensure_2d=False,
        allow_nd=covariance_type == "full", input_name="precisions_init",
    )
    shape = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]
    _check_shape(precisions, shape, "%s precision" % covariance_type)
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0.0):
            raise ValueError("'%s precision' should be positive" % covariance_type)
    else:
        stack = precisions if covariance_type == "full" else precisions[None]
        for p in stack:
            if not (np.allclose(p, p.T) and np.all(np.linalg.eigvalsh(p) > 0.0)):
                raise ValueError(
                    "'%s precision' should be symmetric, positive-definite"
                    % covariance_type
                )
    return precisions
