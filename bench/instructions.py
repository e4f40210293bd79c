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

    python bench/instructions.py --small         # whole small fits with defaults

``--small`` counts whole fits with every default (k-means start, tol=1e-3,
every thread): instructions per fit of 200 x 2 and 2,000 x 4 with K = 3
(``--fits`` of each, different seeds) and of one ``select(X,
n_components=range(1, 10))`` on 2,000 x 2 per covariance type, in every
thread of the process (an OpenMP thread spinning while it waits counts too;
how long it spins under valgrind depends on valgrind's thread scheduling,
so compare such counts between builds, not with a clock).
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


SMALL_CHILD = r"""
import os, sys, warnings
sys.path.insert(0, {here!r})
import numpy as np
from quickbench import make_data
import gmmfast
warnings.simplefilter("ignore")
X200 = make_data(200, 2, 3)[0]
X2000 = make_data(2000, 4, 3)[0]
Xsel = make_data(2000, 2, 3)[0]
gmmfast.GaussianMixture(3, random_state=0).fit(X200)  # warm-up (imports, caches)
gmmfast.select(X200, n_components=range(1, 3), random_state=0)
for X in (X200, X2000):
    os.getpgrp()
    for seed in range({fits}):
        gmmfast.GaussianMixture(3, random_state=seed).fit(X)
    os.getpgrp()
for cov in ("full", "tied", "diag", "spherical"):
    os.getpgrp()
    gmmfast.select(Xsel, n_components=range(1, 10), covariance_types=cov, random_state=0)
    os.getpgrp()
"""
SMALL_CASES = ["200 x 2, K = 3, fit", "2,000 x 4, K = 3, fit"] + [
    f"select(range(1, 10)), 2,000 x 2, {cov}" for cov in TYPES]


def counts(configs, pythonpath, code=None, threads="1"):
    """Instructions of each marked section: one callgrind run, a dump at
    every marker (``code`` marks them; default: the per-iteration fits)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ)
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            if threads is None:
                env.pop(name, None)
            else:
                env[name] = threads
        if pythonpath:
            env["PYTHONPATH"] = os.path.abspath(pythonpath)
        if code is None:
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
    p.add_argument("--small", action="store_true",
                   help="whole small fits and select() with defaults instead")
    p.add_argument("--fits", type=int, default=20, help="--small: fits of each size")
    p.add_argument("--omp-threads", default=None,
                   help="--small: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS (default: unset)")
    args = p.parse_args(argv)
    if args.small:
        code = SMALL_CHILD.format(here=HERE, fits=args.fits)
        sections = counts(None, args.pythonpath, code=code, threads=args.omp_threads)
        print("| case | instructions (all threads) |")
        print("|---|---|")
        for i, case in enumerate(SMALL_CASES):
            per = sections[i] / (args.fits if i < 2 else 1)
            what = "per fit" if i < 2 else "per select"
            print(f"| {case} | {per:,.0f} {what} |")
        return
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
