"""The ``glompo-like`` command line: ``demo`` end to end, and ``--help``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from glompo_like import read_log
from glompo_like.cli import main


@pytest.mark.timeout(60)
def test_demo_runs_and_prints_the_result(tmp_path, capsys):
    code = main([
        "demo", "--evals", "2000", "--dim", "4", "--backend", "threads",
        "--working-dir", str(tmp_path),
    ])
    out = capsys.readouterr().out

    assert code == 0
    assert (tmp_path / "evaluations.sqlite").exists()
    evaluations = read_log(tmp_path)
    fx = np.asarray(evaluations["fx"], dtype=float)
    best = float(np.nanmin(fx))
    assert f"best value          {best:.10g}" in out
    assert "Optimizers (from the evaluation log)" in out
    assert str(tmp_path) in out


@pytest.mark.timeout(60)
def test_demo_reports_a_bad_option():
    with pytest.raises(SystemExit) as e:
        main(["demo", "--dim", "0"])
    assert e.value.code == 2


@pytest.mark.timeout(60)
def test_help_lists_the_commands():
    proc = subprocess.run(
        [sys.executable, "-m", "glompo_like", "--help"],
        capture_output=True, text=True, timeout=50, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout
    assert "usage: glompo-like" in proc.stdout
