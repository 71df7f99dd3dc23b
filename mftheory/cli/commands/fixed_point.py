"""``mftheory fixed-point``: every mean-field quantity at one (sigma_w, sigma_b) point."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE, DEFAULT_SIGMA_B2
from mftheory.cli.options import (
    Act,
    Alpha,
    Format,
    NegativeSlope,
    Output,
    Quiet,
    SigmaB,
    SigmaB2,
    SigmaW,
    SigmaW2,
)
from mftheory.cli.params import Number

__all__ = ["QUANTITIES", "fixed_point", "quantity_table"]

#: (key, meaning) of each row of the table, in order.
QUANTITIES: tuple[tuple[str, str], ...] = (
    ("activation", "activation phi"),
    ("sigma_w", "weight standard deviation"),
    ("sigma_w2", "weight variance"),
    ("sigma_b", "bias standard deviation"),
    ("sigma_b2", "bias variance"),
    ("q_star", "fixed-point pre-activation variance q*"),
    ("c_star", "fixed-point correlation c*"),
    ("chi_1", "slope of the C-map at c = 1 (gradient growth per layer)"),
    ("chi_c", "slope of the C-map at c*"),
    ("chi_q", "slope of the q-map at q*"),
    ("xi_c", "correlation depth scale -1/log(chi_c*)"),
    ("xi_q", "variance depth scale -1/log(chi_q*)"),
    ("xi_grad", "gradient depth scale 1/|log(chi_1)|"),
    ("phase", "ordered (chi_1 < 1), chaotic (chi_1 > 1), critical or divergent"),
)
#: The fixed point's own fields, as ``FixedPoint.as_dict`` names them.
FIXED_POINT_FIELDS = ("q_star", "c_star", "chi_1", "chi_c", "chi_q", "xi_c", "xi_q", "xi_grad")

Q0 = Annotated[
    float,
    typer.Option(
        "--q0",
        help="Initial q of the q-map iteration; the fixed point reached from it is reported.",
        metavar="FLOAT",
        parser=Number(0.0, strict=True),
    ),
]


def quantity_table(rows: list[dict[str, Any]], title: str) -> Any:
    """The quantity / value / meaning table of fixed-point and diagnose."""
    from mftheory.cli.render import Column, Records

    return Records(
        [
            Column("quantity", justify="left"),
            Column("value"),
            Column("meaning", justify="left", wrap=True),
        ],
        rows,
        title=title,
    )


def fixed_point(
    ctx: typer.Context,
    act: Act = "tanh",
    sigma_w: SigmaW = None,
    sigma_w2: SigmaW2 = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = DEFAULT_SIGMA_B2,  # type: ignore[assignment]
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    q0: Q0 = 1.0,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """All mean-field quantities at one initialisation (sigma_w, sigma_b).

    Prints q*, c*, chi_1, chi_c*, chi_q*, the depth scales xi_c, xi_q and 1/|log chi_1|, and
    the phase: ordered, chaotic, critical, or divergent when the variance map has no finite
    fixed point (then the quantities are null in JSON and the exit code is still 0). The
    weight scale is required (--sigma-w or --sigma-w2).

    Example:

    \b
        mftheory fixed-point --act tanh --sigma-w2 1.5 --sigma-b2 0.05
        mftheory fixed-point --act relu --sigma-w 1.2 --sigma-b 0 --format json
    """
    from mftheory.cli.common import activation_fields, resolve_scale, scalar, settings_of, start
    from mftheory.cli.common import scale_fields as scales
    from mftheory.cli.degenerate import (
        DEGENERATE_ROWS,
        degenerate_fields,
        degenerate_title,
        note_degenerate,
    )
    from mftheory.cli.output import Report, emit
    from mftheory.cli.render import Column, Records
    from mftheory.errors import MFTheoryError
    from mftheory.meanfield.fixed_points import fixed_point as solve

    messages, activation = start(
        ctx, act=act, negative_slope=negative_slope, alpha=alpha, quiet=quiet, output=output
    )
    weight = resolve_scale(ctx, "w", sigma_w, sigma_w2)
    if weight is None:
        raise MFTheoryError("give the weight scale: --sigma-w or --sigma-w2")
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert bias is not None

    fp = solve(activation, sigma_w2=weight.value, sigma_b2=bias.value, q0=q0)
    w2, b2 = scalar(fp.sigma_w2), scalar(fp.sigma_b2)
    phase = str(fp.phase)
    record: dict[str, Any] = {
        **activation_fields(activation),
        **scales(w2, b2),
        "q0": q0,
        **{key: scalar(getattr(fp, key)) for key in FIXED_POINT_FIELDS},
        "phase": phase,
    }
    if phase == "divergent":
        messages.warn(
            f"no finite fixed point: q* diverges for {activation.label} at sigma_w2 = {w2:g},"
            f" sigma_b2 = {b2:g} (phase 'divergent'; the quantities are null in JSON)"
        )
    deg, degenerate = degenerate_fields(fp)
    if deg is not None and deg.kind != "divergent":
        note_degenerate(deg, messages)
    # JSON from the result's own as_dict() (non-finite values already null), plus the CLI's
    # fields; the table and CSV keep the floats (a table shows inf and nan).
    solved = fp.as_dict()
    payload = {**record, **{key: solved[key] for key in (*FIXED_POINT_FIELDS, "phase")}}
    record.update(degenerate)
    payload.update(degenerate)
    shown = QUANTITIES + (DEGENERATE_ROWS if deg is not None else ())
    rows = [{"quantity": key, "value": record[key], "meaning": text} for key, text in shown]
    report = Report(
        command="fixed-point",
        payload=payload,
        settings=settings_of(fp),
        table=quantity_table(rows, degenerate_title(f"Fixed point of {activation.label}", deg)),
        csv=Records(
            [Column(key) for key in record if key not in ("activation_params", "note")], [record]
        ),
    )
    emit(report, fmt=fmt, output=output, messages=messages)
