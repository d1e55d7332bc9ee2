"""``ghostnet figures``: draw every figure from saved results (:mod:`ghostnet.figures`);
matplotlib is imported only when the command runs."""
from __future__ import annotations

import sys

from ghostnet.cli._common import add_parser

SUMMARY = "draw the figures from saved results (PNG and PDF)"


def add(sub) -> None:
    from ghostnet.figures.figures import FIGURES

    p = add_parser(
        sub, "figures", SUMMARY,
        "Draws the figures from the results the experiments saved (python experiments/run_all.py\n"
        "makes them all; docs/reproduce.md). Nothing is recomputed: a missing or corrupt results\n"
        "file is an error naming the experiment to run. Training runs that are not finished\n"
        "(running, interrupted, failed: docs/runs.md) are left out, each named on stderr.",
        "ghostnet figures --results results --out figures --only learning traces")
    p.add_argument("--results", default="results", help="results folder")
    p.add_argument("--out", default="figures", help="where to write the figures")
    p.add_argument("--only", nargs="+", choices=list(FIGURES), metavar="NAME",
                   help=f"draw only these: {', '.join(FIGURES)}")
    p.add_argument("--format", nargs="+", choices=("png", "pdf", "svg"), default=["png", "pdf"],
                   help="file formats")


def run(args) -> int:
    from ghostnet.figures.figures import ResultsError, make_figures

    skipped: list = []
    try:
        written = make_figures(args.results, args.out, args.only, tuple(args.format), skipped)
    except ResultsError as exc:
        print(f"ghostnet figures: error: {exc}", file=sys.stderr)
        return 2
    for run, status in dict.fromkeys(skipped):
        print(f"ghostnet figures: skipped {run} ({status} run, not finished)", file=sys.stderr)
    for path in written:
        print(path)
    return 0
