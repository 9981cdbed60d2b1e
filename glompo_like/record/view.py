"""Read-only views of a run, handed to hunters, checkers, generators and selectors.

Policies never see the manager.  They receive a :class:`RunView` (counters and the
per-optimizer :class:`OptimizerView` histories) whose arrays are read-only views of the
manager's own buffers: cheap to hand out, impossible to modify by accident.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .history import HistoryReader
    from .ledger import OptimizerRecord, RunCounters

__all__ = ["OptimizerView", "RunView"]


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class OptimizerView:
    """Read-only view of one optimizer's history.

    The manager keeps only an optimizer's recent evaluations in memory when the run has a
    log (see :mod:`glompo_like.record.history`): what reads the recent past
    (:meth:`f_last`, :meth:`best_at` and :meth:`best_x_at` of the last ``keep`` evaluations,
    the best and last points) costs no more than before; the whole histories
    (:attr:`f_history`, :attr:`best_history`, :attr:`x_history`) and older points are read
    back from the log, which takes time in proportion to the run's length.
    """

    __slots__ = ("_r", "_history")

    def __init__(self, record: OptimizerRecord, history: HistoryReader | None = None) -> None:
        self._r = record
        self._history = history

    opt_id = property(lambda self: self._r.opt_id)
    opt_type = property(lambda self: self._r.opt_type, doc="class name of the optimizer")
    description = property(lambda self: self._r.description, doc="its str(), with settings")
    slots = property(lambda self: self._r.slots)
    alive = property(lambda self: self._r.alive, doc="running, and its end not decided")
    state = property(lambda self: self._r.state, doc="its :class:`~glompo_like.states.OptState`")
    end_kind = property(lambda self: self._r.end_kind, doc="how it ended (an :class:`~glompo_like.states.EndKind`)")
    end_reason = property(lambda self: self._r.end_reason)
    t_start = property(lambda self: self._r.t_start)
    t_end = property(lambda self: self._r.t_end)
    best_fx = property(lambda self: self._r.best_fx)
    n_failed = property(lambda self: self._r.n_failed)
    generations = property(lambda self: self._r.generations)
    x0 = property(lambda self: self._r.x0)

    @property
    def n_evals(self) -> int:
        return self._r.n_points

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

    def _older(self, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Values and points of its evaluations ``0 .. stop - 1`` that are no longer in
        memory, from the log (``nan`` where the log does not have them)."""
        r = self._r
        if self._history is None:
            return np.full(stop, np.nan), np.full((stop, r.dim), np.nan)
        return self._history(r.opt_id, r.first_eval_id or 0, stop)

    @property
    def f_history(self) -> np.ndarray:
        """Value of every evaluation in order (``nan`` for failed ones), read-only."""
        r = self._r
        if not r.dropped:
            return r.fx.view()
        return _read_only(np.concatenate([self._older(r.dropped)[0], r.fx.view()]))

    def f_last(self, k: int) -> np.ndarray:
        """Values of its last ``k`` evaluations (fewer if it has done fewer), read-only:
        what a hunter looking at a window reads, without the whole history."""
        if k <= 0:
            return self._r.fx.view()[:0]
        fx = self._r.fx.view()
        return fx[-k:] if k <= len(fx) else self.f_history[-k:]

    @property
    def best_history(self) -> np.ndarray:
        """Best value so far after each evaluation (``inf`` before the first success)."""
        r = self._r
        if not r.dropped:
            return r.best_trace.view()
        old = self._older(r.dropped)[0]
        old = np.minimum.accumulate(np.where(np.isnan(old), np.inf, old))
        return _read_only(np.concatenate([old, r.best_trace.view()]))

    @property
    def x_history(self) -> np.ndarray:
        """The point of every evaluation in order, shape ``(n_evals, dim)``, read-only."""
        r = self._r
        if not r.dropped:
            return r.xs.view()
        return _read_only(np.concatenate([self._older(r.dropped)[1], r.xs.view()]))

    def best_x_at(self, n_evals: int) -> np.ndarray | None:
        """Best point after its first ``n_evals`` evaluations (``None`` if none succeeded):
        the first evaluation reaching :meth:`best_at` ``(n_evals)``, as :attr:`best_x` is."""
        r = self._r
        n = min(n_evals, self.n_evals)
        if n <= 0:
            return None
        if n < r.dropped:  # before the window: from the log
            fx, xs = self._older(n)
            before, x_before = np.inf, None
        else:
            fx, xs = r.fx.view()[: n - r.dropped], r.xs.view()
            before, x_before = r.best_before, r.best_x_before
        finite = np.where(np.isnan(fx), np.inf, fx)
        i = int(np.argmin(finite)) if len(finite) else 0
        if len(finite) and finite[i] < before:
            return np.array(xs[i], dtype=float)
        return None if x_before is None else x_before.copy()

    def best_at(self, n_evals: int) -> float:
        """Best value after its first ``n_evals`` evaluations (``inf`` if none)."""
        r = self._r
        if n_evals <= 0:
            return float("inf")
        n = min(n_evals, self.n_evals)
        if n > r.dropped:
            return float(r.best_trace.view()[n - r.dropped - 1])
        if n == r.dropped:
            return float(r.best_before)
        fx = self._older(n)[0]
        ok = fx[~np.isnan(fx)]
        return float(ok.min()) if len(ok) else float("inf")

    def __repr__(self) -> str:
        state = "alive" if self.alive else self.end_kind
        return f"<OptimizerView {self.opt_id} {self.opt_type} {state} n_evals={self.n_evals} best={self.best_fx:.6g}>"


