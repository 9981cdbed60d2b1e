"""Start-point generators, optimizer entries and selectors on scripted run snapshots."""

from __future__ import annotations

import pickle
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from glompo_like.bounds import as_bounds
from glompo_like.errors import ConfigError, ConfigTypeError
from glompo_like.optimizers import BaseOptimizer, CMAOptimizer, RandomOptimizer
from glompo_like.policies.generators import (
    BaseGenerator,
    BasinHoppingGenerator,
    ExploitExploreGenerator,
    IncumbentGenerator,
    PerturbationGenerator,
    QMCGenerator,
    RandomGenerator,
    SinglePointGenerator,
)
from glompo_like.policies.selectors import (
    BaseSelector,
    ChainSelector,
    CycleSelector,
    OptimizerEntry,
    RandomSelector,
    as_entry,
)
from glompo_like.record.ledger import OptimizerRecord, RunCounters
from glompo_like.record.view import RunView
from glompo_like.states import EndKind

BOUNDS = [(-1.0, 1.0), (0.0, 10.0), (5.0, 5.5)]


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_run(bounds=BOUNDS, records=None) -> tuple[RunView, RunCounters]:
    counters = RunCounters()
    b = None if bounds is None else as_bounds(bounds)
    records = {} if records is None else records
    return RunView(counters, records, 0.0, clock=FakeClock(), bounds=b), counters


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------- generators
@pytest.mark.parametrize("make", [RandomGenerator, IncumbentGenerator, SinglePointGenerator])
def test_generators_stay_in_bounds_and_are_reproducible(make) -> None:
    run, _ = make_run()
    gen1, gen2, r1, r2 = make(), make(), rng(42), rng(42)
    a = np.array([gen1.generate(run, r1) for _ in range(50)])
    b = np.array([gen2.generate(run, r2) for _ in range(50)])
    np.testing.assert_array_equal(a, b)
    assert a.dtype == float
    for x in a:
        assert x.shape == (3,)
        assert run.bounds.contains(x)


def test_random_generator_draws_only_from_the_rng() -> None:
    run, _ = make_run()
    g = RandomGenerator()
    np.random.seed(0)  # the legacy global state must play no part
    r = rng(1)
    a = np.array([g.generate(run, r) for _ in range(20)])
    np.random.seed(1)
    r = rng(1)
    b = np.array([g.generate(run, r) for _ in range(20)])
    np.testing.assert_array_equal(a, b)
    assert len({tuple(x) for x in a}) == 20
    assert repr(g) == "RandomGenerator()"


def test_generator_needs_bounds() -> None:
    run, _ = make_run(bounds=None)
    with pytest.raises(ConfigError, match="bounds"):
        RandomGenerator().generate(run, rng())


def test_single_point_given() -> None:
    run, _ = make_run()
    g = SinglePointGenerator([0.5, 2, 5.25])
    x = g.generate(run, rng())
    np.testing.assert_array_equal(x, [0.5, 2.0, 5.25])
    x[0] = 99.0  # the caller gets a copy
    np.testing.assert_array_equal(g.generate(run, rng()), [0.5, 2.0, 5.25])
    assert repr(g) == "SinglePointGenerator(x=[0.5, 2.0, 5.25])"


@pytest.mark.parametrize(
    ("x", "match"),
    [([0.0, 1.0], "2 values but the bounds have 3"), ([0.0, 11.0, 5.0], r"outside the bounds in parameter\(s\) \[1\]")],
)
def test_single_point_checked_against_bounds_at_first_use(x, match: str) -> None:
    run, _ = make_run()
    g = SinglePointGenerator(x)  # the bounds are not known yet: no error here
    with pytest.raises(ConfigError, match=match):
        g.generate(run, rng())


@pytest.mark.parametrize("x", [[[0.0, 1.0]], ["a", "b"], [0.0, float("nan")], 3.0])
def test_single_point_rejects_malformed_x(x) -> None:
    with pytest.raises(ConfigError, match="SinglePointGenerator: x must be"):
        SinglePointGenerator(x)


