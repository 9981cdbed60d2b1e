"""Hunters: conditions that decide whether one optimizer (the victim) should be stopped.

A hunter is called as ``hunter(run, hunter_id, victim_id)`` with a read-only
:class:`~glompo_like.snapshot.RunView` and returns a :class:`~glompo_like._policy.Decision`
whose ``reason`` says why.  Hunters combine with ``&`` and ``|``::

    hunter = MinFuncCalls(2000) & (BestUnmoving(400, tol=0.01) | EvaluationsUnmoving(200, 1e-3))

Write your own by subclassing :class:`BaseHunter` and implementing
``_check(run, hunter_id, victim_id)`` (return a bool or a ``Decision``) and ``_settings()``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from numbers import Integral, Real
from typing import Any

import numpy as np

from ._policy import Condition, Decision
from .errors import ConfigError
from .snapshot import RunView

__all__ = ["BaseHunter", "MinFuncCalls", "BestUnmoving", "EvaluationsUnmoving"]


def _int_at_least(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(
            f"{owner}: {name} must be an integer >= {minimum}, got {value!r}; "
            f"e.g. {name}={max(minimum, 100)}"
        )
    return int(value)


def _tolerance(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ConfigError(
            f"{owner}: {name} must be a finite number >= 0 (a relative tolerance, "
            f"e.g. {name}=0.01 for 1%), got {value!r}"
        )
    return float(value)


def _pct(tol: float) -> str:
    return f"{100 * tol:.3g}%"


class BaseHunter(Condition):
    """Base class of hunters: ``hunter(run, hunter_id, victim_id) -> Decision``.

    Subclasses implement ``_check(run, hunter_id, victim_id)`` returning a bool or a
    :class:`~glompo_like._policy.Decision`, and ``_settings()`` (shown by ``str``/``repr``).
    """

    kind = "hunter"

    def __call__(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:  # type: ignore[override]
        return super().__call__(run, hunter_id, victim_id)

    @abstractmethod
    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> bool | Decision: ...


class MinFuncCalls(BaseHunter):
    """Fires when the victim has done at least ``min_evals`` evaluations.

    Combine it with other hunters (``&``) to give every optimizer a minimum budget.
    """

    def __init__(self, min_evals: int) -> None:
        super().__init__()
        self.min_evals = _int_at_least("MinFuncCalls", "min_evals", min_evals, 1)

    def _settings(self) -> str:
        return f"min_evals={self.min_evals}"

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        n = run.optimizer(victim_id).n_evals
        fired = n >= self.min_evals
        rel = ">=" if fired else "<"
        return Decision(
            fired, f"{self._label()}: opt {victim_id} has done {n} evaluations ({rel} {self.min_evals})"
        )


class BestUnmoving(BaseHunter):
    """Fires when the victim's best value has not improved by more than ``tol * |best|``
    over its last ``calls`` evaluations.

    Parameters
    ----------
    calls:
        Length of the window, in the victim's evaluations.
    tol:
        Relative improvement (of the best value at the start of the window) that counts as
        progress.  ``0`` means any improvement at all.
    """

    def __init__(self, calls: int, tol: float = 0.0) -> None:
        super().__init__()
        self.calls = _int_at_least("BestUnmoving", "calls", calls, 1)
        self.tol = _tolerance("BestUnmoving", "tol", tol)

    def _settings(self) -> str:
        return f"calls={self.calls}, tol={self.tol:g}"

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        victim = run.optimizer(victim_id)
        n = victim.n_evals
        if n < self.calls:
            return Decision(
                False, f"{self._label()}: opt {victim_id} has done only {n} of {self.calls} evaluations"
            )
        then, now = victim.best_at(n - self.calls), victim.best_at(n)
        if math.isinf(then):
            # Nothing succeeded before the window: unmoving only if nothing succeeded since.
            fired = math.isinf(now)
        else:
            fired = then - now <= self.tol * abs(then)
        window = f"in its last {self.calls} evaluations"
        by = f" by more than {_pct(self.tol)}" if self.tol else ""
        if fired:
            return Decision(
                True, f"{self._label()}: opt {victim_id} best {now:.6g} has not improved{by} {window}"
            )
        return Decision(
            False,
            f"{self._label()}: opt {victim_id} best improved from {then:.6g} to {now:.6g}{by} {window}",
        )


class EvaluationsUnmoving(BaseHunter):
    """Fires when the victim's last ``calls`` values have a standard deviation of at most
    ``tol * |mean|`` (failed evaluations are ignored; fewer than two successes never fire).

    Parameters
    ----------
    calls:
        Length of the window, in the victim's evaluations (at least 2).
    tol:
        Relative spread below which the values count as flat.
    """

    def __init__(self, calls: int, tol: float) -> None:
        super().__init__()
        self.calls = _int_at_least("EvaluationsUnmoving", "calls", calls, 2)
        self.tol = _tolerance("EvaluationsUnmoving", "tol", tol)

    def _settings(self) -> str:
        return f"calls={self.calls}, tol={self.tol:g}"

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        victim = run.optimizer(victim_id)
        n = victim.n_evals
        if n < self.calls:
            return Decision(
                False, f"{self._label()}: opt {victim_id} has done only {n} of {self.calls} evaluations"
            )
        window = victim.f_history[n - self.calls :]
        values = window[np.isfinite(window)]
        if len(values) < 2:
            return Decision(
                False,
                f"{self._label()}: opt {victim_id} has {len(values)} successful evaluations in its "
                f"last {self.calls} (needs 2)",
            )
        mean, std = float(np.mean(values)), float(np.std(values))
        fired = std <= self.tol * abs(mean)
        rel = "<=" if fired else ">"
        return Decision(
            fired,
            f"{self._label()}: opt {victim_id} last {self.calls} evaluations have std {std:.3g} "
            f"{rel} {_pct(self.tol)} of |mean {mean:.6g}|",
        )
