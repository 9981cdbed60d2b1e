"""Per-optimizer print streams: what a task or optimizer prints goes to its own files,
``<working_dir>/prints/opt_<id>.out`` and ``.err``.

- In an optimizer *process* the file descriptors 1 and 2 are redirected, which also
  catches output from C extensions and from programs the task starts (and Level 2 worker
  processes started later inherit them).
- For optimizer *threads* the manager installs, for the duration of the run only, a
  ``sys.stdout``/``sys.stderr`` that routes each write by the writing thread: a runner
  thread's (and its Level 2 threads') prints go to its files, everything else passes
  through unchanged.  The original streams are restored when the run ends.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import IO, Any

__all__ = ["redirect_process", "ThreadRoutedStreams", "stream_paths"]

_local = threading.local()


def stream_paths(directory: str | os.PathLike, opt_id: int) -> tuple[Path, Path]:
    d = Path(directory)
    return d / f"opt_{opt_id}.out", d / f"opt_{opt_id}.err"


def redirect_process(directory: str | os.PathLike, opt_id: int) -> None:
    """In an optimizer process: send fds 1 and 2 to its files."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, path in zip((1, 2), stream_paths(directory, opt_id), strict=True):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    # New Python streams on the redirected descriptors, line-buffered: the inherited ones
    # may not write to fds 1/2 at all (a forked child of Jupyter or of pytest's capture).
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


class _Router:
    """A text stream that writes to the current runner thread's file, if it has one."""

    def __init__(self, original: IO[str], which: int) -> None:
        self._original = original
        self._which = which

    def _target(self) -> IO[str]:
        files = getattr(_local, "files", None)
        return self._original if files is None else files[self._which]

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno ...
        return getattr(self._original, name)


class ThreadRoutedStreams:
    """Install routing ``sys.stdout``/``sys.stderr`` for a run's runner threads."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self._saved: tuple[IO[str], IO[str]] | None = None

    def __enter__(self) -> ThreadRoutedStreams:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Router(sys.stdout, 0)  # type: ignore[assignment]
        sys.stderr = _Router(sys.stderr, 1)  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None

    def attach(self, opt_id: int) -> list[IO[str]]:
        """Called in a runner thread: route this thread's prints to its files."""
        out, err = stream_paths(self.directory, opt_id)
        files: list[IO[str]] = [open(out, "a", buffering=1), open(err, "a", buffering=1)]
        _local.files = files
        return files

    @staticmethod
    def detach(files: list[IO[str]]) -> None:
        _local.files = None
        for f in files:
            f.close()
