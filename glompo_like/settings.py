"""Validation of the manager's arguments: every problem is a typed error, raised before
anything is started, that names the argument and the fix."""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import warnings
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bounds import Bounds, as_bounds
from .errors import ConfigError, ConfigTypeError, TaskNotPicklableError
from .evaluation.dask_cluster import distributed_available, validate_address
from .execution.runner import ON_ERROR_POLICIES

__all__ = ["ManagerConfig", "default_max_jobs", "pickle_task"]

LEVEL1 = ("threads", "processes", "processes_forced", "auto")
LEVEL2 = ("serial", "threads", "processes", "dask", "auto")


def default_max_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


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
class ManagerConfig:
    task: Callable
    bounds: Bounds
    opt_selector: Any
    backend: str
    max_jobs: int
    convergence_checker: Any
    killing_conditions: Any
    x0_generator: Any
    hunt_frequency: int
    share_best_solutions: bool
    working_dir: Path | None
    seed: int | None
    start_method: str | None
    pool_start_method: str | None
    task_timeout: float | None
    on_error: str
    penalty: float | None
    blas_threads: int | None
    shutdown_grace: float
    overwrite: bool
    task_bytes: bytes | None
    dask_address: str | None = None  # None: Dask entries use an embedded local cluster

    @property
    def needs_probe(self) -> bool:
        """Whether ``backend="auto"`` must be resolved (at either level) before starting."""
        return self.backend == "auto" or any(e.backend == "auto" for e in self.opt_selector.entries)


