"""Flow control: how far each optimizer may run ahead of the manager's decisions.

A runner may *start* generations up to the last one the manager has granted
(``Ack(until=g)``); it reports what it evaluated, and waits when its credit runs out.
:class:`Credit` decides each grant from the optimizer's record:

* **Enough, not more.**  Credit covers the time until the runner's next report has been
  answered: the generation it is running, plus two report intervals and an
  acknowledgement's way back, at the speed the optimizer has shown (between 2 and
  :data:`MAX_GRANT` generations).  A runner then never waits for the manager while the
  budget lasts, and no optimizer holds much more than it needs, so near the end of an
  evaluation budget all optimizers finish together instead of one idling while another
  works off a large grant.
* **Never more than the budget.**  New credit comes only from the part of the evaluation
  budget nobody has been promised yet, at most an equal share of it per running
  optimizer; an optimizer out of credit gets one generation while a whole one is left.
  Grants never shrink, so what an optimizer may still do unseen is exactly
  ``granted_until - generations`` generations, and the budget is overshot by at most one
  generation per optimizer.
* **Lock-step.**  Seeded single-optimizer runs and ``report_interval=0`` grant exactly the
  next generation: every generation is seen before the next one starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..record.view import OptimizerRecord

__all__ = ["Credit", "MAX_GRANT", "ACK_LATENCY"]

#: most generations an optimizer may run ahead of the manager's acknowledgement
MAX_GRANT = 64
#: seconds an acknowledgement may take to arrive, on top of the runner's report interval
ACK_LATENCY = 0.005


@dataclass(frozen=True)
class Credit:
    report_interval: float
    lockstep: bool = False
    max_grant: int = MAX_GRANT
    ack_latency: float = ACK_LATENCY

    def grant(
        self,
        rec: OptimizerRecord,
        others: Iterable[OptimizerRecord],
        left: int | None,
        running: int,
        now: float,
    ) -> int:
        """The last generation ``rec`` may start before it must wait again (a value
        ``<= rec.generations`` means: wait).

        ``others``: every optimizer record (``rec`` among them; those that have ended and
        the probe are skipped; one told to stop still holds its credit until it has
        ended, since it may go on evaluating until it hears of the stop); ``left``: evaluations left in the budget (``None``: no evaluation
        budget); ``running``: optimizers running; ``now``: the manager's clock, in the
        units of ``rec.t_start``.
        """
        if self.lockstep or self.report_interval == 0:
            return rec.generations + 1
        ahead = max(rec.granted_until, rec.generations)
        need = rec.generations + self.lookahead(rec, now) - ahead  # generations more it should hold
        if need <= 0:
            return ahead
        if left is None:
            return ahead + need
        per_gen = max(1, len(rec.fx) // max(1, rec.generations))
        for r in others:
            if r.opt_id and (r.alive or r.stopping):  # credit others (and rec) may be using unseen
                size = len(r.fx) // r.generations if r.generations else per_gen
                left -= max(0, r.granted_until - r.generations) * size
        extra = min(need, (left // max(1, running)) // per_gen)
        if extra <= 0 and rec.granted_until <= rec.generations and left >= per_gen:
            extra = 1  # out of credit: the last whole generations go one at a time
        return ahead + max(0, extra)

    def lookahead(self, rec: OptimizerRecord, now: float) -> int:
        """Generations of credit ``rec`` should hold: the one it is running plus enough to
        cover two report intervals and an acknowledgement's way back, at the speed it has
        shown so far (between 2 and ``max_grant``)."""
        if rec.generations <= 0:
            return 2
        # the speed since its first evaluation: counting the start-up too (a new process,
        # the optimizer's set-up) would make a fast optimizer look slow, and starve it
        since = rec.t_start if rec.t_first_eval is None else rec.t_first_eval
        per_gen_s = max(now - since, 0.0) / rec.generations
        horizon = 2 * self.report_interval + self.ack_latency
        if per_gen_s <= horizon / self.max_grant:
            return self.max_grant
        return max(2, min(self.max_grant, 1 + math.ceil(horizon / per_gen_s)))
