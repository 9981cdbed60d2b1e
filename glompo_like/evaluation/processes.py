"""Level 2 ``"processes"``: persistent worker processes owned by the runner.

::

                     submit(key, x) / evaluate(xs)
    runner ───────► ProcessPool ── _todo (waiting) ──► _dispatch: idle workers first; for short
                        │                                evaluations a second one per worker
                        │    (key, x) over each worker's Pipe          (PREFETCH)
                        ├──────────────► worker 1: evaluate_one(task, x) ─┐
                        ├──────────────► worker 2 ...                     │ (key, Outcome)
                        │                                                 │
                        ◄── collect(): one selector over every worker's ◄─┘
                            pipe and process sentinel
                              - a result: hand it back, send the worker its next job
                              - a sentinel: the worker died → its running evaluation is
                                ``crashed``, the ones queued behind it go back to _todo,
                                a replacement starts
                              - a deadline passed: kill the worker's process group →
                                ``timed_out``, replacement
                              - memory_limit: every MEMORY_CHECK s, the resident memory of
                                each busy worker's process tree; over the limit → kill
                                its group → ``memory_exceeded``, replacement
                              - max_evals_per_worker: a worker that has done its share
                                exits (its process group is killed after it) and a fresh
                                one takes its place; IsolatedPool: a share of one

The pool is our own rather than ``concurrent.futures.ProcessPoolExecutor`` because it must
know which worker runs which evaluation: a worker that dies takes only its own evaluation
with it (recorded as ``crashed`` with its exit code), a worker past its deadline is killed
with its process group (``timed_out``), and the pool starts a replacement and goes on.
Each pipe and sentinel is registered once with the selector.

With ``gpus``, worker ``i`` (and whoever replaces it) runs with ``CUDA_VISIBLE_DEVICES``
set to ``gpus[i]``, before the task is loaded.

Workers start from the forkserver that :func:`~glompo_like.evaluation.make_pool` prepares
(which preloads this module, see :func:`glompo_like.procs.start.pool_preload_modules`), or
with whatever start method the context given to :class:`ProcessPool` has.  A worker loads
the task, says it is ready, and only then receives evaluations: start-up time never counts
against an evaluation's deadline.
"""

from __future__ import annotations

import math
import os
import pickle
import selectors
import threading
import time
from collections import deque
from collections.abc import Hashable, Sequence
from multiprocessing.connection import wait as wait_objects
from typing import Any

import numpy as np

from ..errors import WorkerTerminated
from ..procs.hygiene import add_cleanup, become_child, kill_group, remove_cleanup
from ..procs.pipes import input_check
from ..procs.terminate import signal_name, terminate_process
from .base import AbortCheck, StreamingPool
from .core import EvalStatus, Outcome, evaluate_one, lost_outcome, where_json
from .memory import format_size, tree_rss

__all__ = ["ProcessPool", "IsolatedPool", "preload_threadpoolctl", "BLAS_ENV_VARS", "MAX_FAILED_STARTS"]

_READY = "__ready__"
#: Starting and reaping worker processes, one thread at a time.  ``Process.start()`` polls
#: every finished child of this process (multiprocessing's ``_cleanup``); with the
#: forkserver a poll *reads* the exit status from a pipe, so a runner thread reaping its
#: dead worker at the same moment could read nothing and get exit code 255.
_PROCESS_LOCK = threading.Lock()
#: a worker that dies this many times in a row before it is ready ends the pool
MAX_FAILED_STARTS = 3
BLAS_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def _worker_main(conn, task_bytes: bytes, label: str, blas_threads: int | None, gpu: str | None = None) -> None:
    become_child()
    if gpu is not None:  # before the task (and whatever it imports) is loaded
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    if blas_threads is not None:
        _limit_threads(blas_threads)
    task = pickle.loads(task_bytes)
    where = where_json(label)
    conn.send((_READY, None))  # startup time never counts against an evaluation's deadline
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        idx, x = msg
        conn.send((idx, evaluate_one(task, x, label, where)))


