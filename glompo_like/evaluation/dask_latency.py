"""Shorter message batching on the Dask connections an optimizer waits on.

``distributed`` sends the messages of each long-lived connection in batches: at most one
flush every 10 ms from a client to the scheduler, 5 ms from the scheduler to a worker,
2 ms from a worker to the scheduler and from the scheduler to a client.  That saves work
when thousands of small tasks are in flight.  An optimizer instead submits a generation and
waits for it, so whenever two generations follow within a flush interval the next one
waits for the flush: on a 2-core machine a generation's round trip on the embedded cluster
was 10.6 ms with the stock intervals and 3.8 ms with every one of them shortened (see
``docs/performance.rst``).

:data:`SEND_INTERVAL` is the interval used instead.  :func:`quicken` applies it to one
connection.  The :class:`~glompo_like.evaluation.dask_pool.DaskPool` quickens its own
client's connection on any cluster; the embedded cluster also installs
:class:`QuickSchedulerStreams` (the scheduler's connections to workers and clients) and
:class:`QuickWorkerStream` (each worker's connection to the scheduler).  A cluster the
user runs keeps its own settings.

This module imports ``distributed``: only the embedded cluster's keeper and its workers
import it.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

from .dask_pool import SEND_INTERVAL, quicken

__all__ = ["SEND_INTERVAL", "quicken", "QuickSchedulerStreams", "QuickWorkerStream"]


class QuickSchedulerStreams(SchedulerPlugin):
    """Quickens the scheduler's connection to each worker and client as it connects."""

    name = "glompo-quick-streams"

    def quicken_all(self, scheduler: Any) -> None:
        """Quicken the connections already open (the plugin may come after the first workers)."""
        for stream in [*scheduler.stream_comms.values(), *scheduler.client_comms.values()]:
            quicken(stream)

    def add_worker(self, scheduler: Any = None, worker: str | None = None, **kwargs: Any) -> None:
        quicken(scheduler.stream_comms.get(worker))

    def add_client(self, scheduler: Any = None, client: str | None = None, **kwargs: Any) -> None:
        # the scheduler creates the client's connection right after this hook: look at it on
        # the next turn of its event loop
        scheduler.loop.add_callback(lambda: quicken(scheduler.client_comms.get(client)))


class QuickWorkerStream(WorkerPlugin):
    """Quickens a worker's connection to the scheduler."""

    name = "glompo-quick-stream"

    def setup(self, worker: Any) -> None:
        quicken(getattr(worker, "batched_stream", None))
