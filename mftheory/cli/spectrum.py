"""``mftheory spectrum`` and ``mftheory isometry``: the Jacobian's singular-value spectrum."""

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from mftheory.cli.options import (
    Act,
    Alpha,
    Format,
    NegativeSlope,
    Quiet,
    SigmaB,
    SigmaB2,
    SigmaW,
    SigmaW2,
)

__all__ = ["format_log10", "isometry", "spectrum"]

Depth = Annotated[str, typer.Option("--depth", help="Number of layers L.", metavar="INT")]
Weights = Annotated[
    str,
    typer.Option("--weights", help="Weight distribution: orthogonal or gaussian.", metavar="KIND"),
]
FigureOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to PATH, format by suffix: a figure (.png, .svg, .pdf), or the data"
        " (.json, .csv: the density, .npz).",
        dir_okay=False,
        metavar="PATH",
    ),
]


def format_log10(value: float) -> str:
    """A number given by its log10, as text even beyond the float range (``1.23e-1792``)."""
    if value == -math.inf:
        return "0"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    if -300 < value < 300:
        return f"{10.0**value:.4g}"
    exp = math.floor(value)
    mant = 10.0 ** (value - exp)
    if mant >= 9.9995:
        mant, exp = 1.0, exp + 1
    return f"{mant:.3f}e{exp:+d}"


def _depth(text: str, low: int = 1) -> int:
    from mftheory.cli.params import parse_int

    value = parse_int("--depth", text, low=low, high=100_000)
    assert value is not None
    return value


def _weights(text: str) -> str:
    from mftheory.errors import MFTheoryError
    from mftheory.spectrum.density import WEIGHTS

    kind = text.strip().lower()
    if kind not in WEIGHTS:
        raise MFTheoryError(f"--weights must be one of {', '.join(WEIGHTS)}, got {text!r}")
    return kind


