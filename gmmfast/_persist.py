"""Model files for the command line: a plain .npz, read without pickle.

``save_model(model, path)`` writes the constructor parameters that matter for
using the model (and refitting it) and the fitted attributes as plain arrays,
plus ``format_version`` (1) and ``covariance_type`` as a string array.
``load_model(path)`` reads them with ``allow_pickle=False`` and checks names,
shapes and values before building a fitted :class:`GaussianMixture`.
"""
import numpy as np

from . import _maths

FORMAT_VERSION = 1

# constructor parameters stored (random_state only when it is an int)
_SCALAR_PARAMS = {
    "n_components": int, "tol": float, "reg_covar": float, "max_iter": int,
    "n_init": int, "verbose_interval": int, "learning_decay": float,
    "learning_offset": float,
}
_STRING_PARAMS = ("covariance_type", "init_params")
_ARRAYS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


class ModelFileError(ValueError):
    """A model file that is missing, unreadable, or not a gmmfast model."""


def save_model(model, path):
    """Write a fitted GaussianMixture to ``path`` (written as given, no
    suffix added).

    Parameters
    ----------
    model : GaussianMixture, fitted
    path : str or path-like
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    entries = {"format_version": np.array(FORMAT_VERSION, dtype=np.int64)}
    for name, kind in _SCALAR_PARAMS.items():
        entries[name] = np.array(kind(getattr(model, name)))
    for name in _STRING_PARAMS:
        entries[name] = np.array(str(getattr(model, name)))
    if isinstance(model.random_state, (int, np.integer)) and not isinstance(
            model.random_state, bool):
        entries["random_state"] = np.array(int(model.random_state), dtype=np.int64)
    for name in _ARRAYS:
        entries[name] = np.asarray(getattr(model, name))
    entries["converged_"] = np.array(bool(model.converged_))
    entries["n_iter_"] = np.array(int(model.n_iter_), dtype=np.int64)
    entries["lower_bound_"] = np.array(float(model.lower_bound_))
    entries["lower_bounds_"] = np.asarray(model.lower_bounds_, dtype=np.float64)
    entries["n_features_in_"] = np.array(int(model.n_features_in_), dtype=np.int64)
    if hasattr(model, "feature_names_in_"):
        entries["feature_names_in_"] = np.asarray(model.feature_names_in_, dtype=str)
    with open(path, "wb") as f:
        np.savez(f, **entries)


def _scalar(data, name, kind, path):
    value = data[name]
    if value.shape != () or value.dtype.kind not in "biuf":
        raise ModelFileError(f"{path}: '{name}' should be a number, got an array "
                             f"of shape {value.shape} and dtype {value.dtype}")
    return kind(value)


def load_model(path):
    """Read a model written by :func:`save_model`.

    Returns
    -------
    GaussianMixture, fitted (in the dtype it was saved in)

    Raises
    ------
    ModelFileError (a ValueError) naming the file and what is wrong; OSError
    when the file cannot be opened.
    """
    from ._mixture import GaussianMixture

    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:
        raise ModelFileError(f"{path} is not a gmmfast model file (.npz): {exc}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path} is a .npy array, not a gmmfast model file (.npz)")
    try:
        with npz:
            data = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError) as exc:
        raise ModelFileError(f"{path}: unreadable model file: {exc}") from None

    required = (("format_version",) + tuple(_SCALAR_PARAMS) + _STRING_PARAMS + _ARRAYS
                + ("converged_", "n_iter_", "lower_bound_", "lower_bounds_",
                   "n_features_in_"))
    missing = [name for name in required if name not in data]
    if "format_version" in missing:
        raise ModelFileError(f"{path} is not a gmmfast model file (no 'format_version')")
    version = _scalar(data, "format_version", int, path)
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format version {version}; this gmmfast "
                             f"reads version {FORMAT_VERSION}")
    if missing:
        raise ModelFileError(f"{path} is not a complete gmmfast model file: missing "
                             + ", ".join(repr(m) for m in missing))

    params = {name: _scalar(data, name, kind, path) for name, kind in _SCALAR_PARAMS.items()}
    for name in _STRING_PARAMS:
        if data[name].shape != () or data[name].dtype.kind != "U":
            raise ModelFileError(f"{path}: '{name}' should be a string")
        params[name] = str(data[name])
    if "random_state" in data:
        params["random_state"] = _scalar(data, "random_state", int, path)
    covariance_type = params["covariance_type"]
    if covariance_type not in _maths.COVARIANCE_TYPES:
        raise ModelFileError(f"{path}: unknown covariance_type {covariance_type!r}")
    try:
        model = GaussianMixture(**params)
        model._validate_params()
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: invalid parameters: {exc}") from None

    n_components = params["n_components"]
    n_features = _scalar(data, "n_features_in_", int, path)
    expected = {
        "weights_": (n_components,),
        "means_": (n_components, n_features),
    }
    for name in ("covariances_", "precisions_cholesky_", "precisions_"):
        expected[name] = _maths.covariance_shape(covariance_type, n_components, n_features)
    dtype = data["means_"].dtype
    if dtype not in (np.float32, np.float64):
        raise ModelFileError(f"{path}: 'means_' has dtype {dtype}; expected float32 or float64")
    for name, shape in expected.items():
        a = data[name]
        if a.shape != shape:
            raise ModelFileError(f"{path}: '{name}' has shape {a.shape}; a {covariance_type} "
                                 f"model with n_components={n_components} and "
                                 f"n_features={n_features} needs {shape}")
        if a.dtype != dtype:
            raise ModelFileError(f"{path}: '{name}' has dtype {a.dtype}, 'means_' {dtype}")
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f"{path}: '{name}' holds NaN or infinity")
        setattr(model, name, a)
    model.converged_ = bool(data["converged_"])
    model.n_iter_ = _scalar(data, "n_iter_", int, path)
    model.lower_bound_ = _scalar(data, "lower_bound_", float, path)
    model.lower_bounds_ = [float(v) for v in np.asarray(data["lower_bounds_"]).ravel()]
    model.n_features_in_ = n_features
    if "feature_names_in_" in data:
        names = data["feature_names_in_"]
        if names.shape != (n_features,) or names.dtype.kind != "U":
            raise ModelFileError(f"{path}: 'feature_names_in_' should be {n_features} strings")
        model.feature_names_in_ = names.astype(object)
    return model
