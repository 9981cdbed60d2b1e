"""Flow control (glompo_like.flow.Credit), on hand-made optimizer records."""

from __future__ import annotations

import numpy as np
import pytest

from glompo_like.flow import MAX_GRANT, Credit
from glompo_like.snapshot import OptimizerRecord

POP = 8


def _rec(opt_id: int, generations: int, granted_until: int, t_start: float = 0.0, alive: bool = True):
    r = OptimizerRecord(opt_id=opt_id, opt_type="T", description="T", slots=1, t_start=t_start,
                        x0=np.zeros(2), dim=2)
    for _ in range(generations):
        r.add_batch(np.zeros((POP, 2)), np.ones(POP), np.ones(POP, bool))
    r.granted_until = granted_until
    r.alive = alive
    return r


def test_lookahead_covers_two_report_intervals_at_the_measured_speed():
    c = Credit(report_interval=0.02)
    slow = _rec(1, generations=10, granted_until=11)  # 0.1 s per generation
    assert c.lookahead(slow, now=1.0) == 2  # the running one plus one in reserve
    mid = _rec(1, generations=100, granted_until=101)  # 5 ms per generation
    assert c.lookahead(mid, now=0.5) == 1 + 9  # ceil(45 ms / 5 ms)
    fast = _rec(1, generations=10_000, granted_until=10_001)  # 50 us per generation
    assert c.lookahead(fast, now=0.5) == MAX_GRANT
    assert c.lookahead(_rec(1, 0, 1), now=0.0) == 2  # nothing measured yet


def test_no_budget_tops_up_to_the_lookahead_and_never_shrinks():
    c = Credit(report_interval=0.02)
    r = _rec(1, generations=10, granted_until=11)
    assert c.grant(r, [r], left=None, running=1, now=1.0) == 12
    r.granted_until = 40  # granted earlier, when it looked faster
    assert c.grant(r, [r], left=None, running=1, now=1.0) == 40


def test_new_credit_is_an_equal_share_of_what_nobody_was_promised():
    c = Credit(report_interval=0.02)
    a = _rec(1, generations=1000, granted_until=1000, t_start=0.0)  # fast: wants MAX_GRANT
    b = _rec(2, generations=1000, granted_until=1030, t_start=0.0)  # holds 30 generations
    left = 100 * POP
    until = c.grant(a, [a, b], left=left, running=2, now=0.5)
    unpromised = left - 30 * POP
    assert until - a.generations == (unpromised // 2) // POP  # 35 generations, not 64
    assert (until - a.generations) * POP + 30 * POP <= left


def test_the_budget_is_never_promised_twice():
    c = Credit(report_interval=0.02)
    recs = [_rec(i, generations=1000, granted_until=1000) for i in (1, 2, 3)]
    left = 50 * POP
    promised = 0
    for r in recs:  # each asks in turn, as the manager's loop does
        r.granted_until = c.grant(r, recs, left=left, running=3, now=0.5)
        promised += (r.granted_until - r.generations) * POP
    assert promised <= left


def test_out_of_credit_gets_one_generation_while_one_is_left_then_waits():
    c = Credit(report_interval=0.02)
    a = _rec(1, generations=100, granted_until=100)  # out of credit
    b = _rec(2, generations=100, granted_until=100 + 3)  # holds 3 generations
    assert c.grant(a, [a, b], left=4 * POP, running=2, now=1.0) == 101  # one left: one for a
    assert c.grant(a, [a, b], left=3 * POP + POP // 2, running=2, now=1.0) == 100  # half a generation: wait


def test_dead_optimizers_and_the_probe_hold_no_credit():
    c = Credit(report_interval=0.02)
    a = _rec(1, generations=10, granted_until=10)
    dead = _rec(2, generations=10, granted_until=60, alive=False)
    probe = _rec(0, generations=1, granted_until=50)
    assert c.grant(a, [a, dead, probe], left=10 * POP, running=1, now=1.0) == 12


@pytest.mark.parametrize("credit", [Credit(report_interval=0.0), Credit(report_interval=0.02, lockstep=True)])
def test_lockstep_and_report_interval_zero_grant_exactly_the_next_generation(credit):
    r = _rec(1, generations=7, granted_until=8)
    assert credit.grant(r, [r], left=None, running=1, now=1.0) == 8
    assert credit.grant(r, [r], left=1000, running=1, now=1.0) == 8
