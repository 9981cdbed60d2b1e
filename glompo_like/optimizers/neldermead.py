"""Nelder–Mead downhill simplex as an ask/tell state machine.

The first ``ask()`` returns the whole initial simplex (``dim + 1`` points) as one batch;
after that each ``ask()`` returns one trial point (reflection, expansion or contraction),
or the ``dim`` points of a shrink as one batch.  Every point is projected into the box
(clipped), so the simplex always lies inside the bounds.

The iteration follows Lagarias, Reeds, Wright & Wright (1998); for ``dim > 2`` the
coefficients are those of Gao & Han (2012), which keep the method effective in higher
dimensions: reflection ``1``, expansion ``1 + 2/dim``, contraction ``0.75 - 1/(2 dim)``,
shrink ``1 - 1/dim``.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from .base import BaseOptimizer

__all__ = ["NelderMeadOptimizer"]

# phases: what the points of the open ask are
_INIT, _REFLECT, _EXPAND, _CONTRACT_OUT, _CONTRACT_IN, _SHRINK = (
    "init",
    "reflect",
    "expand",
    "contract_out",
    "contract_in",
    "shrink",
)


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and bool(np.isfinite(value))


class NelderMeadOptimizer(BaseOptimizer):
    """Bounded Nelder–Mead simplex search (deterministic: it uses no random numbers).

    Parameters
    ----------
    init_step:
        Initial simplex: ``x0`` and, for each parameter ``i``, ``x0`` moved by ``init_step``
        times that parameter's range along axis ``i`` (backwards if forwards would leave the
        box).  Default ``0.1``: a simplex big enough to see the landscape's trend, small
        enough to stay local to the start point the manager chose.
    adaptive:
        Use Gao & Han's dimension-dependent coefficients.  Default ``None``: only when
        ``dim > 2`` (for ``dim <= 2`` they equal or degrade the standard ones).
    xatol, fatol:
        Stop (reasons ``"xatol"`` and ``"fatol"``, together) when every vertex is within
        ``xatol`` of the best vertex in every coordinate and every vertex value is within
        ``fatol`` of the best value (scipy's test).  Defaults ``1e-8`` and ``1e-12``.
    """

    deterministic: ClassVar[bool] = True

    def __init__(
        self,
        bounds: Any,
        x0: Any = None,
        seed: Any = None,
        *,
        init_step: float = 0.1,
        adaptive: bool | None = None,
        xatol: float = 1e-8,
        fatol: float = 1e-12,
    ) -> None:
        super().__init__(bounds, x0, seed)
        self.check_options(init_step=init_step, adaptive=adaptive, xatol=xatol, fatol=fatol)
        dim = self.bounds.dim
        self.init_step = float(init_step)
        self.adaptive = dim > 2 if adaptive is None else bool(adaptive)
        if self.adaptive:
            self.coef = (1.0, 1.0 + 2.0 / dim, 0.75 - 0.5 / dim, 1.0 - 1.0 / dim)
        else:
            self.coef = (1.0, 2.0, 0.5, 0.5)
        self.xatol = float(xatol)
        self.fatol = float(fatol)
        self.sim = self._initial_simplex()  # (dim + 1, dim), sorted by value once told
        self.fsim = np.full(dim + 1, np.inf)
        self.phase = _INIT
        self.iteration = 0
        self._centroid: np.ndarray | None = None
        self._xr: np.ndarray | None = None  # the reflected point and its value
        self._fr = np.inf
        self._trial: np.ndarray | None = None  # the open ask's points
        self._injected: tuple[np.ndarray, float] | None = None

    @classmethod
    def check_options(
        cls, init_step: Any = 0.1, adaptive: Any = None, xatol: Any = 1e-8, fatol: Any = 1e-12
    ) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting and how to fix it."""
        if not (_number(init_step) and 0 < init_step <= 1):
            raise ConfigError(
                "NelderMeadOptimizer: init_step must be a fraction of the parameter range in "
                f"(0, 1], got {init_step!r}"
            )
        if adaptive is not None and not isinstance(adaptive, (bool, np.bool_)):
            raise ConfigError(
                f"NelderMeadOptimizer: adaptive must be True, False or None (auto), got {adaptive!r}"
            )
        for name, value in (("xatol", xatol), ("fatol", fatol)):
            if not (_number(value) and value >= 0):
                raise ConfigError(f"NelderMeadOptimizer: {name} must be a number >= 0, got {value!r}")

    @property
    def generation_size(self) -> int:
        """Points per ask after the initial simplex: one (a shrink asks ``dim``)."""
        return 1

    def _initial_simplex(self) -> np.ndarray:
        dim = self.bounds.dim
        step = self.init_step * self.bounds.width
        forward = self.x0 + step <= self.bounds.upper
        step = np.where(forward, step, -step)
        sim = np.tile(self.x0, (dim + 1, 1))
        sim[1:] += np.diag(step)
        return self.bounds.clip(sim)

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> np.ndarray:
        if self._trial is None:
            self._trial = self._next_points()
        return self._trial.copy()

    def _next_points(self) -> np.ndarray:
        if self.phase == _INIT:
            return self.sim.copy()
        if self.phase == _SHRINK:
            best = self.sim[0]
            return self.bounds.clip(best + self.coef[3] * (self.sim[1:] - best))
        # a new iteration: reflect the worst vertex through the centroid of the others
        self.phase = _REFLECT
        self._apply_injection()
        self._centroid = self.sim[:-1].mean(axis=0)
        return self._towards(self.coef[0])[None, :]

    def _towards(self, t: float) -> np.ndarray:
        """The point ``c + t (c - worst)`` (clipped): reflection, expansion, contraction."""
        assert self._centroid is not None
        return self.bounds.clip(self._centroid + t * (self._centroid - self.sim[-1]))

    def _tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        if self._trial is None or len(xs) != len(self._trial):
            raise ValueError("NelderMeadOptimizer.tell() expects the points of the last ask()")
        self._trial = None
        if self.phase == _INIT:
            self.sim, self.fsim = xs.copy(), fs.copy()
            self._end_iteration()
        elif self.phase == _SHRINK:
            self.sim[1:], self.fsim[1:] = xs, fs
            self._end_iteration()
        else:
            self._step(xs[0], float(fs[0]))

    def _step(self, x: np.ndarray, fx: float) -> None:
        """One decision of the Nelder–Mead iteration after the value of a trial point."""
        rho, chi, gamma, _ = self.coef
        f_best, f_second, f_worst = self.fsim[0], self.fsim[-2], self.fsim[-1]
        if self.phase == _REFLECT:
            self._xr, self._fr = x, fx
            if fx < f_best:
                self.phase, self._trial = _EXPAND, self._towards(rho * chi)[None, :]
            elif fx < f_second:
                self._accept(x, fx)
            elif fx < f_worst:
                self.phase, self._trial = _CONTRACT_OUT, self._towards(rho * gamma)[None, :]
            else:
                self.phase, self._trial = _CONTRACT_IN, self._towards(-gamma)[None, :]
        elif self.phase == _EXPAND:
            assert self._xr is not None
            if fx < self._fr:
                self._accept(x, fx)
            else:
                self._accept(self._xr, self._fr)
        elif self.phase == _CONTRACT_OUT:
            if fx <= self._fr:
                self._accept(x, fx)
            else:
                self.phase = _SHRINK
        elif self.phase == _CONTRACT_IN:
            if fx < f_worst:
                self._accept(x, fx)
            else:
                self.phase = _SHRINK

    def _accept(self, x: np.ndarray, fx: float) -> None:
        self.sim[-1], self.fsim[-1] = x, fx
        self._end_iteration()

    def _end_iteration(self) -> None:
        order = np.argsort(self.fsim, kind="stable")
        self.sim, self.fsim = self.sim[order], self.fsim[order]
        self.phase = _REFLECT
        self._xr, self._fr, self._centroid = None, np.inf, None
        self.iteration += 1

    # ------------------------------------------------------------------ the rest
    def _stop(self) -> dict[str, Any]:
        if self.phase != _REFLECT or self._trial is not None:
            return {}  # only judged between iterations
        dx = float(np.max(np.abs(self.sim[1:] - self.sim[0])))
        df = float(np.max(np.abs(self.fsim[1:] - self.fsim[0])))
        if dx <= self.xatol and df <= self.fatol:
            return {"xatol": dx, "fatol": df}
        return {}

    def _inject(self, x: np.ndarray, fx: float) -> None:
        """Remember ``x``; at the start of the next iteration it replaces the worst vertex if
        it is better than that vertex."""
        if self._injected is None or fx < self._injected[1]:
            self._injected = (self.bounds.clip(x), fx)

    def _apply_injection(self) -> None:
        if self._injected is None:
            return
        x, fx = self._injected
        self._injected = None
        if fx < self.fsim[-1]:
            self.sim[-1], self.fsim[-1] = x, fx
            order = np.argsort(self.fsim, kind="stable")
            self.sim, self.fsim = self.sim[order], self.fsim[order]

    def _get_state(self) -> dict[str, Any]:
        def copy(a: Any) -> Any:
            return a.copy() if isinstance(a, np.ndarray) else a

        return {
            "sim": self.sim.copy(),
            "fsim": self.fsim.copy(),
            "phase": self.phase,
            "iteration": self.iteration,
            "centroid": copy(self._centroid),
            "xr": copy(self._xr),
            "fr": self._fr,
            "trial": copy(self._trial),
            "injected": None if self._injected is None else (self._injected[0].copy(), self._injected[1]),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.sim = np.array(state["sim"], dtype=float)
        self.fsim = np.array(state["fsim"], dtype=float)
        self.phase = state["phase"]
        self.iteration = int(state["iteration"])
        self._centroid = state["centroid"]
        self._xr = state["xr"]
        self._fr = float(state["fr"])
        self._trial = state["trial"]
        self._injected = state["injected"]

    def __repr__(self) -> str:
        return (
            f"NelderMeadOptimizer(init_step={self.init_step:g}, adaptive={self.adaptive}, "
            f"xatol={self.xatol:g}, fatol={self.fatol:g})"
        )
