"""gmmfast: Gaussian mixture models fitted by one-pass EM in Cython.

The same answers as scikit-learn's GaussianMixture, many times faster, in
memory that does not grow with the data.
"""
from ._kernels import openmp_enabled
from ._mixture import GaussianMixture
from ._api import fit
from ._em import FitResult
from ._persist import load_model as load

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "FitResult", "fit", "load", "openmp_enabled", "__version__"]
