"""The ``ghostnet`` command line: one module a subcommand, each with ``SUMMARY``, ``add(sub)``
(its parser) and ``run(args)`` (exit status)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ghostnet.errors import GhostnetError

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
    """Run a subcommand. Every expected failure (:class:`ghostnet.errors.GhostnetError`:
    configuration, data, corrupt files, run directories, numerics; and the operating system's
    I/O errors) becomes one line on stderr naming the file or field, with exit status 2 (1 for a
    run that failed); any other exception is a bug and keeps its traceback. A reader that goes
    away (``ghostnet sweep ... --dry-run | head``) ends it quietly, with status 141 as if killed
    by SIGPIPE."""
    try:
        status = _run(argv)
        sys.stdout.flush()  # here, where a closed pipe can still be told from a failure
        return status
    except BrokenPipeError:
        # nothing more can be written there, and Python's own flush at exit must not try again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _module(args.command).run(args)
    except GhostnetError as exc:
        print(f"ghostnet {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:
        raise
    except OSError as exc:  # permissions, a full disk, a missing file
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ghostnet {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