def preload_threadpoolctl() -> None:
    """Import threadpoolctl (if installed) in the process that starts the workers, so that
    forked workers do not each spend milliseconds importing it."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        pass


def _limit_threads(n: int) -> None:
    for var in BLAS_ENV_VARS:
        os.environ[var] = str(n)
    try:  # effective even when BLAS was loaded before the fork
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


class _Worker:
    """One worker process and the evaluations sent to it, in the order it runs them (the
    first is running, the others wait in its pipe)."""

    __slots__ = ("process", "conn", "has_input", "jobs", "ready", "deadline", "label", "t_wall", "t0", "slot",
                 "gpu", "sent", "ps")

    def __init__(self, process, conn, label: str, slot: int = 0, gpu: str | None = None) -> None:
        self.process = process
        self.conn = conn
        self.has_input = input_check(conn)
        self.label = label
        self.slot = slot  # which of the pool's places it fills (its GPU goes with the place)
        self.gpu = gpu
        self.sent = 0  # evaluations sent to it
        self.ps: Any = None  # its psutil.Process, for memory_limit
        self.jobs: deque[tuple[Hashable, np.ndarray]] = deque()
        self.ready = False  # it has loaded the task
        self.deadline = math.inf  # of the running evaluation
        self.t_wall = 0.0  # when the running evaluation started (as far as we know)
        self.t0 = 0.0

    def started_next(self, timeout: float | None) -> None:
        """The first job in ``jobs`` starts now."""
        self.t_wall, self.t0 = time.time(), time.monotonic()
        self.deadline = self.t0 + timeout if timeout else math.inf


class ProcessPool(StreamingPool):
    """Persistent worker processes with crash detection and per-evaluation timeouts.

    When evaluations are short (under :attr:`PREFETCH_BELOW` seconds on average), each
    worker holds up to :attr:`PREFETCH` of them: the next one waits in its pipe while the
    current one runs, so a worker never idles while its result travels back and the runner
    (often a third party on a busy core) gets round to sending more.  Long evaluations are
    sent one at a time, so a stop never waits for an evaluation that had not started.  If
    a worker dies, only its running evaluation is lost; the ones waiting behind it go to
    its replacement.

    Parameters
    ----------
    task_bytes:
        The task, pickled (cloudpickle) once by the manager.
    workers:
        Number of worker processes.
    context:
        A ``multiprocessing`` context (its start method is used).
    timeout:
        Seconds one evaluation may take before its worker is killed (``None``: no limit).
    blas_threads:
        BLAS/OpenMP threads per worker (``None``: leave the environment alone).
    max_evals_per_worker:
        Replace a worker by a fresh process after this many evaluations (``None``: never),
        which bounds what a leaking task can accumulate.
    memory_limit:
        Bytes of resident memory the process tree of a worker may use while it evaluates
        (``None``: no limit); over it, the evaluation is ended (``memory_exceeded``).
    gpus:
        One ``CUDA_VISIBLE_DEVICES`` value per worker (``None``: the environment is left alone).
    """

    kind = "processes"
    #: seconds between two looks at the workers' resident memory (with memory_limit)
    MEMORY_CHECK = 0.05
    #: evaluations sent to one worker at a time (the running one plus those queued)
    PREFETCH = 2
    #: prefetch only while evaluations take less than this (seconds, running mean)
    PREFETCH_BELOW = 0.1
    #: seconds between two looks for a stop while evaluations wait for a worker
    ABORT_CHECK = 0.02

    def __init__(
        self,
        task_bytes: bytes,
        workers: int,
        context: Any,
        label: str,
        timeout: float | None = None,
        blas_threads: int | None = 1,
        max_evals_per_worker: int | None = None,
        memory_limit: int | None = None,
        gpus: Sequence[str] | None = None,
    ) -> None:
        if gpus is not None and len(gpus) != workers:
            raise ValueError(f"{label}: {len(gpus)} gpus for {workers} workers; give one per worker")
        self.task_bytes = task_bytes
        self.workers = workers
        self.ctx = context
        self.label = label
        self.timeout = timeout
        self.blas_threads = blas_threads
        self.max_evals = max_evals_per_worker
        self.memory_limit = memory_limit
        self.gpus = None if gpus is None else [str(g) for g in gpus]
        self.replaced = 0  # workers that died, or were killed, and were replaced
        self.recycled = 0  # workers replaced after max_evals_per_worker evaluations
        self._n_started = 0
        self._exiting: list[Any] = []  # recycled workers' processes, on their way out
        self._next_memory_check = 0.0
        # every worker's pipe and sentinel, registered once (a wait per result that built
        # its own selector cost more than the rest of the result's handling)
        self._selector = selectors.DefaultSelector()
        self._pool: list[_Worker] = [self._spawn(i) for i in range(workers)]
        self._idle: deque[_Worker] = deque()
        self._busy: dict[Any, _Worker] = {}  # conn or sentinel -> worker (starting or evaluating)
        self._todo: deque[tuple[Hashable, np.ndarray]] = deque()
        self._failed_starts = 0
        self._mean_duration: float | None = None  # of recent evaluations (exponential mean)
        self._terminated = False  # terminate() was called: no worker is replaced any more
        for w in self._pool:
            self._starting(w)
        add_cleanup(self._kill_all)

    def _spawn(self, slot: int) -> _Worker:
        self._n_started += 1
        label = f"{self.label}/w{self._n_started}"
        gpu = None if self.gpus is None else self.gpus[slot]
        parent, child = self.ctx.Pipe(duplex=True)
        p = self.ctx.Process(
            target=_worker_main,
            args=(child, self.task_bytes, label, self.blas_threads, gpu),
            name=f"glompo-{label}",
            daemon=True,
        )
        with _PROCESS_LOCK:
            p.start()
        child.close()
        w = _Worker(p, parent, label, slot, gpu)
        self._selector.register(w.conn, selectors.EVENT_READ, w)
        self._selector.register(w.process.sentinel, selectors.EVENT_READ, w)
        return w

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._pool]

    # ------------------------------------------------------------------ streaming core
    def submit(self, key: Hashable, x: np.ndarray) -> None:
        """Queue one evaluation; it starts as soon as a worker is free."""
        self._todo.append((key, x))
        self._dispatch()

    def cancel_pending(self) -> list[Hashable]:
        """Forget evaluations that have not started; returns their keys."""
        keys = [k for k, _ in self._todo]
        self._todo.clear()
        return keys

    @property
    def in_flight(self) -> int:
        return len(self._todo) + sum(len(w.jobs) for w in self._pool)

    def collect(self, timeout: float | None = None) -> list[tuple[Hashable, Outcome]]:
        """Wait until at least one evaluation is done (or ``timeout``); return the done
        ones as ``(key, outcome)`` pairs.  Crashes and timeouts are outcomes too."""
        done: list[tuple[Hashable, Outcome]] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._exiting:
            self._reap_exiting()
        while not done and self._busy:
            first_due = min(w.deadline for w in self._busy.values())
            if self.memory_limit is not None:
                first_due = min(first_due, self._next_memory_check)
            wait_for = None if first_due == math.inf else max(0.0, first_due - time.monotonic())
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                wait_for = left if wait_for is None else min(wait_for, left)
            seen: set[int] = set()
            for ready, _ in self._selector.select(wait_for):
                w, obj = ready.data, ready.fileobj
                if id(w) in seen or w not in self._pool:  # handled through its other object
                    continue
                seen.add(id(w))  # (an idle worker is seen only when it dies: it sends nothing)
                alive = True
                try:
                    while w.has_input():  # every result it has sent
                        key, outcome = w.conn.recv()
                        if key == _READY:  # no job is sent to a worker before this
                            self._failed_starts = 0
                            w.ready = True
                        else:
                            w.jobs.popleft()
                            done.append((key, outcome))
                            self._timed(outcome.duration)
                            if w.jobs:
                                w.started_next(self.timeout)
                except (EOFError, OSError):
                    alive = False
                if not alive or obj is w.process.sentinel:  # end of file or exited: dead
                    self._retire(w, EvalStatus.CRASHED, "", killed=False, done=done)
                elif w.ready and not w.jobs and self.max_evals is not None and w.sent >= self.max_evals:
                    self._recycle(w)
                elif w.ready and not w.jobs and w not in self._idle:
                    self._free(w)
            now = time.monotonic()
            for w in {id(w): w for w in self._busy.values()}.values():
                if w.jobs and w.deadline <= now:
                    msg = (f"evaluation exceeded task_timeout={self.timeout:g} s; worker "
                           f"{w.process.pid} and its process group killed")
                    self._retire(w, EvalStatus.TIMED_OUT, msg, killed=True, done=done)
            if self.memory_limit is not None and now >= self._next_memory_check:
                self._check_memory(done)
            self._dispatch()
            if deadline is not None and time.monotonic() >= deadline:
                break
        return done

    def _timed(self, duration: float) -> None:
        m = self._mean_duration
        self._mean_duration = duration if m is None else 0.8 * m + 0.2 * duration

    def _dispatch(self) -> None:
        """Hand out waiting evaluations: idle workers first, then (short evaluations only)
        a second one to each busy worker, up to :attr:`PREFETCH`, so load stays balanced."""
        while self._todo and self._idle:
            w = self._idle.popleft()
            if w.has_input() or w.process.exitcode is not None:  # an idle worker says nothing
                # unless it has died (its pipe hangs up): replace it, lose nothing
                self._retire(w, EvalStatus.CRASHED, "", killed=False, done=[])
                continue
            self._send(w)
        if self._mean_duration is None or self._mean_duration >= self.PREFETCH_BELOW:
            return  # long (or not yet timed) evaluations: one at a time
        depth = 1
        while self._todo and depth < self.PREFETCH:
            depth += 1
            for w in list(self._pool):
                if len(self._todo) < len(self._pool):
                    return  # the tail of a batch goes to whichever worker is free first
                if w.ready and 0 < len(w.jobs) < depth and (self.max_evals is None or w.sent < self.max_evals):
                    self._send(w)

    def _send(self, w: _Worker) -> None:
        key, x = self._todo.popleft()
        w.jobs.append((key, x))
        w.sent += 1
        if len(w.jobs) == 1:  # nothing ahead of it: it starts now
            w.started_next(self.timeout)
        try:
            w.conn.send((key, x))
        except (BrokenPipeError, OSError):
            pass  # its sentinel will report the death
        self._busy[w.conn] = w
        self._busy[w.process.sentinel] = w

    def _starting(self, w: _Worker) -> None:
        w.ready, w.deadline = False, math.inf
        self._busy[w.conn] = w
        self._busy[w.process.sentinel] = w

    def _free(self, w: _Worker) -> None:
        self._busy.pop(w.conn, None)
        self._busy.pop(w.process.sentinel, None)
        self._idle.append(w)

    def _retire(self, w: _Worker, status: EvalStatus, message: str, killed: bool,
                done: list[tuple[Hashable, Outcome]]) -> None:
        """The worker is gone (or must go): record its running evaluation, give the ones
        queued behind it back to the pool and start a replacement."""
        self._busy.pop(w.conn, None)
        self._busy.pop(w.process.sentinel, None)
        for obj in (w.conn, w.process.sentinel):
            try:
                self._selector.unregister(obj)
            except (KeyError, ValueError):
                pass
        if killed:
            kill_group(w.process.pid)
        with _PROCESS_LOCK:
            w.process.join(5)
        if not w.jobs and not killed and not self._terminated:  # died before it was ready (or idle)
            if not w.ready:
                self._failed_starts += 1
            if self._failed_starts >= MAX_FAILED_STARTS:
                raise WorkerTerminated(
                    f"{self.label}: {self._failed_starts} worker processes in a row died before "
                    f"they could evaluate anything (last: {signal_name(w.process.exitcode)}); "
                    "the task cannot be loaded in a worker process",
                    exitcode=w.process.exitcode,
                )
        if w.jobs:
            key, _ = w.jobs.popleft()
            if not message:
                message = (f"worker process {w.process.pid} died during the evaluation "
                           f"({signal_name(w.process.exitcode)})")
            duration = time.monotonic() - w.t0
            where = where_json(w.label, w.process.pid, w.gpu)
            done.append((key, lost_outcome(status, w.t_wall, duration, w.label, message, where)))
            if status is EvalStatus.TIMED_OUT:
                self._timed(duration)
            self._todo.extendleft(reversed(w.jobs))  # never started: they go first
            w.jobs.clear()
        self.replaced += 1
        self._replace(w)

    def _replace(self, w: _Worker) -> None:
        """Put a fresh worker in ``w``'s place (``w`` is out of the selector already)."""
        w.conn.close()
        if w in self._idle:
            self._idle.remove(w)
        self._pool.remove(w)
        if self._terminated:  # (escalation: no new worker)
            return
        nw = self._spawn(w.slot)
        self._pool.append(nw)
        self._starting(nw)

    def _recycle(self, w: _Worker) -> None:
        """``w`` has done its ``max_evals_per_worker`` evaluations: it is told to exit (its
        process group is killed once it has, see :meth:`_reap_exiting`) and a fresh worker
        takes its place."""
        self._busy.pop(w.conn, None)
        self._busy.pop(w.process.sentinel, None)
        for obj in (w.conn, w.process.sentinel):
            try:
                self._selector.unregister(obj)
            except (KeyError, ValueError):
                pass
        try:
            w.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._exiting.append(w.process)
        self.recycled += 1
        self._replace(w)

    def _reap_exiting(self, wait: float = 0.0) -> None:
        """Bury recycled workers that have exited.  Their process group is killed first,
        while the exited process still holds its id (so nothing the task started in the
        background outlives its worker, and no new process can have taken the id)."""
        if not self._exiting:
            return
        ready = set(wait_objects([p.sentinel for p in self._exiting], wait))
        for p in [p for p in self._exiting if p.sentinel in ready]:
            kill_group(p.pid)
            with _PROCESS_LOCK:
                p.join(1)
            self._exiting.remove(p)

    def _check_memory(self, done: list[tuple[Hashable, Outcome]]) -> None:
        """memory_limit: end every evaluation whose worker's process tree holds more."""
        import psutil

        self._next_memory_check = time.monotonic() + self.MEMORY_CHECK
        for w in list(self._pool):
            if not w.jobs:
                continue
            if w.ps is None:
                try:
                    w.ps = psutil.Process(w.process.pid)
                except psutil.Error:
                    continue
            rss = tree_rss(w.ps)
            if rss > self.memory_limit:
                msg = (f"evaluation used {format_size(rss)} of resident memory, over memory_limit="
                       f"{format_size(self.memory_limit)}; worker {w.process.pid} and its process group killed")
                self._retire(w, EvalStatus.MEMORY, msg, killed=True, done=done)

    def evaluate(self, xs: np.ndarray, should_abort: AbortCheck | None = None) -> list[Outcome | None]:
        out: list[Outcome | None] = [None] * len(xs)
        for i, x in enumerate(xs):
            self._todo.append((i, x))
        self._dispatch()
        while any(o is None for o in out) and (self._todo or any(w.jobs for w in self._pool)):
            if self._terminated:  # escalation: what has not finished is lost
                self._todo.clear()
                break
            # While evaluations wait for a worker (workers starting, which takes a while
            # with spawn or forkserver), a stop is looked for every ABORT_CHECK seconds,
            # not only when an evaluation finishes.
            wait = self.ABORT_CHECK if self._todo and should_abort is not None else None
            for i, outcome in self.collect(timeout=wait):
                out[i] = outcome
            if self._todo and should_abort is not None and should_abort():
                self.cancel_pending()
        return out

    def _kill_all(self) -> None:
        for w in list(self._pool):
            kill_group(w.process.pid)
        for p in self._exiting:
            kill_group(p.pid)

    def terminate(self) -> bool:
        """Kill every worker (with its process group) now; none is replaced."""
        self._terminated = True
        self._kill_all()
        return True

    def close(self) -> None:
        for w in self._pool:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self._reap_exiting(wait=1.0)
        for p in self._exiting:
            terminate_process(p, grace=0.0, kill_grace=1.0)
        self._exiting = []
        for w in self._pool:
            terminate_process(w.process, grace=2.0, kill_grace=1.0)
            w.conn.close()
        self._pool = []
        self._selector.close()
        remove_cleanup(self._kill_all)


class IsolatedPool(ProcessPool):
    """Level 2 ``"isolated"``: every evaluation in a fresh process, which exits when it is
    done (its process group killed after it), so nothing one evaluation leaves behind (leaked
    memory, global state, background processes) reaches the next.  A process pool whose
    workers each evaluate once: ``workers`` evaluations run at once, each replacement starts
    (from the pool's forkserver, with the task loaded) as its predecessor finishes, and
    ``task_timeout``, ``memory_limit`` and ``gpus`` work as for ``"processes"``.  The price is
    a process start per evaluation (a fork from the forkserver and unpickling the task:
    milliseconds), so it suits evaluations that take much longer than that."""

    kind = "isolated"
    PREFETCH = 1  # a worker evaluates once: nothing to queue behind it

    def __init__(self, task_bytes: bytes, workers: int, context: Any, label: str, timeout: float | None = None,
                 blas_threads: int | None = 1, memory_limit: int | None = None,
                 gpus: Sequence[str] | None = None) -> None:
        super().__init__(task_bytes, workers, context, label, timeout, blas_threads, max_evals_per_worker=1,
                         memory_limit=memory_limit, gpus=gpus)
