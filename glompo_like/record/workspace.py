"""A run's working directory: what it holds, and who may write there.

Files (see docs/outputs.rst): ``evaluations.sqlite`` (the log), ``summary.yml``,
``prints/`` (what each optimizer printed), ``checkpoints/`` (unless
``CheckpointingControl(directory=...)`` says otherwise), ``.glompo.lock`` (who runs
there), and the steering files a user drops there (``STOP``, ``STOP_<id>``, ``CHKPT``).

One run owns a working directory at a time.  :class:`Workspace` holds an operating-system
lock on ``.glompo.lock`` (``flock``: released by the kernel when the manager's process
ends, however it ends) for as long as the run goes; the file names the holder (pid, host,
user, start time, command), so a second run is refused with who is in the way.

- :func:`check`, at construction: a directory locked by a live run is refused, and one
  that holds a finished run's log is refused unless ``overwrite=True`` or the run resumes.
- :meth:`Workspace.start`, when the run starts: lock, then, with ``overwrite``, set the
  finished run's files aside (not deleted yet), remove stale steering files, open the log.
- :meth:`Workspace.started`: the run is going, the set-aside files are deleted.
- :meth:`Workspace.undo`: the start failed; the directory is put back as it was found.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import logging
import os
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path

from ..errors import ConfigError
from .ledger import LogWriter, NullLog
from .log import LOG_NAME, EvaluationLog

__all__ = ["check", "Workspace", "WorkspaceBusy", "SUMMARY_NAME", "PRINTS_DIR", "CHECKPOINTS_DIR", "LOCK_NAME",
           "RUN_FILES", "STEERING_FILES"]

log = logging.getLogger("glompo_like.manager")

SUMMARY_NAME = "summary.yml"
PRINTS_DIR = "prints"
CHECKPOINTS_DIR = "checkpoints"
LOCK_NAME = ".glompo.lock"
#: the files of a run that ``overwrite=True`` replaces (with its prints and checkpoints)
RUN_FILES = (LOG_NAME, LOG_NAME + "-wal", LOG_NAME + "-shm", SUMMARY_NAME)
STEERING_FILES = ("STOP", "CHKPT")  # and STOP_<id>

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock (documented)
    fcntl = None  # type: ignore[assignment]


class WorkspaceBusy(ConfigError):
    """The working directory belongs to a run that is still going (its lock is held)."""


def _holder(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return (f"process {info['pid']} of {info['user']} on {info['host']}, running since {since}: "
                f"{info['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its lock file could not be read)"


def _locked_by_other(lock_path: Path) -> bool:
    """Whether a live process holds the lock (try to take it for a moment)."""
    if fcntl is None or not lock_path.exists():
        return False
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # (closing releases a lock taken here)
    return False


def _busy(working_dir: Path) -> WorkspaceBusy:
    return WorkspaceBusy(
        f"working_dir {str(working_dir)!r} is in use by a run that is still going "
        f"({_holder(working_dir / LOCK_NAME)}); wait for it to end, stop it (a STOP file in that "
        "directory), or choose another working_dir"
    )


def _writable_ancestor(path: Path) -> Path | None:
    """The nearest existing directory at or above ``path``, if this process may create
    files in it; else ``None``."""
    p = path.absolute()
    while not p.exists():
        p = p.parent
    return p if p.is_dir() and os.access(p, os.W_OK | os.X_OK) else None


def check(working_dir: Path | None, overwrite: bool, resuming: bool) -> None:
    """At construction: refuse a directory that cannot be written, one a live run holds,
    or one that already holds a run's log (unless told to overwrite it, or this run
    resumes it)."""
    if working_dir is None:
        return
    if _writable_ancestor(working_dir) is None:
        raise ConfigError(f"working_dir {str(working_dir)!r} cannot be written by this process (no "
                          "permission to create files there); choose a directory you can write to")
    if _locked_by_other(working_dir / LOCK_NAME):
        raise _busy(working_dir)
    if not overwrite and not resuming and (working_dir / LOG_NAME).exists():
        raise ConfigError(
            f"working_dir {str(working_dir)!r} already holds a run's evaluation log; choose a "
            "new directory, pass overwrite=True to replace it, or resume that run from a checkpoint"
        )


class Workspace:
    """The working directory of one run (or none: ``directory=None`` gives a
    :class:`~glompo_like.record.ledger.NullLog` and touches nothing)."""

    _locks: list[int] = []  # this process's lock descriptors: closed in forked children

    def __init__(self, directory: Path | None, dim: int) -> None:
        self.directory = directory
        self.dim = dim
        self._fd: int | None = None
        self._created_dir = False
        self._created: list[Path] = []  # files and folders this run created (undone on a failed start)
        self._aside: Path | None = None  # a finished run's files, set aside by overwrite

    def start(self, overwrite: bool, run_id: str | None = None) -> LogWriter:
        """Take the directory for this run and open its log (see the module docstring)."""
        d = self.directory
        if d is None:
            return NullLog()
        self._created_dir = not d.exists()
        d.mkdir(parents=True, exist_ok=True)
        self._lock()
        if overwrite:
            self._set_aside([*RUN_FILES, PRINTS_DIR, CHECKPOINTS_DIR])
        stale = [p.name for p in d.iterdir() if p.name in STEERING_FILES or p.name.startswith("STOP_")]
        if stale:
            log.info("removing steering files left from before the run started: %s", stale)
            self._set_aside(stale)
        for name in (LOG_NAME, LOG_NAME + "-wal", LOG_NAME + "-shm"):
            if not (d / name).exists():
                self._created.append(d / name)
        if not (d / PRINTS_DIR).exists():
            self._created.append(d / PRINTS_DIR)
        return EvaluationLog(d / LOG_NAME, self.dim, run_id)

    @property
    def _dir(self) -> Path:
        """The directory (only asked for when the run has one)."""
        assert self.directory is not None
        return self.directory

    def _lock(self) -> None:
        if fcntl is None:
            return
        path = self._dir / LOCK_NAME
        if not path.exists():
            self._created.append(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _busy(self._dir) from None
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "user": _user(), "started": time.time(),
                "command": " ".join(sys.argv) or sys.executable}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        Workspace._locks.append(fd)

    def _set_aside(self, names: list[str]) -> None:
        present = [n for n in names if (self._dir / n).exists()]
        if not present:
            return
        if self._aside is None:
            self._aside = self._dir / f".replaced-{uuid.uuid4().hex[:12]}"
            self._aside.mkdir()
        for name in present:
            os.replace(self._dir / name, self._aside / name)

    def started(self) -> None:
        """The run is going: what ``overwrite`` set aside is deleted now."""
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None
        self._created.clear()

    def undo(self) -> None:
        """The start failed: remove what this run created, put back what it set aside,
        and let the directory go."""
        for path in reversed(self._created):
            with contextlib.suppress(OSError):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        if self._aside is not None:
            for item in self._aside.iterdir():
                with contextlib.suppress(OSError):
                    os.replace(item, self._dir / item.name)
            with contextlib.suppress(OSError):
                self._aside.rmdir()
            self._aside = None
        self.release()
        if self._created_dir:
            with contextlib.suppress(OSError):
                self._dir.rmdir()  # only if it is empty again
        self._created.clear()

    def release(self) -> None:
        """Let the directory go (the lock file stays; it names the last holder)."""
        if self._fd is not None:
            with contextlib.suppress(ValueError):
                Workspace._locks.remove(self._fd)
            os.close(self._fd)
            self._fd = None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


def _close_inherited_locks() -> None:
    """A forked child must not keep its parent's working directory locked."""
    for fd in Workspace._locks:
        with contextlib.suppress(OSError):
            os.close(fd)
    Workspace._locks = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)
