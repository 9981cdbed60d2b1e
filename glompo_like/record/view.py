"""Read-only views of a run, handed to hunters, checkers, generators and selectors.

Policies never see the manager.  They receive a :class:`RunView` (counters and the
per-optimizer :class:`OptimizerView` histories) whose arrays are read-only views of the
manager's own buffers: cheap to hand out, impossible to modify by accident.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["GrowingArray", "OptimizerRecord", "OptimizerView", "RunView", "RunCounters"]


class GrowingArray:
    """An append-only float buffer with amortised O(1) appends and read-only views."""

    __slots__ = ("_data", "_n")

    def __init__(self, width: int | None = None, capacity: int = 256) -> None:
        shape = (capacity,) if width is None else (capacity, width)
        self._data = np.empty(shape, dtype=float)
        self._n = 0

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        k = len(values)
        if self._n + k > len(self._data):
            new = np.empty((max(2 * len(self._data), self._n + k),) + self._data.shape[1:])
            new[: self._n] = self._data[: self._n]
            self._data = new
        self._data[self._n : self._n + k] = values
        self._n += k

    def view(self) -> np.ndarray:
        v = self._data[: self._n]
        v = v.view()
        v.flags.writeable = False
        return v

    def __len__(self) -> int:
        return self._n


@dataclass(eq=False)
class OptimizerRecord:
    """The manager's own (mutable) record of one optimizer.  Policies see it through
    :class:`OptimizerView`."""

    opt_id: int
    opt_type: str
    description: str
    slots: int
    t_start: float
    x0: np.ndarray
    dim: int
    fx: GrowingArray = field(default_factory=GrowingArray)  # value of every evaluation (nan: failed)
    best_trace: GrowingArray = field(default_factory=GrowingArray)  # best-so-far after each evaluation
    n_failed: int = 0
    best_fx: float = float("inf")
    best_x: np.ndarray | None = None
    last_x: np.ndarray | None = None
    alive: bool = True
    end_reason: str | None = None
    end_kind: str | None = None  # "converged" | "killed" | "crashed" | "stopped"
    t_end: float | None = None
    generations: int = 0
    granted_until: int = 1  # flow control: last generation it may start (see runner.py)
    # flow control: when its first evaluation started (manager's clock); the speed since
    # then leaves out the optimizer's start-up
    t_first_eval: float | None = None
    # told to stop (killed, a STOP file) but not ended yet: it may still use its credit
    stopping: bool = False
    # the point of every evaluation, shape (n, dim): what the log stores too
    xs: GrowingArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.xs = GrowingArray(width=self.dim)

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
        self.xs = GrowingArray(width=self.dim)
        n = len(self.fx)
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


class OptimizerView:
    """Read-only view of one optimizer's history."""

    __slots__ = ("_r",)

    def __init__(self, record: OptimizerRecord) -> None:
        self._r = record

    opt_id = property(lambda self: self._r.opt_id)
    opt_type = property(lambda self: self._r.opt_type, doc="class name of the optimizer")
    description = property(lambda self: self._r.description, doc="its str(), with settings")
    slots = property(lambda self: self._r.slots)
    alive = property(lambda self: self._r.alive)
    end_kind = property(lambda self: self._r.end_kind)
    end_reason = property(lambda self: self._r.end_reason)
    t_start = property(lambda self: self._r.t_start)
    t_end = property(lambda self: self._r.t_end)
    best_fx = property(lambda self: self._r.best_fx)
    n_failed = property(lambda self: self._r.n_failed)
    generations = property(lambda self: self._r.generations)
    x0 = property(lambda self: self._r.x0)

    @property
    def n_evals(self) -> int:
        return len(self._r.fx)

    @property
    def best_x(self) -> np.ndarray | None:
        x = self._r.best_x
        if x is None:
            return None
        v = x.view()
        v.flags.writeable = False
        return v

    @property
    def last_x(self) -> np.ndarray | None:
        return None if self._r.last_x is None else self._r.last_x.copy()

    @property
    def f_history(self) -> np.ndarray:
        """Value of every evaluation in order (``nan`` for failed ones), read-only."""
        return self._r.fx.view()

    @property
    def best_history(self) -> np.ndarray:
        """Best value so far after each evaluation (``inf`` before the first success)."""
        return self._r.best_trace.view()

    @property
    def x_history(self) -> np.ndarray:
        """The point of every evaluation in order, shape ``(n_evals, dim)``, read-only."""
        return self._r.xs.view()

    def best_x_at(self, n_evals: int) -> np.ndarray | None:
        """Best point after its first ``n_evals`` evaluations (``None`` if none succeeded):
        the first evaluation reaching :meth:`best_at` ``(n_evals)``, as :attr:`best_x` is."""
        n = min(n_evals, self.n_evals)
        if n <= 0:
            return None
        fx = self._r.fx.view()[:n]
        finite = np.where(np.isnan(fx), np.inf, fx)
        i = int(np.argmin(finite))
        if finite[i] == np.inf:
            return None
        return self._r.xs.view()[i].copy()

    def best_at(self, n_evals: int) -> float:
        """Best value after its first ``n_evals`` evaluations (``inf`` if none)."""
        if n_evals <= 0:
            return float("inf")
        trace = self._r.best_trace.view()
        return float(trace[min(n_evals, len(trace)) - 1])

    def __repr__(self) -> str:
        state = "alive" if self.alive else self.end_kind
        return f"<OptimizerView {self.opt_id} {self.opt_type} {state} n_evals={self.n_evals} best={self.best_fx:.6g}>"


