"""A box constraint as a transformation, applied to a whole generation at once.

CMA-ES samples in an unbounded space (the *genotype*) and its candidates are mapped into the
box (the *phenotype*) before they are evaluated.  pycma's default bound handling does this
with its "linear-quadratic" transformation (Hansen's ``BoxConstraintsLinQuadTransformation``):
the identity in the middle of each coordinate's range, a quadratic near each bound that bends
the coordinate back into the box, periodic beyond.  pycma applies it candidate by candidate in
Python and keeps an archive to find each candidate's genotype again; that was about a third of
the cost of a generation of ``ask``/``tell`` in 10-D (docs/performance.rst).

:class:`LinQuadBox` is the same transformation, written here for arrays of candidates: one
NumPy expression per step over the whole generation.  It follows the published definition
(pycma's documentation): with the margins ``al = min((ub - lb) / 2, max(1, |lb|) / 20)`` and
``au = min((ub - lb) / 2, max(1, |ub|) / 20)``, a coordinate ``y`` is

1. shifted by whole periods ``2 (ub - lb + al + au)`` when it is farther than half the range
   beyond the margins,
2. mirrored at ``ub + au`` and at ``lb - al`` into ``[lb - al, ub + au]``,
3. mapped by ``lb + (y - (lb - al))**2 / (4 al)`` below ``lb + al`` and by
   ``ub - (y - (ub + au))**2 / (4 au)`` above ``ub - au``; left as it is in between.

:class:`~glompo_like.optimizers.cma.CMAOptimizer` runs pycma without bounds and maps its
candidates through it, so the search is the one pycma's default bound handling makes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LinQuadBox"]


class LinQuadBox:
    """The linear-quadratic box transformation for finite bounds ``lower < upper``.

    Parameters
    ----------
    lower, upper:
        The box, one value per coordinate (arrays of the same length).
    """

    __slots__ = ("lb", "ub", "al", "au", "_period", "_far_lo", "_far_hi", "_start")

    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        lb = np.array(lower, dtype=float)
        ub = np.array(upper, dtype=float)
        if lb.shape != ub.shape or lb.ndim != 1:
            raise ValueError(f"lower and upper must be 1-D arrays of one length, got shapes {lb.shape}, {ub.shape}")
        if not (np.all(np.isfinite(lb)) and np.all(np.isfinite(ub)) and np.all(lb < ub)):
            raise ValueError("every bound must be finite, with lower < upper")
        self.lb, self.ub = lb, ub
        half = (ub - lb) / 2
        self.al = np.minimum(half, np.maximum(1.0, np.abs(lb)) / 20)
        self.au = np.minimum(half, np.maximum(1.0, np.abs(ub)) / 20)
        self._period = 2 * (ub - lb + self.al + self.au)
        self._start = lb - 2 * self.al - (ub - lb) / 2.0
        self._far_lo = self._start
        self._far_hi = ub + 2 * self.au + (ub - lb) / 2.0

    @property
    def dim(self) -> int:
        return len(self.lb)

    def __call__(self, geno: np.ndarray) -> np.ndarray:
        """Map candidates (rows of ``geno``, or one vector) into the box; a new array."""
        lb, ub, al, au = self.lb, self.ub, self.al, self.au
        y = np.array(geno, dtype=float)  # a copy
        far = (y < self._far_lo) | (y > self._far_hi)
        if far.any():
            y = np.where(far, y - self._period * ((y - self._start) // self._period), y)
        hi = y > ub + au
        if hi.any():
            y = np.where(hi, y - 2 * (y - ub - au), y)
        lo = y < lb - al
        if lo.any():
            y = np.where(lo, y + 2 * (lb - al - y), y)
        lo = y < lb + al
        if lo.any():
            y = np.where(lo, lb + (y - (lb - al)) ** 2 / 4 / al, y)
        hi = y > ub - au
        if hi.any():
            y = np.where(hi, ub - (y - (ub + au)) ** 2 / 4 / au, y)
        return y

    def inverse(self, pheno: np.ndarray) -> np.ndarray:
        """The genotype in ``[lb - al, ub + au]`` that maps to ``pheno`` (rows, or one
        vector; each value within the box, else :class:`ValueError`)."""
        lb, ub, al, au = self.lb, self.ub, self.al, self.au
        y = np.array(pheno, dtype=float)
        if np.any(y < lb) or np.any(y > ub):
            raise ValueError("the inverse of the box transformation needs points within the bounds")
        with np.errstate(invalid="ignore"):  # sqrt of the branches not taken
            low = (lb - al) + 2 * (al * (y - lb)) ** 0.5
            high = (ub + au) - 2 * (au * (ub - y)) ** 0.5
        return np.where(y < lb + al, low, np.where(y < ub - au, y, high))

    def __getstate__(self) -> dict[str, np.ndarray]:
        return {"lb": self.lb, "ub": self.ub}

    def __setstate__(self, state: dict[str, np.ndarray]) -> None:
        self.__init__(state["lb"], state["ub"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"LinQuadBox(dim={self.dim})"
