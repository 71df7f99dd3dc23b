"""Parsing and validation of command-line values: the ``parser=`` types of the options.

Each parser turns the text a user typed into a checked value or raises
``typer.BadParameter`` with a one-line message that quotes the bad text; click adds the
option's name (``Error: Invalid value for '--sigma-b': must be >= 0, got '-1'``) and the
app exits with code 2. Parsers accept their own output unchanged, so that a real default
(a float, an enum member) passes through them too.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import typer
from numpy.typing import NDArray

from mftheory.errors import MFTheoryError

__all__ = [
    "MAX_RANGE_COUNT",
    "Choice",
    "ChoiceEnum",
    "FigureSize",
    "FigureSizeText",
    "Gain",
    "Int",
    "IntList",
    "NameList",
    "Number",
    "ScaleText",
    "ScaleValue",
    "VarianceList",
    "VarianceVectorText",
    "parse_gain",
    "parse_number",
    "parse_range",
    "shown",
]

FloatArray = NDArray[np.float64]
E = TypeVar("E", bound=enum.Enum)

#: Longest echo of a user's text in an error message (longer ones are cut, with "...").
MAX_ECHO = 60


def shown(text: str) -> str:
    """``text`` for an error message: as typed, or its first ``MAX_ECHO - 3`` characters and
    ``...`` (a 100 KB argument is never echoed back)."""
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


#: Largest COUNT accepted in a START:STOP:COUNT range.
MAX_RANGE_COUNT = 100_000


def parse_number(text: str, what: str = "") -> float:
    """A finite float from ``text`` (``what`` names the part, e.g. ``STOP``, in the message)."""
    lead = f"{what} " if what else ""
    try:
        value = float(text.strip())
    except ValueError:
        raise MFTheoryError(f"{lead}must be a number, got {shown(text)!r}") from None
    if not math.isfinite(value):
        raise MFTheoryError(f"{lead}must be a finite number, got {shown(text)!r}")
    return value


def parse_range(text: str, *, min_count: int = 1) -> FloatArray:
    """Evenly spaced values from ``START:STOP:COUNT`` (both ends included).

    Raises
    ------
    MFTheoryError
        Not three fields, a non-finite end, ``START > STOP``, ``COUNT`` not an integer in
        ``[min_count, MAX_RANGE_COUNT]``, or ``COUNT == 1`` with ``START != STOP``.
    """
    parts = text.split(":")
    if len(parts) != 3:
        raise MFTheoryError(f"a range must be START:STOP:COUNT, got {shown(text)!r}")
    start = parse_number(parts[0], "START")
    stop = parse_number(parts[1], "STOP")
    count_text = parts[2].strip()
    try:
        count = int(count_text)
    except ValueError:
        raise MFTheoryError(
            f"range {shown(text)!r}: COUNT must be a whole number, got {shown(count_text)!r}"
        ) from None
    if count < min_count:
        raise MFTheoryError(f"range {shown(text)!r}: COUNT must be at least {min_count}")
    if count > MAX_RANGE_COUNT:
        raise MFTheoryError(f"range {shown(text)!r}: COUNT must be at most {MAX_RANGE_COUNT}")
    if start > stop:
        raise MFTheoryError(f"range {shown(text)!r}: START must not exceed STOP")
    if count == 1 and start != stop:
        raise MFTheoryError(
            f"range {shown(text)!r}: COUNT 1 cannot include both ends; use COUNT >= 2"
        )
    return np.linspace(start, stop, count)


def parse_gain(text: str) -> float:
    """A gain: a number or a constant expression (``5/3``, ``sqrt(2)``), parsed by the safe
    expression parser, never ``eval``; finite and >= 0."""
    from mftheory.activations.expression import parse_activation

    try:
        expr = parse_activation(text)
    except MFTheoryError as exc:
        raise MFTheoryError(f"{shown(text)!r} is not a number or an expression: {exc}") from None
    values = expr.phi(np.array([-1.3, 0.0, 2.7]))
    if not np.all(values == values[0]):
        raise MFTheoryError(f"{shown(text)!r} depends on x; give a constant such as 5/3")
    gain = float(values[0])
    if not math.isfinite(gain) or gain < 0:
        raise MFTheoryError(f"must be finite and >= 0, got {shown(text)!r} = {gain!r}")
    return gain


class _Parser:
    """A typer ``parser=``: text to value, ``typer.BadParameter`` on bad text."""

    __name__ = "value"  # typer names its parameter type after the parser

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # a default, already of the right type
        try:
            return self.parse(value)
        except MFTheoryError as exc:
            raise typer.BadParameter(" ".join(str(exc).split())) from None

    def parse(self, text: str) -> Any:
        raise NotImplementedError


class Number(_Parser):
    """A finite float, optionally ``>= low`` (or ``> low`` with ``strict=True``) and
    ``<= high``."""

    def __init__(
        self, low: float | None = None, *, strict: bool = False, high: float | None = None
    ) -> None:
        self.low, self.strict, self.high = low, strict, high

    def parse(self, text: str) -> float:
        value = parse_number(text)
        if self.low is not None and (value < self.low or (self.strict and value == self.low)):
            bound = f"{'>' if self.strict else '>='} {self.low:g}"
            if self.high is not None:
                bound = f"in {'(' if self.strict else '['}{self.low:g}, {self.high:g}]"
            raise MFTheoryError(f"must be {bound}, got {shown(text)!r}")
        if self.high is not None and value > self.high:
            low = "" if self.low is None else f"{'(' if self.strict else '['}{self.low:g}, "
            bound = f"in {low}{self.high:g}]" if low else f"<= {self.high:g}"
            raise MFTheoryError(f"must be {bound}, got {shown(text)!r}")
        return value


class Int(_Parser):
    """A whole number in ``[low, high]``."""

    def __init__(self, low: int = 1, high: int | None = None) -> None:
        self.low, self.high = low, high

    def parse(self, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise MFTheoryError(f"must be a whole number, got {shown(text)!r}") from None
        if value < self.low or (self.high is not None and value > self.high):
            allowed = (
                f">= {self.low}" if self.high is None else f"between {self.low} and {self.high}"
            )
            raise MFTheoryError(f"must be {allowed}, got {shown(text)!r}")
        return value


@dataclass(frozen=True)
class FigureSize:
    """A figure's width and height in inches; shown as ``WIDTHxHEIGHT`` (``7x5``)."""

    width: float
    height: float

    @property
    def inches(self) -> tuple[float, float]:
        return (self.width, self.height)

    def __str__(self) -> str:
        return f"{self.width:g}x{self.height:g}"


