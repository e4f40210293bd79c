"""gmmfast.patch_sklearn / unpatch_sklearn and ``python -m gmmfast.accel``:
scikit-learn's mixture classes become gmmfast's, with scikit-learn's answers,
and scikit-learn's own class runs where gmmfast cannot take the input."""
import json
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import sklearn.mixture
from sklearn.base import clone
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.utils._param_validation import InvalidParameterError

import gmmfast
import gmmfast.accel as accel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "accel_scripts", "uses_sklearn_mixture.py")
# the same float64 EM in another summation order, over a few dozen iterations
RTOL = 1e-10


@pytest.fixture
def patched():
    names = gmmfast.patch_sklearn()
    try:
        yield names
    finally:
        gmmfast.unpatch_sklearn()


def _run(args, tmp_path, name):
    out = tmp_path / f"{name}.json"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, *args, str(out), "an-argument"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc


def test_unmodified_script_runs_on_gmmfast_with_sklearns_answers(tmp_path):
    accelerated, proc = _run(["-m", "gmmfast.accel", SCRIPT], tmp_path, "accel")
    plain, _ = _run([SCRIPT], tmp_path, "plain")
    assert accelerated["class_module"] == "gmmfast.accel"
    assert plain["class_module"].startswith("sklearn.")
    # the script saw its own argv, as under `python script.py ...`
    assert accelerated["argv"][0] == SCRIPT and accelerated["argv"][2] == "an-argument"
    assert "RuntimeWarning" not in proc.stderr
    for covariance_type in ("full", "tied", "diag", "spherical"):
        a, b = accelerated[covariance_type], plain[covariance_type]
        assert a["n_iter"] == b["n_iter"]
        assert a["labels"] == b["labels"]
        for key in ("means", "weights", "covariances"):
            np.testing.assert_allclose(a[key], b[key], rtol=RTOL, atol=RTOL, err_msg=key)
        for key in ("lower_bound", "score"):
            assert a[key] == pytest.approx(b[key], rel=RTOL)


