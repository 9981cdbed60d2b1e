"""Time slices for runner threads whose task holds the GIL (``thread_slice``).

Runner threads of the ``threads`` backend share one interpreter lock.  When the task holds
it (pure Python, or an unpicklable task that must run in threads), two runner threads gain
nothing from running at once, and they lose: every time one of them releases the lock for
a moment (NumPy's linear algebra in CMA-ES, a pipe, SQLite), the other is woken to take it,
and waking a sleeping thread costs tens of microseconds of nobody running Python.  With
two CMA-ES threads that is 10–25% of the throughput on a small VM.

A :class:`Turnstile` lets one runner at a time run whole generations for a slice of time,
then hands over in arrival order.  Threads waiting their turn sleep on their own lock, so
the running thread's brief releases of the interpreter lock wake nobody.  A runner gives
up its turn whenever it would block (waiting for the manager's credit, a checkpoint
pause, the end of its run).

Do not use it for tasks that release the GIL (external programs, I/O, GIL-free
extensions): there the turns would serialise evaluations that can overlap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Turnstile"]


class Turnstile:
    """A fair (first come, first served) turn for runner threads, held for ``slice_s``
    seconds (of ``clock``) at a time."""

    def __init__(self, slice_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.slice_s = float(slice_s)
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._owner: int | None = None
        self._since = 0.0

    def take(self) -> None:
        """Wait for this thread's turn (returns at once if it already has it)."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                return
            ticket = self._next_ticket
            self._next_ticket += 1
            while self._serving != ticket or self._owner is not None:
                self._cond.wait()
            self._owner = me
            self._since = self._clock()

    def release(self) -> None:
        """Give up the turn if this thread has it (the next in line goes on)."""
        me = threading.get_ident()
        with self._cond:
            if self._owner != me:
                return
            self._owner = None
            self._serving += 1
            self._cond.notify_all()

    def turn(self) -> None:
        """Between generations: keep the turn while the slice lasts or nobody waits;
        otherwise hand it on and queue up again."""
        me = threading.get_ident()
        if self._owner != me:
            self.take()
            return
        if self._clock() - self._since < self.slice_s:
            return
        if self.waiting > 0:
            self.release()
            self.take()
        else:
            self._since = self._clock()

    @property
    def waiting(self) -> int:
        """Threads queued for a turn (not counting the one that has it)."""
        with self._cond:
            return self._next_ticket - self._serving - (1 if self._owner is not None else 0)
