"""Composable yes/no policies (hunters and checkers) with readable reasons.

A condition is called with a :class:`~glompo_like.record.view.RunView` (and, for hunters, the
ids of the hunting and the hunted optimizer) and returns a :class:`Decision`: truthy when it
fires, with a ``reason`` that says why.  Conditions compose with ``&`` and ``|`` (evaluated
left to right, short-circuiting like Python's ``and``/``or``), and ``str()`` shows the
expression with each part's settings and, after a call, its last outcome.

For type checkers a condition is generic in its kind: checkers are ``Condition[Literal["checker"]]``
(:data:`Checker`), hunters ``Condition[Literal["hunter"]]`` (:data:`Hunter`), so ``a | b`` of two
checkers is a checker and mixing a checker with a hunter is a type error (as it is at run time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

__all__ = ["Decision", "Condition", "AllOf", "AnyOf", "Checker", "Hunter"]

K = TypeVar("K", bound=str)  # the kind: Literal["checker"] or Literal["hunter"]


@dataclass(frozen=True)
class Decision:
    """The outcome of a condition: ``fired`` and a human-readable ``reason``."""

    fired: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.fired


class Condition(ABC, Generic[K]):
    """Base of hunters and checkers.

    Subclasses implement ``_check(*args) -> bool | Decision`` and ``_settings()``.  The
    ``kind`` class attribute ("hunter" or "checker") stops the two families being mixed.
    """

    kind: str = "condition"

    def __init__(self) -> None:
        self.last: Decision | None = None

    def __call__(self, *args: Any) -> Decision:
        out = self._check(*args)
        if not isinstance(out, Decision):
            out = Decision(bool(out), self._reason(bool(out), *args))
        self.last = out
        return out

    @abstractmethod
    def _check(self, *args: Any) -> bool | Decision: ...

    def _settings(self) -> str:
        return ""

    def _reason(self, fired: bool, *args: Any) -> str:
        return f"{self._label()} {'met' if fired else 'not met'}"

    def _label(self) -> str:
        return f"{type(self).__name__}({self._settings()})"

    def __and__(self, other: Condition[K]) -> AllOf[K]:
        return AllOf(self, _check_same_kind(self, other, "&"))

    def __or__(self, other: Condition[K]) -> AnyOf[K]:
        return AnyOf(self, _check_same_kind(self, other, "|"))

    def __str__(self) -> str:
        if self.last is None:
            return self._label()
        return f"{self._label()} [{'T' if self.last.fired else 'F'}]"

    def __repr__(self) -> str:
        return self._label()

    def next_check_in(self, *args: Any) -> float | None:
        """Time-based conditions return the seconds until they may fire (see MaxSeconds)."""
        return None

    # Checkpoint support: most conditions are pure; stateful ones override these.
    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        return None


def _check_same_kind(a: Condition[K], b: Any, op: str) -> Condition[K]:
    if not isinstance(b, Condition):
        raise TypeError(f"cannot combine {a!r} {op} {b!r}: both sides must be {a.kind}s")
    if a.kind != b.kind:
        raise TypeError(f"cannot combine a {a.kind} with a {b.kind} ({a!r} {op} {b!r})")
    return b


class _Compound(Condition[K]):
    symbol = "?"
    parts: tuple[Condition[K], ...]

    def __init__(self, *parts: Condition[K]) -> None:
        super().__init__()
        flat: list[Condition[K]] = []
        for p in parts:
            flat.extend(p.parts if type(p) is type(self) else [p])  # type: ignore[attr-defined]
        self.parts = tuple(flat)
        self.kind = self.parts[0].kind

    def _label(self) -> str:
        return "(" + f" {self.symbol} ".join(p._label() for p in self.parts) + ")"

    def __str__(self) -> str:
        return "(" + f" {self.symbol} ".join(str(p) for p in self.parts) + ")"

    def get_state(self) -> dict[str, Any]:
        return {"parts": [p.get_state() for p in self.parts]}

    def set_state(self, state: dict[str, Any]) -> None:
        for p, s in zip(self.parts, state["parts"], strict=True):
            p.set_state(s)


class AllOf(_Compound[K]):
    """Fires when every part fires (``a & b``)."""

    symbol = "&"

    def _check(self, *args: Any) -> Decision:
        reasons = []
        for i, p in enumerate(self.parts):
            d = p(*args)
            if not d:
                _forget(self.parts[i + 1 :])
                return Decision(False, d.reason)
            reasons.append(d.reason)
        return Decision(True, " and ".join(reasons))


class AnyOf(_Compound[K]):
    """Fires when any part fires (``a | b``)."""

    symbol = "|"

    def _check(self, *args: Any) -> Decision:
        last = Decision(False, "")
        for i, p in enumerate(self.parts):
            last = p(*args)
            if last:
                _forget(self.parts[i + 1 :])
                return last
        return last


def _forget(skipped: tuple[Condition[Any], ...]) -> None:
    """Parts skipped by short-circuiting show no outcome rather than a stale one."""
    for p in skipped:
        p.last = None


def next_check_in(cond: Condition[Any], *args: Any) -> float | None:
    """Seconds until a time-based condition could change its answer (``None``: never by
    the passage of time alone).  The manager uses it to set its wake-up timeout."""
    if isinstance(cond, _Compound):
        times = [t for t in (next_check_in(p, *args) for p in cond.parts) if t is not None]
        return min(times) if times else None
    return cond.next_check_in(*args)


def final_reason(cond: Condition[Any], *args: Any) -> str | None:
    """The reason of the decision that fired last, asked again now, so its numbers are the
    run's final ones (the part of ``a | b`` that fired, or the whole ``a & b``); ``None``
    if it does not fire any more.  The manager calls it once the run has wound down, so the
    end reason and the result agree."""
    if isinstance(cond, AnyOf):
        fired = [p for p in cond.parts if p.last is not None and p.last.fired]
        return final_reason(fired[0], *args) if fired else None
    d = cond(*args)
    return d.reason if d else None


def remaining_evals(cond: Condition[Any], *args: Any) -> int | None:
    """Evaluations before a checker could fire by counting evaluations alone, or ``None``
    if it never does so (e.g. ``TargetCost``).  ``a | b`` ends with the first of its parts
    (the smallest known count); ``a & b`` only when all have fired (the largest).  The
    manager uses it to decide how far optimizers may run ahead of its acknowledgements."""
    if isinstance(cond, _Compound):
        known = [r for r in (remaining_evals(p, *args) for p in cond.parts) if r is not None]
        if not known:
            return None
        return min(known) if isinstance(cond, AnyOf) else max(known)
    fn = getattr(cond, "remaining", None)
    return None if fn is None else int(fn(*args))


#: A checker, or checkers combined with ``&`` and ``|`` (what ``convergence_checker`` takes).
Checker = Condition[Literal["checker"]]
#: A hunter, or hunters combined with ``&`` and ``|`` (what ``killing_conditions`` takes).
Hunter = Condition[Literal["hunter"]]
