"""``mftheory propagate``: real images through the mean-field CNN covariance map, mode by mode."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE, DEFAULT_SIGMA_B2
from mftheory.cli.modes import (
    Depth,
    ImageDim,
    ImageOption,
    ModesShown,
    Normalization,
    Normalize,
    figure_modes,
    freq_label,
    mode_columns,
    mode_layer_columns,
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

if TYPE_CHECKING:
    from mftheory.cli.output import Report
    from mftheory.cnn.propagation import Propagation

__all__ = ["propagate"]


def propagate(
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
    depth: Depth = 100,
    modes: ModesShown = 10,
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    fmt: Format = None,
    output: FigureOutput = None,
    figsize: FigSize = DEFAULT_FIGSIZE,
    dpi: Dpi = DEFAULT_DPI,
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
    Without a finite fixed point (e.g. relu at sigma_w^2 >= 2 with a bias) Sigma* - Sigma^l is
    undefined: the table then follows the modes of the correlation matrix (1 - Sigma^l / q^l,
    q^l the mean variance), and JSON/CSV give null (empty) Sigma* fields and the reason.
    -o modes.png draws the amplitudes against depth with the predicted slopes.

    Example:

    \b
        mftheory propagate --image sample:digit0 --depth 200 -o modes.png
        mftheory propagate --image digit.png --act tanh --v uniform --depth 200
        mftheory propagate --image a.npy --image b.npy --format json -o out.json
    """
    from mftheory.cli.common import resolve_scale, start
    from mftheory.cli.modes import cnn_setup, load_inputs, note_slopes, require_cnn_budget
    from mftheory.cli.output import FigureStyle, emit
    from mftheory.cnn.propagation import propagate as run

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
    weight = resolve_scale(ctx, "w", sigma_w, sigma_w2)
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert bias is not None
    b2 = bias.value
    pixels = images[0, 0].size
    require_cnn_budget(images.shape[0] * pixels, pixels, depth)
    v_used, w2, source = cnn_setup(activation, v, kernel, images.ndim - 2, weight, b2, messages)
    with messages.progress("propagating", points=depth * images[0, 0].size ** 2) as bar:
        res = run(
            activation, v=v_used, sigma_w2=w2, sigma_b2=b2, depth=depth, images=images, progress=bar
        )
    if res.unavailable is None:
        note_slopes(res.fixed, messages)
    else:
        messages.warn(res.unavailable)
    payload: dict[str, Any] = {
        "sigma_w": math.sqrt(w2),
        "sigma_w2": w2,
        "sigma_w2_source": source,
        "sigma_b": math.sqrt(b2),
        "sigma_b2": b2,
        "v": res.v.tolist(),
        "depth": depth,
        "shape": list(res.image_shape),
        "images": [str(p) for p in image],
        "channels": int(images.shape[1]),
        "normalize": normalize.value,
    }
    head = (
        f"{activation.label}, sigma_w^2 = {w2:.6g}{' (critical)' if source == 'critical' else ''},"
        f" sigma_b^2 = {b2:.6g}, {described}, depth {depth}"
    )
    emit(_report(res, payload, head, modes), fmt=fmt, output=output, messages=messages, style=style)


