"""Each glompo_like optimizer alone, next to the libraries it resembles (issue 7).

No manager: every optimizer runs in a plain ask/tell loop in this process, from a start
point drawn uniformly in the box with a fixed seed, until it reaches ``f <= 1e-8`` (all
four functions have their minimum 0), uses the budget, or its own ``stop()`` fires (no
restarts: restarting is the manager's job).  Reported per (function, dimension): the
evaluations needed to reach 1e-8, or else the best value found and why the run ended.

Optimizers: ``CMAOptimizer``, ``DEOptimizer``, ``PSOOptimizer``, ``XNESOptimizer``,
``SNESOptimizer``, ``NelderMeadOptimizer``, ``ScipyOptimizer`` (L-BFGS-B with finite
differences), ``RandomOptimizer``, each with its defaults.  Peers in the same run:

``pycma``
    ``cma.CMAEvolutionStrategy`` ask/tell with the same start point and ``sigma0`` as
    ``CMAOptimizer`` (a quarter of the box width), no restarts.
``scipy_de``
    ``scipy.optimize.differential_evolution`` with its defaults (best1bin, popsize 15),
    ``polish=False, tol=0``, stopped at the budget.
``ng_pso``
    nevergrad's ``PSO`` (needs the ``peers`` extra).  nevergrad has no xNES, so
    ``XNESOptimizer`` and ``SNESOptimizer`` have no peer here.

Run from the repository root::

    python -m benchmarks.optimizers                  # 5-D and 10-D, budget 2000*dim
    python -m benchmarks.optimizers --quick          # 2-D, small budget
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality import Recorder, _Stop, improvements, machine_info, write_json

__all__ = ["OPTIMIZERS", "PEERS", "FUNCTIONS", "run_glompo_optimizer", "main"]

TARGET = 1e-8
FUNCTIONS = ("sphere", "ellipsoid", "rosenbrock", "rastrigin")
OPTIMIZERS = ("CMAOptimizer", "DEOptimizer", "PSOOptimizer", "XNESOptimizer", "SNESOptimizer",
              "NelderMeadOptimizer", "ScipyOptimizer", "RandomOptimizer")
PEERS = ("pycma", "scipy_de", "ng_pso")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "optimizers.json"

Outcome = tuple[list[float], list[float], float, str]


def run_glompo_optimizer(name: str, f: Callable[[np.ndarray], float], bounds: list[tuple[float, float]],
                         budget: int, seed: int) -> Outcome:
    """One glompo_like optimizer alone in an ask/tell loop: ``(fx, t, wall, stop_reason)``."""
    import glompo_like.optimizers as opts

    cls = getattr(opts, name)
    rng = np.random.default_rng(seed)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    x0 = rng.uniform(lo, hi)
    fx: list[float] = []
    t: list[float] = []
    best = math.inf
    reason = "budget"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycma's bound-handling and similar warnings
        opt = cls(bounds, x0=x0, seed=seed)
        try:
            while True:
                stop = opt.stop()
                if stop:
                    reason = "stop: " + ", ".join(f"{k}" for k in stop)
                    break
                xs = opt.ask()
                room = budget - len(fx)
                values = [float(f(x)) for x in xs[:room]]
                now = time.perf_counter() - t0
                fx.extend(values)
                t.extend([now] * len(values))
                best = min([best, *values])
                if len(values) < len(xs):  # budget ends inside the generation
                    break
                opt.tell(xs, np.array(values))
                if best <= TARGET:
                    reason = "target"
                    break
                if len(fx) >= budget:
                    break
        finally:
            opt.close()
    return fx, t, time.perf_counter() - t0, reason


def _pycma(f: Callable[[np.ndarray], float], bounds: list[tuple[float, float]], budget: int,
           seed: int) -> Outcome:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import cma
    rng = np.random.default_rng(seed)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    x0 = rng.uniform(lo, hi)
    rec = Recorder(f, budget, TARGET)
    reason = "budget"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = cma.CMAEvolutionStrategy(x0, 0.25 * float(np.mean(hi - lo)), {
            "bounds": [lo.tolist(), hi.tolist()], "seed": seed + 1, "verbose": -9, "verb_log": 0,
        })
        try:
            while not es.stop():
                xs = es.ask()
                es.tell(xs, [rec(x) for x in xs])
            reason = "stop: " + ", ".join(es.stop())
        except _Stop:
            reason = "target" if rec.best <= TARGET else "budget"
    return rec.fx, rec.t, time.perf_counter() - t0, reason


def _scipy_de(f: Callable[[np.ndarray], float], bounds: list[tuple[float, float]], budget: int,
              seed: int) -> Outcome:
    from scipy.optimize import differential_evolution

    rec = Recorder(f, budget, TARGET)
    seeding = ({"rng": np.random.default_rng(seed)}
               if "rng" in inspect.signature(differential_evolution).parameters else {"seed": seed})
    t0 = time.perf_counter()
    reason = "stop: maxiter"
    try:
        differential_evolution(rec, bounds, maxiter=budget // (15 * len(bounds)) + 1, polish=False,
                               tol=0.0, **seeding)
    except _Stop:
        reason = "target" if rec.best <= TARGET else "budget"
    return rec.fx, rec.t, time.perf_counter() - t0, reason


def _ng(name: str) -> Callable[..., Outcome]:
    def run(f: Callable[[np.ndarray], float], bounds: list[tuple[float, float]], budget: int,
            seed: int) -> Outcome:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import nevergrad as ng
        lo = np.array([b[0] for b in bounds])
        hi = np.array([b[1] for b in bounds])
        rec = Recorder(f, budget, TARGET)
        t0 = time.perf_counter()
        reason = "budget"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            param = ng.p.Array(shape=(len(bounds),), lower=lo, upper=hi)
            param.random_state = np.random.RandomState(seed)
            opt = ng.optimizers.registry[name](parametrization=param, budget=budget, num_workers=1)
            try:
                while not rec.done:
                    cand = opt.ask()
                    opt.tell(cand, rec(cand.value))
                reason = "target" if rec.best <= TARGET else "budget"
            except Exception as exc:  # a peer's own bug ends its run, not the benchmark
                reason = f"crashed: {type(exc).__name__}: {exc}"
        return rec.fx, rec.t, time.perf_counter() - t0, reason

    return run


PEER_RUNNERS: dict[str, Callable[..., Outcome]] = {"pycma": _pycma, "scipy_de": _scipy_de, "ng_pso": _ng("PSO")}
_REQUIRES = {"ng_pso": "nevergrad"}


def _cell(r: dict[str, Any]) -> str:
    if r["evals_to_target"] is not None:
        return f"{r['evals_to_target']}"
    return f"{r['best']:.1e}{'*' if r['reason'].startswith('stop') else ''}"


def format_table(results: list[dict[str, Any]], names: Sequence[str], settings: dict[str, Any]) -> str:
    width = max(10, *(len(_short(n)) for n in names))
    head = f"{'problem':<15}" + "".join(f" {_short(n):>{width}}" for n in names)
    lines = [
        f"Each optimizer alone, one run (seed {settings['seed']}), budget {settings['budget_per_dim']}*dim "
        "evaluations, start point uniform in the box",
        "cell: evaluations to reach f <= 1e-8; otherwise the best f found "
        "(* = the optimizer stopped itself before the budget)",
        head,
        "-" * len(head),
    ]
    for fn in settings["functions"]:
        for d in settings["dims"]:
            row = {r["optimizer"]: r for r in results if r["function"] == fn and r["dim"] == d}
            lines.append(f"{f'{fn} {d}-D':<15}" + "".join(
                f" {_cell(row[n]) if n in row else '-':>{width}}" for n in names))
    lines.append("-" * len(head))
    lines.append(f"{'solved':<15}" + "".join(
        f" {sum(r['evals_to_target'] is not None for r in results if r['optimizer'] == n):>{width}}"
        for n in names))
    lines.append(f"{'wall s (sum)':<15}" + "".join(
        f" {sum(r['wall_s'] for r in results if r['optimizer'] == n):>{width}.2f}" for n in names))
    return "\n".join(lines)


def _short(name: str) -> str:
    return name.replace("Optimizer", "")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Each glompo_like optimizer alone next to pycma, scipy "
                                            "and nevergrad (see the module docstring).")
    p.add_argument("--dims", default=None, help="comma-separated dimensions (default 5,10; --quick: 2)")
    p.add_argument("--budget-per-dim", type=int, default=None,
                   help="evaluation budget per dimension (default 2000; --quick: 200)")
    p.add_argument("--functions", default=",".join(FUNCTIONS), help="default: %(default)s")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    p.add_argument("--only", default=None, help="comma-separated subset of optimizers and peers")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file (default benchmarks/results/optimizers.json)")
    p.add_argument("--quick", action="store_true", help="smoke test")
    args = p.parse_args(argv)
    args.dims = [int(d) for d in (args.dims or ("2" if args.quick else "5,10")).split(",")]
    if args.budget_per_dim is None:
        args.budget_per_dim = 200 if args.quick else 2000
    args.functions = [s.strip() for s in args.functions.split(",") if s.strip()]
    bad = [s for s in args.functions if s not in FUNCTIONS]
    if bad:
        p.error(f"unknown functions {bad}; choose from {', '.join(FUNCTIONS)}")
    args.names = list(OPTIMIZERS + PEERS)
    if args.only:
        args.names = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [s for s in args.names if s not in OPTIMIZERS + PEERS]
        if bad:
            p.error(f"unknown optimizers {bad}")
    if args.out is None:
        args.out = DEFAULT_OUT.with_name("optimizers_quick.json") if args.quick else DEFAULT_OUT
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from glompo_like.problems.functions import FUNCTIONS as TEST_FUNCTIONS

    args = parse_args(argv)
    started = _dt.datetime.now(_dt.timezone.utc)
    t_start = time.perf_counter()
    names: list[str] = []
    notes = ["nevergrad has no xNES optimizer: XNESOptimizer and SNESOptimizer have no peer"]
    for n in args.names:
        mod = _REQUIRES.get(n)
        if mod:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    __import__(mod)
            except Exception as exc:
                notes.append(f"{n} skipped: cannot import {mod} ({exc})")
                continue
        names.append(n)
    for n in notes:
        print(f"note: {n}", flush=True)
    settings = {
        "functions": args.functions,
        "dims": args.dims,
        "budget_per_dim": args.budget_per_dim,
        "seed": args.seed,
        "target": TARGET,
        "optimizers": names,
        "command": "python -m benchmarks.optimizers " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    results: list[dict[str, Any]] = []
    for fn in args.functions:
        test = TEST_FUNCTIONS[fn]
        for d in args.dims:
            bounds = test.bounds(d)
            budget = args.budget_per_dim * d
            for n in names:
                if n in OPTIMIZERS:
                    fx, t, wall, reason = run_glompo_optimizer(n, test.f, bounds, budget, args.seed)
                else:
                    fx, t, wall, reason = PEER_RUNNERS[n](test.f, bounds, budget, args.seed)
                fx, t = fx[:budget], t[:budget]
                trace = improvements(fx, t)
                hit = next((int(row[0]) for row in trace if row[1] <= TARGET), None)
                r = {
                    "optimizer": n, "function": fn, "dim": d, "budget": budget, "evals": len(fx),
                    "evals_to_target": hit, "best": trace[-1][1] if trace else math.inf,
                    "reason": reason, "wall_s": wall, "trace": trace,
                }
                results.append(r)
                print(f"{fn:<11}{d:>3}-D {n:<20} {_cell(r):>10}  evals {len(fx):>6}  {wall:6.2f} s  {reason}",
                      flush=True)
    table = format_table(results, names, settings)
    print()
    print(table)
    doc = {
        "benchmark": "optimizers",
        "date": started.isoformat(timespec="seconds"),
        "duration_s": time.perf_counter() - t_start,
        "settings": settings,
        "notes": notes,
        "machine": machine_info(),
        "table": table,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, doc, key="results")
    print(f"\nwrote {out}\ntotal time {doc['duration_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
