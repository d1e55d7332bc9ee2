"""What the subcommands share: argument types, the help formatter, JSON output."""
from __future__ import annotations

import argparse


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's and the example's line breaks and shows every real default."""


def sizes(text: str) -> list[int]:
    """``"784,500,10"`` -> ``[784, 500, 10]``."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes must be comma-separated integers, got {text!r}")


def add_parser(sub, name: str, summary: str, description: str, example: str):
    """A subcommand parser whose help ends with ``example`` (one or more command lines)."""
    return sub.add_parser(name, help=summary, description=description,
                          epilog="example:\n" + "\n".join("  " + line for line in
                                                           example.strip().splitlines()),
                          formatter_class=Formatter)


def dumps(obj) -> str:
    """Strict JSON: non-finite numbers become null (:func:`ghostnet.io.dumps`)."""
    from ghostnet.io import dumps as strict

    return strict(obj)
