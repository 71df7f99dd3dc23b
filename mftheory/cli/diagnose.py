"""``mftheory diagnose``: where a common initialisation sits, and the nearest critical point."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from mftheory.cli.fixed_point import QUANTITIES
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

__all__ = ["diagnose", "parse_gain"]

Gain = Annotated[
    str | None,
    typer.Option(
        "--gain",
        metavar="EXPR",
        help="Gain g of the weights, Var w = g^2 / fan_in (sigma_w = g): a number or an "
        "expression such as 5/3 or sqrt(2). With --init xavier: xavier's gain.",
        show_default=False,
    ),
]
Init = Annotated[
    str | None,
    typer.Option(
        "--init",
        metavar="he|xavier|lecun|pytorch-default",
        help="A named scheme: he (sigma_w^2 = 2), xavier (fan_in = fan_out: gain^2), lecun (1), "
        "pytorch-default (nn.Linear/nn.Conv: 1/3, biases of variance 1/(3 fan_in)).",
        show_default=False,
    ),
]
FanIn = Annotated[
    str | None,
    typer.Option(
        "--fan-in",
        metavar="INT",
        help="Fan-in of the layers, for the bias variance of --init pytorch-default.",
        show_default=False,
    ),
]

EXTRA: tuple[tuple[str, str], ...] = (
    ("max_trainable_depth", "depth beyond which training is predicted to fail (6 xi_c)"),
    ("nearest_critical_sigma_w", "critical sigma_w (chi_1 = 1) at the same bias"),
    ("nearest_critical_sigma_w2", "critical sigma_w^2 at the same bias"),
)


def parse_gain(text: str) -> float:
    """A gain from ``--gain``: a number or a constant expression (``5/3``, ``sqrt(2)``),
    parsed by the safe expression parser, never ``eval``."""
    import numpy as np

    from mftheory.activations.expression import parse_activation
    from mftheory.errors import MFTheoryError

    try:
        expr = parse_activation(text)
    except MFTheoryError as exc:
        raise MFTheoryError(f"--gain {text!r} is not a number or an expression: {exc}") from None
    values = expr.phi(np.array([-1.3, 0.0, 2.7]))
    if not np.all(values == values[0]):
        raise MFTheoryError(f"--gain {text!r} depends on x; give a constant such as 5/3")
    gain = float(values[0])
    if not math.isfinite(gain) or gain < 0:
        raise MFTheoryError(f"--gain must be finite and >= 0, got {text!r} = {gain!r}")
    return gain


def diagnose(
    act: Act = "tanh",
    gain: Gain = None,
    init: Init = None,
    sigma_w: SigmaW = None,
    sigma_w2: SigmaW2 = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = None,
    fan_in: FanIn = None,
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """Where an initialisation sits: phase, depth scale, trainable depth, nearest critical point.

    Give the weights by --gain (Var w = gain^2 / fan_in, as torch.nn.init's gain), --sigma-w or
    --sigma-w2, or a named --init. Biases: --sigma-b/--sigma-b2, else 0 (what the named
    schemes leave), except --init pytorch-default with --fan-in, whose biases have variance
    1/(3 fan_in). Prints the fields of fixed-point, then the depth beyond which training is
    predicted to fail (6 xi_c, Schoenholz et al. 2017) and the critical sigma_w at the same bias.

    Example:

    \b
        mftheory diagnose --act tanh --gain 5/3
        mftheory diagnose --act tanh --init pytorch-default --fan-in 256
        mftheory diagnose --act relu --init he --format json
    """
    from mftheory.cli.output import (
        Column,
        Messages,
        Records,
        Report,
        activation_fields,
        check_output_path,
        emit,
        settings_of,
    )
    from mftheory.cli.params import load_activation, parse_int, scale_option
    from mftheory.errors import MFTheoryError
    from mftheory.meanfield.diagnosis import diagnose_init, init_scale

    messages = Messages(quiet)
    activation, notes = load_activation(act, negative_slope, alpha)
    for note in notes:
        messages.warn(note)
    check_output_path(output)
    weight = scale_option("w", sigma_w, sigma_w2)
    bias = scale_option("b", sigma_b, sigma_b2)
    fan = parse_int("--fan-in", fan_in)
    g = None if gain is None else parse_gain(gain)
    given = [name for name, v in (("--sigma-w/--sigma-w2", weight), ("--init", init)) if v]
    if weight is not None and (init is not None or g is not None):
        raise MFTheoryError("give the weights one way: --gain, --sigma-w/--sigma-w2 or --init")
    if not given and g is None:
        raise MFTheoryError("give the weights: --gain, --sigma-w, --sigma-w2 or --init")
    source: str
    scheme_b2: float | None = None
    if init is not None:
        w2, scheme_b2 = init_scale(init, gain=g, fan_in=fan)
        source = f"init {init.strip().lower()}" + ("" if g is None else f" (gain {g:g})")
        if init.strip().lower() == "pytorch-default" and scheme_b2 is None and bias is None:
            raise MFTheoryError(
                "--init pytorch-default draws biases of variance 1/(3 fan_in): give --fan-in"
                " (or --sigma-b/--sigma-b2)"
            )
    elif g is not None:
        w2, source = g * g, f"gain {g:g}"
    else:
        assert weight is not None
        w2, source = float(weight.value), "given"
    if bias is not None:
        b2 = float(bias.value)
    elif scheme_b2 is not None:
        b2 = scheme_b2
    else:
        b2 = 0.0
        messages.note("no bias given: sigma_b^2 = 0 (biases initialised to zero)")
    if fan is not None and init is None:
        messages.warn("--fan-in only matters with --init pytorch-default; ignored")

    result = diagnose_init(activation, sigma_w2=w2, sigma_b2=b2)
    record: dict[str, Any] = {
        **activation_fields(activation),
        "init": source,
        "sigma_w": math.sqrt(w2),
        **{k: v for k, v in result.as_dict().items() if k != "activation"},
        "sigma_b": math.sqrt(b2),
    }
    if result.fixed.phase == "divergent":
        messages.warn(f"no finite fixed point for {activation.label} at sigma_w2 = {w2:g}")
    rows: list[dict[str, Any]] = [
        {"quantity": "init", "value": source, "meaning": "how the weights were given"}
    ]
    rows += [
        {"quantity": key, "value": record.get(key), "meaning": text}
        for key, text in (*QUANTITIES, *EXTRA)
        if key != "activation"
    ]
    report = Report(
        command="diagnose",
        payload=record,
        settings=settings_of(result.fixed),
        table=Records(
            [
                Column("quantity", justify="left"),
                Column("value"),
                Column("meaning", justify="left", wrap=True),
            ],
            rows,
            title=f"{activation.label} initialised by {source}: {result.verdict()}",
        ),
        csv=Records([Column(k) for k in record if k != "activation_params"], [record]),
    )
    emit(report, fmt=fmt, output=output, messages=messages)
