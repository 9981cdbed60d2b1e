"""The worker side of Level 2 on Dask: what runs on a ``distributed`` worker.

::

    DaskPool (client) ── client.map(run_remote_batch, batches, blob=TaskBlob)  ──► worker
                                                                                    │
      without task_timeout: evaluate_one(blob.task(), x) in the worker's thread ◄───┤
      with task_timeout:    a helper subprocess per running evaluation ◄────────────┘
                              worker ══ stdin/stdout frames ══ helper: evaluate_one(task, x)
                              (own process group; killed at the deadline → timed_out;
                               dies during the evaluation → crashed)

Everything here is imported by the workers (by module name, when a task is unpickled), so
it depends on nothing but the standard library, NumPy and the evaluation core.  The helper
speaks a minimal protocol of length-prefixed pickles on private copies of its standard
input and output; the task's own prints go to standard error.  See
:mod:`glompo_like.evaluation.dask_pool` for the whole picture.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
import traceback
import weakref
from typing import Any

import numpy as np

from ..procs.terminate import signal_name
from .core import EvalStatus, Outcome, evaluate_one

__all__ = ["TaskBlob", "run_remote", "run_remote_batch", "short_address", "HELPER_STARTUP_TIMEOUT"]

#: seconds a worker waits for a task_timeout helper subprocess to start
HELPER_STARTUP_TIMEOUT = 60.0


def short_address(address: str) -> str:
    """``"tcp://127.0.0.1:40123"`` → ``"127.0.0.1:40123"``."""
    return address.split("://", 1)[-1]


class TaskBlob:
    """The pickled task as it is scattered: only the bytes travel.  A worker keeps one
    instance in its memory and passes that same instance to every evaluation, so the task
    is unpickled once per worker.  With ``task_timeout`` the blob also owns the worker's
    idle helper subprocesses; they are killed when the worker drops the blob."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._task: Any = None
        self._lock = threading.Lock()
        self._idle: list[_Helper] = []
        self._finalizer: weakref.finalize | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["data"])

    def task(self) -> Any:
        if self._task is None:
            with self._lock:
                if self._task is None:
                    self._task = pickle.loads(self.data)
        return self._task

    def take_helper(self) -> _Helper | None:
        with self._lock:
            while self._idle:
                h = self._idle.pop()
                if h.proc.poll() is None:
                    return h
                h.kill()
        return None

    def give_back(self, helper: _Helper) -> None:
        with self._lock:
            self._idle.append(helper)
            if self._finalizer is None:
                self._finalizer = weakref.finalize(self, _kill_helpers, self._idle)


def _kill_helpers(helpers: list[_Helper]) -> None:
    while helpers:
        helpers.pop().kill()


def _worker_label(label: str) -> str:
    try:
        from distributed import get_worker

        return f"{label}/dask@{short_address(get_worker().address)}"
    except (ImportError, ValueError):  # not on a worker (tests call this directly)
        return f"{label}/dask"


def run_remote(x: np.ndarray, blob: TaskBlob, label: str, timeout: float | None) -> Outcome:
    """What one Dask task does: evaluate ``x`` and return its :class:`Outcome`."""
    return run_remote_batch([x], blob, label, timeout)[0]


def run_remote_batch(xs: list[np.ndarray], blob: TaskBlob, label: str, timeout: float | None) -> list[Outcome]:
    """What one Dask task of a batch does: evaluate each of ``xs`` in turn (with a
    ``timeout``, each in the helper subprocess, each with its own deadline) and return their
    :class:`Outcome` s.  One task for several cheap evaluations saves the scheduler's cost
    per task (about a millisecond) on all but one of them."""
    worker = _worker_label(label)
    if timeout is not None:
        return [_run_in_helper(blob, x, worker, timeout) for x in xs]
    try:
        task = blob.task()
    except Exception as e:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        return [Outcome(math.nan, EvalStatus.FAILED, time.time(), 0.0, worker,
                        f"the task could not be unpickled on the Dask worker: {text}") for _ in xs]
    return [evaluate_one(task, x, worker) for x in xs]


