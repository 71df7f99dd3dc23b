"""Benchmark ``init_orthogonal``: ``critical_init_`` with Algorithm 1 kernels against torch.

Issue 14: on a 20-layer, 256-channel CNN (``Conv2d`` 3x3, circular padding)
``critical_init_(model, act="tanh", sigma_b2=0.05, scheme="orthogonal")`` must take at most a
few times what ``torch.nn.init.orthogonal_`` takes on the same layers. Both are timed in this
process (median of ``--repeat`` runs after a warm-up call) and their ratio is the headline.
The check: one layer's kernel is orthogonal by the FFT test of
:func:`mftheory.cnn.kernels.check_kernel` (float32 weights, so to 1e-5).

Skipped, with a line in the table saying so, when PyTorch is not installed.
"""

from __future__ import annotations

import importlib.util
from functools import partial
from typing import Any

from .report import Row
from .timing import log, measure

__all__ = ["RATIO_TARGET", "case_init_orthogonal"]

#: "At most a few times torch's time."
RATIO_TARGET = 5.0


def _model(depth: int, channels: int) -> Any:
    from torch import nn

    layers: list[Any] = []
    for _ in range(depth):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="circular"),
            nn.Tanh(),
        ]
    return nn.Sequential(*layers)


def _critical_init(model: Any, seed: int) -> Any:
    import torch

    from mftheory.torch import critical_init_

    gen = torch.Generator().manual_seed(seed)
    return critical_init_(model, act="tanh", sigma_b2=0.05, scheme="orthogonal", generator=gen)


def _torch_orthogonal(model: Any, seed: int) -> None:
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    for m in model:
        if isinstance(m, nn.Conv2d):
            nn.init.orthogonal_(m.weight, generator=gen)


def case_init_orthogonal(ctx: Any) -> None:
    """10. ``critical_init_(scheme="orthogonal")`` on a 20-layer, 256-channel CNN against
    ``torch.nn.init.orthogonal_`` on the same layers (ratio of the medians)."""
    cfg = ctx.cfg
    depth, channels = (5, 64) if cfg.quick else (20, 256)
    size = f"{depth} x Conv2d {channels}, 3x3"
    if importlib.util.find_spec("torch") is None:
        log("init_orthogonal: skipped, PyTorch is not installed")
        ctx.rows.append(
            Row(
                case="init_orthogonal",
                operation="critical_init_ orthogonal",
                size=size,
                points=depth,
                check="skipped: PyTorch is not installed (pip install 'mftheory[torch]')",
                target=f"<= {RATIO_TARGET:g}x torch",
                met="-",
            )
        )
        return
    from mftheory.cnn.kernels import check_kernel

    model = _model(depth, channels)
    log(f"torch.nn.init.orthogonal_ on {size}")
    base, _ = measure(partial(_torch_orthogonal, model, cfg.seed), cfg.repeat)
    log(f"critical_init_ orthogonal on {size}")
    timing, report = measure(partial(_critical_init, model, cfg.seed), cfg.repeat)
    ratio = timing.median / base.median
    weight = model[0].weight.detach().double()
    kernel = weight.permute(2, 3, 1, 0).numpy()  # (c_out, c_in, k, k) -> (k, k, c_in, c_out)
    res = check_kernel(kernel, gain=float(report.sigma_w), n_values=[3, 4], tol=1e-5)
    ctx.rows.append(
        Row(
            case="init_orthogonal",
            operation="torch.nn.init.orthogonal_",
            size=size,
            points=depth,
            cold=base.cold,
            seconds=base.median,
            times=base.times,
            check="the baseline, per layer on the flattened weight",
        )
    )
    ctx.rows.append(
        Row(
            case="init_orthogonal",
            operation="critical_init_ orthogonal",
            size=size,
            points=depth,
            cold=timing.cold,
            seconds=timing.median,
            times=timing.times,
            check=f"{ratio:.2f}x torch; layer 0 max |sigma - sigma_w| {res.max_deviation:.1e}"
            " on n = 3, 4",
            target=f"<= {RATIO_TARGET:g}x torch",
            met=("yes" if ratio <= RATIO_TARGET else "no")
            if res.orthogonal
            else "no: not orthogonal",
            extra={"ratio": ratio, "torch_seconds": base.median, "check": res.as_dict()},
        )
    )
