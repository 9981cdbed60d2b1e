"""The run's ledger: counters, one record per optimizer, and the evaluation log.

The manager owns one :class:`Ledger` and tells it what happened; the ledger keeps the books
consistent: every batch it records is counted, written to the log (one transaction), and
added to its optimizer's history; every optimizer's end is decided once (the first word
wins) and counted once, under its :class:`~glompo_like.states.EndKind`.  Policies and
reporters see the ledger through :attr:`Ledger.view`, never directly.

A run without a ``working_dir`` gets a :class:`NullLog`: the same interface, writing
nothing, so nothing that records a run asks whether there is a log.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..bounds import Bounds
from ..errors import OptimizerCrashed
from ..evaluation.core import EvalBatch
from ..result import Result
from ..states import EndKind, OptState
from .history import GrowingArray, LogHistory
from .view import RunView

__all__ = ["GrowingArray", "OptimizerRecord", "RunCounters", "Ledger", "LogWriter", "NullLog",
           "MAX_BARREN_CRASHES"]

log = logging.getLogger("glompo_like.manager")

#: this many optimizers in a row crashing before a single evaluation ends the run
MAX_BARREN_CRASHES = 5
#: evaluations in the first window of the failure-rate watch (it doubles after each warning)
FAILURE_WINDOW = 100
#: a window in which at least this share of evaluations failed is reported in the log
FAILURE_SHARE = 0.5


@dataclass(eq=False)
class OptimizerRecord:
    """The ledger's own (mutable) record of one optimizer.  Policies see it through
    :class:`~glompo_like.record.view.OptimizerView`."""

    opt_id: int
    opt_type: str
    description: str
    slots: int
    t_start: float
    x0: np.ndarray
    dim: int
    # the value of each evaluation (nan: failed) and the best so far after it: the last ones
    # (see record/history.py); ``dropped`` evaluations before them are in the log only
    fx: GrowingArray = field(default_factory=GrowingArray)
    best_trace: GrowingArray = field(default_factory=GrowingArray)
    n_failed: int = 0
    best_fx: float = float("inf")
    best_x: np.ndarray | None = None
    last_x: np.ndarray | None = None
    state: OptState = OptState.RUNNING
    end_kind: EndKind | None = None  # decided once: the first word wins
    end_reason: str | None = None
    t_end: float | None = None  # when its end was decided (the manager's clock)
    generations: int = 0
    granted_until: int = 1  # flow control: last generation it may start (see control/flow.py)
    # flow control: when its first evaluation started (manager's clock); the speed since
    # then leaves out the optimizer's start-up
    t_first_eval: float | None = None
    # evaluations it made (rows of the log); with samples > 1 more than its history's points
    n_rows: int = 0
    best_std: float | None = None  # spread of the best point's samples (samples > 1)
    best_n: int = 1  # samples the best value aggregates
    # the points of the same evaluations, shape (len(fx), dim): what the log stores too
    xs: GrowingArray = field(init=False, repr=False)
    dropped: int = 0  # evaluations no longer in memory (they come before fx's first)
    best_before: float = float("inf")  # the best value among them (inf: none succeeded)
    best_x_before: np.ndarray | None = None  # and its point (the first that reached it)
    first_eval_id: int | None = None  # its first evaluation's eval_id (where the log is read from)

    def __post_init__(self) -> None:
        self.xs = GrowingArray(width=self.dim)

    def __setstate__(self, state: dict[str, Any]) -> None:  # records of older checkpoints
        self.__dict__.update({"dropped": 0, "best_before": float("inf"), "best_x_before": None,
                              "first_eval_id": None, **state})
        if "n_rows" not in state:
            self.n_rows = len(state["fx"])

    @property
    def n_points(self) -> int:
        """Points in its history (its evaluations, or with ``samples > 1`` its points), in
        memory or not."""
        return self.dropped + len(self.fx)

    def trim(self, keep: int) -> None:
        """Keep only the last ``keep`` evaluations in memory (see record/history.py)."""
        k = len(self.fx) - keep
        if k <= 0:
            return
        best = float(self.best_trace.view()[k - 1])
        if best < self.best_before:  # reached in the part dropped now: its first evaluation
            i = int(np.argmax(self.fx.view()[:k] == best))
            x = self.xs.view()[i]
            same = best == self.best_fx and self.best_x is not None and np.array_equal(x, self.best_x)
            self.best_before, self.best_x_before = best, self.best_x if same else x.copy()
        for a in (self.fx, self.best_trace, self.xs):
            a.keep_last(keep)
        self.dropped += k

    @property
    def alive(self) -> bool:
        """Whether it is running and its end has not been decided."""
        return self.state is OptState.RUNNING

    @property
    def holds_credit(self) -> bool:
        """Whether it may still evaluate: running, or told to stop but not yet ended."""
        return self.state is not OptState.FINISHED

    def decide_end(self, kind: EndKind, reason: str, now: float, *, finished: bool) -> bool:
        """Record how it ends (only if nothing was decided yet: the first word wins) and
        move it to ``STOPPING`` (``finished=False``: the manager stops it, its runner has
        not heard yet) or ``FINISHED``.  Returns whether this call decided the end."""
        new = OptState.FINISHED if finished else OptState.STOPPING
        if self.state is OptState.FINISHED or (self.state is new):
            return False
        decided = self.end_kind is None
        if decided:
            self.end_kind, self.end_reason, self.t_end = kind, reason, now
        self.state = self.state.check(new, f"optimizer {self.opt_id}")
        return decided

    def for_checkpoint(self) -> OptimizerRecord:
        """A shallow copy without :attr:`xs`, the point of every evaluation: by far the
        largest part of a record, and in the evaluation log anyway (see
        :meth:`restore_points`)."""
        c = copy.copy(self)
        c.xs = None  # type: ignore[assignment]
        return c

    def restore_points(self, points: np.ndarray | None) -> bool:
        """After a checkpoint: put back the evaluated points (read from the log).  When they
        are not available (another ``working_dir``, no log) the history is filled with NaN
        rows, so it stays aligned with :attr:`fx`; returns whether the points were found."""
        if self.xs is not None:
            return True
        self.xs = GrowingArray(width=self.dim, capacity=len(self.fx))
        n = len(self.fx)
        if n == 0:
            return True
        found = points is not None and points.shape == (n, self.dim)
        self.xs.extend(points if found else np.full((n, self.dim), np.nan))
        return found

    def add_batch(self, x: np.ndarray, fx: np.ndarray, ok: np.ndarray, generations: int = 1) -> None:
        fx_ok = np.where(ok, fx, np.nan)
        self.fx.extend(fx_ok)
        self.xs.extend(np.asarray(x, dtype=float).reshape(-1, self.dim))
        finite = np.where(ok, fx, np.inf)
        best = np.minimum.accumulate(np.concatenate(([self.best_fx], finite)))[1:]
        self.best_trace.extend(best)
        if len(x):
            i = int(np.argmin(finite))
            if finite[i] < self.best_fx:
                self.best_fx = float(finite[i])
                self.best_x = x[i].copy()
            self.last_x = x[-1].copy()
        self.n_failed += int(np.count_nonzero(~ok))
        self.generations += generations

    def add_points(self, points: Any, generations: int = 1) -> None:
        """A noisy objective's points (a :class:`~glompo_like.evaluation.core.PointBatch`):
        the history gets each point's aggregate; only *confirmed* points (measured
        ``incumbent_samples`` times) may become its best, so a lucky draw never does."""
        ok = points.ok
        self.fx.extend(np.where(ok, points.fx, np.nan))
        self.xs.extend(np.asarray(points.x, dtype=float).reshape(-1, self.dim))
        finite = np.where(ok & points.confirmed, points.fx, np.inf)
        best = np.minimum.accumulate(np.concatenate(([self.best_fx], finite)))[1:]
        self.best_trace.extend(best)
        if len(points):
            i = int(np.argmin(finite))
            if finite[i] < self.best_fx:
                self.best_fx = float(finite[i])
                self.best_x = points.x[i].copy()
                std = float(points.std[i])
                self.best_std = std if math.isfinite(std) else None
                self.best_n = int(points.n[i])
            self.last_x = points.x[-1].copy()
        self.n_failed += int(np.count_nonzero(~ok))
        self.generations += generations


@dataclass
class RunCounters:
    """The run's counters (mutable; owned by the ledger)."""

    f_evals: int = 0
    evals_failed: int = 0
    opts_started: int = 0
    opts_killed: int = 0
    opts_converged: int = 0
    opts_crashed: int = 0
    opts_stopped: int = 0
    opts_failed: int = 0
    t_used_before: float = 0.0  # seconds used by earlier sessions of a resumed run
    best_fx: float = float("inf")
    best_x: np.ndarray | None = None
    best_opt_id: int | None = None
    best_fx_std: float | None = None  # spread of the best point's samples (samples > 1)
    best_n_samples: int = 1
    converged_at_kill_count: dict[int, int] = field(default_factory=dict)

    def count_end(self, kind: EndKind) -> None:
        """Count an optimizer's end under its kind (``converged_at_kill_count`` notes how
        many had been killed when each one converged)."""
        if kind is EndKind.CONVERGED:
            self.opts_converged += 1
            self.converged_at_kill_count[self.opts_converged] = self.opts_killed
        elif kind is EndKind.KILLED:
            self.opts_killed += 1
        elif kind is EndKind.CRASHED:
            self.opts_crashed += 1
        elif kind is EndKind.FAILED:
            self.opts_failed += 1
        elif kind in (EndKind.STOPPED, EndKind.LOST):
            self.opts_stopped += 1

    def __setstate__(self, state: dict[str, Any]) -> None:  # checkpoints of older versions
        self.__dict__.update({"opts_failed": 0, "best_fx_std": None, "best_n_samples": 1, **state})


