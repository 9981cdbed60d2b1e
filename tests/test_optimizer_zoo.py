"""The built-in optimizers: the contract check, convergence, the scipy adapter's thread and
gradient batches, bad options, and one managed run each."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

from glompo_like import ConfigError, GloMPOManager
from glompo_like.optimizers import (
    BaseOptimizer,
    CMAOptimizer,
    DEOptimizer,
    NelderMeadOptimizer,
    PSOOptimizer,
    RandomOptimizer,
    ScipyOptimizer,
    SNESOptimizer,
    XNESOptimizer,
)
from glompo_like.policies.checkers import MaxFuncCalls, TargetCost
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import ellipsoid, sphere
from glompo_like.testing import check_optimizer

pytestmark = pytest.mark.timeout(60)

ELLIPSOID_BOUNDS = [(-5.0, 5.0)] * 5
ELLIPSOID_X0 = np.array([3.0, -2.0, 1.0, 4.0, -3.5])


def _scipy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ScipyOptimizer")]


def _run(opt: BaseOptimizer, f, budget: int) -> tuple[int, list[np.ndarray]]:
    """Ask/tell until the budget is spent or the optimizer stops; returns (evals, asks)."""
    n, asks = 0, []
    try:
        while n < budget and not opt.stop():
            xs = opt.ask()
            asks.append(xs)
            opt.tell(xs, [f(x) for x in xs])
            n += len(xs)
    finally:
        opt.close()
    return n, asks


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (CMAOptimizer, {}),
        (RandomOptimizer, {}),
        (DEOptimizer, {}),
        (DEOptimizer, {"strategy": "best1bin", "bounds_handling": "resample", "mutation": 0.8}),
        (DEOptimizer, {"strategy": "currenttobest1bin", "init_radius": 0.2}),
        (PSOOptimizer, {}),
        (PSOOptimizer, {"bounds_handling": "clip"}),
        (XNESOptimizer, {}),
        (XNESOptimizer, {"mirrored": True}),
        (SNESOptimizer, {}),
        (SNESOptimizer, {"mirrored": True, "popsize": 7}),
        (NelderMeadOptimizer, {}),
        (ScipyOptimizer, {"method": "Powell"}),
        (ScipyOptimizer, {"method": "L-BFGS-B"}),
        (ScipyOptimizer, {"method": "Nelder-Mead"}),
        (ScipyOptimizer, {"method": "TNC"}),
        (ScipyOptimizer, {"method": "SLSQP"}),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else ",".join(f"{k}={v[k]}" for k in v),
)
def test_builtin_optimizers_follow_the_contract(cls, kwargs):
    check_optimizer(cls, **kwargs)
    assert not _scipy_threads()


# ----------------------------------------------------------------------------- convergence
@pytest.mark.parametrize(
    "cls, kwargs, budget",
    [
        (DEOptimizer, {}, 20_000),
        (PSOOptimizer, {}, 6_000),
        (XNESOptimizer, {}, 5_000),
        (SNESOptimizer, {}, 3_000),
        (NelderMeadOptimizer, {}, 2_000),
        (ScipyOptimizer, {"method": "Powell"}, 500),
        (ScipyOptimizer, {"method": "L-BFGS-B"}, 1_000),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_converges_on_a_5d_ellipsoid(cls, kwargs, budget):
    opt = cls(ELLIPSOID_BOUNDS, ELLIPSOID_X0, 1, **kwargs)
    _run(opt, ellipsoid, budget)
    assert opt.result.fx <= 1e-8, f"{opt!r} reached only {opt.result.fx:.3g}"
    assert np.allclose(opt.result.x, 0.0, atol=1e-3)


# ----------------------------------------------------------------------------- scipy adapter
@pytest.mark.parametrize("method", ["L-BFGS-B", "TNC", "SLSQP"])
def test_scipy_gradient_methods_ask_the_point_and_its_neighbours_as_one_batch(method):
    opt = ScipyOptimizer(ELLIPSOID_BOUNDS, ELLIPSOID_X0, method=method)
    assert opt.generation_size == 6
    n, asks = _run(opt, ellipsoid, 600)
    assert asks and all(xs.shape == (6, 5) for xs in asks)
    for xs in asks:  # the point, then one forward (or backward) step per coordinate
        steps = xs[1:] - xs[0]
        assert np.count_nonzero(steps) == 5
        assert np.all(np.diag(steps) != 0)


def test_scipy_derivative_free_methods_ask_one_point_at_a_time():
    opt = ScipyOptimizer(ELLIPSOID_BOUNDS, ELLIPSOID_X0, method="Powell")
    assert opt.generation_size == 1
    _, asks = _run(opt, ellipsoid, 100)
    assert all(xs.shape == (1, 5) for xs in asks)


def test_scipy_reports_its_own_termination():
    opt = ScipyOptimizer(ELLIPSOID_BOUNDS, ELLIPSOID_X0, method="Powell")
    try:
        while not opt.stop():
            xs = opt.ask()
            opt.tell(xs, [ellipsoid(x) for x in xs])
        assert set(opt.stop()) == {"scipy"}
        assert "success" in opt.stop()["scipy"].lower()
        with pytest.raises(RuntimeError, match="finished"):
            opt.ask()
    finally:
        opt.close()


@pytest.mark.parametrize("method", ["Powell", "L-BFGS-B", "COBYLA", "trust-constr"])
def test_closing_a_scipy_optimizer_mid_run_leaves_no_thread(method):
    opt = ScipyOptimizer(ELLIPSOID_BOUNDS, ELLIPSOID_X0, method=method)
    for _ in range(3):
        xs = opt.ask()
        opt.tell(xs, [ellipsoid(x) for x in xs])
    opt.ask()  # the helper is now waiting for values
    assert len(_scipy_threads()) == 1
    opt.close()
    assert not _scipy_threads()
    assert opt.stop() == {"closed": True}
    opt.close()  # idempotent


def test_a_forgotten_scipy_optimizer_ends_its_thread_when_collected():
    opt = ScipyOptimizer(ELLIPSOID_BOUNDS, ELLIPSOID_X0, method="Powell")
    opt.ask()
    thread = _scipy_threads()[0]
    del opt
    thread.join(5)
    assert not thread.is_alive()


def test_scipy_optimizer_pickles_before_start_only_and_is_not_checkpointable():
    opt = ScipyOptimizer(ELLIPSOID_BOUNDS, ELLIPSOID_X0, method="L-BFGS-B", maxiter=5)
    copy = pickle.loads(pickle.dumps(opt))
    assert repr(copy) == repr(opt) and "maxiter=5" in repr(opt)
    assert ScipyOptimizer.checkpointable is False
    try:
        opt.ask()
        with pytest.raises(TypeError, match="before its first ask"):
            pickle.dumps(opt)
        with pytest.raises(NotImplementedError, match="checkpoint"):
            opt.get_state()
    finally:
        opt.close()


def test_scipy_errors_reach_the_caller():
    # a bad option value: scipy raises inside the helper thread, the runner sees it
    opt = ScipyOptimizer(ELLIPSOID_BOUNDS, ELLIPSOID_X0, method="L-BFGS-B", maxcor="many")
    try:
        with pytest.raises(TypeError):
            xs = opt.ask()
            opt.tell(xs, [ellipsoid(x) for x in xs])
        with pytest.raises(TypeError):  # and again on the next ask
            opt.ask()
    finally:
        opt.close()
    assert not _scipy_threads()


# ----------------------------------------------------------------------------- bad options
@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (DEOptimizer, {"strategy": "rand2exp"}, "strategy"),
        (DEOptimizer, {"popsize": 3}, "popsize"),
        (DEOptimizer, {"mutation": (1.0, 0.5)}, "mutation"),
        (DEOptimizer, {"mutation": 3.0}, "mutation"),
        (DEOptimizer, {"recombination": 1.5}, "recombination"),
        (DEOptimizer, {"bounds_handling": "wrap"}, "bounds_handling"),
        (DEOptimizer, {"init_radius": 0.0}, "init_radius"),
        (DEOptimizer, {"tol": -1}, "tol"),
        (PSOOptimizer, {"swarm_size": 1}, "swarm_size"),
        (PSOOptimizer, {"w": 1.2}, "w"),
        (PSOOptimizer, {"c1": -1.0}, "c1"),
        (PSOOptimizer, {"vmax": 0}, "vmax"),
        (PSOOptimizer, {"bounds_handling": "wrap"}, "bounds_handling"),
        (PSOOptimizer, {"patience": 0}, "patience"),
        (XNESOptimizer, {"sigma0": -1.0}, "sigma0"),
        (XNESOptimizer, {"popsize": 1}, "popsize"),
        (XNESOptimizer, {"eta_sigma": 2.0}, "eta_sigma"),
        (SNESOptimizer, {"mirrored": "yes"}, "mirrored"),
        (SNESOptimizer, {"tolx": float("nan")}, "tolx"),
        (NelderMeadOptimizer, {"init_step": 2.0}, "init_step"),
        (NelderMeadOptimizer, {"adaptive": "auto"}, "adaptive"),
        (NelderMeadOptimizer, {"xatol": -1.0}, "xatol"),
        (ScipyOptimizer, {"method": "BFGS"}, "method"),
        (ScipyOptimizer, {"method": "Powell", "maxfun": 10}, "maxfun"),
        (ScipyOptimizer, {"method": "L-BFGS-B", "eps": 1e-6}, "fd_step"),
        (ScipyOptimizer, {"method": "SLSQP", "constraints": []}, "constraints"),
        (ScipyOptimizer, {"fd_step": 0.0}, "fd_step"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_bad_options_raise_config_error_naming_the_option(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls.check_options(**kwargs)
    with pytest.raises(ConfigError, match=match):
        cls(ELLIPSOID_BOUNDS, **kwargs)


def test_the_selector_rejects_bad_options_at_construction():
    with pytest.raises(ConfigError, match="recombination"):
        CycleSelector([(DEOptimizer, {"recombination": -0.1})])
    with pytest.raises(ConfigError, match="maxfun"):
        CycleSelector([(ScipyOptimizer, {"method": "Powell", "maxfun": 10})])


def test_reprs_name_the_settings():
    assert "strategy='best1bin'" in repr(DEOptimizer(ELLIPSOID_BOUNDS, strategy="best1bin"))
    assert "swarm_size=14" in repr(PSOOptimizer(ELLIPSOID_BOUNDS))
    assert "popsize=8" in repr(XNESOptimizer(ELLIPSOID_BOUNDS))
    assert "mirrored=True" in repr(SNESOptimizer(ELLIPSOID_BOUNDS, mirrored=True))
    assert "adaptive=True" in repr(NelderMeadOptimizer(ELLIPSOID_BOUNDS))
    assert "method='Powell'" in repr(ScipyOptimizer(ELLIPSOID_BOUNDS, method="powell"))


def test_defaults():
    assert DEOptimizer([(0, 1)] * 2).popsize == 30
    assert DEOptimizer([(0, 1)] * 10).popsize == 60
    assert PSOOptimizer([(0, 1)] * 4).swarm_size == 14
    assert XNESOptimizer([(0, 1)] * 5).popsize == 8
    assert SNESOptimizer([(0, 1)] * 5, mirrored=True, popsize=7).popsize == 8
    assert NelderMeadOptimizer([(0, 1)] * 2).adaptive is False


# ----------------------------------------------------------------------------- the checker
class _GlobalRandom(BaseOptimizer):
    """Draws from NumPy's global generator instead of self.rng."""

    def _ask(self):
        lo, hi = self.bounds.lower, self.bounds.upper
        return lo + (hi - lo) * np.random.random((3, self.bounds.dim))

    def _tell(self, xs, fs):
        pass


