"""``thread_slice``: runner threads taking turns (for tasks that hold the GIL)."""

from __future__ import annotations

import threading
import time

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
def test_turns_are_exclusive_and_handed_on_in_arrival_order():
    ts = Turnstile(0.0)  # every turn() hands on when someone waits
    inside, order, overlaps = [0], [], []
    lock = threading.Lock()

    def worker(name):
        for _ in range(50):
            ts.turn()
            with lock:
                inside[0] += 1
                if inside[0] > 1:
                    overlaps.append(name)
            order.append(name)
            time.sleep(0.0005)
            with lock:
                inside[0] -= 1
        ts.release()

    threads = [threading.Thread(target=worker, args=(n,)) for n in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not overlaps
    assert sorted(order) == sorted("abc" * 50)
    # fair: while all three are busy nobody runs twice in a row
    busy = order[: 3 * 40]
    assert sum(a == b for a, b in zip(busy[:-1], busy[1:], strict=True)) <= 3


def test_a_turn_lasts_its_slice_and_is_kept_when_nobody_waits():
    ts = Turnstile(10.0)
    ts.take()
    ts.turn()  # slice not used up: keeps it
    assert ts.waiting == 0
    got = threading.Event()

    def other():
        ts.take()
        got.set()
        ts.release()

    t = threading.Thread(target=other)
    t.start()
    time.sleep(0.05)
    assert ts.waiting == 1 and not got.is_set()
    ts.turn()  # still inside its slice: the other thread waits
    assert not got.is_set()
    ts.release()  # blocking elsewhere: hands on at once
    t.join(5)
    assert got.is_set()
    ts.release()  # releasing a turn one does not have is harmless


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
    t0 = time.monotonic()
    r = _mk(tmp_path).start_manager()
    assert time.monotonic() - t0 < 30
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
    m = _mk(tmp_path, convergence_checker=MaxFuncCalls(4000),
            checkpoint_control=CheckpointingControl(at_end=False, keep_last=None))

    def poke():
        while m.ledger.counters.f_evals < 500:
            time.sleep(0.005)
        m.checkpoint()

    t = threading.Thread(target=poke)
    t.start()
    m.start_manager()
    t.join(10)
    assert len(m.checkpoints) == 1
    assert len(read_checkpoint(m.checkpoints[0])["optimizers"]) >= 1


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
def _gil_bound(x):
    """About 0.1 ms of pure Python: holds the GIL."""
    s = 0.0
    for _ in range(300):
        s += float(x[0]) * 1e-9
    return float(np.sum(x * x)) + s


def _waits(x):
    time.sleep(0.001)  # releases the GIL
    return float(np.sum(x * x))


def _slow(x):
    time.sleep(0.006)
    return float(np.sum(x * x))


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
    (_gil_bound, 0.01, "holds the GIL", (9, 67)),
    (_waits, None, "releases the GIL", (9, 67)),
    (_slow, None, "seldom hand the GIL over", (1, 1)),
], ids=["gil-bound", "gil-releasing", "slow"])
def test_auto_thread_slice_measures_the_task_and_says_why(tmp_path, task, chosen, words, probes):
    import yaml

    m = _auto(tmp_path, task, budget=600 if task is _slow else 2000)
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
    m = _auto(tmp_path, _gil_bound, **kw)
    assert m.plan.thread_slice is None and words in m.plan.reasons["thread_slice"]
    assert 0 not in set(read_log(tmp_path)["opt_id"])


@pytest.mark.parametrize("kw", [{"backend": "processes"}, {"max_jobs": 1}, {"thread_slice": None}],
                         ids=["processes", "one job", "off"])
def test_auto_thread_slice_is_not_needed_without_runner_threads_side_by_side(tmp_path, kw):
    m = _auto(tmp_path, _gil_bound, **kw)
    assert m.plan.thread_slice is None and "thread_slice" not in m.plan.reasons
    assert 0 not in set(read_log(tmp_path)["opt_id"])


def _sleeps_briefly(x):
    time.sleep(2e-4)  # a fast task that waits (like a call to a local server)
    return float(np.sum(x * x))


@pytest.mark.parametrize("task, releases", [(_sleeps_briefly, True), (_gil_bound, False)],
                         ids=["waits", "holds the GIL"])
def test_the_probe_tells_a_fast_waiting_task_from_a_gil_bound_one(task, releases):
    """Two threads cannot show that 0.2 ms evaluations overlap (handing work to a thread
    costs as much), but the CPU time of the serial ones shows that they wait."""
    from glompo_like.bounds import as_bounds
    from glompo_like.execution.auto import choose_thread_slice, probe_task

    profile = probe_task(task, as_bounds([(-1.0, 1.0)] * 3), np.random.default_rng(0), max_serial=16)
    assert profile.releases_gil is releases
    assert (profile.cpu_fraction < 0.5) is releases
    assert len(profile.probes) <= 2 + 2 * 16
    chosen, reason = choose_thread_slice(profile)
    assert (chosen is None) is releases and "CPU time" in reason
