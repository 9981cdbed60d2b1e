"""What does a generation of CMA-ES cost with the bounds handled per generation?

:class:`~glompo_like.optimizers.CMAOptimizer` runs pycma without bounds and maps each
generation into the box with :class:`~glompo_like.optimizers.box.LinQuadBox`, the
transformation of pycma's own default bound handling (same candidates).  This script
times, side by side in one process, one generation (``ask``, ``tell``, ``stop``) of:

``pycma_bounds``
    ``cma.CMAEvolutionStrategy`` with ``bounds`` (its bound handling, candidate by
    candidate), the default population;
``pycma_no_bounds``
    the same without bounds (the floor: nothing maps the candidates);
``glompo_cma``
    ``CMAOptimizer``'s ``ask``/``tell``/``stop`` (pycma without bounds + ``LinQuadBox``).

The box is ``[-5, 5]^dim``, the function the sphere shifted to the box's corner (so the
bound handling works), every configuration from the same start, interleaved over
``--repeats`` rounds; the table shows the median milliseconds per generation.  Run from the
repository root::

    python benchmarks/cma_box.py                 # writes benchmarks/results/cma_box.json
    python benchmarks/cma_box.py --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
# run as a script, this folder comes first on sys.path (its dask.py would shadow the real
# package) and the repository root is missing
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

from benchmarks._common import machine_info  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "cma_box.json"
LOWER, UPPER = -5.0, 5.0


def _cma_version() -> str:
    import cma

    return str(cma.__version__)


def _f(xs: np.ndarray) -> np.ndarray:
    return np.sum((np.asarray(xs) - 4.9) ** 2, axis=1)


def _pycma(dim: int, bounds: bool, seed: int) -> Callable[[], None]:
    import cma

    opts: dict[str, Any] = {"verbose": -9, "verb_log": 0, "verb_disp": 0, "seed": seed + 1}
    if bounds:
        opts["bounds"] = [LOWER, UPPER]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = cma.CMAEvolutionStrategy(np.zeros(dim).tolist(), 2.5, opts)

    def generation() -> None:
        xs = es.ask()
        es.tell(xs, _f(np.asarray(xs)).tolist())
        es.stop()

    return generation


def _glompo(dim: int, seed: int) -> Callable[[], None]:
    from glompo_like.bounds import Bounds
    from glompo_like.optimizers import CMAOptimizer

    opt = CMAOptimizer(Bounds(np.full(dim, LOWER), np.full(dim, UPPER)), np.zeros(dim), seed, sigma0=2.5)

    def generation() -> None:
        xs = opt._ask()
        opt._tell(xs, _f(xs))
        opt._stop()

    return generation


CONFIGS = {
    "pycma_bounds": lambda dim, seed: _pycma(dim, True, seed),
    "pycma_no_bounds": lambda dim, seed: _pycma(dim, False, seed),
    "glompo_cma": _glompo,
}


def time_generations(make: Callable[[int, int], Callable[[], None]], dim: int, gens: int, seed: int) -> float:
    step = make(dim, seed)
    for _ in range(5):  # first calls
        step()
    t0 = time.perf_counter()
    for _ in range(gens):
        step()
    return (time.perf_counter() - t0) / gens * 1e3


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", default="5,10,20,40")
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="a smoke test: 2 dimensions, 20 generations, 1 round")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    dims = [int(d) for d in a.dims.split(",")]
    gens, repeats = a.generations, a.repeats
    if a.quick:
        dims, gens, repeats = dims[:2], 20, 1
    ms: dict[int, dict[str, list[float]]] = {d: {k: [] for k in CONFIGS} for d in dims}
    for r in range(repeats):  # interleaved
        for d in dims:
            for name, make in CONFIGS.items():
                ms[d][name].append(time_generations(make, d, gens, r))
    lines = [f"{'dim':>4}  {'popsize':>7}  " + "  ".join(f"{k:>16}" for k in CONFIGS) + "  glompo/pycma_bounds"]
    rows = {}
    for d in dims:
        med = {k: statistics.median(v) for k, v in ms[d].items()}
        rows[d] = {"ms_per_generation": med, "runs": ms[d],
                   "glompo_over_pycma_bounds": med["glompo_cma"] / med["pycma_bounds"]}
        pop = int(4 + 3 * np.log(d))
        lines.append(f"{d:>4}  {pop:>7}  " + "  ".join(f"{med[k]:>16.3f}" for k in CONFIGS)
                     + f"  {rows[d]['glompo_over_pycma_bounds']:>19.2f}")
    print("milliseconds per generation (ask + tell + stop), median of rounds")
    print("\n".join(lines))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"machine": machine_info(cma=_cma_version()), "settings": {"dims": dims, "generations": gens,
                                 "repeats": repeats}, "rows": rows, "table": lines}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
