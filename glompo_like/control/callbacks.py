"""Callbacks: user functions the manager calls while the run goes.

``GloMPOManager(..., callbacks=[f, g])``.  Each callback is called as ``f(view, event)``
from the manager's own thread, with the run's read-only
:class:`~glompo_like.record.view.RunView` and one of three events:

:class:`BatchLogged`
    after each report of an optimizer has been counted and committed to the log (a
    generation, or the few it finished since its last report): a callback that reads the
    log finds its rows there;
:class:`NewBest`
    right after the :class:`BatchLogged` of a report that improved the run's best value;
:class:`OptimizerEnded`
    when an optimizer has ended (its last batch is logged; how and why it ended is known).

A callback asks the run to stop by **returning** :class:`StopRun` (``return
StopRun("target reached")``): the run then ends as if a checker had fired, with the
reason ``"callback <name>: target reached"``.  Any other return value is ignored, so a
callback that happens to return something does not stop the run by accident.

A callback that raises does not end the run: the error is logged (logger
``glompo_like.manager``, with its traceback the first time), counted, and listed in
``result.stats["callback_errors"]`` and the summary.  A callback runs in the manager's
thread, so a slow one slows the whole run: hand long work to a thread of your own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ConfigTypeError
from ..result import Result
from ..states import EndKind

if TYPE_CHECKING:
    from ..evaluation.core import EvalBatch
    from ..record.ledger import OptimizerRecord
    from ..record.view import RunView

__all__ = ["StopRun", "NewBest", "BatchLogged", "OptimizerEnded", "Event", "Callback", "Callbacks",
           "check_callbacks"]

log = logging.getLogger("glompo_like.manager")


@dataclass(frozen=True)
class StopRun:
    """Returned by a callback: end the run (the optimizers are stopped, the result returned)."""

    reason: str = "a callback asked the run to stop"


@dataclass(frozen=True)
class BatchLogged:
    """An optimizer's report was logged: evaluations ``first_eval_id .. last_eval_id`` of
    the run (``n_failed`` of them did not succeed; ``best_fx`` is the best value among
    them, ``inf`` if none succeeded)."""

    opt_id: int
    first_eval_id: int
    last_eval_id: int
    n_failed: int
    best_fx: float

    @property
    def n(self) -> int:
        return self.last_eval_id - self.first_eval_id + 1


@dataclass(frozen=True)
class NewBest:
    """The run's best value improved: ``fx`` at ``x``, found by optimizer ``opt_id`` (at
    the run's evaluation ``f_evals`` or before, within the batch just logged)."""

    opt_id: int
    fx: float
    x: np.ndarray
    f_evals: int


@dataclass(frozen=True)
class OptimizerEnded:
    """Optimizer ``opt_id`` ended: ``end_kind`` (converged, killed, stopped, failed,
    crashed) and ``end_reason`` in words, after ``n_evals`` evaluations with best value
    ``best_fx``."""

    opt_id: int
    opt_type: str
    end_kind: EndKind
    end_reason: str
    n_evals: int
    best_fx: float


Event = BatchLogged | NewBest | OptimizerEnded


class Callback(Protocol):
    """What ``callbacks=[...]`` takes: ``f(view, event) -> StopRun | None``."""

    def __call__(self, view: RunView, event: Event, /) -> StopRun | None: ...


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def check_callbacks(value: Any, owner: str = "GloMPOManager") -> tuple[Callback, ...]:
    """``None``, one callable, or an iterable of callables → a tuple of callables (a
    typed error names the item that is not callable)."""
    if value is None:
        return ()
    if callable(value):
        return (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigTypeError(f"{owner}: callbacks must be a list of callables f(view, event), "
                              f"got {type(value).__name__}")
    out = tuple(value)
    for i, fn in enumerate(out):
        if not callable(fn):
            raise ConfigTypeError(f"{owner}: callbacks[{i}] is a {type(fn).__name__}, not a callable "
                                  "f(view, event)")
    return out


@dataclass
class _Trouble:
    """The errors of one callback."""

    name: str
    count: int
    first: str


class Callbacks:
    """The manager's hold on its callbacks: calls them safely, turns :class:`StopRun` into
    ``stop(reason)``, and keeps their errors for the result.

    Parameters
    ----------
    callbacks:
        The callables (already checked).
    stop:
        Called with the reason when a callback returns :class:`StopRun`.
    """

    def __init__(self, callbacks: tuple[Callback, ...], stop: Callable[[str], None]) -> None:
        self.callbacks = callbacks
        self._stop = stop
        self._trouble: dict[int, _Trouble] = {}
        self._held: list[tuple[RunView, Event]] | None = None  # events of the turn, while one is open

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Events that happen inside are delivered when the block ends: the manager holds
        those of a turn of its loop until the turn's log transaction has committed.  Nests
        (the outermost block delivers)."""
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            yield
        finally:
            events, self._held = self._held, None
            for view, event in events:
                self._emit(view, event)

    def _emit(self, view: RunView, event: Event) -> None:
        if self._held is not None:
            self._held.append((view, event))
            return
        for i, fn in enumerate(self.callbacks):
            try:
                out = fn(view, event)
            except Exception as e:
                t = self._trouble.get(i)
                if t is None:
                    self._trouble[i] = _Trouble(_name(fn), 1, f"{type(e).__name__}: {e}")
                    log.exception("callback %s raised on %s (the run goes on)", _name(fn), type(event).__name__)
                else:
                    t.count += 1
                    log.warning("callback %s raised again on %s: %s: %s", t.name, type(event).__name__,
                                type(e).__name__, e)
                continue
            if isinstance(out, StopRun):
                self._stop(f"callback {_name(fn)}: {out.reason}")

    def batch_logged(self, view: RunView, rec: OptimizerRecord, batch: EvalBatch, last_eval_id: int,
                     improved: bool) -> None:
        """After the ledger recorded ``batch`` of ``rec`` (its last row is ``last_eval_id``)."""
        if not self.callbacks:
            return
        ok = batch.ok
        n = len(batch)
        best = float(np.min(batch.fx[ok])) if ok.any() else float("inf")
        self._emit(view, BatchLogged(rec.opt_id, last_eval_id - n + 1, last_eval_id, n - int(ok.sum()), best))
        if improved:
            x = view.best_x
            self._emit(view, NewBest(rec.opt_id, float(view.best_fx), x if x is not None else np.empty(0),
                                     last_eval_id))

    def optimizer_ended(self, view: RunView, rec: OptimizerRecord) -> None:
        """After ``rec``'s runner ended and its end was recorded."""
        if not self.callbacks or not rec.opt_id:  # (optimizer 0 is the task probe)
            return
        self._emit(view, OptimizerEnded(rec.opt_id, rec.opt_type, rec.end_kind or EndKind.STOPPED,
                                        rec.end_reason or "", rec.n_points, rec.best_fx))

    def errors(self) -> list[str]:
        """One line per callback that raised: its name, how often, the first error."""
        return [f"{t.name} raised {t.count} time{'s' if t.count != 1 else ''}; first: {t.first}"
                for t in self._trouble.values()]

    def annotate(self, result: Result) -> Result:
        """``result`` with ``stats["callback_errors"]`` (when there are callbacks)."""
        if not self.callbacks:
            return result
        return replace(result, stats={**result.stats, "callback_errors": self.errors()})
