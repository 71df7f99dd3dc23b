"""``mftheory reproduce``: the paper's Fig. S4 (mode decay) and Fig. 4(b) (sorted |lambda_f|)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from mftheory.cli.modes import (
    Backend,
    BackendName,
    Bootstrap,
    Channels,
    Depth,
    Device,
    Networks,
    Seed,
)
from mftheory.cli.options import (
    DEFAULT_DPI,
    DEFAULT_FIGSIZE,
    Dpi,
    FigSize,
    FigureOutput,
    Format,
    Quiet,
)
from mftheory.cli.params import Choice, ChoiceEnum, Number

if TYPE_CHECKING:
    from mftheory.cli.output import Report

__all__ = ["Figure", "reproduce"]


class Figure(ChoiceEnum):
    """Figures ``reproduce`` knows."""

    fig_s4 = "fig-s4"
    fig_4b = "fig-4b"


_FIGURE = Choice(Figure, "figure")
_PERTURBATION_HELP = (
    "fig-s4: multiply the paper's perturbation (smaller: closer to the linear regime; the "
    "variance reduction keeps the noise proportional)."
)


FigureOpt = Annotated[
    Figure,
    typer.Argument(
        metavar=_FIGURE.metavar,
        help="fig-s4 (multiple depth scales, appendix F) or fig-4b "
        "(sorted |lambda_f| of GS0..GS4).",
        show_default=False,
        parser=_FIGURE,
    ),
]
PerturbationOpt = Annotated[
    float,
    typer.Option(
        "--perturbation",
        metavar="FLOAT",
        help=_PERTURBATION_HELP,
        parser=Number(0.0, strict=True),
    ),
]
OldScaleOpt = Annotated[
    float | None,
    typer.Option("--scale", hidden=True, parser=Number(0.0, strict=True)),
]


def reproduce(
    ctx: typer.Context,
    figure: FigureOpt,
    depth: Depth = 40,
    channels: Channels = 300,
    networks: Networks = 400,
    seed: Seed = 0,
    bootstrap: Bootstrap = 200,
    perturbation: PerturbationOpt = 1.0,
    old_scale: OldScaleOpt = None,
    backend: Backend = BackendName.numpy,
    device: Device = None,
    fmt: Format = None,
    output: FigureOutput = None,
    figsize: FigSize = DEFAULT_FIGSIZE,
    dpi: Dpi = DEFAULT_DPI,
    quiet: Quiet = False,
) -> None:
    """Reproduce a figure of Xiao et al. (2018) with its exact settings.

    fig-s4: erf, sigma_w = 1.5, sigma_b = 0.5, 1D images of 10 pixels, kernel 3,
    v = [0.025, 0.95, 0.025]; the fixed point perturbed on its first cyclic diagonal by the
    Fourier profile -(1/6)[1, 2/3, (2/3)^3, (2/3)^5, (2/3)^4, (2/3)^2, (2/3)^4, (2/3)^5,
    (2/3)^3, 2/3]; an ensemble of finite networks against chi_c* lambda_f per mode.

    fig-4b: the 64 values |lambda_f| of the 3x3 variance vectors GS0 (delta) .. GS4 (uniform)
    on 8x8 images, each sorted in descending order.

    Example:

    \b
        mftheory reproduce fig-s4 -o figS4.png
        mftheory reproduce fig-4b --format csv
    """
    from mftheory.cli.common import begin, pick_alias
    from mftheory.cli.modes import comparison_report, run_ensemble
    from mftheory.cli.output import FigureStyle, emit
    from mftheory.cnn.paper import figure_s4_setup
    from mftheory.errors import MFTheoryError

    style = FigureStyle(figsize.inches, dpi)
    messages = begin(quiet, output, figures=True)
    if figure is Figure.fig_4b:
        emit(_figure_4b(), fmt=fmt, output=output, messages=messages, style=style)
        return
    factor = pick_alias(
        ctx, ("perturbation", "--perturbation", perturbation), ("old_scale", "--scale", old_scale)
    )
    setup = figure_s4_setup(factor)
    if float(np.linalg.eigvalsh(setup.sigma0).min()) < 0:
        raise MFTheoryError(
            f"--perturbation {factor:g}: Sigma* - eps0 is not a covariance"
            " (not positive semi-definite)"
        )
    cmp = run_ensemble(
        messages,
        networks,
        act=setup.activation,
        v=setup.v,
        sigma_w2=setup.sigma_w2,
        sigma_b2=setup.sigma_b2,
        depth=depth,
        channels=channels,
        Sigma0=setup.sigma0,
        image_shape=setup.n,
        seed=seed,
        bootstrap=bootstrap,
        backend=backend.value,
        device=device,
    )
    head = (
        f"Fig. S4: erf, sigma_w = 1.5, sigma_b = 0.5, n = 10, v = [0.025, 0.95, 0.025],"
        f" perturbation x {factor:g}"
    )
    payload = {
        "figure": "fig-s4",
        "activation": "erf",
        "sigma_w": 1.5,
        "sigma_w2": setup.sigma_w2,
        "sigma_b": 0.5,
        "sigma_b2": setup.sigma_b2,
        "v": setup.v.tolist(),
        "depth": depth,
        "shape": [setup.n],
        "scale": factor,
        "eps0_first_diagonal_fourier": setup.eps_fourier,
    }
    report = comparison_report("reproduce", cmp, head, payload, messages, None)
    emit(report, fmt=fmt, output=output, messages=messages, style=style)


def _figure_4b() -> Report:
    """Fig. 4(b): the sorted |lambda_f| of GS0..GS4 as a table, arrays and a figure."""
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column, Records
    from mftheory.cnn.modes import variance_vector
    from mftheory.cnn.paper import figure_4b_eigenvalues

    values = figure_4b_eigenvalues(8, 3)
    names = list(values)
    rows = [{"index": i, **{n: float(values[n][i]) for n in names}} for i in range(64)]
    payload = {
        "figure": "fig-4b",
        "n": 8,
        "kernel": 3,
        "v": {n: variance_vector(n, kernel=3, dim=2).tolist() for n in names},
        "abs_lambda_sorted": values,
    }
    title = (
        "Fig. 4(b): |lambda_f| of GS0 (delta) .. GS4 (uniform), 3x3 kernel, 8x8 images, sorted"
        " (GSj = (1 - j/4) delta + (j/4) uniform)"
    )
    columns = [Column("index", "rank"), *(Column(n, n.upper()) for n in names)]
    return Report(
        command="reproduce",
        payload=payload,
        settings={},
        table=Records(columns, rows, title=title),
        arrays={n: values[n] for n in names},
        figure=lambda: _plot_4b(values, title),
    )


def _plot_4b(values: dict[str, Any], title: str) -> Any:
    from mftheory.plotting import eigenvalue_figure, mathtext_label

    return eigenvalue_figure(values, title=mathtext_label(title.split(",")[0]))
