"""The execution plan: how a run's optimizers run and evaluate, resolved once.

Two steps, both before anything starts:

1. :func:`validate`, at construction: every combination of the Level 1 backend, each
   entry's Level 2 backend, ``task_timeout`` and ``thread_slice`` either works or is refused
   with an error naming the combination and the fix; the task is pickled for process
   backends (so an unpicklable task is refused now, not when a child starts).
2. :func:`resolve`, when the run starts: ``"auto"`` at either level is decided (measuring
   the task: :mod:`.auto`), and so are the start methods and the thread slice.  The result
   is a frozen :class:`ExecutionPlan` with a reason for each choice; it goes into the run
   summary and the checkpoints, and everything that runs optimizers reads it instead of
   deciding again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigError, TaskNotPicklableError
from ..evaluation.core import is_coroutine_task
from ..evaluation.factory import POOLS
from ..evaluation.options import PROCESS_BACKENDS, auto_workers
from ..procs.start import resolve_pool_start_method
from .auto import (
    PROBE_MIN_EVALS,
    TaskProfile,
    choose_backends,
    choose_thread_slice,
    probe_for_turns,
    probe_task,
)

__all__ = ["ExecutionPlan", "validate", "resolve", "pickle_task", "LEVEL2"]

log = logging.getLogger("glompo_like.manager")

LEVEL2 = (*POOLS, "auto")


def pickle_task(task: Callable) -> bytes:
    """Serialise the task for process backends (cloudpickle, so lambdas, closures and
    functions defined in ``__main__`` work), or say exactly what could not be pickled."""
    import cloudpickle

    try:
        return cloudpickle.dumps(task)
    except Exception as e:
        raise TaskNotPicklableError(
            f"task {task!r} cannot be sent to a process backend: {type(e).__name__}: {e}. "
            "Make what it refers to picklable (e.g. open files or connections inside the "
            "task instead of capturing them), or use backend='threads'."
        ) from e


@dataclass(frozen=True)
class ExecutionPlan:
    """How this run executes (see the module docstring).  ``level2`` holds one Level 2
    backend per selector entry, in the selector's order."""

    level1: str
    level2: tuple[Any, ...]
    start_method: str  # of optimizer processes
    workers: tuple[int, ...] = ()  # each entry's pool size (workers="auto" resolved)
    pool_start_method: str | None = None  # of Level 2 process-pool workers (None: no such pool)
    thread_slice: float | None = None
    lockstep: bool = False
    report_interval: float = 0.02
    dask_address: str | None = None
    dask_security: Any = field(default=None, repr=False)  # TLS of that cluster (never shown)
    reasons: dict[str, str] = field(default_factory=dict)
    probe: dict[str, Any] | None = None  # what "auto" measured
    auto_entries: tuple[bool, ...] = ()  # which entries asked for workers="auto"

    def level2_of(self, entry: Any, entries: Sequence[Any]) -> Any:
        """The resolved Level 2 backend of a selector entry (an entry that is not in the
        selector, e.g. a checkpointed one, keeps its own)."""
        for i, e in enumerate(entries):
            if e is entry:
                return self.level2[i]
        return entry.backend

    def workers_of(self, entry: Any, entries: Sequence[Any], backend: Any = None) -> int:
        """The pool size of a selector entry: its ``workers``, or what ``"auto"`` chose.  An
        entry that is not in the selector (a checkpointed one) with ``workers="auto"`` gets
        the size this plan chose for such entries (1 if it evaluates serially)."""
        for i, e in enumerate(entries):
            if e is entry and i < len(self.workers):
                return self.workers[i]
        if getattr(entry.pool, "auto", False) and backend != "serial":
            return max(1, int(self.auto_size or 1))
        return entry.workers

    @property
    def auto_size(self) -> int | None:
        """The pool size ``workers="auto"`` chose (``None``: no such entry)."""
        sizes = [w for w, r in zip(self.workers, self.auto_entries, strict=False) if r]
        return max(sizes) if sizes else None
    def describe(self) -> dict[str, Any]:
        """For the summary (Executors by their type name)."""
        return {
            "level1": self.level1,
            "level2": [b if isinstance(b, str) else type(b).__name__ for b in self.level2],
            "workers": list(self.workers),
            "start_method": self.start_method,
            "pool_start_method": self.pool_start_method,
            "thread_slice": self.thread_slice,
            "lockstep": self.lockstep,
            "report_interval": self.report_interval,
            "dask_address": self.dask_address,
            "dask_tls": None if self.dask_address is None else self.dask_security is not None,
            "reasons": dict(self.reasons),
            "probe": self.probe,
        }


