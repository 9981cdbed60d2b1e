"""Smoke test: benchmarks/overhead.py runs end to end (quick settings) and writes its JSON."""

from __future__ import annotations

import json
import math

import pytest


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_overhead_quick(overhead, tmp_path, capsys):
    out = tmp_path / "o.json"
    # --run-timeout 0: leave pytest's own faulthandler/timeout watchdog in charge.
    assert overhead.main(["--quick", "--run-timeout", "0", "--out", str(out)]) == 0

    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["settings"]["evals"] == overhead.QUICK_EVALS
    assert doc["settings"]["repeats"] == 1
    assert doc["machine"]["cpu_count"] >= 1
    assert set(doc["configurations"]) == set(overhead.CONFIGS)
    for name in overhead.CONFIGS:
        conf = doc["configurations"][name]
        assert conf["median_evals_per_s"] > 0, name
        assert math.isfinite(conf["ratio_to_pycma_loop"]), name
        assert len(conf["repeats"]) == 1, name
        run = conf["repeats"][0]
        assert run["evals_per_s"] > 0, name
        assert run["f_evals"] >= overhead.QUICK_EVALS, name
    assert doc["configurations"]["pycma_loop"]["ratio_to_pycma_loop"] == pytest.approx(1.0)

    table = capsys.readouterr().out
    for name in overhead.CONFIGS:
        assert name in table


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_backends_quick(backends, tmp_path, capsys):
    """benchmarks/backends.py --quick: every combination measured (or refused by design)."""
    out = tmp_path / "b.json"
    # --run-timeout 0: leave pytest's own faulthandler/timeout watchdog in charge.
    assert backends.main(["--quick", "--run-timeout", "0", "--out", str(out)]) == 0

    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["settings"]["budgets"] == backends.QUICK_BUDGETS
    assert doc["settings"]["repeats"] == 1
    assert doc["calibration"]["cpu_n_iter"] > 0
    assert set(doc["objectives"]) == set(backends.OBJECTIVES)
    for objective, res in doc["objectives"].items():
        combos = res["combinations"]
        assert set(combos) == set(backends.COMBO_NAMES), objective
        for name, c in combos.items():
            if c["refused"]:
                # the one combination that is refused by design
                assert name == "processes x processes(2)", (objective, name)
                assert "daemonic" in c["message"]
                continue
            assert c["median_evals_per_s"] > 0, (objective, name)
            assert math.isfinite(c["ratio_to_serial"]), (objective, name)
            assert all(r["evals_per_s"] > 0 for r in c["repeats"]), (objective, name)
        assert combos["serial"]["ratio_to_serial"] == pytest.approx(1.0)
        choice = combos["auto"]["backend_choice"]
        assert choice["level1"] in ("threads", "processes", "processes_forced"), choice

    table = capsys.readouterr().out
    assert "processes x processes(2)" in table and "refused" in table


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_faults_quick(faults, tmp_path):
    """benchmarks/faults.py --quick: the faults are survived, nothing is lost or left behind."""
    out = tmp_path / "f.json"
    faults.main(["--quick", "--case-timeout", "0", "--out", str(out)])
    doc = json.loads(out.read_text(encoding="utf-8"))
    cases = {c["id"]: c for c in doc["cases"]}
    assert set(cases) == set(faults.QUICK_CASES)
    for cid, c in cases.items():
        assert c["as_expected"], (cid, c["outcome"])
        assert c["processes_left"] == 0, (cid, c["processes_left_detail"])
        if c["told_minus_logged"] is not None:
            assert c["told_minus_logged"] == 0, cid
    assert cases["hang-processes-serial"]["status_counts"].get("timed_out", 0) >= 1


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_scale_quick(scale, tmp_path, capsys):
    """benchmarks/scale.py --quick: every row of issue 18's table measured, table and JSON."""
    out = tmp_path / "s.json"
    assert scale.main(["--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    rows = doc["rows"]
    assert len(rows["memory"]) == len(scale.QUICK["memory_evals"])
    for m in rows["memory"]:
        assert m["peak_rss_mb"] > 0 and m["log_bytes_per_eval"] > 0, m
    assert rows["start"]["first_eval_after_s"] >= 0
    assert all(r["share_of_ideal"] > 0 for r in rows["many"])
    assert rows["cheap"]["processes_share_of_ceiling"] > 0
    assert all(v > 0 for v in rows["cpu5ms"]["min_ratio"].values())
    table = capsys.readouterr().out
    assert "memory: peak RSS" in table and "many:" in table


@pytest.mark.timeout(60)
def test_cma_box_quick(cma_box, tmp_path, capsys):
    """benchmarks/cma_box.py --quick: a time per generation for each configuration."""
    out = tmp_path / "c.json"
    assert cma_box.main(["--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert set(doc["rows"]) == {"5", "10"}
    for row in doc["rows"].values():
        assert set(row["ms_per_generation"]) == {"pycma_bounds", "pycma_no_bounds", "glompo_cma"}
        assert all(v > 0 for v in row["ms_per_generation"].values())
    assert "glompo/pycma_bounds" in capsys.readouterr().out
