"""Zero-code-change acceleration: scikit-learn's mixture classes become
gmmfast's in code that imports them afterwards.

    import gmmfast
    gmmfast.patch_sklearn()
    from sklearn.mixture import GaussianMixture   # gmmfast's, accelerated

or, for a script left as it is::

    python -m gmmfast.accel script.py [args...]
    python -m gmmfast.accel -m package.module [args...]

(``gmmfast/accel/__main__.py``; a package, so that ``-m`` runs it without
importing this module twice.)

``sklearn.mixture.GaussianMixture`` (and ``BayesianGaussianMixture`` where
gmmfast has one) is replaced by a subclass of gmmfast's estimator that takes
every input scikit-learn's takes: where gmmfast cannot (array-API arrays of
another namespace under ``sklearn.set_config(array_api_dispatch=True)``, a
GPU tensor for instance; input gmmfast rejects and scikit-learn fits, such
as numbers stored as strings or a fit gmmfast stops with an error that
scikit-learn's fits through), the call runs scikit-learn's own class
instead, with one log line (logger ``"gmmfast"``) saying so; the model then
stays scikit-learn's until the next fit. ``unpatch_sklearn()`` restores
scikit-learn's classes.

This module sits above the estimators (it imports gmmfast's package) and
nothing in gmmfast imports it, but ``gmmfast/__init__.py`` for the two names.
"""
import functools
import logging
import os
import runpy
import sys

import numpy as np
import sklearn.mixture
from sklearn import get_config

try:  # vendored by scikit-learn >= 1.7; a separate package before
    from sklearn.externals import array_api_compat
except ImportError:  # pragma: no cover - depends on the installed versions
    try:
        import array_api_compat
    except ImportError:  # then scikit-learn cannot dispatch to other arrays either
        array_api_compat = None

from .. import _dask

logger = logging.getLogger("gmmfast")

# the names patched in sklearn.mixture, and gmmfast's estimators for them
PATCHED_NAMES = ("GaussianMixture", "BayesianGaussianMixture")
_originals = {}
_accelerated_classes = {}


def _foreign_array(X):
    """An array-API array of a namespace other than numpy, which scikit-learn
    computes on in place (array_api_dispatch on): gmmfast cannot."""
    if not get_config().get("array_api_dispatch", False):
        return False  # scikit-learn converts it with numpy, and so does gmmfast
    if isinstance(X, np.ndarray) or _dask.is_dask_array(X):
        return False
    if array_api_compat is None:
        return hasattr(X, "__array_namespace__")
    return bool(array_api_compat.is_array_api_obj(X))


def _log_fallback(cls_name, method, why):
    logger.warning("gmmfast: %s.%s runs scikit-learn's own %s: %s", cls_name, method,
                   cls_name, why)


_PREDICT_METHODS = ("predict", "predict_proba", "score_samples", "score", "bic", "aic")


