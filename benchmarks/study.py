"""Several managers, one study: throughput and search quality with 1, 2 and 4 managers
(separate processes on one SQLite study) on the same budget, against one manager without a
study using the same total ``max_jobs``.

The task: 5-D Rastrigin on ``[-5.12, 5.12]``, sleeping 2 ms per evaluation (a task worth
parallelising); CMA-ES (``popsize=8``), threads backend, budget ``MaxFuncCalls(BUDGET)``
counted over the study.  Every configuration uses ``TOTAL_JOBS`` slots in all (``4`` managers
× 1, ``2`` × 2, ``1`` × 4).  Reported per configuration: wall time from the first manager's
start to the last one's end, evaluations stored, evaluations per second, and the best value.

usage: python benchmarks/study.py [--quick] [--repeats N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TOTAL_JOBS = 4
BUDGET, QUICK_BUDGET = 6000, 1500
DIM = 5


def task(x: np.ndarray) -> float:
    time.sleep(0.002)
    return float(10 * len(x) + np.sum(x * x - 10 * np.cos(2 * np.pi * x)))


def _manager(study: str | None, max_jobs: int, budget: int, seed: int) -> Any:
    from glompo_like import GloMPOManager
    from glompo_like.optimizers import CMAOptimizer
    from glompo_like.policies.checkers import MaxFuncCalls
    from glompo_like.policies.selectors import CycleSelector

    m = GloMPOManager(task, [(-5.12, 5.12)] * DIM, opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 8})]),
                      backend="threads", max_jobs=max_jobs, convergence_checker=MaxFuncCalls(budget),
                      study=study, status=None, seed=seed, thread_slice=None)
    return m.start_manager()


def run_study(n: int, budget: int, seed: int, tmp: Path) -> dict[str, Any]:
    from glompo_like import read_log

    url = f"sqlite:///{tmp}/study_{n}_{seed}.db"
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--manager", url, str(TOTAL_JOBS // n), str(budget),
                               str(seed * 100 + i)], stdout=subprocess.PIPE, text=True) for i in range(n)]
    for p in procs:
        p.communicate(timeout=600)
        if p.returncode:
            raise RuntimeError(f"a manager failed ({p.returncode})")
    wall = time.perf_counter() - t0
    log = read_log(url)
    fx = np.asarray(log["fx"], dtype=float)
    return {"managers": n, "max_jobs_each": TOTAL_JOBS // n, "wall_s": wall, "evals": len(fx),
            "evals_per_s": len(fx) / wall, "best_fx": float(np.nanmin(fx))}


def run_alone(budget: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = _manager(None, TOTAL_JOBS, budget, seed * 100)
    wall = time.perf_counter() - t0
    return {"managers": 1, "max_jobs_each": TOTAL_JOBS, "wall_s": wall, "evals": r.stats["f_evals"],
            "evals_per_s": r.stats["f_evals"] / wall, "best_fx": float(r.fx), "study": False}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "study.json")
    ap.add_argument("--manager", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.manager:
        url, jobs, budget, seed = args.manager
        _manager(url, int(jobs), int(budget), int(seed))
        return 0
    budget = QUICK_BUDGET if args.quick else BUDGET
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.repeats + 1):
            rows.append({**run_alone(budget, seed), "seed": seed, "config": "1 manager, no study"})
            for n in (1, 2, 4):
                rows.append({**run_study(n, budget, seed, Path(tmp)), "seed": seed, "study": True,
                             "config": f"{n} manager(s), one study"})
    print(f"budget {budget} evaluations, {TOTAL_JOBS} slots in all, 5-D Rastrigin (2 ms per evaluation)")
    print(f"{'configuration':<28} {'wall s':>7} {'evals':>6} {'evals/s':>8} {'best fx':>10}")
    for r in rows:
        print(f"{r['config']:<28} {r['wall_s']:7.2f} {r['evals']:6d} {r['evals_per_s']:8.1f} {r['best_fx']:10.4g}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"budget": budget, "total_jobs": TOTAL_JOBS, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
