"""How good are the manager's defaults?  Solution quality against evaluations, next to peers.

Every configuration gets the same evaluation budget on the same problems and is stopped at
the budget or when it reaches ``fopt + 1e-8``.  Each run's best-so-far value is recorded
after every evaluation (for the manager: read back from its evaluation log with
:func:`glompo_like.read_log`), together with the wall time.  Reported, COCO style:

* the **ECDF** of (run, target) pairs reached against evaluations / dimension, with 51
  targets ``fopt + 10^k``, ``k = 2, 1.8, ..., -8`` (PNG, all functions together and one
  panel per function);
* a **per-function table**: the expected running time to ``fopt + 1e-8`` (ERT: all
  evaluations spent by all runs divided by the number of runs that reached it) with the
  number of successful runs, or, where no run reached it, the median final precision
  ``f_best - fopt``;
* everything (settings, machine, every run's best-so-far trace) as JSON.

Configurations
--------------
``glompo_default``
    ``GloMPOManager(task, bounds, convergence_checker=MaxFuncCalls(budget) |
    TargetCost(fopt, atol=1e-8), backend="threads", max_jobs=1, seed=s, status=None)``:
    the library's defaults (CMA-ES restarts with an IPOP population schedule from random start
    points, default hunting),
    one optimizer at a time, so evaluations are counted in sequence.
``glompo_default_2jobs``
    The same with ``backend="processes", max_jobs=2``: the defaults on two slots.  Since
    issue 20 that is one restarted CMA-ES at a time whose population is evaluated on both
    slots (Level 2 ``backend="auto"``), so it makes the same kind of search as one job;
    before, two optimizers ran at once and interleaved their evaluations.  Earlier results
    are kept as ``before_default_2jobs`` (``--relabel``).
``glompo_unmanaged``
    As ``glompo_default`` with ``killing_conditions=False`` (no hunting; optimizers end
    only by their own stopping rules).  With one job no optimizer is ever hunted anyway,
    so this equals ``glompo_default``; the next one is the informative comparison.
``glompo_unmanaged_2jobs``
    As ``glompo_default_2jobs`` with ``killing_conditions=False``: what hunting adds when
    two optimizers run at once (hunters act only then, so with the pooled defaults of
    issue 20, one optimizer at a time, it equals ``glompo_default_2jobs``).
``glompo_fixed_popsize`` (only with ``--configs``)
    As ``glompo_default`` with the defaults before issue 8: ``CycleSelector([CMAOptimizer])``
    (every restart with pycma's default population) and ``MinFuncCalls(100 * dim) &
    BestUnmoving(40 * dim, 0.01)``; shows what the IPOP schedule of the defaults adds.
``pycma_bipop``
    ``cma.fmin2(f, x0, sigma0, restarts=9, bipop=True)``: BIPOP-CMA-ES with up to 9
    restarts, ``x0`` uniform in the box, ``sigma0 = 0.2 * width`` (COCO's usual setting).
``scipy_de``
    ``scipy.optimize.differential_evolution`` with its defaults (best1bin, popsize 15),
    ``polish=False, tol=0``, stopped at the budget.
``nevergrad_ngopt``
    nevergrad's ``NGOpt`` (its algorithm selector) with ``budget=budget``, ask/tell, one
    worker (needs the ``peers`` extra).
``pygmo_archipelago``
    pygmo's archipelago of 2 islands running self-adaptive DE (``sade``), evolved in rounds
    of 10 generations.  Its best-so-far is sampled after each round only (the islands run
    in other processes), so its hitting times are upper bounds, coarse by up to one round.

Problems: ``--suite bbob`` uses COCO's noiseless BBOB functions (``--functions 15-24``;
run ``r`` uses instance ``r + 1`` and seed ``r``, COCO's one-run-per-instance convention);
``--suite functions`` uses :data:`glompo_like.problems.functions.FUNCTIONS` (every run on the same
function, seed ``r``).

Run from the repository root::

    python -m benchmarks.quality --suite bbob --dim 10 --budget 20000 --seeds 5
    python -m benchmarks.quality --suite bbob --dim 5 --functions 15-24 --budget 3000 --seeds 3
    python -m benchmarks.quality --suite functions --dim 5 --quick
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:  # imported as benchmarks.<name>, or run as a script from its folder
    from ._common import cpu_model, json_default
except ImportError:
    from _common import cpu_model, json_default  # type: ignore[no-redef]

__all__ = [
    "TARGET_PRECISIONS",
    "FINAL_PRECISION",
    "CONFIGS",
    "Problem",
    "Recorder",
    "best_so_far",
    "best_so_far_from_log",
    "improvements",
    "first_hits",
    "targets_reached",
    "ecdf",
    "ert",
    "summarise_function",
    "BBOB_GROUPS",
    "anytime_budgets",
    "ecdf_area",
    "run_area",
    "group_areas",
    "modelled_time_ratio",
    "run_config",
    "main",
]

#: COCO's 51 target precisions 10^2, 10^1.8, ..., 10^-8 above the optimum.
TARGET_PRECISIONS = 10.0 ** np.linspace(2.0, -8.0, 51)
FINAL_PRECISION = 1e-8
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "results"
GLOMPO_CONFIGS = ("glompo_default", "glompo_default_2jobs", "glompo_unmanaged", "glompo_unmanaged_2jobs")
CONFIGS = (*GLOMPO_CONFIGS, "pycma_bipop", "scipy_de", "nevergrad_ngopt", "pygmo_archipelago")
QUICK_CONFIGS = ("glompo_default", "glompo_unmanaged", "pycma_bipop", "scipy_de")
#: Accepted by ``--configs`` but not run by default.
EXTRA_CONFIGS = ("glompo_fixed_popsize",)


# =========================================================================== trace logic
def best_so_far(fx: Iterable[float]) -> np.ndarray:
    """Running minimum of ``fx`` in evaluation order; NaN (failed evaluations) counts as
    ``+inf``, so a failure never improves the best."""
    a = np.asarray(list(fx) if not isinstance(fx, np.ndarray) else fx, dtype=float)
    if a.size == 0:
        return a
    a = np.where(np.isnan(a), np.inf, a)
    return np.minimum.accumulate(a)


def improvements(fx: Iterable[float], times: Iterable[float] | None = None) -> list[list[float]]:
    """Compress a sequence of values to the points where the best-so-far improves:
    ``[[n, best, t], ...]`` with ``n`` the 1-based evaluation count (``t`` is ``nan`` when
    no times are given)."""
    best = best_so_far(fx)
    t = np.full(best.size, np.nan) if times is None else np.asarray(list(times), dtype=float)
    out: list[list[float]] = []
    prev = math.inf
    for i, b in enumerate(best):
        if b < prev:
            out.append([i + 1, float(b), float(t[i])])
            prev = b
    return out


def best_so_far_from_log(where: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(best_so_far, t_end)`` of a manager run from its evaluation log (``where``: the
    working directory or the database): the running minimum over evaluations in
    ``eval_id`` order, and each evaluation's end time (``t_start + duration``, seconds
    since the epoch)."""
    from glompo_like import read_log

    log = read_log(where)
    eval_id = np.asarray(log["eval_id"], dtype=np.int64)
    order = np.argsort(eval_id, kind="stable")
    fx = np.asarray(log["fx"], dtype=float)[order]  # pandas gives NaN for NULL already
    t_end = (np.asarray(log["t_start"], dtype=float) + np.asarray(log["duration"], dtype=float))[order]
    return best_so_far(fx), t_end


