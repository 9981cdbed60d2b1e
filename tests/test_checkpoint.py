"""Checkpoints: exact continuation, log consistency after SIGKILL, atomic writes, refusal
of bad files, overrides, rotation and triggers."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import _faulty
import numpy as np
import pytest

from glompo_like import CheckpointError, CheckpointingControl, ConfigError, GloMPOManager, read_log
from glompo_like.optimizers import (
    CMAOptimizer,
    DEOptimizer,
    NelderMeadOptimizer,
    PSOOptimizer,
    RandomOptimizer,
    ScipyOptimizer,
    SNESOptimizer,
    XNESOptimizer,
)
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.hunters import BestUnmoving, MinFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import rastrigin
from glompo_like.record.checkpoint import FORMAT_VERSION, read_checkpoint

pytestmark = pytest.mark.timeout(120)
HERE = Path(__file__).parent

GENERATIONAL = [
    (CMAOptimizer, {"popsize": 6}),
    (RandomOptimizer, {"popsize": 7}),
    (DEOptimizer, {"popsize": 8}),
    (PSOOptimizer, {}),
    (XNESOptimizer, {}),
    (SNESOptimizer, {}),
    (NelderMeadOptimizer, {}),
]


def _mk(entry, budget, wd, **kw):
    kw.setdefault("killing_conditions", MinFuncCalls(120) & BestUnmoving(60, 0.01))
    return GloMPOManager(task=rastrigin, bounds=[(-5.12, 5.12)] * 4, opt_selector=CycleSelector([entry]),
                         backend="threads", max_jobs=1, convergence_checker=MaxFuncCalls(budget),
                         working_dir=wd, seed=3, **kw)


def _fx(wd):
    return np.asarray(read_log(wd)["fx"], dtype=float)


@pytest.mark.parametrize("entry", GENERATIONAL, ids=[c.__name__ for c, _ in GENERATIONAL])
def test_exact_continuation(entry, tmp_path):
    straight = _mk(entry, 2400, tmp_path / "a").start_manager()
    first = _mk(entry, 900, tmp_path / "b", checkpoint_control=CheckpointingControl()).start_manager()
    assert 900 <= first.stats["f_evals"] < 900 + 20
    resumed = GloMPOManager.load_checkpoint(tmp_path / "b" / "checkpoints", convergence_checker=MaxFuncCalls(2400))
    result = resumed.start_manager()
    assert result.fx == straight.fx
    assert np.array_equal(result.x, straight.x)
    assert result.stats["f_evals"] == straight.stats["f_evals"]
    assert result.stats["opts_started"] == straight.stats["opts_started"]
    assert np.array_equal(_fx(tmp_path / "a"), _fx(tmp_path / "b"))  # bit for bit, same order
    assert result.stats["t_used"] > 0


def test_checkpoint_holds_an_explicit_versioned_record(tmp_path):
    m = _mk(GENERATIONAL[0], 300, tmp_path, checkpoint_control=CheckpointingControl())
    m.start_manager()
    data = read_checkpoint(m.checkpoints[-1])
    assert data["format"] == "glompo_like-checkpoint"
    assert set(data) >= {"settings", "manager", "optimizers", "task"}
    from glompo_like.settings import RESUME_OVERRIDES

    assert "max_jobs" in RESUME_OVERRIDES and "seed" not in RESUME_OVERRIDES  # (from the one table)
    assert "convergence_checker" in data["settings"] and "clock" not in data["settings"]
    (opt,) = data["optimizers"]
    assert opt["cls"] is CMAOptimizer and "es" in opt["state"]["own"]  # CMA-ES's own state
    assert data["manager"]["counters"].f_evals == 300
    assert data["settings"]["bounds"] == [(-5.12, 5.12)] * 4
    assert data["manager"]["plan"].level1 == m.plan.level1


def test_checkpoints_leave_the_points_to_the_log_and_resume_rebuilds_them(tmp_path):
    m = _mk(GENERATIONAL[0], 1200, tmp_path, checkpoint_control=CheckpointingControl(keep_last=None))
    m.start_manager()
    data = read_checkpoint(m.checkpoints[-1])
    assert all(r.xs is None for r in data["manager"]["records"].values())  # not pickled
    resumed = GloMPOManager.load_checkpoint(m.checkpoints[-1], convergence_checker=MaxFuncCalls(1500))
    log = read_log(tmp_path)
    upto = np.asarray(log["eval_id"]) <= resumed.ledger.counters.f_evals
    for k, r in resumed.ledger.records.items():
        assert len(r.xs) == len(r.fx)  # the points it keeps in memory: the last ones in the log
        mine = (np.asarray(log["opt_id"]) == k) & upto
        logged = np.column_stack([np.asarray(log[f"x_{i}"])[mine] for i in range(4)])
        np.testing.assert_array_equal(r.xs.view(), logged[len(logged) - len(r.xs):])
        assert r.dropped + len(r.fx) == len(logged)
    assert resumed.start_manager().stats["f_evals"] >= 1500


def test_resuming_elsewhere_keeps_histories_aligned(tmp_path, caplog):
    m = _mk(GENERATIONAL[0], 600, tmp_path / "a", checkpoint_control=CheckpointingControl())
    m.start_manager()
    with caplog.at_level("WARNING", logger="glompo_like"):
        resumed = GloMPOManager.load_checkpoint(m.checkpoints[-1], working_dir=tmp_path / "b",
                                                convergence_checker=MaxFuncCalls(900))
    assert "x_history" in caplog.text
    for r in resumed.ledger.records.values():
        assert len(r.xs) == len(r.fx) and np.isnan(r.xs.view()).all()
    assert resumed.start_manager().stats["f_evals"] >= 900


def _start_killable(tmp_path, every):
    pidfile = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_manager_script.py"), "processes", "serial", "fork", str(tmp_path / "run"),
         str(pidfile), str(every)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "READY", proc.stderr.read()
    return proc


def test_sigkill_then_resume_keeps_every_evaluation_exactly_once(tmp_path):
    proc = _start_killable(tmp_path, every=30)
    run = tmp_path / "run"
    deadline = time.monotonic() + 60
    while len(read_log(run)) <= read_checkpoint(run / "checkpoints")["manager"]["counters"].f_evals:
        assert time.monotonic() < deadline, "the run did not log past its newest checkpoint"
        time.sleep(0.01)  # until it has logged past its newest checkpoint (then rows roll back)
    proc.kill()
    proc.communicate(timeout=10)
    run = tmp_path / "run"
    logged_before = len(read_log(run))
    newest = read_checkpoint(run / "checkpoints")
    at_checkpoint = newest["manager"]["counters"].f_evals
    assert logged_before >= at_checkpoint
    m = GloMPOManager.load_checkpoint(run / "checkpoints", task=_faulty.slow,
                                      convergence_checker=MaxFuncCalls(at_checkpoint + 60))
    r = m.start_manager()
    log = read_log(run)
    ids = np.asarray(log["eval_id"])
    assert len(log) == r.stats["f_evals"]
    assert np.array_equal(ids, np.arange(1, len(log) + 1))  # no id twice, none missing
    assert r.stats["f_evals"] >= at_checkpoint + 60


def test_sigint_writes_a_checkpoint(tmp_path):
    proc = _start_killable(tmp_path, every=10_000)
    before = len(list((tmp_path / "run" / "checkpoints").glob("checkpoint_*.chk")))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    files = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint_*.chk"))
    assert len(files) == before + 1
    data = read_checkpoint(files[-1])
    assert data["manager"]["counters"].f_evals == len(read_log(tmp_path / "run"))


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    m = _mk(GENERATIONAL[0], 300, tmp_path, checkpoint_control=CheckpointingControl())
    m.start_manager()
    good = m.checkpoints[-1]

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        m.checkpoint()
    files = sorted((tmp_path / "checkpoints").iterdir())
    assert files == [good]  # no partial file left, the previous one untouched
    assert read_checkpoint(good)["manager"]["counters"].f_evals == 300


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b"not a checkpoint at all", "not a glompo_like checkpoint"),
        (lambda b: b[: len(b) // 2], "truncated or corrupted"),
        (lambda b: b[:-10] + bytes(10), "truncated or corrupted"),
        (lambda b: b[:8] + (FORMAT_VERSION + 1).to_bytes(2, "big") + b[10:], "upgrade glompo_like"),
        (lambda b: b[:42] + pickle.dumps({"hello": 1}), "truncated or corrupted"),
    ],
    ids=["garbage", "truncated", "corrupted", "newer-version", "foreign-payload"],
)
def test_bad_files_are_refused(damage, message, tmp_path):
    m = _mk(GENERATIONAL[0], 120, tmp_path / "run", checkpoint_control=CheckpointingControl())
    m.start_manager()
    bad = tmp_path / "bad.chk"
    bad.write_bytes(damage(m.checkpoints[-1].read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        GloMPOManager.load_checkpoint(bad)


def test_foreign_pickle_with_a_valid_header_is_refused(tmp_path):
    import hashlib

    payload = pickle.dumps({"format": "something else"})
    raw = b"GLOMPOCK" + FORMAT_VERSION.to_bytes(2, "big") + hashlib.sha256(payload).digest() + payload
    (tmp_path / "f.chk").write_bytes(raw)
    with pytest.raises(CheckpointError, match="does not hold a glompo_like run"):
        read_checkpoint(tmp_path / "f.chk")


def test_overrides_are_applied_and_unknown_ones_refused(tmp_path):
    m = _mk(GENERATIONAL[0], 300, tmp_path / "a", checkpoint_control=CheckpointingControl())
    m.start_manager()
    with pytest.raises(ConfigError, match="cannot override"):
        GloMPOManager.load_checkpoint(m.checkpoints[-1], bounds=[(0, 1)])
    r = GloMPOManager.load_checkpoint(
        m.checkpoints[-1], convergence_checker=MaxFuncCalls(700), max_jobs=2, killing_conditions=False,
        working_dir=tmp_path / "b",
    )
    assert r.settings.max_jobs == 2 and r.settings.killing_conditions is False
    result = r.start_manager()
    assert 700 <= result.stats["f_evals"] < 700 + 2 * 6
    assert len(read_log(tmp_path / "b")) == result.stats["f_evals"] - 300  # the new directory's share


def test_keep_last_rotation(tmp_path):
    m = _mk(GENERATIONAL[0], 600, tmp_path, checkpoint_control=CheckpointingControl(every_evaluations=60, keep_last=2))
    m.start_manager()
    files = sorted((tmp_path / "checkpoints").glob("checkpoint_*.chk"))
    assert len(files) == 2 and len(m.checkpoints) == 2
    assert [read_checkpoint(f)["manager"]["counters"].f_evals for f in files][-1] == 600


def test_unpicklable_task_must_be_given_again(tmp_path):
    lock = threading.Lock()

    def task(x):
        with lock:
            return rastrigin(x)

    m = GloMPOManager(task=task, bounds=[(-5, 5)] * 2, backend="threads", max_jobs=1, seed=1,
                      convergence_checker=MaxFuncCalls(100), working_dir=tmp_path,
                      checkpoint_control=CheckpointingControl())
    m.start_manager()
    with pytest.raises(CheckpointError, match="pass it again"):
        GloMPOManager.load_checkpoint(tmp_path / "checkpoints")
    r = GloMPOManager.load_checkpoint(tmp_path / "checkpoints", task=task,
                                      convergence_checker=MaxFuncCalls(200)).start_manager()
    assert r.stats["f_evals"] >= 200


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_chkpt_file_and_checkpoint_method_trigger_checkpoints(backend, tmp_path):
    # the run goes on until the test has seen both checkpoints, and then a STOP file ends it
    m = GloMPOManager(task=_faulty.slow, bounds=[(-1, 1)] * 3, backend=backend, max_jobs=2, seed=1,
                      convergence_checker=MaxFuncCalls(100_000), working_dir=tmp_path,
                      checkpoint_control=CheckpointingControl(at_end=False, keep_last=None))

    def poke():
        while m.ledger.counters.f_evals < 30:
            time.sleep(0.01)
        (tmp_path / "CHKPT").touch()
        while len(m.checkpoints) < 1:
            time.sleep(0.01)
        m.checkpoint()
        while len(m.checkpoints) < 2:
            time.sleep(0.01)
        (tmp_path / "STOP").touch()

    t = threading.Thread(target=poke)
    t.start()
    m.start_manager()
    t.join()
    assert len(m.checkpoints) == 2
    assert not (tmp_path / "CHKPT").exists()
    for path in m.checkpoints:
        data = read_checkpoint(path)
        assert len(data["optimizers"]) >= 1


def test_stop_files(tmp_path):
    # two CMA-ES optimizers at once (pinned: the pooled default with 2 slots runs one at a time,
    # starting with a quick local search that may end before its STOP file is seen)
    m = GloMPOManager(task=_faulty.slow, bounds=[(-1, 1)] * 3, backend="threads", max_jobs=2, seed=1,
                      opt_selector=CycleSelector([CMAOptimizer]),
                      convergence_checker=MaxFuncCalls(10_000), working_dir=tmp_path)

    def poke():
        while 1 not in m.ledger.records or m.ledger.counters.f_evals < 20:
            time.sleep(0.01)
        (tmp_path / "STOP_1").touch()
        while m.ledger.records[1].alive:
            time.sleep(0.01)
        (tmp_path / "STOP").touch()

    t = threading.Thread(target=poke)
    t.start()
    r = m.start_manager()
    t.join()
    assert m.ledger.records[1].end_kind == "stopped" and "STOP_1" in m.ledger.records[1].end_reason
    assert r.stats["end_cond"] == "STOP file in the working directory"
    assert r.stats["f_evals"] < 10_000
    assert (tmp_path / "summary.yml").exists()


def test_a_run_with_a_non_checkpointable_optimizer_resumes_with_others(tmp_path):
    sel = CycleSelector([(ScipyOptimizer, {"method": "Powell"})])
    m = GloMPOManager(task=rastrigin, bounds=[(-5.12, 5.12)] * 3, opt_selector=sel, backend="threads",
                      max_jobs=1, seed=2, convergence_checker=MaxFuncCalls(40), working_dir=tmp_path,
                      checkpoint_control=CheckpointingControl())
    m.start_manager()
    data = read_checkpoint(m.checkpoints[-1])
    assert data["optimizers"] == []  # its state cannot be captured: recorded as not resumable
    r = GloMPOManager.load_checkpoint(m.checkpoints[-1], convergence_checker=MaxFuncCalls(200))
    result = r.start_manager()
    first = r.view.optimizer(1)
    assert first.end_kind == "stopped" and "not checkpointable" in first.end_reason
    assert result.stats["opts_started"] >= 2 and result.stats["f_evals"] >= 200
    assert len(read_log(tmp_path)) == result.stats["f_evals"]
