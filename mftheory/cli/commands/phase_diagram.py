"""``mftheory phase-diagram``: the (sigma_w^2, sigma_b^2) plane as a figure or a grid."""

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE
from mftheory.cli.options import (
    DEFAULT_DPI,
    DEFAULT_FIGSIZE,
    Act,
    Alpha,
    Dpi,
    FigSize,
    FigureOutput,
    Format,
    NegativeSlope,
    OutputFormat,
    Quiet,
)
from mftheory.cli.params import Choice, ChoiceEnum, ScaleText, ScaleValue
from mftheory.errors import MFTheoryError

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from mftheory.activations.builtins import Activation
    from mftheory.cli.messages import ProgressCallback
    from mftheory.cli.output import Report
    from mftheory.meanfield.critical import CriticalPoint
    from mftheory.meanfield.fixed_points import FixedPoint

    FloatArray = NDArray[np.float64]
    IntArray = NDArray[np.intp]

__all__ = [
    "DEFAULT_SIGMA_B2_RANGE",
    "DEFAULT_SIGMA_W2_RANGE",
    "MAX_FIGURE_POINTS",
    "MAX_TABLE_ROWS",
    "phase_diagram",
    "solve_grid",
    "thin_for_figure",
]

#: Default grid: sigma_w^2 (columns) and sigma_b^2 (rows), START:STOP:COUNT.
DEFAULT_SIGMA_W2_RANGE = "0.5:4:81"
DEFAULT_SIGMA_B2_RANGE = "0:1:61"

#: Grid quantities written to JSON, CSV and npz (each B rows of W values).
GRID_FIELDS = ("q_star", "c_star", "chi_1", "chi_c", "chi_q", "xi_c", "xi_q")
#: Phases counted per bias in the table.
PHASE_NAMES = ("ordered", "critical", "chaotic", "divergent")
#: Most biases the table shows (evenly spaced); data formats always hold the whole grid.
MAX_TABLE_ROWS = 40
#: Most grid values per axis a figure draws (evenly spaced): more cells than pixels only cost
#: time.
MAX_FIGURE_POINTS = 1000


class ColourQuantity(ChoiceEnum):
    """What the figure's colour shows."""

    xi_c = "xi_c"
    q_star = "q_star"
    c_star = "c_star"
    chi_1 = "chi_1"


_COLOUR = Choice(ColourQuantity, "colour quantity")
SigmaWRange = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-w",
        help="Weight standard deviations START:STOP:COUNT, squared for the sigma_w^2 axis "
        "(instead of --sigma-w2).",
        metavar="RANGE",
        parser=ScaleText("standard deviation", ranges="only", min_count=2),
    ),
]
SigmaW2Range = Annotated[
    ScaleValue,
    typer.Option(
        "--sigma-w2",
        help="Weight variances START:STOP:COUNT (evenly spaced, both ends included).",
        metavar="RANGE",
        parser=ScaleText("variance", ranges="only", min_count=2),
    ),
]
SigmaBRange = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-b",
        help="Bias standard deviations START:STOP:COUNT, squared for the sigma_b^2 axis "
        "(instead of --sigma-b2).",
        metavar="RANGE",
        parser=ScaleText("standard deviation", ranges="only", min_count=2),
    ),
]
SigmaB2Range = Annotated[
    ScaleValue,
    typer.Option(
        "--sigma-b2",
        help="Bias variances START:STOP:COUNT.",
        metavar="RANGE",
        parser=ScaleText("variance", ranges="only", min_count=2),
    ),
]
Colour = Annotated[
    ColourQuantity,
    typer.Option(
        "--color",
        "--colour",
        help="Quantity shown by the colour.",
        metavar=_COLOUR.metavar,
        parser=_COLOUR,
    ),
]
LogScale = Annotated[
    bool | None,
    typer.Option(
        "--log/--linear",
        help="Colour scale; without either, log for xi_c and q_star, linear otherwise.",
        show_default=False,
    ),
]


def solve_grid(
    activation: "Activation",
    w2: "FloatArray",
    b2: "FloatArray",
    *,
    progress: "ProgressCallback | None" = None,
    chunk_rows: int | None = None,
) -> "FixedPoint":
    """The fixed points on the grid ``sigma_w2 = w2`` (columns) x ``sigma_b2 = b2`` (rows).

    ``mftheory.meanfield.grid.phase_grid``: arrays of shape ``(b2.size, w2.size)``, computed in
    chunks of rows with ``progress(rows_done, rows_total)`` called after each.
    """
    from mftheory.meanfield.grid import phase_grid

    return phase_grid(
        activation, sigma_w2=w2, sigma_b2=b2, progress=progress, chunk_rows=chunk_rows
    )


#: Bytes per grid point: the solver's and the report's float64 grids (q_star ... xi_q, the
#: phase text) and their conversion for a data file, as measured on 300,000-point grids.
POINT_BYTES = 500
#: Seconds per grid point of the solve, measured, doubled for slower machines.
POINT_SECONDS = 2e-5


