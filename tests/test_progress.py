"""Progress with an ETA: which checker bounds the run, the rate window, and how each
reporter shows it (log lines on stderr when nothing else is configured, the rich table,
the notebook's HTML)."""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import pytest

from glompo_like import GloMPOManager
from glompo_like.optimizers import RandomOptimizer
from glompo_like.policies import (
    CycleSelector,
    MaxFuncCalls,
    MaxOptsStarted,
    MaxSeconds,
    TargetCost,
)
from glompo_like.policies.progress import BudgetMeter
from glompo_like.problems import sphere
from glompo_like.record.ledger import OptimizerRecord, RunCounters
from glompo_like.record.progress import Progress, RateWindow, format_duration
from glompo_like.record.status import (
    LogStatus,
    NotebookStatus,
    RichStatus,
    SafeStatus,
    StatusReporter,
    in_notebook,
    logging_configured,
    make_status,
)
from glompo_like.record.view import RunView


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _view(f_evals: int = 0, t: float = 0.0):
    clock = Clock()
    clock.t = t
    counters = RunCounters(f_evals=f_evals)
    records: dict[int, OptimizerRecord] = {}
    return RunView(counters, records, 0.0, clock=clock), clock, counters, records


# --------------------------------------------------------------------------- the meter
def test_max_func_calls_bounds_by_evaluations():
    view, *_ = _view(f_evals=2500, t=10.0)
    p = BudgetMeter(MaxFuncCalls(10_000))(view, 250.0)
    assert (p.unit, p.used, p.total, p.eta) == ("evaluations", 2500, 10_000, 30.0)
    assert p.fraction == 0.25
    assert p.text() == "25% of 10,000 evaluations, about 30 s left"
    assert BudgetMeter(MaxFuncCalls(10_000))(view, math.nan).eta is None  # no rate yet
    assert "time left unknown" in BudgetMeter(MaxFuncCalls(10_000))(view, math.nan).text()


def test_max_seconds_bounds_by_time():
    view, *_ = _view(f_evals=10, t=15.0)
    p = BudgetMeter(MaxSeconds(60))(view, 1.0)
    assert (p.unit, p.used, p.total, p.eta) == ("seconds", 15.0, 60, 45.0)


def test_the_first_budget_to_run_out_bounds_an_or():
    view, *_ = _view(f_evals=1000, t=10.0)  # 100 evaluations per second
    checker = MaxFuncCalls(5000) | MaxSeconds(20) | TargetCost(0.0)
    p = BudgetMeter(checker)(view, 100.0)
    assert p.unit == "seconds" and p.eta == 10.0  # 10 s left; 40 s of evaluations left
    p = BudgetMeter(MaxFuncCalls(1500) | MaxSeconds(20))(view, 100.0)
    assert p.unit == "evaluations" and p.eta == 5.0


def test_an_and_ends_with_its_last_part_and_unbounded_checkers_give_nothing():
    view, *_ = _view(f_evals=1000, t=10.0)
    p = BudgetMeter(MaxFuncCalls(5000) & MaxSeconds(20))(view, 100.0)
    assert p.unit == "evaluations" and p.eta == 40.0
    assert BudgetMeter(MaxFuncCalls(5000) & TargetCost(0.0))(view, 100.0) is None
    assert BudgetMeter(TargetCost(0.0) | MaxOptsStarted(4))(view, 100.0) is None


def test_a_broken_custom_checker_gives_no_progress():
    class Broken(MaxFuncCalls):
        def remaining(self, run):
            raise RuntimeError("no")

    class Custom(TargetCost):
        def remaining(self, run):
            raise RuntimeError("no")

    view, *_ = _view(f_evals=10, t=1.0)
    assert BudgetMeter(Custom(0.0))(view, 1.0) is None
    assert BudgetMeter(Broken(100))(view, 1.0).total == 100  # MaxFuncCalls is read directly


def test_rate_window_and_durations():
    w = RateWindow(window=10.0)
    assert math.isnan(w.update(0.0, 0))
    assert w.update(5.0, 500) == 100.0
    assert w.update(20.0, 3500) == pytest.approx(3000 / 15)  # the sample at 0 s left the window
    w2 = RateWindow()
    assert w2.update(10.0, 1000, t_total=100.0) == 10.0  # a resumed run: over its whole time
    assert [format_duration(s) for s in (4.4, 65, 7325, math.nan)] == ["4 s", "1 min 05 s", "2 h 02 min", "?"]
    assert Progress("evaluations", 20, 10, 0.0).fraction == 1.0


# --------------------------------------------------------------------------- reporters
def test_log_status_lines_carry_the_progress(caplog):
    caplog.set_level(logging.INFO, logger="glompo_like.status")
    view, clock, counters, _ = _view()
    status = LogStatus()
    status.set_budget(BudgetMeter(MaxFuncCalls(1000)))
    clock.t, counters.f_evals = 2.0, 200
    status.update(view)
    clock.t, counters.f_evals = 4.0, 600
    status.update(view)
    status.close(view)
    first, second, final = (r.getMessage() for r in caplog.records if r.name == "glompo_like.status")
    assert first.endswith("| 20% of 1,000 evaluations, about 8 s left")
    assert second.endswith("| 60% of 1,000 evaluations, about 3 s left")  # 150/s over the window
    assert "left" not in final


