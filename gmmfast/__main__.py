"""Command line: ``python -m gmmfast`` (or ``gmmfast``) COMMAND ...

    gmmfast fit DATA -k K [options] -o MODEL.npz
    gmmfast predict MODEL.npz DATA [-o labels.npy]
    gmmfast score MODEL.npz DATA
    gmmfast demo [--plot demo.png]

DATA is a .npy file (a 2-D numeric array) or a .csv file (comma-separated
numbers, one row per sample; a first line that does not parse as numbers is
taken as a header and skipped). Errors print one line on stderr and exit
with status 1 (usage errors: 2); set GMMFAST_TRACEBACK=1 to see the
traceback instead.
"""
import argparse
import os
import sys
import warnings

from . import _api, _covariance
from ._demo import run_demo
from ._mixture import fitted_model, load_model

EXIT_ERROR = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """An error the user can fix; its message is printed as is."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} "
                              f"(see '{self.prog} --help')\n")


def _int_at_least(minimum, what):
    """An argparse type: an int >= minimum, else 'expected a WHAT integer'."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _positive_float(text):
    value = _non_negative_float(text)
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# ---------------------------------------------------------------------------
# Data files
# ---------------------------------------------------------------------------

def _csv_has_header(path):
    with open(path, "r", encoding="utf-8-sig") as f:
        first = f.readline()
    for field in first.strip().split(","):
        try:
            float(field)
        except ValueError:
            return True
    return False


