"""The vanilla CNN of the paper's experiments, initialised at a point of the phase diagram.

Architecture (docs/theory.md section 7): three 3x3 convolutions with strides chosen to bring the
input down to at most 8 pixels a side (1, 2, 2 for MNIST's 28x28 -> 7x7 and CIFAR-10's
32x32 -> 8x8; 1, 1, 1 for the 8x8 digits) that take the channels to ``c``, then ``depth``
3x3 convolutions of ``c`` channels (circular padding, as the theory's periodic images),
``tanh`` after every convolution, global average pooling and one dense layer. No batch
normalisation, no residual connections. 1D inputs (MNIST-1D) get the same with 1D
convolutions.

Every layer, stem and readout included, is filled by ``mftheory.torch.mean_field_init_``
at the cell's ``(sigma_w2, sigma_b2)`` with its weight scheme.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from numpy.typing import ArrayLike
from torch import nn

from mftheory.errors import MFTheoryError
from mftheory.torch import mean_field_init_

__all__ = ["VanillaCNN", "build_network", "stem_strides"]

_TARGET_SIDE = 8  # the stem halves the side while it is larger than this


def stem_strides(side: int) -> tuple[int, int, int]:
    """Strides of the three stem convolutions for an input of ``side`` pixels a side.

    The first is 1; each of the other two is 2 while the side is still above 8 (so 28 -> 7,
    32 -> 8, 40 -> 10, 8 -> 8).
    """
    strides = [1]
    for _ in range(2):
        if side > _TARGET_SIDE:
            strides.append(2)
            side = (side + 1) // 2
        else:
            strides.append(1)
    return strides[0], strides[1], strides[2]


class VanillaCNN(nn.Module):
    """Stem, ``depth`` equal convolutions, average pooling and a dense readout (module doc).

    Parameters
    ----------
    in_channels : int
    channels : int
        ``c``, the width of the stem's output and of every body layer.
    depth : int
        ``d``, the number of body convolutions (``>= 0``).
    n_classes : int
    spatial_dims : int
        1 or 2.
    side : int
        The input's side length (pixels), for the stem strides.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        depth: int,
        n_classes: int,
        spatial_dims: int,
        side: int,
    ) -> None:
        super().__init__()
        if spatial_dims not in (1, 2):
            raise MFTheoryError(f"spatial_dims must be 1 or 2, got {spatial_dims}")
        if channels < 1 or depth < 0 or in_channels < 1 or n_classes < 2:
            raise MFTheoryError(
                f"bad network size: channels={channels}, depth={depth},"
                f" in_channels={in_channels}, n_classes={n_classes}"
            )
        conv = nn.Conv1d if spatial_dims == 1 else nn.Conv2d
        stem: list[nn.Module] = []
        c_in = in_channels
        for stride in stem_strides(side):
            stem += [conv(c_in, channels, 3, stride=stride, padding=1), nn.Tanh()]
            c_in = channels
        body: list[nn.Module] = []
        for _ in range(depth):
            body += [conv(channels, channels, 3, padding=1, padding_mode="circular"), nn.Tanh()]
        self.stem = nn.Sequential(*stem)
        self.body = nn.Sequential(*body)
        self.readout = nn.Linear(channels, n_classes)
        self.spatial_dims = spatial_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self.stem(x))
        pooled = h.mean(dim=tuple(range(2, 2 + self.spatial_dims)))
        out: torch.Tensor = self.readout(pooled)
        return out


def build_network(
    input_shape: Sequence[int],
    n_classes: int,
    *,
    channels: int,
    depth: int,
    sigma_w2: float,
    sigma_b2: float,
    scheme: str = "gaussian",
    v: str | ArrayLike = "uniform",
    generator: torch.Generator | None = None,
) -> tuple[VanillaCNN, list[str]]:
    """Build a ``VanillaCNN`` for inputs ``(C, H, W)`` or ``(C, L)`` and initialise it.

    Returns
    -------
    (VanillaCNN, list of str)
        The network and ``mftheory.torch.mean_field_init_``'s notes.

    Notes
    -----
    docs/theory.md section 7 (architecture) and sections 1 and 6 (the initialisation).
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3):
        raise MFTheoryError(f"input shape must be (C, L) or (C, H, W), got {shape}")
    net = VanillaCNN(shape[0], channels, depth, n_classes, len(shape) - 1, max(shape[1:]))
    notes = mean_field_init_(net, sigma_w2, sigma_b2, scheme=scheme, v=v, generator=generator)
    return net, notes
