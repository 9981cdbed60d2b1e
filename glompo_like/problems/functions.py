"""Standard test functions (minimisation), each with its usual bounds and known optimum.

They are plain module-level functions, so they pickle by reference to any backend.

The known minimum of some functions depends on the dimension: their
:attr:`TestFunction.fmin` is then a callable ``fmin(dim)`` or a dict ``{dim: fmin}``, and
:meth:`TestFunction.fmin_at` gives the number for one dimension.  Where the minimiser is
known in closed form or can be computed exactly (separable functions),
:meth:`TestFunction.minimiser` returns it.

**Sources of the optima.**  Schwefel 2.26, Griewank, Levy, Styblinski–Tang, Shubert,
Michalewicz: the usual definitions (e.g. Jamil & Yang, "A literature survey of benchmark functions for global optimisation
problems", Int. J. Math. Model. Numer. Optim. 4 (2013) 150–194; Surjanovic & Bingham's
Virtual Library of Simulation Experiments).  Separable functions (Schwefel,
Styblinski–Tang, Michalewicz, the product-form Shubert) have their minimum computed here
coordinate by coordinate, which reproduces the published values (Michalewicz, m = 10:
-1.8013 in 2-D, -4.687658 in 5-D, -9.66015 in 10-D).

Lennard-Jones clusters: global minima in reduced units (ε = σ = 1) from the Cambridge
Cluster Database (https://doye.chem.ox.ac.uk/jon/structures/LJ.html; D. J. Wales and
J. P. K. Doye, J. Phys. Chem. A 101 (1997) 5111–5116), N = 2 … 20.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TestFunction",
    "sphere",
    "ellipsoid",
    "rosenbrock",
    "rastrigin",
    "ackley",
    "schwefel",
    "griewank",
    "levy",
    "michalewicz",
    "styblinski_tang",
    "shubert",
    "lennard_jones",
    "LJ_MINIMA",
    "FUNCTIONS",
]


def sphere(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(x @ x)


def ellipsoid(x: np.ndarray) -> float:
    """Axis-parallel ellipsoid with condition number 1e6."""
    x = np.asarray(x, dtype=float)
    n = x.size
    w = 10.0 ** (6.0 * np.arange(n) / max(n - 1, 1))
    return float(w @ (x * x))


def rosenbrock(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def rastrigin(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(10.0 * x.size + np.sum(x * x - 10.0 * np.cos(2.0 * np.pi * x)))


def ackley(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    n = x.size
    return float(
        -20.0 * np.exp(-0.2 * np.sqrt(x @ x / n)) - np.exp(np.sum(np.cos(2.0 * np.pi * x)) / n) + 20.0 + np.e
    )


# --------------------------------------------------------------------------- Schwefel 2.26
#: ``max_x x sin(sqrt|x|)`` on [-500, 500], reached at ``SCHWEFEL_XOPT``.
SCHWEFEL_CONSTANT = 418.9828872724338
SCHWEFEL_XOPT = 420.9687462275036


def schwefel(x: np.ndarray) -> float:
    """Schwefel 2.26: ``418.9829 n - sum x_i sin(sqrt|x_i|)`` on [-500, 500]^n.

    Minimum 0 (to about 1e-11 per coordinate) at ``x_i = 420.968746...``, near a corner
    of the box and far from the second-best basins: deceptive for local methods."""
    x = np.asarray(x, dtype=float)
    return float(SCHWEFEL_CONSTANT * x.size - np.sum(x * np.sin(np.sqrt(np.abs(x)))))


# --------------------------------------------------------------------------- Griewank
def griewank(x: np.ndarray) -> float:
    """Griewank: ``1 + sum x_i^2 / 4000 - prod cos(x_i / sqrt(i))`` on [-600, 600]^n;
    minimum 0 at the origin."""
    x = np.asarray(x, dtype=float)
    i = np.arange(1, x.size + 1)
    return float(1.0 + x @ x / 4000.0 - np.prod(np.cos(x / np.sqrt(i))))


# --------------------------------------------------------------------------- Levy
def levy(x: np.ndarray) -> float:
    """Levy: with ``w = 1 + (x - 1) / 4``,
    ``sin^2(pi w_1) + sum_{i<n} (w_i - 1)^2 (1 + 10 sin^2(pi w_i + 1))
    + (w_n - 1)^2 (1 + sin^2(2 pi w_n))`` on [-10, 10]^n; minimum 0 at ``x = 1``."""
    x = np.asarray(x, dtype=float)
    w = 1.0 + (x - 1.0) / 4.0
    head = np.sin(np.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(np.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + np.sin(2.0 * np.pi * w[-1]) ** 2)
    return float(head + mid + tail)


# --------------------------------------------------------------------------- Michalewicz
MICHALEWICZ_M = 10


def _michalewicz_terms(x: np.ndarray, i: np.ndarray) -> np.ndarray:
    return -np.sin(x) * np.sin(i * x * x / np.pi) ** (2 * MICHALEWICZ_M)


def michalewicz(x: np.ndarray) -> float:
    """Michalewicz (m = 10): ``-sum sin(x_i) sin^{2m}(i x_i^2 / pi)`` on [0, pi]^n.

    Steep narrow valleys; separable, so its minimum is the sum of 1-D minima
    (-1.8013034 in 2-D, -4.6876582 in 5-D, -9.6601517 in 10-D)."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(_michalewicz_terms(x, np.arange(1, x.size + 1))))


