"""Deliberately faulty tasks for the fault tests (module level: importable by children)."""

from __future__ import annotations

import faulthandler
import os
import subprocess
import time

import numpy as np

_calls = 0
_pid = os.getpid()


def _count() -> int:
    """Calls of a faulty task in this process (a forked child starts again from 0: calls
    made before the fork, by an earlier test in the parent, do not count)."""
    global _calls, _pid
    if os.getpid() != _pid:
        _pid, _calls = os.getpid(), 0
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


def sleeps_3s(x):
    time.sleep(3.0)
    return sphere(x)


def name_error(x):
    return undefined_name + sphere(x)  # noqa: F821  (a typo: NameError on every call)


def fails_first_then_works(x):
    """Fails on the first 20 calls of its process, then works."""
    if _count() <= 20:
        raise ValueError("warming up")
    return sphere(x)


def fails_60_percent(x):
    """Fails where the first coordinate is above -0.2 (60 % of a uniform box [-1, 1])."""
    if x[0] > -0.2:
        raise ValueError("diverged")
    return sphere(x)


from glompo_like.optimizers import RandomOptimizer  # noqa: E402  (the optimizers below)


class LockedStateOptimizer(RandomOptimizer):
    """Random search whose state holds a lock, so it cannot be pickled."""

    def _get_state(self):
        import threading

        return {**super()._get_state(), "lock": threading.Lock()}


def slow_now_and_then(x):
    """Most calls are quick; one in ten sleeps 1.5 s (a long evaluation)."""
    if _count() % 10 == 0:
        time.sleep(1.5)
    return sphere(x)


class WrongColumns(RandomOptimizer):
    """Asks points with one column too many."""

    def _ask(self):
        return np.zeros((4, self.bounds.dim + 1))


class AsksNothing(RandomOptimizer):
    def _ask(self):
        return np.empty((0, self.bounds.dim))


class AsksNaN(RandomOptimizer):
    def _ask(self):
        xs = super()._ask()
        xs[1, 0] = np.nan
        return xs


class AsksOutside(RandomOptimizer):
    def _ask(self):
        xs = super()._ask()
        xs[2, 1] = self.bounds.upper[1] + 1.0
        return xs


class OverriddenAskOutside(RandomOptimizer):
    """Overrides the public ask (bypassing BaseOptimizer's checks): the runner checks it."""

    def ask(self):
        return np.full((3, self.bounds.dim), 7.0)


class TellRaises(RandomOptimizer):
    def _tell(self, xs, fs):
        if self.n_told > 8:  # the third generation of 4
            raise RuntimeError("bookkeeping bug")
        super()._tell(xs, fs)


class AsyncAsksOutside(RandomOptimizer):
    """Asynchronous random search whose third candidate is outside the bounds."""

    def _ask_one(self):
        token, x = super()._ask_one()
        if self.n_asked == 2:
            x = x + 100.0
        return token, x


def system_exit_in_region(x):
    if x[0] > 0.5:
        raise SystemExit(3)
    return sphere(x)


def keyboard_interrupt_in_region(x):
    if x[0] > 0.5:
        raise KeyboardInterrupt("the task's own")
    return sphere(x)


def overflow_in_region(x):
    return 10**400 if x[0] > 0.5 else sphere(x)


def string_in_region(x):
    return "1.5" if x[0] > 0.5 else sphere(x)


def complex_in_region(x):
    return np.complex128(1.5 + 0j) if x[0] > 0.5 else sphere(x)


def bool_in_region(x):
    return True if x[0] > 0.5 else sphere(x)


def sleeps_30s(x):
    time.sleep(30.0)
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
