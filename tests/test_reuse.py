"""Process reuse: an optimizer process that ended cleanly runs the next optimizer."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from glompo_like import ConfigTypeError, GloMPOManager, read_log
from glompo_like.bounds import as_bounds
from glompo_like.execution.messages import Ack, Converged, Crashed, Inject, Launch, Retire, Stop
from glompo_like.execution.runner import RunnerSpec, _next_spec
from glompo_like.execution.supervisor import ProcessSupervisor
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import sphere

pytestmark = pytest.mark.timeout(60)

BOUNDS = [(-5.0, 5.0)] * 3
#: CMA-ES that converges after three generations: many short-lived optimizers
SHORT_CMA = (CMAOptimizer, {"popsize": 4, "maxiter": 3})


class PidTask:
    """Sphere, noting which process evaluated (one file per process)."""

    def __init__(self, directory: Path) -> None:
        self.directory = str(directory)

    def __call__(self, x: np.ndarray) -> float:
        Path(self.directory, str(os.getpid())).touch()
        print(f"evaluating in {os.getpid()}")
        return sphere(x)


def _run(tmp_path: Path, backend: str, reuse: bool, budget: int = 240) -> tuple[GloMPOManager, set[int]]:
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    m = GloMPOManager(task=PidTask(pids_dir), bounds=BOUNDS, backend=backend, max_jobs=2, seed=5,
                      opt_selector=CycleSelector([SHORT_CMA]), killing_conditions=False,
                      convergence_checker=MaxFuncCalls(budget), working_dir=tmp_path / "run",
                      reuse_processes=reuse, status=None)
    m.start_manager()
    return m, {int(p.name) for p in pids_dir.iterdir()}


@pytest.mark.parametrize("backend", ["processes", "processes_forced"])
def test_optimizers_run_in_the_processes_of_those_that_ended(backend, tmp_path):
    m, pids = _run(tmp_path, backend, reuse=True)
    started = m.result.stats["opts_started"]
    assert started >= 8  # many optimizers ...
    assert len(pids) <= 2  # ... in the two processes of the first two
    log = read_log(tmp_path / "run")  # a DataFrame, or a structured array without pandas
    opt_ids = np.asarray(log["opt_id"])
    assert len(opt_ids) == m.result.stats["f_evals"]
    assert list(log["eval_id"]) == list(range(1, len(opt_ids) + 1))
    opts = read_log(tmp_path / "run", optimizers=True)
    assert len(opts) == started
    assert set(opts["end_kind"]) <= {"converged", "stopped"}
    # each optimizer's prints still go to its own files, whichever process ran it
    for opt_id in np.unique(opt_ids):
        out = tmp_path / "run" / "prints" / f"opt_{opt_id}.out"
        assert out.read_text().count("evaluating") == (opt_ids == opt_id).sum()


def test_reuse_can_be_switched_off(tmp_path):
    m, pids = _run(tmp_path, "processes", reuse=False, budget=120)
    evaluated = len(np.unique(np.asarray(read_log(tmp_path / "run")["opt_id"])))  # the last may not have begun
    assert len(pids) == evaluated >= 4  # one process per optimizer


def test_reuse_processes_must_be_a_bool():
    with pytest.raises(ConfigTypeError, match="reuse_processes"):
        GloMPOManager(task=sphere, bounds=BOUNDS, reuse_processes="yes")


# ----------------------------------------------------------------- the waiting runner
class _Inbox:
    def __init__(self, messages):
        self.messages = list(messages)

    def recv(self):
        if not self.messages:
            raise EOFError
        return self.messages.pop(0)


def _spec(opt_id: int, opt_cls=CMAOptimizer, **kwargs) -> RunnerSpec:
    return RunnerSpec(opt_id=opt_id, opt_cls=opt_cls, opt_kwargs=kwargs or {"popsize": 4, "maxiter": 2},
                      bounds=as_bounds(BOUNDS), x0=np.zeros(3), seed=opt_id, task_bytes=None)


def test_a_waiting_runner_drops_commands_for_the_optimizer_that_ended():
    spec = _spec(7)
    inbox = _Inbox([Ack(until=9), Stop("hunted"), Inject(np.zeros(3), 0.0), Launch(spec), Retire()])
    got = _next_spec(inbox, b"task")
    assert got is not None and got.opt_id == 7 and got.task_bytes == b"task"
    assert inbox.messages == [Retire()]


@pytest.mark.parametrize("messages", [[Ack(until=3), Retire()], []], ids=["retire", "manager gone"])
def test_a_waiting_runner_exits_when_told_or_when_the_manager_is_gone(messages):
    assert _next_spec(_Inbox(messages), b"task") is None


# ----------------------------------------------------------------- the supervisor
class _Events:
    """Callbacks for the supervisor, recording what it delivers."""

    def __init__(self):
        self.messages: list = []
        self.ended: list[int] = []

    def on_message(self, child, msg):
        self.messages.append(msg)

    def on_end(self, child):
        self.ended.append(child.opt_id)

    def wait_end(self, sup, opt_id, timeout=20.0):
        deadline = time.monotonic() + timeout
        while opt_id not in self.ended:
            assert time.monotonic() < deadline, f"optimizer {opt_id} did not end"
            for c in list(sup.children.values()):
                if c.opt_id == opt_id:
                    c.send(Ack(until=10**6))
            sup.poll(0.1, self.on_message, self.on_end)


def _wait_dead(child, timeout=30.0):
    """Until ``child``'s process has died completely: its sentinel is ready and its end of
    the pipe is closed (the manager's end reads EOF).  A state, not a time: the process
    closes its descriptors one by one as it dies, and a message sent before its end of
    the pipe is closed is still accepted."""
    from multiprocessing.connection import wait

    assert wait([child.sentinel], timeout), f"process {child.pid} did not die"
    assert child.conn.poll(timeout), f"process {child.pid} died but its pipe stayed open"


class CrashingOptimizer(CMAOptimizer):
    def _ask(self):
        raise RuntimeError("broken optimizer")


def _supervisor():
    import cloudpickle

    sup = ProcessSupervisor("processes", None, reuse=True, max_idle=2)
    task = cloudpickle.dumps(sphere)
    return sup, (lambda opt_id, cls=CMAOptimizer: RunnerSpec(
        opt_id=opt_id, opt_cls=cls, opt_kwargs={"popsize": 4, "maxiter": 2}, bounds=as_bounds(BOUNDS),
        x0=np.zeros(3), seed=opt_id, task_bytes=task))


def test_a_waiting_process_that_dies_is_replaced_and_a_crashed_one_is_not_reused():
    sup, spec = _supervisor()
    ev = _Events()
    try:
        first = sup.start(spec(1), 1)
        ev.wait_end(sup, 1)
        assert any(isinstance(m, Converged) for m in ev.messages)
        assert [c.pid for c in sup.idle] == [first.pid]  # it waits for the next optimizer

        second = sup.start(spec(2), 1)
        assert second.pid == first.pid and not sup.idle  # ... and runs it
        ev.wait_end(sup, 2)
        assert [c.pid for c in sup.idle] == [first.pid]

        os.kill(first.pid, signal.SIGKILL)  # dies while it waits
        _wait_dead(first)
        third = sup.start(spec(3), 1)
        assert third.pid != first.pid  # a new process took over
        ev.wait_end(sup, 3)

        crashing = sup.start(spec(4, CrashingOptimizer), 1)
        assert crashing.pid == third.pid
        ev.wait_end(sup, 4)
        assert any(isinstance(m, Crashed) for m in ev.messages)
        assert not sup.idle  # the process of a crashed optimizer is not kept ...
        assert crashing.exitcode_final == 0  # ... it exited, and was reaped
    finally:
        sup.shutdown("test over", 5.0, ev.on_message, ev.on_end)
        sup.close()
    assert not sup.idle
