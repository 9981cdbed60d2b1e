"""The two protocols every Level 2 pool speaks: batch and streaming.

::

    runner ── evaluate(xs, should_abort) ──► BatchPool ──► [Outcome | None], candidate order
           │                                      ▲ every pool
           │                                      │
           └─ submit(key, x) ... collect(timeout) ──► StreamingPool ──► [(key, Outcome)], as done
              cancel_pending() -> keys not started   (serial, threads, processes, an Executor)
              in_flight

A **batch pool** evaluates one generation at a time: the runner hands it every candidate
and gets the outcomes back in the same order (``None`` for one cancelled before it ran).
Every optimizer's generational loop uses only this.

A **streaming pool** is a batch pool that also takes evaluations one by one and hands
them back as they complete, in any order, each under the key it was submitted with.  The
runner's asynchronous loop (an optimizer created with ``async_eval=True``) needs it: a new
candidate goes out as soon as a worker is free.  A pool that cannot do this (Dask) is a
batch pool only, and :func:`glompo_like.evaluation.can_stream` says so before anything is
built, so such a combination is refused at construction.

Why abstract base classes (as :class:`concurrent.futures.Executor` is) rather than
:class:`typing.Protocol`: a pool is ours or a class a user writes on purpose to add a
backend, so declaring the protocol by inheritance costs nothing and says what the pool
promises; whether a backend streams must be answered from its *class*, before any pool
exists (``issubclass``), which a runtime-checkable Protocol cannot do reliably (it only
looks for attribute names on an instance); and a method left out fails when the pool is
created, naming it, not in the middle of a run with an ``AttributeError`` (which is how the
Dask pool came to lack ``submit`` unnoticed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import ClassVar

import numpy as np

from .core import Outcome

__all__ = ["AbortCheck", "BatchPool", "StreamingPool"]

#: Asked by a pool between evaluations; once it returns True, evaluations not yet started
#: are skipped.
AbortCheck = Callable[[], bool]


class BatchPool(ABC):
    """A Level 2 pool that evaluates a generation at a time.

    Pools are persistent: created once per optimizer (by
    :func:`~glompo_like.evaluation.make_pool`), reused every generation, closed when the
    optimizer ends.  A pool closes only what it created (a user's executor stays open).

    Subclasses set :attr:`kind`, set :attr:`workers` when it is not 1, and implement
    :meth:`evaluate` (and :meth:`close` if they own resources).
    """

    #: The backend's name, as the summary and messages show it (``"processes"``, ...).
    kind: ClassVar[str] = "?"
    #: True when the pool reports every evaluation to the manager itself, as it finishes
    #: (the runner then leaves those rows out of its own reports).
    reports_each: ClassVar[bool] = False
    #: How many evaluations may run at once (on a cluster, the slots the optimizer holds).
    workers: int = 1

    @abstractmethod
    def evaluate(self, xs: np.ndarray, should_abort: AbortCheck | None = None) -> list[Outcome | None]:
        """Evaluate every row of ``xs``; return one outcome per row, in row order.

        When ``should_abort()`` turns true, evaluations not yet started are skipped
        (``None`` in their place); those already running are finished or dropped.  A
        failed, timed-out or crashed evaluation is an :class:`Outcome` with that status,
        never an exception.
        """

    def close(self) -> None:  # noqa: B027 - optional hook: only pools that own resources need it
        """Release what the pool created (worker threads or processes, a client).  Called
        once, by the runner, when the optimizer ends."""

    def terminate(self) -> bool:
        """Escalation, callable from any thread: end every running evaluation at once, and
        start no new worker.  The runner's :meth:`evaluate` then returns (the evaluations
        ended this way are lost).  Returns whether the pool can do it: evaluations in
        worker processes can be killed, those in threads cannot (the default: ``False``)."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers})"


class StreamingPool(BatchPool):
    """A batch pool that also evaluates one candidate at a time, as workers come free.

    Each evaluation is submitted under a key of the caller's choosing and comes back, with
    its outcome, under that key.  ``submit`` never blocks: evaluations wait in the pool
    until a worker takes them.
    """

    @abstractmethod
    def submit(self, key: Hashable, x: np.ndarray) -> None:
        """Queue the evaluation of ``x``; it starts as soon as a worker is free."""

    @abstractmethod
    def collect(self, timeout: float | None = None) -> list[tuple[Hashable, Outcome]]:
        """Wait until at least one submitted evaluation is done (at most ``timeout``
        seconds; ``None``: no limit), and return every done one as ``(key, outcome)``.
        Returns ``[]`` when nothing is in flight, or when the timeout passes first."""

    @abstractmethod
    def cancel_pending(self) -> list[Hashable]:
        """Forget the submitted evaluations that have not started; return their keys.
        Running ones go on and are returned by a later :meth:`collect`."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Evaluations submitted and not yet collected (waiting or running)."""
