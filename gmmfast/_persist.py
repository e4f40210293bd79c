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

A BayesianGaussianMixture (gmmfast/_bayesian_mixture.py) is saved the same
way, with ``format`` ``"gmmfast.BayesianGaussianMixture"`` (version 1):
``params`` holds its plain constructor parameters, ``init.mean_prior`` and
``init.covariance_prior`` its array (or number) priors when set, and beside
the entries above (``weights_`` and ``precisions_`` included) it stores, in
the training data's dtype, ``weight_concentration_`` ((2, K) for the
Dirichlet process: scikit-learn's two arrays stacked; (K,) otherwise),
``mean_precision_`` (K,) and ``degrees_of_freedom_`` ((K,); tied: a single
value), and the fitted priors ``weight_concentration_prior_``,
``mean_precision_prior_``, ``degrees_of_freedom_prior_`` (single values,
int64 for an int), ``mean_prior_`` (D,) and ``covariance_prior_`` (covariance
layout: (D, D), diag (D,), spherical a single value). ``read_model``
returns what the file holds (``Schema.name``); ``load_model`` builds that
estimator.
"""
import json
import math
import os
import tempfile
import warnings
import zipfile
from numbers import Integral

import numpy as np

from . import _api, _bayesian, _covariance
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

BGM_FORMAT_NAME = "gmmfast.BayesianGaussianMixture"
BGM_PLAIN_PARAMS = (
    "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
    "init_params", "weight_concentration_prior_type", "weight_concentration_prior",
    "mean_precision_prior", "degrees_of_freedom_prior", "random_state", "warm_start",
    "verbose", "verbose_interval", "n_threads", "learning_decay", "learning_offset",
    "nan_policy",
)
BGM_INIT_PARAMS = ("mean_prior", "covariance_prior")
# in the training data's dtype, with the GaussianMixture arrays
BGM_PARAM_ARRAYS = PARAM_ARRAYS + (
    "weight_concentration_", "mean_precision_", "degrees_of_freedom_")
BGM_SCALAR_PRIORS = ("weight_concentration_prior_", "mean_precision_prior_",
                     "degrees_of_freedom_prior_")
BGM_PRIOR_ARRAYS = ("mean_prior_", "covariance_prior_")


class Schema:
    """What one estimator's files hold: the format name, the constructor
    parameters stored as JSON values and as ``init.`` arrays, the fitted
    arrays in the training dtype and the other fitted entries; ``validate``
    checks the parameters (raises TypeError/ValueError) and ``check`` the
    estimator's own consistency rules (raises _Reject)."""

    def __init__(self, name, plain_params, init_params, param_arrays, other_arrays,
                 validate, check, later_params=()):
        self.name = name
        self.plain_params = plain_params
        self.init_params = init_params
        self.param_arrays = param_arrays
        self.other_arrays = other_arrays
        self.validate = validate
        self.check = check
        self.later_params = later_params
        self.required_keys = (
            "format", "format_version", "gmmfast_version", "params",
            *param_arrays, *other_arrays,
            "converged_", "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_",
        )
        self.optional_keys = ("feature_names_in_",) + tuple("init." + p for p in init_params)

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


def write_model(params, fitted, path, schema=None):
    """Write a fitted model to ``path`` (a plain ``.npz``).

    The file is written to a temporary name in the same folder and renamed
    into place, so an interrupted save never leaves a partial file at
    ``path``.

    Parameters
    ----------
    params : dict, every constructor parameter (``get_params()``)
    fitted : dict, the fitted attributes by name (weights_ ... n_features_in_,
        and feature_names_in_ when there is one), as arrays in the layout of
        the module docstring
    schema : Schema, default GaussianMixture's
    path : str or os.PathLike
        ``.npz`` is appended when missing (as ``numpy.savez`` does).

    Returns
    -------
    path : str
        The path written.
    """
    schema = GMM_SCHEMA if schema is None else schema
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path = path + ".npz"

    plain = {}
    for name in schema.plain_params:
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
        "format": np.array(schema.name),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "gmmfast_version": np.array(__version__),
        "params": np.array(json.dumps(plain, allow_nan=False)),
        "converged_": np.array(bool(fitted["converged_"])),
        "n_iter_": np.array(int(fitted["n_iter_"]), dtype=np.int64),
        "lower_bound_": np.array(float(fitted["lower_bound_"]), dtype=np.float64),
        "lower_bounds_": np.asarray(fitted["lower_bounds_"], dtype=np.float64).reshape(-1),
        "n_features_in_": np.array(int(fitted["n_features_in_"]), dtype=np.int64),
    }
    for name in schema.param_arrays + schema.other_arrays:
        entries[name] = np.asarray(fitted[name], order="C")  # 0-d stays 0-d
    if "feature_names_in_" in fitted:
        entries["feature_names_in_"] = np.asarray(fitted["feature_names_in_"], dtype=str)
    for name in schema.init_params:
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


