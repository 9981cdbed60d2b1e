"""The benchmark harness: new test functions, BBOB wrapper, trace/target/ECDF logic,
and a smoke run of benchmarks/quality.py."""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from glompo_like import GloMPOManager, read_log
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.problems.functions import (
    FUNCTIONS,
    LJ_MINIMA,
    TestFunction,
    lennard_jones,
    michalewicz,
    shubert,
    sphere,
)

pytestmark = pytest.mark.timeout(60)


# =========================================================================== functions
NEW = ["schwefel", "griewank", "levy", "michalewicz", "styblinski_tang", "shubert"]


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("dim", [2, 5, 10])
def test_new_function_optimum_at_minimiser(name, dim):
    t = FUNCTIONS[name]
    x = t.minimiser(dim)
    assert x is not None and x.shape == (dim,)
    assert np.all(x >= t.lower) and np.all(x <= t.upper)
    assert t.f(x) == pytest.approx(t.fmin_at(dim), abs=1e-6)
    # and it is a minimum: small moves do not go lower
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = np.clip(x + rng.normal(scale=1e-3, size=dim), t.lower, t.upper)
        assert t.f(y) >= t.fmin_at(dim) - 1e-9


def test_published_optima():
    # Michalewicz m = 10 (literature: -1.8013, -4.687658, -9.66015)
    m = FUNCTIONS["michalewicz"]
    assert m.fmin_at(2) == pytest.approx(-1.8013034, abs=1e-6)
    assert m.fmin_at(5) == pytest.approx(-4.687658, abs=1e-6)
    assert m.fmin_at(10) == pytest.approx(-9.66015, abs=1e-5)
    assert michalewicz(np.array([2.20290552, 1.57079633])) == pytest.approx(-1.8013034, abs=1e-6)
    # Shubert 2-D: -186.7309088310239
    assert FUNCTIONS["shubert"].fmin_at(2) == pytest.approx(-186.7309088310239, abs=1e-6)
    assert shubert(np.array([-7.0835064, -7.7083137])) == pytest.approx(-186.7309088, abs=1e-6)
    # Styblinski–Tang: -39.16616570377142 per dimension; Schwefel 2.26: 0
    assert FUNCTIONS["styblinski_tang"].fmin_at(3) == pytest.approx(-117.4984971113, abs=1e-6)
    assert FUNCTIONS["schwefel"].f(np.full(4, 420.968746)) == pytest.approx(0.0, abs=1e-6)
    assert FUNCTIONS["griewank"].f(np.zeros(7)) == 0.0
    assert FUNCTIONS["levy"].f(np.ones(7)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n_atoms", [2, 3, 4])
def test_lennard_jones_exact_minimisers(n_atoms):
    t = FUNCTIONS["lennard_jones"]
    x = t.minimiser(3 * n_atoms)
    assert lennard_jones(x) == pytest.approx(LJ_MINIMA[n_atoms], abs=1e-12)
    assert t.fmin_at(3 * n_atoms) == LJ_MINIMA[n_atoms]


def _lj_grad(x):
    p = x.reshape(-1, 3)
    d = p[:, None, :] - p[None, :, :]
    r2 = (d * d).sum(-1)
    np.fill_diagonal(r2, 1.0)
    inv6 = 1.0 / r2**3
    c = 4.0 * (-12.0 * inv6 * inv6 + 6.0 * inv6) / r2
    np.fill_diagonal(c, 0.0)
    return (c[:, :, None] * d).sum(1).reshape(-1)


def _icosahedron13():
    phi = (1 + 5**0.5) / 2
    v = np.array([[0, 1, phi], [0, -1, phi], [0, 1, -phi], [0, -1, -phi], [1, phi, 0], [-1, phi, 0],
                  [1, -phi, 0], [-1, -phi, 0], [phi, 0, 1], [-phi, 0, 1], [phi, 0, -1], [-phi, 0, -1]])
    v = v / np.linalg.norm(v[0]) * 2 ** (1 / 6)
    return np.vstack([[0, 0, 0], v])


@pytest.mark.parametrize("n_atoms", [5, 6, 7, 13])
def test_lennard_jones_ccd_minima_by_relaxation(n_atoms):
    """Relaxing the known structures (trigonal bipyramid, octahedron, pentagonal bipyramid,
    Mackay icosahedron) reproduces the Cambridge Cluster Database energies."""
    from scipy.optimize import minimize

    r = 2 ** (1 / 6)
    s3 = 3**0.5
    start = {
        5: np.array([[0, 0, 0], [1, 0, 0], [0.5, s3 / 2, 0], [0.5, s3 / 6, (2 / 3) ** 0.5],
                     [0.5, s3 / 6, -((2 / 3) ** 0.5)]]) * r,
        6: np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]) * r / 2**0.5,
        7: np.vstack([[[np.cos(a), np.sin(a), 0] for a in np.arange(5) * 2 * np.pi / 5],
                      [[0, 0, 0.85], [0, 0, -0.85]]]) * r * 0.85,
        13: _icosahedron13(),
    }[n_atoms]
    res = minimize(lennard_jones, start.reshape(-1), jac=_lj_grad, method="BFGS", options={"gtol": 1e-10})
    assert res.fun == pytest.approx(LJ_MINIMA[n_atoms], abs=1e-6)
    centred = res.x.reshape(-1, 3) - res.x.reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(centred) <= 2.0)  # the minimum lies inside the box [-2, 2]


