"""Small helpers that check arguments at the package boundary and say what was expected."""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable


def unknown_name_error(kind: str, name: Any, known: Iterable[str]) -> ValueError:
    """Build the error for a name that is not in a registry, listing the known names."""
    choices = ", ".join(sorted(known))
    return ValueError(f"unknown {kind} {name!r}; known {kind} names are: {choices}")


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_positive_float(name: str, value: Any, allow_zero: bool = False, example: Any = None) -> float:
    """Return ``value`` as a finite float > 0 (or >= 0 with ``allow_zero``), else raise naming ``name``, the value and what works.

    NaN and ±inf are refused: a learning rate or loss parameter of inf or NaN only turns
    training into NaN later. ``example`` (e.g. the default) is named in the message.
    """
    bound = ">= 0" if allow_zero else "> 0"
    hint = "" if example is None else f", e.g. {example!r}"
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a finite number {bound}{hint}, got {value!r} (bool)")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a finite number {bound}{hint}, got {value!r} ({type(value).__name__})") from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number {bound}{hint}, got {value!r}; NaN and inf are not accepted")
    if result < 0 if allow_zero else result <= 0:
        raise ValueError(f"{name} must be a finite number {bound}{hint}, got {value!r}")
    return result


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
