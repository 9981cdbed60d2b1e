"""Level 2 ``"asyncio"``: ``async def`` objectives, awaited on an event loop of the runner.

::

    runner ── submit(key, x) / evaluate(xs) ──► AsyncioPool: loop.create_task(_run(x))
                                                    │  async with semaphore(workers):
                                                    │      await task(x)      (timed from here)
           ◄── collect(): run the loop until one is done ◄┘

An objective that waits (for a web service, a simulator behind a socket, a queue) spends
its time in ``await``; a thread per waiting evaluation would be wasteful, and the
objective's author wrote it as a coroutine anyway.  The pool owns one event loop, which
runs only inside :meth:`AsyncioPool.collect` / :meth:`AsyncioPool.evaluate`, in the
runner's own thread (every optimizer its own loop, so optimizers never share one); at most
``workers`` evaluations are past the semaphore at once, the others wait their turn.

``task_timeout`` is enforced by cancelling the coroutine at its deadline
(:func:`asyncio.wait_for`); that works when the coroutine awaits, and cannot interrupt one
that blocks the loop with a long computation between two awaits.  Its row says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from .base import AbortCheck, StreamingPool
from .core import EvalStatus, Outcome, failed_outcome, lost_outcome, value_outcome, where_json

__all__ = ["AsyncioPool"]


class AsyncioPool(StreamingPool):
    """``workers`` evaluations of a coroutine task in flight at once, on the pool's own event
    loop (see the module docstring).

    Parameters
    ----------
    task:
        An ``async def`` function of a point (or an object with an ``async def __call__``).
    workers:
        Evaluations awaited at once.
    label:
        The optimizer's label; rows name it as their worker.
    timeout:
        Seconds one evaluation may take before its coroutine is cancelled (``timed_out``).
    """

    kind = "asyncio"

    def __init__(self, task: Callable[[np.ndarray], Any], workers: int, label: str,
                 timeout: float | None = None) -> None:
        self.task = task
        self.workers = workers
        self.label = label
        self.timeout = timeout
        self.where = where_json(label)
        self.loop = asyncio.new_event_loop()
        self._slots = asyncio.Semaphore(workers)
        self._tasks: dict[asyncio.Task, Hashable] = {}
        self._started: set[asyncio.Task] = set()

    async def _run(self, x: np.ndarray) -> Outcome:
        async with self._slots:
            me = asyncio.current_task()
            self._started.add(me)
            t_wall, t0 = time.time(), time.perf_counter()
            try:
                if self.timeout is None:
                    value = await self.task(x)
                else:
                    value = await asyncio.wait_for(self.task(x), self.timeout)
            except asyncio.TimeoutError:
                return lost_outcome(EvalStatus.TIMED_OUT, t_wall, time.perf_counter() - t0, self.label,
                                    f"evaluation exceeded task_timeout={self.timeout:g} s; its coroutine was "
                                    "cancelled", self.where)
            except Exception as e:
                return failed_outcome(e, t_wall, time.perf_counter() - t0, self.label, self.where)
            finally:
                self._started.discard(me)
            return value_outcome(value, t_wall, time.perf_counter() - t0, self.label, self.where)

    # ------------------------------------------------------------------ streaming
    def submit(self, key: Hashable, x: np.ndarray) -> None:
        self._tasks[self.loop.create_task(self._run(x))] = key

    def collect(self, timeout: float | None = None) -> list[tuple[Hashable, Outcome]]:
        if not self._tasks:
            return []
        done, _ = self.loop.run_until_complete(
            asyncio.wait(list(self._tasks), timeout=timeout, return_when=asyncio.FIRST_COMPLETED))
        return [(self._tasks.pop(t), t.result()) for t in done if not t.cancelled()]

    def cancel_pending(self) -> list[Hashable]:
        waiting = [t for t in self._tasks if t not in self._started]
        for t in waiting:
            t.cancel()
        return [self._tasks.pop(t) for t in waiting]

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def evaluate(self, xs: np.ndarray, should_abort: AbortCheck | None = None) -> list[Outcome | None]:
        out: list[Outcome | None] = [None] * len(xs)
        for i, x in enumerate(xs):
            self.submit(i, x)
        while self._tasks:
            for i, outcome in self.collect():
                out[i] = outcome
            if self._tasks and should_abort is not None and should_abort():
                self._cancel_all()  # running ones are dropped: a coroutine can be cancelled
                break
        return out

    def _cancel_all(self) -> None:
        tasks = list(self._tasks)
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self._cancel_all()
        try:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
