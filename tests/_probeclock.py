"""Stand-in clocks for the task probe of ``backend="auto"`` and ``thread_slice="auto"``.

The probe measures wall and CPU time (``glompo_like.execution.auto.wall_clock`` and
``cpu_clock``).  On a busy machine those measurements say more about the machine than
about the task, so tests install :data:`CLOCKS` in their place and use the tasks below,
which *declare* how long they take: time passes only when a task says so.  The choice
then depends on the task's declared profile alone, whatever the machine is doing.

The tasks are module functions, so they pickle by reference; in other processes they
advance that process's own (unused) clocks.
"""

from __future__ import annotations

import threading

import numpy as np

from glompo_like.execution import auto


class ProbeClocks:
    """A wall clock shared by all threads and a CPU clock per thread, both advanced by
    :meth:`spend`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wall = 0.0
        self._cpu: dict[int, float] = {}

    def spend(self, wall: float, cpu: float) -> None:
        """An evaluation that took ``wall`` seconds, ``cpu`` of them computing (the rest
        waiting: a sleep, I/O, another process).  Evaluations in two threads at once still
        add up on the wall clock: the stand-in tasks hold the GIL while they "compute"."""
        with self._lock:
            self._wall += wall
            me = threading.get_ident()
            self._cpu[me] = self._cpu.get(me, 0.0) + cpu

    def wall(self) -> float:
        with self._lock:
            return self._wall

    def cpu(self) -> float:
        with self._lock:
            return self._cpu.get(threading.get_ident(), 0.0)

    def install(self, monkeypatch) -> ProbeClocks:
        monkeypatch.setattr(auto, "wall_clock", self.wall)
        monkeypatch.setattr(auto, "cpu_clock", self.cpu)
        return self


CLOCKS = ProbeClocks()


def install(monkeypatch) -> ProbeClocks:
    """Fresh clocks for this test, in the probe's place (undone by ``monkeypatch``)."""
    global CLOCKS
    CLOCKS = ProbeClocks()
    return CLOCKS.install(monkeypatch)


def _value(x) -> float:
    return float(np.sum(np.asarray(x) ** 2))


def computes_0_1_ms(x):
    """Pure computation, 0.1 ms: holds the GIL, fast enough for turns to matter."""
    CLOCKS.spend(1e-4, 1e-4)
    return _value(x)


def computes_5_ms(x):
    """Pure computation, 5 ms: holds the GIL and is worth a process pool."""
    CLOCKS.spend(5e-3, 5e-3)
    return _value(x)


def waits_1_ms(x):
    """1 ms, nearly all of it waiting: releases the GIL."""
    CLOCKS.spend(1e-3, 2e-5)
    return _value(x)


def waits_10_ms(x):
    """10 ms of waiting: releases the GIL, costly enough for a pool."""
    CLOCKS.spend(1e-2, 5e-5)
    return _value(x)


def waits_6_ms(x):
    """6 ms: slower than the turns' threshold, whatever it does with the GIL."""
    CLOCKS.spend(6e-3, 1e-4)
    return _value(x)
