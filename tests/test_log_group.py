"""The evaluation log's turn transaction (issue 18): every row received in one turn of the
manager's loop is one commit, made before the loop goes on to acknowledge anyone."""

from __future__ import annotations

import time

import numpy as np
import pytest

from glompo_like.evaluation.core import EvalBatch, EvalStatus, Outcome
from glompo_like.record.log import LOG_NAME, EvaluationLog, connect


def _batch(n: int) -> EvalBatch:
    now = time.time()
    xs = np.arange(2 * n, dtype=float).reshape(n, 2)
    return EvalBatch.from_outcomes(xs, [Outcome(float(i), EvalStatus.OK, now, 0.01, "w") for i in range(n)])


def _rows(path) -> int:
    db = connect(path, readonly=True)
    try:
        return db.execute("select count(*) from evaluations").fetchone()[0]
    finally:
        db.close()


def test_a_group_is_one_transaction_committed_when_it_ends(tmp_path):
    path = tmp_path / LOG_NAME
    log = EvaluationLog(path, dim=2)
    log.start_optimizer(1, "R", "R()", 1, np.zeros(2), time.time())
    with log.group():
        log.add_batch(1, 1, _batch(3))
        with log.group():  # nested: only the outermost block commits
            log.add_batch(4, 1, _batch(2))
        log.end_optimizer(1, time.time(), 5, 0.0, "stopped", "", None)
        assert _rows(path) == 0  # another connection sees nothing before the commit
    assert _rows(path) == 5
    log.add_batch(6, 1, _batch(1))  # outside a group: committed at once, as before
    assert _rows(path) == 6
    log.close()


def test_a_group_ended_by_an_error_still_commits_what_was_counted(tmp_path):
    path = tmp_path / LOG_NAME
    log = EvaluationLog(path, dim=2)
    with pytest.raises(RuntimeError), log.group():
        log.add_batch(1, 1, _batch(4))
        raise RuntimeError("fatal error in the middle of a turn")
    assert _rows(path) == 4
    log.close()


def test_the_manager_commits_each_turn_before_acknowledging(tmp_path, monkeypatch):
    """Every Ack a runner gets is sent after the rows of everything the manager has been
    told were committed (read from another connection at the moment of sending)."""
    from glompo_like import GloMPOManager
    from glompo_like.control import flow
    from glompo_like.optimizers import RandomOptimizer
    from glompo_like.policies.checkers import MaxFuncCalls
    from glompo_like.policies.selectors import CycleSelector

    seen: list[tuple[int, int]] = []
    manager = None
    real_send = flow.Acks.send

    def send(self, *a, **k):
        if manager is not None and manager.ledger.counters.f_evals:
            seen.append((manager.ledger.counters.f_evals, _rows(tmp_path / LOG_NAME)))
        return real_send(self, *a, **k)

    monkeypatch.setattr(flow.Acks, "send", send)
    manager = GloMPOManager(task=lambda x: float(x @ x), bounds=[(-1, 1)] * 2,
                            opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 4})]),
                            backend="threads", max_jobs=3, convergence_checker=MaxFuncCalls(400),
                            killing_conditions=False, working_dir=tmp_path, status=None)
    manager.start_manager()
    assert seen
    assert all(counted == logged for counted, logged in seen), seen[:5]