class _Outside(_GlobalRandom):
    def _ask(self):
        return np.full((2, self.bounds.dim), self.bounds.upper + 1.0)


class _Forgetful(BaseOptimizer):
    """Keeps a centre it does not save in its state."""

    def __init__(self, bounds, x0=None, seed=None):
        super().__init__(bounds, x0, seed)
        self.center = self.x0.copy()

    def _ask(self):
        step = 0.1 * self.bounds.width * self.rng.standard_normal((4, self.bounds.dim))
        return self.bounds.clip(self.center + step)

    def _tell(self, xs, fs):
        self.center = xs[np.argmin(fs)].copy()


class _Steady(BaseOptimizer):
    """A minimal optimizer that declares no traits of its own."""

    def _ask(self):
        lo, hi = self.bounds.lower, self.bounds.upper
        return lo + (hi - lo) * self.rng.random((3, self.bounds.dim))

    def _tell(self, xs, fs):
        pass


class _ClaimsAsync(_Steady):
    async_eval = True  # without supports_async, ask_one and tell_one


class _EmptyGenerations(_Steady):
    @property
    def generation_size(self):
        return 0


class _VagueTrait(_Steady):
    deterministic = "sometimes"


@pytest.mark.parametrize(
    "cls, match",
    [(_GlobalRandom, "self.rng"), (_Outside, "outside the bounds"), (_Forgetful, "set_state"),
     (_ClaimsAsync, "supports_async"), (_EmptyGenerations, "generation_size must be an integer >= 1"),
     (_VagueTrait, "deterministic must be True or False")],
)
def test_check_optimizer_reports_violations(cls, match):
    with pytest.raises(AssertionError, match=match):
        check_optimizer(cls)


