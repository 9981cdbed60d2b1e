"""Start-point generators: where the manager starts each new optimizer.

A generator is a pure policy: ``generate(run, rng)`` gets a read-only
:class:`~glompo_like.record.view.RunView` and the manager's ``numpy.random.Generator`` (its only
source of randomness) and returns a float array of shape ``(run.dim,)`` inside
``run.bounds``.  Generators that keep state between calls carry it through
``get_state()`` / ``set_state()`` so checkpoints resume exactly.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from .. import validation as v
from ..bounds import Bounds
from ..errors import ConfigError
from ..record.view import RunView

__all__ = [
    "BaseGenerator",
    "RandomGenerator",
    "SinglePointGenerator",
    "IncumbentGenerator",
    "ExploitExploreGenerator",
    "PerturbationGenerator",
    "BasinHoppingGenerator",
    "QMCGenerator",
]


def _bounds_of(run: RunView, owner: str) -> Bounds:
    if run.bounds is None:
        raise ConfigError(f"{owner} needs the run's bounds, but the RunView has none")
    return run.bounds


def _uniform(bounds: Bounds, rng: np.random.Generator) -> np.ndarray:
    # clip: rounding in lower + width * u (u < 1) can land a hair past upper
    return bounds.clip(bounds.lower + bounds.width * rng.random(bounds.dim))


def _point(owner: str, name: str, x: Any) -> np.ndarray:
    """A user-given point as a read-only 1-D float array (checked against the bounds at
    first use, when they are known: see :func:`_check_point`)."""
    try:
        arr = np.array(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"{owner}: {name} must be a 1-D sequence of numbers (one per parameter) "
            f"or None, got {x!r}"
        ) from e
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ConfigError(
            f"{owner}: {name} must be a 1-D sequence of finite numbers, one per "
            f"parameter, got {x!r}"
        )
    arr.setflags(write=False)
    return arr


def _check_point(owner: str, name: str, x: np.ndarray, bounds: Bounds) -> None:
    if x.shape != (bounds.dim,):
        raise ConfigError(
            f"{owner}: {name} has {x.size} values but the bounds have {bounds.dim} "
            "parameters; give one value per parameter"
        )
    if not bounds.contains(x):
        out = np.flatnonzero((x < bounds.lower) | (x > bounds.upper)).tolist()
        raise ConfigError(
            f"{owner}: {name} lies outside the bounds in parameter(s) {out}; "
            "choose a point inside the bounds"
        )



class BaseGenerator(ABC):
    """Base class of start-point generators.

    Subclasses implement ``generate(run, rng)`` and, if they have settings, ``_settings()``;
    stateful ones override ``get_state()`` / ``set_state()``.
    """

    @abstractmethod
    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        """Return a start point: a float array of shape ``(run.dim,)`` inside ``run.bounds``."""

    def _settings(self) -> str:
        return ""

    def get_state(self) -> dict[str, Any]:
        """State to restore with :meth:`set_state` (picklable); default: none."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore the state returned by :meth:`get_state`."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings()})"


class RandomGenerator(BaseGenerator):
    """Uniformly random points in the bounds."""

    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        return _uniform(_bounds_of(run, "RandomGenerator"), rng)


class SinglePointGenerator(BaseGenerator):
    """Every optimizer starts at the same point.

    Parameters
    ----------
    x:
        The start point.  ``None``: one uniformly random point drawn at the first call
        (kept in the generator's state, so a resumed run keeps it).
    """

    def __init__(self, x: Any = None) -> None:
        self._given = None if x is None else _point("SinglePointGenerator", "x", x)
        self._drawn: np.ndarray | None = None

    def _settings(self) -> str:
        return "" if self._given is None else f"x={self._given.tolist()}"

    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        bounds = _bounds_of(run, "SinglePointGenerator")
        if self._given is not None:
            _check_point("SinglePointGenerator", "x", self._given, bounds)
            return self._given.copy()
        if self._drawn is None:
            self._drawn = _uniform(bounds, rng)
        return self._drawn.copy()

    def get_state(self) -> dict[str, Any]:
        return {"drawn": None if self._drawn is None else self._drawn.tolist()}

    def set_state(self, state: dict[str, Any]) -> None:
        drawn = state.get("drawn")
        self._drawn = None if drawn is None else np.array(drawn, dtype=float)


