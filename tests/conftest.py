import numpy as np
import pytest

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def make_blobs(n_samples, n_features, n_components, seed=0, offset=0.0, dtype=np.float64):
    """Overlapping components: centres at scale 3/sqrt(D), unit noise."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0 / np.sqrt(n_features), size=(n_components, n_features))
    scales = rng.uniform(0.5, 1.5, size=(n_components, n_features))
    labels = rng.integers(0, n_components, n_samples)
    X = centers[labels] + rng.normal(size=(n_samples, n_features)) * scales[labels]
    return (X + offset).astype(dtype), centers + offset


def start_params(covariance_type, centers, seed=1, scale=1.0):
    """A start away from the optimum: perturbed centres, identity precisions."""
    rng = np.random.default_rng(seed)
    n_components, n_features = centers.shape
    means = centers + rng.normal(scale=0.5, size=centers.shape)
    precisions = {
        "full": np.tile(np.eye(n_features), (n_components, 1, 1)),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type] / scale**2
    return dict(
        weights_init=np.full(n_components, 1.0 / n_components),
        means_init=means,
        precisions_init=precisions,
    )


@pytest.fixture(params=COVARIANCE_TYPES)
def covariance_type(request):
    return request.param
