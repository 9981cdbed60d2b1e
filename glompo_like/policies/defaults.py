"""The manager's default policies, in one place.

What a run uses when the caller leaves ``opt_selector``, ``convergence_checker``,
``killing_conditions``, ``x0_generator`` or ``hunt_frequency`` unset.  They were chosen on
benchmarks (see docs/benchmarks.rst); each function takes the problem's dimension, and
:func:`default_selector` and :func:`default_level1` also the run's slots (``max_jobs``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_selector", "default_checker", "default_hunters", "default_generator",
           "default_hunt_frequency", "default_level1", "POOLED_BELOW", "pooled", "local_start"]

#: with ``2 <= max_jobs < POOLED_BELOW`` slots the default runs ONE optimizer at a time,
#: whose population is evaluated on all the slots (Level 2), instead of several optimizers
#: that split the evaluations between them (docs/benchmarks.rst, issue 20)
POOLED_BELOW = 4


def pooled(max_jobs: int) -> bool:
    """Whether the default selector gives its one optimizer all ``max_jobs`` slots."""
    return 1 < max_jobs < POOLED_BELOW


def default_selector(dim: int, max_jobs: int = 1) -> Any:
    """IPOP-style restarts: default-population CMA-ES runs alternate with runs of 2, 4,
    ..., 32 times the default population (tuned on BBOB f15-f24, docs/benchmarks.rst).

    With ``max_jobs`` from 2 to ``POOLED_BELOW - 1`` one optimizer at a time takes every
    slot and evaluates its population on them (``workers=max_jobs``, Level 2
    ``backend="auto"``: serial for a task cheaper than a millisecond, threads for one that
    releases the GIL, processes otherwise).  Two optimizers sharing the budget each get half
    the evaluations, which costs more than their diversity gains at up to 10^4 * dim
    evaluations (issue 20).  The run then starts with :func:`local_start`, an L-BFGS-B
    descent whose finite-difference gradients (``dim + 1`` points) are evaluated in
    parallel, before the restarted CMA-ES.  With one slot, or with more slots (several
    optimizers at once, each evaluating serially), the schedule is as before."""
    from ..optimizers import CMAOptimizer
    from .selectors import IPOPSelector

    if pooled(max_jobs):
        pool = {"workers": int(max_jobs), "backend": "auto"}
        return IPOPSelector((CMAOptimizer, pool), growth=2, steps=6, interleave=True,
                            first=local_start(dim, pool))
    return IPOPSelector(CMAOptimizer, growth=2, steps=6, interleave=True)


def local_start(dim: int, pool: dict[str, Any] | None = None) -> Any:
    """The pooled default's first optimizer: L-BFGS-B from a random point, run to the
    precision its finite-difference gradient allows (``ftol=1e-15, gtol=1e-12``), at most
    ``100 * dim`` gradient evaluations (``maxfun``; each is ``dim + 1`` points).  On smooth
    unimodal problems it reaches the optimum in tens of gradients where CMA-ES needs
    hundreds of generations; elsewhere it ends in a local optimum for a few hundred
    evaluations and the CMA-ES schedule takes over."""
    from ..optimizers import ScipyOptimizer

    return (ScipyOptimizer, {"ftol": 1e-15, "gtol": 1e-12, "maxfun": 100 * int(dim), **(pool or {})})


def default_level1(backend: str, max_jobs: int) -> str:
    """The Level 1 backend when the selector is the default: daemonic ``"processes"``
    cannot own the process pool that the pooled default (:func:`pooled`) may choose for a
    task that holds the GIL, so it becomes ``"processes_forced"`` (still one process per
    optimizer, non-daemonic).  Any other backend is kept."""
    return "processes_forced" if backend == "processes" and pooled(max_jobs) else backend


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