class IncumbentGenerator(BaseGenerator):
    """Start at the best point found so far in the run (uniformly random before there is one)."""

    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        bounds = _bounds_of(run, "IncumbentGenerator")
        best = run.best_x
        if best is None:
            return _uniform(bounds, rng)
        return bounds.clip(np.array(best, dtype=float))


class ExploitExploreGenerator(BaseGenerator):
    """Random starts early in the run, starts ever closer to the incumbent later.

    With the run's progress ``p = min(1, run.f_evals / max_evals)`` the start point is
    ``x = u + a * (incumbent - u)``, ``u`` uniformly random in the bounds and

    * ``a = 0`` while ``p <= switch`` (pure exploration),
    * ``a = ((p - switch) / (1 - switch)) ** focus`` after it, reaching ``1`` (start at the
      incumbent itself) when ``max_evals`` evaluations have been done.

    Before there is an incumbent every start is uniformly random.  Every call draws
    ``run.dim`` uniform numbers from the rng.

    Parameters
    ----------
    max_evals:
        The run's evaluation budget (usually that of its ``MaxFuncCalls`` checker).
    switch:
        Fraction of ``max_evals`` spent exploring before starts move towards the
        incumbent, in ``[0, 1)``.
    focus:
        Shape of the move: ``1`` linear, ``> 1`` stays random for longer, ``< 1`` moves
        to the incumbent sooner.
    """

    def __init__(self, max_evals: int, switch: float = 0.5, focus: float = 1.0) -> None:
        owner = "ExploitExploreGenerator"
        self.max_evals = v.integer(max_evals, "max_evals", owner=owner, minimum=1, example=10_000)
        self.switch = v.number(switch, "switch", owner=owner, low=0.0, low_ok=True, high=1.0, high_ok=False, example=0.5)
        self.focus = v.number(focus, "focus", owner=owner, low=0.0, low_ok=False, example=1.0)

    def _settings(self) -> str:
        return f"max_evals={self.max_evals}, switch={self.switch:g}, focus={self.focus:g}"

    def exploit_weight(self, f_evals: int) -> float:
        """The weight ``a`` of the incumbent after ``f_evals`` evaluations (see above)."""
        p = min(1.0, f_evals / self.max_evals)
        if p <= self.switch:
            return 0.0
        return ((p - self.switch) / (1.0 - self.switch)) ** self.focus

    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        bounds = _bounds_of(run, "ExploitExploreGenerator")
        u = _uniform(bounds, rng)
        best = run.best_x
        if best is None:
            return u
        a = self.exploit_weight(run.f_evals)
        return bounds.clip(u + a * (np.asarray(best, dtype=float) - u))


class PerturbationGenerator(BaseGenerator):
    """Gaussian perturbations of one point: ``x = clip(centre + scale * width * N(0, 1))``
    per coordinate, ``width`` the bounds' width of that coordinate.

    Parameters
    ----------
    x0:
        The centre.  ``None``: the run's incumbent (best point so far), or the centre of
        the box before there is one.
    scale:
        Standard deviation as a fraction of each coordinate's range, e.g. ``0.1``.
    """

    def __init__(self, x0: Any = None, scale: float = 0.1) -> None:
        self._given = None if x0 is None else _point("PerturbationGenerator", "x0", x0)
        self.scale = v.number(scale, "scale", owner="PerturbationGenerator", low=0.0, low_ok=False, example=0.1)

    def _settings(self) -> str:
        centre = "" if self._given is None else f"x0={self._given.tolist()}, "
        return f"{centre}scale={self.scale:g}"

    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        bounds = _bounds_of(run, "PerturbationGenerator")
        if self._given is not None:
            _check_point("PerturbationGenerator", "x0", self._given, bounds)
            centre = self._given
        else:
            best = run.best_x
            centre = bounds.center if best is None else np.asarray(best, dtype=float)
        return bounds.clip(centre + self.scale * bounds.width * rng.standard_normal(bounds.dim))


