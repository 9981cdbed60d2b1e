"""Checkers: conditions that decide whether the whole run should end.

A checker is called as ``checker(run)`` with a read-only
:class:`~glompo_like.record.view.RunView` and returns a :class:`~glompo_like.policies.base.Decision`
whose ``reason`` says why.  Checkers combine with ``&`` and ``|``::

    checker = MaxFuncCalls(100_000) | TargetCost(1e-6) | MaxSeconds(3600)

Write your own by subclassing :class:`BaseChecker` and implementing ``_check(run)`` (return
a bool or a ``Decision``) and ``_settings()``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

from .. import validation as v
from ..record.view import RunView
from .base import Condition, Decision

__all__ = [
    "BaseChecker",
    "MaxFuncCalls",
    "TargetCost",
    "MaxSeconds",
    "NOptConverged",
    "MaxOptsStarted",
    "MaxKills",
    "KillsAfterConvergence",
]


class BaseChecker(Condition[Literal["checker"]]):
    """Base class of checkers: ``checker(run) -> Decision``.

    Subclasses implement ``_check(run)`` returning a bool or a
    :class:`~glompo_like.policies.base.Decision`, and ``_settings()`` (shown by ``str``/``repr``).
    """

    kind = "checker"

    def __call__(self, run: RunView) -> Decision:  # type: ignore[override]
        return super().__call__(run)

    @abstractmethod
    def _check(self, run: RunView) -> bool | Decision: ...


class _CounterChecker(BaseChecker):
    """Fires when a run counter reaches ``n`` (subclasses name the counter)."""

    counter: str = ""
    noun: str = ""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = v.integer(n, "n", owner=type(self).__name__, minimum=1, example=10)

    def _settings(self) -> str:
        return f"n={self.n}"

    def _check(self, run: RunView) -> Decision:
        value = getattr(run, self.counter)
        fired = value >= self.n
        return Decision(fired, f"{self._label()}: {value} {self.noun} ({'>=' if fired else '<'} {self.n})")


class MaxFuncCalls(BaseChecker):
    """Fires when the run has done at least ``max_evals`` evaluations (all optimizers)."""

    def __init__(self, max_evals: int) -> None:
        super().__init__()
        self.max_evals = v.integer(max_evals, "max_evals", owner="MaxFuncCalls", minimum=1, example=10)

    def _settings(self) -> str:
        return f"max_evals={self.max_evals}"

    def remaining(self, run: RunView) -> int:
        """Evaluations left before this checker fires (``0`` once it has)."""
        return max(0, self.max_evals - run.f_evals)

    def _check(self, run: RunView) -> Decision:
        fired = run.f_evals >= self.max_evals
        return Decision(
            fired,
            f"{self._label()}: {run.f_evals} evaluations ({'>=' if fired else '<'} {self.max_evals})",
        )


class TargetCost(BaseChecker):
    """Fires when the best value found is at most ``target + atol``."""

    def __init__(self, target: float, atol: float = 0.0) -> None:
        super().__init__()
        self.target = v.number(target, "target", owner="TargetCost")
        self.atol = v.number(atol, "atol", owner="TargetCost", low=0.0)

    def _settings(self) -> str:
        return f"target={self.target:g}" + (f", atol={self.atol:g}" if self.atol else "")

    def _check(self, run: RunView) -> Decision:
        goal = self.target + self.atol
        fired = run.best_fx <= goal
        return Decision(
            fired, f"{self._label()}: best {run.best_fx:.6g} {'<=' if fired else '>'} {goal:.6g}"
        )


class MaxSeconds(BaseChecker):
    """Fires after ``seconds`` of wall time.

    The manager wakes up when the time is up (it does not wait for the next report), then
    stops its optimizers: each gets ``shutdown_grace`` seconds to finish the evaluation in
    hand, and worker processes that do not end are then killed, so ``start_manager``
    returns within ``seconds`` plus about twice ``shutdown_grace`` (plus a second for a
    process that must be killed).  The time includes the start of the run (a task probe of
    ``backend="auto"`` or ``thread_slice="auto"``, starting processes).

    Parameters
    ----------
    seconds:
        Time limit.
    overall:
        ``False``: time of this session (``run.t_elapsed``, restarting at zero when a run
        is resumed); ``True``: time of the run overall (``run.t_total``: this session plus
        the time used by the sessions before its checkpoints).
    """

    def __init__(self, seconds: float, overall: bool = False) -> None:
        super().__init__()
        self.seconds = v.number(seconds, "seconds", owner="MaxSeconds", low=0.0, low_ok=False)
        self.overall = v.boolean(overall, "overall", owner="MaxSeconds")

    def _settings(self) -> str:
        return f"seconds={self.seconds:g}" + (", overall=True" if self.overall else "")

    def _elapsed(self, run: RunView) -> float:
        return run.t_total if self.overall else run.t_elapsed

    def next_check_in(self, run: RunView) -> float:  # type: ignore[override]
        """Seconds until this checker fires (``0`` once it has)."""
        return max(0.0, self.seconds - self._elapsed(run))

    def _check(self, run: RunView) -> Decision:
        t = self._elapsed(run)
        fired = t >= self.seconds
        return Decision(fired, f"{self._label()}: {t:.1f} s used ({'>=' if fired else '<'} {self.seconds:g} s)")


class NOptConverged(_CounterChecker):
    """Fires when at least ``n`` optimizers have converged."""

    counter = "opts_converged"
    noun = "optimizers converged"


class MaxOptsStarted(_CounterChecker):
    """Fires when at least ``n`` optimizers have been started."""

    counter = "opts_started"
    noun = "optimizers started"


class MaxKills(_CounterChecker):
    """Fires when at least ``n`` optimizers have been killed by hunters."""

    counter = "opts_killed"
    noun = "optimizers killed"


class KillsAfterConvergence(BaseChecker):
    """Fires when ``converged`` optimizers have converged and at least ``kills`` optimizers
    were killed after the ``converged``-th convergence.

    The idea: once an optimizer has converged, further optimizers that are hunted show
    the rest of the space is not better; stop after ``kills`` of them.
    """

    def __init__(self, kills: int = 1, converged: int = 1) -> None:
        super().__init__()
        self.kills = v.integer(kills, "kills", owner="KillsAfterConvergence", minimum=1, example=10)
        self.converged = v.integer(converged, "converged", owner="KillsAfterConvergence", minimum=1, example=10)

    def _settings(self) -> str:
        return f"kills={self.kills}, converged={self.converged}"

    def _check(self, run: RunView) -> Decision:
        before = run.kills_when_converged(self.converged)
        if before is None:
            return Decision(
                False, f"{self._label()}: {run.opts_converged} of {self.converged} optimizers converged"
            )
        since = run.opts_killed - before
        fired = since >= self.kills
        return Decision(
            fired,
            f"{self._label()}: {since} optimizers killed since convergence {self.converged} "
            f"({'>=' if fired else '<'} {self.kills})",
        )
