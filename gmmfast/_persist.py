"""Saving and loading a fitted model as a plain ``.npz`` file: plain
dictionaries in (``write_model``), plain dictionaries out (``read_model``);
the estimator builds itself from them (gmmfast/_mixture.py).

A model file holds numbers and text only, never pickled objects: it is read
with ``numpy.load(..., allow_pickle=False)``, so loading an untrusted file
cannot run code. Every entry is checked before a model is built from it:
a truncated or corrupted file (zip CRC), an unknown format version, missing
or unknown entries, wrong shapes or dtypes, non-finite values and parameters
that contradict each other are rejected with a ValueError naming the file
and the problem. A loaded model predicts exactly as the saved one (the
arrays come back bit for bit, in their dtype).

Layout (format version 1), one ``.npy`` entry each:

==========================  ==================================================
``format``                  str, ``"gmmfast.GaussianMixture"``
``format_version``          int64, 1
``gmmfast_version``         str, the version that wrote the file (informative)
``params``                  str, JSON object: the constructor parameters that
                            are plain values (``random_state`` only when an
                            int or None; a RandomState instance is stored as
                            None, with a warning)
``init.weights_init``,      the ``*_init`` constructor arrays, when set
``init.means_init``,
``init.precisions_init``
``weights_``, ``means_``,   the fitted parameters, float32 or float64 (the
``covariances_``,           training data's dtype)
``precisions_cholesky_``,
``precisions_``
``converged_``              bool
``n_iter_``                 int64
``lower_bound_``            float64
``lower_bounds_``           float64 (n_iter_,)
``n_features_in_``          int64
``feature_names_in_``       str (n_features,), when the model was fitted on
                            a DataFrame
==========================  ==================================================
"""
import json
import math
import os
import tempfile
import warnings
import zipfile
from numbers import Integral

import numpy as np

from . import _api, _covariance
from ._version import __version__
from ._validation import check_means, check_precisions, check_weights

FORMAT_NAME = "gmmfast.GaussianMixture"
FORMAT_VERSION = 1

# constructor parameters stored as JSON values
PLAIN_PARAMS = (
    "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
    "init_params", "random_state", "warm_start", "verbose", "verbose_interval",
    "n_threads", "learning_decay", "learning_offset", "nan_policy",
)
# parameters added after format version 1 first shipped: a file without them
# takes their default
LATER_PARAMS = ("nan_policy",)
INIT_PARAMS = ("weights_init", "means_init", "precisions_init")
PARAM_ARRAYS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")
REQUIRED_KEYS = (
    "format", "format_version", "gmmfast_version", "params",
    *PARAM_ARRAYS,
    "converged_", "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_",
)
OPTIONAL_KEYS = ("feature_names_in_",) + tuple("init." + p for p in INIT_PARAMS)

# refuse entries larger than the model they claim to describe needs (a file
# crafted to allocate gigabytes is rejected before anything is read)
_NPY_HEADER_BYTES = 1 << 16  # numpy's own limit on a header is 10000 bytes
_MAX_NAME_CHARS = 1 << 12


def _json_value(value):
    """A constructor parameter as a JSON value (numpy scalars to Python)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def write_model(params, fitted, path):
    """Write a fitted model to ``path`` (a plain ``.npz``).

    The file is written to a temporary name in the same folder and renamed
    into place, so an interrupted save never leaves a partial file at
    ``path``.

    Parameters
    ----------
    params : dict, every constructor parameter (``get_params()``)
    fitted : dict, the fitted attributes by name (weights_ ... n_features_in_,
        and feature_names_in_ when there is one)
    path : str or os.PathLike
        ``.npz`` is appended when missing (as ``numpy.savez`` does).

    Returns
    -------
    path : str
        The path written.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path = path + ".npz"

    plain = {}
    for name in PLAIN_PARAMS:
        value = params[name]
        if name == "random_state" and not (value is None or (
                isinstance(value, Integral) and not isinstance(value, bool))):
            warnings.warn(
                f"random_state={value!r} is not an int or None and is not saved; the "
                "loaded model has random_state=None (only sample() uses it after "
                "fitting). Use an int seed to save it.",
                UserWarning, stacklevel=3,
            )
            value = None
        plain[name] = _json_value(value)

    entries = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "gmmfast_version": np.array(__version__),
        "params": np.array(json.dumps(plain, allow_nan=False)),
        "converged_": np.array(bool(fitted["converged_"])),
        "n_iter_": np.array(int(fitted["n_iter_"]), dtype=np.int64),
        "lower_bound_": np.array(float(fitted["lower_bound_"]), dtype=np.float64),
        "lower_bounds_": np.asarray(fitted["lower_bounds_"], dtype=np.float64).reshape(-1),
        "n_features_in_": np.array(int(fitted["n_features_in_"]), dtype=np.int64),
    }
    for name in PARAM_ARRAYS:
        entries[name] = np.ascontiguousarray(fitted[name])
    if "feature_names_in_" in fitted:
        entries["feature_names_in_"] = np.asarray(fitted["feature_names_in_"], dtype=str)
    for name in INIT_PARAMS:
        value = params[name]
        if value is not None:
            value = np.asarray(value)
            if value.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a numeric array to be saved, got "
                                f"dtype {value.dtype}.")
            entries["init." + name] = value

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gmmfast-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


