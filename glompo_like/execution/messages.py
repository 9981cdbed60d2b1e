"""Messages between the manager and its runners: small frozen dataclasses.

Runner → manager: :class:`Evaluated` (one per generation), :class:`StateReply`, and exactly
one final message — :class:`Converged`, :class:`Stopped` or :class:`Crashed` — after which
the runner closes its end of the pipe.

Manager → runner: :class:`Ack`, :class:`Stop`, :class:`Inject`, :class:`RequestState`.

Between optimizers (process backends): a runner process that ended its optimizer cleanly
waits for :class:`Launch` (run the next optimizer in this process) or :class:`Retire`
(exit), and ignores anything else (commands for the optimizer that has just ended).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evaluation.core import EvalBatch

__all__ = [
    "Evaluated",
    "Converged",
    "Stopped",
    "Crashed",
    "StateReply",
    "EvalStarted",
    "Ack",
    "Stop",
    "Inject",
    "RequestState",
    "Resume",
    "Launch",
    "Retire",
    "FINAL_MESSAGES",
]


# ---------------------------------------------------------------- runner -> manager
@dataclass(frozen=True)
class Evaluated:
    """Evaluations of ``n_generations`` generations (usually one), the last of which is
    number ``generation``; rows in the order they were evaluated."""

    opt_id: int
    generation: int
    batch: EvalBatch
    n_generations: int = 1


@dataclass(frozen=True)
class Converged:
    """The optimizer stopped by itself (its ``stop()`` returned reasons)."""

    opt_id: int
    reasons: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stopped:
    """The runner obeyed a :class:`Stop`, or gave up: ``failed`` when every evaluation of
    its last generations failed."""

    opt_id: int
    reason: str = ""
    failed: bool = False


@dataclass(frozen=True)
class Crashed:
    """The optimizer raised.  ``exc_pickle`` is the tblib-pickled exception, if picklable."""

    opt_id: int
    message: str
    traceback: str
    exc_pickle: bytes | None = None


@dataclass(frozen=True)
class EvalStarted:
    """Sent before each evaluation when ``task_timeout`` is set and the runner evaluates
    in its own process: the manager kills the process if the deadline passes."""

    opt_id: int
    x: np.ndarray
    t_wall: float


@dataclass(frozen=True)
class StateReply:
    """An optimizer's state for a checkpoint (``None``: it has none to give, and
    ``problem`` says why when that is not by design)."""

    opt_id: int
    generation: int
    state: dict[str, Any] | None
    problem: str | None = None


FINAL_MESSAGES = (Converged, Stopped, Crashed)


# ---------------------------------------------------------------- manager -> runner
@dataclass(frozen=True)
class Ack:
    """Flow control: the runner may start generations up to number ``until``."""

    until: int


@dataclass(frozen=True)
class Stop:
    reason: str = ""


@dataclass(frozen=True)
class Inject:
    x: np.ndarray
    fx: float


@dataclass(frozen=True)
class RequestState:
    """Send your state at your next clean point (between tell and ask), then pause."""


@dataclass(frozen=True)
class Resume:
    """Go on after a pause for a checkpoint."""


@dataclass(frozen=True)
class Launch:
    """Run this optimizer in the waiting runner process (``spec.task_bytes`` is ``None``:
    the process keeps the task it was started with)."""

    spec: Any  # a RunnerSpec


@dataclass(frozen=True)
class Retire:
    """A waiting runner process is not needed any more: exit."""
