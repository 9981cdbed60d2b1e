"""Options of one optimizer entry's Level 2 pool, besides ``workers`` and ``backend``.

An entry of a selector may carry, next to the optimizer's own keyword arguments::

    (CMAOptimizer, {"popsize": 16, "workers": 4, "backend": "processes",
                    "max_evals_per_worker": 50,       # a fresh worker after 50 evaluations
                    "gpus": [0, 1, 2, 3]})            # CUDA_VISIBLE_DEVICES of each worker
    (CMAOptimizer, {"workers": 2, "backend": "dask", "resources": {"GPU": 1}})
    (CMAOptimizer, {"workers": "auto", "backend": "processes"})   # see auto_workers()

:func:`pool_options` takes them out of the keyword arguments and checks them against the
backend (a typed error naming the entry, the option and the fix); they travel as one
frozen :class:`PoolOptions`.  The run-wide ``memory_limit`` joins them when a pool is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from numbers import Integral, Real
from typing import Any

from ..errors import ConfigError, ConfigTypeError

__all__ = ["PoolOptions", "POOL_OPTION_NAMES", "pool_options", "auto_workers", "AUTO_SERIAL_BELOW",
           "PROCESS_BACKENDS"]

#: the keys of an entry's kwargs that are pool options, not the optimizer's
POOL_OPTION_NAMES = ("max_evals_per_worker", "gpus", "resources")
#: Level 2 backends whose evaluations run in worker processes this library owns
PROCESS_BACKENDS = ("processes", "isolated")
#: ``workers="auto"`` evaluates serially when it would give an optimizer fewer workers
#: than this: a pool of one worker only adds a hand-off to one evaluation at a time
AUTO_SERIAL_BELOW = 2


@dataclass(frozen=True)
class PoolOptions:
    """See the module docstring.  ``auto``: the entry was given ``workers="auto"``."""

    max_evals_per_worker: int | None = None
    gpus: tuple[str, ...] | None = None
    resource_items: tuple[tuple[str, float], ...] | None = None  # Dask resources, as pairs
    memory_limit: int | None = None  # bytes; the run's setting, added when the pool is made
    auto: bool = False

    @property
    def resources(self) -> dict[str, float] | None:
        """Dask worker resources each evaluation needs (e.g. ``{"GPU": 1.0}``)."""
        return None if self.resource_items is None else dict(self.resource_items)

    def describe(self) -> dict[str, Any]:
        """The options that are set, as the entry's label and the summary show them."""
        out: dict[str, Any] = {}
        if self.max_evals_per_worker is not None:
            out["max_evals_per_worker"] = self.max_evals_per_worker
        if self.gpus is not None:
            out["gpus"] = list(self.gpus)
        if self.resources is not None:
            out["resources"] = dict(self.resources)
        return out

    def with_memory_limit(self, memory_limit: int | None) -> PoolOptions:
        return replace(self, memory_limit=memory_limit)


def pool_options(kwargs: dict[str, Any], workers: Any, backend: Any, name: str) -> tuple[PoolOptions, Any]:
    """Take the pool options out of an entry's ``kwargs`` (in place) and check them with its
    ``workers`` and ``backend``.  Returns the options and the number of slots the entry
    occupies (``workers``, or 1 for ``workers="auto"``: the optimizer's coordinator)."""
    auto = isinstance(workers, str) and workers == "auto"
    if auto:
        if not isinstance(backend, str) or backend in ("serial", "asyncio"):
            what = "evaluates one point at a time" if backend == "serial" else (
                "counts evaluations in flight, not CPUs" if backend == "asyncio" else "is an executor you sized")
            raise ConfigError(f"{name}: workers='auto' sizes a pool from the CPUs, and backend={backend!r} {what}; "
                              "give a pool backend ('processes', 'isolated', 'threads', 'dask') or a number of workers")
    max_evals = kwargs.pop("max_evals_per_worker", None)
    gpus = kwargs.pop("gpus", None)
    resources = kwargs.pop("resources", None)
    if max_evals is not None:
        if isinstance(max_evals, bool) or not isinstance(max_evals, Integral):
            raise ConfigTypeError(f"{name}: max_evals_per_worker must be an integer >= 1 or None, got {max_evals!r}")
        if max_evals < 1:
            raise ConfigError(f"{name}: max_evals_per_worker must be an integer >= 1 or None, got {max_evals!r}")
        if backend != "processes":
            raise ConfigError(f"{name}: max_evals_per_worker replaces worker processes, and backend={backend!r} "
                              "has none of its own; use backend='processes' (or 'isolated', which gives each "
                              "evaluation a fresh process)")
        max_evals = int(max_evals)
    if gpus is not None:
        gpus = _gpus(gpus, workers, backend, name)
    if resources is not None:
        resources = _resources(resources, backend, name)
    return PoolOptions(max_evals, gpus, resources, None, auto), (1 if auto else workers)


