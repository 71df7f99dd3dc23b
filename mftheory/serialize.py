"""Conversion of numpy results to strict-JSON-ready Python objects (non-finite -> None)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["finite_or_none", "jsonable"]


def finite_or_none(x: float) -> float | None:
    """``float(x)``, or None where it is NaN or infinite (strict JSON has neither)."""
    f = float(x)
    return f if math.isfinite(f) else None


def jsonable(value: Any) -> Any:
    """Nested lists/dicts of plain floats, ints, str and None; NaN and +-inf become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
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
