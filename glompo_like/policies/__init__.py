"""Policies: the run's decisions, made from a read-only view of the run.

- selectors (:mod:`.selectors`) choose which optimizer to start;
- generators (:mod:`.generators`) choose its start point;
- hunters (:mod:`.hunters`) choose which running optimizer to stop;
- checkers (:mod:`.checkers`) choose when the run ends;
- :mod:`.base` is the base of hunters and checkers (:class:`Condition`, :class:`Decision`),
  for writing your own;
- :mod:`.defaults` holds what a run uses when you choose nothing.

Everything public is importable from here: ``from glompo_like.policies import MaxFuncCalls``.
"""

from .base import (
    AllOf,
    AnyOf,
    Checker,
    Condition,
    Decision,
    Hunter,
)
from .checkers import (
    BaseChecker,
    KillsAfterConvergence,
    MaxFuncCalls,
    MaxKills,
    MaxOptsStarted,
    MaxSeconds,
    NOptConverged,
    TargetCost,
)
from .generators import (
    BaseGenerator,
    BasinHoppingGenerator,
    ExploitExploreGenerator,
    IncumbentGenerator,
    PerturbationGenerator,
    QMCGenerator,
    RandomGenerator,
    SinglePointGenerator,
)
from .hunters import (
    BaseHunter,
    BestUnmoving,
    EvaluationsUnmoving,
    LastPointsInvalid,
    MinFuncCalls,
    ParameterDistance,
    StepSize,
    TimeAnnealing,
    TypeHunter,
    ValueAnnealing,
)
from .selectors import (
    BaseSelector,
    ChainSelector,
    CycleSelector,
    IPOPSelector,
    OptimizerEntry,
    RandomSelector,
    as_entry,
)

__all__ = [
    "Decision",
    "Condition",
    "AllOf",
    "AnyOf",
    "Checker",
    "Hunter",
    "BaseChecker",
    "MaxFuncCalls",
    "TargetCost",
    "MaxSeconds",
    "NOptConverged",
    "MaxOptsStarted",
    "MaxKills",
    "KillsAfterConvergence",
    "BaseGenerator",
    "RandomGenerator",
    "SinglePointGenerator",
    "IncumbentGenerator",
    "ExploitExploreGenerator",
    "PerturbationGenerator",
    "BasinHoppingGenerator",
    "QMCGenerator",
    "BaseHunter",
    "MinFuncCalls",
    "BestUnmoving",
    "EvaluationsUnmoving",
    "LastPointsInvalid",
    "ParameterDistance",
    "StepSize",
    "TimeAnnealing",
    "ValueAnnealing",
    "TypeHunter",
    "OptimizerEntry",
    "as_entry",
    "BaseSelector",
    "CycleSelector",
    "ChainSelector",
    "RandomSelector",
    "IPOPSelector",
]