def _bgm_prior_shape(n_features, covariance_type):
    """covariance_prior_'s shape (full/tied (D, D), diag (D,), spherical ())."""
    return {"full": (n_features, n_features), "tied": (n_features, n_features),
            "diag": (n_features,), "spherical": ()}[covariance_type]


def _bgm_shapes(params, n_features):
    """Every BayesianGaussianMixture array entry's shape."""
    n_components, covariance_type = params["n_components"], params["covariance_type"]
    shapes = _expected_shapes(n_components, n_features, covariance_type)
    dp = params["weight_concentration_prior_type"] == "dirichlet_process"
    shapes.update({
        "weight_concentration_": (2, n_components) if dp else (n_components,),
        "mean_precision_": (n_components,),
        "degrees_of_freedom_": (() if _covariance.get(covariance_type).uses_scatter
                                else (n_components,)),
        **{name: () for name in BGM_SCALAR_PRIORS},
        "mean_prior_": (n_features,),
        "covariance_prior_": _bgm_prior_shape(n_features, covariance_type),
    })
    return shapes


def _shapes(schema, params, n_features):
    if schema is BGM_SCHEMA:
        return _bgm_shapes(params, n_features)
    return _expected_shapes(params["n_components"], n_features, params["covariance_type"])


def _init_shapes(schema, shapes):
    """The ``init.`` entries' shapes (the most values each may hold)."""
    if schema is BGM_SCHEMA:
        return {"mean_prior": shapes["mean_prior_"],
                "covariance_prior": shapes["covariance_prior_"]}
    return {"weights_init": shapes["weights_"], "means_init": shapes["means_"],
            "precisions_init": shapes["precisions_"]}


def _scalar(entries, key, kinds):
    value = entries[key]
    if value.shape != () or value.dtype.kind not in kinds:
        raise _Reject(f"entry {key!r} should be a single value of kind {kinds!r}, got "
                      f"dtype {value.dtype} and shape {value.shape}")
    return value[()]


def _zip_names(zf):
    """Entry names (every one a .npy)."""
    names = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise _Reject(f"unexpected entry {info.filename!r}")
        names[info.filename[:-4]] = info
    return names


def _check_names(names, schema):
    """The schema's entries and no others, checked before they are read."""
    missing = [k for k in schema.required_keys if k not in names]
    if missing:
        raise _Reject(f"missing entries {missing}")
    unknown = sorted(set(names) - set(schema.required_keys) - set(schema.optional_keys))
    if unknown:
        raise _Reject(f"unknown entries {unknown}")


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
        infos = _zip_names(zf)
        entries = {}
        try:
            text_chars = 1 << 16
            if "format" in infos:
                entries["format"] = _read(zf, infos["format"], "format", 1, 4 * text_chars)
                name = str(_scalar(entries, "format", "U"))
                if name not in SCHEMAS:
                    raise _Reject(f"format is {name!r}, expected one of "
                                  f"{sorted(SCHEMAS)}")
                schema = SCHEMAS[name]
            else:
                schema = GMM_SCHEMA
            _check_names(infos, schema)
            for key in ("gmmfast_version", "params"):
                entries[key] = _read(zf, infos[key], key, 1, 4 * text_chars)
            for key in ("format_version", "converged_", "n_iter_", "lower_bound_",
                        "n_features_in_"):
                entries[key] = _read(zf, infos[key], key, 1)
            version = int(_scalar(entries, "format_version", "iu"))
            if version != FORMAT_VERSION:
                newer = " (written by a newer gmmfast: upgrade gmmfast to read it)" \
                    if version > FORMAT_VERSION else ""
                raise _Reject(f"format version {version} is not supported; this gmmfast "
                              f"reads version {FORMAT_VERSION}{newer}")
            params = _parse_params(entries, schema)
            n_features = int(_scalar(entries, "n_features_in_", "iu"))
            n_iter = int(_scalar(entries, "n_iter_", "iu"))
            if n_features < 1:
                raise _Reject(f"n_features_in_ is {n_features}, expected >= 1")
            if n_iter < 0:
                raise _Reject(f"n_iter_ is {n_iter}, expected >= 0")
            shapes = _shapes(schema, params, n_features)
            for key, shape in shapes.items():
                entries[key] = _read(zf, infos[key], key, int(np.prod(shape)))
            entries["lower_bounds_"] = _read(zf, infos["lower_bounds_"], "lower_bounds_",
                                             n_iter)
            if "feature_names_in_" in infos:
                entries["feature_names_in_"] = _read(
                    zf, infos["feature_names_in_"], "feature_names_in_", n_features,
                    4 * _MAX_NAME_CHARS)
            for name, shape in _init_shapes(schema, shapes).items():
                if "init." + name in infos:
                    entries["init." + name] = _read(
                        zf, infos["init." + name], name, int(np.prod(shape)))
        except _Reject:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile, zlib, bz2, lzma, numpy
            # a damaged entry or zip directory: bad CRC, flags or compression
            # methods flipped, a header numpy cannot parse, a short read
            raise _Reject(f"corrupted or truncated ({type(exc).__name__}: {exc})") from None
    return entries, params, schema


