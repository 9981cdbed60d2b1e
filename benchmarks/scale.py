"""Performance at scale (issue 18): every row of the issue's table, side by side, in one run.

Each cell runs in a fresh Python process (so peak RSS is that cell's own, and nothing one
cell leaves behind slows the next); the cell prints one JSON line, which this script
collects into a table and ``benchmarks/results/scale.json``.

Rows:

``memory``
    Peak RSS of the manager process (``ru_maxrss``, its own, not its children's):
    10-D Rastrigin, ``backend="processes"``, 2 jobs, CMA-ES (popsize 10), hunting on, log
    on, at each evaluation budget of ``--memory-evals``; also the log's bytes per
    evaluation.  Goal: RSS at the larger budgets within 1.15x of the smallest.
``start``
    ``backend="threads"``, a 10 ms sleeping task, 1 optimizer, ``--start-evals``
    evaluations: seconds from ``start_manager()`` to the first evaluation's start (from the
    log), and the throughput as a share of the ideal (100 evaluations/s); the median of
    ``repeats`` cells (each a fresh interpreter, so the imports are the first ones).
``many``
    ``--jobs`` optimizers (threads; and processes at ``--process-jobs``), a 10 ms sleeping
    task, ``--evals-each`` evaluations each: throughput as a share of ``jobs / 10 ms``.
``cheap``
    :mod:`benchmarks.overhead`'s cheap objective, 2 optimizers, log on: the manager on
    ``processes`` as a share of two plain pycma processes, and on ``threads`` next to two
    plain pycma threads.
``cpu5ms``
    A CPU-bound 5 ms task: ``processes_forced`` x ``processes(2)`` and ``threads`` x
    ``processes(2)`` against serial (:mod:`benchmarks.backends`' cells).
``dask``
    Level 2 on the embedded Dask cluster (2 workers), the cheap task, generations of 16:
    milliseconds per evaluation through :class:`~glompo_like.evaluation.dask_pool.DaskPool`
    next to a plain ``client.map`` + ``gather`` of the same evaluations on the same cluster.

Run from the repository root (under ``nice`` on a shared machine)::

    python benchmarks/scale.py              # full run, writes benchmarks/results/scale.json
    python benchmarks/scale.py --quick      # smoke test: small budgets, a few seconds a cell
    python benchmarks/scale.py --rows many,start

Measuring the code of another checkout: ``PYTHONPATH=/path/to/checkout python benchmarks/scale.py``
(the cells import ``glompo_like`` from ``PYTHONPATH`` first).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
# run as a script, this folder comes first on sys.path, and its dask.py would shadow the
# real ``dask`` package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != str(_HERE)]
ROOT = _HERE.parent
DEFAULT_OUT = _HERE / "results" / "scale.json"
ROWS = ("memory", "start", "many", "cheap", "cpu5ms", "dask")

FULL = {"memory_evals": [100_000, 1_000_000], "start_evals": 1000, "jobs": [8, 32, 64, 128],
        "process_jobs": [64], "evals_each": 1000, "cheap_evals": 20_000, "repeats": 3,
        "cpu_budget": 600, "dask_generations": 100}
QUICK = {"memory_evals": [2000, 6000], "start_evals": 60, "jobs": [4], "process_jobs": [],
         "evals_each": 40, "cheap_evals": 2000, "repeats": 1, "cpu_budget": 60, "dask_generations": 0}

SLEEP_S = 0.01
DIM = 10


def sleep10(x: Any) -> float:
    """The 10 ms sleeping task (module level: it pickles to every backend)."""
    time.sleep(SLEEP_S)
    return float(sum(v * v for v in x))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --------------------------------------------------------------------------- cells (child side)
def cell_memory(evals: int) -> dict[str, Any]:
    from benchmarks import overhead

    with tempfile.TemporaryDirectory(prefix="glompo_scale_") as tmp:
        from glompo_like import GloMPOManager
        from glompo_like.optimizers.cma import CMAOptimizer
        from glompo_like.policies.checkers import MaxFuncCalls
        from glompo_like.policies.hunters import BestUnmoving, MinFuncCalls
        from glompo_like.policies.selectors import CycleSelector
        from glompo_like.problems.functions import rastrigin
        from glompo_like.record.log import LOG_NAME

        t0 = time.perf_counter()
        m = GloMPOManager(
            task=rastrigin, bounds=[(-5.12, 5.12)] * DIM,
            opt_selector=CycleSelector([(CMAOptimizer, {"sigma0": 1.5, "popsize": 10})]),
            backend="processes", max_jobs=2, convergence_checker=MaxFuncCalls(evals),
            killing_conditions=MinFuncCalls(overhead.MIN_EVALS_BEFORE_KILL) & BestUnmoving(400, 0.01),
            working_dir=tmp, seed=1)
        r = m.start_manager()
        wall = time.perf_counter() - t0
        size = (Path(tmp) / LOG_NAME).stat().st_size
    n = int(r.stats["f_evals"])
    return {"evals": n, "peak_rss_mb": _rss_mb(), "wall_s": wall, "log_bytes_per_eval": size / n,
            "opts_started": r.stats["opts_started"]}


def _sleep_run(backend: str, jobs: int, evals_each: int) -> dict[str, Any]:
    from glompo_like import GloMPOManager
    from glompo_like.optimizers.cma import CMAOptimizer
    from glompo_like.policies.checkers import MaxFuncCalls
    from glompo_like.policies.selectors import CycleSelector
    from glompo_like.record.log import read_log

    budget = jobs * evals_each
    with tempfile.TemporaryDirectory(prefix="glompo_scale_") as tmp:
        m = GloMPOManager(
            task=sleep10, bounds=[(-5.0, 5.0)] * DIM,
            opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 10})]),
            backend=backend, max_jobs=jobs, convergence_checker=MaxFuncCalls(budget),
            killing_conditions=False, working_dir=tmp, seed=1)
        t_wall0 = time.time()
        t0 = time.perf_counter()
        r = m.start_manager()
        wall = time.perf_counter() - t0
        first = float(min(read_log(tmp)["t_start"]))
    n = int(r.stats["f_evals"])
    ideal = jobs / SLEEP_S
    return {"backend": backend, "jobs": jobs, "evals": n, "wall_s": wall, "evals_per_s": n / wall,
            "share_of_ideal": n / wall / ideal, "first_eval_after_s": first - t_wall0,
            "probe_evals": r.stats.get("probe_evals"), "t_probe": r.stats.get("t_probe")}


def cell_start(evals: int) -> dict[str, Any]:
    return _sleep_run("threads", 1, evals)


def cell_many(backend: str, jobs: int, evals_each: int) -> dict[str, Any]:
    return _sleep_run(backend, jobs, evals_each)


def cell_cheap(evals: int, repeats: int) -> dict[str, Any]:
    from benchmarks import overhead

    names = ("pycma_2proc", "manager_processes", "pycma_2threads", "manager_threads")
    runs: dict[str, list[float]] = {k: [] for k in names}
    for i in range(repeats):  # interleaved
        for k in names:
            runs[k].append(overhead.MEASURES[k](overhead.DEFAULT_DIM, evals, i)["evals_per_s"])
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"evals_per_s": med, "runs": runs,
            "processes_share_of_ceiling": med["manager_processes"] / med["pycma_2proc"],
            "threads_vs_2threads": med["manager_threads"] / med["pycma_2threads"]}


def cell_cpu5ms(budget: int, repeats: int) -> dict[str, Any]:
    from benchmarks import backends as b

    cal = b.calibrate(0.005)
    task = b.make_objective("cpu", cal)
    combos = [b.Combo("serial", "manager", "threads", "serial", 1, 1),
              b.Combo("processes_forced x processes(2)", "manager", "processes_forced", "processes", 2, 2),
              b.Combo("threads x processes(2)", "manager", "threads", "processes", 2, 2)]
    runs: dict[str, list[float]] = {c.name: [] for c in combos}
    for i in range(repeats):
        for c in combos:
            runs[c.name].append(b.measure_manager(c, task, budget, i)["evals_per_s"])
    ratios = {c.name: [x / s for x, s in zip(runs[c.name], runs["serial"], strict=True)] for c in combos[1:]}
    return {"calibration": cal, "runs": runs, "ratios_to_serial": ratios,
            "min_ratio": {k: min(v) for k, v in ratios.items()}}


def _cheap_task(x: Any) -> float:
    return float(sum(v * v for v in x))


def cell_dask(generations: int) -> dict[str, Any]:
    import numpy as np
    from distributed import Client

    from glompo_like.evaluation.dask_cluster import start_local_cluster
    from glompo_like.evaluation.dask_pool import DaskPool
    from glompo_like.execution.plan import pickle_task

    popsize = 16
    rng = np.random.default_rng(0)
    gens = [rng.uniform(-5, 5, (popsize, DIM)) for _ in range(generations + 1)]
    address, close = start_local_cluster(2)
    try:
        pool = DaskPool(pickle_task(_cheap_task), 2, address, "bench")
        try:
            pool.evaluate(gens[0])
            t0 = time.perf_counter()
            for xs in gens[1:]:
                pool.evaluate(xs)
            t_pool = time.perf_counter() - t0
        finally:
            pool.close()
        with Client(address, set_as_default=False) as client:
            client.gather(client.map(_cheap_task, list(gens[0]), pure=False))
            t0 = time.perf_counter()
            for xs in gens[1:]:
                client.gather(client.map(_cheap_task, list(xs), pure=False))
            t_map = time.perf_counter() - t0
    finally:
        close()
    n = generations * popsize
    return {"evals": n, "daskpool_ms_per_eval": 1e3 * t_pool / n, "client_map_ms_per_eval": 1e3 * t_map / n,
            "ratio_to_client_map": t_pool / t_map}


CELLS = {"memory": cell_memory, "start": cell_start, "many": cell_many, "cheap": cell_cheap,
         "cpu5ms": cell_cpu5ms, "dask": cell_dask}


# --------------------------------------------------------------------------- parent side
def run_cell(name: str, *args: Any, timeout: float = 1800.0) -> dict[str, Any]:
    """Run one cell in a fresh interpreter; its last stdout line is its JSON."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT)) if p)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cell", name, json.dumps(list(args))]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout)[-2000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def measure_all(cfg: dict[str, Any], rows: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    lines: list[str] = [f"{'row':<42} {'figure':>14}  goal", "-" * 72]

    def row(label: str, value: str, goal: str) -> None:
        lines.append(f"{label:<42} {value:>14}  {goal}")
        print(lines[-1], flush=True)

    print("\n".join(lines), flush=True)
    if "memory" in rows:
        mem = [run_cell("memory", n) for n in cfg["memory_evals"]]
        out["memory"] = mem
        base = mem[0].get("peak_rss_mb")
        for m, n in zip(mem, cfg["memory_evals"], strict=True):
            rss = m.get("peak_rss_mb")
            rel = f" ({rss / base:.2f}x)" if rss and base else ""
            row(f"memory: peak RSS at {n:,} evals", _f(rss, ".0f") + " MB" + rel, "<= 1.15x of the first")
        if mem and "log_bytes_per_eval" in mem[-1]:
            row("memory: log bytes per evaluation", _f(mem[-1]["log_bytes_per_eval"], ".0f"), "stated")
    if "start" in rows:
        runs = [run_cell("start", cfg["start_evals"]) for _ in range(cfg["repeats"])]
        s = out["start"] = dict(runs[0])
        for key in ("first_eval_after_s", "share_of_ideal"):
            got = [r[key] for r in runs if r.get(key) is not None]
            s[key] = statistics.median(got) if got else None
            s[key + "_runs"] = got
        row("start: first evaluation after (median)", _f(s.get("first_eval_after_s"), ".3f") + " s", "<= 0.2 s")
        row("start: share of ideal (1 opt, 10 ms)", _f(s.get("share_of_ideal"), ".2f"), "-")
    if "many" in rows:
        many = out["many"] = []
        for backend, jobs_list in (("threads", cfg["jobs"]), ("processes", cfg["process_jobs"])):
            for jobs in jobs_list:
                r = run_cell("many", backend, jobs, cfg["evals_each"])
                many.append(r)
                goal = ">= 0.95" if jobs == 32 else (">= 0.8 (one backend)" if jobs >= 128 else "-")
                row(f"many: {jobs} {backend}, share of ideal", _f(r.get("share_of_ideal"), ".2f"), goal)
    if "cheap" in rows:
        c = out["cheap"] = run_cell("cheap", cfg["cheap_evals"], cfg["repeats"])
        row("cheap: processes share of 2 pycma procs", _f(c.get("processes_share_of_ceiling"), ".2f"), ">= 0.92")
        row("cheap: threads / 2 pycma threads", _f(c.get("threads_vs_2threads"), ".2f"), ">= 1.0")
    if "cpu5ms" in rows:
        c = out["cpu5ms"] = run_cell("cpu5ms", cfg["cpu_budget"], cfg["repeats"])
        for k, v in (c.get("min_ratio") or {}).items():
            row(f"cpu5ms: {k} (min)", f"{v:.2f}x", ">= 1.8x" if k.startswith("processes_forced") else "-")
    if "dask" in rows and cfg["dask_generations"]:
        d = out["dask"] = run_cell("dask", cfg["dask_generations"])
        row("dask: DaskPool ms/eval", _f(d.get("daskpool_ms_per_eval"), ".2f"), "<= 0.5")
        row("dask: plain client.map ms/eval", _f(d.get("client_map_ms_per_eval"), ".2f"), "-")
        row("dask: DaskPool / client.map", _f(d.get("ratio_to_client_map"), ".2f"), "<= 1.2")
    return out, lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small budgets (the smoke test)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {ROWS}")
    ap.add_argument("--memory-evals", help="comma-separated budgets, e.g. 100000,1000000,10000000")
    ap.add_argument("--jobs", help="comma-separated optimizer counts for the threads cells of 'many'")
    ap.add_argument("--process-jobs", help="comma-separated optimizer counts for the processes cells ('' for none)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    ap.add_argument("cell_args", nargs="?", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.cell:  # child side
        print(json.dumps(CELLS[a.cell](*json.loads(a.cell_args or "[]"))), flush=True)
        return 0
    cfg = dict(QUICK if a.quick else FULL)
    if a.memory_evals:
        cfg["memory_evals"] = [int(v) for v in a.memory_evals.split(",")]
    if a.jobs:
        cfg["jobs"] = [int(v) for v in a.jobs.split(",")]
    if a.process_jobs is not None:
        cfg["process_jobs"] = [int(v) for v in a.process_jobs.split(",") if v]
    rows = [r.strip() for r in a.rows.split(",") if r.strip()]
    import glompo_like

    t0 = time.time()
    out, lines = measure_all(cfg, rows)
    doc = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "glompo_like_from": str(Path(glompo_like.__file__).resolve().parent),
           "settings": {"quick": a.quick, **cfg, "rows": rows}, "wall_s": time.time() - t0,
           "loadavg": list(os.getloadavg()), "rows": out, "table": lines}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
