"""Level 2 evaluation pools and the full Level 1 × Level 2 matrix, measured.

Three objectives (module-level, so they pickle to every backend), 10-D, bounds
``[(-5, 5)] * 10``:

``cpu``
    Pure Python that holds the GIL: a Python loop, calibrated at start so that one call
    takes about 7 ms on this machine (the calibration is printed).
``wait``
    Releases the GIL: ``time.sleep(0.007)`` (like waiting for an external program).
``cheap``
    The NumPy sphere, a few microseconds per call.

For each objective, every run has the same fixed evaluation budget (``MaxFuncCalls``;
chosen per objective so that a run takes a few seconds), CMA-ES with ``popsize=8``,
``killing_conditions=False``, the evaluation log on (``working_dir`` in a temporary
directory) and the platform's default start method.  Evaluations per second are
``f_evals / wall time of start_manager()`` (construction is not timed).  Each cell also
records the median duration of one evaluation where it ran (from the evaluation log; the
raw pool times its calls in its workers) and how Level 2 process-pool workers started
(``manager.plan.pool_start_method``).

Combinations:

``serial``
    The reference: ``backend="threads"``, ``max_jobs=1``, one optimizer, Level 2 serial.
``L1 x serial [2 opts]``
    Level 1 ``threads`` / ``processes`` / ``processes_forced``, two serial optimizers side by
    side (``max_jobs=2``).
``L1 x threads(2)`` / ``L1 x processes(2)``
    One optimizer whose generation is evaluated by a Level 2 pool of two workers
    (``workers=2``, ``max_jobs=2``).  ``processes x processes(2)`` is refused by design
    (daemonic processes cannot own processes); it is recorded as refused with the message.
``threads x threads(4)``
    One optimizer, ``workers=4``, ``max_jobs=4`` (for waiting tasks: more threads than cores).
``auto``
    ``backend="auto"`` and entry backend ``"auto"``, ``workers=2``, ``max_jobs=2``; the
    manager's choice (``manager.plan``) is recorded.  Its probe evaluations count.
``raw ProcessPoolExecutor(2)``
    ``concurrent.futures.ProcessPoolExecutor(2).map(f, points)`` over the same number of
    random points (the wall time includes starting the pool).  No optimizer at all.

Targets (ratio of evals/s to ``serial``):

* ``cpu``: every process-based combination (``processes x serial [2 opts]``,
  ``threads x processes(2)``, ``processes_forced x processes(2)``) >= 1.8x;
* ``wait``: ``threads x threads(4)`` >= 3.2x;
* every objective: ``auto`` within 10% of the best measured combination of the same shape
  (one optimizer, ``workers=2``, ``max_jobs=2``).

Run from the repository root::

    python benchmarks/backends.py              # full run, writes benchmarks/results/backends.json
    python benchmarks/backends.py --repeats 3  # median of three interleaved repeats
    python benchmarks/backends.py --quick      # smoke test (small budgets)
    python benchmarks/backends.py --objectives wait --budget-factor 4 --out /tmp/b.json

The machine should be otherwise idle: the last table line ("ceiling check") shows what a
plain process pool reached during the same run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import faulthandler
import functools
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glompo_like import ConfigError, GloMPOManager
from glompo_like.optimizers.cma import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.record.log import read_log

try:  # imported as benchmarks.<name>, or run as a script from its folder
    from ._common import json_default, loadavg, machine_info
except ImportError:
    from _common import json_default, loadavg, machine_info  # type: ignore[no-redef]

__all__ = [
    "main",
    "cpu_bound",
    "waiting",
    "cheap",
    "calibrate",
    "COMBOS",
    "OBJECTIVES",
    "TARGETS",
    "QUICK_BUDGETS",
    "DEFAULT_BUDGETS",
]

DIM = 10
LOWER, UPPER = -5.0, 5.0
POPSIZE = 8
TARGET_CALL_S = 0.007  # one call of `cpu` and `wait`
OBJECTIVES = ("cpu", "wait", "cheap")
DESCRIPTIONS = {
    "cpu": "CPU-bound, pure Python holding the GIL",
    "wait": "waiting, releases the GIL (time.sleep)",
    "cheap": "cheap, NumPy sphere",
}
# Evaluations per run: the serial reference takes about 4 s (cpu, wait) / 2-3 s (cheap).
DEFAULT_BUDGETS = {"cpu": 560, "wait": 560, "cheap": 40_000}
QUICK_BUDGETS = {"cpu": 48, "wait": 48, "cheap": 1_600}
DEFAULT_REPEATS = 1
DEFAULT_RUN_TIMEOUT = 300.0
BUSY_LOAD = 0.5
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "backends.json"
AUTO_TOLERANCE = 0.10  # auto must reach (1 - this) x the best combination of its shape


# --------------------------------------------------------------------------- objectives
def spin(n_iter: int) -> int:
    """A pure-Python loop: holds the GIL for its whole duration."""
    acc = 0
    for i in range(n_iter):
        acc += i & 7
    return acc


def cpu_bound(x: np.ndarray, n_iter: int) -> float:
    """Sphere plus ``n_iter`` iterations of a Python loop (use with functools.partial)."""
    acc = spin(n_iter)
    x = np.asarray(x, dtype=float)
    return float(x @ x) if acc >= 0 else math.nan


def waiting(x: np.ndarray, seconds: float = TARGET_CALL_S) -> float:
    """Sphere after sleeping: releases the GIL while it waits."""
    time.sleep(seconds)
    x = np.asarray(x, dtype=float)
    return float(x @ x)


def cheap(x: np.ndarray) -> float:
    """The NumPy sphere: microseconds."""
    x = np.asarray(x, dtype=float)
    return float(x @ x)


def _time_calls(f: Callable[[np.ndarray], float], n: int, rng: np.random.Generator) -> float:
    """Median seconds of one call of ``f`` over ``n`` calls at random points."""
    times = []
    for _ in range(n):
        x = rng.uniform(LOWER, UPPER, DIM)
        t0 = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def calibrate(target_s: float = TARGET_CALL_S) -> dict[str, Any]:
    """Loop iterations so that one ``cpu_bound`` call takes ``target_s`` here; also times
    the other two objectives.  Returns a dict (printed and stored in the JSON)."""
    rng = np.random.default_rng(12345)
    n = 20_000
    while True:  # long enough to time reliably
        t0 = time.perf_counter()
        spin(n)
        dt = time.perf_counter() - t0
        if dt >= 0.05:
            break
        n *= 2
    n_iter = max(1, round(n * target_s / dt))
    f = functools.partial(cpu_bound, n_iter=n_iter)
    t_cpu = _time_calls(f, 15, rng)
    n_iter = max(1, round(n_iter * target_s / t_cpu))  # one refinement step
    f = functools.partial(cpu_bound, n_iter=n_iter)
    t_cpu = _time_calls(f, 15, rng)
    t_wait = _time_calls(waiting, 15, rng)
    t_cheap = _time_calls(cheap, 2001, rng)
    return {
        "target_s": target_s,
        "cpu_n_iter": n_iter,
        "cpu_s_per_call": t_cpu,
        "wait_s_per_call": t_wait,
        "cheap_s_per_call": t_cheap,
    }


def make_objective(name: str, cal: dict[str, Any]) -> Callable[[np.ndarray], float]:
    if name == "cpu":
        return functools.partial(cpu_bound, n_iter=cal["cpu_n_iter"])
    if name == "wait":
        return waiting
    if name == "cheap":
        return cheap
    raise ValueError(name)


# --------------------------------------------------------------------------- combinations
@dataclass(frozen=True)
class Combo:
    name: str
    kind: str  # "manager" or "raw_pool"
    l1: str | None = None
    l2: str | None = None
    workers: int = 1
    max_jobs: int = 1
    shape: str = ""


SHAPE_REF = "1 opt"
SHAPE_2OPTS = "2 opts x 1"
SHAPE_W2 = "1 opt x 2 workers"
SHAPE_W4 = "1 opt x 4 workers"

REFERENCE = "serial"
AUTO = "auto"
RAW = "raw ProcessPoolExecutor(2)"


def _combos() -> tuple[Combo, ...]:
    out = [Combo(REFERENCE, "manager", "threads", "serial", 1, 1, SHAPE_REF)]
    for l1 in ("threads", "processes", "processes_forced"):
        out.append(Combo(f"{l1} x serial [2 opts]", "manager", l1, "serial", 1, 2, SHAPE_2OPTS))
        for l2 in ("threads", "processes"):
            out.append(Combo(f"{l1} x {l2}(2)", "manager", l1, l2, 2, 2, SHAPE_W2))
    out.append(Combo("threads x threads(4)", "manager", "threads", "threads", 4, 4, SHAPE_W4))
    out.append(Combo(AUTO, "manager", "auto", "auto", 2, 2, SHAPE_W2))
    out.append(Combo(RAW, "raw_pool", None, None, 2, 2, "no optimizer"))
    return tuple(out)


COMBOS = _combos()
COMBO_NAMES = tuple(c.name for c in COMBOS)

# Minimum ratio of evals/s to `serial`, per objective.
TARGETS: dict[str, dict[str, float]] = {
    "cpu": {
        "processes x serial [2 opts]": 1.8,
        "threads x processes(2)": 1.8,
        "processes_forced x processes(2)": 1.8,
    },
    "wait": {"threads x threads(4)": 3.2},
    "cheap": {},
}


# --------------------------------------------------------------------------- measuring
def measure_manager(combo: Combo, task: Callable, budget: int, seed: int) -> dict[str, Any]:
    sel = CycleSelector(
        [(CMAOptimizer, {"popsize": POPSIZE, "workers": combo.workers, "backend": combo.l2})]
    )
    with tempfile.TemporaryDirectory(prefix="glompo_backends_") as tmp:
        try:
            manager = GloMPOManager(
                task=task,
                bounds=[(LOWER, UPPER)] * DIM,
                opt_selector=sel,
                backend=combo.l1,
                max_jobs=combo.max_jobs,
                convergence_checker=MaxFuncCalls(budget),
                killing_conditions=False,
                working_dir=tmp,
                seed=seed,
            )
        except ConfigError as e:
            return {"refused": True, "message": str(e)}
        gc.collect()
        t0 = time.perf_counter()
        result = manager.start_manager()
        wall = time.perf_counter() - t0
        durations = np.asarray(read_log(tmp)["duration"], dtype=float)
    s = result.stats
    n = int(s["f_evals"])
    out = {
        "refused": False,
        "wall_s": wall,
        "f_evals": n,
        "evals_per_s": n / wall,
        "opts_started": s["opts_started"],
        "opts_converged": s["opts_converged"],
        "opts_crashed": s["opts_crashed"],
        "evals_failed": s["evals_failed"],
        "end_cond": s["end_cond"],
        "best_fx": result.fx,
        "eval_ms_median": float(np.median(durations)) * 1e3,
        "pool_start_method": manager.plan.pool_start_method,
    }
    if "backend" in manager.plan.reasons:  # what "auto" chose
        plan = manager.plan.describe()
        out["backend_choice"] = {"level1": plan["level1"], "level2": plan["level2"],
                                 "reason": plan["reasons"]["backend"], **(plan["probe"] or {})}
    return out


def timed_call(task: Callable[[np.ndarray], float], x: np.ndarray) -> tuple[float, float]:
    """``task(x)`` and how long it took (what the evaluation log records for the others)."""
    t = time.perf_counter()
    value = task(x)
    return value, time.perf_counter() - t


def measure_raw_pool(task: Callable, budget: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    points = list(rng.uniform(LOWER, UPPER, (budget, DIM)))
    gc.collect()
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2) as ex:  # the platform's default start method
        t1 = time.perf_counter()
        timed = list(ex.map(functools.partial(timed_call, task), points))
        t2 = time.perf_counter()
    wall = time.perf_counter() - t0
    return {
        "refused": False,
        "wall_s": wall,
        "map_s": t2 - t1,
        "f_evals": len(timed),
        "evals_per_s": len(timed) / wall,
        "evals_per_s_map_only": len(timed) / (t2 - t1),
        "eval_ms_median": float(np.median([d for _, d in timed])) * 1e3,
    }


def warm_up() -> None:
    """One tiny unmeasured run, so that imports (pycma) and first-call costs do not land on
    the first measurement."""
    CMAOptimizer.preload()
    measure_manager(Combo("warm-up", "manager", "threads", "serial", 1, 1), cheap, 4 * POPSIZE, 0)


def measure(combo: Combo, task: Callable, budget: int, seed: int) -> dict[str, Any]:
    if combo.kind == "raw_pool":
        return measure_raw_pool(task, budget, seed)
    return measure_manager(combo, task, budget, seed)


# --------------------------------------------------------------------------- reporting
def summarise(objective: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for combo in COMBOS:
        reps = runs[combo.name]
        entry: dict[str, Any] = {
            "kind": combo.kind,
            "level1": combo.l1,
            "level2": combo.l2,
            "workers": combo.workers,
            "max_jobs": combo.max_jobs,
            "shape": combo.shape,
        }
        if reps and reps[0].get("refused"):
            entry.update(refused=True, message=reps[0]["message"], median_evals_per_s=None,
                         ratio_to_serial=None, target_ratio=None, pass_=None)
            out[combo.name] = entry
            continue
        entry["refused"] = False
        entry["median_evals_per_s"] = statistics.median(r["evals_per_s"] for r in reps)
        entry["median_wall_s"] = statistics.median(r["wall_s"] for r in reps)
        entry["eval_ms_median"] = statistics.median(r["eval_ms_median"] for r in reps)
        methods = {r.get("pool_start_method") for r in reps} - {None}
        entry["pool_start_method"] = methods.pop() if len(methods) == 1 else None
        if combo.name == AUTO:
            choices = [r.get("backend_choice") for r in reps]
            entry["backend_choice"] = choices[0]
            entry["backend_choices_all_repeats"] = choices
        out[combo.name] = entry
    ref = out[REFERENCE]["median_evals_per_s"]
    for name, entry in out.items():
        if entry["refused"]:
            continue
        entry["ratio_to_serial"] = entry["median_evals_per_s"] / ref
        target = TARGETS[objective].get(name)
        entry["target_ratio"] = target
        entry["pass_"] = None if target is None else bool(entry["ratio_to_serial"] >= target)
    # auto: within AUTO_TOLERANCE of the best measured combination of the same shape
    auto = out[AUTO]
    same = {
        c.name: out[c.name]["median_evals_per_s"]
        for c in COMBOS
        if c.shape == SHAPE_W2 and c.name != AUTO and not out[c.name]["refused"]
    }
    best = max(same, key=lambda k: same[k])
    auto["best_same_shape"] = best
    auto["best_same_shape_evals_per_s"] = same[best]
    auto["fraction_of_best_same_shape"] = auto["median_evals_per_s"] / same[best]
    auto["target_fraction_of_best"] = 1 - AUTO_TOLERANCE
    auto["pass_"] = bool(auto["fraction_of_best_same_shape"] >= 1 - AUTO_TOLERANCE)
    # rename pass_ -> pass for the JSON
    for entry in out.values():
        entry["pass"] = entry.pop("pass_")
    return out


def _choice_text(choice: dict[str, Any] | None) -> str:
    if not choice:
        return "?"
    l2 = ",".join(choice["level2"])
    return f"{choice['level1']} x {l2}"


def format_table(objective: str, summary: dict[str, dict[str, Any]], cal: dict[str, Any],
                 budget: int, repeats: int) -> str:
    per_call = cal[f"{objective}_s_per_call"]
    per_call_txt = f"{per_call * 1e3:.2f} ms" if per_call >= 1e-3 else f"{per_call * 1e6:.1f} us"
    head = f"{'combination':<34} {'shape':<18} {'evals/s':>9} {'ratio':>7} {'eval':>8} {'target':>9}  result"
    lines = [
        f"== {objective}: {DESCRIPTIONS[objective]}, {per_call_txt} per call; "
        f"{budget} evaluations per run, median of {repeats} repeat(s)",
        head,
        "-" * len(head),
    ]
    for combo in COMBOS:
        e = summary[combo.name]
        if e["refused"]:
            msg = e["message"].split(":", 1)[-1].strip()
            lines.append(f"{combo.name:<34} {combo.shape:<18} {'refused':>9} {'':>7} {'':>8} {'':>9}  "
                         f"by design: {msg[:90]}{'...' if len(msg) > 90 else ''}")
            continue
        if combo.name == AUTO:
            target = f">={1 - AUTO_TOLERANCE:.0%} best"
        else:
            t = e["target_ratio"]
            target = "-" if t is None else f">={t:.1f}x"
        result = "-" if e["pass"] is None else ("PASS" if e["pass"] else "FAIL")
        ms = e["eval_ms_median"]
        eval_txt = f"{ms:.2f}ms" if ms >= 0.1 else f"{ms * 1e3:.1f}us"
        lines.append(
            f"{combo.name:<34} {combo.shape:<18} {e['median_evals_per_s']:>9.1f} "
            f"{e['ratio_to_serial']:>6.2f}x {eval_txt:>8} {target:>9}  {result}"
        )
    a = summary[AUTO]
    lines.append(
        f"auto chose Level 1 x Level 2 = {_choice_text(a.get('backend_choice'))}; "
        f"{a['fraction_of_best_same_shape']:.0%} of the best {SHAPE_W2} combination "
        f"({a['best_same_shape']}, {a['best_same_shape_evals_per_s']:.1f} evals/s)"
    )
    if a.get("backend_choice"):
        lines.append(f"  reason: {a['backend_choice']['reason']}")
    lines.append("eval: median duration of one evaluation where it ran (evaluation log; for the raw "
                 "pool, timed in its workers)")
    methods = sorted({e["pool_start_method"] for e in summary.values() if e.get("pool_start_method")})
    if methods:
        lines.append(f"Level 2 process-pool workers started with: {', '.join(methods)}")
    raw = summary[RAW]["ratio_to_serial"]
    lines.append(
        f"ceiling check: the raw ProcessPoolExecutor(2) reached {raw:.2f}x serial"
        + ("" if objective == "cheap" else
           " (2x or more when a second core is free; clearly less means other work was running)")
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Evaluations per second of every Level 1 x Level 2 combination "
        "(see the module docstring).",
    )
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: small budgets {QUICK_BUDGETS}")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help=f"interleaved repeats; the median is reported (default {DEFAULT_REPEATS})")
    p.add_argument("--objectives", default=",".join(OBJECTIVES),
                   help=f"comma-separated subset of {','.join(OBJECTIVES)} (default: all)")
    p.add_argument("--budget-factor", type=float, default=1.0,
                   help="multiply every objective's evaluation budget by this (default 1)")
    p.add_argument("--seed", type=int, default=0, help="base seed; repeat r uses seed + r")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="JSON results file (default benchmarks/results/backends.json)")
    p.add_argument("--run-timeout", type=float, default=DEFAULT_RUN_TIMEOUT,
                   help="watchdog: a measurement taking longer than this many seconds dumps every "
                   f"thread's stack and exits (default {DEFAULT_RUN_TIMEOUT:g}; 0 disables it)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when a target is missed")
    args = p.parse_args(argv)
    args.objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    bad = [o for o in args.objectives if o not in OBJECTIVES]
    if bad or not args.objectives:
        p.error(f"--objectives must be a subset of {OBJECTIVES}, got {bad or args.objectives}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if not args.budget_factor > 0:
        p.error("--budget-factor must be positive")
    if args.run_timeout < 0:
        p.error("--run-timeout must be >= 0")
    return args


def _measure(combo: Combo, task: Callable, budget: int, seed: int, run_timeout: float) -> dict[str, Any]:
    if not run_timeout:
        return measure(combo, task, budget, seed)
    faulthandler.dump_traceback_later(run_timeout, exit=True)
    try:
        return measure(combo, task, budget, seed)
    finally:
        faulthandler.cancel_dump_traceback_later()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    budgets = {
        k: max(2 * POPSIZE, round(v * args.budget_factor))
        for k, v in (QUICK_BUDGETS if args.quick else DEFAULT_BUDGETS).items()
    }
    machine = machine_info()
    started = _dt.datetime.now(_dt.timezone.utc)
    print(f"calibrating (target {TARGET_CALL_S * 1e3:.0f} ms per call) ...", flush=True)
    cal = calibrate()
    print(
        f"calibration: cpu  = {cal['cpu_n_iter']} loop iterations -> "
        f"{cal['cpu_s_per_call'] * 1e3:.2f} ms per call (median of 15)\n"
        f"             wait = time.sleep({TARGET_CALL_S}) -> {cal['wait_s_per_call'] * 1e3:.2f} ms per call\n"
        f"             cheap = NumPy sphere -> {cal['cheap_s_per_call'] * 1e6:.2f} us per call",
        flush=True,
    )
    warm_up()
    results: dict[str, Any] = {}
    tables = []
    for objective in args.objectives:
        task = make_objective(objective, cal)
        budget = budgets[objective]
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in COMBOS}
        for rep in range(args.repeats):
            seed = args.seed + rep
            for combo in COMBOS:
                if runs[combo.name] and runs[combo.name][0].get("refused"):
                    continue  # refused at construction: no need to ask again
                load = loadavg()
                r = _measure(combo, task, budget, seed, args.run_timeout)
                r["repeat"], r["seed"] = rep, seed
                r["loadavg_1min_before"] = None if load is None else load[0]
                runs[combo.name].append(r)
                if r.get("refused"):
                    print(f"[{objective} {rep + 1}/{args.repeats}] {combo.name:<34} refused", flush=True)
                else:
                    extra = ""
                    if "backend_choice" in r:
                        extra = f"  (auto chose {_choice_text(r['backend_choice'])})"
                    print(
                        f"[{objective} {rep + 1}/{args.repeats}] {combo.name:<34} "
                        f"{r['evals_per_s']:>9.1f} evals/s ({r['f_evals']} in {r['wall_s']:.2f} s){extra}",
                        flush=True,
                    )
        summary = summarise(objective, runs)
        table = format_table(objective, summary, cal, budget, args.repeats)
        tables.append(table)
        print()
        print(table, flush=True)
        print()
        results[objective] = {
            "description": DESCRIPTIONS[objective],
            "s_per_call": cal[f"{objective}_s_per_call"],
            "budget": budget,
            "combinations": {
                name: {**summary[name], "repeats": runs[name]} for name in COMBO_NAMES
            },
        }
    machine["loadavg_at_end"] = loadavg()
    if len(tables) > 1:  # all the tables together, after the progress lines
        print("\n\n".join(tables))
    print(
        f"\nmachine: {machine['cpu_count']} CPUs ({machine['cpus_available']} available), "
        f"{machine['cpu_model']}; Python {machine['python']}, numpy {machine['numpy']}, "
        f"glompo_like {machine['glompo_like']}; start method {machine['mp_start_method']}; "
        f"load average at start {machine['loadavg_at_start']}, at end {machine['loadavg_at_end']}"
    )
    load = machine["loadavg_at_start"]
    if load is not None and load[0] >= BUSY_LOAD:
        print(f"WARNING: 1-minute load average was {load[0]:.2f} at the start: other work was "
              "running, so the parallel combinations are probably understated.")
    missed = [
        f"{obj}: {name}"
        for obj, res in results.items()
        for name, e in res["combinations"].items()
        if e.get("pass") is False
    ]
    print("targets missed: " + (", ".join(missed) if missed else "none"))
    doc = {
        "benchmark": "backends",
        "date": started.isoformat(timespec="seconds"),
        "duration_s": (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(),
        "command": " ".join(["python", "benchmarks/backends.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "dim": DIM,
            "bounds": [LOWER, UPPER],
            "popsize": POPSIZE,
            "optimizer": "CMAOptimizer",
            "killing_conditions": False,
            "evaluation_log": True,
            "budgets": budgets,
            "budget_factor": args.budget_factor,
            "quick": args.quick,
            "repeats": args.repeats,
            "seed": args.seed,
            "order": "interleaved",
            "timer": "time.perf_counter around start_manager()",
            "auto_tolerance": AUTO_TOLERANCE,
        },
        "machine": machine,
        "calibration": cal,
        "targets": TARGETS,
        "objectives": results,
        "targets_missed": missed,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=json_default) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    if args.strict and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
