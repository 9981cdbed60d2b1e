"""One escalation for every child that must go: ask → grace → SIGTERM → grace → SIGKILL."""

from __future__ import annotations

import os
import signal
from typing import Any

import psutil

from .child import kill_group

__all__ = ["terminate_process", "snapshot_tree", "reap"]


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
            try:
                p = d if isinstance(d, psutil.Process) else psutil.Process(d)
            except psutil.Error:  # it has just exited
                continue
            procs.setdefault(p.pid, p)
    return list(procs.values())


def _descendants(pid: int) -> list[Any]:
    """Descendants of ``pid`` (pids), from Linux's ``/proc/<pid>/task/<tid>/children``
    lists: a few small reads, where psutil scans every process of the system (about a
    millisecond on an idle machine, more on a busy one, and this is on the path from a
    stop decision to the children hearing of it).  Elsewhere, psutil's ``Process``
    objects."""
    if not _HAVE_CHILDREN_FILES:
        return psutil.Process(pid).children(recursive=True)
    found: list[Any] = []
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
    psutil checks each process's creation time, so a recycled pid is never hit.
    """
    alive = [p for p in procs if p.is_running()]
    if not alive:
        return []
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(alive, timeout=timeout)
    for p in still:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(still, timeout=timeout)
    return [p.pid for p in alive]