def _require_budget(rows: int, cols: int) -> None:
    """Refuse, before solving, a grid of ``rows x cols`` points that needs more than the memory
    limit (``POINT_BYTES`` a point) or an hour (``POINT_SECONDS`` a point)."""
    from mftheory.cli.budget import require_memory, require_time

    points = float(rows) * cols
    what = f"the {rows} x {cols} grid ({points:.6g} points x {POINT_BYTES} bytes)"
    require_memory(points * POINT_BYTES, what)
    require_time(points * POINT_SECONDS, f"solving the {rows} x {cols} grid")


def _summary_rows(b2: "FloatArray") -> "IntArray":
    """Indices of the biases the table shows: all, or at most MAX_TABLE_ROWS evenly spaced."""
    import numpy as np

    if b2.size <= MAX_TABLE_ROWS:
        return np.arange(b2.size)
    return np.unique(np.linspace(0, b2.size - 1, MAX_TABLE_ROWS).round().astype(np.intp))


def thin_for_figure(fp: "FixedPoint", limit: int = MAX_FIGURE_POINTS) -> "FixedPoint":
    """``fp`` with at most ``limit`` evenly spaced values along each axis (both ends kept).

    A figure cannot show more cells than it has pixels; drawing a 4000 x 4000 mesh only costs
    time. The grid written to data files is never thinned.
    """
    import dataclasses

    import numpy as np

    shape = np.shape(fp.q_star)
    rows, cols = (
        np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(np.intp)) for n in shape
    )
    if rows.size == shape[0] and cols.size == shape[1]:
        return fp
    index = np.ix_(rows, cols)
    fields = ("sigma_w2", "sigma_b2", *fp.FIELDS, "phase")
    thinned: dict[str, Any] = {
        key: np.broadcast_to(np.asarray(getattr(fp, key)), shape)[index] for key in fields
    }
    return dataclasses.replace(fp, **thinned)


def _report(fp: "FixedPoint", cp: "CriticalPoint", color: str, log: bool | None) -> "Report":
    """The grid as JSON/CSV/npz, a per-bias summary table, and the figure maker.

    Nothing here converts the grid point by point: JSON and CSV are converted when written,
    npz takes the arrays as they are.
    """
    import numpy as np

    from mftheory.cli.common import activation_fields, settings_of
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column, ColumnArrays, Records

    activation = fp.activation
    w2 = np.asarray(fp.sigma_w2, dtype=np.float64)[0, :]
    b2 = np.asarray(fp.sigma_b2, dtype=np.float64)[:, 0]
    shape = (b2.size, w2.size)
    grids = {
        key: np.broadcast_to(np.asarray(getattr(fp, key), np.float64), shape) for key in GRID_FIELDS
    }
    phase = np.broadcast_to(np.asarray(fp.phase, dtype=str), shape)
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
    shown = _summary_rows(b2)
    counts = {name: (phase[shown] == name).sum(axis=1) for name in PHASE_NAMES}
    summary = [
        {
            "sigma_b": math.sqrt(float(b2[i])),
            "sigma_b2": float(b2[i]),
            "critical_sigma_w2": float(critical_w2[i]),
            **{name: int(counts[name][k]) for name in PHASE_NAMES},
        }
        for k, i in enumerate(shown.tolist())
    ]
    long_format = ColumnArrays(
        [
            Column(key)
            for key in ("sigma_w", "sigma_w2", "sigma_b", "sigma_b2", *GRID_FIELDS, "phase")
        ],
        {
            "sigma_w": np.broadcast_to(np.sqrt(w2), shape),
            "sigma_w2": np.broadcast_to(w2, shape),
            "sigma_b": np.broadcast_to(np.sqrt(b2)[:, None], shape),
            "sigma_b2": np.broadcast_to(b2[:, None], shape),
            **grids,
            "phase": phase,
        },
    )
    arrays = {
        "sigma_w2": w2,
        "sigma_b2": b2,
        **grids,
        "phase": phase,
        "critical_sigma_w2": critical_w2,
    }

    def figure() -> "Figure":
        from mftheory.plotting import phase_diagram_figure

        return phase_diagram_figure(thin_for_figure(fp), quantity=color, log=log, critical=cp)

    title = (
        f"Phase diagram of {activation.label}: {w2.size} sigma_w^2 values in"
        f" [{w2[0]:g}, {w2[-1]:g}], grid points per phase"
    )
    if shown.size < b2.size:
        title += (
            f"\n(showing {shown.size} of {b2.size} sigma_b^2 values, evenly spaced;"
            " the whole grid: --format csv|json or -o FILE.npz)"
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
                *(Column(name) for name in PHASE_NAMES),
            ],
            summary,
            title=title,
        ),
        csv=long_format,
        arrays=arrays,
        figure=figure,
        json_indent=None,
    )


def _check_drawable(weight: Any, bias: Any) -> None:
    """Refuse, before any work, a figure whose axes reach beyond what matplotlib can draw."""
    import numpy as np

    from mftheory.plotting import PHASE_DIAGRAM_AXIS_MAX as top

    for scale, default in ((weight, "--sigma-w2"), (bias, "--sigma-b2")):
        largest = float(np.max(scale.variance))
        if largest > top:
            raise MFTheoryError(
                f"{scale.option or default} reaches a variance of {largest:g}: a phase diagram"
                f" figure shows variances up to {top:g}; write the grid as data instead"
                " (-o FILE.npz, .json or .csv)"
            )


