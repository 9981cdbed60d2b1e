"""Which checker bounds a run, and how far along it is: progress and ETA from the checkers.

:class:`BudgetMeter` walks the run's convergence checker.  ``MaxFuncCalls`` bounds a run
by evaluations (its ETA is the evaluations left over the measured evaluation rate),
``MaxSeconds`` by seconds (its ETA is the time left).  ``a | b`` ends with whichever part
comes first (the smallest ETA), ``a & b`` with the last (the largest; unknown if any part
is unbounded).  Checkers that no budget bounds (``TargetCost``, ``NOptConverged``, ...)
give no estimate; a custom checker takes part by defining ``remaining(run)`` (evaluations
left) or ``next_check_in(run)`` (seconds left), as the built-in ones do.
"""

from __future__ import annotations

import math
from typing import Any

from ..record.progress import Progress
from ..record.view import RunView
from .base import AllOf, AnyOf, Condition
from .checkers import MaxFuncCalls, MaxSeconds

__all__ = ["BudgetMeter"]


class BudgetMeter:
    """``meter(view, rate) -> Progress | None`` for the run's ``checker`` (see the module
    docstring); ``rate`` is the recent evaluations per second (``nan`` if unknown)."""

    def __init__(self, checker: Condition) -> None:
        self.checker = checker

    def __call__(self, view: RunView, rate: float) -> Progress | None:
        try:
            return _estimate(self.checker, view, rate)
        except Exception:  # a custom checker's remaining() must not break the status
            return None

    def __repr__(self) -> str:
        return f"BudgetMeter({self.checker!r})"


def _key(p: Progress) -> float:
    """Order of estimates: by ETA; unknown ETAs after known ones."""
    return math.inf if p.eta is None else p.eta


def _estimate(cond: Any, view: RunView, rate: float) -> Progress | None:
    if isinstance(cond, (AnyOf, AllOf)):
        parts = [_estimate(p, view, rate) for p in cond.parts]
        known = [p for p in parts if p is not None]
        if isinstance(cond, AnyOf):
            return min(known, key=_key) if known else None
        if len(known) < len(parts):
            return None  # a part with no budget may hold the run up for ever
        return max(known, key=_key)
    if isinstance(cond, MaxFuncCalls):
        used = float(view.f_evals)
        total = float(max(cond.max_evals, view.f_evals))
        return Progress("evaluations", used, total, _eta_of(total - used, rate))
    if isinstance(cond, MaxSeconds):
        used = view.t_total if cond.overall else view.t_elapsed
        return Progress("seconds", used, cond.seconds, max(0.0, cond.seconds - used))
    remaining = getattr(cond, "remaining", None)
    if callable(remaining):
        left = float(remaining(view))
        return Progress("evaluations", float(view.f_evals), view.f_evals + left, _eta_of(left, rate))
    seconds = cond.next_check_in(view) if isinstance(cond, Condition) else None
    if seconds is not None:
        return Progress("seconds", view.t_elapsed, view.t_elapsed + seconds, float(seconds))
    return None


def _eta_of(evals_left: float, rate: float) -> float | None:
    if evals_left <= 0:
        return 0.0
    if not math.isfinite(rate) or rate <= 0:
        return None
    return evals_left / rate
