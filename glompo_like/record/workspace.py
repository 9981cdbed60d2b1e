"""A run's working directory: what it holds, and who may write there.

Files (see docs/outputs.rst): ``evaluations.sqlite`` (the log), ``summary.yml``,
``prints/`` (what each optimizer printed), ``checkpoints/`` (unless
``CheckpointingControl(directory=...)`` says otherwise), and the steering files a user
drops there (``STOP``, ``STOP_<id>``, ``CHKPT``).

:func:`check` runs at construction (a directory that holds a finished run's log is refused
unless ``overwrite=True`` or the run resumes); :func:`open_log` at the start of the run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .ledger import LogWriter, NullLog
from .log import LOG_NAME, EvaluationLog

__all__ = ["check", "open_log", "SUMMARY_NAME", "PRINTS_DIR", "CHECKPOINTS_DIR", "RUN_FILES"]

log = logging.getLogger("glompo_like.manager")

SUMMARY_NAME = "summary.yml"
PRINTS_DIR = "prints"
CHECKPOINTS_DIR = "checkpoints"
#: the files of a run that ``overwrite=True`` replaces
RUN_FILES = (LOG_NAME, LOG_NAME + "-wal", LOG_NAME + "-shm", SUMMARY_NAME)


def check(working_dir: Path | None, overwrite: bool, resuming: bool) -> None:
    """Refuse a directory that already holds a run's log (unless told to overwrite it, or
    this run resumes it)."""
    from ..errors import ConfigError

    if working_dir is None or overwrite or resuming:
        return
    if (working_dir / LOG_NAME).exists():
        raise ConfigError(
            f"working_dir {str(working_dir)!r} already holds a run's evaluation log; choose a "
            "new directory, pass overwrite=True to replace it, or resume that run from a checkpoint"
        )


def open_log(working_dir: Path | None, dim: int, overwrite: bool) -> LogWriter:
    """The run's log: an :class:`~glompo_like.record.log.EvaluationLog` in ``working_dir``
    (created; an earlier run's files removed first with ``overwrite``), or a
    :class:`~glompo_like.record.ledger.NullLog` without one."""
    if working_dir is None:
        return NullLog()
    working_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in RUN_FILES:
            (working_dir / name).unlink(missing_ok=True)
    return EvaluationLog(working_dir / LOG_NAME, dim)
