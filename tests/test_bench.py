"""bench/quickbench.py, the quick comparison with scikit-learn (a development
tool outside the package): it runs, prints its table and draws its plot."""
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "bench"))

quickbench = pytest.importorskip("quickbench")


def test_quickbench_prints_a_table_and_writes_the_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "speedup.png"
    quickbench.main(["--scale", "0.01", "--repeats", "1", "--threads", "1",
                     "--plot", str(path)])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.rstrip().endswith("x")]
    assert [int(r.split()[1]) for r in rows] == [2, 16, 64]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_speedup(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [dict(n_features=d, speedup=s, label=f"D={d}") for d, s in [(2, 10.0), (16, 4.0)]]
    path = tmp_path / "s.svg"
    ax = quickbench.plot_speedup(rows, path)
    assert path.read_text().lstrip().startswith("<?xml")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [10.0, 4.0])


def test_bgm_adapters_run_the_same_iterations_from_the_same_start():
    """bench/run.py --bgm: both BayesianGaussianMixture adapters run exactly
    the iterations asked for, from the same start (so their per-iteration
    times compare like with like)."""
    peers = pytest.importorskip("peers")
    X, means0 = quickbench.make_data(600, 3, 2, dtype=np.float64)
    start = quickbench.start_for("full", means0)
    libs, missing = peers.available_libraries(bgm=True)
    assert missing == [] and [lib.name for lib in libs] == ["gmmfast", "scikit-learn"]
    models = [lib.fitted_model(X, start, "full", 4, 1) for lib in libs]
    assert [m.n_iter_ for m in models] == [4, 4]
    np.testing.assert_allclose(models[0].means_, models[1].means_, rtol=1e-8)


def test_kmeans_start_bench_runs_small(capsys):
    kmeans_start = pytest.importorskip("kmeans_start")
    rows = kmeans_start.main(["--scale", "0.002", "--repeats", "1",
                              "--memmap-rows", "20000", "--threads", "1"])
    out = capsys.readouterr().out
    assert "k-means alone" in out and "memmap fit with defaults" in out
    assert len(rows) == 4
    # the side-by-side checks are in the rows: same labels and n_iter
    assert "labels equal True" in rows[0]["check"]
    assert rows[3]["n_samples"] == 20000 and rows[3]["peak_anon_kib"] > 0


def test_run_limit_uses_the_dtype_rate_and_reads():
    """bench/run.py's limit: GEMM-shaped flops at the dtype's GEMM rate
    (sgemm for float32), reads of 4 or 8 bytes a value."""
    run = pytest.importorskip("run")
    machine = {"threads": {1: {"dgemm": 50e9, "sgemm": 100e9, "exp": 1e9}},
               "bandwidth": 20e9}
    n, d, k = 50_000, 128, 1024
    flops = 8.0 * n * k * d
    assert run.gemm_flops(n, d, k, "diag") == run.gemm_flops(n, d, k, "spherical") == flops
    assert run.machine_limit(machine, n, d, k, 1, "diag", "float32") == flops / 100e9
    assert run.machine_limit(machine, n, d, k, 1, "diag", "float64") == flops / 50e9
    assert run.gemm_flops(n, 32, 64, "full") == 2.0 * n * 64 * 32**2 + 4.0 * n * 64 * 32
    assert run.gemm_flops(n, 32, 64, "tied") == 2.0 * n * 32**2 + 4.0 * n * 64 * 32
    # a read of X bounds a cheap iteration: 4-byte values for float32
    wide = 10**7, 2, 1
    assert run.machine_limit(machine, *wide, 1, "spherical", "float32") == 10**7 * 2 * 4 / 20e9
    assert run.machine_limit(machine, *wide, 1, "spherical", "float64") == 10**7 * 2 * 8 / 20e9
    names = [run.case_name(c) for c in run.SMALL_CASES]
    assert names[0] == "fit, 200 x 2, K = 3, defaults"
    assert names[-1] == "select(n_components=range(1, 10)), 2,000 x 2, spherical"
    assert {(r[3], r[4]) for r in run.MANY_ROWS} >= {("diag", "float32"), ("full", "float64"),
                                                     ("spherical", "float64")}


def test_bgm_vs_gm_bench_runs_small(capsys):
    """bench/run.py --bgm-vs-gm: the four fits alternated in one run, one row
    with both speed-ups and their ratio (the mixture-module issue's
    criterion), the count of rows that meet it."""
    run = pytest.importorskip("run")
    name = "test-bgm-vs-gm"
    try:
        run.main(["--bgm-vs-gm", "--quick", "--rows", "0", "--scale", "0.01",
                  "--repeats", "1", "--threads", "1", "--name", name])
        out = capsys.readouterr().out
        row = [line for line in out.splitlines() if line.startswith("| 100, 2, 2 | 1 |")]
        assert len(row) == 1
        cells = [c.strip() for c in row[0].split("|")[1:-1]]
        gm = float(cells[4].rstrip("×"))
        bgm = float(cells[7].rstrip("×"))
        assert gm > 0 and bgm > 0
        assert float(cells[8]) == pytest.approx(bgm / gm, rel=0.02)
        assert "BGM speed-up at least GM's: " in out
    finally:
        for ext in (".md", ".json"):
            path = os.path.join(HERE, os.pardir, "bench", "results", name + ext)
            if os.path.exists(path):
                os.remove(path)
