"""The project speaks of itself: no tracked file refers to its work history or to files outside
the repository. Oracle: the tracked files themselves (git ls-files), read as text."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile("|".join([
    r"\b[Ss]tops? \d+\b",             # work sessions
    r"\b[Ii]ssues? \d+\b",            # work items
    r"\b[Tt]argets? \d+ of\b",
    "MODEL" + r"\.md",                # the starting specification, outside the repository
    r"\.\./" + "shared",
    r"\bshared/",
]))
TEXT = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".json", ".csv", ""}
SKIP = ("results/",)  # measured data: a results file records what was run, as it was run


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / f for f in out.splitlines()
            if not f.startswith(SKIP) and Path(f).suffix in TEXT and (ROOT / f).is_file()]


def offending_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if FORBIDDEN.search(line)]


def test_no_work_history_or_outside_files_in_tracked_files():
    hits = []
    for path in _tracked():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        hits += [f"{path.relative_to(ROOT)}: {line}" for line in offending_lines(text)]
    assert not hits, "\n".join(hits[:40])


@pytest.mark.parametrize("line", ["(measured in st" "op 11)", "iss" "ue 7's target 1",
                                  "see ../" "shar" "ed/" "MODEL" ".md §2", "Tar" "get 2 of the speed work"])
def test_the_pattern_catches_history(line):
    assert offending_lines(line)


def test_readme_is_a_landing_page():
    assert len((ROOT / "README.md").read_text()) <= 12000
