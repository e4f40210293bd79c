"""Mutation testing of the numerical core: how many deliberately broken
versions of the code the tests catch. A development check, not CI.

It runs cosmic-ray's mutants of gmmfast/_maths.py, _covariance.py, _em.py,
_validation.py and _persist.py against a targeted test command per module
(the test files that exercise it, the most direct first, ``-x``), one
mutant at a time, in a scratch copy of the checkout (``.mutation/``, so the
working tree is never mutated and can be edited while it runs). The mutants
are ordered by (module, operator, occurrence); the sample is the first N of a
permutation of that list drawn from a fixed seed, so the same command
evaluates the same mutants, and a larger N extends a smaller one. The
session database is cosmic-ray's own: the mutants outside the sample are
recorded there as skipped, so ``cosmic-ray dump .mutation/session.sqlite``
reads it too.

Commands (run from the repository root, with the one interpreter that has
cosmic-ray, pytest and hypothesis; one worker, so ``nice -n 19``)::

    nice -n 19 python tools/mutation.py run --sample 67    # the README's sample
    nice -n 19 python tools/mutation.py run --all          # every mutant (hours)
    python tools/mutation.py report [--markdown FILE]      # score, intervals, survivors
    nice -n 19 python tools/mutation.py rerun              # survivors, against today's tests
    python tools/mutation.py try MUTANT [TESTS...]         # one mutant, own scratch copy

``run`` is resumable (it continues the pending mutants of the session);
``run --fresh`` starts over. ``rerun`` copies the current tests/ into the
scratch copy and runs the sample's survivors again; ``report`` then gives the
score before (the first run's, kept in .mutation/before.json) and after.

A mutant counts as killed when the test command fails or exceeds its
timeout (three times the unmutated command's time plus 10 s, measured at the
start of each ``run``); the score is killed / (killed + survived), with the
Clopper-Pearson 95% interval for a binomial proportion. Mutants that
cosmic-ray could not apply (incompetent) are listed and left out.
"""
import argparse
import hashlib
import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / ".mutation"
SEED = 20261202

# The core test files exercise every module: each module's list starts with
# the files aimed at it, so most mutants die in the first seconds. Left
# out (they repeat the core paths through slower machinery): test_dask,
# test_threads, test_check_estimator, test_plotting, test_bench.
CORE = ["test_oracle", "test_estimator", "test_degenerate", "test_types_weights",
        "test_kernels", "test_validation", "test_properties", "test_select",
        "test_online", "test_memmap", "test_persist", "test_portable"]
FIRST = {
    "gmmfast/_maths.py": ["test_kernels", "test_degenerate"],
    "gmmfast/_covariance.py": ["test_kernels", "test_oracle", "test_degenerate"],
    "gmmfast/_em.py": ["test_oracle", "test_estimator", "test_degenerate"],
    "gmmfast/_validation.py": ["test_validation", "test_degenerate", "test_types_weights"],
    "gmmfast/_persist.py": ["test_persist", "test_cli"],
}
MODULES = list(FIRST)


# Survivors judged equivalent (no input can tell them from the original), and
# why; docs/mutation.md has the whole classification. The report leaves them
# out of the second score it gives.
EQUIVALENT = {
    "gmmfast/_em.py:core/NumberReplacer:25":
        "fit_em's default reg_covar: its one caller passes every argument",
    "gmmfast/_em.py:core/NumberReplacer:30":
        "fit_em's default verbose: its one caller passes every argument",
    "gmmfast/_covariance.py:core/NumberReplacer:72":
        "Tied.s2_size: a placeholder slab the tied kernel never writes and "
        "s2_from_slab discards",
    "gmmfast/_em.py:core/ReplaceBinaryOperator_Sub_Mod:0":
        "now % t_iter == now - t_iter exactly while t_iter <= now < 2 t_iter "
        "(epoch seconds)",
}


def test_files(module):
    names = FIRST[module] + [n for n in CORE if n not in FIRST[module]]
    return [f"tests/{n}.py" for n in names]


def test_command(module):
    return " ".join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                     *test_files(module)])


def mutant_id(mutation):
    return f"{mutation.module_path}:{mutation.operator_name}:{mutation.occurrence}"


def _environment():
    """Reproducible, single-threaded test runs (cosmic-ray passes os.environ on)."""
    os.environ["PYTHONHASHSEED"] = "0"
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    # tests/test_properties.py derandomizes hypothesis unless this is set.
    os.environ.pop("GMMFAST_HYPOTHESIS_EXAMPLES", None)


