"""BBOB (COCO) noiseless test functions as picklable objectives.

Needs the optional extra ``bbob`` (the ``coco-experiment`` package, imported as
``cocoex``)::

    pip install "glompo_like[bbob]"

A cocoex problem is a C object and cannot be pickled, so :class:`BBOBProblem` holds only
``(function, dim, instance)`` and builds the cocoex problem lazily, the first time it is
called in a process.  It can be sent to any backend (threads, processes, spawn).

The 24 BBOB functions live in ``[-5, 5]^dim``; ``fopt`` is the instance's optimal value
(``cocoex.BareProblem.best_value()``), so ``f(x) - fopt`` is the precision COCO measures,
and the usual final target is ``fopt + 1e-8``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

__all__ = ["BBOBProblem", "bbob_suite", "import_cocoex", "BBOB_FUNCTION_NAMES"]

#: Short names of the 24 noiseless BBOB functions (Hansen et al., "Real-parameter
#: black-box optimization benchmarking 2009: noiseless functions definitions").
BBOB_FUNCTION_NAMES = {
    1: "sphere",
    2: "ellipsoid separable",
    3: "Rastrigin separable",
    4: "skew Rastrigin-Bueche",
    5: "linear slope",
    6: "attractive sector",
    7: "step-ellipsoid",
    8: "Rosenbrock",
    9: "Rosenbrock rotated",
    10: "ellipsoid",
    11: "discus",
    12: "bent cigar",
    13: "sharp ridge",
    14: "sum of different powers",
    15: "Rastrigin",
    16: "Weierstrass",
    17: "Schaffer F7, cond 10",
    18: "Schaffer F7, cond 1000",
    19: "Griewank-Rosenbrock",
    20: "Schwefel x*sin(x)",
    21: "Gallagher 101 peaks",
    22: "Gallagher 21 peaks",
    23: "Katsuura",
    24: "Lunacek bi-Rastrigin",
}
LOWER, UPPER = -5.0, 5.0


def import_cocoex() -> Any:
    """Import ``cocoex`` or raise an ImportError that names the extra to install."""
    try:
        import cocoex
    except ImportError as exc:
        raise ImportError(
            "BBOB problems need the 'coco-experiment' package (module cocoex): "
            "pip install 'glompo_like[bbob]'  (or: pip install coco-experiment)"
        ) from exc
    return cocoex


class BBOBProblem:
    """One BBOB problem: function ``1..24``, dimension, instance (COCO's instance id).

    Picklable: only ``(function, dim, instance)`` is stored; the cocoex problem is built
    on first use in each process (thread-safe).  ``problem(x)`` returns the float value.
    """

    __slots__ = ("function", "dim", "instance", "_problem", "_lock")

    def __init__(self, function: int, dim: int, instance: int = 1) -> None:
        function, dim, instance = int(function), int(dim), int(instance)
        if not 1 <= function <= 24:
            raise ValueError(f"BBOB function must be in 1..24, got {function}")
        if dim < 2:
            raise ValueError(f"BBOB dimension must be >= 2, got {dim}")
        if instance < 1:
            raise ValueError(f"BBOB instance must be >= 1, got {instance}")
        self.function = function
        self.dim = dim
        self.instance = instance
        self._problem: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ pickling
    def __getstate__(self) -> tuple[int, int, int]:
        return (self.function, self.dim, self.instance)

    def __setstate__(self, state: tuple[int, int, int]) -> None:
        self.function, self.dim, self.instance = state
        self._problem = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (BBOBProblem, (self.function, self.dim, self.instance))

    # ------------------------------------------------------------ the cocoex problem
    @property
    def problem(self) -> Any:
        """The cocoex problem of this process (built on first use)."""
        p = self._problem
        if p is None:
            with self._lock:
                if self._problem is None:
                    cocoex = import_cocoex()
                    self._problem = cocoex.BareProblem("bbob", self.function, self.dim, self.instance)
                p = self._problem
        return p

    def __call__(self, x: Any) -> float:
        x = np.asarray(x, dtype=float)
        if x.shape != (self.dim,):
            raise ValueError(f"{self.name}: x must have shape ({self.dim},), got {x.shape}")
        return float(self.problem(x))

    @property
    def fopt(self) -> float:
        """The optimal value of this instance."""
        return float(self.problem.best_value())

    @property
    def xopt(self) -> np.ndarray:
        """The optimum's location (as cocoex reports it)."""
        return np.asarray(self.problem.best_parameter(), dtype=float)

    @property
    def bounds(self) -> list[tuple[float, float]]:
        """The BBOB search box ``[-5, 5]^dim``."""
        return [(LOWER, UPPER)] * self.dim

    @property
    def lower(self) -> np.ndarray:
        return np.full(self.dim, LOWER)

    @property
    def upper(self) -> np.ndarray:
        return np.full(self.dim, UPPER)

    @property
    def name(self) -> str:
        """COCO's id, e.g. ``bbob_f015_i01_d05``."""
        return f"bbob_f{self.function:03d}_i{self.instance:02d}_d{self.dim:02d}"

    def __repr__(self) -> str:
        return f"BBOBProblem(function={self.function}, dim={self.dim}, instance={self.instance})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BBOBProblem):
            return NotImplemented
        return self.__getstate__() == other.__getstate__()

    def __hash__(self) -> int:
        return hash(("BBOBProblem", *self.__getstate__()))


def _as_ints(values: int | Iterable[int]) -> list[int]:
    return [int(values)] if isinstance(values, (int, np.integer)) else [int(v) for v in values]


def bbob_suite(
    functions: int | Iterable[int] = range(1, 25),
    dims: int | Iterable[int] = (2, 3, 5, 10, 20, 40),
    instances: int | Iterable[int] = range(1, 16),
) -> Iterator[BBOBProblem]:
    """Yield a :class:`BBOBProblem` for every (function, dim, instance): functions in the
    outer loop, then dimensions, then instances."""
    fs, ds, ins = _as_ints(functions), _as_ints(dims), _as_ints(instances)
    for f in fs:
        for d in ds:
            for i in ins:
                yield BBOBProblem(f, d, i)
