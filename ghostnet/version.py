"""The package version (one place; the root package and the run records read it)."""
__version__ = "0.1.0"
