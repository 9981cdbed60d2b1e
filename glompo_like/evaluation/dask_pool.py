"""Level 2 on a Dask cluster: one optimizer's generation evaluated by ``distributed`` workers.

::

    runner ── evaluate(xs) ──► DaskPool ── client.map(one future per candidate) ──► scheduler
                                  ▲                                                    │
                                  └─── as_completed ◄── Outcome ◄── worker: evaluate_one(task, x)
                                                                      (or, with task_timeout, in a
                                                                       killable helper subprocess)

What the pool does, exactly:

- **Connection.**  The :class:`distributed.Client` is created lazily, on the first
  :meth:`DaskPool.evaluate`, in the runner's own thread or process (a client is never
  pickled).  A scheduler that cannot be reached within ``connect_timeout`` seconds raises
  :class:`DaskUnavailable` naming the address.  :meth:`DaskPool.close` closes the client,
  never the cluster.
- **The task travels once.**  The pickled task is scattered once to every worker
  (``client.scatter(..., broadcast=True)``) and unpickled once per worker; each evaluation
  then sends only its point.  A worker that joins later (a restarted worker, an adaptive
  cluster growing) fetches the task from a peer.  Workers must be able to import
  ``glompo_like`` and whatever the task refers to by module name.
- **Results in candidate order**, taken as they complete (``distributed.as_completed``).
- **A worker dies mid-evaluation.**  The evaluation runs again on another worker.  An
  external cluster's scheduler re-runs the evaluations a dead worker held by itself, up
  to its ``distributed.scheduler.allowed-failures`` setting (default 3); the pool follows
  every worker's event topic, so it sees each of these re-runs.  The embedded cluster
  sets ``allowed-failures`` to 0: its scheduler gives up at once (``KilledWorker``) and
  the pool resubmits the evaluation itself.  Either way every death is logged as a
  warning and noted in the row's worker label (``"... [re-run after 1 worker death:
  127.0.0.1:40123]"``), :attr:`DaskPool.resubmitted` counts the re-runs, and an
  evaluation whose workers died more than ``retries`` times in total is recorded as
  ``crashed``.  Evaluations queued on the dead worker but not started count as re-runs
  too.  If the scattered task is lost with every worker holding it, it is scattered again.
- **task_timeout.**  Dask cannot stop a running task.  With a ``timeout``, each worker
  therefore runs evaluations in a helper subprocess of its own (started on first use, kept
  for later evaluations of the same task, one per concurrently running evaluation; in its
  own process group; it dies with its worker).  At the deadline the worker kills the
  helper's whole process group (so whatever the task started dies too) and records the
  evaluation as ``timed_out``; the next evaluation starts a fresh helper.  The deadline
  counts from the moment the helper receives the point; starting a helper (about 0.2 s)
  is not counted.  A helper that dies during an evaluation (a segfault, the OOM killer)
  gives a ``crashed`` row.  Without a timeout, evaluations run in the worker's own thread.
- **Stopping.**  When ``should_abort()`` turns true, evaluations not yet finished are
  cancelled (``None``); one already running on a worker finishes there unobserved (or,
  with a timeout, is killed at its deadline).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import pickle
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import GlompoError
from .core import EvalStatus, Outcome, evaluate_one
from .pools import Pool, signal_name

__all__ = ["DaskPool", "DaskUnavailable", "CONNECT_TIMEOUT"]

log = logging.getLogger("glompo_like.evaluation.dask")

#: seconds a DaskPool waits for the scheduler before raising DaskUnavailable
CONNECT_TIMEOUT = 5.0
#: longest time (seconds) between two looks at which workers the cluster has
WORKER_REFRESH = 2.0
#: seconds a worker waits for a task_timeout helper subprocess to start
HELPER_STARTUP_TIMEOUT = 60.0

AbortCheck = Callable[[], bool]


class DaskUnavailable(GlompoError):
    """The Dask scheduler cannot be reached (or ``distributed`` is not installed, or the
    embedded cluster did not start).  The message names the address."""


def _short(address: str) -> str:
    return address.split("://", 1)[-1]


# ============================================================================ worker side
class _TaskBlob:
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

        return f"{label}/dask@{_short(get_worker().address)}"
    except (ImportError, ValueError):  # not on a worker (tests call this directly)
        return f"{label}/dask"


def _run_remote(x: np.ndarray, blob: _TaskBlob, label: str, timeout: float | None) -> Outcome:
    """What one Dask task does: evaluate ``x`` and return its :class:`Outcome`."""
    worker = _worker_label(label)
    if timeout is not None:
        return _run_in_helper(blob, x, worker, timeout)
    try:
        task = blob.task()
    except Exception as e:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        return Outcome(math.nan, EvalStatus.FAILED, time.time(), 0.0, worker,
                       f"the task could not be unpickled on the Dask worker: {text}")
    return evaluate_one(task, x, worker)


# ---------------------------------------------------------------------- helper subprocess
_HEADER = struct.Struct("!Q")
_HELPER_CMD = "from glompo_like.evaluation.dask_pool import _helper_main; _helper_main()"


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

    def __init__(self, blob: _TaskBlob) -> None:
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


def _run_in_helper(blob: _TaskBlob, x: np.ndarray, worker: str, timeout: float) -> Outcome:
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


# ============================================================================ client side
_ADDRESS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>\S+)")
_SOCKET_SCHEMES = ("tcp", "tls", "ws", "wss")


def _check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise :class:`DaskUnavailable` at once if nothing listens at a tcp/tls ``address``
    (other protocols are left to the client, which gives up after its connect timeout)."""
    m = _ADDRESS.fullmatch(address)
    if m is None or m["scheme"] not in _SOCKET_SCHEMES:
        return
    host, _, port = m["rest"].rpartition(":")
    if not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise DaskUnavailable(
            f"cannot reach the Dask scheduler at {address!r}: {e}. Start the scheduler (dask scheduler) "
            "and check the address, or omit dask_address to use an embedded local cluster"
        ) from e


