"""The ``ghostnet`` command line: one module a subcommand, each with ``SUMMARY``, ``add(sub)``
(its parser) and ``run(args)`` (exit status)."""
from __future__ import annotations

import argparse
import importlib
import sys

from ghostnet.model.config import ConfigError

SUBCOMMANDS = ("gradcheck", "train", "compare", "sweep", "figures", "crosscheck")
"""In the order ``ghostnet --help`` lists them; ``ghostnet.cli.<name>`` implements each."""


def _module(name: str):
    return importlib.import_module(f"ghostnet.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    from ghostnet.version import __version__

    parser = argparse.ArgumentParser(
        prog="ghostnet", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Ghost-unit networks: simulate, learn locally, compare with backprop "
                    "(docs/model.md).",
        epilog="example:\n  ghostnet compare\n  ghostnet gradcheck --help")
    parser.add_argument("--version", action="version", version=f"ghostnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    for name in SUBCOMMANDS:
        _module(name).add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _module(args.command).run(args)
    except ConfigError as exc:
        print(f"ghostnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"ghostnet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
