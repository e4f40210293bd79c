"""Persistence: pickle round-trips; save/load through a plain .npz that is
read without pickle and checked entry by entry."""
import io
import json
import os
import pickle
import struct
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import gmmfast
from gmmfast import GaussianMixture

from conftest import COVARIANCE_TYPES, make_blobs

FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
          "converged_", "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_")
DTYPES = (np.float64, np.float32)


def _fit(covariance_type="full", dtype=np.float64, X=None, **params):
    if X is None:
        X = make_blobs(300, 3, 3, seed=0, dtype=dtype)[0]
    params.setdefault("random_state", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(3, covariance_type=covariance_type, **params).fit(X), X


def _assert_same_model(a, b, X):
    for name in FITTED:
        x, y = getattr(a, name), getattr(b, name)
        assert type(x) is type(y), name
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.array_equal(x, y), name
        else:
            assert x == y, name
    assert a.get_params().keys() == b.get_params().keys()
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.score_samples(X), b.score_samples(X))
    assert np.array_equal(a.predict(X), b.predict(X))
    assert a.score(X) == b.score(X)


# ------------------------------------------------------------------ pickle

@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pickle_round_trip(covariance_type, dtype):
    gm, X = _fit(covariance_type, dtype)
    for protocol in (pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL):
        clone = pickle.loads(pickle.dumps(gm, protocol=protocol))
        _assert_same_model(gm, clone, X)
    # unfitted estimators pickle too
    fresh = pickle.loads(pickle.dumps(GaussianMixture(4, tol=1e-5)))
    assert fresh.get_params() == GaussianMixture(4, tol=1e-5).get_params()


# --------------------------------------------------------------- save/load

@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_save_load_round_trip(covariance_type, dtype, tmp_path):
    gm, X = _fit(covariance_type, dtype, tol=1e-4, reg_covar=1e-5, n_init=2,
                 init_params="k-means++", random_state=7, max_iter=50, n_threads=1,
                 verbose_interval=5)
    path = gm.save(tmp_path / "model.npz")
    assert path == str(tmp_path / "model.npz")
    loaded = gmmfast.load(path)
    assert isinstance(loaded, GaussianMixture)
    _assert_same_model(gm, loaded, X)
    assert loaded.get_params() == gm.get_params()
    assert isinstance(loaded.lower_bounds_, list) and isinstance(loaded.converged_, bool)
    # a loaded model fits again like the original
    np.testing.assert_array_equal(loaded.fit(X).means_, gm.fit(X).means_)


