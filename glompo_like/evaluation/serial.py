"""Level 2 ``"serial"``: evaluations in the runner's own thread, one after the other.

::

    runner ── evaluate(xs) ──► SerialPool: for x in xs: task(x)   (a look at should_abort
                                                                   every check_every s)
    runner ── evaluate(xs) ──► AnnouncingPool: announce(x) → task(x) → done(key, x, outcome)
           ── submit/collect ──►   (the same for each evaluation collect() runs; a runner in
                                    its own process under task_timeout: the manager kills
                                    the process if an announced evaluation passes its deadline)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from .base import AbortCheck, StreamingPool
from .core import (
    EvalStatus,
    Outcome,
    _plain_meta,
    evaluate_one,
    failed_outcome,
    is_users_interrupt,
    value_outcome,
    where_json,
)

__all__ = ["SerialPool", "AnnouncingPool"]

_OK = EvalStatus.OK
_tuple_new = tuple.__new__


class SerialPool(StreamingPool):
    """Evaluates in the runner's own thread.  Between evaluations it asks ``should_abort``
    at most every ``check_every`` seconds (a cheap clock read otherwise), so a stop
    arrives within one evaluation of that period without a system call per evaluation.

    As a streaming pool it has one worker, the caller: :meth:`submit` queues, and
    :meth:`collect` evaluates the oldest queued candidate there and then.
    """

    kind = "serial"
    check_every = 0.02

    def __init__(self, task: Callable[[np.ndarray], Any], label: str) -> None:
        self.task = task
        self.label = label
        self.where = where_json(label)
        self._queued: deque[tuple[Hashable, np.ndarray]] = deque()

    def submit(self, key: Hashable, x: np.ndarray) -> None:
        self._queued.append((key, x))

    def collect(self, timeout: float | None = None) -> list[tuple[Hashable, Outcome]]:
        if not self._queued:
            return []
        key, x = self._queued.popleft()
        return [(key, evaluate_one(self.task, x, self.label, self.where))]

    def cancel_pending(self) -> list[Hashable]:
        keys = [k for k, _ in self._queued]
        self._queued.clear()
        return keys

    @property
    def in_flight(self) -> int:
        return len(self._queued)

    def evaluate(self, xs: np.ndarray, should_abort: AbortCheck | None = None) -> list[Outcome | None]:
        # One clock read per evaluation: each one starts when the one before it ended
        # (wall-clock start times come from one reading per generation plus offsets).
        task, label, perf, where = self.task, self.label, time.perf_counter, self.where
        meta = _plain_meta(where)
        out: list[Outcome | None] = [None] * len(xs)
        t = perf()
        to_wall = time.time() - t
        next_check = t + self.check_every
        for i, x in enumerate(xs):
            if should_abort is not None and i and t >= next_check:
                if should_abort():
                    break
                t = perf()
                next_check = t + self.check_every
            try:
                value = task(x)
            except BaseException as e:  # SystemExit, KeyboardInterrupt too: the task's failures
                if is_users_interrupt(e):
                    raise
                t1 = perf()
                out[i] = failed_outcome(e, to_wall + t, t1 - t, label, where)
                t = perf()  # the traceback took time: not part of the next evaluation
                continue
            t1 = perf()
            if type(value) is float and value - value == 0.0:  # value_outcome's fast path, inlined
                out[i] = _tuple_new(Outcome, (value, _OK, to_wall + t, t1 - t, label, None, None, meta))
            else:
                out[i] = value_outcome(value, to_wall + t, t1 - t, label, where)
            t = t1
        return out


class AnnouncingPool(SerialPool):
    """A serial pool for a runner in its own process under ``task_timeout``: it announces
    each evaluation before running it (``announce(x)``; the manager kills the process if
    the deadline passes) and reports it as soon as it is done (``done(key, x, outcome)``;
    the key is the row's index for :meth:`evaluate`, the submitted key for :meth:`collect`),
    so nothing evaluated is lost with the process.  Both ways of evaluating announce: an
    asynchronous optimizer's evaluations (:meth:`collect`) are killed at their deadline too."""

    reports_each = True

    def __init__(self, task: Callable[[np.ndarray], Any], label: str, announce: Callable[[np.ndarray], None],
                 done: Callable[[Hashable, np.ndarray, Outcome], None]) -> None:
        super().__init__(task, label)
        self.announce = announce
        self.done = done

    def _one(self, key: Hashable, x: np.ndarray) -> Outcome:
        self.announce(x)
        outcome = evaluate_one(self.task, x, self.label, self.where)
        self.done(key, x, outcome)
        return outcome

    def collect(self, timeout: float | None = None) -> list[tuple[Hashable, Outcome]]:
        if not self._queued:
            return []
        key, x = self._queued.popleft()
        return [(key, self._one(key, x))]

    def evaluate(self, xs: np.ndarray, should_abort: AbortCheck | None = None) -> list[Outcome | None]:
        out: list[Outcome | None] = [None] * len(xs)
        for i, x in enumerate(xs):
            if should_abort is not None and i and should_abort():
                break
            out[i] = self._one(i, x)
        return out
