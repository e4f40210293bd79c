"""gmmfast: Gaussian mixture models fitted by one-pass EM in Cython.

The same answers as scikit-learn's GaussianMixture, many times faster, in
memory that does not grow with the data.
"""
from ._kernels import openmp_enabled
from ._mixture import GaussianMixture
from ._bayesian_mixture import BayesianGaussianMixture
from ._api import fit
from ._em import FitResult
from ._select import SelectionTable, select
from ._mixture import load_model as load

from ._version import __version__

__all__ = ["GaussianMixture", "BayesianGaussianMixture", "FitResult", "SelectionTable", "fit", "load", "select",
           "openmp_enabled", "__version__"]
