"""One heap of deadlines: the event loop asks it when to wake up next.

Everything time-based in a run registers here under a key: a time-based checker
(``MaxSeconds``), each optimizer's ``task_timeout``, timed checkpoints, the look for
steering files, the status interval.  The loop blocks until :meth:`Deadlines.next_in`
seconds have passed (or a message arrives), then takes what is due with
:meth:`Deadlines.pop_due`.  Setting a key again replaces its deadline; stale heap entries
are skipped lazily, so every operation is O(log n).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    """Named deadlines on one clock (``clock``: monotonic seconds; tests inject a fake)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._when: dict[Hashable, float] = {}
        self._data: dict[Hashable, Any] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._order = itertools.count()  # ties and unorderable keys: first set, first out

    def set(self, key: Hashable, when: float | None, data: Any = None) -> None:
        """``key`` is due at ``when`` (on :attr:`clock`), with ``data`` for whoever handles
        it (see :meth:`data`); ``None`` clears it."""
        if when is None:
            self.clear(key)
            return
        self._when[key] = when
        self._data[key] = data
        heapq.heappush(self._heap, (when, next(self._order), key))

    def set_in(self, key: Hashable, seconds: float | None, data: Any = None) -> None:
        """``key`` is due ``seconds`` from now; ``None`` clears it."""
        self.set(key, None if seconds is None else self.clock() + seconds, data)

    def clear(self, key: Hashable) -> None:
        self._when.pop(key, None)
        self._data.pop(key, None)

    def data(self, key: Hashable) -> Any:
        """The data set with ``key`` (``None`` if none, or if it is not set)."""
        return self._data.get(key)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._when

    def when(self, key: Hashable) -> float | None:
        return self._when.get(key)

    def _top(self) -> tuple[float, Hashable] | None:
        heap = self._heap
        while heap:
            when, _, key = heap[0]
            if self._when.get(key) == when:
                return when, key
            heapq.heappop(heap)  # replaced or cleared since it was pushed
        return None

    def next_in(self) -> float | None:
        """Seconds until the earliest deadline (0 if one has passed), ``None`` if none."""
        top = self._top()
        return None if top is None else max(0.0, top[0] - self.clock())

    def pop_due(self) -> list[tuple[Hashable, Any]]:
        """Remove the deadlines that have passed; return their ``(key, data)``, earliest
        first."""
        now = self.clock()
        due = []
        while (top := self._top()) is not None and top[0] <= now:
            heapq.heappop(self._heap)
            key = top[1]
            del self._when[key]
            due.append((key, self._data.pop(key, None)))
        return due

    def __len__(self) -> int:
        return len(self._when)