class BasinHoppingGenerator(BaseGenerator):
    """Basin-hopping starts: the incumbent displaced by a uniform step in
    ``[-step, step] * width`` per coordinate (clipped into the box), with ``step``
    adapting to how the starts fare.

    Each start made from an incumbent is remembered with the incumbent's value ``f_ref``
    then.  At each call the generator finds the optimizer started there (the first
    optimizer created after the call whose ``x0`` is that point) and judges it:

    * its best value is below ``f_ref``: success, ``step = min(max_step, step * factor)``;
    * it has ended without getting below ``f_ref``: failure, ``step = max(min_step,
      step / factor)``;
    * otherwise it is judged at a later call.

    Before there is an incumbent starts are uniformly random and not judged.  The step
    and the starts still to judge are the generator's state (:meth:`get_state`).

    Parameters
    ----------
    step:
        Initial step, as a fraction of each coordinate's range.
    factor:
        Growth after a success, shrinkage (``1/factor``) after a failure; ``> 1``.
    min_step, max_step:
        Limits of the step.
    """

    def __init__(
        self, step: float = 0.5, factor: float = 2.0, min_step: float = 1e-3, max_step: float = 1.0
    ) -> None:
        owner = "BasinHoppingGenerator"
        self.factor = v.number(factor, "factor", owner=owner, low=1.0, low_ok=False, example=2.0)
        self.min_step = v.number(min_step, "min_step", owner=owner, low=0.0, low_ok=False, example=0.001)
        self.max_step = v.number(max_step, "max_step", owner=owner, low=0.0, low_ok=False, example=1.0)
        if self.min_step > self.max_step:
            raise ConfigError(
                f"{owner}: min_step ({self.min_step:g}) must be <= max_step ({self.max_step:g}); "
                "swap or widen them"
            )
        self.initial_step = v.number(step, "step", owner=owner, low=0.0, low_ok=False, example=0.5)
        if not self.min_step <= self.initial_step <= self.max_step:
            raise ConfigError(
                f"{owner}: step must lie between min_step ({self.min_step:g}) and max_step "
                f"({self.max_step:g}), got {self.initial_step:g}"
            )
        self.step = self.initial_step
        self._pending: list[tuple[np.ndarray, float, int]] = []  # (x0, f_ref, last id before)

    def _settings(self) -> str:
        return (
            f"step={self.initial_step:g}, factor={self.factor:g}, min_step={self.min_step:g}, "
            f"max_step={self.max_step:g}"
        )

    def _judge(self, run: RunView) -> None:
        optimizers = run.optimizers
        still: list[tuple[np.ndarray, float, int]] = []
        for x0, f_ref, before in self._pending:
            match = min(
                (i for i, o in optimizers.items() if i > before and np.array_equal(o.x0, x0)),
                default=None,
            )
            if match is None:
                still.append((x0, f_ref, before))
                continue
            o = optimizers[match]
            if o.best_fx < f_ref:
                self.step = min(self.max_step, self.step * self.factor)
            elif not o.alive:
                self.step = max(self.min_step, self.step / self.factor)
            else:
                still.append((x0, f_ref, before))
        self._pending = still

    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        bounds = _bounds_of(run, "BasinHoppingGenerator")
        self._judge(run)
        best = run.best_x
        if best is None:
            return _uniform(bounds, rng)
        d = rng.uniform(-self.step, self.step, bounds.dim) * bounds.width
        x = bounds.clip(np.asarray(best, dtype=float) + d)
        before = max(run.optimizers, default=-1)
        self._pending.append((x.copy(), float(run.best_fx), before))
        return x

    def get_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "pending": [(x.tolist(), f, before) for x, f, before in self._pending],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.step = float(state["step"])
        self._pending = [(np.array(x, dtype=float), float(f), int(b)) for x, f, b in state["pending"]]


_QMC_METHODS = ("sobol", "halton", "lhs")


