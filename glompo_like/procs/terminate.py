"""One escalation for every child that must go: ask → grace → SIGTERM → grace → SIGKILL."""

from __future__ import annotations

import os
import signal
import time

import psutil

from .hygiene import kill_group

__all__ = ["terminate_process", "snapshot_tree", "reap", "signal_name"]


def signal_name(exitcode: int | None) -> str:
    """How a child process ended, in words: ``"killed by SIGSEGV"``, ``"exit code 3"``, or
    ``"unknown exit"`` for ``None`` (``multiprocessing`` reports a signal as a negative
    exit code)."""
    if exitcode is None:
        return "unknown exit"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def terminate_process(process, grace: float = 1.0, kill_grace: float = 2.0) -> int | None:
    """End a ``multiprocessing.Process`` that was already asked to stop.

    Waits up to ``grace`` seconds for it to exit by itself, then sends SIGTERM (the child
    turns that into killing its own process group), then SIGKILL to its group.  Returns the
    exit code.  Never waits longer than ``grace + 2 * kill_grace`` in total.
    """
    process.join(grace)
    if process.exitcode is None:
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        process.join(kill_grace)
    if process.exitcode is None:
        kill_group(process.pid, signal.SIGKILL)
        process.join(kill_grace)
    return process.exitcode


def snapshot_tree(pids: list[int]) -> list[psutil.Process]:
    """The given processes and all their descendants, as they are now.

    Taken before children are stopped: once a child dies, its own children are re-parented
    and can no longer be found through it.
    """
    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            procs[pid] = psutil.Process(pid)
            descendants = _descendants(pid)
        except psutil.Error:
            continue
        for d in descendants:
            if d not in procs:
                try:
                    procs[d] = psutil.Process(d)
                except psutil.Error:  # it has just exited
                    continue
    return list(procs.values())


def _descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s descendants, from Linux's ``/proc/<pid>/task/<tid>/children``
    lists: a few small reads, where psutil scans every process of the system (about a
    millisecond on an idle machine, more on a busy one, and this is on the path from a
    stop decision to the children hearing of it).  Elsewhere, through psutil."""
    if not _HAVE_CHILDREN_FILES:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:  # it has just exited
            continue
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            found.extend(kids)
            stack.extend(kids)
    return found


_HAVE_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def reap(procs: list[psutil.Process], timeout: float = 1.0) -> list[int]:
    """Terminate (then kill) whichever of ``procs`` are still running.

    The last line of defence of every orderly shutdown; returns the pids it had to end.
    psutil checks each process's creation time, so a recycled pid is never hit.  A zombie
    (exited, not yet collected by its parent) counts as gone: only its parent can collect
    it, and when that parent has died too the zombie waits for the system's init, which
    may take its time (or, in some containers, never do it).
    """
    # what is exiting by itself (a forkserver whose clients have just gone) may finish
    alive = _wait_gone(procs, min(timeout, 0.1))
    if not alive:
        return []
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    still = _wait_gone(alive, timeout)
    for p in still:
        try:
            p.kill()
        except psutil.Error:
            pass
    _wait_gone(still, timeout)
    return [p.pid for p in alive]


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds until none of ``procs`` runs; returns those that
    still do.  Polls (from 1 ms, doubling, at most 50 ms apart): the processes need not be
    our children, so there is nothing to block on for all of them."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if _running(p)]
    delay = 0.001
    while left:
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(delay, deadline - now))
        delay = min(2 * delay, 0.05)
        left = [p for p in left if _running(p)]
    return left
