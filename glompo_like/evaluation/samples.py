"""Noisy objectives: each asked point measured ``samples`` times, and the incumbent more.

::

    opt.ask() → x_1 … x_n ──► k rows each (sample 0 … k-1), spread over the pool's workers
                 aggregate per point (mean or median of its successful samples)
                 the generation's best point, if it beats the incumbent, is measured
                 incumbent_samples times afresh (samples k …); their aggregate is its value,
                 and it may become the incumbent
             ◄── opt.tell(x_1 … x_n, aggregates)

The runner owns a :class:`Sampler` (one per optimizer) and does the evaluating; this module
only keeps the books: which samples a point has, its aggregate and spread, whether it is
*confirmed* (measured ``incumbent_samples`` times, so it may become the optimizer's best),
and the optimizer's incumbent (its best confirmed aggregate).  Why confirmation: the
smallest of many noisy values is low by luck (the minimum of the noise, not of the
function); a point that looks best after ``samples`` draws is measured again before it is
believed, and a point that was not cannot be reported as the best, whatever its draws.  The
draws that made it look best are not part of its confirmed value (they were chosen for
being low); only the fresh ones are.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .core import EvalStatus, Outcome, PointBatch

__all__ = ["AGGREGATES", "Sampler", "Point", "aggregate"]

#: how a point's samples are combined
AGGREGATES = ("mean", "median")


def aggregate(values: list[float], how: str) -> tuple[float, float]:
    """``(aggregate, standard deviation)`` of a point's successful samples (NaN, NaN for
    none; the deviation is NaN below two samples)."""
    if not values:
        return math.nan, math.nan
    a = np.asarray(values, dtype=float)
    fx = float(np.median(a)) if how == "median" else float(a.mean())
    return fx, float(a.std(ddof=1)) if len(a) > 1 else math.nan


class Point:
    """One asked point and its samples so far."""

    __slots__ = ("x", "token", "values", "next_sample", "out", "retried", "confirmed", "confirming", "screened")

    def __init__(self, x: np.ndarray, token: Any, confirmed: bool) -> None:
        self.x = x
        self.token = token  # the optimizer's token (asynchronous mode)
        self.values: list[float] = []  # successful samples
        self.next_sample = 0  # the sample number of the next evaluation
        self.out = 0  # evaluations submitted and not yet back
        self.retried: set[int] = set()  # samples already evaluated again (on_error="resample")
        self.confirmed = confirmed
        self.confirming = False  # its confirmation samples are out
        self.screened: list[float] = []  # the first samples, set aside when it is confirmed

    def take(self, n: int) -> list[int]:
        """Sample numbers for ``n`` more evaluations of this point."""
        first = self.next_sample
        self.next_sample += n
        self.out += n
        return list(range(first, first + n))


class Sampler:
    """The books of one optimizer's samples (see the module docstring).

    Parameters
    ----------
    samples:
        Evaluations of every asked point.
    incumbent_samples:
        Successful samples a point needs to be confirmed (``<= samples``: every point is).
    how:
        ``"mean"`` or ``"median"``.
    """

    def __init__(self, samples: int, incumbent_samples: int, how: str) -> None:
        self.samples = int(samples)
        self.incumbent_samples = int(incumbent_samples)
        self.how = how
        self.incumbent = math.inf  # the best confirmed aggregate so far

    def point(self, x: np.ndarray, token: Any = None) -> Point:
        return Point(x, token, confirmed=self.incumbent_samples <= self.samples)

    def record(self, p: Point, sample: int, outcome: Outcome, resample: bool) -> bool:
        """A sample of ``p`` is back.  Returns True when it failed and should be evaluated
        once more (``resample``: on_error="resample", and this sample was not yet; the
        caller then :meth:`Point.take` s one more)."""
        p.out -= 1
        if outcome.status is EvalStatus.OK:
            p.values.append(outcome.fx)
            return False
        if resample and sample not in p.retried:
            p.retried.add(sample)
            return True
        return False

    def value(self, p: Point) -> tuple[float, float]:
        return aggregate(p.values, self.how)

    def needs_confirmation(self, p: Point) -> int:
        """How many fresh samples ``p`` needs before it may become the incumbent
        (``incumbent_samples``): 0 when it is confirmed already, has no successful sample, or
        does not beat the incumbent."""
        if p.confirmed or p.confirming or not p.values:
            return 0
        if not self.value(p)[0] < self.incumbent:
            return 0
        return self.incumbent_samples

    def confirming(self, p: Point) -> None:
        """``p``'s confirmation samples go out: its first samples are set aside."""
        p.confirming = True
        p.screened, p.values = p.values, []

    def confirmed(self, p: Point) -> None:
        """``p``'s confirmation samples are back: it may be the incumbent now (if all of them
        failed, it keeps the value of its first samples, unconfirmed)."""
        p.confirming = False
        if not p.values:
            p.values = p.screened
            return
        p.confirmed = True
        fx = self.value(p)[0]
        if p.values and fx < self.incumbent:
            self.incumbent = fx

    def batch(self, points: list[Point], dim: int) -> PointBatch:
        if not points:
            return PointBatch.empty(dim)
        values = [self.value(p) for p in points]
        return PointBatch(
            x=np.array([p.x for p in points], dtype=float).reshape(-1, dim),
            fx=np.array([v[0] for v in values], dtype=float),
            std=np.array([v[1] for v in values], dtype=float),
            n=np.array([len(p.values) for p in points], dtype=int),
            confirmed=np.array([p.confirmed for p in points], dtype=bool),
        )
