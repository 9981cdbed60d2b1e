"""Hunters and checkers on scripted run histories (fake clock, no sleeping)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glompo_like.bounds import as_bounds
from glompo_like.errors import ConfigError, ConfigTypeError
from glompo_like.optimizers import CMAOptimizer, RandomOptimizer
from glompo_like.policies.base import AllOf, AnyOf, Decision, next_check_in
from glompo_like.policies.checkers import (
    BaseChecker,
    KillsAfterConvergence,
    MaxFuncCalls,
    MaxKills,
    MaxOptsStarted,
    MaxSeconds,
    NOptConverged,
    TargetCost,
)
from glompo_like.policies.hunters import (
    BaseHunter,
    BestUnmoving,
    EvaluationsUnmoving,
    LastPointsInvalid,
    MinFuncCalls,
    ParameterDistance,
    StepSize,
    TimeAnnealing,
    TypeHunter,
    ValueAnnealing,
)
from glompo_like.record.ledger import OptimizerRecord, RunCounters
from glompo_like.record.view import RunView

DIM = 2
NAN = float("nan")


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Scenario:
    """A run whose counters, clock and optimizer histories the test scripts directly."""

    def __init__(self, t0: float = 0.0, bounds=((-1, 1),) * DIM) -> None:
        self.clock = FakeClock(t0)
        self.counters = RunCounters()
        self.records: dict[int, OptimizerRecord] = {}
        self.run = RunView(self.counters, self.records, t0, clock=self.clock, bounds=as_bounds(bounds))

    def add(self, opt_id: int, fx: list[float], x=None, opt_type: str = "RandomOptimizer") -> None:
        """Append evaluations to optimizer ``opt_id``; ``nan`` marks a failed evaluation.
        ``x``: the evaluated points (default: all at the origin)."""
        rec = self.records.get(opt_id)
        if rec is None:
            rec = self.records[opt_id] = OptimizerRecord(
                opt_id, opt_type, f"{opt_type}()", 1, 0.0, np.zeros(DIM), DIM
            )
        f = np.array(fx, dtype=float)
        ok = ~np.isnan(f)
        xs = np.zeros((len(f), DIM)) if x is None else np.array(x, dtype=float)
        rec.add_batch(xs, np.where(ok, f, 0.0), ok)
        self.counters.f_evals += len(f)


@pytest.fixture
def sc() -> Scenario:
    return Scenario()


class Spy(BaseHunter):
    """A hunter with a fixed answer that counts its calls."""

    def __init__(self, answer: bool) -> None:
        super().__init__()
        self.answer = answer
        self.calls = 0

    def _settings(self) -> str:
        return f"answer={self.answer}"

    def _check(self, run, hunter_id, victim_id) -> bool:
        self.calls += 1
        return self.answer


# ----------------------------------------------------------------------- hunters
def test_min_func_calls_boundary(sc: Scenario) -> None:
    h = MinFuncCalls(5)
    sc.add(1, [3.0] * 4)
    d = h(sc.run, 0, 1)
    assert d == Decision(False, "MinFuncCalls(min_evals=5): opt 1 has done 4 evaluations (< 5)")
    sc.add(1, [3.0])
    d = h(sc.run, 0, 1)
    assert d == Decision(True, "MinFuncCalls(min_evals=5): opt 1 has done 5 evaluations (>= 5)")


def test_min_func_calls_counts_failed_evaluations(sc: Scenario) -> None:
    sc.add(1, [NAN, NAN])
    assert MinFuncCalls(2)(sc.run, 0, 1)


def test_best_unmoving_boundary(sc: Scenario) -> None:
    h = BestUnmoving(3)
    sc.add(1, [5.0, 4.0])
    assert not h(sc.run, 0, 1)
    assert "has done only 2 of 3 evaluations" in h.last.reason
    sc.add(1, [3.0])  # n=3: best before the window is inf, now 3 -> improved
    assert not h(sc.run, 0, 1)
    sc.add(1, [3.5])  # n=4: best_at(1)=5 -> 3
    assert not h(sc.run, 0, 1)
    sc.add(1, [3.5])  # n=5: best_at(2)=4 -> 3
    assert not h(sc.run, 0, 1)
    sc.add(1, [3.2])  # n=6: best_at(3)=3 -> 3: unmoving
    d = h(sc.run, 0, 1)
    assert d == Decision(
        True, "BestUnmoving(calls=3, tol=0): opt 1 best 3 has not improved in its last 3 evaluations"
    )


def test_best_unmoving_reason_with_tolerance(sc: Scenario) -> None:
    sc.add(3, [1.24, 1.23, 1.23])
    d = BestUnmoving(2, tol=0.01)(sc.run, 0, 3)
    assert d == Decision(
        True,
        "BestUnmoving(calls=2, tol=0.01): opt 3 best 1.23 has not improved by more than 1% "
        "in its last 2 evaluations",
    )


@pytest.mark.parametrize(
    ("then", "now", "fired"),
    [
        (8.0, 6.0, True),  # improvement 2 == 0.25 * 8: not more than tol
        (8.0, 5.5, False),
        (-8.0, -10.0, True),  # tolerance uses |best_then|
        (-8.0, -10.5, False),
        (0.0, 0.0, True),
        (0.0, -1e-12, False),
    ],
)
def test_best_unmoving_relative_tolerance(sc: Scenario, then: float, now: float, fired: bool) -> None:
    sc.add(1, [then, then, now])
    d = BestUnmoving(2, tol=0.25)(sc.run, 0, 1)
    assert d.fired is fired
    if not fired:
        assert "best improved from" in d.reason


def test_best_unmoving_without_any_success_is_unmoving(sc: Scenario) -> None:
    sc.add(1, [NAN, NAN, NAN])
    d = BestUnmoving(3)(sc.run, 0, 1)
    assert d.fired
    assert "best inf has not improved" in d.reason


def test_best_unmoving_first_success_in_window_is_progress(sc: Scenario) -> None:
    sc.add(1, [NAN, NAN, NAN, 1.0])
    assert not BestUnmoving(3)(sc.run, 0, 1)


def test_evaluations_unmoving_boundary(sc: Scenario) -> None:
    h = EvaluationsUnmoving(3, 0.01)
    sc.add(1, [100.0, 100.5])
    assert not h(sc.run, 0, 1)
    sc.add(1, [99.5])
    d = h(sc.run, 0, 1)
    assert d.fired
    assert d.reason == (
        "EvaluationsUnmoving(calls=3, tol=0.01): opt 1 last 3 evaluations have std 0.408 "
        "<= 1% of |mean 100|"
    )


def test_evaluations_unmoving_spread_and_window(sc: Scenario) -> None:
    h = EvaluationsUnmoving(3, 0.01)
    sc.add(1, [100.0, 110.0, 90.0])
    assert not h(sc.run, 0, 1)
    assert "> 1% of" in h.last.reason
    sc.add(1, [50.0, 50.0, 50.0])  # only the last 3 values count
    assert h(sc.run, 0, 1)


def test_evaluations_unmoving_ignores_failures(sc: Scenario) -> None:
    h = EvaluationsUnmoving(3, 0.0)
    sc.add(1, [7.0, 100.0, NAN])
    sc.add(2, [NAN, 5.0, 5.0, NAN])
    sc.add(3, [5.0, NAN, 5.0, NAN])
    assert not h(sc.run, 0, 1)  # window [7, 100, nan]: spread
    assert h(sc.run, 0, 2)  # window [5, 5, nan]: std 0
    assert not h(sc.run, 0, 3)  # window [nan, 5, nan]: one success only
    assert h.last.reason.endswith("has 1 successful evaluations in its last 3 (needs 2)")


def test_hunter_looks_only_at_the_victim(sc: Scenario) -> None:
    sc.add(1, [1.0] * 10)
    sc.add(2, [1.0])
    h = MinFuncCalls(5)
    assert h(sc.run, 2, 1)
    assert not h(sc.run, 1, 2)


def test_custom_hunter_default_reason(sc: Scenario) -> None:
    sc.add(1, [1.0])
    d = Spy(True)(sc.run, 0, 1)
    assert d == Decision(True, "Spy(answer=True) met")
    with pytest.raises(TypeError):
        BaseHunter()  # type: ignore[abstract]


# ------------------------------------------------------------------- snapshot x history
def test_x_history_and_best_x_at(sc: Scenario) -> None:
    sc.add(1, [5.0, NAN, 3.0], x=[[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]])
    sc.add(1, [3.0, 4.0], x=[[0.4, 0.4], [0.5, 0.5]])  # a tie keeps the first best point
    v = sc.run.optimizer(1)
    np.testing.assert_array_equal(v.x_history[:, 0], [0.1, 0.2, 0.3, 0.4, 0.5])
    assert v.x_history.shape == (5, DIM)
    with pytest.raises(ValueError):
        v.x_history[0, 0] = 9.0  # read-only
    assert v.best_x_at(0) is None
    np.testing.assert_array_equal(v.best_x_at(1), [0.1, 0.1])
    np.testing.assert_array_equal(v.best_x_at(2), [0.1, 0.1])  # the failure changes nothing
    np.testing.assert_array_equal(v.best_x_at(3), [0.3, 0.3])
    np.testing.assert_array_equal(v.best_x_at(5), v.best_x)
    np.testing.assert_array_equal(v.best_x_at(99), v.best_x)
    sc.add(2, [NAN, NAN])
    assert sc.run.optimizer(2).best_x_at(2) is None


def test_x_history_grows_past_its_capacity(sc: Scenario) -> None:
    xs = np.column_stack([np.arange(600.0), -np.arange(600.0)]) / 1000
    sc.add(1, list(np.arange(600.0, 0.0, -1.0)), x=xs)
    v = sc.run.optimizer(1)
    np.testing.assert_array_equal(v.x_history, xs)
    np.testing.assert_array_equal(v.best_x_at(300), xs[299])


# ----------------------------------------------------------------------- new hunters
def test_last_points_invalid_boundary(sc: Scenario) -> None:
    h = LastPointsInvalid(2)
    sc.add(1, [NAN])
    assert h(sc.run, 0, 1) == Decision(
        False, "LastPointsInvalid(n=2): opt 1 has done only 1 of 2 evaluations"
    )
    sc.add(1, [1.0])
    assert h(sc.run, 0, 1) == Decision(
        False, "LastPointsInvalid(n=2): 1 of opt 1 last 2 evaluations succeeded"
    )
    sc.add(1, [NAN])
    assert not h(sc.run, 0, 1)
    sc.add(1, [NAN])
    assert h(sc.run, 0, 1) == Decision(True, "LastPointsInvalid(n=2): opt 1 last 2 evaluations all failed")
    sc.add(1, [2.0])
    assert not h(sc.run, 0, 1)
    assert repr(LastPointsInvalid()) == "LastPointsInvalid(n=1)"


def test_parameter_distance_boundary() -> None:
    sc = Scenario(bounds=[(0, 3), (0, 4)])  # box diagonal 5: 10% of it is 0.5
    sc.add(1, [1.0], x=[[0.0, 0.0]])
    sc.add(2, [2.0], x=[[0.0, 0.5]])
    sc.add(3, [2.0], x=[[0.0, math.nextafter(0.5, 1.0)]])
    h = ParameterDistance(0.1)
    assert h(sc.run, 1, 2) == Decision(
        True,
        "ParameterDistance(relative_distance=0.1): opt 2 best point is 0.5 from opt 1 best point "
        "(<= 10% of the box diagonal 5)",
    )
    d = h(sc.run, 1, 3)
    assert not d
    assert "(> 10% of the box diagonal 5)" in d.reason


def test_parameter_distance_test_all_uses_the_last_point() -> None:
    sc = Scenario(bounds=[(0, 3), (0, 4)])
    sc.add(1, [1.0], x=[[1.0, 1.0]])
    sc.add(2, [2.0, 9.0], x=[[3.0, 4.0], [1.2, 1.0]])  # best far away, last point close
    assert not ParameterDistance(0.1)(sc.run, 1, 2)
    d = ParameterDistance(0.1, test_all=True)(sc.run, 1, 2)
    assert d.fired
    assert d.reason.startswith(
        "ParameterDistance(relative_distance=0.1, test_all=True): opt 2 last point is 0.2 from"
    )


def test_parameter_distance_needs_both_points(sc: Scenario) -> None:
    sc.add(1, [1.0])
    sc.add(2, [NAN, NAN])
    h = ParameterDistance(0.5)
    assert h(sc.run, 1, 2) == Decision(
        False, "ParameterDistance(relative_distance=0.5): opt 2 has no best point yet"
    )
    assert h(sc.run, 2, 1) == Decision(
        False, "ParameterDistance(relative_distance=0.5): opt 2 has no best point yet"
    )
    assert ParameterDistance(0.5, test_all=True)(sc.run, 1, 2).fired  # its last point is known


def test_step_size_boundary() -> None:
    sc = Scenario(bounds=[(0, 3), (0, 4)])  # diagonal 5
    h = StepSize(2, relative_tol=0.1)  # moves of at most 0.5 count as stalled
    sc.add(1, [5.0], x=[[1.0, 1.0]])
    assert h(sc.run, 0, 1) == Decision(
        False, "StepSize(calls=2, relative_tol=0.1): opt 1 has done only 1 of 2 evaluations"
    )
    sc.add(1, [4.0, 6.0], x=[[1.0, 1.5], [2.0, 2.0]])  # n=3: best [1, 1] -> [1, 1.5]
    assert h(sc.run, 0, 1) == Decision(
        True,
        "StepSize(calls=2, relative_tol=0.1): opt 1 best point moved 0.5 in its last 2 evaluations "
        "(<= 10% of the box diagonal 5)",
    )
    sc.add(1, [3.0], x=[[1.0, 2.5]])  # n=4: best [1, 1.5] -> [1, 2.5]
    d = h(sc.run, 0, 1)
    assert not d
    assert "moved 1 in its last 2 evaluations (> 10%" in d.reason
    sc.add(1, [7.0, 8.0], x=[[3.0, 4.0], [0.0, 0.0]])  # n=6: best [1, 2.5] -> [1, 2.5]
    assert h(sc.run, 0, 1)
    assert "moved 0 in" in h.last.reason


def test_step_size_without_successes(sc: Scenario) -> None:
    h = StepSize(2, 0.0)
    sc.add(1, [NAN, NAN])
    assert h(sc.run, 0, 1) == Decision(
        True, "StepSize(calls=2, relative_tol=0): opt 1 has no successful evaluation in its last 2 evaluations"
    )
    sc.add(1, [1.0])
    assert h(sc.run, 0, 1) == Decision(
        False, "StepSize(calls=2, relative_tol=0): opt 1 found its first best point in its last 2 evaluations"
    )


def _draws(seed: int, k: int) -> list[float]:
    r = np.random.default_rng(seed)
    return [float(r.random()) for _ in range(k)]


def test_time_annealing_probability_and_reason(sc: Scenario) -> None:
    sc.add(1, [1.0] * 8)  # hunter
    sc.add(2, [2.0] * 4)  # victim: ratio 0.5
    h = TimeAnnealing(crit_ratio=1.0, seed=3)
    u = _draws(3, 1)[0]
    d = h(sc.run, 1, 2)
    assert d.fired is (u < 0.5)
    rel = "<" if u < 0.5 else ">="
    assert d.reason == (
        f"TimeAnnealing(crit_ratio=1, seed=3): opt 2 has done 4 evaluations to opt 1's 8, "
        f"kill probability 0.5, draw {u:.3g} ({rel} 0.5)"
    )
    # ratio / crit_ratio >= 1: always; crit_ratio scales the ratio
    sc.add(2, [2.0] * 4)
    assert all(TimeAnnealing(seed=s)(sc.run, 1, 2) for s in range(20))
    assert "kill probability 0.5," in TimeAnnealing(crit_ratio=2.0, seed=0)(sc.run, 1, 2).reason
    sc.add(3, [NAN])
    sc.add(3, [])  # an empty batch adds nothing; the failed evaluation counts
    assert "kill probability 0.125," in TimeAnnealing(seed=0)(sc.run, 1, 3).reason


def test_time_annealing_edge_counts(sc: Scenario) -> None:
    sc.add(1, [])
    sc.add(2, [1.0])
    sc.add(3, [])
    assert all(TimeAnnealing(seed=s)(sc.run, 1, 2) for s in range(20))  # hunter has none
    assert not any(TimeAnnealing(seed=s)(sc.run, 2, 3) for s in range(20))  # victim has none


def test_time_annealing_frequency(sc: Scenario) -> None:
    sc.add(1, [1.0] * 4)
    sc.add(2, [2.0])
    h = TimeAnnealing(seed=11)  # probability 0.25
    fired = sum(bool(h(sc.run, 1, 2)) for _ in range(4000))
    assert 0.22 < fired / 4000 < 0.28


def _sequence(h, run, k: int, hunter: int = 1, victim: int = 2) -> list[Decision]:
    return [h(run, hunter, victim) for _ in range(k)]


@pytest.mark.parametrize("make", [lambda s: TimeAnnealing(seed=s), lambda s: ValueAnnealing(seed=s)])
def test_annealing_reproducible_and_resumable(sc: Scenario, make) -> None:
    import pickle

    sc.add(1, [1.0] * 4)
    sc.add(2, [2.0] * 2)  # TimeAnnealing: p=0.5; ValueAnnealing: relative gap 1, p=0.5
    a, b = make(5), make(5)
    first = _sequence(a, sc.run, 30)
    assert first == _sequence(b, sc.run, 30)
    assert 5 < sum(d.fired for d in first) < 25
    assert [d.fired for d in _sequence(make(6), sc.run, 30)] != [d.fired for d in first]
    state = pickle.loads(pickle.dumps(a.get_state()))
    resumed = make(5)  # a resumed run rebuilds its hunters from the same settings
    resumed.set_state(state)
    after = _sequence(a, sc.run, 30)
    assert _sequence(resumed, sc.run, 30) == after
    assert after != first  # without the state it would repeat the start of the sequence


def test_annealing_state_inside_compounds(sc: Scenario) -> None:
    sc.add(1, [1.0] * 4)
    sc.add(2, [2.0] * 2)
    make = lambda: MinFuncCalls(1) & (TimeAnnealing(seed=1) | ValueAnnealing(seed=2))  # noqa: E731
    h = make()
    _sequence(h, sc.run, 7)
    state = h.get_state()
    assert set(state["parts"][1]["parts"][0]) == {"rng"}
    other = make()
    other.set_state(state)
    assert _sequence(other, sc.run, 20) == _sequence(h, sc.run, 20)


@pytest.mark.parametrize(
    ("fh", "fv", "p"),
    [
        (1.0, 2.0, "0.5"),  # relative gap 1 == scale
        (2.0, 8.0, "0.75"),  # gap 3
        (-4.0, -2.0, "0.333"),  # gap 0.5, relative to |hunter|
        (1.0, 1.0, "0"),
        (3.0, 1.0, "0"),  # a better victim is never killed
        (0.0, 1e-9, "1"),
        (1.0, NAN, "1"),  # no successful evaluation
    ],
)
def test_value_annealing_probability(sc: Scenario, fh: float, fv: float, p: str) -> None:
    sc.add(1, [fh])
    sc.add(2, [fv])
    d = ValueAnnealing(seed=0)(sc.run, 1, 2)
    assert f"kill probability {p}," in d.reason
    if p == "1":
        assert all(ValueAnnealing(seed=s)(sc.run, 1, 2) for s in range(20))
    if p == "0":
        assert not any(ValueAnnealing(seed=s)(sc.run, 1, 2) for s in range(20))


def test_value_annealing_reason_and_scale(sc: Scenario) -> None:
    sc.add(1, [1.0])
    sc.add(2, [3.0])
    u = _draws(4, 1)[0]
    d = ValueAnnealing(scale=2.0, seed=4)(sc.run, 1, 2)
    rel = "<" if u < 0.5 else ">="
    assert d == Decision(
        u < 0.5,
        f"ValueAnnealing(scale=2, seed=4): opt 2 best 3 vs opt 1 best 1 (relative gap 2), "
        f"kill probability 0.5, draw {u:.3g} ({rel} 0.5)",
    )
    sc.add(3, [NAN])
    assert not ValueAnnealing(seed=0)(sc.run, 3, 2)  # the hunter has no value: probability 0


def test_type_hunter(sc: Scenario) -> None:
    sc.add(1, [1.0], opt_type="CMAOptimizer")
    sc.add(2, [2.0])
    h = TypeHunter("RandomOptimizer")
    assert h(sc.run, 1, 2) == Decision(True, "TypeHunter(opt_type='RandomOptimizer'): opt 2 is a RandomOptimizer")
    assert h(sc.run, 2, 1) == Decision(
        False, "TypeHunter(opt_type='RandomOptimizer'): opt 1 is a CMAOptimizer, not a RandomOptimizer"
    )
    assert repr(TypeHunter(CMAOptimizer)) == "TypeHunter(opt_type='CMAOptimizer')"
    assert TypeHunter(CMAOptimizer)(sc.run, 2, 1)


def test_new_hunters_combine(sc: Scenario) -> None:
    sc.add(1, [1.0] * 5, opt_type="CMAOptimizer")
    sc.add(2, [2.0, 2.0, NAN], opt_type="RandomOptimizer")
    sc.add(3, [2.0, 2.0, NAN, NAN], opt_type="CMAOptimizer")
    young_random = TypeHunter(RandomOptimizer) & MinFuncCalls(3)
    assert young_random(sc.run, 1, 2)
    assert not young_random(sc.run, 1, 3)
    h = (TypeHunter("RandomOptimizer") & MinFuncCalls(4)) | LastPointsInvalid(2)
    assert str(h) == (
        "((TypeHunter(opt_type='RandomOptimizer') & MinFuncCalls(min_evals=4)) | LastPointsInvalid(n=2))"
    )
    assert not h(sc.run, 1, 2)
    assert str(h) == (
        "((TypeHunter(opt_type='RandomOptimizer') [T] & MinFuncCalls(min_evals=4) [F]) "
        "| LastPointsInvalid(n=2) [F])"
    )
    d = h(sc.run, 1, 3)
    assert d == Decision(True, "LastPointsInvalid(n=2): opt 3 last 2 evaluations all failed")
    sc.add(2, [NAN])
    d = h(sc.run, 1, 2)
    assert d.reason == (
        "TypeHunter(opt_type='RandomOptimizer'): opt 2 is a RandomOptimizer and "
        "MinFuncCalls(min_evals=4): opt 2 has done 4 evaluations (>= 4)"
    )
    near = ParameterDistance(0.5) & StepSize(1, 1.0) & ValueAnnealing(seed=0)
    assert near.kind == "hunter"
    with pytest.raises(TypeError, match="cannot combine"):
        TimeAnnealing() | MaxKills(1)


def test_new_hunter_reprs() -> None:
    assert repr(ParameterDistance(0.05, test_all=True)) == (
        "ParameterDistance(relative_distance=0.05, test_all=True)"
    )
    assert repr(StepSize(np.int64(50), 0.001)) == "StepSize(calls=50, relative_tol=0.001)"
    assert repr(TimeAnnealing()) == "TimeAnnealing(crit_ratio=1)"
    assert str(TimeAnnealing(2.5, seed=7)) == "TimeAnnealing(crit_ratio=2.5, seed=7)"
    assert repr(ValueAnnealing(seed=0)) == "ValueAnnealing(scale=1, seed=0)"


def test_hunters_needing_bounds_say_so() -> None:
    counters, records = RunCounters(), {}
    run = RunView(counters, records, 0.0, clock=FakeClock())
    records[1] = OptimizerRecord(1, "R", "R()", 1, 0.0, np.zeros(DIM), DIM)
    for h in (ParameterDistance(0.1), StepSize(1, 0.1)):
        with pytest.raises(ConfigError, match="needs the run's bounds"):
            h(run, 1, 1)


# ----------------------------------------------------------------------- combining
def test_and_short_circuits_and_str_shows_outcomes(sc: Scenario) -> None:
    sc.add(1, [1.0] * 4)
    a, b = MinFuncCalls(5), BestUnmoving(3)
    h = a & b
    assert isinstance(h, AllOf)
    assert str(h) == "(MinFuncCalls(min_evals=5) & BestUnmoving(calls=3, tol=0))"
    d = h(sc.run, 0, 1)
    assert not d
    assert d.reason == a.last.reason
    assert b.last is None  # never evaluated
    assert str(h) == "(MinFuncCalls(min_evals=5) [F] & BestUnmoving(calls=3, tol=0))"
    sc.add(1, [1.0])
    d = h(sc.run, 0, 1)
    assert d.fired
    assert d.reason == f"{a.last.reason} and {b.last.reason}"
    assert str(h) == "(MinFuncCalls(min_evals=5) [T] & BestUnmoving(calls=3, tol=0) [T])"


def test_or_short_circuits(sc: Scenario) -> None:
    sc.add(1, [1.0])
    first, second = Spy(True), Spy(False)
    d = (first | second)(sc.run, 0, 1)
    assert d == Decision(True, "Spy(answer=True) met")
    assert (first.calls, second.calls) == (1, 0)
    first.answer = False
    d = (first | second)(sc.run, 0, 1)
    assert d == Decision(False, "Spy(answer=False) not met")
    assert (first.calls, second.calls) == (2, 1)


def test_compounds_flatten_and_keep_order() -> None:
    a, b, c = MinFuncCalls(1), MinFuncCalls(2), MinFuncCalls(3)
    h = (a & b) & c
    assert h.parts == (a, b, c)
    mixed = a & (b | c)
    assert isinstance(mixed.parts[1], AnyOf)
    assert repr(mixed) == (
        "(MinFuncCalls(min_evals=1) & (MinFuncCalls(min_evals=2) | MinFuncCalls(min_evals=3)))"
    )
    assert mixed.kind == "hunter"


@pytest.mark.parametrize(
    "combine",
    [
        lambda: MinFuncCalls(5) & MaxFuncCalls(5),
        lambda: MaxFuncCalls(5) | MinFuncCalls(5),
        lambda: (MinFuncCalls(5) | BestUnmoving(3)) & MaxKills(1),
        lambda: MinFuncCalls(5) & 5,
    ],
)
def test_mixing_kinds_raises_type_error(combine) -> None:
    with pytest.raises(TypeError, match="cannot combine"):
        combine()


# ----------------------------------------------------------------------- checkers
def test_max_func_calls_boundary_and_remaining(sc: Scenario) -> None:
    c = MaxFuncCalls(10)
    sc.counters.f_evals = 9
    assert c(sc.run) == Decision(False, "MaxFuncCalls(max_evals=10): 9 evaluations (< 10)")
    assert c.remaining(sc.run) == 1
    sc.counters.f_evals = 10
    assert c(sc.run) == Decision(True, "MaxFuncCalls(max_evals=10): 10 evaluations (>= 10)")
    assert c.remaining(sc.run) == 0
    sc.counters.f_evals = 13
    assert c.remaining(sc.run) == 0


def test_target_cost_boundary(sc: Scenario) -> None:
    c = TargetCost(1.0, atol=0.5)
    assert not c(sc.run)  # no value yet: best is inf
    sc.counters.best_fx = math.nextafter(1.5, 2.0)
    assert not c(sc.run)
    sc.counters.best_fx = 1.5
    assert c(sc.run) == Decision(True, "TargetCost(target=1, atol=0.5): best 1.5 <= 1.5")
    assert repr(TargetCost(-3)) == "TargetCost(target=-3)"


def test_max_seconds_session_time() -> None:
    sc = Scenario(t0=100.0)
    c = MaxSeconds(10)
    sc.clock.t = 109.5
    assert not c(sc.run)
    assert c.next_check_in(sc.run) == pytest.approx(0.5)
    sc.clock.t = 110.0
    assert c(sc.run) == Decision(True, "MaxSeconds(seconds=10): 10.0 s used (>= 10 s)")
    assert c.next_check_in(sc.run) == 0.0
    sc.clock.t = 130.0
    assert c.next_check_in(sc.run) == 0.0


def test_max_seconds_overall_counts_earlier_sessions() -> None:
    sc = Scenario(t0=0.0)
    sc.counters.t_used_before = 6.0
    session, overall = MaxSeconds(10), MaxSeconds(10, overall=True)
    sc.clock.t = 3.5
    assert not overall(sc.run)
    assert overall.next_check_in(sc.run) == pytest.approx(0.5)
    assert session.next_check_in(sc.run) == pytest.approx(6.5)
    sc.clock.t = 4.0
    assert overall(sc.run)
    assert not session(sc.run)
    assert repr(overall) == "MaxSeconds(seconds=10, overall=True)"


def test_next_check_in_of_compounds() -> None:
    sc = Scenario(t0=0.0)
    sc.clock.t = 2.0
    assert next_check_in(MaxFuncCalls(5), sc.run) is None
    assert next_check_in(MaxFuncCalls(5) | TargetCost(0.0), sc.run) is None
    assert next_check_in(MaxSeconds(10) | MaxFuncCalls(5), sc.run) == pytest.approx(8.0)
    both = MaxFuncCalls(5) | (MaxSeconds(30) & MaxSeconds(4))
    assert next_check_in(both, sc.run) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("cls", "counter", "noun"),
    [
        (NOptConverged, "opts_converged", "optimizers converged"),
        (MaxOptsStarted, "opts_started", "optimizers started"),
        (MaxKills, "opts_killed", "optimizers killed"),
    ],
)
def test_counter_checkers_boundary(sc: Scenario, cls, counter: str, noun: str) -> None:
    c = cls(3)
    setattr(sc.counters, counter, 2)
    assert c(sc.run) == Decision(False, f"{cls.__name__}(n=3): 2 {noun} (< 3)")
    setattr(sc.counters, counter, 3)
    assert c(sc.run) == Decision(True, f"{cls.__name__}(n=3): 3 {noun} (>= 3)")


def test_kills_after_convergence(sc: Scenario) -> None:
    c = KillsAfterConvergence(kills=2, converged=1)
    sc.counters.opts_killed = 5
    d = c(sc.run)
    assert d == Decision(False, "KillsAfterConvergence(kills=2, converged=1): 0 of 1 optimizers converged")
    sc.counters.opts_converged = 1
    sc.counters.converged_at_kill_count[1] = 3  # 3 kills before the first convergence
    sc.counters.opts_killed = 4
    assert not c(sc.run)
    sc.counters.opts_killed = 5
    assert c(sc.run) == Decision(
        True, "KillsAfterConvergence(kills=2, converged=1): 2 optimizers killed since convergence 1 (>= 2)"
    )
    assert not KillsAfterConvergence(kills=1, converged=2)(sc.run)


def test_checkers_compose(sc: Scenario) -> None:
    c = MaxFuncCalls(100) | TargetCost(0.0)
    sc.counters.best_fx = -1.0
    d = c(sc.run)
    assert d.fired
    assert d.reason.startswith("TargetCost(target=0)")
    assert str(c) == "(MaxFuncCalls(max_evals=100) [F] | TargetCost(target=0) [T])"
    with pytest.raises(TypeError):
        BaseChecker()  # type: ignore[abstract]


def test_compound_state_round_trip() -> None:
    c = MaxFuncCalls(10) & (MaxSeconds(5) | MaxKills(2))
    state = c.get_state()
    assert state == {"parts": [{}, {"parts": [{}, {}]}]}
    c.set_state(state)


# ----------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: MinFuncCalls(0), "min_evals"),
        (lambda: MinFuncCalls(2.5), "min_evals"),
        (lambda: MinFuncCalls(True), "min_evals"),
        (lambda: BestUnmoving(0), "calls"),
        (lambda: BestUnmoving(3, tol=-0.1), "tol"),
        (lambda: BestUnmoving(3, tol=NAN), "tol"),
        (lambda: EvaluationsUnmoving(1, 0.1), "calls"),
        (lambda: EvaluationsUnmoving(3, "small"), "tol"),
        (lambda: MaxFuncCalls(0), "max_evals"),
        (lambda: MaxFuncCalls("10"), "max_evals"),
        (lambda: TargetCost(NAN), "target"),
        (lambda: TargetCost(0.0, atol=-1), "atol"),
        (lambda: MaxSeconds(0), "seconds"),
        (lambda: MaxSeconds(math.inf), "seconds"),
        (lambda: MaxSeconds(5, overall="yes"), "overall"),
        (lambda: NOptConverged(0), "n"),
        (lambda: MaxOptsStarted(None), "n"),
        (lambda: MaxKills(-1), "n"),
        (lambda: KillsAfterConvergence(kills=0), "kills"),
        (lambda: KillsAfterConvergence(converged=1.0), "converged"),
        (lambda: LastPointsInvalid(0), "n"),
        (lambda: LastPointsInvalid(1.5), "n"),
        (lambda: ParameterDistance(-0.1), "relative_distance"),
        (lambda: ParameterDistance(math.inf), "relative_distance"),
        (lambda: ParameterDistance(0.1, test_all="yes"), "test_all"),
        (lambda: StepSize(0, 0.1), "calls"),
        (lambda: StepSize(5, None), "relative_tol"),
        (lambda: TimeAnnealing(0), "crit_ratio"),
        (lambda: TimeAnnealing(-1.0), "crit_ratio"),
        (lambda: TimeAnnealing(1.0, seed=-1), "seed"),
        (lambda: TimeAnnealing(1.0, seed=1.5), "seed"),
        (lambda: ValueAnnealing(scale=0.0), "scale"),
        (lambda: ValueAnnealing(seed="x"), "seed"),
        (lambda: TypeHunter(""), "opt_type"),
        (lambda: TypeHunter(3), "opt_type"),
        (lambda: TypeHunter(RandomOptimizer([(0, 1)])), "opt_type"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_argument(make, argument: str) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match=rf": {argument} must be"):
        make()


@pytest.mark.parametrize("make", [lambda: MinFuncCalls(2.5), lambda: MaxFuncCalls("10"),
                                  lambda: BestUnmoving(3, tol="small"), lambda: ParameterDistance(0.1, test_all="yes"),
                                  lambda: TimeAnnealing(1.0, seed=1.5), lambda: MaxSeconds(True)])
def test_a_wrong_type_is_a_type_error(make) -> None:
    """The one rule: a wrong type raises ConfigTypeError (a TypeError) ..."""
    with pytest.raises(ConfigTypeError) as info:
        make()
    assert isinstance(info.value, TypeError) and not isinstance(info.value, ValueError)


@pytest.mark.parametrize("make", [lambda: MinFuncCalls(0), lambda: MaxFuncCalls(-3), lambda: BestUnmoving(3, tol=-0.1),
                                  lambda: TimeAnnealing(0), lambda: TargetCost(math.nan), lambda: MaxSeconds(0)])
def test_a_wrong_value_is_a_value_error(make) -> None:
    """... and a wrong value of the right type raises ConfigError (a ValueError)."""
    with pytest.raises(ConfigError) as info:
        make()
    assert isinstance(info.value, ValueError) and not isinstance(info.value, TypeError)


def test_validation_message_says_how_to_fix() -> None:
    with pytest.raises(ConfigError) as info:
        MinFuncCalls(0)
    assert str(info.value) == (
        "MinFuncCalls: min_evals must be an integer >= 1, got 0; e.g. min_evals=100"
    )


def test_numpy_integers_are_accepted() -> None:
    assert MinFuncCalls(np.int64(7)).min_evals == 7
    assert repr(BestUnmoving(np.int32(4), tol=np.float64(0.5))) == "BestUnmoving(calls=4, tol=0.5)"