def test_save_load_keeps_init_arrays_feature_names_and_warm_start(tmp_path):
    pd = pytest.importorskip("pandas")
    X, centers = make_blobs(300, 3, 3, seed=1)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    gm = GaussianMixture(3, means_init=centers, weights_init=np.full(3, 1 / 3),
                         precisions_init=np.ones((3, 3)), covariance_type="diag",
                         warm_start=True, max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(df)
    loaded = gmmfast.load(gm.save(tmp_path / "m"))
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    assert loaded.feature_names_in_.dtype == object
    np.testing.assert_array_equal(loaded.means_init, centers)
    np.testing.assert_array_equal(loaded.precisions_init, np.ones((3, 3)))
    np.testing.assert_array_equal(loaded.predict(df), gm.predict(df))
    with pytest.raises(ValueError, match="feature names should match"):
        loaded.predict(df.rename(columns={"a": "z"}))
    # warm start continues from the loaded parameters exactly as from the original
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(df)
        loaded.fit(df)
    _assert_same_model(gm, loaded, df)


def test_save_load_entries_larger_than_the_header_allowance(tmp_path):
    """An entry may hold up to its model's size plus 64 KiB of header: a model
    whose arrays exceed 64 KiB (4 x 48 x 48 float64 = 72 KiB) loads, so the
    bound scales with the model."""
    X = make_blobs(400, 48, 4, seed=3)[0]
    gm = GaussianMixture(4, covariance_type="full", max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    assert gm.covariances_.nbytes > 1 << 16
    path = gm.save(tmp_path / "big.npz")
    _assert_same_model(gm, gmmfast.load(path), X)


def test_save_load_many_feature_names(tmp_path):
    """300 named features (past CPython's small-integer cache: the name
    count is compared by value)."""
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(4).normal(size=(40, 300))
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(300)])
    gm = GaussianMixture(2, covariance_type="diag", max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(df)
    loaded = gmmfast.load(gm.save(tmp_path / "wide.npz"))
    assert list(loaded.feature_names_in_) == list(df.columns)
    _assert_same_model(gm, loaded, df)


def test_save_load_long_feature_names(tmp_path):
    """Names of a few hundred characters load (the bound is 4096)."""
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(5).normal(size=(40, 2))
    df = pd.DataFrame(X, columns=["a" * 300, "b" * 1000])
    gm = GaussianMixture(2, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(df)
    loaded = gmmfast.load(gm.save(tmp_path / "long.npz"))
    assert list(loaded.feature_names_in_) == list(df.columns)


def test_save_appends_npz_and_accepts_pathlike(tmp_path):
    gm, X = _fit()
    assert gm.save(str(tmp_path / "plain")) == str(tmp_path / "plain.npz")
    assert os.path.exists(tmp_path / "plain.npz")
    _assert_same_model(gm, gmmfast.load(tmp_path / "plain.npz"), X)
    assert gm.save(tmp_path / "x.npz") == str(tmp_path / "x.npz")
    _assert_same_model(gm, gmmfast.load(str(tmp_path / "x.npz")), X)


def test_random_state_instance_is_not_saved(tmp_path):
    gm, X = _fit(random_state=np.random.RandomState(0))
    with pytest.warns(UserWarning, match="random_state=RandomState.* is not saved"):
        path = gm.save(tmp_path / "m.npz")
    loaded = gmmfast.load(path)
    assert loaded.random_state is None
    np.testing.assert_array_equal(loaded.predict(X), gm.predict(X))


def test_max_iter_zero_model_round_trips(tmp_path):
    """n_iter_ = 0: no lower bounds, lower_bound_ = -inf (the one non-finite
    value a model file may hold)."""
    gm, X = _fit(max_iter=0)
    assert gm.lower_bound_ == -np.inf and gm.n_iter_ == 0
    _assert_same_model(gm, gmmfast.load(gm.save(tmp_path / "m.npz")), X)


def _stream(covariance_type, dtype, n_batches, **params):
    X = make_blobs(300, 3, 3, seed=0, dtype=dtype)[0]
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0, **params)
    for b in range(n_batches):
        gm.partial_fit(X[100 * (b % 3):100 * (b % 3) + 100])
    return gm, X


def _reachable_states(covariance_type, dtype):
    """Every kind of state the estimator can be saved in (name, model, X)."""
    states = [("fit",) + _fit(covariance_type, dtype),
              ("max_iter=0",) + _fit(covariance_type, dtype, max_iter=0),
              ("max_iter=2, not converged",) + _fit(covariance_type, dtype, max_iter=2, tol=0),
              ("n_init=2",) + _fit(covariance_type, dtype, n_init=2)]
    for n_batches in (1, 3, 7):  # streams longer than max_iter among them
        states.append((f"partial_fit x{n_batches}",)
                      + _stream(covariance_type, dtype, n_batches, max_iter=2))
    gm, X = _fit(covariance_type, dtype, warm_start=True, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)  # warm start: continues the first fit
    states.append(("warm start", gm, X))
    gm, X = _fit(covariance_type, dtype, warm_start=True, max_iter=2)
    for b in range(3):
        gm.partial_fit(X[:100])  # a stream continuing a fit
    states.append(("warm start + partial_fit x3", gm, X))
    return states


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_every_reachable_state_saves_and_loads(covariance_type, dtype, tmp_path):
    """A file that save() writes, load() accepts: every state the estimator
    reaches (a stream of more batches than max_iter used to be refused)."""
    for name, gm, X in _reachable_states(covariance_type, dtype):
        loaded = gmmfast.load(gm.save(tmp_path / "m.npz"))
        _assert_same_model(gm, loaded, X)


def test_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    gm, X = _fit()
    path = gm.save(tmp_path / "m.npz")
    before = open(path, "rb").read()

    def broken_savez(f, **entries):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    other, _ = _fit("diag")
    with pytest.raises(KeyboardInterrupt):
        other.save(path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


# ------------------------------------------------------------ bad files

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    gm, X = _fit("full")
    path = gm.save(tmp_path_factory.mktemp("model") / "good.npz")
    return gm, X, path


def _entries(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _write(path, entries):
    with open(path, "wb") as f:
        np.savez(f, **entries)
    return str(path)


def _rejected(path, match):
    with pytest.raises(ValueError, match=rf"{path}: cannot load the gmmfast model: .*{match}"):
        gmmfast.load(path)


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        gmmfast.load(tmp_path / "nothing.npz")


def test_load_rejects_files_that_are_not_model_files(tmp_path, saved):
    text = tmp_path / "text.npz"
    text.write_text("weights_,means_\n1,2\n")
    _rejected(str(text), r"not an \.npz model file")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _rejected(str(empty), r"not an \.npz model file")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    _rejected(str(npy), r"not an \.npz model file")
    other = _write(tmp_path / "other.npz", {"a": np.zeros(3)})
    _rejected(other, r"unexpected entry|missing entries")


def test_load_rejects_truncated_files(tmp_path, saved):
    data = open(saved[2], "rb").read()
    cut = tmp_path / "cut.npz"
    for n in sorted(set(list(range(0, len(data), max(1, len(data) // 60))) + [len(data) - 1])):
        cut.write_bytes(data[:n])
        with pytest.raises(ValueError, match=rf"{cut}: cannot load the gmmfast model"):
            gmmfast.load(cut)


def _entry_data_ranges(path):
    """(name, first byte, end) of each entry's stored bytes in the zip."""
    raw = open(path, "rb").read()
    with zipfile.ZipFile(path) as zf:
        out = []
        for info in zf.infolist():
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:
                                                          info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            out.append((info.filename, start, start + info.compress_size))
    return out


def test_load_rejects_every_flipped_byte_of_the_model(tmp_path, saved):
    """Every byte of every entry (the .npy header and the data) is covered:
    the zip's CRC-32 and the checks reject any change."""
    gm, X, path = saved
    data = open(path, "rb").read()
    bad = tmp_path / "flipped.npz"
    for name, start, end in _entry_data_ranges(path):
        for i in sorted({start, start + 5, (start + end) // 2, end - 1}):
            flipped = bytearray(data)
            flipped[i] ^= 0x5A
            bad.write_bytes(bytes(flipped))
            with pytest.raises(ValueError, match="cannot load the gmmfast model"):
                gmmfast.load(bad)


def test_load_any_flipped_byte_is_an_error_or_the_same_model(tmp_path, saved):
    """Bytes of the zip's own bookkeeping (timestamps, the central directory's
    copies) may not change the model: then it loads identically. Nothing else
    escapes: no other exception, never a different model."""
    gm, X, path = saved
    data = open(path, "rb").read()
    bad = tmp_path / "flipped.npz"
    loaded_same = tried = 0
    for i in range(0, len(data), 5):
        flipped = bytearray(data)
        flipped[i] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        tried += 1
        try:
            model = gmmfast.load(bad)
        except ValueError as exc:
            assert str(bad) in str(exc)
            continue
        for name in FITTED:  # bit for bit, so it predicts identically
            x, y = getattr(gm, name), getattr(model, name)
            assert (np.array_equal(x, y) and x.dtype == y.dtype) if isinstance(
                x, np.ndarray) else x == y, name
        assert model.get_params() == gm.get_params()
        loaded_same += 1
    assert loaded_same < tried // 4, (loaded_same, tried)  # most flips are caught


@pytest.mark.parametrize("change,match", [
    (lambda e: e.update(format_version=np.array(2)),
     "format version 2 is not supported; this gmmfast reads version 1 .*newer gmmfast"),
    (lambda e: e.update(format_version=np.array(0)), "format version 0 is not supported"),
    (lambda e: e.update(format=np.array("sklearn.GaussianMixture")), "format is"),
    (lambda e: e.pop("means_"), r"missing entries \['means_'\]"),
    (lambda e: e.pop("params"), r"missing entries \['params'\]"),
    (lambda e: e.update(extra=np.zeros(2)), r"unknown entries \['extra'\]"),
    (lambda e: e.update(means_=np.zeros((4, 3))), "'means_' has shape .*larger than its model"),
    (lambda e: e.update(means_=np.zeros((3, 2))), r"means_ has shape \(3, 2\), expected \(3, 3\)"),
    (lambda e: e.update(weights_=e["weights_"].astype(np.float32)),
     "weights_ has dtype float32, but|has dtype float64, but weights_ has float32"),
    (lambda e: e.update(means_=e["means_"].astype(np.int64)), "means_ has dtype int64"),
    (lambda e: e.update(weights_=e["weights_"] * 0.9), "weights_ should be non-negative and "
                                                       "sum to 1"),
    (lambda e: e.update(means_=np.where(np.eye(3, dtype=bool), np.nan, e["means_"])),
     "means_ has non-finite values"),
    (lambda e: e.update(covariances_=e["covariances_"] * 1.01),
     "covariances_ and precisions_cholesky_ do not match"),
    (lambda e: e.update(covariances_=e["covariances_"][::-1].copy()),
     "covariances_ and precisions_cholesky_ do not match"),
    (lambda e: e.update(precisions_cholesky_=np.swapaxes(e["precisions_cholesky_"], 1, 2)
                        .copy()), "not upper triangular"),
    (lambda e: e.update(precisions_=e["precisions_"] * 2),
     "precisions_ does not equal precisions_cholesky_"),
    (lambda e: e.update(lower_bounds_=e["lower_bounds_"][:-1]), "lower_bounds_ should be"),
    (lambda e: e.update(lower_bound_=np.array(1.0)), "lower_bound_ is not the last"),
    (lambda e: e.update(n_iter_=np.array(-1)), "n_iter_ is -1"),
    (lambda e: e.update(n_features_in_=np.array(4)), r"means_ has shape|larger than"),
    (lambda e: e.update(converged_=np.array([True, False])), r"entry 'converged_' has shape "
                                                             r"\(2,\), larger than"),
    (lambda e: e.update(converged_=np.array(1.0)), "entry 'converged_' should be a single "
                                                   "value of kind 'b'"),
    (lambda e: e.update(params=np.array("{not json")), "entry 'params' is not valid JSON"),
    (lambda e: e.update(params=np.array(json.dumps(
        dict(json.loads(str(e["params"])), n_components=0)))), "invalid parameters .*"
                                                              "n_components"),
    (lambda e: e.update(params=np.array(json.dumps(
        dict(json.loads(str(e["params"])), n_components=4)))), "shape"),
    (lambda e: e.update(params=np.array(json.dumps(
        dict(json.loads(str(e["params"])), covariance_type="diag")))), "shape"),
    (lambda e: e.update(params=np.array(json.dumps(
        dict(json.loads(str(e["params"])), evil="x")))), "entry 'params' should hold exactly"),
    (lambda e: e.update(params=np.array(json.dumps(
        dict(json.loads(str(e["params"])), tol=[1])))), "tol=.* is not a plain value"),
    (lambda e: e.update(feature_names_in_=np.array(["a", "a", "b"])), "duplicate names"),
    # names are bounded (4096 characters) before the entry is read
    (lambda e: e.update(feature_names_in_=np.array(["a" * 4097, "b", "c"])),
     r"entry 'feature_names_in_' has dtype <U4097, which a model file never holds"),
    (lambda e: e.update(**{"init.weights_init": np.array([0.5, 0.2, 0.2])}),
     "invalid weights_init"),
    (lambda e: e.update(lower_bounds_=np.full_like(e["lower_bounds_"], np.nan)),
     "lower_bounds_ has non-finite"),
])
def test_load_rejects_inconsistent_files(change, match, tmp_path, saved):
    entries = _entries(saved[2])
    change(entries)
    _rejected(_write(tmp_path / "bad.npz", entries), match)


def test_load_never_unpickles(tmp_path, saved):
    """An entry holding a pickle (an object array) is refused without being
    unpickled: its payload never runs."""
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    entries = _entries(saved[2])
    bad = tmp_path / "pickled.npz"
    for key in ("params", "means_", "feature_names_in_"):
        e = dict(entries)
        e[key] = np.array([Payload()], dtype=object)
        np.savez(bad, **e)  # np.savez pickles object arrays
        _rejected(str(bad), rf"entry '{key}' has dtype object")
        assert not marker.exists()
    # numpy itself would run it, had it been allowed to
    with np.load(bad, allow_pickle=True) as npz:
        npz["feature_names_in_"]
    assert marker.exists()


def test_load_refuses_huge_declared_shapes_before_reading(tmp_path, saved):
    """A header announcing a giant array is refused before any allocation."""
    entries = _entries(saved[2])
    path = _write(tmp_path / "huge.npz", entries)
    header = np.lib.format.header_data_from_array_1_0(np.zeros((3, 3)))
    header["shape"] = (10**12, 3)
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    members["means_.npy"] = buf.getvalue() + b"\0" * 72
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    _rejected(path, r"entry 'means_' has shape \(1000000000000, 3\), larger than its model "
                    "needs")


def test_load_refuses_entries_larger_than_their_model(tmp_path, saved):
    """An entry whose stored size exceeds its model's data plus the header
    allowance (64 KiB) is refused by its size, before it is read."""
    path = _write(tmp_path / "padded.npz", _entries(saved[2]))
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members["means_.npy"] += b"\0" * (1 << 17)
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    size = len(members["means_.npy"])
    _rejected(path, rf"entry 'means_' is {size} bytes, more than the {3 * 3 * 8 + (1 << 16)} "
                    "its model needs")


def test_load_is_exported():
    assert gmmfast.load is gmmfast._mixture.load_model
    assert "load" in gmmfast.__all__


# ------------------------------------------------ BayesianGaussianMixture

BGM_FITTED = FITTED + ("weight_concentration_", "mean_precision_", "degrees_of_freedom_",
                       "weight_concentration_prior_", "mean_precision_prior_",
                       "mean_prior_", "degrees_of_freedom_prior_", "covariance_prior_")
PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


def _fit_bgm(covariance_type="full", prior_type="dirichlet_process", dtype=np.float64,
             **params):
    X = make_blobs(300, 3, 3, seed=0, dtype=dtype)[0]
    params.setdefault("random_state", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gmmfast.BayesianGaussianMixture(
            n_components=3, covariance_type=covariance_type,
            weight_concentration_prior_type=prior_type, **params).fit(X), X


def _assert_same_value(x, y, name):
    assert type(x) is type(y), name
    if isinstance(x, tuple):
        assert len(x) == len(y), name
        for u, v in zip(x, y):
            _assert_same_value(u, v, name)
    elif isinstance(x, (np.ndarray, np.generic)):
        assert x.dtype == y.dtype and np.shape(x) == np.shape(y), name
        assert np.array_equal(x, y), name
    else:
        assert x == y, name


def _assert_same_bgm(a, b, X):
    for name in BGM_FITTED:
        _assert_same_value(getattr(a, name), getattr(b, name), name)
    pa, pb = a.get_params(), b.get_params()
    assert pa.keys() == pb.keys()
    for name in pa:
        _assert_same_value(pa[name], pb[name], name)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.score_samples(X), b.score_samples(X))
    assert np.array_equal(a.predict(X), b.predict(X))
    assert a.score(X) == b.score(X)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bgm_save_load_round_trip(covariance_type, prior_type, tmp_path):
    bgm, X = _fit_bgm(covariance_type, prior_type, tol=1e-4, reg_covar=1e-5,
                      init_params="k-means++", max_iter=50, n_threads=1,
                      weight_concentration_prior=0.5, mean_precision_prior=2)
    path = bgm.save(tmp_path / "bgm")
    assert path == str(tmp_path / "bgm.npz")
    loaded = gmmfast.load(path)
    assert isinstance(loaded, gmmfast.BayesianGaussianMixture)
    _assert_same_bgm(bgm, loaded, X)
    assert isinstance(loaded.lower_bounds_, list) and isinstance(loaded.converged_, bool)
    # a loaded model fits again like the original
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.testing.assert_array_equal(loaded.fit(X).means_, bgm.fit(X).means_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bgm_save_load_float32_given_priors_and_feature_names(covariance_type, tmp_path):
    pd = pytest.importorskip("pandas")
    covariance_prior = {"full": 2.0 * np.eye(3), "tied": 2.0 * np.eye(3),
                        "diag": np.full(3, 2.0), "spherical": 2}[covariance_type]
    X = make_blobs(300, 3, 3, seed=1, dtype=np.float32)[0]
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    bgm = gmmfast.BayesianGaussianMixture(
        n_components=3, covariance_type=covariance_type, random_state=0, max_iter=5,
        mean_prior=np.zeros(3), covariance_prior=covariance_prior,
        degrees_of_freedom_prior=4.5, weight_concentration_prior_type="dirichlet_distribution")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bgm.fit(df)
    assert bgm.means_.dtype == np.float32
    loaded = gmmfast.load(bgm.save(tmp_path / "m.npz"))
    _assert_same_bgm(bgm, loaded, df)
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]


def test_bgm_max_iter_zero_and_unfitted(tmp_path):
    bgm, X = _fit_bgm("diag", max_iter=0)
    _assert_same_bgm(bgm, gmmfast.load(bgm.save(tmp_path / "zero")), X)
    with pytest.raises(NotFittedError):
        gmmfast.BayesianGaussianMixture().save(tmp_path / "nothing")


@pytest.fixture(scope="module")
def saved_bgm(tmp_path_factory):
    bgm, X = _fit_bgm("full")
    path = bgm.save(tmp_path_factory.mktemp("bgm") / "good.npz")
    return bgm, X, path


def test_bgm_load_rejects_flipped_bytes_and_truncation(tmp_path, saved_bgm):
    bgm, X, path = saved_bgm
    data = open(path, "rb").read()
    bad = tmp_path / "flipped.npz"
    for name, start, end in _entry_data_ranges(path):
        for i in sorted({start, (start + end) // 2, end - 1}):
            flipped = bytearray(data)
            flipped[i] ^= 0x5A
            bad.write_bytes(bytes(flipped))
            with pytest.raises(ValueError, match="cannot load the gmmfast model"):
                gmmfast.load(bad)
    for n in range(0, len(data), max(1, len(data) // 20)):
        bad.write_bytes(data[:n])
        with pytest.raises(ValueError, match="cannot load the gmmfast model"):
            gmmfast.load(bad)


def test_load_rejects_the_other_class_and_unknown_formats(tmp_path, saved, saved_bgm):
    """A file's format names its class; the entries must be that class's."""
    gm_entries, bgm_entries = _entries(saved[2]), _entries(saved_bgm[2])
    gm_entries["format"] = np.array("gmmfast.BayesianGaussianMixture")
    _rejected(_write(tmp_path / "gm.npz", gm_entries),
              r"missing entries \['weight_concentration_', 'mean_precision_'")
    bgm_entries["format"] = np.array("gmmfast.GaussianMixture")
    _rejected(_write(tmp_path / "bgm.npz", bgm_entries),
              r"unknown entries \['covariance_prior_', 'degrees_of_freedom_'")
    bgm_entries["format"] = np.array("sklearn.BayesianGaussianMixture")
    _rejected(_write(tmp_path / "other.npz", bgm_entries),
              r"format is 'sklearn.BayesianGaussianMixture', expected one of "
              r"\['gmmfast.BayesianGaussianMixture', 'gmmfast.GaussianMixture'\]")


def _params_with(e, **changes):
    return np.array(json.dumps(dict(json.loads(str(e["params"])), **changes)))


@pytest.mark.parametrize("change,match", [
    (lambda e: e.update(weight_concentration_=e["weight_concentration_"][0].copy()),
     r"weight_concentration_' has shape \(3,\)|weight_concentration_ has shape \(3,\), "
     r"expected \(2, 3\)"),
    (lambda e: e.update(weight_concentration_=e["weight_concentration_"][:, ::-1].copy()),
     "weights_ are not the weights of weight_concentration_"),
    (lambda e: e.update(weight_concentration_=-e["weight_concentration_"]),
     "weight_concentration_ should be greater than 0"),
    (lambda e: e.update(mean_precision_=np.zeros_like(e["mean_precision_"])),
     "mean_precision_ should be greater than 0"),
    (lambda e: e.update(degrees_of_freedom_=np.ones_like(e["degrees_of_freedom_"])),
     "degrees_of_freedom_ should be greater than 2"),
    (lambda e: e.update(mean_precision_=e["mean_precision_"].astype(np.float32)),
     "mean_precision_ has dtype float32, but weights_ has float64"),
    (lambda e: e.update(covariance_prior_=-e["covariance_prior_"]),
     r"invalid priors \('full precision' should be symmetric, positive-definite"),
    (lambda e: e.update(mean_prior_=np.array([np.nan, 0.0, 0.0])),
     "mean_prior_ should hold finite numbers"),
    (lambda e: e.update(degrees_of_freedom_prior_=np.array(0.0)),
     "degrees_of_freedom_prior_ is 0.0, expected > 0"),
    (lambda e: e.update(degrees_of_freedom_prior_=np.array("3")),
     "degrees_of_freedom_prior_ should hold finite numbers"),
    (lambda e: e.update(**{"init.covariance_prior": np.eye(2)}),
     r"invalid constructor priors \(The parameter 'full covariance_prior' should have "
     r"the shape"),
    (lambda e: e.update(params=_params_with(e, weight_concentration_prior_type="x")),
     "invalid parameters .*weight_concentration_prior_type"),
    (lambda e: e.update(params=_params_with(e, means_init=None)),
     "entry 'params' should hold exactly"),
    (lambda e: e.update(params=_params_with(e, weight_concentration_prior_type=
                                            "dirichlet_distribution")),
     r"entry 'weight_concentration_' has shape \(2, 3\), larger than its model needs"),
])
def test_bgm_load_rejects_inconsistent_files(change, match, tmp_path, saved_bgm):
    entries = _entries(saved_bgm[2])
    change(entries)
    _rejected(_write(tmp_path / "bad.npz", entries), match)
