"""glompo_like.minimize and Result.to_scipy: the scipy-style entry point."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import OptimizeResult

from glompo_like import ConfigError, ConfigTypeError, Result, minimize
from glompo_like.policies import MaxFuncCalls
from glompo_like.problems import sphere

pytestmark = pytest.mark.timeout(60)


def shifted(x, centre, scale=1.0):
    return scale * float(np.sum((np.asarray(x) - centre) ** 2))


def test_minimize_returns_an_optimize_result_with_the_managers_defaults():
    res = minimize(sphere, [(-5, 5)] * 3, max_evals=3000, seed=1, backend="threads", status=None)
    assert isinstance(res, OptimizeResult)
    assert res.success and res.status == 0
    assert res.fun < 1e-6 and np.allclose(res.x, 0, atol=1e-3)
    assert res.nfev == res.stats["f_evals"] and res.nfail == 0
    assert res.message == res.stats["end_cond"]
    assert res.origin["type"]  # who found it (the default selector chose it)


def test_minimize_passes_args_and_works_with_processes():
    res = minimize(shifted, [(-5, 5)] * 2, args=(1.5, 2.0), max_evals=1500, seed=2, max_jobs=2, status=None)
    assert np.allclose(res.x, 1.5, atol=1e-2)


def test_minimize_checks_its_own_arguments():
    with pytest.raises(ConfigError, match="max_evals or convergence_checker"):
        minimize(sphere, [(-1, 1)], max_evals=10, convergence_checker=MaxFuncCalls(10))
    with pytest.raises(ConfigTypeError, match="max_evals"):
        minimize(sphere, [(-1, 1)], max_evals="many")
    with pytest.raises(ConfigTypeError, match="fun must be a callable"):
        minimize(3, [(-1, 1)])
    with pytest.raises(ConfigTypeError, match="did you mean 'max_jobs'"):
        minimize(sphere, [(-1, 1)], max_job=2)


def test_to_scipy_of_a_run_where_nothing_succeeded():
    r = Result(x=None, fx=float("inf"), stats={"f_evals": 12, "evals_failed": 12, "end_cond": "budget"})
    s = r.to_scipy()
    assert (s.success, s.status, s.x, s.nfev, s.nfail, s.message) == (False, 1, None, 12, 12, "budget")
    assert not r.success