class DaskPool(Pool):
    """Evaluates generations on a Dask cluster (see the module docstring for the details).

    Parameters
    ----------
    task_bytes:
        The task, pickled (cloudpickle) once by the manager.
    workers:
        The slots this optimizer occupies (informational: the cluster decides how many
        evaluations run at once).
    address:
        The scheduler, e.g. ``"tcp://127.0.0.1:8786"``.
    label:
        The optimizer's label (``"opt3"``); rows are labelled ``"opt3/dask@host:port"``.
    timeout:
        Seconds one evaluation may take (``None``: no limit); enforced on the worker by
        running evaluations in a killable helper subprocess.
    retries:
        Worker deaths one evaluation may survive; one more and it is recorded as crashed.
    connect_timeout:
        Seconds to wait for the scheduler before raising :class:`DaskUnavailable`.
    """

    kind = "dask"

    def __init__(
        self,
        task_bytes: bytes,
        workers: int,
        address: str | None,
        label: str,
        timeout: float | None = None,
        retries: int = 3,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if task_bytes is None:
            raise ValueError("DaskPool needs the pickled task (task_bytes)")
        self.task_bytes = task_bytes
        self.workers = workers
        self.address = address
        self.label = label
        self.timeout = timeout
        self.retries = int(retries)
        self.connect_timeout = connect_timeout
        #: evaluations that were run again because a worker died while holding them
        self.resubmitted = 0
        self._client: Any = None
        self._blob: Any = None
        self._lock = threading.Lock()
        self._watch: dict[str, int] = {}  # key in flight -> candidate index
        self._deaths: dict[str, list[str]] = {}  # key -> addresses of workers that died holding it
        self._subscribed: set[str] = set()  # workers whose event topic we follow
        self._next_refresh = 0.0

    def __repr__(self) -> str:
        return f"DaskPool(address={self.address!r}, workers={self.workers}, timeout={self.timeout})"

    # ------------------------------------------------------------------ connection
    def _connect(self) -> Any:
        try:
            import distributed
        except ImportError as e:
            raise DaskUnavailable(
                "Level 2 backend 'dask' needs the distributed package: pip install 'glompo_like[dask]'"
            ) from e
        if self.address is None:
            raise DaskUnavailable("DaskPool has no scheduler address (the manager passes dask_address "
                                  "or the address of its embedded cluster)")
        _check_reachable(self.address, self.connect_timeout)  # a refused connection fails at once
        try:
            client = distributed.Client(self.address, timeout=self.connect_timeout, set_as_default=False)
        except Exception as e:
            raise DaskUnavailable(
                f"cannot reach the Dask scheduler at {self.address!r} within {self.connect_timeout:g} s "
                f"({type(e).__name__}: {e}); check that the scheduler runs and that this machine can "
                "reach that address, or omit dask_address to use an embedded local cluster"
            ) from e
        self._client = client
        log.debug("%s connected to %s", self.label, self.address)
        return client

    def _scatter(self, client: Any, should_abort: AbortCheck | None) -> bool:
        """Send the task to every worker there is, once there is one (an adaptive cluster
        may start empty).  Returns False if told to stop while waiting."""
        told = False
        while True:
            try:
                client.wait_for_workers(1, timeout=1.0)
                break
            except TimeoutError:
                if not told:
                    log.info("%s: waiting for a worker to join the Dask cluster at %s", self.label, self.address)
                    told = True
                if should_abort is not None and should_abort():
                    return False
        self._watch_workers(refresh=True)
        self._blob = client.scatter(_TaskBlob(self.task_bytes), broadcast=True, hash=False)
        return True

    def _watch_workers(self, refresh: bool = False, seen: str | None = None) -> None:
        """Subscribe to the event topic of every worker (the scheduler publishes a worker's
        removal, with the keys it held, under the worker's address).  ``refresh`` asks the
        scheduler for its workers (at most every WORKER_REFRESH seconds); ``seen`` is a
        worker that just returned a result.  (The cluster-wide topic "all" is not used: some
        distributed versions publish events there that cannot be serialised, which breaks
        the subscriber's connection.)"""
        client = self._client
        new = []
        if seen is not None and seen not in self._subscribed:
            new.append(seen)
        now = time.monotonic()
        if refresh or now >= self._next_refresh:
            self._next_refresh = now + WORKER_REFRESH
            for addr in client.scheduler_info(n_workers=-1).get("workers", {}):
                if addr not in self._subscribed:
                    new.append(addr)
        for addr in new:
            self._subscribed.add(addr)
            client.subscribe_topic(addr, functools.partial(self._on_event, addr))

    def _on_event(self, worker: str, event: Any) -> None:
        """Runs in the client's event loop thread: note the evaluations held by a worker
        that left the cluster (the scheduler runs them again elsewhere)."""
        try:
            _, msg = event
            if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
                return
            self._subscribed.discard(worker)
            if self._client is not None:
                self._client.unsubscribe_topic(worker)
            with self._lock:
                hit = [k for k in msg.get("processing-tasks", ()) if k in self._watch]
                for k in hit:
                    self._deaths.setdefault(k, []).append(_short(worker))
            if hit:
                how = "left" if msg.get("expected") else "died"
                log.warning("%s: Dask worker %s %s while holding %d evaluation(s); they are run again",
                            self.label, worker, how, len(hit))
        except Exception:  # never let bookkeeping break the client's loop
            log.exception("could not handle a Dask event")

    # ------------------------------------------------------------------ evaluation
    def _submit(self, client: Any, xs: list[np.ndarray]) -> list[Any]:
        keys = [f"glompo-{self.label}-{uuid.uuid4().hex}" for _ in xs]
        return client.map(_run_remote, xs, key=keys, blob=self._blob, label=self.label,
                           timeout=self.timeout, pure=False)

    def evaluate(self, xs, should_abort: AbortCheck | None = None) -> list[Outcome | None]:
        if len(xs) == 0:
            return []
        client = self._client if self._client is not None else self._connect()
        try:
            if self._blob is None and not self._scatter(client, should_abort):
                return [None] * len(xs)
            return self._evaluate(client, xs, should_abort)
        except OSError as e:  # distributed's CommClosedError is one
            raise DaskUnavailable(f"lost the connection to the Dask scheduler at {self.address!r}: "
                                  f"{type(e).__name__}: {e}") from e

    def _evaluate(self, client: Any, xs: Any, should_abort: AbortCheck | None) -> list[Outcome | None]:
        n = len(xs)
        from distributed import as_completed

        self._watch_workers()  # new workers, every WORKER_REFRESH seconds
        scheme = self.address.split("://", 1)[0] + "://" if "://" in self.address else ""

        out: list[Outcome | None] = [None] * n
        deaths: list[list[str]] = [[] for _ in range(n)]  # deaths survived by earlier futures
        t_wall, t0 = time.time(), time.monotonic()
        futs = self._submit(client, [np.asarray(x) for x in xs])
        index = {f.key: i for i, f in enumerate(futs)}
        live = {f.key: f for f in futs}
        with self._lock:
            self._watch.update(index)
        ac = as_completed(futs, loop=client.loop, with_results=True, raise_errors=False)
        try:
            for fut, result in ac:
                key = fut.key
                i = index.pop(key)
                live.pop(key, None)
                with self._lock:
                    self._watch.pop(key, None)
                    died = self._deaths.pop(key, [])
                deaths[i] += died
                if isinstance(result, Outcome):
                    if "@" in result.worker:  # a worker we may not follow yet
                        self._watch_workers(seen=scheme + result.worker.rsplit("@", 1)[1])
                    out[i] = self._note_reruns(result, deaths[i])
                    self.resubmitted += len(deaths[i])
                else:
                    retry = self._failed(client, fut, result, i, xs[i], deaths, t_wall, t0, out)
                    if retry is not None:
                        index[retry.key] = i
                        live[retry.key] = retry
                        with self._lock:
                            self._watch[retry.key] = i
                        ac.add(retry)
                if live and should_abort is not None and should_abort():
                    client.cancel(list(live.values()))
                    break
        finally:
            with self._lock:
                for k in live:
                    self._watch.pop(k, None)
                    self._deaths.pop(k, None)
        return out

    def _failed(self, client: Any, fut: Any, result: Any, i: int, x: np.ndarray, deaths: list[list[str]],
                t_wall: float, t0: float, out: list[Outcome | None]) -> Any:
        """A future ended without an Outcome: resubmit it (returns the new future) or
        record what happened."""
        from distributed import KilledWorker

        exc = result[1] if isinstance(result, tuple) and len(result) == 3 else result
        if fut.status == "cancelled" and client.status != "running":
            raise DaskUnavailable(f"lost the connection to the Dask scheduler at {self.address!r} "
                                  f"(client {client.status})") from (exc if isinstance(exc, BaseException) else None)
        if isinstance(exc, KilledWorker):
            # the scheduler gave up after allowed_failures + 1 deaths; some may not have been seen
            seen = len(deaths[i])
            at_least = getattr(exc, "allowed_failures", 0) + 1
            last = getattr(getattr(exc, "last_worker", None), "address", "?")
            while seen < at_least:
                deaths[i].append(_short(str(last)))
                seen += 1
        elif fut.status == "cancelled":  # the scattered task was lost with the workers holding it
            deaths[i].append("task data lost with a worker")
        else:  # an exception outside evaluate_one (e.g. the point could not be deserialised)
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if isinstance(
                exc, BaseException) else repr(exc)
            out[i] = Outcome(math.nan, EvalStatus.FAILED, t_wall, time.monotonic() - t0,
                             f"{self.label}/dask", f"the Dask task failed: {text}")
            return None
        if len(deaths[i]) <= self.retries:
            # (the re-runs are counted in `resubmitted` when the evaluation completes)
            log.warning("%s: resubmitting an evaluation after %d worker death(s) (%s)",
                        self.label, len(deaths[i]), ", ".join(deaths[i]))
            if self._blob is None or self._blob.status != "finished":  # lost with its workers
                self._scatter(client, None)
            return self._submit(client, [np.asarray(x)])[0]
        self.resubmitted += len(deaths[i]) - 1
        out[i] = Outcome(
            math.nan, EvalStatus.CRASHED, t_wall, time.monotonic() - t0, f"{self.label}/dask",
            f"Dask workers died {len(deaths[i])} times while running this evaluation "
            f"({', '.join(deaths[i])}); more than retries={self.retries}: given up",
        )
        return None

    @staticmethod
    def _note_reruns(o: Outcome, died: list[str]) -> Outcome:
        if not died:
            return o
        note = f"{o.worker} [re-run after {len(died)} worker death{'s' if len(died) > 1 else ''}: {', '.join(died)}]"
        return o._replace(worker=note)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            for addr in list(self._subscribed):
                client.unsubscribe_topic(addr)
            if self._blob is not None:
                self._blob.release()
        except Exception:
            pass
        self._blob = None
        try:
            client.close(timeout=self.connect_timeout)
        except Exception:
            log.debug("error while closing the Dask client", exc_info=True)
