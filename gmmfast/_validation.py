"""Checks at the public boundary. Errors name the parameter, what was received
and the fix; the caller's arrays are never modified (anything we change is a
copy, and arrays we keep are copies too).

``validate_data`` (scikit-learn) does the bulk of the work on X: NaN/inf,
empty arrays, feature names, ``n_features_in_``. ``check_X_kind`` runs before
it and turns the inputs it reports obscurely (sparse matrices, strings,
complex numbers, objects that are not numbers, arrays that are not 2-D) into
short errors that say what was expected and how to convert.
"""
import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from scipy import linalg
from sklearn.utils import check_array

from . import _covariance

# dtype kinds accepted as numbers: bool, signed/unsigned int, float
_NUMERIC_KINDS = "biuf"


class InputError(TypeError, ValueError):
    """Bad input that scikit-learn reports as one of TypeError and ValueError
    and gmmfast's own check as the other (strings in X, for instance): an
    ``except`` clause or ``pytest.raises`` written for either catches it."""


def sklearn_message_first(ours, sklearn_check):
    """``ours`` (an exception) with scikit-learn's message for the same input
    put first, word for word, and gmmfast's after it.

    ``sklearn_check()`` runs the check scikit-learn runs on that input (only
    once gmmfast's has failed, so it costs nothing on good input). Where it
    raises nothing, ``ours`` is returned as it is (gmmfast is stricter
    there). The type is ours when it is also scikit-learn's, else
    ``InputError`` (both).
    """
    try:
        sklearn_check()
    except (TypeError, ValueError) as sk:
        sk_message, sk_type = str(sk), type(sk)
    else:
        return ours
    message = str(ours)
    if not message.startswith(sk_message):
        sep = ("\n" if "\n" in sk_message
               else " " if sk_message.endswith((".", "!", "?")) else ". ")
        message = sk_message + sep + message
    return (type(ours) if isinstance(ours, sk_type) else InputError)(message)


def sklearn_check_array(value, **kwargs):
    """scikit-learn's check_array, to reproduce its message (warnings off)."""
    def check():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_array(value, **kwargs)
    return check


def _nbytes_text(n_items):
    size = 8.0 * n_items
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024


def _reject_sparse(value, name):
    if sp.issparse(value):
        n_items = int(np.prod(value.shape))
        raise TypeError(
            f"{name} is a sparse {type(value).__name__} of shape {value.shape}, but "
            f"gmmfast needs dense data (a Gaussian mixture's means and covariances "
            f"are dense). Convert it with {name}.toarray() (as float64 it takes "
            f"{_nbytes_text(n_items)}), or reduce its dimension first, e.g. with "
            "sklearn.decomposition.TruncatedSVD."
        )


