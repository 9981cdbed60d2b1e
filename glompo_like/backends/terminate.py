"""One escalation for every child that must go: ask → grace → SIGTERM → grace → SIGKILL."""

from __future__ import annotations

import os
import signal

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
            p = psutil.Process(pid)
            procs[pid] = p
            for c in p.children(recursive=True):
                procs[c.pid] = c
        except psutil.Error:
            continue
    return list(procs.values())


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
