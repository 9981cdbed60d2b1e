"""The value ``GloMPOManager.start_manager()`` returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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

    def __str__(self) -> str:
        x = "None" if self.x is None else np.array2string(np.asarray(self.x), precision=6, threshold=12)
        s = self.stats
        spread = "" if self.fx_std is None else f" ± {self.fx_std:.3g} (n={self.n_samples})"
        return (
            f"Result(fx={self.fx:.10g}{spread}, x={x}, origin={dict(self.origin)},\n"
            f"       f_evals={s.get('f_evals')}, end_cond={s.get('end_cond')!r}, "
            f"t_used={s.get('t_used', float('nan')):.3g}s)"
        )
