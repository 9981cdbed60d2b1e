"""The IPOP restart schedule (IPOPSelector), CMAOptimizer's popsize_factor, hunter windows
in generations, and the defaults that use them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from glompo_like import GloMPOManager
from glompo_like.bounds import as_bounds
from glompo_like.errors import ConfigError, ConfigTypeError
from glompo_like.optimizers import CMAOptimizer, DEOptimizer, RandomOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.hunters import BestUnmoving, MinFuncCalls
from glompo_like.policies.selectors import IPOPSelector, OptimizerEntry
from glompo_like.problems.functions import rastrigin
from glompo_like.record.ledger import OptimizerRecord, RunCounters
from glompo_like.record.view import RunView

pytestmark = pytest.mark.timeout(60)


def make_run(dim: int = 3) -> tuple[RunView, RunCounters, dict[int, OptimizerRecord]]:
    counters = RunCounters()
    records: dict[int, OptimizerRecord] = {}
    return RunView(counters, records, 0.0, clock=lambda: 0.0, bounds=as_bounds([(-1, 1)] * dim)), counters, records


# ------------------------------------------------------------------ CMAOptimizer
@pytest.mark.parametrize(("dim", "base"), [(1, 4), (2, 6), (5, 8), (10, 10), (40, 15)])
def test_default_popsize_is_pycmas(dim: int, base: int) -> None:
    assert CMAOptimizer.default_popsize(dim) == base
    opt = CMAOptimizer([(-1, 1)] * dim, seed=0)
    assert opt.generation_size == base  # pycma agrees with the formula


def test_popsize_factor_multiplies_the_default_population() -> None:
    opt = CMAOptimizer([(-1, 1)] * 5, seed=0, popsize_factor=4)
    assert opt.generation_size == 32 and len(opt.ask()) == 32
    assert "popsize=32, popsize_factor=4" in repr(opt)
    assert CMAOptimizer([(-1, 1)] * 5, seed=0, popsize_factor=0.1).generation_size == 2  # at least 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"popsize_factor": 0}, "popsize_factor must be a number > 0"),
        ({"popsize_factor": -2.0}, "popsize_factor must be a number > 0"),
        ({"popsize_factor": float("inf")}, "popsize_factor must be a number > 0"),
        ({"popsize_factor": "2"}, "popsize_factor must be a number > 0"),
        ({"popsize_factor": True}, "popsize_factor must be a number > 0"),
        ({"popsize_factor": 2, "popsize": 10}, "popsize or popsize_factor, not both"),
    ],
)
def test_popsize_factor_validation(kwargs, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CMAOptimizer([(-1, 1)] * 2, **kwargs)
    with pytest.raises(ConfigError, match=match):  # also when only the entry is built
        OptimizerEntry(CMAOptimizer, kwargs)


# ------------------------------------------------------------------ IPOPSelector
def test_ipop_schedule_grows_and_starts_again() -> None:
    run, counters, _ = make_run()
    s = IPOPSelector(growth=2, steps=4)
    assert s.factors == (1.0, 2.0, 4.0, 8.0)
    assert [e.kwargs["popsize_factor"] for e in s.entries] == [1.0, 2.0, 4.0, 8.0]
    picked = []
    for k in range(10):
        counters.opts_started = k
        e = s.select(run, 1, np.random.default_rng(0))
        assert e is not None and e.cls is CMAOptimizer
        picked.append(e.kwargs["popsize_factor"])
    assert picked == [1, 2, 4, 8, 1, 2, 4, 8, 1, 2]


def test_ipop_interleaved_schedule() -> None:
    s = IPOPSelector(growth=2, steps=4, interleave=True)
    assert [s.factors[s.step_of(k)] for k in range(10)] == [1, 2, 1, 4, 1, 8, 1, 2, 1, 4]
    one = IPOPSelector(steps=1, interleave=True)
    assert {one.factors[one.step_of(k)] for k in range(5)} == {1.0}


def test_ipop_keeps_entry_kwargs_and_level2_and_spawn_controls() -> None:
    run, counters, _ = make_run()
    s = IPOPSelector((CMAOptimizer, {"sigma0": 0.3, "workers": 2, "backend": "threads"}),
                     growth=3, steps=3, max_spawns=2)
    assert [(e.kwargs["sigma0"], e.workers, e.backend) for e in s.entries] == [(0.3, 2, "threads")] * 3
    assert [e.kwargs["popsize_factor"] for e in s.entries] == [1.0, 3.0, 9.0]
    assert s.select(run, 1, np.random.default_rng()) is None  # needs 2 slots
    counters.opts_started = 2
    assert s.select(run, 4, np.random.default_rng()) is None  # max_spawns reached
    assert repr(s) == ("IPOPSelector(CMAOptimizer(sigma0=0.3)[workers=2, backend='threads'], growth=3, "
                       "steps=3, interleave=False, max_spawns=2)")
    assert pickle.loads(pickle.dumps(s)).factors == s.factors
    opt = s.entries[2].build([(-1, 1)] * 5, seed=1)
    assert opt.generation_size == 72


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {"growth": 1}, ConfigError, "growth must be a finite number > 1"),
        ((), {"growth": 0.5}, ConfigError, "growth must be a finite number > 1"),
        ((), {"growth": float("nan")}, ConfigError, "growth must be"),
        ((), {"growth": "2"}, ConfigError, "growth must be"),
        ((), {"steps": 0}, ConfigError, "steps must be an integer >= 1"),
        ((), {"steps": 2.5}, ConfigTypeError, "steps must be an integer >= 1"),
        ((), {"interleave": "yes"}, ConfigTypeError, "interleave must be True or False"),
        (((CMAOptimizer, {"popsize": 10}),), {}, ConfigError, r"remove \['popsize'\]"),
        (((CMAOptimizer, {"popsize_factor": 2}),), {}, ConfigError, r"remove \['popsize_factor'\]"),
        ((DEOptimizer,), {}, ConfigError, "DEOptimizer has no popsize_factor argument"),
        ((RandomOptimizer,), {}, ConfigError, "has no popsize_factor"),
        (([CMAOptimizer, CMAOptimizer],), {}, ConfigTypeError, "entry must be one optimizer entry"),
        (("CMAOptimizer",), {}, ConfigTypeError, "entry must be one optimizer entry"),
        (((CMAOptimizer, {"sigma0": -1}),), {}, ConfigError, "sigma0 must be a positive number"),
    ],
)
def test_ipop_validation(args, kwargs, error, match: str) -> None:
    with pytest.raises(error, match=match):
        IPOPSelector(*args, **kwargs)


# ------------------------------------------------------------------ hunters in generations
def add(records, counters, opt_id: int, fx: list[float], generations: int) -> None:
    rec = records.get(opt_id)
    if rec is None:
        rec = records[opt_id] = OptimizerRecord(opt_id, "CMAOptimizer", "CMAOptimizer()", 1, 0.0, np.zeros(3), 3)
    f = np.asarray(fx, dtype=float)
    rec.add_batch(np.zeros((len(f), 3)), f, np.ones(len(f), bool), generations)
    counters.f_evals += len(f)


def test_min_func_calls_with_min_generations() -> None:
    run, counters, records = make_run()
    h = MinFuncCalls(10, min_generations=3)
    add(records, counters, 1, [5.0] * 40, generations=2)  # popsize 20: 40 evaluations, 2 generations
    d = h(run, 0, 1)
    assert not d and d.reason == ("MinFuncCalls(min_evals=10, min_generations=3): opt 1 has done 40 "
                                  "evaluations (>= 10) and 2 generations (< 3)")
    add(records, counters, 1, [5.0] * 20, generations=1)
    assert h(run, 0, 1)
    add(records, counters, 2, [5.0] * 9, generations=9)  # enough generations, too few evaluations
    assert not h(run, 0, 2)
    assert MinFuncCalls(10)(run, 0, 1).reason.endswith("(>= 10)")  # unchanged without the option


def test_best_unmoving_window_in_generations() -> None:
    run, counters, records = make_run()
    # popsize 10: improves in generation 1 only, then flat for 4 generations
    add(records, counters, 1, [9.0] * 10, generations=1)
    add(records, counters, 1, [1.0] * 10, generations=1)
    add(records, counters, 1, [1.0] * 40, generations=4)
    assert BestUnmoving(20, 0.01)(run, 0, 1)  # 20 evaluations = 2 generations: fires
    h = BestUnmoving(20, 0.01, generations=5)  # window 5 generations = 50 evaluations
    assert h.window(run.optimizer(1)) == 50
    d = h(run, 0, 1)
    assert not d and "in its last 50 evaluations" in d.reason
    add(records, counters, 1, [1.0] * 10, generations=1)
    assert h(run, 0, 1)
    # small population: the evaluation window is the longer one
    add(records, counters, 2, [3.0] * 30, generations=30)
    assert BestUnmoving(20, generations=5).window(run.optimizer(2)) == 20
    assert "generations=5" in repr(h)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MinFuncCalls(10, min_generations=0), "min_generations must be an integer >= 1"),
        (lambda: MinFuncCalls(10, min_generations=2.0), "min_generations must be an integer >= 1"),
        (lambda: BestUnmoving(10, generations=0), "generations must be an integer >= 1"),
        (lambda: BestUnmoving(10, generations="5"), "generations must be an integer >= 1"),
    ],
)
def test_generation_options_validated(make, match: str) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match=match):
        make()


# ------------------------------------------------------------------ the defaults
def test_defaults_use_the_ipop_schedule_and_generation_windows() -> None:
    m = GloMPOManager(rastrigin, [(-5.12, 5.12)] * 4, convergence_checker=MaxFuncCalls(10), backend="threads",
                      max_jobs=1, status=None)
    sel = m.settings.opt_selector
    assert isinstance(sel, IPOPSelector)
    assert (sel.growth, sel.steps, sel.interleave) == (2.0, 6, True)
    text = repr(m.settings.killing_conditions)
    assert "min_evals=400, min_generations=50" in text and "calls=160, tol=0.01, generations=25" in text


def test_default_run_starts_growing_populations() -> None:
    m = GloMPOManager(rastrigin, [(-5.12, 5.12)] * 3, convergence_checker=MaxFuncCalls(4000),
                      backend="threads", max_jobs=1, seed=3, status=None)
    with m:
        m.start_manager()
    recs = list(m.ledger.records.values())
    assert len(recs) >= 3  # CMA-ES converges on 3-D Rastrigin well before 4000 evaluations
    assert [r.description for r in recs[:3]] == [f"CMAOptimizer(popsize_factor={f})" for f in (1.0, 2.0, 1.0)]
    pops = [len(r.fx) // r.generations for r in recs]  # evaluations per generation
    base = CMAOptimizer.default_popsize(3)
    assert pops[:4] == [base, 2 * base, base, 4 * base][: len(pops[:4])]


@pytest.mark.parametrize("max_jobs, pooled", [(1, False), (2, True), (3, True), (4, False)])
def test_default_with_few_slots_runs_one_pooled_optimizer(max_jobs: int, pooled: bool) -> None:
    """Issue 20: with 2-3 slots the default runs one restarted CMA-ES whose population is
    evaluated on every slot, rather than several optimizers splitting the evaluations."""
    m = GloMPOManager(rastrigin, [(-5.12, 5.12)] * 3, convergence_checker=MaxFuncCalls(10), max_jobs=max_jobs,
                      status=None)
    sel = m.settings.opt_selector
    assert isinstance(sel, IPOPSelector) and (sel.growth, sel.steps, sel.interleave) == (2.0, 6, True)
    entry = sel.entries[0]
    assert entry.workers == (max_jobs if pooled else 1)
    assert entry.backend == ("auto" if pooled else "serial")
    assert (sel.first is not None) == pooled  # the pooled default starts with a local search
    # daemonic processes cannot own the pool "auto" may choose: the default Level 1 becomes non-daemonic
    assert m.settings.backend == ("processes_forced" if pooled else "processes")


def test_explicit_backend_and_selector_are_kept_with_few_slots() -> None:
    m = GloMPOManager(rastrigin, [(-5.12, 5.12)] * 3, convergence_checker=MaxFuncCalls(10), max_jobs=2,
                      backend="threads", status=None)
    assert m.settings.backend == "threads" and m.settings.opt_selector.entries[0].workers == 2
    m = GloMPOManager(rastrigin, [(-5.12, 5.12)] * 3, convergence_checker=MaxFuncCalls(10), max_jobs=2,
                      opt_selector=IPOPSelector(CMAOptimizer), status=None)
    assert m.settings.backend == "processes" and m.settings.opt_selector.entries[0].workers == 1


def test_pooled_default_run_uses_one_optimizer_at_a_time() -> None:
    m = GloMPOManager(rastrigin, [(-5.12, 5.12)] * 3, convergence_checker=MaxFuncCalls(1500), backend="threads",
                      max_jobs=2, seed=1, status=None)
    with m:
        result = m.start_manager()
    recs = [r for r in m.ledger.records.values() if "probe" not in r.description]  # backend="auto" probes first
    assert len(recs) >= 3 and result.stats["f_evals"] >= 1500
    # a local L-BFGS-B start, then the CMA-ES schedule from its first step
    assert recs[0].description.startswith("ScipyOptimizer(ftol=1e-15, gtol=1e-12, maxfun=300)")
    assert [r.description.split(" ")[0] for r in recs[1:3]] == [
        f"CMAOptimizer(popsize_factor={f})" for f in (1.0, 2.0)]
    assert all(r.slots == 2 for r in recs)  # each takes both slots, so one runs at a time


def test_ipop_first_entry_runs_once_before_the_schedule() -> None:
    from glompo_like.optimizers import ScipyOptimizer

    s = IPOPSelector(CMAOptimizer, interleave=True, first=(ScipyOptimizer, {"ftol": 1e-12}))
    assert s.entries[-1].cls is ScipyOptimizer and len(s.entries) == len(s.factors) + 1
    assert "first=ScipyOptimizer(ftol=1e-12)" in repr(s)
    run, counters, _ = make_run()
    got = []
    for k in range(5):
        counters.opts_started = k
        got.append(s.select(run, 1, np.random.default_rng(0)))
    assert got[0].cls is ScipyOptimizer
    assert [e.kwargs["popsize_factor"] for e in got[1:]] == [1.0, 2.0, 1.0, 4.0]  # the schedule from its start
    with pytest.raises(ConfigTypeError, match="first must be one optimizer entry"):
        IPOPSelector(CMAOptimizer, first=[CMAOptimizer, DEOptimizer])
