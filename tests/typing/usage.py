"""Checked by mypy in tests/test_typing.py, not run: the public API as users type it.

A line marked ``# type: ignore[code]`` must be an error of that code (mypy runs with
--warn-unused-ignores, so an ignore that is not needed fails the test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import OptimizeResult

from glompo_like import (
    Bounds,
    CheckpointingControl,
    GloMPOManager,
    NewBest,
    Result,
    StopRun,
    minimize,
)
from glompo_like.control.callbacks import Event
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies import (
    BestUnmoving,
    Checker,
    CycleSelector,
    Hunter,
    MaxFuncCalls,
    MaxSeconds,
    MinFuncCalls,
    TargetCost,
)
from glompo_like.record.view import RunView


def f(x: np.ndarray) -> float:
    return float(np.sum(x**2))


def on_event(view: RunView, event: Event) -> StopRun | None:
    if isinstance(event, NewBest) and event.fx < 1e-6:
        return StopRun("good enough")
    return None


checker: Checker = MaxFuncCalls(1000) | TargetCost(0.0) | MaxSeconds(60)
hunter: Hunter = MinFuncCalls(100) & BestUnmoving(50, 0.01)
manager = GloMPOManager(
    f, [(-5.0, 5.0)] * 3, opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 8})]), backend="threads",
    max_jobs=2, convergence_checker=checker, killing_conditions=hunter, working_dir=Path("run"), seed=1,
    checkpoint_control=CheckpointingControl(every_evaluations=500), status="log", callbacks=[on_event],
)
result: Result = manager.start_manager()
fx: float = result.fx
scipy_result: OptimizeResult = result.to_scipy()
res: OptimizeResult = minimize(f, Bounds(np.zeros(2), np.ones(2)), max_evals=100, killing_conditions=False)
again = GloMPOManager.load_checkpoint("run/checkpoints", max_jobs=4)

# mistakes a type checker catches
GloMPOManager(f, [(-1.0, 1.0)], backend="thread")  # type: ignore[arg-type]
GloMPOManager(f, [(-1.0, 1.0)], max_job=2)  # type: ignore[call-arg]
GloMPOManager(f, [(-1.0, 1.0)], convergence_checker=MinFuncCalls(10))  # type: ignore[arg-type]
GloMPOManager(f, [(-1.0, 1.0)], killing_conditions=MaxFuncCalls(10))  # type: ignore[arg-type]
MaxFuncCalls(10) | MinFuncCalls(10)  # type: ignore[operator]
GloMPOManager(f, [(-1.0, 1.0)], on_error="ignore")  # type: ignore[arg-type]
GloMPOManager(f, [(-1.0, 1.0)], seed="1")  # type: ignore[arg-type]
GloMPOManager(f, [(-1.0, 1.0)], status=3)  # type: ignore[arg-type]
minimize(f, [(-1.0, 1.0)], max_evals="many")  # type: ignore[arg-type]
bad_fx: str = result.fx  # type: ignore[assignment]
