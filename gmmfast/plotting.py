"""Pictures of fitted mixtures (needs matplotlib: ``pip install 'gmmfast[plot]'``).

matplotlib is imported when a function is called, not with gmmfast. Without
an ``ax``, figures are drawn on matplotlib's Agg canvas directly (no pyplot,
no GUI backend), so this works on headless machines and in threads.
"""
import numpy as np

from . import _covariance


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib import patheffects
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Ellipse
    except ImportError:
        raise ImportError(
            "gmmfast's plots need matplotlib: pip install 'gmmfast[plot]'"
        ) from None
    return Figure, FigureCanvasAgg, Ellipse, patheffects


def component_covariances(model):
    """Each component's covariance as a full (n_components, D, D) float64 array."""
    cov = np.asarray(model.covariances_, dtype=np.float64)
    n_components, n_features = model.means_.shape
    return np.array(_covariance.get(model.covariance_type).per_component(
        cov, n_components, n_features), dtype=np.float64)


def ellipse_geometry(covariance, n_std):
    """(width, height, angle in degrees) of the n_std-standard-deviation
    ellipse of a 2x2 covariance: axes along its eigenvectors, half-lengths
    n_std * sqrt(eigenvalue)."""
    eigvals, eigvecs = np.linalg.eigh(covariance)
    eigvals = np.clip(eigvals, 0.0, None)
    major = eigvecs[:, 1]
    angle = np.degrees(np.arctan2(major[1], major[0]))
    return 2 * n_std * np.sqrt(eigvals[1]), 2 * n_std * np.sqrt(eigvals[0]), angle


def plot_mixture(model, X, ax=None, path=None, n_std=2.0, max_points=20_000,
                 random_state=0, title=None):
    """Draw 2-D data coloured by component, with each component's ellipse.

    Parameters
    ----------
    model : GaussianMixture, fitted on 2 features
    X : array-like of shape (n_samples, 2)
        Points to draw, coloured by ``model.predict``. At most ``max_points``
        of them are drawn (a uniform random subset), so large X stays quick
        and the picture small.
    ax : matplotlib Axes, default=None
        Where to draw; by default a new figure (Agg canvas, no pyplot).
    path : str or path-like, default=None
        If given, the figure is saved there (format from the suffix, e.g.
        .png, .svg, .pdf).
    n_std : float, default=2.0
        Ellipses at this many standard deviations (2: about 86% of a 2-D
        Gaussian's mass).
    max_points : int, default=20000
    random_state : int, default=0
        Seed of the subset drawn.
    title : str, default=None
        Default: "n_components components (covariance_type), N points".

    Returns
    -------
    ax : matplotlib Axes
    """
    from sklearn.utils.validation import check_array, check_is_fitted

    check_is_fitted(model)
    if model.means_.shape[1] != 2:
        raise ValueError(
            f"plot_mixture draws 2-D data; the model has {model.means_.shape[1]} "
            "features. Plot two of them (fit on X[:, [i, j]]) or a 2-D projection.")
    if not (np.isfinite(n_std) and n_std > 0):
        raise ValueError(f"n_std must be a positive number, got {n_std!r}.")
    X = check_array(X, dtype=[np.float64, np.float32])
    if X.shape[1] != 2:
        raise ValueError(f"X must have 2 columns, got shape {X.shape}.")
    Figure, FigureCanvasAgg, Ellipse, patheffects = _matplotlib()

    n_total = X.shape[0]
    if n_total > max_points:
        rng = np.random.default_rng(random_state)
        X = X[np.sort(rng.choice(n_total, size=max_points, replace=False))]
    labels = model.predict(X)

    if ax is None:
        fig = Figure(figsize=(6.4, 5.6), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    colors = [f"C{k % 10}" for k in range(model.n_components)]
    point_colors = np.array(colors, dtype=object)[labels]
    ax.scatter(X[:, 0], X[:, 1], c=list(point_colors), s=3, alpha=0.35,
               linewidths=0, rasterized=True)
    means = np.asarray(model.means_, dtype=np.float64)
    for k, cov in enumerate(component_covariances(model)):
        width, height, angle = ellipse_geometry(cov, n_std)
        # a white halo keeps the outline visible over points of its colour
        ax.add_patch(Ellipse(
            means[k], width, height, angle=angle, fill=False, edgecolor=colors[k],
            linewidth=2.0, zorder=4, label=f"component {k}: weight {model.weights_[k]:.2f}",
            path_effects=[patheffects.withStroke(linewidth=4.0, foreground="white")]))
    ax.scatter(means[:, 0], means[:, 1], marker="X", s=90, c=colors,
               edgecolors="black", linewidths=1.0, zorder=5)
    ax.set_title(title if title is not None else
                 f"{model.n_components} components ({model.covariance_type}), "
                 f"{n_total:,} points"
                 + (f" ({X.shape[0]:,} drawn)" if n_total > X.shape[0] else "")
                 + f", ellipses at {n_std:g} sd")
    ax.set_xlabel(_feature_name(model, 0))
    ax.set_ylabel(_feature_name(model, 1))
    ax.legend(loc="best", fontsize="small", framealpha=0.8)
    ax.set_aspect("equal", adjustable="datalim")
    if path is not None:
        ax.figure.savefig(path, bbox_inches="tight")
    return ax


def _feature_name(model, i):
    names = getattr(model, "feature_names_in_", None)
    return str(names[i]) if names is not None else f"x{i}"
