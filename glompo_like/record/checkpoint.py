"""Checkpoints: an explicit, versioned, self-checking record of a run, written atomically.

File layout::

    b"GLOMPOCK"  (8 bytes, magic)
    version      (2 bytes, big-endian unsigned)
    sha256       (32 bytes, of the payload)
    payload      (pickle of a plain dict: see glompo_like.control.checkpointer)

Each run has an identity (``run_id``, kept when it is resumed) and numbers its checkpoints
1, 2, 3, ...; files are named ``checkpoint_<run_id>_<seq>.chk``, so several runs can share
a directory without one rotating (``keep_last``) or resuming another's files.  Loading a
directory picks a run (see :func:`newest_checkpoint`) and its newest file that reads
correctly, falling back to the one before if the newest was cut short.  A writer killed
mid-write leaves a ``.incomplete-<pid>-*`` file, removed when the next run checkpoints there.

A file that is not a checkpoint, was cut short, was corrupted, or was written by a newer
format version is refused with :class:`~glompo_like.errors.CheckpointError` naming the
problem; nothing is half-loaded.

.. warning::
   Loading a checkpoint unpickles it, which can run arbitrary code.  Only load files you
   trust.  The checksum protects against corruption, not against a hostile file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError, ConfigTypeError

__all__ = ["CheckpointingControl", "write_checkpoint", "read_checkpoint", "newest_checkpoint", "run_checkpoints",
           "remove_partial_files", "checkpoint_name", "FORMAT_VERSION"]

log = logging.getLogger("glompo_like.manager")

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
        Keep only this run's newest ``keep_last`` checkpoints (``None``: all).
    directory:
        Where they go; default ``<working_dir>/checkpoints``.
    timeout:
        Seconds to wait for the running optimizers to reach a clean point (between two
        generations) and hand over their state.  One still busy then (a long evaluation) is
        left out of this checkpoint, with a warning: a run resumed from it starts another
        optimizer in its place.
    """

    every_evaluations: int | None = None
    every_seconds: float | None = None
    at_end: bool = True
    keep_last: int | None = 3
    directory: str | os.PathLike | None = None
    timeout: float = 60.0

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
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise ConfigTypeError(f"CheckpointingControl: timeout must be a number of seconds, got {t!r}")
        if not (0 < t < float("inf")):
            raise ConfigError(f"CheckpointingControl: timeout must be a positive, finite number of seconds, got {t!r}")


_NAME = re.compile(r"^checkpoint_(?P<run>[0-9a-f]{8,32})_(?P<seq>\d{6,})\.chk$")
_PARTIAL = re.compile(r"^\.incomplete-(?P<pid>\d+)-.*\.chk$")


def checkpoint_name(run_id: str, seq: int) -> str:
    """``checkpoint_<run id>_<sequence number>.chk``: a run's files sort by sequence."""
    return f"checkpoint_{run_id}_{seq:06d}.chk"


def run_checkpoints(directory: str | os.PathLike, run_id: str | None = None) -> dict[str, list[tuple[int, Path]]]:
    """The checkpoints in ``directory``, ``{run id: [(sequence number, path), ...]}``
    oldest first (only ``run_id``'s if given)."""
    out: dict[str, list[tuple[int, Path]]] = {}
    directory = Path(directory)
    if not directory.is_dir():
        return out
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and (run_id is None or m["run"] == run_id):
            out.setdefault(m["run"], []).append((int(m["seq"]), p))
    for files in out.values():
        files.sort()
    return out


def remove_partial_files(directory: str | os.PathLike) -> list[Path]:
    """Delete ``.incomplete-*`` files that no live process is writing (left by a writer
    that was killed mid-write); returns them."""
    import psutil

    removed: list[Path] = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for p in directory.iterdir():
        m = _PARTIAL.match(p.name)
        if not m:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or psutil.pid_exists(pid):
            continue  # (possibly) being written right now
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def write_checkpoint(directory: str | os.PathLike, data: dict[str, Any], keep_last: int | None = None) -> Path:
    """Write ``data`` (with its ``run_id`` and ``seq``) as a new checkpoint file in
    ``directory`` atomically (a temporary file, fsync, rename); then keep only this run's
    newest ``keep_last`` (other runs' checkpoints are never touched)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, hashlib.sha256(payload).digest())
    path = directory / checkpoint_name(data["run_id"], data["seq"])
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".incomplete-{os.getpid()}-", suffix=".chk")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if keep_last is not None:
        mine = run_checkpoints(directory, data["run_id"]).get(data["run_id"], [])
        for _, old in mine[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def newest_checkpoint(directory: str | os.PathLike, run_id: str | None = None) -> Path:
    """The newest *valid* checkpoint of a run in ``directory``: ``run_id``'s if given,
    else the run whose latest checkpoint was written last.  A newest file that cannot be
    read (cut short, corrupted) is skipped, with a warning, for the one before it."""
    runs = run_checkpoints(directory, run_id)
    if not runs:
        who = f" of run {run_id}" if run_id else ""
        raise CheckpointError(f"no checkpoint{who} in {str(directory)!r}")
    files = runs[run_id] if run_id else max(runs.values(), key=lambda fs: fs[-1][1].stat().st_mtime)
    problems = []
    for _, path in reversed(files):
        try:
            read_checkpoint(path)
        except CheckpointError as e:
            problems.append(str(e))
            log.warning("checkpoint %s cannot be used (%s); falling back to the one before it", path, e)
            continue
        return path
    raise CheckpointError(f"no valid checkpoint in {str(directory)!r}: " + "; ".join(problems))


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
