"""``mftheory fixed-point``: every mean-field quantity at one (sigma_w, sigma_b) point."""

import math
from typing import Annotated, Any

import typer

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

__all__ = ["fixed_point"]

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

Q0 = Annotated[
    str,
    typer.Option(
        "--q0",
        help="Initial q of the q-map iteration; the fixed point reached from it is reported.",
        metavar="FLOAT",
    ),
]


def fixed_point(
    act: Act = "tanh",
    sigma_w: SigmaW = None,
    sigma_w2: SigmaW2 = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = None,
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
    q0: Q0 = "1",
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
    from mftheory.cli.output import (
        Column,
        Messages,
        Records,
        Report,
        activation_fields,
        check_output_path,
        emit,
        scalar,
        settings_of,
    )
    from mftheory.cli.params import DEFAULT_SIGMA_B2, load_activation, parse_number, scale_option
    from mftheory.errors import MFTheoryError
    from mftheory.meanfield.fixed_points import fixed_point as solve

    messages = Messages(quiet)
    activation, notes = load_activation(act, negative_slope, alpha)
    weight = scale_option("w", sigma_w, sigma_w2)
    if weight is None:
        raise MFTheoryError("give the weight scale: --sigma-w or --sigma-w2")
    bias = scale_option("b", sigma_b, sigma_b2, default=DEFAULT_SIGMA_B2)
    assert bias is not None
    q0_value = parse_number("--q0", q0)
    if q0_value <= 0:
        raise MFTheoryError(f"--q0 must be positive, got {q0!r}")
    check_output_path(output)
    for note in notes:
        messages.warn(note)

    fp = solve(activation, sigma_w2=weight.value, sigma_b2=bias.value, q0=q0_value)
    w2, b2 = scalar(fp.sigma_w2), scalar(fp.sigma_b2)
    phase = str(fp.phase.reshape(-1)[0])
    record: dict[str, Any] = {
        **activation_fields(activation),
        "sigma_w": math.sqrt(w2),
        "sigma_w2": w2,
        "sigma_b": math.sqrt(b2),
        "sigma_b2": b2,
        "q0": q0_value,
        **{
            key: scalar(getattr(fp, key))
            for key in ("q_star", "c_star", "chi_1", "chi_c", "chi_q", "xi_c", "xi_q", "xi_grad")
        },
        "phase": phase,
    }
    if phase == "divergent":
        messages.warn(
            f"no finite fixed point: q* diverges for {activation.label} at sigma_w2 = {w2:g},"
            f" sigma_b2 = {b2:g} (phase 'divergent'; the quantities are null in JSON)"
        )
    rows = [{"quantity": key, "value": record[key], "meaning": text} for key, text in QUANTITIES]
    report = Report(
        command="fixed-point",
        payload=record,
        settings=settings_of(fp),
        table=Records(
            [
                Column("quantity", justify="left"),
                Column("value"),
                Column("meaning", justify="left", wrap=True),
            ],
            rows,
            title=f"Fixed point of {activation.label}",
        ),
        csv=Records([Column(key) for key in record if key != "activation_params"], [record]),
    )
    emit(report, fmt=fmt, output=output, messages=messages)
