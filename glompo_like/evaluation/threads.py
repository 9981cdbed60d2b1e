"""Level 2 ``"threads"``: a thread pool inside the runner.

::

    runner ── evaluate(xs) ──► ThreadPool ── ThreadPoolExecutor(workers) ── evaluate_one(task, x)
           ◄── [Outcome] in candidate order

Threads evaluate in parallel only while the task releases the GIL (NumPy on large arrays,
compiled extensions, waiting for an external program); a running evaluation cannot be
stopped, so ``task_timeout`` needs Level 2 ``"processes"`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .executor import FuturesPool

__all__ = ["ThreadPool"]


class ThreadPool(FuturesPool):
    """``workers`` threads of the runner's process; shut down (pending evaluations
    cancelled) when the optimizer ends."""

    kind = "threads"

    def __init__(self, task: Callable[[np.ndarray], Any], workers: int, label: str) -> None:
        super().__init__(task, ThreadPoolExecutor(workers, thread_name_prefix=f"glompo-{label}"), label, workers)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
