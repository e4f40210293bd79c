"""Command line: ``python -m gmmfast demo``."""
import argparse
import sys


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="gmmfast",
        description="Gaussian mixture models fitted by one-pass EM.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    demo = sub.add_parser(
        "demo", help="fit the 2-component demo mixture and time it against scikit-learn",
        description="Fit 30% N([0,0], diag(1,10)) + 70% N([10,10], diag(10,1)), print "
        "recovered vs true parameters and the time per EM iteration of gmmfast "
        "and scikit-learn from the same start.",
    )
    demo.add_argument("--n-samples", type=_positive_int, default=1_000_000,
                      help="number of samples (default 1,000,000)")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    demo.add_argument("--no-compare", action="store_true",
                      help="skip the timing against scikit-learn")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.n_samples, args.random_state, compare=not args.no_compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
