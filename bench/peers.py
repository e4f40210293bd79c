"""Adapters: one EM fit of a fixed number of iterations, from a given start.

Each adapter's ``fit`` returns the number of iterations the library reports
having run, read back, never assumed: oneDAL stops early when the
log-likelihood change is exactly 0, even with accuracyThreshold=0; mlpack's
count comes from its log (max_iterations=n runs n - 1); OpenCV reports none,
so its ``fit`` returns None and ``count_iterations`` reads the count off the
results, outside the timing.
"""
import numpy as np


# The timed fits get weights_init, means_init and precisions_init, which
# replace whatever the initialisation computes; scikit-learn still runs its
# init_params first (with the default 'kmeans', a KMeans of K clusters before
# every fit: seconds at K = 256-1024, whose noise swamped the difference of
# two fits). The cheapest initialisation gives the same parameters and
# iterations.
START_INIT = "random_from_data"


class GmmFast:
    name = "gmmfast"

    def supports(self, covariance_type, dtype):
        return True

    def fitted_model(self, X, start, covariance_type, n_iter, n_threads):
        from gmmfast import GaussianMixture

        gm = GaussianMixture(len(start["weights_init"]), covariance_type=covariance_type,
                             tol=0.0, max_iter=n_iter, n_threads=n_threads,
                             init_params=START_INIT, **start)
        return gm.fit(X)

    def fit(self, X, start, covariance_type, n_iter, n_threads):
        return self.fitted_model(X, start, covariance_type, n_iter, n_threads).n_iter_

    def call(self, model, method, X, n_threads):
        return getattr(model, method)(X)

    # whole fits and select: the caller (bench/run.py, time_whole) sets the
    # thread limits once around the timed calls, for every library alike

    def whole_fit(self, X, n_components, seed, n_threads):
        """A fit with every default (k-means start, tol=1e-3) but the seed."""
        from gmmfast import GaussianMixture

        return GaussianMixture(n_components, random_state=seed,
                               n_threads=n_threads).fit(X).n_iter_

    def select(self, X, n_components, covariance_type, seed, n_threads):
        """gmmfast.select over ``n_components`` by BIC: the chosen K."""
        import gmmfast

        return gmmfast.select(X, n_components=n_components,
                              covariance_types=covariance_type, random_state=seed,
                              n_threads=n_threads).n_components


class ScikitLearn:
    name = "scikit-learn"

    def supports(self, covariance_type, dtype):
        return True

    def fitted_model(self, X, start, covariance_type, n_iter, n_threads):
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        gm = GaussianMixture(len(start["weights_init"]), covariance_type=covariance_type,
                             tol=0.0, max_iter=n_iter, init_params=START_INIT, **start)
        with threadpool_limits(n_threads):
            return gm.fit(X)

    def fit(self, X, start, covariance_type, n_iter, n_threads):
        return self.fitted_model(X, start, covariance_type, n_iter, n_threads).n_iter_

    def call(self, model, method, X, n_threads):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(n_threads):
            return getattr(model, method)(X)

    def whole_fit(self, X, n_components, seed, n_threads):
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(n_components, random_state=seed).fit(X).n_iter_

    def select(self, X, n_components, covariance_type, seed, n_threads):
        """A loop of fits choosing by BIC, as gmmfast.select does: the
        smallest BIC wins, the first of equal ones; the chosen K."""
        from sklearn.mixture import GaussianMixture

        best_k, best_bic = None, float("inf")
        for k in n_components:
            bic = GaussianMixture(k, covariance_type=covariance_type,
                                  random_state=seed).fit(X).bic(X)
            if bic < best_bic:
                best_k, best_bic = k, bic
        return best_k


class OneDAL:
    """Intel oneDAL ``em_gmm`` (daal4py, in the scikit-learn-intelex wheel)."""

    name = "oneDAL"

    def __init__(self):
        import daal4py  # noqa: F401

    def supports(self, covariance_type, dtype):
        return covariance_type in ("full", "diag")

    def fit(self, X, start, covariance_type, n_iter, n_threads):
        import daal4py

        daal4py.daalinit(n_threads)
        n_components, n_features = start["means_init"].shape
        dtype = X.dtype
        if covariance_type == "full":
            covs = [np.linalg.inv(p).astype(dtype) for p in start["precisions_init"]]
            storage = "full"
        else:
            covs = [(1.0 / p).reshape(1, -1).astype(dtype) for p in start["precisions_init"]]
            storage = "diagonal"
        alg = daal4py.em_gmm(
            nComponents=n_components, maxIterations=n_iter, accuracyThreshold=0.0,
            covarianceStorage=storage,
            fptype="float" if dtype == np.float32 else "double",
        )
        result = alg.compute(X, start["weights_init"].reshape(1, -1).astype(dtype),
                             start["means_init"].astype(dtype), covs)
        return int(np.asarray(result.nIterations).ravel()[0])


