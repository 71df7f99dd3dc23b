"""Conversion of numpy results to strict-JSON-ready Python objects (non-finite -> None)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["finite_or_none", "jsonable"]


def finite_or_none(x: float) -> float | None:
    """``float(x)``, or None where it is NaN or infinite (strict JSON has neither)."""
    f = float(x)
    return f if math.isfinite(f) else None


def jsonable(value: Any) -> Any:
    """Nested lists/dicts of plain floats, ints, str and None; NaN and +-inf become None.

    Mappings become dicts with string keys, tuples lists, numpy scalars Python ones and a
    complex number ``[real, imag]``. Arrays of floats, integers, booleans and strings are
    converted without a Python call per element (a 1000 x 1000 grid in well under a second).
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _array_jsonable(value)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, (np.str_, str)):
        return str(value)
    if isinstance(value, (complex, np.complexfloating)):
        return [jsonable(value.real), jsonable(value.imag)]
    return value


def _array_jsonable(a: np.ndarray) -> Any:
    """``jsonable`` of an array, in C where the dtype allows.

    Float arrays become nested lists of floats with ``None`` for non-finite values (through an
    object array); booleans, integers and strings convert as they are; anything else (complex,
    object) element by element.
    """
    kind = a.dtype.kind
    if kind == "f":
        finite = np.isfinite(a)
        if finite.all():
            return a.tolist()
        obj = a.astype(object)
        obj[~finite] = None
        return obj.tolist()
    if kind in "biuU":
        return a.tolist()
    return jsonable(a.tolist())