def test_fmin_forms_and_errors():
    assert TestFunction("a", sphere, -1, 1, 2.5).fmin_at(7) == 2.5
    assert TestFunction("b", sphere, -1, 1, {2: -1.0}).fmin_at(2) == -1.0
    with pytest.raises(KeyError):
        TestFunction("b", sphere, -1, 1, {2: -1.0}).fmin_at(3)
    assert TestFunction("c", sphere, -1, 1, lambda d: -d).fmin_at(4) == -4.0
    with pytest.raises(KeyError):
        FUNCTIONS["lennard_jones"].fmin_at(3 * 40)
    with pytest.raises(ValueError):
        lennard_jones(np.zeros(4))
    assert FUNCTIONS["lennard_jones"].minimiser(15) is None
    # the registry pickles (no lambdas), and old float fmin still works as before
    for t in FUNCTIONS.values():
        pickle.loads(pickle.dumps(t))
    assert FUNCTIONS["rastrigin"].fmin == 0.0


# =========================================================================== trace logic
def test_best_so_far_and_improvements(quality):
    fx = [5.0, 3.0, float("nan"), 4.0, 1.0, 1.0, 0.5]
    assert quality.best_so_far(fx).tolist() == [5, 3, 3, 3, 1, 1, 0.5]
    assert quality.best_so_far([float("nan"), 2.0]).tolist() == [math.inf, 2.0]
    tr = quality.improvements(fx, times=[0.1 * i for i in range(7)])
    assert [r[:2] for r in tr] == [[1, 5.0], [2, 3.0], [5, 1.0], [7, 0.5]]
    assert tr[2][2] == pytest.approx(0.4)


