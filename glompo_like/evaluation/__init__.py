"""Level 2: evaluating one optimizer's candidates.

One module per backend, in the manner of :mod:`concurrent.futures`:

- :mod:`.core`: one evaluation's :class:`Outcome` and a generation's :class:`EvalBatch`;
- :mod:`.base`: the two protocols, :class:`BatchPool` and :class:`StreamingPool`;
- :mod:`.serial`, :mod:`.threads`, :mod:`.processes`, :mod:`.executor`: the local pools;
- :mod:`.dask_pool` (client side), :mod:`.dask_remote` (worker side) and
  :mod:`.dask_cluster` (the embedded cluster): Level 2 on Dask;
- :mod:`.factory`: backend names → pool classes (:data:`POOLS`), :func:`can_stream` and
  :func:`make_pool`.

This package imports nothing above it (no runner, manager, policies or record): only
:mod:`glompo_like.procs`, :mod:`glompo_like.errors` and :mod:`glompo_like.bounds`.
"""

from .base import BatchPool, StreamingPool
from .core import EvalBatch, EvalStatus, Outcome, evaluate_one
from .dask_pool import DaskPool
from .executor import ExecutorPool, FuturesPool
from .factory import AUTO_CHOICES, POOLS, can_stream, make_pool
from .processes import ProcessPool
from .serial import AnnouncingPool, SerialPool
from .threads import ThreadPool

__all__ = [
    "EvalBatch",
    "EvalStatus",
    "Outcome",
    "evaluate_one",
    "BatchPool",
    "StreamingPool",
    "SerialPool",
    "AnnouncingPool",
    "ThreadPool",
    "ProcessPool",
    "FuturesPool",
    "ExecutorPool",
    "DaskPool",
    "POOLS",
    "AUTO_CHOICES",
    "can_stream",
    "make_pool",
]