# ----------------------------------------------------------------------------- 1. validate
def validate(settings: Any) -> bytes | None:
    """Refuse every combination that cannot work (see the module docstring); return the
    pickled task where a process may need it (``None`` for threads-only runs)."""
    backend, task_timeout = settings.backend, settings.task_timeout
    entries = settings.opt_selector.entries
    if settings.thread_slice not in (None, "auto") and backend not in ("threads", "auto"):
        raise ConfigError(f"thread_slice applies to backend='threads' only (got backend={backend!r}); "
                          "remove thread_slice or use backend='threads'")
    needs_bytes = backend not in ("threads", "auto")
    may_need_bytes = backend == "auto"
    coroutine = is_coroutine_task(settings.task)
    for i, e in enumerate(entries):
        where = f"opt_selector entry {i} ({e.cls.__name__})"
        _check_entry(where, e, backend, task_timeout, settings.max_jobs)
        _check_models(where, e, settings, coroutine)
        if e.backend in ("dask", *PROCESS_BACKENDS):
            needs_bytes = True
        elif e.backend == "auto":
            may_need_bytes = True
    if settings.dask_security is not None and settings.dask_address is None:
        warnings.warn("dask_security is for an existing cluster (dask_address); the embedded cluster "
                      "makes its own TLS certificates, so it is not used", UserWarning, stacklevel=4)
    if settings.dask_address is not None and not any(e.backend == "dask" for e in entries):
        warnings.warn(f"dask_address={settings.dask_address!r} is set but no opt_selector entry uses "
                      "backend='dask'; it is not used", UserWarning, stacklevel=4)
    if needs_bytes:
        return pickle_task(settings.task)
    if may_need_bytes:  # "auto" falls back to threads for a task that cannot be pickled
        try:
            return pickle_task(settings.task)
        except TaskNotPicklableError:
            return None
    return None


def _check_entry(where: str, e: Any, backend: str, task_timeout: float | None, max_jobs: int) -> None:
    if e.workers > max_jobs:
        raise ConfigError(f"{where} asks for workers={e.workers} but max_jobs={max_jobs}; an optimizer "
                          "occupies `workers` slots, so raise max_jobs or lower workers")
    l2 = e.backend
    if isinstance(l2, Executor):
        if backend != "threads":
            raise ConfigError(f"{where}: a user-supplied executor can only be used with backend='threads' "
                              "(it cannot be sent to another process); pass backend='processes' to the "
                              "entry to get a process pool per optimizer instead")
    elif l2 not in LEVEL2:
        raise ConfigError(f"{where}: Level 2 backend {l2!r} is not supported here; use one of {LEVEL2}")
    if l2 == "dask":
        from ..evaluation.dask_cluster import distributed_available

        if not distributed_available():
            raise ConfigError(f"{where}: Level 2 backend 'dask' needs the distributed package: "
                              "pip install 'glompo_like[dask]'")
    if l2 in PROCESS_BACKENDS and backend == "processes":
        raise ConfigError(f"{where}: backend='processes' (daemonic) × Level 2 {l2!r} is not possible: "
                          "daemonic processes may not start processes of their own. Use "
                          "backend='processes_forced' (non-daemonic optimizer processes) or backend='threads'.")
    if task_timeout is not None:
        _check_timeout(where, l2, backend)
    if backend not in ("threads", "auto"):
        try:
            pickle.dumps((e.cls, dict(e.kwargs)))
        except Exception as err:
            raise ConfigError(f"{where} cannot be sent to backend={backend!r}: {type(err).__name__}: {err}. "
                              "Define the optimizer class at module level and pass picklable kwargs, or use "
                              "backend='threads'.") from err