def _parse_params(entries, schema):
    text = str(_scalar(entries, "params", "U"))
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise _Reject(f"entry 'params' is not valid JSON ({exc})") from None
    if isinstance(params, dict):
        for name in schema.later_params:
            params.setdefault(name, _api.DEFAULTS[name])
    if not isinstance(params, dict) or set(params) != set(schema.plain_params):
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise _Reject(f"entry 'params' should hold exactly {list(schema.plain_params)}, "
                      f"got {keys}")
    for name, value in params.items():
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise _Reject(f"parameter {name}={value!r} is not a plain value")
    try:
        schema.validate(params)
    except (TypeError, ValueError) as exc:
        raise _Reject(f"invalid parameters ({exc})") from None
    return params


def _check_model(entries, params, schema):
    """Shapes, dtypes, finiteness and consistency of the fitted parameters."""
    covariance_type = params["covariance_type"]
    n_features = int(entries["n_features_in_"])
    shapes = _shapes(schema, params, n_features)
    dtype = entries["weights_"].dtype
    if dtype not in (np.float32, np.float64):
        raise _Reject(f"weights_ has dtype {dtype}, expected float32 or float64")
    for key in schema.param_arrays:
        a, shape = entries[key], shapes[key]
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

    schema.check(entries, params, n_features)


def _check_gmm(entries, params, n_features):
    """GaussianMixture's ``*_init`` arrays."""
    covariance_type = params["covariance_type"]
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


def _check_bgm(entries, params, n_features):
    """BayesianGaussianMixture's priors (as fitted and as given) and
    variational parameters."""
    dtype = entries["weights_"].dtype
    for name in BGM_SCALAR_PRIORS + BGM_PRIOR_ARRAYS:
        a = entries[name]
        kinds = "iuf" if name in BGM_SCALAR_PRIORS else "f"
        if a.dtype.kind not in kinds or not np.all(np.isfinite(a)):
            raise _Reject(f"{name} should hold finite numbers, got dtype {a.dtype}")
        if name in BGM_SCALAR_PRIORS and not a > 0:
            raise _Reject(f"{name} is {a.item()!r}, expected > 0")
    given = {name: entries.get("init." + name) for name in BGM_INIT_PARAMS}
    for name, value in given.items():
        if value is not None and value.dtype.kind not in "iuf":
            raise _Reject(f"{name} has dtype {value.dtype}, expected numbers")
    fitted_priors = dict(
        covariance_type=params["covariance_type"],
        degrees_of_freedom_prior=float(entries["degrees_of_freedom_prior_"]),
        mean_prior=entries["mean_prior_"], covariance_prior=entries["covariance_prior_"])
    # scikit-learn's checks of the priors (and their messages)
    for what, priors in (("priors", fitted_priors),
                         ("constructor priors", dict(fitted_priors, **given))):
        try:
            _bayesian.check_prior_arguments(priors, n_features)
        except (TypeError, ValueError) as exc:
            raise _Reject(f"invalid {what} ({exc})") from None
    for name, low in (("weight_concentration_", 0.0), ("mean_precision_", 0.0),
                      ("degrees_of_freedom_", n_features - 1.0)):
        if not np.all(entries[name] > low):
            raise _Reject(f"{name} should be greater than {low:g}")
    wc = entries["weight_concentration_"]
    if params["weight_concentration_prior_type"] == "dirichlet_process":
        wc = (wc[0], wc[1])
    weights = _bayesian.mixture_weights(wc, params["weight_concentration_prior_type"])
    tol = 16.0 * (weights.size + 1) * float(np.finfo(dtype).eps)
    if np.abs(entries["weights_"] - weights).max() > tol:
        raise _Reject("weights_ are not the weights of weight_concentration_")


