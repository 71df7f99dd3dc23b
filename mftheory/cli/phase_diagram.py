"""``mftheory phase-diagram``: the (sigma_w^2, sigma_b^2) plane as a figure or a grid."""

import enum
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .options import Act, Alpha, Format, NegativeSlope, OutputFormat, Quiet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mftheory.critical import CriticalPoint
    from mftheory.fixed_points import FixedPoint

    from .output import Report

__all__ = ["DEFAULT_SIGMA_B2_RANGE", "DEFAULT_SIGMA_W2_RANGE", "phase_diagram"]

#: Default grid: sigma_w^2 (columns) and sigma_b^2 (rows), START:STOP:COUNT.
DEFAULT_SIGMA_W2_RANGE = "0.5:4:81"
DEFAULT_SIGMA_B2_RANGE = "0:1:61"

#: Grid quantities written to JSON, CSV and npz (each B rows of W values).
GRID_FIELDS = ("q_star", "c_star", "chi_1", "chi_c", "chi_q", "xi_c", "xi_q")


class ColourQuantity(str, enum.Enum):
    """What the figure's colour shows."""

    xi_c = "xi_c"
    q_star = "q_star"
    c_star = "c_star"
    chi_1 = "chi_1"


SigmaWRange = Annotated[
    str | None,
    typer.Option(
        "--sigma-w",
        help="Weight standard deviations START:STOP:COUNT (squared for the sigma_w^2 axis).",
        metavar="RANGE",
    ),
]
SigmaW2Range = Annotated[
    str | None,
    typer.Option(
        "--sigma-w2",
        help="Weight variances START:STOP:COUNT (evenly spaced, both ends included).  "
        f"[default: {DEFAULT_SIGMA_W2_RANGE}]",
        metavar="RANGE",
    ),
]
SigmaBRange = Annotated[
    str | None,
    typer.Option(
        "--sigma-b",
        help="Bias standard deviations START:STOP:COUNT (squared for the sigma_b^2 axis).",
        metavar="RANGE",
    ),
]
SigmaB2Range = Annotated[
    str | None,
    typer.Option(
        "--sigma-b2",
        help=f"Bias variances START:STOP:COUNT.  [default: {DEFAULT_SIGMA_B2_RANGE}]",
        metavar="RANGE",
    ),
]
Colour = Annotated[
    ColourQuantity,
    typer.Option("--color", "--colour", help="Quantity shown by the colour.", case_sensitive=False),
]
LogScale = Annotated[
    bool | None,
    typer.Option(
        "--log/--linear",
        help="Colour scale.  [default: log for xi_c and q_star, linear otherwise]",
        show_default=False,
    ),
]
FigureOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to PATH, format by suffix: a figure (.png, .svg, .pdf) or the grid "
        "(.json, .csv, .npz).",
        dir_okay=False,
        metavar="PATH",
    ),
]


def _report(fp: "FixedPoint", cp: "CriticalPoint", color: str, log: bool | None) -> "Report":
    """The grid as JSON/CSV/npz, a per-bias summary table, and the figure maker."""
    import numpy as np

    from .output import Column, Records, Report, activation_fields, settings_of

    activation = fp.activation
    w2 = np.asarray(fp.sigma_w2, dtype=np.float64)[0, :]
    b2 = np.asarray(fp.sigma_b2, dtype=np.float64)[:, 0]
    shape = (b2.size, w2.size)
    grids = {
        key: np.broadcast_to(np.asarray(getattr(fp, key), float), shape) for key in GRID_FIELDS
    }
    phase = np.broadcast_to(np.asarray(fp.phase).astype(str), shape)
    critical_w2 = np.asarray(cp.sigma_w2, dtype=np.float64).reshape(-1)

    payload: dict[str, Any] = {
        **activation_fields(activation),
        "sigma_w2": w2,
        "sigma_b2": b2,
        "sigma_w": np.sqrt(w2),
        "sigma_b": np.sqrt(b2),
        **grids,
        "phase": phase,
        "critical_sigma_w2": critical_w2,
    }
    summary = [
        {
            "sigma_b": math.sqrt(float(b2[i])),
            "sigma_b2": float(b2[i]),
            "critical_sigma_w2": float(critical_w2[i]),
            **{
                name: int((phase[i] == name).sum())
                for name in ("ordered", "critical", "chaotic", "divergent")
            },
        }
        for i in range(b2.size)
    ]
    long_rows = [
        {
            "sigma_w": math.sqrt(float(w2[j])),
            "sigma_w2": float(w2[j]),
            "sigma_b": math.sqrt(float(b2[i])),
            "sigma_b2": float(b2[i]),
            **{key: float(grids[key][i, j]) for key in GRID_FIELDS},
            "phase": str(phase[i, j]),
        }
        for i in range(b2.size)
        for j in range(w2.size)
    ]
    long_columns = [Column(key) for key in long_rows[0]]
    arrays = {
        "sigma_w2": w2,
        "sigma_b2": b2,
        **grids,
        "phase": phase,
        "critical_sigma_w2": critical_w2,
    }

    def figure() -> "Figure":
        from mftheory.plotting import phase_diagram_figure

        return phase_diagram_figure(fp, quantity=color, log=log, critical=cp)

    title = (
        f"Phase diagram of {activation.label}: {w2.size} sigma_w^2 values in"
        f" [{w2[0]:g}, {w2[-1]:g}], grid points per phase"
    )
    return Report(
        command="phase-diagram",
        payload=payload,
        settings=settings_of(fp),
        table=Records(
            [
                Column("sigma_b", "sigma_b"),
                Column("sigma_b2", "sigma_b^2"),
                Column("critical_sigma_w2", "critical sigma_w^2"),
                Column("ordered"),
                Column("critical"),
                Column("chaotic"),
                Column("divergent"),
            ],
            summary,
            title=title,
        ),
        csv=Records(long_columns, long_rows),
        arrays=arrays,
        figure=figure,
        json_indent=None,
    )


