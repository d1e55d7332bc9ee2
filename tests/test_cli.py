"""The ``ghostnet gradcheck`` command: JSON contract and errors."""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest

from ghostnet.cli import main


def test_gradcheck_json_contract(capsys):
    rc = main(["gradcheck", "--sizes", "20,30,25,15,5", "--beta", "1e-3", "--feedback", "symmetric",
               "--mechanism", "copy", "--mode", "dynamics", "--batch", "8", "--seed", "3",
               "--transfer", "logistic", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    s = out["settings"]
    assert s["sizes"] == [20, 30, 25, 15, 5] and s["beta"] == 1e-3 and s["batch"] == 8
    assert s["feedback"] == "symmetric" and s["mode"] == "dynamics" and s["seed"] == 3
    assert [row["layer"] for row in out["layers"]] == [1, 2, 3, 4]
    for row in out["layers"]:
        assert row["angle_deg"] < 0.05 and abs(row["norm_ratio"] - 1) < 0.01
    # copy mechanism: the free phase cancels exactly (docs/model.md §3, property 1)
    assert all(row["cancel_residual"] < 1e-12 for row in out["layers"][:-1])


def test_gradcheck_table_and_random_feedback(capsys):
    assert main(["gradcheck", "--sizes", "10,8,4", "--feedback", "random", "--mode", "equilibrium"]) == 0
    text = capsys.readouterr().out
    assert "angle to FA" in text and "angle to backprop" in text


@pytest.mark.parametrize("argv,field", [
    (["--sizes", "20,0,5"], "sizes"),
    (["--beta", "-1"], "beta"),
    (["--batch", "0"], "batch"),
    (["--method", "euler", "--dt", "3"], "dt"),
    (["--mechanism", "learned", "--pretrain", "100", "--pretrain-noise", "-1"], "pretrain-noise"),
    (["--mechanism", "learned", "--pretrain-noise", "0.5"], "pretrain-noise"),
])
def test_gradcheck_bad_settings_give_a_clear_error(argv, field, capsys):
    assert main(["gradcheck", *argv]) == 2
    err = capsys.readouterr().err
    assert f"'{field}'" in err and "Traceback" not in err


def test_gradcheck_learned_with_noisy_pretraining(capsys):
    rc = main(["gradcheck", "--mechanism", "learned", "--mode", "equilibrium", "--beta", "0.01",
               "--pretrain", "20000", "--pretrain-noise", "1.0", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    pre = out["pretrain"]
    assert pre["noise"] == 1.0 and pre["noise_samples"] == 10000 and pre["samples"] > 10000
    # the residual after pre-training, reported per hidden layer, is that of a cancelling network
    assert all(row["cancel_residual"] < 0.1 for row in out["layers"][:-1])


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "ghostnet.cli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("ghostnet ")


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """``ghostnet sweep ... --dry-run | head``: the pipe closes before ghostnet writes; no
    traceback, no error line, status 141 (SIGPIPE's)."""
    sweep = Path(__file__).parents[1] / "experiments" / "sweeps" / "table_784-500-10.toml"
    p = subprocess.Popen([sys.executable, "-m", "ghostnet", "sweep", str(sweep), "--dry-run",
                          "--out", str(tmp_path / "sweep")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_import_keeps_freed_memory_unless_told_not_to():
    """ghostnet fixes glibc's mmap and trim thresholds at import (see ghostnet._keep_freed_memory);
    GHOSTNET_KEEP_MALLOC=1 or the user's own MALLOC_*_ settings leave the allocator alone."""
    import os

    code = "import ghostnet; print(ghostnet.MALLOC_TUNED_BY_GHOSTNET)"

    def run(**env):
        full = {k: v for k, v in os.environ.items()
                if k not in ("GHOSTNET_KEEP_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
        full.update(env)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=full, check=True).stdout.strip()

    import platform

    if platform.libc_ver()[0] == "glibc":
        assert run() == "True"
    assert run(GHOSTNET_KEEP_MALLOC="1") == "False"
    assert run(MALLOC_TRIM_THRESHOLD_="131072") == "False"
