"""Selectors: which optimizer the manager starts next.

An entry names an optimizer class, its own keyword arguments and its Level 2 parallelism::

    CMAOptimizer                                             # class alone
    (CMAOptimizer, {"sigma0": 0.5, "workers": 4, "backend": "threads"})

``workers`` and ``backend`` are taken out of the kwargs into the :class:`OptimizerEntry`,
and so are the pool options ``max_evals_per_worker``, ``gpus`` and ``resources``
(:mod:`glompo_like.evaluation.options`); the rest go to the class.  ``bounds``, ``x0`` and ``seed`` are supplied by the manager.

A selector is a pure policy: ``select(run, free_slots, rng)`` returns the entry to start
next, or ``None`` to start nothing now (no entry fits the free slots, or spawning is over).
"""

from __future__ import annotations

import bisect
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from .. import validation as v
from ..errors import ConfigError, ConfigTypeError
from ..record.view import RunView
from .entries import ENTRY_FORM, OptimizerEntry, as_entry, is_single_entry

__all__ = [
    "OptimizerEntry",
    "as_entry",
    "BaseSelector",
    "CycleSelector",
    "ChainSelector",
    "RandomSelector",
    "IPOPSelector",
]



# ------------------------------------------------------------------------- selectors
class BaseSelector(ABC):
    """Base class of selectors.

    Subclasses implement ``_choose(run, free_slots, rng)``; :meth:`select` applies the spawn
    controls and the slot check.

    Parameters
    ----------
    entries:
        One entry or a sequence of entries (see :func:`as_entry`).
    max_spawns:
        Start no more optimizers once the run has started this many.
    max_f_evals:
        Start no more optimizers once the run has done this many evaluations.
    """

    def __init__(
        self, entries: Any, *, max_spawns: int | None = None, max_f_evals: int | None = None
    ) -> None:
        owner = type(self).__name__
        items = [entries] if is_single_entry(entries) else entries
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise ConfigTypeError(
                f"{owner}: entries must be an optimizer entry or a list of them; each {ENTRY_FORM}"
            )
        if not items:
            raise ConfigError(f"{owner}: entries is empty; give at least one optimizer class")
        self._entries = tuple(as_entry(e, f"{owner} entry {i}") for i, e in enumerate(items))
        self.max_spawns = v.integer(max_spawns, "max_spawns", owner=owner, minimum=1, none_ok=True)
        self.max_f_evals = v.integer(max_f_evals, "max_f_evals", owner=owner, minimum=1, none_ok=True)

    @property
    def entries(self) -> tuple[OptimizerEntry, ...]:
        return self._entries

    def spawning_over(self, run: RunView) -> bool:
        """True when a spawn control says no more optimizers will ever be started."""
        if self.max_spawns is not None and run.opts_started >= self.max_spawns:
            return True
        return self.max_f_evals is not None and run.f_evals >= self.max_f_evals

    def select(
        self, run: RunView, free_slots: int, rng: np.random.Generator
    ) -> OptimizerEntry | None:
        """The entry to start now, or ``None`` (spawning is over, or it needs more than
        ``free_slots`` slots: wait for optimizers to finish)."""
        if free_slots < 1 or self.spawning_over(run):
            return None
        entry = self._choose(run, free_slots, rng)
        if entry is None or entry.workers > free_slots:
            return None
        return entry

    @abstractmethod
    def _choose(
        self, run: RunView, free_slots: int, rng: np.random.Generator
    ) -> OptimizerEntry | None: ...

    def _settings(self) -> list[str]:
        return []

    def get_state(self) -> dict[str, Any]:
        """State to restore with :meth:`set_state` (picklable); default: none."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore the state returned by :meth:`get_state`."""
        return None

    def __repr__(self) -> str:
        parts = ["[" + ", ".join(e.label for e in self._entries) + "]", *self._settings()]
        if self.max_spawns is not None:
            parts.append(f"max_spawns={self.max_spawns}")
        if self.max_f_evals is not None:
            parts.append(f"max_f_evals={self.max_f_evals}")
        return f"{type(self).__name__}({', '.join(parts)})"


class CycleSelector(BaseSelector):
    """Starts the entries in turn: the ``k``-th optimizer of the run is ``entries[k % n]``.

    If that entry does not fit the free slots, nothing is started until it does.
    """

    def _choose(
        self, run: RunView, free_slots: int, rng: np.random.Generator
    ) -> OptimizerEntry | None:
        return self._entries[run.opts_started % len(self._entries)]


