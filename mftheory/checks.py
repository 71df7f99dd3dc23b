"""Input checks shared by every layer: one copy of each rule, one wording of each message.

Each check returns the value converted to a plain Python type, or raises
:class:`~mftheory.errors.MFTheoryError` with one line that names the parameter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mftheory.errors import MFTheoryError

__all__ = ["int_at_least", "nonnegative_float"]


def int_at_least(value: Any, name: str, low: int, why: str = "") -> int:
    """``int(value)`` if it is an integer (not a bool) and at least ``low``.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        The parameter's name, as the caller spells it.
    low : int
        The smallest accepted value.
    why : str
        Appended to the bound in the message, e.g. ``" (a first and a last weight layer)"``.

    Raises
    ------
    MFTheoryError
        ``"{name} must be an integer, got ..."`` or ``"{name} must be at least {low}..."``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MFTheoryError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise MFTheoryError(f"{name} must be at least {low}{why}, got {value}")
    return int(value)


def nonnegative_float(value: Any, name: str) -> float:
    """``float(value)`` if it is a finite number ``>= 0`` (bools are refused).

    Raises
    ------
    MFTheoryError
        ``"{name} must be a number, got ..."`` or ``"{name} must be finite and >= 0, got ..."``.
    """
    if isinstance(value, bool):
        raise MFTheoryError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise MFTheoryError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise MFTheoryError(f"{name} must be finite and >= 0, got {value!r}")
    return x
