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
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import InitVar, dataclass, field
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any

import numpy as np

from .. import validation as v
from ..errors import ConfigError, ConfigTypeError
from ..evaluation import POOLS, can_stream
from ..evaluation.options import PoolOptions, pool_options
from ..optimizers import BaseOptimizer
from ..record.view import RunView

__all__ = [
    "OptimizerEntry",
    "as_entry",
    "BaseSelector",
    "CycleSelector",
    "ChainSelector",
    "RandomSelector",
    "IPOPSelector",
]

BACKENDS = (*POOLS, "auto")
_RESERVED = ("bounds", "x0", "seed")
_ENTRY_FORM = (
    "must be a subclass of glompo_like.optimizers.BaseOptimizer or a (class, kwargs) pair, "
    "e.g. CMAOptimizer or (CMAOptimizer, {'sigma0': 0.5, 'workers': 4})"
)


# --------------------------------------------------------------------------- entries
@dataclass(frozen=True, repr=False)
class OptimizerEntry:
    """One optimizer the manager can start: its class, own kwargs and Level 2 parallelism.

    Parameters
    ----------
    cls:
        A subclass of :class:`~glompo_like.optimizers.BaseOptimizer`.
    kwargs:
        The class's own keyword arguments (stored as a read-only copy).
    workers:
        Slots the optimizer occupies: the size of its Level 2 evaluation pool.  ``"auto"``:
        the execution plan sizes the pool from the CPUs when the run starts (see
        :func:`~glompo_like.evaluation.options.auto_workers`); the optimizer then occupies
        one slot, and :attr:`workers` reads 1.
    backend:
        Level 2 backend: one of ``"serial"``, ``"threads"``, ``"processes"``,
        ``"isolated"``, ``"asyncio"``, ``"dask"``, ``"auto"``, or a
        ``concurrent.futures.Executor`` the user owns.  An optimizer with
        ``async_eval=True`` needs one that streams
        (:func:`~glompo_like.evaluation.can_stream`): not ``"dask"``.
    pool:
        The pool's other options (:class:`~glompo_like.evaluation.options.PoolOptions`);
        ``None``: taken from ``kwargs`` (``max_evals_per_worker``, ``gpus``, ``resources``).
    name:
        How error messages refer to this entry (not stored).
    """

    cls: type[BaseOptimizer]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    workers: int = 1
    backend: str | Executor = "serial"
    pool: PoolOptions | None = None
    name: InitVar[str] = "OptimizerEntry"

    def __post_init__(self, name: str) -> None:
        kwargs, pool, workers = _validate_entry(self.cls, self.kwargs, self.workers, self.backend, self.pool, name)
        object.__setattr__(self, "kwargs", MappingProxyType(kwargs))
        object.__setattr__(self, "pool", pool)
        object.__setattr__(self, "workers", workers)

    def build(self, bounds: Any, x0: Any = None, seed: Any = None) -> BaseOptimizer:
        """Construct the optimizer."""
        return self.cls(bounds, x0, seed, **self.kwargs)

    @property
    def label(self) -> str:
        """Short description, e.g. ``CMAOptimizer(sigma0=0.5)[workers=4, backend='threads']``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        level2 = ""
        if self.workers != 1 or self.backend != "serial" or self.pool.auto:
            extra = "".join(f", {k}={v!r}" for k, v in self.pool.describe().items())
            level2 = f"[workers={self._workers_text}, backend={self.backend!r}{extra}]"
        return f"{self.cls.__name__}({args}){level2}"

    @property
    def _workers_text(self) -> Any:
        return "'auto'" if self.pool.auto else self.workers

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.pool.describe().items())
        return (
            f"OptimizerEntry({self.cls.__name__}, {dict(self.kwargs)!r}, workers={self._workers_text}, "
            f"backend={self.backend!r}{extra})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # MappingProxyType does not pickle; rebuild from a plain dict.
        return (type(self), (self.cls, dict(self.kwargs), self.workers, self.backend, self.pool))


def _validate_entry(cls: Any, kwargs: Any, workers: Any, backend: Any, pool: Any,
                    name: str) -> tuple[dict[str, Any], PoolOptions, int]:
    """Check an entry; returns the optimizer's own kwargs, the pool options (taken out of
    the kwargs unless given) and the slots it occupies."""
    _validate_class(cls, name)
    if not isinstance(kwargs, Mapping):
        raise ConfigTypeError(
            f"{name}: the kwargs of {cls.__name__} must be a dict, got {type(kwargs).__name__}"
        )
    _validate_level2(workers, backend, name)
    kwargs = dict(kwargs)
    if pool is None:
        pool, workers = pool_options(kwargs, workers, backend, name)
    elif not isinstance(pool, PoolOptions):
        raise ConfigTypeError(f"{name}: pool must be a PoolOptions or None, got {type(pool).__name__}")
    _validate_kwargs(cls, kwargs, name)
    _validate_async(cls, kwargs, backend, name)
    return kwargs, pool, workers


def _validate_class(cls: Any, name: str) -> None:
    if isinstance(cls, BaseOptimizer):
        raise ConfigTypeError(
            f"{name} is an optimizer instance ({cls!r}); pass its class (and kwargs) instead: "
            f"the manager constructs each optimizer.  It {_ENTRY_FORM}"
        )
    if not (isinstance(cls, type) and issubclass(cls, BaseOptimizer)):
        raise ConfigTypeError(f"{name} {_ENTRY_FORM}; got {cls!r}")
    if inspect.isabstract(cls):
        raise ConfigError(f"{name}: {cls.__name__} is abstract; use a concrete optimizer class")


def _validate_level2(workers: Any, backend: Any, name: str) -> None:
    if workers == "auto" and isinstance(workers, str):
        pass  # checked with the pool options
    elif isinstance(workers, bool) or not isinstance(workers, Integral):
        raise ConfigTypeError(f"{name}: workers must be an integer >= 1 or 'auto', got {workers!r}")
    elif workers < 1:
        raise ConfigError(f"{name}: workers must be an integer >= 1, got {workers!r}")
    if isinstance(backend, str):
        if backend not in BACKENDS:
            raise ConfigError(
                f"{name}: unknown backend {backend!r}; use one of {', '.join(map(repr, BACKENDS))} "
                "or a concurrent.futures.Executor"
            )
    elif not isinstance(backend, Executor):
        raise ConfigTypeError(
            f"{name}: backend must be one of {', '.join(map(repr, BACKENDS))} or a "
            f"concurrent.futures.Executor, got {type(backend).__name__}"
        )


def _validate_kwargs(cls: type[BaseOptimizer], kwargs: Mapping[str, Any], name: str) -> None:
    bad_keys = [k for k in kwargs if not isinstance(k, str)]
    if bad_keys:
        raise ConfigTypeError(f"{name}: kwargs keys must be strings, got {bad_keys!r}")
    reserved = [k for k in _RESERVED if k in kwargs]
    if reserved:
        raise ConfigError(
            f"{name}: {reserved} must not be given in the kwargs of {cls.__name__}: the manager "
            "supplies bounds, x0 (from the generator) and seed to every optimizer"
        )
    level2 = [k for k in ("workers", "backend") if k in kwargs]
    if level2:
        raise ConfigError(
            f"{name}: {level2} are entry settings, not {cls.__name__} kwargs; pass them as "
            "OptimizerEntry(..., workers=..., backend=...) or in a (class, kwargs) pair"
        )
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):  # no introspectable signature: nothing to check
        sig = None
    if sig is not None:
        try:
            sig.bind(None, None, None, **kwargs)
        except TypeError as e:
            skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            accepted = [p.name for p in list(sig.parameters.values())[3:] if p.kind not in skip]
            raise ConfigError(
                f"{name}: kwargs {sorted(kwargs)} do not fit {cls.__name__} ({e}); it accepts "
                f"{', '.join(accepted) or 'no keyword arguments'}: remove or rename the others"
            ) from e
    try:
        cls.check_options(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from e


def _validate_async(cls: type[BaseOptimizer], kwargs: Mapping[str, Any], backend: Any, name: str) -> None:
    """Asynchronous evaluation sends each candidate out as soon as a worker is free, which
    needs a Level 2 pool that streams (:func:`~glompo_like.evaluation.can_stream`)."""
    if kwargs.get("async_eval", cls.async_eval) is True and not can_stream(backend):
        raise ConfigError(
            f"{name}: {cls.__name__} with async_eval=True needs a Level 2 pool that takes one "
            f"evaluation at a time as workers come free, and backend={backend!r} evaluates whole "
            "generations only; use backend='processes' or 'threads', or drop async_eval"
        )


def as_entry(item: Any, name: str = "optimizer entry") -> OptimizerEntry:
    """Turn an optimizer class or a ``(class, kwargs)`` pair into a validated entry.

    ``"workers"`` and ``"backend"`` are taken out of the kwargs into the entry.  Errors
    (:class:`ConfigTypeError` / :class:`ConfigError`) name the entry as ``name``.
    """
    if isinstance(item, OptimizerEntry):
        return item
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise ConfigTypeError(f"{name} {_ENTRY_FORM}; got a sequence of length {len(item)}")
        cls, kwargs = item
        if not isinstance(kwargs, Mapping):
            _validate_class(cls, name)
            raise ConfigTypeError(
                f"{name}: the kwargs of {cls.__name__} must be a dict, got {type(kwargs).__name__}"
            )
        kwargs = dict(kwargs)
        workers = kwargs.pop("workers", 1)
        backend = kwargs.pop("backend", "serial")
        return OptimizerEntry(cls, kwargs, workers, backend, name=name)
    return OptimizerEntry(item, {}, name=name)


def _is_single_entry(item: Any) -> bool:
    if isinstance(item, (OptimizerEntry, type, BaseOptimizer)):
        return True
    return (
        isinstance(item, (tuple, list))
        and len(item) == 2
        and isinstance(item[0], type)
        and isinstance(item[1], Mapping)
    )


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
        items = [entries] if _is_single_entry(entries) else entries
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise ConfigTypeError(
                f"{owner}: entries must be an optimizer entry or a list of them; each {_ENTRY_FORM}"
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
        if not _is_single_entry(entry):
            raise ConfigTypeError(
                f"{owner}: entry must be one optimizer entry (it is restarted with growing "
                f"populations); it {_ENTRY_FORM}; got {entry!r}"
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
            if not _is_single_entry(first):
                raise ConfigTypeError(f"{owner}: first must be one optimizer entry; it {_ENTRY_FORM}; got {first!r}")
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
