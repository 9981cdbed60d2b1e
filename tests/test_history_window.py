"""Optimizers keep only their recent evaluations in memory; the view reads older ones from
the log, and every answer is the one the whole history would give (issue 18: flat memory)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from glompo_like import GloMPOManager, read_log
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.hunters import (
    BaseHunter,
    BestUnmoving,
    EvaluationsUnmoving,
    LastPointsInvalid,
    MinFuncCalls,
    StepSize,
)
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import rastrigin
from glompo_like.record import history
from glompo_like.record.history import GrowingArray, keep_for
from glompo_like.record.ledger import OptimizerRecord
from glompo_like.record.view import OptimizerView

pytestmark = pytest.mark.timeout(120)
DIM = 3


def _records(n: int, keep: int, seed: int = 0) -> tuple[OptimizerRecord, OptimizerRecord, np.ndarray, np.ndarray]:
    """The same evaluations in a record that keeps all and one trimmed as the ledger trims."""
    rng = np.random.default_rng(seed)
    full = OptimizerRecord(1, "T", "T()", 1, 0.0, np.zeros(DIM), DIM)
    cut = OptimizerRecord(1, "T", "T()", 1, 0.0, np.zeros(DIM), DIM)
    all_f, all_x = [], []
    for _ in range(n // 7):
        x = rng.uniform(-1, 1, (7, DIM))
        f = rng.uniform(0, 10, 7) / (1 + len(all_f))
        ok = rng.random(7) > 0.2
        for r in (full, cut):
            r.add_batch(x, f, ok)
        if len(cut.fx) >= 2 * keep:
            cut.trim(keep)
        all_f.extend(np.where(ok, f, np.nan))
        all_x.extend(x)
    return full, cut, np.array(all_f), np.array(all_x)


def _reader(all_f: np.ndarray, all_x: np.ndarray):
    def read(opt_id: int, first: int, stop: int):
        return all_f[:stop], all_x[:stop]
    return history.LogHistory(read, DIM)


@pytest.mark.parametrize("keep", [1, 5, 30])
def test_a_trimmed_history_answers_as_the_whole_one(keep):
    full, cut, all_f, all_x = _records(700, keep)
    assert cut.dropped > 0 and len(cut.fx) < 2 * keep
    a, b = OptimizerView(full), OptimizerView(cut, _reader(all_f, all_x))
    assert a.n_evals == b.n_evals == len(all_f)
    np.testing.assert_array_equal(a.f_history, b.f_history)
    np.testing.assert_array_equal(a.best_history, b.best_history)
    np.testing.assert_array_equal(a.x_history, b.x_history)
    for k in (1, keep, 2 * keep + 3, 50):
        np.testing.assert_array_equal(a.f_last(k), b.f_last(k))
    for n in range(-1, len(all_f) + 3):
        assert a.best_at(n) == b.best_at(n)
        xa, xb = a.best_x_at(n), b.best_x_at(n)
        assert (xa is None and xb is None) or np.array_equal(xa, xb), n
    with pytest.raises(ValueError):
        b.f_history[0] = 1.0  # read-only, as before


def test_an_ended_optimizer_keeps_nothing_and_pickles_small():
    _, cut, all_f, all_x = _records(300, 10)
    cut.trim(0)
    assert len(cut.fx) == len(cut.xs) == len(cut.best_trace) == 0 and cut.dropped == len(all_f)
    v = OptimizerView(cut, _reader(all_f, all_x))
    assert v.best_at(len(all_f)) == np.nanmin(all_f)
    np.testing.assert_array_equal(v.best_x_at(len(all_f)), cut.best_x)
    g = GrowingArray(width=DIM, capacity=10_000)
    g.extend(np.ones((3, DIM)))
    assert len(pickle.dumps(g)) < 1000  # (its spare capacity is not pickled)
    h = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(h.view(), np.ones((3, DIM)))
    h.extend(np.zeros((2, DIM)))
    assert len(h) == 5


def test_keep_follows_the_hunters_window():
    assert keep_for(False) == history.DEFAULT_KEEP
    hunter = MinFuncCalls(10) & (BestUnmoving(5000, 0.01) | EvaluationsUnmoving(30, 0.1))
    assert keep_for(hunter) == 5001
    assert keep_for(StepSize(20, 0.1) | LastPointsInvalid(3)) == history.DEFAULT_KEEP


class LogChecked(BaseHunter):
    """Kills as ``BestUnmoving(40, 0.01)`` does, and checks on every call that the (trimmed)
    view answers what the log itself says."""

    W = 40

    def __init__(self, wd):
        super().__init__()
        self.wd, self.calls, self.checked, self.deep = wd, BestUnmoving(self.W, 0.01), 0, 0

    def lookback(self) -> int:
        return self.W

    def _check(self, run, hunter_id, victim_id):
        v = run.optimizer(victim_id)
        log = read_log(self.wd)
        mine = np.asarray(log["opt_id"]) == victim_id
        fx = np.where(np.asarray(log["status"])[mine] == "ok", np.asarray(log["fx"], dtype=float)[mine], np.nan)
        xs = np.column_stack([np.asarray(log[f"x_{i}"])[mine] for i in range(DIM)])
        n = v.n_evals
        assert n == len(fx)
        np.testing.assert_array_equal(v.f_last(self.W), fx[-self.W:])
        for k in (n - self.W, n - 1, n):
            if k > 0:
                ok = fx[:k][~np.isnan(fx[:k])]
                assert v.best_at(k) == (ok.min() if len(ok) else np.inf)
                x = v.best_x_at(k)
                if len(ok):
                    np.testing.assert_array_equal(x, xs[int(np.nanargmin(fx[:k]))])
        if n > 3 * self.W:
            assert run.optimizer(victim_id)._r.dropped > 0  # (the window is in use)
            np.testing.assert_array_equal(v.f_history, fx)
            np.testing.assert_array_equal(v.x_history, xs)
            self.deep += 1
        self.checked += 1
        return self.calls(run, hunter_id, victim_id)


def test_a_run_keeping_a_short_window_answers_its_hunters_from_the_log(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "DEFAULT_KEEP", 1)
    hunter = LogChecked(tmp_path)
    m = GloMPOManager(task=rastrigin, bounds=[(-5.12, 5.12)] * DIM,
                      opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 6})]), backend="threads",
                      max_jobs=2, convergence_checker=MaxFuncCalls(4000),
                      killing_conditions=MinFuncCalls(150) & hunter, hunt_frequency=12, working_dir=tmp_path, seed=5)
    r = m.start_manager()
    assert m.ledger.keep == LogChecked.W + 1
    assert hunter.checked >= 3 and hunter.deep >= 1 and r.stats["opts_killed"] > 0
    log = read_log(tmp_path)
    for k, rec in m.ledger.records.items():
        assert len(rec.fx) == 0 and rec.dropped == rec.n_rows  # ended: nothing in memory
        mine = np.asarray(log["opt_id"]) == k
        v = m.view.optimizer(k)  # (after the run: read from the closed log's file)
        np.testing.assert_array_equal(v.x_history, np.column_stack([np.asarray(log[f"x_{i}"])[mine] for i in range(DIM)]))
        assert v.best_at(v.n_evals) == rec.best_fx
    # run.history(), what generators read, is every evaluation, optimizer by optimizer
    x, fx = m.view.history()
    order = np.argsort(np.asarray(log["opt_id"]), kind="stable")
    np.testing.assert_array_equal(fx, np.asarray(log["fx"])[order])
    np.testing.assert_array_equal(x, np.column_stack([np.asarray(log[f"x_{i}"])[order] for i in range(DIM)]))
