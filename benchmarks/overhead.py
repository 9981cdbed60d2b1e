"""What does the manager cost?  GloMPOManager next to plain pycma loops, in one process run.

Workload: Rastrigin (10-D by default, bounds ``[(-5.12, 5.12)] * dim``), a fixed budget of
evaluations (20,000 by default), CMA-ES with ``popsize=10`` and ``sigma0=1.5``.

Configurations (measured interleaved, A, B, C, ..., A, B, C, ..., ``--repeats`` times; the
median is reported):

``pycma_loop``
    One plain pycma ask/tell loop in this process, restarted from a random point whenever
    ``es.stop()`` fires.  The reference (ratio 1.0).
``pycma_2proc``
    Two such loops in two processes, half the budget each; the wall time includes starting
    and joining the processes.  The ceiling for two cores.
``pycma_2threads``
    Two such loops in two threads of this process, half the budget each: what the GIL
    leaves of one core when two threads run CMA-ES.
``manager_threads_no_turns``
    ``manager_threads`` with ``thread_slice=None``: runner threads contend for the GIL
    instead of taking turns (the default ``thread_slice="auto"`` measures that this task
    holds the GIL and chooses turns of 10 ms).  No target.
``manager_processes_no_log`` / ``manager_processes_no_hunt`` / ``manager_processes_no_reuse``
    Where the ``processes`` overhead goes: the same without the evaluation log
    (``working_dir=None``), without hunting (optimizers restart only when they
    converge, as in the plain loop), and with a new process for every optimizer
    (``reuse_processes=False``).  No target.
``manager_threads`` / ``manager_processes`` / ``manager_processes_forced``
    ``GloMPOManager`` with two CMA-ES optimizers (``max_jobs=2``), hunting on, the
    evaluation log on (``working_dir`` in a temporary directory), on each Level 1 backend.

Evaluations per second are ``f_evals / wall time``.  For the manager the main column times
construction plus ``start_manager()``; the "run only" column times ``start_manager()``
alone.

Run from the repository root::

    python benchmarks/overhead.py                 # full run, writes benchmarks/results/overhead.json
    python benchmarks/overhead.py --quick         # smoke test (4000 evaluations, 1 repeat)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import faulthandler
import gc
import json
import math
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

with warnings.catch_warnings():
    # pycma warns at import time when matplotlib is missing; plotting is not used here.
    warnings.simplefilter("ignore")
    import cma

from glompo_like import GloMPOManager
from glompo_like.optimizers.cma import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.hunters import BestUnmoving, MinFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import rastrigin
from glompo_like.record.log import LOG_NAME

try:  # imported as benchmarks.<name>, or run as a script from its folder
    from ._common import json_default, loadavg
    from ._common import machine_info as shared_machine_info
except ImportError:
    from _common import json_default, loadavg  # type: ignore[no-redef]
    from _common import machine_info as shared_machine_info

__all__ = ["main", "pycma_run", "CONFIGS", "TARGETS"]

LOWER, UPPER = -5.12, 5.12
SIGMA0 = 1.5
POPSIZE = 10
N_JOBS = 2
MIN_EVALS_BEFORE_KILL = 1000
UNMOVING_CALLS, UNMOVING_TOL = 400, 0.01

DEFAULT_EVALS = 20_000
DEFAULT_REPEATS = 3
DEFAULT_DIM = 10
QUICK_EVALS = 4000
QUICK_REPEATS = 1
DEFAULT_RUN_TIMEOUT = 300.0
BUSY_LOAD = 0.5  # 1-minute load average above which the run is flagged as disturbed
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "overhead.json"

REFERENCE = "pycma_loop"
CEILING = "pycma_2proc"
CONFIGS = (
    "pycma_loop",
    "pycma_2proc",
    "pycma_2threads",
    "manager_threads",
    "manager_threads_no_turns",
    "manager_processes",
    "manager_processes_forced",
    "manager_processes_no_log",
    "manager_processes_no_hunt",
    "manager_processes_no_reuse",
)
# Minimum evals/s ratio to pycma_loop.
TARGETS: dict[str, float] = {
    "manager_threads": 0.8,
    "manager_processes": 1.6,
    "manager_processes_forced": 1.6,
}


# --------------------------------------------------------------------------- plain pycma
def _new_es(rng: np.random.Generator, dim: int) -> Any:
    x0 = rng.uniform(LOWER, UPPER, dim)
    opts = {
        "popsize": POPSIZE,
        "bounds": [LOWER, UPPER],
        "verbose": -9,
        "seed": int(rng.integers(1, 2**31 - 1)),
    }
    return cma.CMAEvolutionStrategy(x0, SIGMA0, opts)


def pycma_run(dim: int, evals: int, seed: Any) -> dict[str, Any]:
    """A plain pycma ask/tell loop of ``evals`` evaluations of Rastrigin, restarting from a
    random point whenever ``es.stop()`` fires.  Module level so that it pickles to workers."""
    f = rastrigin
    rng = np.random.default_rng(seed)
    n = 0
    restarts = 0
    best = math.inf
    with warnings.catch_warnings():
        # Once around the whole loop (not per tell): pycma may warn about bound handling,
        # and the test suite turns warnings into errors.
        warnings.simplefilter("ignore")
        es = _new_es(rng, dim)
        while n < evals:
            X = es.ask()
            fx = [f(x) for x in X]
            es.tell(X, fx)
            n += len(X)
            best = min(best, min(fx))
            if es.stop():
                es = _new_es(rng, dim)
                restarts += 1
    return {"f_evals": n, "restarts": restarts, "best_fx": best}


def measure_pycma_loop(dim: int, evals: int, seed: int) -> dict[str, Any]:
    gc.collect()
    t0 = time.perf_counter()
    r = pycma_run(dim, evals, seed)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "f_evals": r["f_evals"],
        "evals_per_s": r["f_evals"] / wall,
        "restarts": r["restarts"],
        "best_fx": r["best_fx"],
    }


def _loops_result(wall: float, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One measurement of several plain loops run side by side."""
    n = sum(r["f_evals"] for r in results)
    return {
        "wall_s": wall,
        "f_evals": n,
        "evals_per_s": n / wall,
        "restarts": sum(r["restarts"] for r in results),
        "best_fx": min(r["best_fx"] for r in results),
    }


