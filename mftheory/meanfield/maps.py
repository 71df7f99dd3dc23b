"""The length (q) and correlation (C) maps of a deep random network.

Notes
-----
docs/theory.md section 3::

    q^{l+1}     = sigma_w2 E_z[phi(sqrt(q^l) z)^2] + sigma_b2
    q c^{l+1}   = sigma_w2 E[phi(u1) phi(u2)] + sigma_b2,   corr(u1, u2) = c^l, var = q
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import pair_expectation, second_moment
from mftheory.gaussian.quadrature import QuadratureSettings

__all__ = ["c_map", "check_variances", "q_map"]

Array = NDArray[np.float64]


def check_variances(sigma_w2: ArrayLike, sigma_b2: ArrayLike) -> tuple[Array, Array]:
    """Validate and broadcast weight and bias variances (finite, non-negative).

    Raises
    ------
    MFTheoryError
        Naming the first bad value.
    """
    out = []
    for name, val in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        try:
            arr = np.asarray(val, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise MFTheoryError(f"{name} must be a number or array of numbers") from exc
        bad = ~np.isfinite(arr) | (arr < 0)
        if np.any(bad):
            raise MFTheoryError(f"{name} must be finite and non-negative, got {arr[bad].flat[0]!r}")
        out.append(arr)
    w, b = np.broadcast_arrays(out[0], out[1])
    return np.array(w), np.array(b)


def q_map(
    act: Activation,
    q: ArrayLike,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    settings: QuadratureSettings | None = None,
) -> Array:
    """One layer of the length map, ``sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2``.

    Notes
    -----
    docs/theory.md section 3 (q-map). Broadcasts over all arguments.
    """
    w, b = check_variances(sigma_w2, sigma_b2)
    return w * second_moment(act, q, settings=settings) + b


def c_map(
    act: Activation,
    c: ArrayLike,
    *,
    q: ArrayLike,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    settings: QuadratureSettings | None = None,
) -> Array:
    """One layer of the correlation map at fixed length q (normally q*).

    ``(sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q`` with ``u1, u2`` of variance q and
    correlation c.

    Notes
    -----
    docs/theory.md section 3 (C-map). ``c = 1`` is mapped to 1 exactly when q is the fixed point.
    """
    w, b = check_variances(sigma_w2, sigma_b2)
    qa = np.asarray(q, dtype=np.float64)
    if np.any(~np.isfinite(qa) | (qa <= 0)):
        raise MFTheoryError("the C-map needs a finite positive q")
    return (w * pair_expectation(act, qa, qa, c, settings=settings) + b) / qa
