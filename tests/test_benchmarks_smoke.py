"""Smoke test: benchmarks/overhead.py runs end to end (quick settings) and writes its JSON."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def overhead():
    # ``benchmarks`` lives at the repository root, which plain ``pytest`` does not put on
    # sys.path.  Kept on sys.path for the whole test so spawned children can import it too.
    added = str(ROOT) not in sys.path
    if added:
        sys.path.insert(0, str(ROOT))
    try:
        yield importlib.import_module("benchmarks.overhead")
    finally:
        if added:
            sys.path.remove(str(ROOT))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_overhead_quick(overhead, tmp_path, capsys):
    out = tmp_path / "o.json"
    # --run-timeout 0: leave pytest's own faulthandler/timeout watchdog in charge.
    assert overhead.main(["--quick", "--run-timeout", "0", "--out", str(out)]) == 0

    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["settings"]["evals"] == overhead.QUICK_EVALS
    assert doc["settings"]["repeats"] == 1
    assert doc["machine"]["cpu_count"] >= 1
    assert set(doc["configurations"]) == set(overhead.CONFIGS)
    for name in overhead.CONFIGS:
        conf = doc["configurations"][name]
        assert conf["median_evals_per_s"] > 0, name
        assert math.isfinite(conf["ratio_to_pycma_loop"]), name
        assert len(conf["repeats"]) == 1, name
        run = conf["repeats"][0]
        assert run["evals_per_s"] > 0, name
        assert run["f_evals"] >= overhead.QUICK_EVALS, name
    assert doc["configurations"]["pycma_loop"]["ratio_to_pycma_loop"] == pytest.approx(1.0)

    table = capsys.readouterr().out
    for name in overhead.CONFIGS:
        assert name in table
