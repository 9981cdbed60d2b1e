"""Which pool a Level 2 backend name means, whether it streams, and building one.

::

    entry backend ──► POOLS["serial" | "threads" | "processes" | "isolated" | "asyncio" | "dask"] ──► pool class
                  └─► an Executor ──► ExecutorPool            ("auto" is resolved by the
                                                                manager before a pool is made)

:func:`can_stream` answers from the class, before anything is built, so a combination that
cannot work (``async_eval=True`` on a batch-only backend) is refused at construction.
:func:`make_pool` is what a runner calls, with plain arguments: this package knows nothing
of runners or of the manager.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..procs.start import forget_inherited_forkserver, pool_preload_modules
from .asyncio_pool import AsyncioPool
from .base import BatchPool, StreamingPool
from .core import Outcome
from .dask_pool import DaskPool
from .executor import ExecutorPool
from .options import PoolOptions
from .processes import IsolatedPool, ProcessPool, preload_threadpoolctl
from .serial import AnnouncingPool, SerialPool
from .threads import ThreadPool

__all__ = ["POOLS", "AUTO_CHOICES", "can_stream", "make_pool"]

#: Level 2 backend name → the pool class that implements it.
POOLS: Mapping[str, type[BatchPool]] = MappingProxyType({
    "serial": SerialPool,
    "threads": ThreadPool,
    "processes": ProcessPool,
    "isolated": IsolatedPool,
    "asyncio": AsyncioPool,
    "dask": DaskPool,
})
#: What ``backend="auto"`` may resolve to (see :mod:`glompo_like.execution.auto`): only
#: streaming pools, so "auto" streams.
AUTO_CHOICES = ("serial", "threads", "processes")


def can_stream(backend: str | Executor) -> bool:
    """Whether the Level 2 ``backend`` (a name, ``"auto"`` or a user's
    ``concurrent.futures.Executor``) gives a :class:`~glompo_like.evaluation.StreamingPool`,
    which asynchronous evaluation (``async_eval=True``) needs.

    Raises :class:`~glompo_like.errors.ConfigError` for an unknown name.

    Examples
    --------
    >>> can_stream("processes"), can_stream("isolated"), can_stream("dask"), can_stream("auto")
    (True, True, False, True)
    """
    if isinstance(backend, Executor):
        return issubclass(ExecutorPool, StreamingPool)
    if backend == "auto":
        return all(can_stream(b) for b in AUTO_CHOICES)
    try:
        cls = POOLS[backend]
    except (KeyError, TypeError):
        names = ", ".join(map(repr, (*POOLS, "auto")))
        raise ConfigError(f"unknown Level 2 backend {backend!r}; use one of {names} or a "
                          "concurrent.futures.Executor") from None
    return issubclass(cls, StreamingPool)


def make_pool(
    backend: str | Executor,
    task: Callable[[np.ndarray], Any],
    *,
    workers: int = 1,
    label: str = "opt",
    task_bytes: bytes | None = None,
    pool_start_method: str | None = None,
    start_method: str | None = None,
    timeout: float | None = None,
    blas_threads: int | None = 1,
    dask_address: str | None = None,
    dask_security: Any = None,
    dask_worker_timeout: float | None = None,
    announce: Callable[[np.ndarray], None] | None = None,
    done: Callable[[Any, np.ndarray, Outcome], None] | None = None,
    options: PoolOptions | None = None,
) -> BatchPool:
    """Build the Level 2 pool of one optimizer.

    Parameters
    ----------
    backend:
        ``"serial"``, ``"threads"``, ``"processes"``, ``"isolated"``, ``"asyncio"``, ``"dask"`` or a user's
        ``concurrent.futures.Executor`` (left open when the pool closes).  ``"auto"`` must
        have been resolved already.
    task:
        The objective, for pools that call it in this process (serial, threads, executor).
    workers:
        Threads or worker processes (for Dask: the slots the optimizer occupies).
    label:
        The optimizer's label (``"opt3"``); evaluation rows name their worker after it.
    task_bytes:
        The pickled task, for pools that run it in other processes (processes, dask).
    pool_start_method:
        The start method of worker processes (``None``: ``start_method``).  With
        ``"forkserver"`` the server is told to preload the worker code
        (:func:`glompo_like.procs.start.pool_preload_modules`).
    start_method:
        The start method of worker processes when ``pool_start_method`` is ``None``
        (``None`` too: the platform default).
    timeout:
        Seconds one evaluation may take (``task_timeout``), or ``None``.
    blas_threads:
        BLAS/OpenMP threads per worker process (``None``: leave the environment alone).
    dask_address:
        The scheduler of ``"dask"``.
    dask_security:
        Its ``distributed.Security`` (TLS), or ``None``.
    dask_worker_timeout:
        Seconds to wait for the cluster's first worker (``None``: the pool's default).
    announce:
        For a serial runner in its own process under ``timeout`` (the manager kills the
        process at the deadline): called with each point before it is evaluated.  Given
        with ``done``, ``"serial"`` with a ``timeout`` builds an
        :class:`~glompo_like.evaluation.AnnouncingPool`.
    done:
        Its counterpart: called with the evaluation's key, the point and its outcome as soon
        as it is evaluated, so nothing evaluated is lost with the process.
    options:
        The entry's :class:`~glompo_like.evaluation.options.PoolOptions`
        (``max_evals_per_worker``, ``gpus``, Dask ``resources``, the run's ``memory_limit``).
    """
    opt = options if options is not None else PoolOptions()
    if isinstance(backend, Executor):
        return ExecutorPool(task, backend, label)
    if backend == "serial":
        if timeout is not None and announce is not None and done is not None:
            return AnnouncingPool(task, label, announce, done)
        return SerialPool(task, label)
    if backend == "threads":
        return ThreadPool(task, workers, label)
    if backend == "asyncio":
        return AsyncioPool(task, workers, label, timeout)
    if backend in ("processes", "isolated"):
        ctx = multiprocessing.get_context(pool_start_method or start_method)
        if ctx.get_start_method() == "forkserver":
            forget_inherited_forkserver()  # a forked optimizer process cannot use its parent's
            # (this process's own server starts with the first worker, with their code loaded)
            ctx.set_forkserver_preload(pool_preload_modules(blas_threads))
        elif blas_threads is not None:
            preload_threadpoolctl()  # forked workers then find it imported
        if backend == "isolated":
            return IsolatedPool(task_bytes, workers, ctx, label, timeout, blas_threads, opt.memory_limit, opt.gpus)
        return ProcessPool(task_bytes, workers, ctx, label, timeout, blas_threads, opt.max_evals_per_worker,
                           opt.memory_limit, opt.gpus)
    if backend == "dask":
        extra = {} if dask_worker_timeout is None else {"worker_timeout": dask_worker_timeout}
        return DaskPool(task_bytes, workers, dask_address, label, timeout, resources=opt.resources,
                        security=dask_security, **extra)
    raise ConfigError(f"unknown Level 2 backend {backend!r}; use one of {', '.join(map(repr, POOLS))} "
                      "or a concurrent.futures.Executor ('auto' is resolved before pools are made)")

