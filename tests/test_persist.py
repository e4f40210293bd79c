"""The command line's model files: plain .npz, read with allow_pickle=False."""
import numpy as np
import pytest

from gmmfast import GaussianMixture
from gmmfast._persist import FORMAT_VERSION, ModelFileError, load_model, save_model

from conftest import COVARIANCE_TYPES, make_blobs

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip(tmp_path, covariance_type, dtype):
    X = make_blobs(400, 3, 3, seed=0, dtype=dtype)[0]
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=7, tol=1e-4,
                         reg_covar=1e-5).fit(X)
    path = tmp_path / "m.npz"
    save_model(gm, path)
    with np.load(path, allow_pickle=False) as npz:  # a plain npz
        assert int(npz["format_version"]) == FORMAT_VERSION
        assert str(npz["covariance_type"]) == covariance_type
    back = load_model(path)
    for name in ATTRS:
        got, want = getattr(back, name), getattr(gm, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert back.get_params() == gm.get_params()
    assert (back.converged_, back.n_iter_, back.lower_bound_, back.lower_bounds_) == (
        gm.converged_, gm.n_iter_, gm.lower_bound_, gm.lower_bounds_)
    np.testing.assert_array_equal(back.predict(X), gm.predict(X))
    np.testing.assert_array_equal(back.score_samples(X), gm.score_samples(X))


def test_feature_names_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(make_blobs(200, 2, 2, seed=1)[0], columns=["u", "v"])
    gm = GaussianMixture(2, random_state=0).fit(X)
    save_model(gm, tmp_path / "m.npz")
    back = load_model(tmp_path / "m.npz")
    assert list(back.feature_names_in_) == ["u", "v"]
    np.testing.assert_array_equal(back.predict(X), gm.predict(X))


def _rewrite(src, dst, **changes):
    with np.load(src, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    for k, v in changes.items():
        if v is None:
            entries.pop(k)
        else:
            entries[k] = v
    with open(dst, "wb") as f:
        np.savez(f, **entries)


@pytest.mark.parametrize("changes, match", [
    (dict(format_version=np.array(2)), "format version 2; this gmmfast reads version 1"),
    (dict(format_version=None), "no 'format_version'"),
    (dict(means_=None), "missing 'means_'"),
    (dict(means_=np.zeros((3, 2))), r"'means_' has shape \(3, 2\)"),
    (dict(covariance_type=np.array("round")), "unknown covariance_type 'round'"),
    (dict(weights_=np.array([np.nan, 1.0])), "'weights_' holds NaN"),
    (dict(n_components=np.array([1, 2])), "'n_components' should be a number"),
    (dict(tol=np.array(-1.0)), "invalid parameters"),
])
def test_bad_model_files(tmp_path, changes, match):
    gm = GaussianMixture(2, random_state=0).fit(make_blobs(100, 3, 2, seed=2)[0])
    save_model(gm, tmp_path / "good.npz")
    _rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", **changes)
    with pytest.raises(ModelFileError, match=match):
        load_model(tmp_path / "bad.npz")


def test_pickled_entries_are_refused(tmp_path):
    gm = GaussianMixture(2, random_state=0).fit(make_blobs(100, 2, 2, seed=3)[0])
    save_model(gm, tmp_path / "good.npz")
    _rewrite(tmp_path / "good.npz", tmp_path / "evil.npz",
             means_=np.array([object(), None], dtype=object))
    with pytest.raises(ModelFileError, match="allow_pickle=False|unreadable"):
        load_model(tmp_path / "evil.npz")


def test_not_a_model(tmp_path):
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(ModelFileError, match="not a gmmfast model file"):
        load_model(tmp_path / "t.npz")
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="is a .npy array"):
        load_model(tmp_path / "a.npy")


def test_save_needs_a_fitted_model(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save_model(GaussianMixture(2), tmp_path / "m.npz")
