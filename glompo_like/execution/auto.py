"""``backend="auto"``: measure the task briefly and choose both levels of parallelism.

The probe evaluates the task at a few random points, in this process:

1. one after another, to learn the time of one evaluation ``t1`` and how much of it is
   CPU time: a task that mostly waits (sleeps, I/O, another process) releases the GIL;
2. as many at once in two threads, to learn whether they overlap: if two concurrent
   evaluations take clearly less than two serial ones, the task releases the GIL (it
   waits, or computes in a GIL-free extension).

Fast tasks are evaluated in blocks of about a millisecond (so handing work to the
threads does not pass for a lack of overlap), and the probe repeats until it has measured
at least ``min_probe_time`` seconds or spent its evaluations.  Probe evaluations are real
evaluations: the manager logs and counts them (optimizer id 0, type ``probe``).

Decision (see docs/parallelism):

=============================  =====================  ==============================
task                           Level 1                Level 2 (entries with workers>1)
=============================  =====================  ==============================
releases the GIL               threads                threads
holds the GIL, costly          threads (see below)    processes
cheap (< ``cheap_below`` s)    processes              serial
=============================  =====================  ==============================

Cheap tasks never go to process pools: sending a point to a worker and the value back
costs more than evaluating it.  When every entry evaluates in a process pool, an
optimizer's own work is only its ask and tell, so the optimizers run as threads; an entry
that evaluates serially (``workers=1``) needs processes, ``processes_forced`` if another
entry has a pool.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..bounds import Bounds
from ..evaluation.core import EvalStatus, Outcome, evaluate_one

__all__ = ["TaskProfile", "probe_task", "choose_backends", "CHEAP_BELOW", "probe_for_turns", "choose_thread_slice",
           "TURNS_BELOW", "AUTO_THREAD_SLICE", "PROBE_MIN_EVALS"]

#: evaluations cheaper than this (seconds) stay in the optimizer's own process
CHEAP_BELOW = 1e-3
#: two concurrent evaluations faster than this fraction of two serial ones: GIL released
CONCURRENT_BELOW = 0.75
#: evaluations using less CPU time than this fraction of their wall time wait (for a
#: sleep, I/O or another process), and a waiting thread does not hold the GIL; this tells
#: fast waiting tasks apart, whose concurrency the thread hand-over costs would hide
WAITS_BELOW = 0.5
#: ``thread_slice="auto"``: runner threads take turns only for tasks faster than this
#: (seconds) that hold the GIL; slower ones hand the GIL over too rarely to matter
TURNS_BELOW = 5e-3
#: the turn length chosen by ``thread_slice="auto"`` (seconds; see docs/performance)
AUTO_THREAD_SLICE = 0.01
#: the fewest evaluations :func:`probe_for_turns` makes when it probes (one, then two rounds)
PROBE_MIN_EVALS = 9

#: the probe's clocks, looked up at each use: wall time, and the CPU time of the calling
#: thread (tests put in clocks that only advance when a stand-in task says so)
wall_clock: Callable[[], float] = time.perf_counter
cpu_clock: Callable[[], float] = time.thread_time


@dataclass(frozen=True)
class TaskProfile:
    t_eval: float  # seconds per evaluation (serial)
    concurrency_ratio: float  # wall(2 concurrent) / wall(2 serial); ~0.5 GIL-free, ~1 GIL-bound
    probes: list[tuple[np.ndarray, Outcome]] = field(default_factory=list, repr=False)
    cpu_fraction: float = 1.0  # CPU time / wall time of serial evaluations; low: it waits

    @property
    def waits(self) -> bool:
        """Most of an evaluation is spent waiting (sleep, I/O, another process)."""
        return self.cpu_fraction < WAITS_BELOW

    @property
    def releases_gil(self) -> bool:
        return self.waits or self.concurrency_ratio < CONCURRENT_BELOW

    @property
    def cheap(self) -> bool:
        return self.t_eval < CHEAP_BELOW


def probe_task(
    task: Callable, bounds: Bounds, rng: np.random.Generator, min_probe_time: float = 0.02,
    max_serial: int = 32,
) -> TaskProfile:
    """Measure ``task`` (see the module docstring): at most about ``2 * max_serial``
    evaluations, and two rounds of two plus two when one evaluation takes a millisecond
    or more."""
    probes: list[tuple[np.ndarray, Outcome]] = []

    def points(n: int) -> list[np.ndarray]:
        return [bounds.lower + bounds.width * rng.random(bounds.dim) for _ in range(n)]

    def run(xs: list[np.ndarray]) -> list[Outcome]:
        return [evaluate_one(task, x, "probe") for x in xs]

    # A first serial pair sizes the blocks: a block of a fast task holds several
    # evaluations (about 1 ms of them), so handing work to the two threads (tens of µs)
    # does not pass for a lack of concurrency.  Then serial blocks and concurrent blocks
    # (two threads, ``block`` evaluations each) alternate, so a change in the machine's
    # load affects both alike: at least two rounds, more for fast tasks until the timing
    # means something or ``max_serial`` is reached.
    xs = points(2)
    t0, c0 = wall_clock(), cpu_clock()
    probes.extend(zip(xs, run(xs), strict=True))
    t_pair = wall_clock() - t0
    cpu = cpu_clock() - c0
    block = int(min(max(1.0, 1e-3 / max(t_pair / 2, 1e-9)), max(1, (max_serial - 2) // 4)))
    t_ser, n_ser = (t_pair, 2) if block == 1 else (0.0, 0)  # slow: the pair opens round 1
    t_conc, n_conc, rounds = 0.0, 0, 0
    with ThreadPoolExecutor(2, thread_name_prefix="glompo-probe") as ex:
        ex.submit(int).result()  # the threads exist before they are timed
        while True:
            if n_ser < (rounds + 1) * 2 * block:
                xs = points(2 * block)
                t0, c0 = wall_clock(), cpu_clock()
                probes.extend(zip(xs, run(xs), strict=True))
                t_ser += wall_clock() - t0
                cpu += cpu_clock() - c0
                n_ser += 2 * block
            xs = points(2 * block)
            t0 = wall_clock()
            halves = [ex.submit(run, xs[:block]), ex.submit(run, xs[block:])]
            outs = halves[0].result() + halves[1].result()
            t_conc += wall_clock() - t0
            n_conc += 2 * block
            probes.extend(zip(xs, outs, strict=True))
            rounds += 1
            if rounds >= 2 and (t_ser >= min_probe_time or n_ser + 2 * block > max_serial):
                break
    wall = t_ser + (0.0 if block == 1 else t_pair)
    t1 = wall / (n_ser + (0 if block == 1 else 2))
    ratio = (t_conc / n_conc) / (t_ser / n_ser) if t_ser > 0 else 1.0
    return TaskProfile(t_eval=t1, concurrency_ratio=ratio, probes=probes,
                       cpu_fraction=cpu / wall if wall > 0 else 1.0)


def probe_for_turns(task: Callable, bounds: Bounds, rng: np.random.Generator, max_serial: int = 32) -> TaskProfile:
    """The probe for ``thread_slice="auto"``: one evaluation when it takes ``TURNS_BELOW``
    or longer (the answer is then "no turns" whatever the GIL does), else one plus
    :func:`probe_task` (between ``PROBE_MIN_EVALS`` and ``2 * max_serial + 3``)."""
    x = bounds.lower + bounds.width * rng.random(bounds.dim)
    t0 = wall_clock()
    first = evaluate_one(task, x, "probe")
    t_first = wall_clock() - t0
    if first.status is EvalStatus.OK and t_first >= TURNS_BELOW:
        return TaskProfile(t_eval=t_first, concurrency_ratio=math.nan, probes=[(x, first)])
    rest = probe_task(task, bounds, rng, max_serial=max_serial)
    return TaskProfile(rest.t_eval, rest.concurrency_ratio, [(x, first), *rest.probes], rest.cpu_fraction)


def _measured(profile: TaskProfile) -> str:
    return (f"task takes {profile.t_eval * 1e3:.3g} ms per evaluation ({profile.cpu_fraction:.0%} of it CPU "
            f"time), and two concurrent evaluations take {profile.concurrency_ratio:.2f}x the time of two "
            "serial ones")


def choose_thread_slice(profile: TaskProfile) -> tuple[float | None, str]:
    """``thread_slice="auto"``: whether runner threads should take turns, and why."""
    if not any(o.status is EvalStatus.OK for _, o in profile.probes):
        return None, "every probe evaluation failed, so nothing was measured: no turns"
    ms = f"{profile.t_eval * 1e3:.3g} ms"
    if profile.t_eval >= TURNS_BELOW:
        return None, f"task takes {ms} per evaluation: runner threads seldom hand the GIL over, no turns"
    if profile.releases_gil:
        return None, f"{_measured(profile)}: it releases the GIL, and turns would serialise it"
    return AUTO_THREAD_SLICE, (f"{_measured(profile)}: it holds the GIL, so runner threads take turns of "
                               f"{AUTO_THREAD_SLICE * 1e3:g} ms")


def choose_backends(
    profile: TaskProfile,
    l1_requested: str,
    l2_requested: list[tuple[object, int]],
    picklable: bool,
    killable: bool = False,
) -> tuple[str, list[object], str]:
    """Resolve ``"auto"`` at either level.

    ``l2_requested`` holds each selector entry's ``(backend, workers)``; ``killable`` says
    evaluations must run in worker processes (``task_timeout`` is set).  Returns
    ``(level 1, level 2 per entry, reason)``.
    """
    if not any(o.status is EvalStatus.OK for _, o in profile.probes):
        reason = "every probe evaluation failed, so nothing was measured"
        gil_free, cheap = True, True
    else:
        gil_free, cheap = profile.releases_gil, profile.cheap
        kind = "cheap" if cheap else ("releases the GIL" if gil_free else "holds the GIL")
        reason = f"{_measured(profile)}: {kind}"
    if not picklable:
        gil_free = True
        reason += "; the task cannot be pickled, so it stays in threads"
    if killable:
        reason += "; task_timeout needs evaluations in killable worker processes"

    l2: list[object] = []
    for want, workers in l2_requested:
        if want != "auto":
            l2.append(want)
        elif killable and picklable:
            l2.append("processes")
        elif workers == 1 or cheap:
            l2.append("serial")
        elif gil_free:
            l2.append("threads")
        else:
            l2.append("processes")

    l1 = l1_requested
    if l1 == "auto":
        if gil_free and not cheap:
            l1 = "threads"
        elif l2 and all(b == "processes" for b in l2):
            # every evaluation runs in a pool: an optimizer's own work is its ask and tell,
            # which threads do as well, without a process (and its pool's forkserver) to
            # start per optimizer
            l1 = "threads"
            reason += "; every optimizer evaluates in a process pool, so optimizers run as threads"
        elif "processes" in l2:
            l1 = "processes_forced"
        else:
            l1 = "processes" if picklable else "threads"
    elif l1 == "processes" and "processes" in l2:  # daemonic processes cannot own pools
        l2 = [
            "threads" if b == "processes" and want == "auto" else b
            for b, (want, _) in zip(l2, l2_requested, strict=True)
        ]
        reason += "; daemonic backend='processes' cannot own process pools, so Level 2 uses threads"
    return l1, l2, reason