# ---------------------------------------------------------------------- helper subprocess
_HEADER = struct.Struct("!Q")
_HELPER_CMD = "from glompo_like.evaluation.dask_remote import _helper_main; _helper_main()"


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> bytes | None:
    head = _read_exact(fd, _HEADER.size)
    if head is None:
        return None
    return _read_exact(fd, _HEADER.unpack(head)[0])


def _helper_main() -> None:
    """The helper subprocess: receives the task once, then points; answers Outcomes.

    It speaks on private copies of its standard input and output; the task's own prints go
    to standard error, so they cannot corrupt the protocol."""
    from ..procs.hygiene import become_child

    become_child()  # own process group; dies with the worker (PDEATHSIG + watchdog)
    fd_in, fd_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    data = _read_frame(fd_in)
    if data is None:
        return
    try:
        task = pickle.loads(data)
    except Exception as e:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        _write_frame(fd_out, pickle.dumps(("error", text)))
        return
    _write_frame(fd_out, pickle.dumps(("ready", os.getpid())))
    while True:
        msg = _read_frame(fd_in)
        if msg is None:
            return
        x, worker = pickle.loads(msg)
        _write_frame(fd_out, pickle.dumps(evaluate_one(task, x, worker), pickle.HIGHEST_PROTOCOL))


def _wait_readable(fd: int, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            ready, _, _ = select.select([fd], [], [], left)
        except InterruptedError:
            continue
        return bool(ready)


class _Helper:
    """One helper subprocess on a worker (see the module docstring)."""

    def __init__(self, blob: TaskBlob) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HELPER_CMD],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env, close_fds=True,
        )
        self.pid = self.proc.pid
        self.fd_in = self.proc.stdin.fileno()
        self.fd_out = self.proc.stdout.fileno()
        try:
            _write_frame(self.fd_in, blob.data)
            reply = None
            if _wait_readable(self.fd_out, HELPER_STARTUP_TIMEOUT):
                reply = _read_frame(self.fd_out)
        except OSError as e:
            self.kill()
            raise RuntimeError(f"the task_timeout helper subprocess {self.pid} failed to start: {e}") from e
        if reply is None:
            self.kill()
            raise RuntimeError(f"the task_timeout helper subprocess {self.pid} did not start "
                               f"within {HELPER_STARTUP_TIMEOUT:g} s ({signal_name(self.proc.poll())})")
        what, detail = pickle.loads(reply)
        if what != "ready":
            self.kill()
            raise RuntimeError(f"the task could not be unpickled in the helper subprocess: {detail}")

    def evaluate(self, x: np.ndarray, worker: str, timeout: float) -> tuple[Outcome, bool]:
        """Returns the outcome and whether this helper may be used again."""
        t_wall, t0 = time.time(), time.monotonic()
        try:
            _write_frame(self.fd_in, pickle.dumps((x, worker), pickle.HIGHEST_PROTOCOL))
            answered = _wait_readable(self.fd_out, timeout)
            data = _read_frame(self.fd_out) if answered else None
        except OSError:
            answered, data = True, None
        if not answered:
            self.kill()
            msg = (f"evaluation exceeded task_timeout={timeout:g} s; its helper subprocess {self.pid} "
                   "and its process group were killed on the Dask worker")
            return Outcome(math.nan, EvalStatus.TIMED_OUT, t_wall, time.monotonic() - t0, worker, msg), False
        if data is None:
            code = self.kill()
            msg = f"the helper subprocess {self.pid} died during the evaluation ({signal_name(code)})"
            return Outcome(math.nan, EvalStatus.CRASHED, t_wall, time.monotonic() - t0, worker, msg), False
        return pickle.loads(data), True

    def kill(self) -> int | None:
        from ..procs.hygiene import kill_group

        if self.proc.poll() is None:
            kill_group(self.pid)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            return None


def _run_in_helper(blob: TaskBlob, x: np.ndarray, worker: str, timeout: float) -> Outcome:
    helper = blob.take_helper()
    if helper is None:
        try:
            helper = _Helper(blob)
        except Exception as e:
            return Outcome(math.nan, EvalStatus.FAILED, time.time(), 0.0, worker, str(e))
    outcome, reusable = helper.evaluate(x, worker, timeout)
    if reusable:
        blob.give_back(helper)
    return outcome