def first_hits(
    trace: Sequence[Sequence[float]], fopt: float, precisions: Sequence[float] = TARGET_PRECISIONS
) -> np.ndarray:
    """For each precision ``p``: the first evaluation count at which the best-so-far is at
    most ``fopt + p`` (``inf`` if never), from an :func:`improvements` trace."""
    prec = np.asarray(precisions, dtype=float)
    hits = np.full(prec.size, np.inf)
    for row in trace:  # improvements are in increasing n with decreasing best
        n, best = row[0], row[1]
        newly = np.isinf(hits) & (best - fopt <= prec)
        hits[newly] = n
    return hits


def targets_reached(best: float, fopt: float, precisions: Sequence[float] = TARGET_PRECISIONS) -> int:
    """How many targets ``fopt + p`` a final best value ``best`` reaches."""
    return int(np.sum(best - fopt <= np.asarray(precisions, dtype=float)))


def ecdf(hits: Sequence[np.ndarray] | np.ndarray, budgets: Sequence[float]) -> np.ndarray:
    """Fraction of all (run, target) pairs reached within each budget: ``hits`` is one row
    of first-hit evaluation counts per run (``inf`` where not reached)."""
    h = np.asarray(hits, dtype=float).reshape(-1)
    if h.size == 0:
        return np.zeros(len(budgets))
    h = np.sort(h)
    return np.searchsorted(h, np.asarray(budgets, dtype=float), side="right") / h.size


def ert(hit_evals: Sequence[float], evals_used: Sequence[float]) -> float:
    """Expected running time (COCO): evaluations spent by all runs (each successful run
    counts up to its hit, each unsuccessful one its whole run) over the number of successes;
    ``inf`` without success."""
    hit = np.asarray(hit_evals, dtype=float)
    used = np.asarray(evals_used, dtype=float)
    ok = np.isfinite(hit)
    if not ok.any():
        return math.inf
    return float((np.sum(hit[ok]) + np.sum(used[~ok])) / ok.sum())


#: COCO's BBOB function groups (the ECDF-area table has one column per group).
BBOB_GROUPS: dict[str, tuple[int, ...]] = {
    "f1-5 separable": (1, 2, 3, 4, 5),
    "f6-9 moderate": (6, 7, 8, 9),
    "f10-14 ill-cond.": (10, 11, 12, 13, 14),
    "f15-19 multimodal": (15, 16, 17, 18, 19),
    "f20-24 weak struct.": (20, 21, 22, 23, 24),
}
#: Budgets of the anytime score, in evaluations per dimension: 10 ... 10^4, 10 per decade.
AREA_BUDGETS_PER_DIM = 10.0 ** np.linspace(1.0, 4.0, 31)


def anytime_budgets(dim: int, max_budget: float | None = None) -> np.ndarray:
    """Budgets of the anytime score: ``AREA_BUDGETS_PER_DIM * dim`` (10·D ... 10^4·D,
    log-spaced), cut at ``max_budget`` (a run's own budget) when given."""
    b = AREA_BUDGETS_PER_DIM * dim
    if max_budget is not None:
        b = b[b <= max_budget * (1 + 1e-9)]
    return b


def ecdf_area(hits: Sequence[np.ndarray] | np.ndarray, budgets: Sequence[float]) -> float:
    """The anytime score COCO plots: the share of (run, target, budget) triples reached,
    i.e. the ECDF of :func:`ecdf` averaged over the (log-spaced) ``budgets`` -- the area
    under the ECDF curve on a log axis, normalised to 1.  ``hits``: first-hit evaluation
    counts, one row per run (``inf`` where a target is never reached)."""
    if len(budgets) == 0:
        return math.nan
    return float(np.mean(ecdf(hits, budgets)))


def run_area(run: dict[str, Any], budgets: Sequence[float]) -> float:
    """:func:`ecdf_area` of one run (its ``trace`` and ``fopt``) over the 51 targets."""
    return ecdf_area([first_hits(run["trace"], run["fopt"])], budgets)


def bbob_group(function: str) -> str | None:
    """The :data:`BBOB_GROUPS` key of ``"f<k>"``, or ``None`` (not a BBOB function)."""
    try:
        k = int(str(function).lstrip("f"))
    except ValueError:
        return None
    return next((g for g, fs in BBOB_GROUPS.items() if k in fs), None)