def _check_timeout(where: str, l2: Any, backend: str) -> None:
    if l2 == "auto":
        if backend == "processes":
            raise ConfigError(f"task_timeout with {where}: Level 2 'auto' must then run evaluations in "
                              "killable worker processes, which daemonic backend='processes' cannot own; "
                              "use backend='processes_forced', 'threads' or 'auto'")
        return
    if l2 == "asyncio":
        return  # a coroutine is cancelled at its deadline
    if backend == "threads" and l2 not in (*PROCESS_BACKENDS, "dask"):
        raise ConfigError(f"task_timeout cannot be enforced for {where} with backend='threads' × Level 2 "
                          f"{l2!r}: a thread cannot be killed. Give the entry backend='processes' "
                          "(evaluations in killable worker processes) or use a process backend.")
    if backend in ("processes", "processes_forced") and l2 not in (*PROCESS_BACKENDS, "serial", "dask"):
        raise ConfigError(f"task_timeout cannot be enforced for {where} with Level 2 {l2!r}: a thread "
                          "cannot be killed. Use Level 2 'serial' (the optimizer process is killed at the "
                          "deadline) or 'processes' (the worker is killed and replaced).")


def _check_models(where: str, e: Any, settings: Any, coroutine: bool) -> None:
    """The evaluation models' combinations: an ``async def`` task, ``memory_limit``, Dask
    resources."""
    l2 = e.backend
    if coroutine and l2 not in ("asyncio", "auto"):
        raise ConfigError(f"{where}: the task is an async def function (a coroutine function), and Level 2 "
                          f"backend {l2!r} would call it without awaiting it; give every entry "
                          "backend='asyncio' (e.g. CycleSelector([(CMAOptimizer, {'backend': 'asyncio', "
                          "'workers': 16})]): 'workers' evaluations awaited at once), or pass a plain function")
    if l2 == "asyncio" and not coroutine:
        raise ConfigError(f"{where}: Level 2 backend 'asyncio' awaits the task, and the task is not an async def "
                          "function (nor an object with an async def __call__); define it with async def, or "
                          "use another backend")
    if settings.memory_limit is not None and l2 not in (*PROCESS_BACKENDS, "auto"):
        raise ConfigError(f"memory_limit cannot be enforced for {where} with Level 2 {l2!r}: only an "
                          "evaluation in a worker process of its own can be watched and killed. Give the entry "
                          "backend='processes' or 'isolated' (for Dask, set the workers' own --memory-limit)")
    if settings.memory_limit is not None and l2 == "auto" and settings.backend == "processes":
        raise ConfigError(f"memory_limit with {where}: Level 2 'auto' must then run evaluations in worker "
                          "processes, which daemonic backend='processes' cannot own; use "
                          "backend='processes_forced', 'threads' or 'auto'")
    if e.pool.resources is not None and settings.dask_address is None:
        raise ConfigError(f"{where} declares resources={e.pool.resources}, which Dask matches against the "
                          "resources its workers declare; the embedded cluster's workers declare none. Start "
                          "workers that have them (dask worker --resources GPU=1) and pass dask_address=..., "
                          "or use gpus=[...] with backend='processes' or 'isolated' on this machine")


# ----------------------------------------------------------------------------- 2. resolve
Probe = tuple[TaskProfile, str]  # what was measured, and by which probe (for the ledger)