def _dtype_kinds(X):
    """The dtype kind letters of X's columns (one per DataFrame column), or
    None for a sequence without a dtype."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None and not isinstance(dtypes, np.dtype) and hasattr(dtypes, "__iter__"):
        return {getattr(dt, "kind", "O") for dt in dtypes}
    dtype = getattr(X, "dtype", None)
    if dtype is None:
        return None
    return {getattr(dtype, "kind", "O")}


def _not_numbers_error(name, what, exc=None):
    detail = f" ({exc})" if exc is not None else ""
    return TypeError(
        f"{name} must hold real numbers, but it holds {what}{detail}. Convert it to "
        f"a numeric array first: {name}.astype(np.float64) for numbers stored as "
        "text, or an encoder (e.g. sklearn.preprocessing.OneHotEncoder) for "
        "categories."
    )


def check_X_kind(X, name="X"):
    """Reject what is not a 2-D array of real numbers, with a clear message.

    Runs before scikit-learn's ``validate_data`` (which then handles NaN/inf,
    empty arrays and feature names). Returns X unchanged, or, for a list or
    other sequence, the array numpy makes of it.

    Raises
    ------
    TypeError
        Sparse matrices, strings, datetimes, objects that are not numbers.
    ValueError
        Complex numbers; arrays that are not 2-D; ragged sequences.
    """
    _reject_sparse(X, name)
    kinds = _dtype_kinds(X)
    if kinds is None:  # a list, tuple or other sequence
        try:
            X = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be a 2-D array of shape (n_samples, n_features); "
                f"the sequence passed cannot be made into one ({exc}). Check that "
                "every row has the same number of values."
            ) from None
        kinds = {X.dtype.kind}
    ndim = getattr(X, "ndim", 2)
    if ndim != 2:
        shape = getattr(X, "shape", ())
        if ndim == 0:
            got = "a scalar"
            fix = f"Pass a 2-D array, e.g. np.atleast_2d({name})."
        elif ndim == 1:
            got = f"a 1-D array of shape {shape}"
            fix = (f"Reshape your data with {name}.reshape(-1, 1) if it has a single "
                   f"feature, or {name}.reshape(1, -1) if it is a single sample.")
        else:
            got = f"a {ndim}-D array of shape {shape}"
            fix = (f"Reshape your data to 2-D, e.g. {name}.reshape({name}.shape[0], -1) "
                   "to flatten each sample's values into features.")
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got {got}. "
            + fix
        )
    if "c" in kinds:
        raise ValueError(
            f"Complex data not supported: {name} holds complex numbers. A Gaussian "
            f"mixture is fitted to real data; pass {name}.real, or the real and "
            f"imaginary parts as separate features: np.hstack([{name}.real, {name}.imag])."
        )
    if kinds & set("US"):
        raise _not_numbers_error(name, "strings")
    if kinds & set("mM"):
        raise _not_numbers_error(name, "dates or time intervals")
    if "O" in kinds:
        # numbers stored as Python objects (or pandas extension columns) are
        # accepted, as scikit-learn does; anything else is named here
        try:
            np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise _not_numbers_error(name, "values that are not numbers", exc) from None
    elif not kinds <= set(_NUMERIC_KINDS):
        raise _not_numbers_error(name, f"values of dtype kind {sorted(kinds)}")
    return X


def _as_float_array(value, name, dtypes=(np.float64, np.float32), ensure_2d=False,
                    allow_nd=False):
    """check_array for a parameter array, with errors that name it, after
    scikit-learn's message for the same array."""
    try:
        return _as_float_array_ours(value, name, dtypes, ensure_2d, allow_nd)
    except (TypeError, ValueError) as exc:
        raise sklearn_message_first(exc, sklearn_check_array(
            value, dtype=list(dtypes), ensure_2d=ensure_2d, allow_nd=allow_nd)) from None


def _as_float_array_ours(value, name, dtypes, ensure_2d, allow_nd):
    _reject_sparse(value, name)
    kinds = _dtype_kinds(value)
    if kinds is None:
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be a rectangular array of numbers ({exc})."
            ) from None
        kinds = {value.dtype.kind}
    if "c" in kinds:
        raise ValueError(f"Complex data not supported: {name} holds complex numbers.")
    if kinds & set("USmMV"):
        raise _not_numbers_error(name, "values that are not real numbers")
    try:
        # copy=True: the estimator never keeps a reference to the caller's array
        return check_array(value, dtype=list(dtypes), ensure_2d=ensure_2d,
                           allow_nd=allow_nd, copy=True)
    except TypeError as exc:
        raise _not_numbers_error(name, "values that are not numbers", exc) from None
    except ValueError as exc:
        if "could not convert" in str(exc):
            raise _not_numbers_error(name, "values that are not numbers", exc) from None
        # scikit-learn's message (it names no input), then which parameter
        fix = "; pass finite values" if "NaN" in str(exc) or "infinity" in str(exc) else ""
        raise ValueError(f"{exc} (the parameter {name}{fix}.)") from None


