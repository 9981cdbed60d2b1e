"""What a checkpoint costs: pause, size and load time, next to the time of one generation.

8 CMA-ES optimizers in 20-D (default popsize 12) on a cheap objective, checkpointing
every N evaluations.  The pause is measured inside the manager, from asking every
optimizer for its state until they go on again (GloMPOManager.checkpointer.pauses).

    python benchmarks/checkpoint.py [--backend threads|processes] [--evals N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from glompo_like import CheckpointingControl, GloMPOManager
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.record.checkpoint import read_checkpoint

DIM, N_OPTS = 20, 8


def ellipsoid(x):
    x = np.asarray(x, dtype=float)
    return float(np.sum(10.0 ** (6.0 * np.arange(x.size) / (x.size - 1)) * x * x))


def measure(backend: str, evals: int, every: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="glompo-chk-bench-"))
    m = GloMPOManager(
        task=ellipsoid, bounds=[(-5, 5)] * DIM, opt_selector=CycleSelector([CMAOptimizer]), backend=backend,
        max_jobs=N_OPTS, convergence_checker=MaxFuncCalls(evals), killing_conditions=False, seed=1,
        working_dir=work, status=None, checkpoint_control=CheckpointingControl(every_evaluations=every,
                                                                               keep_last=None, at_end=False),
    )
    t0 = time.perf_counter()
    r = m.start_manager()
    wall = time.perf_counter() - t0
    gens = sum(v.generations for v in m.view.optimizers.values())
    per_gen = wall * min(N_OPTS, len(m.view.optimizers)) / max(1, gens)  # one optimizer's generation
    sizes = [p.stat().st_size for p in m.checkpoints]
    t1 = time.perf_counter()
    data = read_checkpoint(m.checkpoints[-1])
    t_read = time.perf_counter() - t1
    t1 = time.perf_counter()
    GloMPOManager.load_checkpoint(m.checkpoints[-1], status=None)
    t_load = time.perf_counter() - t1
    pauses = [1e3 * p for p in m.checkpointer.pauses]
    return {
        "backend": backend, "f_evals": r.stats["f_evals"], "checkpoints": len(pauses),
        "optimizers_in_checkpoint": len(data["optimizers"]),
        "pause_ms_median": statistics.median(pauses), "pause_ms_max": max(pauses),
        "generation_ms": 1e3 * per_gen, "size_kb_median": statistics.median(sizes) / 1024,
        "read_ms": 1e3 * t_read, "load_ms": 1e3 * t_load, "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["threads", "processes", "both"], default="both")
    ap.add_argument("--evals", type=int, default=40_000)
    ap.add_argument("--every", type=int, default=4_000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "checkpoint.json"))
    args = ap.parse_args(argv)
    backends = ["threads", "processes"] if args.backend == "both" else [args.backend]
    rows = [measure(b, args.evals, args.every) for b in backends]
    print(f"Checkpoints of {N_OPTS} CMA-ES optimizers in {DIM}-D, every {args.every} of {args.evals} evaluations")
    print(f"{'backend':10s} {'n':>3s} {'pause ms (median/max)':>22s} {'one generation ms':>18s} "
          f"{'size kB':>8s} {'read ms':>8s} {'load ms':>8s}")
    for r in rows:
        print(f"{r['backend']:10s} {r['checkpoints']:3d} {r['pause_ms_median']:10.1f} / {r['pause_ms_max']:7.1f}"
              f" {r['generation_ms']:18.2f} {r['size_kb_median']:8.0f} {r['read_ms']:8.1f} {r['load_ms']:8.1f}")
    out = {"benchmark": "checkpoint", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows,
           "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
           "target": "pause <= ~50 ms with 8 CMA-ES optimizers in 20-D"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
