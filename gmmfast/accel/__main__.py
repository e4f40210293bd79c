"""``python -m gmmfast.accel script.py [args...]``: run a script with
scikit-learn's mixture classes patched to gmmfast's (gmmfast.accel.main)."""
import sys

from . import main

sys.exit(main())
