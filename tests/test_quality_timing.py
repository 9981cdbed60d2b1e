"""benchmarks/quality.py: CPU-bound objectives, stop precision and seconds to target."""

from __future__ import annotations

import json
import math
import pickle
import time

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(120)


def test_cpu_bound_returns_f_and_costs_cpu_time(quality) -> None:
    from glompo_like.problems.functions import sphere

    slow = quality.CPUBound(sphere, 5.0)
    x = np.array([1.0, 2.0])
    t0 = time.thread_time()
    assert slow(x) == sphere(x) == 5.0
    assert time.thread_time() - t0 >= 0.005
    again = pickle.loads(pickle.dumps(slow))
    assert again.cpu_ms == 5.0 and again(x) == 5.0
    assert quality.CPUBound(sphere, 0)(x) == 5.0
    for bad in (-1, float("nan"), "2"):
        with pytest.raises(ValueError, match="cpu_ms must be a finite number >= 0"):
            quality.CPUBound(sphere, bad)


def test_make_problem_wraps_and_sets_the_stop_target(quality) -> None:
    p = quality.make_problem("functions", "sphere", 3, 0)
    assert p.stop_precision == quality.FINAL_PRECISION and not isinstance(p.f, quality.CPUBound)
    q = quality.make_problem("functions", "sphere", 3, 0, cpu_ms=1.5, stop_precision=1e-3)
    assert isinstance(q.f, quality.CPUBound) and q.f.cpu_ms == 1.5 and q.meta["cpu_ms"] == 1.5
    assert q.stop_target == pytest.approx(q.fopt + 1e-3)
    assert q.f(np.zeros(3)) == p.f(np.zeros(3))


def test_cpu_bound_bbob_problem_pickles_across_processes(quality) -> None:
    pytest.importorskip("cocoex", reason="coco-experiment (the 'bbob' extra) is not installed")
    from concurrent.futures import ProcessPoolExecutor

    p = quality.make_problem("bbob", 15, 2, 0, cpu_ms=1.0)
    x = np.full(2, 0.5)
    with ProcessPoolExecutor(1) as ex:
        assert ex.submit(p.f, x).result() == p.f(x)


def test_seconds_to_target(quality) -> None:
    runs = [
        {"fopt": 1.0, "trace": [[1, 10.0, 0.1], [5, 1.5, 0.4], [9, 1.05, 0.9]], "wall_s": 2.0},  # hit at 0.9
        {"fopt": 1.0, "trace": [[1, 3.0, 0.2], [2, 1.01, 0.3]], "wall_s": 1.0},  # hit at 0.3
        {"fopt": 1.0, "trace": [[1, 4.0, 0.2]], "wall_s": 3.0},  # never: its whole 3 s count
    ]
    s = quality.seconds_to_target(runs, 0.1)
    assert s["runs"] == 3 and s["successes"] == 2
    assert s["ert_s"] == pytest.approx((0.9 + 0.3 + 3.0) / 2)
    assert s["median_s"] == pytest.approx(0.6)
    none = quality.seconds_to_target(runs[2:], 0.1)
    assert none["successes"] == 0 and math.isinf(none["ert_s"]) and math.isinf(none["median_s"])
    assert quality.seconds_to_target(runs, 10.0)["ert_s"] == pytest.approx((0.1 + 0.2 + 0.2) / 3)


def test_cli_options_validated_and_named_output(quality) -> None:
    a = quality.parse_args(["--suite", "bbob", "--dim", "5", "--cpu-ms", "2.5"])
    assert a.cpu_ms == 2.5 and a.stop_precision == quality.FINAL_PRECISION
    assert a.out.name == "quality_bbob_d5_cpu2.5ms.json"
    assert quality.parse_args(["--dim", "5"]).out.name == "quality_bbob_d5.json"
    for bad in (["--cpu-ms", "-1"], ["--stop-precision", "0"], ["--stop-precision", "nan"]):
        with pytest.raises(SystemExit):
            quality.parse_args(bad)


def test_timing_run_stops_at_the_target_and_reports_seconds(quality, tmp_path, capsys) -> None:
    out = tmp_path / "t.json"
    configs = ["glompo_default", "glompo_default_2jobs", "pycma_bipop", "scipy_de"]
    assert quality.main(["--suite", "functions", "--functions", "sphere", "--dim", "2", "--budget", "600",
                         "--seeds", "1", "--configs", ",".join(configs), "--cpu-ms", "0.2",
                         "--stop-precision", "1e-2", "--no-plots", "--out", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["settings"]["cpu_ms"] == 0.2 and doc["settings"]["stop_precision"] == 1e-2
    for r in doc["runs"]:
        # every configuration reaches 1e-2 on the 2-D sphere and then stops well before 600
        assert r["final_best"] - r["fopt"] <= 1e-2
        assert r["n_evals"] < 600
    for c in configs:
        s = doc["summary"][c]["_seconds_to_target"]["_all"]
        assert s["successes"] == 1 and 0 < s["ert_s"] < float("inf")  # a time, however long it took
    text = capsys.readouterr().out
    assert "wall time to fopt+0.01" in text and "0.2 ms of CPU per evaluation" in text


def test_unmanaged_two_jobs_is_a_configuration(quality) -> None:
    assert "glompo_unmanaged_2jobs" in quality.CONFIGS and "glompo_unmanaged_2jobs" in quality.STYLES


def test_fixed_popsize_configuration_runs_the_old_defaults(quality) -> None:
    from glompo_like.policies.selectors import CycleSelector

    pol = quality._fixed_popsize_policies(4)
    assert isinstance(pol["opt_selector"], CycleSelector)
    assert "min_evals=400" in repr(pol["killing_conditions"]) and "generations" not in repr(pol["killing_conditions"])
    assert "glompo_fixed_popsize" not in quality.CONFIGS  # only on request
    a = quality.parse_args(["--configs", "glompo_fixed_popsize,glompo_default"])
    assert a.configs == ["glompo_fixed_popsize", "glompo_default"]
    p = quality.make_problem("functions", "rastrigin", 3, 0)
    old = quality.run_config("glompo_fixed_popsize", p, 3000, 0)
    new = quality.run_config("glompo_default", p, 3000, 0)
    assert old["n_evals"] == new["n_evals"] == 3000 or min(old["final_best"], new["final_best"]) <= 1e-8
    # the first optimizer is the same (factor 1); later restarts differ in population
    assert [r[:2] for r in old["trace"][:3]] == [r[:2] for r in new["trace"][:3]]
