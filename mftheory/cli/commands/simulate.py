"""``mftheory simulate``: the mode theory against ensembles of finite random CNNs."""

from __future__ import annotations

import math

import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE, DEFAULT_SIGMA_B2
from mftheory.cli.modes import (
    Backend,
    BackendName,
    Bootstrap,
    Channels,
    Depth,
    Device,
    ImageDim,
    ImageOption,
    ModesShown,
    Networks,
    Normalization,
    Normalize,
    Seed,
)
from mftheory.cli.options import (
    DEFAULT_DPI,
    DEFAULT_FIGSIZE,
    Act,
    Alpha,
    Dpi,
    FigSize,
    FigureOutput,
    Format,
    KernelSide,
    NegativeSlope,
    Quiet,
    SigmaB,
    SigmaB2,
    SigmaW2Critical,
    SigmaWCritical,
    VOption,
)

__all__ = ["simulate"]


def simulate(
    ctx: typer.Context,
    image: ImageOption,
    dim: ImageDim = None,
    normalize: Normalize = Normalization.none,
    act: Act = "tanh",
    sigma_w: SigmaWCritical = None,
    sigma_w2: SigmaW2Critical = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = DEFAULT_SIGMA_B2,  # type: ignore[assignment]
    v: VOption = "uniform",
    kernel: KernelSide = None,
    depth: Depth = 30,
    modes: ModesShown = 10,
    channels: Channels = 256,
    networks: Networks = 100,
    seed: Seed = 0,
    bootstrap: Bootstrap = 200,
    backend: Backend = BackendName.numpy,
    device: Device = None,
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    fmt: Format = None,
    output: FigureOutput = None,
    figsize: FigSize = DEFAULT_FIGSIZE,
    dpi: Dpi = DEFAULT_DPI,
    quiet: Quiet = False,
) -> None:
    """Finite random CNNs against the mean-field modes, on real images.

    Draws --networks random CNNs of --channels channels (circular convolutions, weights
    N(0, sigma_w^2 v_b / c), biases N(0, sigma_b^2)), feeds them the images and, with the same
    weights, a control input at the fixed point Sigma* (variance reduction: the difference of
    the two empirical covariances estimates Sigma* - Sigma^l with far less noise). Each
    Fourier mode's amplitude is fitted against depth where it stands 5 standard errors above
    the noise; the fitted per-layer rate is shown beside chi_c*|lambda_f| and beside the
    mean-field map's amplitudes fitted by the same rule (same layers, same weights). The
    standard errors come from a bootstrap over networks (--bootstrap resamples of whole
    networks, seeded by --seed). -o modes.png draws measured points, mean-field curves and the
    predicted slopes.

    Example:

    \b
        mftheory simulate --image digit.npy --act tanh --channels 256 --networks 100
    """
    from mftheory.cli.common import activation_fields, resolve_scale, start
    from mftheory.cli.modes import (
        cnn_setup,
        comparison_report,
        load_inputs,
        require_cnn_budget,
        run_ensemble,
    )
    from mftheory.cli.output import FigureStyle, emit

    style = FigureStyle(figsize.inches, dpi)
    messages, activation = start(
        ctx,
        act=act,
        negative_slope=negative_slope,
        alpha=alpha,
        quiet=quiet,
        output=output,
        figures=True,
    )
    images, described = load_inputs(image, dim, normalize, messages)
    pixels = images[0, 0].size
    require_cnn_budget(images.shape[0] * pixels, pixels, depth, channels, networks)
    weight = resolve_scale(ctx, "w", sigma_w, sigma_w2)
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert bias is not None
    b2 = bias.value
    v_used, w2, source = cnn_setup(activation, v, kernel, images.ndim - 2, weight, b2, messages)
    cmp = run_ensemble(
        messages,
        networks,
        act=activation,
        v=v_used,
        sigma_w2=w2,
        sigma_b2=b2,
        depth=depth,
        channels=channels,
        images=images,
        seed=seed,
        bootstrap=bootstrap,
        backend=backend.value,
        device=device,
    )
    head = (
        f"{activation.label}, sigma_w^2 = {w2:.6g}{' (critical)' if source == 'critical' else ''},"
        f" sigma_b^2 = {b2:.6g}, {described}, depth {depth}"
    )
    payload = {
        **activation_fields(activation),
        "sigma_w": math.sqrt(w2),
        "sigma_w2": w2,
        "sigma_w2_source": source,
        "sigma_b": math.sqrt(b2),
        "sigma_b2": b2,
        "v": v_used.tolist(),
        "depth": depth,
        "shape": list(images.shape[2:]),
        "images": [str(p) for p in image],
        "normalize": normalize.value,
    }
    report = comparison_report("simulate", cmp, head, payload, messages, modes)
    emit(report, fmt=fmt, output=output, messages=messages, style=style)