def test_first_hits_targets_ecdf_ert(quality):
    trace = [[1, 5.0, 0], [2, 3.0, 0], [5, 1.0, 0], [7, 0.5, 0]]
    hits = quality.first_hits(trace, fopt=0.0, precisions=[10, 2, 1, 0.1])
    assert hits.tolist() == [1, 5, 5, math.inf]
    # with an offset optimum
    assert quality.first_hits([[3, 101.0, 0]], fopt=100.0, precisions=[2, 1, 0.5]).tolist() == [3, 3, math.inf]
    # COCO's 51 targets 1e2 ... 1e-8
    assert quality.TARGET_PRECISIONS.size == 51
    assert quality.TARGET_PRECISIONS[0] == pytest.approx(100) and quality.TARGET_PRECISIONS[-1] == pytest.approx(1e-8)
    assert quality.targets_reached(0.5, 0.0) == 12  # 10^2 ... 10^-0.2
    assert quality.targets_reached(1e-9, 0.0) == 51
    assert quality.targets_reached(1000.0, 0.0) == 0
    # ECDF over (run, target) pairs
    runs = [np.array([1, 5, 5, math.inf]), np.array([2, math.inf, math.inf, math.inf])]
    assert quality.ecdf(runs, [0, 1, 2, 5, 100]).tolist() == [0, 0.125, 0.25, 0.5, 0.5]
    assert quality.ecdf([], [1, 2]).tolist() == [0, 0]
    # ERT: successes count up to their hit, failures their whole run
    assert quality.ert([100, math.inf, 300], [100, 1000, 300]) == 700
    assert quality.ert([math.inf], [10]) == math.inf


def test_anytime_ecdf_area_on_constructed_traces(quality):
    b = quality.anytime_budgets(2)
    assert b.size == 31 and b[0] == pytest.approx(20) and b[-1] == pytest.approx(20000)
    assert quality.anytime_budgets(2, max_budget=200).size == 11  # 10*D .. 100*D
    # a run that reaches every target at its first evaluation scores 1; one that never does, 0
    assert quality.run_area({"trace": [[1, 0.0, 0]], "fopt": 0.0}, b) == 1.0
    assert quality.run_area({"trace": [[1, 1e3, 0]], "fopt": 0.0}, b) == 0.0
    # all 51 targets at once, after the 11th of 31 budgets: 21/31 of the triples
    assert quality.run_area({"trace": [[1, 1e3, 0], [201, -1.0, 0]], "fopt": -1.0}, b) == pytest.approx(20 / 31)
    # half the targets (1e2 .. 1e-3 are 26 of 51) from the start
    assert quality.run_area({"trace": [[1, 1e-3, 0]], "fopt": 0.0}, b) == pytest.approx(26 / 51)
    # the area is the mean ECDF over the budgets
    hits = [np.array([1, 30, math.inf]), np.array([math.inf] * 3)]
    assert quality.ecdf_area(hits, [10, 100]) == pytest.approx((1 / 6 + 2 / 6) / 2)
    assert math.isnan(quality.ecdf_area(hits, []))


