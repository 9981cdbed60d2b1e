"""The supervisor: starts runners, tracks their slots, and waits on all of them at once.

``poll`` blocks until a child has something to say (or the timeout passes) and hands every
message and every ended child to the manager's callbacks; the supervisor makes no decisions.

- :class:`ProcessSupervisor` waits on one selector holding every child's pipe and process
  sentinel (registered once per child, not rebuilt on every wait).
- :class:`ThreadSupervisor` blocks on the one queue all runner threads post to.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import selectors
import time
from collections.abc import Callable
from typing import Any

from .backends.level1 import CLOSED, Child, ProcessChild, ThreadChild
from .backends.terminate import reap, snapshot_tree
from .backends.turnstile import Turnstile
from .messages import FINAL_MESSAGES, Stop
from .runner import RunnerSpec

__all__ = ["Supervisor", "ProcessSupervisor", "ThreadSupervisor", "make_supervisor"]

OnMessage = Callable[[Child, Any], None]
OnEnd = Callable[[Child], None]


class Supervisor:
    """Slot accounting, stop requests and the shutdown escalation, common to both kinds."""

    def __init__(self) -> None:
        self.children: dict[int, Child] = {}
        self.slots: dict[int, int] = {}
        self.stopping: set[int] = set()

    @property
    def used_slots(self) -> int:
        return sum(self.slots.values())

    def start(self, spec: RunnerSpec, slots: int) -> Child:
        child = self._start(spec)
        self.children[spec.opt_id] = child
        self.slots[spec.opt_id] = slots
        return child

    def stop(self, opt_id: int, reason: str) -> None:
        child = self.children.get(opt_id)
        if child is not None and opt_id not in self.stopping:
            self.stopping.add(opt_id)
            child.send(Stop(reason))

    def _end(self, child: Child, on_end: OnEnd, grace: float = 1.0) -> None:
        child.exitcode_final = child.finish(grace=grace)
        self.children.pop(child.opt_id, None)
        self.slots.pop(child.opt_id, None)
        self.stopping.discard(child.opt_id)
        self._forget(child)
        on_end(child)

    def shutdown(self, reason: str, grace: float, on_message: OnMessage, on_end: OnEnd) -> list[int]:
        """Stop every child: ask, keep delivering their last messages for up to ``grace``
        seconds, then escalate.  Returns the pids that had to be reaped by force."""
        tree = snapshot_tree([c.pid for c in self.children.values() if c.pid is not None])
        for opt_id in list(self.children):
            self.stop(opt_id, reason)
        deadline = time.monotonic() + grace
        while self.children:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.poll(left, on_message, on_end)
        for child in list(self.children.values()):  # still running after the grace period
            self._abandon(child, on_message)
            self._end(child, on_end, grace=0.0)
        return reap(tree)

    # kind-specific
    def _start(self, spec: RunnerSpec) -> Child:
        raise NotImplementedError

    def _forget(self, child: Child) -> None:
        return None

    def _abandon(self, child: Child, on_message: OnMessage) -> None:
        return None

    def poll(self, timeout: float | None, on_message: OnMessage, on_end: OnEnd) -> None:
        raise NotImplementedError

    def wakeup(self) -> None:
        """Make a ``poll`` blocked in another thread return (thread-safe)."""
        raise NotImplementedError

    def close(self) -> None:
        return None


class ProcessSupervisor(Supervisor):
    def __init__(self, backend: str, start_method: str | None) -> None:
        super().__init__()
        self.daemon = backend == "processes"
        self.context = multiprocessing.get_context(start_method)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def wakeup(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):  # already woken / closed
            pass

    def _start(self, spec: RunnerSpec) -> Child:
        child = ProcessChild(spec, self.context, daemon=self.daemon)
        self._selector.register(child.conn, selectors.EVENT_READ, child)
        self._selector.register(child.sentinel, selectors.EVENT_READ, child)
        return child

    def _forget(self, child: Child) -> None:
        assert isinstance(child, ProcessChild)
        for obj in (child.conn, child.sentinel):
            try:
                self._selector.unregister(obj)
            except (KeyError, ValueError):
                pass
        child.conn.close()

    def poll(self, timeout: float | None, on_message: OnMessage, on_end: OnEnd) -> None:
        exited: list[ProcessChild] = []
        for key, _ in self._selector.select(timeout):
            child = key.data
            if child is None:  # wakeup()
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            if key.fileobj is child.conn:
                self._read(child, on_message)
            elif child not in exited:  # the sentinel: the process has exited
                exited.append(child)
        for child in exited:
            self._read(child, on_message)  # whatever it sent before exiting
            self._end(child, on_end)

    def _read(self, child: ProcessChild, on_message: OnMessage) -> None:
        """Deliver every message waiting on the child's pipe, never blocking."""
        try:
            while not child.eof and child.conn.poll():
                msg = child.conn.recv()
                if isinstance(msg, FINAL_MESSAGES):
                    child.final = msg
                on_message(child, msg)
        except (EOFError, OSError):
            child.eof = True
            try:
                self._selector.unregister(child.conn)  # its sentinel will follow
            except (KeyError, ValueError):
                pass

    def _abandon(self, child: Child, on_message: OnMessage) -> None:
        assert isinstance(child, ProcessChild)
        self._read(child, on_message)

    def close(self) -> None:
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


class ThreadSupervisor(Supervisor):
    #: Longest block on the event queue; only a guard against a thread dying without
    #: closing its channel (the runner closes it in ``finally``).
    HEARTBEAT = 5.0

    def __init__(self, task: Callable, streams: Any = None, thread_slice: float | None = None) -> None:
        super().__init__()
        self.task = task
        self.streams = streams
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.turnstile = None if thread_slice is None else Turnstile(thread_slice)

    def _start(self, spec: RunnerSpec) -> Child:
        return ThreadChild(spec, self.task, self.events, self.streams, self.turnstile)

    def wakeup(self) -> None:
        self.events.put((0, None))  # opt_id 0 is never a runner: ignored by _deliver

    def poll(self, timeout: float | None, on_message: OnMessage, on_end: OnEnd) -> None:
        block = self.HEARTBEAT if timeout is None else min(timeout, self.HEARTBEAT)
        try:
            item = self.events.get(timeout=block)
        except queue.Empty:
            self._check_alive(on_end)
            return
        while True:
            self._deliver(item, on_message, on_end)
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return

    def _deliver(self, item: tuple[int, Any], on_message: OnMessage, on_end: OnEnd) -> None:
        opt_id, msg = item
        child = self.children.get(opt_id)
        if child is None:  # a late message of an abandoned thread
            return
        if msg is CLOSED:
            self._end(child, on_end)
            return
        if isinstance(msg, FINAL_MESSAGES):
            child.final = msg
        on_message(child, msg)

    def _check_alive(self, on_end: OnEnd) -> None:
        for child in list(self.children.values()):
            if not child.is_alive():
                self._end(child, on_end)


def make_supervisor(backend: str, task: Callable, start_method: str | None, streams: Any = None,
                    thread_slice: float | None = None) -> Supervisor:
    if backend == "threads":
        return ThreadSupervisor(task, streams, thread_slice)
    return ProcessSupervisor(backend, start_method)
