"""Input checks shared by every layer: one copy of each rule, one wording of each message.

Each check returns the value converted to a plain Python type, or raises
``MFTheoryError`` with one line that names the parameter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mftheory.errors import MFTheoryError

__all__ = ["int_at_least", "moderate_float", "nonnegative_float", "plain", "plain_fields"]


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


def moderate_float(value: Any, name: str, *, limit: float = 1e100) -> float:
    """``nonnegative_float(value, name)`` that is ``0`` or within ``[1 / limit, limit]``.

    For scales that are squared and summed (a kernel's gain): outside this range the squares
    overflow to ``inf`` or underflow to ``0`` in double precision, so it is refused up front.

    Raises
    ------
    MFTheoryError
        As ``nonnegative_float``, or ``"{name} must be 0 or between ..., got ..."``.
    """
    x = nonnegative_float(value, name)
    if x != 0.0 and not 1.0 / limit <= x <= limit:
        raise MFTheoryError(
            f"{name} must be 0 or between {1.0 / limit:g} and {limit:g} (its square must be a"
            f" normal double), got {x:g}"
        )
    return x


def plain(value: Any) -> Any:
    """A result for a scalar input as a plain Python scalar; arrays of any other shape as is.

    A 0-d ndarray or a numpy scalar becomes ``float``, ``int``, ``bool``, ``complex`` or
    ``str`` (``value.item()``), so that ``fixed_point(act, sigma_w2=1.5, sigma_b2=0.05).q_star``
    is a ``float``; anything else (arrays with at least one axis, Python values) is returned
    unchanged.

    Examples
    --------
    >>> type(plain(np.asarray(1.5))).__name__, plain(np.float64(2.0)), plain(np.ones(2)).shape
    ('float', 2.0, (2,))
    """
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def plain_fields(obj: Any, names: tuple[str, ...]) -> None:
    """Apply ``plain`` to the attributes ``names`` of a (frozen) dataclass in place.

    Called by the result dataclasses' ``__post_init__``: one rule for every result.
    """
    for name in names:
        object.__setattr__(obj, name, plain(getattr(obj, name)))
