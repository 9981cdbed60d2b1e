"""Deliberately faulty tasks for the fault tests (module level: importable by children)."""

from __future__ import annotations

import faulthandler
import os
import subprocess
import time

import numpy as np

_calls = 0


def _count() -> int:
    global _calls
    _calls += 1
    return _calls


def sphere(x):
    return float(np.sum(np.asarray(x) ** 2))


def raises_in_region(x):
    if x[0] > 0.5:
        raise ValueError("boom: simulator diverged")
    return sphere(x)


def nan_in_region(x):
    return float("nan") if x[0] > 0.5 else sphere(x)


def inf_in_region(x):
    return float("inf") if x[0] > 0.5 else sphere(x)


def none_in_region(x):
    return None if x[0] > 0.5 else sphere(x)


def array_in_region(x):
    return np.ones(3) if x[0] > 0.5 else sphere(x)


def always_raises(x):
    raise RuntimeError("never works")


def flaky(x):
    """Fails on every other call in a process: a retry of the same point succeeds."""
    if _count() % 2 == 0:
        raise OSError("transient licence-server hiccup")
    return sphere(x)


def hangs_on_fifth_call(x):
    if _count() % 5 == 0:
        time.sleep(60)
    return sphere(x)


def exits_on_third_call(x):
    if _count() == 3:
        os._exit(7)
    return sphere(x)


def segfaults_on_third_call(x):
    if _count() == 3:
        faulthandler.disable()  # keep the test output clean
        faulthandler._sigsegv()
    return sphere(x)


def slow(x):
    time.sleep(0.02)
    return sphere(x)


def hangs_in_external_process(x, pidfile=None):
    """Starts an external program (like a simulator) that hangs; records its pid."""
    pidfile = pidfile or os.environ["GLOMPO_TEST_PIDFILE"]
    if _count() == 2:
        proc = subprocess.Popen(["sleep", "60"])
        with open(pidfile, "a") as f:
            f.write(f"{proc.pid}\n")
        proc.wait()
    return sphere(x)


class SlowToLoad:
    """``sphere``, whose loading in a worker process waits until the file ``gate`` exists
    (at most ``limit`` seconds): a worker that cannot be ready until the test says so."""

    def __init__(self, gate: str, limit: float = 60.0) -> None:
        self.gate, self.limit = gate, limit

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        deadline = time.monotonic() + self.limit
        while not os.path.exists(self.gate) and time.monotonic() < deadline:
            time.sleep(0.01)

    def __call__(self, x):
        return sphere(x)