def phase_diagram(
    ctx: typer.Context,
    act: Act = "tanh",
    sigma_w: SigmaWRange = None,
    sigma_w2: SigmaW2Range = DEFAULT_SIGMA_W2_RANGE,  # type: ignore[assignment]
    sigma_b: SigmaBRange = None,
    sigma_b2: SigmaB2Range = DEFAULT_SIGMA_B2_RANGE,  # type: ignore[assignment]
    color: Colour = ColourQuantity.xi_c,
    log: LogScale = None,
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    fmt: Format = None,
    output: FigureOutput = None,
    figsize: FigSize = DEFAULT_FIGSIZE,
    dpi: Dpi = DEFAULT_DPI,
    quiet: Quiet = False,
) -> None:
    """The (sigma_w^2, sigma_b^2) phase diagram: ordered and chaotic regions, critical line.

    -o with .png, .svg or .pdf draws the plane coloured by --color (default xi_c, log scale),
    with the critical line chi_1 = 1 on top and the divergent region (no finite q*) in grey.
    --format json|csv (or -o .json/.csv/.npz) writes the grid itself: q_star, c_star, chi_1,
    chi_c, chi_q, xi_c, xi_q and phase, each as B rows of W values (row i belongs to
    sigma_b2[i]); CSV has one row per point; .npz holds the same names as numpy arrays (the
    fastest for big grids). The table shows, per bias, the critical sigma_w^2 and how many grid
    points lie in each phase (at most 40 biases, evenly spaced).

    Big grids are solved in chunks of rows, with a progress bar on an interactive stderr; a
    figure draws at most 1000 evenly spaced values per axis.

    Example:

    \b
        mftheory phase-diagram -o phase.png
        mftheory phase-diagram --act erf --sigma-w2 0.5:4:50 --sigma-b2 0:1:40 --format json
        mftheory phase-diagram --sigma-w2 0.5:4:1000 --sigma-b2 0.01:1:1000 -o grid.npz
    """
    import numpy as np

    from mftheory.cli.common import resolve_scale, start
    from mftheory.cli.output import FIGURE_SUFFIXES, FigureStyle, emit
    from mftheory.meanfield.critical import critical_point

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
    weight = resolve_scale(ctx, "w", sigma_w, sigma_w2)
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert weight is not None and bias is not None
    w2, b2 = weight.variance, bias.variance
    _require_budget(b2.size, w2.size)
    if output is not None and output.suffix.lower() in FIGURE_SUFFIXES:
        _check_drawable(weight, bias)
    text = f"solving {b2.size} x {w2.size} fixed points for {activation.label}"
    with messages.progress(text, points=b2.size * w2.size) as progress:
        fp = solve_grid(activation, w2, b2, progress=progress)
        cp = critical_point(activation, sigma_b2=b2, settings=fp.settings)
    n_div = int((np.asarray(fp.phase) == "divergent").sum())
    if n_div:
        messages.note(f"{n_div} of {w2.size * b2.size} grid points have no finite q* (divergent)")
    if output is not None and output.suffix.lower() in FIGURE_SUFFIXES:
        if max(w2.size, b2.size) > MAX_FIGURE_POINTS:
            messages.note(
                f"the figure draws at most {MAX_FIGURE_POINTS} evenly spaced values per axis"
                f" of the {b2.size} x {w2.size} grid; -o FILE.npz writes all of it"
            )
    report = _report(fp, cp, color.value, log)
    degenerate = _note_degenerate(fp, messages)
    if degenerate is not None:
        report.payload["degenerate"] = degenerate
    if output is None and fmt in (None, OutputFormat.table):
        messages.note("write the figure with -o phase.png, the grid with --format json or csv")
    emit(report, fmt=fmt, output=output, messages=messages, style=style)


def _note_degenerate(fp: "FixedPoint", messages: Any) -> dict[str, Any] | None:
    """Count the cells at degenerate fixed points (q* = 0, homogeneous phi without bias), say
    what their chi_c and xi_c mean, and return the counts with that convention for JSON."""
    from mftheory.meanfield.degenerate import degenerate_count

    counts = degenerate_count(fp)
    n_hom, n_zero = counts["homogeneous"], counts["zero"]
    if not (n_hom or n_zero):
        return None
    convention = (
        "cells keep chi_c and xi_c of the C-map at q* (chi_c = chi_1 where c* = 1); there the"
        " normalised correlation map has slope 1 at c = 1 (homogeneous phi without bias: for"
        " any sigma_w; q* = 0: in the limit), so correlations have no exponential depth scale"
        " (see fixed-point at one cell)"
    )
    messages.note(
        f"{n_hom + n_zero} grid point(s) are degenerate ({n_hom} homogeneous without bias,"
        f" {n_zero} with q* = 0): their chi_c and xi_c are the C-map's at q*, not a"
        " correlation depth scale (see fixed-point at one of them)"
    )
    return {**counts, "convention": convention}
