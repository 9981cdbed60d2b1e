"""Global-best particle swarm optimisation (Kennedy & Eberhart, 1995) with inertia.

Each ``ask()`` moves every particle once (the first returns the initial swarm); ``tell()``
updates the personal and global bests.  The defaults ``w = 0.7298``, ``c1 = c2 = 1.49618``
are Clerc's constriction coefficients (``chi = 0.7298`` for ``phi = 4.1``) written as an
inertia weight, which makes the swarm converge without velocity explosion.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from .base import BaseOptimizer

__all__ = ["PSOOptimizer"]

BOUNDS_HANDLING = ("reflect", "clip")


def default_swarm_size(dim: int) -> int:
    """``10 + floor(2 sqrt(dim))``: the swarm size of Standard PSO 2006."""
    return 10 + int(2 * np.sqrt(dim))


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and bool(np.isfinite(value))


class PSOOptimizer(BaseOptimizer):
    """Global-best particle swarm with inertia weight and velocity clamping.

    Velocity update (per coordinate, ``r1, r2 ~ U(0, 1)``)::

        v <- w v + c1 r1 (pbest - x) + c2 r2 (gbest - x),   clamped to +-vmax
        x <- x + v

    Parameters
    ----------
    swarm_size:
        Number of particles.  Default ``10 + floor(2 sqrt(dim))`` (Standard PSO 2006).
    w, c1, c2:
        Inertia weight and cognitive/social acceleration.  Defaults ``0.7298``, ``1.49618``,
        ``1.49618`` (Clerc's constriction; see the module docstring).
    vmax:
        Velocity clamp as a fraction of each parameter's range.  Default ``0.2``: large
        enough to cross the box in a few steps, small enough to keep the early swarm inside it.
    bounds_handling:
        ``"reflect"`` (default): a particle leaving the box is mirrored back at the bound it
        crossed and that velocity component reverses.  ``"clip"``: the particle stops on the
        bound and that velocity component is set to zero (absorbing walls).
    xtol:
        Stop (reason ``"xtol"``) when every particle is within ``xtol`` times the range of
        every parameter from the global best: the swarm has collapsed.  Default ``1e-10``.
    patience:
        Stop (reason ``"patience"``) after this many iterations without a strict improvement
        of the global best.  Default ``100``.
    async_eval:
        Asynchronous swarm: each particle moves (with the global best as it is then) as
        soon as its last position has been evaluated, so slow evaluations never leave
        workers idle.
    """

    supports_async: ClassVar[bool] = True

    def __init__(
        self,
        bounds: Any,
        x0: Any = None,
        seed: Any = None,
        *,
        swarm_size: int | None = None,
        w: float = 0.7298,
        c1: float = 1.49618,
        c2: float = 1.49618,
        vmax: float = 0.2,
        bounds_handling: str = "reflect",
        xtol: float = 1e-10,
        patience: int = 100,
        async_eval: bool = False,
    ) -> None:
        super().__init__(bounds, x0, seed)
        self.check_options(
            swarm_size=swarm_size,
            w=w,
            c1=c1,
            c2=c2,
            vmax=vmax,
            bounds_handling=bounds_handling,
            xtol=xtol,
            patience=patience,
            async_eval=async_eval,
        )
        dim = self.bounds.dim
        self.swarm_size = default_swarm_size(dim) if swarm_size is None else int(swarm_size)
        self.w, self.c1, self.c2 = float(w), float(c1), float(c2)
        self.vmax = float(vmax)
        self.bounds_handling = bounds_handling
        self.xtol = float(xtol)
        self.patience = int(patience)
        self.x: np.ndarray | None = None  # positions, set at the first ask
        self.v: np.ndarray | None = None
        self.pbest_x: np.ndarray | None = None  # set at the first tell
        self.pbest_f: np.ndarray | None = None
        self.gbest_x = self.x0.copy()
        self.gbest_f = float("inf")
        self.iteration = 0
        self.stall = 0
        self.async_eval = bool(async_eval)
        self._pending: set[int] = set()  # particles whose position is being evaluated
        self._cursor = 0
        self._told = 0
        self._improved = False

    @classmethod
    def check_options(
        cls,
        swarm_size: Any = None,
        w: Any = 0.7298,
        c1: Any = 1.49618,
        c2: Any = 1.49618,
        vmax: Any = 0.2,
        bounds_handling: Any = "reflect",
        xtol: Any = 1e-10,
        patience: Any = 100,
        async_eval: Any = False,
    ) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting and how to fix it."""
        if not isinstance(async_eval, bool):
            raise ConfigError(f"PSOOptimizer: async_eval must be True or False, got {async_eval!r}")
        if swarm_size is not None and (
            isinstance(swarm_size, bool) or not isinstance(swarm_size, Integral) or swarm_size < 2
        ):
            raise ConfigError(
                f"PSOOptimizer: swarm_size must be an integer >= 2 or None for "
                f"10 + floor(2 sqrt(dim)), got {swarm_size!r}"
            )
        if not (_number(w) and 0 <= w < 1):
            raise ConfigError(f"PSOOptimizer: w (inertia) must be in [0, 1) for a convergent swarm, got {w!r}")
        for name, value in (("c1", c1), ("c2", c2)):
            if not (_number(value) and value >= 0):
                raise ConfigError(f"PSOOptimizer: {name} must be a number >= 0, got {value!r}")
        if not (_number(vmax) and 0 < vmax <= 1):
            raise ConfigError(
                f"PSOOptimizer: vmax must be a fraction of the parameter range in (0, 1], got {vmax!r}"
            )
        if bounds_handling not in BOUNDS_HANDLING:
            raise ConfigError(
                f"PSOOptimizer: bounds_handling must be one of {BOUNDS_HANDLING}, got {bounds_handling!r}"
            )
        if not (_number(xtol) and xtol >= 0):
            raise ConfigError(f"PSOOptimizer: xtol must be a number >= 0, got {xtol!r}")
        if isinstance(patience, bool) or not isinstance(patience, Integral) or patience < 1:
            raise ConfigError(f"PSOOptimizer: patience must be an integer >= 1, got {patience!r}")

    @property
    def generation_size(self) -> int:
        return self.swarm_size

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> np.ndarray:
        if self.x is None:
            self._initialise()
        elif self.pbest_x is not None:
            self._move()
        assert self.x is not None
        return self.x.copy()

    def _initialise(self) -> None:
        lo, hi = self.bounds.lower, self.bounds.upper
        n, dim = self.swarm_size, self.bounds.dim
        x = lo + self.rng.random((n, dim)) * (hi - lo)
        x[0] = self.x0
        # SPSO 2006: half the way towards another random point of the box
        v = 0.5 * (lo + self.rng.random((n, dim)) * (hi - lo) - x)
        vmax = self.vmax * self.bounds.width
        self.x, self.v = x, np.clip(v, -vmax, vmax)

    def _move(self) -> None:
        assert self.x is not None and self.v is not None and self.pbest_x is not None
        shape = self.x.shape
        r1, r2 = self.rng.random(shape), self.rng.random(shape)
        v = (
            self.w * self.v
            + self.c1 * r1 * (self.pbest_x - self.x)
            + self.c2 * r2 * (self.gbest_x - self.x)
        )
        vmax = self.vmax * self.bounds.width
        v = np.clip(v, -vmax, vmax)
        x = self.x + v
        lo, hi = self.bounds.lower, self.bounds.upper
        below, above = x < lo, x > hi
        out = below | above
        if self.bounds_handling == "reflect":
            # |v| <= width, so a single mirror brings the particle back into the box
            x = np.where(below, 2 * lo - x, np.where(above, 2 * hi - x, x))
            x = np.clip(x, lo, hi)
            v = np.where(out, -v, v)
        else:
            x = np.clip(x, lo, hi)
            v = np.where(out, 0.0, v)
        self.x, self.v = x, v

    def _tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        if self.pbest_x is None or self.pbest_f is None:
            self.pbest_x, self.pbest_f = xs.copy(), fs.copy()
        else:
            better = fs < self.pbest_f
            self.pbest_x[better] = xs[better]
            self.pbest_f[better] = fs[better]
        i = int(np.argmin(self.pbest_f))
        if self.pbest_f[i] < self.gbest_f:
            self.gbest_x, self.gbest_f = self.pbest_x[i].copy(), float(self.pbest_f[i])
            self.stall = 0
        else:
            self.stall += 1
        self.iteration += 1

    # ------------------------------------------------------------------ asynchronous
    def _ask_one(self) -> tuple[int, np.ndarray] | None:
        if self.x is None:
            self._initialise()
            self.pbest_x = self.x.copy()
            self.pbest_f = np.full(self.swarm_size, np.inf)
        for k in range(self.swarm_size):
            i = (self._cursor + k) % self.swarm_size
            if i not in self._pending:
                break
        else:
            return None  # every particle is being evaluated
        self._cursor = i + 1
        if np.isfinite(self.pbest_f[i]):  # evaluated before: move it
            self._move_one(i)
        self._pending.add(i)
        return i, self.x[i].copy()

    def _move_one(self, i: int) -> None:
        assert self.x is not None and self.v is not None and self.pbest_x is not None
        dim = self.bounds.dim
        r1, r2 = self.rng.random(dim), self.rng.random(dim)
        v = self.w * self.v[i] + self.c1 * r1 * (self.pbest_x[i] - self.x[i]) + self.c2 * r2 * (self.gbest_x - self.x[i])
        vmax = self.vmax * self.bounds.width
        v = np.clip(v, -vmax, vmax)
        x = self.x[i] + v
        lo, hi = self.bounds.lower, self.bounds.upper
        below, above = x < lo, x > hi
        out = below | above
        if self.bounds_handling == "reflect":
            x = np.clip(np.where(below, 2 * lo - x, np.where(above, 2 * hi - x, x)), lo, hi)
            v = np.where(out, -v, v)
        else:
            x = np.clip(x, lo, hi)
            v = np.where(out, 0.0, v)
        self.x[i], self.v[i] = x, v

    def _tell_one(self, token: int, x: np.ndarray, fx: float) -> None:
        assert self.pbest_x is not None and self.pbest_f is not None
        self._pending.discard(token)
        if fx < self.pbest_f[token]:
            self.pbest_x[token], self.pbest_f[token] = x, fx
        if fx < self.gbest_f:
            self.gbest_x, self.gbest_f = x.copy(), fx
            self._improved = True
        self._told += 1
        if self._told % self.swarm_size == 0:  # a swarm's worth of results: one iteration
            self.iteration += 1
            self.stall = 0 if self._improved else self.stall + 1
            self._improved = False

    # ------------------------------------------------------------------ the rest
    def _stop(self) -> dict[str, Any]:
        if self.pbest_x is None or self.x is None:
            return {}
        spread = float(np.max(np.abs(self.x - self.gbest_x) / self.bounds.width))
        if spread <= self.xtol:
            return {"xtol": spread}
        if self.stall >= self.patience:
            return {"patience": self.stall}
        return {}

    def _inject(self, x: np.ndarray, fx: float) -> None:
        """Adopt ``x`` as the global best if it is better (the swarm is then drawn to it)."""
        if fx < self.gbest_f:
            self.gbest_x, self.gbest_f = self.bounds.clip(x), fx

    def _get_state(self) -> dict[str, Any]:
        def copy(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a.copy()

        return {
            "x": copy(self.x),
            "v": copy(self.v),
            "pbest_x": copy(self.pbest_x),
            "pbest_f": copy(self.pbest_f),
            "gbest_x": self.gbest_x.copy(),
            "gbest_f": self.gbest_f,
            "iteration": self.iteration,
            "stall": self.stall,
            "steady": {"pending": sorted(self._pending), "cursor": self._cursor, "told": self._told,
                       "improved": self._improved},
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("x", "v", "pbest_x", "pbest_f", "gbest_x"):
            value = state[key]
            setattr(self, key, None if value is None else np.array(value, dtype=float))
        self.gbest_f = float(state["gbest_f"])
        self.iteration = int(state["iteration"])
        self.stall = int(state["stall"])
        st = state.get("steady")
        if st is not None:
            self._pending, self._cursor = set(st["pending"]), st["cursor"]
            self._told, self._improved = st["told"], st["improved"]

    def __repr__(self) -> str:
        return (
            f"PSOOptimizer(swarm_size={self.swarm_size}, w={self.w:g}, c1={self.c1:g}, "
            f"c2={self.c2:g}, vmax={self.vmax:g}, bounds_handling={self.bounds_handling!r}, "
            f"xtol={self.xtol:g}, patience={self.patience}"
            + (", async_eval=True)" if self.async_eval else ")")
        )
