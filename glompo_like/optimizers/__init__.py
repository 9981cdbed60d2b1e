"""Optimizers: ask/tell objects behind one contract (:class:`BaseOptimizer`)."""

from .base import BaseOptimizer, OptResult
from .cma import CMAOptimizer
from .random import RandomOptimizer

__all__ = ["BaseOptimizer", "OptResult", "CMAOptimizer", "RandomOptimizer"]