def _copy_checkout():
    """The scratch copy: the package (with its compiled extension), the tests,
    tools/ (a test reads it) and pyproject.toml (pytest's settings)."""
    WORKDIR.mkdir(exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.c", "*.html")
    for name in ("gmmfast", "tests", "tools"):
        shutil.rmtree(WORKDIR / name, ignore_errors=True)
        shutil.copytree(ROOT / name, WORKDIR / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", WORKDIR / "pyproject.toml")


def _db(mode=None):
    from cosmic_ray.work_db import WorkDB, use_db
    return use_db(str(WORKDIR / "session.sqlite"),
                  mode=WorkDB.Mode.open if mode is None else mode)


def _ordered(items):
    return sorted(items, key=lambda w: (str(w.mutations[0].module_path),
                                        w.mutations[0].operator_name,
                                        w.mutations[0].occurrence))


def sample_ids(items, n_sample, seed=SEED):
    """The job ids of the sample: the first n_sample of a seeded permutation
    of the ordered mutants (all of them when n_sample is None)."""
    ordered = _ordered(items)
    if n_sample is None or n_sample >= len(ordered):
        return [w.job_id for w in ordered]
    order = np.random.default_rng(seed).permutation(len(ordered))[:n_sample]
    return [ordered[i].job_id for i in order]


def _timeouts():
    """Per-module timeout: 3 x the unmutated command's seconds + 10. The
    commands differ only in order and _persist's adds test_cli, so one run of
    that command (which must pass) times them all."""
    module = "gmmfast/_persist.py"
    start = time.perf_counter()
    proc = subprocess.run(test_command(module).split(), cwd=WORKDIR,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"the unmutated tests fail:\n{proc.stdout[-3000:]}")
    print(f"baseline (unmutated, every core test file): {seconds:.1f} s", flush=True)
    return {m: 3 * seconds + 10 for m in MODULES}


def _init_session(n_sample, seed):
    import cosmic_ray.commands
    from cosmic_ray.work_db import WorkDB
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with _db(WorkDB.Mode.create) as db:
        cosmic_ray.commands.init([Path(m) for m in MODULES], db, {})
        items = list(db.work_items)
        keep = set(sample_ids(items, n_sample, seed))
        skipped = [w.job_id for w in items if w.job_id not in keep]
        if skipped:
            db.set_multiple_results(skipped, WorkResult(
                worker_outcome=WorkerOutcome.SKIPPED,
                output=f"outside the sample (seed {seed}, n {n_sample})"))
    (WORKDIR / "sample.json").write_text(json.dumps(
        {"seed": seed, "n_sample": n_sample, "n_mutants": len(items),
         "sources": {m: _digest(ROOT / m) for m in MODULES},
         "order": sample_ids(items, n_sample, seed)}))
    print(f"{len(items)} mutants, {len(keep)} in the sample (seed {seed})", flush=True)


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_sources():
    """The scratch copy's modules as they were when the session began: a
    run killed mid-mutant can leave one mutated (it is restored from the
    checkout), and a checkout whose modules changed since needs --fresh
    (the mutants' positions refer to the old text)."""
    sources = json.loads((WORKDIR / "sample.json").read_text())["sources"]
    for module, digest in sources.items():
        if _digest(ROOT / module) != digest:
            sys.exit(f"{module} changed since the session began: run with --fresh")
        if _digest(WORKDIR / module) != digest:
            shutil.copy2(ROOT / module, WORKDIR / module)
            print(f"restored {module} in the scratch copy", flush=True)


def _stop_cleanly():
    """SIGTERM as SystemExit, so that cosmic-ray's context manager puts the
    mutated module back before the process ends."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def _run_items(db, job_ids, timeouts, label):
    from cosmic_ray.mutating import mutate_and_test
    items = {w.job_id: w for w in db.work_items}
    start = time.perf_counter()
    for i, job_id in enumerate(job_ids, 1):
        work = items[job_id]
        module = str(work.mutations[0].module_path)
        t0 = time.perf_counter()
        result = mutate_and_test(work.mutations, test_command(module), timeouts[module])
        db.set_result(job_id, result)
        outcome = result.test_outcome.value if result.test_outcome else result.worker_outcome.value
        print(f"{label} {i}/{len(job_ids)} {mutant_id(work.mutations[0])} {outcome} "
              f"{time.perf_counter() - t0:.1f} s (total {time.perf_counter() - start:.0f} s)",
              flush=True)


def cmd_run(args):
    _environment()
    os.chdir(ROOT)
    if args.fresh or not (WORKDIR / "session.sqlite").exists():
        shutil.rmtree(WORKDIR, ignore_errors=True)
        _copy_checkout()
        os.chdir(WORKDIR)
        _init_session(None if args.all else args.sample, args.seed)
    os.chdir(WORKDIR)
    _stop_cleanly()
    _check_sources()
    timeouts = _timeouts()
    (WORKDIR / "timeouts.json").write_text(json.dumps(timeouts))
    order = json.loads((WORKDIR / "sample.json").read_text())["order"]
    with _db() as db:
        pending = {w.job_id for w in db.pending_work_items}
        _run_items(db, [j for j in order if j in pending], timeouts, "mutant")


def _outcomes(db):
    """{job_id: (mutation, outcome, diff)} for the evaluated mutants."""
    from cosmic_ray.work_item import WorkerOutcome
    items = {w.job_id: w for w in db.work_items}
    out = {}
    for job_id, result in db.results:
        if result.worker_outcome == WorkerOutcome.SKIPPED:
            continue
        if result.worker_outcome == WorkerOutcome.NORMAL:
            outcome = result.test_outcome.value
        else:
            outcome = "incompetent"
        timed_out = result.output == "timeout"
        out[job_id] = (items[job_id].mutations[0], outcome, result.diff or "", timed_out)
    return out


def clopper_pearson(k, n, level=0.95):
    from scipy.stats import beta
    if n == 0:
        return (0.0, 1.0)
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else beta.ppf(a, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(1 - a, k + 1, n - k)
    return float(lo), float(hi)


def _score_rows(outcomes):
    rows = []
    for module in MODULES + ["all"]:
        sel = [o for o in outcomes.values()
               if module == "all" or str(o[0].module_path) == module]
        killed = sum(o[1] == "killed" for o in sel)
        survived = sum(o[1] == "survived" for o in sel)
        other = len(sel) - killed - survived
        n = killed + survived
        lo, hi = clopper_pearson(killed, n)
        rows.append((module, n, killed, survived, other,
                     killed / n if n else float("nan"), lo, hi))
    return rows


_BITWISE = ("BitOr", "BitAnd", "BitXor", "LShift", "RShift")


def operator_family(operator_name):
    """The kind of change: replacements of arithmetic by bitwise operators
    mostly die of a TypeError on floats, so they are counted apart."""
    name = operator_name.split("/")[-1]
    if name.startswith("ReplaceBinaryOperator_"):
        return ("binary operator, to bitwise" if name.split("_")[-1] in _BITWISE
                else "binary operator, to arithmetic")
    if name.startswith("ReplaceComparisonOperator_"):
        return "comparison"
    if name.startswith("ReplaceUnaryOperator_"):
        return "unary operator"
    if name in ("AddNot", "ReplaceTrueWithFalse", "ReplaceFalseWithTrue",
                "ReplaceAndWithOr", "ReplaceOrWithAnd"):
        return "boolean"
    if name == "NumberReplacer":
        return "number"
    return "other (exceptions, loops, decorators, variables)"


def _family_rows(outcomes):
    rows = []
    families = sorted({operator_family(o[0].operator_name) for o in outcomes.values()})
    for family in families:
        sel = [o for o in outcomes.values() if operator_family(o[0].operator_name) == family]
        killed = sum(o[1] == "killed" for o in sel)
        survived = sum(o[1] == "survived" for o in sel)
        n = killed + survived
        lo, hi = clopper_pearson(killed, n)
        rows.append((family, n, killed, survived, len(sel) - n,
                     killed / n if n else float("nan"), lo, hi))
    return rows


def _table(rows, title):
    lines = [f"{title}", "",
             "| | evaluated | killed | survived | not applicable | score | 95% interval |",
             "|---|---|---|---|---|---|---|"]
    for module, n, k, s, other, score, lo, hi in rows:
        lines.append(f"| {module} | {n} | {k} | {s} | {other} | {100 * score:.1f}% | "
                     f"{100 * lo:.1f}–{100 * hi:.1f}% |")
    return lines


def cmd_report(args):
    sample = json.loads((WORKDIR / "sample.json").read_text())
    with _db() as db:
        outcomes = _outcomes(db)
    lines = [f"{sample['n_mutants']} mutants; sample of {sample['n_sample'] or 'all'} "
             f"(seed {sample['seed']}); {len(outcomes)} evaluated so far.", ""]
    before = WORKDIR / "before.json"
    if before.exists():
        old = json.loads(before.read_text())
        old_outcomes = {j: (outcomes[j][0], o, "", False) for j, o in old.items() if j in outcomes}
        lines += _table(_score_rows(old_outcomes), "Before the new tests:") + [""]
        lines += _table(_score_rows(outcomes), "After (the survivors re-run):") + [""]
    else:
        lines += _table(_score_rows(outcomes), "Score:") + [""]
    lines += _table(_family_rows(outcomes), "By kind of change (current):") + [""]
    equivalent = {j: o for j, o in outcomes.items() if mutant_id(o[0]) in EQUIVALENT}
    if equivalent:
        rest = {j: o for j, o in outcomes.items() if j not in equivalent}
        lines += _table(_score_rows(rest), f"Without the {len(equivalent)} equivalent "
                        "mutants (current):") + [""]
    survivors = sorted((mutant_id(m), m.start_pos[0], d) for m, o, d, _ in outcomes.values()
                       if o == "survived")
    lines += [f"Survivors ({len(survivors)}):", ""]
    for mid, line, diff in survivors:
        change = [ln for ln in diff.splitlines()
                  if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
        note = f" (equivalent: {EQUIVALENT[mid]})" if mid in EQUIVALENT else ""
        lines.append(f"- `{mid}` (line {line}): "
                     + " → ".join(f"`{c[1:].strip()}`" for c in change) + note)
    other = sorted(mutant_id(m) for m, o, *_ in outcomes.values()
                   if o not in ("killed", "survived"))
    if other:
        lines += ["", f"Not applicable ({len(other)}): "
                  + ", ".join(f"`{x}`" for x in other)]
    timed = sorted(mutant_id(m) for m, o, _, t in outcomes.values() if t)
    if timed:
        lines += ["", f"Killed by the timeout ({len(timed)}): "
                  + ", ".join(f"`{x}`" for x in timed)]
    text = "\n".join(lines) + "\n"
    if args.markdown:
        Path(args.markdown).write_text(text)
    print(text)


def cmd_rerun(args):
    _environment()
    os.chdir(WORKDIR)
    _stop_cleanly()
    _check_sources()
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.rmtree(WORKDIR / "tests")
    shutil.copytree(ROOT / "tests", WORKDIR / "tests", ignore=ignore)
    with _db() as db:
        outcomes = _outcomes(db)
        before = WORKDIR / "before.json"
        if not before.exists():
            before.write_text(json.dumps({j: o[1] for j, o in outcomes.items()}))
        old = json.loads(before.read_text())
        targets = [j for j, o in old.items() if o == "survived"]
        if args.only:
            targets = [j for j in targets if mutant_id(outcomes[j][0]) in args.only]
        # the first run's timeouts: the survivors' commands are the same
        timeouts = json.loads((WORKDIR / "timeouts.json").read_text())
        _run_items(db, _ordered_ids(db, targets), timeouts, "survivor")


def cmd_try(args):
    """One mutant against chosen tests, in a scratch copy of its own
    (.mutation-try/): for checking that a new test kills a survivor while a
    run is going on."""
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_db import WorkDB, use_db
    _environment()
    with use_db(str(WORKDIR / "session.sqlite"), mode=WorkDB.Mode.open) as db:
        work = {mutant_id(w.mutations[0]): w for w in db.work_items}[args.mutant]
    scratch = ROOT / ".mutation-try"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.c", "*.html")
    for name in ("gmmfast", "tests", "tools"):
        shutil.copytree(ROOT / name, scratch / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", scratch / "pyproject.toml")
    os.chdir(scratch)
    command = " ".join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                        *(args.tests or test_files(str(work.mutations[0].module_path)))])
    result = mutate_and_test(work.mutations, command, args.timeout)
    print(result.diff)
    print((result.output or "")[-2000:])
    print(args.mutant, result.test_outcome.value if result.test_outcome
          else result.worker_outcome.value)


def _ordered_ids(db, job_ids):
    keep = set(job_ids)
    return [w.job_id for w in _ordered(db.work_items) if w.job_id in keep]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate the sample (resumable)")
    run.add_argument("--sample", type=int, default=67, help="number of mutants (default 67)")
    run.add_argument("--all", action="store_true", help="every mutant, no sample")
    run.add_argument("--seed", type=int, default=SEED)
    run.add_argument("--fresh", action="store_true", help="discard the session and start over")
    rep = sub.add_parser("report", help="score, intervals and survivors")
    rep.add_argument("--markdown", help="also write the report to this file")
    rer = sub.add_parser("rerun", help="run the first run's survivors against the current tests")
    rer.add_argument("--only", nargs="*", help="mutant ids (module:operator:occurrence)")
    tr = sub.add_parser("try", help="one mutant against chosen tests (own scratch copy)")
    tr.add_argument("mutant", help="module:operator:occurrence")
    tr.add_argument("tests", nargs="*", help="pytest node ids (default: the module's command)")
    tr.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    {"run": cmd_run, "report": cmd_report, "rerun": cmd_rerun, "try": cmd_try}[args.command](args)


if __name__ == "__main__":
    main()
