"""An ordinary scikit-learn script, not modified for gmmfast: it fits
sklearn.mixture.GaussianMixture and prints what it got as JSON (the output
path is its first argument). tests/test_accel.py runs it through
``python -m gmmfast.accel`` and plainly, and compares."""
import json
import sys

import numpy as np
from sklearn.mixture import GaussianMixture

rng = np.random.RandomState(0)
X = np.vstack([rng.randn(300, 2), rng.randn(200, 2) * 0.5 + 4])
results = {}
for covariance_type in ("full", "tied", "diag", "spherical"):
    gm = GaussianMixture(n_components=2, covariance_type=covariance_type,
                         random_state=0).fit(X)
    results[covariance_type] = dict(
        means=gm.means_.tolist(), weights=gm.weights_.tolist(),
        covariances=np.asarray(gm.covariances_).tolist(), n_iter=gm.n_iter_,
        lower_bound=gm.lower_bound_, score=gm.score(X), labels=gm.predict(X).tolist(),
    )
results["class_module"] = type(gm).__module__
results["argv"] = sys.argv
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
