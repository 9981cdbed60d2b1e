"""Checks of user-given values, one definition each, with one rule for their errors.

A value of the wrong type raises :class:`~glompo_like.errors.ConfigTypeError` (a
``TypeError``); a value of the right type but outside what is allowed raises
:class:`~glompo_like.errors.ConfigError` (a ``ValueError``).  Both name the argument (and its
owner, e.g. ``"MaxFuncCalls: max_evals ..."``) and say how to fix it, e.g. with an example.

Every check returns the value normalised (a Python ``int``, ``float`` or ``bool``), so
callers can store what it returns.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real
from typing import Any, Literal, overload

import numpy as np

from .errors import ConfigError, ConfigTypeError

__all__ = ["integer", "number", "boolean", "one_of", "is_number", "describe"]


def describe(owner: str | None, name: str) -> str:
    """How a message names an argument: ``"owner: name"`` or ``"name"``."""
    return f"{owner}: {name}" if owner else name


def _example(name: str, example: Any) -> str:
    return "" if example is None else f"; e.g. {name}={example!r}"


def is_number(value: Any) -> bool:
    """A finite real number (not a bool)."""
    if not isinstance(value, Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int too large for a float
        return False


@overload
def integer(value: Any, name: str, *, owner: str | None = ..., minimum: int | None = ...,
            maximum: int | None = ..., example: Any = ..., none_ok: Literal[False] = ...,
            fix: str = ...) -> int: ...
@overload
def integer(value: Any, name: str, *, owner: str | None = ..., minimum: int | None = ...,
            maximum: int | None = ..., example: Any = ..., none_ok: bool,
            fix: str = ...) -> int | None: ...
def integer(value: Any, name: str, *, owner: str | None = None, minimum: int | None = None,
            maximum: int | None = None, example: Any = None, none_ok: bool = False,
            fix: str = "") -> int | None:
    """An integer (``numpy`` integers too, not bools) in ``[minimum, maximum]``.
    ``none_ok``: ``None`` is allowed and returned as it is.  ``fix`` is added to the
    message."""
    if value is None and none_ok:
        return None
    parts = ([] if minimum is None else [f">= {minimum}"]) + ([] if maximum is None else [f"<= {maximum}"])
    what = ("None or " if none_ok else "") + "an integer" + (" " + " and ".join(parts) if parts else "")
    tail = _example(name, example) + (f". {fix}" if fix else "")
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigTypeError(f"{describe(owner, name)} must be {what}, got {type(value).__name__} "
                              f"{value!r}{tail}")
    if (minimum is not None and int(value) < minimum) or (maximum is not None and int(value) > maximum):
        raise ConfigError(f"{describe(owner, name)} must be {what}, got {value!r}{tail}")
    return int(value)


@overload
def number(value: Any, name: str, *, owner: str | None = ..., low: float | None = ...,
           high: float | None = ..., low_ok: bool = ..., high_ok: bool = ...,
           example: Any = ..., none_ok: Literal[False] = ..., unit: str = ..., fix: str = ...) -> float: ...
@overload
def number(value: Any, name: str, *, owner: str | None = ..., low: float | None = ...,
           high: float | None = ..., low_ok: bool = ..., high_ok: bool = ...,
           example: Any = ..., none_ok: bool, unit: str = ..., fix: str = ...) -> float | None: ...
def number(value: Any, name: str, *, owner: str | None = None, low: float | None = None,
           high: float | None = None, low_ok: bool = True, high_ok: bool = True,
           example: Any = None, none_ok: bool = False, unit: str = "", fix: str = "") -> float | None:
    """A finite real number (not a bool) in the interval from ``low`` to ``high``
    (``low_ok``/``high_ok``: the end is included).  ``unit`` (e.g. ``"seconds"``) is named
    in the message."""
    if value is None and none_ok:
        return None
    parts = ([] if low is None else [f"{'>=' if low_ok else '>'} {low:g}"]) + (
        [] if high is None else [f"{'<=' if high_ok else '<'} {high:g}"])
    what = (("None or " if none_ok else "") + "a finite number" + (f" of {unit}" if unit else "")
            + (" " + " and ".join(parts) if parts else ""))
    tail = _example(name, example) + (f". {fix}" if fix else "")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigTypeError(f"{describe(owner, name)} must be {what}, got {type(value).__name__} "
                              f"{value!r}{tail}")
    try:
        f = float(value)
    except OverflowError:  # an int too large for a float
        f = math.inf
    ok = math.isfinite(f)
    if ok and low is not None:
        ok = f >= low if low_ok else f > low
    if ok and high is not None:
        ok = f <= high if high_ok else f < high
    if not ok:
        raise ConfigError(f"{describe(owner, name)} must be {what}, got {value!r}{tail}")
    return f


def boolean(value: Any, name: str, *, owner: str | None = None) -> bool:
    """``True`` or ``False`` (``numpy.bool_`` too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigTypeError(f"{describe(owner, name)} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def one_of(value: Any, name: str, choices: Collection[Any], *, owner: str | None = None,
           fix: str = "") -> Any:
    """One of ``choices`` (a value of another type than every choice is a type error)."""
    try:
        found = value in choices
    except TypeError:  # unhashable
        found = False
    if found:
        return value
    kinds = {type(c) for c in choices if c is not None}
    if value is not None and kinds and not any(isinstance(value, k) for k in kinds):
        raise ConfigTypeError(f"{describe(owner, name)} must be one of {tuple(choices)}, got "
                              f"{type(value).__name__} {value!r}{'. ' + fix if fix else ''}")
    raise ConfigError(f"{describe(owner, name)} must be one of {tuple(choices)}, got {value!r}"
                      f"{'. ' + fix if fix else ''}")
