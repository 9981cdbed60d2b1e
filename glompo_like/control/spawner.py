"""Starting optimizers: filling free slots, and restarting those of a resumed run.

The :class:`Spawner` asks the selector which optimizer to start and the generator where,
opens its record in the ledger, and hands a :class:`~glompo_like.execution.runner.RunnerSpec`
to the supervisor.  It owns the run's randomness: the policies' generator and the
``SeedSequence`` every optimizer's seed is spawned from (``spawn_key=(1, opt_id)``), so a
seeded run draws the same start points and seeds whatever the timing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..execution.plan import ExecutionPlan
from ..execution.runner import RunnerSpec
from ..record.ledger import Ledger

__all__ = ["Spawner", "describe_entry"]

log = logging.getLogger("glompo_like.manager")


def describe_entry(entry: Any, l2_backend: Any, workers: int | None = None) -> str:
    """How the log and the summary name an optimizer: its class, its kwargs, and its Level 2
    pool (size ``workers``, default the entry's) unless it evaluates serially."""
    workers = entry.workers if workers is None else workers
    kw = ", ".join(f"{k}={v!r}" for k, v in entry.kwargs.items())
    l2 = "" if l2_backend == "serial" and workers == 1 else f" [L2 {l2_backend} × {workers}]"
    return f"{entry.cls.__name__}({kw}){l2}"


class Spawner:
    """Starts optimizers (see the module docstring).

    Parameters
    ----------
    settings:
        The run's settings (selector, generator, bounds, checker, max_jobs, ...).
    task_bytes:
        The pickled task, for optimizers in processes (``None``: threads only).
    seed:
        The run's seed (``None``: fresh entropy).
    """

    def __init__(self, settings: Any, task_bytes: bytes | None, seed: int | None) -> None:
        self.settings = settings
        self.task_bytes = task_bytes
        ss = np.random.SeedSequence(seed)
        self.entropy: int = ss.entropy  # type: ignore[assignment]
        self.rng = np.random.default_rng(ss.spawn(1)[0])
        self.next_opt_id = 1
        #: opt_id -> (entry, Level 2 backend) of every optimizer started
        self.launched: dict[int, tuple[Any, Any]] = {}
        #: optimizers of a resumed run still to start again, from their saved states
        self.resume_queue: list[dict[str, Any]] = []
        self.print_dir: str | None = None

    def restore(self, entropy: int, rng_state: dict[str, Any], next_opt_id: int,
                queue: list[dict[str, Any]]) -> None:
        self.entropy = entropy
        self.rng.bit_generator.state = rng_state
        self.next_opt_id = next_opt_id
        self.resume_queue = list(queue)

    def fill(self, free: Callable[[], int], ledger: Ledger, plan: ExecutionPlan,
             start: Callable[[RunnerSpec, int], Any]) -> None:
        """Start optimizers while slots are free (``free()``) and the selector proposes one.
        Optimizers of a resumed run go first; ``start(spec, slots)`` runs one."""
        s = self.settings
        while self.resume_queue and free() >= self.resume_queue[0]["workers"]:
            self._restart(self.resume_queue.pop(0), ledger, plan, start)
        if self.resume_queue:
            return
        while not s.convergence_checker(ledger.view) and (n := free()) > 0:
            entry = s.opt_selector.select(ledger.view, n, self.rng)
            if entry is None:
                return
            x0 = np.asarray(s.x0_generator.generate(ledger.view, self.rng), dtype=float)
            opt_id = self.next_opt_id
            self.next_opt_id += 1
            l2 = plan.level2_of(entry, s.opt_selector.entries)
            desc = describe_entry(entry, l2, plan.workers_of(entry, s.opt_selector.entries, l2))
            ledger.open(opt_id, entry.cls.__name__, desc, entry.workers, x0)
            start(self._spec(opt_id, entry, l2, x0, plan), entry.workers)
            self.launched[opt_id] = (entry, l2)
            log.info("started optimizer %d: %s", opt_id, desc)

    def _restart(self, saved: dict[str, Any], ledger: Ledger, plan: ExecutionPlan,
                 start: Callable[[RunnerSpec, int], Any]) -> None:
        """Start an optimizer of a resumed run again, from its checkpointed state."""
        from ..policies.selectors import OptimizerEntry

        entry = OptimizerEntry(saved["cls"], saved["kwargs"], saved["workers"], saved["backend"], saved.get("pool"),
                               name="checkpointed optimizer")
        rec = ledger.records[saved["opt_id"]]
        rec.granted_until = saved["generation"] + 1
        spec = self._spec(saved["opt_id"], entry, saved["backend"], rec.x0, plan, saved["state"],
                          saved["generation"])
        start(spec, entry.workers)
        self.launched[saved["opt_id"]] = (entry, saved["backend"])
        log.info("resumed optimizer %d from its checkpointed state", saved["opt_id"])

    def _spec(self, opt_id: int, entry: Any, l2: Any, x0: np.ndarray, plan: ExecutionPlan,
              state: dict[str, Any] | None = None, first_generation: int = 0) -> RunnerSpec:
        s = self.settings
        return RunnerSpec(
            opt_id=opt_id, opt_cls=entry.cls, opt_kwargs=dict(entry.kwargs), bounds=s.bounds, x0=x0,
            seed=np.random.SeedSequence(self.entropy, spawn_key=(1, opt_id)), task_bytes=self.task_bytes,
            l2_backend=l2, l2_workers=plan.workers_of(entry, s.opt_selector.entries, l2), start_method=s.start_method,
            pool_start_method=plan.pool_start_method, task_timeout=s.task_timeout, blas_threads=s.blas_threads,
            on_error=s.on_error, penalty=s.penalty, lockstep=plan.lockstep, report_interval=plan.report_interval,
            state=state, first_generation=first_generation, print_dir=self.print_dir,
            dask_address=plan.dask_address, dask_security=plan.dask_security,
            dask_worker_timeout=s.dask_worker_timeout,
            pool_options=entry.pool.with_memory_limit(s.memory_limit),
            samples=s.samples, aggregate=s.aggregate,
            incumbent_samples=s.incumbent_samples if s.incumbent_samples is not None else 4 * s.samples,
        )
