"""How far a run is, and when it will end: what status reporters show.

A :class:`Progress` says which budget bounds the run (``"evaluations"`` or ``"seconds"``),
how much of it is used, and an estimate of the seconds left (the *ETA*).  It is made by a
budget meter (:class:`glompo_like.policies.progress.BudgetMeter`, which reads the run's
convergence checker) from the run's view and the recent evaluation rate, which
:class:`RateWindow` measures.  A run whose checkers bound neither (only ``TargetCost``,
say) has no progress: the reporters then show the counters alone.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["Progress", "RateWindow", "format_duration"]

Unit = Literal["evaluations", "seconds"]


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 05 s"``, ``"2 h 07 min"``, or ``"?"`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


@dataclass(frozen=True)
class Progress:
    """The part of the run's budget used, and the estimated time left.

    Attributes
    ----------
    unit:
        What bounds the run: ``"evaluations"`` (e.g. ``MaxFuncCalls``) or ``"seconds"``
        (``MaxSeconds``).
    used, total:
        How much of that budget is used, out of how much.
    eta:
        Estimated seconds until the run ends by this budget (``None``: unknown yet, e.g.
        no evaluation rate measured).
    """

    unit: Unit
    used: float
    total: float
    eta: float | None

    @property
    def fraction(self) -> float:
        """``used / total``, between 0 and 1."""
        if self.total <= 0:
            return 1.0
        return min(1.0, max(0.0, self.used / self.total))

    def text(self) -> str:
        """``"37% of 20000 evaluations, about 1 min 12 s left"``."""
        total = f"{self.total:,.0f}" if self.unit == "evaluations" else f"{self.total:g}"
        eta = "time left unknown" if self.eta is None else f"about {format_duration(self.eta)} left"
        return f"{100 * self.fraction:.0f}% of {total} {self.unit}, {eta}"


class RateWindow:
    """Evaluations per second over the last ``window`` seconds of the run (at the first
    update: over the whole run so far, across the sessions of a resumed run)."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, t_elapsed: float, f_evals: int, t_total: float | None = None) -> float:
        """Note the run's state; returns the rate (``nan`` while unknown)."""
        samples = self._samples
        if not samples:
            total = t_elapsed if t_total is None else t_total
            if total <= t_elapsed:  # a fresh run: it started at 0 evaluations, 0 s
                samples.append((0.0, 0))
            samples.append((t_elapsed, f_evals))
            return f_evals / total if total > 0 and f_evals > 0 else math.nan
        samples.append((t_elapsed, f_evals))
        while len(samples) > 2 and samples[1][0] <= t_elapsed - self.window:
            samples.popleft()
        t0, n0 = samples[0]
        dt = t_elapsed - t0
        return (f_evals - n0) / dt if dt > 0 else math.nan
