"""Standard test functions (minimisation), each with its usual bounds and known optimum.

They are plain module-level functions, so they pickle by reference to any backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["TestFunction", "sphere", "ellipsoid", "rosenbrock", "rastrigin", "ackley", "FUNCTIONS"]


def sphere(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(x @ x)


def ellipsoid(x: np.ndarray) -> float:
    """Axis-parallel ellipsoid with condition number 1e6."""
    x = np.asarray(x, dtype=float)
    n = x.size
    w = 10.0 ** (6.0 * np.arange(n) / max(n - 1, 1))
    return float(w @ (x * x))


def rosenbrock(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def rastrigin(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(10.0 * x.size + np.sum(x * x - 10.0 * np.cos(2.0 * np.pi * x)))


def ackley(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    n = x.size
    return float(
        -20.0 * np.exp(-0.2 * np.sqrt(x @ x / n)) - np.exp(np.sum(np.cos(2.0 * np.pi * x)) / n) + 20.0 + np.e
    )


@dataclass(frozen=True)
class TestFunction:
    """A test function with its conventional box and known minimum."""

    __test__ = False  # not a pytest test class

    name: str
    f: Callable[[np.ndarray], float]
    lower: float
    upper: float
    fmin: float = 0.0

    def bounds(self, dim: int) -> list[tuple[float, float]]:
        return [(self.lower, self.upper)] * dim


FUNCTIONS = {
    t.name: t
    for t in (
        TestFunction("sphere", sphere, -5.0, 5.0),
        TestFunction("ellipsoid", ellipsoid, -5.0, 5.0),
        TestFunction("rosenbrock", rosenbrock, -5.0, 10.0),
        TestFunction("rastrigin", rastrigin, -5.12, 5.12),
        TestFunction("ackley", ackley, -32.768, 32.768),
    )
}
