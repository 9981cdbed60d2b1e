"""Any legal path works as a ``working_dir``: a whole run, ``read_log``, export (CSV, HDF5),
the report and ``glompo-like resume`` from a checkpoint, with directory names that hold URI
syntax (``#``, ``?``, ``%``, ``%41``), glob syntax (``[``, ``]``, ``*``), spaces, unicode, a
leading ``-`` (taken for an option by a command line) and bytes that are not UTF-8.

Every name is used *relative* to the current directory, as a user types it."""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
import subprocess
import sys

import pytest

from glompo_like import CheckpointingControl, GloMPOManager, read_log
from glompo_like.cli import main
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.problems.functions import sphere

NAMES = {
    "hash": "run#1",
    "query": "run?mode=rw",
    "percent": "100%",
    "percent-hex": "r%41",             # %41 is 'A' in a URI: must not read the run in 'rA'
    "uri-lookalike": "file:x%41?mode=ro#frag",
    "spaces": "my run 1",
    "brackets": "run[1]",
    "brackets-reversed": "]run[",
    "star": "run*",
    "unicode": "Läufe ☃ 実行",
    "leading-dash": "-run1",
    "quotes-backslash": "it's \"quoted\" \\ here",
    "newline": "two\nlines",
    "not-utf8": os.fsdecode(b"bytes\xff\xfe"),
}
HAVE_H5PY = importlib.util.find_spec("h5py") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _run(working_dir: str, evals: int, checkpoint: bool = False, backend: str = "threads") -> None:
    manager = GloMPOManager(
        task=sphere, bounds=[(-2, 2)] * 2, backend=backend, max_jobs=1, seed=3, status=None,
        convergence_checker=MaxFuncCalls(evals), working_dir=working_dir,
        checkpoint_control=CheckpointingControl() if checkpoint else None,
    )
    with manager:
        manager.start_manager()


def _csv_rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
def test_a_run_and_everything_after_it_work_in_any_directory(name, tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.chdir(tmp_path)
    decoy = None
    if "%41" in name:  # a run where the URI-decoded name points: it must never be read instead
        decoy = name.replace("%41", "A")
        _run(decoy, 150)

    _run(name, 60, checkpoint=True)

    # nothing beside the directory (an unquoted URI cut at '#' or '?' created files there)
    assert sorted(os.listdir(tmp_path)) == sorted(n for n in (name, decoy) if n)
    evals = read_log(name)
    assert len(evals) == 60
    assert list(read_log(name, optimizers=True)["opt_id"]) == [1]

    formats = ["--csv"] + (["--hdf5"] if HAVE_H5PY else [])
    assert main(["export", *formats, "--", name]) == 0
    assert len(_csv_rows(os.path.join(name, "evaluations.csv"))) == 60
    if HAVE_H5PY:
        import h5py

        with h5py.File(os.path.join(name, "evaluations.h5"), "r") as f:
            assert len(f["evaluations"]["eval_id"]) == 60
    if HAVE_MPL:
        assert main(["report", "--", name]) == 0
        assert os.path.exists(os.path.join(name, "best_overall.png"))

    with caplog.at_level(logging.WARNING, logger="glompo_like"):
        assert main(["resume", "--evals", "120", "--", os.path.join(name, "checkpoints")]) == 0
    # the resumed run read its points back from this log, and continued this log
    assert not [r for r in caplog.records if "resuming" in r.getMessage()], caplog.text
    evals = read_log(name)
    assert list(evals["eval_id"]) == list(range(1, 121))
    if decoy:
        assert len(read_log(decoy)) == 150
    assert sorted(os.listdir(tmp_path)) == sorted(n for n in (name, decoy) if n)
    capsys.readouterr()


@pytest.mark.timeout(90)
def test_optimizer_processes_write_their_prints_into_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "-p#1?%41 [*] ☃"
    _run(name, 40, backend="processes")
    assert sorted(os.listdir(tmp_path)) == [name]
    assert len(read_log(name)) >= 40  # whole generations
    assert sorted(os.listdir(os.path.join(name, "prints"))) == ["opt_1.err", "opt_1.out"]


@pytest.mark.timeout(90)
def test_the_command_line_takes_a_directory_that_starts_with_a_dash(tmp_path):
    """Through the installed entry point, as a user types it: ``--opt=-dir`` and ``-- -dir``;
    the bare form is refused by argparse, with a hint how to write it."""
    cmd = [sys.executable, "-m", "glompo_like"]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # a strict terminal: no crash on odd bytes

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cmd, *args], cwd=tmp_path, capture_output=True, text=True,
                              errors="replace", timeout=80, env=env, check=False)

    demo = run("demo", "--evals", "100", "--dim", "2", "--backend", "threads", "--working-dir=-run")
    assert demo.returncode == 0, demo.stderr
    assert len(read_log(tmp_path / "-run")) >= 100

    bare = run("export", "-run")
    assert bare.returncode == 2
    assert "hint: A path that starts with '-' goes after '--'" in bare.stderr

    done = run("export", "--", "-run")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "-run" / "evaluations.csv").exists()

    odd = os.fsdecode(b"odd\xff")
    (tmp_path / odd).mkdir()
    for f in (tmp_path / "-run").iterdir():
        if f.name.startswith("evaluations.sqlite"):
            (tmp_path / odd / f.name).write_bytes(f.read_bytes())
    shown = subprocess.run([*cmd, "export", odd], cwd=tmp_path, capture_output=True, timeout=80,
                           env=env, check=False)
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / odd / "evaluations.csv").exists()


@pytest.mark.timeout(90)
def test_a_run_with_a_relative_working_dir_resumes_from_another_directory(tmp_path, monkeypatch):
    """The checkpoint remembers where the run's files are, not how the path was typed: resumed
    from another current directory, the run continues its own log and creates nothing there."""
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(first)
    _run("run", 60, checkpoint=True)
    monkeypatch.chdir(elsewhere)
    resumed = GloMPOManager.load_checkpoint(first / "run" / "checkpoints",
                                            convergence_checker=MaxFuncCalls(120))
    assert resumed.settings.working_dir == first / "run"
    with resumed:
        resumed.start_manager()
    assert list(read_log(first / "run")["eval_id"]) == list(range(1, 121))
    assert os.listdir(elsewhere) == []