def test_single_point_drawn_once_and_state_round_trip() -> None:
    run, _ = make_run()
    g = SinglePointGenerator()
    assert g.get_state() == {"drawn": None}
    first = g.generate(run, rng(3))
    assert run.bounds.contains(first)
    np.testing.assert_array_equal(g.generate(run, rng(4)), first)
    state = pickle.loads(pickle.dumps(g.get_state()))
    resumed = SinglePointGenerator()
    resumed.set_state(state)
    np.testing.assert_array_equal(resumed.generate(run, rng(5)), first)
    assert repr(resumed) == "SinglePointGenerator()"


def test_incumbent_generator() -> None:
    run, counters = make_run()
    g = IncumbentGenerator()
    np.testing.assert_array_equal(g.generate(run, rng(7)), RandomGenerator().generate(run, rng(7)))
    counters.best_x = np.array([0.25, 3.0, 5.1])
    r = rng(7)
    np.testing.assert_array_equal(g.generate(run, r), [0.25, 3.0, 5.1])
    assert r.bit_generator.state == rng(7).bit_generator.state  # no randomness used


def test_base_generator_is_abstract() -> None:
    with pytest.raises(TypeError):
        BaseGenerator()  # type: ignore[abstract]
    assert RandomGenerator().get_state() == {}


# ------------------------------------------------------------------ new generators
INCUMBENT = np.array([0.5, 9.0, 5.4])

NEW_GENERATORS = [
    lambda: ExploitExploreGenerator(100),
    lambda: ExploitExploreGenerator(100, switch=0.0, focus=0.5),
    PerturbationGenerator,
    lambda: PerturbationGenerator([0.9, 1.0, 5.2], scale=0.5),
    BasinHoppingGenerator,
    lambda: BasinHoppingGenerator(step=1.0, max_step=3.0),
    QMCGenerator,
    lambda: QMCGenerator("halton"),
    lambda: QMCGenerator("lhs", lhs_size=7),
    lambda: QMCGenerator("sobol", scramble=False),
]


@pytest.mark.parametrize("incumbent", [False, True])
@pytest.mark.parametrize("make", NEW_GENERATORS)
def test_new_generators_stay_in_bounds_and_are_reproducible(make, incumbent: bool) -> None:
    run, counters = make_run()
    if incumbent:
        counters.best_x, counters.best_fx, counters.f_evals = INCUMBENT, 1.0, 70
    gen1, gen2, r1, r2 = make(), make(), rng(42), rng(42)
    a = np.array([gen1.generate(run, r1) for _ in range(60)])
    b = np.array([gen2.generate(run, r2) for _ in range(60)])
    np.testing.assert_array_equal(a, b)
    assert a.dtype == float and a.shape == (60, 3)
    assert all(run.bounds.contains(x) for x in a)
    assert len({tuple(x) for x in a}) > 50
    assert not np.array_equal(a, np.array([make().generate(run, r) for r in [rng(43)] for _ in range(60)]))
    np.random.seed(0)  # the legacy global state plays no part
    c = np.array([g.generate(run, r) for g, r in [(make(), rng(42))] for _ in range(60)])
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("make", NEW_GENERATORS)
def test_new_generators_need_bounds(make) -> None:
    run, _ = make_run(bounds=None)
    with pytest.raises(ConfigError, match="needs the run's bounds"):
        make().generate(run, rng())


def test_exploit_explore_schedule() -> None:
    g = ExploitExploreGenerator(100, switch=0.5)
    weights = {0: 0.0, 50: 0.0, 75: 0.5, 90: 0.8, 100: 1.0, 500: 1.0}
    for f_evals, a in weights.items():
        assert g.exploit_weight(f_evals) == pytest.approx(a), f_evals
    assert ExploitExploreGenerator(100, focus=2.0).exploit_weight(75) == pytest.approx(0.25)
    assert ExploitExploreGenerator(100, switch=0.0).exploit_weight(1) == pytest.approx(0.01)
    assert repr(g) == "ExploitExploreGenerator(max_evals=100, switch=0.5, focus=1)"


def test_exploit_explore_moves_from_random_to_the_incumbent() -> None:
    run, counters = make_run()
    g = ExploitExploreGenerator(100, switch=0.5)
    counters.f_evals = 90
    u = RandomGenerator().generate(run, rng(7))
    np.testing.assert_array_equal(g.generate(run, rng(7)), u)  # no incumbent yet: random
    counters.best_x, counters.best_fx = INCUMBENT, 1.0
    for f_evals, a in [(10, 0.0), (50, 0.0), (75, 0.5), (100, 1.0)]:
        counters.f_evals = f_evals
        np.testing.assert_allclose(g.generate(run, rng(7)), u + a * (INCUMBENT - u))
    counters.f_evals = 100
    np.testing.assert_array_equal(g.generate(run, rng(7)), INCUMBENT)


