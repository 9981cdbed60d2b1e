"""``thread_slice``: runner threads taking turns (for tasks that hold the GIL)."""

from __future__ import annotations

import threading
import time

import _probeclock
import numpy as np
import pytest

from glompo_like import CheckpointingControl, ConfigError, ConfigTypeError, GloMPOManager, read_log
from glompo_like.execution.turnstile import Turnstile
from glompo_like.optimizers import BaseOptimizer, CMAOptimizer, RandomOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.hunters import BestUnmoving, MinFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import rastrigin
from glompo_like.record.checkpoint import read_checkpoint

pytestmark = pytest.mark.timeout(60)


# ----------------------------------------------------------------------------- the turnstile
def _wait_until(condition, what, timeout=20.0):
    """Wait for a state of the threads (not for a time): fails only if it never comes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.001)


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_turns_are_exclusive_and_handed_on_in_arrival_order():
    """Three threads queue in a known order; each, on its turn, waits until the others are
    queued and then calls turn(): with a used-up slice (0 s) the turn goes to the longest
    waiter and the caller queues behind the others, so the turns go round in arrival
    order, one thread at a time, whatever the scheduling."""
    ts = Turnstile(0.0)
    rounds, order, overlaps = 20, [], []
    inside = [0]
    running = [3]  # threads not yet done (changes only while one of them has the turn)
    lock = threading.Lock()

    def worker(name):
        ts.take()
        for i in range(rounds):
            with lock:
                inside[0] += 1
                if inside[0] > 1:
                    overlaps.append(name)
            order.append(name)
            with lock:
                inside[0] -= 1
            if i == rounds - 1:
                running[0] -= 1
                break
            _wait_until(lambda: ts.waiting >= running[0] - 1, "the others queued")
            ts.turn()
        ts.release()

    ts.take()  # the test holds the turn while the threads line up: a, then b, then c
    threads = []
    for n, name in enumerate("abc", start=1):
        threads.append(threading.Thread(target=worker, args=(name,)))
        threads[-1].start()
        _wait_until(lambda n=n: ts.waiting == n, f"{name} queued")
    ts.release()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert not overlaps
    assert order == list("abc" * rounds)


def test_a_turn_lasts_its_slice_and_is_kept_when_nobody_waits():
    clock = _FakeClock()
    ts = Turnstile(10.0, clock=clock)
    ts.take()
    clock.now = 20.0
    ts.turn()  # slice used up, but nobody waits: keeps the turn, and a new slice starts
    assert ts.waiting == 0
    got = threading.Event()

    def other():
        ts.take()
        got.set()
        ts.release()

    t = threading.Thread(target=other)
    t.start()
    _wait_until(lambda: ts.waiting == 1, "the other thread queued")
    clock.now = 29.0
    ts.turn()  # still inside its slice (9 of 10 s): the other thread waits
    assert not got.is_set() and ts.waiting == 1
    ts.release()  # blocking elsewhere: hands on at once
    t.join(10)
    assert got.is_set()
    ts.release()  # releasing a turn one does not have is harmless


def test_a_used_up_slice_is_handed_to_a_waiting_thread():
    clock = _FakeClock()
    ts = Turnstile(10.0, clock=clock)
    ts.take()
    turns = []

    def other():
        ts.take()
        turns.append("other")
        ts.release()

    t = threading.Thread(target=other)
    t.start()
    _wait_until(lambda: ts.waiting == 1, "the other thread queued")
    clock.now = 10.0
    ts.turn()  # the slice is over and someone waits: hand on, queue up, get it back
    turns.append("me")
    t.join(10)
    assert turns == ["other", "me"]
    ts.release()


# ----------------------------------------------------------------------------- in the manager
def _mk(tmp_path, **kw):
    args = dict(
        task=rastrigin, bounds=[(-5.12, 5.12)] * 4, backend="threads", max_jobs=2, seed=2,
        opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 6})]),
        convergence_checker=MaxFuncCalls(3000),
        killing_conditions=MinFuncCalls(200) & BestUnmoving(100, 0.01),
        working_dir=tmp_path, thread_slice=0.005,
    )
    args.update(kw)
    return GloMPOManager(**args)


def test_sliced_threads_run_every_optimizer_and_respect_the_budget(tmp_path):
    r = _mk(tmp_path).start_manager()
    assert 3000 <= r.stats["f_evals"] <= 3000 + 2 * 6
    assert r.stats["opts_started"] >= 3  # hunting and refilling work under turns
    log = read_log(tmp_path)
    per_opt = np.bincount(np.asarray(log["opt_id"], dtype=int), minlength=3)
    # the two optimizers that started together both got turns: nobody starved (each does
    # at least MinFuncCalls(200) before it can be hunted, unless it converges first)
    assert per_opt[1] >= 100 and per_opt[2] >= 100, per_opt


class _Boom(BaseOptimizer):
    def _ask(self):
        if self.n_asked >= 24:
            raise RuntimeError("boom")
        return self.rng.uniform(self.bounds.lower, self.bounds.upper, (6, self.bounds.dim))

    def _tell(self, xs, fs):
        pass


def test_a_crashing_runner_gives_up_its_turn(tmp_path):
    sel = CycleSelector([_Boom, (RandomOptimizer, {"popsize": 6})])
    r = _mk(tmp_path, opt_selector=sel, convergence_checker=MaxFuncCalls(600),
            killing_conditions=False).start_manager()
    assert r.stats["opts_crashed"] >= 1
    assert r.stats["f_evals"] >= 600


def test_checkpoint_while_taking_turns(tmp_path):
    """A checkpoint pauses the runners while one of them may hold the turn: it must give
    the turn up while it waits, or the others could never reach the pause."""
    m = _mk(tmp_path, convergence_checker=MaxFuncCalls(4000),
            checkpoint_control=CheckpointingControl(every_evaluations=1000, at_end=False, keep_last=None))
    m.start_manager()
    assert len(m.checkpoints) >= 3
    for path in m.checkpoints:
        assert len(read_checkpoint(path)["optimizers"]) >= 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"thread_slice": 0}, ConfigError, "positive"),
        ({"thread_slice": -1.0}, ConfigError, "positive"),
        ({"thread_slice": "5ms"}, ConfigTypeError, "number of seconds"),
        ({"thread_slice": True}, ConfigTypeError, "number of seconds"),
        ({"thread_slice": 0.005, "backend": "processes"}, ConfigError, "backend='threads' only"),
    ],
)
def test_bad_thread_slice(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        _mk(tmp_path, **kwargs)


# ----------------------------------------------------------------------------- thread_slice="auto"
# The probe's clocks are replaced (tests/_probeclock.py): each task declares its time, so
# the choice depends on the task's profile, not on how busy the machine is.
def _auto(tmp_path, task, budget=2000, **kw):
    args = dict(task=task, bounds=[(-2.0, 2.0)] * 3, backend="threads", max_jobs=2, seed=1,
                opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 6})]),
                convergence_checker=MaxFuncCalls(budget), killing_conditions=False, working_dir=tmp_path,
                status=None)
    args.update(kw)
    m = GloMPOManager(**args)
    m.start_manager()
    return m


@pytest.mark.parametrize("task, chosen, words, probes", [
    (_probeclock.computes_0_1_ms, 0.01, "holds the GIL", (9, 67)),
    (_probeclock.waits_1_ms, None, "releases the GIL", (9, 67)),
    (_probeclock.waits_6_ms, None, "seldom hand the GIL over", (1, 1)),
], ids=["gil-bound", "gil-releasing", "slow"])
def test_auto_thread_slice_measures_the_task_and_says_why(tmp_path, monkeypatch, task, chosen, words, probes):
    import yaml

    _probeclock.install(monkeypatch)
    m = _auto(tmp_path, task, budget=600 if task is _probeclock.waits_6_ms else 2000)
    assert m.plan.thread_slice == chosen and words in m.plan.reasons["thread_slice"]
    summary = yaml.safe_load((tmp_path / "summary.yml").read_text())
    assert summary["settings"]["plan"]["thread_slice"] == chosen
    assert summary["settings"]["plan"]["reasons"]["thread_slice"] == m.plan.reasons["thread_slice"]
    opt_ids = np.asarray(read_log(tmp_path)["opt_id"])  # (pandas or not)
    n_probe = int((opt_ids == 0).sum())  # the probe's evaluations are logged and counted
    assert probes[0] <= n_probe <= probes[1]
    assert len(opt_ids) == m.result.stats["f_evals"]
    opts = read_log(tmp_path, optimizers=True)
    settings = np.asarray(opts["settings"])[np.asarray(opts["opt_id"]) == 0]
    assert list(settings) == ["thread_slice='auto' probe"]


@pytest.mark.parametrize("kw, words", [
    ({"budget": 150}, "too small to spend a probe on"),
    ({"opt_selector": CycleSelector([(CMAOptimizer, {"popsize": 6, "workers": 2, "backend": "threads"})]),
      "max_jobs": 4}, "Level 2 pools"),
], ids=["small budget", "level 2 pool"])
def test_auto_thread_slice_does_not_probe_when_it_should_not(tmp_path, kw, words):
    m = _auto(tmp_path, _probeclock.computes_0_1_ms, **kw)
    assert m.plan.thread_slice is None and words in m.plan.reasons["thread_slice"]
    assert 0 not in set(read_log(tmp_path)["opt_id"])


@pytest.mark.parametrize("kw", [{"backend": "processes"}, {"max_jobs": 1}, {"thread_slice": None}],
                         ids=["processes", "one job", "off"])
def test_auto_thread_slice_is_not_needed_without_runner_threads_side_by_side(tmp_path, kw):
    m = _auto(tmp_path, _probeclock.computes_0_1_ms, **kw)
    assert m.plan.thread_slice is None and "thread_slice" not in m.plan.reasons
    assert 0 not in set(read_log(tmp_path)["opt_id"])


def _sleeps_briefly(x):
    time.sleep(2e-4)  # a fast task that waits (like a call to a local server)
    return float(np.sum(x * x))


@pytest.mark.parametrize("task, releases, fake", [
    (_probeclock.waits_1_ms, True, True),
    (_probeclock.computes_0_1_ms, False, True),
    # a real sleeping task: a busy machine only makes its CPU share smaller
    (_sleeps_briefly, True, False),
], ids=["waits", "holds the GIL", "really sleeps"])
def test_the_probe_tells_a_fast_waiting_task_from_a_gil_bound_one(task, releases, fake, monkeypatch):
    """Two threads cannot show that 0.2 ms evaluations overlap (handing work to a thread
    costs as much), but the CPU time of the serial ones shows that they wait."""
    from glompo_like.bounds import as_bounds
    from glompo_like.execution.auto import choose_thread_slice, probe_task

    if fake:
        _probeclock.install(monkeypatch)
    profile = probe_task(task, as_bounds([(-1.0, 1.0)] * 3), np.random.default_rng(0), max_serial=16)
    assert profile.releases_gil is releases
    assert (profile.cpu_fraction < 0.5) is releases
    assert len(profile.probes) <= 2 + 2 * 16
    chosen, reason = choose_thread_slice(profile)
    assert (chosen is None) is releases
    if fake:  # (a real task on a very busy machine may also look slow: another reason)
        assert "CPU time" in reason