def test_accel_module_runs_a_module_too(tmp_path):
    out = tmp_path / "m.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.dirname(SCRIPT)]))
    proc = subprocess.run([sys.executable, "-m", "gmmfast.accel", "-m",
                           "uses_sklearn_mixture", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(out.read_text())["class_module"] == "gmmfast.accel"
    usage = subprocess.run([sys.executable, "-m", "gmmfast.accel"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage: python -m gmmfast.accel" in usage.stdout


def test_patch_and_unpatch(patched):
    from sklearn.mixture import GaussianMixture  # imported after patching

    assert GaussianMixture is sklearn.mixture.GaussianMixture is accel.GaussianMixture
    assert issubclass(GaussianMixture, gmmfast.GaussianMixture)
    assert GaussianMixture.__name__ == "GaussianMixture"
    # BayesianGaussianMixture is patched exactly when gmmfast has one
    assert ("BayesianGaussianMixture" in patched) == hasattr(gmmfast,
                                                             "BayesianGaussianMixture")
    assert "GaussianMixture" in patched
    gmmfast.patch_sklearn()  # again: still one layer over scikit-learn's class
    gmmfast.unpatch_sklearn()
    assert sklearn.mixture.GaussianMixture is SkGM
    gmmfast.patch_sklearn()  # for the fixture's unpatch


def test_patched_model_is_an_ordinary_estimator(patched):
    X = np.random.RandomState(0).randn(200, 2)
    gm = sklearn.mixture.GaussianMixture(2, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(gm))
    np.testing.assert_array_equal(again.predict(X), gm.predict(X))
    assert type(clone(gm)) is type(gm)
    sk = SkGM(2, random_state=0).fit(X)
    np.testing.assert_allclose(gm.means_, sk.means_, rtol=RTOL)
    assert "_sklearn_model" not in vars(gm)


def test_input_gmmfast_rejects_runs_sklearn_with_one_log_line(patched, caplog):
    """Numbers stored as text: scikit-learn's fit converts them, gmmfast's
    rejects them; the patched class fits them as scikit-learn does."""
    X = np.random.RandomState(1).randn(100, 2)
    with caplog.at_level(logging.INFO, logger="gmmfast"):
        gm = sklearn.mixture.GaussianMixture(2, random_state=0).fit(X.astype(str))
    lines = [r for r in caplog.records if r.name == "gmmfast"]
    assert len(lines) == 1
    assert "runs scikit-learn's own GaussianMixture" in lines[0].getMessage()
    assert "X must hold real numbers" in lines[0].getMessage()
    sk = SkGM(2, random_state=0).fit(X.astype(str))
    for name in ("weights_", "means_", "covariances_", "n_iter_", "lower_bound_"):
        np.testing.assert_array_equal(getattr(gm, name), getattr(sk, name))
    assert isinstance(gm._sklearn_model, SkGM)
    np.testing.assert_array_equal(gm.predict(X), sk.predict(X))
    assert gm.score(X) == sk.score(X)
    # the next fit that gmmfast can take is gmmfast's again
    gm.fit(X)
    assert "_sklearn_model" not in vars(gm)


def test_errors_both_raise_are_gmmfasts(patched, caplog):
    X = np.random.RandomState(1).randn(100, 2)
    with caplog.at_level(logging.INFO, logger="gmmfast"):
        with pytest.raises(InvalidParameterError, match="The 'n_components' parameter"):
            sklearn.mixture.GaussianMixture(0).fit(X)
        with pytest.raises(ValueError, match="Input X contains NaN"):
            sklearn.mixture.GaussianMixture().fit(np.full((5, 2), np.nan))
        # scikit-learn has no sample weights: no fallback with them
        with pytest.raises(TypeError, match="X must hold real numbers"):
            sklearn.mixture.GaussianMixture().fit(X.astype(str), sample_weight=np.ones(100))
    assert gmmfast.GaussianMixture is not sklearn.mixture.GaussianMixture


def test_foreign_arrays_run_sklearn(patched, monkeypatch, caplog):
    """Array-API arrays of another namespace (under array_api_dispatch) go to
    scikit-learn; routed here with a stand-in for the detection (no other
    array-API library is installed on the test machines)."""
    X = np.random.RandomState(2).randn(150, 2)

    class Tagged(np.ndarray):
        pass

    tagged = X.view(Tagged)
    monkeypatch.setattr(accel, "_foreign_array", lambda a: isinstance(a, Tagged))
    with caplog.at_level(logging.INFO, logger="gmmfast"):
        gm = sklearn.mixture.GaussianMixture(2, random_state=0).fit(tagged)
        labels = sklearn.mixture.GaussianMixture(2, random_state=0).fit_predict(tagged)
    assert len([r for r in caplog.records if "cannot compute on" in r.getMessage()]) == 2
    assert isinstance(gm._sklearn_model, SkGM)
    sk = SkGM(2, random_state=0).fit(X)
    np.testing.assert_array_equal(gm.means_, sk.means_)
    np.testing.assert_array_equal(labels, sk.predict(X))
    # a model gmmfast fitted predicts on such arrays through scikit-learn,
    # with its own parameters
    own = sklearn.mixture.GaussianMixture(2, random_state=0).fit(X)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gmmfast"):
        proba = own.predict_proba(tagged)
    assert len([r for r in caplog.records if r.name == "gmmfast"]) == 1
    np.testing.assert_allclose(proba, own.predict_proba(X), rtol=1e-12, atol=1e-15)


def test_foreign_array_detection(monkeypatch):
    import dask.array as da

    X = np.zeros((3, 2))
    assert not accel._foreign_array(X)  # dispatch off: anything goes through numpy
    monkeypatch.setattr(accel, "get_config", lambda: {"array_api_dispatch": True})
    assert not accel._foreign_array(X)
    assert not accel._foreign_array([[0.0, 1.0]])
    assert not accel._foreign_array(da.zeros((3, 2)))
    if accel.array_api_compat is None:
        class Namespaced:
            def __array_namespace__(self, api_version=None):
                return None
        assert accel._foreign_array(Namespaced())
    else:
        monkeypatch.setattr(accel.array_api_compat, "is_array_api_obj", lambda a: True)
        assert accel._foreign_array(object())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize("n_components", [1, 2])
def test_patched_class_passes_check_estimator(n_components, caplog):
    """scikit-learn's estimator checks on the class patch_sklearn installs;
    the bad inputs they try fail in both libraries, so nothing falls back."""
    from sklearn.utils.estimator_checks import check_estimator

    from test_check_estimator import ARRAY_API_SKIP, SHUFFLED_WEIGHTS

    expected = SHUFFLED_WEIGHTS if n_components > 1 else {}
    cls = accel.accelerated_class("GaussianMixture")
    with caplog.at_level(logging.INFO, logger="gmmfast"):
        results = check_estimator(cls(n_components=n_components), on_fail=None,
                                  expected_failed_checks=expected)
    bad = [(r["check_name"], r["status"], repr(r["exception"])[:300]) for r in results
           if r["status"] != "passed"
           and not (r["status"] == "skipped" and ARRAY_API_SKIP in repr(r["exception"]))
           and not (r["status"] == "xfail" and r["check_name"] in expected)]
    assert bad == []
    assert [r.getMessage() for r in caplog.records if r.name == "gmmfast"] == []
