"""Level 1 × Level 2: every combination runs or is refused at construction; pools; auto."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import _probeclock
import numpy as np
import pytest

from glompo_like import ConfigError, ConfigTypeError, GloMPOManager, read_log
from glompo_like.evaluation import (
    AUTO_CHOICES,
    POOLS,
    BatchPool,
    EvalStatus,
    ExecutorPool,
    ProcessPool,
    SerialPool,
    StreamingPool,
    ThreadPool,
    can_stream,
)
from glompo_like.evaluation.dask_pool import DaskPool
from glompo_like.execution.auto import TaskProfile, choose_backends
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls, TargetCost
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import sphere

pytestmark = pytest.mark.timeout(90)

L1 = ["threads", "processes", "processes_forced"]
L2 = ["serial", "threads", "processes"]


def _run(l1, l2, workers=2, budget=2400, **kw):
    sel = CycleSelector([(CMAOptimizer, {"popsize": 8, "workers": workers, "backend": l2})])
    m = GloMPOManager(task=sphere, bounds=[(-3.0, 3.0)] * 3, opt_selector=sel, backend=l1,
                      max_jobs=2 * workers, convergence_checker=MaxFuncCalls(budget) | TargetCost(0.0, atol=1e-10),
                      seed=7, **kw)
    return m, m.start_manager()


@pytest.mark.parametrize("l2", L2)
@pytest.mark.parametrize("l1", L1)
def test_every_combination_runs_or_is_refused(l1, l2, tmp_path):
    if l1 == "processes" and l2 == "processes":
        with pytest.raises(ConfigError, match="processes_forced"):
            _run(l1, l2)
        return
    m, r = _run(l1, l2, working_dir=tmp_path)
    assert r.fx < 1e-8
    assert r.stats["f_evals"] <= 2400 + 2 * 8
    log = read_log(tmp_path)
    assert len(log) == r.stats["f_evals"]
    workers = set(log["worker"])
    if l2 == "processes":  # evaluated in pool workers, named per optimizer and worker
        assert any("/w" in w for w in workers)
    else:
        assert all("/w" not in w for w in workers)


def test_user_executor_is_used_and_left_open():
    calls = []

    def task(x):
        calls.append(threading.current_thread().name)
        return sphere(x)

    with ThreadPoolExecutor(2, thread_name_prefix="users-pool") as ex:
        sel = CycleSelector([(CMAOptimizer, {"popsize": 6, "workers": 2, "backend": ex})])
        r = GloMPOManager(task=task, bounds=[(-1, 1)] * 2, opt_selector=sel, backend="threads",
                          max_jobs=2, convergence_checker=MaxFuncCalls(300), seed=1).start_manager()
        assert r.stats["f_evals"] >= 300
        assert calls and all(name.startswith("users-pool") for name in calls)
        assert ex.submit(lambda: 41 + 1).result() == 42  # not shut down by the library


def test_user_executor_needs_level1_threads():
    with ThreadPoolExecutor(1) as ex:
        sel = CycleSelector([(CMAOptimizer, {"workers": 1, "backend": ex})])
        with pytest.raises(ConfigError, match="backend='threads'"):
            GloMPOManager(task=sphere, bounds=[(-1, 1)] * 2, opt_selector=sel, backend="processes")


@pytest.mark.parametrize("bad, error", [({"workers": 0}, ConfigError), ({"workers": 1.5}, ConfigTypeError),
                                        ({"backend": "mpi"}, ConfigError), ({"backend": 3}, ConfigTypeError)])
def test_bad_workers_and_backend(bad, error):
    with pytest.raises(error):
        CycleSelector([(CMAOptimizer, bad)])


# ----------------------------------------------------------------------------- pools
def _square_sum(x):
    return float(np.sum(np.asarray(x) ** 2))


def _slow_first(x):
    time.sleep(0.2 if x[0] == 0 else 0.0)
    return float(x[0])


def _mp():
    return multiprocessing.get_context("forkserver")


def _pickled(f):
    import cloudpickle

    return cloudpickle.dumps(f)


def test_process_pool_keeps_candidate_order_and_is_persistent():
    pool = ProcessPool(_pickled(_slow_first), 2, _mp(), "t")
    try:
        pids = pool.pids()
        xs = np.arange(6, dtype=float).reshape(6, 1)
        for _ in range(2):
            out = pool.evaluate(xs)
            assert [o.fx for o in out] == list(range(6))  # x=0 finished last, still first
            assert all(o.status is EvalStatus.OK for o in out)
        assert pool.pids() == pids  # the same workers every generation
        assert {o.worker for o in out} <= {"t/w1", "t/w2"}
    finally:
        pool.close()


def _crash_on_negative(x):
    if x[0] < 0:
        os._exit(3)
    return float(x[0])


def test_process_pool_survives_a_dying_worker():
    pool = ProcessPool(_pickled(_crash_on_negative), 2, _mp(), "t")
    try:
        out = pool.evaluate(np.array([[1.0], [-1.0], [2.0], [3.0]]))
        assert [o.status for o in out] == [EvalStatus.OK, EvalStatus.CRASHED, EvalStatus.OK, EvalStatus.OK]
        assert "exit code 3" in out[1].error
        assert pool.replaced == 1
        assert [o.fx for o in pool.evaluate(np.array([[5.0], [6.0]]))] == [5.0, 6.0]
    finally:
        pool.close()


def _slow_crash_on_negative(x):
    if x[0] < 0:
        time.sleep(0.3)  # long enough for the next evaluation to be queued behind it
        os._exit(3)
    return float(x[0])


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_process_pool_reruns_evaluations_queued_behind_a_dying_one(timeout):
    """Workers are sent the next evaluation before they finish the current one; if the
    current one kills the worker, the queued ones run on the replacement, exactly once."""
    pool = ProcessPool(_pickled(_slow_crash_on_negative), 2, _mp(), "t", timeout=timeout)
    try:
        assert pool.PREFETCH >= 2
        xs = np.array([[-1.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
        out = pool.evaluate(xs)
        assert out[0].status is EvalStatus.CRASHED
        assert [o.status for o in out[1:]] == [EvalStatus.OK] * 5
        assert [o.fx for o in out[1:]] == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert pool.replaced == 1
        assert pool.in_flight == 0
    finally:
        pool.close()


def test_process_pool_queues_at_most_prefetch_per_worker():
    pool = ProcessPool(_pickled(_hang_on_negative), 2, _mp(), "t", timeout=0.5)
    try:
        pool.evaluate(np.array([[1.0], [2.0]]))  # both workers ready
        for i in range(7):
            pool.submit(i, np.array([-1.0 if i < 2 else float(i)]))
        assert max(len(w.jobs) for w in pool._pool) <= pool.PREFETCH
        assert pool.in_flight == 7
        got = {}
        while len(got) < 7:  # (two evaluations end only by their timeout)
            got.update(pool.collect(timeout=1.0))
        assert [got[i].status for i in range(2)] == [EvalStatus.TIMED_OUT] * 2
        assert [got[i].fx for i in range(2, 7)] == [2.0, 3.0, 4.0, 5.0, 6.0]
    finally:
        pool.close()


def test_process_pool_sends_long_evaluations_one_at_a_time():
    """A stop must not wait for an evaluation that had not started: above
    PREFETCH_BELOW seconds per evaluation nothing is queued behind a running one."""
    pool = ProcessPool(_pickled(_square_sum), 2, _mp(), "t")
    try:
        pool.PREFETCH_BELOW = 0.0  # every evaluation counts as long
        pool.evaluate(np.array([[1.0], [2.0]]))
        for i in range(6):
            pool.submit(i, np.array([float(i)]))
        assert max(len(w.jobs) for w in pool._pool) == 1
        got = {}
        while len(got) < 6:
            got.update(pool.collect(timeout=5.0))
        assert [got[i].fx for i in range(6)] == [float(i * i) for i in range(6)]
    finally:
        pool.close()


def _hang_on_negative(x):
    if x[0] < 0:
        time.sleep(3600)  # longer than the test may take: only the task_timeout ends it
    return float(x[0])


def test_process_pool_timeout_kills_and_replaces_the_worker():
    pool = ProcessPool(_pickled(_hang_on_negative), 2, _mp(), "t", timeout=0.5)
    try:
        out = pool.evaluate(np.array([[1.0], [-1.0], [2.0]]))
        assert [o.status for o in out] == [EvalStatus.OK, EvalStatus.TIMED_OUT, EvalStatus.OK]
        assert "task_timeout" in out[1].error
        assert out[1].duration >= 0.5
    finally:
        pool.close()


def test_serial_and_thread_pools_abort_between_evaluations():
    xs = np.arange(8, dtype=float).reshape(8, 1)
    seen = []

    def should_abort():
        seen.append(1)
        return len(seen) >= 3

    serial = SerialPool(_square_sum, "s")
    serial.check_every = 0.0  # ask before every evaluation
    out = serial.evaluate(xs, should_abort)
    assert sum(o is not None for o in out) == 3 and out[0].fx == 0.0
    pool = ThreadPool(_square_sum, 2, "t")
    try:
        out = pool.evaluate(xs)
        assert [o.fx for o in out] == [float(i * i) for i in range(8)]
    finally:
        pool.close()


def test_a_process_worker_that_dies_while_idle_costs_no_evaluation():
    pool = ProcessPool(pickle.dumps(_square_sum), 2, multiprocessing.get_context("fork"), "p")
    try:
        xs = np.arange(4, dtype=float).reshape(4, 1)
        assert all(o.status is EvalStatus.OK for o in pool.evaluate(xs))
        victim = pool.pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not pool._pool[0].has_input():  # until its pipe hangs up (microseconds after death)
            assert time.monotonic() < deadline
            time.sleep(0.005)
        out = pool.evaluate(xs)
        assert [o.fx for o in out] == [0.0, 1.0, 4.0, 9.0]  # nothing sent to the dead worker
        assert all(o.status is EvalStatus.OK for o in out)
        assert pool.replaced == 1 and victim not in pool.pids()
    finally:
        pool.close()


def _sleepy_float64(x):
    time.sleep(0.01)
    return np.float64(x[0])


def test_serial_pool_times_each_evaluation_and_returns_plain_floats():
    xs = np.arange(5, dtype=float).reshape(5, 1)
    before = time.time()
    out = SerialPool(_sleepy_float64, "s").evaluate(xs)
    after = time.time()
    assert [o.fx for o in out] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(type(o.fx) is float and o.status is EvalStatus.OK for o in out)
    starts = [o.t_start for o in out]
    assert before - 0.01 <= starts[0] and starts[-1] + out[-1].duration <= after + 0.01
    for o, nxt in zip(out[:-1], out[1:], strict=True):
        assert 0.009 <= o.duration <= after - before  # at least the sleep, within the call
        assert nxt.t_start >= o.t_start + o.duration - 1e-6  # one after the other


# ----------------------------------------------------------------------------- auto
def _profile(t_eval, ratio, ok=True):
    from glompo_like.evaluation import Outcome

    status = EvalStatus.OK if ok else EvalStatus.FAILED
    return TaskProfile(t_eval, ratio, [(np.zeros(2), Outcome(1.0, status, 0.0, t_eval, "probe"))])


def test_every_backend_declares_its_protocol():
    """The registry names a pool class per Level 2 backend; each is a BatchPool, those that
    stream are StreamingPools, and can_stream answers from the class."""
    assert set(POOLS) == {"serial", "threads", "processes", "isolated", "asyncio", "dask"}
    assert all(issubclass(cls, BatchPool) for cls in POOLS.values())
    assert {name for name, cls in POOLS.items() if issubclass(cls, StreamingPool)} == {
        "serial", "threads", "processes", "isolated", "asyncio"}
    assert not issubclass(DaskPool, StreamingPool)
    assert issubclass(ExecutorPool, StreamingPool)
    assert [can_stream(b) for b in ("serial", "threads", "processes", "isolated", "asyncio", "dask", "auto")] == [
        True, True, True, True, True, False, True]
    with ThreadPoolExecutor(1) as ex:
        assert can_stream(ex)
    with pytest.raises(ConfigError, match="unknown Level 2 backend 'gpu'"):
        can_stream("gpu")


def test_a_pool_that_leaves_out_a_protocol_method_cannot_be_created():
    class Half(StreamingPool):
        kind = "half"

        def evaluate(self, xs, should_abort=None):
            return []

        def submit(self, key, x):
            pass

    with pytest.raises(TypeError, match="collect"):
        Half()


@pytest.mark.parametrize(
    "profile, l1, l2",
    [
        (_profile(5e-3, 1.0), "threads", "processes"),  # costly, holds the GIL: pools
        (_profile(5e-3, 0.5), "threads", "threads"),  # costly, releases the GIL
        (_profile(5e-6, 1.0), "processes", "serial"),  # cheap: never a process pool
        (_profile(5e-6, 0.5), "processes", "serial"),
    ],
)
def test_auto_decision_table(profile, l1, l2):
    got_l1, got_l2, reason = choose_backends(profile, "auto", [("auto", 2)], picklable=True)
    assert (got_l1, got_l2) == (l1, [l2])
    assert set(got_l2) <= set(AUTO_CHOICES)  # what can_stream("auto") relies on
    assert "ms per evaluation" in reason


def test_auto_respects_unpicklable_tasks_timeouts_and_daemonic_level1():
    p = _profile(5e-3, 1.0)
    assert choose_backends(p, "auto", [("auto", 2)], picklable=False)[:2] == ("threads", ["threads"])
    assert choose_backends(p, "auto", [("auto", 1)], picklable=True, killable=True)[:2] == (
        "threads", ["processes"])
    # an entry that evaluates serially needs an optimizer process: one that may own pools
    l1, l2, reason = choose_backends(p, "auto", [("auto", 2), ("serial", 1)], picklable=True)
    assert (l1, l2) == ("processes_forced", ["processes", "serial"])
    l1, l2, reason = choose_backends(p, "auto", [("auto", 2), ("auto", 2)], picklable=True)
    assert (l1, l2) == ("threads", ["processes", "processes"]) and "run as threads" in reason
    l1, l2, reason = choose_backends(p, "processes", [("auto", 2)], picklable=True)
    assert (l1, l2) == ("processes", ["threads"]) and "daemonic" in reason
    assert choose_backends(p, "auto", [("auto", 1)], picklable=True)[:2] == ("processes", ["serial"])


def test_auto_measures_and_picks_different_backends(tmp_path, monkeypatch):
    """The probe's clocks are replaced (tests/_probeclock.py): each task declares its
    time, so the choice depends on the task's profile, not on how busy the machine is."""
    import yaml

    _probeclock.install(monkeypatch)
    choices = {}
    for f in (_probeclock.computes_5_ms, _probeclock.waits_10_ms):
        sel = CycleSelector([(CMAOptimizer, {"popsize": 4, "workers": 2, "backend": "auto"})])
        m = GloMPOManager(task=f, bounds=[(-1, 1)] * 2, opt_selector=sel, backend="auto", max_jobs=2,
                          convergence_checker=MaxFuncCalls(60), seed=1, working_dir=tmp_path / f.__name__)
        r = m.start_manager()
        choices[f.__name__] = (m.plan.level1, m.plan.level2[0])
        # the probe's evaluations are logged and counted, as optimizer 0
        log = read_log(tmp_path / f.__name__)
        assert len(log) == r.stats["f_evals"]
        assert (np.asarray(log["opt_id"]) == 0).sum() == m.plan.probe["probe_evals"]
        summary = yaml.safe_load((tmp_path / f.__name__ / "summary.yml").read_text())
        assert summary["settings"]["plan"]["level1"] == m.plan.level1
        assert "holds the GIL" in m.plan.reasons["backend"] or "releases" in m.plan.reasons["backend"]
    assert choices["computes_5_ms"] == ("threads", "processes")
    assert choices["waits_10_ms"] == ("threads", "threads")