class OpenCV:
    """OpenCV ``cv2.ml.EM``. From Python ``trainE`` takes means only, so it
    starts with ``trainM`` from the one-hot responsibilities of the start
    means (nearest mean), then runs EM for the set number of iterations."""

    name = "OpenCV"

    def __init__(self):
        import cv2

        if not hasattr(cv2, "ml"):
            raise ImportError("this cv2 has no ml module (OpenCV 5); install "
                              "opencv-python-headless<5")

    def supports(self, covariance_type, dtype):
        return covariance_type in ("full", "diag", "spherical")

    def _train(self, X, start, covariance_type, n_iter, n_threads):
        import cv2

        cv2.setNumThreads(n_threads)
        means = start["means_init"]
        n_components = means.shape[0]
        labels = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
        probs = np.zeros((X.shape[0], n_components), dtype=np.float64)
        probs[np.arange(X.shape[0]), labels] = 1.0
        em = cv2.ml.EM_create()
        em.setClustersNumber(n_components)
        em.setCovarianceMatrixType({
            "full": cv2.ml.EM_COV_MAT_GENERIC,
            "diag": cv2.ml.EM_COV_MAT_DIAGONAL,
            "spherical": cv2.ml.EM_COV_MAT_SPHERICAL,
        }[covariance_type])
        # COUNT and EPS with epsilon 0: stop at n_iter, or earlier only when
        # the log-likelihood decreases (OpenCV's loop, modules/ml/src/em.cpp)
        em.setTermCriteria((cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, n_iter, 0.0))
        em.trainM(X, probs)
        return em

    def fit(self, X, start, covariance_type, n_iter, n_threads):
        self._train(X, start, covariance_type, n_iter, n_threads)
        return None  # OpenCV does not report its count: see count_iterations

    def count_iterations(self, X, start, covariance_type, n_iter, n_threads):
        """The E-steps a run of n_iter did, read off its result: a run that
        stopped early ends where the run one iteration shorter ends."""
        means = self._train(X, start, covariance_type, n_iter, n_threads).getMeans()
        while n_iter > 1:
            shorter = self._train(X, start, covariance_type, n_iter - 1, n_threads).getMeans()
            if not np.array_equal(means, shorter):
                return n_iter
            n_iter -= 1
        return n_iter


class MlPack:
    """mlpack ``gmm_train``: no start can be passed from Python, so it starts
    from its own k-means (fixed seed); the per-iteration difference removes
    that fixed cost."""

    name = "mlpack"

    def __init__(self):
        import mlpack  # noqa: F401

    def supports(self, covariance_type, dtype):
        return covariance_type in ("full", "diag")

    def fit(self, X, start, covariance_type, n_iter, n_threads):
        import os
        import re
        import sys
        import tempfile

        import mlpack
        from threadpoolctl import threadpool_limits

        # its count, read back from its own log (mlpack prints one line per EM
        # iteration with verbose=True; max_iterations=n runs n - 1 of them)
        with tempfile.TemporaryFile(mode="w+") as log, threadpool_limits(n_threads):
            sys.stdout.flush()
            saved = os.dup(1)
            os.dup2(log.fileno(), 1)
            try:
                mlpack.gmm_train(gaussians=start["means_init"].shape[0],
                                 input_=np.asarray(X, dtype=np.float64),
                                 max_iterations=n_iter, tolerance=0.0, seed=0,
                                 diagonal_covariance=covariance_type == "diag",
                                 no_force_positive=True, verbose=True)
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
                os.close(saved)
            log.seek(0)
            return len(re.findall(r"EMFit::Estimate\(\): iteration \d+", log.read()))


def _bgm_kwargs(start, covariance_type, n_iter):
    # BayesianGaussianMixture takes no start: both draw it from the same
    # rows ('random_from_data', one RandomState), cheap beside k-means
    return dict(n_components=len(start["weights_init"]), covariance_type=covariance_type,
                tol=0.0, max_iter=n_iter, init_params="random_from_data", random_state=0)


class GmmFastBGM(GmmFast):
    """gmmfast.BayesianGaussianMixture (``run.py --bgm``; named as GmmFast so
    that the tables' ratios are against it)."""

    def fitted_model(self, X, start, covariance_type, n_iter, n_threads):
        from gmmfast import BayesianGaussianMixture

        return BayesianGaussianMixture(n_threads=n_threads,
                                       **_bgm_kwargs(start, covariance_type, n_iter)).fit(X)


class ScikitLearnBGM(ScikitLearn):
    """sklearn.mixture.BayesianGaussianMixture (``run.py --bgm``)."""

    def fitted_model(self, X, start, covariance_type, n_iter, n_threads):
        from sklearn.mixture import BayesianGaussianMixture
        from threadpoolctl import threadpool_limits

        with threadpool_limits(n_threads):
            return BayesianGaussianMixture(
                **_bgm_kwargs(start, covariance_type, n_iter)).fit(X)


LIBRARIES = {cls.name: cls for cls in (GmmFast, ScikitLearn, OneDAL, OpenCV, MlPack)}
BGM_LIBRARIES = {cls.name: cls for cls in (GmmFastBGM, ScikitLearnBGM)}


def available_libraries(wanted=None, bgm=False):
    """Instantiate the wanted libraries (their BayesianGaussianMixture with
    ``bgm``); return (libraries, [(name, why missing)])."""
    libs, missing = [], []
    for name, cls in (BGM_LIBRARIES if bgm else LIBRARIES).items():
        if wanted is not None and name not in wanted:
            continue
        try:
            libs.append(cls())
        except Exception as exc:  # not installed, or unusable here
            missing.append((name, f"{type(exc).__name__}: {exc}"))
    return libs, missing
