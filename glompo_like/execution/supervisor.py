"""The supervisor: starts runners, tracks their slots, and waits on all of them at once.

``poll`` blocks until a child has something to say (or the timeout passes) and hands every
message and every ended child to the manager's callbacks; the supervisor makes no decisions.

- :class:`ProcessSupervisor` waits on one selector holding every child's pipe and process
  sentinel (registered once per process, not rebuilt on every wait).  With ``reuse``, the
  process of an optimizer that ended cleanly (its final message was "converged" or
  "stopped") waits, and the next optimizer runs in it: starting a process costs several
  milliseconds with ``fork`` and far more with ``spawn`` or ``forkserver``.
- :class:`ThreadSupervisor` blocks on the one queue all runner threads post to.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import selectors
import time
from collections.abc import Callable
from typing import Any

from ..procs.terminate import reap, snapshot_tree, terminate_process
from .handles import CLOSED, Child, ProcessChild, ThreadChild
from .messages import FINAL_MESSAGES, Converged, Retire, Stop, Stopped
from .runner import RunnerSpec
from .turnstile import Turnstile

__all__ = ["Supervisor", "ProcessSupervisor", "ThreadSupervisor", "make_supervisor"]

log = logging.getLogger("glompo_like.manager")

OnMessage = Callable[[Child, Any], None]
OnEnd = Callable[[Child], None]


def _ignore(*_args: Any) -> None:
    return None


class Supervisor:
    """Slot accounting, stop requests and the shutdown escalation, common to both kinds."""

    def __init__(self) -> None:
        self.children: dict[int, Child] = {}
        self.slots: dict[int, int] = {}
        self.stopping: set[int] = set()
        self._closing = False
        self._tree: list[Any] = []  # the process tree as it was when the run was stopped
        self._callbacks: tuple[OnMessage, OnEnd] = (_ignore, _ignore)

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
        """:meth:`stop_all`, then :meth:`sweep`.  Returns the pids that had to be reaped by
        force."""
        self.stop_all(reason, grace, on_message, on_end)
        return self.sweep(grace)

    def stop_all(self, reason: str, grace: float, on_message: OnMessage, on_end: OnEnd) -> None:
        """Stop every optimizer: ask, keep delivering their last messages for up to
        ``grace`` seconds, then escalate.  On return every optimizer has ended and all
        that its runner sent has been delivered; processes whose optimizer ended cleanly
        may still be exiting, which the caller can overlap with its own clean-up before
        :meth:`sweep`."""
        self._tree = snapshot_tree(self._pids())  # before anything is stopped
        self._closing = True
        self._callbacks = (on_message, on_end)
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

    def sweep(self, grace: float) -> list[int]:
        """After :meth:`stop_all`: wait up to ``grace`` seconds for processes that are
        exiting, then end whatever is left of the process tree (descendants included).
        Returns the pids that had to be reaped by force."""
        deadline = time.monotonic() + grace
        while self._lingering():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.poll(left, *self._callbacks)
        self._bury_all()
        tree, self._tree = self._tree, []
        return reap(tree)

    # kind-specific
    def _start(self, spec: RunnerSpec) -> Child:
        raise NotImplementedError

    def _pids(self) -> list[int]:
        """Every process to reap at shutdown."""
        return [c.pid for c in self.children.values() if c.pid is not None]

    def _lingering(self) -> bool:
        """Whether processes without an optimizer are still exiting."""
        return False

    def _bury_all(self) -> None:
        return None

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
    def __init__(self, backend: str, start_method: str | None, reuse: bool = False, max_idle: int = 1) -> None:
        super().__init__()
        self.daemon = backend == "processes"
        self.context = multiprocessing.get_context(start_method)
        self.reuse = reuse
        self.max_idle = max_idle
        self.idle: list[ProcessChild] = []  # processes waiting for their next optimizer
        self._retiring: list[ProcessChild] = []  # told to exit; their sentinels end them
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
        while self.idle:
            waiting = self.idle.pop()
            try:
                child = ProcessChild(spec, self.context, self.daemon, reuse=waiting)
            except (BrokenPipeError, EOFError, OSError):  # it died while waiting
                self._bury(waiting, grace=0.0)
                continue
            self._selector.modify(child.conn, selectors.EVENT_READ, child)
            self._selector.modify(child.sentinel, selectors.EVENT_READ, child)
            return child
        child = ProcessChild(spec, self.context, self.daemon, reusable=self.reuse)
        self._selector.register(child.conn, selectors.EVENT_READ, child)
        self._selector.register(child.sentinel, selectors.EVENT_READ, child)
        return child

    def _forget(self, child: Child) -> None:
        assert isinstance(child, ProcessChild)
        if not child.released:
            self._unregister(child)
            child.conn.close()

    def _unregister(self, child: ProcessChild) -> None:
        for obj in (child.conn, child.sentinel):
            try:
                self._selector.unregister(obj)
            except (KeyError, ValueError):
                pass

    def _release(self, child: ProcessChild, on_end: OnEnd) -> None:
        """``child``'s optimizer ended cleanly; its process waits for the next one."""
        child.released = True
        self._end(child, on_end)
        if self._closing or len(self.idle) >= self.max_idle:
            self._retire(child)
        else:
            self.idle.append(child)

    def _retire(self, child: ProcessChild) -> None:
        """Tell a waiting process to exit (its sentinel then buries it)."""
        if child in self.idle:
            self.idle.remove(child)
        self._retiring.append(child)
        try:
            child.conn.send(Retire())
        except (BrokenPipeError, EOFError, OSError):
            pass

    def _bury(self, child: ProcessChild, grace: float) -> None:
        """Reap a process without an optimizer (escalating after ``grace`` seconds)."""
        for group in (self.idle, self._retiring):
            if child in group:
                group.remove(child)
        self._unregister(child)
        terminate_process(child.process, grace=grace, kill_grace=1.0)
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
            if child.released:  # a process without an optimizer
                if key.fileobj is child.sentinel:
                    self._bury(child, grace=0.0)
                else:
                    self._drop_input(child)
                continue
            if key.fileobj is child.conn:
                self._read(child, on_message, on_end)
            elif child not in exited:  # the sentinel: the process has exited
                exited.append(child)
        for child in exited:
            if not child.released:
                self._read(child, on_message)  # whatever it sent before exiting
                self._end(child, on_end)

    def _read(self, child: ProcessChild, on_message: OnMessage, on_end: OnEnd | None = None) -> None:
        """Deliver every message waiting on the child's pipe, never blocking.  With
        ``on_end``, a clean final message releases a reusable process at once."""
        try:
            while not child.eof and child.has_input():
                msg = child.conn.recv()
                if isinstance(msg, FINAL_MESSAGES):
                    child.final = msg
                on_message(child, msg)
                if (self.reuse and on_end is not None and isinstance(msg, (Converged, Stopped))
                        and child.process.exitcode is None):
                    self._release(child, on_end)  # nothing more comes from this optimizer
                    return
        except (EOFError, OSError):
            child.eof = True
            try:
                self._selector.unregister(child.conn)  # its sentinel will follow
            except (KeyError, ValueError):
                pass

    def _drop_input(self, child: ProcessChild) -> None:
        """A waiting process sends nothing; on end of file, wait for its sentinel."""
        try:
            while child.has_input():
                child.conn.recv()
        except (EOFError, OSError):
            try:
                self._selector.unregister(child.conn)
            except (KeyError, ValueError):
                pass

    def _abandon(self, child: Child, on_message: OnMessage) -> None:
        assert isinstance(child, ProcessChild)
        self._read(child, on_message)

    def stop(self, opt_id: int, reason: str) -> None:
        super().stop(opt_id, reason)
        child = self.children.get(opt_id)
        if self._closing and self.reuse and child is not None:
            child.send(Retire())  # queued behind the Stop: exit right after the final word

    def stop_all(self, reason: str, grace: float, on_message: OnMessage, on_end: OnEnd) -> None:
        for waiting in list(self.idle):
            self._retire(waiting)  # still in the tree that sweep reaps
        super().stop_all(reason, grace, on_message, on_end)

    def _pids(self) -> list[int]:
        return super()._pids() + [c.pid for c in self.idle + self._retiring if c.pid is not None]

    def _lingering(self) -> bool:
        return bool(self._retiring)

    def _bury_all(self) -> None:
        for child in self.idle + self._retiring:
            self._bury(child, grace=0.0)

    def close(self) -> None:
        self._bury_all()  # normally shutdown has left none
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
        self._abandoned: list[ThreadChild] = []  # runner threads given up on at the end

    def _start(self, spec: RunnerSpec) -> Child:
        return ThreadChild(spec, self.task, self.events, self.streams, self.turnstile)

    def _pids(self) -> list[int]:
        """The worker processes of every runner's pool (a runner thread has no process)."""
        return [pid for c in self.children.values() for pid in c.pids()]

    def _abandon(self, child: Child, on_message: OnMessage) -> None:
        """A runner thread that did not stop in time: end its pool's running evaluations
        (worker processes can be killed; its thread then returns), and keep an eye on it."""
        assert isinstance(child, ThreadChild)
        child.terminate()
        self._abandoned.append(child)

    def _lingering(self) -> bool:
        self._abandoned = [c for c in self._abandoned if c.is_alive()]
        return bool(self._abandoned)

    def sweep(self, grace: float) -> list[int]:
        reaped = super().sweep(grace)
        stuck = [c.opt_id for c in self._abandoned if c.is_alive()]
        if stuck:
            log.warning("the runner thread(s) of optimizer(s) %s are still inside the task, which a thread "
                        "cannot be stopped in: they end when it returns (evaluate in worker processes, "
                        "Level 2 backend='processes', for runs that must end at once)", stuck)
        return reaped
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
                    thread_slice: float | None = None, reuse: bool = False, max_idle: int = 1) -> Supervisor:
    if backend == "threads":
        return ThreadSupervisor(task, streams, thread_slice)
    return ProcessSupervisor(backend, start_method, reuse, max_idle)
