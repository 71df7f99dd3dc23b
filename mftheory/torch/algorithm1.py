"""The paper's Algorithm 1 (orthogonal convolution kernels) with torch linear algebra.

``mftheory.cnn.kernels.orthogonal_kernel`` builds the kernel with numpy; this module runs
the same construction with ``torch.linalg.qr`` and torch matrix products on the weight's
device, drawing the *same* random numbers from the same ``numpy.random.Generator`` in the same
order (the rank of each projection, then its Gaussian frame). For a given seed both return the
same kernel up to round-off (about 1e-15); only the arithmetic moved.

Why: inside a process that has imported torch, numpy's multithreaded OpenBLAS QR competes with
torch's own thread pool, and a single ``256 x 128`` QR could take a quarter of a second instead
of a millisecond on a loaded two-core machine, so filling a 20-layer, 256-channel CNN took
minutes. In torch it costs about what ``torch.nn.init.orthogonal_`` does (docs/benchmarks.md).

Notes
-----
docs/theory.md section 6 (Algorithm 1, Kautsky & Turcajova's paraunitary factors
``P + (I - P) z``; the construction is described in
``mftheory.cnn.kernels.orthogonal_kernel``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["KEEP_PROBABILITY", "algorithm1_kernel"]

#: Each column of a projection frame is kept with this probability (the rank of ``P`` is
#: ``Binomial(c_out, 1/2)``), as in ``mftheory.cnn.kernels.orthogonal_kernel``.
KEEP_PROBABILITY = 0.5


def _haar_frame(
    rng: np.random.Generator, n: int, m: int, device: torch.device
) -> torch.Tensor | None:
    """``m`` Haar-random orthonormal columns in ``R^n`` (None for ``m = 0``, nothing drawn).

    The Gaussian ``(n, m)`` matrix comes from ``rng`` (as the numpy core draws it); QR in
    torch, with the signs of R's diagonal moved into Q (Mezzadri 2007).
    """
    if m == 0:
        return None
    z = torch.from_numpy(rng.standard_normal((n, m))).to(device)
    q, r = torch.linalg.qr(z)
    signs = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)
    return q * signs


def _grow(kernel: torch.Tensor, axis: int, rng: np.random.Generator, keep: float) -> torch.Tensor:
    """``K(z) -> K(z) (P + (I - P) z_axis)``: one position longer along ``axis``.

    ``K'[t] = K[t] P + K[t - 1] (I - P)`` with ``P = U U^T`` a random projection of rank
    ``Binomial(c_out, keep)`` (see ``mftheory.cnn.kernels.orthogonal_kernel``).
    """
    c = kernel.shape[-1]
    m = int(rng.binomial(c, keep))
    u = _haar_frame(rng, c, m, kernel.device)
    if u is None:
        kp = torch.zeros_like(kernel)
    else:
        kp = ((kernel.reshape(-1, c) @ u) @ u.T).reshape(kernel.shape)
    shape = list(kernel.shape)
    length = shape[axis]
    shape[axis] = length + 1
    out = torch.zeros(shape, dtype=kernel.dtype, device=kernel.device)
    out.narrow(axis, 0, length).add_(kp)
    out.narrow(axis, 1, length).add_(kernel - kp)
    return out


def algorithm1_kernel(
    size: int,
    c_in: int,
    c_out: int,
    *,
    dim: int,
    gain: float,
    seed: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """An Algorithm 1 kernel in the core's layout ``(size,) * dim + (c_in, c_out)``, float64.

    Parameters
    ----------
    size : int
        Odd kernel side, ``>= 1``.
    c_in, c_out : int
        Channels, ``1 <= c_in <= c_out`` (checked by the callers).
    dim : int
        Spatial dimensions, 1 to 3.
    gain : float
        Common singular value of the operator (``sigma_w``), ``>= 0``.
    seed : int
        Seed of ``numpy.random.default_rng``, the source of every random number.
    device : torch.device or str
        Where the linear algebra runs and the kernel lives.

    Returns
    -------
    torch.Tensor
        Float64, equal up to round-off to
        ``mftheory.cnn.kernels.orthogonal_kernel(size, c_in, c_out, dim=dim, gain=gain,
        seed=seed)``.

    Notes
    -----
    docs/theory.md section 6. Cost: ``dim (size - 1) + 1`` QR factorisations of at most
    ``c_out x c_out`` and ``O(size^dim c_in c_out^2)`` flops of matrix products.
    """
    rng = np.random.default_rng(seed)
    dev = torch.device(device)
    if c_in < c_out:  # the first c_in rows of a Haar c_out x c_out matrix
        frame = _haar_frame(rng, c_out, c_in, dev)
        assert frame is not None
        start = frame.T
    else:
        frame = _haar_frame(rng, c_in, c_out, dev)
        assert frame is not None
        start = frame
    kernel = start.reshape((1,) * dim + (c_in, c_out))
    for _ in range(size - 1):
        for axis in range(dim):
            kernel = _grow(kernel, axis, rng, KEEP_PROBABILITY)
    return (gain * kernel).contiguous()
