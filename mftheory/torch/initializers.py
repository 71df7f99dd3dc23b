"""PyTorch initialisers of one weight tensor, and the conventions of ``mftheory.torch``.

Everything here is a thin layer over the numpy core: the critical point and fixed point come
from ``mftheory.meanfield.critical`` and ``mftheory.meanfield.fixed_points``, the
Algorithm 1 kernels from ``mftheory.cnn.kernels``, the variance vectors and Fourier
eigenvalues from ``mftheory.cnn.modes``. This package imports torch at its
top; ``import mftheory`` never imports it (import ``mftheory.torch`` explicitly).

Layouts. PyTorch stores a convolution weight as ``(c_out, c_in, *spatial)`` and a linear
weight as ``(out, in)``; ``mftheory.cnn.kernels`` uses ``(*spatial, c_in, c_out)``. The
conversion is ``w[o, i, b] = K[b, i, o]``. PyTorch's convolution is a cross-correlation: with
``padding=k`` and ``padding_mode="circular"`` a ``(2k+1)``-wide layer computes

    out_o(a) = sum_i sum_{t=0}^{2k} w[o, i, t] x_i(a + t - k)  (indices mod n),

which is docs/theory.md section 1's ``h_j(a) = sum_i sum_b w_ij(b) x_i(a + b)`` with the centred
offset ``b = t - k``. (Orthogonality does not depend on that convention: flipping a kernel
keeps ``sum_b K(b)^T K(b + g) = delta_g I``.)

Initialisers follow ``torch.nn.init``: a trailing underscore, in place under
``torch.no_grad()``, the tensor returned, its device and dtype kept, an optional
``torch.Generator``. ``gain`` is always a *standard deviation* (``sigma_w``), never a variance.
Randomness follows ``generator``: torch draws use it directly, and the numpy-built Algorithm 1
kernels get a seed drawn from it, so the same generator state gives the same tensor. With
``generator=None`` the global torch RNG is used (``torch.manual_seed`` makes it reproducible).

Fan-in scaled weight variance. For ``w_ij(b) ~ N(0, sigma_w2 v_b / c_in)`` the identity
``sum_{i,j,b} E[w_ij(b)^2] = c_out sigma_w2`` holds for every ``v``, so this module measures
and sets ``sigma_w2 = sum w^2 / c_out`` (``diagnose``, ``critical_init_``). An
orthogonal operator with singular value ``s`` on ``min(c_in, c_out)`` channels has
``sum w^2 = s^2 min(c_in, c_out)`` (Parseval for Algorithm 1 kernels), hence
``sigma_w2 = s^2 min(c_in, c_out) / c_out``: ``s^2`` for a square or wide layer, less for a
channel-expanding one, which ``critical_init_`` corrects.

Notes
-----
docs/theory.md section 1 (the network and ``v``), section 3 (the critical point and fixed point),
section 5 (dynamical isometry; Burkholz & Dubatovka's looks-linear ReLU initialisation) and
section 6 (orthogonal and Delta-Orthogonal kernels).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from mftheory.checks import nonnegative_float
from mftheory.cnn.modes import VARIANCE_VECTOR_PRESETS, check_variance_vector, variance_vector
from mftheory.errors import MFTheoryError
from mftheory.torch.weights import (
    check_odd,
    draw_device,
    fill_algorithm1,
    fill_delta,
    randn,
    refuse_wide,
    weight_shape,
)

__all__ = ["conv_orthogonal_", "delta_orthogonal_", "variance_vector_normal_"]

FloatArray = NDArray[np.float64]

_SUM_TOL = 1e-10  # how far sum(v) may be from 1


@torch.no_grad()
def delta_orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a Conv weight with the Delta-Orthogonal kernel, in place.

    Parameters
    ----------
    tensor : torch.Tensor
        A Conv1d/2d/3d weight ``(c_out, c_in, *kernel)`` with odd kernel sides and
        ``c_in <= c_out``, or a Linear weight ``(out, in)`` with ``in <= out``.
    gain : float
        ``sigma_w``, the common singular value of the operator (a standard deviation).
    generator : torch.Generator, optional
        Source of the random numbers (its device is where they are drawn).

    Returns
    -------
    torch.Tensor
        ``tensor``, with its device and dtype.

    Raises
    ------
    MFTheoryError
        Not a floating 2- to 5-dimensional tensor, ``c_in > c_out``, an even kernel side,
        a negative or non-finite gain.

    Notes
    -----
    docs/theory.md section 6: every tap is zero but the spatial centre, which holds
    ``gain * Q`` with ``Q`` a Haar-random ``c_out x c_in`` matrix with orthonormal columns
    (QR of a Gaussian matrix, signs fixed). The convolution is then ``gain`` times an isometry
    on periodic images of any size, and every Fourier eigenvalue ``lambda_f`` of its variance
    vector (the delta) is 1 (section 4). A Linear weight gets ``gain * Q`` itself, like
    ``torch.nn.init.orthogonal_`` but refusing ``in > out``, which cannot be an isometry.
    """
    c_out, c_in, spatial = weight_shape(tensor, "delta_orthogonal_")
    g = nonnegative_float(gain, "gain")
    refuse_wide(c_out, c_in, "delta_orthogonal_")
    check_odd(spatial, "delta_orthogonal_")
    fill_delta(tensor, g, generator)
    return tensor