def test_base_optimizer_declares_every_trait_with_its_default():
    """The runner, the selectors and the conformance check read the traits directly."""
    check_optimizer(_Steady)
    opt = _Steady([(0, 1)] * 2, seed=0)
    assert (opt.generation_size, opt.async_eval) == (1, False)
    assert (_Steady.generational, _Steady.checkpointable, _Steady.deterministic, _Steady.supports_async) == (
        True, True, False, False)
    assert _Steady.preload_modules == () and _Steady.check_options() is None
    with_async = (DEOptimizer, PSOOptimizer, RandomOptimizer, CMAOptimizer, XNESOptimizer, SNESOptimizer)
    for cls, kwargs in [(c, {"async_eval": True}) for c in with_async] + [
        (c, {}) for c in (NelderMeadOptimizer, ScipyOptimizer)
    ]:
        opt = cls([(0, 1)] * 2, **kwargs)
        try:
            assert cls.supports_async is opt.async_eval is bool(kwargs), cls.__name__
            assert opt.generation_size >= 1
        finally:
            opt.close()


# ----------------------------------------------------------------------------- managed runs
@pytest.mark.parametrize(
    "cls, kwargs, backend",
    [
        (DEOptimizer, {}, "threads"),
        (DEOptimizer, {}, "processes"),
        (PSOOptimizer, {}, "threads"),
        (XNESOptimizer, {}, "threads"),
        (SNESOptimizer, {}, "threads"),
        (NelderMeadOptimizer, {}, "threads"),
        (ScipyOptimizer, {"method": "Powell"}, "threads"),
        (ScipyOptimizer, {"method": "L-BFGS-B"}, "threads"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_each_optimizer_solves_the_sphere_through_the_manager(cls, kwargs, backend):
    manager = GloMPOManager(
        task=sphere,
        bounds=[(-5, 5)] * 3,
        opt_selector=CycleSelector([(cls, kwargs)]),
        backend=backend,
        max_jobs=1,
        convergence_checker=MaxFuncCalls(3000) | TargetCost(0, atol=1e-6),
        seed=1,
    )
    result = manager.start_manager()
    assert result.fx <= 1e-6
    assert result.origin["type"] == cls.__name__
    assert not _scipy_threads()


def _stock_pycma(opt: CMAOptimizer):
    """pycma with its own bound handling, from the same start, step size and random stream
    as ``opt`` (what CMAOptimizer ran before it transformed the candidates itself)."""
    import copy

    import cma

    from glompo_like.optimizers.cma import _Randn

    lower, upper = opt.bounds.lower, opt.bounds.upper
    opts = {"bounds": [lower.tolist(), upper.tolist()], "seed": float("nan"), "randn": _Randn(copy.deepcopy(opt.rng)),
            "verbose": -9, "verb_log": 0, "verb_disp": 0, "popsize": opt.generation_size}
    width = upper - lower
    if not np.allclose(width, width.mean()):
        opts["CMA_stds"] = (width / width.mean()).tolist()
    return cma.CMAEvolutionStrategy(opt.x0.tolist(), opt.sigma0, opts)


@pytest.mark.parametrize("lower, upper, target", [
    ([-5.0] * 10, [5.0] * 10, 6.0),                 # the optimum beyond the upper bound
    ([-5.0] * 5, [5.0] * 5, -5.2),                  # ... beyond the lower one
    ([0.0, 0.0, -1.0, -3.0], [1.0, 2.0, 3.0, 40.0], 0.5),  # mixed widths (CMA_stds)
])
def test_cma_box_transformation_makes_the_candidates_of_pycmas_own_bound_handling(lower, upper, target):
    """CMAOptimizer maps whole generations into the box itself (optimizers/box.py) and runs
    pycma without bounds: every candidate, every generation, is the one pycma's default
    bound handling gives, bit for bit, also while the search presses against a bound."""
    from glompo_like.bounds import Bounds

    opt = CMAOptimizer(Bounds(np.array(lower), np.array(upper)), None, 3)
    assert opt.box is not None and opt.es.opts["bounds"] in ([None, None], None)
    stock = _stock_pycma(opt)

    def f(xs):
        return np.sum((xs - target) ** 2, axis=1) + np.sum(np.sin(3 * xs), axis=1)

    for _ in range(120):
        ours, theirs = opt.ask(), np.asarray(stock.ask())
        np.testing.assert_array_equal(ours, theirs)
        assert ((ours >= opt.bounds.lower) & (ours <= opt.bounds.upper)).all()
        opt.tell(ours, f(ours))
        stock.tell(list(theirs), f(theirs).tolist())
    np.testing.assert_array_equal(opt.es.mean, stock.mean)


def test_box_transformation_maps_into_the_box_and_inverts_like_pycmas():
    from cma.transformations import BoxConstraintsLinQuadTransformation

    from glompo_like.optimizers.box import LinQuadBox

    rng = np.random.default_rng(0)
    lb, ub = np.array([-5.0, 0.0, -1e3, 0.9]), np.array([5.0, 1.0, 2.0, 1.0])
    box = LinQuadBox(lb, ub)
    ref = BoxConstraintsLinQuadTransformation([[lo, hi] for lo, hi in zip(lb, ub, strict=True)])
    xs = rng.normal(0, 1, (400, 4)) * np.array([20.0, 3.0, 5e3, 1.0]) / np.sqrt(rng.uniform(0.01, 1, (400, 4)))
    ys = box(xs)
    assert ((ys >= lb) & (ys <= ub)).all()
    np.testing.assert_array_equal(ys, np.array([ref(x.copy()) for x in xs]))
    np.testing.assert_array_equal(box(xs[7]), ys[7])  # one vector as well as rows
    inside = rng.uniform(lb, ub, (200, 4))
    np.testing.assert_allclose(box(box.inverse(inside)), inside, rtol=0, atol=1e-12)
    np.testing.assert_allclose(box.inverse(inside), [ref.inverse(list(y)) for y in inside], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="within the bounds"):
        box.inverse(ub + 1)
    with pytest.raises(ValueError, match="lower < upper"):
        LinQuadBox(np.array([1.0]), np.array([1.0]))
    assert pickle.loads(pickle.dumps(box))(xs[:3]).tolist() == ys[:3].tolist()


def test_cma_tells_each_candidates_own_genotype_when_two_map_to_one_point():
    """Candidates beyond a bound can land on the same point of the box; pycma's archive
    (keyed by the point) then hands back one genotype for both.  CMAOptimizer tells the
    genotypes it sampled."""
    from glompo_like.bounds import Bounds

    opt = CMAOptimizer(Bounds(np.full(2, -1.0), np.full(2, 1.0)), np.zeros(2), 1, sigma0=1.0, popsize=8)
    xs = opt.ask()
    geno = opt._asked[1].copy()
    seen = []
    opt.es.tell = lambda sols, fs: seen.append(np.array(sols))  # what pycma is told
    opt.tell(xs, np.sum(xs ** 2, axis=1))
    np.testing.assert_array_equal(seen[0], geno)
    # points it did not ask for (e.g. told after a restart) go in as their genotypes
    opt.tell(xs[::-1].copy(), np.zeros(len(xs)))
    np.testing.assert_allclose(opt.box(seen[1]), xs[::-1], atol=1e-12)


def test_cma_mid_generation_checkpoint_keeps_the_genotypes():
    from glompo_like.bounds import Bounds

    bounds = Bounds(np.full(3, -2.0), np.full(3, 2.0))
    a = CMAOptimizer(bounds, None, 4, popsize=6)
    b = CMAOptimizer(bounds, None, 4, popsize=6)
    for _ in range(3):
        xs = a.ask()
        a.tell(xs, np.sum((xs - 3) ** 2, axis=1))
    xs = a.ask()
    b.set_state(pickle.loads(pickle.dumps(a.get_state())))
    a.tell(xs, np.sum((xs - 3) ** 2, axis=1))
    b.tell(xs, np.sum((xs - 3) ** 2, axis=1))
    np.testing.assert_array_equal(a.ask(), b.ask())


def test_cma_options_that_change_the_mapping_leave_the_bounds_to_pycma():
    """With a pycma option that changes how samples map into the box (here its penalty
    bound handler), pycma gets the bounds: scalars for one box side (its bound handling runs
    on every candidate and is faster with them), per-coordinate lists otherwise."""
    import cma

    from glompo_like.bounds import Bounds

    same = CMAOptimizer(Bounds(np.full(4, -2.0), np.full(4, 3.0)), np.zeros(4), 5, sigma0=1.0, popsize=6,
                        BoundaryHandler=cma.BoundPenalty)
    assert same.box is None and same.es.opts["bounds"] == [-2.0, 3.0]
    mixed = CMAOptimizer(Bounds(np.array([-2.0, -1.0]), np.array([3.0, 1.0])), np.zeros(2), 5, sigma0=0.5,
                         maxstd_boundrange=0.5)
    assert mixed.box is None
    assert [list(b) for b in mixed.es.opts["bounds"]] == [[-2.0, -1.0], [3.0, 1.0]]
    for _ in range(5):
        a = mixed.ask()
        assert ((a >= [-2.0, -1.0]) & (a <= [3.0, 1.0])).all()
        mixed.tell(a, np.sum(a * a, axis=1))


def test_cma_state_from_before_the_box_transformation_resumes_with_pycmas_bounds():
    """A checkpoint written before CMAOptimizer transformed the candidates itself holds an
    ``es`` that maps into the box on its own (and no ``box``): it resumes that way."""
    from glompo_like.bounds import Bounds

    bounds = Bounds(np.full(3, -1.0), np.full(3, 1.0))
    old = CMAOptimizer(bounds, np.zeros(3), 2, sigma0=2.0, popsize=6, BoundaryHandler=cma_module().BoundTransform)
    assert old.box is None
    state = old.get_state()
    del state["own"]["box"], state["own"]["asked"]  # what such a checkpoint held
    new = CMAOptimizer(bounds, np.zeros(3), 2, sigma0=2.0, popsize=6)
    new.set_state(pickle.loads(pickle.dumps(state)))
    assert new.box is None
    for _ in range(5):
        a, b = old.ask(), new.ask()
        np.testing.assert_array_equal(a, b)
        assert ((a >= -1.0) & (a <= 1.0)).all()
        old.tell(a, np.sum((a - 2) ** 2, axis=1))
        new.tell(b, np.sum((b - 2) ** 2, axis=1))


def cma_module():
    import cma

    return cma


def test_cma_ignores_a_pycma_signals_file_in_the_working_directory(tmp_path, monkeypatch):
    """pycma reads options from ``cma_signals.in`` in the working directory on every
    generation; a file left there must not change how CMAOptimizer runs."""
    from glompo_like.bounds import Bounds

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cma_signals.in").write_text("{'tolfun': 1e12, 'tolfunhist': 1e12}")
    opt = CMAOptimizer(Bounds(np.full(3, -2.0), np.full(3, 2.0)), np.zeros(3), 1, popsize=6)
    for _ in range(3):
        xs = opt.ask()
        opt.tell(xs, np.sum((xs - 1) ** 2, axis=1))
    assert not opt.stop(), opt.stop()
    assert opt.es.opts["tolfun"] != 1e12