def load_data(path):
    """(n_samples, n_features) array from a .npy or .csv file.

    .npy: loaded without pickle; float32 stays float32, other numbers become
    float64 later. .csv: comma-separated numbers read as float64; a first
    line holding anything that is not a number is a header and skipped.
    """
    import numpy as np

    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in (".npy", ".csv"):
        raise CommandError(f"{path}: DATA must be a .npy or .csv file")
    if not os.path.isfile(path):
        raise CommandError(f"{path}: no such file")
    if suffix == ".npy":
        try:
            X = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CommandError(f"{path}: not a readable .npy file ({_one_line(exc)})")
        if not isinstance(X, np.ndarray):
            raise CommandError(f"{path}: expected one array in a .npy file")
        if X.dtype.kind not in "biuf":
            raise CommandError(f"{path}: expected numbers, got an array of dtype {X.dtype}")
    else:
        try:
            skip = 1 if _csv_has_header(path) else 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Empty input file"
                X = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2,
                               dtype=np.float64, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: not a numeric CSV file ({_one_line(exc)})")
    if X.ndim != 2:
        hint = (" (for one feature, save a column: x.reshape(-1, 1))"
                if X.ndim == 1 else "")
        raise CommandError(f"{path}: DATA must be a 2-D array (n_samples, n_features), "
                           f"got shape {X.shape}{hint}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CommandError(f"{path}: DATA is empty (shape {X.shape})")
    return X


def _load_model(path):
    if not os.path.isfile(path):
        raise CommandError(f"{path}: no such file")
    return load_model(path)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

def cmd_fit(args):
    X = load_data(args.data)
    params = {**_api.DEFAULTS, **dict(
        n_components=args.k, covariance_type=args.covariance_type,
        max_iter=args.max_iter, tol=args.tol, n_init=args.n_init,
        init_params=args.init_params, reg_covar=args.reg_covar,
        random_state=args.random_state, n_threads=args.threads,
    )}
    _api.validate_params(params)
    state = {"init": 0}

    def progress(n_iter, lower_bound):
        if n_iter == 1:
            state["init"] += 1
            state["last"] = float("-inf")
        change = lower_bound - state["last"]
        state["last"] = lower_bound
        init = f"init {state['init']}/{args.n_init}  " if args.n_init > 1 else ""
        change_text = f"  change {change:+.3e}" if n_iter > 1 else ""
        print(f"{init}iteration {n_iter:>4}  lower bound {lower_bound:.8g}{change_text}",
              file=sys.stderr, flush=True)

    options = {k: v for k, v in params.items() if k not in ("n_components", "warm_start")}
    result = _api.fit(X, args.k, callback=None if args.quiet else progress, **options)
    model = fitted_model(params, {**result.as_dict(), "n_features_in_": X.shape[1]})
    written = model.save(args.output)
    status = (f"converged after {model.n_iter_} iterations" if model.converged_
              else f"stopped after {model.n_iter_} iterations (not converged)")
    print(f"fitted {model.n_components} {model.covariance_type} components to "
          f"{X.shape[0]:,} x {X.shape[1]} data: {status}, lower bound "
          f"{model.lower_bound_:.8g}; wrote {written}")
    return 0


def cmd_predict(args):
    import numpy as np

    model = _load_model(args.model)
    X = load_data(args.data)
    labels = model.predict(X)
    if args.output is None:
        np.savetxt(sys.stdout, labels, fmt="%d")
    elif str(args.output).lower().endswith(".npy"):
        with open(args.output, "wb") as f:  # np.save(name) would add a suffix
            np.save(f, labels)
    else:
        np.savetxt(args.output, labels, fmt="%d")
    return 0


def cmd_score(args):
    model = _load_model(args.model)
    X = load_data(args.data)
    print(repr(float(model.score(X))))
    return 0


def cmd_demo(args):
    run_demo(args.n_samples, args.random_state, compare=not args.no_compare,
             plot=args.plot)
    return 0


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------

COVARIANCE_TYPES = _covariance.COVARIANCE_TYPES


def build_parser():
    parser = _Parser(
        prog="gmmfast",
        description="Gaussian mixture models fitted by one-pass EM.",
        epilog="DATA: a .npy file (2-D numeric array) or a .csv file (comma-separated "
               "numbers; a first line that is not numeric is a header and skipped). "
               "'gmmfast COMMAND --help' describes each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    fit = sub.add_parser(
        "fit", help="fit a mixture to DATA and write the model to an .npz file",
        description="Fit a Gaussian mixture to DATA by EM (k-means start by default) and write the "
        "model to MODEL.npz (a plain .npz, read without pickle). Progress (iteration, "
        "lower bound = mean log-likelihood) is printed on stderr.")
    fit.add_argument("data", metavar="DATA", help=".npy or .csv file of shape "
                     "(n_samples, n_features)")
    fit.add_argument("-k", "--n-components", dest="k", type=_positive_int, required=True,
                     metavar="K", help="number of components")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL.npz",
                     help="where to write the model")
    fit.add_argument("--covariance-type", choices=COVARIANCE_TYPES, default="full",
                     help="default: full")
    fit.add_argument("--max-iter", type=_non_negative_int, default=100, metavar="N",
                     help="EM iterations at most (default 100)")
    fit.add_argument("--tol", type=_non_negative_float, default=1e-3,
                     help="stop when the lower bound changes by less (default 1e-3)")
    fit.add_argument("--n-init", type=_positive_int, default=1, metavar="N",
                     help="initialisations; the best is kept (default 1)")
    fit.add_argument("--init-params", default="kmeans",
                     choices=("kmeans", "k-means++", "random", "random_from_data"),
                     help="default: kmeans")
    fit.add_argument("--reg-covar", type=_non_negative_float, default=1e-6,
                     help="added to the covariances' diagonal (default 1e-6)")
    fit.add_argument("--random-state", type=int, default=None, metavar="SEED",
                     help="seed of the initialisation (default: unseeded)")
    fit.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                     help="OpenMP threads (default: every core)")
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    fit.set_defaults(func=cmd_fit)

    predict = sub.add_parser(
        "predict", help="most likely component of each row of DATA",
        description="Print the most likely component of each row of DATA, one label per "
        "line, or write them to a file with -o (.npy: a numpy array of int64; "
        "otherwise text, one per line).")
    predict.add_argument("model", metavar="MODEL.npz", help="a model written by 'gmmfast fit'")
    predict.add_argument("data", metavar="DATA", help=".npy or .csv file")
    predict.add_argument("-o", "--output", default=None, metavar="LABELS",
                         help="write the labels here instead of stdout")
    predict.set_defaults(func=cmd_predict)

    score = sub.add_parser(
        "score", help="mean log-likelihood of DATA under a model",
        description="Print the mean log-likelihood of the rows of DATA under the model.")
    score.add_argument("model", metavar="MODEL.npz", help="a model written by 'gmmfast fit'")
    score.add_argument("data", metavar="DATA", help=".npy or .csv file")
    score.set_defaults(func=cmd_score)

    demo = sub.add_parser(
        "demo", help="fit the 2-component demo mixture and time it against scikit-learn",
        description="Fit 30%% N([0,0], diag(1,10)) + 70%% N([10,10], diag(10,1)), print "
        "recovered vs true parameters and the time per EM iteration of gmmfast "
        "and scikit-learn from the same start; --plot draws the fit.",
    )
    demo.add_argument("--n-samples", type=_positive_int, default=1_000_000,
                      help="number of samples (default 1,000,000)")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    demo.add_argument("--no-compare", action="store_true",
                      help="skip the timing against scikit-learn")
    demo.add_argument("--plot", default=None, metavar="PATH",
                      help="write a picture of the fit (points by component, 2-sd "
                           "ellipses) to PATH, e.g. demo.png (needs matplotlib)")
    demo.set_defaults(func=cmd_demo)

    return parser


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def _one_line(exc):
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"gmmfast: warning: {_one_line(Exception(str(message)))}", file=sys.stderr)


def main(argv=None):
    args = build_parser().parse_args(argv)
    prog = f"gmmfast {args.command}"
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. '| head'): stop quietly, and keep Python
        # from complaining when it flushes stdout at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("GMMFAST_TRACEBACK"):
            raise
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
