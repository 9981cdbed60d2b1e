"""Test problems: classical functions (:mod:`.functions`) and COCO's BBOB suite (:mod:`.bbob`,
needs the ``bbob`` extra when a problem is called)."""

from .bbob import BBOB_FUNCTION_NAMES, BBOBProblem, bbob_suite
from .functions import (
    FUNCTIONS,
    LJ_MINIMA,
    TestFunction,
    ackley,
    ellipsoid,
    griewank,
    lennard_jones,
    levy,
    michalewicz,
    rastrigin,
    rosenbrock,
    schwefel,
    shubert,
    sphere,
    styblinski_tang,
)

__all__ = [
    "TestFunction", "FUNCTIONS", "LJ_MINIMA", "sphere", "ellipsoid", "rosenbrock", "rastrigin",
    "ackley", "schwefel", "griewank", "levy", "michalewicz", "styblinski_tang", "shubert",
    "lennard_jones", "BBOBProblem", "bbob_suite", "BBOB_FUNCTION_NAMES",
]
