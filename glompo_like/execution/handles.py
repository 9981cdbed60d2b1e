"""Level 1: run each optimizer's :class:`~glompo_like.execution.runner.Runner` in a thread or a process.

A runner talks to the manager through a *channel* with the interface of a
``multiprocessing.Connection`` (``send``, ``poll``, ``recv``, ``close``):

- a **process** gets a duplex pipe; the manager waits on all pipes and all process
  sentinels at once (a sentinel is readable the moment its process dies);
- a **thread** gets a :class:`ThreadChannel`: its own command queue, and one event queue
  shared by every thread of the run, on which the manager blocks.  Nothing is pickled and
  no system call is made, so runner threads and the manager do not fight over the GIL
  around pipe I/O (which costs up to a GIL switch interval per message).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..procs.pipes import input_check
from ..procs.terminate import terminate_process
from .messages import Launch
from .runner import Runner, RunnerSpec, run_in_process, run_in_thread

__all__ = ["LEVEL1_BACKENDS", "Child", "ThreadChild", "ProcessChild", "ThreadChannel", "CLOSED"]

LEVEL1_BACKENDS = ("threads", "processes", "processes_forced")


class _Closed:
    """Put on the event queue when a runner thread closes its channel (its 'sentinel')."""

    def __repr__(self) -> str:
        return "CLOSED"


CLOSED = _Closed()


class ThreadChannel:
    """The runner end of a thread's channel (``Connection``-like)."""

    __slots__ = ("opt_id", "inbox", "events", "closed")

    def __init__(self, opt_id: int, inbox: queue.SimpleQueue, events: queue.SimpleQueue) -> None:
        self.opt_id = opt_id
        self.inbox = inbox
        self.events = events
        self.closed = False

    def send(self, msg: Any) -> None:
        if self.closed:
            raise BrokenPipeError("channel closed")
        self.events.put((self.opt_id, msg))

    def poll(self, timeout: float = 0.0) -> bool:
        return not self.inbox.empty()

    def recv(self) -> Any:
        return self.inbox.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.events.put((self.opt_id, CLOSED))


class Child:
    """The manager's handle on one running optimizer."""

    kind = "?"
    sentinel: Any = None
    pid: int | None = None

    def __init__(self, opt_id: int) -> None:
        self.opt_id = opt_id
        self.final: Any = None  # the runner's final message, once received
        self.exitcode_final: int | None = None

    def send(self, msg: Any) -> bool:
        raise NotImplementedError

    def is_alive(self) -> bool:
        raise NotImplementedError

    def finish(self, grace: float) -> int | None:
        """Wait up to ``grace`` for the child to end (escalating for processes); returns
        the exit code (``None`` for threads)."""
        raise NotImplementedError


class ThreadChild(Child):
    kind = "threads"

    def __init__(self, spec: RunnerSpec, task: Callable, events: queue.SimpleQueue, streams: Any = None,
                 turnstile: Any = None) -> None:
        super().__init__(spec.opt_id)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        channel = ThreadChannel(spec.opt_id, self.inbox, events)
        self.runner = Runner(spec, channel, task, turnstile)
        self.thread = threading.Thread(target=run_in_thread, args=(self.runner, streams),
                                       name=f"glompo-opt{spec.opt_id}", daemon=True)
        self.thread.start()

    def terminate(self) -> bool:
        """Escalation: end its running evaluations if they run in worker processes (a
        thread itself cannot be stopped).  Returns whether that was possible."""
        return self.runner.terminate()

    def pids(self) -> list[int]:
        """The worker processes of its pool (for the final sweep)."""
        pool = self.runner.pool
        return list(pool.pids()) if pool is not None and hasattr(pool, "pids") else []

    def send(self, msg: Any) -> bool:
        self.inbox.put(msg)
        return True

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def finish(self, grace: float) -> int | None:
        self.thread.join(grace)
        return None


class ProcessChild(Child):
    """An optimizer running in a process: a new one, or (``reuse``) the waiting process of
    an optimizer that ended cleanly, which is sent the spec instead of being started."""

    def __init__(self, spec: RunnerSpec, context: Any, daemon: bool, reusable: bool = False,
                 reuse: ProcessChild | None = None) -> None:
        super().__init__(spec.opt_id)
        self.eof = False
        self.released = False  # its process has gone on to another optimizer (or idles)
        self.kind = "processes" if daemon else "processes_forced"
        if reuse is not None:
            self.process, self.conn = reuse.process, reuse.conn
            self.conn.send(Launch(replace(spec, task_bytes=None)))  # raises if it has died
        else:
            mine, theirs = context.Pipe(duplex=True)
            self.conn = mine
            self.process = context.Process(
                target=run_in_process, args=(spec, theirs, reusable), name="glompo-optimizer", daemon=daemon
            )
            self.process.start()
            theirs.close()
        self.sentinel = self.process.sentinel
        self.pid = self.process.pid
        self.has_input = input_check(self.conn)

    def send(self, msg: Any) -> bool:
        if self.released:  # the process runs another optimizer now: not for it
            return False
        try:
            self.conn.send(msg)
            return True
        except (BrokenPipeError, EOFError, OSError):
            return False

    def is_alive(self) -> bool:
        return not self.released and self.process.is_alive()

    def finish(self, grace: float) -> int | None:
        if self.released:
            return None
        return terminate_process(self.process, grace=grace, kill_grace=1.0)
