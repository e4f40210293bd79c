"""The package version, in one place (gmmfast.__version__, and the version
that model files record)."""
__version__ = "0.1.0"
