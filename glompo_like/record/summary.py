"""The run summary file (``summary.yml``): settings, counters, result, end reason."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_summary"]


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def write_summary(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write ``data`` as YAML (PyYAML if installed, else JSON, which is valid YAML),
    atomically."""
    path = Path(path)
    plain = _plain(data)
    try:
        import yaml

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the C one is ~10x faster
        text = yaml.dump(plain, Dumper=dumper, sort_keys=False, default_flow_style=False)
    except ImportError:
        text = json.dumps(plain, indent=2)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