class RunView:
    """A read-only snapshot of the run handed to every policy."""

    __slots__ = ("_c", "_records", "_views", "_t0", "_evals0", "_clock", "dim", "bounds", "_share", "_history")

    def __init__(
        self,
        counters: RunCounters,
        records: Mapping[int, OptimizerRecord],
        t0: float,
        clock: Callable[[], float] = time.monotonic,
        bounds: Any = None,
        share: Any = None,
        history: HistoryReader | None = None,
    ) -> None:
        self._c = counters
        self._history = history
        self._share = share
        self._records = records
        self._views: dict[int, OptimizerView] = {}
        self._t0 = t0
        self._evals0 = counters.f_evals  # evaluations before this session (a resumed run)
        self._clock = clock
        self.bounds = bounds
        self.dim = None if bounds is None else bounds.dim

    @property
    def history_reader(self) -> HistoryReader | None:
        """Reads what optimizers no longer keep in memory back from the log."""
        return self._history

    @history_reader.setter
    def history_reader(self, reader: HistoryReader | None) -> None:
        self._history = reader
        self._views.clear()

    @property
    def f_evals(self) -> int:
        """Evaluations so far (all optimizers); in a study, those of the whole study (this
        manager's, and the other managers' as of the last sync)."""
        share = self._share
        return self._c.f_evals + (0 if share is None else share.others_evals)

    local_f_evals = property(lambda self: self._c.f_evals, doc="evaluations of this manager's run")
    evals_failed = property(lambda self: self._c.evals_failed)

    @property
    def study(self) -> Any:
        """The study this manager works on (a :class:`~glompo_like.record.study.link.StudyShare`:
        ``url``, ``manager_id``, ``n_evals``, ``best_fx``, ``best_x``, ``best_manager``,
        ``managers_running``, and ``history``, the other managers' evaluations: a
        :class:`~glompo_like.record.study.link.StudyHistory`), or ``None`` for a run of its
        own.  Updated at each sync (every quarter of a second)."""
        return self._share

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, fx)``: the point (shape ``(n, dim)``) and value (``nan``: failed) of every
        evaluation of this run, optimizer by optimizer, and in a study then those of the
        other managers as of the last sync (the newest
        :data:`~glompo_like.record.study.storage.HISTORY_ROWS`; ``run.study.history``).
        New arrays: for generators that place start points by where the search has been
        (evaluations an optimizer no longer keeps in memory are read back from the log)."""
        xs, fs = [], []
        for opt_id in self._records:
            v = self.optimizer(opt_id)
            x, f = v.x_history, v.f_history
            n = min(len(x), len(f))
            if n:
                xs.append(x[:n])
                fs.append(f[:n])
        share = self._share
        if share is not None and len(share.history):
            xs.append(share.history.x)
            fs.append(share.history.fx)
        if not xs:
            return np.empty((0, 0 if self.dim is None else self.dim)), np.empty(0)
        return np.concatenate(xs), np.concatenate(fs)

    @property
    def session_evals(self) -> int:
        """Evaluations in this session of the run (all of them unless it was resumed): with
        :attr:`t_elapsed`, the evaluation rate."""
        return self._c.f_evals - self._evals0
    opts_started = property(lambda self: self._c.opts_started)
    opts_killed = property(lambda self: self._c.opts_killed)
    opts_converged = property(lambda self: self._c.opts_converged)
    opts_crashed = property(lambda self: self._c.opts_crashed)
    opts_stopped = property(lambda self: self._c.opts_stopped)
    opts_failed = property(lambda self: self._c.opts_failed)
    best_opt_id = property(lambda self: self._c.best_opt_id, doc="this run's best optimizer")
    local_best_fx = property(lambda self: self._c.best_fx, doc="best value found by this manager's run")

    def _study_best(self) -> bool:
        share = self._share
        return share is not None and share.best_x is not None and share.best_fx < self._c.best_fx

    @property
    def best_fx(self) -> float:
        """Best value found in the run (in a study: in the whole study)."""
        return self._share.best_fx if self._study_best() else self._c.best_fx

    @property
    def best_x(self) -> np.ndarray | None:
        """Best point found in the run (in a study: in the whole study)."""
        if self._study_best():
            return self._share.best_x.copy()
        return None if self._c.best_x is None else self._c.best_x.copy()

    def kills_when_converged(self, n_converged: int) -> int | None:
        """How many optimizers had been killed when the ``n_converged``-th one converged
        (``None`` if fewer have converged)."""
        return self._c.converged_at_kill_count.get(n_converged)

    def now(self) -> float:
        return self._clock()

    @property
    def t_start(self) -> float:
        """When this session of the run started (on the manager's clock)."""
        return self._t0

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
            v = self._views[opt_id] = OptimizerView(self._records[opt_id], self._history)
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
