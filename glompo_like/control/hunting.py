"""Hunting: every ``hunt_frequency`` evaluations, the best optimizer judges the others.

The optimizer with the best value so far is the hunter; the run's ``killing_conditions``
(a hunter policy from :mod:`glompo_like.policies.hunters`) decide, for each other running
optimizer that has evaluated something, whether it is stopped.  A victim ends as
``killed``, with the decision's reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..record.ledger import OptimizerRecord
from ..record.view import RunView

__all__ = ["Hunt"]


class Hunt:
    """When to hunt next, and whom.

    Parameters
    ----------
    conditions:
        The hunter policy, or ``False`` for no hunting.
    frequency:
        Evaluations between two hunts.
    """

    def __init__(self, conditions: Any, frequency: int) -> None:
        self.conditions = conditions
        self.frequency = frequency
        self.next_at = frequency  # the evaluation count of the next hunt

    def due(self, f_evals: int) -> bool:
        if self.conditions is False or f_evals < self.next_at:
            return False
        self.next_at = f_evals + self.frequency
        return True

    def victims(self, records: dict[int, OptimizerRecord], view: RunView) -> Iterator[tuple[OptimizerRecord, str]]:
        """``(victim, reason)`` for every optimizer the best one hunts now."""
        alive = [r for r in records.values() if r.alive and r.n_points]
        if len(alive) < 2:
            return
        hunter = min(alive, key=lambda r: r.best_fx)
        for victim in alive:
            if victim is hunter:
                continue
            d = self.conditions(view, hunter.opt_id, victim.opt_id)
            if d:
                yield victim, f"killed by optimizer {hunter.opt_id}: {d.reason}"
