"""``mftheory spectrum``: the predicted singular-value spectrum of the Jacobian."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE, DEFAULT_SIGMA_B2
from mftheory.cli.options import (
    Act,
    Alpha,
    Dpi,
    FigSize,
    FigureOutput,
    Format,
    NegativeSlope,
    Quiet,
    SigmaB,
    SigmaB2,
    SigmaW,
    SigmaW2,
)
from mftheory.cli.params import Choice, ChoiceEnum, FigureSize, Int
from mftheory.cli.render import format_log10

if TYPE_CHECKING:
    from mftheory.cli.output import Report

__all__ = ["MAX_SPECTRUM_DEPTH", "SpectrumDepth", "WeightKind", "solver_failures", "spectrum"]

#: Size (inches) and resolution of the -o figure.
SPECTRUM_FIGSIZE = FigureSize(6.4, 4.2)
SPECTRUM_DPI = 100.0


class WeightKind(ChoiceEnum):
    """Weight distributions (``mftheory.spectrum.density.WEIGHTS``)."""

    orthogonal = "orthogonal"
    gaussian = "gaussian"


_WEIGHTS = Choice(WeightKind, "weight distribution")
#: Deepest --depth whose spectrum the solver resolves (deeper, the law of x spans more than
#: the density grid can follow and the solve stops converging).
MAX_SPECTRUM_DEPTH = 10_000
SpectrumDepth = Annotated[
    int,
    typer.Option(
        "--depth",
        help=f"Number of layers L, 1 to {MAX_SPECTRUM_DEPTH}.",
        metavar="INT",
        parser=Int(1, MAX_SPECTRUM_DEPTH),
    ),
]
Weights = Annotated[
    WeightKind,
    typer.Option(
        "--weights", help="Weight distribution.", metavar=_WEIGHTS.metavar, parser=_WEIGHTS
    ),
]


PointsOpt = Annotated[
    int,
    typer.Option(
        "--points", help="Points of the density grid.", metavar="INT", parser=Int(2, 10**6)
    ),
]
EmpiricalOpt = Annotated[
    int | None,
    typer.Option(
        "--empirical",
        help="Also sample networks of width N and compare (O(L N^3) time).",
        metavar="N",
        parser=Int(2, 20_000),
    ),
]
DrawsOpt = Annotated[
    int,
    typer.Option(
        "--draws", help="Sampled networks for --empirical.", metavar="INT", parser=Int(1, 10**4)
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option("--seed", help="Seed of the sampled networks.", metavar="INT", parser=Int(0)),
]


def spectrum(
    ctx: typer.Context,
    act: Act = "tanh",
    depth: SpectrumDepth = 100,
    weights: Weights = WeightKind.orthogonal,
    sigma_w: SigmaW = None,
    sigma_w2: SigmaW2 = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = DEFAULT_SIGMA_B2,  # type: ignore[assignment]
    points: PointsOpt = 1000,
    empirical: EmpiricalOpt = None,
    draws: DrawsOpt = 1,
    seed: SeedOpt = 0,
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    fmt: Format = None,
    output: FigureOutput = None,
    figsize: FigSize = SPECTRUM_FIGSIZE,
    dpi: Dpi = SPECTRUM_DPI,
    quiet: Quiet = False,
) -> None:
    """The predicted spectrum of the input-output Jacobian J of a deep network.

    Free probability (docs/theory.md section 5) gives the law of the squared singular values x of
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
    from mftheory.cli.common import resolve_scale, start
    from mftheory.cli.degenerate import length_fields
    from mftheory.cli.output import FigureStyle, emit
    from mftheory.spectrum.density import SpectrumSettings, jacobian_spectrum

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
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    weight = resolve_scale(ctx, "w", sigma_w, sigma_w2)
    assert bias is not None
    _require_budget(points, depth, empirical, draws)
    settings = SpectrumSettings(points=points)
    with messages.status("solving for the spectrum"), solver_failures():
        spec = jacobian_spectrum(
            activation,
            depth=depth,
            sigma_b2=bias.value,
            sigma_w2=None if weight is None else weight.value,
            weights=weights.value,
            settings=settings,
        )
    if weight is None:
        messages.note(f"sigma_w2 = {spec.sigma_w2:.6g}: critical for sigma_b2 = {bias.value:g}")
    if spec.tail > 1e-3:
        messages.warn(f"{spec.tail:.2g} of the mass lies below the density grid (far tail)")

    sampled = None
    if empirical is not None:
        from mftheory.montecarlo.jacobians import sample_jacobian_spectrum

        with messages.status(f"sampling {draws} network(s) of width {empirical}"):
            sampled = sample_jacobian_spectrum(
                activation,
                sigma_w2=spec.sigma_w2,
                sigma_b2=spec.sigma_b2,
                depth=depth,
                width=empirical,
                weights=weights.value,
                q0=spec.q_star,
                draws=draws,
                seed=seed,
            )
        if sampled.unresolved_share > 0:
            messages.warn(
                f"{sampled.unresolved_share:.1%} of the sampled x lie below float64 resolution"
                f" ({sampled.floor:.3g}): their quantiles are not measurable this way"
            )
    label = "" if sampled is None else f"N = {empirical}, {draws} draw(s)"
    deg, degenerate = length_fields(activation, spec.sigma_w2, spec.sigma_b2, spec.q_star)
    if deg is not None:
        messages.warn(degenerate["note"])
    report = _report(spec, sampled, label, settings.as_dict(), degenerate)
    emit(report, fmt=fmt, output=output, messages=messages, style=style)


