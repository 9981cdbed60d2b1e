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


class Runner:
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

    def _async_loop(self, pool: StreamingPool) -> Any:
        """Asynchronous evaluation: a candidate goes to a worker as soon as one is free and
        each value is told as it arrives.  ``generation_size`` told values count as one
        generation for credits and reports; a checkpoint waits until nothing is in flight."""
        s, opt = self.spec, self.opt
        gen_size = max(1, int(opt.generation_size))
        workers = max(1, int(pool.workers))
        in_flight: dict[int, tuple[Any, np.ndarray, int]] = {}  # key -> (token, x, attempts)
        rows_x: list[np.ndarray] = []
        rows_o: list[Outcome] = []
        told, ok_in_gen, next_key = 0, 0, 0
        reasons: dict[str, Any] = {}
        while True:
            self._drain()
            if self.stop_reason is not None:
                break
            if self.state_requested and not in_flight:
                self._send_state_and_pause()
                continue
            reasons = reasons or opt.stop()
            if reasons and not in_flight:
                break
            while (not reasons and not self.state_requested and len(in_flight) < workers
                   and self.generation + 1 <= self.until):
                item = opt.ask_one()
                if item is None:
                    break
                try:
                    item = (item[0], checked_candidates(item[1], s.bounds, type(opt).__name__)[0])
                except ContractError as e:
                    self.stop_reason, self.gave_up = f"broke the optimizer contract: {e}", True
                    break
                pool.submit(next_key, item[1])
                in_flight[next_key] = (item[0], item[1], 0)
                next_key += 1
            if self.stop_reason is not None:
                break
            if not in_flight:
                if self.generation + 1 > self.until:
                    self._await_credit(self.generation + 1)  # nothing out: a clean point
                    continue
                self.stop_reason = (f"broke the optimizer contract: {type(opt).__name__}.ask_one() proposed "
                                    "nothing with nothing in flight")
                self.gave_up = True
                break
            for key, outcome in pool.collect(timeout=0.05):  # the timeout keeps Stop responsive
                token, x, attempts = in_flight.pop(key)
                rows_x.append(x)
                rows_o.append(outcome)
                if outcome.status is EvalStatus.OK:
                    fx = outcome.fx
                    self._worst = max(self._worst, fx)
                    ok_in_gen += 1
                    self._n_ok += 1
                elif s.on_error == "raise":
                    cause = pickle.loads(outcome.exc_pickle) if outcome.exc_pickle else None
                    raise EvaluationError(f"evaluation failed ({outcome.status.value}): {outcome.error}") from cause
                elif s.on_error == "resample" and attempts == 0:
                    pool.submit(key, x)
                    in_flight[key] = (token, x, 1)
                    continue
                else:
                    fx = self._penalty()
                try:
                    opt.tell_one(token, x, fx)
                except Exception as e:
                    self.stop_reason = f"broke the optimizer contract: tell_one() raised {type(e).__name__}: {e}"
                    self.gave_up = True
                    break
                told += 1
                if told % gen_size == 0:  # one generation's worth of values
                    self.generation += 1
                    # (a pool that reports each evaluation has sent its rows already)
                    self._pending.append(EvalBatch.empty(s.bounds.dim) if pool.reports_each
                                         else EvalBatch.from_outcomes(np.asarray(rows_x), rows_o))
                    self._pending_gens += 1
                    rows_x, rows_o = [], []
                    self._failed_gens = 0 if ok_in_gen else self._failed_gens + 1
                    ok_in_gen = 0
                    if self._failed_gens >= s.max_failed_generations:
                        self.stop_reason = (f"every evaluation of the last {self._failed_gens} "
                                            "generations failed")
                        self.gave_up = True
                    if (s.lockstep or self.generation >= self.until
                            or time.monotonic() - self._last_report >= s.report_interval):
                        self._report()
        for key in pool.cancel_pending():  # not started: nothing was spent on them
            in_flight.pop(key, None)
        for key, outcome in pool.collect(timeout=0):  # finished meanwhile: keep them
            if key in in_flight:
                rows_x.append(in_flight.pop(key)[1])
                rows_o.append(outcome)
        if rows_o and not pool.reports_each:  # a partial generation: logged, no generation counted
            self._pending.append(EvalBatch.from_outcomes(np.asarray(rows_x), rows_o))
        if self.stop_reason is not None:
            return Stopped(s.opt_id, self.stop_reason, failed=self.gave_up)
        if self.generation and not self._n_ok:
            return Stopped(s.opt_id, f"every evaluation failed (it stopped: {reasons})", failed=True)
        return Converged(s.opt_id, dict(reasons))

    # ------------------------------------------------------------------ samples > 1
    def _gather(self, pool: BatchPool, jobs: list[tuple[Any, np.ndarray]]) -> tuple[dict[Any, Outcome], bool]:
        """Evaluate ``jobs`` (``(key, x)`` pairs) as one batch spread over the pool's workers;
        returns the outcomes by key and whether all ran (False: told to stop)."""
        out: dict[Any, Outcome] = {}
        if not jobs:
            return out, True
        if not isinstance(pool, StreamingPool):
            outcomes = pool.evaluate(np.array([x for _, x in jobs]), self._should_abort)
            for (key, _), o in zip(jobs, outcomes, strict=True):
                if o is not None:
                    out[key] = o
            return out, len(out) == len(jobs)
        for key, x in jobs:
            pool.submit(key, x)
        while len(out) < len(jobs):
            for key, o in pool.collect(timeout=0.05):  # the timeout keeps a Stop responsive
                out[key] = o
            if len(out) < len(jobs) and self._should_abort():
                pool.cancel_pending()
                out.update(pool.collect(timeout=0))
                return out, False
        return out, True

    def _sampled_generation(self, pool: BatchPool, xs: np.ndarray) -> tuple[np.ndarray, EvalBatch, int] | None:
        """Evaluate a generation of a noisy objective: ``samples`` evaluations of every point
        (spread over the workers), failed ones once more with ``on_error="resample"``, then
        more samples of the generation's best point if it beats the incumbent (see
        :mod:`glompo_like.evaluation.samples`).  Returns the values to tell (the
        aggregates), the batch to report (every sample a row, and the points) and how many
        points have a value; ``None`` if told to stop (what ran is then pending)."""
        s, sp = self.spec, self.sampler
        points = [sp.point(x) for x in xs]
        rows: list[tuple[np.ndarray, Outcome, int]] = []

        def run(jobs: list[tuple[tuple[int, int], np.ndarray]]) -> bool:
            done, complete = self._gather(pool, jobs)
            retry = []
            for key, x in jobs:
                o = done.get(key)
                if o is None:
                    continue
                rows.append((x, o, key[1]))
                if o.status is not EvalStatus.OK and s.on_error == "raise":
                    self._pend_rows(pool, rows, PointBatch.empty(s.bounds.dim))
                    cause = pickle.loads(o.exc_pickle) if o.exc_pickle else None
                    raise EvaluationError(f"evaluation failed ({o.status.value}): {o.error}") from cause
                if sp.record(points[key[0]], key[1], o, s.on_error == "resample"):
                    retry.append(((key[0], points[key[0]].take(1)[0]), x))
            if not complete:
                return False
            return run(retry) if retry else True

        complete = run([((i, j), p.x) for i, p in enumerate(points) for j in p.take(sp.samples)])
        if complete:  # the best point of the generation, if it beats the incumbent, is confirmed
            values = [sp.value(p)[0] if p.values else math.inf for p in points]
            best = int(np.argmin(values))
            more = sp.needs_confirmation(points[best])
            if more:
                sp.confirming(points[best])
                complete = run([((best, j), points[best].x) for j in points[best].take(more)])
                if complete:
                    sp.confirmed(points[best])
        if not complete:
            self._pend_rows(pool, rows, PointBatch.empty(s.bounds.dim))  # no point is complete
            return None
        pb = sp.batch(points, s.bounds.dim)
        if pb.ok.any():
            self._worst = max(self._worst, float(pb.fx[pb.ok].max()))
        fs = pb.fx.copy()
        if not pb.ok.all():
            fs[~pb.ok] = self._penalty()
        batch = EvalBatch.from_outcomes(np.array([r[0] for r in rows]), [r[1] for r in rows],
                                        [r[2] for r in rows], pb)
        return fs, batch, int(pb.ok.sum())

    def _pend_rows(self, pool: BatchPool, rows: list[tuple[np.ndarray, Outcome, int]], points: PointBatch,
                   count: bool = False) -> None:
        """Rows (and complete points) go out with the next report; ``count``: they finish a
        generation.  The rows of a pool that reports each evaluation were sent already."""
        if pool.reports_each or not rows:
            batch = EvalBatch.empty(self.spec.bounds.dim, points)
        else:
            batch = EvalBatch.from_outcomes(np.array([r[0] for r in rows]), [r[1] for r in rows],
                                            [r[2] for r in rows], points)
        if len(batch) or len(points) or count:
            self._pending.append(batch)
            self._pending_gens += int(count)

    def _async_sampled_loop(self, pool: StreamingPool) -> Any:
        """:meth:`_async_loop` for a noisy objective: each point from ``ask_one`` goes out
        as ``samples`` evaluations and is told its aggregate once they are all back.  A
        point that then beats the incumbent is measured up to ``incumbent_samples`` first
        (one such confirmation at a time), and told afterwards."""
        s, opt, sp = self.spec, self.opt, self.sampler
        gen_size = max(1, int(opt.generation_size))
        workers = max(1, int(pool.workers))
        live: dict[int, Any] = {}  # point number -> Point
        rows: list[tuple[np.ndarray, Outcome, int]] = []
        finished: list[Any] = []  # points told since the last generation
        out = told = ok_in_gen = next_id = 0
        confirming = False
        reasons: dict[str, Any] = {}

        def submit(pid: int, p: Any, n: int) -> None:
            nonlocal out
            for j in p.take(n):
                pool.submit((pid, j), p.x)
            out += n

        while True:
            self._drain()
            if self.stop_reason is not None:
                break
            if self.state_requested and not out:
                self._send_state_and_pause()
                continue
            reasons = reasons or opt.stop()
            if reasons and not out:
                break
            while (not reasons and not self.state_requested and out < workers
                   and self.generation + 1 <= self.until):
                item = opt.ask_one()
                if item is None:
                    break
                try:
                    x = checked_candidates(item[1], s.bounds, type(opt).__name__)[0]
                except ContractError as e:
                    self.stop_reason, self.gave_up = f"broke the optimizer contract: {e}", True
                    break
                live[next_id] = sp.point(x, item[0])
                submit(next_id, live[next_id], sp.samples)
                next_id += 1
            if self.stop_reason is not None:
                break
            if not out:
                if self.generation + 1 > self.until:
                    self._await_credit(self.generation + 1)  # nothing out: a clean point
                    continue
                self.stop_reason = (f"broke the optimizer contract: {type(opt).__name__}.ask_one() proposed "
                                    "nothing with nothing in flight")
                self.gave_up = True
                break
            for (pid, j), o in pool.collect(timeout=0.05):  # the timeout keeps Stop responsive
                out -= 1
                p = live[pid]
                rows.append((p.x, o, j))
                if o.status is not EvalStatus.OK and s.on_error == "raise":
                    self._pend_rows(pool, rows, sp.batch(finished, s.bounds.dim))
                    cause = pickle.loads(o.exc_pickle) if o.exc_pickle else None
                    raise EvaluationError(f"evaluation failed ({o.status.value}): {o.error}") from cause
                if sp.record(p, j, o, s.on_error == "resample"):
                    submit(pid, p, 1)
                if p.out:
                    continue
                if p.confirming:
                    sp.confirmed(p)
                    confirming = False
                elif not confirming and (more := sp.needs_confirmation(p)):
                    sp.confirming(p)
                    confirming = True
                    submit(pid, p, more)
                    continue
                del live[pid]
                fx = sp.value(p)[0]
                if p.values:
                    self._worst = max(self._worst, fx)
                    ok_in_gen += 1
                    self._n_ok += 1
                else:
                    fx = self._penalty()
                finished.append(p)
                try:
                    opt.tell_one(p.token, p.x, fx)
                except Exception as e:
                    self.stop_reason = f"broke the optimizer contract: tell_one() raised {type(e).__name__}: {e}"
                    self.gave_up = True
                    break
                told += 1
                if told % gen_size == 0:  # one generation's worth of points
                    self.generation += 1
                    self._pend_rows(pool, rows, sp.batch(finished, s.bounds.dim), count=True)
                    rows, finished = [], []
                    self._failed_gens = 0 if ok_in_gen else self._failed_gens + 1
                    ok_in_gen = 0
                    if self._failed_gens >= s.max_failed_generations:
                        self.stop_reason = (f"every evaluation of the last {self._failed_gens} "
                                            "generations failed")
                        self.gave_up = True
                    if (s.lockstep or self.generation >= self.until
                            or time.monotonic() - self._last_report >= s.report_interval):
                        self._report()
        pool.cancel_pending()  # not started: nothing was spent on them
        for (pid, j), o in pool.collect(timeout=0):  # finished meanwhile: keep them
            if pid in live:
                rows.append((live[pid].x, o, j))
        # points told but not yet a whole generation, and the samples of unfinished ones
        self._pend_rows(pool, rows, sp.batch(finished, s.bounds.dim))
        if self.stop_reason is not None:
            return Stopped(s.opt_id, self.stop_reason, failed=self.gave_up)
        if self.generation and not self._n_ok:
            return Stopped(s.opt_id, f"every evaluation failed (it stopped: {reasons})", failed=True)
        return Converged(s.opt_id, dict(reasons))

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
