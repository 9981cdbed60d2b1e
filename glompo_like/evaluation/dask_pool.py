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
- **Cheap evaluations travel in batches.**  Each Dask task costs the scheduler about a
  millisecond or two (:data:`TASK_COST`, paid one task after another by the scheduler),
  more than a cheap evaluation itself.  The first generation goes out one evaluation per
  task; from then on, when the last generation's evaluations took less than ``TASK_COST /
  TASK_COST_SHARE`` (20 ms) on average, the generation is split into the ``k`` tasks (at
  most one per thread of the cluster) that make ``k * TASK_COST + work / k`` smallest, each
  evaluating its points in turn: a generation of 16 evaluations of 20 µs is one task, of
  5 ms on 2 threads two.  Expensive evaluations still go one per task (the scheduler
  balances them).  A batch shares its fate: a worker
  dying mid-batch runs the whole batch again, and each of its evaluations counts the
  death.
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
- **A batch pool only.**  Evaluations go out a generation at a time; the pool cannot take
  them one by one as workers come free, so an optimizer created with ``async_eval=True``
  is refused on ``backend="dask"`` when its entry is built
  (:func:`~glompo_like.evaluation.can_stream`).

This module is the client side, in the runner; what runs on the workers (the scattered
task, the ``task_timeout`` helper subprocess) is :mod:`glompo_like.evaluation.dask_remote`.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import socket
import threading
import time
import traceback
import uuid
from typing import Any

import numpy as np

from ..errors import GlompoError
from .base import AbortCheck, BatchPool
from .core import EvalStatus, Outcome
from .dask_remote import TaskBlob, run_remote_batch, short_address

__all__ = ["DaskPool", "DaskUnavailable", "CONNECT_TIMEOUT", "SEND_INTERVAL", "quicken"]

log = logging.getLogger("glompo_like.evaluation.dask")

#: seconds a DaskPool waits for the scheduler before raising DaskUnavailable
CONNECT_TIMEOUT = 5.0
#: seconds to wait for the first worker of a cluster (the ``dask_worker_timeout`` setting)
WORKER_TIMEOUT = 120.0
#: longest time (seconds) between two looks at which workers the cluster has
WORKER_REFRESH = 2.0
#: what one Dask task costs the scheduler, client and worker besides the evaluation (seconds;
#: 1-3 ms measured on a 2-core machine, see docs/performance.rst)
TASK_COST = 0.002
#: evaluations are batched into tasks until that cost is at most this share of a task's work
TASK_COST_SHARE = 0.1
#: seconds a Dask connection the pool waits on may hold a message back to batch it with
#: others (distributed's own: 10 ms for a client's messages; see
#: :mod:`glompo_like.evaluation.dask_latency`)
SEND_INTERVAL = 0.001


def quicken(stream: Any, interval: float = SEND_INTERVAL) -> bool:
    """Shorten the flush interval of one of distributed's batched connections (a
    ``BatchedSend``) to ``interval`` seconds, if it is longer.  Anything without a numeric
    ``interval`` (``None``, another version's object) is left alone.  Returns whether it
    changed."""
    current = getattr(stream, "interval", None)
    if isinstance(current, (int, float)) and not isinstance(current, bool) and current > interval:
        stream.interval = interval
        return True
    return False


class DaskUnavailable(GlompoError):
    """The Dask scheduler cannot be reached (or ``distributed`` is not installed, or the
    embedded cluster did not start).  The message names the address."""


_ADDRESS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>\S+)")
_SOCKET_SCHEMES = ("tcp", "tls", "ws", "wss")


def no_workers_message(address: str, waited: float) -> str:
    return (f"the Dask cluster at {address!r} has no worker (waited {waited:g} s): start workers "
            f"(dask worker {address}), or wait longer (dask_worker_timeout), or omit dask_address to use "
            "an embedded local cluster")


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