#: Smallest and largest side of a figure, in inches.
FIGURE_SIDE_RANGE = (0.5, 100.0)


class FigureSizeText(_Parser):
    """``WIDTHxHEIGHT`` in inches (``6x4``, ``3.5x2.6``; ``X`` and ``,`` also separate)."""

    def parse(self, text: str) -> FigureSize:
        parts = text.strip().lower().replace(",", "x").split("x")
        if len(parts) != 2:
            raise MFTheoryError(f"must be WIDTHxHEIGHT in inches, such as 6x4; got {shown(text)!r}")
        lo, hi = FIGURE_SIDE_RANGE
        sides = []
        for name, part in zip(("WIDTH", "HEIGHT"), parts, strict=True):
            value = parse_number(part, name)
            if not lo <= value <= hi:
                raise MFTheoryError(
                    f"{name} must be between {lo:g} and {hi:g} inches, got {shown(text)!r}"
                )
            sides.append(value)
        return FigureSize(sides[0], sides[1])


class Gain(_Parser):
    """A gain: a number or a constant expression such as ``5/3`` or ``sqrt(2)``."""

    def parse(self, text: str) -> float:
        return parse_gain(text)


class ChoiceEnum(str, enum.Enum):
    """Base of the options' choice enums: ``str(member)`` is its value, as in Python 3.11's
    ``enum.StrEnum``.

    Typer before 0.29 passes a ``parser=``'s result through its own enum conversion, which
    looks the member up by ``str(value)``; with a plain ``(str, Enum)`` that is ``"Cls.name"``,
    found nowhere, and the option silently became ``None``.
    """

    def __str__(self) -> str:
        return str(self.value)


