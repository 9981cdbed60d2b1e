"""Evaluation outcomes: one objective call, checked and timed, and a generation's batch."""

from __future__ import annotations

import enum
import math
import numbers
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

#: what an optimizer is told about a failed evaluation (the ``on_error`` setting)
ON_ERROR_POLICIES = ("penalty", "resample", "raise")

__all__ = ["ON_ERROR_POLICIES", "EvalStatus", "Outcome", "EvalBatch", "evaluate_one", "value_outcome", "failed_outcome", "check_value"]


class EvalStatus(str, enum.Enum):
    """What happened to one evaluation."""

    OK = "ok"
    FAILED = "failed"  # the task raised, or returned NaN/inf/None/a non-scalar
    TIMED_OUT = "timed_out"  # killed at the per-evaluation deadline
    CRASHED = "crashed"  # the process running it died


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


def check_value(value: Any) -> tuple[float | None, str | None]:
    """Return ``(fx, None)`` for a usable value, else ``(None, problem)``.

    Usable: a real number (Python or NumPy, not a bool), or an array holding exactly one,
    that is finite as a float.  Strings, complex numbers, bools, ``None``, arrays of other
    sizes, NaN, infinities and integers too large for a float are not."""
    if value is None:
        return None, "task returned None"
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


def evaluate_one(task: Callable[[np.ndarray], Any], x: np.ndarray, worker: str) -> Outcome:
    """Call ``task(x)`` and turn whatever happens into an :class:`Outcome`."""
    t_wall = time.time()
    t0 = _perf()
    try:
        value = task(x)
    except BaseException as e:  # SystemExit, KeyboardInterrupt too: the task's failures
        if is_users_interrupt(e):
            raise
        return failed_outcome(e, t_wall, _perf() - t0, worker)
    return value_outcome(value, t_wall, _perf() - t0, worker)


def value_outcome(value: Any, t_start: float, duration: float, worker: str) -> Outcome:
    """The outcome of an evaluation that returned ``value``."""
    if type(value) is float and _isfinite(value):  # the common case, fast
        return _tuple_new(Outcome, (value, _OK, t_start, duration, worker, None, None))
    if isinstance(value, float) and _isfinite(value):  # np.float64 and other float subclasses
        return _tuple_new(Outcome, (float(value), _OK, t_start, duration, worker, None, None))
    fx, problem = check_value(value)
    if problem is not None:
        return Outcome(math.nan, _FAILED, t_start, duration, worker, problem)
    return Outcome(fx, _OK, t_start, duration, worker)


def failed_outcome(e: BaseException, t_start: float, duration: float, worker: str) -> Outcome:
    """The outcome of an evaluation that raised ``e``."""
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return Outcome(math.nan, _FAILED, t_start, duration, worker, text, _pickle_exception(e))


@dataclass(frozen=True)
class EvalBatch:
    """A generation's evaluations, sent to the manager as one message."""

    x: np.ndarray  # (n, dim)
    fx: np.ndarray  # (n,), nan where not OK
    status: tuple[EvalStatus, ...]
    t_start: np.ndarray  # (n,) wall-clock seconds since the epoch
    duration: np.ndarray  # (n,) seconds
    worker: tuple[str, ...]
    error: tuple[str | None, ...]

    @classmethod
    def empty(cls, dim: int) -> EvalBatch:
        return cls(np.empty((0, dim)), np.empty(0), (), np.empty(0), np.empty(0), (), ())

    @classmethod
    def from_outcomes(cls, xs: np.ndarray, outcomes: Sequence[Outcome]) -> EvalBatch:
        if not outcomes:
            return cls.empty(np.shape(xs)[-1] if np.ndim(xs) == 2 else 0)
        fx, status, t_start, duration, worker, error, _ = zip(*outcomes, strict=True)
        return cls(
            x=np.asarray(xs, dtype=float),
            fx=np.array(fx, dtype=float),
            status=status,
            t_start=np.array(t_start, dtype=float),
            duration=np.array(duration, dtype=float),
            worker=worker,
            error=error,
        )

    @classmethod
    def timed_out(cls, x: np.ndarray, t_start: float, worker: str, message: str) -> EvalBatch:
        """One evaluation of ``x`` that was killed at its deadline."""
        outcome = Outcome(math.nan, EvalStatus.TIMED_OUT, t_start, time.time() - t_start, worker, message)
        return cls.from_outcomes(np.asarray([x], dtype=float), [outcome])

    @classmethod
    def concat(cls, batches: Sequence[EvalBatch]) -> EvalBatch:
        if len(batches) == 1:
            return batches[0]
        return cls(
            x=np.concatenate([b.x for b in batches]),
            fx=np.concatenate([b.fx for b in batches]),
            status=sum((b.status for b in batches), ()),
            t_start=np.concatenate([b.t_start for b in batches]),
            duration=np.concatenate([b.duration for b in batches]),
            worker=sum((b.worker for b in batches), ()),
            error=sum((b.error for b in batches), ()),
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