@functools.cache
def _michalewicz_coordinate(i: int) -> tuple[float, float]:
    """``(argmin, min)`` of the i-th 1-D term on [0, pi]: a dense grid, then golden-section
    refinement in the best cell."""
    grid = np.linspace(0.0, np.pi, 200_001)
    k = int(np.argmin(_michalewicz_terms(grid, np.asarray(i))))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    x = _golden(lambda t: float(_michalewicz_terms(np.asarray(t), np.asarray(i))), lo, hi)
    return x, float(_michalewicz_terms(np.asarray(x), np.asarray(i)))


def _michalewicz_xopt(dim: int) -> np.ndarray:
    return np.array([_michalewicz_coordinate(i)[0] for i in range(1, dim + 1)])


def _michalewicz_fmin(dim: int) -> float:
    return float(sum(_michalewicz_coordinate(i)[1] for i in range(1, dim + 1)))


def _golden(f: Callable[[float], float], lo: float, hi: float, tol: float = 1e-14) -> float:
    """Golden-section search for the minimum of a unimodal ``f`` on ``[lo, hi]``."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = float(lo), float(hi)
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol * max(1.0, abs(a) + abs(b)):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2.0


# --------------------------------------------------------------------------- Styblinski–Tang
#: The minimiser of ``x^4 - 16 x^2 + 5 x``: the root of ``4 x^3 - 32 x + 5`` near -2.9035.
STYBLINSKI_TANG_XOPT = -2.903534027771178
STYBLINSKI_TANG_FMIN_PER_DIM = -39.16616570377142


def styblinski_tang(x: np.ndarray) -> float:
    """Styblinski–Tang: ``sum (x_i^4 - 16 x_i^2 + 5 x_i) / 2`` on [-5, 5]^n; minimum
    ``-39.16616570377142 n`` at ``x_i = -2.903534...``."""
    x = np.asarray(x, dtype=float)
    return float(0.5 * np.sum(x**4 - 16.0 * x * x + 5.0 * x))


# --------------------------------------------------------------------------- Shubert
_SHUBERT_J = np.arange(1.0, 6.0)


def _shubert_factor(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.sum(_SHUBERT_J * np.cos(np.multiply.outer(x, _SHUBERT_J + 1.0) + _SHUBERT_J), axis=-1)


#: The 1-D factor ``g(x) = sum_{j=1..5} j cos((j + 1) x + j)`` on [-10, 10] has its
#: minimum ``SHUBERT_GMIN`` at ``SHUBERT_XMIN`` and its maximum ``SHUBERT_GMAX`` at ``SHUBERT_XMAX``
#: (each reached at several points of the box).
SHUBERT_XMIN, SHUBERT_GMIN = -7.708313746019706, -12.870885497725666
SHUBERT_XMAX, SHUBERT_GMAX = -7.083506403182753, 14.50800792719503


def shubert(x: np.ndarray) -> float:
    """Shubert, product form: ``prod_i sum_{j=1..5} j cos((j + 1) x_i + j)`` on [-10, 10]^n.

    In 2-D this is the classical Shubert function: minimum -186.7309088310239, reached at
    18 points.  For n dimensions the minimum of a product of factors in
    ``[g_min, g_max] = [-12.8708855, 14.5080079]`` is negative with the largest magnitude:
    since ``g_max > |g_min|`` it takes one factor at ``g_min`` and the others at ``g_max``,
    ``fmin(n) = g_min g_max^(n-1)`` (n = 1: -12.8709; 2: -186.7309; 3: -2709.093)."""
    return float(np.prod(_shubert_factor(np.asarray(x, dtype=float))))


def _shubert_fmin(dim: int) -> float:
    return float(SHUBERT_GMIN * SHUBERT_GMAX ** (dim - 1))


# --------------------------------------------------------------------------- Lennard-Jones
#: Global minimum energies of Lennard-Jones clusters of N atoms (reduced units,
#: ``E = 4 sum_{i<j} (r_ij^-12 - r_ij^-6)``), from the Cambridge Cluster Database.
LJ_MINIMA: dict[int, float] = {
    2: -1.000000,
    3: -3.000000,
    4: -6.000000,
    5: -9.103852,
    6: -12.712062,
    7: -16.505384,
    8: -19.821489,
    9: -24.113360,
    10: -28.422532,
    11: -32.765970,
    12: -37.967600,
    13: -44.326801,
    14: -47.845157,
    15: -52.322627,
    16: -56.815742,
    17: -61.317995,
    18: -66.530949,
    19: -72.659782,
    20: -77.177043,
}

_LJ_MIN_R2 = 1e-6  # atoms closer than 1e-3 count as that close (finite, very large energy)


def lennard_jones(x: np.ndarray) -> float:
    """Energy of a cluster of ``N = len(x) // 3`` atoms at ``x = (x1, y1, z1, x2, ...)``:
    ``4 sum_{i<j} (r_ij^-12 - r_ij^-6)`` (ε = σ = 1).

    Bounds [-2, 2] per coordinate hold the minima up to about 40 atoms.  Known minima
    (N = 2 … 20) are in :data:`LJ_MINIMA`; the pair minimum is -1 at ``r = 2^(1/6)``."""
    x = np.asarray(x, dtype=float)
    if x.size % 3 or x.size < 6:
        raise ValueError(f"lennard_jones needs 3N coordinates with N >= 2, got {x.size}")
    p = x.reshape(-1, 3)
    i, j = np.triu_indices(len(p), k=1)
    d = p[i] - p[j]
    r2 = np.maximum(np.einsum("ij,ij->i", d, d), _LJ_MIN_R2)
    inv6 = 1.0 / (r2 * r2 * r2)
    return float(4.0 * np.sum(inv6 * inv6 - inv6))


def _lj_fmin(dim: int) -> float:
    if dim % 3 or dim // 3 not in LJ_MINIMA:
        raise KeyError(f"no known Lennard-Jones minimum for dim={dim} (N = dim / 3 in {min(LJ_MINIMA)}..{max(LJ_MINIMA)})")
    return LJ_MINIMA[dim // 3]


def _lj_pair_xopt(dim: int) -> np.ndarray | None:
    """Exact minimisers for N = 2, 3, 4 (pair, equilateral triangle, regular tetrahedron
    with edge ``2^(1/6)``); larger clusters have no closed form."""
    r = 2.0 ** (1.0 / 6.0)
    shapes = {
        6: [[0, 0, 0], [r, 0, 0]],
        9: [[0, 0, 0], [r, 0, 0], [r / 2, r * math.sqrt(3) / 2, 0]],
        12: [[0, 0, 0], [r, 0, 0], [r / 2, r * math.sqrt(3) / 2, 0],
             [r / 2, r * math.sqrt(3) / 6, r * math.sqrt(2.0 / 3.0)]],
    }
    if dim not in shapes:
        return None
    p = np.array(shapes[dim], dtype=float)
    return (p - p.mean(axis=0)).reshape(-1)


# --------------------------------------------------------------------------- the registry
FminSpec = float | Mapping[int, float] | Callable[[int], float]


@dataclass(frozen=True)
class TestFunction:
    """A test function with its conventional box and known minimum.

    ``fmin`` is a number, or for functions whose minimum depends on the dimension a dict
    ``{dim: fmin}`` or a callable ``fmin(dim)``; :meth:`fmin_at` gives the number for
    one dimension.  ``xopt`` (optional) returns a known minimiser for a dimension, or
    ``None`` where none is known.
    """

    __test__ = False  # not a pytest test class

    name: str
    f: Callable[[np.ndarray], float]
    lower: float
    upper: float
    fmin: FminSpec = 0.0
    xopt: Callable[[int], np.ndarray | None] | None = None

    def bounds(self, dim: int) -> list[tuple[float, float]]:
        return [(self.lower, self.upper)] * dim

    def fmin_at(self, dim: int) -> float:
        """The known minimum in ``dim`` dimensions (``KeyError`` if not known)."""
        if isinstance(self.fmin, Mapping):
            if dim not in self.fmin:
                raise KeyError(f"{self.name}: no known minimum for dim={dim} (known: {sorted(self.fmin)})")
            return float(self.fmin[dim])
        if callable(self.fmin):
            return float(self.fmin(dim))
        return float(self.fmin)

    def minimiser(self, dim: int) -> np.ndarray | None:
        """A known minimiser in ``dim`` dimensions, or ``None``."""
        if self.xopt is None:
            return None
        x = self.xopt(dim)
        return None if x is None else np.asarray(x, dtype=float)


def _full(value: float, dim: int) -> np.ndarray:
    return np.full(dim, value)


def _const(value: float) -> Callable[[int], np.ndarray]:
    """``xopt(dim)`` of a function minimised where every coordinate is ``value``
    (a partial of a module-level function, so a TestFunction pickles)."""
    return functools.partial(_full, value)


def _styblinski_tang_fmin(dim: int) -> float:
    return STYBLINSKI_TANG_FMIN_PER_DIM * dim


def _shubert_xopt(dim: int) -> np.ndarray:
    return np.array([SHUBERT_XMIN] + [SHUBERT_XMAX] * (dim - 1))


FUNCTIONS = {
    t.name: t
    for t in (
        TestFunction("sphere", sphere, -5.0, 5.0, xopt=_const(0.0)),
        TestFunction("ellipsoid", ellipsoid, -5.0, 5.0, xopt=_const(0.0)),
        TestFunction("rosenbrock", rosenbrock, -5.0, 10.0, xopt=_const(1.0)),
        TestFunction("rastrigin", rastrigin, -5.12, 5.12, xopt=_const(0.0)),
        TestFunction("ackley", ackley, -32.768, 32.768, xopt=_const(0.0)),
        TestFunction("schwefel", schwefel, -500.0, 500.0, xopt=_const(SCHWEFEL_XOPT)),
        TestFunction("griewank", griewank, -600.0, 600.0, xopt=_const(0.0)),
        TestFunction("levy", levy, -10.0, 10.0, xopt=_const(1.0)),
        TestFunction("michalewicz", michalewicz, 0.0, math.pi, _michalewicz_fmin, _michalewicz_xopt),
        TestFunction(
            "styblinski_tang", styblinski_tang, -5.0, 5.0, _styblinski_tang_fmin,
            _const(STYBLINSKI_TANG_XOPT),
        ),
        TestFunction("shubert", shubert, -10.0, 10.0, _shubert_fmin, _shubert_xopt),
        TestFunction("lennard_jones", lennard_jones, -2.0, 2.0, _lj_fmin, _lj_pair_xopt),
    )
}