def test_perturbation_centres() -> None:
    run, counters = make_run()
    width = run.bounds.width
    z = rng(3).standard_normal(3)
    g = PerturbationGenerator(scale=0.01)
    np.testing.assert_allclose(g.generate(run, rng(3)), run.bounds.center + 0.01 * width * z)
    counters.best_x, counters.best_fx = np.array([0.0, 2.0, 5.2]), 1.0
    np.testing.assert_allclose(g.generate(run, rng(3)), [0.0, 2.0, 5.2] + 0.01 * width * z)
    given = PerturbationGenerator(x0=[-0.5, 8.0, 5.3], scale=0.01)
    np.testing.assert_allclose(given.generate(run, rng(3)), [-0.5, 8.0, 5.3] + 0.01 * width * z)
    assert repr(given) == "PerturbationGenerator(x0=[-0.5, 8.0, 5.3], scale=0.01)"
    assert repr(PerturbationGenerator()) == "PerturbationGenerator(scale=0.1)"


def test_perturbation_spread_and_clipping() -> None:
    run, _ = make_run(bounds=[(-100.0, 100.0)] * 2)
    g = PerturbationGenerator(x0=[0.0, 99.0], scale=0.05)  # std 10
    r = rng(8)
    xs = np.array([g.generate(run, r) for _ in range(4000)])
    assert np.std(xs[:, 0]) == pytest.approx(10.0, rel=0.05)
    assert np.mean(xs[:, 0]) == pytest.approx(0.0, abs=0.5)
    assert xs[:, 1].max() == 100.0  # clipped into the box
    assert np.mean(xs[:, 1] == 100.0) == pytest.approx(0.46, abs=0.03)


@pytest.mark.parametrize(
    ("x0", "match"),
    [([0.0, 1.0], "x0 has 2 values but the bounds have 3"), ([0.0, 1.0, 6.0], r"x0 lies outside the bounds in parameter\(s\) \[2\]")],
)
def test_perturbation_x0_checked_at_first_use(x0, match: str) -> None:
    run, _ = make_run()
    g = PerturbationGenerator(x0)
    with pytest.raises(ConfigError, match="^PerturbationGenerator: " + match):
        g.generate(run, rng())


def _record(opt_id: int, x0: np.ndarray, values: list[float], alive: bool = True) -> OptimizerRecord:
    rec = OptimizerRecord(opt_id, "RandomOptimizer", "RandomOptimizer()", 1, 0.0, x0, len(x0))
    f = np.array(values, dtype=float)
    rec.add_batch(np.tile(x0, (len(f), 1)), f, np.ones(len(f), dtype=bool))
    if not alive:
        rec.decide_end(EndKind.STOPPED, "test", 0.0, finished=True)
    return rec


def test_basin_hopping_steps_and_adapts() -> None:
    records: dict[int, OptimizerRecord] = {}
    run, counters = make_run(records=records)
    g = BasinHoppingGenerator(step=0.2, factor=2.0, min_step=0.05, max_step=0.4)
    counters.best_x, counters.best_fx = INCUMBENT, 1.0
    d = rng(5).uniform(-0.2, 0.2, 3) * run.bounds.width
    x1 = g.generate(run, rng(5))
    np.testing.assert_allclose(x1, run.bounds.clip(INCUMBENT + d))
    records[1] = _record(1, x1, [1.5])  # alive and not below 1.0 yet: judged later
    x2 = g.generate(run, rng(0))
    assert g.step == 0.2
    records[1].add_batch(x1[None, :], np.array([0.5]), np.array([True]))  # now below 1.0
    x3 = g.generate(run, rng(1))
    assert g.step == 0.4  # success (capped at max_step)
    assert len(g.get_state()["pending"]) == 2  # x2 and x3: not started yet
    records[2] = _record(2, x2, [2.0], alive=False)  # ended without getting below 1.0
    g.generate(run, rng(2))
    assert g.step == 0.2
    records[3] = _record(3, x3, [2.0])  # alive and not better: stays pending
    g.generate(run, rng(3))
    assert g.step == 0.2
    pending = g.get_state()["pending"]
    assert len(pending) == 3 and pending[0] == (x3.tolist(), 1.0, 1)  # x3, then two unstarted
    assert repr(g) == "BasinHoppingGenerator(step=0.2, factor=2, min_step=0.05, max_step=0.4)"


