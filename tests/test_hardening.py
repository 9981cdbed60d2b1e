"""Hardening (issue 21): a real run is never lost, wasted, mixed up or mislabelled.

Each test names the behaviour users rely on and fails without the fix that gives it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import _faulty
import numpy as np
import pytest
import yaml

from glompo_like import (
    BrokenTaskError,
    CheckpointingControl,
    ConfigError,
    ConfigTypeError,
    EvaluationError,
    GloMPOManager,
    read_log,
)
from glompo_like.control.signals import SignalWatch, Terminated
from glompo_like.errors import CheckpointError
from glompo_like.evaluation.core import check_value
from glompo_like.evaluation.dask_cluster import distributed_available, start_local_cluster
from glompo_like.evaluation.dask_pool import DaskUnavailable
from glompo_like.optimizers import RandomOptimizer
from glompo_like.policies import CycleSelector, MaxFuncCalls, MaxSeconds, TargetCost
from glompo_like.record.checkpoint import read_checkpoint, run_checkpoints
from glompo_like.record.status import LogStatus
from glompo_like.record.workspace import WorkspaceBusy

pytestmark = pytest.mark.timeout(120)

BOUNDS = [(-1.0, 1.0)] * 3


def _runner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("glompo")]


# ----------------------------------------------------------------------------- 1. the end
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_a_normal_end_mid_evaluation_is_stopped_not_crashed(backend, tmp_path):
    """MaxSeconds ends the run while five optimizers are in the middle of a 3-second
    evaluation, longer than shutdown_grace: they are 'stopped' (with the reason), the
    crash limit is not hit, and the result is returned."""
    sel = CycleSelector([(RandomOptimizer, {"popsize": 1})])
    m = GloMPOManager(_faulty.sleeps_3s, BOUNDS, opt_selector=sel, backend=backend, max_jobs=5,
                      convergence_checker=MaxSeconds(0.5), shutdown_grace=0.3, working_dir=tmp_path,
                      status=None, thread_slice=None)
    result = m.start_manager()
    assert result is not None and "MaxSeconds" in result.stats["end_cond"]
    assert result.stats["opts_crashed"] == 0 and not m.crashes
    opts = [m.view.optimizer(i) for i in m.view.optimizers if i]
    assert len(opts) == 5
    assert all(o.end_kind == "stopped" and "the run ended" in o.end_reason for o in opts)
    ends = read_log(tmp_path, optimizers=True)
    assert set(np.asarray(ends["end_kind"]).tolist()) == {"stopped"}
    s = result.stats
    assert s["opts_started"] == s["opts_killed"] + s["opts_converged"] + s["opts_crashed"] \
        + s["opts_stopped"] + s["opts_failed"]


# ----------------------------------------------------------------------------- 2. broken tasks
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_a_broken_task_stops_the_run_early_with_the_first_traceback(backend, tmp_path):
    """A NameError on every call: the run stops after fail_fast evaluations, not after the
    whole budget, with a typed error carrying the first failure's traceback; what was
    evaluated is logged and the summary is written."""
    m = GloMPOManager(_faulty.name_error, BOUNDS, backend=backend, max_jobs=2, fail_fast=30,
                      convergence_checker=MaxFuncCalls(5000), working_dir=tmp_path, status=None)
    with pytest.raises(BrokenTaskError) as info:
        m.start_manager()
    err = info.value
    assert isinstance(err, EvaluationError)  # (the family of on_error="raise")
    assert "NameError" in err.first_error and "undefined_name" in err.first_error
    assert "Traceback" in err.first_error and "NameError" in str(err)
    assert 30 <= err.n_failed < 200  # stopped early: far from the 5000 of the budget
    assert m.result is not None and m.result.stats["f_evals"] == len(read_log(tmp_path))
    assert (tmp_path / "summary.yml").exists()


def test_fail_fast_is_configurable_and_can_be_turned_off(tmp_path):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 4})])
    m = GloMPOManager(_faulty.always_raises, BOUNDS, opt_selector=sel, backend="threads", max_jobs=1,
                      fail_fast=None, convergence_checker=MaxFuncCalls(300), status=None)
    r = m.start_manager()  # never stops for failures: the budget ends it
    assert r.stats["f_evals"] >= 300 and r.stats["evals_failed"] == r.stats["f_evals"]
    with pytest.raises(ConfigError, match="fail_fast"):
        GloMPOManager(_faulty.sphere, BOUNDS, fail_fast=0)
    with pytest.raises(ConfigTypeError, match="fail_fast"):
        GloMPOManager(_faulty.sphere, BOUNDS, fail_fast=2.5)


def test_a_task_that_works_after_some_failures_is_not_stopped(tmp_path):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 5})])
    m = GloMPOManager(_faulty.fails_first_then_works, BOUNDS, opt_selector=sel, backend="processes",
                      max_jobs=1, fail_fast=30, convergence_checker=MaxFuncCalls(200), status=None,
                      reuse_processes=True)
    r = m.start_manager()
    assert r.stats["evals_failed"] == 20 and r.stats["f_evals"] >= 200 and np.isfinite(r.fx)


def test_a_high_failure_rate_is_reported_while_the_run_goes(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="glompo_like.manager")
    sel = CycleSelector([(RandomOptimizer, {"popsize": 10})])
    m = GloMPOManager(_faulty.fails_60_percent, BOUNDS, opt_selector=sel, backend="threads", max_jobs=1,
                      convergence_checker=MaxFuncCalls(400), status=None, seed=3)
    m.start_manager()
    warnings = [r.getMessage() for r in caplog.records if "of the last" in r.getMessage()]
    assert warnings and "evaluations failed" in warnings[0] and "diverged" in warnings[0]
    assert len(warnings) <= 3  # windows of 100, 200, ...: no flood


# ----------------------------------------------------------------------------- 3. one run, one directory
def _slow_run(tmp_path, budget=400, **kw):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 2})])
    return GloMPOManager(_faulty.slow, BOUNDS, opt_selector=sel, backend="threads", max_jobs=2,
                         convergence_checker=MaxFuncCalls(budget), working_dir=tmp_path, status=None,
                         thread_slice=None, **kw)


def test_a_live_runs_directory_is_refused_even_with_overwrite(tmp_path):
    first = _slow_run(tmp_path, budget=300)
    done = threading.Event()
    runner = threading.Thread(target=lambda: (first.start_manager(), done.set()))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "evaluations.sqlite").exists() or first.view.f_evals < 20:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for overwrite in (False, True):
            with pytest.raises(WorkspaceBusy, match=rf"in use by a run that is still going \(process {os.getpid()}"):
                _slow_run(tmp_path, overwrite=overwrite)
    finally:
        runner.join(60)
    assert done.is_set()
    assert len(read_log(tmp_path)) == first.result.stats["f_evals"]  # the live run's log intact
    second = _slow_run(tmp_path, budget=50, overwrite=True)  # finished: it may be replaced now
    assert second.start_manager().stats["f_evals"] == len(read_log(tmp_path))


def test_two_runs_started_together_one_is_refused(tmp_path):
    a, b = _slow_run(tmp_path, budget=100), _slow_run(tmp_path, budget=100)
    results, errors = [], []

    def go(m):
        try:
            results.append(m.start_manager())
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=go, args=(m,)) for m in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 1 and len(errors) == 1, (results, errors)
    assert isinstance(errors[0], WorkspaceBusy)  # not a raw sqlite3.IntegrityError
    assert len(read_log(tmp_path)) == results[0].stats["f_evals"]


def test_overwrite_replaces_every_file_of_a_finished_run(tmp_path):
    ctl = CheckpointingControl(every_evaluations=100)
    _slow_run(tmp_path, budget=200, checkpoint_control=ctl).start_manager()
    (tmp_path / "prints").mkdir(exist_ok=True)
    (tmp_path / "prints" / "opt_99.out").write_text("old")
    old_checkpoints = set((tmp_path / "checkpoints").iterdir())
    assert old_checkpoints
    (tmp_path / "STOP").write_text("")  # a stale steering file must not stop the new run
    r = _slow_run(tmp_path, budget=60, overwrite=True).start_manager()
    assert "MaxFuncCalls" in r.stats["end_cond"]
    assert len(read_log(tmp_path)) == r.stats["f_evals"]
    assert not (tmp_path / "prints" / "opt_99.out").exists()
    assert not (tmp_path / "checkpoints").exists() or not (set((tmp_path / "checkpoints").iterdir()) & old_checkpoints)
    assert not (tmp_path / "STOP").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".replaced")]


@pytest.mark.skipif(not distributed_available(), reason="needs the dask extra")
@pytest.mark.parametrize("existing", [False, True], ids=["new dir", "finished run, overwrite"])
def test_a_failed_start_leaves_the_directory_as_it_found_it(tmp_path, existing):
    wd = tmp_path / "run"
    if existing:
        _slow_run(wd, budget=40).start_manager()
    rows = len(read_log(wd)) if existing else 0
    before = sorted(p.name for p in wd.iterdir()) if existing else None
    sel = CycleSelector([(RandomOptimizer, {"popsize": 2, "workers": 1, "backend": "dask"})])
    m = GloMPOManager(_faulty.sphere, BOUNDS, opt_selector=sel, backend="threads", max_jobs=1, working_dir=wd,
                      overwrite=True, dask_address="tcp://127.0.0.1:9", convergence_checker=MaxFuncCalls(10),
                      status=None)
    with pytest.raises(DaskUnavailable):
        m.start_manager()
    if existing:
        assert sorted(p.name for p in wd.iterdir()) == before and len(read_log(wd)) == rows
    else:
        assert not wd.exists()
    _slow_run(wd, budget=20, overwrite=existing).start_manager()  # and the re-run is not blocked


def _below_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a_file").write_text("")
    return tmp_path / "a_file" / "run"


def _read_only_dir(tmp_path: Path) -> Path:
    (tmp_path / "ro").mkdir(mode=0o555)
    return tmp_path / "ro" / "run"


# (permission bits do not stop root, so that case runs only for other users)
UNWRITABLE = [_below_a_file] + ([_read_only_dir] if os.geteuid() != 0 else [])


@pytest.mark.parametrize("where", UNWRITABLE)
def test_an_unwritable_working_dir_is_refused_at_construction(tmp_path, where):
    """Refused when the manager is built, naming the directory, not with a raw
    PermissionError or NotADirectoryError when the run starts."""
    wd = where(tmp_path)
    with pytest.raises(ConfigError, match="cannot be written") as info:
        _slow_run(wd)
    assert str(wd) in str(info.value)


# ----------------------------------------------------------------------------- 4. checkpoints of this run
def _ids_consecutive(wd) -> bool:
    ids = np.sort(np.asarray(read_log(wd)["eval_id"]))
    return bool(len(ids)) and ids[0] == 1 and np.all(np.diff(ids) == 1)


def _chk_run(wd, budget, **kw):
    ctl = kw.pop("checkpoint_control", CheckpointingControl(every_evaluations=50, keep_last=2))
    sel = CycleSelector([(RandomOptimizer, {"popsize": 5})])
    return GloMPOManager(_faulty.sphere, BOUNDS, opt_selector=sel, backend="threads", max_jobs=1, seed=2,
                         convergence_checker=MaxFuncCalls(budget), working_dir=wd, status=None,
                         checkpoint_control=ctl, **kw)


def test_after_overwrite_the_new_runs_checkpoints_are_kept_and_resumed(tmp_path):
    _chk_run(tmp_path, 600).start_manager()  # an earlier run: checkpoints at 600 evaluations
    new = _chk_run(tmp_path, 120, overwrite=True)
    new.start_manager()
    assert new.checkpoints and all(p.exists() for p in new.checkpoints[-2:])
    resumed = GloMPOManager.load_checkpoint(tmp_path / "checkpoints", convergence_checker=MaxFuncCalls(300))
    assert resumed.run_id == new.run_id
    r = resumed.start_manager()
    assert r.stats["f_evals"] == len(read_log(tmp_path)) and _ids_consecutive(tmp_path)


def test_resuming_from_an_older_checkpoint_drops_the_later_ones(tmp_path):
    m = _chk_run(tmp_path, 300, checkpoint_control=CheckpointingControl(every_evaluations=50, keep_last=None))
    m.start_manager()
    files = sorted(m.checkpoints)
    older = files[1]
    resumed = GloMPOManager.load_checkpoint(older, convergence_checker=MaxFuncCalls(200))
    r = resumed.start_manager()
    # the checkpoints after the one resumed from were rolled back past and are gone: every
    # checkpoint left is one of the resumed run (none beyond its end at ~200 evaluations)
    left = [read_checkpoint(p)["manager"]["counters"].f_evals for p in (tmp_path / "checkpoints").iterdir()]
    assert max(left) <= r.stats["f_evals"] < 300 and resumed.checkpoints[-1].exists()
    assert _ids_consecutive(tmp_path)
    again = GloMPOManager.load_checkpoint(tmp_path / "checkpoints", convergence_checker=MaxFuncCalls(250))
    assert again.view.f_evals == resumed.view.f_evals  # the newest is the resumed run's last
    again.start_manager()
    assert _ids_consecutive(tmp_path)


def test_a_torn_newest_checkpoint_falls_back_to_the_one_before(tmp_path, caplog):
    m = _chk_run(tmp_path, 200, checkpoint_control=CheckpointingControl(every_evaluations=50, keep_last=None))
    m.start_manager()
    newest, before = sorted(m.checkpoints)[-1], sorted(m.checkpoints)[-2]
    newest.write_bytes(newest.read_bytes()[: len(newest.read_bytes()) // 2])  # cut short
    (tmp_path / "checkpoints" / ".incomplete-999999999-abc.chk").write_bytes(b"partial")
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        GloMPOManager.load_checkpoint(newest)  # a file named explicitly is not replaced
    caplog.set_level(logging.WARNING, logger="glompo_like.manager")
    resumed = GloMPOManager.load_checkpoint(tmp_path / "checkpoints", convergence_checker=MaxFuncCalls(400))
    assert any("cannot be used" in r.getMessage() and newest.name in r.getMessage() for r in caplog.records)
    data = read_checkpoint(before)
    assert resumed.view.f_evals == data["manager"]["counters"].f_evals
    resumed.start_manager()
    assert not (tmp_path / "checkpoints" / ".incomplete-999999999-abc.chk").exists()
    assert _ids_consecutive(tmp_path)


def test_runs_sharing_a_checkpoint_directory_keep_to_their_own(tmp_path):
    shared = tmp_path / "chk"
    ctl = CheckpointingControl(every_evaluations=50, keep_last=2, directory=shared)
    a = _chk_run(tmp_path / "a", 300, checkpoint_control=ctl)
    a.start_manager()
    b = _chk_run(tmp_path / "b", 300, checkpoint_control=ctl)
    b.start_manager()
    runs = run_checkpoints(shared)
    assert set(runs) == {a.run_id, b.run_id} and all(len(f) == 2 for f in runs.values())
    latest = GloMPOManager.load_checkpoint(shared, convergence_checker=MaxFuncCalls(350))
    assert latest.run_id == b.run_id  # the run that checkpointed last


# ----------------------------------------------------------------------------- 5. checkpoints never end a run
@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_an_unpicklable_optimizer_state_is_a_warning_not_a_dead_run(backend, tmp_path):
    sel = CycleSelector([(_faulty.LockedStateOptimizer, {"popsize": 4}), (RandomOptimizer, {"popsize": 4})])
    m = GloMPOManager(_faulty.sphere, BOUNDS, opt_selector=sel, backend=backend, max_jobs=2,
                      convergence_checker=MaxFuncCalls(400), working_dir=tmp_path, status=None,
                      report_interval=0, checkpoint_control=CheckpointingControl(every_evaluations=100))
    r = m.start_manager()
    assert "MaxFuncCalls" in r.stats["end_cond"] and r.stats["opts_crashed"] == 0
    assert len(m.checkpoints) >= 3 and all(p.exists() for p in m.checkpoints)
    warnings = yaml.safe_load((tmp_path / "summary.yml").read_text())["warnings"]["checkpoints"]
    assert warnings and all("could not be saved" in w and "TypeError" in w for w in warnings)
    data = read_checkpoint(m.checkpoints[-1])  # the other optimizer is in it
    assert data["optimizers"] and all(o["cls"] is RandomOptimizer for o in data["optimizers"])
    resumed = GloMPOManager.load_checkpoint(m.checkpoints[-1], convergence_checker=MaxFuncCalls(600))
    assert resumed.start_manager().stats["f_evals"] >= 600


def test_an_optimizer_busy_past_the_checkpoint_timeout_is_left_out_not_waited_for(tmp_path):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 2})])
    ctl = CheckpointingControl(every_evaluations=30, timeout=0.2)
    m = GloMPOManager(_faulty.slow_now_and_then, BOUNDS, opt_selector=sel, backend="threads", max_jobs=2,
                      convergence_checker=MaxFuncCalls(120), working_dir=tmp_path, status=None,
                      checkpoint_control=ctl, thread_slice=None)
    r = m.start_manager()
    assert "MaxFuncCalls" in r.stats["end_cond"] and len(read_log(tmp_path)) == r.stats["f_evals"]
    warnings = yaml.safe_load((tmp_path / "summary.yml").read_text())["warnings"]["checkpoints"]
    assert any("did not reach a clean point within 0.2 s" in w for w in warnings)
    assert m.checkpoints and all(p.exists() for p in m.checkpoints)


def test_a_checkpoint_that_cannot_be_written_is_a_warning(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")  # the checkpoint directory cannot be created below a file
    sel = CycleSelector([(RandomOptimizer, {"popsize": 4})])
    m = GloMPOManager(_faulty.sphere, BOUNDS, opt_selector=sel, backend="threads", max_jobs=1,
                      convergence_checker=MaxFuncCalls(200), working_dir=tmp_path / "run", status=None,
                      checkpoint_control=CheckpointingControl(every_evaluations=50, directory=blocker / "chk"))
    r = m.start_manager()
    assert r.stats["f_evals"] >= 200 and not m.checkpoints
    warnings = yaml.safe_load((tmp_path / "run" / "summary.yml").read_text())["warnings"]["checkpoints"]
    assert len(warnings) >= 2 and all("could not be written" in w for w in warnings)  # (during, at the end)


# ----------------------------------------------------------------------------- 6. optimizer contract
CONTRACT = [
    (_faulty.WrongColumns, "must return an (n, 3) array", {}),
    (_faulty.AsksNothing, "with n >= 1, got shape (0, 3)", {}),
    (_faulty.AsksNaN, "NaN or infinite values (candidate(s) [1])", {}),
    (_faulty.AsksOutside, "outside the bounds (candidate 2, parameter 1", {}),
    (_faulty.OverriddenAskOutside, "outside the bounds", {}),
    (_faulty.TellRaises, "tell() raised RuntimeError: bookkeeping bug", {}),
    (_faulty.AsyncAsksOutside, "outside the bounds", {"async_eval": True}),
]


@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("cls, rule, kw", CONTRACT, ids=[c[0].__name__ for c in CONTRACT])
def test_an_optimizer_that_breaks_the_contract_fails_alone(backend, cls, rule, kw, tmp_path):
    """It ends as 'failed' naming the rule it broke; the run goes on with the next
    optimizer to the end of the budget; everything evaluated is in the log.  (One job at a
    time, so the budget cannot run out before the faulty optimizer has had its turn.)"""
    sel = CycleSelector([(cls, {"popsize": 4, **kw}), (RandomOptimizer, {"popsize": 4})], max_spawns=2)
    m = GloMPOManager(_faulty.sphere, BOUNDS, opt_selector=sel, backend=backend, max_jobs=1,
                      convergence_checker=MaxFuncCalls(300), working_dir=tmp_path, status=None, seed=1)
    r = m.start_manager()
    bad, good = m.view.optimizer(1), m.view.optimizer(2)
    assert bad.end_kind == "failed" and "broke the optimizer contract" in bad.end_reason, bad.end_reason
    assert rule in bad.end_reason
    assert good.n_evals > 150 and r.stats["opts_crashed"] == 0
    log = read_log(tmp_path)
    assert len(log) == r.stats["f_evals"]
    assert (np.asarray(log["opt_id"]) == 1).sum() == bad.n_evals
    if cls is _faulty.TellRaises:  # the generation it was told when tell raised is logged
        assert bad.n_evals == 12


# ----------------------------------------------------------------------------- 7. task failures
ODD_FAILURES = [
    (_faulty.system_exit_in_region, "SystemExit: 3"),
    (_faulty.keyboard_interrupt_in_region, "KeyboardInterrupt: the task's own"),
    (_faulty.overflow_in_region, "too large for a float"),
    (_faulty.string_in_region, "non-numeric str ('1.5')"),
    (_faulty.complex_in_region, "complex number"),
    (_faulty.bool_in_region, "returned a bool"),
]
LEVELS = [("threads", "serial"), ("threads", "threads"), ("processes", "serial"), ("threads", "processes")]


@pytest.mark.parametrize("l1, l2", LEVELS, ids=[f"{a}-{b}" for a, b in LEVELS])
@pytest.mark.parametrize("task, text", ODD_FAILURES, ids=[t.__name__ for t, _ in ODD_FAILURES])
def test_every_task_failure_is_a_failed_evaluation_with_its_real_cause(l1, l2, task, text, tmp_path):
    workers = 1 if l2 == "serial" else 2
    sel = CycleSelector([(RandomOptimizer, {"popsize": 4, "workers": workers, "backend": l2})])
    m = GloMPOManager(task, BOUNDS, opt_selector=sel, backend=l1, max_jobs=2 * workers, seed=5,
                      convergence_checker=MaxFuncCalls(80), working_dir=tmp_path, status=None)
    r = m.start_manager()
    assert "MaxFuncCalls" in r.stats["end_cond"] and r.stats["opts_crashed"] == 0
    log = read_log(tmp_path)
    status, error = np.asarray(log["status"]), np.asarray(log["error"])
    failed = status == "failed"
    assert failed.any() and (status != "crashed").all()
    assert all(text in e for e in error[failed]), set(error[failed])
    assert r.stats["evals_failed"] == int(failed.sum()) and np.isfinite(r.fx)


@pytest.mark.parametrize("value, ok", [(1.5, True), (np.float32(2.0), True), (np.int64(3), True), (7, True),
                                       (np.array([4.0]), True), (np.array(5.0), True), (10**400, False),
                                       ("1.5", False), (b"1", False), (1 + 2j, False), (np.complex64(1), False),
                                       (True, False), (np.bool_(False), False), (None, False),
                                       (np.array([1.0, 2.0]), False), (np.array(["a"]), False),
                                       (float("nan"), False), (-float("inf"), False), ([1.0], False)])
def test_only_real_finite_numbers_are_values(value, ok):
    fx, problem = check_value(value)
    assert (problem is None) == ok, (value, problem)
    if ok:
        assert type(fx) is float


# ----------------------------------------------------------------------------- 8. nothing outlives the run
KILLABLE = [("threads", "processes"), ("processes_forced", "processes"), ("processes", "serial"),
            ("processes_forced", "serial")]


@pytest.mark.parametrize("l1, l2", KILLABLE, ids=[f"{a}-{b}" for a, b in KILLABLE])
def test_nothing_the_run_started_outlives_start_manager(l1, l2, tmp_path):
    """A 30-second evaluation in flight when MaxSeconds ends the run: start_manager returns
    within the grace periods, and no runner thread or process of the run is left (the
    autouse fixture checks processes, this test the threads)."""
    workers = 1 if l2 == "serial" else 2
    sel = CycleSelector([(RandomOptimizer, {"popsize": 2, "workers": workers, "backend": l2})])
    m = GloMPOManager(_faulty.sleeps_30s, BOUNDS, opt_selector=sel, backend=l1, max_jobs=2 * workers,
                      convergence_checker=MaxSeconds(0.5), shutdown_grace=0.5, status=None, thread_slice=None,
                      working_dir=tmp_path)
    r = m.start_manager()
    durations = np.asarray(read_log(tmp_path)["duration"], dtype=float)
    assert not (durations >= 29).any()  # no 30-second evaluation was waited for
    assert "MaxSeconds" in r.stats["end_cond"] and r.stats["opts_crashed"] == 0
    assert not _runner_threads(), _runner_threads()
    assert set(np.asarray(read_log(tmp_path, optimizers=True)["end_kind"]).tolist()) == {"stopped"}


def test_a_thread_stuck_in_the_task_is_named_in_the_log(tmp_path, caplog):
    """A thread cannot be killed: with threads × serial an evaluation still running when
    the run ends finishes in the background, and the log says which optimizers."""
    caplog.set_level(logging.WARNING, logger="glompo_like.manager")
    sel = CycleSelector([(RandomOptimizer, {"popsize": 2})])
    m = GloMPOManager(_faulty.sleeps_3s, BOUNDS, opt_selector=sel, backend="threads", max_jobs=1,
                      convergence_checker=MaxSeconds(0.3), shutdown_grace=0.3, status=None, thread_slice=None)
    m.start_manager()
    assert any("still inside the task" in r.getMessage() and "[1]" in r.getMessage() for r in caplog.records)
    for t in _runner_threads():  # (it ends when its 3-second evaluation does)
        t.join(10)
    assert not _runner_threads()


# ----------------------------------------------------------------------------- 13. the numbers agree
def _end_numbers(text: str) -> dict[str, float]:
    import re

    out = {}
    if m := re.search(r"(\d+) evaluations \(>=", text):
        out["f_evals"] = int(m.group(1))
    if m := re.search(r"best ([-+0-9.e]+)", text):
        out["best"] = float(m.group(1))
    return out


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_the_end_reason_agrees_with_the_result(backend, tmp_path):
    """The evaluations and best value in the end reason are the run's final ones (the
    optimizers' last reports arrive after the checker fired); every optimizer is counted
    under exactly one way of ending."""
    sel = CycleSelector([(RandomOptimizer, {"popsize": 7})])
    for checker in (MaxFuncCalls(400), TargetCost(0.5) | MaxFuncCalls(5000)):
        m = GloMPOManager(_faulty.sphere, BOUNDS, opt_selector=sel, backend=backend, max_jobs=2, seed=11,
                          convergence_checker=checker, working_dir=tmp_path, overwrite=True, status=None)
        r = m.start_manager()
        numbers = _end_numbers(r.stats["end_cond"])
        assert numbers, r.stats["end_cond"]
        if "f_evals" in numbers:
            assert numbers["f_evals"] == r.stats["f_evals"] == len(read_log(tmp_path))
        if "best" in numbers:
            assert numbers["best"] == pytest.approx(r.fx, rel=1e-5)
        s = r.stats
        assert s["opts_started"] == (s["opts_killed"] + s["opts_converged"] + s["opts_stopped"]
                                     + s["opts_failed"] + s["opts_crashed"])
        summary = yaml.safe_load((tmp_path / "summary.yml").read_text())
        assert summary["stats"]["end_cond"] == s["end_cond"] and summary["result"]["fx"] == pytest.approx(r.fx)


def test_the_rate_after_a_resume_counts_this_sessions_evaluations(tmp_path):
    ctl = CheckpointingControl(every_evaluations=100)
    _chk_run(tmp_path, 300, checkpoint_control=ctl).start_manager()
    resumed = GloMPOManager.load_checkpoint(tmp_path / "checkpoints", convergence_checker=MaxFuncCalls(400))
    before = resumed.view.f_evals
    resumed.start_manager()
    view = resumed.view
    assert view.session_evals == view.f_evals - before > 0
    status = LogStatus()
    status.close(view)  # the average rate of this session, not all evaluations over its time
    assert status.rate == pytest.approx(view.session_evals / view.t_elapsed, rel=0.05)
    assert resumed.result.stats["t_used"] > view.t_elapsed  # the run's time, all sessions


def test_a_probe_is_explained_in_the_result(tmp_path):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 4})])
    m = GloMPOManager(_faulty.sphere, BOUNDS, opt_selector=sel, backend="threads", max_jobs=2,
                      convergence_checker=MaxFuncCalls(600), working_dir=tmp_path, status=None)
    r = m.start_manager()
    opts = read_log(tmp_path, optimizers=True)
    probe_rows = np.asarray(opts["opt_id"]) == 0
    assert probe_rows.sum() == 1 and np.asarray(opts["type"])[probe_rows][0] == "probe"
    assert "probe" in np.asarray(opts["settings"])[probe_rows][0]
    n_probe = int((np.asarray(read_log(tmp_path)["opt_id"]) == 0).sum())
    assert r.stats["probe_evals"] == n_probe > 0 and r.stats["t_probe"] > 0
    assert r.stats["opts_started"] == len(opts) - 1  # the probe is not an optimizer started


# ----------------------------------------------------------------------------- 11. signals
def test_the_signal_watch_raises_only_at_the_safe_point():
    woken = []
    with SignalWatch(lambda: woken.append(1)) as watch:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here: it notes, it does not raise
        total = sum(range(1000))  # (code that runs on after the signal)
        assert total == 499500 and woken
        with pytest.raises(Terminated):
            watch.raise_if_signalled()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back


_SIGNAL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import _faulty
from glompo_like import GloMPOManager
from glompo_like.optimizers import RandomOptimizer
from glompo_like.policies import CycleSelector, MaxSeconds
if __name__ == "__main__":
    sel = CycleSelector([(RandomOptimizer, {{"popsize": 3}})])
    m = GloMPOManager(_faulty.sphere, [(-1, 1)] * 3, opt_selector=sel, backend={backend!r}, max_jobs=2,
                      convergence_checker=MaxSeconds(30), working_dir={wd!r}, status=None, report_interval=0)
    print("READY", flush=True)
    m.start_manager()
"""