class DaskPool(BatchPool):
    """Evaluates generations on a Dask cluster (see the module docstring for the details).
    A batch pool: it has no ``submit``/``collect``, so it cannot serve ``async_eval``.

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
    resources:
        Dask worker resources every evaluation needs, e.g. ``{"GPU": 1}``: the scheduler
        runs it only on a worker that declares them, and counts them while it runs.
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
        security: Any = None,
        worker_timeout: float = WORKER_TIMEOUT,
        resources: dict[str, float] | None = None,
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
        self.security = security  # distributed.Security for a TLS cluster (None: plain TCP)
        self.worker_timeout = worker_timeout
        #: Dask worker resources each evaluation needs (``{"GPU": 1}``): only workers that
        #: declare them (``dask worker --resources GPU=1``) run its evaluations
        self.resources = resources
        #: evaluations that were run again because a worker died while holding them
        self.resubmitted = 0
        self._client: Any = None
        self._blob: Any = None
        self._lock = threading.Lock()
        self._watch: dict[str, list[int]] = {}  # key in flight -> its candidates' indices
        self._deaths: dict[str, list[str]] = {}  # key -> addresses of workers that died holding it
        self._subscribed: set[str] = set()  # workers whose event topic we follow
        self._next_refresh = 0.0
        self._threads = 1  # threads of the cluster's workers, as of the last look
        self._mean_duration: float | None = None  # of the last generation's evaluations (seconds)

    def __repr__(self) -> str:
        extra = "" if self.resources is None else f", resources={self.resources}"
        return f"DaskPool(address={self.address!r}, workers={self.workers}, timeout={self.timeout}{extra})"

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
            client = distributed.Client(self.address, timeout=self.connect_timeout, set_as_default=False,
                                        security=self.security)
        except Exception as e:
            raise DaskUnavailable(
                f"cannot reach the Dask scheduler at {self.address!r} within {self.connect_timeout:g} s "
                f"({type(e).__name__}: {e}); check that the scheduler runs and that this machine can "
                "reach that address, or omit dask_address to use an embedded local cluster"
            ) from e
        # its submissions go out at once, not with the next 10 ms flush
        quicken(getattr(client, "scheduler_comm", None))
        self._client = client
        log.debug("%s connected to %s", self.label, self.address)
        return client

    def _scatter(self, client: Any, should_abort: AbortCheck | None) -> bool:
        """Send the task to every worker there is, once there is one (an adaptive cluster
        may start empty).  Returns False if told to stop while waiting."""
        told = False
        give_up = time.monotonic() + self.worker_timeout
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
                if time.monotonic() >= give_up:
                    raise DaskUnavailable(no_workers_message(self.address, self.worker_timeout)) from None
        self._watch_workers(refresh=True)
        self._blob = client.scatter(TaskBlob(self.task_bytes), broadcast=True, hash=False)
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
            workers = client.scheduler_info(n_workers=-1).get("workers", {})
            self._threads = max(1, sum(int(w.get("nthreads", 1) or 1) for w in workers.values()))
            for addr in workers:
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
                    self._deaths.setdefault(k, []).append(short_address(worker))
            if hit:
                how = "left" if msg.get("expected") else "died"
                log.warning("%s: Dask worker %s %s while holding %d evaluation(s); they are run again",
                            self.label, worker, how, len(hit))
        except Exception:  # never let bookkeeping break the client's loop
            log.exception("could not handle a Dask event")

    # ------------------------------------------------------------------ evaluation
    def _submit(self, client: Any, batches: list[list[np.ndarray]]) -> list[Any]:
        """One Dask task per batch of points."""
        keys = [f"glompo-{self.label}-{uuid.uuid4().hex}" for _ in batches]
        return client.map(run_remote_batch, batches, key=keys, blob=self._blob, label=self.label,
                          timeout=self.timeout, pure=False, resources=self.resources)

    def batches(self, n: int) -> list[list[int]]:
        """The candidates ``0 .. n - 1`` split into the batches of one generation (see
        "Cheap evaluations travel in batches" in the module docstring)."""
        tasks = n
        mean = self._mean_duration
        if mean is not None and mean * TASK_COST_SHARE < TASK_COST and n:
            work = n * mean  # the time the fewest tasks take: their cost, then the work spread over threads
            tasks = min(range(1, min(n, self._threads) + 1), key=lambda k: k * TASK_COST + work / k)
        size = math.ceil(n / tasks) if n else 1
        return [list(range(i, min(n, i + size))) for i in range(0, n, size)]

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
        points = [np.asarray(x) for x in xs]
        batches = self.batches(n)
        futs = self._submit(client, [[points[i] for i in b] for b in batches])
        index = {f.key: b for f, b in zip(futs, batches, strict=True)}
        live = {f.key: f for f in futs}
        with self._lock:
            self._watch.update(index)
        ac = as_completed(futs, loop=client.loop, with_results=True, raise_errors=False)
        try:
            for fut, result in ac:
                key = fut.key
                batch = index.pop(key)
                live.pop(key, None)
                with self._lock:
                    self._watch.pop(key, None)
                    died = self._deaths.pop(key, [])
                for i in batch:
                    deaths[i] += died
                if isinstance(result, list) and len(result) == len(batch) and all(
                        isinstance(o, Outcome) for o in result):
                    worker = result[0].worker
                    if "@" in worker:  # a worker we may not follow yet
                        self._watch_workers(seen=scheme + worker.rsplit("@", 1)[1])
                    for i, o in zip(batch, result, strict=True):
                        out[i] = self._note_reruns(o, deaths[i])
                        self.resubmitted += len(deaths[i])
                else:
                    retry = self._failed(client, fut, result, batch, points, deaths, t_wall, t0, out)
                    if retry is not None:
                        index[retry.key] = batch
                        live[retry.key] = retry
                        with self._lock:
                            self._watch[retry.key] = batch
                        ac.add(retry)
                if live and should_abort is not None and should_abort():
                    client.cancel(list(live.values()))
                    break
        finally:
            with self._lock:
                for k in live:
                    self._watch.pop(k, None)
                    self._deaths.pop(k, None)
        done = [o.duration for o in out if o is not None and o.status is EvalStatus.OK]
        if done:
            self._mean_duration = float(np.mean(done))
        return out

    def _failed(self, client: Any, fut: Any, result: Any, batch: list[int], points: list[np.ndarray],
                deaths: list[list[str]], t_wall: float, t0: float, out: list[Outcome | None]) -> Any:
        """A future ended without its Outcomes: resubmit its batch (returns the new future)
        or record what happened to each of its evaluations."""
        from distributed import KilledWorker

        exc = result[1] if isinstance(result, tuple) and len(result) == 3 else result
        if fut.status == "cancelled" and client.status != "running":
            raise DaskUnavailable(f"lost the connection to the Dask scheduler at {self.address!r} "
                                  f"(client {client.status})") from (exc if isinstance(exc, BaseException) else None)
        first = batch[0]  # (a batch's evaluations share their deaths)
        if isinstance(exc, KilledWorker):
            # the scheduler gave up after allowed_failures + 1 deaths; some may not have been seen
            at_least = getattr(exc, "allowed_failures", 0) + 1
            last = short_address(str(getattr(getattr(exc, "last_worker", None), "address", "?")))
            for _ in range(at_least - len(deaths[first])):
                for i in batch:
                    deaths[i].append(last)
        elif fut.status == "cancelled":  # the scattered task was lost with the workers holding it
            for i in batch:
                deaths[i].append("task data lost with a worker")
        else:  # an exception outside evaluate_one (e.g. the point could not be deserialised)
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if isinstance(
                exc, BaseException) else repr(exc)
            for i in batch:
                out[i] = Outcome(math.nan, EvalStatus.FAILED, t_wall, time.monotonic() - t0,
                                 f"{self.label}/dask", f"the Dask task failed: {text}")
            return None
        if len(deaths[first]) <= self.retries:
            # (the re-runs are counted in `resubmitted` when the evaluation completes)
            log.warning("%s: resubmitting %d evaluation(s) after %d worker death(s) (%s)",
                        self.label, len(batch), len(deaths[first]), ", ".join(deaths[first]))
            if self._blob is None or self._blob.status != "finished":  # lost with its workers
                self._scatter(client, None)
            return self._submit(client, [[points[i] for i in batch]])[0]
        for i in batch:
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
