"""The library's error tree.

Every error raised on purpose by glompo_like derives from :class:`GlompoError`, so
``except GlompoError`` catches them all.  Configuration errors also derive from the
built-in type a user would expect (``ValueError`` or ``TypeError``).
"""

from __future__ import annotations

__all__ = [
    "GlompoError",
    "ConfigError",
    "ConfigTypeError",
    "TaskNotPicklableError",
    "EvaluationError",
    "BrokenTaskError",
    "ContractError",
    "OptimizerCrashed",
    "WorkerTerminated",
    "CheckpointError",
]


class GlompoError(Exception):
    """Root of every error raised by glompo_like."""


class ConfigError(GlompoError, ValueError):
    """A configuration value is invalid.  Raised at construction; nothing is started.

    The message names the argument and says how to fix it.
    """


class ConfigTypeError(GlompoError, TypeError):
    """A configuration argument has the wrong type (e.g. a task that is not callable)."""


class TaskNotPicklableError(ConfigError):
    """The task cannot be sent to a process backend."""


class EvaluationError(GlompoError):
    """An evaluation of the task failed and ``on_error="raise"`` was chosen.

    The original exception (with its remote traceback) is the ``__cause__``.
    """


class BrokenTaskError(EvaluationError):
    """The first evaluations of a run all failed: the task is most likely broken (a typo,
    a missing file, a wrong argument), and the run stopped instead of spending its budget.

    ``first_error`` holds the first failure's message and traceback, ``n_failed`` how many
    evaluations had failed; the threshold is the manager's ``fail_fast`` setting.
    """

    def __init__(self, message: str, *, first_error: str | None = None, n_failed: int = 0):
        super().__init__(message)
        self.first_error = first_error
        self.n_failed = n_failed


class ContractError(GlompoError):
    """An optimizer broke the optimizer contract (see
    :class:`~glompo_like.optimizers.BaseOptimizer`): e.g. ``ask()`` returned points of the
    wrong shape, NaN or infinite points, or points outside the bounds.  The message names
    the rule.  In a run, that optimizer ends as ``failed`` and the others go on."""


class OptimizerCrashed(GlompoError):
    """An optimizer (or the process running it) died unexpectedly.

    ``exitcode`` is the process exit code (negative: killed by that signal) or ``None``
    for an exception raised inside the optimizer, in which case the original exception is
    the ``__cause__``.
    """

    def __init__(self, message: str, *, opt_id: int | None = None, exitcode: int | None = None):
        super().__init__(message)
        self.opt_id = opt_id
        self.exitcode = exitcode


class WorkerTerminated(GlompoError):
    """A Level 2 worker process died while running an evaluation."""

    def __init__(self, message: str, *, exitcode: int | None = None):
        super().__init__(message)
        self.exitcode = exitcode


class CheckpointError(GlompoError):
    """A checkpoint could not be written or is not a valid checkpoint for this version."""
