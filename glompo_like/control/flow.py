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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..execution.messages import Ack
from ..record.ledger import OptimizerRecord

__all__ = ["Credit", "Acks", "outstanding", "MAX_GRANT", "ACK_LATENCY"]

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
        held: tuple[int, int] | None = None,
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
        per_gen = max(1, _evals(rec) // max(1, rec.generations))
        # credit others (and rec) may be using unseen: evaluations, plus generations of
        # optimizers that have none yet (sized like rec's)
        known, unsized = outstanding(others) if held is None else held
        left -= known + unsized * per_gen
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


def _held(r: OptimizerRecord) -> tuple[int, int]:
    """The credit ``r`` holds unseen: ``(evaluations, generations of unknown size)``."""
    if not (r.opt_id and r.holds_credit):
        return 0, 0
    k = max(0, r.granted_until - r.generations)
    if r.generations:
        return k * (_evals(r) // r.generations), 0
    return 0, k


def outstanding(records: Iterable[OptimizerRecord]) -> tuple[int, int]:
    """Credit granted and not yet used, over ``records``: evaluations (at each optimizer's
    evaluations per generation so far), and generations of optimizers that have reported
    none yet (their size is not known; a grant counts them at the asker's size)."""
    known = unsized = 0
    for r in records:
        k, u = _held(r)
        known += k
        unsized += u
    return known, unsized


def _evals(rec: OptimizerRecord) -> int:
    """Evaluations ``rec`` made: with ``samples > 1`` its rows outnumber its history's points,
    and the budget counts rows."""
    return max(rec.n_rows, rec.n_points)


class Acks:
    """The manager's side of flow control: which runners wait for an acknowledgement.

    A runner's report is answered only after the checkers and hunters have seen it
    (:meth:`reported`, then :meth:`send` once per turn of the event loop), so no stop
    decision comes late.  Runners that cannot be given credit now (the budget left is
    promised to others) are *starved*: they wait, and are looked at again on every turn.
    If nobody can move, the lowest starved optimizer gets one generation, so the run goes
    on.

    Parameters
    ----------
    credit:
        Sizes each grant.
    records:
        The ledger's optimizer records (read).
    clock:
        The manager's clock.
    """

    def __init__(self, credit: Credit, records: Callable[[], Mapping[int, OptimizerRecord]],
                 clock: Callable[[], float]) -> None:
        self.credit = credit
        self._records = records
        self._clock = clock
        self._pending: dict[int, Any] = {}  # opt_id -> handle (anything with .send)
        self._starved: dict[int, Any] = {}

    def reported(self, opt_id: int, handle: Any) -> None:
        """``opt_id`` reported and is still running: answer it at the next :meth:`send`."""
        self._pending[opt_id] = handle

    def send(self, running: Mapping[int, Any], n_running: int, left: int | None) -> None:
        """Acknowledge every pending report that can be given credit.

        ``running``: the handles of optimizers whose runner still runs; ``n_running``: how
        many of them are not stopping; ``left``: evaluations left in the budget (``None``:
        no evaluation budget)."""
        waiting = {**self._pending, **self._starved}
        self._pending, self._starved = {}, {}
        records = self._records()
        now = self._clock()
        # computed once per turn and kept up to date as grants change it: one turn costs
        # O(optimizers), not O(optimizers²) (each grant used to sum over every record)
        known, unsized = outstanding(records.values()) if left is not None else (0, 0)
        for opt_id, handle in sorted(waiting.items()):
            rec = records[opt_id]
            if not rec.alive or opt_id not in running:
                continue
            until = self.credit.grant(rec, records.values(), left, n_running, now, held=(known, unsized))
            if until > rec.generations:
                if until > rec.granted_until or rec.granted_until <= rec.generations:
                    k0, u0 = _held(rec)
                    rec.granted_until = until
                    k1, u1 = _held(rec)
                    known, unsized = known - k0 + k1, unsized - u0 + u1
                    handle.send(Ack(until=until))
            else:
                self._starved[opt_id] = handle
        if self._starved and not any(
            r.alive and r.granted_until > r.generations for r in records.values() if r.opt_id
        ):  # nobody can move: one generation for one optimizer, so the run goes on
            opt_id = min(self._starved)
            handle = self._starved.pop(opt_id)
            rec = records[opt_id]
            rec.granted_until = rec.generations + 1
            handle.send(Ack(until=rec.granted_until))

    def forget(self, opt_id: int) -> None:
        """``opt_id`` has ended."""
        self._pending.pop(opt_id, None)
        self._starved.pop(opt_id, None)
