"""The first layer of the CNN covariance map: ``A_v`` on (image, pixel) matrices and the
covariance of raw images.

Notes
-----
docs/theory.md sections 1 (the first layer) and 2 (``A_v``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.cnn.modes import _require_normalised, wrap_kernel
from mftheory.cnn.spatial import _check_v_for_image
from mftheory.errors import MFTheoryError
from mftheory.meanfield.maps import check_variances

__all__ = ["input_covariance"]

FloatArray = NDArray[np.float64]


def _check_images(images: ArrayLike, shape: tuple[int, ...] | None = None) -> FloatArray:
    arr = np.asarray(images)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise MFTheoryError(f"images must be numeric, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim < 3 or arr.ndim > 5:
        raise MFTheoryError(
            f"images must have shape (images, channels, *pixels) with 1 to 3 pixel dimensions,"
            f" got shape {arr.shape}"
        )
    if arr.size == 0:
        raise MFTheoryError(f"images has shape {arr.shape}: nothing to propagate")
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise MFTheoryError(f"image value {arr[idx]!r} at position {idx} is not finite")
    if shape is not None and arr.shape[2:] != shape:
        raise MFTheoryError(f"images have pixel shape {arr.shape[2:]}, expected {shape}")
    return arr


class _AOperator:
    """``A_v * M`` on (image, pixel) matrices, with the kernel folded onto the image once.

    A rank-one 2D/3D ``v`` (an outer product of 1D vectors, e.g. uniform or delta) is applied
    one dimension at a time: ``3 + 3`` shifted copies of ``M`` for a 3x3 kernel instead of 9.
    """

    def __init__(self, v: FloatArray, shape: tuple[int, ...], batch: int) -> None:
        self.shape, self.batch = shape, batch
        d = len(shape)
        factors = _rank_one_factors(v) if d > 1 else None
        self.passes: list[tuple[tuple[int, ...], list[tuple[tuple[int, ...], float]]]] = []
        if factors is None:
            axes = tuple(range(1, d + 1)) + tuple(range(d + 2, 2 * d + 2))
            self.passes.append((axes, _shifts(v, shape)))
        else:
            for k, u in enumerate(factors):
                self.passes.append(((1 + k, d + 2 + k), _shifts(u, (shape[k],))))

    def __call__(self, M: FloatArray) -> FloatArray:
        tensor = M.reshape((self.batch, *self.shape, self.batch, *self.shape))
        for axes, shifts in self.passes:
            out = np.zeros_like(tensor)
            for shift, w in shifts:
                rolled = np.roll(tensor, shift, axis=axes)
                if w != 1.0:
                    rolled *= w
                out += rolled
            tensor = out
        return tensor.reshape(M.shape)


def _shifts(v: FloatArray, shape: tuple[int, ...]) -> list[tuple[tuple[int, ...], float]]:
    """``(np.roll shift, weight)`` per non-zero position of ``v`` folded onto ``shape``:
    rolling by ``-m`` on both pixel indices reads ``M`` at ``a + m``."""
    periodic = wrap_kernel(v, shape)
    return [
        (tuple(-int(x) for x in m) * 2, float(periodic[tuple(m)]))
        for m in np.argwhere(periodic > 0)
    ]


def _rank_one_factors(v: FloatArray) -> list[FloatArray] | None:
    """Non-negative 1D factors with ``v = u_1 (x) u_2 (x) ...`` exactly (to 1e-15), or None."""
    factors = []
    for axis in range(v.ndim):
        u = v.sum(axis=tuple(k for k in range(v.ndim) if k != axis))
        factors.append(u / (u.sum() if axis else 1.0))
    outer = factors[0]
    for u in factors[1:]:
        outer = np.multiply.outer(outer, u)
    if np.max(np.abs(outer - v)) > 1e-15 * float(np.max(v)):
        return None
    return factors


def input_covariance(
    images: ArrayLike, v: ArrayLike, *, sigma_w2: float, sigma_b2: float
) -> FloatArray:
    """Covariance of the first layer's pre-activations for raw images.

    Parameters
    ----------
    images : array_like, shape ``(B, channels, *pixels)``
        ``B`` images with 1 to 3 pixel dimensions, used as given (no normalisation).
    v : array_like
        Variance vector (same number of dimensions as the pixels, sums to 1).
    sigma_w2, sigma_b2 : float
        Weight and bias variances.

    Returns
    -------
    ndarray, shape ``(B*N, B*N)``
        ``Sigma^1 = sigma_w2 A_v * (X X^T / channels) + sigma_b2`` over (image, pixel) pairs,
        pixels row-major, ``X`` the ``(B*N, channels)`` matrix of pixel values.

    Notes
    -----
    docs/theory.md section 1: the first layer is affine in the image, ``h^1 = w * x + b`` with
    ``w_ij(b) ~ N(0, sigma_w2 v_b / channels)``, so its covariance is exact for any width.
    """
    arr = _check_images(images)
    shape = tuple(int(s) for s in arr.shape[2:])
    w2, b2 = (float(x) for x in check_variances(sigma_w2, sigma_b2))
    varr = _check_v_for_image(v, shape)
    _require_normalised(varr)
    B, channels = arr.shape[0], arr.shape[1]
    X = np.moveaxis(arr, 1, -1).reshape(-1, channels)
    gram = X @ X.T / channels
    return w2 * _AOperator(varr, shape, B)(gram) + b2
