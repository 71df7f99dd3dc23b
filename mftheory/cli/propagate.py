"""``mftheory propagate``: real images through the mean-field CNN covariance map, mode by mode."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from mftheory.cli.depthscales import KernelOption, SigmaW2Critical, SigmaWCritical, VOption
from mftheory.cli.options import Act, Alpha, Format, NegativeSlope, Output, Quiet, SigmaB, SigmaB2

if TYPE_CHECKING:
    from mftheory.cli.output import Column, Messages
    from mftheory.cnn.propagation import Propagation

__all__ = ["propagate"]

ImageOption = Annotated[
    list[Path],
    typer.Option(
        "--image",
        help="Image file, .png (2D, read as intensities in [0, 1]) or .npy (used as stored: "
        "(n,) 1D, (h, w) 2D, (channels, h, w)). Repeat for several images: their "
        "cross-covariances propagate too.",
        metavar="PATH",
        show_default=False,
    ),
]
ImageDim = Annotated[
    str | None,
    typer.Option(
        "--dim",
        metavar="1|2",
        help="Read a 2D .npy array as (channels, n) of a 1D image (--dim 1).  [default: from "
        "the file]",
        show_default=False,
    ),
]
Normalize = Annotated[
    str,
    typer.Option(
        "--normalize",
        metavar="none|standardize",
        help="none: use the images as read; standardize: shift and scale each image to mean 0, "
        "variance 1 over its pixels and channels.",
    ),
]
Depth = Annotated[
    str, typer.Option("--depth", metavar="INT", help="Number of layers L (Sigma^L is reported).")
]
ModesShown = Annotated[
    str,
    typer.Option(
        "--modes",
        metavar="INT",
        help="Modes the table shows (most persistent first); JSON/CSV have all.",
    ),
]


def load_inputs(
    images: list[Path], dim: str | None, normalize: str, messages: Messages
) -> tuple[Any, str]:
    """Images as (B, channels, *pixels) and a short description of them."""
    from mftheory.cli.images import load_images
    from mftheory.cli.params import parse_int

    dims = parse_int("--dim", dim, high=2)
    arr, notes = load_images(list(images), dim=dims, normalize=normalize)
    for note in notes:
        messages.warn(note)
    shape = "x".join(str(s) for s in arr.shape[2:])
    return arr, f"{arr.shape[0]} image(s) of {shape} pixels, {arr.shape[1]} channel(s)"


def setup(
    act: str,
    negative_slope: str | None,
    alpha: str | None,
    v: str,
    kernel: str | None,
    d: int,
    sigma_w: str | None,
    sigma_w2: str | None,
    sigma_b: str | None,
    sigma_b2: str | None,
    messages: Messages,
) -> tuple[Any, Any, float, str, float]:
    """Activation, normalised v, sigma_w2 (and its source), sigma_b2 for an image command."""
    from mftheory.cli.depthscales import _variance_vector, _weight_variance
    from mftheory.cli.params import DEFAULT_SIGMA_B2, load_activation, parse_int, scale_option
    from mftheory.cnn.modes import VARIANCE_VECTOR_PRESETS, normalize_variance_vector

    activation, notes = load_activation(act, negative_slope, alpha)
    for note in notes:
        messages.warn(note)
    kernel_size = parse_int("--kernel", kernel)
    vec = _variance_vector(
        v, kernel_size, d if v.strip().lower() in VARIANCE_VECTOR_PRESETS else None
    )
    if vec.ndim != d:
        from mftheory.errors import MFTheoryError

        raise MFTheoryError(f"--v {v!r} is {vec.ndim}D but the images are {d}D")
    v_used, v_sum = normalize_variance_vector(vec)
    if abs(v_sum - 1.0) > 1e-12:
        messages.warn(
            f"v sums to {v_sum:.12g}, not 1; rescaled to sum to 1 (v / {v_sum:.12g});"
            " sigma_w2 is used as given"
        )
    weight = scale_option("w", sigma_w, sigma_w2)
    bias = scale_option("b", sigma_b, sigma_b2, default=DEFAULT_SIGMA_B2)
    assert bias is not None
    b2 = float(bias.value)
    w2, source = _weight_variance(activation, weight, b2, messages)
    return activation, v_used, float(w2), source, b2


def note_slopes(fp: Any, messages: Messages) -> None:
    """Warn when chi_q* > chi_c*: then the diagonal drives the off-diagonal modes."""
    chi_c, chi_q = float(fp.chi_c), float(fp.chi_q)
    if chi_q > chi_c:
        messages.warn(
            f"chi_q* = {chi_q:.6g} > chi_c* = {chi_c:.6g}: the pixel variances relax more slowly"
            " than the correlations and drive the off-diagonal modes, which then shrink by"
            " chi_q*|lambda_f| rather than chi_c*|lambda_f| (the theory assumes chi_q* < chi_c*)"
        )


def mode_layer_columns(layers: Any, res: Propagation, **values: Any) -> dict[str, Any]:
    """CSV columns in long format, one record per (layer, mode): ``layer``, the frequency
    (``frequency`` in 1D, ``frequency_1``... otherwise), ``abs_lambda``, then ``values``
    (arrays broadcast to (layers, modes))."""
    L, N = len(layers), len(res.lam)
    d = res.frequency.shape[1]
    names = [f"frequency_{k + 1}" for k in range(d)] if d > 1 else ["frequency"]
    return {
        "layer": np.broadcast_to(np.asarray(layers)[:, None], (L, N)),
        **{
            name: np.broadcast_to(res.frequency[:, k][None, :], (L, N))
            for k, name in enumerate(names)
        },
        "abs_lambda": np.broadcast_to(np.abs(res.lam)[None, :], (L, N)),
        **{key: np.broadcast_to(val, (L, N)) for key, val in values.items()},
    }


def freq_label(f: list[int]) -> str:
    return "(" + ",".join(str(x) for x in f) + ")" if len(f) > 1 else str(f[0])


def mode_columns(extra: list[Column] | None = None) -> list[Column]:
    from mftheory.cli.output import Column

    return [
        Column("f", "f"),
        Column("lambda", "lambda_f"),
        Column("predicted_rate", "chi_c*|lambda_f|"),
        Column("measured_rate", "measured rate"),
        Column("fit", "fit layers"),
        *(extra or []),
        Column("second_order_rate", "2nd-order rate"),
    ]


def figure_modes(res: Propagation, count: int = 6) -> list[int]:
    """Indices of up to ``count`` modes with distinct |lambda_f|, most persistent first."""
    chosen: list[int] = []
    seen: list[float] = []
    order = sorted(range(len(res.lam)), key=lambda i: (-round(float(abs(res.lam[i])), 12), i))
    for i in order:
        lam = abs(res.lam[i])
        if all(abs(lam - s) > 1e-9 for s in seen):
            seen.append(lam)
            chosen.append(i)
        if len(chosen) == count:
            break
    return chosen


def propagate(
    image: ImageOption,
    dim: ImageDim = None,
    normalize: Normalize = "none",
    act: Act = "tanh",
    sigma_w: SigmaWCritical = None,
    sigma_w2: SigmaW2Critical = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = None,
    v: VOption = "uniform",
    kernel: KernelOption = None,
    depth: Depth = "100",
    modes: ModesShown = "10",
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """Propagate images through the mean-field CNN covariance map and follow its Fourier modes.

    The first layer is affine on the raw image, Sigma^1 = sigma_w^2 A_v * (x x^T / channels)
    + sigma_b^2; then Sigma^{l+1} = A_v * C(Sigma^l) up to --depth L. The distance to the fixed
    point, Sigma* - Sigma^l, is split along every cyclic diagonal into spatial Fourier modes
    f: each shrinks by chi_c*|lambda_f| per layer near the fixed point. The table shows, per
    mode, that prediction, the rate the iterated map actually shows (fitted over the last
    quarter of the layers where the amplitude is resolved above the numerical error floor),
    and the rate of second-order terms, which can outlive the linear one for weak modes.
    JSON has Sigma^L, the amplitudes of every mode at every layer, and all settings.
    -o modes.png draws the amplitudes against depth with the predicted slopes.

    Example:

    \b
        mftheory propagate --image digit.png --act tanh --v uniform --depth 200
        mftheory propagate --image a.npy --image b.npy --format json -o out.json
    """
    from mftheory.cli.output import (
        Column,
        ColumnArrays,
        Messages,
        Records,
        Report,
        activation_fields,
        check_output_path,
        emit,
        settings_of,
    )
    from mftheory.cli.params import parse_int
    from mftheory.cnn.propagation import propagate as run

    messages = Messages(quiet)
    check_output_path(output, figures=True)
    layers_n = parse_int("--depth", depth)
    shown = parse_int("--modes", modes, low=0)
    assert layers_n is not None and shown is not None
    images, described = load_inputs(image, dim, normalize, messages)
    d = images.ndim - 2
    activation, v_used, w2, source, b2 = setup(
        act, negative_slope, alpha, v, kernel, d, sigma_w, sigma_w2, sigma_b, sigma_b2, messages
    )
    with messages.progress("propagating", points=layers_n * images[0, 0].size ** 2) as bar:
        res = run(
            activation,
            v=v_used,
            sigma_w2=w2,
            sigma_b2=b2,
            depth=layers_n,
            images=images,
            progress=bar,
        )
    fp = res.fixed
    note_slopes(fp, messages)
    rows = res.mode_rows()
    table_rows = []
    for row in rows[:shown]:
        table_rows.append(
            {
                **row,
                "f": freq_label(row["frequency"]),
                "fit": None if row["fit_layers"] is None else "{}-{}".format(*row["fit_layers"]),
                "amplitude_first": _or_floor(row["amplitude_first"], res.error_floor[0]),
                "amplitude_last": _or_floor(row["amplitude_last"], res.error_floor[-1]),
            }
        )
    chi_c = float(fp.chi_c)
    title = (
        f"{activation.label}, sigma_w^2 = {w2:.6g}{' (critical)' if source == 'critical' else ''},"
        f" sigma_b^2 = {b2:.6g}, {described}, depth {layers_n}\n"
        f"q* = {float(fp.q_star):.6g}, c* = {float(fp.c_star):.6g}, chi_c* = {chi_c:.6g},"
        f" chi_q* = {float(fp.chi_q):.6g}; amplitudes of Sigma* - Sigma^l resolved above"
        f" {res.error_floor[-1]:.2g} (error floor at layer {layers_n})"
    )
    columns = mode_columns(
        [Column("amplitude_first", "amplitude l=1"), Column("amplitude_last", f"l={layers_n}")]
    )
    payload: dict[str, Any] = {
        **activation_fields(activation),
        "sigma_w": math.sqrt(w2),
        "sigma_w2": w2,
        "sigma_w2_source": source,
        "sigma_b": math.sqrt(b2),
        "sigma_b2": b2,
        "v": res.v.tolist(),
        "depth": layers_n,
        "shape": list(res.image_shape),
        "images": [str(p) for p in image],
        "channels": int(images.shape[1]),
        "normalize": normalize,
        "q_star": float(fp.q_star),
        "c_star": float(fp.c_star),
        "chi_c": chi_c,
        "chi_q": float(fp.chi_q),
        "phase": str(fp.phase),
        "covariance": res.covariance,
        "modes": rows,
        "amplitudes": {
            "layers": res.layers,
            "frequency": res.frequency,
            "off_diagonal": res.amplitude,
            "diagonal": res.amplitude_diagonal,
            "error_floor": res.error_floor,
        },
        "methods": res.methods,
    }
    settings = {**settings_of(fp), "pair_tol": res.tol}
    csv_data = mode_layer_columns(
        res.layers,
        res,
        amplitude=res.amplitude,
        amplitude_diagonal=res.amplitude_diagonal,
        error_floor=res.error_floor[:, None],
    )
    report = Report(
        command="propagate",
        payload=payload,
        settings=settings,
        table=Records(columns, table_rows, title=title),
        csv=ColumnArrays([Column(k) for k in csv_data], csv_data),
        arrays={
            "layers": res.layers,
            "frequency": res.frequency,
            "abs_lambda": np.abs(res.lam),
            "amplitude": res.amplitude,
            "amplitude_diagonal": res.amplitude_diagonal,
            "error_floor": res.error_floor,
            "predicted_rate": res.predicted_rate,
            "measured_rate": res.measured_rate,
            "covariance": res.covariance,
        },
        figure=lambda: _figure(res, title),
        json_indent=None if res.covariance.size > 4096 else 2,
    )
    emit(report, fmt=fmt, output=output, messages=messages)


def _or_floor(value: float | None, floor: float) -> float | str:
    """An amplitude, or ``< floor`` where it is below the numerical error floor."""
    return f"< {floor:.1e}" if value is None else value


def _figure(res: Propagation, title: str) -> Any:
    from mftheory.plotting import mode_amplitude_figure

    idx = figure_modes(res)
    labels = [
        f"f = {freq_label([int(x) for x in res.frequency[i]])}, |lambda| = {abs(res.lam[i]):.3g}"
        for i in idx
    ]
    anchor = np.array([max(int(res.fit_window[i, 0]), int(res.layers[0])) for i in idx])
    return mode_amplitude_figure(
        res.layers,
        res.amplitude[:, idx],
        labels,
        res.predicted_rate[idx],
        floor=res.error_floor,
        anchor=anchor,
        title=title.split("\n")[0],
    )