def _positive_int(value: Any, name: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(f"{name} must be an integer; got {type(value).__name__}. {fix}")
    if value < 1:
        raise ConfigError(f"{name} must be >= 1, got {value}. {fix}")
    return value


def _positive_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigTypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def build_config(
    *,
    task: Any,
    bounds: Any,
    opt_selector: Any,
    backend: Any,
    max_jobs: Any,
    convergence_checker: Any,
    killing_conditions: Any,
    x0_generator: Any,
    hunt_frequency: Any,
    share_best_solutions: Any,
    working_dir: Any,
    seed: Any,
    start_method: Any,
    task_timeout: Any,
    on_error: Any,
    penalty: Any,
    blas_threads: Any,
    shutdown_grace: Any,
    overwrite: Any = False,
    resuming: bool = False,
    dask_address: Any = None,
    pool_start_method: Any = None,
) -> ManagerConfig:
    from .policies import defaults
    from .policies.checkers import BaseChecker
    from .policies.generators import BaseGenerator
    from .policies.hunters import BaseHunter
    from .policies.selectors import BaseSelector

    if not callable(task):
        raise ConfigTypeError(
            f"task must be a callable taking a 1-D float array and returning a float; got "
            f"{type(task).__name__}"
        )
    b = as_bounds(bounds)
    dim = b.dim

    if backend not in LEVEL1:
        raise ConfigError(f"backend must be one of {LEVEL1}, got {backend!r}")
    if max_jobs is None:
        max_jobs = default_max_jobs()
    max_jobs = _positive_int(max_jobs, "max_jobs", "It is the number of slots (cores) the run may use.")

    if opt_selector is None:
        opt_selector = defaults.default_selector(dim)
    if not isinstance(opt_selector, BaseSelector):
        raise ConfigTypeError(
            "opt_selector must be a selector such as CycleSelector([(CMAOptimizer, {...})]); "
            f"got {type(opt_selector).__name__}"
        )
    if convergence_checker is None:
        convergence_checker = defaults.default_checker(dim)
    if not isinstance(convergence_checker, BaseChecker) and getattr(convergence_checker, "kind", None) != "checker":
        raise ConfigTypeError(
            "convergence_checker must be a checker from glompo_like.policies.checkers (e.g. "
            f"MaxFuncCalls(20_000) | TargetCost(0.0)); got {convergence_checker!r}"
        )
    if killing_conditions is None:
        killing_conditions = defaults.default_hunters(dim)
    if killing_conditions is not False and not (
        isinstance(killing_conditions, BaseHunter) or getattr(killing_conditions, "kind", None) == "hunter"
    ):
        raise ConfigTypeError(
            "killing_conditions must be a hunter from glompo_like.policies.hunters (e.g. "
            f"MinFuncCalls(1000) & BestUnmoving(400, 0.01)) or False to disable hunting; got {killing_conditions!r}"
        )
    if x0_generator is None:
        x0_generator = defaults.default_generator(dim)
    if not isinstance(x0_generator, BaseGenerator):
        raise ConfigTypeError(
            f"x0_generator must be a generator from glompo_like.policies.generators; got {x0_generator!r}"
        )
    if hunt_frequency is None:
        hunt_frequency = defaults.default_hunt_frequency(dim)
    hunt_frequency = _positive_int(hunt_frequency, "hunt_frequency", "It is the number of evaluations between hunts.")
    if not isinstance(share_best_solutions, bool):
        raise ConfigTypeError("share_best_solutions must be True or False")
    if working_dir is not None:
        if not isinstance(working_dir, (str, os.PathLike)):
            raise ConfigTypeError(f"working_dir must be a path or None, got {type(working_dir).__name__}")
        working_dir = Path(working_dir)
        if working_dir.exists() and not working_dir.is_dir():
            raise ConfigError(f"working_dir {str(working_dir)!r} exists and is not a directory")
        from .record.log import LOG_NAME

        if (working_dir / LOG_NAME).exists() and not overwrite and not resuming:
            raise ConfigError(
                f"working_dir {str(working_dir)!r} already holds a run's evaluation log; choose a "
                "new directory, pass overwrite=True to replace it, or resume that run from a checkpoint"
            )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
    methods = multiprocessing.get_all_start_methods()
    if start_method is not None and start_method not in methods:
        raise ConfigError(f"start_method must be one of {methods} or None (the platform default), got {start_method!r}")
    if pool_start_method is not None and pool_start_method not in methods:
        raise ConfigError(f"pool_start_method must be one of {methods} or None (a forkserver where possible), "
                          f"got {pool_start_method!r}")
    if task_timeout is not None:
        task_timeout = _positive_number(task_timeout, "task_timeout")
    if on_error not in ON_ERROR_POLICIES:
        raise ConfigError(f"on_error must be one of {ON_ERROR_POLICIES}, got {on_error!r}")
    if penalty is not None:
        if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not math.isfinite(penalty):
            raise ConfigError(f"penalty must be a finite number or None (automatic), got {penalty!r}")
        penalty = float(penalty)
    if blas_threads is not None:
        blas_threads = _positive_int(blas_threads, "blas_threads", "Use None to leave BLAS threading alone.")
    shutdown_grace = _positive_number(shutdown_grace, "shutdown_grace")
    dask_address = validate_address(dask_address)

    entries = opt_selector.entries
    needs_bytes = backend not in ("threads", "auto")
    may_need_bytes = backend == "auto"
    for i, e in enumerate(entries):
        where = f"opt_selector entry {i} ({e.cls.__name__})"
        if e.workers > max_jobs:
            raise ConfigError(
                f"{where} asks for workers={e.workers} but max_jobs={max_jobs}; an optimizer "
                "occupies `workers` slots, so raise max_jobs or lower workers"
            )
        l2 = e.backend
        if isinstance(l2, Executor):
            if backend != "threads":
                raise ConfigError(
                    f"{where}: a user-supplied executor can only be used with backend='threads' "
                    "(it cannot be sent to another process); pass backend='processes' to the "
                    "entry to get a process pool per optimizer instead"
                )
        elif l2 not in LEVEL2:
            raise ConfigError(f"{where}: Level 2 backend {l2!r} is not supported here; use one of {LEVEL2}")
        if l2 == "auto":
            may_need_bytes = True
        if l2 == "dask":  # works with every Level 1 backend; task_timeout: killable helpers on the workers
            needs_bytes = True
            if not distributed_available():
                raise ConfigError(f"{where}: Level 2 backend 'dask' needs the distributed package: "
                                  "pip install 'glompo_like[dask]'")
        if l2 == "processes":
            needs_bytes = True
            if backend == "processes":
                raise ConfigError(
                    f"{where}: backend='processes' (daemonic) × Level 2 'processes' is not possible: "
                    "daemonic processes may not start processes of their own. Use "
                    "backend='processes_forced' (non-daemonic optimizer processes) or backend='threads'."
                )
        if task_timeout is not None and l2 == "auto":
            if backend == "processes":
                raise ConfigError(
                    f"task_timeout with {where}: Level 2 'auto' must then run evaluations in "
                    "killable worker processes, which daemonic backend='processes' cannot own; "
                    "use backend='processes_forced', 'threads' or 'auto'"
                )
            continue
        if backend == "threads" and task_timeout is not None and l2 not in ("processes", "dask"):
            raise ConfigError(
                f"task_timeout cannot be enforced for {where} with backend='threads' × Level 2 "
                f"{l2!r}: a thread cannot be killed. Give the entry backend='processes' "
                "(evaluations in killable worker processes) or use a process backend."
            )
        if backend in ("processes", "processes_forced") and task_timeout is not None and (
            l2 not in ("processes", "serial", "dask")
        ):
            raise ConfigError(
                f"task_timeout cannot be enforced for {where} with Level 2 {l2!r}: a thread "
                "cannot be killed. Use Level 2 'serial' (the optimizer process is killed at "
                "the deadline) or 'processes' (the worker is killed and replaced)."
            )
        if backend not in ("threads", "auto"):
            try:
                pickle.dumps((e.cls, dict(e.kwargs)))
            except Exception as err:
                raise ConfigError(
                    f"{where} cannot be sent to backend={backend!r}: {type(err).__name__}: {err}. "
                    "Define the optimizer class at module level and pass picklable kwargs, or use backend='threads'."
                ) from err
    if dask_address is not None and not any(e.backend == "dask" for e in entries):
        warnings.warn(f"dask_address={dask_address!r} is set but no opt_selector entry uses "
                      "backend='dask'; it is not used", UserWarning, stacklevel=3)
    task_bytes = None
    if needs_bytes:
        task_bytes = pickle_task(task)
    elif may_need_bytes:  # "auto" falls back to threads for a task that cannot be pickled
        try:
            task_bytes = pickle_task(task)
        except TaskNotPicklableError:
            task_bytes = None

    return ManagerConfig(
        task=task,
        bounds=b,
        opt_selector=opt_selector,
        backend=backend,
        max_jobs=max_jobs,
        convergence_checker=convergence_checker,
        killing_conditions=killing_conditions,
        x0_generator=x0_generator,
        hunt_frequency=hunt_frequency,
        share_best_solutions=share_best_solutions,
        working_dir=working_dir,
        seed=seed,
        start_method=start_method,
        pool_start_method=pool_start_method,
        task_timeout=task_timeout,
        on_error=on_error,
        penalty=penalty,
        blas_threads=blas_threads,
        shutdown_grace=shutdown_grace,
        overwrite=bool(overwrite),
        task_bytes=task_bytes,
        dask_address=dask_address,
    )