def check_sample_weight(sample_weight, n_samples, n_components, rescale=True):
    """Validated weights: float64 (n_samples,) C-contiguous (the caller's
    array when it already is one), or None.

    A scalar means the same weight for every row. Only the weights' ratios
    matter to the model; weights of extreme magnitude (mean outside
    [2**-16, 2**16]) are rescaled to mean 1 (a copy), so that scikit-learn's
    10*eps guard on n_k stays as small as without weights and the float32
    kernels cannot overflow. Weights of usual magnitude are used as they are:
    no n_samples-sized copy (they may be a memmap). ``rescale=False`` skips
    the rescaling (see ``rescale_sample_weight``).
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (bool, np.bool_)):
        raise TypeError(
            f"sample_weight must be an array of non-negative numbers of shape "
            f"(n_samples,) = ({n_samples},) or a number, got the bool {sample_weight!r}."
        )
    if isinstance(sample_weight, numbers.Real):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    _reject_sparse(sample_weight, "sample_weight")
    sw = np.asarray(sample_weight)
    if sw.dtype.kind == "O":
        try:
            sw = sw.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"sample_weight must be an array of real numbers ({exc})."
            ) from None
    check_weight_layout(sw, n_samples)
    sw = np.ascontiguousarray(sw, dtype=np.float64)
    # Reductions only: no n_samples-sized temporaries (sw may be a memmap
    # larger than memory). A finite sum means every weight is finite; an
    # infinite one may be an overflow, hence the element-wise look then.
    with np.errstate(over="ignore"):
        total = sw.sum()
    finite = bool(np.isfinite(total) or np.isfinite(sw).all())
    check_weight_values(finite, lambda: (float(sw.min()), int(np.count_nonzero(sw)),
                                         float(sw.max())), n_components)
    return rescale_sample_weight(sw, total) if rescale else sw


def check_weight_layout(sw, n_samples):
    """Real numbers, shape (n_samples,): for any array with dtype and shape."""
    if sw.dtype.kind not in "biuf":
        raise TypeError(
            f"sample_weight must be an array of real numbers, got dtype {sw.dtype}."
        )
    if sw.ndim != 1 or sw.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape (n_samples,) = ({n_samples},), "
            f"got shape {sw.shape}."
        )


def check_weight_values(finite, reductions, n_components):
    """The rules every source's sample weights follow, on their reductions
    (one place for the rules and their messages, whatever holds the weights).

    finite : bool, every weight finite; reductions : callable returning
    (min, number of non-zero weights, max), called once the weights are
    known to be finite.
    """
    if not finite:
        raise ValueError("sample_weight contains NaN or infinity; pass finite weights.")
    min_weight, n_positive, largest = reductions()
    if min_weight < 0:
        raise ValueError(
            f"sample_weight must be non-negative, got min value {min_weight:g}."
        )
    if n_positive == 0:
        raise ValueError(
            "sample_weight is zero everywhere: at least one sample (and one per "
            f"component, n_components={n_components}) needs a positive weight."
        )
    if n_positive < n_components:
        raise ValueError(
            f"sample_weight has only {n_positive} non-zero weights, but each of the "
            f"n_components={n_components} components needs at least one sample with "
            "a positive weight; pass more positive weights or fewer components."
        )
    if largest < np.finfo(np.float64).tiny:
        raise ValueError(
            f"sample_weight is too small: its largest value {largest:g} is subnormal "
            "in float64, so the weights' ratios are imprecise. Pass weights of a "
            "usual magnitude (only their ratios matter)."
        )


def rescale_sample_weight(sw, total=None):
    """sw rescaled to mean 1 when its mean is outside [2**-16, 2**16]."""
    n_samples = sw.shape[0]
    if total is None or not np.isfinite(total):
        with np.errstate(over="ignore"):
            total = sw.sum()
    mean = total / n_samples
    if np.isfinite(mean) and 2.0**-16 <= mean <= 2.0**16:
        return sw
    # w * n / sum(w), computed as (w / max) * (n / sum(w / max)): no overflow
    # for weights near the float64 maximum; exact for equal weights
    largest = float(sw.max())
    if largest != 1.0:
        sw = sw / largest
    total = float(sw.sum())
    if total != n_samples:
        sw = sw * (n_samples / total)
    return sw


def _check_shape(param, param_shape, sklearn_name, name, shape_text):
    """scikit-learn's shape message (its name for the parameter), then ours."""
    if param.shape != param_shape:
        raise ValueError(
            "The parameter '%s' should have the shape of %s, but got %s"
            % (sklearn_name, param_shape, param.shape)
            + f": {name} must have shape {shape_text} = {param_shape}."
        )


def _check_fits_dtype(values, name, dtype):
    """Finite in the data's dtype (float32 data computes in float32)."""
    with np.errstate(over="ignore"):
        overflows = dtype is not None and not np.all(np.isfinite(values.astype(dtype)))
    if overflows:
        raise ValueError(
            f"{name} has values too large for {np.dtype(dtype).name} data (largest "
            f"magnitude {np.abs(values).max():g}); the fit computes in the data's "
            "dtype. Pass float64 data or smaller values."
        )