class _Reject(Exception):
    """A problem found in the file; load_model adds the file name."""


def _expected_shapes(n_components, n_features, covariance_type):
    cov = _covariance.get(covariance_type).shape(n_components, n_features)
    return {
        "weights_": (n_components,),
        "means_": (n_components, n_features),
        "covariances_": cov,
        "precisions_cholesky_": cov,
        "precisions_": cov,
    }


def _scalar(entries, key, kinds):
    value = entries[key]
    if value.shape != () or value.dtype.kind not in kinds:
        raise _Reject(f"entry {key!r} should be a single value of kind {kinds!r}, got "
                      f"dtype {value.dtype} and shape {value.shape}")
    return value[()]


def _check_zip(zf):
    """Entry names, and entry sizes bounded before anything is read."""
    names = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise _Reject(f"unexpected entry {info.filename!r}")
        names[info.filename[:-4]] = info
    missing = [k for k in REQUIRED_KEYS if k not in names]
    if missing:
        raise _Reject(f"missing entries {missing}")
    unknown = sorted(set(names) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise _Reject(f"unknown entries {unknown}")
    return names


def _read(zf, info, name, max_items, max_itemsize=8):
    """One .npy entry, read without pickle and without trusting its header:
    the declared shape and the entry size are bounded before any data is
    read, and the data must fill the entry exactly (the zip CRC is checked
    when the entry is read to its end)."""
    max_bytes = max_items * max_itemsize + _NPY_HEADER_BYTES
    if info.file_size > max_bytes:
        raise _Reject(f"entry {name!r} is {info.file_size} bytes, more than the "
                      f"{max_bytes} its model needs")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _Reject(f"entry {name!r} has .npy format version {version}")
        if dtype.hasobject or dtype.kind not in "biufU" or dtype.itemsize > max_itemsize:
            raise _Reject(f"entry {name!r} has dtype {dtype}, which a model file "
                          "never holds")
        count = math.prod(shape)  # Python ints: a crafted shape cannot wrap around
        if count > max_items:
            raise _Reject(f"entry {name!r} has shape {shape}, larger than its model "
                          "needs")
        nbytes = count * dtype.itemsize
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):
            raise _Reject(f"entry {name!r} does not hold the {nbytes} bytes its "
                          "header announces")
    array = np.frombuffer(data, dtype=dtype)
    array = array.reshape(shape, order="F" if fortran_order else "C")
    return np.array(array, order="C")  # a writable, C-ordered copy


