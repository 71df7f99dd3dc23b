"""Depth scales from map slopes: ``xi = -1/log(chi)``, the trainable depth, the gradient scale.

Notes
-----
docs/theory.md sections 4 (``xi_c``, ``xi_q``, ``xi_f``) and 5 (trainable depth).
"""

from __future__ import annotations

from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.checks import plain

__all__ = [
    "TRAINABLE_DEPTH_FACTOR",
    "UNRESOLVED_NEAR_ONE",
    "depth_scale",
    "depth_scale_from_deficit",
    "trainable_depth",
    "xi_from_chi_or_deficit",
]

Array = NDArray[np.float64]

#: A per-layer factor within this distance of 1 (8 ulp) gives an infinite depth scale: the
#: factor is known only to a few ulp, so its scale is not resolvable (docs/accuracy.md).
UNRESOLVED_NEAR_ONE = 8 * float(np.finfo(np.float64).eps)


@overload
def depth_scale(chi: float) -> float: ...
@overload
def depth_scale(chi: ArrayLike) -> Array | float: ...
def depth_scale(chi: ArrayLike) -> Array | float:
    """``-1 / log(chi)`` for ``0 <= chi < 1``; ``inf`` at ``chi = 1`` (within 8 ulp); else NaN.

    A scalar ``chi`` gives a plain ``float``, an array an array of its shape.

    Notes
    -----
    docs/theory.md section 4 (``xi_c``, ``xi_q``, ``xi_f``).
    """
    x = np.asarray(chi, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -1.0 / np.log(x)
    # chi is known to a few ulp: within 8 ulp of 1 the scale is not resolvable, call it inf
    at_one = np.abs(x - 1.0) <= UNRESOLVED_NEAR_ONE
    out = np.where(at_one, np.inf, out)
    return plain(np.where(((x >= 0) & (x <= 1)) | at_one, out, np.nan))


#: Training is predicted to fail beyond this many correlation depth scales (docs/theory.md §5).
TRAINABLE_DEPTH_FACTOR = 6.0


@overload
def trainable_depth(xi_c: float) -> float: ...
@overload
def trainable_depth(xi_c: ArrayLike) -> Array | float: ...
def trainable_depth(xi_c: ArrayLike) -> Array | float:
    """The depth beyond which training is predicted to fail: ``6 xi_c``, vectorised.

    Parameters
    ----------
    xi_c : array_like
        Correlation depth scales (``FixedPoint.xi_c``).

    Returns
    -------
    ndarray or float
        A plain ``float`` for a scalar ``xi_c``, else an array of its shape:
        ``TRAINABLE_DEPTH_FACTOR * xi_c`` where ``xi_c`` is finite; ``inf`` where it is
        ``inf`` (the critical line: any depth); ``0`` where it is NaN (a divergent point,
        no finite fixed point: no depth trains).

    Notes
    -----
    docs/theory.md section 5: a network of depth ``L`` trains when ``L <~ 6 xi_c`` (Schoenholz
    et al. 2017).

    Examples
    --------
    >>> trainable_depth([2.0, float("inf"), float("nan")]).tolist()
    [12.0, inf, 0.0]
    """
    xi = np.asarray(xi_c, dtype=np.float64)
    return plain(np.where(np.isnan(xi), 0.0, TRAINABLE_DEPTH_FACTOR * xi))


def _gradient_scale(chi_1: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 / np.abs(np.log(chi_1))
    out = np.where(np.abs(chi_1 - 1.0) <= UNRESOLVED_NEAR_ONE, np.inf, out)
    # chi_1 = inf (a jump in phi): gradients explode at once, scale 0
    finite = np.isfinite(chi_1) & (chi_1 > 0)
    return np.where(finite, out, np.where((chi_1 == 0) | (chi_1 == np.inf), 0.0, np.nan))


def depth_scale_from_deficit(deficit: Array) -> Array:
    """``-1 / log(chi)`` from the deficit ``1 - chi``, as ``-1 / log1p(-deficit)``.

    Same conventions as ``depth_scale``: ``inf`` within 8 ulp of ``chi = 1``, NaN outside
    ``0 <= chi <= 1``. Next to ``chi = 1`` this keeps the accuracy of a deficit formed
    without cancellation (``mftheory.meanfield.near_critical``).

    Notes
    -----
    docs/theory.md section 4; docs/accuracy.md, "Next to the critical line".
    """
    d = np.asarray(deficit, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -1.0 / np.log1p(-d)
    at_one = np.abs(d) <= 8 * np.finfo(np.float64).eps
    out = np.where(at_one, np.inf, out)
    return np.where(((d >= 0) & (d <= 1)) | at_one, out, np.nan)


def xi_from_chi_or_deficit(chi: ArrayLike, deficit: ArrayLike | None) -> Array | float:
    """``depth_scale_from_deficit(deficit)`` where ``deficit`` is not NaN, else
    ``depth_scale(chi)`` (``deficit = 1 - chi`` formed without cancellation next to the
    critical line by ``mftheory.meanfield.near_critical``; None: everywhere from chi).

    Notes
    -----
    docs/theory.md section 4; docs/accuracy.md, "Next to the critical line: every path".
    """
    xi = np.asarray(depth_scale(np.asarray(chi, dtype=np.float64)))
    if deficit is None:
        return plain(xi)
    d = np.asarray(deficit, dtype=np.float64)
    return plain(np.where(np.isnan(d), xi, depth_scale_from_deficit(d)))
