"""What the subcommands share: argument types, the help formatter, JSON output."""
from __future__ import annotations

import argparse
import json
import math


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


def _finite(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _default(o):
    import numpy as np

    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return _finite(o.item())
    raise TypeError(f"not JSON serialisable: {type(o)}")


def dumps(obj) -> str:
    """Strict JSON: non-finite numbers become null (``allow_nan=False`` guards the rest)."""
    return json.dumps(_finite(obj), default=_default, allow_nan=False)