def measure_pycma_2proc(dim: int, evals: int, seed: int) -> dict[str, Any]:
    budgets = [evals // N_JOBS + (1 if i < evals % N_JOBS else 0) for i in range(N_JOBS)]
    gc.collect()
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=N_JOBS) as pool:
        futures = [pool.submit(pycma_run, dim, b, [seed, i]) for i, b in enumerate(budgets)]
        results = [fut.result() for fut in futures]
    return _loops_result(time.perf_counter() - t0, results)


def measure_pycma_2threads(dim: int, evals: int, seed: int) -> dict[str, Any]:
    """Two plain loops in two threads of this process: what the GIL leaves of one core."""
    budgets = [evals // N_JOBS + (1 if i < evals % N_JOBS else 0) for i in range(N_JOBS)]
    results: list[dict[str, Any]] = [{}] * N_JOBS

    def run(i: int) -> None:
        results[i] = pycma_run(dim, budgets[i], [seed, i])

    gc.collect()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(N_JOBS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _loops_result(time.perf_counter() - t0, results)


# --------------------------------------------------------------------------- manager
def measure_manager(backend: str, dim: int, evals: int, seed: int, log: bool = True, hunt: bool = True,
                    **extra: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="glompo_overhead_") as tmp:
        gc.collect()
        t0 = time.perf_counter()
        manager = GloMPOManager(
            task=rastrigin,
            bounds=[(LOWER, UPPER)] * dim,
            opt_selector=CycleSelector([(CMAOptimizer, {"sigma0": SIGMA0, "popsize": POPSIZE})]),
            backend=backend,
            max_jobs=N_JOBS,
            convergence_checker=MaxFuncCalls(evals),
            killing_conditions=(MinFuncCalls(MIN_EVALS_BEFORE_KILL) & BestUnmoving(UNMOVING_CALLS, UNMOVING_TOL))
            if hunt else False,
            working_dir=tmp if log else None,
            seed=seed,
            **extra,
        )
        t1 = time.perf_counter()
        result = manager.start_manager()
        t2 = time.perf_counter()
        log_path = Path(tmp) / LOG_NAME
        log_bytes = log_path.stat().st_size if log_path.exists() else None
    stats = result.stats
    n = int(stats["f_evals"])
    return {
        "wall_s": t2 - t0,
        "construct_s": t1 - t0,
        "run_s": t2 - t1,
        "f_evals": n,
        "evals_per_s": n / (t2 - t0),
        "evals_per_s_run_only": n / (t2 - t1),
        "t_used": stats.get("t_used"),
        "opts_started": stats.get("opts_started"),
        "opts_killed": stats.get("opts_killed"),
        "opts_converged": stats.get("opts_converged"),
        "opts_crashed": stats.get("opts_crashed"),
        "end_cond": stats.get("end_cond"),
        "best_fx": result.fx,
        "log_bytes": log_bytes,
        "thread_slice_choice": ({"thread_slice": manager.plan.thread_slice, "reason": manager.plan.reasons["thread_slice"]}
                                if "thread_slice" in manager.plan.reasons else None),
    }


MEASURES: dict[str, Callable[[int, int, int], dict[str, Any]]] = {
    "pycma_loop": measure_pycma_loop,
    "pycma_2proc": measure_pycma_2proc,
    "pycma_2threads": measure_pycma_2threads,
    "manager_threads": lambda d, e, s: measure_manager("threads", d, e, s),
    "manager_threads_no_turns": lambda d, e, s: measure_manager("threads", d, e, s, thread_slice=None),
    "manager_processes": lambda d, e, s: measure_manager("processes", d, e, s),
    "manager_processes_forced": lambda d, e, s: measure_manager("processes_forced", d, e, s),
    "manager_processes_no_log": lambda d, e, s: measure_manager("processes", d, e, s, log=False),
    "manager_processes_no_hunt": lambda d, e, s: measure_manager("processes", d, e, s, hunt=False),
    "manager_processes_no_reuse": lambda d, e, s: measure_manager("processes", d, e, s, reuse_processes=False),
}


# --------------------------------------------------------------------------- reporting
def machine_info() -> dict[str, Any]:
    return shared_machine_info(cma=cma.__version__)


def summarise(repeats: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, runs in repeats.items():
        entry: dict[str, Any] = {
            "median_evals_per_s": statistics.median(r["evals_per_s"] for r in runs),
            "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        }
        if all("evals_per_s_run_only" in r for r in runs):
            entry["median_evals_per_s_run_only"] = statistics.median(
                r["evals_per_s_run_only"] for r in runs
            )
        out[name] = entry
    ref = out[REFERENCE]["median_evals_per_s"]
    ceiling = out[CEILING]["median_evals_per_s"]
    for name, entry in out.items():
        entry["ratio_to_pycma_loop"] = entry["median_evals_per_s"] / ref
        entry["fraction_of_pycma_2proc"] = entry["median_evals_per_s"] / ceiling
        if "median_evals_per_s_run_only" in entry:
            entry["ratio_to_pycma_loop_run_only"] = entry["median_evals_per_s_run_only"] / ref
        target = TARGETS.get(name)
        entry["target_ratio"] = target
        entry["pass"] = None if target is None else bool(entry["ratio_to_pycma_loop"] >= target)
    return out


def format_table(
    summary: dict[str, dict[str, Any]], machine: dict[str, Any], settings: dict[str, Any]
) -> str:
    head = (
        f"{'configuration':<26} {'evals/s':>9} {'run only':>9} {'ratio':>7} "
        f"{'of 2proc':>9} {'target':>8}  result"
    )
    lines = [
        f"Rastrigin {settings['dim']}-D, {settings['evals']} evaluations, "
        f"{settings['n_jobs']} x CMA-ES(popsize={POPSIZE}, sigma0={SIGMA0}), "
        f"median of {settings['repeats']} interleaved repeat(s); evaluation log on",
        head,
        "-" * len(head),
    ]
    for name in CONFIGS:
        e = summary[name]
        run_only = e.get("median_evals_per_s_run_only")
        target = e["target_ratio"]
        result = "-" if e["pass"] is None else ("PASS" if e["pass"] else "FAIL")
        lines.append(
            f"{name:<26} {e['median_evals_per_s']:>9.0f} "
            f"{'-' if run_only is None else f'{run_only:.0f}':>9} "
            f"{e['ratio_to_pycma_loop']:>6.2f}x {e['fraction_of_pycma_2proc']:>8.0%} "
            f"{'-' if target is None else f'>={target:.1f}x':>8}  {result}"
        )
    lines += [
        "",
        "evals/s: f_evals / wall time (manager: construction + start_manager()); "
        "run only: start_manager() alone;",
        "ratio: to pycma_loop; of 2proc: share of the two-process pycma ceiling.",
        "",
        f"machine: {machine['cpu_count']} CPUs ({machine['cpus_available']} available)"
        f", {machine['cpu_model']}",
        f"         Python {machine['python']} ({machine['python_implementation']}), "
        f"numpy {machine['numpy']}, cma {machine['cma']}, glompo_like {machine['glompo_like']}",
        f"         {machine['platform']}, start method {machine['mp_start_method']}",
        f"         load average (1/5/15 min) at start {machine['loadavg_at_start']}, "
        f"at end {machine.get('loadavg_at_end')}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Manager overhead next to plain pycma loops (see the module docstring).",
    )
    p.add_argument(
        "--evals",
        type=int,
        default=None,
        help=f"evaluations per run (default {DEFAULT_EVALS}; --quick: {QUICK_EVALS})",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"interleaved repeats; the median is reported (default {DEFAULT_REPEATS}; "
        f"--quick: {QUICK_REPEATS})",
    )
    p.add_argument(
        "--dim",
        type=int,
        default=DEFAULT_DIM,
        help=f"dimension of Rastrigin (default {DEFAULT_DIM})",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="base seed; repeat r uses seed + r (default 0)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="JSON results file (default benchmarks/results/overhead.json)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_EVALS} evaluations, {QUICK_REPEATS} repeat "
        "(explicit --evals/--repeats still win)",
    )
    p.add_argument(
        "--run-timeout",
        type=float,
        default=DEFAULT_RUN_TIMEOUT,
        help="watchdog: if one measurement takes longer than this many seconds, dump every "
        f"thread's stack to stderr and exit (default {DEFAULT_RUN_TIMEOUT:g}; 0 disables it, "
        "e.g. under pytest, whose own faulthandler timeout it would replace)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a configuration misses its target",
    )
    args = p.parse_args(argv)
    if args.evals is None:
        args.evals = QUICK_EVALS if args.quick else DEFAULT_EVALS
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if args.evals < N_JOBS * POPSIZE:
        p.error(f"--evals must be at least {N_JOBS * POPSIZE}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.dim < 1:
        p.error("--dim must be at least 1")
    if args.run_timeout < 0:
        p.error("--run-timeout must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = {
        "function": "rastrigin",
        "dim": args.dim,
        "bounds": [LOWER, UPPER],
        "evals": args.evals,
        "repeats": args.repeats,
        "seed": args.seed,
        "n_jobs": N_JOBS,
        "popsize": POPSIZE,
        "sigma0": SIGMA0,
        "killing_conditions": f"MinFuncCalls({MIN_EVALS_BEFORE_KILL}) & "
        f"BestUnmoving({UNMOVING_CALLS}, {UNMOVING_TOL})",
        "evaluation_log": True,
        "thread_slice": "auto (the default) unless the configuration says otherwise",
        "order": "interleaved",
        "timer": "time.perf_counter",
        "run_timeout_s": args.run_timeout,
    }
    machine = machine_info()
    started = _dt.datetime.now(_dt.timezone.utc)
    repeats: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    for rep in range(args.repeats):
        seed = args.seed + rep
        for name in CONFIGS:
            r = _measure(name, args, seed)
            r["repeat"] = rep
            r["seed"] = seed
            repeats[name].append(r)
            print(
                f"[{rep + 1}/{args.repeats}] {name:<26} {r['evals_per_s']:>9.0f} evals/s "
                f"({r['f_evals']} evaluations in {r['wall_s']:.3f} s)",
                flush=True,
            )
    machine["loadavg_at_end"] = loadavg()
    summary = summarise(repeats)
    print()
    print(format_table(summary, machine, settings), flush=True)
    load = machine["loadavg_at_start"]
    if load is not None and load[0] >= BUSY_LOAD:
        print(
            f"\nWARNING: 1-minute load average was {load[0]:.2f} at the start: other work was "
            "running, so the parallel configurations are probably understated.",
            flush=True,
        )

    doc = {
        "benchmark": "overhead",
        "date": started.isoformat(timespec="seconds"),
        "duration_s": (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(),
        "settings": settings,
        "machine": machine,
        "targets": dict(TARGETS),
        "configurations": {name: {**summary[name], "repeats": repeats[name]} for name in CONFIGS},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=json_default) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    if args.strict and any(summary[n]["pass"] is False for n in CONFIGS):
        return 1
    return 0


def _measure(name: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    if not args.run_timeout:
        return MEASURES[name](args.dim, args.evals, seed)
    # A hang (e.g. a flow-control deadlock) would otherwise stall the benchmark forever.
    faulthandler.dump_traceback_later(args.run_timeout, exit=True)
    try:
        return MEASURES[name](args.dim, args.evals, seed)
    finally:
        faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    sys.exit(main())
