"""Optimizer entries: an optimizer class, its own keyword arguments and its Level 2
parallelism, checked once when a selector is built (see :mod:`.selectors`)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import InitVar, dataclass, field
from numbers import Integral
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, ConfigTypeError
from ..evaluation import POOLS, can_stream
from ..evaluation.options import PoolOptions, pool_options
from ..optimizers import BaseOptimizer

__all__ = ["OptimizerEntry", "as_entry"]

BACKENDS = (*POOLS, "auto")
_RESERVED = ("bounds", "x0", "seed")
ENTRY_FORM = (
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
    def _pool(self) -> PoolOptions:
        assert self.pool is not None  # (set when the entry is built)
        return self.pool

    @property
    def label(self) -> str:
        """Short description, e.g. ``CMAOptimizer(sigma0=0.5)[workers=4, backend='threads']``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        level2 = ""
        if self.workers != 1 or self.backend != "serial" or self._pool.auto:
            extra = "".join(f", {k}={v!r}" for k, v in self._pool.describe().items())
            level2 = f"[workers={self._workers_text}, backend={self.backend!r}{extra}]"
        return f"{self.cls.__name__}({args}){level2}"

    @property
    def _workers_text(self) -> Any:
        return "'auto'" if self._pool.auto else self.workers

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self._pool.describe().items())
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
            f"the manager constructs each optimizer.  It {ENTRY_FORM}"
        )
    if not (isinstance(cls, type) and issubclass(cls, BaseOptimizer)):
        raise ConfigTypeError(f"{name} {ENTRY_FORM}; got {cls!r}")
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
            raise ConfigTypeError(f"{name} {ENTRY_FORM}; got a sequence of length {len(item)}")
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


def is_single_entry(item: Any) -> bool:
    if isinstance(item, (OptimizerEntry, type, BaseOptimizer)):
        return True
    return (
        isinstance(item, (tuple, list))
        and len(item) == 2
        and isinstance(item[0], type)
        and isinstance(item[1], Mapping)
    )
