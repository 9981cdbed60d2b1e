"""Signals while a run goes and while it stops.

- While the run goes, Ctrl-C (SIGINT) and SIGTERM end it cleanly.  They never raise inside
  whatever the manager happens to be doing (a batch half booked, a log transaction): the
  handler of :class:`SignalWatch` only notes the signal and wakes the event loop, which
  raises ``KeyboardInterrupt`` or :class:`Terminated` at its next safe point, between two
  turns.  ``start_manager`` then stops the children, writes the summary and re-raises
  (SIGTERM: exits with ``128 + SIGTERM``).  Only signals left to Python's defaults are
  taken over, and only in the main thread.
- While the children are being stopped, a second Ctrl-C or SIGTERM must not cut the clean-up
  short (it is bounded: grace period, then escalation): :func:`signals_deferred` notes such
  signals and lets the clean-up finish; the run's own interruption is re-raised anyway.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Terminated", "SignalWatch", "signals_deferred", "TERMINATED_EXIT_CODE"]

log = logging.getLogger("glompo_like.manager")

#: the exit status of a run ended by SIGTERM (as a shell reports a process killed by it)
TERMINATED_EXIT_CODE = 128 + signal.SIGTERM


class Terminated(BaseException):
    """Raised by the event loop after SIGTERM (a ``BaseException``, like
    ``KeyboardInterrupt``, so ``except Exception`` in user code does not swallow it)."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class SignalWatch:
    """Notes SIGINT and SIGTERM while the run goes; :meth:`raise_if_signalled` raises them
    at a safe point.  ``wakeup`` is called from the handler to end the loop's wait."""

    def __init__(self, wakeup: Callable[[], None]) -> None:
        self._wakeup = wakeup
        self._got: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalWatch:
        if not _in_main_thread():
            return self
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        for sig, default in defaults.items():
            if signal.getsignal(sig) is default:
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self._got.append(signum)
        self._wakeup()

    def raise_if_signalled(self) -> None:
        if not self._got:
            return
        if signal.SIGINT in self._got:
            raise KeyboardInterrupt
        raise Terminated

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Within the block, SIGINT and SIGTERM are noted (in the yielded list), not raised."""
    noted: list[int] = []
    if not _in_main_thread():
        yield noted
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: noted.append(signum))
    try:
        yield noted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if noted:
            log.warning("signal(s) %s arrived while stopping; the run was already ending", noted)
