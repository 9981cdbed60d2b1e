"""Level 1: run each optimizer's :class:`~glompo_like.runner.Runner` in a thread or a process.

Every child is reached through a duplex pipe, so the manager waits on one
``multiprocessing.connection.wait()`` for all of them whatever the backend: a process also
contributes its sentinel (readable the moment it dies); a thread closes its end of the pipe
when it finishes, which the manager reads as end-of-file.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

from ..runner import RunnerSpec, run_in_process, run_in_thread
from .terminate import terminate_process

__all__ = ["LEVEL1_BACKENDS", "Child", "ThreadChild", "ProcessChild", "start_child"]

LEVEL1_BACKENDS = ("threads", "processes", "processes_forced")


class Child:
    """The manager's handle on one running optimizer."""

    kind = "?"
    sentinel: Any = None
    pid: int | None = None

    def __init__(self, opt_id: int, conn: Any) -> None:
        self.opt_id = opt_id
        self.conn = conn
        self.final: Any = None  # the runner's final message, once received
        self.eof = False

    def send(self, msg: Any) -> bool:
        try:
            self.conn.send(msg)
            return True
        except (BrokenPipeError, EOFError, OSError):
            return False

    def is_alive(self) -> bool:
        raise NotImplementedError

    def finish(self, grace: float) -> int | None:
        """Wait up to ``grace`` for the child to end (escalating for processes); returns
        the exit code (``None`` for threads)."""
        raise NotImplementedError

    def wait_objects(self) -> list[Any]:
        objs = [] if self.eof else [self.conn]
        if self.sentinel is not None:
            objs.append(self.sentinel)
        return objs


class ThreadChild(Child):
    kind = "threads"

    def __init__(self, spec: RunnerSpec, task: Callable) -> None:
        mine, theirs = multiprocessing.Pipe(duplex=True)
        super().__init__(spec.opt_id, mine)
        self.thread = threading.Thread(
            target=run_in_thread, args=(spec, theirs, task), name=f"glompo-opt{spec.opt_id}", daemon=True
        )
        self.thread.start()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def finish(self, grace: float) -> int | None:
        self.thread.join(grace)
        return None


class ProcessChild(Child):
    def __init__(self, spec: RunnerSpec, context: Any, daemon: bool) -> None:
        mine, theirs = context.Pipe(duplex=True)
        super().__init__(spec.opt_id, mine)
        self.kind = "processes" if daemon else "processes_forced"
        self.process = context.Process(
            target=run_in_process, args=(spec, theirs), name=f"glompo-opt{spec.opt_id}", daemon=daemon
        )
        self.process.start()
        theirs.close()
        self.sentinel = self.process.sentinel
        self.pid = self.process.pid

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def finish(self, grace: float) -> int | None:
        return terminate_process(self.process, grace=grace, kill_grace=1.0)

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode


def start_child(backend: str, spec: RunnerSpec, task: Callable, context: Any) -> Child:
    if backend == "threads":
        return ThreadChild(spec, task)
    return ProcessChild(spec, context, daemon=(backend == "processes"))
