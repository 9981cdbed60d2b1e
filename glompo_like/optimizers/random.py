"""Uniform random search: a baseline and a space-filling explorer."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from .base import BaseOptimizer

__all__ = ["RandomOptimizer"]


class RandomOptimizer(BaseOptimizer):
    """Samples ``popsize`` points uniformly in the bounds per generation.

    Stops after ``max_evals`` evaluations when given (else runs until the manager stops it).
    ``async_eval=True``: a new point goes to a worker as soon as one is free.
    """

    supports_async: ClassVar[bool] = True

    def __init__(
        self,
        bounds: Any,
        x0: Any = None,
        seed: Any = None,
        *,
        popsize: int = 10,
        max_evals: int | None = None,
        async_eval: bool = False,
    ) -> None:
        super().__init__(bounds, x0, seed)
        if not isinstance(popsize, (int, np.integer)) or popsize < 1:
            raise ConfigError(f"RandomOptimizer: popsize must be an integer >= 1, got {popsize!r}")
        if max_evals is not None and (not isinstance(max_evals, (int, np.integer)) or max_evals < 1):
            raise ConfigError(f"RandomOptimizer: max_evals must be a positive integer, got {max_evals!r}")
        self.popsize = int(popsize)
        self.max_evals = max_evals
        if not isinstance(async_eval, bool):
            raise ConfigError(f"RandomOptimizer: async_eval must be True or False, got {async_eval!r}")
        self.async_eval = async_eval

    @property
    def generation_size(self) -> int:
        return self.popsize

    def _ask(self) -> np.ndarray:
        lo, hi = self.bounds.lower, self.bounds.upper
        return lo + (hi - lo) * self.rng.random((self.popsize, self.bounds.dim))

    def _tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        return None

    def _ask_one(self) -> tuple[None, np.ndarray]:
        lo, hi = self.bounds.lower, self.bounds.upper
        return None, lo + (hi - lo) * self.rng.random(self.bounds.dim)

    def _tell_one(self, token: Any, x: np.ndarray, fx: float) -> None:
        return None

    def _stop(self) -> dict[str, Any]:
        if self.max_evals is not None and self.n_told >= self.max_evals:
            return {"max_evals": self.max_evals}
        return {}

    def __repr__(self) -> str:
        extra = ", async_eval=True" if self.async_eval else ""
        return f"RandomOptimizer(popsize={self.popsize}, max_evals={self.max_evals}{extra})"
