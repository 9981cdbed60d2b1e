"""One optimizer's history in memory: a bounded window, the rest in the evaluation log.

The manager used to keep the value, best-so-far and point of every evaluation of every
optimizer for the whole run (96 bytes an evaluation in 10-D: 100 MB per million).  Policies
read only the recent past (a hunter's window of a few hundred evaluations), and the log
holds everything anyway.  So when the run has a log, each optimizer keeps its last
:attr:`Ledger.keep <glompo_like.record.ledger.Ledger.keep>` evaluations in memory (between
``keep`` and ``2 * keep`` of them: the older half is dropped in one move when the buffer is
full, so an evaluation costs O(1) on average), and an optimizer whose runner has ended keeps
none.  What was dropped is summed up by two numbers, the best value before the window and
its point, which answer :meth:`~glompo_like.record.view.OptimizerView.best_x_at` and
:meth:`~glompo_like.record.view.OptimizerView.best_at` inside the window; anything older is
read back from the log on demand (:class:`LogHistory`), slower but exact.

A run without a log, and a run with ``samples > 1`` (whose history holds each point's
aggregate, not the log's rows), keep every evaluation in memory as before.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["GrowingArray", "HistoryReader", "LogHistory", "DEFAULT_KEEP", "keep_for"]

log = logging.getLogger("glompo_like.manager")

#: evaluations each running optimizer keeps in memory at least (more if a hunter reads further back)
DEFAULT_KEEP = 1000

#: ``reader(opt_id, first_eval_id, stop)``: ``(fx, xs)`` of the optimizer's evaluations
#: ``0 .. stop - 1`` (its own order; ``nan`` for failed ones), from the log
HistoryReader = Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]


class GrowingArray:
    """An append-only float buffer with amortised O(1) appends and read-only views; it can
    drop its oldest items (:meth:`keep_last`)."""

    __slots__ = ("_data", "_n")

    def __init__(self, width: int | None = None, capacity: int = 256) -> None:
        shape = (capacity,) if width is None else (capacity, width)
        self._data = np.empty(shape, dtype=float)
        self._n = 0

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        k = len(values)
        if self._n + k > len(self._data):
            new = np.empty((max(2 * len(self._data), self._n + k),) + self._data.shape[1:])
            new[: self._n] = self._data[: self._n]
            self._data = new
        self._data[self._n : self._n + k] = values
        self._n += k

    def keep_last(self, k: int) -> None:
        """Drop all but the last ``k`` items (``0``: all of them, and the buffer with them)."""
        if k >= self._n:
            return
        if k <= 0:
            self._data = _empty(self._data.shape[1:])
        else:
            self._data[:k] = self._data[self._n - k : self._n]
        self._n = max(0, k)

    def view(self) -> np.ndarray:
        v = self._data[: self._n]
        v = v.view()
        v.flags.writeable = False
        return v

    def __len__(self) -> int:
        return self._n

    def __getstate__(self) -> tuple[np.ndarray, int]:  # (pickled without its spare capacity)
        return self._data[: self._n].copy(), self._n

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], np.ndarray):
            self._data, self._n = state
        else:  # pickled by an older version: (None, {"_data": ..., "_n": ...})
            slots = state[1] if isinstance(state, tuple) else state
            self._data, self._n = slots["_data"], slots["_n"]


_EMPTY: dict[tuple[int, ...], np.ndarray] = {}


def _empty(shape: tuple[int, ...]) -> np.ndarray:
    """One shared empty buffer per shape (never written to: any append reallocates), so
    the thousands of ended optimizers of a long run do not hold one each."""
    a = _EMPTY.get(shape)
    if a is None:
        a = _EMPTY[shape] = np.empty((0,) + shape)
    return a


def keep_for(hunter: Any) -> int:
    """Evaluations each running optimizer keeps in memory for the run's hunter(s):
    :data:`DEFAULT_KEEP`, or more when a hunter declares (``lookback()``) that it reads
    further back."""
    need = 0
    todo = [hunter]
    while todo:
        h = todo.pop()
        todo.extend(getattr(h, "parts", ()))
        fn = getattr(h, "lookback", None)
        if callable(fn):
            need = max(need, int(fn()))
    return max(DEFAULT_KEEP, need + 1)


class LogHistory:
    """Reads the evaluations an optimizer no longer keeps in memory back from the log
    (through the manager's own connection to it: see
    :meth:`~glompo_like.record.log.EvaluationLog.read_history`)."""

    def __init__(self, read: HistoryReader | None, dim: int) -> None:
        self._read = read
        self.dim = dim

    def __call__(self, opt_id: int, first_eval_id: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        fx = np.full(stop, np.nan)
        xs = np.full((stop, self.dim), np.nan)
        if self._read is not None and stop > 0:
            try:
                f, x = self._read(opt_id, first_eval_id, stop)
            except sqlite3.Error as e:  # (e.g. the working_dir was deleted after the run)
                log.warning("could not read optimizer %d's history from the log: %s", opt_id, e)
                return fx, xs
            fx[: len(f)], xs[: len(x)] = f, x  # (not found, e.g. resumed elsewhere: nan)
        return fx, xs