#: Complex work arrays of the density solve: ``points x BINS`` entries (the law of phi'^2 is
#: binned in ``BINS`` values), about ``SOLVE_COPIES`` of them alive at once (Newton's iterate,
#: residual, derivative and their temporaries).
BINS, SOLVE_COPIES = 240, 7
#: Float64 ``N x N`` matrices alive while sampling a width-N network (weights, the Jacobian
#: product, the SVD's workspace), and the sampled products' speed in ``L N^3`` per second.
SAMPLE_COPIES, SAMPLE_RATE = 10, 1e9


@contextlib.contextmanager
def solver_failures() -> Iterator[None]:
    """Turn the density solver's failures (``spectrum: ...``: no convergence on accepted
    input) into ``ComputationFailed``, exit code 1."""
    from mftheory.cli.budget import ComputationFailed
    from mftheory.errors import MFTheoryError

    try:
        yield
    except MFTheoryError as exc:
        if str(exc).startswith("spectrum:"):
            raise ComputationFailed(str(exc)) from None
        raise


def _require_budget(points: int, depth: int, empirical: int | None, draws: int) -> None:
    """Refuse, before any work, a density grid or a sample that needs too much memory or time:
    the solve holds ``16 x points x BINS x SOLVE_COPIES`` bytes; ``--empirical N`` holds
    ``8 x N^2 x SAMPLE_COPIES`` bytes and runs ``draws x L x N^3`` multiply-adds."""
    from mftheory.cli.budget import require_memory, require_time

    require_memory(
        16.0 * points * BINS * SOLVE_COPIES,
        f"the density grid (--points {points}: {points} x {BINS} complex values x {SOLVE_COPIES})",
    )
    if empirical is None:
        return
    n = float(empirical)
    what = f"sampling {draws} network(s) of width {empirical} and depth {depth}"
    require_memory(8.0 * n * n * SAMPLE_COPIES, f"{what} ({SAMPLE_COPIES} matrices of N x N)")
    require_time(draws * depth * n**3 / SAMPLE_RATE, what)


def _report(
    spec: Any, sampled: Any, label: str, settings: dict[str, Any], degenerate: dict[str, Any]
) -> Report:
    """JSON from ``spec.as_dict()`` (and the sample's, and ``degenerate``: what a degenerate
    fixed point means here), the summary table, the density CSV and the figure."""
    import numpy as np

    from mftheory.cli.common import activation_fields
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column, Records

    columns = [Column("quantity", justify="left"), Column("predicted")]
    if sampled is not None:
        columns.append(Column("sampled", f"sampled ({label})"))
    payload: dict[str, Any] = {**activation_fields(spec.activation), **spec.as_dict()}
    payload.pop("settings", None)
    payload.update(degenerate)
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
            label="" if sampled is None else f"sampled, ${label.split(',')[0]}$",
        )

    title = (
        f"Jacobian spectrum: {spec.activation.label}, {spec.weights} weights, depth {spec.depth},"
        f" sigma_w^2 = {spec.sigma_w2:.6g}, sigma_b^2 = {spec.sigma_b2:g}"
    )
    rows = _summary_rows(spec, sampled)
    if degenerate:
        title += f"\n{degenerate['convention']}"
        rows[0]["quantity"] = "q used (q* degenerate)"
    return Report(
        command="spectrum",
        payload=payload,
        settings=settings,
        table=Records(columns, rows, title=title),
        csv=Records([Column("log10_x"), Column("x"), Column("p"), Column("p_log10")], density_rows),
        figure=figure,
    )


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
