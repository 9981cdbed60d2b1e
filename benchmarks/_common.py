"""Helpers every benchmark script shares: machine facts and JSON conversion."""

from __future__ import annotations

import multiprocessing
import os
import platform
from typing import Any

import numpy as np

__all__ = ["cpu_model", "loadavg", "machine_info", "json_default"]


def cpu_model() -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo``, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # not available on this platform
        return None


def machine_info(**versions: str) -> dict[str, Any]:
    """Facts about this machine and Python; ``versions`` adds package versions by name."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = None
    import glompo_like

    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": available,
        "cpu_model": cpu_model(),
        "loadavg_at_start": loadavg(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        **versions,
        "glompo_like": glompo_like.__version__,
        "platform": platform.platform(),
        # without fixing the start method (that would stop anyone else from setting it)
        "mp_start_method": multiprocessing.get_start_method(allow_none=True)
        or multiprocessing.get_all_start_methods()[0],
    }


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for NumPy scalars and arrays (anything else: ``str``)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
