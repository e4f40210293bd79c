"""Instructions per EM iteration, counted by callgrind: a repeatable check
that a change costs no more work, whatever else the machine is doing.

    python bench/instructions.py                 # every row and type, this build
    python bench/instructions.py --pythonpath ../other-checkout   # another build

For each (N, D, K, covariance type) the fit runs from the same start for 2
and for 6 iterations (tol disabled, 1 thread), in one process under
``valgrind --tool=callgrind`` that dumps its counts at a marker call around
each fit, and the table gives (I(6) - I(2)) / 4: instructions per
iteration, validation and the start cancelled out, and the fixed cost of a
fit beside it. Timings remain bench/run.py's job; this counts work.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# bench/run.py's --quick grid at N/10 again (callgrind runs ~50x slower)
ROWS = [(1_000, 2, 2), (10_000, 2, 4), (2_000, 16, 8), (1_000, 64, 16), (200, 256, 8)]
TYPES = ("full", "tied", "diag", "spherical")

CHILD = r"""
import os, sys, warnings
sys.path.insert(0, {here!r})
import numpy as np
from quickbench import make_data, start_for
from gmmfast import GaussianMixture
warnings.simplefilter("ignore")
for n, d, k, cov in {configs!r}:
    X, means0 = make_data(n, d, k)
    for iters in (1, 2, 6):  # the first fit warms up (imports, caches)
        model = GaussianMixture(k, covariance_type=cov, tol=0.0, max_iter=iters,
                                n_threads=1, **start_for(cov, means0))
        os.getpgrp()  # callgrind dumps (and zeroes) its counts here
        model.fit(X)
        os.getpgrp()
"""


def counts(configs, pythonpath):
    """Instructions of each fit: one callgrind run, a dump at every marker."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        if pythonpath:
            env["PYTHONPATH"] = os.path.abspath(pythonpath)
        code = CHILD.format(here=HERE, configs=configs)
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        "--dump-before=getpgrp", sys.executable, "-c", code], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        totals = []
        for name in sorted(os.listdir(tmp), key=lambda f: int(f.rsplit(".", 1)[-1])
                           if f.rsplit(".", 1)[-1].isdigit() else 0):
            with open(os.path.join(tmp, name)) as f:
                m = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
            if name != "cg.out" and m:
                totals.append(int(m.group(1)))
    # dumps alternate: before a fit (between fits), the fit itself
    return totals[1::2]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pythonpath", default=None,
                   help="a checkout whose gmmfast (built in place) to count")
    p.add_argument("--types", default=",".join(TYPES))
    args = p.parse_args(argv)
    configs = [(n, d, k, cov) for n, d, k in ROWS for cov in args.types.split(",")]
    fits = counts(configs, args.pythonpath)
    print("| N, D, K | type | instructions / iteration | fixed (a 2-iteration fit less 2 iterations) |")
    print("|---|---|---|---|")
    for i, (n, d, k, cov) in enumerate(configs):
        _, lo, hi = fits[3 * i:3 * i + 3]
        per = (hi - lo) / 4
        print(f"| {n:,}, {d}, {k} | {cov} | {per:,.0f} | {lo - 2 * per:,.0f} |")


if __name__ == "__main__":
    main()
