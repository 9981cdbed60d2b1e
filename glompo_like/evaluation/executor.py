"""Level 2 on ``concurrent.futures``: a user's Executor, and the futures plumbing shared
with the thread pool.

::

    runner ── evaluate(xs) ──► FuturesPool ── executor.submit(evaluate_one, task, x) per row
                                   ▲                                   │
                                   └── wait(FIRST_COMPLETED) ◄── Future[Outcome]

:class:`FuturesPool` turns any :class:`concurrent.futures.Executor` into a streaming pool;
:class:`ExecutorPool` is one over an executor the user owns (it is never shut down here),
:class:`~glompo_like.evaluation.threads.ThreadPool` one over a thread pool it creates.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_futures
from typing import Any

import numpy as np

from .base import AbortCheck, StreamingPool
from .core import Outcome, evaluate_one, where_json

__all__ = ["FuturesPool", "ExecutorPool", "collect_futures"]


class FuturesPool(StreamingPool):
    """A streaming pool over an ``executor``: every evaluation is one future.

    Subclasses close the executor in :meth:`close` if they created it.
    """

    def __init__(self, task: Callable[[np.ndarray], Any], executor: Executor, label: str, workers: int) -> None:
        self.task = task
        self.executor = executor
        self.label = label
        self.workers = workers
        self._futures: dict[Future, Hashable] = {}

    def submit(self, key: Hashable, x: np.ndarray) -> None:
        self._futures[self.executor.submit(evaluate_one, self.task, x, self.label, self._where())] = key

    def collect(self, timeout: float | None = None) -> list[tuple[Hashable, Outcome]]:
        if not self._futures:
            return []
        done, _ = wait_futures(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        return [(self._futures.pop(f), f.result()) for f in done]

    def cancel_pending(self) -> list[Hashable]:
        keys = [k for f, k in list(self._futures.items()) if f.cancel()]
        self._futures = {f: k for f, k in self._futures.items() if not f.cancelled()}
        return keys

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    def evaluate(self, xs: np.ndarray, should_abort: AbortCheck | None = None) -> list[Outcome | None]:
        where = self._where()
        futs = [self.executor.submit(evaluate_one, self.task, x, self.label, where) for x in xs]
        return collect_futures(futs, should_abort)

    def _where(self) -> str | None:
        """Where evaluations run: this process for the pool's own threads; ``None`` (each
        evaluation looks itself) for a user's executor, which may run them elsewhere."""
        return where_json(self.label)


class ExecutorPool(FuturesPool):
    """Evaluations through a user's ``concurrent.futures.Executor``, which stays open."""

    kind = "executor"

    def _where(self) -> str | None:
        return None

    def __init__(self, task: Callable[[np.ndarray], Any], executor: Executor, label: str) -> None:
        workers = int(getattr(executor, "_max_workers", 1) or 1)  # a private attribute, if it has one
        super().__init__(task, executor, label, workers)


def collect_futures(futs: list[Future], should_abort: AbortCheck | None) -> list[Outcome | None]:
    """Wait for ``futs`` (each an :class:`Outcome`), asking ``should_abort`` whenever one
    completes; once it says stop, cancel the rest (``None`` in their place)."""
    pending = set(futs)
    while pending:
        _, pending = wait_futures(pending, return_when="FIRST_COMPLETED")
        if pending and should_abort is not None and should_abort():
            for f in pending:
                f.cancel()
            wait_futures(pending)
            break
    out: list[Outcome | None] = []
    for f in futs:
        if f.cancelled():
            out.append(None)
        else:
            out.append(f.result())
    return out
