"""Evaluation outcomes: one objective call, checked and timed, and a generation's batch."""

from __future__ import annotations

import enum
import functools
import inspect
import json
import math
import numbers
import os
import pickle
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

#: what an optimizer is told about a failed evaluation (the ``on_error`` setting)
ON_ERROR_POLICIES = ("penalty", "resample", "raise")

__all__ = ["ON_ERROR_POLICIES", "EvalStatus", "Outcome", "EvalBatch", "PointBatch", "evaluate_one", "value_outcome",
           "failed_outcome", "check_value", "where_json", "is_coroutine_task", "META_WHERE"]

#: the key of an evaluation's metadata under which the library says where it ran
META_WHERE = "where"


class EvalStatus(str, enum.Enum):
    """What happened to one evaluation."""

    OK = "ok"
    FAILED = "failed"  # the task raised, or returned NaN/inf/None/a non-scalar
    TIMED_OUT = "timed_out"  # killed at the per-evaluation deadline
    CRASHED = "crashed"  # the process running it died
    MEMORY = "memory_exceeded"  # killed when its process passed memory_limit


class Outcome(NamedTuple):
    """One evaluation as the runner sees it (a named tuple: created once per evaluation,
    so it must be cheap)."""

    fx: float
    status: EvalStatus
    t_start: float  # wall clock, seconds since the epoch
    duration: float  # seconds
    worker: str
    error: str | None = None  # message and traceback text
    exc_pickle: bytes | None = None  # the original exception (tblib-pickled), if any
    meta: str | None = None  # JSON object: the task's metadata, and where it ran (META_WHERE)


def is_coroutine_task(task: Any) -> bool:
    """Whether ``task`` is an ``async def`` function, a ``functools.partial`` of one, or an
    object whose ``__call__`` is ``async def``: calling it gives a coroutine to await."""
    if inspect.iscoroutinefunction(task):
        return True
    if inspect.isfunction(task) or inspect.ismethod(task) or not callable(task):
        return False
    return inspect.iscoroutinefunction(type(task).__call__)


@functools.lru_cache(maxsize=1024)
def _where(worker: str, pid: int, gpu: str | None) -> str:
    where: dict[str, Any] = {"worker": worker, "host": socket.gethostname(), "pid": pid}
    if gpu is not None:
        where["gpu"] = gpu
    return json.dumps(where)


def where_json(worker: str, pid: int | None = None, gpu: str | None = None) -> str:
    """Where an evaluation runs, as a JSON object: the worker's label, the host, the pid
    and, if the process was given one (``CUDA_VISIBLE_DEVICES``), the GPU.  ``pid`` and
    ``gpu`` default to this process's own."""
    if pid is None:
        pid = os.getpid()
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    return _where(worker, pid, gpu)


def _plain_meta(where: str) -> str:
    return '{"' + META_WHERE + '": ' + where + "}"


def split_meta(value: Any, where: str) -> tuple[Any, str | None, str | None]:
    """``value`` as the task returned it → ``(value, meta JSON, problem)``.  A task may
    return ``(value, dict)``; the dict must be JSON-serialisable, and the library adds
    :data:`META_WHERE` to it."""
    if type(value) is tuple and len(value) == 2 and isinstance(value[1], dict):
        user = value[1]
        if META_WHERE in user:
            return value[0], None, (f"the task's metadata uses the key {META_WHERE!r}, which glompo_like "
                                    "keeps for where the evaluation ran; rename that key")
        try:
            meta = json.dumps({**user, META_WHERE: json.loads(where)})
        except (TypeError, ValueError) as e:
            return value[0], None, (f"the task returned metadata that cannot be stored as JSON ({e}); "
                                    "return (value, dict) with str keys and numbers, strings, lists or "
                                    "dicts as values")
        return value[0], meta, None
    if type(value) is tuple and len(value) == 2 and not isinstance(value[1], (int, float)):
        return value, None, (f"the task returned a pair whose second item is a {type(value[1]).__name__}; "
                             "return a number, or (number, dict) with metadata")
    return value, _plain_meta(where), None


