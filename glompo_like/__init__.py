"""glompo_like: globally managed parallel optimization.

A manager runs several optimizers at once on one expensive black-box objective, watches
every evaluation, stops (hunts) optimizers that stall, starts new ones at good points, and
returns the best result with a crash-safe record of every evaluation::

    from glompo_like import GloMPOManager
    from glompo_like.policies.checkers import MaxFuncCalls

    result = GloMPOManager(task=f, bounds=[(-5, 5)] * 10,
                           convergence_checker=MaxFuncCalls(20_000)).start_manager()
"""

import logging

from ._version import __version__
from .bounds import Bounds
from .control.callbacks import BatchLogged, NewBest, OptimizerEnded, StopRun
from .errors import (
    BrokenTaskError,
    CheckpointError,
    ConfigError,
    ConfigTypeError,
    ContractError,
    EvaluationError,
    GlompoError,
    OptimizerCrashed,
    TaskNotPicklableError,
    WorkerTerminated,
)
from .manager import GloMPOManager
from .minimize import minimize
from .record.checkpoint import CheckpointingControl
from .record.log import read_log
from .result import Result

# A library logs, the application decides where to: nothing is printed unless configured.
logging.getLogger("glompo_like").addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "GloMPOManager",
    "minimize",
    "Result",
    "Bounds",
    "CheckpointingControl",
    "read_log",
    "StopRun",
    "NewBest",
    "BatchLogged",
    "OptimizerEnded",
    "GlompoError",
    "ConfigError",
    "ConfigTypeError",
    "ContractError",
    "TaskNotPicklableError",
    "EvaluationError",
    "BrokenTaskError",
    "OptimizerCrashed",
    "WorkerTerminated",
    "CheckpointError",
]
