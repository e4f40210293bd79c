"""Pictures: plot_mixture and the demo's --plot."""
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.patches import Ellipse  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from gmmfast import GaussianMixture  # noqa: E402
from gmmfast.__main__ import main  # noqa: E402
from gmmfast.plotting import ellipse_geometry, plot_mixture  # noqa: E402

from conftest import COVARIANCE_TYPES, make_blobs  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def ellipses(ax):
    return [p for p in ax.patches if isinstance(p, Ellipse)]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_writes_png_with_one_ellipse_per_component(tmp_path, covariance_type):
    X = make_blobs(600, 2, 3, seed=0)[0]
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    path = tmp_path / "mix.png"
    ax = plot_mixture(gm, X, path=path)
    assert path.read_bytes()[:8] == PNG
    drawn = ellipses(ax)
    assert len(drawn) == 3
    for k, e in enumerate(drawn):
        np.testing.assert_allclose(e.center, gm.means_[k])
    # points coloured by component: one scatter of the points, one of the means
    assert ax.collections[0].get_offsets().shape == (600, 2)


def test_ellipse_axes_are_n_std_standard_deviations():
    X = make_blobs(500, 2, 2, seed=1)[0]
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
    ax = plot_mixture(gm, X, n_std=3.0)
    for e, var in zip(ellipses(ax), gm.covariances_):
        sd = 3.0 * np.sqrt(var)
        # axes along x and y for a diagonal covariance
        assert sorted([e.width, e.height]) == pytest.approx(sorted(2 * sd))
        assert e.angle % 90 == pytest.approx(0, abs=1e-6) or e.angle % 90 == pytest.approx(90)


def test_ellipse_geometry_of_a_rotated_covariance():
    theta = np.radians(30.0)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rot @ np.diag([9.0, 1.0]) @ rot.T
    width, height, angle = ellipse_geometry(cov, 2.0)
    assert (width, height) == pytest.approx((12.0, 4.0))
    assert angle % 180 == pytest.approx(30.0)


def test_large_x_is_subsampled_and_ax_is_reused(tmp_path):
    from matplotlib.figure import Figure

    X = make_blobs(30_000, 2, 2, seed=2)[0]
    gm = GaussianMixture(2, random_state=0).fit(X)
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_mixture(gm, X, ax=ax, max_points=5000) is ax
    assert ax.collections[0].get_offsets().shape == (5000, 2)
    assert "30,000 points (5,000 drawn)" in ax.get_title()


def test_errors():
    X3 = make_blobs(100, 3, 2, seed=3)[0]
    with pytest.raises(ValueError, match="draws 2-D data; the model has 3 features"):
        plot_mixture(GaussianMixture(2, random_state=0).fit(X3), X3)
    X = X3[:, :2]
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_std must be a positive number"):
        plot_mixture(gm, X, n_std=0.0)
    with pytest.raises(NotFittedError):
        plot_mixture(GaussianMixture(2), X)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    X = make_blobs(100, 2, 2, seed=4)[0]
    gm = GaussianMixture(2, random_state=0).fit(X)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'gmmfast\[plot\]'"):
        plot_mixture(gm, X)


def test_demo_writes_its_picture(tmp_path, capsys):
    path = tmp_path / "demo.png"
    assert main(["demo", "--n-samples", "4000", "--no-compare", "--plot", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    assert path.read_bytes()[:8] == PNG
