"""Level 2: evaluating one optimizer's candidates.

One module per backend, in the manner of :mod:`concurrent.futures`:

- :mod:`.core`: one evaluation's :class:`Outcome` and a generation's :class:`EvalBatch`;
- :mod:`.base`: the two protocols, :class:`BatchPool` and :class:`StreamingPool`;
- :mod:`.serial`, :mod:`.threads`, :mod:`.processes` (with :class:`IsolatedPool`),
  :mod:`.asyncio_pool`, :mod:`.executor`: the local pools;
- :mod:`.options`: an entry's pool options (``max_evals_per_worker``, ``gpus``, Dask
  ``resources``, ``workers="auto"``); :mod:`.memory`: sizes and resident memory;
  :mod:`.samples`: repeated samples of noisy objectives and their aggregates;
- :mod:`.dask_pool` (client side), :mod:`.dask_remote` (worker side) and
  :mod:`.dask_cluster` (the embedded cluster): Level 2 on Dask;
- :mod:`.factory`: backend names → pool classes (:data:`POOLS`), :func:`can_stream` and
  :func:`make_pool`.

This package imports nothing above it (no runner, manager, policies or record): only
:mod:`glompo_like.procs`, :mod:`glompo_like.errors` and :mod:`glompo_like.bounds`.
"""

from .asyncio_pool import AsyncioPool
from .base import BatchPool, StreamingPool
from .core import EvalBatch, EvalStatus, Outcome, PointBatch, evaluate_one, is_coroutine_task
from .dask_pool import DaskPool
from .executor import ExecutorPool, FuturesPool
from .factory import AUTO_CHOICES, POOLS, can_stream, make_pool
from .options import PoolOptions
from .processes import IsolatedPool, ProcessPool
from .serial import AnnouncingPool, SerialPool
from .threads import ThreadPool

__all__ = [
    "EvalBatch",
    "EvalStatus",
    "Outcome",
    "PointBatch",
    "evaluate_one",
    "is_coroutine_task",
    "BatchPool",
    "StreamingPool",
    "SerialPool",
    "AnnouncingPool",
    "ThreadPool",
    "ProcessPool",
    "IsolatedPool",
    "AsyncioPool",
    "PoolOptions",
    "FuturesPool",
    "ExecutorPool",
    "DaskPool",
    "POOLS",
    "AUTO_CHOICES",
    "can_stream",
    "make_pool",
]