def test_basin_hopping_matches_the_optimizer_started_after_each_call() -> None:
    p = np.array([0.0, 5.0, 5.0])
    records = {1: _record(1, p, [2.0]), 2: _record(2, p.copy(), [3.0], alive=False)}
    run, counters = make_run(records=records)
    counters.best_x, counters.best_fx = INCUMBENT, 1.0
    g = BasinHoppingGenerator(step=0.2)
    # two starts at the same point: opt 1 is the first's (alive), opt 2 the second's (ended)
    g.set_state({"step": 0.2, "pending": [(p.tolist(), 1.0, 0), (p.tolist(), 1.0, 1)]})
    g.generate(run, rng())
    assert g.step == 0.1
    assert g.get_state()["pending"][0] == (p.tolist(), 1.0, 0)


def test_basin_hopping_step_limits() -> None:
    records: dict[int, OptimizerRecord] = {}
    run, counters = make_run(records=records)
    counters.best_x, counters.best_fx = INCUMBENT, 1.0
    g = BasinHoppingGenerator(step=0.2, factor=2.0, min_step=0.05, max_step=0.4)
    r = rng(9)
    x = g.generate(run, r)
    outcomes = [(0.0, 0.4), (0.0, 0.4), (5.0, 0.2), (5.0, 0.1), (5.0, 0.05), (5.0, 0.05), (0.5, 0.1)]
    for opt_id, (value, step) in enumerate(outcomes, start=1):
        records[opt_id] = _record(opt_id, x, [value], alive=False)
        x = g.generate(run, r)
        assert g.step == step, opt_id
        assert len(g.get_state()["pending"]) == 1  # only the start just made


def test_basin_hopping_random_before_an_incumbent_and_state_round_trip() -> None:
    import pickle

    records: dict[int, OptimizerRecord] = {}
    run, counters = make_run(records=records)
    g = BasinHoppingGenerator()
    np.testing.assert_array_equal(g.generate(run, rng(4)), RandomGenerator().generate(run, rng(4)))
    assert g.get_state() == {"step": 0.5, "pending": []}  # random starts are not judged
    counters.best_x, counters.best_fx = INCUMBENT, 1.0
    x = g.generate(run, rng(4))
    state = pickle.loads(pickle.dumps(g.get_state()))
    assert state == {"step": 0.5, "pending": [(x.tolist(), 1.0, -1)]}
    resumed = BasinHoppingGenerator()
    resumed.set_state(state)
    records[1] = _record(1, x, [0.1])
    np.testing.assert_array_equal(resumed.generate(run, rng(6)), g.generate(run, rng(6)))
    assert resumed.step == g.step == 1.0
    assert resumed.get_state() == g.get_state()


@pytest.mark.parametrize("method", ["sobol", "halton", "lhs"])
def test_qmc_state_round_trip_continues_the_sequence(method: str) -> None:
    import pickle

    run, _ = make_run()
    whole = QMCGenerator(method, lhs_size=4)
    r = rng(21)
    expected = np.array([whole.generate(run, r) for _ in range(11)])
    first = QMCGenerator(method, lhs_size=4)
    r = rng(21)
    head = [first.generate(run, r) for _ in range(6)]
    state = pickle.loads(pickle.dumps(first.get_state()))
    assert state["n_drawn"] == 6 and isinstance(state["seed"], int)
    resumed = QMCGenerator(method, lhs_size=4)
    resumed.set_state(state)
    tail = [resumed.generate(run, rng(99)) for _ in range(5)]  # a different rng: not used
    np.testing.assert_array_equal(np.array(head + tail), expected)
    assert resumed.n_drawn == 11


def test_qmc_uses_the_rng_only_for_its_seed() -> None:
    run, _ = make_run()
    g = QMCGenerator()
    r = rng(2)
    g.generate(run, r)
    after_first = r.bit_generator.state
    g.generate(run, r)
    assert r.bit_generator.state == after_first


