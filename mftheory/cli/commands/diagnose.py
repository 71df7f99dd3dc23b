"""``mftheory diagnose``: where a common initialisation sits, and the nearest critical point."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from mftheory.cli.commands.fixed_point import QUANTITIES, quantity_table
from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE
from mftheory.cli.options import (
    Act,
    Alpha,
    Format,
    NegativeSlope,
    Output,
    Quiet,
    SigmaB,
    SigmaW,
    SigmaW2,
)
from mftheory.cli.params import Choice, ChoiceEnum, Gain, Int, ScaleText, ScaleValue

__all__ = ["InitScheme", "diagnose"]


class InitScheme(ChoiceEnum):
    """The named schemes of ``--init`` (``mftheory.meanfield.diagnosis.INIT_SCHEMES``)."""

    he = "he"
    xavier = "xavier"
    lecun = "lecun"
    pytorch_default = "pytorch-default"


_INIT = Choice(InitScheme, "initialisation")
GainOption = Annotated[
    float | None,
    typer.Option(
        "--gain",
        metavar="EXPR",
        help="Gain g of the weights, Var w = g^2 / fan_in (sigma_w = g): a number or an "
        "expression such as 5/3 or sqrt(2). With --init xavier: xavier's gain.",
        parser=Gain(),
    ),
]
Init = Annotated[
    InitScheme | None,
    typer.Option(
        "--init",
        metavar=_INIT.metavar,
        help="A named scheme: he (sigma_w^2 = 2), xavier (fan_in = fan_out: gain^2), lecun (1), "
        "pytorch-default (nn.Linear/nn.Conv: 1/3, biases of variance 1/(3 fan_in)).",
        parser=_INIT,
    ),
]
FanIn = Annotated[
    int | None,
    typer.Option(
        "--fan-in",
        metavar="INT",
        help="Fan-in of the layers, for the bias variance of --init pytorch-default.",
        parser=Int(1),
    ),
]
BiasVariance = Annotated[
    ScaleValue,
    typer.Option(
        "--sigma-b2",
        help="Bias variance sigma_b^2 (the named schemes initialise biases to zero; "
        "pytorch-default with --fan-in: 1/(3 fan_in)).",
        metavar="FLOAT",
        parser=ScaleText("variance"),
    ),
]

EXTRA: tuple[tuple[str, str], ...] = (
    ("max_trainable_depth", "depth beyond which training is predicted to fail (6 xi_c)"),
    ("nearest_critical_sigma_w", "critical sigma_w (chi_1 = 1) at the same bias"),
    ("nearest_critical_sigma_w2", "critical sigma_w^2 at the same bias"),
)


def diagnose(
    ctx: typer.Context,
    act: Act = "tanh",
    gain: GainOption = None,
    init: Init = None,
    sigma_w: SigmaW = None,
    sigma_w2: SigmaW2 = None,
    sigma_b: SigmaB = None,
    sigma_b2: BiasVariance = 0.0,  # type: ignore[assignment]
    fan_in: FanIn = None,
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
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
    from mftheory.cli.common import activation_fields, resolve_scale, settings_of, start
    from mftheory.cli.degenerate import (
        DEGENERATE_ROWS,
        degenerate_fields,
        degenerate_title,
        note_degenerate,
    )
    from mftheory.cli.output import Report, emit
    from mftheory.cli.render import Column, Records
    from mftheory.meanfield.diagnosis import diagnose_init

    messages, activation = start(
        ctx, act=act, negative_slope=negative_slope, alpha=alpha, quiet=quiet, output=output
    )
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert bias is not None
    w2, source, scheme_b2 = _weights(ctx, gain, init, sigma_w, sigma_w2, fan_in, bool(bias.option))
    if bias.option:
        b2 = bias.value
    elif scheme_b2 is not None:
        b2 = scheme_b2
    else:
        b2 = bias.value
        messages.note(f"no bias given: sigma_b^2 = {b2:g} (biases initialised to zero)")
    if fan_in is not None and init is None:
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
    deg, degenerate = degenerate_fields(result.fixed)
    verdict = result.verdict()
    if deg is not None and deg.kind != "divergent":
        note_degenerate(deg, messages)
        # 6 xi_c needs an exponential correlation scale: there is none here
        degenerate["max_trainable_depth"] = None
        verdict = (
            f"{result.fixed.phase}, degenerate ({deg.kind}): correlations"
            f" {deg.correlation_approach}, no xi_c; gradients scale by chi_1 ="
            f" {float(result.fixed.chi_1):.6g} per layer"
        )
        degenerate["verdict"] = verdict
    record.update(degenerate)
    rows: list[dict[str, Any]] = [
        {"quantity": "init", "value": source, "meaning": "how the weights were given"}
    ]
    rows += [
        {"quantity": key, "value": record.get(key), "meaning": text}
        for key, text in (*QUANTITIES, *EXTRA, *(DEGENERATE_ROWS if deg is not None else ()))
        if key != "activation"
    ]
    report = Report(
        command="diagnose",
        payload=record,
        settings=settings_of(result.fixed),
        table=quantity_table(
            rows,
            degenerate_title(f"{activation.label} initialised by {source}: {verdict}", deg),
        ),
        csv=Records(
            [Column(k) for k in record if k not in ("activation_params", "note")], [record]
        ),
    )
    emit(report, fmt=fmt, output=output, messages=messages)


def _weights(
    ctx: typer.Context,
    gain: float | None,
    init: InitScheme | None,
    sigma_w: ScaleValue | None,
    sigma_w2: ScaleValue | None,
    fan_in: int | None,
    bias_given: bool,
) -> tuple[float, str, float | None]:
    """The weight variance, how it was given, and the bias variance of the scheme (if any).

    Raises
    ------
    MFTheoryError
        The weights given more than one way or not at all; pytorch-default without --fan-in
        and without a bias.
    """
    from mftheory.cli.common import resolve_scale
    from mftheory.errors import MFTheoryError
    from mftheory.meanfield.diagnosis import init_scale

    weight = resolve_scale(ctx, "w", sigma_w, sigma_w2)
    if weight is not None and (init is not None or gain is not None):
        raise MFTheoryError("give the weights one way: --gain, --sigma-w/--sigma-w2 or --init")
    if weight is None and init is None and gain is None:
        raise MFTheoryError("give the weights: --gain, --sigma-w, --sigma-w2 or --init")
    if init is not None:
        w2, scheme_b2 = init_scale(init.value, gain=gain, fan_in=fan_in)
        source = f"init {init.value}" + ("" if gain is None else f" (gain {gain:g})")
        if init is InitScheme.pytorch_default and scheme_b2 is None and not bias_given:
            raise MFTheoryError(
                "--init pytorch-default draws biases of variance 1/(3 fan_in): give --fan-in"
                " (or --sigma-b/--sigma-b2)"
            )
        return w2, source, scheme_b2
    if gain is not None:
        return gain * gain, f"gain {gain:g}", None
    assert weight is not None
    return weight.value, "given", None