def resolve(settings: Any, task_bytes: bytes | None, rng: np.random.Generator, *,
            previous: ExecutionPlan | None = None, budget: int | None = None,
            resumed: bool = False, measure: bool = True) -> tuple[ExecutionPlan, list[Probe]]:
    """Decide everything ``"auto"`` (measuring the task where needed) and the start methods.

    ``previous``: the plan of the run being resumed (its ``"auto"`` choices are kept);
    ``budget``: evaluations left (a thread-slice probe takes at most 5 % of it);
    ``resumed``: a resumed run never probes for the thread slice; ``measure=False``: the run
    will start nothing (no evaluation is left, or it joined a study that has ended), so the task is never called and
    ``"auto"`` takes the plain choices (threads, serial, no turns).  Returns the plan and
    the probes run, whose evaluations are real and must be logged.
    """
    entries = settings.opt_selector.entries
    probes: list[Probe] = []
    reasons: dict[str, str] = {}
    l1 = settings.backend
    l2 = [e.backend for e in entries]
    workers, l2 = _resolve_workers(settings, entries, l2, reasons)
    probe_info = None
    needs_probe = l1 == "auto" or "auto" in l2
    if needs_probe and is_coroutine_task(settings.task):  # calling it would give a coroutine to measure
        l2 = ["asyncio" if b == "auto" else b for b in l2]
        l1 = "threads" if l1 == "auto" else l1
        reasons["backend"] = ("the task is an async def function: its evaluations are awaited on an event "
                              "loop of each optimizer (Level 2 'asyncio'), the optimizers run as threads")
    elif needs_probe and not measure:
        l1 = "threads" if l1 == "auto" else l1
        l2 = ["serial" if b == "auto" else b for b in l2]
        reasons["backend"] = "not measured: the run starts nothing (its study has ended)"
        profile = None
    elif needs_probe and previous is not None:  # resumed: keep the choice
        l1 = previous.level1 if l1 == "auto" else l1
        l2 = [p if b == "auto" else b for b, p in zip(l2, previous.level2, strict=False)] + l2[len(previous.level2):]
        reasons["backend"] = previous.reasons.get("backend", "") + " (kept from the resumed run)"
        probe_info = previous.probe
        profile = None
    elif needs_probe:
        profile = probe_task(settings.task, settings.bounds, rng)
        probes.append((profile, "backend='auto' probe"))
        l1, l2, why = choose_backends(profile, settings.backend, [(b, w) for b, w in zip(l2, workers, strict=True)],
                                      picklable=task_bytes is not None,
                                      killable=settings.task_timeout is not None or settings.memory_limit is not None)
        reasons["backend"] = why
        probe_info = {"t_eval": profile.t_eval, "concurrency_ratio": profile.concurrency_ratio,
                      "probe_evals": len(profile.probes)}
        log.info("backend='auto' chose Level 1 %r, Level 2 %s: %s", l1, l2, why)
    else:
        profile = None
    start_method = settings.start_method or multiprocessing.get_context().get_start_method()
    pool_start = None
    if any(b in PROCESS_BACKENDS for b in l2):
        pool_start, reasons["pool_start_method"] = resolve_pool_start_method(
            settings.pool_start_method, settings.start_method)
    plan = ExecutionPlan(level1=l1, level2=tuple(l2), start_method=start_method, pool_start_method=pool_start,
                         workers=tuple(workers), auto_entries=tuple(e.pool.auto for e in entries),
                         lockstep=settings.lockstep,
                         report_interval=0.0 if settings.lockstep else settings.report_interval,
                         reasons=reasons, probe=probe_info)
    if measure:
        ts, why, profile = _thread_slice(settings, plan, profile, previous, budget, resumed, rng)
    else:
        ts, why = (None, "not measured: the run starts nothing") if settings.thread_slice == "auto" \
            else (settings.thread_slice, None)
    if profile is not None and profile is not (probes[0][0] if probes else None):
        probes.append((profile, "thread_slice='auto' probe"))
    if why:
        reasons["thread_slice"] = why
    return replace(plan, thread_slice=ts), probes


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cluster_threads(address: str) -> int:
    """The threads of the Dask cluster at ``address`` (its workers' ``nthreads``, summed)."""
    from distributed import Client

    with Client(address, timeout=10, set_as_default=False) as client:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return sum(int(w.get("nthreads", 1)) for w in workers.values())


