"""Conv/Linear weight tensors: shape checks, random building blocks and fills.

The shared ground of ``mftheory.torch.initializers``, ``mftheory.torch.network_init``
and ``mftheory.torch.inspection``. Layouts (PyTorch): a convolution weight is
``(c_out, c_in, *spatial)``, a linear weight ``(out, in)``. Random draws are float64 on the
generator's device (``draw_device``); the Algorithm 1 kernels draw from a numpy generator
seeded from the torch one (``numpy_seed``), so the same generator state gives the same
tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mftheory.errors import MFTheoryError

__all__ = [
    "LAYER_TYPES",
    "as_float",
    "bias_of",
    "centre",
    "check_odd",
    "draw_device",
    "fill_algorithm1",
    "fill_delta",
    "layers_of",
    "numpy_seed",
    "randn",
    "random_orthogonal",
    "refuse_wide",
    "unread_modules",
    "weight_of",
    "weight_shape",
]

LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weight_shape(tensor: Any, fname: str) -> tuple[int, int, tuple[int, ...]]:
    """``(c_out, c_in, spatial)`` of a Linear ``(out, in)`` or Conv ``(c_out, c_in, *k)``."""
    if not isinstance(tensor, torch.Tensor):
        raise MFTheoryError(f"{fname} needs a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise MFTheoryError(f"{fname} needs a floating-point tensor, got dtype {tensor.dtype}")
    if not 2 <= tensor.ndim <= 5:
        raise MFTheoryError(
            f"{fname} needs a weight of 2 dimensions (Linear: out, in) or 3 to 5"
            f" (Conv1d/2d/3d: c_out, c_in, *kernel), got shape {tuple(tensor.shape)}"
        )
    if tensor.numel() == 0:
        raise MFTheoryError(f"{fname} got an empty tensor of shape {tuple(tensor.shape)}")
    shape = tuple(int(s) for s in tensor.shape)
    return shape[0], shape[1], shape[2:]


def check_odd(spatial: tuple[int, ...], fname: str) -> None:
    """Refuse a kernel with an even side (``fname`` names the caller in the message)."""
    even = [s for s in spatial if s % 2 == 0]
    if even:
        raise MFTheoryError(
            f"{fname}: kernel shape {spatial} has an even side {even[0]}; kernel sizes must be"
            " odd so that the kernel has a centre"
        )


def draw_device(tensor: torch.Tensor | None, generator: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: the generator's device, else the tensor's (or CPU)."""
    if generator is not None:
        return generator.device
    return tensor.device if tensor is not None else torch.device("cpu")


def randn(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Standard normal float64 draws of ``shape`` from ``generator`` on ``device``."""
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float64, device=device)


def numpy_seed(generator: torch.Generator | None) -> int:
    """A seed for the numpy core, drawn from ``generator`` (the global torch RNG if None)."""
    dev = draw_device(None, generator)
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=dev).item())


def random_orthogonal(
    rows: int, cols: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Haar-random ``rows x cols`` matrix (float64) with orthonormal columns or rows.

    Orthonormal columns when ``rows >= cols``, orthonormal rows otherwise: the QR of a
    Gaussian matrix with the signs of R's diagonal moved into Q (docs/theory.md section 6).
    """
    big, small = max(rows, cols), min(rows, cols)
    q, r = torch.linalg.qr(randn((big, small), generator, device))
    d = torch.sign(torch.diagonal(r))
    q = q * torch.where(d == 0, torch.ones_like(d), d)
    return q if rows >= cols else q.T


def centre(spatial: tuple[int, ...]) -> Any:
    """Index of the centre tap of a ``(c_out, c_in, *spatial)`` weight."""
    return (slice(None), slice(None), *(s // 2 for s in spatial))


def fill_delta(tensor: torch.Tensor, gain: float, generator: torch.Generator | None) -> None:
    """Zero but the centre tap, which holds gain times a random orthogonal matrix."""
    c_out, c_in, spatial = weight_shape(tensor, "delta_orthogonal_")
    q = gain * random_orthogonal(c_out, c_in, generator, draw_device(tensor, generator))
    out = torch.zeros(tuple(tensor.shape), dtype=torch.float64, device=q.device)
    out[centre(spatial)] = q
    tensor.copy_(out)


def fill_algorithm1(tensor: torch.Tensor, gain: float, generator: torch.Generator | None) -> None:
    """Algorithm 1 kernel in PyTorch layout; co-isometric (orthonormal rows) when c_in > c_out.

    For ``c_in > c_out`` the kernel of ``orthogonal_kernel(size, c_out, c_in)`` is used with its
    channel axes read the other way round: its operator is the transpose of an isometry's
    (per frequency ``L(w) = M(w)^T`` with ``M^H M = I``), so ``L L^H = I``. The kernel is that
    of ``mftheory.cnn.kernels.orthogonal_kernel`` for the drawn seed (up to round-off),
    built with torch on the tensor's device (``mftheory.torch.algorithm1``).
    """
    from mftheory.torch.algorithm1 import algorithm1_kernel

    c_out, c_in, spatial = weight_shape(tensor, "conv_orthogonal_")
    d = len(spatial)
    seed = numpy_seed(generator)
    if c_in <= c_out:
        k = algorithm1_kernel(
            spatial[0], c_in, c_out, dim=d, gain=gain, seed=seed, device=tensor.device
        )
        w = k.permute(d + 1, d, *range(d))  # (spatial, c_in, c_out) -> (c_out, c_in, .)
    else:
        k = algorithm1_kernel(
            spatial[0], c_out, c_in, dim=d, gain=gain, seed=seed, device=tensor.device
        )
        w = k.permute(d, d + 1, *range(d))  # (spatial, c_out, c_in) -> (c_out, c_in, .)
    tensor.copy_(w)


def refuse_wide(c_out: int, c_in: int, fname: str) -> None:
    """Refuse ``c_in > c_out``: an orthogonal operator needs ``c_in <= c_out``."""
    if c_in > c_out:
        raise MFTheoryError(
            f"{fname}: c_in = {c_in} > c_out = {c_out}; an orthogonal operator needs"
            " c_in <= c_out (critical_init_ gives such layers orthonormal rows instead)"
        )


def as_float(x: Any) -> float:
    """``x`` (a 0-d array or a number) as a Python float."""
    return float(np.asarray(x, dtype=np.float64))


def layers_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's Conv1d/2d/3d and Linear layers, ``(name, module)`` in module order."""
    return [
        (n or type(m).__name__, m) for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)
    ]


def unread_modules(model: nn.Module) -> list[str]:
    """Names of modules with their own parameters that are not Conv/Linear layers."""
    return [
        n or type(m).__name__
        for n, m in model.named_modules()
        if not isinstance(m, LAYER_TYPES) and any(True for _ in m.parameters(recurse=False))
    ]


def weight_of(module: nn.Module) -> torch.Tensor:
    """The module's ``weight`` tensor."""
    w = module.weight
    assert isinstance(w, torch.Tensor)
    return w


def bias_of(module: nn.Module) -> torch.Tensor | None:
    """The module's ``bias`` tensor, None without one."""
    b = getattr(module, "bias", None)
    return b if isinstance(b, torch.Tensor) else None