def test_a_stop_is_seen_while_process_workers_start(tmp_path):
    """With spawn (or forkserver) a worker takes a while to start; a stop asked for in that
    time skips the generation's evaluations at once instead of waiting for the first of
    them to finish.  Here the workers cannot be ready before the test opens their gate."""
    import _faulty

    gate = tmp_path / "gate"
    pool = ProcessPool(_pickled(_faulty.SlowToLoad(str(gate))), 2, multiprocessing.get_context("spawn"), "t")
    asked = []

    def stop_now():
        asked.append(1)
        return True

    try:
        out = pool.evaluate(np.ones((4, 2)), stop_now)
        assert asked  # looked for a stop before any worker was ready
        assert out == [None] * 4  # nothing evaluated: every evaluation was skipped
        gate.touch()  # the pool still works afterwards: its workers finish starting
        assert [o.fx for o in pool.evaluate(np.ones((2, 2)))] == [2.0, 2.0]
    finally:
        gate.touch()
        pool.close()


def test_optimizer_preload_modules_exist():
    """The modules a forkserver is told to preload (it skips missing ones silently)."""
    import importlib

    from glompo_like import optimizers

    classes = [c for c in (getattr(optimizers, n) for n in optimizers.__all__)
               if isinstance(c, type) and issubclass(c, optimizers.BaseOptimizer)]
    assert len(classes) >= 8
    for cls in classes:
        for name in cls.preload_modules:
            importlib.import_module(name)
    assert "glompo_like.optimizers._cma_import" in optimizers.CMAOptimizer.preload_modules