def check_weights(weights, n_components):
    """weights_init: (n_components,), in [0, 1], summing to 1; a copy."""
    weights = _as_float_array(weights, "weights_init")
    _check_shape(weights, (n_components,), "weights", "weights_init", "(n_components,)")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        # scikit-learn's sentence word for word: it prints the minimum as
        # "max value" and the maximum as "min value"; ours says which is which
        raise ValueError(
            "The parameter 'weights' should be in the range "
            "[0, 1], but got max value %.5f, min value %.5f"
            % (np.min(weights), np.max(weights))
            + ": weights_init has min value %g and max value %g; pass weights in "
            "[0, 1] that sum to 1." % (np.min(weights), np.max(weights))
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(np.abs(1.0 - np.sum(weights)), 0.0, atol=atol):
        raise ValueError(
            "The parameter 'weights' should be normalized, but got sum(weights) = %.5f"
            % np.sum(weights)
            + "; divide weights_init by its sum."
        )
    return weights


def check_means(means, n_components, n_features, dtype=None):
    """means_init: (n_components, n_features), finite in the data's dtype; a copy."""
    means = _as_float_array(means, "means_init")
    _check_shape(means, (n_components, n_features), "means", "means_init",
                 "(n_components, n_features)")
    _check_fits_dtype(means, "means_init", dtype)
    return means


def check_precisions(precisions, covariance_type, n_components, n_features, dtype=None):
    """precisions_init: shape per covariance_type, symmetric positive definite,
    with the precisions and the covariances (their inverses) representable in
    the data's dtype; a copy.

    Positive definiteness is tested by a Cholesky factorisation and the
    covariances' size read off the inverse factor (D^3/3 flops each, a few
    times faster than eigenvalues; large D spends seconds here otherwise,
    without a chance to answer Ctrl-C). Eigenvalues are computed only to
    report a failure.
    """
    cov = _covariance.get(covariance_type)
    shape = cov.shape(n_components, n_features)
    precisions = _as_float_array(precisions, "precisions_init", allow_nd=len(shape) > 2)
    shape_text = {"full": "(n_components, n_features, n_features)",
                  "tied": "(n_features, n_features)", "diag": "(n_components, n_features)",
                  "spherical": "(n_components,)"}[covariance_type]
    _check_shape(precisions, shape, "%s precision" % covariance_type,
                 f"precisions_init (covariance_type={covariance_type!r})", shape_text)
    finfo = np.finfo(np.float64 if dtype is None else dtype)

    def overflow_error(where, what):
        return ValueError(
            f"precisions_init{where} is too {what} for {finfo.dtype.name}: the "
            f"precisions or the covariances (their inverses) overflow. Pass "
            f"precisions between {1.0 / finfo.max:g} and {finfo.max:g}."
        )

    if not cov.matrix:
        if np.any(precisions <= 0.0):
            raise ValueError(
                "'%s precision' should be positive: precisions_init has min value "
                "%g" % (covariance_type, np.min(precisions))
            )
        p64 = precisions.astype(np.float64)
        if p64.max() > finfo.max:
            raise overflow_error("", "large")
        if 1.0 / p64.min() > finfo.max:
            raise overflow_error("", "small")
        return precisions

    eye = np.eye(n_features)
    for k, p in enumerate(cov.stack(precisions)):
        where = f"[{k}]" if precisions.ndim > 2 else ""
        p = p.astype(np.float64)
        if not np.allclose(p, p.T):
            raise ValueError(
                "'%s precision' should be symmetric, positive-definite: "
                "precisions_init%s is not symmetric" % (covariance_type, where)
            )
        try:
            lower = linalg.cholesky(p, lower=True, check_finite=False)
        except linalg.LinAlgError:
            raise ValueError(
                "'%s precision' should be symmetric, positive-definite: "
                "precisions_init%s has smallest eigenvalue %g"
                % (covariance_type, where, np.linalg.eigvalsh(p).min())
            ) from None
        if np.abs(p).max() > finfo.max:
            raise overflow_error(where, "large")
        # covariance = P^-1 = L^-T L^-1: its largest entry is on its diagonal,
        # the squared column norms of L^-1
        with np.errstate(over="ignore", invalid="ignore"):
            inverse = linalg.solve_triangular(lower, eye, lower=True, check_finite=False)
            cov_diag = (inverse * inverse).sum(axis=0)
        if not np.all(cov_diag <= finfo.max):
            raise overflow_error(where, "small")
    return precisions
