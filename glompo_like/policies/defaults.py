"""The manager's default policies, in one place.

What a run uses when the caller leaves ``opt_selector``, ``convergence_checker``,
``killing_conditions``, ``x0_generator`` or ``hunt_frequency`` unset.  They were chosen on
benchmarks (see docs/benchmarks.rst); each function takes the problem's dimension.
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_selector", "default_checker", "default_hunters", "default_generator",
           "default_hunt_frequency"]


def default_selector(dim: int) -> Any:
    """IPOP-style restarts: default-population CMA-ES runs alternate with runs of 2, 4,
    ..., 32 times the default population (tuned on BBOB f15-f24, docs/benchmarks.rst)."""
    from ..optimizers import CMAOptimizer
    from .selectors import IPOPSelector

    return IPOPSelector(CMAOptimizer, growth=2, steps=6, interleave=True)


def default_checker(dim: int) -> Any:
    """An evaluation budget of ``10_000 * dim``."""
    from .checkers import MaxFuncCalls

    return MaxFuncCalls(10_000 * dim)


def default_hunters(dim: int) -> Any:
    """Hunt an optimizer that has had a fair trial and stopped improving.  The windows are
    also counted in generations, so large-population optimizers get a fair trial."""
    from .hunters import BestUnmoving, MinFuncCalls

    return MinFuncCalls(100 * dim, min_generations=50) & BestUnmoving(40 * dim, 0.01, generations=25)


def default_generator(dim: int) -> Any:
    """Start points uniform in the box."""
    from .generators import RandomGenerator

    return RandomGenerator()


def default_hunt_frequency(dim: int) -> int:
    """Evaluations between two hunts."""
    return 10 * dim
