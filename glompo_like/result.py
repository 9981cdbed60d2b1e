"""The value ``GloMPOManager.start_manager()`` returns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult

__all__ = ["Result"]


@dataclass(frozen=True)
class Result:
    """The best point of a run, where it came from, and the run's counters.

    Attributes
    ----------
    x, fx:
        The best point found and its value (``None`` / ``inf`` if no evaluation succeeded).
        With ``samples > 1`` (a noisy objective) ``fx`` is the aggregate (mean or median)
        of the point's samples, and the point was measured ``incumbent_samples`` times.
    fx_std:
        The standard deviation of the best point's samples (``None`` when it was measured
        once, as every point is unless the run sets ``samples``).
    n_samples:
        How many successful samples ``fx`` aggregates (1 without ``samples``).
    origin:
        ``{"opt_id": ..., "type": ...}`` of the optimizer that found it.
    stats:
        ``f_evals``, ``opts_started``, ``opts_killed``, ``opts_converged``,
        ``opts_crashed``, ``evals_failed``, ``end_cond`` (why the run ended), ``t_used``
        (seconds), and a few more.
    """

    x: np.ndarray | None
    fx: float
    origin: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    fx_std: float | None = None
    n_samples: int = 1

    @property
    def success(self) -> bool:
        """Whether at least one evaluation succeeded (there is a best point)."""
        return self.x is not None and math.isfinite(self.fx)

    def to_scipy(self) -> OptimizeResult:
        """This result as a :class:`scipy.optimize.OptimizeResult`.

        ``x`` and ``fun`` (the best point and value), ``success`` (an evaluation
        succeeded), ``status`` (``0`` on success, else ``1``), ``message`` (why the run
        ended: ``stats["end_cond"]``), ``nfev`` (evaluations, failed ones included),
        ``nfail`` (failed evaluations), and the manager's own ``origin`` and ``stats``.
        """
        from scipy.optimize import OptimizeResult

        s = self.stats
        return OptimizeResult(
            x=None if self.x is None else np.array(self.x, dtype=float),
            fun=float(self.fx),
            success=self.success,
            status=0 if self.success else 1,
            message=str(s.get("end_cond") or ("finished" if self.success else "no evaluation succeeded")),
            nfev=int(s.get("f_evals", 0)),
            nfail=int(s.get("evals_failed", 0)),
            origin=dict(self.origin),
            stats=dict(s),
        )

    def __str__(self) -> str:
        x = "None" if self.x is None else np.array2string(np.asarray(self.x), precision=6, threshold=12)
        s = self.stats
        spread = "" if self.fx_std is None else f" ± {self.fx_std:.3g} (n={self.n_samples})"
        return (
            f"Result(fx={self.fx:.10g}{spread}, x={x}, origin={dict(self.origin)},\n"
            f"       f_evals={s.get('f_evals')}, end_cond={s.get('end_cond')!r}, "
            f"t_used={s.get('t_used', float('nan')):.3g}s)"
        )