class Choice(_Parser, Generic[E]):
    """A member of ``enum_type`` by its value, case-insensitive."""

    def __init__(self, enum_type: type[E], noun: str) -> None:
        self.enum_type, self.noun = enum_type, noun

    @property
    def metavar(self) -> str:
        return "|".join(str(m.value) for m in self.enum_type)

    def parse(self, text: str) -> E:
        key = text.strip().lower()
        for member in self.enum_type:
            if str(member.value).lower() == key:
                return member
        names = ", ".join(str(m.value) for m in self.enum_type)
        raise MFTheoryError(f"unknown {self.noun} {shown(text)!r}; choose one of {names}")


@dataclass(frozen=True)
class ScaleValue:
    """A scale option's value: one number (shape ``()``) or a range (shape ``(count,)``).

    ``values`` are as the user gave them (standard deviations for ``--sigma-w``, variances
    for ``--sigma-w2``); ``mftheory.cli.common.resolve_scale`` squares the former.
    """

    values: FloatArray
    text: str
    is_range: bool


class ScaleText(_Parser):
    """A scale: a number, or ``START:STOP:COUNT`` where allowed; every value >= 0.

    Parameters
    ----------
    kind : str
        ``"standard deviation"`` or ``"variance"`` (for the message on a negative value).
    ranges : {"no", "yes", "only"}
        Whether a range is refused, accepted or required.
    min_count : int
        Smallest COUNT of a range.
    """

    def __init__(self, kind: str, ranges: str = "no", min_count: int = 1) -> None:
        self.kind, self.ranges, self.min_count = kind, ranges, min_count

    def __call__(self, value: Any) -> Any:
        if isinstance(value, (int, float)):  # a default
            return ScaleValue(np.asarray(float(value)), repr(value), False)
        return super().__call__(value)

    def parse(self, text: str) -> ScaleValue:
        is_range = ":" in text
        if is_range and self.ranges == "no":
            raise MFTheoryError(f"takes one number here, not a range: got {shown(text)!r}")
        if self.ranges == "only" and not is_range:
            raise MFTheoryError(f"must be a range START:STOP:COUNT, got {shown(text)!r}")
        if is_range:
            values = parse_range(text, min_count=self.min_count)
        else:
            values = np.asarray(parse_number(text))
        if (values < 0).any():
            raise MFTheoryError(f"is a {self.kind} and must be >= 0, got {shown(text)!r}")
        return ScaleValue(np.asarray(values, dtype=np.float64), text, is_range)


class VarianceVectorText(_Parser):
    """A variance vector: a preset name, or a list whose syntax and entries are checked here
    (the preset's size and dimensions are settled with ``--kernel`` and ``--dim`` later)."""

    def parse(self, text: str) -> str:
        from mftheory.cnn.modes import VARIANCE_VECTOR_PRESETS, variance_vector

        if text.strip().lower() not in VARIANCE_VECTOR_PRESETS:
            variance_vector(text)
        return text


class _ListOf(_Parser):
    """Comma-separated items, each parsed by ``item``."""

    def __init__(self, item: Callable[[str], Any]) -> None:
        self.item = item

    def parse(self, text: str) -> list[Any]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise MFTheoryError(f"is empty: {shown(text)!r}")
        return [self.item(t) for t in items]


class IntList(_ListOf):
    """Comma-separated whole numbers ``>= low``."""

    def __init__(self, low: int = 0) -> None:
        super().__init__(Int(low).parse)


class NameList(_ListOf):
    """Comma-separated names."""

    def __init__(self) -> None:
        super().__init__(str)


class VarianceList(_Parser):
    """A comma list of numbers or one ``START:STOP:COUNT`` range, each >= 0."""

    def parse(self, text: str) -> list[float]:
        if ":" in text:
            values = parse_range(text).tolist()
        else:
            values = _ListOf(parse_number).parse(text)
        for v in values:
            if v < 0:
                raise MFTheoryError(f"must be >= 0, got {v:g}")
        return [float(v) for v in values]
