"""``mftheory isometry``: which initialisations reach dynamical isometry at a given depth."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE
from mftheory.cli.options import Act, Alpha, Format, NegativeSlope, Output, Quiet
from mftheory.cli.params import Int, Number, ScaleText, ScaleValue

__all__ = ["ISOMETRY_SIGMA_B2", "isometry"]

#: Bias variance of the tanh rows when neither --sigma-b nor --sigma-b2 is given.
ISOMETRY_SIGMA_B2 = 1e-5


from mftheory.cli.commands.spectrum import MAX_SPECTRUM_DEPTH, solver_failures  # noqa: E402

DepthOpt = Annotated[
    int,
    typer.Option(
        "--depth",
        help=f"Number of layers L, 2 to {MAX_SPECTRUM_DEPTH}.",
        metavar="INT",
        parser=Int(2, MAX_SPECTRUM_DEPTH),
    ),
]
SigmaBOpt = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-b",
        help="Bias standard deviation of the tanh rows (instead of --sigma-b2).",
        metavar="FLOAT",
        parser=ScaleText("standard deviation"),
    ),
]
SigmaB2Opt = Annotated[
    ScaleValue,
    typer.Option(
        "--sigma-b2",
        help="Bias variance of the tanh rows.",
        metavar="FLOAT",
        parser=ScaleText("variance"),
    ),
]
MaxSpreadOpt = Annotated[
    float,
    typer.Option(
        "--max-spread",
        help="Largest p95/p5 ratio of singular values called isometric.",
        metavar="FLOAT",
        parser=Number(1.0, strict=True),
    ),
]


def isometry(
    ctx: typer.Context,
    act: Act = "tanh",
    depth: DepthOpt = 100,
    sigma_b: SigmaBOpt = None,
    sigma_b2: SigmaB2Opt = ISOMETRY_SIGMA_B2,  # type: ignore[assignment]
    max_spread: MaxSpreadOpt = 10.0,
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """Which initialisations reach dynamical isometry at a given depth.

    One row each for the activation (tanh by default) at criticality with Gaussian and with
    orthogonal weights, a CNN with Delta-Orthogonal kernels (the same spectrum as the
    orthogonal network), ReLU with He's sigma_w^2 = 2, and ReLU with looks-linear parameter
    sharing (Burkholz & Dubatovka). Columns: the predicted 5%, 50% and 95% quantiles of the
    singular values s of the input-output Jacobian, the spread p95/p5 of s, the share of s
    that are exactly 0, and whether that is dynamical isometry (spread <= --max-spread, no
    zeros). Every row has mean s^2 = 1 (criticality); docs/theory.md section 5.

    Example:

    \b
        mftheory isometry --depth 100
        mftheory isometry --depth 1000 --sigma-b2 0.05 --format json
    """
    from mftheory.cli.common import resolve_scale, start
    from mftheory.cli.degenerate import length_fields
    from mftheory.cli.output import Report, emit
    from mftheory.cli.render import Column, Records
    from mftheory.spectrum.isometry import isometry_table

    messages, activation = start(
        ctx, act=act, negative_slope=negative_slope, alpha=alpha, quiet=quiet, output=output
    )
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert bias is not None
    with messages.status("solving for five spectra"), solver_failures():
        table = isometry_table(
            depth=depth, act=activation, sigma_b2=bias.value, max_spread=max_spread
        )
    rows = [_row(row) for row in table]
    json_rows = []
    for row in table:
        spec = row.spectrum
        deg, degenerate = length_fields(spec.activation, spec.sigma_w2, spec.sigma_b2, spec.q_star)
        if deg is not None:
            messages.note(f"{row.name}: {degenerate['note']}")
        json_rows.append({**row.as_dict(), **degenerate})
    columns = [
        Column("network", justify="left"),
        Column("sigma_w2", "sigma_w^2"),
        Column("sigma_b2", "sigma_b^2"),
        Column("s_p5", "s 5%"),
        Column("s_p50", "s 50%"),
        Column("s_p95", "s 95%"),
        Column("spread", "p95/p5"),
        Column("zero_share", "share s = 0"),
        Column("isometric", "isometric", justify="left"),
    ]
    report = Report(
        command="isometry",
        payload={"depth": depth, "max_spread": max_spread, "rows": json_rows},
        settings=table[0].spectrum.settings.as_dict(),
        table=Records(
            columns,
            rows,
            title=f"Dynamical isometry at depth {depth} (s = singular values of J; mean s^2 = 1)",
        ),
        csv=Records([Column("name"), *columns], rows),
    )
    emit(report, fmt=fmt, output=output, messages=messages)


def _row(row: Any) -> dict[str, Any]:
    """A table row: quantiles and spread of the singular values s (not of x = s^2)."""
    from mftheory.cli.render import format_log10

    lq = row.spectrum.log10_quantiles
    return {
        "name": row.name,
        "network": row.network,
        "sigma_w2": row.spectrum.sigma_w2,
        "sigma_b2": row.spectrum.sigma_b2,
        "s_p5": format_log10(0.5 * lq["0.05"]),
        "s_p50": format_log10(0.5 * lq["0.5"]),
        "s_p95": format_log10(0.5 * lq["0.95"]),
        "spread": format_log10(0.5 * (lq["0.95"] - lq["0.05"])),
        "zero_share": row.zero_share,
        "isometric": "yes" if row.isometric else "no",
    }
