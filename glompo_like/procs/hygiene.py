"""What every child process of the library does first: never outlive the manager.

A child process (a Level 1 optimizer process or a Level 2 pool worker) calls
:func:`become_child` before anything else.  It

- moves into its own process group, so a terminal's Ctrl-C reaches only the manager
  (which then stops its children in order) and so the child can be killed together with
  anything it started (an external simulator);
- asks Linux to send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and also
  runs a small watchdog thread that notices the parent's death on any POSIX system;
- on SIGTERM (from either source, or from the manager's orderly escalation) runs its
  clean-up hooks (a Level 1 process kills its own Level 2 workers) and then SIGKILLs its
  whole process group, itself included.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["become_child", "add_cleanup", "remove_cleanup", "kill_group"]

_PR_SET_PDEATHSIG = 1
_cleanups: list[Callable[[], None]] = []
_WATCHDOG_PERIOD = 0.25


def add_cleanup(fn: Callable[[], None]) -> None:
    """Run ``fn`` (best effort) before this child process kills its group."""
    _cleanups.append(fn)


def remove_cleanup(fn: Callable[[], None]) -> None:
    try:
        _cleanups.remove(fn)
    except ValueError:
        pass


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group led by ``pid``, or to ``pid`` alone if it leads none."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _die(*_args: object) -> None:
    for fn in reversed(_cleanups):
        try:
            fn()
        except BaseException:  # dying anyway: clean up as much as possible
            pass
    try:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    finally:
        os._exit(1)


def _set_pdeathsig(sig: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _watch(parent_pid: int) -> None:
    ev = threading.Event()
    while not ev.wait(_WATCHDOG_PERIOD):
        if os.getppid() != parent_pid:
            _die()


def become_child(own_group: bool = True) -> None:
    """Prepare this freshly started child process (see the module docstring)."""
    parent = os.getppid()
    if own_group:
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _die)
    _set_pdeathsig(signal.SIGTERM)
    if os.getppid() != parent or parent == 1:  # the parent died before we were ready
        _die()
    threading.Thread(target=_watch, args=(parent,), name="glompo-parent-watchdog", daemon=True).start()
