"""Hardening (issue 21): a real run is never lost, wasted, mixed up or mislabelled.

Each test names the behaviour users rely on and fails without the fix that gives it.
"""

from __future__ import annotations

import logging
import threading

import _faulty
import numpy as np
import pytest

from glompo_like import (
    BrokenTaskError,
    ConfigError,
    ConfigTypeError,
    EvaluationError,
    GloMPOManager,
    read_log,
)
from glompo_like.optimizers import RandomOptimizer
from glompo_like.policies import CycleSelector, MaxFuncCalls, MaxSeconds

pytestmark = pytest.mark.timeout(120)

BOUNDS = [(-1.0, 1.0)] * 3


def _runner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("glompo")]


# ----------------------------------------------------------------------------- 1. the end
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_a_normal_end_mid_evaluation_is_stopped_not_crashed(backend, tmp_path):
    """MaxSeconds ends the run while five optimizers are in the middle of a 3-second
    evaluation, longer than shutdown_grace: they are 'stopped' (with the reason), the
    crash limit is not hit, and the result is returned."""
    sel = CycleSelector([(RandomOptimizer, {"popsize": 1})])
    m = GloMPOManager(_faulty.sleeps_3s, BOUNDS, opt_selector=sel, backend=backend, max_jobs=5,
                      convergence_checker=MaxSeconds(0.5), shutdown_grace=0.3, working_dir=tmp_path,
                      status=None, thread_slice=None)
    result = m.start_manager()
    assert result is not None and "MaxSeconds" in result.stats["end_cond"]
    assert result.stats["opts_crashed"] == 0 and not m.crashes
    opts = [m.view.optimizer(i) for i in m.view.optimizers if i]
    assert len(opts) == 5
    assert all(o.end_kind == "stopped" and "the run ended" in o.end_reason for o in opts)
    ends = read_log(tmp_path, optimizers=True)
    assert set(np.asarray(ends["end_kind"]).tolist()) == {"stopped"}
    s = result.stats
    assert s["opts_started"] == s["opts_killed"] + s["opts_converged"] + s["opts_crashed"] \
        + s["opts_stopped"] + s["opts_failed"]


# ----------------------------------------------------------------------------- 2. broken tasks
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_a_broken_task_stops_the_run_early_with_the_first_traceback(backend, tmp_path):
    """A NameError on every call: the run stops after fail_fast evaluations, not after the
    whole budget, with a typed error carrying the first failure's traceback; what was
    evaluated is logged and the summary is written."""
    m = GloMPOManager(_faulty.name_error, BOUNDS, backend=backend, max_jobs=2, fail_fast=30,
                      convergence_checker=MaxFuncCalls(5000), working_dir=tmp_path, status=None)
    with pytest.raises(BrokenTaskError) as info:
        m.start_manager()
    err = info.value
    assert isinstance(err, EvaluationError)  # (the family of on_error="raise")
    assert "NameError" in err.first_error and "undefined_name" in err.first_error
    assert "Traceback" in err.first_error and "NameError" in str(err)
    assert 30 <= err.n_failed < 200  # stopped early: far from the 5000 of the budget
    assert m.result is not None and m.result.stats["f_evals"] == len(read_log(tmp_path))
    assert (tmp_path / "summary.yml").exists()


def test_fail_fast_is_configurable_and_can_be_turned_off(tmp_path):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 4})])
    m = GloMPOManager(_faulty.always_raises, BOUNDS, opt_selector=sel, backend="threads", max_jobs=1,
                      fail_fast=None, convergence_checker=MaxFuncCalls(300), status=None)
    r = m.start_manager()  # never stops for failures: the budget ends it
    assert r.stats["f_evals"] >= 300 and r.stats["evals_failed"] == r.stats["f_evals"]
    with pytest.raises(ConfigError, match="fail_fast"):
        GloMPOManager(_faulty.sphere, BOUNDS, fail_fast=0)
    with pytest.raises(ConfigTypeError, match="fail_fast"):
        GloMPOManager(_faulty.sphere, BOUNDS, fail_fast=2.5)


def test_a_task_that_works_after_some_failures_is_not_stopped(tmp_path):
    sel = CycleSelector([(RandomOptimizer, {"popsize": 5})])
    m = GloMPOManager(_faulty.fails_first_then_works, BOUNDS, opt_selector=sel, backend="processes",
                      max_jobs=1, fail_fast=30, convergence_checker=MaxFuncCalls(200), status=None,
                      reuse_processes=True)
    r = m.start_manager()
    assert r.stats["evals_failed"] == 20 and r.stats["f_evals"] >= 200 and np.isfinite(r.fx)


def test_a_high_failure_rate_is_reported_while_the_run_goes(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="glompo_like.manager")
    sel = CycleSelector([(RandomOptimizer, {"popsize": 10})])
    m = GloMPOManager(_faulty.fails_60_percent, BOUNDS, opt_selector=sel, backend="threads", max_jobs=1,
                      convergence_checker=MaxFuncCalls(400), status=None, seed=3)
    m.start_manager()
    warnings = [r.getMessage() for r in caplog.records if "of the last" in r.getMessage()]
    assert warnings and "evaluations failed" in warnings[0] and "diverged" in warnings[0]
    assert len(warnings) <= 3  # windows of 100, 200, ...: no flood
