"""``thread_slice``: runner threads taking turns (for tasks that hold the GIL)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from glompo_like import CheckpointingControl, ConfigError, ConfigTypeError, GloMPOManager, read_log
from glompo_like.backends.turnstile import Turnstile
from glompo_like.checkers import MaxFuncCalls
from glompo_like.checkpoint import read_checkpoint
from glompo_like.functions import rastrigin
from glompo_like.hunters import BestUnmoving, MinFuncCalls
from glompo_like.optimizers import BaseOptimizer, CMAOptimizer, RandomOptimizer
from glompo_like.selectors import CycleSelector

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
        while m.counters.f_evals < 500:
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