def group_areas(runs: Sequence[dict[str, Any]], configs: Sequence[str], dim: int,
                budget: float | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``areas[config][group]`` = ``{"mean", "std", "runs", "functions"}``: the anytime
    ECDF area (:func:`ecdf_area`, budgets :func:`anytime_budgets` up to ``budget``) over the
    functions of each BBOB group present (non-BBOB functions form one group ``"all"``)
    and over every function (``"all"``).  The spread is the standard deviation over run
    indices (``seed``): run ``r`` of every function of the group is scored together, so
    ``std`` is the run-to-run spread of one group's score (``runs`` of them)."""
    budgets = anytime_budgets(dim, budget)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for c in configs:
        mine = [r for r in runs if r["config"] == c]
        by_group: dict[str, list[dict[str, Any]]] = {}
        for r in mine:
            g = bbob_group(r["function"])
            if g is not None:
                by_group.setdefault(g, []).append(r)
        by_group = {g: by_group[g] for g in BBOB_GROUPS if g in by_group}
        by_group["all"] = mine
        out[c] = {}
        for g, rs in by_group.items():
            per_seed: dict[Any, list[float]] = {}
            for r in rs:
                per_seed.setdefault(r["seed"], []).append(run_area(r, budgets))
            scores = np.array([np.mean(v) for v in per_seed.values()], dtype=float)
            out[c][g] = {
                "mean": float(np.mean(scores)) if scores.size else math.nan,
                "std": float(np.std(scores, ddof=1)) if scores.size > 1 else math.nan,
                "runs": int(scores.size),
                "functions": len({r["function"] for r in rs}),
            }
    return out


def modelled_time_ratio(runs: Sequence[dict[str, Any]], config: str, ref: str, *, ms_per_eval: float = 2.0,
                        cores: dict[str, int] | None = None,
                        precision: float = FINAL_PRECISION) -> dict[str, Any]:
    """Expected wall time to ``fopt + precision`` of ``config`` over that of ``ref``, from
    the evaluation counts alone, with an objective costing ``ms_per_eval`` ms of CPU: a
    configuration running on ``k`` cores (``cores[config]``; default 2 for ``*_2jobs``, else
    1) spends ``n * ms_per_eval / k`` ms on ``n`` evaluations (the manager's own overhead is
    left out; ``--cpu-ms`` measures it).  Per function: ERT in evaluations (:func:`ert`)
    times that cost; the ratio is reported per function where both have a success, with
    their geometric mean and median."""
    def k(c: str) -> int:
        if cores and c in cores:
            return cores[c]
        return 2 if c.endswith("_2jobs") else 1

    per_fn: dict[str, float] = {}
    only: dict[str, str] = {}
    for fn in dict.fromkeys(r["function"] for r in runs):
        ert_s = {}
        for c in (config, ref):
            rs = [r for r in runs if r["config"] == c and r["function"] == fn]
            if not rs:
                break
            hits = [first_hits(r["trace"], r["fopt"], [precision])[0] for r in rs]
            ert_s[c] = ert(hits, [r["n_evals"] for r in rs]) * ms_per_eval / 1000 / k(c)
        if len(ert_s) < 2:
            continue
        a, b = ert_s[config], ert_s[ref]
        if math.isfinite(a) and math.isfinite(b):
            per_fn[fn] = a / b
        elif math.isfinite(a) or math.isfinite(b):
            only[fn] = config if math.isfinite(a) else ref
    r = np.array(list(per_fn.values()), dtype=float)
    return {
        "per_function": per_fn,
        "solved_by_one_only": only,
        "geomean": float(np.exp(np.mean(np.log(r)))) if r.size else math.nan,
        "median": float(np.median(r)) if r.size else math.nan,
        "functions": int(r.size),
    }


def format_area_table(areas: dict[str, dict[str, dict[str, Any]]], configs: Sequence[str],
                      settings: dict[str, Any]) -> str:
    """One row per configuration, one column per group: ECDF area in % (mean ± std)."""
    groups = list(dict.fromkeys(g for c in configs for g in areas[c]))
    cw = max(16, *(len(g) for g in groups))
    lw = max(14, *(len(c) for c in configs))
    top = anytime_budgets(settings["dim"], settings.get("budget"))
    head = f"{'config':<{lw}}" + "".join(f" {g:>{cw}}" for g in groups)
    lines = [
        f"anytime ECDF area (% of (run, target, budget) triples reached; 51 targets 1e2..1e-8, "
        f"{top.size} budgets 10*D..{top[-1] / settings['dim']:.0f}*D), mean ± std over run indices",
        head,
        "-" * len(head),
    ]
    for c in configs:
        cells = []
        for g in groups:
            a = areas[c].get(g)
            if a is None:
                cells.append("-")
                continue
            sd = "" if math.isnan(a["std"]) else f" ± {100 * a['std']:.1f}"
            cells.append(f"{100 * a['mean']:.1f}{sd} ({a['runs']})")
        lines.append(f"{c:<{lw}}" + "".join(f" {x:>{cw}}" for x in cells))
    return "\n".join(lines)


def summarise_function(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per (configuration, function) summary of several runs (dicts as :func:`run_config`
    returns them, each with ``trace``, ``fopt``, ``n_evals``, ``final_best``, ``wall_s``)."""
    h = [first_hits(r["trace"], r["fopt"], [FINAL_PRECISION])[0] for r in runs]
    used = [r["n_evals"] for r in runs]
    prec = [r["final_best"] - r["fopt"] for r in runs]
    return {
        "runs": len(runs),
        "successes": int(np.sum(np.isfinite(h))),
        "ert_1e-8": ert(h, used),
        "median_final_precision": float(np.median(prec)),
        "median_targets_reached": float(
            np.median([targets_reached(r["final_best"], r["fopt"]) for r in runs])
        ),
        "median_wall_s": float(np.median([r["wall_s"] for r in runs])),
    }


def seconds_to_target(runs: Sequence[dict[str, Any]], precision: float) -> dict[str, Any]:
    """Wall time to ``fopt + precision`` over several runs (dicts as :func:`run_config`
    returns them; ``trace`` rows ``[n, best, t]`` with ``t`` seconds since the run began):
    the expected seconds to the target (ERT in seconds: the time of every successful run
    up to its hit plus the whole wall time of every failed run, over the successes; ``inf``
    without success), the median over successful runs, and the successes."""
    hit_t: list[float] = []
    spent = 0.0
    for r in runs:
        t_hit = math.inf
        for _n, best, t in r["trace"]:
            if best - r["fopt"] <= precision:
                t_hit = math.inf if t is None or not math.isfinite(t) else float(t)
                break
        if math.isfinite(t_hit):
            hit_t.append(t_hit)
            spent += t_hit
        else:
            spent += float(r["wall_s"])
    ok = len(hit_t)
    return {
        "runs": len(runs),
        "successes": ok,
        "ert_s": spent / ok if ok else math.inf,
        "median_s": float(np.median(hit_t)) if ok else math.inf,
    }


# =========================================================================== problems
@dataclass
class Problem:
    """One benchmark problem: a picklable objective, its box and its optimum."""

    name: str
    function: str
    f: Callable[[np.ndarray], float]
    bounds: list[tuple[float, float]]
    fopt: float
    instance: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: Every configuration stops once it reaches ``fopt + stop_precision``.
    stop_precision: float = FINAL_PRECISION

    @property
    def dim(self) -> int:
        return len(self.bounds)

    @property
    def stop_target(self) -> float:
        return self.fopt + self.stop_precision


class CPUBound:
    """Makes an objective CPU-bound: each call first spins pure Python until the calling
    thread has used ``cpu_ms`` milliseconds of CPU time (:func:`time.thread_time`), then
    returns ``f(x)``.  The spin holds the GIL, like a Python objective, and costs the same
    CPU work however busy the machine is.  Picklable when ``f`` is."""

    def __init__(self, f: Callable[[np.ndarray], float], cpu_ms: float) -> None:
        if not (isinstance(cpu_ms, int | float) and math.isfinite(cpu_ms) and cpu_ms >= 0):
            raise ValueError(f"cpu_ms must be a finite number >= 0, got {cpu_ms!r}")
        self.f = f
        self.cpu_ms = float(cpu_ms)

    def __call__(self, x: Any) -> float:
        end = time.thread_time() + self.cpu_ms / 1000.0
        k = 0
        while time.thread_time() < end:
            for _ in range(200):  # pure-Python work between clock reads
                k += 1
        return self.f(x)


def parse_functions(spec: str | None, suite: str, dim: int) -> tuple[list[Any], list[str]]:
    """``"15-24"``, ``"1,3,5-7"`` (BBOB) or ``"sphere,rastrigin"`` (functions); ``None``:
    all.  Returns the selection and notes about functions left out."""
    notes: list[str] = []
    if suite == "bbob":
        if not spec:
            return list(range(1, 25)), notes
        out: list[int] = []
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
        bad = [f for f in out if not 1 <= f <= 24]
        if bad:
            raise ValueError(f"BBOB functions are 1..24, got {bad}")
        return out, notes
    from glompo_like.problems.functions import FUNCTIONS

    names = list(FUNCTIONS) if not spec else [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown functions {unknown}; known: {sorted(FUNCTIONS)}")
    usable = []
    for n in names:
        try:
            FUNCTIONS[n].fmin_at(dim)
            if n == "lennard_jones":
                FUNCTIONS[n].f(np.zeros(dim) + np.arange(dim))
        except (KeyError, ValueError) as exc:
            notes.append(f"{n} left out at dim={dim}: {exc}")
            continue
        usable.append(n)
    return usable, notes


def make_problem(suite: str, function: Any, dim: int, run: int, *, cpu_ms: float = 0.0,
                 stop_precision: float = FINAL_PRECISION) -> Problem:
    """Run ``run`` of ``function``; ``cpu_ms > 0`` wraps the objective in
    :class:`CPUBound`; every configuration stops at ``fopt + stop_precision``."""
    if suite == "bbob":
        from glompo_like.problems.bbob import BBOB_FUNCTION_NAMES, BBOBProblem

        p = BBOBProblem(int(function), dim, run + 1)
        prob = Problem(p.name, f"f{int(function)}", p, p.bounds, p.fopt, run + 1,
                       {"bbob_name": BBOB_FUNCTION_NAMES[int(function)]})
    else:
        from glompo_like.problems.functions import FUNCTIONS

        t = FUNCTIONS[function]
        prob = Problem(f"{t.name}_d{dim}", t.name, t.f, t.bounds(dim), t.fmin_at(dim))
    if cpu_ms > 0:
        prob.f = CPUBound(prob.f, cpu_ms)
        prob.meta["cpu_ms"] = cpu_ms
    prob.stop_precision = float(stop_precision)
    return prob


# =========================================================================== recording
class _Stop(Exception):
    """Raised by :class:`Recorder` to end a peer's run (budget used or target reached)."""


class Recorder:
    """Wraps an objective: records every value and time, and raises to stop the caller
    once ``budget`` evaluations are done or the target is reached."""

    def __init__(self, f: Callable[[np.ndarray], float], budget: int, target: float | None) -> None:
        self.f = f
        self.budget = int(budget)
        self.target = target
        self.fx: list[float] = []
        self.t: list[float] = []
        self.best = math.inf
        self.t0 = time.perf_counter()

    @property
    def done(self) -> bool:
        return len(self.fx) >= self.budget or (self.target is not None and self.best <= self.target)

    def __call__(self, x: Any) -> float:
        if self.done:
            raise _Stop
        y = float(self.f(np.asarray(x, dtype=float)))
        self.fx.append(y)
        self.t.append(time.perf_counter() - self.t0)
        if y < self.best:
            self.best = y
        return y


def _result(problem: Problem, config: str, seed: int, fx: Sequence[float], t: Sequence[float],
            wall: float, budget: int, note: str = "") -> dict[str, Any]:
    fx, t = list(fx)[:budget], list(t)[:budget]  # equal budgets: cut any overshoot
    trace = improvements(fx, t)
    return {
        "config": config,
        "problem": problem.name,
        "function": problem.function,
        "instance": problem.instance,
        "seed": seed,
        "fopt": problem.fopt,
        "n_evals": len(fx),
        "wall_s": wall,
        "final_best": trace[-1][1] if trace else math.inf,
        "trace": trace,
        "note": note,
    }


# =========================================================================== configurations
def _fixed_popsize_policies(dim: int) -> dict[str, Any]:
    """The defaults before issue 8: every restart with pycma's default population."""
    from glompo_like.optimizers import CMAOptimizer
    from glompo_like.policies.hunters import BestUnmoving, MinFuncCalls
    from glompo_like.policies.selectors import CycleSelector

    return {"opt_selector": CycleSelector([CMAOptimizer]),
            "killing_conditions": MinFuncCalls(100 * dim) & BestUnmoving(40 * dim, 0.01)}


def _glompo(problem: Problem, budget: int, seed: int, *, backend: str, max_jobs: int,
            killing: bool, fixed_popsize: bool = False) -> tuple[list[float], list[float], float, str]:
    from glompo_like import GloMPOManager
    from glompo_like.policies.checkers import MaxFuncCalls, TargetCost

    kwargs: dict[str, Any] = _fixed_popsize_policies(problem.dim) if fixed_popsize else {}
    if not killing:
        kwargs["killing_conditions"] = False
    with tempfile.TemporaryDirectory(prefix="glompo-quality-") as wd:
        t_epoch = time.time()
        t0 = time.perf_counter()
        manager = GloMPOManager(
            problem.f,
            problem.bounds,
            convergence_checker=MaxFuncCalls(budget) | TargetCost(problem.fopt, atol=problem.stop_precision),
            backend=backend,
            max_jobs=max_jobs,
            seed=seed,
            status=None,
            working_dir=wd,
            **kwargs,
        )
        with manager:
            result = manager.start_manager()
        wall = time.perf_counter() - t0
        best, t_end = best_so_far_from_log(wd)
    s = dict(result.stats)
    note = (f"opts_started={s.get('opts_started')} killed={s.get('opts_killed')} "
            f"converged={s.get('opts_converged')}")
    return best.tolist(), (t_end - t_epoch).tolist(), wall, note


def _pycma_bipop(problem: Problem, budget: int, seed: int) -> tuple[list[float], list[float], float, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import cma
    lo = np.array([b[0] for b in problem.bounds])
    hi = np.array([b[1] for b in problem.bounds])
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(lo, hi)
    sigma0 = 0.2 * float(np.mean(hi - lo))
    rec = Recorder(problem.f, budget, problem.stop_target)
    opts = {
        "maxfevals": budget,
        "bounds": [lo.tolist(), hi.tolist()],
        "ftarget": problem.stop_target,
        "verbose": -9,
        "verb_log": 0,
        "seed": seed + 1,  # pycma takes seed 0 as "seed from the clock"
    }
    t0 = time.perf_counter()
    note = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycma warns about bound handling, flat fitness, ...
        try:
            cma.fmin2(rec, x0, sigma0, restarts=9, bipop=True, options=opts)
            note = "ended by its own termination (all restarts used)" if not rec.done else ""
        except _Stop:
            pass
    return rec.fx, rec.t, time.perf_counter() - t0, note


def _scipy_de(problem: Problem, budget: int, seed: int) -> tuple[list[float], list[float], float, str]:
    from scipy.optimize import differential_evolution

    rec = Recorder(problem.f, budget, problem.stop_target)
    popsize = 15
    maxiter = budget // (popsize * problem.dim) + 1
    seeding = ({"rng": np.random.default_rng(seed)}
               if "rng" in inspect.signature(differential_evolution).parameters else {"seed": seed})
    t0 = time.perf_counter()
    note = ""
    try:
        differential_evolution(rec, problem.bounds, maxiter=maxiter, popsize=popsize, polish=False,
                               tol=0.0, **seeding)
        note = "ended before the budget" if not rec.done else ""
    except _Stop:
        pass
    return rec.fx, rec.t, time.perf_counter() - t0, note


def _nevergrad_ngopt(problem: Problem, budget: int, seed: int) -> tuple[list[float], list[float], float, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nevergrad as ng
    lo = np.array([b[0] for b in problem.bounds])
    hi = np.array([b[1] for b in problem.bounds])
    rec = Recorder(problem.f, budget, problem.stop_target)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nevergrad and its pycma warn freely
        param = ng.p.Array(shape=(problem.dim,), lower=lo, upper=hi)
        param.random_state = np.random.RandomState(seed)
        opt = ng.optimizers.NGOpt(parametrization=param, budget=budget, num_workers=1)
        crash = ""
        try:
            while not rec.done:
                cand = opt.ask()
                opt.tell(cand, rec(cand.value))
        except Exception as exc:  # a peer's own bug ends its run, not the benchmark
            crash = (f"; CRASHED after {len(rec.fx)} evaluations: {type(exc).__name__}: {exc} "
                     "(the rest of its budget counts as not reached)")
    chosen = getattr(opt, "optim", None)
    note = f"NGOpt chose {type(chosen).__name__}" if chosen is not None else "NGOpt"
    return rec.fx, rec.t, time.perf_counter() - t0, note + crash


class _PygmoUDP:
    """A pygmo user-defined problem around a picklable objective."""

    def __init__(self, f: Callable[[np.ndarray], float], lo: list[float], hi: list[float]) -> None:
        self.f, self.lo, self.hi = f, lo, hi

    def fitness(self, x: np.ndarray) -> list[float]:
        return [float(self.f(np.asarray(x, dtype=float)))]

    def get_bounds(self) -> tuple[list[float], list[float]]:
        return (self.lo, self.hi)


PYGMO_ISLANDS, PYGMO_POP, PYGMO_GENS_PER_ROUND = 2, 20, 10


def _pygmo_archipelago(problem: Problem, budget: int, seed: int) -> tuple[list[float], list[float], float, str]:
    import pygmo as pg

    lo = [b[0] for b in problem.bounds]
    hi = [b[1] for b in problem.bounds]
    target = problem.stop_target
    t0 = time.perf_counter()
    algo = pg.algorithm(pg.sade(gen=PYGMO_GENS_PER_ROUND, seed=seed + 1))
    archi = pg.archipelago(n=PYGMO_ISLANDS, algo=algo, prob=pg.problem(_PygmoUDP(problem.f, lo, hi)),
                           pop_size=PYGMO_POP, seed=seed + 1)
    # Sampled best-so-far: after each round, (evaluations so far, best so far, time).
    samples: list[tuple[int, float, float]] = []

    def sample() -> tuple[int, float]:
        pops = [isl.get_population() for isl in archi]
        n = int(sum(p.problem.get_fevals() for p in pops))
        best = float(min(p.champion_f[0] for p in pops))
        samples.append((n, best, time.perf_counter() - t0))
        return n, best

    n, best = sample()
    per_round = PYGMO_ISLANDS * PYGMO_POP * PYGMO_GENS_PER_ROUND
    while n + per_round <= budget and best > target:
        archi.evolve()
        archi.wait_check()
        n, best = sample()
    last_gens = (budget - n) // (PYGMO_ISLANDS * PYGMO_POP)
    if last_gens >= 1 and best > target:  # use the rest of the budget in a shorter round
        for i, isl in enumerate(archi):
            isl.set_algorithm(pg.algorithm(pg.sade(gen=last_gens, seed=seed + 100 + i)))
        archi.evolve()
        archi.wait_check()
        n, best = sample()
    wall = time.perf_counter() - t0
    # Expand the samples into a per-evaluation series: the best so far is known only at the
    # end of each round, so every evaluation of a round is credited with the round's end.
    fx: list[float] = []
    t: list[float] = []
    prev_n = 0
    for n_i, b_i, t_i in samples:
        k = n_i - prev_n
        if k > 0:
            fx.extend([math.inf] * (k - 1) + [b_i])
            t.extend([t_i] * k)
        prev_n = n_i
    note = (f"{PYGMO_ISLANDS} islands x sade(pop {PYGMO_POP}), {PYGMO_GENS_PER_ROUND} generations a round; "
            "best-so-far sampled per round (hitting times are upper bounds)")
    return fx, t, wall, note


RUNNERS: dict[str, Callable[[Problem, int, int], tuple[list[float], list[float], float, str]]] = {
    "glompo_default": lambda p, b, s: _glompo(p, b, s, backend="threads", max_jobs=1, killing=True),
    "glompo_default_2jobs": lambda p, b, s: _glompo(p, b, s, backend="processes", max_jobs=2, killing=True),
    "glompo_unmanaged": lambda p, b, s: _glompo(p, b, s, backend="threads", max_jobs=1, killing=False),
    "glompo_unmanaged_2jobs": lambda p, b, s: _glompo(p, b, s, backend="processes", max_jobs=2, killing=False),
    "glompo_fixed_popsize": lambda p, b, s: _glompo(p, b, s, backend="threads", max_jobs=1, killing=True,
                                                    fixed_popsize=True),
    "pycma_bipop": _pycma_bipop,
    "scipy_de": _scipy_de,
    "nevergrad_ngopt": _nevergrad_ngopt,
    "pygmo_archipelago": _pygmo_archipelago,
}
_REQUIRES = {"pycma_bipop": "cma", "nevergrad_ngopt": "nevergrad", "pygmo_archipelago": "pygmo"}


def availability(configs: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The configurations whose packages import, and a note for each one skipped."""
    ok: list[str] = []
    skipped: dict[str, str] = {}
    for c in configs:
        mod = _REQUIRES.get(c)
        if mod is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    __import__(mod)
            except Exception as exc:  # ImportError, or a broken binary extension
                skipped[c] = f"skipped: cannot import {mod} ({type(exc).__name__}: {exc})"
                continue
        ok.append(c)
    return ok, skipped


def run_config(config: str, problem: Problem, budget: int, seed: int) -> dict[str, Any]:
    """One run of ``config`` on ``problem``: its best-so-far trace and counters."""
    fx, t, wall, note = RUNNERS[config](problem, budget, seed)
    return _result(problem, config, seed, fx, t, wall, budget, note)


# =========================================================================== reporting
def _fmt_cell(s: dict[str, Any]) -> str:
    if s["successes"]:
        return f"{s['ert_1e-8']:.0f} ({s['successes']}/{s['runs']})"
    return f"Δf {s['median_final_precision']:.1e}"


def _grid(configs: Sequence[str], functions: Sequence[str]) -> tuple[Callable[[str, Iterable[str]], str], str]:
    """The row formatter of the result tables (a label, then one right-aligned cell per
    configuration) and their header line."""
    width = max(14, *(len(c) for c in configs))
    fw = max(10, *(len(fn) + 1 for fn in functions))

    def row(label: str, cells: Iterable[str]) -> str:
        return f"{label:<{fw}}" + "".join(f" {cell:>{width}}" for cell in cells)

    return row, row("function", configs)


def format_table(summary: dict[str, dict[str, dict[str, Any]]], configs: Sequence[str],
                 functions: Sequence[str], settings: dict[str, Any]) -> str:
    row, head = _grid(configs, functions)
    lines = [
        f"{settings['suite']} {settings['dim']}-D, budget {settings['budget']} evaluations, "
        f"{settings['seeds']} run(s) per function",
        "cell: ERT to fopt+1e-8 in evaluations (successful runs / runs); "
        "no success: median final f-fopt (Δf)",
        head,
        "-" * len(head),
    ]
    lines += [row(fn, (_fmt_cell(summary[c][fn]) for c in configs)) for fn in functions]
    lines.append("-" * len(head))
    lines.append(row("solved", (str(sum(summary[c][fn]["successes"] for fn in functions)) for c in configs)))
    lines.append(row("targets", (f"{summary[c]['_all']['fraction_targets']:.1%}" for c in configs)))
    lines.append(row("wall s/run", (f"{summary[c]['_all']['median_wall_s']:.2f}" for c in configs)))
    lines += [
        "",
        "solved: runs that reached fopt+1e-8; targets: share of the 51 (run, target) pairs "
        "reached at the budget; wall s/run: median wall time of one run.",
    ]
    return "\n".join(lines)


def format_timing_table(timing: dict[str, dict[str, dict[str, Any]]], configs: Sequence[str],
                        functions: Sequence[str], settings: dict[str, Any]) -> str:
    """The seconds-to-target table (see :func:`seconds_to_target`)."""
    row, head = _grid(configs, functions)

    def cell(s: dict[str, Any]) -> str:
        return f"{s['ert_s']:.2f} ({s['successes']}/{s['runs']})" if s["successes"] else f"- (0/{s['runs']})"

    prec = float(settings.get("stop_precision", FINAL_PRECISION))
    lines = [
        f"wall time to fopt+{prec:g}, objective CPU-bound ({settings['cpu_ms']:g} ms of CPU per evaluation)",
        "cell: expected seconds to the target (ERT in seconds: time of all runs, each successful "
        "one up to its hit, over the successes) (successful runs / runs)",
        head,
        "-" * len(head),
    ]
    lines += [row(fn, (cell(timing[c][fn]) for c in configs)) for fn in functions]
    lines.append("-" * len(head))
    lines.append(row("all", (cell(timing[c]["_all"]) for c in configs)))
    lines.append(row("median s", (f"{timing[c]['_all']['median_s']:.2f}" for c in configs)))
    lines += ["", "median s: median seconds to the target over the successful runs of all functions."]
    return "\n".join(lines)


#: Line styles, so that configurations with identical curves stay visible.
STYLES: dict[str, dict[str, Any]] = {
    "glompo_default": {"color": "C0", "ls": "-", "lw": 2.4},
    "glompo_default_2jobs": {"color": "C1", "ls": "-", "lw": 1.4},
    "before_default_2jobs": {"color": "C1", "ls": (0, (2, 2)), "lw": 1.2},
    "glompo_unmanaged": {"color": "C2", "ls": (0, (4, 3)), "lw": 1.4},
    "glompo_unmanaged_2jobs": {"color": "C7", "ls": (0, (4, 3)), "lw": 1.4},
    "glompo_fixed_popsize": {"color": "C8", "ls": (0, (6, 2)), "lw": 1.4},
    "pycma_bipop": {"color": "C3", "ls": "-", "lw": 1.4},
    "scipy_de": {"color": "C4", "ls": "-", "lw": 1.4},
    "nevergrad_ngopt": {"color": "C5", "ls": "-", "lw": 1.4},
    "pygmo_archipelago": {"color": "C6", "ls": (0, (1, 1.5)), "lw": 1.4},
}


def plot_ecdf(runs: Sequence[dict[str, Any]], configs: Sequence[str], functions: Sequence[str],
              dim: int, budget: int, path: Path, title: str) -> list[Path]:
    """Write the aggregated ECDF and a per-function grid (matplotlib Figure API)."""
    from matplotlib.figure import Figure

    grid = np.unique(np.round(np.logspace(0, math.log10(budget), 400)))
    written = []
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    for c in configs:
        hits = [first_hits(r["trace"], r["fopt"]) for r in runs if r["config"] == c]
        ax.step(grid / dim, ecdf(hits, grid), where="post", label=c, **STYLES.get(c, {}))
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("evaluations / dimension")
    ax.set_ylabel("fraction of (run, target) pairs reached")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=110)
    written.append(path)

    ncol = min(5, len(functions))
    nrow = math.ceil(len(functions) / ncol)
    fig = Figure(figsize=(3.0 * ncol, 2.5 * nrow + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False)).reshape(-1)
    for ax, fn in zip(axes, functions, strict=False):
        for c in configs:
            hits = [first_hits(r["trace"], r["fopt"]) for r in runs if r["config"] == c and r["function"] == fn]
            ax.step(grid / dim, ecdf(hits, grid), where="post", label=c,
                    **{**STYLES.get(c, {}), "lw": 0.8 * STYLES.get(c, {}).get("lw", 1.4)})
        ax.set_xscale("log")
        ax.set_title(fn, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[len(functions):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=min(5, len(configs)), fontsize=8)
    fig.supxlabel("evaluations / dimension", fontsize=9)
    fig.supylabel("fraction of targets reached", fontsize=9)
    by_fn = path.with_name(path.stem + "_by_function" + path.suffix)
    fig.savefig(by_fn, dpi=90)
    written.append(by_fn)
    return written


def machine_info() -> dict[str, Any]:
    cpu = cpu_model()  # falls back to platform.processor()
    versions: dict[str, str | None] = {}
    for mod in ("numpy", "scipy", "cma", "cocoex", "nevergrad", "pygmo", "glompo_like"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                versions[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception:
            versions[mod] = None
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "loadavg_at_start": load,
    }


# =========================================================================== CLI
def parse_runs(spec: str) -> list[int]:
    """``'0-2,5'`` -> ``[0, 1, 2, 5]`` (run indices; ValueError if malformed)."""
    out: list[int] = []
    for part in spec.split(","):
        a, _, b = part.strip().partition("-")
        lo, hi = int(a), int(b or a)
        if lo < 0 or hi < lo:
            raise ValueError(spec)
        out.extend(range(lo, hi + 1))
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Solution quality of the manager's defaults next to peers "
                                            "(see the module docstring).")
    p.add_argument("--suite", choices=("bbob", "functions"), default="bbob",
                   help="BBOB through cocoex, or glompo_like.problems.functions (default: bbob)")
    p.add_argument("--dim", type=int, default=None, help="dimension (default 10; --quick: 2 or 3)")
    p.add_argument("--budget", type=int, default=None,
                   help="evaluations per run (default 2000*dim; --quick: 150*dim)")
    p.add_argument("--seeds", type=int, default=None, help="runs per function (default 5; --quick: 1)")
    p.add_argument("--functions", default=None,
                   help="bbob: '15-24' or '1,3,5-7'; functions: 'sphere,rastrigin' (default: all; "
                        "--quick: two)")
    p.add_argument("--configs", default=None,
                   help=f"comma-separated subset of {','.join(CONFIGS + EXTRA_CONFIGS)} (default: "
                        f"{','.join(CONFIGS)}; --quick: "
                        f"{','.join(QUICK_CONFIGS)})")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file (default benchmarks/results/quality_<suite>_d<dim>.json; the PNGs "
                        "go beside it)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--quick", action="store_true", help="smoke test: small budget, one run, two functions")
    p.add_argument("--cpu-ms", type=float, default=0.0, metavar="MS",
                   help="make every evaluation CPU-bound: spin pure Python for MS ms of CPU time first "
                        "(wall time to a target; adds a seconds-to-target table)")
    p.add_argument("--stop-precision", type=float, default=FINAL_PRECISION, metavar="P",
                   help="every configuration stops at fopt + P (default 1e-8); the seconds-to-target "
                        "table uses this target")
    p.add_argument("--replot", type=Path, default=None, metavar="JSON",
                   help="redo the table and figures of an earlier run from its JSON, and nothing else")
    p.add_argument("--first-run", type=int, default=0, metavar="R",
                   help="first run index (runs R .. R+seeds-1; BBOB instance r+1, seed r), to split "
                        "a long measurement into parts that --combine merges")
    p.add_argument("--combine", type=Path, nargs="+", default=None, metavar="JSON",
                   help="merge the runs of these result files (same suite, dim, budget) into --out, "
                        "redo the table and figures, and nothing else")
    p.add_argument("--relabel", nargs="+", default=None, metavar="ARG",
                   help="JSON OLD=NEW [OLD=NEW ...]: copy a result file into --out with configurations "
                        "renamed (OLD= with nothing after '=' drops OLD), e.g. to keep an earlier "
                        "version's runs beside new ones in --combine, and nothing else")
    p.add_argument("--only-runs", default=None, metavar="RUNS",
                   help="with --combine: keep only these run indices, e.g. '0-2' or '3,4' (to score a "
                        "tuning set and a held-out set of instances apart)")
    args = p.parse_args(argv)
    if args.only_runs is not None:
        try:
            parse_runs(args.only_runs)
        except ValueError:
            p.error(f"--only-runs: expected run indices like '0-2' or '3,4', got {args.only_runs!r}")
    if args.relabel is not None:
        if len(args.relabel) < 2 or args.out is None or not all("=" in m for m in args.relabel[1:]):
            p.error("--relabel needs JSON OLD=NEW [OLD=NEW ...] and --out")
        return args
    if args.dim is None:
        args.dim = (3 if args.suite == "functions" else 2) if args.quick else 10
    if args.budget is None:
        args.budget = (150 if args.quick else 2000) * args.dim
    if args.seeds is None:
        args.seeds = 1 if args.quick else 5
    if args.functions is None and args.quick:
        args.functions = "15,21" if args.suite == "bbob" else "sphere,rastrigin"
    if args.configs is None:
        args.configs = ",".join(QUICK_CONFIGS if args.quick else CONFIGS)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in args.configs if c not in RUNNERS]
    if bad:
        p.error(f"unknown configurations {bad}; known: {', '.join(CONFIGS + EXTRA_CONFIGS)}")
    if args.first_run < 0:
        p.error("--first-run must be >= 0")
    if args.dim < 1 or args.budget < 10 or args.seeds < 1:
        p.error("--dim >= 1, --budget >= 10 and --seeds >= 1 are needed")
    if not (math.isfinite(args.cpu_ms) and args.cpu_ms >= 0):
        p.error("--cpu-ms must be a finite number >= 0")
    if not (math.isfinite(args.stop_precision) and args.stop_precision > 0):
        p.error("--stop-precision must be a finite number > 0")
    if args.suite == "bbob" and args.dim < 2:
        p.error("BBOB needs --dim >= 2")
    if args.out is None:
        cpu = f"_cpu{args.cpu_ms:g}ms" if args.cpu_ms > 0 else ""
        args.out = DEFAULT_OUT_DIR / f"quality_{args.suite}_d{args.dim}{cpu}{'_quick' if args.quick else ''}.json"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.relabel is not None:
        return relabel(Path(args.relabel[0]), dict(m.split("=", 1) for m in args.relabel[1:]), args.out,
                       plots=not args.no_plots)
    if args.replot is not None:
        return replot(args.replot, plots=not args.no_plots)
    if args.combine:
        return combine(args.combine, args.out, plots=not args.no_plots,
                       only_runs=None if args.only_runs is None else parse_runs(args.only_runs))
    started = _dt.datetime.now(_dt.timezone.utc)
    t_start = time.perf_counter()
    if args.suite == "bbob":
        from glompo_like.problems.bbob import import_cocoex

        try:
            import_cocoex()
        except ImportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    functions, notes = parse_functions(args.functions, args.suite, args.dim)
    configs, skipped = availability(args.configs)
    for c, why in skipped.items():
        notes.append(f"{c} {why}")
    for n in notes:
        print(f"note: {n}", flush=True)
    settings = {
        "suite": args.suite,
        "dim": args.dim,
        "budget": args.budget,
        "seeds": args.seeds,
        "first_run": args.first_run,
        "functions": functions,
        "configs": configs,
        "skipped": skipped,
        "target_precisions": TARGET_PRECISIONS.tolist(),
        "final_precision": FINAL_PRECISION,
        "cpu_ms": args.cpu_ms,
        "stop_precision": args.stop_precision,
        "instances": "run r uses instance r+1 and seed r" if args.suite == "bbob" else "seed r",
        "command": "python -m benchmarks.quality " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    machine = machine_info()
    runs: list[dict[str, Any]] = []
    n_total = len(functions) * args.seeds * len(configs)
    k = 0
    for fn in functions:
        for r in range(args.first_run, args.first_run + args.seeds):
            problem = make_problem(args.suite, fn, args.dim, r, cpu_ms=args.cpu_ms,
                                   stop_precision=args.stop_precision)
            for c in configs:
                k += 1
                res = run_config(c, problem, args.budget, r)
                runs.append(res)
                print(f"[{k}/{n_total}] {problem.name:<22} {c:<22} evals {res['n_evals']:>7} "
                      f"f-fopt {res['final_best'] - res['fopt']:9.2e}  {res['wall_s']:7.2f} s", flush=True)
    fn_names = [make_problem(args.suite, fn, args.dim, 0).function for fn in functions]
    if "pygmo_archipelago" in configs:
        import pygmo as pg

        pg.mp_island.shutdown_pool()  # its worker processes would otherwise outlive the runs
    machine["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary, table, figures = report(runs, settings, configs, fn_names, out, plots=not args.no_plots)
    doc = {
        "benchmark": "quality",
        "date": started.isoformat(timespec="seconds"),
        "duration_s": time.perf_counter() - t_start,
        "settings": settings,
        "notes": notes,
        "machine": machine,
        "table": table,
        "summary": summary,
        "figures": figures,
        "runs": runs,
    }
    write_json(out, doc)
    print(f"\nwrote {out}" + "".join(f"\nwrote {f}" for f in figures))
    print(f"total time {doc['duration_s']:.1f} s")
    return 0


def summarise(runs: Sequence[dict[str, Any]], configs: Sequence[str],
              fn_names: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``summary[config][function]`` (see :func:`summarise_function`) and
    ``summary[config]["_all"]`` (share of targets reached, solved runs, wall times)."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for c in configs:
        summary[c] = {}
        for fn in fn_names:
            summary[c][fn] = summarise_function([x for x in runs if x["config"] == c and x["function"] == fn])
        mine = [x for x in runs if x["config"] == c]
        summary[c]["_all"] = {
            "fraction_targets": float(np.mean([targets_reached(x["final_best"], x["fopt"]) for x in mine])
                                      / TARGET_PRECISIONS.size),
            "solved": int(sum(summary[c][fn]["successes"] for fn in fn_names)),
            "median_wall_s": float(np.median([x["wall_s"] for x in mine])),
            "total_wall_s": float(np.sum([x["wall_s"] for x in mine])),
        }
    return summary


def report(runs: Sequence[dict[str, Any]], settings: dict[str, Any], configs: Sequence[str],
           fn_names: Sequence[str], out: Path, plots: bool = True) -> tuple[dict[str, Any], str, list[str]]:
    """Summary, printed table and figures (beside ``out``) of a set of runs."""
    summary = summarise(runs, configs, fn_names)
    table = format_table(summary, configs, fn_names, settings)
    areas = group_areas(runs, configs, settings["dim"], settings.get("budget"))
    for c in configs:
        summary[c]["_ecdf_area"] = areas[c]
    table += "\n\n" + format_area_table(areas, configs, settings)
    if "pycma_bipop" in configs:
        lines = ["", "modelled wall time to fopt+1e-8 (2 ms CPU per evaluation, *_2jobs on 2 cores, "
                     "others on 1; manager overhead not included) relative to pycma_bipop:"]
        for c in configs:
            if c == "pycma_bipop":
                continue
            m = modelled_time_ratio(runs, c, "pycma_bipop")
            summary[c]["_time_ratio_vs_bipop"] = m
            lines.append(f"  {c:<24} geometric mean {m['geomean']:.3f}, median {m['median']:.3f} over "
                         f"{m['functions']} functions both solve; solved by one only: "
                         + (", ".join(f"{f}:{w}" for f, w in m["solved_by_one_only"].items()) or "none"))
        table += "\n" + "\n".join(lines)
    if settings.get("cpu_ms"):
        prec = float(settings.get("stop_precision", FINAL_PRECISION))
        timing = {c: {fn: seconds_to_target([x for x in runs if x["config"] == c and x["function"] == fn], prec)
                      for fn in fn_names} for c in configs}
        for c in configs:
            timing[c]["_all"] = seconds_to_target([x for x in runs if x["config"] == c], prec)
            summary[c]["_seconds_to_target"] = timing[c]
        table += "\n\n" + format_timing_table(timing, configs, fn_names, settings)
    print()
    print(table, flush=True)
    figures: list[str] = []
    if plots:
        span = ",".join(fn_names) if len(fn_names) <= 4 else f"{fn_names[0]}-{fn_names[-1]}"
        title = (f"{settings['suite']} {span} {settings['dim']}-D, budget {settings['budget']}, "
                 f"{settings['seeds']} run(s) each")
        figures = [str(p) for p in plot_ecdf(runs, configs, fn_names, settings["dim"], settings["budget"],
                                             out.with_name(out.stem + "_ecdf.png"), title)]
    return summary, table, figures


def replot(path: Path, plots: bool = True) -> int:
    """Redo the table and figures of a finished run from its JSON (no new runs)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    runs = doc["runs"]
    for r in runs:  # strict JSON stored inf as null
        if r["final_best"] is None:
            r["final_best"] = math.inf
    settings = doc["settings"]
    fn_names = list(dict.fromkeys(r["function"] for r in runs))
    summary, table, figures = report(runs, settings, settings["configs"], fn_names, Path(path), plots=plots)
    doc.update(summary=summary, table=table, figures=figures)
    write_json(Path(path), doc)
    print("".join(f"\nwrote {f}" for f in figures))
    return 0


def combine(paths: Sequence[Path], out: Path, plots: bool = True, only_runs: Sequence[int] | None = None) -> int:
    """Merge the runs of several result files of one setting (suite, dim, budget) into
    ``out``; a (config, problem, seed) present in more than one file is kept once (the
    first); with ``only_runs``, only runs of those indices (seeds).  Configurations are those present in every file's settings, in first-seen
    order; the table and figures are redone as :func:`replot` does."""
    docs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    key = ("suite", "dim", "budget")
    ref = {k: docs[0]["settings"][k] for k in key}
    for p, d in zip(paths, docs, strict=True):
        mine = {k: d["settings"][k] for k in key}
        if mine != ref:
            print(f"error: {p} has {mine}, not {ref}", file=sys.stderr)
            return 2
    seen: set[tuple[Any, ...]] = set()
    runs: list[dict[str, Any]] = []
    for d in docs:
        for r in d["runs"]:
            k = (r["config"], r["problem"], r["seed"])
            if only_runs is not None and r["seed"] not in only_runs:
                continue
            if k not in seen:
                seen.add(k)
                runs.append(r)
    configs = [c for c in dict.fromkeys(c for d in docs for c in d["settings"]["configs"])
               if any(r["config"] == c for r in runs)]
    settings = {**docs[0]["settings"], "configs": configs,
                "seeds": len({r["seed"] for r in runs}),
                "functions": list(dict.fromkeys(f for d in docs for f in d["settings"]["functions"])),
                "combined_from": [str(p) for p in paths]}
    doc = {**docs[0], "settings": settings, "runs": runs,
           "duration_s": float(sum(d.get("duration_s", 0.0) for d in docs))}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, doc)
    return replot(out, plots=plots)


def relabel(path: Path, mapping: dict[str, str], out: Path, plots: bool = True) -> int:
    """Copy the result file ``path`` into ``out`` with configurations renamed by ``mapping``
    (``old -> new``; an empty ``new`` drops ``old``), then redo its table and figures.  Keeps
    an earlier version's runs under another name, e.g. ``glompo_default_2jobs`` as
    ``before_default_2jobs`` (a name ending in ``_2jobs`` counts as two cores in the modelled
    time), for :func:`combine` with new runs of the same name."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    runs = []
    for r in doc["runs"]:
        new = mapping.get(r["config"], r["config"])
        if new:
            runs.append({**r, "config": new})
    configs = [mapping.get(c, c) for c in doc["settings"]["configs"] if mapping.get(c, c)]
    doc = {**doc, "runs": runs, "settings": {**doc["settings"], "configs": configs, "relabelled": mapping}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, doc)
    return replot(out, plots=plots)


def write_json(path: Path, doc: dict[str, Any], key: str = "runs") -> None:
    """Strict JSON, indented, with one compact line per entry of ``doc[key]`` (each holds a
    long best-so-far trace, whose times are rounded to 0.1 ms)."""
    doc = _jsonable(doc)
    for r in doc.get(key, []):
        r["trace"] = [[n, b, None if t is None else round(t, 4)] for n, b, t in r["trace"]]
    head = {k: v for k, v in doc.items() if k != key}
    text = json.dumps(head, indent=1, default=json_default)
    if key in doc:
        rows = ",\n  ".join(json.dumps(r, separators=(",", ":"), default=json_default) for r in doc[key])
        text = text[:-2] + f',\n "{key}": [\n  ' + rows + "\n ]\n}"
    path.write_text(text + "\n", encoding="utf-8")


def _jsonable(obj: Any) -> Any:
    """Strict JSON: infinite or NaN numbers (an ERT without success, a run with no
    finite value) become ``null``."""
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