def test_qmc_sequences_are_spread_out() -> None:
    run, _ = make_run(bounds=[(0.0, 1.0)] * 2)
    lhs = QMCGenerator("lhs", lhs_size=8)
    r = rng(1)
    for _ in range(3):  # every design of 8 consecutive points has one point per eighth
        design = np.array([lhs.generate(run, r) for _ in range(8)])
        for col in design.T:
            assert sorted(np.floor(col * 8).astype(int)) == list(range(8))
    plain = QMCGenerator("sobol", scramble=False)
    pts = np.array([plain.generate(run, r) for _ in range(4)])
    np.testing.assert_array_equal(pts, [[0.0, 0.0], [0.5, 0.5], [0.75, 0.25], [0.25, 0.75]])
    plain = QMCGenerator("halton", scramble=False)
    pts = np.array([plain.generate(run, r) for _ in range(4)])
    np.testing.assert_allclose(pts, [[0.0, 0.0], [1 / 2, 1 / 3], [1 / 4, 2 / 3], [3 / 4, 1 / 9]])


def test_qmc_sobol_quiet_for_any_count(recwarn) -> None:
    run, _ = make_run()
    g = QMCGenerator("sobol")
    r = rng(0)
    for _ in range(7):
        g.generate(run, r)
    assert not [w for w in recwarn if "balance" in str(w.message)]


def test_qmc_reprs() -> None:
    assert repr(QMCGenerator()) == "QMCGenerator(method='sobol', scramble=True)"
    assert repr(QMCGenerator("lhs", scramble=False, lhs_size=16)) == (
        "QMCGenerator(method='lhs', scramble=False, lhs_size=16)"
    )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ExploitExploreGenerator(0), "ExploitExploreGenerator: max_evals must be an integer >= 1"),
        (lambda: ExploitExploreGenerator(1e4), "ExploitExploreGenerator: max_evals must be"),
        (lambda: ExploitExploreGenerator(100, switch=1.0), r"switch must be a finite number >= 0 and < 1"),
        (lambda: ExploitExploreGenerator(100, switch=-0.1), "switch must be"),
        (lambda: ExploitExploreGenerator(100, focus=0), r"focus must be a finite number > 0, got 0; e.g. focus=1.0"),
        (lambda: PerturbationGenerator(scale=0.0), "PerturbationGenerator: scale must be"),
        (lambda: PerturbationGenerator(scale=float("inf")), "scale must be"),
        (lambda: PerturbationGenerator(x0=[[0.0]]), "PerturbationGenerator: x0 must be a 1-D"),
        (lambda: PerturbationGenerator(x0=["a"]), "PerturbationGenerator: x0 must be a 1-D"),
        (lambda: BasinHoppingGenerator(step=0.0), "BasinHoppingGenerator: step must be"),
        (lambda: BasinHoppingGenerator(step=2.0), r"step must lie between min_step \(0.001\) and max_step \(1\)"),
        (lambda: BasinHoppingGenerator(factor=1.0), "factor must be a finite number > 1"),
        (lambda: BasinHoppingGenerator(min_step=-1), "min_step must be"),
        (lambda: BasinHoppingGenerator(min_step=0.5, max_step=0.1), r"min_step \(0.5\) must be <= max_step"),
        (lambda: BasinHoppingGenerator(max_step=True), "max_step must be"),
        (lambda: QMCGenerator("random"), "QMCGenerator: method must be one of 'sobol', 'halton', 'lhs'"),
        (lambda: QMCGenerator("Sobol"), "method must be one of"),
        (lambda: QMCGenerator(scramble="yes"), "scramble must be True or False"),
        (lambda: QMCGenerator("lhs", lhs_size=0), "lhs_size must be an integer >= 1"),
    ],
)
def test_new_generators_validate_settings(make, match: str) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match=match):
        make()


# ----------------------------------------------------------------------- entries
def test_entry_from_class() -> None:
    e = as_entry(RandomOptimizer, "opt_selector entry 0")
    assert (e.cls, dict(e.kwargs), e.workers, e.backend) == (RandomOptimizer, {}, 1, "serial")
    assert e.label == "RandomOptimizer()"