def _report(res: Propagation, params: dict[str, Any], head: str, shown: int) -> Report:
    """JSON (parameters, fixed point, Sigma^L, every mode's amplitudes), the mode table, the
    long-format CSV, the npz arrays and the figure."""
    from mftheory.cli.common import activation_fields, settings_of
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column, ColumnArrays, Records

    fp = res.fixed
    layers_n = params["depth"]
    rows = res.mode_rows()
    table_rows = [
        {
            **row,
            "f": freq_label(row["frequency"]),
            "fit": None if row["fit_layers"] is None else "{}-{}".format(*row["fit_layers"]),
            "amplitude_first": _or_floor(row["amplitude_first"], res.error_floor[0]),
            "amplitude_last": _or_floor(row["amplitude_last"], res.error_floor[-1]),
            "correlation_fit": None
            if row["correlation_fit_layers"] is None
            else "{}-{}".format(*row["correlation_fit_layers"]),
            "correlation_first": _or_floor(row["correlation_first"], res.correlation_floor[0]),
            "correlation_last": _or_floor(row["correlation_last"], res.correlation_floor[-1]),
        }
        for row in rows[:shown]
    ]
    chi_c = float(fp.chi_c)
    title, columns = _title_and_columns(res, head, layers_n)
    payload: dict[str, Any] = {
        **activation_fields(fp.activation),
        **params,
        "q_star": float(fp.q_star),
        "c_star": float(fp.c_star),
        "chi_c": chi_c,
        "chi_q": float(fp.chi_q),
        "phase": str(fp.phase),
        "sigma_star_unavailable": res.unavailable,
        "covariance": res.covariance,
        "modes": rows,
        "amplitudes": {
            "layers": res.layers,
            "frequency": res.frequency,
            "off_diagonal": res.amplitude,
            "diagonal": res.amplitude_diagonal,
            "error_floor": res.error_floor,
        },
        "correlation": {
            "q_mean": res.q_mean,
            "off_diagonal": res.correlation_amplitude,
            "diagonal": res.correlation_amplitude_diagonal,
            "error_floor": res.correlation_floor,
        },
        "methods": res.methods,
    }
    csv_data = mode_layer_columns(
        res.layers,
        res,
        amplitude=res.amplitude,
        amplitude_diagonal=res.amplitude_diagonal,
        error_floor=res.error_floor[:, None],
        q_mean=res.q_mean[:, None],
        correlation_amplitude=res.correlation_amplitude,
        correlation_amplitude_diagonal=res.correlation_amplitude_diagonal,
        correlation_floor=res.correlation_floor[:, None],
        **({} if res.unavailable is None else {"note": np.array(res.unavailable)}),
    )
    return Report(
        command="propagate",
        payload=payload,
        settings={**settings_of(fp), "pair_tol": res.tol},
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
            "q_mean": res.q_mean,
            "correlation_amplitude": res.correlation_amplitude,
            "correlation_rate": res.correlation_rate,
        },
        figure=lambda: _figure(res, title),
        json_indent=None if res.covariance.size > 4096 else 2,
    )


def _title_and_columns(res: Propagation, head: str, layers_n: int) -> tuple[str, list[Any]]:
    """The table's title and columns: Sigma* - Sigma^l modes, or (without a finite q*) the
    correlation matrix's modes."""
    from mftheory.cli.render import Column

    fp = res.fixed
    chi_c = float(fp.chi_c)
    first = int(res.layers[0])
    if res.unavailable is None:
        title = (
            f"{head}\n"
            f"q* = {float(fp.q_star):.6g}, c* = {float(fp.c_star):.6g}, chi_c* = {chi_c:.6g},"
            f" chi_q* = {float(fp.chi_q):.6g}; amplitudes of Sigma* - Sigma^l resolved above"
            f" {res.error_floor[-1]:.2g} (error floor at layer {layers_n})"
        )
        columns = mode_columns(
            [Column("amplitude_first", "amplitude l=1"), Column("amplitude_last", f"l={layers_n}")]
        )
    else:
        title = (
            f"{head}\n{'no finite q*' if not math.isfinite(float(fp.q_star)) else 'q* not unique'}:"
            " Sigma* - Sigma^l is undefined; amplitudes of the"
            f" correlation matrix's modes, 1 - Sigma^l / q^l (q^{layers_n} ="
            f" {res.q_mean[-1]:.6g}), resolved above {res.correlation_floor[-1]:.2g}"
        )
        columns = [
            Column("f", "f"),
            Column("lambda", "lambda_f"),
            Column("correlation_rate", "measured rate"),
            Column("correlation_fit", "fit layers"),
            Column("correlation_first", f"1 - Sigma/q l={first}"),
            Column("correlation_last", f"l={layers_n}"),
        ]
    return title, columns


def _or_floor(value: float | None, floor: float) -> float | str:
    """An amplitude, or ``< floor`` where it is below the numerical error floor."""
    return f"< {floor:.1e}" if value is None else value


def _figure(res: Propagation, title: str) -> Any:
    from mftheory.cli.modes import mode_legend
    from mftheory.plotting import mathtext_label, mode_amplitude_figure

    idx = figure_modes(res)
    labels = [mode_legend(res.frequency[i], res.lam[i]) for i in idx]
    anchor = np.array([max(int(res.fit_window[i, 0]), int(res.layers[0])) for i in idx])
    # without Sigma*: the correlation modes, no predicted slopes (NaN: no dashed lines)
    available = res.unavailable is None
    return mode_amplitude_figure(
        res.layers,
        (res.amplitude if available else res.correlation_amplitude)[:, idx],
        labels,
        res.predicted_rate[idx],
        floor=res.error_floor if available else res.correlation_floor,
        anchor=anchor,
        title=mathtext_label(title.split("\n")[0]),
    )
