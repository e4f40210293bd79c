"""gmmfast: Gaussian mixture models fitted by one-pass EM in Cython.

The same answers as scikit-learn's GaussianMixture, many times faster, in
memory that does not grow with the data.
"""
from ._kernels import openmp_enabled
from ._mixture import GaussianMixture
from ._bayesian_mixture import BayesianGaussianMixture
from ._imputer import GaussianMixtureImputer
from ._api import fit
from ._em import FitResult
from ._select import SelectionTable, select
from ._mixture import load_model as load
from .accel import patch_sklearn, unpatch_sklearn

from ._version import __version__

__all__ = ["GaussianMixture", "BayesianGaussianMixture", "GaussianMixtureImputer",
           "FitResult", "SelectionTable", "fit", "load", "select", "openmp_enabled",
           "patch_sklearn", "unpatch_sklearn", "__version__"]