def _logged_rows(path: Path) -> int:
    """Rows committed to the log at ``path`` so far (0 while it does not exist yet)."""
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT count(*) FROM evaluations").fetchone()[0]
    except sqlite3.OperationalError:  # (its tables are not created yet)
        return 0


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_sigterm_at_any_moment_leaves_the_counts_and_the_log_agreeing(backend, tmp_path):
    """SIGTERM while batches pour in (one report per generation): whatever the moment, the
    run ends cleanly and every counted evaluation is in the log."""
    rng = np.random.default_rng(0)
    for i in range(4):
        wd = tmp_path / f"run{i}"
        code = _SIGNAL_SCRIPT.format(tests=str(Path(__file__).parent), backend=backend, wd=str(wd))
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        assert proc.stdout.readline().strip() == "READY"
        deadline = time.monotonic() + 30
        while _logged_rows(wd / "evaluations.sqlite") == 0:  # (a loaded machine may start slowly)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.45))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err
        summary = yaml.safe_load((wd / "summary.yml").read_text())
        assert summary["stats"]["end_cond"] == "terminated (SIGTERM)"
        assert summary["stats"]["f_evals"] == len(read_log(wd)) > 0


# ----------------------------------------------------------------------------- 12. Dask
def _dask_run(wd, **kw):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 4, "workers": 2, "backend": "dask"})])
    return GloMPOManager(_faulty.sphere, BOUNDS, opt_selector=sel, backend="threads", max_jobs=2,
                         convergence_checker=MaxFuncCalls(40), working_dir=wd, status=None, **kw)