def phase_diagram(
    act: Act = "tanh",
    sigma_w: SigmaWRange = None,
    sigma_w2: SigmaW2Range = None,
    sigma_b: SigmaBRange = None,
    sigma_b2: SigmaB2Range = None,
    color: Colour = ColourQuantity.xi_c,
    log: LogScale = None,
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
    fmt: Format = None,
    output: FigureOutput = None,
    quiet: Quiet = False,
) -> None:
    """The (sigma_w^2, sigma_b^2) phase diagram: ordered and chaotic regions, critical line.

    -o with .png, .svg or .pdf draws the plane coloured by --color (default xi_c, log scale),
    with the critical line chi_1 = 1 on top and the divergent region (no finite q*) in grey.
    --format json|csv (or -o .json/.csv/.npz) writes the grid itself: q_star, c_star, chi_1,
    chi_c, chi_q, xi_c, xi_q and phase, each as B rows of W values (row i belongs to
    sigma_b2[i]); CSV has one row per point. The table shows, per bias, the critical sigma_w^2
    and how many grid points lie in each phase.

    Example:

    \b
        mftheory phase-diagram -o phase.png
        mftheory phase-diagram --act erf --sigma-w2 0.5:4:50 --sigma-b2 0:1:40 --format json
    """
    import numpy as np

    from mftheory.critical import critical_point
    from mftheory.fixed_points import fixed_point

    from .output import Messages, check_output_path, emit
    from .params import load_activation, scale_option

    messages = Messages(quiet)
    activation, notes = load_activation(act, negative_slope, alpha)
    if sigma_w is None and sigma_w2 is None:
        sigma_w2 = DEFAULT_SIGMA_W2_RANGE
    if sigma_b is None and sigma_b2 is None:
        sigma_b2 = DEFAULT_SIGMA_B2_RANGE
    weight = scale_option("w", sigma_w, sigma_w2, range_only=True, min_count=2)
    bias = scale_option("b", sigma_b, sigma_b2, range_only=True, min_count=2)
    assert weight is not None and bias is not None
    check_output_path(output, figures=True)
    for note in notes:
        messages.warn(note)

    w2, b2 = weight.variance, bias.variance
    with messages.status(f"solving {b2.size} x {w2.size} fixed points for {activation.label}"):
        fp = fixed_point(activation, sigma_w2=w2[None, :], sigma_b2=b2[:, None])
        cp = critical_point(activation, sigma_b2=b2, settings=fp.settings)
    n_div = int((np.asarray(fp.phase) == "divergent").sum())
    if n_div:
        messages.note(f"{n_div} of {w2.size * b2.size} grid points have no finite q* (divergent)")
    report = _report(fp, cp, color.value, log)
    if output is None and fmt in (None, OutputFormat.table):
        messages.note("write the figure with -o phase.png, the grid with --format json or csv")
    emit(report, fmt=fmt, output=output, messages=messages)