def test_auto_status_off_a_terminal_writes_lines_to_stderr_when_logging_is_not_configured(capsys):
    logger = logging.getLogger("glompo_like_test.unconfigured")
    logger.propagate = False  # (pytest configures the root logger: stand for an application that did not)
    assert not logging_configured(logger)
    view, clock, counters, _ = _view()
    status = LogStatus(logger, ensure_output=True)
    clock.t, counters.f_evals = 1.0, 50
    status.update(view)
    status.update(view)
    other = LogStatus(logger, ensure_output=True)  # a second run at the same time: one handler
    other.update(view)
    assert len(logger.handlers) == 1 and logger.level == logging.INFO
    other.close(view)
    status.close(view)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and all(line.startswith("glompo_like: ") for line in err)
    assert err[0].startswith("glompo_like: 50 evaluations (50.0/s)")
    assert err[-1].startswith("glompo_like: finished: 50 evaluations")
    assert logger.handlers == [] and logger.level == logging.NOTSET  # all put back


def test_configured_logging_is_used_and_nothing_is_added(capsys):
    logger = logging.getLogger("glompo_like_test.configured")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        view, clock, counters, _ = _view(f_evals=5, t=1.0)
        status = LogStatus(logger, ensure_output=True)
        status.update(view)
        status.close(view)
        assert logger.handlers == [handler]
    finally:
        logger.removeHandler(handler)
    assert capsys.readouterr().err == ""
    assert stream.getvalue().count("evaluations") == 2


def test_plain_log_status_adds_no_handler(capsys):
    logger = logging.getLogger("glompo_like_test.plain")
    logger.propagate = False
    view, *_ = _view(f_evals=5, t=1.0)
    status = LogStatus(logger)
    status.update(view)
    status.close(view)
    assert logger.handlers == [] and capsys.readouterr().err == ""


def test_auto_off_a_terminal_is_a_log_status_that_ensures_output():
    status = make_status("auto", stream=io.StringIO())
    assert isinstance(status, LogStatus) and status.ensure_output
    assert not make_status("log").ensure_output
    assert not in_notebook()


def test_rich_table_shows_a_progress_bar():
    pytest.importorskip("rich")
    from rich.console import Console

    out = io.StringIO()
    status = RichStatus(console=Console(file=out, force_terminal=True, width=160, color_system=None))
    status.set_budget(BudgetMeter(MaxSeconds(100)))
    view, clock, counters, _ = _view()
    clock.t, counters.f_evals = 25.0, 100
    status.update(view)
    status.close(view)
    text = out.getvalue()
    assert "progress" in text and "25% of 100 seconds, about 1 min 15 s left" in text


class FakeHandle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, obj):
        self.shown.append(obj._repr_html_())


def test_notebook_status_updates_one_display_in_place():
    shown: list[str] = []

    def display(obj, display_id=False):
        assert display_id is True
        shown.append(obj._repr_html_())
        return FakeHandle(shown)

    view, clock, counters, records = _view()
    records[1] = OptimizerRecord(1, "CMAOptimizer", "CMAOptimizer()", 1, 0.0, np.zeros(2), 2)
    records[1].add_batch(np.zeros((4, 2)), np.array([3.0, 2.0, 1.5, 1.0]), np.ones(4, bool))
    counters.best_fx, counters.best_opt_id, counters.f_evals = 1.0, 1, 4
    status = NotebookStatus(display=display)
    status.set_budget(BudgetMeter(MaxFuncCalls(8)))
    clock.t = 2.0
    status.update(view)
    status.update(view)
    status.close(view)
    status.close(view)
    assert len(shown) == 3  # one display, two updates of it
    assert "<progress value='0.5000'" in shown[0] and "50% of 8 evaluations, about 2 s left" in shown[0]
    assert "CMAOptimizer" in shown[0] and "1 *" in shown[0] and "running after 2 s" in shown[0]
    assert "finished after 2 s" in shown[-1] and "<progress" not in shown[-1]


# --------------------------------------------------------------------------- in a run
class Recorder(StatusReporter):
    def __init__(self):
        super().__init__()
        self.seen: list[Progress | None] = []

    def show(self, view):
        self.seen.append(self.progress)


@pytest.mark.timeout(60)
def test_the_manager_gives_reporters_the_budget_of_its_checker():
    status = Recorder()
    GloMPOManager(sphere, [(-3, 3)] * 2, backend="threads", max_jobs=1, status=status, status_interval=0.0,
                  opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 10})]), killing_conditions=False,
                  convergence_checker=MaxFuncCalls(600) | TargetCost(-1.0)).start_manager()
    seen = [p for p in status.seen if p is not None]
    assert seen and all(p.unit == "evaluations" and p.total == 600 for p in seen)
    used = [p.used for p in seen]
    assert used == sorted(used) and used[-1] <= 600


def test_a_reporter_without_set_budget_still_works():
    class Plain:
        def __init__(self):
            self.n = 0

        def update(self, view):
            self.n += 1

        def close(self, view):
            pass

    plain = Plain()
    safe = SafeStatus(plain, BudgetMeter(MaxFuncCalls(10)))
    view, *_ = _view()
    assert safe.update(view) and plain.n == 1