def _gpus(gpus: Any, workers: Any, backend: Any, name: str) -> tuple[str, ...]:
    if isinstance(gpus, (str, bytes)) or not isinstance(gpus, (list, tuple)):
        raise ConfigTypeError(f"{name}: gpus must be a list with one GPU id per worker (e.g. gpus=[0, 1]), "
                              f"got {gpus!r}")
    ids = []
    for g in gpus:
        if isinstance(g, bool) or not (isinstance(g, Integral) and g >= 0 or isinstance(g, str) and g.strip()):
            raise ConfigTypeError(f"{name}: each entry of gpus must be a GPU index >= 0 or a device id string "
                                  f"(what CUDA_VISIBLE_DEVICES takes), got {g!r}")
        ids.append(str(g).strip())
    if backend not in PROCESS_BACKENDS:
        fix = ("declare resources={'GPU': 1} for Dask instead" if backend == "dask"
               else "use backend='processes' or 'isolated'")
        raise ConfigError(f"{name}: gpus sets CUDA_VISIBLE_DEVICES in worker processes, and backend={backend!r} "
                          f"has none of its own; {fix}")
    if workers == "auto":
        raise ConfigError(f"{name}: gpus gives one GPU to each worker, so it needs a number of workers; "
                          f"use workers={len(ids)} instead of 'auto'")
    if len(ids) != workers:
        raise ConfigError(f"{name}: gpus has {len(ids)} ids for workers={workers}; each worker runs on its "
                          f"own GPU, so give workers={len(ids)} or one id per worker")
    return tuple(ids)


def _resources(resources: Any, backend: Any, name: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(resources, Mapping) or not resources:
        raise ConfigTypeError(f"{name}: resources must be a dict such as {{'GPU': 1}}, got {resources!r}")
    out = {}
    for k, v in resources.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, Real) or not v > 0:
            raise ConfigError(f"{name}: resources maps names to positive amounts (e.g. {{'GPU': 1}}), "
                              f"got {k!r}: {v!r}")
        out[k] = float(v)
    if backend != "dask":
        raise ConfigError(f"{name}: resources are Dask worker resources, and backend={backend!r} is not Dask; "
                          "use backend='dask', or gpus=[...] with backend='processes' or 'isolated'")
    return tuple(sorted(out.items()))


def auto_workers(cpus: int, coordinators: int) -> tuple[int, str]:
    """``workers="auto"``: the pool size of each of ``coordinators`` optimizers that run at
    once on ``cpus`` CPUs, ``(cpus - coordinators) // coordinators`` (each optimizer's own
    loop takes a CPU), and the reason.  Below :data:`AUTO_SERIAL_BELOW` it is 1: evaluate
    serially.

    >>> auto_workers(16, 2)[0], auto_workers(2, 2)[0]
    (7, 1)
    """
    share = (cpus - coordinators) // max(1, coordinators)
    head = (f"{cpus} CPUs, {coordinators} optimizer{'s' if coordinators != 1 else ''} at once (max_jobs): "
            f"({cpus} - {coordinators}) // {coordinators} = {share}")
    if share < AUTO_SERIAL_BELOW:
        return 1, (f"{head} worker{'s' if share != 1 else ''} each, below {AUTO_SERIAL_BELOW}: serial "
                   "evaluation (lower max_jobs to give each optimizer a pool)")
    return share, f"{head} workers each"
