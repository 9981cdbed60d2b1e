"""``backend="auto"``: measure the task briefly and choose both levels of parallelism.

The probe evaluates the task at a few random points, in this process:

1. one after another, to learn the time of one evaluation ``t1``;
2. two at once in two threads, to learn whether they overlap: if two concurrent
   evaluations take clearly less than two serial ones, the task releases the GIL (it
   waits, sleeps, calls an external program or a GIL-free extension).

For cheap tasks the probe repeats until it has measured at least ``min_probe_time``
seconds, so the timing is not noise.  Probe evaluations are real evaluations: the manager
logs and counts them (optimizer id 0, type ``probe``).

Decision (see docs/parallelism):

=============================  =====================  ==============================
task                           Level 1                Level 2 (entries with workers>1)
=============================  =====================  ==============================
releases the GIL               threads                threads
holds the GIL, costly          processes(_forced)     processes
cheap (< ``cheap_below`` s)    processes              serial
=============================  =====================  ==============================

Cheap tasks never go to process pools: sending a point to a worker and the value back
costs more than evaluating it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .bounds import Bounds
from .evaluation.core import EvalStatus, Outcome, evaluate_one

__all__ = ["TaskProfile", "probe_task", "choose_backends", "CHEAP_BELOW"]

#: evaluations cheaper than this (seconds) stay in the optimizer's own process
CHEAP_BELOW = 1e-3
#: two concurrent evaluations faster than this fraction of two serial ones: GIL released
CONCURRENT_BELOW = 0.75


@dataclass(frozen=True)
class TaskProfile:
    t_eval: float  # seconds per evaluation (serial)
    concurrency_ratio: float  # wall(2 concurrent) / wall(2 serial); ~0.5 GIL-free, ~1 GIL-bound
    probes: list[tuple[np.ndarray, Outcome]] = field(default_factory=list, repr=False)

    @property
    def releases_gil(self) -> bool:
        return self.concurrency_ratio < CONCURRENT_BELOW

    @property
    def cheap(self) -> bool:
        return self.t_eval < CHEAP_BELOW


def probe_task(
    task: Callable, bounds: Bounds, rng: np.random.Generator, min_probe_time: float = 0.02,
    max_serial: int = 32,
) -> TaskProfile:
    """Measure ``task`` (see the module docstring): at most ``2 * max_serial`` evaluations,
    and only two plus two when one evaluation takes longer than ``min_probe_time``."""
    probes: list[tuple[np.ndarray, Outcome]] = []

    def point() -> np.ndarray:
        return bounds.lower + bounds.width * rng.random(bounds.dim)

    def evaluate(x: np.ndarray) -> Outcome:
        return evaluate_one(task, x, "probe")

    # Serial pairs and concurrent pairs (two threads) alternate, so a change in the
    # machine's load during the probe affects both measurements alike.  At least two
    # rounds; more for cheap tasks until the timing means something.
    rounds, t_serial, t_conc = 0, 0.0, 0.0
    with ThreadPoolExecutor(2, thread_name_prefix="glompo-probe") as ex:
        while rounds < 2 or (t_serial < min_probe_time and 2 * rounds < max_serial):
            xs = [point(), point()]
            t0 = time.perf_counter()
            probes.extend((x, evaluate(x)) for x in xs)
            t_serial += time.perf_counter() - t0
            xs = [point(), point()]
            t0 = time.perf_counter()
            probes.extend(zip(xs, ex.map(evaluate, xs), strict=True))
            t_conc += time.perf_counter() - t0
            rounds += 1
    t1 = t_serial / (2 * rounds)
    ratio = t_conc / t_serial if t_serial > 0 else 1.0
    return TaskProfile(t_eval=t1, concurrency_ratio=ratio, probes=probes)


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
        reason = (
            f"task takes {profile.t_eval * 1e3:.3g} ms per evaluation and two concurrent "
            f"evaluations take {profile.concurrency_ratio:.2f}x the time of two serial ones: {kind}"
        )
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
