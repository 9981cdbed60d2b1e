"""Faults: failing, hanging and crashing evaluations; dying optimizers; a killed manager.

A table of cases in the manner of loky's crash tests.  Every test has a hard deadline and
the autouse fixture in conftest.py checks that no child process is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import _faulty
import numpy as np
import psutil
import pytest

from glompo_like import EvaluationError, GloMPOManager, OptimizerCrashed, read_log
from glompo_like.optimizers import CMAOptimizer, RandomOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.selectors import CycleSelector

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).parent

# (Level 1, Level 2, start method)
PAIRS = [
    ("threads", "serial", None),
    ("threads", "processes", "forkserver"),
    ("processes", "serial", "fork"),
    ("processes", "serial", "spawn"),
    ("processes_forced", "processes", "forkserver"),
]
PAIR_IDS = [f"{a}-{b}-{c or 'default'}" for a, b, c in PAIRS]


def _manager(task, l1, l2, start_method=None, budget=400, workers=None, **kw):
    workers = workers or (2 if l2 != "serial" else 1)
    sel = kw.pop("opt_selector", None) or CycleSelector(
        [(CMAOptimizer, {"popsize": 6, "workers": workers, "backend": l2})]
    )
    return GloMPOManager(task=task, bounds=[(-1, 1)] * 3, opt_selector=sel, backend=l1,
                         max_jobs=2 * workers, convergence_checker=MaxFuncCalls(budget),
                         start_method=start_method, seed=4, **kw)


FAILING = [
    (_faulty.raises_in_region, "ValueError: boom"),
    (_faulty.nan_in_region, "task returned nan"),
    (_faulty.inf_in_region, "task returned inf"),
    (_faulty.none_in_region, "task returned None"),
    (_faulty.array_in_region, "shape (3,)"),
]


@pytest.mark.parametrize("l1, l2, method", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("task, message", FAILING, ids=[t.__name__ for t, _ in FAILING])
def test_failed_evaluations_are_logged_and_the_run_goes_on(task, message, l1, l2, method, tmp_path):
    r = _manager(task, l1, l2, method, working_dir=tmp_path).start_manager()
    assert "MaxFuncCalls" in r.stats["end_cond"]
    assert np.isfinite(r.fx) and r.x[0] <= 0.5
    log = read_log(tmp_path)
    assert len(log) == r.stats["f_evals"]
    failed = np.asarray(log["status"]) == "failed"
    assert failed.sum() == r.stats["evals_failed"] > 0
    assert (np.asarray(log["x_0"])[failed] > 0.5).all()
    assert all(message in e for e in np.asarray(log["error"])[failed])


def test_failure_traceback_is_recorded(tmp_path):
    _manager(_faulty.raises_in_region, "processes", "serial", "fork", working_dir=tmp_path).start_manager()
    log = read_log(tmp_path)
    err = [e for e in log["error"] if isinstance(e, str)][0]  # None or NaN where no error
    assert "Traceback" in err and "raises_in_region" in err


@pytest.mark.parametrize("l1, l2, method", PAIRS, ids=PAIR_IDS)
def test_on_error_raise_ends_the_run_with_the_original_exception(l1, l2, method, tmp_path):
    m = _manager(_faulty.raises_in_region, l1, l2, method, on_error="raise", working_dir=tmp_path)
    with pytest.raises(EvaluationError) as info:
        m.start_manager()
    cause = info.value.__cause__
    assert isinstance(cause, ValueError) and "boom" in str(cause)
    frames = "".join(traceback.format_tb(cause.__traceback__))
    assert "raises_in_region" in frames  # the remote traceback travelled with it
    assert m.result is not None and m.result.stats["end_cond"].startswith("fatal error")
    log = read_log(tmp_path)  # the generation that raised is logged too, failure included
    assert "failed" in set(np.asarray(log["status"]))
    assert len(log) == m.result.stats["f_evals"]


def test_on_error_resample_retries_the_point(tmp_path):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 5})])
    r = _manager(_faulty.flaky, "processes", "serial", "fork", opt_selector=sel, on_error="resample",
                 working_dir=tmp_path, budget=100).start_manager()
    log = read_log(tmp_path)
    status, x0 = np.asarray(log["status"]), np.asarray(log["x_0"])
    failed = np.flatnonzero(status == "failed")
    assert len(failed) > 0
    # a failed first attempt is evaluated once more (a failed retry is not retried again):
    # every failed point appears at least twice, and some retries succeeded
    for i in failed:
        assert (x0 == x0[i]).sum() >= 2
    retried_ok = [i for i in failed if ((x0 == x0[i]) & (status == "ok")).any()]
    assert retried_ok
    assert r.stats["evals_failed"] == len(failed)


def test_penalty_value_is_what_the_optimizer_is_told():
    told = []

    class Spy(RandomOptimizer):
        def _tell(self, xs, fs):
            told.extend(fs.tolist())

    sel = CycleSelector([(Spy, {"popsize": 4})], max_spawns=1)
    _manager(_faulty.nan_in_region, "threads", "serial", opt_selector=sel, penalty=1e6,
             budget=40).start_manager()
    assert 1e6 in told and all(np.isfinite(told))


@pytest.mark.parametrize("l1, l2, method", PAIRS[:3], ids=PAIR_IDS[:3])
def test_an_optimizer_whose_every_evaluation_fails_is_stopped(l1, l2, method, tmp_path):
    m = _manager(_faulty.always_raises, l1, l2, method, budget=200, working_dir=tmp_path,
                 fail_fast=None)  # (the optimizer-level rule, not the run-level fail_fast)
    r = m.start_manager()
    ends = {v.end_kind for v in m.view.optimizers.values() if v.opt_id}
    assert ends <= {"failed", "stopped"} and "failed" in ends
    assert all("every evaluation" in v.end_reason for v in m.view.optimizers.values() if v.end_kind == "failed")
    assert r.fx == float("inf") and r.x is None
    assert r.stats["evals_failed"] == r.stats["f_evals"]
    opts = read_log(tmp_path, optimizers=True)
    assert "failed" in set(opts["end_kind"])


# ----------------------------------------------------------------------------- timeouts
TIMEOUT_PAIRS = [("processes", "serial", "fork"), ("processes_forced", "processes", "forkserver"),
                 ("threads", "processes", "spawn")]


@pytest.mark.parametrize("l1, l2, method", TIMEOUT_PAIRS, ids=[f"{a}-{b}-{c}" for a, b, c in TIMEOUT_PAIRS])
def test_hanging_evaluations_are_killed_at_the_timeout(l1, l2, method, tmp_path):
    # (a hang that is not killed shows as a status other than timed_out, or as a test timeout)
    r = _manager(_faulty.hangs_on_fifth_call, l1, l2, method, budget=60, task_timeout=0.5,
                 working_dir=tmp_path).start_manager()
    assert "MaxFuncCalls" in r.stats["end_cond"]
    log = read_log(tmp_path)
    assert len(log) == r.stats["f_evals"]
    timed_out = np.asarray(log["status"]) == "timed_out"
    assert timed_out.sum() >= 1
    assert all("task_timeout=0.5" in e for e in np.asarray(log["error"])[timed_out])
    assert (np.asarray(log["duration"])[timed_out] >= 0.5).all()


@pytest.mark.parametrize("l1, l2", [("processes", "serial"), ("processes_forced", "processes")])
def test_timeout_kills_what_the_task_started(l1, l2, tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("GLOMPO_TEST_PIDFILE", str(pidfile))
    _manager(_faulty.hangs_in_external_process, l1, l2, "fork", budget=40, task_timeout=0.5).start_manager()
    pids = [int(p) for p in pidfile.read_text().split()]
    assert pids
    deadline = time.monotonic() + 30  # (killed with their worker's group: they go at once, given CPU)
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.monotonic() < deadline, f"external processes {pids} outlived the timeout"
        time.sleep(0.05)


# ----------------------------------------------------------------------------- crashes
CRASHERS = [(_faulty.exits_on_third_call, "exit code 7"), (_faulty.segfaults_on_third_call, "SIGSEGV")]


@pytest.mark.parametrize("task, what", CRASHERS, ids=["os._exit", "segfault"])
@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_dying_optimizer_process_is_recorded_and_replaced(task, what, method, tmp_path):
    # popsize 2: each optimizer reports one generation, then dies on its third evaluation.
    # RandomOptimizer and a small budget: each of the ~10 optimizer processes must start
    # (from a forkserver that a test before may have started without CMA-ES preloaded).
    sel = CycleSelector([(RandomOptimizer, {"popsize": 2})])
    m = _manager(task, "processes", "serial", method, budget=20, working_dir=tmp_path, opt_selector=sel)
    r = m.start_manager()
    assert "MaxFuncCalls" in r.stats["end_cond"]
    assert r.stats["opts_crashed"] >= 1 and r.stats["opts_started"] > r.stats["opts_crashed"]
    assert m.crashes and isinstance(m.crashes[0], OptimizerCrashed)
    assert what in str(m.crashes[0]) or what in (m.view.optimizer(m.crashes[0].opt_id).end_reason or "")
    opts = read_log(tmp_path, optimizers=True)
    assert "crashed" in set(opts["end_kind"])


@pytest.mark.parametrize("task, what", CRASHERS, ids=["os._exit", "segfault"])
def test_a_dying_level2_worker_loses_only_its_evaluation(task, what, tmp_path):
    r = _manager(task, "threads", "processes", "forkserver", budget=80, working_dir=tmp_path).start_manager()
    log = read_log(tmp_path)
    crashed = np.asarray(log["status"]) == "crashed"
    assert crashed.sum() >= 1 and r.stats["opts_crashed"] == 0
    assert all(what in e for e in np.asarray(log["error"])[crashed])
    assert len(log) == r.stats["f_evals"]


def test_an_optimizer_process_killed_from_outside(tmp_path):
    m = _manager(_faulty.slow, "processes", "serial", "fork", budget=150, working_dir=tmp_path)

    def assassin():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = m.optimizer_pids()
            if pids and m.ledger.counters.f_evals > 10:
                os.kill(pids[min(pids)], signal.SIGKILL)
                return
            time.sleep(0.02)

    t = threading.Thread(target=assassin)
    t.start()
    r = m.start_manager()
    t.join()
    assert r.stats["opts_crashed"] >= 1
    assert any(c.exitcode == -signal.SIGKILL for c in m.crashes)
    assert "MaxFuncCalls" in r.stats["end_cond"]
    assert len(read_log(tmp_path)) == r.stats["f_evals"]


def test_optimizers_that_always_crash_end_the_run_with_an_error(tmp_path):
    # popsize 6: every optimizer dies on its third evaluation, before finishing a generation
    m = _manager(_faulty.exits_on_third_call, "processes", "serial", "fork", working_dir=tmp_path)
    with pytest.raises(OptimizerCrashed, match="5 optimizers in a row crashed") as info:
        m.start_manager()
    assert isinstance(info.value.__cause__, OptimizerCrashed) and info.value.__cause__.exitcode == 7
    assert m.result.stats["opts_crashed"] >= 5  # two slots: one more may crash meanwhile
    assert (tmp_path / "summary.yml").exists()


# ----------------------------------------------------------------------------- the manager dies
KILL_CASES = [
    ("threads", "processes", "default"),
    ("processes", "serial", "fork"),
    ("processes", "serial", "spawn"),
    ("processes_forced", "processes", "forkserver"),
    ("processes_forced", "processes", "fork"),
]


_MP_HELPERS = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")


def _start_script(tmp_path, l1, l2, method):
    """The manager script, once it is well under way: ``(process, pids of the run's
    processes, pids of the manager process's multiprocessing helpers)``."""
    pidfile = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_manager_script.py"), l1, l2, method, str(tmp_path / "run"), str(pidfile)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "READY", line + proc.stderr.read()
    run, helpers = [], []
    for pid in (int(p) for p in pidfile.read_text().split()):
        try:
            p = psutil.Process(pid)
            helper = p.ppid() == proc.pid and any(h in " ".join(p.cmdline()) for h in _MP_HELPERS)
        except psutil.Error:  # it has ended already
            continue
        (helpers if helper else run).append(pid)
    assert run
    return proc, run, helpers


def _assert_all_gone(pids, within=5.0):
    deadline = time.monotonic() + within
    while True:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return
        if time.monotonic() > deadline:
            for p in alive:
                os.kill(p, signal.SIGKILL)
            raise AssertionError(f"processes outlived the manager: {alive}")
        time.sleep(0.05)


@pytest.mark.parametrize("l1, l2, method", KILL_CASES, ids=[f"{a}-{b}-{c}" for a, b, c in KILL_CASES])
def test_sigkill_of_the_manager_leaves_no_process(l1, l2, method, tmp_path):
    proc, run, helpers = _start_script(tmp_path, l1, l2, method)
    proc.kill()
    proc.communicate(timeout=10)
    # the children notice the death of their parent (a signal from the kernel, or the
    # watchdog's poll) and end: that takes a moment after the kill, a longer one on a busy machine
    _assert_all_gone(run + helpers, within=30.0)
    log = read_log(tmp_path / "run")  # the log survived and is readable
    assert len(log) > 20


@pytest.mark.parametrize("l1, l2, method", KILL_CASES[:4], ids=[f"{a}-{b}-{c}" for a, b, c in KILL_CASES[:4]])
def test_sigint_stops_children_writes_summary_and_reraises(l1, l2, method, tmp_path):
    proc, run, helpers = _start_script(tmp_path, l1, l2, method)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "INTERRUPTED interrupted (KeyboardInterrupt)" in out
    # What the run started has ended before start_manager returned: gone now, not "soon".
    _assert_all_gone(run, within=0.0)
    # The manager process's own multiprocessing helpers (its forkserver, its resource
    # tracker) serve every run of that process; they exit only once it has exited (at the
    # end of their pipe), which takes as long as the machine lets them take.
    _assert_all_gone(helpers, within=30.0)
    import yaml

    summary = yaml.safe_load((tmp_path / "run" / "summary.yml").read_text())
    assert summary["stats"]["end_cond"] == "interrupted (KeyboardInterrupt)"
    assert len(read_log(tmp_path / "run")) == summary["stats"]["f_evals"]


def test_sigterm_ends_the_run_cleanly(tmp_path):
    proc, run, helpers = _start_script(tmp_path, "processes", "serial", "fork")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    _assert_all_gone(run, within=0.0)
    _assert_all_gone(helpers, within=30.0)
    import yaml

    summary = yaml.safe_load((tmp_path / "run" / "summary.yml").read_text())
    assert summary["stats"]["end_cond"] == "terminated (SIGTERM)"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("proc_files", [True, False], ids=["proc-children-files", "psutil"])
def test_the_tree_snapshot_finds_every_descendant(proc_files, monkeypatch):
    """The snapshot taken before children are stopped (read from /proc on Linux, through
    psutil elsewhere) holds children, grandchildren and theirs, like psutil's own walk;
    the sweep then ends them all."""
    from glompo_like.procs import terminate
    from glompo_like.procs.terminate import reap, snapshot_tree

    if proc_files and not terminate._HAVE_CHILDREN_FILES:
        pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children files")
    monkeypatch.setattr(terminate, "_HAVE_CHILDREN_FILES", proc_files)

    # a shell whose child is a shell whose child sleeps: three generations
    top = subprocess.Popen(["sh", "-c", "sh -c 'sleep 30 & wait' & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(psutil.Process(top.pid).children(recursive=True)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        expected = {top.pid} | {p.pid for p in psutil.Process(top.pid).children(recursive=True)}
        assert len(expected) == 3
        tree = snapshot_tree([top.pid])
        assert {p.pid for p in tree} == expected
        assert sorted(reap(tree, timeout=5.0)) == sorted(expected)
        top.wait(5)
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pid in expected)
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()


@pytest.mark.timeout(30)
def test_the_sweep_counts_a_zombie_as_gone():
    """A process that has exited but was not collected by its parent (a zombie: here our
    own child, elsewhere an orphan waiting for a slow init) needs no terminating: the
    sweep does not wait for it to disappear."""
    from glompo_like.procs.terminate import reap

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    proc = psutil.Process(child.pid)
    deadline = time.monotonic() + 10
    while proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.status() == psutil.STATUS_ZOMBIE
    assert reap([proc], timeout=5.0) == []  # not counted as a process it had to end
    child.wait()
