"""What defines a study: the managers that join it must agree on it."""

from __future__ import annotations

from typing import Any

__all__ = ["fingerprint", "differences", "task_name"]


def task_name(task: Any) -> str:
    """``module.qualname`` of a function, or of the class of a callable object."""
    named = task if hasattr(task, "__qualname__") else type(task)
    return f"{getattr(named, '__module__', '?')}.{getattr(named, '__qualname__', type(task).__name__)}"


def fingerprint(settings: Any) -> dict[str, Any]:
    """The settings of a run that every manager of a study must share (JSON-able): the
    task's name, the dimension and bounds, the evaluation model (``samples``,
    ``aggregate``), the convergence checker (the study's end) and ``study_timeout`` (when a
    manager is lost)."""
    return {
        "task": task_name(settings.task),
        "dim": settings.dim,
        "bounds": [[float(lo), float(hi)] for lo, hi in settings.bounds.as_pairs()],
        "samples": settings.samples,
        "aggregate": settings.aggregate,
        "convergence_checker": repr(settings.convergence_checker),  # (its settings, not its state)
        "study_timeout": float(settings.study_timeout),
    }


def differences(study: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """What differs between the study's fingerprint and a joining manager's, in words."""
    out = []
    for key in sorted(set(study) | set(mine)):
        if study.get(key) != mine.get(key):
            out.append(f"{key}: the study has {study.get(key)!r}, this manager {mine.get(key)!r}")
    return out
