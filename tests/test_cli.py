"""The command line, end to end: ``python -m gmmfast`` in a subprocess."""
import os
import subprocess
import sys

import numpy as np
import pytest

from gmmfast import GaussianMixture
from gmmfast.__main__ import build_parser, load_data, main
from gmmfast._demo import demo_data
from gmmfast import load as load_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("fit", "predict", "score", "demo")


def gmmfast_cli(*args, cwd):
    """Run ``python -m gmmfast ARGS`` with this checkout's package."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GMMFAST_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", "gmmfast", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    X = demo_data(3000, random_state=0)
    np.save(d / "x.npy", X)
    np.savetxt(d / "x.csv", X, delimiter=",", header="width,height", comments="", fmt="%.17g")
    np.savetxt(d / "x_noheader.csv", X[:50], delimiter=",", fmt="%.17g")
    np.save(d / "x1d.npy", X[:, 0])
    np.save(d / "x3.npy", np.ones((5, 3)))
    np.save(d / "x_f32.npy", X.astype(np.float32))
    (d / "bad.csv").write_text("1,2\n3,oops\n")
    (d / "garbage.npy").write_bytes(b"this is not numpy")
    np.save(d / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    GaussianMixture(2, random_state=0).fit(X).save(d / "premade.npz")
    return d


def test_fit_predict_score_npy(data_dir):
    X = np.load(data_dir / "x.npy")
    fit = gmmfast_cli("fit", "x.npy", "-k", "2", "--random-state", "0", "--threads", "1",
                      "--tol", "1e-6", "-o", "model.npz", cwd=data_dir)
    assert fit.returncode == 0, fit.stderr
    # progress: an iteration counter with the lower bound, on stderr
    progress = fit.stderr.strip().splitlines()
    assert progress[0].startswith("iteration    1  lower bound ")
    assert "wrote model.npz" in fit.stdout
    model = load_model(data_dir / "model.npz")
    assert len(progress) == model.n_iter_
    ref = GaussianMixture(2, random_state=0, n_threads=1, tol=1e-6).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(ref, name))
    assert model.lower_bounds_ == ref.lower_bounds_
    assert float(progress[-1].split("lower bound ")[1].split()[0]) == pytest.approx(
        ref.lower_bound_, rel=1e-7)

    pred = gmmfast_cli("predict", "model.npz", "x.npy", cwd=data_dir)
    assert pred.returncode == 0, pred.stderr
    labels = np.array(pred.stdout.split(), dtype=np.int64)
    np.testing.assert_array_equal(labels, ref.predict(X))
    assert len(pred.stdout.splitlines()) == len(X)

    score = gmmfast_cli("score", "model.npz", "x.npy", cwd=data_dir)
    assert score.returncode == 0, score.stderr
    assert float(score.stdout) == pytest.approx(ref.score(X), rel=1e-12)


def test_fit_predict_csv_with_header_and_labels_file(data_dir):
    X = np.load(data_dir / "x.npy")
    fit = gmmfast_cli("fit", "x.csv", "-k", "2", "--covariance-type", "diag",
                      "--random-state", "1", "--quiet", "-o", "model_diag", cwd=data_dir)
    assert fit.returncode == 0, fit.stderr
    assert fit.stderr == ""  # --quiet
    model = load_model(data_dir / "model_diag.npz")  # .npz appended, as numpy.savez does
    assert model.covariance_type == "diag" and model.n_features_in_ == 2
    pred = gmmfast_cli("predict", "model_diag.npz", "x_noheader.csv", "-o", "labels.npy",
                       cwd=data_dir)
    assert pred.returncode == 0, pred.stderr
    assert pred.stdout == ""
    np.testing.assert_array_equal(np.load(data_dir / "labels.npy"), model.predict(X[:50]))


@pytest.mark.parametrize("args, message", [
    (["fit", "x.npy", "-o", "m.npz"], "the following arguments are required: -k"),
    (["fit", "missing.npy", "-k", "2", "-o", "m.npz"], "missing.npy: no such file"),
    (["predict", "premade.npz", "x3.npy"], "X has 3 features, but GaussianMixture is expecting 2"),
])
def test_errors_are_one_line_without_traceback(data_dir, args, message):
    result = gmmfast_cli(*args, cwd=data_dir)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert lines[0].startswith("gmmfast")


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "the following arguments are required: COMMAND"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["fit", "x.npy", "-k", "0", "-o", "m.npz"], 2, "expected a positive integer, got '0'"),
    (["fit", "x.npy", "-k", "2"], 2, "required: -o/--output"),
    (["fit", "x.npy", "-k", "2", "--covariance-type", "round", "-o", "m.npz"], 2,
     "invalid choice: 'round'"),
    (["fit", "x.txt", "-k", "2", "-o", "m.npz"], 1, "DATA must be a .npy or .csv file"),
    (["fit", "x1d.npy", "-k", "2", "-o", "m.npz"], 1, "must be a 2-D array"),
    (["fit", "garbage.npy", "-k", "2", "-o", "m.npz"], 1, "not a readable .npy file"),
    (["fit", "objects.npy", "-k", "2", "-o", "m.npz"], 1, "not a readable .npy file"),
    (["fit", "bad.csv", "-k", "2", "-o", "m.npz"], 1, "not a numeric CSV file"),
    (["fit", "x.npy", "-k", "5000", "-o", "m.npz"], 1, "n_samples >= n_components"),
    (["score", "x.npy", "x.npy"], 1, "x.npy: cannot load the gmmfast model: not an .npz"),
    (["score", "garbage.npy", "x.npy"], 1, "cannot load the gmmfast model"),
    (["predict", "nomodel.npz", "x.npy"], 1, "nomodel.npz: no such file"),
])
def test_error_messages(data_dir, capsys, monkeypatch, args, code, message):
    """The same paths in-process (fast): one line on stderr, the exit code."""
    monkeypatch.chdir(data_dir)
    monkeypatch.delenv("GMMFAST_TRACEBACK", raising=False)
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == code
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


@pytest.mark.parametrize("command", (None,) + COMMANDS)
def test_help_on_every_command(capsys, command):
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gmmfast" + ("" if command is None else f" {command}"))
    if command == "fit":
        assert "-k K" in out and "--covariance-type" in out and "MODEL.npz" in out
    if command is None:
        for c in COMMANDS:
            assert c in out


def test_warnings_are_one_line(data_dir, capsys, monkeypatch):
    monkeypatch.chdir(data_dir)
    rc = main(["fit", "x.npy", "-k", "2", "--max-iter", "1", "--tol", "0", "-q",
               "--random-state", "0", "-o", "m1.npz"])
    assert rc == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gmmfast: warning: Best performing initialization did not converge. "
                   "Try different init parameters, or increase max_iter, tol, or check "
                   "for degenerate data."]


def test_float32_data_gives_float32_model(data_dir, monkeypatch, capsys):
    monkeypatch.chdir(data_dir)
    assert main(["fit", "x_f32.npy", "-k", "2", "-q", "--random-state", "0",
                 "-o", "m32.npz"]) == 0
    assert load_model(data_dir / "m32.npz").means_.dtype == np.float32


def test_csv_header_detection(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    (tmp_path / "n.csv").write_text("1,2,3\n4,5,6\n")
    (tmp_path / "one.csv").write_text("x\n1\n2\n3\n")
    np.testing.assert_array_equal(load_data(str(tmp_path / "h.csv")), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(load_data(str(tmp_path / "n.csv")), [[1, 2, 3], [4, 5, 6]])
    assert load_data(str(tmp_path / "one.csv")).shape == (3, 1)


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        meta = tomllib.load(f)
    assert meta["project"]["scripts"]["gmmfast"] == "gmmfast.__main__:main"
    assert build_parser().prog == "gmmfast"
