"""Start-point generators, optimizer entries and selectors on scripted run snapshots."""

from __future__ import annotations

import pickle
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from glompo_like.bounds import as_bounds
from glompo_like.errors import ConfigError, ConfigTypeError
from glompo_like.generators import (
    BaseGenerator,
    IncumbentGenerator,
    RandomGenerator,
    SinglePointGenerator,
)
from glompo_like.optimizers import BaseOptimizer, CMAOptimizer, RandomOptimizer
from glompo_like.selectors import (
    BaseSelector,
    ChainSelector,
    CycleSelector,
    OptimizerEntry,
    RandomSelector,
    as_entry,
)
from glompo_like.snapshot import RunCounters, RunView

BOUNDS = [(-1.0, 1.0), (0.0, 10.0), (5.0, 5.5)]


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_run(bounds=BOUNDS) -> tuple[RunView, RunCounters]:
    counters = RunCounters()
    b = None if bounds is None else as_bounds(bounds)
    return RunView(counters, {}, 0.0, clock=FakeClock(), bounds=b), counters


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