def check_value(value: Any) -> tuple[float | None, str | None]:
    """Return ``(fx, None)`` for a usable value, else ``(None, problem)``.

    Usable: a real number (Python or NumPy, not a bool), or an array holding exactly one,
    that is finite as a float.  Strings, complex numbers, bools, ``None``, arrays of other
    sizes, NaN, infinities and integers too large for a float are not."""
    if value is None:
        return None, "task returned None"
    if inspect.iscoroutine(value):
        value.close()  # never awaited: close it, so Python does not warn about it later
        return None, ("task returned a coroutine: an async def task is recognised when the manager is "
                      "built (inspect.iscoroutinefunction) and needs Level 2 backend='asyncio'; if it is "
                      "hidden behind a plain function, pass the async function itself")
    if isinstance(value, (bool, np.bool_)):
        return None, f"task returned a bool ({value}); it must return a number"
    if isinstance(value, (complex, np.complexfloating)):
        return None, f"task returned a complex number ({value}); it must return a real number"
    if isinstance(value, numbers.Real):
        try:
            fx = float(value)
        except OverflowError:
            return None, f"task returned {type(value).__name__} {_short(value)}, too large for a float"
    elif isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        arr = np.asarray(value)
        if arr.size != 1:
            return None, f"task returned an array of shape {arr.shape}; it must return one number"
        if arr.dtype.kind not in "fiu":
            return None, f"task returned an array of dtype {arr.dtype}; it must return a real number"
        fx = float(arr.reshape(()))
    else:
        return None, f"task returned a non-numeric {type(value).__name__} ({_short(value)})"
    if not math.isfinite(fx):
        return None, f"task returned {fx}"
    return fx, None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_users_interrupt(e: BaseException) -> bool:
    """A ``KeyboardInterrupt`` in a main thread where Ctrl-C raises it is the user's, not
    the task's: it must end the run, not be logged as a failed evaluation.  (Glompo's child
    processes ignore SIGINT, and other threads never receive it, so there a
    ``KeyboardInterrupt``, like a ``SystemExit``, is the task's own doing.)"""
    return (isinstance(e, KeyboardInterrupt) and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)


def _pickle_exception(e: BaseException) -> bytes | None:
    try:
        from tblib import pickling_support

        pickling_support.install(e)
        return pickle.dumps(e)
    except Exception:  # an unpicklable exception still leaves its text in `error`
        return None


_OK = EvalStatus.OK
_FAILED = EvalStatus.FAILED
_isfinite = math.isfinite
_perf = time.perf_counter
_tuple_new = tuple.__new__  # Outcome(...) without the named tuple's Python-level __new__


def evaluate_one(task: Callable[[np.ndarray], Any], x: np.ndarray, worker: str, where: str | None = None) -> Outcome:
    """Call ``task(x)`` and turn whatever happens into an :class:`Outcome`.  ``where``: the
    :func:`where_json` of the worker (computed here if not given)."""
    t_wall = time.time()
    t0 = _perf()
    try:
        value = task(x)
    except BaseException as e:  # SystemExit, KeyboardInterrupt too: the task's failures
        if is_users_interrupt(e):
            raise
        return failed_outcome(e, t_wall, _perf() - t0, worker, where)
    return value_outcome(value, t_wall, _perf() - t0, worker, where)


def value_outcome(value: Any, t_start: float, duration: float, worker: str, where: str | None = None) -> Outcome:
    """The outcome of an evaluation that returned ``value`` (a number, or ``(number, dict)``
    with metadata)."""
    if where is None:
        where = where_json(worker)
    if type(value) is float and _isfinite(value):  # the common case, fast
        return _tuple_new(Outcome, (value, _OK, t_start, duration, worker, None, None, _plain_meta(where)))
    value, meta, problem = split_meta(value, where)
    if problem is not None:
        return Outcome(math.nan, _FAILED, t_start, duration, worker, problem, None, _plain_meta(where))
    if isinstance(value, float) and _isfinite(value):  # np.float64 and other float subclasses
        return _tuple_new(Outcome, (float(value), _OK, t_start, duration, worker, None, None, meta))
    fx, problem = check_value(value)
    if problem is not None:
        return Outcome(math.nan, _FAILED, t_start, duration, worker, problem, None, meta)
    return Outcome(fx, _OK, t_start, duration, worker, None, None, meta)


def failed_outcome(e: BaseException, t_start: float, duration: float, worker: str,
                   where: str | None = None) -> Outcome:
    """The outcome of an evaluation that raised ``e``."""
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    meta = _plain_meta(where if where is not None else where_json(worker))
    return Outcome(math.nan, _FAILED, t_start, duration, worker, text, _pickle_exception(e), meta)


def lost_outcome(status: EvalStatus, t_start: float, duration: float, worker: str, message: str,
                 where: str | None = None) -> Outcome:
    """An evaluation that did not return (timed out, crashed, over its memory limit),
    recorded by whoever watched it; ``where``: the worker's :func:`where_json`, if known."""
    return Outcome(math.nan, status, t_start, duration, worker, message, None,
                   None if where is None else _plain_meta(where))


