"""The optimizer contract: a small ask/tell object.

An optimizer never sees pipes, processes or the manager.  The runner that owns it calls::

    xs = opt.ask()          # (n, dim) array of candidates inside the bounds
    opt.tell(xs, fs)        # their values, in the same order
    opt.stop()              # {} to go on, or {reason: value} to end
    opt.result              # OptResult(x, fx): the best point told so far

and, between generations, ``get_state()`` / ``set_state()`` (checkpoints) and
``inject(x, fx)`` (the manager shares the incumbent).

Subclasses implement the ``_ask`` / ``_tell`` hooks (and optionally ``_stop``, ``_inject``,
``_get_state``, ``_set_state``); the public methods do the bookkeeping.

**Traits** tell the runner, the selectors and the conformance check what an optimizer can
do.  Every trait is declared here with its default, so they are read directly, never
guessed:

- class-level (``ClassVar``, the same for every instance): :attr:`~BaseOptimizer.generational`,
  :attr:`~BaseOptimizer.checkpointable`, :attr:`~BaseOptimizer.deterministic`,
  :attr:`~BaseOptimizer.supports_async`, :attr:`~BaseOptimizer.preload_modules`, and the
  class methods :meth:`~BaseOptimizer.check_options` and :meth:`~BaseOptimizer.preload`;
- per instance (they may depend on the settings): :attr:`~BaseOptimizer.async_eval` and
  :attr:`~BaseOptimizer.generation_size`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..bounds import Bounds, as_bounds
from ..errors import ConfigError, ContractError

__all__ = ["BaseOptimizer", "OptResult", "GenerationInTurns"]


@dataclass(frozen=True)
class OptResult:
    """The best point an optimizer has been told about (``fx`` is ``inf`` before any)."""

    x: np.ndarray | None
    fx: float


#: how far outside the bounds (relative to each parameter's width) an asked point may lie:
#: rounding; such points are clipped, points further out break the contract
BOUNDS_SLACK = 1e-9


def checked_candidates(raw: Any, bounds: Bounds, owner: str = "optimizer") -> np.ndarray:
    """``raw`` (what an optimizer asked) as a ``(n, dim)`` float array, ``n >= 1``, finite,
    inside ``bounds``; else :class:`~glompo_like.errors.ContractError` naming the rule.
    Points outside by rounding (:data:`BOUNDS_SLACK`) are clipped."""
    try:
        xs = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as e:
        raise ContractError(f"{owner}.ask() must return numbers, got {type(raw).__name__} ({e})") from e
    dim = bounds.dim
    if xs.ndim == 1 and xs.shape == (dim,):
        xs = xs[None, :]
    if xs.ndim != 2 or xs.shape[1] != dim or len(xs) == 0:
        raise ContractError(f"{owner}.ask() must return an (n, {dim}) array of candidates with n >= 1, "
                            f"got shape {xs.shape}")
    if not np.isfinite(xs).all():
        rows = np.flatnonzero(~np.isfinite(xs).all(axis=1)).tolist()
        raise ContractError(f"{owner}.ask() returned NaN or infinite values (candidate(s) {rows[:5]})")
    low, high = xs < bounds.lower, xs > bounds.upper
    if low.any() or high.any():
        slack = BOUNDS_SLACK * bounds.width
        outside = (xs < bounds.lower - slack) | (xs > bounds.upper + slack)
        if outside.any():
            rows, cols = np.nonzero(outside)
            raise ContractError(f"{owner}.ask() returned points outside the bounds (candidate {int(rows[0])}, "
                                f"parameter {int(cols[0])}: {xs[rows[0], cols[0]]!r} not in "
                                f"[{bounds.lower[cols[0]]!r}, {bounds.upper[cols[0]]!r}])")
        xs = np.clip(xs, bounds.lower, bounds.upper)  # (a copy: never the optimizer's own array)
    return xs


class BaseOptimizer(ABC):
    """Base class of every optimizer.

    Parameters
    ----------
    bounds:
        The search box.
    x0:
        Start point (inside ``bounds``); the manager's generator supplies it.  ``None``
        lets the optimizer choose (the center of the box unless documented otherwise).
    seed:
        Seed for the optimizer's own random generator (int, ``SeedSequence`` or ``None``).
    """

    # ------------------------------------------------------------ class-level traits
    #: Whether every ``ask()`` is followed by one ``tell()`` of the same points.
    generational: ClassVar[bool] = True
    #: Whether ``get_state``/``set_state`` capture everything (checkpoints resume it exactly).
    #: Optimizers that cannot (e.g. a library running its own loop on a thread) set False:
    #: a checkpoint then records them as not resumable and a resumed run starts others.
    checkpointable: ClassVar[bool] = True
    #: Whether ask() ignores the seed (the conformance check then skips seed tests).
    deterministic: ClassVar[bool] = False
    #: Whether the optimizer has a steady-state mode (``ask_one``/``tell_one``) that the
    #: runner uses when the optimizer was created with ``async_eval=True``.
    supports_async: ClassVar[bool] = False

    # ------------------------------------------------------------ per-instance traits
    #: Whether this optimizer evaluates asynchronously: the runner then sends each
    #: candidate from :meth:`ask_one` to a worker as soon as one is free and tells each value
    #: as it arrives (this needs a Level 2 pool that streams; ``"dask"`` is refused).  An
    #: optimizer with :attr:`supports_async` sets it from its ``async_eval`` argument in
    #: ``__init__``; a class that always evaluates asynchronously may set it to True here.
    async_eval: bool = False

    def __init__(self, bounds: Any, x0: Any = None, seed: Any = None) -> None:
        self.bounds: Bounds = as_bounds(bounds)
        if x0 is None:
            x0 = self.bounds.center
        x0 = np.array(x0, dtype=float)
        if x0.shape != (self.bounds.dim,):
            raise ConfigError(f"x0 must have shape ({self.bounds.dim},), got {x0.shape}")
        if not self.bounds.contains(x0):
            raise ConfigError("x0 must lie inside bounds; clip it or choose another start point")
        self.x0 = x0
        self.rng = np.random.default_rng(seed)
        self.n_asked = 0
        self.n_told = 0
        self._best_x: np.ndarray | None = None
        self._best_fx = float("inf")

    # ----------------------------------------------------------------- public API
    def ask(self) -> np.ndarray:
        """Return the next candidates as a ``(n, dim)`` float array inside the bounds
        (:class:`~glompo_like.errors.ContractError` if what ``_ask`` returned is not)."""
        xs = checked_candidates(self._ask(), self.bounds, type(self).__name__)
        self.n_asked += len(xs)
        return xs

    def tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        """Report the values ``fs`` of the points ``xs`` (same order as asked)."""
        xs = np.asarray(xs, dtype=float)
        if xs.ndim != 2:
            xs = np.atleast_2d(xs)
        fs = np.asarray(fs, dtype=float).reshape(-1)
        n = len(fs)
        if len(xs) != n:
            raise ValueError(f"tell() got {len(xs)} points but {n} values")
        if n:
            i = fs.argmin()
            best = float(fs[i])
            if best < self._best_fx:
                self._best_fx = best
                self._best_x = xs[i].copy()
        self.n_told += n
        self._tell(xs, fs)

    def ask_one(self) -> tuple[Any, np.ndarray] | None:
        """Asynchronous mode: one candidate as ``(token, x)``, or ``None`` when the
        optimizer needs results before it can propose more."""
        item = self._ask_one()
        if item is not None:
            self.n_asked += 1
        return item

    def tell_one(self, token: Any, x: np.ndarray, fx: float) -> None:
        """Asynchronous mode: the value of a candidate from :meth:`ask_one`, in any order."""
        x = np.asarray(x, dtype=float)
        fx = float(fx)
        if fx < self._best_fx:
            self._best_fx, self._best_x = fx, x.copy()
        self.n_told += 1
        self._tell_one(token, x, fx)

    def stop(self) -> dict[str, Any]:
        """Return ``{}`` while the optimizer wants to go on, else its reasons to stop."""
        return dict(self._stop())

    @property
    def generation_size(self) -> int:
        """How many candidates make one generation: what one ``ask()`` returns, typically
        the population size.  In asynchronous mode the runner counts this many told values
        as one generation (the unit of the manager's credit, reports and generation-based
        hunters).  Default 1; population-based optimizers return their population size."""
        return 1

    @property
    def result(self) -> OptResult:
        return OptResult(None if self._best_x is None else self._best_x.copy(), self._best_fx)

    def inject(self, x: np.ndarray, fx: float) -> None:
        """Offer a good point found elsewhere (the run's incumbent).  Default: ignored."""
        self._inject(np.asarray(x, dtype=float), float(fx))

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here (picklable)."""
        return {
            "base": {
                "rng": self.rng.bit_generator.state,
                "n_asked": self.n_asked,
                "n_told": self.n_told,
                "best_x": self._best_x,
                "best_fx": self._best_fx,
                "open_generation": _copy_generation(getattr(self, "_open_generation", None)),
            },
            "own": self._get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        base = state["base"]
        self.rng.bit_generator.state = base["rng"]
        self.n_asked = base["n_asked"]
        self.n_told = base["n_told"]
        self._best_x = base["best_x"]
        self._best_fx = base["best_fx"]
        if base.get("open_generation") is not None:
            self._open_generation = _copy_generation(base["open_generation"])
        self._set_state(state["own"])

    @classmethod  # noqa: B027 - optional hook, deliberately empty
    def check_options(cls, **options: Any) -> None:
        """Raise :class:`~glompo_like.errors.ConfigError` for bad settings; the selector
        calls it when the run is configured, so mistakes surface before anything starts."""

    #: Modules a forkserver should import before it starts optimizer processes (the ones
    #: :meth:`preload` imports; with ``fork`` the children inherit them instead).
    preload_modules: ClassVar[tuple[str, ...]] = ()

    @classmethod  # noqa: B027 - optional hook, deliberately empty
    def preload(cls) -> None:
        """Import heavy dependencies.  The manager calls this in its own process before it
        starts optimizer processes, so that forked children inherit the imported modules
        instead of each importing them again."""

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately empty
        """Release resources (helper threads, ...).  Called once by the runner."""

    # ------------------------------------------------------------------- hooks
    @abstractmethod
    def _ask(self) -> np.ndarray: ...

    @abstractmethod
    def _tell(self, xs: np.ndarray, fs: np.ndarray) -> None: ...

    def _stop(self) -> dict[str, Any]:
        return {}

    def _ask_one(self) -> tuple[Any, np.ndarray] | None:
        raise NotImplementedError(f"{type(self).__name__} has no asynchronous mode (supports_async is False)")

    def _tell_one(self, token: Any, x: np.ndarray, fx: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no asynchronous mode (supports_async is False)")

    def _inject(self, x: np.ndarray, fx: float) -> None:
        return None

    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.bounds.dim})"


def _copy_generation(gen: dict[str, Any] | None) -> dict[str, Any] | None:
    if gen is None:
        return None
    return {"xs": gen["xs"].copy(), "fs": gen["fs"].copy(), "given": gen["given"], "told": gen["told"]}


class GenerationInTurns:
    """``async_eval=True`` for a generational optimizer (CMA-ES, xNES, SNES), mixed in before
    :class:`BaseOptimizer`: :meth:`ask_one` hands out the candidates of one ``ask()`` one at
    a time, values may come back in any order, and once the last is in the generation is
    told whole, *in candidate order*.  The optimizer therefore sees exactly the asks and
    tells of its generational mode, and a seeded run gives the same result with and without
    it; what changes is that the runner streams the evaluations (each result is handled
    and logged as it arrives, a failed one retried at once).  The generation's barrier
    stays: the next generation is asked for when the last value of this one is in.

    A subclass sets ``self.async_eval`` from its ``async_eval`` argument."""

    supports_async: ClassVar[bool] = True
    _open_generation: dict[str, Any] | None = None

    def _ask_one(self) -> tuple[Any, np.ndarray] | None:
        gen = self._open_generation
        if gen is None:
            xs = np.asarray(self._ask(), dtype=np.float64)  # type: ignore[attr-defined]
            xs = np.atleast_2d(xs)
            gen = self._open_generation = {"xs": xs, "fs": np.full(len(xs), np.nan), "given": 0, "told": 0}
        if gen["given"] == len(gen["xs"]):
            return None  # every candidate is out: wait for their values
        i = gen["given"]
        gen["given"] += 1
        return i, gen["xs"][i].copy()

    def _tell_one(self, token: Any, x: np.ndarray, fx: float) -> None:
        gen = self._open_generation
        assert gen is not None, "tell_one() without ask_one()"
        gen["fs"][token] = fx
        gen["told"] += 1
        if gen["told"] == len(gen["xs"]):
            self._open_generation = None
            self._tell(gen["xs"], gen["fs"])  # type: ignore[attr-defined]
