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
    from .ledger import OptimizerRecord, RunCounters

__all__ = ["OptimizerView", "RunView"]


class OptimizerView:
    """Read-only view of one optimizer's history."""

    __slots__ = ("_r",)

    def __init__(self, record: OptimizerRecord) -> None:
        self._r = record

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


class RunView:
    """A read-only snapshot of the run handed to every policy."""

    __slots__ = ("_c", "_records", "_views", "_t0", "_evals0", "_clock", "dim", "bounds", "_share")

    def __init__(
        self,
        counters: RunCounters,
        records: Mapping[int, OptimizerRecord],
        t0: float,
        clock: Callable[[], float] = time.monotonic,
        bounds: Any = None,
        share: Any = None,
    ) -> None:
        self._c = counters
        self._share = share
        self._records = records
        self._views: dict[int, OptimizerView] = {}
        self._t0 = t0
        self._evals0 = counters.f_evals  # evaluations before this session (a resumed run)
        self._clock = clock
        self.bounds = bounds
        self.dim = None if bounds is None else bounds.dim

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
        New arrays: for generators that place start points by where the search has been."""
        xs, fs = [], []
        for r in self._records.values():
            n = min(len(r.xs), len(r.fx))
            if n:
                xs.append(r.xs.view()[:n])
                fs.append(r.fx.view()[:n])
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
