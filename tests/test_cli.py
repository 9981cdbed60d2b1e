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
        "demo", "--budget", "2000", "--dim", "4", "--backend", "threads",
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


@pytest.mark.timeout(60)
def test_resume_command_continues_a_checkpointed_run(tmp_path, capsys):
    from glompo_like import CheckpointingControl, GloMPOManager, read_log
    from glompo_like.policies.checkers import MaxFuncCalls
    from glompo_like.problems.functions import sphere

    GloMPOManager(task=sphere, bounds=[(-5, 5)] * 3, backend="threads", max_jobs=1, seed=1,
                  convergence_checker=MaxFuncCalls(200), working_dir=tmp_path,
                  checkpoint_control=CheckpointingControl()).start_manager()
    code = main(["resume", str(tmp_path / "checkpoints"), "--budget", "500"])
    assert code == 0
    out = capsys.readouterr().out
    assert "continuing from 203 evaluations" in out  # 29 generations of 7 (CMA-ES in 3-D)
    assert 500 <= len(read_log(tmp_path)) < 520


@pytest.mark.timeout(60)
def test_resume_command_rejects_a_bad_task_spec(tmp_path, capsys):
    from glompo_like import CheckpointingControl, GloMPOManager
    from glompo_like.policies.checkers import MaxFuncCalls
    from glompo_like.problems.functions import sphere

    GloMPOManager(task=sphere, bounds=[(-5, 5)] * 2, backend="threads", max_jobs=1, seed=1,
                  convergence_checker=MaxFuncCalls(50), working_dir=tmp_path,
                  checkpoint_control=CheckpointingControl()).start_manager()
    assert main(["resume", str(tmp_path / "checkpoints"), "--task", "no_colon"]) == 1
    assert "MODULE:FUNCTION" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "nowhere")]) == 1


@pytest.mark.timeout(60)
def test_demo_handles_dimension_dependent_functions(tmp_path, capsys):
    # Lennard-Jones minima are known for 2 to 20 atoms: with 25 the budget alone ends the run
    assert main(["demo", "--function", "lennard_jones", "--dim", "75", "--budget", "300", "--backend", "threads",
                 "--working-dir", str(tmp_path / "m")]) == 0
    assert "known minimum unknown" in capsys.readouterr().out
    # Lennard-Jones needs 3 coordinates per atom: a clear error, nothing run
    assert main(["demo", "--function", "lennard_jones", "--dim", "4", "--working-dir", str(tmp_path / "lj")]) == 1
    assert "cannot be evaluated in 4 dimensions" in capsys.readouterr().err


def test_demo_option_help_and_banner_say_budget(capsys):
    from glompo_like.cli import build_parser

    demo = build_parser()._subparsers._group_actions[0].choices["demo"]
    help_text = demo.format_help()
    assert "--budget N" in help_text and "--evals" not in help_text
    assert main(["demo", "--budget", "300", "--dim", "2", "--backend", "threads", "--function", "sphere"]) == 0
    banner = capsys.readouterr().out.splitlines()[0]
    assert "budget 300 evaluations" in banner
    args = build_parser().parse_args(["demo", "--evals", "123"])  # the old spelling still works
    assert args.budget == 123


@pytest.mark.timeout(120)
def test_demo_backend_auto_works_and_says_what_it_chose(tmp_path, capsys):
    assert main(["demo", "--backend", "auto", "--budget", "1500", "--dim", "3", "--function", "sphere",
                 "--working-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "best value" in out
    assert "chosen by backend='auto'" in out


def test_docs_list_every_test_function_the_demo_offers():
    from pathlib import Path

    from glompo_like.problems.functions import FUNCTIONS

    docs = (Path(__file__).resolve().parents[1] / "docs" / "quickstart.rst").read_text()
    missing = [name for name in FUNCTIONS if f"``{name}``" not in docs]
    assert not missing, f"docs/quickstart.rst does not list {missing}"
