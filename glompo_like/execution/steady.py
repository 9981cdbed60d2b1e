"""Asynchronous (steady-state) evaluation: the runner's loops for ``async_eval=True``.

A candidate goes to a worker as soon as one is free (``ask_one``) and each value is told as
it arrives (``tell_one``); ``generation_size`` told values count as one generation for
credits and reports, and a checkpoint waits until nothing is in flight.  The streaming
pool protocol (:class:`~glompo_like.evaluation.StreamingPool`) is what makes it possible.
These are methods of :class:`~glompo_like.execution.runner.Runner` (a mixin), kept here so
the runner's own module reads as its generational loop.
"""

from __future__ import annotations

import pickle
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ContractError, EvaluationError
from ..evaluation import EvalBatch, EvalStatus, Outcome, StreamingPool
from ..optimizers.base import checked_candidates
from .messages import Converged, Stopped

if TYPE_CHECKING:
    from .runner import RunnerSpec

__all__ = ["SteadyStateLoops"]


class SteadyStateLoops:
    """The asynchronous loops of the runner (see the module docstring)."""

    spec: RunnerSpec
    opt: Any
    sampler: Any
    stop_reason: str | None
    gave_up: bool
    state_requested: bool
    generation: int
    until: int
    _pending: list[EvalBatch]
    _pending_gens: int
    _last_report: float
    _worst: float
    _n_ok: int
    _failed_gens: int

    if TYPE_CHECKING:  # the runner's own methods these loops use
        def _drain(self) -> None: ...
        def _report(self) -> None: ...
        def _await_credit(self, generation: int) -> None: ...
        def _send_state_and_pause(self) -> None: ...
        def _penalty(self) -> float: ...
        def _pend_rows(self, pool: Any, rows: list[tuple[np.ndarray, Outcome, int]], points: Any,
                       count: bool = False) -> None: ...

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

