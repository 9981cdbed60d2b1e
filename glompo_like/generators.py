"""Start-point generators: where the manager starts each new optimizer.

A generator is a pure policy: ``generate(run, rng)`` gets a read-only
:class:`~glompo_like.snapshot.RunView` and the manager's ``numpy.random.Generator`` (its only
source of randomness) and returns a float array of shape ``(run.dim,)`` inside
``run.bounds``.  Generators that keep state between calls carry it through
``get_state()`` / ``set_state()`` so checkpoints resume exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from .bounds import Bounds
from .errors import ConfigError
from .snapshot import RunView

__all__ = ["BaseGenerator", "RandomGenerator", "SinglePointGenerator", "IncumbentGenerator"]


def _bounds_of(run: RunView, owner: str) -> Bounds:
    if run.bounds is None:
        raise ConfigError(f"{owner} needs the run's bounds, but the RunView has none")
    return run.bounds


def _uniform(bounds: Bounds, rng: np.random.Generator) -> np.ndarray:
    # clip: rounding in lower + width * u (u < 1) can land a hair past upper
    return bounds.clip(bounds.lower + bounds.width * rng.random(bounds.dim))


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
        self._given: np.ndarray | None = None
        self._drawn: np.ndarray | None = None
        if x is not None:
            try:
                arr = np.array(x, dtype=float)
            except (TypeError, ValueError) as e:
                raise ConfigError(
                    f"SinglePointGenerator: x must be a 1-D sequence of numbers (one per parameter) "
                    f"or None, got {x!r}"
                ) from e
            if arr.ndim != 1 or not np.all(np.isfinite(arr)):
                raise ConfigError(
                    "SinglePointGenerator: x must be a 1-D sequence of finite numbers, one per "
                    f"parameter, got {x!r}"
                )
            arr.setflags(write=False)
            self._given = arr

    def _settings(self) -> str:
        return "" if self._given is None else f"x={self._given.tolist()}"

    def generate(self, run: RunView, rng: np.random.Generator) -> np.ndarray:
        bounds = _bounds_of(run, "SinglePointGenerator")
        if self._given is not None:
            self._validate(self._given, bounds)
            return self._given.copy()
        if self._drawn is None:
            self._drawn = _uniform(bounds, rng)
        return self._drawn.copy()

    @staticmethod
    def _validate(x: np.ndarray, bounds: Bounds) -> None:
        if x.shape != (bounds.dim,):
            raise ConfigError(
                f"SinglePointGenerator: x has {x.size} values but the bounds have {bounds.dim} "
                "parameters; give one value per parameter"
            )
        if not bounds.contains(x):
            out = np.flatnonzero((x < bounds.lower) | (x > bounds.upper)).tolist()
            raise ConfigError(
                f"SinglePointGenerator: x lies outside the bounds in parameter(s) {out}; "
                "choose a point inside the bounds"
            )

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
