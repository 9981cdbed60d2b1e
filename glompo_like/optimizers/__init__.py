"""Optimizers: ask/tell objects behind one contract (:class:`BaseOptimizer`)."""

from .base import BaseOptimizer, OptResult
from .cma import CMAOptimizer
from .de import DEOptimizer
from .neldermead import NelderMeadOptimizer
from .nes import SNESOptimizer, XNESOptimizer
from .pso import PSOOptimizer
from .random import RandomOptimizer
from .scipy_adapter import ScipyOptimizer

__all__ = [
    "BaseOptimizer",
    "OptResult",
    "CMAOptimizer",
    "RandomOptimizer",
    "DEOptimizer",
    "PSOOptimizer",
    "XNESOptimizer",
    "SNESOptimizer",
    "NelderMeadOptimizer",
    "ScipyOptimizer",
]
