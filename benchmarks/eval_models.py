"""The evaluation models of issue 17, measured: a run per model, a table each, one JSON file.

* **noisy**: a flat bowl (``0.01 |x|^2``, 4-D) under Gaussian noise of sd 1, CMA-ES, a budget
  of 4000 evaluations; the distance of the reported value from the true value of the
  reported point, ``|fx - f(x)|``, without ``samples`` and with ``samples=4``
  (``incumbent_samples=32``), over several seeds;
* **leak**: an objective that keeps 4 MiB per call; the largest resident memory a worker
  reached (reported by the task itself through its metadata) in 60 evaluations with one
  persistent worker, with ``max_evals_per_worker=10`` and with ``backend="isolated"``;
* **async**: an ``async def`` objective awaiting ``asyncio.sleep(0.05)``, 320 evaluations,
  Level 2 ``"asyncio"`` with 1 and with 16 evaluations in flight: evaluations per second
  and the speed-up.

Run (under ``nice`` on a shared machine)::

    python benchmarks/eval_models.py            # writes benchmarks/results/eval_models.json
    python benchmarks/eval_models.py --quick    # fewer seeds and evaluations
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import json_default, machine_info
from glompo_like import GloMPOManager, read_log
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies import CycleSelector, MaxFuncCalls

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 1 << 20


class NoisyBowl:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def truth(x) -> float:
        return 0.01 * float(np.sum(np.asarray(x) ** 2))

    def __call__(self, x) -> float:
        return self.truth(x) + float(self.rng.normal())


_KEPT: list = []


def leaky(x):
    import psutil

    block = bytearray(4 * MiB)
    block[::4096] = b"x" * len(block[::4096])
    _KEPT.append(block)
    return float(np.sum(np.asarray(x) ** 2)), {"rss": psutil.Process().memory_info().rss}


async def waits(x):
    await asyncio.sleep(0.05)
    return float(np.sum(np.asarray(x) ** 2))


def _run(task, entry, budget, **kw):
    return GloMPOManager(task, [(-3.0, 3.0)] * 4, opt_selector=CycleSelector([entry]), status=None,
                         killing_conditions=False, convergence_checker=MaxFuncCalls(budget), **kw).start_manager()


def noisy(seeds: int, budget: int) -> dict:
    rows = []
    for seed in range(seeds):
        for label, kw in (("samples=1", {}), ("samples=4, incumbent_samples=32", {"samples": 4, "incumbent_samples": 32})):
            r = _run(NoisyBowl(100 + seed), (CMAOptimizer, {"popsize": 8, "sigma0": 1.0}), budget,
                     backend="threads", max_jobs=1, seed=seed, **kw)
            rows.append({"setting": label, "seed": seed, "fx": r.fx, "truth": NoisyBowl.truth(r.x),
                         "distance": abs(r.fx - NoisyBowl.truth(r.x)), "n_samples": r.n_samples,
                         "fx_std": r.fx_std, "f_evals": r.stats["f_evals"]})
    table = {}
    for label in ("samples=1", "samples=4, incumbent_samples=32"):
        d = [r["distance"] for r in rows if r["setting"] == label]
        table[label] = {"median_distance": float(np.median(d)), "max_distance": float(np.max(d)),
                        "median_fx": float(np.median([r["fx"] for r in rows if r["setting"] == label])),
                        "median_truth": float(np.median([r["truth"] for r in rows if r["setting"] == label]))}
    return {"runs": rows, "summary": table}


def leak(budget: int) -> dict:
    out = {}
    for label, entry, jobs in (
        ("processes x1 (persistent)", {"workers": 1, "backend": "processes"}, 1),
        ("processes x1, max_evals_per_worker=10", {"workers": 1, "backend": "processes", "max_evals_per_worker": 10}, 1),
        ("isolated x2", {"workers": 2, "backend": "isolated"}, 2),
    ):
        with tempfile.TemporaryDirectory() as wd:
            t0 = time.perf_counter()
            r = _run(leaky, (CMAOptimizer, {"popsize": 4, **entry}), budget, backend="threads", max_jobs=jobs,
                     working_dir=wd)
            wall = time.perf_counter() - t0
            rss = np.array([m["rss"] for m in read_log(wd)["meta"]], dtype=float) / MiB
        out[label] = {"max_rss_mib": float(rss.max()), "min_rss_mib": float(rss.min()),
                      "growth_mib": float(rss.max() - rss.min()), "evals": r.stats["f_evals"],
                      "evals_per_s": r.stats["f_evals"] / wall}
    return out


def async_speedup(budget: int) -> dict:
    out = {}
    for inflight in (1, 16):
        entry = (CMAOptimizer, {"popsize": 16, "workers": inflight, "backend": "asyncio"})
        t0 = time.perf_counter()
        r = _run(waits, entry, budget, backend="threads", max_jobs=inflight, seed=1)
        wall = time.perf_counter() - t0
        out[f"{inflight} in flight"] = {"evals": r.stats["f_evals"], "wall_s": wall,
                                        "evals_per_s": r.stats["f_evals"] / wall}
    out["speedup"] = out["16 in flight"]["evals_per_s"] / out["1 in flight"]["evals_per_s"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and evaluations")
    ap.add_argument("--out", type=Path, default=RESULTS / "eval_models.json")
    args = ap.parse_args(argv)
    seeds, nbudget, abudget = (3, 1600, 160) if args.quick else (10, 4000, 320)
    res = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick}
    res["noisy"] = noisy(seeds, nbudget)
    print(f"noisy: |fx - f(x)| of the reported best, {seeds} seeds, {nbudget} evaluations")
    for label, row in res["noisy"]["summary"].items():
        print(f"  {label:<34} median {row['median_distance']:.3f}   max {row['max_distance']:.3f}"
              f"   (median fx {row['median_fx']:+.3f}, truth {row['median_truth']:.3f})")
    res["leak"] = leak(60)
    print("leak: resident memory of the worker that evaluated (4 MiB kept per call, 60 evaluations)")
    for label, row in res["leak"].items():
        print(f"  {label:<40} max {row['max_rss_mib']:7.1f} MiB   growth {row['growth_mib']:7.1f} MiB"
              f"   {row['evals_per_s']:6.1f} evals/s")
    res["async"] = async_speedup(abudget)
    print(f"async: asyncio.sleep(0.05) objective, {abudget} evaluations")
    for label in ("1 in flight", "16 in flight"):
        row = res["async"][label]
        print(f"  {label:<14} {row['evals_per_s']:7.1f} evals/s ({row['wall_s']:.2f} s)")
    print(f"  speed-up {res['async']['speedup']:.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1, default=json_default))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
