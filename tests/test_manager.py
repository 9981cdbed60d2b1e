"""The engine: every Level 1 backend, budgets, hunting, reproducibility, bad input."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from glompo_like import ConfigError, ConfigTypeError, GlompoError, GloMPOManager, read_log
from glompo_like.optimizers import BaseOptimizer, CMAOptimizer, RandomOptimizer
from glompo_like.policies.checkers import MaxFuncCalls, MaxOptsStarted, TargetCost
from glompo_like.policies.hunters import BestUnmoving, MinFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import rastrigin, sphere

pytestmark = pytest.mark.timeout(60)

BACKENDS = ["threads", "processes", "processes_forced"]
SPHERE_BOUNDS = [(-5.0, 5.0)] * 4


def _manager(**kw):
    args = dict(
        task=sphere,
        bounds=SPHERE_BOUNDS,
        opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 8})]),
        max_jobs=2,
        convergence_checker=MaxFuncCalls(6000) | TargetCost(0.0, atol=1e-8),
        seed=3,
    )
    args.update(kw)
    return GloMPOManager(**args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_solves_sphere_within_budget(backend, tmp_path):
    result = _manager(backend=backend, working_dir=tmp_path).start_manager()
    assert result.fx <= 1e-8
    assert np.allclose(result.x, 0.0, atol=1e-3)
    assert "TargetCost" in result.stats["end_cond"]
    assert result.stats["f_evals"] < 6000
    assert result.origin["type"] == "CMAOptimizer"
    log = read_log(tmp_path)
    assert len(log) == result.stats["f_evals"]
    assert np.nanmin(np.asarray(log["fx"], dtype=float)) == result.fx


@pytest.mark.parametrize("backend", BACKENDS)
def test_budget_overshoot_is_at_most_one_generation_per_optimizer(backend):
    budget, popsize, jobs = 3000, 7, 2
    m = _manager(
        backend=backend,
        task=rastrigin,
        opt_selector=CycleSelector([(CMAOptimizer, {"popsize": popsize})]),
        max_jobs=jobs,
        convergence_checker=MaxFuncCalls(budget),
        killing_conditions=False,
    )
    result = m.start_manager()
    assert budget <= result.stats["f_evals"] <= budget + jobs * popsize
    assert "MaxFuncCalls" in result.stats["end_cond"]


def _sleepy_sphere(x):
    time.sleep(0.002)
    return float(np.dot(x, x))


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_optimizers_share_the_end_of_the_budget(backend, tmp_path, monkeypatch):
    """Near the end of the budget neither optimizer may idle while the other works off a
    large grant: every grant the manager makes in this run gives new credit of at most an
    equal share of the budget nobody has been promised yet (or the one generation an
    optimizer out of credit may have while a whole one is left).  Checked on each grant
    as it is made, so it holds whatever the speed of the two optimizers."""
    from glompo_like.control.flow import Credit

    budget, popsize = 480, 8
    checked, broken = [0], []
    grant = Credit.grant

    def checked_grant(self, rec, others, left, running, now, held=None):
        others = list(others)
        ahead = max(rec.granted_until, rec.generations)
        until = grant(self, rec, others, left, running, now, held)
        if left is not None and until > ahead:
            promised = sum(max(0, r.granted_until - r.generations) * popsize
                           for r in others if r.opt_id and r.holds_credit)
            share = max(popsize, (left - promised) // max(1, running))
            checked[0] += 1
            if (until - ahead) * popsize > share:
                broken.append((rec.opt_id, until - ahead, left, promised, running))
        return until

    monkeypatch.setattr(Credit, "grant", checked_grant)
    m = _manager(
        backend=backend,
        task=_sleepy_sphere,
        opt_selector=CycleSelector([(RandomOptimizer, {"popsize": popsize})]),
        convergence_checker=MaxFuncCalls(budget),
        killing_conditions=False,
        working_dir=tmp_path,
    )
    result = m.start_manager()
    assert checked[0] >= 2 and not broken, broken
    assert result.stats["opts_started"] == 2
    assert budget <= result.stats["f_evals"] <= budget + 2 * popsize
    opt_ids = np.asarray(read_log(tmp_path)["opt_id"])
    assert (opt_ids == 1).any() and (opt_ids == 2).any()


def test_result_and_stats_fields():
    result = _manager(backend="threads").start_manager()
    for key in ("f_evals", "opts_started", "opts_killed", "opts_converged", "opts_crashed",
                "evals_failed", "end_cond", "t_used"):
        assert key in result.stats
    assert result.stats["opts_started"] >= 2
    assert result.stats["t_used"] > 0
    assert set(result.origin) >= {"opt_id", "type"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.fx = 0.0


class _Stuck(BaseOptimizer):
    """Asks the same far-away point forever: a stalled optimizer."""

    def _ask(self):
        return np.full((4, self.bounds.dim), self.bounds.upper)

    def _tell(self, xs, fs):
        pass


class _HunterFirst(CycleSelector):
    """Starts CMA-ES, and the stalled optimizer only once CMA-ES has results (a hunter).

    (Not ``run.f_evals > 0``: the start-up probe's evaluations count there, and a CMA-ES
    runner slow to report its first generation then left the stalled one alone, unhunted,
    for several generations: killed at 48 or 60 evaluations instead of 44, about 1 run in
    50.)"""

    def _choose(self, run, free_slots, rng):
        if run.opts_started == 0:
            return self.entries[0]
        return self.entries[1] if run.optimizer(1).n_evals > 0 else None


def test_hunting_kills_a_stalled_optimizer_deterministically():
    # optimizer 1 (CMA-ES) improves; optimizer 2 is stuck and must be hunted by 1
    selector = _HunterFirst([(CMAOptimizer, {"popsize": 6}), _Stuck], max_spawns=2)
    m = GloMPOManager(
        task=sphere,
        bounds=SPHERE_BOUNDS,
        opt_selector=selector,
        backend="threads",
        max_jobs=2,
        convergence_checker=MaxFuncCalls(3000),
        killing_conditions=MinFuncCalls(40) & BestUnmoving(40, 0.0),
        hunt_frequency=4,
        seed=1,
        report_interval=0,  # decide on every generation before the next is evaluated
    )
    result = m.start_manager()
    stuck = m.view.optimizer(2)
    assert stuck.opt_type == "_Stuck"
    assert stuck.end_kind == "killed"
    assert "killed by optimizer 1" in stuck.end_reason and "BestUnmoving" in stuck.end_reason
    # Its only improvement is its first evaluation (inf -> 100), so its last 40 evaluations
    # show no improvement from n = 41 on, i.e. after its 11th batch of 4.  With
    # report_interval=0 hunts run before a runner may evaluate its next generation, so it
    # is killed exactly there.
    assert stuck.n_evals == 44
    assert result.stats["opts_killed"] == 1
    assert result.origin["opt_id"] == 1


def test_coalesced_reports_still_hunt_and_count_every_generation(tmp_path):
    """With the default report_interval, fast optimizers report a few generations at a
    time; hunting still happens, and every evaluation and generation is accounted for.

    The hunter is a random search: it never converges, so it is still running whenever
    the stalled optimizer's reports arrive, however the two threads are scheduled (a
    CMA-ES hunter could converge, and stop hunting, before a slow-to-report victim had
    shown its 40 unmoving evaluations)."""
    selector = CycleSelector([(RandomOptimizer, {"popsize": 6}), _Stuck], max_spawns=2)
    m = GloMPOManager(task=sphere, bounds=SPHERE_BOUNDS, opt_selector=selector, backend="threads",
                      max_jobs=2, convergence_checker=MaxFuncCalls(20_000), working_dir=tmp_path,
                      killing_conditions=MinFuncCalls(40) & BestUnmoving(40, 0.0), hunt_frequency=4, seed=1)
    r = m.start_manager()
    stuck = m.view.optimizer(2)
    assert stuck.end_kind == "killed" and stuck.n_evals >= 44
    assert "killed by optimizer 1" in stuck.end_reason
    assert stuck.generations * 4 == stuck.n_evals
    assert len(read_log(tmp_path)) == r.stats["f_evals"]


def test_killed_optimizers_are_replaced():
    m = _manager(
        backend="threads",
        task=rastrigin,
        convergence_checker=MaxFuncCalls(8000),
        killing_conditions=MinFuncCalls(100) & BestUnmoving(50, 0.5),
        hunt_frequency=20,
    )
    r = m.start_manager()
    assert r.stats["opts_killed"] >= 1
    assert r.stats["opts_started"] >= 2 + r.stats["opts_killed"]


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_seeded_single_job_runs_are_reproducible(backend):
    def run():
        return _manager(backend=backend, max_jobs=1, task=rastrigin,
                        convergence_checker=MaxFuncCalls(2500), seed=11).start_manager()

    a, b = run(), run()
    assert a.fx == b.fx
    assert np.array_equal(a.x, b.x)
    assert a.stats["f_evals"] == b.stats["f_evals"]
    assert a.stats["opts_started"] == b.stats["opts_started"]


def test_seeded_runs_log_identical_sequences(tmp_path):
    def run(d):
        _manager(backend="threads", max_jobs=1, task=rastrigin, working_dir=d,
                 convergence_checker=MaxFuncCalls(1500), seed=5).start_manager()
        log = read_log(d)
        return np.asarray(log["fx"], dtype=float), np.asarray(log["opt_id"])

    (fa, oa), (fb, ob) = run(tmp_path / "a"), run(tmp_path / "b")
    assert np.array_equal(fa, fb) and np.array_equal(oa, ob)


def test_context_manager_and_single_use():
    with _manager(backend="threads", convergence_checker=MaxFuncCalls(200)) as m:
        m.start_manager()
        with pytest.raises(GlompoError, match="once"):
            m.start_manager()
    assert not [t for t in threading.enumerate() if t.name.startswith("glompo-opt")]


def test_defaults_run_a_managed_search():
    """Only task, bounds and a budget: CMA-ES restarts with hunting on a multimodal task."""
    m = GloMPOManager(task=rastrigin, bounds=[(-5.12, 5.12)] * 4, max_jobs=2,
                      convergence_checker=MaxFuncCalls(8000), seed=2)
    r = m.start_manager()
    assert r.fx < 5.0  # random search at this budget is far worse (typically > 10)
    assert r.stats["opts_started"] >= 3  # restarts happened
    assert r.origin["type"] == "CMAOptimizer"


def test_no_spawn_left_ends_the_run():
    sel = CycleSelector([(RandomOptimizer, {"max_evals": 50})], max_spawns=2)
    r = _manager(backend="threads", opt_selector=sel, convergence_checker=MaxFuncCalls(10_000),
                 thread_slice=None).start_manager()  # no probe evaluations: exact counts
    assert r.stats["opts_started"] == 2
    assert r.stats["opts_converged"] == 2
    assert r.stats["f_evals"] == 100
    assert "no optimizer" in r.stats["end_cond"]


def test_max_opts_started_checker():
    sel = CycleSelector([(RandomOptimizer, {"max_evals": 20})])
    r = _manager(backend="threads", opt_selector=sel, convergence_checker=MaxOptsStarted(3)).start_manager()
    assert r.stats["opts_started"] == 3


def test_working_dir_with_an_earlier_run_is_refused(tmp_path):
    _manager(backend="threads", working_dir=tmp_path, convergence_checker=MaxFuncCalls(100)).start_manager()
    with pytest.raises(ConfigError, match="overwrite=True"):
        _manager(backend="threads", working_dir=tmp_path)
    r = _manager(backend="threads", working_dir=tmp_path, overwrite=True,
                 convergence_checker=MaxFuncCalls(100)).start_manager()
    assert len(read_log(tmp_path)) == r.stats["f_evals"]
    assert (tmp_path / "summary.yml").exists()


def _closure_task():
    offset = 1.5
    return lambda x: float(np.sum((x - offset) ** 2))


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_process_backends_with_every_start_method_and_a_lambda(start_method):
    r = _manager(backend="processes", task=_closure_task(), start_method=start_method,
                 convergence_checker=MaxFuncCalls(1500) | TargetCost(0.0, atol=1e-6)).start_manager()
    assert r.fx < 1e-6
    assert np.allclose(r.x, 1.5, atol=1e-2)


# ----------------------------------------------------------------------------- bad input
class _NotAnOptimizer:
    pass


BAD_INPUTS = [
    ({"bounds": [(1, 0)] * 3}, ConfigError, "lower must be < upper"),
    ({"bounds": [(0, np.inf)]}, ConfigError, "finite"),
    ({"bounds": [(0, 1, 2)]}, ConfigError, "shape"),
    ({"bounds": "abc"}, ConfigTypeError, "bounds"),
    ({"backend": "gpu"}, ConfigError, "backend"),
    ({"max_jobs": 0}, ConfigError, "max_jobs"),
    ({"max_jobs": 1.5}, ConfigTypeError, "max_jobs"),
    ({"task": 42}, ConfigTypeError, "task must be a callable"),
    ({"opt_selector": CycleSelector}, ConfigTypeError, "opt_selector"),
    ({"convergence_checker": MinFuncCalls(3)}, ConfigTypeError, "convergence_checker"),
    ({"killing_conditions": MaxFuncCalls(3)}, ConfigTypeError, "killing_conditions"),
    ({"hunt_frequency": 0}, ConfigError, "hunt_frequency"),
    ({"seed": -1}, ConfigError, "seed"),
    ({"start_method": "teleport"}, ConfigError, "start_method"),
    ({"on_error": "ignore"}, ConfigError, "on_error"),
    ({"task_timeout": -1}, ConfigError, "task_timeout"),
    ({"task_timeout": 5, "backend": "threads"}, ConfigError, "thread cannot be killed"),
    ({"shutdown_grace": 0}, ConfigError, "shutdown_grace"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_INPUTS, ids=[str(list(k)[0]) for k, _, _ in BAD_INPUTS])
def test_bad_input_raises_typed_error_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        _manager(**kwargs)
    assert isinstance(info.value, GlompoError)


def test_entry_that_is_not_an_optimizer():
    with pytest.raises(ConfigTypeError, match="BaseOptimizer"):
        CycleSelector([_NotAnOptimizer])


def test_workers_larger_than_max_jobs():
    sel = CycleSelector([(CMAOptimizer, {"workers": 3, "backend": "threads"})])
    with pytest.raises(ConfigError, match="max_jobs"):
        _manager(opt_selector=sel, max_jobs=2)


def test_daemonic_processes_cannot_own_process_pools():
    sel = CycleSelector([(CMAOptimizer, {"workers": 2, "backend": "processes"})])
    with pytest.raises(ConfigError, match="processes_forced"):
        _manager(opt_selector=sel, backend="processes")


def test_unpicklable_task_is_named():
    lock = threading.Lock()

    def task(x):
        with lock:
            return float(np.sum(x * x))

    with pytest.raises(ConfigError, match="lock") as info:
        _manager(task=task, backend="processes")
    assert "backend='threads'" in str(info.value)
    _manager(task=task, backend="threads")  # fine in threads: nothing to pickle


@pytest.mark.parametrize("share", [True, False])
def test_share_best_solutions_injects_the_incumbent(share):
    seen = []

    class Spy(RandomOptimizer):
        def _inject(self, x, fx):
            seen.append((self.n_told, float(fx), np.array(x)))

    sel = CycleSelector([(Spy, {"popsize": 5})])
    m = GloMPOManager(task=sphere, bounds=SPHERE_BOUNDS, opt_selector=sel, backend="threads", max_jobs=2,
                      convergence_checker=MaxFuncCalls(400), killing_conditions=False, seed=1,
                      share_best_solutions=share, status=None)
    r = m.start_manager()
    if not share:
        assert seen == []
        return
    assert seen, "running optimizers should have been sent the incumbent"
    values = [fx for _, fx, _ in seen]
    # sent whenever the run's best improves: a non-increasing sequence, never below the end
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))
    assert min(values) >= r.fx
    for _, fx, x in seen:
        assert np.isclose(sphere(x), fx)  # the point and its value travel together


def test_a_slow_generation_does_not_hold_back_the_reports_before_it():
    """Finished generations are reported between the evaluations of a slow one, once they
    have waited report_interval, not only when the slow generation ends.

    Ten fast generations of 4 (done well within report_interval=2 s and the credit, so
    they are still waiting to be reported), then a slow one: its first evaluation takes longer than
    report_interval (a sleep: at least that long), and its second waits until the manager
    has counted the 40 fast evaluations.  With the flush that happens between the two;
    without it, the 40 would arrive only after the whole slow generation, so the second
    evaluation would wait in vain (up to 30 s) and the test fails."""
    lock = threading.Lock()
    calls = [0]
    counted_before_slow: list[int] = []
    seen_in_time: list[bool] = []

    def counted(limit: float) -> bool:
        deadline = time.monotonic() + limit
        while m.ledger.counters.f_evals < 40:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def task(x):
        with lock:
            calls[0] += 1
            n = calls[0]
        if n == 41:
            counted_before_slow.append(m.ledger.counters.f_evals)
            time.sleep(2.1)  # longer than report_interval
        elif n == 42:
            seen_in_time.append(counted(30.0))
        return float(np.dot(x, x))

    m = _manager(  # a budget far away: the credit is the lookahead (64 generations), not a share
        backend="threads", task=task, max_jobs=1, seed=None, killing_conditions=False,
        opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 4, "max_evals": 48})], max_spawns=1),
        convergence_checker=MaxFuncCalls(10_000), report_interval=2.0,
    )
    m.start_manager()
    assert counted_before_slow[0] < 40  # the fast generations were still unreported
    assert seen_in_time == [True]
