"""Flow control (glompo_like.control.flow.Credit), on hand-made optimizer records."""

from __future__ import annotations

import numpy as np
import pytest

from glompo_like.bounds import Bounds
from glompo_like.control.flow import MAX_GRANT, Credit
from glompo_like.execution.messages import Ack, Evaluated
from glompo_like.execution.runner import Runner, RunnerSpec
from glompo_like.optimizers import RandomOptimizer
from glompo_like.record.ledger import OptimizerRecord
from glompo_like.states import EndKind, OptState

POP = 8


def _rec(opt_id: int, generations: int, granted_until: int, t_start: float = 0.0, alive: bool = True,
         stopping: bool = False):
    r = OptimizerRecord(opt_id=opt_id, opt_type="T", description="T", slots=1, t_start=t_start,
                        x0=np.zeros(2), dim=2)
    for _ in range(generations):
        r.add_batch(np.zeros((POP, 2)), np.ones(POP), np.ones(POP, bool))
    r.granted_until = granted_until
    if not alive:  # its end is decided: told to stop (still running), or ended
        r.decide_end(EndKind.KILLED, "test", 0.0, finished=not stopping)
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


def test_the_speed_is_measured_from_the_first_evaluation_not_the_start():
    """An optimizer that took long to start (a new process, its set-up) but runs fast
    gets the credit its generations need, not what its start-up suggests."""
    c = Credit(report_interval=0.02)
    r = _rec(1, generations=1, granted_until=1, t_start=0.0)
    assert c.lookahead(r, now=0.030) == 3  # 30 ms for one generation, counting the start-up
    r.t_first_eval = 0.0295  # the generation itself took 0.5 ms
    assert c.lookahead(r, now=0.030) == MAX_GRANT


class _ScriptedManager:
    """A runner's channel whose manager answers every report at once with eight more
    generations of credit, and fails the test if the runner ever has to wait."""

    def __init__(self):
        self.inbox = []
        self.reports = []

    def send(self, msg):
        if isinstance(msg, Evaluated):
            self.reports.append(msg.generation)
            self.inbox.append(Ack(until=msg.generation + 8))

    def poll(self, timeout=0.0):
        return bool(self.inbox)

    def recv(self):
        if not self.inbox:
            raise AssertionError(f"the runner waited for credit (reports so far: {self.reports})")
        return self.inbox.pop(0)

    def close(self):
        pass


def test_a_runner_asks_for_credit_before_it_runs_out():
    """Reports go out when a quarter of the last grant is left, so the next grant arrives
    while the runner still has work: with a manager that answers at once it never waits."""
    conn = _ScriptedManager()
    spec = RunnerSpec(opt_id=1, opt_cls=RandomOptimizer, opt_kwargs={"popsize": 2, "max_evals": 2 * 40},
                      bounds=Bounds(np.full(2, -1.0), np.full(2, 1.0)), x0=np.zeros(2), seed=1,
                      task_bytes=None, report_interval=3600.0)
    runner = Runner(spec, conn, lambda x: float(np.dot(x, x)))
    runner.run()
    assert runner.ended_cleanly and runner.generation == 40
    # the first generation is the only credit at the start; then each Ack grants 8 more
    # and the runner reports with 8 // 4 = 2 left: every 6 generations
    assert conn.reports[:5] == [1, 7, 13, 19, 25], conn.reports


def test_an_optimizer_told_to_stop_holds_its_credit_until_it_has_ended():
    """A killed optimizer may use its credit until it hears of the kill: the budget it
    holds goes to others only once it has ended (else the run overshoots its budget by
    the killed one's grant)."""
    c = Credit(report_interval=0.02)
    a = _rec(1, generations=10, granted_until=10)  # out of credit, 1 ms per generation
    killed = _rec(2, generations=10, granted_until=40, alive=False, stopping=True)
    assert killed.state is OptState.STOPPING  # told to stop, still running: up to 30 generations unseen
    assert killed.holds_credit and not killed.alive
    assert c.grant(a, [a, killed], left=32 * POP, running=1, now=0.01) == 12  # the 2 left over
    killed.decide_end(EndKind.STOPPED, "its runner ended", 0.02, finished=True)  # it has ended
    assert killed.state is OptState.FINISHED and killed.end_kind is EndKind.KILLED  # the first word stays
    assert c.grant(a, [a, killed], left=32 * POP, running=1, now=0.01) == 42  # all 32


def test_grant_with_kept_outstanding_equals_grant_that_sums_every_record():
    """Acks.send keeps the credit outstanding up to date instead of summing every record per
    grant (O(N²) per turn with N optimizers); both give the same grants."""
    from glompo_like.control.flow import Acks, outstanding

    rng = np.random.default_rng(3)
    recs = {}
    for i in range(1, 41):
        r = OptimizerRecord(opt_id=i, opt_type="R", description="", slots=1, t_start=0.0,
                            x0=np.zeros(2), dim=2)
        r.generations = int(rng.integers(0, 6))
        r.n_rows = r.generations * int(rng.integers(1, 12))
        r.granted_until = r.generations + int(rng.integers(0, 4))
        if i % 7 == 0:
            r.state = OptState.FINISHED
        recs[i] = r
    credit = Credit(report_interval=0.02)
    for left in (0, 50, 400, 5000):
        expected = {}
        import copy as _copy
        shadow = {i: _copy.copy(r) for i, r in recs.items()}
        for i in sorted(shadow):  # the old way: sum over every record at each grant
            r = shadow[i]
            if r.alive:
                until = credit.grant(r, shadow.values(), left, 30, 1.0)
                if until > r.generations and (until > r.granted_until or r.granted_until <= r.generations):
                    r.granted_until = until
                expected[i] = r.granted_until
        sent = {}

        class H:
            def __init__(self, i):
                self.i = i

            def send(self, msg, sent=sent):
                sent[self.i] = msg.until

        live = {i: _copy.copy(r) for i, r in recs.items()}
        acks = Acks(credit, lambda live=live: live, lambda: 1.0)
        for i, r in live.items():
            if r.alive:
                acks.reported(i, H(i))
        acks.send({i: None for i in live}, 30, left)
        assert {i: live[i].granted_until for i in expected} == expected, left
        assert outstanding(live.values()) == outstanding([live[i] for i in live])