def _read_entries(path):
    try:
        zf = zipfile.ZipFile(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged zip raises
        raise _Reject(f"not an .npz model file, or truncated ({exc})") from None
    with zf:
        infos = _check_zip(zf)
        entries = {}
        try:
            text_chars = 1 << 16
            for key in ("format", "gmmfast_version", "params"):
                entries[key] = _read(zf, infos[key], key, 1, 4 * text_chars)
            for key in ("format_version", "converged_", "n_iter_", "lower_bound_",
                        "n_features_in_"):
                entries[key] = _read(zf, infos[key], key, 1)
            if str(_scalar(entries, "format", "U")) != FORMAT_NAME:
                raise _Reject(f"format is {str(entries['format'])!r}, expected "
                              f"{FORMAT_NAME!r}")
            version = int(_scalar(entries, "format_version", "iu"))
            if version != FORMAT_VERSION:
                newer = " (written by a newer gmmfast: upgrade gmmfast to read it)" \
                    if version > FORMAT_VERSION else ""
                raise _Reject(f"format version {version} is not supported; this gmmfast "
                              f"reads version {FORMAT_VERSION}{newer}")
            params = _parse_params(entries)
            n_features = int(_scalar(entries, "n_features_in_", "iu"))
            n_iter = int(_scalar(entries, "n_iter_", "iu"))
            if n_features < 1:
                raise _Reject(f"n_features_in_ is {n_features}, expected >= 1")
            if n_iter < 0:
                raise _Reject(f"n_iter_ is {n_iter}, expected >= 0")
            shapes = _expected_shapes(params["n_components"], n_features,
                                      params["covariance_type"])
            for key, shape in shapes.items():
                entries[key] = _read(zf, infos[key], key, int(np.prod(shape)))
            entries["lower_bounds_"] = _read(zf, infos["lower_bounds_"], "lower_bounds_",
                                             n_iter)
            if "feature_names_in_" in infos:
                entries["feature_names_in_"] = _read(
                    zf, infos["feature_names_in_"], "feature_names_in_", n_features,
                    4 * _MAX_NAME_CHARS)
            init_shapes = {"weights_init": shapes["weights_"], "means_init": shapes["means_"],
                           "precisions_init": shapes["precisions_"]}
            for name, shape in init_shapes.items():
                if "init." + name in infos:
                    entries["init." + name] = _read(
                        zf, infos["init." + name], name, int(np.prod(shape)))
        except _Reject:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile, zlib, bz2, lzma, numpy
            # a damaged entry or zip directory: bad CRC, flags or compression
            # methods flipped, a header numpy cannot parse, a short read
            raise _Reject(f"corrupted or truncated ({type(exc).__name__}: {exc})") from None
    return entries, params


def _parse_params(entries):
    text = str(_scalar(entries, "params", "U"))
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise _Reject(f"entry 'params' is not valid JSON ({exc})") from None
    if isinstance(params, dict):
        for name in LATER_PARAMS:
            params.setdefault(name, _api.DEFAULTS[name])
    if not isinstance(params, dict) or set(params) != set(PLAIN_PARAMS):
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise _Reject(f"entry 'params' should hold exactly {list(PLAIN_PARAMS)}, got {keys}")
    for name, value in params.items():
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise _Reject(f"parameter {name}={value!r} is not a plain value")
    try:
        _api.validate_params({**_api.DEFAULTS, **params})
    except (TypeError, ValueError) as exc:
        raise _Reject(f"invalid parameters ({exc})") from None
    return params


def _check_model(entries, params):
    """Shapes, dtypes, finiteness and consistency of the fitted parameters."""
    covariance_type = params["covariance_type"]
    n_features = int(entries["n_features_in_"])
    shapes = _expected_shapes(params["n_components"], n_features, covariance_type)
    dtype = entries["weights_"].dtype
    if dtype not in (np.float32, np.float64):
        raise _Reject(f"weights_ has dtype {dtype}, expected float32 or float64")
    for key, shape in shapes.items():
        a = entries[key]
        if a.dtype != dtype:
            raise _Reject(f"{key} has dtype {a.dtype}, but weights_ has {dtype} "
                          "(all fitted parameters share the training data's dtype)")
        if a.shape != shape:
            raise _Reject(f"{key} has shape {a.shape}, expected {shape} for "
                          f"n_components={params['n_components']}, "
                          f"n_features={n_features}, covariance_type={covariance_type!r}")
        if not np.all(np.isfinite(a)):
            raise _Reject(f"{key} has non-finite values")

    eps = float(np.finfo(dtype).eps)
    weights = entries["weights_"].astype(np.float64)
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 16 * (weights.size + 1) * eps:
        raise _Reject(f"weights_ should be non-negative and sum to 1, got sum "
                      f"{weights.sum()!r} and min {weights.min()!r}")

    pc = entries["precisions_cholesky_"].astype(np.float64)
    cov = entries["covariances_"].astype(np.float64)
    prec = entries["precisions_"].astype(np.float64)
    cov_type = _covariance.get(covariance_type)
    if cov_type.matrix:
        pcs, covs = cov_type.stack(pc), cov_type.stack(cov)
        eye = np.eye(n_features)
        for k, (u, c) in enumerate(zip(pcs, covs)):
            if np.any(np.tril(u, -1) != 0) or np.any(np.diagonal(u) <= 0):
                raise _Reject(f"precisions_cholesky_[{k}] is not upper triangular with "
                              "a positive diagonal")
            # Sigma^-1 = U U^T  <=>  U^T Sigma U = I, up to the rounding of
            # U and Sigma to dtype: |U^T dSigma U| <= eps |U|^T |Sigma| |U|
            # elementwise, whatever the conditioning
            residual = np.abs(u.T @ c @ u - eye)
            bound = _consistency_tol(dtype, n_features) * (np.abs(u).T @ np.abs(c) @ np.abs(u))
            if not np.all(residual <= bound):
                raise _Reject(f"covariances_ and precisions_cholesky_ do not match "
                              f"(component {k}: max |U^T Sigma U - I| = "
                              f"{residual.max():.3g})")
    else:
        if np.any(pc <= 0):
            raise _Reject("precisions_cholesky_ should be positive")
        residual = np.abs(pc * pc * cov - 1.0)
        if not np.all(residual <= _consistency_tol(dtype, 1) * pc * pc * cov):
            raise _Reject(f"covariances_ and precisions_cholesky_ do not match "
                          f"(max |U^2 Sigma - 1| = {residual.max():.3g})")
    expected = cov_type.precisions(pc)
    scale = np.abs(pc).max() ** 2 * n_features
    if np.abs(prec - expected).max() > 64 * eps * scale:
        raise _Reject("precisions_ does not equal precisions_cholesky_ times its "
                      "transpose")

    n_iter = int(entries["n_iter_"])
    lower_bounds = entries["lower_bounds_"]
    lower_bound = float(_scalar(entries, "lower_bound_", "f"))
    _scalar(entries, "converged_", "b")
    if lower_bounds.dtype != np.float64 or lower_bounds.shape != (n_iter,):
        raise _Reject(f"lower_bounds_ should be float64 of shape ({n_iter},) "
                      f"(n_iter_), got {lower_bounds.dtype} {lower_bounds.shape}")
    if not np.all(np.isfinite(lower_bounds)):
        raise _Reject("lower_bounds_ has non-finite values")
    if n_iter > 0 and lower_bound != lower_bounds[-1]:
        raise _Reject("lower_bound_ is not the last of lower_bounds_")
    if n_iter == 0 and not (np.isfinite(lower_bound) or lower_bound == -np.inf):
        raise _Reject(f"lower_bound_ is {lower_bound}")

    if "feature_names_in_" in entries:
        names = entries["feature_names_in_"]
        if names.dtype.kind != "U" or names.shape != (n_features,):
            raise _Reject(f"feature_names_in_ should be {n_features} strings, got "
                          f"dtype {names.dtype} and shape {names.shape}")
        if len(set(names.tolist())) != n_features:
            raise _Reject("feature_names_in_ has duplicate names")

    init_checks = {
        "weights_init": lambda v: check_weights(v, params["n_components"]),
        "means_init": lambda v: check_means(v, params["n_components"], n_features),
        "precisions_init": lambda v: check_precisions(
            v, covariance_type, params["n_components"], n_features),
    }
    for name, check in init_checks.items():
        if "init." + name in entries:
            value = entries["init." + name]
            if value.dtype.kind not in "biuf":
                raise _Reject(f"{name} has dtype {value.dtype}, expected numbers")
            try:
                check(value)
            except (TypeError, ValueError) as exc:
                raise _Reject(f"invalid {name} ({exc})") from None


def _consistency_tol(dtype, n_features):
    """Relative rounding allowed in U^T Sigma U: U and Sigma are computed in
    float64 and each rounded to dtype (a real mismatch, such as another
    model's covariances or a rescaled copy, is off by O(1))."""
    return 16.0 * (n_features + 2) * float(np.finfo(dtype).eps)


def read_model(path):
    """Read a model written by ``write_model``: (params, fitted), plain dicts.

    Never unpickles anything (``allow_pickle=False``); checks the file
    completely before returning anything.

    Returns
    -------
    params : dict, the constructor parameters saved (the ``*_init`` arrays
        among them when set)
    fitted : dict, the fitted attributes (arrays in their saved dtype, bit for
        bit)

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a gmmfast model file, is truncated or corrupted, has
        another format version, or its contents are inconsistent; the message
        names the file and the problem.
    """
    path = os.fspath(path)
    try:
        entries, params = _read_entries(path)
        _check_model(entries, params)
    except _Reject as exc:
        raise ValueError(f"{path}: cannot load the gmmfast model: {exc}.") from None

    params.update({name: entries["init." + name] for name in INIT_PARAMS
                   if "init." + name in entries})
    fitted = {name: entries[name] for name in PARAM_ARRAYS}
    fitted.update(
        converged_=bool(entries["converged_"]),
        n_iter_=int(entries["n_iter_"]),
        lower_bound_=float(entries["lower_bound_"]),
        lower_bounds_=[float(v) for v in entries["lower_bounds_"]],
        n_features_in_=int(entries["n_features_in_"]),
    )
    if "feature_names_in_" in entries:
        fitted["feature_names_in_"] = entries["feature_names_in_"].astype(object)
    return params, fitted