class ChainSelector(BaseSelector):
    """Uses ``entries[i]`` where ``i`` is the number of ``thresholds`` the run's evaluation
    count has reached: e.g. explore with random search, then refine with CMA-ES.

    Parameters
    ----------
    thresholds:
        Strictly increasing evaluation counts, one fewer than the entries.
    """

    def __init__(
        self,
        entries: Any,
        thresholds: Sequence[int],
        *,
        max_spawns: int | None = None,
        max_f_evals: int | None = None,
    ) -> None:
        super().__init__(entries, max_spawns=max_spawns, max_f_evals=max_f_evals)
        n = len(self._entries)
        if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence):
            raise ConfigTypeError(
                f"ChainSelector: thresholds must be a list of {n - 1} evaluation counts, "
                f"got {type(thresholds).__name__}"
            )
        if len(thresholds) != n - 1:
            raise ConfigError(
                f"ChainSelector: thresholds needs {n - 1} values (one fewer than the {n} entries), "
                f"got {len(thresholds)}"
            )
        if any(isinstance(t, bool) or not isinstance(t, Integral) or t < 1 for t in thresholds):
            raise ConfigError(
                f"ChainSelector: thresholds must be positive integers (evaluation counts), "
                f"got {list(thresholds)!r}"
            )
        if any(a >= b for a, b in zip(thresholds[:-1], thresholds[1:], strict=True)):
            raise ConfigError(
                f"ChainSelector: thresholds must be strictly increasing, got {list(thresholds)!r}"
            )
        self.thresholds = tuple(int(t) for t in thresholds)

    def _settings(self) -> list[str]:
        return [f"thresholds={list(self.thresholds)}"]

    def _choose(
        self, run: RunView, free_slots: int, rng: np.random.Generator
    ) -> OptimizerEntry | None:
        return self._entries[bisect.bisect_right(self.thresholds, run.f_evals)]


class RandomSelector(BaseSelector):
    """Chooses at random among the entries that fit the free slots.

    Parameters
    ----------
    weights:
        Relative chance of each entry (renormalised over those that fit); ``None``: equal.
    """

    def __init__(
        self,
        entries: Any,
        weights: Sequence[float] | None = None,
        *,
        max_spawns: int | None = None,
        max_f_evals: int | None = None,
    ) -> None:
        super().__init__(entries, max_spawns=max_spawns, max_f_evals=max_f_evals)
        n = len(self._entries)
        self.weights: tuple[float, ...] | None = None
        if weights is None:
            return
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
            raise ConfigTypeError(
                f"RandomSelector: weights must be None or a list of {n} numbers, "
                f"got {type(weights).__name__}"
            )
        if len(weights) != n:
            raise ConfigError(
                f"RandomSelector: weights needs one value per entry ({n}), got {len(weights)}"
            )
        if any(
            isinstance(w, bool) or not isinstance(w, Real) or not math.isfinite(w) or w < 0
            for w in weights
        ) or not sum(weights) > 0:
            raise ConfigError(
                "RandomSelector: weights must be finite numbers >= 0 with a positive sum, "
                f"got {list(weights)!r}"
            )
        self.weights = tuple(float(w) for w in weights)

    def _settings(self) -> list[str]:
        return [] if self.weights is None else [f"weights={list(self.weights)}"]

    def _choose(
        self, run: RunView, free_slots: int, rng: np.random.Generator
    ) -> OptimizerEntry | None:
        fits = [i for i, e in enumerate(self._entries) if e.workers <= free_slots]
        if self.weights is not None:
            fits = [i for i in fits if self.weights[i] > 0]
        if not fits:
            return None
        if self.weights is None:
            return self._entries[fits[int(rng.integers(len(fits)))]]
        w = np.array([self.weights[i] for i in fits])
        return self._entries[fits[int(rng.choice(len(fits), p=w / w.sum()))]]