def test_entry_from_pair_pops_level2_keys() -> None:
    kwargs = {"sigma0": 0.5, "popsize": 6, "workers": 4, "backend": "threads"}
    e = as_entry((CMAOptimizer, kwargs), "opt_selector entry 0")
    assert dict(e.kwargs) == {"sigma0": 0.5, "popsize": 6}
    assert (e.workers, e.backend) == (4, "threads")
    assert kwargs["workers"] == 4  # the user's dict is left alone
    kwargs["sigma0"] = 9.0
    assert e.kwargs["sigma0"] == 0.5  # the entry holds a copy
    with pytest.raises(TypeError):
        e.kwargs["sigma0"] = 1.0  # type: ignore[index]
    assert e.label == "CMAOptimizer(sigma0=0.5, popsize=6)[workers=4, backend='threads']"
    assert repr(e) == (
        "OptimizerEntry(CMAOptimizer, {'sigma0': 0.5, 'popsize': 6}, workers=4, backend='threads')"
    )


def test_entry_accepts_list_pair_executor_and_entry() -> None:
    with ThreadPoolExecutor(1) as pool:
        e = as_entry([RandomOptimizer, {"popsize": 3, "backend": pool}], "x")
        assert e.backend is pool
    ready = OptimizerEntry(RandomOptimizer, {"popsize": 3}, workers=2, backend="processes")
    assert as_entry(ready, "x") is ready


def test_entry_pickles_and_builds() -> None:
    e = as_entry((RandomOptimizer, {"popsize": 3, "workers": 2, "backend": "auto"}))
    back = pickle.loads(pickle.dumps(e))
    assert back == e
    opt = back.build([(0, 1)] * 2, seed=1)
    assert isinstance(opt, RandomOptimizer) and opt.popsize == 3
    assert opt.ask().shape == (3, 2)


class _Checked(RandomOptimizer):
    @classmethod
    def check_options(cls, popsize: int = 10, max_evals: int | None = None) -> None:
        if popsize > 5:
            raise ConfigError(f"_Checked: popsize must be <= 5, got {popsize}")


BAD_ENTRIES = [
    (5, ConfigTypeError, "must be a subclass of glompo_like.optimizers.BaseOptimizer or a"),
    (int, ConfigTypeError, "must be a subclass of glompo_like.optimizers.BaseOptimizer"),
    (RandomOptimizer([(0, 1)]), ConfigTypeError, "pass its class"),
    (BaseOptimizer, ConfigError, "abstract"),
    ((RandomOptimizer,), ConfigTypeError, "length 1"),
    ((RandomOptimizer, {}, {}), ConfigTypeError, "length 3"),
    (("RandomOptimizer", {}), ConfigTypeError, "must be a subclass"),
    ((RandomOptimizer, [("popsize", 3)]), ConfigTypeError, "must be a dict"),
    ((RandomOptimizer, {1: 2}), ConfigTypeError, "keys must be strings"),
    ((RandomOptimizer, {"workers": 0}), ConfigError, "workers must be an integer >= 1"),
    ((RandomOptimizer, {"workers": 2.0}), ConfigTypeError, "workers must be an integer"),
    ((RandomOptimizer, {"workers": True}), ConfigTypeError, "workers must be an integer"),
    ((RandomOptimizer, {"backend": "mpi"}), ConfigError, "unknown backend 'mpi'"),
    ((RandomOptimizer, {"backend": 3}), ConfigTypeError, "backend must be one of"),
    ((RandomOptimizer, {"bounds": [(0, 1)]}), ConfigError, "the manager supplies"),
    ((RandomOptimizer, {"x0": [0.5]}), ConfigError, r"\['x0'\] must not be given"),
    ((CMAOptimizer, {"seed": 1}), ConfigError, r"\['seed'\] must not be given"),
    ((RandomOptimizer, {"pop_size": 3}), ConfigError, "it accepts popsize, max_evals"),
    ((CMAOptimizer, {"sigma0": -1.0}), ConfigError, "CMAOptimizer: sigma0 must be a positive"),
    ((CMAOptimizer, {"tolfunn": 1e-9}), ConfigError, "unknown pycma option"),
    ((_Checked, {"popsize": 6}), ConfigError, "popsize must be <= 5"),
]


