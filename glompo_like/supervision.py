"""The supervisor: starts runners, tracks their slots, and waits on all of them at once."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from multiprocessing import connection
from typing import Any

from .backends.level1 import Child, ProcessChild, start_child
from .backends.terminate import reap, snapshot_tree
from .messages import FINAL_MESSAGES, Stop
from .runner import RunnerSpec

__all__ = ["Supervisor"]

OnMessage = Callable[[Child, Any], None]
OnEnd = Callable[[Child], None]


class Supervisor:
    """Owns the running children.  ``poll`` hands every message and every ended child to
    the manager's callbacks; nothing here makes decisions."""

    def __init__(self, backend: str, task: Callable, start_method: str | None) -> None:
        self.backend = backend
        self.task = task
        self.context = multiprocessing.get_context(start_method)
        self.children: dict[int, Child] = {}
        self.slots: dict[int, int] = {}
        self.stopping: set[int] = set()

    # ------------------------------------------------------------------ slots
    @property
    def used_slots(self) -> int:
        return sum(self.slots.values())

    def start(self, spec: RunnerSpec, slots: int) -> Child:
        child = start_child(self.backend, spec, self.task, self.context)
        self.children[spec.opt_id] = child
        self.slots[spec.opt_id] = slots
        return child

    def stop(self, opt_id: int, reason: str) -> None:
        child = self.children.get(opt_id)
        if child is not None and opt_id not in self.stopping:
            self.stopping.add(opt_id)
            child.send(Stop(reason))

    # ------------------------------------------------------------------ events
    def poll(self, timeout: float | None, on_message: OnMessage, on_end: OnEnd) -> None:
        """Wait until at least one child has something to say (or ``timeout``), then deliver
        every pending message and every end."""
        objs: dict[Any, Child] = {}
        for child in self.children.values():
            for o in child.wait_objects():
                objs[o] = child
        if not objs:
            return
        ready = connection.wait(list(objs), timeout)
        ended: list[Child] = []
        for o in ready:
            child = objs[o]
            if o is child.conn:
                self._read(child, on_message)
                if isinstance(child, ProcessChild):
                    continue
                if child.final is not None or child.eof:
                    ended.append(child)
            elif child not in ended:  # a process sentinel: it has exited
                self._read(child, on_message, until_eof=True)
                ended.append(child)
        for child in ended:
            self._end(child, on_end)

    def _read(self, child: Child, on_message: OnMessage, until_eof: bool = False) -> None:
        """Deliver the messages waiting on ``child``'s pipe (all of them, never blocking)."""
        conn = child.conn
        try:
            while not child.eof and conn.poll():
                msg = conn.recv()
                if isinstance(msg, FINAL_MESSAGES):
                    child.final = msg
                on_message(child, msg)
                if not until_eof and isinstance(msg, FINAL_MESSAGES):
                    break
        except (EOFError, OSError):
            child.eof = True

    def _end(self, child: Child, on_end: OnEnd) -> None:
        exitcode = child.finish(grace=1.0)
        child.exitcode_final = exitcode  # type: ignore[attr-defined]
        self.children.pop(child.opt_id, None)
        self.slots.pop(child.opt_id, None)
        self.stopping.discard(child.opt_id)
        try:
            child.conn.close()
        except OSError:
            pass
        on_end(child)

    def check_threads(self, on_message: OnMessage, on_end: OnEnd) -> None:
        """Deliver what a finished runner thread left in its pipe and end it.  (A thread's
        end is normally seen through its final message; this is the guard for the rest.)"""
        for child in list(self.children.values()):
            if child.kind == "threads" and not child.is_alive():
                self._read(child, on_message, until_eof=True)
                self._end(child, on_end)

    # ------------------------------------------------------------------ shutdown
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
            self.check_threads(on_message, on_end)
        for child in list(self.children.values()):  # still running after the grace period
            self._read(child, on_message, until_eof=True)
            self._end(child, on_end)
        return reap(tree)