def spectrum(
    act: Act = "tanh",
    depth: Depth = "100",
    weights: Weights = "orthogonal",
    sigma_w: SigmaW = None,
    sigma_w2: SigmaW2 = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = None,
    points: Annotated[
        str, typer.Option("--points", help="Points of the density grid.", metavar="INT")
    ] = "1000",
    empirical: Annotated[
        str | None,
        typer.Option(
            "--empirical",
            help="Also sample networks of width N and compare (O(L N^3) time).",
            metavar="N",
        ),
    ] = None,
    draws: Annotated[
        str, typer.Option("--draws", help="Sampled networks for --empirical.", metavar="INT")
    ] = "1",
    seed: Annotated[
        str, typer.Option("--seed", help="Seed of the sampled networks.", metavar="INT")
    ] = "0",
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
    fmt: Format = None,
    output: FigureOutput = None,
    quiet: Quiet = False,
) -> None:
    """The predicted spectrum of the input-output Jacobian J of a deep network.

    Free probability (THEORY.md section 5) gives the law of the squared singular values x of
    J at the fixed point q*: its exact mean chi_1^L and variance, its quantiles (5%, 50%,
    95%), any atom (ReLU: half the singular values are 0) and its density. sigma_w defaults
    to the critical value for sigma_b (chi_1 = 1). Quantiles too small for a float are printed
    from their logarithm (deep Gaussian networks put most of x below 1e-300).

    --empirical N samples networks of width N (numpy), prints their moments and quantiles
    beside the prediction and overlays their histogram on the figure. -o spectrum.png draws
    the density; --format csv (or -o .csv) writes the density grid; --format json everything.

    Example:

    \b
        mftheory spectrum --act tanh --sigma-b2 0.05 --depth 100 --weights orthogonal
        mftheory spectrum --weights gaussian --depth 8 --empirical 400 -o spectrum.png
    """
    import numpy as np

    from mftheory.cli.output import (
        Column,
        Messages,
        Records,
        Report,
        activation_fields,
        check_output_path,
        emit,
    )
    from mftheory.cli.params import DEFAULT_SIGMA_B2, load_activation, parse_int, scale_option
    from mftheory.spectrum.density import SpectrumSettings, jacobian_spectrum

    messages = Messages(quiet)
    activation, notes = load_activation(act, negative_slope, alpha)
    L = _depth(depth)
    kind = _weights(weights)
    bias = scale_option("b", sigma_b, sigma_b2, default=DEFAULT_SIGMA_B2)
    weight = scale_option("w", sigma_w, sigma_w2)
    assert bias is not None
    n_points = parse_int("--points", points, low=2, high=1_000_000)
    width = parse_int("--empirical", empirical, low=2, high=20_000)
    n_draws = parse_int("--draws", draws, low=1, high=10_000)
    seed_value = parse_int("--seed", seed, low=0)
    assert n_points is not None and n_draws is not None and seed_value is not None
    check_output_path(output, figures=True)
    for note in notes:
        messages.warn(note)

    settings = SpectrumSettings(points=n_points)
    with messages.status("solving for the spectrum"):
        spec = jacobian_spectrum(
            activation,
            depth=L,
            sigma_b2=bias.value,
            sigma_w2=None if weight is None else weight.value,
            weights=kind,
            settings=settings,
        )
    if weight is None:
        messages.note(f"sigma_w2 = {spec.sigma_w2:.6g}: critical for sigma_b2 = {bias.value:g}")
    if spec.tail > 1e-3:
        messages.warn(f"{spec.tail:.2g} of the mass lies below the density grid (far tail)")

    sampled = None
    if width is not None:
        from mftheory.montecarlo.jacobians import sample_jacobian_spectrum

        with messages.status(f"sampling {n_draws} network(s) of width {width}"):
            sampled = sample_jacobian_spectrum(
                activation,
                sigma_w2=spec.sigma_w2,
                sigma_b2=spec.sigma_b2,
                depth=L,
                width=width,
                weights=kind,
                q0=spec.q_star,
                draws=n_draws,
                seed=seed_value,
            )
        if sampled.unresolved_share > 0:
            messages.warn(
                f"{sampled.unresolved_share:.1%} of the sampled x lie below float64 resolution"
                f" ({sampled.floor:.3g}): their quantiles are not measurable this way"
            )

    rows = _summary_rows(spec, sampled)
    columns = [Column("quantity", justify="left"), Column("predicted")]
    if sampled is not None:
        columns.append(Column("sampled", f"sampled (N = {width}, {n_draws} draw(s))"))
    payload: dict[str, Any] = {**activation_fields(activation), **spec.as_dict()}
    payload.pop("settings", None)
    if sampled is not None:
        payload["empirical"] = sampled.as_dict()
    density_rows = [
        {
            "log10_x": float(t / math.log(10.0)),
            "x": float(np.exp(t)),
            "p": float(r * np.exp(-t)) if t > -700 else math.inf,
            "p_log10": float(r * math.log(10.0)),
        }
        for t, r in zip(spec.log_x, spec.log_density, strict=True)
    ]

    def figure() -> Any:
        from mftheory.plotting import spectrum_figure

        return spectrum_figure(
            spec,
            sampled=None if sampled is None else sampled.all_values,
            floor=0.0 if sampled is None else sampled.floor,
            label="" if sampled is None else f"sampled, N = {width}",
        )

    title = (
        f"Jacobian spectrum: {activation.label}, {kind} weights, depth {L},"
        f" sigma_w^2 = {spec.sigma_w2:.6g}, sigma_b^2 = {spec.sigma_b2:g}"
    )
    report = Report(
        command="spectrum",
        payload=payload,
        settings=settings.as_dict(),
        table=Records(columns, rows, title=title),
        csv=Records([Column("log10_x"), Column("x"), Column("p"), Column("p_log10")], density_rows),
        figure=figure,
    )
    emit(report, fmt=fmt, output=output, messages=messages)