@torch.no_grad()
def conv_orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a Conv weight with an orthogonal kernel from the paper's Algorithm 1, in place.

    Parameters
    ----------
    tensor : torch.Tensor
        A Conv1d/2d/3d weight ``(c_out, c_in, *kernel)``, cubic kernel of odd side,
        ``c_in <= c_out``; or a Linear weight ``(out, in)``, ``in <= out``.
    gain : float
        ``sigma_w``, the common singular value of the operator (a standard deviation).
    generator : torch.Generator, optional
        A seed for ``mftheory.cnn.kernels.orthogonal_kernel`` is drawn from it.

    Returns
    -------
    torch.Tensor
        ``tensor``, with its device and dtype.

    Raises
    ------
    MFTheoryError
        Not a floating 2- to 5-dimensional tensor, ``c_in > c_out``, an even or non-cubic
        kernel, a negative or non-finite gain.

    Notes
    -----
    docs/theory.md section 6 (Algorithm 1, Kautsky & Turcajova's block convolutions): the kernel
    ``K`` of ``mftheory.cnn.kernels.orthogonal_kernel`` in layout ``(*kernel, c_in, c_out)``
    is written as ``w[o, i, b] = K[b, i, o]``. Every ``K^(w) = sum_b K(b) exp(-i <w, b>)`` has
    orthonormal columns, so ``nn.ConvNd(..., padding=k, padding_mode="circular")`` with this
    weight is ``gain`` times an isometry on periodic images of every size. Its variance share
    is not uniform (binomial per dimension in expectation). A Linear weight (kernel of size 1)
    gets a Haar-random matrix with orthonormal columns times ``gain``.
    """
    c_out, c_in, spatial = weight_shape(tensor, "conv_orthogonal_")
    g = nonnegative_float(gain, "gain")
    refuse_wide(c_out, c_in, "conv_orthogonal_")
    check_odd(spatial, "conv_orthogonal_")
    if not spatial:
        fill_delta(tensor, g, generator)
        return tensor
    if len(set(spatial)) != 1:
        raise MFTheoryError(
            f"conv_orthogonal_: kernel shape {spatial} is not cubic; Algorithm 1 builds kernels"
            " with the same odd side in every dimension"
        )
    fill_algorithm1(tensor, g, generator)
    return tensor


def _resolve_v(v: str | ArrayLike, spatial: tuple[int, ...], fname: str) -> FloatArray:
    """The variance vector for a kernel of shape ``spatial`` (``()`` for Linear: ``v = 1``)."""
    if not spatial:
        if isinstance(v, str):
            variance_vector(v, kernel=1, dim=1)  # validates the name
            return np.ones(())
        arr = np.asarray(v, dtype=np.float64)
        if arr.size != 1 or abs(float(arr.reshape(-1)[0]) - 1.0) > _SUM_TOL:
            raise MFTheoryError(
                f"{fname}: a Linear weight has one kernel position, so v must be 1 or a"
                f" preset name, got shape {arr.shape}"
            )
        return np.ones(())
    if isinstance(v, str) and v.strip().lower() in VARIANCE_VECTOR_PRESETS:
        if len(set(spatial)) != 1:
            raise MFTheoryError(
                f"{fname}: preset {v!r} needs a cubic kernel, got shape {spatial}; pass v as an"
                " array of that shape"
            )
        arr = variance_vector(v, kernel=spatial[0], dim=len(spatial))
    else:
        arr = variance_vector(v) if isinstance(v, str) else check_variance_vector(v, name="v")
    if arr.shape != spatial:
        raise MFTheoryError(f"{fname}: v has shape {arr.shape}, the kernel {spatial}")
    total = float(arr.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise MFTheoryError(
            f"{fname}: v sums to {total:.12g}, not 1; rescale it (sigma_w2 absorbs the factor)"
        )
    return arr


@torch.no_grad()
def variance_vector_normal_(
    tensor: torch.Tensor,
    v: str | ArrayLike,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill a weight with Gaussian entries of variance ``gain^2 v_b / c_in``, in place.

    Parameters
    ----------
    tensor : torch.Tensor
        A Conv1d/2d/3d weight ``(c_out, c_in, *kernel)`` (odd sides) or a Linear weight.
    v : str or array_like
        Variance vector of the kernel's spatial shape, summing to 1, or a preset name
        (``"delta"``, ``"uniform"``, ``"gs0"`` .. ``"gs4"``; cubic kernels) built by
        ``mftheory.cnn.modes.variance_vector``. A Linear weight takes any preset (its only
        position has ``v = 1``).
    gain : float
        ``sigma_w`` (a standard deviation).
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor
        ``tensor``, with its device and dtype.

    Raises
    ------
    MFTheoryError
        Bad tensor, even kernel side, ``v`` of the wrong shape, not summing to 1, negative or
        non-finite, unknown preset, bad gain.

    Notes
    -----
    docs/theory.md section 1: ``w_ij(b) ~ N(0, sigma_w^2 v_b / c)`` with ``c = c_in`` the fan-in
    channels (``tensor.shape[1]``), so ``E[sum w^2] / c_out = sigma_w^2``.
    """
    _, c_in, spatial = weight_shape(tensor, "variance_vector_normal_")
    g = nonnegative_float(gain, "gain")
    check_odd(spatial, "variance_vector_normal_")
    arr = _resolve_v(v, spatial, "variance_vector_normal_")
    dev = draw_device(tensor, generator)
    std = torch.as_tensor(g * np.sqrt(arr / c_in), dtype=torch.float64, device=dev)
    tensor.copy_(randn(tuple(tensor.shape), generator, dev) * std)
    return tensor