class IPOPSelector(BaseSelector):
    """Restarts one optimizer with a growing population: the IPOP restart strategy
    (Auger & Hansen, 2005), optionally interleaved with default-population runs (a simple
    form of BIPOP, Hansen 2009).

    The ``k``-th optimizer of the run gets ``popsize_factor = growth ** i`` where ``i``
    steps through ``0, 1, ..., steps - 1`` and then starts again at ``0``: with the
    defaults (``growth=2, steps=6``) the factors are 1, 2, 4, 8, 16, 32, 1, 2, ...  With
    ``interleave=True`` every other optimizer uses factor 1 (1, 2, 1, 4, 1, 8, ...), so
    cheap local runs from new start points alternate with ever larger, more global ones.

    Large populations smooth out regular ruggedness (Rastrigin-like functions) and follow a
    function's global structure; small ones converge fast.  Give the hunters windows in
    generations (``MinFuncCalls(..., min_generations=...)``,
    ``BestUnmoving(..., generations=...)``) so that a large-population optimizer is not
    stopped before it has had a fair number of generations.

    Every step of the schedule is one entry of :attr:`entries`, so per-entry settings
    (``workers``, ``backend``) apply to all of them.

    Parameters
    ----------
    entry:
        One optimizer entry (see :func:`as_entry`); default ``CMAOptimizer``.  Its class
        must take a ``popsize_factor`` keyword (a multiple of its default population), as
        :class:`~glompo_like.optimizers.CMAOptimizer` does; its kwargs must not set
        ``popsize`` or ``popsize_factor``.
    growth:
        Factor between the populations of consecutive steps, a number > 1.
    steps:
        Length of the schedule before it starts again at factor 1 (an integer >= 1); the
        largest factor is ``growth ** (steps - 1)``.
    interleave:
        Alternate default-population optimizers with the growing ones.
    first:
        An optimizer entry started once, as the run's first optimizer, before the schedule
        (which then begins with its first step): e.g. a quick local search,
        ``(ScipyOptimizer, {"ftol": 1e-15})``, that solves smooth unimodal problems in far
        fewer evaluations than CMA-ES.  It is the last of :attr:`entries`.  ``None``: none.
    max_spawns:
        Start no more optimizers once the run has started this many.
    max_f_evals:
        Start no more optimizers once the run has done this many evaluations.
    """

    def __init__(
        self,
        entry: Any = None,
        *,
        growth: float = 2.0,
        steps: int = 6,
        interleave: bool = False,
        first: Any = None,
        max_spawns: int | None = None,
        max_f_evals: int | None = None,
    ) -> None:
        owner = "IPOPSelector"
        if entry is None:
            from ..optimizers import CMAOptimizer

            entry = CMAOptimizer
        if not is_single_entry(entry):
            raise ConfigTypeError(
                f"{owner}: entry must be one optimizer entry (it is restarted with growing "
                f"populations); it {ENTRY_FORM}; got {entry!r}"
            )
        base = as_entry(entry, f"{owner} entry")
        clash = [k for k in ("popsize", "popsize_factor") if k in base.kwargs]
        if clash:
            raise ConfigError(
                f"{owner}: remove {clash} from the kwargs of {base.cls.__name__}: the schedule "
                "sets popsize_factor for every optimizer it starts"
            )
        try:
            params = inspect.signature(base.cls).parameters
        except (TypeError, ValueError):
            params = {}
        if "popsize_factor" not in params and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        ):
            raise ConfigError(
                f"{owner}: {base.cls.__name__} has no popsize_factor argument, so its population "
                "cannot grow; use CMAOptimizer (or an optimizer class that takes popsize_factor)"
            )
        if isinstance(growth, bool) or not isinstance(growth, Real) or not (
            math.isfinite(growth) and growth > 1
        ):
            raise ConfigError(
                f"{owner}: growth must be a finite number > 1 (the factor between consecutive "
                f"populations), got {growth!r}; e.g. growth=2"
            )
        if isinstance(steps, bool) or not isinstance(steps, Integral):
            raise ConfigTypeError(f"{owner}: steps must be an integer >= 1, got {steps!r}; e.g. steps=6")
        if steps < 1:
            raise ConfigError(f"{owner}: steps must be an integer >= 1, got {steps!r}; e.g. steps=6")
        if not isinstance(interleave, (bool, np.bool_)):
            raise ConfigTypeError(f"{owner}: interleave must be True or False, got {interleave!r}")
        self.growth = float(growth)
        self.steps = int(steps)
        self.interleave = bool(interleave)
        self.factors = tuple(self.growth**i for i in range(self.steps))
        entries = [
            OptimizerEntry(base.cls, {**base.kwargs, "popsize_factor": f}, base.workers, base.backend, base.pool,
                           name=f"{owner} entry (popsize_factor={f:g})")
            for f in self.factors
        ]
        self.first: OptimizerEntry | None = None
        if first is not None:
            if not is_single_entry(first):
                raise ConfigTypeError(f"{owner}: first must be one optimizer entry; it {ENTRY_FORM}; got {first!r}")
            self.first = as_entry(first, f"{owner} first")
            entries.append(self.first)
        super().__init__(entries, max_spawns=max_spawns, max_f_evals=max_f_evals)

    def step_of(self, k: int) -> int:
        """Index into :attr:`factors` (and :attr:`entries`) of the schedule's ``k``-th
        optimizer (``k`` counts from 0; with ``first``, the run's ``k + 1``-th)."""
        if self.interleave:
            if k % 2 == 0:
                return 0
            return (k // 2) % (self.steps - 1) + 1 if self.steps > 1 else 0
        return k % self.steps

    def _settings(self) -> list[str]:
        out = [f"growth={self.growth:g}", f"steps={self.steps}", f"interleave={self.interleave}"]
        if self.first is not None:
            out.append(f"first={self.first.label}")
        return out

    def __repr__(self) -> str:
        base = self._entries[0]
        kwargs = {k: v for k, v in base.kwargs.items() if k != "popsize_factor"}
        label = OptimizerEntry(base.cls, kwargs, base.workers, base.backend, base.pool).label
        parts = [label, *self._settings()]
        if self.max_spawns is not None:
            parts.append(f"max_spawns={self.max_spawns}")
        if self.max_f_evals is not None:
            parts.append(f"max_f_evals={self.max_f_evals}")
        return f"IPOPSelector({', '.join(parts)})"

    def _choose(
        self, run: RunView, free_slots: int, rng: np.random.Generator
    ) -> OptimizerEntry | None:
        k = run.opts_started
        if self.first is not None:
            if k == 0:
                return self.first
            k -= 1
        return self._entries[self.step_of(k)]