@pytest.mark.parametrize(("item", "error", "match"), BAD_ENTRIES)
def test_bad_entries(item, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        as_entry(item, "opt_selector entry 0")
    assert str(info.value).startswith("opt_selector entry 0")


def test_good_entries_pass_check_options() -> None:
    assert as_entry((_Checked, {"popsize": 5})).kwargs["popsize"] == 5
    assert as_entry((CMAOptimizer, {"tolfun": 1e-9, "sigma0": 0.1})).kwargs["tolfun"] == 1e-9


def test_entry_constructed_directly_is_validated() -> None:
    with pytest.raises(ConfigError, match="entry settings"):
        OptimizerEntry(RandomOptimizer, {"workers": 2})
    with pytest.raises(ConfigError, match="^OptimizerEntry: workers"):
        OptimizerEntry(RandomOptimizer, workers=0)


# ----------------------------------------------------------------------- selectors
SMALL = (RandomOptimizer, {"popsize": 4})
BIG = (CMAOptimizer, {"sigma0": 0.5, "workers": 4, "backend": "threads"})


def test_selector_accepts_one_entry_or_many() -> None:
    assert len(CycleSelector(RandomOptimizer).entries) == 1
    assert len(CycleSelector(SMALL).entries) == 1
    s = CycleSelector([SMALL, BIG, RandomOptimizer])
    assert isinstance(s.entries, tuple)
    assert [e.cls for e in s.entries] == [RandomOptimizer, CMAOptimizer, RandomOptimizer]


@pytest.mark.parametrize(
    ("entries", "error", "match"),
    [
        ([], ConfigError, "entries is empty"),
        ("RandomOptimizer", ConfigTypeError, "entries must be"),
        ([RandomOptimizer, 5], ConfigTypeError, "^CycleSelector entry 1 must be a subclass"),
        ([SMALL, (CMAOptimizer, {"seed": 1})], ConfigError, "^CycleSelector entry 1:"),
        (RandomOptimizer([(0, 1)]), ConfigTypeError, "^CycleSelector entry 0 is an optimizer instance"),
    ],
)
def test_selector_bad_entries(entries, error, match: str) -> None:
    with pytest.raises(error, match=match):
        CycleSelector(entries)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_spawns": 0}, ConfigError, "max_spawns must be None or an integer >= 1"),
        ({"max_spawns": "3"}, ConfigTypeError, "max_spawns"),
        ({"max_f_evals": -5}, ConfigError, "max_f_evals"),
        ({"max_f_evals": 1.5}, ConfigTypeError, "max_f_evals"),
    ],
)
def test_spawn_control_validation(kwargs, error, match: str) -> None:
    with pytest.raises(error, match=match):
        CycleSelector(SMALL, **kwargs)


def test_cycle_selector_follows_opts_started() -> None:
    run, counters = make_run()
    s = CycleSelector([SMALL, RandomOptimizer, (RandomOptimizer, {"popsize": 7})])
    picked = []
    for k in range(6):
        counters.opts_started = k
        picked.append(s.select(run, 1, rng()))
    assert picked == [s.entries[0], s.entries[1], s.entries[2]] * 2


def test_cycle_selector_waits_for_slots_without_skipping() -> None:
    run, counters = make_run()
    s = CycleSelector([BIG, SMALL])
    assert s.select(run, 3, rng()) is None  # BIG needs 4: wait, do not start SMALL instead
    assert s.select(run, 0, rng()) is None
    assert s.select(run, 4, rng()) is s.entries[0]
    counters.opts_started = 1
    assert s.select(run, 1, rng()) is s.entries[1]
    assert not s.spawning_over(run)


def test_max_spawns() -> None:
    run, counters = make_run()
    s = CycleSelector(SMALL, max_spawns=2)
    counters.opts_started = 1
    assert s.select(run, 8, rng()) is s.entries[0]
    assert not s.spawning_over(run)
    counters.opts_started = 2
    assert s.select(run, 8, rng()) is None
    assert s.spawning_over(run)


def test_max_f_evals() -> None:
    run, counters = make_run()
    s = RandomSelector([SMALL, RandomOptimizer], max_f_evals=100)
    counters.f_evals = 99
    assert s.select(run, 1, rng()) is not None
    counters.f_evals = 100
    assert s.spawning_over(run)
    r = rng(0)
    assert s.select(run, 1, r) is None
    assert r.bit_generator.state == rng(0).bit_generator.state  # over: no draw


