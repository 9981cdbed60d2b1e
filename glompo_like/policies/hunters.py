"""Hunters: conditions that decide whether one optimizer (the victim) should be stopped.

A hunter is called as ``hunter(run, hunter_id, victim_id)`` with a read-only
:class:`~glompo_like.record.view.RunView` and returns a :class:`~glompo_like.policies.base.Decision`
whose ``reason`` says why.  Hunters combine with ``&`` and ``|``::

    hunter = MinFuncCalls(2000) & (BestUnmoving(400, tol=0.01) | EvaluationsUnmoving(200, 1e-3))

Write your own by subclassing :class:`BaseHunter` and implementing
``_check(run, hunter_id, victim_id)`` (return a bool or a ``Decision``) and ``_settings()``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, Literal

import numpy as np

from .. import validation as v
from ..errors import ConfigError
from ..record.view import RunView
from .base import Condition, Decision

__all__ = [
    "BaseHunter",
    "MinFuncCalls",
    "BestUnmoving",
    "EvaluationsUnmoving",
    "LastPointsInvalid",
    "ParameterDistance",
    "StepSize",
    "TimeAnnealing",
    "ValueAnnealing",
    "TypeHunter",
]


def _diagonal(run: RunView, owner: str) -> float:
    if run.bounds is None:
        raise ConfigError(f"{owner} needs the run's bounds, but the RunView has none")
    return float(np.linalg.norm(run.bounds.width))


def _pct(tol: float) -> str:
    return f"{100 * tol:.3g}%"


class BaseHunter(Condition[Literal["hunter"]]):
    """Base class of hunters: ``hunter(run, hunter_id, victim_id) -> Decision``.

    Subclasses implement ``_check(run, hunter_id, victim_id)`` returning a bool or a
    :class:`~glompo_like.policies.base.Decision`, and ``_settings()`` (shown by ``str``/``repr``).
    """

    kind = "hunter"

    def __call__(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:  # type: ignore[override]
        return super().__call__(run, hunter_id, victim_id)

    @abstractmethod
    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> bool | Decision: ...

    def lookback(self) -> int:
        """How many of the victim's latest evaluations it reads (``0``: none, only counters
        and best points).  The manager keeps at least that many of each running optimizer
        in memory; a hunter reading further back gets older ones from the evaluation log
        (correct, but slower).  Override it in a hunter that reads a longer window."""
        return 0


class MinFuncCalls(BaseHunter):
    """Fires when the victim has done at least ``min_evals`` evaluations (and, if
    ``min_generations`` is given, at least that many generations).

    Combine it with other hunters (``&``) to give every optimizer a minimum budget.
    ``min_generations`` makes that budget grow with the victim's population: an optimizer
    with a large population (see :class:`~glompo_like.policies.selectors.IPOPSelector`) needs more
    evaluations for the same number of generations.
    """

    def __init__(self, min_evals: int, min_generations: int | None = None) -> None:
        super().__init__()
        self.min_evals = v.integer(min_evals, "min_evals", owner="MinFuncCalls", minimum=1, example=100)
        self.min_generations = (
            None if min_generations is None
            else v.integer(min_generations, "min_generations", owner="MinFuncCalls", minimum=1, example=100)
        )

    def _settings(self) -> str:
        gens = "" if self.min_generations is None else f", min_generations={self.min_generations}"
        return f"min_evals={self.min_evals}{gens}"

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        victim = run.optimizer(victim_id)
        n = victim.n_evals
        fired = n >= self.min_evals
        rel = ">=" if fired else "<"
        reason = f"{self._label()}: opt {victim_id} has done {n} evaluations ({rel} {self.min_evals})"
        if self.min_generations is not None:
            g = victim.generations
            ok = g >= self.min_generations
            reason += f" and {g} generations ({'>=' if ok else '<'} {self.min_generations})"
            fired = fired and ok
        return Decision(fired, reason)


class BestUnmoving(BaseHunter):
    """Fires when the victim's best value has not improved by more than ``tol * |best|``
    over its last ``calls`` evaluations (or its last ``generations`` generations, if that
    is longer).

    Parameters
    ----------
    calls:
        Length of the window, in the victim's evaluations.
    tol:
        Relative improvement (of the best value at the start of the window) that counts as
        progress.  ``0`` means any improvement at all.
    generations:
        If given, the window is at least this many of the victim's generations: ``generations
        * n_evals // n_generations`` evaluations when that is more than ``calls``.  This keeps
        the window fair to optimizers with large populations (see
        :class:`~glompo_like.policies.selectors.IPOPSelector`).
    """

    def __init__(self, calls: int, tol: float = 0.0, generations: int | None = None) -> None:
        super().__init__()
        self.calls = v.integer(calls, "calls", owner="BestUnmoving", minimum=1, example=100)
        self.tol = v.number(tol, "tol", owner="BestUnmoving", low=0.0, example=0.01)
        self.generations = (
            None if generations is None else v.integer(generations, "generations", owner="BestUnmoving", minimum=1, example=100)
        )

    def _settings(self) -> str:
        gens = "" if self.generations is None else f", generations={self.generations}"
        return f"calls={self.calls}, tol={self.tol:g}{gens}"

    def window(self, victim: Any) -> int:
        """The window, in evaluations, for ``victim`` (an
        :class:`~glompo_like.record.view.OptimizerView`)."""
        calls = self.calls
        g = victim.generations
        if self.generations is not None and g > 0:
            calls = max(calls, self.generations * (victim.n_evals // g))
        return calls

    def lookback(self) -> int:
        return self.calls

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        victim = run.optimizer(victim_id)
        n = victim.n_evals
        calls = self.window(victim)
        if n < calls:
            return Decision(
                False, f"{self._label()}: opt {victim_id} has done only {n} of {calls} evaluations"
            )
        then, now = victim.best_at(n - calls), victim.best_at(n)
        if math.isinf(then):
            # Nothing succeeded before the window: unmoving only if nothing succeeded since.
            fired = math.isinf(now)
        else:
            fired = then - now <= self.tol * abs(then)
        window = f"in its last {calls} evaluations"
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
        self.calls = v.integer(calls, "calls", owner="EvaluationsUnmoving", minimum=2, example=100)
        self.tol = v.number(tol, "tol", owner="EvaluationsUnmoving", low=0.0, example=0.01)

    def _settings(self) -> str:
        return f"calls={self.calls}, tol={self.tol:g}"

    def lookback(self) -> int:
        return self.calls

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        victim = run.optimizer(victim_id)
        n = victim.n_evals
        if n < self.calls:
            return Decision(
                False, f"{self._label()}: opt {victim_id} has done only {n} of {self.calls} evaluations"
            )
        window = victim.f_last(self.calls)
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


class LastPointsInvalid(BaseHunter):
    """Fires when the victim's last ``n`` evaluations all failed (``nan`` in its history).

    Parameters
    ----------
    n:
        How many consecutive failed evaluations, ending with its latest, mean the
        optimizer is stuck in a region where the task cannot be evaluated.
    """

    def __init__(self, n: int = 1) -> None:
        super().__init__()
        self.n = v.integer(n, "n", owner="LastPointsInvalid", minimum=1, example=100)

    def _settings(self) -> str:
        return f"n={self.n}"

    def lookback(self) -> int:
        return self.n

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        victim = run.optimizer(victim_id)
        total = victim.n_evals
        if total < self.n:
            return Decision(
                False, f"{self._label()}: opt {victim_id} has done only {total} of {self.n} evaluations"
            )
        failed = int(np.count_nonzero(np.isnan(victim.f_last(self.n))))
        fired = failed == self.n
        if fired:
            return Decision(True, f"{self._label()}: opt {victim_id} last {self.n} evaluations all failed")
        return Decision(
            False, f"{self._label()}: {self.n - failed} of opt {victim_id} last {self.n} evaluations succeeded"
        )


class ParameterDistance(BaseHunter):
    """Fires when the victim is close to the hunter in parameter space: the distance
    between the victim's best point (with ``test_all``, its last evaluated point) and the
    hunter's best point is at most ``relative_distance`` times the diagonal of the bounds
    box (``run.bounds``).  Never fires while either point is unknown.

    Parameters
    ----------
    relative_distance:
        Fraction of the box diagonal, e.g. ``0.05``.
    test_all:
        ``False``: compare the victim's best point; ``True``: its last evaluated point
        (catches a victim heading into the hunter's basin before it improves there).
    """

    def __init__(self, relative_distance: float, test_all: bool = False) -> None:
        super().__init__()
        self.relative_distance = v.number(relative_distance, "relative_distance", owner="ParameterDistance", low=0.0, example=0.01)
        self.test_all = v.boolean(test_all, "test_all", owner="ParameterDistance")

    def _settings(self) -> str:
        return f"relative_distance={self.relative_distance:g}" + (", test_all=True" if self.test_all else "")

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        diag = _diagonal(run, "ParameterDistance")
        what = "last point" if self.test_all else "best point"
        hunter, victim = run.optimizer(hunter_id), run.optimizer(victim_id)
        h = hunter.best_x
        v = victim.last_x if self.test_all else victim.best_x
        if h is None or v is None:
            who = f"opt {hunter_id} has no best point" if h is None else f"opt {victim_id} has no {what}"
            return Decision(False, f"{self._label()}: {who} yet")
        dist = float(np.linalg.norm(np.asarray(v, dtype=float) - h))
        limit = self.relative_distance * diag
        fired = dist <= limit
        return Decision(
            fired,
            f"{self._label()}: opt {victim_id} {what} is {dist:.3g} from opt {hunter_id} best point "
            f"({'<=' if fired else '>'} {_pct(self.relative_distance)} of the box diagonal {diag:.3g})",
        )


class StepSize(BaseHunter):
    """Fires when the victim's best point moved at most ``relative_tol`` times the
    diagonal of the bounds box over its last ``calls`` evaluations (the straight-line
    distance between its best point before the window and its best point now).

    Like :class:`BestUnmoving`, a victim with no success before the window fires only if
    nothing succeeded since either (its first success is progress).

    Parameters
    ----------
    calls:
        Length of the window, in the victim's evaluations.
    relative_tol:
        Fraction of the box diagonal; ``0`` fires only when the best point did not move.
    """

    def __init__(self, calls: int, relative_tol: float) -> None:
        super().__init__()
        self.calls = v.integer(calls, "calls", owner="StepSize", minimum=1, example=100)
        self.relative_tol = v.number(relative_tol, "relative_tol", owner="StepSize", low=0.0, example=0.01)

    def _settings(self) -> str:
        return f"calls={self.calls}, relative_tol={self.relative_tol:g}"

    def lookback(self) -> int:
        return self.calls

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        diag = _diagonal(run, "StepSize")
        victim = run.optimizer(victim_id)
        n = victim.n_evals
        if n < self.calls:
            return Decision(
                False, f"{self._label()}: opt {victim_id} has done only {n} of {self.calls} evaluations"
            )
        then, now = victim.best_x_at(n - self.calls), victim.best_x_at(n)
        window = f"in its last {self.calls} evaluations"
        if then is None or now is None:
            fired = now is None
            what = "has no successful evaluation" if fired else "found its first best point"
            return Decision(fired, f"{self._label()}: opt {victim_id} {what} {window}")
        step = float(np.linalg.norm(now - then))
        limit = self.relative_tol * diag
        fired = step <= limit
        return Decision(
            fired,
            f"{self._label()}: opt {victim_id} best point moved {step:.3g} {window} "
            f"({'<=' if fired else '>'} {_pct(self.relative_tol)} of the box diagonal {diag:.3g})",
        )


class _StochasticHunter(BaseHunter):
    """A hunter that fires with a probability: draws come from its own
    ``numpy.random.Generator`` seeded with ``seed`` (``None``: fresh entropy), whose state
    :meth:`get_state` / :meth:`set_state` carry through checkpoints.  Every call draws
    exactly one number, fires when it is below the probability, and reports both."""

    def __init__(self, seed: int | None) -> None:
        super().__init__()
        self.seed = v.integer(seed, "seed", owner=type(self).__name__, minimum=0, none_ok=True, example=1)
        self._rng = np.random.default_rng(self.seed)

    def _seed_setting(self) -> str:
        return "" if self.seed is None else f", seed={self.seed}"

    @abstractmethod
    def _probability(self, run: RunView, hunter_id: int, victim_id: int) -> tuple[float, str]:
        """Kill probability in [0, 1] and a phrase saying where it comes from."""

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        p, why = self._probability(run, hunter_id, victim_id)
        u = float(self._rng.random())
        fired = u < p
        return Decision(
            fired,
            f"{self._label()}: {why}, kill probability {p:.3g}, draw {u:.3g} "
            f"({'<' if fired else '>='} {p:.3g})",
        )

    def get_state(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]


class TimeAnnealing(_StochasticHunter):
    """Kills at random, more likely the more evaluations the victim has used compared
    with the hunter: with ``r = victim.n_evals / hunter.n_evals`` the kill probability is
    ``min(1, r / crit_ratio)``.

    A young victim is rarely killed; one that has used ``crit_ratio`` times the hunter's
    evaluations (and is still worse) always is.  A hunter with no evaluations gives
    ``r = inf`` (probability 1) unless the victim has none either (probability 0).

    Parameters
    ----------
    crit_ratio:
        Evaluation ratio at and above which the victim is always killed.
    seed:
        Seed of the hunter's own random numbers (``None``: not reproducible).
    """

    def __init__(self, crit_ratio: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.crit_ratio = v.number(crit_ratio, "crit_ratio", owner="TimeAnnealing", low=0.0, low_ok=False, example=1.0)

    def _settings(self) -> str:
        return f"crit_ratio={self.crit_ratio:g}{self._seed_setting()}"

    def _probability(self, run: RunView, hunter_id: int, victim_id: int) -> tuple[float, str]:
        nv, nh = run.optimizer(victim_id).n_evals, run.optimizer(hunter_id).n_evals
        if nv == 0:
            p = 0.0
        elif nh == 0:
            p = 1.0
        else:
            p = min(1.0, nv / nh / self.crit_ratio)
        return p, f"opt {victim_id} has done {nv} evaluations to opt {hunter_id}'s {nh}"


class ValueAnnealing(_StochasticHunter):
    """Kills at random, more likely the worse the victim's best value is compared with
    the hunter's.

    With the relative gap ``g = (f_victim - f_hunter) / |f_hunter|`` the kill
    probability is ``g / (g + scale)``: ``0`` when the victim is as good as the hunter,
    ``1/2`` when ``g == scale`` (with ``scale=1``: a victim at twice a positive hunter
    value), approaching ``1`` as the victim gets worse.  A hunter value of exactly ``0``
    makes any worse victim's gap infinite (probability 1); a victim without a successful
    evaluation has probability 1, a hunter without one gives 0.

    Parameters
    ----------
    scale:
        Relative gap at which the kill probability is one half.
    seed:
        Seed of the hunter's own random numbers (``None``: not reproducible).
    """

    def __init__(self, scale: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.scale = v.number(scale, "scale", owner="ValueAnnealing", low=0.0, low_ok=False, example=1.0)

    def _settings(self) -> str:
        return f"scale={self.scale:g}{self._seed_setting()}"

    def _probability(self, run: RunView, hunter_id: int, victim_id: int) -> tuple[float, str]:
        fv, fh = run.optimizer(victim_id).best_fx, run.optimizer(hunter_id).best_fx
        why = f"opt {victim_id} best {fv:.6g} vs opt {hunter_id} best {fh:.6g}"
        if math.isnan(fv) or math.isnan(fh) or math.isinf(fh) or fv <= fh:
            return 0.0, why
        if math.isinf(fv) or fh == 0:
            return 1.0, why
        g = (fv - fh) / abs(fh)
        return g / (g + self.scale), f"{why} (relative gap {g:.3g})"


class TypeHunter(BaseHunter):
    """Fires when the victim is of the given optimizer type (its class name,
    ``victim.opt_type``).  Use it to aim other hunters at one kind of optimizer::

        TypeHunter("RandomOptimizer") & MinFuncCalls(500)

    Parameters
    ----------
    opt_type:
        A class name or an optimizer class (only its ``__name__`` is compared).
    """

    def __init__(self, opt_type: str | type) -> None:
        super().__init__()
        if isinstance(opt_type, type):
            opt_type = opt_type.__name__
        if not isinstance(opt_type, str) or not opt_type:
            raise ConfigError(
                "TypeHunter: opt_type must be an optimizer class or its name, e.g. "
                f"opt_type='RandomOptimizer', got {opt_type!r}"
            )
        self.opt_type = opt_type

    def _settings(self) -> str:
        return f"opt_type={self.opt_type!r}"

    def _check(self, run: RunView, hunter_id: int, victim_id: int) -> Decision:
        actual = run.optimizer(victim_id).opt_type
        fired = actual == self.opt_type
        if fired:
            return Decision(True, f"{self._label()}: opt {victim_id} is a {actual}")
        return Decision(False, f"{self._label()}: opt {victim_id} is a {actual}, not a {self.opt_type}")
