"""Validated box bounds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import ConfigError, ConfigTypeError

__all__ = ["Bounds", "BoundsLike", "as_bounds"]


@dataclass(frozen=True, eq=False)
class Bounds:
    """Box bounds ``lower <= x <= upper`` (read-only float arrays of one length)."""

    lower: np.ndarray
    upper: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.lower.size)

    @property
    def width(self) -> np.ndarray:
        return self.upper - self.lower

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (self.lower + self.upper)

    def contains(self, x: np.ndarray) -> bool:
        x = np.asarray(x, dtype=float)
        return bool(np.all(x >= self.lower) and np.all(x <= self.upper))

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.lower, self.upper)

    def as_pairs(self) -> list[tuple[float, float]]:
        return [(float(lo), float(hi)) for lo, hi in zip(self.lower, self.upper, strict=True)]

    def __repr__(self) -> str:
        if self.dim <= 4:
            return f"Bounds({self.as_pairs()})"
        return f"Bounds(dim={self.dim}, lower=[{self.lower.min():g}..], upper=[..{self.upper.max():g}])"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bounds):
            return NotImplemented
        return bool(np.array_equal(self.lower, other.lower) and np.array_equal(self.upper, other.upper))

    __hash__ = None  # type: ignore[assignment]


class _LowerUpper(Protocol):
    """Bounds given as ``lb`` and ``ub`` arrays (e.g. :class:`scipy.optimize.Bounds`)."""

    @property
    def lb(self) -> Any: ...

    @property
    def ub(self) -> Any: ...


#: What ``bounds`` accepts: ``[(lower, upper), ...]``, an ``(n, 2)`` array, a :class:`Bounds`,
#: or a :class:`scipy.optimize.Bounds` (anything with ``lb`` and ``ub``).
BoundsLike = Bounds | Sequence[tuple[float, float]] | Sequence[Sequence[float]] | np.ndarray | _LowerUpper


def as_bounds(bounds: object, name: str = "bounds") -> Bounds:
    """Validate ``bounds`` (a sequence of ``(lower, upper)`` pairs, an ``(n, 2)`` array or a
    :class:`Bounds`) and return a :class:`Bounds`."""
    if isinstance(bounds, Bounds):
        return bounds
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        pairs = np.column_stack(np.broadcast_arrays(bounds.lb, bounds.ub))
    else:
        if isinstance(bounds, (str, bytes)) or not isinstance(bounds, (Sequence, np.ndarray)):
            raise ConfigTypeError(
                f"{name} must be a sequence of (lower, upper) pairs, e.g. [(-5, 5)] * 10; "
                f"got {type(bounds).__name__}"
            )
        try:
            pairs = np.asarray(bounds, dtype=float)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"{name} must be a sequence of numeric (lower, upper) pairs, e.g. [(-5, 5)] * 10"
            ) from e
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
        raise ConfigError(
            f"{name} must have shape (n_parameters, 2) with one (lower, upper) pair per "
            f"parameter, e.g. [(-5, 5)] * 10; got shape {pairs.shape}"
        )
    if not np.all(np.isfinite(pairs)):
        bad = np.flatnonzero(~np.all(np.isfinite(pairs), axis=1)).tolist()
        raise ConfigError(
            f"{name} must be finite; parameter(s) {bad} have infinite or NaN limits. "
            "Give every parameter a finite search range."
        )
    lower, upper = pairs[:, 0].copy(), pairs[:, 1].copy()
    bad = np.flatnonzero(lower >= upper).tolist()
    if bad:
        raise ConfigError(
            f"{name}: lower must be < upper for every parameter; parameter(s) {bad} "
            f"violate it (e.g. {pairs[bad[0]].tolist()}). Swap or widen those pairs."
        )
    lower.setflags(write=False)
    upper.setflags(write=False)
    return Bounds(lower, upper)
