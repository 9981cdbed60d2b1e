"""The run summary file (``summary.yml``): settings, counters, result, end reason."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_summary", "resource_use", "describe_run", "run_summary"]


def _text(s: str) -> str:
    """``s`` as text that encodes to UTF-8: a path with bytes that are not UTF-8 (legal on
    POSIX; Python keeps them as lone surrogates) shows them as ``\\xNN`` escapes."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return s


def _plain(obj: Any) -> Any:
    if isinstance(obj, str):
        return _text(obj)
    if isinstance(obj, dict):
        return {_text(str(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    if obj is None or isinstance(obj, (int, float, bool)):
        return obj
    return _text(str(obj))


def write_summary(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write ``data`` as YAML (PyYAML if installed, else JSON, which is valid YAML),
    atomically.  The rows of ``optimizers`` (one per optimizer: thousands in a long run)
    are written one line each, as JSON mappings (valid YAML), as they go: PyYAML would
    build the whole table in memory first (20 MB for 4,000 optimizers)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        import yaml
    except ImportError:
        tmp.write_text(json.dumps(_plain(data), indent=2), encoding="utf-8")
    else:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the C one is ~10x faster
        with open(tmp, "w", encoding="utf-8") as f:
            for key, value in data.items():
                if key == "optimizers" and isinstance(value, list) and value:
                    f.write("optimizers:\n")
                    for row in value:
                        f.write("- " + json.dumps(_plain(row)) + "\n")
                else:
                    yaml.dump({key: _plain(value)}, f, Dumper=dumper, sort_keys=False, default_flow_style=False)
    os.replace(tmp, path)


def resource_use() -> dict[str, Any]:
    """CPU time and peak memory of this process and of its finished children."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    out: dict[str, Any] = {
        "manager_cpu_s": me.ru_utime + me.ru_stime,
        "manager_max_rss_mb": me.ru_maxrss / 1024,
        "children_cpu_s": kids.ru_utime + kids.ru_stime,
        "children_max_rss_mb": kids.ru_maxrss / 1024,
    }
    try:
        import psutil

        out["manager_rss_mb_now"] = psutil.Process().memory_info().rss / 2**20
        out["cpu_count"] = psutil.cpu_count()
    except Exception:  # resource use is informative only
        pass
    return out


def describe_run(settings: Any, plan: Any, entropy: int) -> dict[str, Any]:
    """The summary's ``settings`` section: every shown setting, the seed's entropy and the
    execution plan with its reasons."""
    out = settings.describe()
    out["seed_entropy"] = entropy
    out["plan"] = None if plan is None else plan.describe()
    return out


def run_summary(settings: dict[str, Any], result: Any, ledger: Any,
                warnings: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The whole summary of a finished run (``warnings``: what went wrong without ending
    it, by topic, e.g. ``{"checkpoints": [...]}``)."""
    return {
        "settings": settings,
        "result": {"fx": None if not np.isfinite(result.fx) else result.fx,
                   "x": None if result.x is None else result.x.tolist(), "origin": dict(result.origin),
                   "fx_std": result.fx_std, "n_samples": result.n_samples},
        "stats": dict(result.stats),
        "resources": resource_use(),
        "optimizers": ledger.optimizers_table(),
        "warnings": {k: list(v) for k, v in (warnings or {}).items() if v},
    }
