"""Child process for the Ctrl-C tests (tests/test_threads.py) and
bench/interrupt_latency.py: runs a fit that would take far longer than the
test waits, is sent SIGINT, and reports when KeyboardInterrupt arrived and
the state the estimator was left in, as one JSON line.

    python tests/interrupt_child.py '{"n_samples": ..., "n_features": ..., ...}'

Spec keys: n_samples, n_features, n_components, covariance_type, dtype,
n_threads, refit ("none": a first fit; "cold": a fitted estimator is fitted
again; "warm": the same with warm_start=True), init ("given": weights,
means and precisions given, so EM starts at once; else an init_params value).
The child prints READY just before the long fit starts.
"""
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gmmfast import GaussianMixture  # noqa: E402
from gmmfast._mixture import _FIT_ATTRIBUTES  # noqa: E402


def _snapshot(gm):
    out = {}
    for name in _FIT_ATTRIBUTES:
        if name in gm.__dict__:
            value = gm.__dict__[name]
            out[name] = value.copy() if isinstance(value, np.ndarray) else (
                list(value) if isinstance(value, list) else value)
    return out


def _same(a, b):
    if a.keys() != b.keys():
        return False
    for name in a:
        x, y = a[name], b[name]
        if isinstance(x, np.ndarray):
            if not (isinstance(y, np.ndarray) and x.dtype == y.dtype
                    and np.array_equal(x, y)):
                return False
        elif x != y:
            return False
    return True


def main(spec):
    # A process started in the background by a non-interactive shell (nohup,
    # `cmd &` in a script, some CI runners) inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    n, d, k = spec["n_samples"], spec["n_features"], spec["n_components"]
    cov = spec["covariance_type"]
    dtype = np.dtype(spec.get("dtype", "float64"))
    centers = rng.normal(scale=3.0, size=(k, d))
    X = (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)
    params = dict(n_components=k, covariance_type=cov, tol=0.0, max_iter=10**6,
                  n_threads=spec.get("n_threads"), random_state=0)
    if spec.get("init", "given") == "given":
        params.update(
            weights_init=np.full(k, 1.0 / k), means_init=centers,
            precisions_init={
                "full": np.tile(np.eye(d), (k, 1, 1)), "tied": np.eye(d),
                "diag": np.ones((k, d)), "spherical": np.ones(k),
            }[cov],
        )
    else:
        params["init_params"] = spec["init"]
    gm = GaussianMixture(**params)
    refit = spec.get("refit", "none")
    if refit != "none":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.set_params(max_iter=2).fit(X[:2000])
        gm.set_params(max_iter=10**6, warm_start=refit == "warm")
    before = _snapshot(gm)

    print("READY", flush=True)
    t_start = time.monotonic()
    try:
        gm.fit(X)
    except KeyboardInterrupt:
        t_caught = time.monotonic()
        after = _snapshot(gm)
        print(json.dumps({
            "status": "interrupted",
            "t_start": t_start,
            "t_caught": t_caught,
            "unchanged": _same(before, after),
            "fitted_before": bool(before),
            "attributes_after": sorted(after),
        }), flush=True)
        return
    print(json.dumps({"status": "finished", "t_start": t_start}), flush=True)


def interrupt(spec, delay=1.0, timeout=120.0):
    """Run the child with ``spec``, send SIGINT ``delay`` seconds after it
    is READY; return its report plus ``latency``: seconds from the signal to
    KeyboardInterrupt being caught (CLOCK_MONOTONIC is shared by processes)."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline()
        if ready.strip() != "READY":
            proc.kill()
            raise RuntimeError(f"child did not start: {ready!r} {proc.stderr.read()[-2000:]}")
        time.sleep(delay)
        t_sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError(f"child printed nothing; stderr: {err[-2000:]}")
    report = json.loads(lines[-1])
    report["t_sent"] = t_sent
    if report["status"] == "interrupted":
        report["latency"] = report["t_caught"] - t_sent
    return report


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