def test_chain_selector_thresholds() -> None:
    run, counters = make_run()
    s = ChainSelector([RandomOptimizer, SMALL, BIG], thresholds=[100, 200])
    expected = {0: 0, 99: 0, 100: 1, 199: 1, 200: 2, 10_000: 2}
    for f_evals, i in expected.items():
        counters.f_evals = f_evals
        assert s.select(run, 4, rng()) is s.entries[i], f_evals
    assert s.select(run, 3, rng()) is None  # BIG does not fit
    assert ChainSelector(SMALL, []).select(run, 1, rng()) is not None


@pytest.mark.parametrize(
    ("thresholds", "error", "match"),
    [
        ([100], ConfigError, "needs 2 values"),
        ([100, 200, 300], ConfigError, "needs 2 values"),
        ([200, 100], ConfigError, "strictly increasing"),
        ([100, 100], ConfigError, "strictly increasing"),
        ([0, 100], ConfigError, "positive integers"),
        ([10.5, 100], ConfigError, "positive integers"),
        (100, ConfigTypeError, "thresholds must be a list"),
        ("12", ConfigTypeError, "thresholds must be a list"),
    ],
)
def test_chain_selector_validation(thresholds, error, match: str) -> None:
    with pytest.raises(error, match="^ChainSelector: thresholds") as info:
        ChainSelector([RandomOptimizer, SMALL, BIG], thresholds)
    assert match in str(info.value)


def test_random_selector_reproducible_and_fitting() -> None:
    run, _ = make_run()
    s = RandomSelector([SMALL, BIG, RandomOptimizer])
    a = [s.select(run, 8, r) for r in [rng(11)] for _ in range(40)]
    r = rng(11)
    b = [s.select(run, 8, r) for _ in range(40)]
    assert a == b
    assert set(map(id, a)) == set(map(id, s.entries))
    r = rng(12)
    fitting = {id(s.select(run, 3, r)) for _ in range(40)}
    assert fitting == {id(s.entries[0]), id(s.entries[2])}
    assert RandomSelector(BIG).select(run, 3, rng()) is None


def test_random_selector_weights() -> None:
    run, _ = make_run()
    s = RandomSelector([SMALL, BIG, RandomOptimizer], weights=[3, 1, 0])
    r = rng(5)
    counts = Counter(s.entries.index(s.select(run, 8, r)) for _ in range(2000))
    assert counts[2] == 0
    assert 0.70 < counts[0] / 2000 < 0.80
    # only SMALL fits and has weight: weights are renormalised over the fitting entries
    assert all(s.select(run, 2, r) is s.entries[0] for _ in range(20))
    assert RandomSelector([SMALL, BIG], weights=[0, 1]).select(run, 2, r) is None


@pytest.mark.parametrize(
    ("weights", "error"),
    [
        ([1, 2], ConfigError),
        ([1, -1, 1], ConfigError),
        ([0, 0, 0], ConfigError),
        ([1, float("nan"), 1], ConfigError),
        ([1, "2", 1], ConfigError),
        (3, ConfigTypeError),
    ],
)
def test_random_selector_weights_validation(weights, error) -> None:
    with pytest.raises(error, match="^RandomSelector: weights"):
        RandomSelector([SMALL, BIG, RandomOptimizer], weights)


def test_selector_reprs_name_entries_and_controls() -> None:
    assert repr(CycleSelector([SMALL, BIG], max_spawns=10)) == (
        "CycleSelector([RandomOptimizer(popsize=4), "
        "CMAOptimizer(sigma0=0.5)[workers=4, backend='threads']], max_spawns=10)"
    )
    assert repr(ChainSelector([RandomOptimizer, SMALL], [50], max_f_evals=500)) == (
        "ChainSelector([RandomOptimizer(), RandomOptimizer(popsize=4)], thresholds=[50], "
        "max_f_evals=500)"
    )
    assert repr(RandomSelector(SMALL, weights=[2])) == (
        "RandomSelector([RandomOptimizer(popsize=4)], weights=[2.0])"
    )


def test_selector_state_defaults_and_abstract_base() -> None:
    s = CycleSelector(SMALL)
    assert s.get_state() == {}
    s.set_state({})
    with pytest.raises(TypeError):
        BaseSelector(SMALL)  # type: ignore[abstract]