@pytest.mark.skipif(not distributed_available(), reason="needs the dask extra")
def test_the_embedded_cluster_is_private_to_the_run(tmp_path):
    """TLS with certificates made for the run: a client without them is turned away."""
    import distributed

    seen = {}
    m = _dask_run(tmp_path)
    thread = threading.Thread(target=lambda: seen.setdefault("r", m.start_manager()))
    thread.start()
    deadline = time.monotonic() + 60
    while (m.plan is None or m.plan.dask_address is None) and time.monotonic() < deadline:
        time.sleep(0.05)
    address = m.plan.dask_address
    assert address.startswith("tls://127.0.0.1:") and m.plan.dask_security is not None
    from distributed.security import Security

    with pytest.raises((OSError, TimeoutError)):  # a client with certificates of its own: refused
        distributed.Client(address, timeout=3, set_as_default=False, security=Security.temporary())
    thread.join(90)
    assert seen["r"].stats["f_evals"] >= 40
    summary = yaml.safe_load((tmp_path / "summary.yml").read_text())
    assert summary["settings"]["plan"]["dask_tls"] is True
    assert "BEGIN" not in (tmp_path / "summary.yml").read_text()  # no key material in the summary


@pytest.mark.skipif(not distributed_available(), reason="needs the dask extra")
def test_security_settings_reach_an_existing_tls_cluster(tmp_path):
    from distributed.security import Security

    security = Security.temporary()
    address, close = start_local_cluster(2, security=security)
    try:
        assert address.startswith("tls://")
        with pytest.raises(DaskUnavailable, match="dask_security"):  # without the certificates
            _dask_run(tmp_path / "a", dask_address=address).start_manager()
        r = _dask_run(tmp_path / "b", dask_address=address, dask_security=security).start_manager()
        assert r.stats["f_evals"] >= 40 and r.stats["opts_crashed"] == 0
    finally:
        close()
    with pytest.raises(ConfigTypeError, match="dask_security"):
        _dask_run(tmp_path / "c", dask_address=address, dask_security="tls")
    with pytest.raises(ConfigError, match="dask_security"):
        _dask_run(tmp_path / "d", dask_address=address, dask_security={"no_such_option": 1})


@pytest.mark.skipif(not distributed_available(), reason="needs the dask extra")
def test_a_cluster_without_workers_is_a_clear_error_after_a_timeout(tmp_path):
    address, close = start_local_cluster(0)
    try:
        with pytest.raises(DaskUnavailable, match=r"has no worker \(waited 1.5 s\)"):
            _dask_run(tmp_path / "run", dask_address=address, dask_worker_timeout=1.5).start_manager()
        assert not (tmp_path / "run").exists()  # a failed start leaves no trace
    finally:
        close()