def _make_accelerated(gmmfast_cls, sklearn_cls):
    """A subclass of ``gmmfast_cls`` that runs ``sklearn_cls`` where gmmfast
    cannot take the input."""
    sklearn_params = set(sklearn_cls._get_param_names())
    name = sklearn_cls.__name__

    def _sklearn_estimator(self):
        return sklearn_cls(**{k: v for k, v in self.get_params(deep=False).items()
                              if k in sklearn_params})

    def _adopt(self, sk):
        """Take scikit-learn's fitted model as this estimator's."""
        self.__dict__.update({k: v for k, v in vars(sk).items()
                              if k.endswith("_") and not k.startswith("_")})
        self.__dict__["_sklearn_model"] = sk

    def _fit_with_sklearn(self, method, X, why):
        sk = self._sklearn_estimator()
        result = getattr(sk, method)(X)
        # logged once scikit-learn has fitted: where it fails too, the error
        # is gmmfast's and nothing ran in its place
        _log_fallback(name, method, why)
        self._adopt(sk)
        return result

    def _fit_either(self, method, X, y, sample_weight):
        self.__dict__.pop("_sklearn_model", None)
        if sample_weight is None and _foreign_array(X):
            return self._fit_with_sklearn(method, X, f"X is a {type(X).__module__}."
                                          f"{type(X).__name__} array, which gmmfast "
                                          "cannot compute on")
        try:
            # sample_weight only when given: an estimator without it stays usable
            kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
            return getattr(gmmfast_cls, method)(self, X, y, **kwargs)
        except (TypeError, ValueError) as exc:
            if sample_weight is not None:
                raise  # scikit-learn has no sample weights to fall back on
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            try:
                return self._fit_with_sklearn(
                    method, X, f"gmmfast raised {type(exc).__name__}: {first_line}")
            except Exception:  # noqa: BLE001 - scikit-learn fails too: gmmfast's error
                raise exc from None

    def fit(self, X, y=None, sample_weight=None):
        self._fit_either("fit", X, y, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        return self._fit_either("fit_predict", X, y, sample_weight)

    def partial_fit(self, X, y=None, sample_weight=None):
        self.__dict__.pop("_sklearn_model", None)
        return gmmfast_cls.partial_fit(self, X, y, sample_weight=sample_weight)

    def _sklearn_twin(self, X, method):
        """scikit-learn's model for this call: the one fitted, or one with
        gmmfast's fitted parameters moved to X's namespace and device."""
        sk = self.__dict__.get("_sklearn_model")
        if sk is not None:
            return sk
        if not _foreign_array(X):
            return None
        from sklearn.utils._array_api import get_namespace_and_device
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        xp, _, device = get_namespace_and_device(X)
        _log_fallback(name, method, f"X is a {type(X).__module__}.{type(X).__name__} "
                                    "array, which gmmfast cannot compute on")
        sk = self._sklearn_estimator()
        for attr, value in vars(self).items():
            if attr.endswith("_") and not attr.startswith("_"):
                if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                    value = xp.asarray(value, device=device)
                setattr(sk, attr, value)
        return sk

    def _method(method):
        # functools.wraps: the signature (inspect follows __wrapped__), name
        # and docstring of gmmfast's method
        @functools.wraps(getattr(gmmfast_cls, method))
        def call(self, X, *args, **kwargs):
            sk = self._sklearn_twin(X, method)
            if sk is not None:
                return getattr(sk, method)(X, *args, **kwargs)
            return getattr(gmmfast_cls, method)(self, X, *args, **kwargs)
        return call

    def sample(self, n_samples=1):
        sk = self.__dict__.get("_sklearn_model")
        return (sk.sample(n_samples) if sk is not None
                else gmmfast_cls.sample(self, n_samples))

    namespace = dict(
        __module__=__name__, __qualname__=name,
        __doc__=(f"gmmfast's {name}, standing in for scikit-learn's (gmmfast.patch_sklearn); "
                 f"scikit-learn's own {name} runs where gmmfast cannot take the input.\n\n"
                 + (gmmfast_cls.__doc__ or "")),
        _sklearn_estimator=_sklearn_estimator, _adopt=_adopt,
        _fit_with_sklearn=_fit_with_sklearn, _fit_either=_fit_either, fit=fit,
        fit_predict=fit_predict, partial_fit=partial_fit, _sklearn_twin=_sklearn_twin,
        sample=sample,
        **{m: _method(m) for m in _PREDICT_METHODS if hasattr(gmmfast_cls, m)},
    )
    if not hasattr(gmmfast_cls, "partial_fit"):
        del namespace["partial_fit"]
    return type(name, (gmmfast_cls,), namespace)


def accelerated_class(name):
    """The class ``patch_sklearn`` puts in ``sklearn.mixture`` for ``name``,
    or None where gmmfast has no such estimator."""
    import gmmfast

    gmmfast_cls = getattr(gmmfast, name, None)
    if gmmfast_cls is None:
        return None
    cls = _accelerated_classes.get(name)
    if cls is None or cls.__bases__[0] is not gmmfast_cls:
        sklearn_cls = _originals.get(name, getattr(sklearn.mixture, name))
        cls = _make_accelerated(gmmfast_cls, sklearn_cls)
        _accelerated_classes[name] = cls
        globals()[name] = cls  # picklable by reference: gmmfast.accel.<name>
    return cls


def patch_sklearn():
    """Make ``sklearn.mixture.GaussianMixture`` (and ``BayesianGaussianMixture``
    where gmmfast has one) gmmfast's, for code that imports them afterwards.

    Returns the list of names patched. Calling it again does nothing more.
    """
    patched = []
    for name in PATCHED_NAMES:
        cls = accelerated_class(name)
        if cls is None:
            continue
        _originals.setdefault(name, getattr(sklearn.mixture, name))
        setattr(sklearn.mixture, name, cls)
        patched.append(name)
    return patched


def unpatch_sklearn():
    """Restore scikit-learn's own classes in ``sklearn.mixture``."""
    for name, original in list(_originals.items()):
        setattr(sklearn.mixture, name, original)
        del _originals[name]


def is_patched():
    return bool(_originals)


USAGE = "usage: python -m gmmfast.accel script.py [args...] | -m module [args...]"


def main(argv=None):
    """``python -m gmmfast.accel script.py [args]``: patch, then run the
    script (or ``-m module``) as ``__main__`` with ``sys.argv`` set to it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    patch_sklearn()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        # as `python script.py` would: the script's folder first on the path
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