@dataclass(frozen=True)
class PointBatch:
    """Noisy objectives (``samples > 1``): the points whose samples are complete, each with
    the aggregate of its successful samples.  This is what the optimizer is told and what
    the run's histories (hunters, checkers, the best point) are made of; the samples
    themselves are the rows of the :class:`EvalBatch` that carries it.

    ``confirmed``: the point was measured ``incumbent_samples`` times (or needed no more),
    so it may become the optimizer's best; ``n``: its successful samples; ``std``: their
    standard deviation (NaN below two)."""

    x: np.ndarray  # (m, dim)
    fx: np.ndarray  # (m,) the aggregate, NaN when no sample succeeded
    std: np.ndarray  # (m,)
    n: np.ndarray  # (m,) int
    confirmed: np.ndarray  # (m,) bool

    @classmethod
    def empty(cls, dim: int) -> PointBatch:
        return cls(np.empty((0, dim)), np.empty(0), np.empty(0), np.empty(0, dtype=int), np.empty(0, dtype=bool))

    @classmethod
    def concat(cls, batches: Sequence[PointBatch]) -> PointBatch:
        if len(batches) == 1:
            return batches[0]
        return cls(*(np.concatenate([getattr(b, f) for b in batches]) for f in ("x", "fx", "std", "n", "confirmed")))

    @property
    def ok(self) -> np.ndarray:
        return self.n > 0

    def __len__(self) -> int:
        return len(self.fx)


@dataclass(frozen=True)
class EvalBatch:
    """A generation's evaluations, sent to the manager as one message: one row per
    evaluation (the log's rows), and, for noisy objectives, the :class:`PointBatch` of the
    points they complete (``points``; ``None``: every row is a point of its own)."""

    x: np.ndarray  # (n, dim)
    fx: np.ndarray  # (n,), nan where not OK
    status: tuple[EvalStatus, ...]
    t_start: np.ndarray  # (n,) wall-clock seconds since the epoch
    duration: np.ndarray  # (n,) seconds
    worker: tuple[str, ...]
    error: tuple[str | None, ...]
    meta: tuple[str | None, ...] | None = None  # JSON text per row
    sample: np.ndarray | None = None  # (n,) int: which sample of its point (None: all 0)
    points: PointBatch | None = None

    @classmethod
    def empty(cls, dim: int, points: PointBatch | None = None) -> EvalBatch:
        return cls(np.empty((0, dim)), np.empty(0), (), np.empty(0), np.empty(0), (), (), (), None, points)

    @classmethod
    def from_outcomes(cls, xs: np.ndarray, outcomes: Sequence[Outcome], sample: Sequence[int] | None = None,
                      points: PointBatch | None = None) -> EvalBatch:
        if not outcomes:
            return cls.empty(np.shape(xs)[-1] if np.ndim(xs) == 2 else 0, points)
        fx, status, t_start, duration, worker, error, _, meta = zip(*outcomes, strict=True)
        return cls(
            x=np.asarray(xs, dtype=float),
            fx=np.array(fx, dtype=float),
            status=status,
            t_start=np.array(t_start, dtype=float),
            duration=np.array(duration, dtype=float),
            worker=worker,
            error=error,
            meta=meta,
            sample=None if sample is None else np.asarray(sample, dtype=int),
            points=points,
        )

    def with_points(self, points: PointBatch | None) -> EvalBatch:
        return replace(self, points=points)

    @classmethod
    def timed_out(cls, x: np.ndarray, t_start: float, worker: str, message: str) -> EvalBatch:
        """One evaluation of ``x`` that was killed at its deadline."""
        outcome = Outcome(math.nan, EvalStatus.TIMED_OUT, t_start, time.time() - t_start, worker, message)
        return cls.from_outcomes(np.asarray([x], dtype=float), [outcome])

    @classmethod
    def concat(cls, batches: Sequence[EvalBatch]) -> EvalBatch:
        if len(batches) == 1:
            return batches[0]
        pts = [b.points for b in batches if b.points is not None]
        return cls(
            x=np.concatenate([b.x for b in batches]),
            fx=np.concatenate([b.fx for b in batches]),
            status=sum((b.status for b in batches), ()),
            t_start=np.concatenate([b.t_start for b in batches]),
            duration=np.concatenate([b.duration for b in batches]),
            worker=sum((b.worker for b in batches), ()),
            error=sum((b.error for b in batches), ()),
            meta=sum((b.meta if b.meta is not None else (None,) * len(b) for b in batches), ()),
            sample=(None if all(b.sample is None for b in batches) else np.concatenate(
                [b.sample if b.sample is not None else np.zeros(len(b), dtype=int) for b in batches])),
            points=PointBatch.concat(pts) if pts else None,
        )

    def __len__(self) -> int:
        return len(self.fx)

    @property
    def all_ok(self) -> bool:
        return self.status.count(_OK) == len(self.status)  # by identity first: no Python call per row

    @property
    def ok(self) -> np.ndarray:
        if self.all_ok:
            return np.ones(len(self.status), bool)
        return np.fromiter((s is _OK for s in self.status), bool, len(self.status))

    def status_texts(self) -> list[str]:
        if self.all_ok:
            return ["ok"] * len(self.status)
        return [s.value for s in self.status]
