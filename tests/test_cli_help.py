"""The command line documents itself: ``ghostnet --help`` lists every subcommand with its
summary; each subcommand's help ends with an example that the parser accepts; the defaults the
help shows are the ones a run uses. Oracle: the parser itself and the modules' own summaries."""
from __future__ import annotations

import argparse
import re
import shlex

import pytest

from ghostnet.cli import SUBCOMMANDS, _module, build_parser


def _help(argv) -> str:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(argv)


def _text(capsys, argv) -> str:
    _help(argv)
    return capsys.readouterr().out


def test_top_level_help_lists_every_subcommand(capsys):
    text = " ".join(_text(capsys, ["--help"]).split())
    for name in SUBCOMMANDS:
        summary = " ".join(_module(name).SUMMARY.split())
        assert f"{name} {summary}" in text, name


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_ends_with_an_example_the_parser_accepts(capsys, name):
    text = _text(capsys, [name, "--help"]).rstrip()
    head, sep, tail = text.rpartition("\nexample:\n")
    assert sep, f"{name} --help has no example at its end"
    examples = [line.strip() for line in tail.splitlines() if line.strip()]
    assert examples and all(e.startswith(f"ghostnet {name}") for e in examples)
    for example in examples:
        args = build_parser().parse_args(shlex.split(example)[1:])
        assert args.command == name


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_option_with_a_default_shows_it(capsys, name):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices[name]
    text = " ".join(_text(capsys, [name, "--help"]).split())
    for action in p._actions:
        if action.default in (None, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings}: no help, so its default is not shown"
        shown = f"(default: {action.default})"
        assert shown in text, (name, action.option_strings, shown)


def test_train_default_run_directory_is_the_pattern_its_help_names(capsys, tmp_path):
    from ghostnet.cli.train import _config, default_out

    text = " ".join(_text(capsys, ["train", "--help"]).split())
    found = re.search(r"--out OUT run directory \(default: ([^)]+)\)", text)
    assert found, text
    pattern = found.group(1).replace(" ", "")  # the help wraps long words at hyphens
    cfg_file = tmp_path / "small.toml"
    cfg_file.write_text('[model]\nsizes = [4, 3, 2]\nmechanism = "copy"\nfeedback = "random"\n'
                        '[train]\nlearner = "fa"\nseed = 7\n')
    args = build_parser().parse_args(["train", "--config", str(cfg_file)])
    cfg = _config(args)
    values = {"config": "small", "learner": "fa", "mechanism": "copy", "feedback": "random",
              "seed": "7"}
    expected = re.sub(r"<(\w+)>", lambda m: values[m.group(1)], pattern)
    assert default_out(args.config, cfg) == expected
