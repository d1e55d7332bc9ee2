"""Figures drawn from saved results only (``ghostnet figures``)."""
from ghostnet.figures.figures import FIGURES, ResultsError, make_figures

__all__ = ["FIGURES", "ResultsError", "make_figures"]
