"""Level 2: how one optimizer evaluates a generation.

::

    runner ── evaluate(xs) ──► Pool ──► serial loop            (SerialPool)
                                   ├──► threads                (ThreadPool)
                                   ├──► own worker processes   (ProcessPool)
                                   └──► a user's Executor      (ExecutorPool)
            ◄── [Outcome] in candidate order (None: cancelled before it ran)

Pools are persistent: created once per optimizer, reused every generation, closed when
the optimizer ends.  A pool closes only what it created (a user's executor is left open).

The process pool is our own rather than ``concurrent.futures.ProcessPoolExecutor`` because
it must know which worker runs which evaluation: a worker that dies takes only its own
evaluation with it (recorded as ``crashed`` with its exit code), a worker past its
deadline is killed with its process group (``timed_out``), and the pool starts a
replacement and goes on.  Results are taken as they complete, one
selector over worker pipes and process sentinels, each registered once.
"""

from __future__ import annotations

import math
import os
import pickle
import selectors
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

import numpy as np

from ..errors import WorkerTerminated
from ..procs.hygiene import add_cleanup, become_child, kill_group, remove_cleanup
from ..procs.pipes import input_check
from ..procs.terminate import terminate_process
from .core import EvalStatus, Outcome, evaluate_one, failed_outcome, value_outcome

__all__ = ["Pool", "SerialPool", "AnnouncingPool", "ThreadPool", "ProcessPool", "ExecutorPool", "signal_name",
           "preload_threadpoolctl"]

AbortCheck = Callable[[], bool]
_OK = EvalStatus.OK
_tuple_new = tuple.__new__
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


def signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown exit"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class Pool(ABC):
    """Evaluates a generation; ``evaluate`` returns outcomes in candidate order."""

    workers: int = 1
    kind: str = "?"
    reports_each = False  # True: the pool reports every evaluation to the manager itself

    @abstractmethod
    def evaluate(self, xs: np.ndarray, should_abort: AbortCheck | None = None) -> list[Outcome | None]:
        """Evaluate every row of ``xs``.  When ``should_abort()`` turns true, evaluations not
        yet started are skipped (``None``); those already running are finished or dropped."""

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers})"


class SerialPool(Pool):
    """Evaluates in the runner's own thread.  Between evaluations it asks ``should_abort``
    at most every ``check_every`` seconds (a cheap clock read otherwise), so a stop
    arrives within one evaluation of that period without a system call per evaluation."""

    kind = "serial"
    check_every = 0.02

    def __init__(self, task: Callable, label: str) -> None:
        self.task = task
        self.label = label
        self._queued: deque[tuple[Any, np.ndarray]] = deque()

    # streaming (async mode) with one worker: evaluate when collected
    def submit(self, key: Any, x: np.ndarray) -> None:
        self._queued.append((key, x))

    def collect(self, timeout: float | None = None) -> list[tuple[Any, Outcome]]:
        if not self._queued:
            return []
        key, x = self._queued.popleft()
        return [(key, evaluate_one(self.task, x, self.label))]

    def cancel_pending(self) -> list[Any]:
        keys = [k for k, _ in self._queued]
        self._queued.clear()
        return keys

    @property
    def in_flight(self) -> int:
        return len(self._queued)

    def evaluate(self, xs, should_abort=None):
        # One clock read per evaluation: each one starts when the one before it ended
        # (wall-clock start times come from one reading per generation plus offsets).
        task, label, perf = self.task, self.label, time.perf_counter
        out: list[Outcome | None] = [None] * len(xs)
        t = perf()
        to_wall = time.time() - t
        next_check = t + self.check_every
        for i, x in enumerate(xs):
            if should_abort is not None and i and t >= next_check:
                if should_abort():
                    break
                t = perf()
                next_check = t + self.check_every
            try:
                value = task(x)
            except Exception as e:
                t1 = perf()
                out[i] = failed_outcome(e, to_wall + t, t1 - t, label)
                t = perf()  # the traceback took time: not part of the next evaluation
                continue
            t1 = perf()
            if type(value) is float and value - value == 0.0:  # value_outcome's fast path, inlined
                out[i] = _tuple_new(Outcome, (value, _OK, to_wall + t, t1 - t, label, None, None))
            else:
                out[i] = value_outcome(value, to_wall + t, t1 - t, label)
            t = t1
        return out


