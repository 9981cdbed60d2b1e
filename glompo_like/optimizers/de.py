"""Differential evolution (Storn & Price, 1997) as a generational ask/tell optimizer.

One generation: ``ask()`` returns one trial vector per population member (mutation and
binomial crossover), ``tell()`` keeps each trial that is at least as good as its target
(greedy one-to-one selection).  The first ``ask()`` returns the initial population.
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from .base import BaseOptimizer

__all__ = ["DEOptimizer"]

STRATEGIES = ("rand1bin", "best1bin", "currenttobest1bin")
BOUNDS_HANDLING = ("reflect", "resample")


def default_popsize(dim: int) -> int:
    """``15 * dim`` (scipy's multiplier) but never more than 60 members."""
    return min(15 * dim, 60)


def reflect_into(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Fold ``x`` back into ``[lower, upper]`` by mirroring at the bounds (any overshoot)."""
    width = upper - lower
    y = np.mod(x - lower, 2.0 * width)
    y = np.where(y > width, 2.0 * width - y, y)
    return np.clip(lower + y, lower, upper)


def latin_hypercube(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` Latin hypercube points in the unit cube, drawn from ``rng``."""
    from scipy.stats import qmc

    # scipy >= 1.15 takes ``rng``; older versions take ``seed``
    key = "rng" if "rng" in inspect.signature(qmc.LatinHypercube).parameters else "seed"
    return qmc.LatinHypercube(d=dim, **{key: rng}).random(n)


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and bool(np.isfinite(value))


class DEOptimizer(BaseOptimizer):
    """Differential evolution with binomial crossover.

    Parameters
    ----------
    strategy:
        How mutant vectors are built (``F`` is the mutation factor, ``r1 != r2 != r3`` random
        members other than the target ``i``):

        - ``"rand1bin"`` (default): ``x_r1 + F (x_r2 - x_r3)``; robust, explores.
        - ``"best1bin"``: ``x_best + F (x_r1 - x_r2)``; converges faster, may stall early.
        - ``"currenttobest1bin"``: ``x_i + F (x_best - x_i) + F (x_r1 - x_r2)``.
    popsize:
        Population size.  Default ``min(15 * dim, 60)``: scipy's ``15 * dim`` for small
        problems, capped because every member costs one evaluation per generation.
    mutation:
        ``F``: a number in ``(0, 2]``, or ``(lo, hi)`` to draw ``F`` uniformly from that
        range once per generation (dithering, which helps convergence).  Default
        ``(0.5, 1.0)``.
    recombination:
        Crossover probability ``CR`` in ``[0, 1]``.  Default ``0.7``.
    bounds_handling:
        What happens to a trial coordinate outside the box: ``"reflect"`` (default) mirrors
        it at the bound it crossed (keeps the step's locality); ``"resample"`` draws it
        uniformly inside the bounds (scipy's behaviour).
    init_radius:
        ``None`` (default): the initial population is a Latin hypercube over the whole box.
        A number ``r`` in ``(0, 1]``: a Latin hypercube over a box of ``r`` times the width of
        the bounds centred on ``x0`` (moved to lie inside the bounds), to search near a
        promising start point.  Either way ``x0`` itself is the first member.
    tol, atol:
        Stop (reason ``"tol"``) when the standard deviation of the population's values is at
        most ``atol + tol * |mean|``.  Defaults ``1e-8`` and ``1e-12``.
    async_eval:
        Steady-state DE: each trial is built from the population as it is when a worker
        becomes free, and replaces its target as soon as its value arrives, so slow
        evaluations never leave workers idle.  With dithering, ``F`` is drawn per trial.
    """

    supports_async: ClassVar[bool] = True

    def __init__(
        self,
        bounds: Any,
        x0: Any = None,
        seed: Any = None,
        *,
        strategy: str = "rand1bin",
        popsize: int | None = None,
        mutation: float | tuple[float, float] = (0.5, 1.0),
        recombination: float = 0.7,
        bounds_handling: str = "reflect",
        init_radius: float | None = None,
        tol: float = 1e-8,
        atol: float = 1e-12,
        async_eval: bool = False,
    ) -> None:
        super().__init__(bounds, x0, seed)
        self.check_options(
            strategy=strategy,
            popsize=popsize,
            mutation=mutation,
            recombination=recombination,
            bounds_handling=bounds_handling,
            init_radius=init_radius,
            tol=tol,
            atol=atol,
            async_eval=async_eval,
        )
        self.strategy = strategy
        self.popsize = default_popsize(self.bounds.dim) if popsize is None else int(popsize)
        self.mutation = (
            (float(mutation[0]), float(mutation[1]))
            if isinstance(mutation, (tuple, list))
            else float(mutation)
        )
        self.recombination = float(recombination)
        self.bounds_handling = bounds_handling
        self.init_radius = None if init_radius is None else float(init_radius)
        self.tol = float(tol)
        self.atol = float(atol)
        self.generation = 0
        self.pop: np.ndarray | None = None  # (popsize, dim), after the first tell
        self.pop_f: np.ndarray | None = None
        self.async_eval = bool(async_eval)
        # steady-state bookkeeping (async_eval)
        self._init: np.ndarray | None = None  # the initial population, being evaluated
        self._init_f: np.ndarray | None = None
        self._init_asked = 0
        self._init_told = 0
        self._pending: set[int] = set()  # targets whose trial is being evaluated
        self._cursor = 0
        self._told = 0

    @classmethod
    def check_options(
        cls,
        strategy: Any = "rand1bin",
        popsize: Any = None,
        mutation: Any = (0.5, 1.0),
        recombination: Any = 0.7,
        bounds_handling: Any = "reflect",
        init_radius: Any = None,
        tol: Any = 1e-8,
        atol: Any = 1e-12,
        async_eval: Any = False,
    ) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting and how to fix it."""
        if not isinstance(async_eval, bool):
            raise ConfigError(f"DEOptimizer: async_eval must be True or False, got {async_eval!r}")
        if strategy not in STRATEGIES:
            raise ConfigError(f"DEOptimizer: strategy must be one of {STRATEGIES}, got {strategy!r}")
        if popsize is not None and (
            isinstance(popsize, bool) or not isinstance(popsize, Integral) or popsize < 4
        ):
            raise ConfigError(
                f"DEOptimizer: popsize must be an integer >= 4 (a mutant needs three other "
                f"members) or None for min(15 * dim, 60), got {popsize!r}"
            )
        if isinstance(mutation, (tuple, list)):
            if not (
                len(mutation) == 2
                and all(_number(m) for m in mutation)
                and 0 <= mutation[0] < mutation[1] <= 2
            ):
                raise ConfigError(
                    "DEOptimizer: mutation as a range must be (lo, hi) with 0 <= lo < hi <= 2, "
                    f"got {mutation!r}"
                )
        elif not (_number(mutation) and 0 < mutation <= 2):
            raise ConfigError(
                f"DEOptimizer: mutation must be a number in (0, 2] or a (lo, hi) range, got {mutation!r}"
            )
        if not (_number(recombination) and 0 <= recombination <= 1):
            raise ConfigError(
                f"DEOptimizer: recombination must be a probability in [0, 1], got {recombination!r}"
            )
        if bounds_handling not in BOUNDS_HANDLING:
            raise ConfigError(
                f"DEOptimizer: bounds_handling must be one of {BOUNDS_HANDLING}, got {bounds_handling!r}"
            )
        if init_radius is not None and not (_number(init_radius) and 0 < init_radius <= 1):
            raise ConfigError(
                "DEOptimizer: init_radius must be None (whole box) or a fraction of the box in "
                f"(0, 1], got {init_radius!r}"
            )
        for name, value in (("tol", tol), ("atol", atol)):
            if not (_number(value) and value >= 0):
                raise ConfigError(f"DEOptimizer: {name} must be a number >= 0, got {value!r}")

    preload_modules = ("scipy.stats.qmc",)

    @classmethod
    def preload(cls) -> None:
        from scipy.stats import qmc  # noqa: F401 - slow to import; share it with children

    @property
    def generation_size(self) -> int:
        return self.popsize

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> np.ndarray:
        if self.pop is None:
            return self._initial_population()
        return self._trials()

    def _tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        if self.pop is None:
            self.pop, self.pop_f = xs.copy(), fs.copy()
        else:
            better = fs <= self.pop_f  # '<=' lets the population drift across plateaus
            self.pop[better] = xs[better]
            self.pop_f[better] = fs[better]
        self.generation += 1

    def _initial_population(self) -> np.ndarray:
        lo, hi = self.bounds.lower, self.bounds.upper
        if self.init_radius is not None:
            half = 0.5 * self.init_radius * self.bounds.width
            lo = np.clip(self.x0 - half, lo, hi - 2 * half)
            hi = lo + 2 * half
        unit = latin_hypercube(self.popsize, self.bounds.dim, self.rng)
        pop = lo + unit * (hi - lo)
        pop[0] = self.x0
        return pop

    def _trials(self) -> np.ndarray:
        assert self.pop is not None and self.pop_f is not None
        n, dim = self.pop.shape
        f = self.mutation
        if isinstance(f, tuple):
            f = float(self.rng.uniform(f[0], f[1]))
        best = self.pop[int(np.argmin(self.pop_f))]
        trials = np.empty_like(self.pop)
        for i in range(n):
            trials[i] = self._trial(i, f, best)
        return self._into_box(trials)

    def _trial(self, i: int, f: float, best: np.ndarray) -> np.ndarray:
        """The (unbounded) trial vector for target ``i``."""
        assert self.pop is not None
        n, dim = self.pop.shape
        others = self.rng.choice(n - 1, 3, replace=False)
        r1, r2, r3 = others + (others >= i)  # skip the target itself
        if self.strategy == "rand1bin":
            mutant = self.pop[r1] + f * (self.pop[r2] - self.pop[r3])
        elif self.strategy == "best1bin":
            mutant = best + f * (self.pop[r1] - self.pop[r2])
        else:  # currenttobest1bin
            mutant = self.pop[i] + f * (best - self.pop[i]) + f * (self.pop[r1] - self.pop[r2])
        cross = self.rng.random(dim) < self.recombination
        cross[self.rng.integers(dim)] = True  # at least one coordinate from the mutant
        return np.where(cross, mutant, self.pop[i])

    # ------------------------------------------------------------------ steady state
    def _ask_one(self) -> tuple[Any, np.ndarray] | None:
        if self.pop is None:  # the initial population goes out member by member
            if self._init is None:
                self._init = self._initial_population()
                self._init_f = np.full(self.popsize, np.inf)
            if self._init_asked == self.popsize:
                return None  # wait for the initial values
            i = self._init_asked
            self._init_asked += 1
            return ("init", i), self._init[i].copy()
        for k in range(self.popsize):
            i = (self._cursor + k) % self.popsize
            if i not in self._pending:
                break
        else:
            return None  # every target has a trial out
        self._cursor = i + 1
        self._pending.add(i)
        f = self.mutation
        if isinstance(f, tuple):
            f = float(self.rng.uniform(f[0], f[1]))
        best = self.pop[int(np.argmin(self.pop_f))]
        return i, self._into_box(self._trial(i, f, best)[None, :])[0]

    def _tell_one(self, token: Any, x: np.ndarray, fx: float) -> None:
        if isinstance(token, tuple):  # an initial member
            assert self._init is not None and self._init_f is not None
            self._init_f[token[1]] = fx
            self._init_told += 1
            if self._init_told == self.popsize:
                self.pop, self.pop_f = self._init, self._init_f
                self._init = self._init_f = None
        else:
            assert self.pop is not None and self.pop_f is not None
            self._pending.discard(token)
            if fx <= self.pop_f[token]:
                self.pop[token] = x
                self.pop_f[token] = fx
        self._told += 1
        if self._told % self.popsize == 0:
            self.generation += 1

    def _into_box(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds.lower, self.bounds.upper
        if self.bounds_handling == "reflect":
            return reflect_into(x, lo, hi)
        out = (x < lo) | (x > hi)
        if out.any():
            fresh = lo + self.rng.random(x.shape) * (hi - lo)
            x = np.where(out, fresh, x)
        return x

    # ------------------------------------------------------------------ the rest
    def _stop(self) -> dict[str, Any]:
        if self.pop_f is None:
            return {}
        spread = float(np.std(self.pop_f))
        if spread <= self.atol + self.tol * abs(float(np.mean(self.pop_f))):
            return {"tol": spread}
        return {}

    def _inject(self, x: np.ndarray, fx: float) -> None:
        """Replace the worst member by ``x`` if ``x`` is better."""
        if self.pop is None or self.pop_f is None:
            return
        worst = int(np.argmax(self.pop_f))
        if fx < self.pop_f[worst]:
            self.pop[worst] = self.bounds.clip(x)
            self.pop_f[worst] = fx

    def _get_state(self) -> dict[str, Any]:
        def copy(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a.copy()

        return {
            "generation": self.generation,
            "pop": copy(self.pop),
            "pop_f": copy(self.pop_f),
            "steady": {
                "init": copy(self._init), "init_f": copy(self._init_f), "init_asked": self._init_asked,
                "init_told": self._init_told, "pending": sorted(self._pending), "cursor": self._cursor,
                "told": self._told,
            },
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.generation = state["generation"]
        self.pop = None if state["pop"] is None else state["pop"].copy()
        self.pop_f = None if state["pop_f"] is None else state["pop_f"].copy()
        st = state.get("steady")
        if st is not None:
            self._init = None if st["init"] is None else st["init"].copy()
            self._init_f = None if st["init_f"] is None else st["init_f"].copy()
            self._init_asked, self._init_told = st["init_asked"], st["init_told"]
            self._pending, self._cursor, self._told = set(st["pending"]), st["cursor"], st["told"]

    def __repr__(self) -> str:
        return (
            f"DEOptimizer(strategy={self.strategy!r}, popsize={self.popsize}, "
            f"mutation={self.mutation!r}, recombination={self.recombination:g}, "
            f"bounds_handling={self.bounds_handling!r}, init_radius={self.init_radius!r}, "
            f"tol={self.tol:g}, atol={self.atol:g}"
            + (", async_eval=True)" if self.async_eval else ")")
        )
