"""Memory sizes (``memory_limit="2GiB"``) and the resident memory of a worker's process tree.

Why resident memory watched with psutil, and not ``RLIMIT_AS``: an address-space limit
counts memory that is reserved, not used: CUDA maps tens of GiB of virtual memory at start,
BLAS and every thread reserve large stacks and arenas, files are memory-mapped.  A limit
low enough to matter would make such processes fail at import, and a failing allocation
inside the task raises ``MemoryError`` (a failed evaluation, indistinguishable from a
bug) or kills a C extension outright.  Resident memory (RSS) is what the machine runs out
of; the pool samples it for the worker and every process the task started, every
:data:`~glompo_like.evaluation.processes.ProcessPool.MEMORY_CHECK` seconds while an
evaluation runs, and kills the process group when the sum passes the limit.  The cost:
a spike shorter than the sampling period can pass unseen (the kernel's OOM killer is then
the backstop, and the evaluation is logged as ``crashed``).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError, ConfigTypeError

__all__ = ["parse_size", "format_size", "tree_rss"]

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(value: Any, name: str = "memory_limit", owner: str = "GloMPOManager") -> int | None:
    """``None``, a number of bytes, or a string with a unit (``"512MiB"``, ``"2GiB"``,
    ``"1.5GB"``; binary units are powers of 1024, decimal ones of 1000) → bytes.

    >>> parse_size("2GiB"), parse_size("1.5 GB"), parse_size(2**24)
    (2147483648, 1500000000, 16777216)
    """
    if value is None:
        return None
    fix = f"give a size such as {name}='2GiB' or '512MiB' (or a number of bytes), or None for no limit"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigTypeError(f"{owner}: {name} must be a size, got {type(value).__name__}; {fix}")
    if isinstance(value, str):
        m = _SIZE.fullmatch(value)
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS:
            raise ConfigError(f"{owner}: {name}={value!r} is not a size; units are B, KB, MB, GB, TB "
                              f"(powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024); {fix}")
        n = float(m.group(1)) * _UNITS[unit]
    else:
        n = float(value)
    if not n >= 1 << 20:
        raise ConfigError(f"{owner}: {name}={value!r} is below 1 MiB, less than a Python process needs; {fix}")
    return int(n)


def format_size(n: float) -> str:
    """Bytes as a short text with a binary unit (``"1.5 GiB"``)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def tree_rss(proc: Any) -> int:
    """Resident memory of the process ``proc`` (a :class:`psutil.Process`) and all its
    descendants, in bytes (processes that vanish meanwhile count 0)."""
    import psutil

    total = 0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in family:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total