def _summary_rows(spec: Any, sampled: Any) -> list[dict[str, Any]]:
    """Rows quantity / predicted / sampled of the spectrum table."""
    zero = sum(m for x, m in spec.atoms if x == 0)
    rows: list[dict[str, Any]] = [
        {"quantity": "q*", "predicted": spec.q_star},
        {"quantity": "chi_1 = sigma_w^2 E(phi'^2)", "predicted": spec.chi_1},
        {"quantity": "mean of x = chi_1^L", "predicted": spec.mean},
        {"quantity": "variance of x", "predicted": spec.variance},
        {"quantity": "variance / mean^2", "predicted": spec.normalized_variance},
    ]
    if sampled is not None:
        rows[2]["sampled"] = f"{sampled.mean:.4g}" + _pm(sampled.mean_se)
        rows[3]["sampled"] = f"{sampled.variance:.4g}" + _pm(sampled.variance_se)
        rows[4]["sampled"] = sampled.variance / sampled.mean**2 if sampled.mean > 0 else math.nan
    for key, value in spec.log10_quantiles.items():
        row: dict[str, Any] = {"quantity": f"quantile {key} of x", "predicted": format_log10(value)}
        if sampled is not None:
            q = sampled.quantile(float(key))
            row["sampled"] = (
                f"{q:.4g}" if q >= sampled.floor else f"< {sampled.floor:.2g} (unresolved)"
            )
        rows.append(row)
    rows.append(
        {
            "quantity": "spread: p95 / p5 of singular values",
            "predicted": format_log10(
                0.5 * (spec.log10_quantiles["0.95"] - spec.log10_quantiles["0.05"])
            )
            if {"0.05", "0.95"} <= spec.log10_quantiles.keys()
            else "nan",
        }
    )
    rows.append({"quantity": "share of singular values = 0", "predicted": zero})
    for x, m in spec.atoms:
        if x > 0:
            rows.append({"quantity": f"atom at x = {x:.6g}", "predicted": m})
    return rows


def _pm(se: float) -> str:
    return f" ± {se:.2g}" if math.isfinite(se) else ""


def isometry(
    act: Act = "tanh",
    depth: Depth = "100",
    sigma_b: SigmaB = None,
    sigma_b2: Annotated[
        str | None,
        typer.Option(
            "--sigma-b2",
            help="Bias variance of the tanh rows.  [default: 1e-05]",
            metavar="FLOAT",
        ),
    ] = None,
    max_spread: Annotated[
        str,
        typer.Option(
            "--max-spread",
            help="Largest p95/p5 ratio of singular values called isometric.",
            metavar="FLOAT",
        ),
    ] = "10",
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
    fmt: Format = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the data to PATH, format by suffix: .json, .csv, .npz.",
            dir_okay=False,
            metavar="PATH",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Which initialisations reach dynamical isometry at a given depth.

    One row each for the activation (tanh by default) at criticality with Gaussian and with
    orthogonal weights, a CNN with Delta-Orthogonal kernels (the same spectrum as the
    orthogonal network), ReLU with He's sigma_w^2 = 2, and ReLU with looks-linear parameter
    sharing (Burkholz & Dubatovka). Columns: the predicted 5%, 50% and 95% quantiles of the
    singular values s of the input-output Jacobian, the spread p95/p5 of s, the share of s
    that are exactly 0, and whether that is dynamical isometry (spread <= --max-spread, no
    zeros). Every row has mean s^2 = 1 (criticality); THEORY.md section 5.

    Example:

    \b
        mftheory isometry --depth 100
        mftheory isometry --depth 1000 --sigma-b2 0.05 --format json
    """
    from mftheory.cli.output import Column, Messages, Records, Report, check_output_path, emit
    from mftheory.cli.params import load_activation, parse_number, scale_option
    from mftheory.spectrum.isometry import isometry_table

    messages = Messages(quiet)
    activation, notes = load_activation(act, negative_slope, alpha)
    L = _depth(depth, low=2)
    bias = scale_option("b", sigma_b, sigma_b2, default=1e-5)
    assert bias is not None
    limit = parse_number("--max-spread", max_spread)
    if limit <= 1:
        from mftheory.errors import MFTheoryError

        raise MFTheoryError(f"--max-spread must be > 1, got {max_spread!r}")
    check_output_path(output)
    for note in notes:
        messages.warn(note)
    with messages.status("solving for five spectra"):
        table = isometry_table(depth=L, act=activation, sigma_b2=bias.value, max_spread=limit)
    rows = []
    for row in table:
        lq = row.spectrum.log10_quantiles
        rows.append(
            {
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
        )
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
        payload={
            "depth": L,
            "max_spread": limit,
            "rows": [r.as_dict() for r in table],
        },
        settings=table[0].spectrum.settings.as_dict(),
        table=Records(
            columns,
            rows,
            title=f"Dynamical isometry at depth {L} (s = singular values of J; mean s^2 = 1)",
        ),
        csv=Records([Column("name"), *columns], rows),
    )
    emit(report, fmt=fmt, output=output, messages=messages)