@dataclass
class RunCounters:
    """The run's counters (mutable; owned by the manager)."""

    f_evals: int = 0
    evals_failed: int = 0
    opts_started: int = 0
    opts_killed: int = 0
    opts_converged: int = 0
    opts_crashed: int = 0
    opts_stopped: int = 0
    t_used_before: float = 0.0  # seconds used by earlier sessions of a resumed run
    best_fx: float = float("inf")
    best_x: np.ndarray | None = None
    best_opt_id: int | None = None
    converged_at_kill_count: dict[int, int] = field(default_factory=dict)


class RunView:
    """A read-only snapshot of the run handed to every policy."""

    __slots__ = ("_c", "_records", "_views", "_t0", "_clock", "dim", "bounds")

    def __init__(
        self,
        counters: RunCounters,
        records: Mapping[int, OptimizerRecord],
        t0: float,
        clock: Callable[[], float] = time.monotonic,
        bounds: Any = None,
    ) -> None:
        self._c = counters
        self._records = records
        self._views: dict[int, OptimizerView] = {}
        self._t0 = t0
        self._clock = clock
        self.bounds = bounds
        self.dim = None if bounds is None else bounds.dim

    f_evals = property(lambda self: self._c.f_evals, doc="evaluations so far (all optimizers)")
    evals_failed = property(lambda self: self._c.evals_failed)
    opts_started = property(lambda self: self._c.opts_started)
    opts_killed = property(lambda self: self._c.opts_killed)
    opts_converged = property(lambda self: self._c.opts_converged)
    opts_crashed = property(lambda self: self._c.opts_crashed)
    best_fx = property(lambda self: self._c.best_fx, doc="best value found in the run")
    best_opt_id = property(lambda self: self._c.best_opt_id)

    @property
    def best_x(self) -> np.ndarray | None:
        return None if self._c.best_x is None else self._c.best_x.copy()

    def kills_when_converged(self, n_converged: int) -> int | None:
        """How many optimizers had been killed when the ``n_converged``-th one converged
        (``None`` if fewer have converged)."""
        return self._c.converged_at_kill_count.get(n_converged)

    def now(self) -> float:
        return self._clock()

    @property
    def t_elapsed(self) -> float:
        """Seconds since this session of the run started."""
        return self._clock() - self._t0

    @property
    def t_total(self) -> float:
        """Seconds used by the run overall, across checkpoints."""
        return self._c.t_used_before + self.t_elapsed

    def optimizer(self, opt_id: int) -> OptimizerView:
        v = self._views.get(opt_id)
        if v is None:
            v = self._views[opt_id] = OptimizerView(self._records[opt_id])
        return v

    @property
    def optimizers(self) -> Mapping[int, OptimizerView]:
        return MappingProxyType({i: self.optimizer(i) for i in self._records})

    @property
    def alive_ids(self) -> tuple[int, ...]:
        return tuple(i for i, r in self._records.items() if r.alive)

    def __repr__(self) -> str:
        return (
            f"<RunView f_evals={self.f_evals} best={self.best_fx:.6g} alive={len(self.alive_ids)}"
            f" started={self.opts_started}>"
        )
