"""Asynchronous evaluation (async_eval=True): workers never wait for a generation's slowest
member; values are told as they arrive."""

from __future__ import annotations

import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from glompo_like import ConfigError, GloMPOManager, read_log
from glompo_like.optimizers import (
    DEOptimizer,
    NelderMeadOptimizer,
    PSOOptimizer,
    RandomOptimizer,
)
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import sphere

pytestmark = pytest.mark.timeout(120)

ASYNC = [(DEOptimizer, {"popsize": 8}), (PSOOptimizer, {"swarm_size": 8}), (RandomOptimizer, {"popsize": 8})]
IDS = [c.__name__ for c, _ in ASYNC]


def variable_cost(x):
    """2 to 20 ms depending on where x is: a generation waits for its slowest member."""
    time.sleep(0.002 + 0.018 * abs(np.sin(7 * x[0])))
    return float(np.sum(np.asarray(x) ** 2))


def _run(cls, kw, async_eval, tmp_path, l2="threads", budget=160, task=variable_cost):
    sel = CycleSelector([(cls, {**kw, "workers": 4, "backend": l2, "async_eval": async_eval})])
    m = GloMPOManager(task=task, bounds=[(-2, 2)] * 3, opt_selector=sel,
                      backend="threads" if l2 != "processes" else "processes_forced", max_jobs=4,
                      convergence_checker=MaxFuncCalls(budget), killing_conditions=False, seed=1,
                      working_dir=tmp_path, status=None)
    return m, m.start_manager()


class _HoldsOneBack:
    """A task whose evaluation number ``which`` waits until ``others`` evaluations have
    ended after it began (at most ``limit`` seconds), and records how many did."""

    def __init__(self, which: int, others: int, limit: float) -> None:
        self.which, self.others, self.limit = which, others, limit
        self.lock = threading.Lock()
        self.calls = 0
        self.holding = False
        self.done = 0
        self.enough = threading.Event()
        self.done_while_held: int | None = None

    def __call__(self, x):
        with self.lock:
            self.calls += 1
            held = self.calls == self.which
            self.holding = self.holding or held
        if held:
            self.enough.wait(self.limit)
            with self.lock:
                self.done_while_held = self.done
                self.holding = False
        value = float(np.sum(np.asarray(x) ** 2))
        with self.lock:
            if self.holding:
                self.done += 1
                if self.done >= self.others:
                    self.enough.set()
        return value


@pytest.mark.parametrize("cls, kw", ASYNC, ids=IDS)
def test_async_keeps_all_workers_busy(cls, kw, tmp_path):
    """While one evaluation of the second generation is held back, the other workers go
    on: with async_eval they finish two more generations' worth of evaluations meanwhile;
    a synchronous generation waits for its slowest member, so no more than the rest of
    its generation can finish.  The held evaluation is released by that count (async) or
    after 1 s (sync), so the outcome does not depend on how fast the machine is."""
    held = _HoldsOneBack(which=9, others=16, limit=1.0)
    _run(cls, kw, False, tmp_path / "sync", task=held, budget=40)
    assert held.done_while_held is not None and held.done_while_held <= 8 - 1

    held = _HoldsOneBack(which=9, others=16, limit=60.0)
    _, r_async = _run(cls, kw, True, tmp_path / "async", task=held)
    assert held.done_while_held is not None and held.done_while_held >= 16
    assert 160 <= r_async.stats["f_evals"] <= 160 + 8 + 4  # one generation + those in flight
    assert len(read_log(tmp_path / "async")) == r_async.stats["f_evals"]


def test_async_with_a_process_pool(tmp_path):
    _, r = _run(DEOptimizer, {"popsize": 8}, True, tmp_path, l2="processes", budget=120)
    assert np.isfinite(r.fx) and r.stats["f_evals"] >= 120
    assert len(read_log(tmp_path)) == r.stats["f_evals"]


@pytest.mark.parametrize("cls, kw", ASYNC, ids=IDS)
def test_out_of_order_tells_converge(cls, kw):
    opt = cls([(-5, 5)] * 3, x0=[3.0, -2.0, 4.0], seed=2, async_eval=True, **kw)
    rng = np.random.default_rng(0)
    flight = []
    for _ in range(2500):
        while len(flight) < 4:
            item = opt.ask_one()
            if item is None:
                break
            flight.append(item)
        token, x = flight.pop(int(rng.integers(len(flight))))  # results arrive in any order
        assert np.all(x >= -5) and np.all(x <= 5)
        opt.tell_one(token, x, sphere(x))
    limit = 1.0 if cls is RandomOptimizer else 1e-4
    assert opt.result.fx < limit


@pytest.mark.parametrize("cls, kw", ASYNC[:2], ids=IDS[:2])
def test_async_state_round_trip_gives_identical_asks(cls, kw):
    opt = cls([(-5, 5)] * 3, seed=4, async_eval=True, **kw)
    for _ in range(40):
        token, x = opt.ask_one()
        opt.tell_one(token, x, sphere(x))
    clone = cls([(-5, 5)] * 3, seed=99, async_eval=True, **kw)
    clone.set_state(pickle.loads(pickle.dumps(opt.get_state())))
    for _ in range(5):
        (ta, xa), (tb, xb) = opt.ask_one(), clone.ask_one()
        assert ta == tb and np.array_equal(xa, xb)
        opt.tell_one(ta, xa, sphere(xa))
        clone.tell_one(tb, xb, sphere(xb))


def test_async_eval_on_an_optimizer_without_it_is_refused():
    with pytest.raises(ConfigError):
        CycleSelector([(NelderMeadOptimizer, {"async_eval": True})])
    with pytest.raises(ConfigError, match="async_eval must be True or False"):
        CycleSelector([(DEOptimizer, {"async_eval": "yes"})])


@pytest.mark.parametrize("cls,kw", ASYNC, ids=IDS)
def test_async_eval_on_a_pool_that_cannot_stream_is_refused_when_the_entry_is_built(cls, kw):
    """Dask evaluates whole generations (a batch pool): an asynchronous optimizer on it is
    refused at construction, naming the entry, the backend and the fix."""
    with pytest.raises(ConfigError) as info:
        CycleSelector([(cls, {**kw, "workers": 2, "backend": "dask", "async_eval": True})])
    text = str(info.value)
    assert "CycleSelector entry 0" in text and cls.__name__ in text
    assert "backend='dask'" in text and "async_eval" in text
    assert "use backend='processes' or 'threads', or drop async_eval" in text
    # the same optimizer without async_eval is fine on Dask, and async_eval on every pool that streams
    CycleSelector([(cls, {**kw, "workers": 2, "backend": "dask"})])
    with ThreadPoolExecutor(1) as executor:
        for backend in ("serial", "threads", "processes", "auto", executor):
            CycleSelector([(cls, {**kw, "backend": backend, "async_eval": True})])


def test_async_failures_get_the_penalty_and_are_logged(tmp_path):
    def half_fail(x):
        if x[0] > 0:
            raise ValueError("nope")
        return sphere(x)

    sel = CycleSelector([(DEOptimizer, {"popsize": 6, "workers": 2, "backend": "threads", "async_eval": True})])
    r = GloMPOManager(task=half_fail, bounds=[(-1, 1)] * 2, opt_selector=sel, backend="threads", max_jobs=2,
                      convergence_checker=MaxFuncCalls(120), seed=1, working_dir=tmp_path,
                      status=None).start_manager()
    log = read_log(tmp_path)
    assert r.stats["evals_failed"] == int((np.asarray(log["status"]) == "failed").sum()) > 0
    assert r.x[0] <= 0
