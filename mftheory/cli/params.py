"""Parsing and validation of command-line values.

Every function here turns the text a user typed into a checked value or raises
:class:`~mftheory.errors.MFTheoryError` with a one-line message that names the option and the
bad value; the app turns that into ``Error: ...`` and exit code 2. Nothing here imports typer
or rich, so it is easy to test on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.errors import MFTheoryError

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_NEGATIVE_SLOPE",
    "DEFAULT_SIGMA_B2",
    "MAX_RANGE_COUNT",
    "Scale",
    "load_activation",
    "parse_int",
    "parse_number",
    "parse_optional_number",
    "parse_range",
    "scale_option",
]

FloatArray = NDArray[np.float64]

#: Bias variance used when neither --sigma-b nor --sigma-b2 is given (Schoenholz et al. 2017
#: quote sigma_b^2 = 0.05 for tanh).
DEFAULT_SIGMA_B2 = 0.05
#: PyTorch's defaults for leaky_relu and elu.
DEFAULT_NEGATIVE_SLOPE = 0.01
DEFAULT_ALPHA = 1.0
#: Largest COUNT accepted in a START:STOP:COUNT range.
MAX_RANGE_COUNT = 100_000


def parse_number(option: str, text: str) -> float:
    """A finite float from ``text``; the error names ``option`` and the text."""
    try:
        value = float(text.strip())
    except ValueError:
        raise MFTheoryError(f"{option} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise MFTheoryError(f"{option} must be a finite number, got {text!r}")
    return value


def parse_optional_number(option: str, text: str | None) -> float | None:
    """:func:`parse_number`, passing ``None`` (option not given) through."""
    return None if text is None else parse_number(option, text)


def parse_int(
    option: str, text: str | None, *, low: int = 1, high: int | None = None
) -> int | None:
    """A whole number in ``[low, high]`` from ``text`` (``None`` passes through)."""
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise MFTheoryError(f"{option} must be a whole number, got {text!r}") from None
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise MFTheoryError(f"{option} must be {allowed}, got {text!r}")
    return value


def parse_range(option: str, text: str, *, min_count: int = 1) -> FloatArray:
    """Evenly spaced values from ``START:STOP:COUNT`` (both ends included).

    Raises
    ------
    MFTheoryError
        Not three fields, a non-finite end, ``START > STOP``, ``COUNT`` not an integer in
        ``[min_count, MAX_RANGE_COUNT]``, or ``COUNT == 1`` with ``START != STOP``.
    """
    parts = text.split(":")
    if len(parts) != 3:
        raise MFTheoryError(f"{option} range must be START:STOP:COUNT, got {text!r}")
    start = parse_number(f"{option} START", parts[0])
    stop = parse_number(f"{option} STOP", parts[1])
    count_text = parts[2].strip()
    try:
        count = int(count_text)
    except ValueError:
        raise MFTheoryError(
            f"{option} range {text!r}: COUNT must be a whole number, got {count_text!r}"
        ) from None
    if count < min_count:
        raise MFTheoryError(f"{option} range {text!r}: COUNT must be at least {min_count}")
    if count > MAX_RANGE_COUNT:
        raise MFTheoryError(f"{option} range {text!r}: COUNT must be at most {MAX_RANGE_COUNT}")
    if start > stop:
        raise MFTheoryError(f"{option} range {text!r}: START must not exceed STOP")
    if count == 1 and start != stop:
        raise MFTheoryError(
            f"{option} range {text!r}: COUNT 1 cannot include both ends; use COUNT >= 2"
        )
    return np.linspace(start, stop, count)


def _check_nonnegative(option: str, text: str, values: FloatArray) -> None:
    if (values < 0).any():
        what = "standard deviation" if not option.endswith("2") else "variance"
        raise MFTheoryError(f"{option} is a {what} and must be >= 0, got {text!r}")


@dataclass(frozen=True)
class Scale:
    """A weight or bias scale as the user gave it, converted to variances.

    Attributes
    ----------
    variance : ndarray of float64
        The variance(s): shape ``()`` for one value, ``(count,)`` for a range.
    option : str
        The option that gave it (``"--sigma-b"`` or ``"--sigma-b2"``), or ``""`` for a default.
    is_range : bool
        True when the user wrote ``START:STOP:COUNT``.
    """

    variance: FloatArray
    option: str
    is_range: bool

    @property
    def value(self) -> float:
        """The single variance (only for a non-range scale)."""
        return float(self.variance)


def scale_option(
    name: str,
    std_text: str | None,
    var_text: str | None,
    *,
    default: float | None = None,
    allow_range: bool = False,
    range_only: bool = False,
    min_count: int = 1,
) -> Scale | None:
    """Resolve the ``--sigma-X`` / ``--sigma-X2`` pair into variances.

    Parameters
    ----------
    name : str
        ``"w"`` or ``"b"``.
    std_text, var_text : str or None
        What the user gave for the standard deviation and for the variance form.
    default : float or None
        Variance used when neither is given; ``None`` returns ``None`` then.
    allow_range : bool
        Accept ``START:STOP:COUNT`` (a standard-deviation range is squared point by point).
    range_only : bool
        Require ``START:STOP:COUNT``.
    min_count : int
        Smallest COUNT accepted in a range.

    Raises
    ------
    MFTheoryError
        Both forms given, a malformed number or range, a negative or non-finite value.
    """
    std_opt, var_opt = f"--sigma-{name}", f"--sigma-{name}2"
    if std_text is not None and var_text is not None:
        raise MFTheoryError(f"give {std_opt} or {var_opt}, not both")
    if std_text is None and var_text is None:
        if default is None:
            return None
        return Scale(np.asarray(float(default)), "", False)
    option, text = (std_opt, std_text) if std_text is not None else (var_opt, var_text)
    assert text is not None
    is_range = ":" in text
    if is_range and not (allow_range or range_only):
        raise MFTheoryError(f"{option} takes one number here, not a range: got {text!r}")
    if range_only and not is_range:
        raise MFTheoryError(f"{option} must be a range START:STOP:COUNT, got {text!r}")
    if is_range:
        values = parse_range(option, text, min_count=min_count)
    else:
        values = np.asarray(parse_number(option, text))
    _check_nonnegative(option, text, values)
    variance = values**2 if option == std_opt else values
    return Scale(np.asarray(variance, dtype=np.float64), option, is_range)


def load_activation(
    spec: str, negative_slope_text: str | None, alpha_text: str | None
) -> tuple[Activation, list[str]]:
    """The activation for ``--act``, and notes about parameters that do not apply to it.

    Raises
    ------
    MFTheoryError
        Unknown name, invalid expression, or a malformed ``--negative-slope``/``--alpha``.
    """
    negative_slope = parse_optional_number("--negative-slope", negative_slope_text)
    alpha = parse_optional_number("--alpha", alpha_text)
    act = get_activation(
        spec,
        negative_slope=DEFAULT_NEGATIVE_SLOPE if negative_slope is None else negative_slope,
        alpha=DEFAULT_ALPHA if alpha is None else alpha,
    )
    used = {key for key, _ in act.params}
    notes = [
        f"{option} applies to {family} only; ignored for {act.label}"
        for option, value, key, family in (
            ("--negative-slope", negative_slope, "negative_slope", "leaky_relu"),
            ("--alpha", alpha, "alpha", "elu"),
        )
        if value is not None and key not in used
    ]
    return act, notes