class AnnouncingPool(SerialPool):
    """A serial pool for a runner in its own process under ``task_timeout``: it announces
    each evaluation before running it (``announce(x)``; the manager kills the process if
    the deadline passes) and reports it as soon as it is done (``done(x, outcome)``), so
    nothing evaluated is lost with the process."""

    reports_each = True

    def __init__(self, task: Callable, label: str, announce: Callable[[np.ndarray], None],
                 done: Callable[[np.ndarray, Outcome], None]) -> None:
        super().__init__(task, label)
        self.announce = announce
        self.done = done

    def evaluate(self, xs, should_abort=None):
        out: list[Outcome | None] = [None] * len(xs)
        for i, x in enumerate(xs):
            if should_abort is not None and i and should_abort():
                break
            self.announce(x)
            out[i] = evaluate_one(self.task, x, self.label)
            self.done(x, out[i])
        return out


class _FuturesStreaming:
    """submit/collect on top of ``concurrent.futures`` (for ThreadPool and ExecutorPool)."""

    def _submit_future(self, x: np.ndarray) -> Future:
        raise NotImplementedError

    def submit(self, key: Any, x: np.ndarray) -> None:
        fut = self._submit_future(x)
        self._futures[fut] = key

    def collect(self, timeout: float | None = None) -> list[tuple[Any, Outcome]]:
        if not self._futures:
            return []
        done, _ = wait_futures(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        return [(self._futures.pop(f), f.result()) for f in done]

    def cancel_pending(self) -> list[Any]:
        keys = [k for f, k in list(self._futures.items()) if f.cancel()]
        self._futures = {f: k for f, k in self._futures.items() if not f.cancelled()}
        return keys

    @property
    def in_flight(self) -> int:
        return len(self._futures)


class ThreadPool(_FuturesStreaming, Pool):
    kind = "threads"

    def __init__(self, task: Callable, workers: int, label: str) -> None:
        self.task = task
        self.workers = workers
        self.label = label
        self._ex = ThreadPoolExecutor(workers, thread_name_prefix=f"glompo-{label}")
        self._futures: dict[Future, Any] = {}

    def _submit_future(self, x: np.ndarray) -> Future:
        return self._ex.submit(evaluate_one, self.task, x, self.label)

    def evaluate(self, xs, should_abort=None):
        futs = [self._ex.submit(evaluate_one, self.task, x, self.label) for x in xs]
        return _collect(futs, should_abort)

    def close(self) -> None:
        self._ex.shutdown(wait=True, cancel_futures=True)


class ExecutorPool(_FuturesStreaming, Pool):
    """Evaluations through a user's ``concurrent.futures.Executor``, which stays open."""

    kind = "executor"

    def __init__(self, task: Callable, executor: Executor, label: str) -> None:
        self.task = task
        self.executor = executor
        self.workers = int(getattr(executor, "_max_workers", 1) or 1)
        self.label = label
        self._futures: dict[Future, Any] = {}

    def _submit_future(self, x: np.ndarray) -> Future:
        return self.executor.submit(evaluate_one, self.task, x, self.label)

    def evaluate(self, xs, should_abort=None):
        futs = [self.executor.submit(evaluate_one, self.task, x, self.label) for x in xs]
        return _collect(futs, should_abort)


def _collect(futs: list[Future], should_abort: AbortCheck | None) -> list[Outcome | None]:
    """Wait for futures, checking ``should_abort`` whenever one completes."""
    pending = set(futs)
    while pending:
        _, pending = wait_futures(pending, return_when="FIRST_COMPLETED")
        if pending and should_abort is not None and should_abort():
            for f in pending:
                f.cancel()
            wait_futures(pending)
            break
    out: list[Outcome | None] = []
    for f in futs:
        if f.cancelled():
            out.append(None)
        else:
            out.append(f.result())
    return out


# ----------------------------------------------------------------------------- processes
def _worker_main(conn, task_bytes: bytes, label: str, blas_threads: int | None) -> None:
    become_child()
    if blas_threads is not None:
        _limit_threads(blas_threads)
    task = pickle.loads(task_bytes)
    conn.send((_READY, None))  # startup time never counts against an evaluation's deadline
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        idx, x = msg
        conn.send((idx, evaluate_one(task, x, label)))


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

    __slots__ = ("process", "conn", "has_input", "jobs", "ready", "deadline", "label", "t_wall", "t0")

    def __init__(self, process, conn, label: str) -> None:
        self.process = process
        self.conn = conn
        self.has_input = input_check(conn)
        self.label = label
        self.jobs: deque[tuple[Any, np.ndarray]] = deque()
        self.ready = False  # it has loaded the task
        self.deadline = math.inf  # of the running evaluation
        self.t_wall = 0.0  # when the running evaluation started (as far as we know)
        self.t0 = 0.0

    def started_next(self, timeout: float | None) -> None:
        """The first job in ``jobs`` starts now."""
        self.t_wall, self.t0 = time.time(), time.monotonic()
        self.deadline = self.t0 + timeout if timeout else math.inf


class ProcessPool(Pool):
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
    """

    kind = "processes"
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
    ) -> None:
        self.task_bytes = task_bytes
        self.workers = workers
        self.ctx = context
        self.label = label
        self.timeout = timeout
        self.blas_threads = blas_threads
        self.replaced = 0
        self._n_started = 0
        # every worker's pipe and sentinel, registered once (a wait per result that built
        # its own selector cost more than the rest of the result's handling)
        self._selector = selectors.DefaultSelector()
        self._pool: list[_Worker] = [self._spawn() for _ in range(workers)]
        self._idle: deque[_Worker] = deque()
        self._busy: dict[Any, _Worker] = {}  # conn or sentinel -> worker (starting or evaluating)
        self._todo: deque[tuple[Any, np.ndarray]] = deque()
        self._failed_starts = 0
        self._mean_duration: float | None = None  # of recent evaluations (exponential mean)
        for w in self._pool:
            self._starting(w)
        add_cleanup(self._kill_all)

    def _spawn(self) -> _Worker:
        self._n_started += 1
        label = f"{self.label}/w{self._n_started}"
        parent, child = self.ctx.Pipe(duplex=True)
        p = self.ctx.Process(
            target=_worker_main,
            args=(child, self.task_bytes, label, self.blas_threads),
            name=f"glompo-{label}",
            daemon=True,
        )
        with _PROCESS_LOCK:
            p.start()
        child.close()
        w = _Worker(p, parent, label)
        self._selector.register(w.conn, selectors.EVENT_READ, w)
        self._selector.register(w.process.sentinel, selectors.EVENT_READ, w)
        return w

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._pool]

    # ------------------------------------------------------------------ streaming core
    def submit(self, key: Any, x: np.ndarray) -> None:
        """Queue one evaluation; it starts as soon as a worker is free."""
        self._todo.append((key, x))
        self._dispatch()

    def cancel_pending(self) -> list[Any]:
        """Forget evaluations that have not started; returns their keys."""
        keys = [k for k, _ in self._todo]
        self._todo.clear()
        return keys

    @property
    def in_flight(self) -> int:
        return len(self._todo) + sum(len(w.jobs) for w in self._pool)

    def collect(self, timeout: float | None = None) -> list[tuple[Any, Outcome]]:
        """Wait until at least one evaluation is done (or ``timeout``); return the done
        ones as ``(key, outcome)`` pairs.  Crashes and timeouts are outcomes too."""
        done: list[tuple[Any, Outcome]] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done and self._busy:
            first_due = min(w.deadline for w in self._busy.values())
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
                elif w.ready and not w.jobs and w not in self._idle:
                    self._free(w)
            now = time.monotonic()
            for w in {id(w): w for w in self._busy.values()}.values():
                if w.jobs and w.deadline <= now:
                    msg = (f"evaluation exceeded task_timeout={self.timeout:g} s; worker "
                           f"{w.process.pid} and its process group killed")
                    self._retire(w, EvalStatus.TIMED_OUT, msg, killed=True, done=done)
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
                if w.ready and 0 < len(w.jobs) < depth:
                    self._send(w)

    def _send(self, w: _Worker) -> None:
        key, x = self._todo.popleft()
        w.jobs.append((key, x))
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
                done: list[tuple[Any, Outcome]]) -> None:
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
        if not w.jobs and not killed:  # died before it was ready (or between evaluations)
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
            done.append((key, Outcome(math.nan, status, w.t_wall, duration, w.label, message)))
            if status is EvalStatus.TIMED_OUT:
                self._timed(duration)
            self._todo.extendleft(reversed(w.jobs))  # never started: they go first
            w.jobs.clear()
        w.conn.close()
        if w in self._idle:
            self._idle.remove(w)
        self._pool.remove(w)
        self.replaced += 1
        nw = self._spawn()
        self._pool.append(nw)
        self._starting(nw)

    def evaluate(self, xs, should_abort=None):
        out: list[Outcome | None] = [None] * len(xs)
        for i, x in enumerate(xs):
            self._todo.append((i, x))
        self._dispatch()
        while any(o is None for o in out) and (self._todo or any(w.jobs for w in self._pool)):
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
        for w in self._pool:
            kill_group(w.process.pid)

    def close(self) -> None:
        for w in self._pool:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in self._pool:
            terminate_process(w.process, grace=2.0, kill_grace=1.0)
            w.conn.close()
        self._pool = []
        self._selector.close()
        remove_cleanup(self._kill_all)
