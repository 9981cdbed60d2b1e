"""Callbacks: called on each logged batch, on a new best and when an optimizer ends; may
stop the run; an error in one is reported and does not end the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glompo_like import (
    BatchLogged,
    ConfigTypeError,
    GloMPOManager,
    NewBest,
    OptimizerEnded,
    StopRun,
    read_log,
)
from glompo_like.control.callbacks import Callbacks, check_callbacks
from glompo_like.optimizers import CMAOptimizer, RandomOptimizer
from glompo_like.policies import CycleSelector, MaxFuncCalls, MaxOptsStarted
from glompo_like.problems import sphere

pytestmark = pytest.mark.timeout(60)


def _manager(callbacks, **kw):
    args = dict(task=sphere, bounds=[(-5.0, 5.0)] * 3, backend="threads", max_jobs=2, status=None, seed=2,
                opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 6})]),
                convergence_checker=MaxFuncCalls(600), callbacks=callbacks,
                thread_slice=None)  # (no task probe: optimizer 0 would log evaluations first)
    args.update(kw)
    return GloMPOManager(**args)


class Recorder:
    def __init__(self):
        self.events = []
        self.views = []

    def __call__(self, view, event):
        self.events.append(event)
        self.views.append((view.f_evals, view.best_fx))


def test_callbacks_see_every_batch_each_new_best_and_each_end(tmp_path):
    rec = Recorder()
    result = _manager([rec], working_dir=tmp_path, killing_conditions=False).start_manager()
    batches = [e for e in rec.events if isinstance(e, BatchLogged)]
    bests = [e for e in rec.events if isinstance(e, NewBest)]
    ends = [e for e in rec.events if isinstance(e, OptimizerEnded)]
    # every evaluation of the log is in exactly one batch, in order
    ids = np.concatenate([np.arange(b.first_eval_id, b.last_eval_id + 1) for b in batches])
    assert ids.tolist() == list(range(1, result.stats["f_evals"] + 1))
    assert sum(b.n for b in batches) == len(read_log(tmp_path))
    # new bests strictly improve and end at the result
    fxs = [b.fx for b in bests]
    assert fxs == sorted(fxs, reverse=True) and len(set(fxs)) == len(fxs)
    assert fxs[-1] == result.fx and np.array_equal(bests[-1].x, result.x)
    # a NewBest follows the BatchLogged of the batch that made it
    for b in bests:
        i = rec.events.index(b)
        assert isinstance(rec.events[i - 1], BatchLogged) and rec.events[i - 1].opt_id == b.opt_id
    # one end per optimizer started, with how it ended
    assert sorted(e.opt_id for e in ends) == list(range(1, result.stats["opts_started"] + 1))
    assert all(e.end_kind is not None and e.end_reason for e in ends)
    # the view a callback gets is the run's, up to date (its turn's batches all counted)
    first_batch = rec.events.index(batches[0])
    assert batches[0].last_eval_id <= rec.views[first_batch][0] <= result.stats["f_evals"]
    assert result.stats["callback_errors"] == []


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_callback_finds_its_batch_committed_to_the_log(backend, tmp_path):
    """A callback that reads the log (another process could) finds the rows of the batch it
    is told about: events are delivered after the turn's transaction has committed."""
    seen = []

    def reads_the_log(view, event):
        if isinstance(event, BatchLogged):
            seen.append((event.last_eval_id, int(read_log(tmp_path)["eval_id"].max())))

    _manager([reads_the_log], working_dir=tmp_path, backend=backend, convergence_checker=MaxFuncCalls(200),
             killing_conditions=False).start_manager()
    assert seen and all(logged >= told for told, logged in seen), seen


def test_a_callback_stops_the_run_by_returning_stop_run():
    def enough(view, event):
        if isinstance(event, NewBest) and event.fx < 1.0:
            return StopRun(f"below 1 at {event.f_evals} evaluations")
        return True  # anything else is ignored (not a stop)

    result = _manager([enough], convergence_checker=MaxFuncCalls(50_000)).start_manager()
    assert result.fx < 1.0
    assert result.stats["f_evals"] < 50_000
    assert result.stats["end_cond"].startswith("callback ")
    assert "enough: below 1 at" in result.stats["end_cond"]


def test_a_callback_that_raises_is_reported_and_the_run_goes_on(tmp_path, caplog):
    calls = []

    def broken(view, event):
        calls.append(event)
        raise ValueError("boom")

    rec = Recorder()
    result = _manager([broken, rec], working_dir=tmp_path).start_manager()
    assert result.stats["f_evals"] >= 600  # the budget ended it, not the error
    assert len(calls) == len(rec.events) > 1  # called every time, and the next callback too
    (line,) = result.stats["callback_errors"]
    assert "broken" in line and f"raised {len(calls)} times" in line and "ValueError: boom" in line
    summary = (tmp_path / "summary.yml").read_text()
    assert "callback_errors" in summary and "ValueError: boom" in summary
    tracebacks = [r for r in caplog.records if r.exc_info and "callback" in r.getMessage()]
    assert len(tracebacks) == 1  # the traceback once; later errors are one line each


def test_optimizer_ended_reports_kills_and_convergence():
    rec = Recorder()
    m = _manager([rec], opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 5})]),
                 convergence_checker=MaxOptsStarted(3) | MaxFuncCalls(400), killing_conditions=False)
    m.start_manager()
    ends = {e.opt_id: e for e in rec.events if isinstance(e, OptimizerEnded)}
    assert set(ends) == set(m.view.optimizers) - {0}  # (0: a task probe, if any, is no optimizer)
    for oid, e in ends.items():
        o = m.view.optimizer(oid)
        assert (e.end_kind, e.end_reason, e.n_evals) == (o.end_kind, o.end_reason, o.n_evals)


def test_callbacks_setting_is_checked():
    f = lambda view, event: None  # noqa: E731
    assert check_callbacks(None) == ()
    assert check_callbacks(f) == (f,)
    assert check_callbacks([f, f]) == (f, f)
    with pytest.raises(ConfigTypeError, match=r"callbacks\[1\] is a int"):
        _manager([f, 3])
    with pytest.raises(ConfigTypeError, match="list of callables"):
        _manager("print")


def test_callbacks_are_named_in_the_summary_settings(tmp_path):
    def watcher(view, event):
        return None

    _manager([watcher], working_dir=tmp_path, convergence_checker=MaxFuncCalls(50)).start_manager()
    text = (tmp_path / "summary.yml").read_text()
    try:
        import yaml

        data = yaml.safe_load(text)
    except ImportError:
        data = json.loads(text)
    assert data["settings"]["callbacks"] == [watcher.__qualname__]


def test_no_callbacks_no_stats_entry():
    result = _manager((), convergence_checker=MaxFuncCalls(50)).start_manager()
    assert "callback_errors" not in result.stats
    assert not Callbacks((), lambda r: None)
