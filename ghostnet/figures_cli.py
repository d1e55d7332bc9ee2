"""``ghostnet figures``: draw every figure from saved results (issue 5; :mod:`ghostnet.figures`).

Registers itself with :mod:`ghostnet.cli` through :func:`register`; matplotlib is imported only
when the command runs.
"""
from __future__ import annotations

import sys


def add(sub) -> None:
    from ghostnet.figures import FIGURES

    p = sub.add_parser(
        "figures", help="draw the figures from saved results (PNG and PDF)",
        description="Draws the figures of MODEL.md §8 from the results the experiments saved "
                    "(python experiments/run_all.py makes them all). Nothing is recomputed: a "
                    "missing or corrupt results file is an error naming the experiment to run.")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--out", default="figures", help="where to write the figures (default: figures)")
    p.add_argument("--only", nargs="+", choices=list(FIGURES), metavar="NAME",
                   help=f"draw only these: {', '.join(FIGURES)}")
    p.add_argument("--format", nargs="+", choices=("png", "pdf", "svg"), default=["png", "pdf"])


def run(args) -> int:
    from ghostnet.figures import ResultsError, make_figures

    try:
        written = make_figures(args.results, args.out, args.only, tuple(args.format))
    except ResultsError as exc:
        print(f"ghostnet figures: error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def register(PARSERS, COMMANDS) -> None:
    """Add ``figures`` to the ``ghostnet`` command line (called by :mod:`ghostnet.cli`)."""
    if add not in PARSERS:
        PARSERS.append(add)
    COMMANDS["figures"] = run
