"""Checkpoints: an explicit, versioned, self-checking record of a run, written atomically.

File layout::

    b"GLOMPOCK"  (8 bytes, magic)
    version      (2 bytes, big-endian unsigned)
    sha256       (32 bytes, of the payload)
    payload      (pickle of a plain dict: see glompo_like.control.checkpointer)

A file that is not a checkpoint, was cut short, was corrupted, or was written by a newer
format version is refused with :class:`~glompo_like.errors.CheckpointError` naming the
problem; nothing is half-loaded.

.. warning::
   Loading a checkpoint unpickles it, which can run arbitrary code.  Only load files you
   trust.  The checksum protects against corruption, not against a hostile file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError, ConfigTypeError

__all__ = ["CheckpointingControl", "write_checkpoint", "read_checkpoint", "FORMAT_VERSION"]

MAGIC = b"GLOMPOCK"
FORMAT_VERSION = 2
#: formats this version reads (format 1: glompo_like 0.1, before settings were defined once)
OLDEST_FORMAT = 2
_HEADER = struct.Struct(">8sH32s")


@dataclass(frozen=True)
class CheckpointingControl:
    """When and where a run writes checkpoints.

    Parameters
    ----------
    every_evaluations:
        Write one each time the run has done this many more evaluations.
    every_seconds:
        Write one each time this many seconds have passed.
    at_end:
        Write one when the run ends (including Ctrl-C and SIGTERM).
    keep_last:
        Keep only the newest ``keep_last`` checkpoints in ``directory`` (``None``: all).
    directory:
        Where they go; default ``<working_dir>/checkpoints``.
    """

    every_evaluations: int | None = None
    every_seconds: float | None = None
    at_end: bool = True
    keep_last: int | None = 3
    directory: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        for name in ("every_evaluations", "keep_last"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"CheckpointingControl: {name} must be a positive integer or None, got {v!r}")
        v = self.every_seconds
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
            raise ConfigError(f"CheckpointingControl: every_seconds must be a positive number or None, got {v!r}")
        if not isinstance(self.at_end, bool):
            raise ConfigTypeError("CheckpointingControl: at_end must be True or False")


def write_checkpoint(directory: str | os.PathLike, data: dict[str, Any], keep_last: int | None = None) -> Path:
    """Write ``data`` as a new checkpoint file in ``directory`` atomically; rotate old ones."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, hashlib.sha256(payload).digest())
    name = f"checkpoint_{data['manager']['counters'].f_evals:012d}_{time.strftime('%Y%m%dT%H%M%S')}_{time.time_ns() % 10**9:09d}.chk"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".incomplete-", suffix=".chk")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        path = directory / name
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if keep_last is not None:
        for old in sorted(directory.glob("checkpoint_*.chk"))[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def newest_checkpoint(directory: str | os.PathLike) -> Path:
    found = sorted(Path(directory).glob("checkpoint_*.chk"))
    if not found:
        raise CheckpointError(f"no checkpoint in {str(directory)!r}")
    return found[-1]


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and verify a checkpoint (see the module docstring); returns its data dict."""
    path = Path(path)
    if path.is_dir():
        path = newest_checkpoint(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {e}") from e
    if len(raw) < _HEADER.size or raw[:8] != MAGIC:
        raise CheckpointError(f"{str(path)!r} is not a glompo_like checkpoint (wrong magic bytes)")
    _, version, digest = _HEADER.unpack_from(raw)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} was written in checkpoint format {version}; this version of "
            f"glompo_like reads up to format {FORMAT_VERSION}: upgrade glompo_like"
        )
    if version < OLDEST_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} was written in checkpoint format {version} by glompo_like 0.1; this "
            f"version reads formats {OLDEST_FORMAT} to {FORMAT_VERSION}: finish that run with glompo_like 0.1"
        )
    payload = raw[_HEADER.size:]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{str(path)!r} is truncated or corrupted (checksum mismatch)")
    try:
        data = pickle.loads(payload)
    except Exception as e:  # e.g. a class that no longer exists
        raise CheckpointError(f"{str(path)!r} could not be unpickled: {type(e).__name__}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != "glompo_like-checkpoint":
        raise CheckpointError(f"{str(path)!r} does not hold a glompo_like run")
    return data