def test_group_areas_mean_and_run_to_run_spread(quality):
    def run(config, fn, seed, trace):
        return {"config": config, "function": fn, "seed": seed, "fopt": 0.0, "trace": trace}

    solved, never = [[1, 0.0, 0]], [[1, 1e3, 0]]
    runs = [run("a", "f1", 0, solved), run("a", "f2", 0, never),   # run 0 of group f1-5: 0.5
            run("a", "f1", 1, solved), run("a", "f2", 1, solved),  # run 1: 1.0
            run("a", "f20", 0, never), run("a", "f20", 1, never),
            run("b", "f1", 0, never), run("b", "f1", 1, never)]
    areas = quality.group_areas(runs, ["a", "b"], dim=2)
    g = areas["a"]["f1-5 separable"]
    assert g["mean"] == pytest.approx(0.75) and g["std"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert g["runs"] == 2 and g["functions"] == 2
    assert areas["a"]["f20-24 weak struct."]["mean"] == 0.0
    assert areas["a"]["all"]["mean"] == pytest.approx(np.mean([1 / 3, 2 / 3]))
    assert list(areas["b"]) == ["f1-5 separable", "all"] and areas["b"]["all"]["mean"] == 0.0
    assert quality.bbob_group("f14") == "f10-14 ill-cond." and quality.bbob_group("rastrigin") is None
    text = quality.format_area_table(areas, ["a", "b"], {"dim": 2, "budget": 20000})
    assert "75.0 ± 35.4 (2)" in text and "31 budgets 10*D..10000*D" in text


def test_modelled_time_ratio(quality):
    def run(config, fn, hit, n):
        return {"config": config, "function": fn, "fopt": 0.0, "n_evals": n,
                "trace": [[1, 1.0, 0]] + ([[hit, 0.0, 0]] if hit else [])}

    runs = [run("m_2jobs", "f1", 100, 100), run("bipop", "f1", 100, 100),  # same evaluations, 2 cores
            run("m_2jobs", "f2", 400, 400), run("bipop", "f2", 100, 100),
            run("m_2jobs", "f3", 50, 50), run("bipop", "f3", None, 1000)]
    m = quality.modelled_time_ratio(runs, "m_2jobs", "bipop")
    assert m["per_function"] == {"f1": 0.5, "f2": 2.0}
    assert m["geomean"] == pytest.approx(1.0) and m["functions"] == 2
    assert m["solved_by_one_only"] == {"f3": "m_2jobs"}
    assert quality.modelled_time_ratio(runs, "m_2jobs", "bipop", cores={"m_2jobs": 1})["per_function"]["f1"] == 1.0


def test_combine_merges_parts(quality, tmp_path):
    def part(seed):
        return {"settings": {"suite": "functions", "dim": 2, "budget": 100, "seeds": 1, "configs": ["a"],
                             "functions": ["sphere"], "cpu_ms": 0.0},
                "runs": [{"config": "a", "problem": "sphere_d2", "function": "sphere", "seed": seed,
                          "fopt": 0.0, "n_evals": 100, "wall_s": 1.0, "final_best": 0.5,
                          "trace": [[1, 0.5, 0.0]]}]}
    paths = []
    for seed in (0, 1, 1):
        paths.append(tmp_path / f"p{len(paths)}.json")
        paths[-1].write_text(json.dumps(part(seed)))
    out = tmp_path / "all.json"
    assert quality.main(["--combine", *map(str, paths), "--out", str(out), "--no-plots"]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["runs"]) == 2 and doc["settings"]["seeds"] == 2
    assert doc["summary"]["a"]["_ecdf_area"]["all"]["runs"] == 2
    assert quality.main(["--combine", *map(str, paths), "--only-runs", "1", "--out", str(out), "--no-plots"]) == 0
    assert [r["seed"] for r in json.loads(out.read_text())["runs"]] == [1]
    assert quality.parse_runs("0-2,5") == [0, 1, 2, 5]


def test_relabel_renames_and_drops_configs(quality, tmp_path):
    run = {"problem": "sphere_d2", "function": "sphere", "seed": 0, "fopt": 0.0, "n_evals": 100, "wall_s": 1.0,
           "final_best": 0.5, "trace": [[1, 0.5, 0.0]]}
    doc = {"settings": {"suite": "functions", "dim": 2, "budget": 100, "seeds": 1, "configs": ["a", "b"],
                        "functions": ["sphere"], "cpu_ms": 0.0},
           "runs": [{**run, "config": "a"}, {**run, "config": "b"}]}
    src, out = tmp_path / "old.json", tmp_path / "renamed.json"
    src.write_text(json.dumps(doc))
    assert quality.main(["--relabel", str(src), "a=before_a", "b=", "--out", str(out), "--no-plots"]) == 0
    got = json.loads(out.read_text())
    assert [r["config"] for r in got["runs"]] == ["before_a"] and got["settings"]["configs"] == ["before_a"]


def test_summarise_function(quality):
    runs = [
        {"trace": [[10, 1e-9, 0]], "fopt": 0.0, "n_evals": 10, "final_best": 1e-9, "wall_s": 1.0},
        {"trace": [[1, 1.0, 0], [50, 0.1, 0]], "fopt": 0.0, "n_evals": 100, "final_best": 0.1, "wall_s": 3.0},
    ]
    s = quality.summarise_function(runs)
    assert s["successes"] == 1 and s["runs"] == 2
    assert s["ert_1e-8"] == 110
    assert s["median_wall_s"] == 2.0


def test_best_so_far_from_a_real_log(quality, tmp_path):
    manager = GloMPOManager(sphere, [(-5, 5)] * 2, convergence_checker=MaxFuncCalls(150),
                            backend="threads", max_jobs=1, seed=3, status=None, working_dir=tmp_path)
    with manager:
        result = manager.start_manager()
    best, t_end = quality.best_so_far_from_log(tmp_path)
    log = read_log(tmp_path)
    fx = np.asarray(log["fx"], dtype=float)
    assert best.size == fx.size == result.stats["f_evals"]
    assert np.all(np.diff(best) <= 0)
    assert best.tolist() == np.minimum.accumulate(fx).tolist()
    assert best[-1] == result.fx
    assert np.all(np.isfinite(t_end))
    trace = quality.improvements(best)
    assert trace[-1][1] == result.fx


# =========================================================================== BBOB
def _bbob_value(problem, x):
    return problem(x)


def test_bbob_problem_pickles_and_rebuilds_in_spawned_process():
    pytest.importorskip("cocoex", reason="coco-experiment (the 'bbob' extra) is not installed")
    from glompo_like.problems.bbob import BBOBProblem, bbob_suite

    p = BBOBProblem(15, 5, 2)
    x = np.linspace(-1, 1, 5)
    local = p(x)
    blob = pickle.dumps(p)
    assert len(blob) < 200  # only (function, dim, instance)
    q = pickle.loads(blob)
    assert q == p and q._problem is None
    assert q(x) == local
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(_bbob_value, p, x).result(timeout=50)
    assert remote == local
    # fopt is the instance's optimum: f(xopt) == fopt, and other points are worse
    assert p(p.xopt) == pytest.approx(p.fopt, abs=1e-12)
    assert local > p.fopt
    assert p.bounds == [(-5.0, 5.0)] * 5 and p.name == "bbob_f015_i02_d05"
    assert [s.name for s in bbob_suite([1, 24], 2, [1, 3])] == [
        "bbob_f001_i01_d02", "bbob_f001_i03_d02", "bbob_f024_i01_d02", "bbob_f024_i03_d02"]
    with pytest.raises(ValueError):
        BBOBProblem(25, 5, 1)


def test_bbob_import_error_names_the_extra(monkeypatch):
    from glompo_like.problems import bbob

    monkeypatch.setitem(sys.modules, "cocoex", None)  # makes ``import cocoex`` fail
    with pytest.raises(ImportError, match=r"glompo_like\[bbob\]"):
        bbob.BBOBProblem(1, 2, 1)(np.zeros(2))


# =========================================================================== smoke
def test_quality_quick_smoke(quality, tmp_path, capsys):
    out = tmp_path / "q.json"
    assert quality.main(["--quick", "--suite", "functions", "--out", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    s = doc["settings"]
    assert s["budget"] == 450 and s["functions"] == ["sphere", "rastrigin"]
    assert set(s["configs"]) == set(quality.QUICK_CONFIGS)
    assert len(doc["runs"]) == 2 * len(quality.QUICK_CONFIGS)
    for r in doc["runs"]:
        assert 0 < r["n_evals"] <= 450
        ns = [row[0] for row in r["trace"]]
        assert ns == sorted(ns)
    for f in doc["figures"]:
        assert Path(f).stat().st_size > 1000
    text = capsys.readouterr().out
    assert "ERT to fopt+1e-8" in text and "sphere" in text


def test_quality_quick_bbob(quality, tmp_path):
    pytest.importorskip("cocoex", reason="coco-experiment (the 'bbob' extra) is not installed")
    out = tmp_path / "b.json"
    assert quality.main(["--quick", "--configs", "glompo_default,scipy_de", "--no-plots",
                         "--out", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert {r["problem"] for r in doc["runs"]} == {"bbob_f015_i01_d02", "bbob_f021_i01_d02"}
    assert all(r["fopt"] is not None for r in doc["runs"])