def _resolve_workers(settings: Any, entries: Sequence[Any], l2: list[Any],
                     reasons: dict[str, str]) -> tuple[list[int], list[Any]]:
    """``workers="auto"`` (see :func:`~glompo_like.evaluation.options.auto_workers`): each
    such entry's pool size, and ``"serial"`` for those that get fewer than two workers.  The
    CPUs are this machine's, or for an existing Dask cluster its workers' threads (the
    optimizers do not run there, so they take none of them)."""
    workers = [e.workers for e in entries]
    why: dict[str, str] = {}
    for i, e in enumerate(entries):
        if not e.pool.auto:
            continue
        c = settings.max_jobs
        if l2[i] == "dask" and settings.dask_address is not None:
            if "dask" not in why:
                threads = cluster_threads(settings.dask_address)
                n = threads // c
                why["dask"] = (f"the Dask cluster at {settings.dask_address} has {threads} threads, "
                               f"{c} optimizer{'s' if c != 1 else ''} at once (max_jobs): {threads} // {c} = {n} "
                               "workers each")
                why["dask_n"] = str(max(1, n))
            workers[i] = int(why["dask_n"])
            continue
        if "local" not in why:
            n, why["local"] = auto_workers(_cpus(), c)
            why["local_n"] = str(n)
        workers[i] = int(why["local_n"])
        if workers[i] == 1:
            l2[i] = "serial"
    texts = [why[k] for k in ("local", "dask") if k in why]
    if texts:
        reasons["workers"] = "workers='auto': " + "; ".join(texts)
        log.info("%s", reasons["workers"])
    return workers, l2


def _thread_slice(settings: Any, plan: ExecutionPlan, profile: TaskProfile | None,
                  previous: ExecutionPlan | None, budget: int | None, resumed: bool,
                  rng: np.random.Generator) -> tuple[float | None, str | None, TaskProfile | None]:
    """The turn length of runner threads: ``thread_slice``, or what "auto" chooses."""
    if settings.thread_slice != "auto":
        return settings.thread_slice, None, profile
    if plan.level1 != "threads" or settings.max_jobs < 2:  # no runner threads side by side
        return None, None, profile
    if previous is not None and "thread_slice" in previous.reasons:  # a resumed run keeps its choice
        return previous.thread_slice, previous.reasons["thread_slice"] + " (kept from the resumed run)", profile
    if not all(b == "serial" for b in plan.level2):
        # never call a task meant for worker processes in this process
        return None, "evaluations run in Level 2 pools, not in the runner threads: no turns", profile
    if profile is None:  # backend="auto" has not measured the task
        if resumed:
            return None, "resumed run without a measurement of the task: no turns", None
        if budget is not None and budget < 20 * PROBE_MIN_EVALS:  # a probe takes at most 5 %
            return None, f"a budget of {budget} evaluations is too small to spend a probe on: no turns", None
        max_serial = 32 if budget is None else min(32, (budget // 20 - 1) // 2)
        profile = probe_for_turns(settings.task, settings.bounds, rng, max_serial)
    chosen, why = choose_thread_slice(profile)
    log.info("thread_slice='auto' chose %s: %s", chosen, why)
    return chosen, why, profile


def preload(plan: ExecutionPlan, entries: Sequence[Any]) -> None:
    """Import the optimizers' heavy dependencies once, here, before children start: forked
    children inherit them, and this process's forkserver, if it starts optimizer
    processes, is told to preload them with the modules its children run.  (A pool's
    workers are the pool's business: it sets up the forkserver it uses.)"""
    modules = ["__main__", "glompo_like.execution.runner"]
    for e in entries:
        e.cls.preload()
        modules += [e.cls.__module__, *e.cls.preload_modules]
    if plan.level1 != "threads" and plan.start_method == "forkserver":
        multiprocessing.get_context("forkserver").set_forkserver_preload(list(dict.fromkeys(modules)))
