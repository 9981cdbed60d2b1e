"""The lives of an optimizer and of a run, as explicit states with legal transitions.

An optimizer::

    RUNNING ──(the manager stops it: hunted, a STOP file, the run ends)──► STOPPING
       │                                                                      │
       └──(its own last word: converged, failed, crashed; or its child died)──┴──► FINISHED

``RUNNING``: it evaluates, and policies see it alive.  ``STOPPING``: its end is decided
(how and why are recorded at once: the first word wins) but its runner has not heard yet,
so it may still use the credit it holds.  ``FINISHED``: it evaluates no more.

A run::

    CREATED ──start_manager()──► RUNNING ──(an end condition)──► ENDING ──► ENDED

A transition that is not drawn above raises :class:`StateError`: it is a bug, never a
user error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import GlompoError

__all__ = ["OptState", "EndKind", "RunState", "EndCause", "RunEnd", "StateError"]


class StateError(GlompoError, RuntimeError):
    """An illegal state transition (a bug in glompo_like: please report it)."""


_M = TypeVar("_M", bound="_Machine")


class _Machine(enum.Enum):
    """An enum whose members know which members may follow them."""

    def can_become(self, new: _Machine) -> bool:
        return new in _NEXT[self]

    def check(self, new: _M, what: str) -> _M:
        """Return ``new`` if ``self -> new`` is legal, else raise :class:`StateError`."""
        if not self.can_become(new):
            raise StateError(f"{what}: illegal transition {self.name} -> {new.name}")
        return new


class OptState(_Machine):
    """Where an optimizer is in its life (see the module docstring)."""

    RUNNING = "running"
    STOPPING = "stopping"
    FINISHED = "finished"


class EndKind(str, enum.Enum):
    """How an optimizer ended; the value is the word in the log and the summary."""

    CONVERGED = "converged"  # its own stopping rule fired
    KILLED = "killed"  # hunted by a better optimizer
    STOPPED = "stopped"  # stopped by the run (its end, a STOP file) or not resumed
    FAILED = "failed"  # every evaluation failed, or it broke the optimizer contract
    CRASHED = "crashed"  # it raised, or its process died
    LOST = "lost"  # its manager stopped heartbeating (several managers, one study)

    def __str__(self) -> str:
        return self.value


class RunState(_Machine):
    """Where a run is in its life (see the module docstring)."""

    CREATED = "created"
    RUNNING = "running"
    ENDING = "ending"
    ENDED = "ended"


_NEXT: dict[_Machine, frozenset[_Machine]] = {
    OptState.RUNNING: frozenset({OptState.STOPPING, OptState.FINISHED}),
    OptState.STOPPING: frozenset({OptState.FINISHED}),
    OptState.FINISHED: frozenset(),
    RunState.CREATED: frozenset({RunState.RUNNING}),
    RunState.RUNNING: frozenset({RunState.ENDING}),
    RunState.ENDING: frozenset({RunState.ENDED}),
    RunState.ENDED: frozenset(),
}


class EndCause(enum.Enum):
    """Why a run ended."""

    CHECKER = "checker"  # the convergence checker fired
    EXHAUSTED = "exhausted"  # nothing runs and the selector starts nothing more
    STOP_FILE = "stop_file"  # a STOP file in the working directory
    CALLBACK = "callback"  # a callback returned StopRun
    INTERRUPTED = "interrupted"  # Ctrl-C (KeyboardInterrupt)
    TERMINATED = "terminated"  # SIGTERM
    FATAL = "fatal"  # a fatal error of the run (broken task, on_error="raise", ...)
    MANAGER_ERROR = "manager_error"  # the manager itself raised
    STUDY = "study"  # the study this manager works on ended (or marked this manager lost)


@dataclass(frozen=True)
class RunEnd:
    """The end of a run: its cause, and the reason in words (the summary's ``end_cond``)."""

    cause: EndCause
    reason: str
    #: the error ``start_manager`` raises once the run has wound down (a fatal error)
    error: BaseException | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.reason