GMM_SCHEMA = Schema(
    FORMAT_NAME, PLAIN_PARAMS, INIT_PARAMS, PARAM_ARRAYS, (),
    validate=lambda params: _api.validate_params({**_api.DEFAULTS, **params}),
    check=_check_gmm, later_params=LATER_PARAMS)


def _validate_bgm(params):
    # imported here: gmmfast/_bayesian_mixture.py imports this module to save
    from ._bayesian_mixture import BayesianGaussianMixture

    BayesianGaussianMixture(**params)._validate_params()


BGM_SCHEMA = Schema(
    BGM_FORMAT_NAME, BGM_PLAIN_PARAMS, BGM_INIT_PARAMS, BGM_PARAM_ARRAYS,
    BGM_SCALAR_PRIORS + BGM_PRIOR_ARRAYS, validate=_validate_bgm, check=_check_bgm)
SCHEMAS = {schema.name: schema for schema in (GMM_SCHEMA, BGM_SCHEMA)}


def bgm_entries(fitted):
    """A BayesianGaussianMixture's fitted attributes in the file's layout
    (the Dirichlet process's two concentration arrays stacked, the single
    values as 0-d arrays)."""
    out = dict(fitted)
    wc = fitted["weight_concentration_"]
    out["weight_concentration_"] = np.stack(wc) if isinstance(wc, tuple) else wc
    for name in ("degrees_of_freedom_",) + BGM_PRIOR_ARRAYS:
        out[name] = np.asarray(fitted[name])
    for name in BGM_SCALAR_PRIORS:
        out[name] = np.array(_json_value(fitted[name]))  # an int stays an int
    return out


def _bgm_attributes(entries, params, fitted):
    """The inverse of ``bgm_entries``: scikit-learn's types back."""
    wc = entries["weight_concentration_"]
    fitted["weight_concentration_"] = (
        (wc[0].copy(), wc[1].copy())
        if params["weight_concentration_prior_type"] == "dirichlet_process" else wc)
    dof = entries["degrees_of_freedom_"]
    fitted["degrees_of_freedom_"] = dof[()] if dof.ndim == 0 else dof
    for name in BGM_SCALAR_PRIORS:
        fitted[name] = entries[name].item()
    fitted["mean_prior_"] = entries["mean_prior_"]
    cp = entries["covariance_prior_"]
    fitted["covariance_prior_"] = float(cp) if cp.ndim == 0 else cp
    if "init.covariance_prior" in entries and entries["init.covariance_prior"].ndim == 0:
        params["covariance_prior"] = entries["init.covariance_prior"].item()


def _consistency_tol(dtype, n_features):
    """Relative rounding allowed in U^T Sigma U: U and Sigma are computed in
    float64 and each rounded to dtype (a real mismatch, such as another
    model's covariances or a rescaled copy, is off by O(1))."""
    return 16.0 * (n_features + 2) * float(np.finfo(dtype).eps)


def read_model(path):
    """Read a model written by ``write_model``: (format name, params,
    fitted), plain dicts and the ``format`` entry (``FORMAT_NAME`` or
    ``BGM_FORMAT_NAME``: which estimator to build).

    Never unpickles anything (``allow_pickle=False``); checks the file
    completely before returning anything.

    Returns
    -------
    name : str, the estimator's format name
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
        entries, params, schema = _read_entries(path)
        _check_model(entries, params, schema)
    except _Reject as exc:
        raise ValueError(f"{path}: cannot load the gmmfast model: {exc}.") from None

    params.update({name: entries["init." + name] for name in schema.init_params
                   if "init." + name in entries})
    fitted = {name: entries[name] for name in schema.param_arrays}
    fitted.update(
        converged_=bool(entries["converged_"]),
        n_iter_=int(entries["n_iter_"]),
        lower_bound_=float(entries["lower_bound_"]),
        lower_bounds_=[float(v) for v in entries["lower_bounds_"]],
        n_features_in_=int(entries["n_features_in_"]),
    )
    if "feature_names_in_" in entries:
        fitted["feature_names_in_"] = entries["feature_names_in_"].astype(object)
    if schema is BGM_SCHEMA:
        _bgm_attributes(entries, params, fitted)
    return schema.name, params, fitted