class LogWriter(Protocol):
    """What the ledger writes to: :class:`~glompo_like.record.log.EvaluationLog` or
    :class:`NullLog`."""

    def add_batch(self, first_eval_id: int, opt_id: int, batch: EvalBatch) -> None: ...
    def group(self) -> contextlib.AbstractContextManager[None]: ...
    def describe_run(self, description: dict[str, Any]) -> None: ...
    def start_optimizer(self, opt_id: int, opt_type: str, settings: str, slots: int,
                        x0: np.ndarray, t_start: float) -> None: ...
    def end_optimizer(self, opt_id: int, t_end: float, n_evals: int, best_fx: float,
                      end_kind: str, end_reason: str, exitcode: int | None) -> None: ...
    def rollback(self, last_eval_id: int, next_opt_id: int, alive: list[int]) -> int: ...
    def close(self) -> None: ...


class NullLog:
    """The log of a run without a ``working_dir``: takes everything, writes nothing."""

    def add_batch(self, first_eval_id: int, opt_id: int, batch: EvalBatch) -> None:
        return None

    def group(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def describe_run(self, description: dict[str, Any]) -> None:
        return None

    def start_optimizer(self, *args: Any) -> None:
        return None

    def end_optimizer(self, *args: Any) -> None:
        return None

    def rollback(self, last_eval_id: int, next_opt_id: int, alive: list[int]) -> int:
        return 0

    def close(self) -> None:
        return None


class _FailureWatch:
    """Says in the log when a large share of recent evaluations failed: windows of
    :data:`FAILURE_WINDOW` evaluations, doubling after each warning so a run that keeps
    failing does not flood its log."""

    def __init__(self) -> None:
        self.window = FAILURE_WINDOW
        self.n = self.n_failed = 0

    def failed(self, n: int, first_error: str) -> None:
        self.n_failed += n
        self._first = first_error

    def evaluated(self, n: int) -> None:
        self.n += n
        if self.n < self.window:
            return
        if self.n_failed >= FAILURE_SHARE * self.n:
            log.warning("%d of the last %d evaluations failed (on_error decides what the optimizers are "
                        "told); the run's first failure was:\n%s", self.n_failed, self.n, self._first)
            self.window *= 2
        self.n = self.n_failed = 0


class Ledger:
    """The run's books (see the module docstring).

    Parameters
    ----------
    bounds:
        The problem's bounds (policies see them through the view).
    clock:
        The manager's clock (monotonic seconds); records' times are on it.
    """

    def __init__(self, bounds: Bounds, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.bounds = bounds
        self.log: LogWriter = NullLog()
        self.counters = RunCounters()
        self.records: dict[int, OptimizerRecord] = {}
        #: what the run knows of its study (None: a run of its own); the view reads it
        self.share: Any = None
        self.view = RunView(self.counters, self.records, clock(), clock, bounds)
        self.view.history_reader = LogHistory(None, bounds.dim)
        #: one OptimizerCrashed per optimizer that crashed (remote exception as __cause__)
        self.crashes: list[OptimizerCrashed] = []
        self._barren_crashes = 0
        #: the first failed evaluation's message and traceback (None while none failed)
        self.first_error: str | None = None
        #: evaluations and seconds spent measuring the task (a probe: optimizer 0)
        self.probe_evals, self.t_probe = 0, 0.0
        self._watch = _FailureWatch()
        #: evaluations each running optimizer keeps in memory (None: all; see record/history.py)
        self.keep: int | None = None
        self._points_run = False  # samples > 1: histories of points' aggregates, all kept
        self.history = LogHistory(None, bounds.dim)  # what the view reads dropped evaluations with

    def keep_recent(self, keep: int) -> None:
        """From now on each running optimizer keeps only its last ``keep`` evaluations in
        memory, and an ended one none: the view reads older ones back from the log.  Only
        when the run's log can do that (a run without ``working_dir`` keeps everything)."""
        read = getattr(getattr(self.log, "inner", self.log), "read_history", None)
        if read is None:
            return
        self.keep = keep
        self.history = LogHistory(read, self.bounds.dim)
        self.view.history_reader = self.history

    def restore(self, counters: RunCounters, records: dict[int, OptimizerRecord]) -> None:
        """Take over the books of a checkpoint."""
        self.counters = counters
        self.records = records
        self.view = RunView(counters, records, self.clock(), self.clock, self.bounds, self.share, self.history)

    def start_clock(self) -> float:
        """The run starts now: the view's elapsed time counts from here."""
        self.view = RunView(self.counters, self.records, self.clock(), self.clock, self.bounds, self.share,
                            self.history)
        return self.view.t_start

    # ------------------------------------------------------------------ optimizers
    def open(self, opt_id: int, opt_type: str, description: str, slots: int, x0: np.ndarray,
             *, counted: bool = True) -> OptimizerRecord:
        """A new optimizer (``counted=False``: not one the selector started, e.g. a probe)."""
        rec = OptimizerRecord(opt_id=opt_id, opt_type=opt_type, description=description, slots=slots,
                              t_start=self.clock(), x0=x0, dim=self.bounds.dim)
        self.records[opt_id] = rec
        if counted:
            self.counters.opts_started += 1
        self.log.start_optimizer(opt_id, opt_type, description, slots, x0, time.time())
        return rec

    def record(self, rec: OptimizerRecord, batch: EvalBatch, n_generations: int = 1) -> bool:
        """Book one report of ``rec``: log it (one transaction), count it, add it to its
        history.  Returns whether it improved the run's best."""
        c = self.counters
        first = c.f_evals + 1
        self.log.add_batch(first, rec.opt_id, batch)  # first: what is counted and kept is logged
        ok = batch.ok
        if rec.first_eval_id is None and len(batch):
            rec.first_eval_id = first
        if batch.points is None:  # every evaluation is a point of its own
            rec.add_batch(batch.x, batch.fx, ok, n_generations)
            if self.keep is not None and not self._points_run and len(rec.fx) >= 2 * self.keep:
                rec.trim(self.keep)
        else:  # samples > 1: the history is made of the points' aggregates
            self._points_run = True
            rec.add_points(batch.points, n_generations)
        rec.n_rows += len(batch)
        if rec.t_first_eval is None and len(batch):  # its t_start is wall-clock time
            rec.t_first_eval = self.clock() - max(0.0, time.time() - float(batch.t_start[0]))
        n_failed = len(batch) - int(ok.sum())
        c.f_evals += len(batch)
        c.evals_failed += n_failed
        if n_failed:
            if self.first_error is None:
                self.first_error = next(e or s.value for e, s, good in zip(batch.error, batch.status, ok,
                                                                           strict=True) if not good)
            self._watch.failed(n_failed, self.first_error)
        self._watch.evaluated(len(batch))
        if rec.best_fx < c.best_fx:
            c.best_fx, c.best_x, c.best_opt_id = rec.best_fx, rec.best_x, rec.opt_id
            c.best_fx_std, c.best_n_samples = rec.best_std, rec.best_n
            return True
        return False

    def all_failed(self, at_least: int | None) -> bool:
        """Whether the run's first ``at_least`` (or more) evaluations have all failed."""
        c = self.counters
        return at_least is not None and c.f_evals >= at_least and c.evals_failed == c.f_evals

    def record_probe(self, probes: list[tuple[np.ndarray, Any]], description: str) -> None:
        """A task probe's evaluations (``(x, Outcome)`` pairs) are real: they are logged and
        counted as optimizer 0, which is not counted as started."""
        xs = np.array([x for x, _ in probes])
        starts = [o.t_start for _, o in probes]
        self.probe_evals += len(probes)
        self.t_probe += max(o.t_start + o.duration for _, o in probes) - min(starts)
        rec = self.open(0, "probe", description, 0, xs[0], counted=False)
        self.record(rec, EvalBatch.from_outcomes(xs, [o for _, o in probes]))
        self.finish(rec, EndKind.STOPPED, f"{description} finished")
        self.closed(rec, None)

    def stop(self, rec: OptimizerRecord, kind: EndKind, reason: str) -> bool:
        """The manager ends ``rec`` (its runner hears of it later and may still report).
        Returns whether this decided its end."""
        decided = rec.decide_end(kind, reason, self.clock(), finished=False)
        if decided and rec.opt_id:  # (not a probe)
            self.counters.count_end(kind)
        return decided

    def finish(self, rec: OptimizerRecord, kind: EndKind, reason: str) -> bool:
        """``rec`` evaluates no more (its last word, or its runner has ended).  ``kind`` and
        ``reason`` count only if its end was not decided before.  Returns whether this
        decided it."""
        decided = rec.decide_end(kind, reason, self.clock(), finished=True)
        if decided and rec.opt_id:  # (not a probe)
            self.counters.count_end(kind)
        return decided

    def closed(self, rec: OptimizerRecord, exitcode: int | None) -> None:
        """Its runner (thread or process) has ended: the log gets its final line."""
        self.finish(rec, EndKind.STOPPED, "ended")  # (its end is decided by now, normally)
        if self.keep is not None and not self._points_run:
            rec.trim(0)  # (its history is in the log)
        self.log.end_optimizer(rec.opt_id, time.time(), rec.n_rows, rec.best_fx,
                               str(rec.end_kind or EndKind.STOPPED), rec.end_reason or "", exitcode)

    def crashed(self, rec: OptimizerRecord, reason: str, exitcode: int | None = None,
                cause: BaseException | None = None) -> OptimizerCrashed | None:
        """``rec`` crashed.  Returns a fatal error when too many optimizers in a row have
        crashed before completing a single evaluation (the task or the settings are
        broken), else ``None``."""
        if not self.finish(rec, EndKind.CRASHED, reason):
            return None  # it had already ended (e.g. killed, then its process died)
        err = OptimizerCrashed(f"optimizer {rec.opt_id}: {reason}", opt_id=rec.opt_id, exitcode=exitcode)
        err.__cause__ = cause
        self.crashes.append(err)
        if rec.n_rows:
            self._barren_crashes = 0
            return None
        self._barren_crashes += 1
        if self._barren_crashes < MAX_BARREN_CRASHES:
            return None
        fatal = OptimizerCrashed(
            f"{self._barren_crashes} optimizers in a row crashed before completing a single "
            f"evaluation (the last: optimizer {rec.opt_id}: {reason}); the task or the optimizer "
            "settings are broken", opt_id=rec.opt_id, exitcode=exitcode,
        )
        fatal.__cause__ = err
        return fatal

    # ------------------------------------------------------------------ the end
    def result(self, end_reason: str | None, entropy: int) -> Result:
        c = self.counters
        origin: dict[str, Any] = {}
        if c.best_opt_id is not None:
            rec = self.records[c.best_opt_id]
            origin = {"opt_id": rec.opt_id, "type": rec.opt_type, "description": rec.description}
        stats = {
            "f_evals": c.f_evals,
            "evals_failed": c.evals_failed,
            "opts_started": c.opts_started,
            "opts_killed": c.opts_killed,
            "opts_converged": c.opts_converged,
            "opts_crashed": c.opts_crashed,
            "opts_stopped": c.opts_stopped,
            "opts_failed": c.opts_failed,
            "end_cond": end_reason,
            "t_used": self.view.t_total,
            "probe_evals": self.probe_evals,
            "t_probe": self.t_probe,
            "seed_entropy": entropy,
        }
        x = None if c.best_x is None else np.array(c.best_x)
        return Result(x=x, fx=c.best_fx, origin=origin, stats=stats, fx_std=c.best_fx_std,
                      n_samples=c.best_n_samples)

    def optimizers_table(self) -> list[dict[str, Any]]:
        """One row per optimizer, for the summary."""
        return [
            {
                "opt_id": rec.opt_id,
                "type": rec.opt_type,
                "n_evals": rec.n_rows,
                "best_fx": None if not math.isfinite(rec.best_fx) else rec.best_fx,
                "end": None if rec.end_kind is None else str(rec.end_kind),
                "reason": rec.end_reason,
            }
            for rec in self.records.values()
        ]
