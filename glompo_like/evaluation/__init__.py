"""Level 2: evaluating one optimizer's candidates (serial, threads, processes, executors)."""

from .core import EvalBatch, EvalStatus, Outcome, evaluate_one
from .pools import ExecutorPool, Pool, ProcessPool, SerialPool, ThreadPool

__all__ = [
    "EvalBatch",
    "EvalStatus",
    "Outcome",
    "evaluate_one",
    "Pool",
    "SerialPool",
    "ThreadPool",
    "ProcessPool",
    "ExecutorPool",
]
