"""What does Level 2 on Dask cost?  DaskPool next to the local ProcessPool, two workers each.

Both pools evaluate the same generations (``popsize`` random 10-D points each) through
their ``evaluate(xs)``, exactly as a runner does; no optimizer, no manager.  Pools:

``processes(2)``
    :class:`~glompo_like.evaluation.processes.ProcessPool`, two local worker processes.
``dask(2)``
    :class:`~glompo_like.evaluation.dask_pool.DaskPool` on the embedded cluster
    (:func:`~glompo_like.evaluation.dask_cluster.start_local_cluster`: two single-threaded
    worker processes on 127.0.0.1).
``dask(2)+timeout``
    The same with ``timeout`` set: every evaluation runs in the worker's helper subprocess.

Objectives: ``cheap`` (the NumPy sphere, microseconds) and ``50ms`` (``time.sleep(0.05)``
then the sphere: a waiting task, so that only the framework's own cost shows, not two
cores shared between workers, scheduler and this process).

Figures (median over ``--repeats``, configurations interleaved):

* ``evals/s``: evaluations / wall time of the timed generations;
* ``overhead/eval``: (wall time - the ideal time) / evaluations, where the ideal time is
  ``generations * ceil(popsize / 2) * t_eval``: what two perfect workers would need;
* ``ratio``: evals/s relative to ``processes(2)`` on the same objective.

Start-up costs (starting the pool or cluster, and the first generation, which connects and
scatters the task) are measured once per configuration and reported apart; the timed
generations follow one untimed warm-up generation.

Run from the repository root::

    python benchmarks/dask.py            # full run, writes benchmarks/results/dask.json
    python benchmarks/dask.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and this file is called
# dask.py: it would shadow the real ``dask`` package (here, in the cluster and its workers).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(_HERE).parent))  # run from anywhere in the checkout

import glompo_like  # noqa: E402
from benchmarks._common import cpu_model  # noqa: E402
from glompo_like.evaluation.dask_cluster import start_local_cluster  # noqa: E402
from glompo_like.evaluation.dask_pool import DaskPool  # noqa: E402
from glompo_like.evaluation.processes import ProcessPool  # noqa: E402
from glompo_like.settings import pickle_task  # noqa: E402

__all__ = ["main", "OBJECTIVES", "POOLS"]

DIM = 10
POPSIZE = 16
WORKERS = 2
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "dask.json"


def cheap(x):
    return float(np.dot(x, x))


def wait50(x):
    time.sleep(0.05)
    return float(np.dot(x, x))


#: name -> (task, nominal seconds per evaluation, generations timed (full, quick))
OBJECTIVES: dict[str, tuple[Callable, float, tuple[int, int]]] = {
    "cheap": (cheap, 0.0, (200, 20)),
    "50ms": (wait50, 0.05, (8, 2)),
}
POOLS = ("processes(2)", "dask(2)", "dask(2)+timeout")


def _make_pool(name: str, task_bytes: bytes, address: str) -> Any:
    if name == "processes(2)":
        return ProcessPool(task_bytes, WORKERS, multiprocessing.get_context(), "bench")
    if name == "dask(2)":
        return DaskPool(task_bytes, WORKERS, address, "bench")
    if name == "dask(2)+timeout":
        return DaskPool(task_bytes, WORKERS, address, "bench", timeout=60.0)
    raise ValueError(name)


def _one(name: str, objective: str, generations: int, address: str, rng: np.random.Generator) -> dict[str, Any]:
    task, t_eval, _ = OBJECTIVES[objective]
    task_bytes = pickle_task(task)
    gens = [rng.uniform(-5, 5, (POPSIZE, DIM)) for _ in range(generations + 1)]
    t0 = time.perf_counter()
    pool = _make_pool(name, task_bytes, address)
    t_create = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        first = pool.evaluate(gens[0])  # connects, scatters the task, starts helpers
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        outs = [pool.evaluate(xs) for xs in gens[1:]]
        wall = time.perf_counter() - t0
    finally:
        pool.close()
    bad = [o for gen in [first, *outs] for o in gen if o is None or o.status.value != "ok"]
    if bad:
        raise RuntimeError(f"{name}/{objective}: {len(bad)} evaluations did not succeed: {bad[:2]}")
    n = generations * POPSIZE
    ideal = generations * math.ceil(POPSIZE / WORKERS) * t_eval
    return {
        "evals": n,
        "wall_s": wall,
        "evals_per_s": n / wall,
        "overhead_per_eval_ms": 1e3 * (wall - ideal) / n,
        "pool_start_s": t_create,
        "first_generation_s": t_first,
    }


def _machine() -> dict[str, Any]:
    import distributed

    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "distributed": distributed.__version__,
        "glompo_like": glompo_like.__version__,
        "platform": platform.platform(),
        "mp_start_method": multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few generations, one repeat")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per configuration (default 3; quick 1)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = ap.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    rng = np.random.default_rng(0)

    t0 = time.perf_counter()
    address, close = start_local_cluster(WORKERS)
    cluster_start = time.perf_counter() - t0
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {o: {p: [] for p in POOLS} for o in OBJECTIVES}
    try:
        for objective, (_, _, (full, quick)) in OBJECTIVES.items():
            generations = quick if args.quick else full
            for _ in range(repeats):
                for name in POOLS:  # interleaved
                    runs[objective][name].append(_one(name, objective, generations, address, rng))
    finally:
        close()

    results: dict[str, Any] = {}
    for objective, by_pool in runs.items():
        ref = statistics.median(r["evals_per_s"] for r in by_pool["processes(2)"])
        results[objective] = {}
        for name, reps in by_pool.items():
            eps = statistics.median(r["evals_per_s"] for r in reps)
            results[objective][name] = {
                "median_evals_per_s": eps,
                "median_overhead_per_eval_ms": statistics.median(r["overhead_per_eval_ms"] for r in reps),
                "ratio_to_processes": eps / ref,
                "median_first_generation_s": statistics.median(r["first_generation_s"] for r in reps),
                "median_pool_start_s": statistics.median(r["pool_start_s"] for r in reps),
                "repeats": reps,
            }

    head = f"{'objective':<8} {'pool':<17} {'evals/s':>9} {'overhead/eval':>14} {'ratio':>6} {'1st gen':>8} {'start':>7}"
    print(f"Level 2 with {WORKERS} workers, popsize {POPSIZE}, {DIM}-D; median of {repeats}; "
          f"embedded cluster started in {cluster_start:.2f} s")
    print(head)
    print("-" * len(head))
    for objective, by_pool in results.items():
        for name, r in by_pool.items():
            print(f"{objective:<8} {name:<17} {r['median_evals_per_s']:>9.1f} "
                  f"{r['median_overhead_per_eval_ms']:>11.3f} ms {r['ratio_to_processes']:>6.2f} "
                  f"{r['median_first_generation_s']:>7.3f}s {r['median_pool_start_s']:>6.3f}s")

    doc = {
        "benchmark": "dask",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/dask.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "machine": _machine(),
        "settings": {"dim": DIM, "popsize": POPSIZE, "workers": WORKERS, "repeats": repeats, "quick": args.quick,
                     "generations": {o: (q if args.quick else f) for o, (_, _, (f, q)) in OBJECTIVES.items()}},
        "embedded_cluster_start_s": cluster_start,
        "objectives": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
