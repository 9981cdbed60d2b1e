"""The runner: owns one optimizer's ask → evaluate → tell loop inside its thread/process.

::

    manager ══ Pipe ══ Runner ── opt.ask() ──► pool.evaluate(xs) ──► opt.tell(xs, fs)
       ▲                  │                                             │
       └── Evaluated ─────┴──── one report per generation (or a few) ◄─┘
       ─── Ack / Stop / Inject / RequestState ─► read between generations

Flow control (credits).  The manager answers every report with ``Ack(until)``: the runner
may *start* generations up to number ``until`` and must wait before starting the next.
The manager sizes each grant from the budget left (near the end of a budget, one
generation at a time), so a stop decision overshoots the budget by at most one generation
per optimizer, and a fast optimizer cannot run away from the manager.

Reports are coalesced: the runner sends what it has evaluated when its credit is running
out (a quarter of its last grant left, at least one generation, so that the next grant can
arrive before it is needed), when ``report_interval`` seconds have passed since its last
report, or when it stops.
Fast optimizers on cheap tasks thus wake the manager a few hundred times a second rather
than once per generation (each wake-up costs both processes cache and CPU time), while
slow generations are reported one by one as they finish.

A runner waits for credit *before* it asks for the next generation, so every wait is at a
clean point (no ask outstanding): a checkpoint can take the optimizer's state there.

``lockstep=True`` reports every generation, and the manager then grants exactly one
generation at a time: the manager has seen everything the optimizer did before it goes on,
which makes seeded single-optimizer runs exactly reproducible.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..bounds import Bounds
from ..errors import ConfigError, ContractError, EvaluationError
from ..evaluation import (
    BatchPool,
    EvalBatch,
    EvalStatus,
    Outcome,
    PointBatch,
    StreamingPool,
    make_pool,
)
from ..evaluation.samples import Sampler
from ..optimizers.base import BaseOptimizer, checked_candidates
from ..procs.pipes import input_check
from .messages import (
    Ack,
    Converged,
    Crashed,
    EvalStarted,
    Evaluated,
    Inject,
    Launch,
    RequestState,
    Resume,
    Retire,
    StateReply,
    Stop,
    Stopped,
)
from .noisy import SampledEvaluation
from .steady import SteadyStateLoops

__all__ = ["RunnerSpec", "Runner", "run_in_thread", "run_in_process"]



@dataclass(frozen=True)
class RunnerSpec:
    """Everything a runner needs; picklable (the task travels as ``task_bytes``)."""

    opt_id: int
    opt_cls: type
    opt_kwargs: dict[str, Any]
    bounds: Bounds
    x0: np.ndarray
    seed: Any
    task_bytes: bytes | None
    l2_backend: Any = "serial"  # "serial" | "threads" | "processes" | "dask" | Executor
    l2_workers: int = 1
    start_method: str | None = None
    pool_start_method: str | None = None  # Level 2 process pools (resolved by the manager)
    task_timeout: float | None = None
    blas_threads: int | None = 1
    on_error: str = "penalty"
    penalty: float | None = None
    lockstep: bool = False
    report_interval: float = 0.02
    first_generation: int = 0  # a restored optimizer goes on counting from here
    print_dir: str | None = None  # where this optimizer's prints go (None: not captured)
    max_failed_generations: int = 3
    state: dict[str, Any] | None = None
    dask_address: str | None = None  # the scheduler of Level 2 "dask"
    dask_security: Any = None  # its distributed.Security (TLS), if any
    dask_worker_timeout: float | None = None  # seconds to wait for its first worker
    pool_options: Any = None  # PoolOptions: max_evals_per_worker, gpus, resources, memory_limit
    samples: int = 1  # evaluations of each asked point (noisy objectives)
    aggregate: str = "mean"  # how they are combined: "mean" or "median"
    incumbent_samples: int = 1  # samples a point needs to become the optimizer's best


class _StopRun(Exception):
    pass


class Runner(SteadyStateLoops, SampledEvaluation):
    def __init__(self, spec: RunnerSpec, conn: Any, task: Callable, turnstile: Any = None) -> None:
        self.spec = spec
        self.turnstile = turnstile  # threads backend with thread_slice: take turns
        self.conn = conn
        self._has_input = input_check(conn)
        self.task = task
        self.log = logging.getLogger(f"glompo_like.optimizers.{spec.opt_id}")
        self.stop_reason: str | None = None
        self.state_requested = False
        self.paused = False
        self.generation = spec.first_generation  # generations evaluated and told
        self.until = spec.first_generation + 1  # the last generation we may start
        self._low_credit = 1  # generations of credit left at which the runner reports
        self._asked = 0  # the grant (``until``) in force at the last report
        self.opt: Any = None
        self._pending: list[EvalBatch] = []
        self._pending_gens = 0
        self._last_report = time.monotonic()
        self._worst = -math.inf
        self._failed_gens = 0
        self._n_ok = 0
        self.in_process = False  # set when the runner owns its process (may be killed)
        self.close_conn = True  # a reusable runner process keeps its pipe for the next one
        self.ended_cleanly = False  # converged or stopped, and the manager was told
        self.gave_up = False  # asynchronous mode: stopping because every evaluation failed
        self.pool: BatchPool | None = None  # its Level 2 pool, once made
        #: samples > 1: the points' samples, aggregates and the incumbent (None: one each)
        self.sampler = (Sampler(spec.samples, spec.incumbent_samples, spec.aggregate)
                        if spec.samples > 1 else None)

    # ------------------------------------------------------------------ commands
    def _handle(self, msg: Any) -> None:
        if isinstance(msg, Ack):
            if msg.until > self.until:  # grants only ever grow
                self.until = msg.until
                self._low_credit = max(1, (msg.until - self.generation) // 4)
        elif isinstance(msg, Stop):
            if self.stop_reason is None:
                self.stop_reason = msg.reason or "stopped by the manager"
        elif isinstance(msg, Inject):
            self.opt.inject(msg.x, msg.fx)
        elif isinstance(msg, RequestState):
            self.state_requested = True
        elif isinstance(msg, Resume):
            self.paused = False

    def _drain(self) -> None:
        try:
            while self._has_input():
                self._handle(self.conn.recv())
        except (EOFError, OSError):
            self.stop_reason = "manager went away"

    def _should_abort(self) -> bool:
        """Asked by the pool between evaluations: also the moment to report finished
        generations that have waited ``report_interval``, so a slow generation does not
        hold back the results of the fast ones before it."""
        self._drain()
        if self._pending and time.monotonic() - self._last_report >= self.spec.report_interval:
            try:
                self._report()
            except _StopRun:
                self.stop_reason = self.stop_reason or "manager went away"
        return self.stop_reason is not None

    def _send(self, msg: Any) -> None:
        try:
            self.conn.send(msg)
        except (BrokenPipeError, EOFError, OSError):
            raise _StopRun from None

    def _await_credit(self, generation: int) -> None:
        """Block until generation number ``generation`` may start (or we are told to stop).
        Called between tell and ask, so a state request can be answered while waiting."""
        if generation > self.until and self._pending:
            self._report()  # the manager must see our results before it grants more
        while generation > self.until and self.stop_reason is None:
            if self.state_requested:
                self._send_state_and_pause()
                continue
            self._recv()

    def _recv(self) -> None:
        if self.turnstile is not None:
            self.turnstile.release()  # never hold the turn while blocked
        try:
            self._handle(self.conn.recv())
        except (EOFError, OSError):
            raise _StopRun from None

    def _send_state_and_pause(self) -> None:
        """Checkpoint: everything evaluated goes out first, then the state (so the state
        matches what the manager has logged); then wait until the manager says go on."""
        self.state_requested = False
        self._report()
        state, problem = None, None
        if self.opt.checkpointable:
            try:  # a state that cannot be saved leaves this optimizer out of the checkpoint
                state = self.opt.get_state()
                pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:
                state, problem = None, f"its state could not be saved: {type(e).__name__}: {e}"
        self._send(StateReply(self.spec.opt_id, self.generation, state, problem))
        self.paused = True
        while self.paused and self.stop_reason is None:
            self._recv()

    def _announce(self, x: np.ndarray) -> None:
        self._report()  # what ran before must not die with this process
        self._send(EvalStarted(self.spec.opt_id, x, time.time()))

    def _evaluated(self, key: Any, x: np.ndarray, outcome: Outcome) -> None:
        """A pool that reports each evaluation (:attr:`BatchPool.reports_each`) has one: send
        it at once.  With samples, the key is ``(point, sample)`` and the row carries no point
        (its point goes out with the generation)."""
        if self.sampler is None:
            batch = EvalBatch.from_outcomes(np.asarray([x]), [outcome])
        else:
            batch = EvalBatch.from_outcomes(np.asarray([x]), [outcome], [key[1]], PointBatch.empty(len(x)))
        self._send(Evaluated(self.spec.opt_id, self.generation, batch, n_generations=0))

    def _report(self) -> None:
        # a report is also a request for credit: one per grant, when a quarter of it is
        # left, so that the next grant can arrive before this one is used up
        self._asked = self.until
        if self._pending:
            batch = EvalBatch.concat(self._pending)
            self._send(Evaluated(self.spec.opt_id, self.generation, batch, self._pending_gens))
            self._pending, self._pending_gens = [], 0
        self._last_report = time.monotonic()

    # ------------------------------------------------------------------ the loop
    def _make_pool(self) -> BatchPool:
        """The optimizer's Level 2 pool.  A runner that owns its process announces each
        serial evaluation under ``task_timeout`` (the manager may kill the process)."""
        s = self.spec
        return make_pool(
            s.l2_backend,
            self.task,
            workers=s.l2_workers,
            label=f"opt{s.opt_id}",
            task_bytes=s.task_bytes,
            pool_start_method=s.pool_start_method,
            start_method=s.start_method,
            timeout=s.task_timeout,
            blas_threads=s.blas_threads,
            dask_address=s.dask_address,
            dask_security=s.dask_security,
            dask_worker_timeout=s.dask_worker_timeout,
            announce=self._announce if self.in_process else None,
            done=self._evaluated if self.in_process else None,
            options=s.pool_options,
        )

    def terminate(self) -> bool:
        """Escalation from another thread (the manager's, when this runner thread did not
        stop within the grace period): end the pool's running evaluations.  Returns whether
        that was possible (evaluations in worker processes; not those in threads)."""
        pool = self.pool
        return pool is not None and pool.terminate()

    def run(self) -> None:
        final: Any = None
        pool: BatchPool | None = None
        try:
            s = self.spec
            # the pool first: its worker processes start up while the optimizer sets up
            pool = self.pool = self._make_pool()
            self.opt = s.opt_cls(s.bounds, s.x0, s.seed, **s.opt_kwargs)
            if s.state is not None:
                self.opt.set_state(s.state)
            final = self._loop(pool)
            self._report()  # evaluations not yet reported go out before the final word
        except _StopRun:
            final = None
        except BaseException as e:  # report any failure, then end this runner
            try:
                self._report()
            except _StopRun:
                pass
            final = _crash_message(self.spec.opt_id, e)
        finally:
            if self.turnstile is not None:
                self.turnstile.release()
            for closer in (pool, self.opt):
                if closer is not None:
                    try:
                        closer.close()
                    except Exception:
                        self.log.exception("error while closing %r", closer)
            if final is not None:
                try:
                    self.conn.send(final)
                    self.ended_cleanly = isinstance(final, (Converged, Stopped))
                except (BrokenPipeError, EOFError, OSError):
                    pass
            if self.close_conn or not self.ended_cleanly:
                self.conn.close()

    def _loop(self, pool: BatchPool) -> Any:
        if self.opt.async_eval:
            if not isinstance(pool, StreamingPool):  # refused when the entry was built
                raise ConfigError(f"{type(self.opt).__name__} with async_eval=True needs a Level 2 pool that "
                                  f"streams, and {pool.kind!r} does not; use backend='processes' or "
                                  "'threads', or drop async_eval")
            self.turnstile = None  # asynchronous optimizers do not take turns
            if self.sampler is not None:
                return self._async_sampled_loop(pool)
            return self._async_loop(pool)
        s, opt, ts = self.spec, self.opt, self.turnstile
        ask_checked = type(opt).ask is BaseOptimizer.ask
        while True:
            if ts is not None:
                ts.turn()
            self._drain()
            if self.state_requested and self.stop_reason is None:
                self._send_state_and_pause()  # between tell and ask: a clean point
            if self.stop_reason is not None:
                return Stopped(s.opt_id, self.stop_reason)
            reasons = opt.stop()
            if reasons:
                if self.generation and not self._n_ok:  # "converged" on penalties only
                    return Stopped(s.opt_id, f"every evaluation failed (it stopped: {reasons})", failed=True)
                return Converged(s.opt_id, dict(reasons))
            nxt = self.generation + 1
            # Wait for credit before asking: every wait is then at a clean point (no ask
            # outstanding), where a checkpoint can take the optimizer's state as it is.
            self._await_credit(nxt)
            if self.stop_reason is not None:
                return Stopped(s.opt_id, self.stop_reason)
            if ts is not None:
                ts.take()
            try:  # (BaseOptimizer.ask checks what it returns; an override is checked here)
                xs = opt.ask() if ask_checked else checked_candidates(opt.ask(), s.bounds, type(opt).__name__)
            except ContractError as e:
                return Stopped(s.opt_id, f"broke the optimizer contract: {e}", failed=True)
            if self.sampler is not None:  # samples > 1: each point measured several times
                sampled = self._sampled_generation(pool, xs)
                if sampled is None:  # stopped mid-generation: what ran is pending
                    return Stopped(s.opt_id, self.stop_reason or "stopped")
                fs, batch, n_ok = sampled
            else:
                outcomes = pool.evaluate(xs, self._should_abort)
                if None in outcomes:  # stopped mid-generation: report what ran
                    done = [i for i, o in enumerate(outcomes) if o is not None]
                    if done and not pool.reports_each:
                        self._pending.append(EvalBatch.from_outcomes(xs[done], [outcomes[i] for i in done]))
                        self._pending_gens += 1
                    return Stopped(s.opt_id, self.stop_reason or "stopped")
                batch = EvalBatch.from_outcomes(xs, outcomes)
                if batch.all_ok:  # the common case: every value is a finite number
                    fs, n_ok = batch.fx, len(batch)
                    worst = fs.max()
                    if worst > self._worst:
                        self._worst = float(worst)
                else:
                    rows_x, rows_o, fs = self._resolve_failures(pool, xs, outcomes)
                    batch = EvalBatch.from_outcomes(rows_x, rows_o)
                    n_ok = batch.status.count(EvalStatus.OK)
            self.generation = nxt
            # logged before it is told (a pool that reports each evaluation has sent its
            # rows already: count the generation)
            self._pending.append(EvalBatch.empty(s.bounds.dim, batch.points) if pool.reports_each else batch)
            self._pending_gens += 1
            try:
                opt.tell(xs, fs)
            except Exception as e:
                return Stopped(s.opt_id, f"broke the optimizer contract: tell() raised {type(e).__name__}: {e}",
                               failed=True)
            if (
                s.lockstep
                or (self.until - self.generation <= self._low_credit and self._asked < self.until)
                or time.monotonic() - self._last_report >= s.report_interval
            ):
                self._report()
            self._n_ok += n_ok
            if not n_ok:
                self._failed_gens += 1
                if self._failed_gens >= s.max_failed_generations:
                    return Stopped(s.opt_id, f"every evaluation of the last {self._failed_gens} generations "
                                   "failed", failed=True)
            else:
                self._failed_gens = 0

    def _resolve_failures(
        self, pool: BatchPool, xs: np.ndarray, outcomes: list[Outcome]
    ) -> tuple[np.ndarray, list[Outcome], np.ndarray]:
        """Apply the ``on_error`` policy.  Returns the rows to log (every attempt) and the
        values to tell (one per asked point)."""
        s = self.spec
        fs = np.array([o.fx for o in outcomes], dtype=float)
        ok = np.isfinite(fs)
        if ok.any():
            self._worst = max(self._worst, float(fs[ok].max()))
        if ok.all():
            return xs, outcomes, fs
        if s.on_error == "raise":
            # what this generation evaluated is logged before the run ends
            self._pending.append(EvalBatch.from_outcomes(xs, outcomes))
            bad = outcomes[int(np.flatnonzero(~ok)[0])]
            cause = pickle.loads(bad.exc_pickle) if bad.exc_pickle else None
            raise EvaluationError(f"evaluation failed ({bad.status.value}): {bad.error}") from cause
        rows_x, rows_o = list(xs), list(outcomes)
        if s.on_error == "resample":
            bad_idx = np.flatnonzero(~ok)
            retry = pool.evaluate(xs[bad_idx])
            for i, o in zip(bad_idx, retry, strict=True):
                if o is None:
                    continue
                rows_x.append(xs[i])
                rows_o.append(o)
                if o.status is EvalStatus.OK:
                    fs[i] = o.fx
                    self._worst = max(self._worst, o.fx)
            ok = np.isfinite(fs)
        fs[~ok] = self._penalty()
        return np.asarray(rows_x), rows_o, fs

    def _penalty(self) -> float:
        if self.spec.penalty is not None:
            return self.spec.penalty
        if self._worst == -math.inf:
            return 1e300
        return self._worst + max(1.0, abs(self._worst))


def _crash_message(opt_id: int, e: BaseException) -> Crashed:
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    exc_pickle = None
    try:
        from tblib import pickling_support

        pickling_support.install(e)
        exc_pickle = pickle.dumps(e)
    except Exception:
        pass
    return Crashed(opt_id, f"{type(e).__name__}: {e}", text, exc_pickle)


def run_in_thread(runner: Runner, streams: Any = None) -> None:
    """A Level 1 runner thread: runs ``runner`` (built by the thread's handle, which keeps
    it to reach its pool, see :meth:`Runner.terminate`)."""
    spec = runner.spec
    files = streams.attach(spec.opt_id) if streams is not None and spec.print_dir else None
    try:
        runner.run()
    finally:
        if files is not None:
            streams.detach(files)


def run_in_process(spec: RunnerSpec, conn: Any, reuse: bool = False) -> None:
    """A Level 1 optimizer process.  With ``reuse``, a runner that ended its optimizer
    cleanly waits for the next one (:class:`Launch`) instead of exiting, which saves the
    manager starting a process per optimizer; the task is unpickled once per process."""
    from ..procs.hygiene import become_child

    become_child()
    _redirect_prints(spec)  # before the task is loaded: what loading prints goes there too
    task_bytes = spec.task_bytes
    try:
        task = pickle.loads(task_bytes)
    except BaseException as e:
        conn.send(_crash_message(spec.opt_id, e))
        conn.close()
        return
    while True:
        runner = Runner(spec, conn, task)
        runner.in_process = True
        runner.close_conn = not reuse
        runner.run()
        if not (reuse and runner.ended_cleanly):
            return  # the runner closed the pipe
        spec = _next_spec(conn, task_bytes)
        if spec is None:
            break
        _redirect_prints(spec)
    conn.close()


def _redirect_prints(spec: RunnerSpec) -> None:
    if spec.print_dir:
        from ..record.prints import redirect_process

        redirect_process(spec.print_dir, spec.opt_id)


def _next_spec(conn: Any, task_bytes: bytes | None) -> RunnerSpec | None:
    """Wait for the manager's word: the next optimizer's spec, or ``None`` to exit.
    Commands meant for the optimizer that has just ended (an Ack or a Stop that crossed
    its final message) are dropped."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return None
        if isinstance(msg, Launch):
            return replace(msg.spec, task_bytes=task_bytes)
        if isinstance(msg, Retire):
            return None