class QMCGenerator(BaseGenerator):
    """Spread-out starts from a quasi-Monte Carlo sequence (:mod:`scipy.stats.qmc`), one
    point per call, in order.

    ``"sobol"`` and ``"halton"`` hand out their low-discrepancy sequence point by point.
    ``"lhs"`` hands out successive Latin hypercube designs of ``lhs_size`` points each
    (every ``lhs_size`` consecutive starts are stratified in every coordinate).

    The sampler is seeded from the manager's rng at the first call; the seed and the
    number of points drawn are the generator's state, so a resumed run continues the
    sequence where it stopped.

    Parameters
    ----------
    method:
        ``"sobol"``, ``"halton"`` or ``"lhs"``.
    scramble:
        Randomise the sequence (``False``: Sobol and Halton start at the lower corner of
        the box; LHS points sit at the centres of their cells).
    lhs_size:
        Points per Latin hypercube design (``"lhs"`` only).
    """

    def __init__(self, method: str = "sobol", scramble: bool = True, lhs_size: int = 32) -> None:
        if method not in _QMC_METHODS:
            raise ConfigError(
                f"QMCGenerator: method must be one of {', '.join(map(repr, _QMC_METHODS))}, "
                f"got {method!r}"
            )
        if not isinstance(scramble, (bool, np.bool_)):
            raise ConfigError(f"QMCGenerator: scramble must be True or False, got {scramble!r}")
        self.method = method
        self.scramble = bool(scramble)
        self.lhs_size = v.integer(lhs_size, "lhs_size", owner="QMCGenerator", minimum=1, example=32)
        self._seed: int | None = None
        self._n = 0  # points handed out
        self._engine: Any = None
        self._engine_dim: int | None = None
        self._block: np.ndarray | None = None  # current LHS design

    def _settings(self) -> str:
        extra = f", lhs_size={self.lhs_size}" if self.method == "lhs" else ""
        return f"method={self.method!r}, scramble={self.scramble}{extra}"

    @property
    def n_drawn(self) -> int:
        """How many points the generator has handed out."""
        return self._n

    def _make_engine(self, dim: int) -> Any:
        from scipy.stats import qmc

        cls = {"sobol": qmc.Sobol, "halton": qmc.Halton, "lhs": qmc.LatinHypercube}[self.method]
        attempts: list[dict[str, Any]] = [
            {"scramble": self.scramble, "rng": None},
            {"scramble": self.scramble, "seed": None},  # scipy < 1.15
            {"centered": not self.scramble, "seed": None},  # LatinHypercube, scipy < 1.10
        ]
        for kwargs in attempts:
            key = "rng" if "rng" in kwargs else "seed"
            kwargs[key] = np.random.default_rng(self._seed)
            try:
                return cls(dim, **kwargs)
            except TypeError:
                continue
        raise RuntimeError(f"QMCGenerator: cannot construct scipy.stats.qmc.{cls.__name__}")

    def _start_engine(self, dim: int) -> None:
        """(Re)build the sampler and skip the ``_n`` points already handed out."""
        self._engine = self._make_engine(dim)
        self._engine_dim = dim
        self._block = None
        if self.method == "lhs":
            for _ in range(self._n // self.lhs_size):
                self._engine.random(self.lhs_size)
        elif self._n:
            self._engine.fast_forward(self._n)

    def _next_unit(self) -> np.ndarray:
        if self.method == "lhs":
            j = self._n % self.lhs_size
            if j == 0 or self._block is None:
                self._block = self._engine.random(self.lhs_size)
            return self._block[j]
        with warnings.catch_warnings():
            # Sobol warns unless the points drawn so far number a power of 2
            warnings.filterwarnings("ignore", message=".*balance properties.*")
            return self._engine.random(1)[0]

    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        bounds = _bounds_of(run, "QMCGenerator")
        if self._seed is None:
            self._seed = int(rng.integers(2**63))
        if self._engine is None or self._engine_dim != bounds.dim:
            self._start_engine(bounds.dim)
        u = self._next_unit()
        self._n += 1
        return bounds.clip(bounds.lower + bounds.width * u)

    def get_state(self) -> dict[str, Any]:
        return {"seed": self._seed, "n_drawn": self._n}

    def set_state(self, state: dict[str, Any]) -> None:
        self._seed = None if state["seed"] is None else int(state["seed"])
        self._n = int(state["n_drawn"])
        self._engine = None
        self._engine_dim = None
        self._block = None
