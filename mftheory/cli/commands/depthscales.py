"""``mftheory depthscales``: per-Fourier-mode depth scales of a convolution with variance v."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE, DEFAULT_SIGMA_B2
from mftheory.cli.options import (
    Act,
    Alpha,
    Format,
    KernelSide,
    NegativeSlope,
    Output,
    Quiet,
    SigmaB,
    SigmaB2,
    SigmaW2Critical,
    SigmaWCritical,
    VOption,
)
from mftheory.cli.params import Int

if TYPE_CHECKING:
    from mftheory.cli.output import Report
    from mftheory.cnn.modes import ModeTable
    from mftheory.meanfield.fixed_points import FixedPoint

__all__ = ["DEFAULT_N", "depthscales"]

#: Image side per spatial dimension when --n is not given (the paper's: 10 in 1D, 8 in 2D).
DEFAULT_N = {1: 10, 2: 8}

DimOption = Annotated[
    int | None,
    typer.Option(
        "--dim",
        metavar="1|2",
        help="Spatial dimensions; without it, 2 if --v has ';' rows, else 1.",
        parser=Int(1, 2),
    ),
]
NOption = Annotated[
    int | None,
    typer.Option(
        "--n",
        metavar="INT",
        help="Image side in pixels (circular boundaries); without it, 10 in 1D and 8 in 2D "
        "(the paper's).",
        parser=Int(1),
    ),
]


#: Bytes per Fourier mode while its records are built and written (the eigenvalue arrays,
#: the JSON and table records), and seconds per mode of a printed table (rich) or a data format.
MODE_BYTES = 6000
TABLE_SECONDS, DATA_SECONDS = 2e-3, 2e-4


def _require_budget(side: int, d: int, table: bool) -> None:
    """Refuse, before any work, ``side^d`` modes that need too much memory (``MODE_BYTES``
    each) or time (a table row costs ``TABLE_SECONDS``, a JSON/CSV record ``DATA_SECONDS``)."""
    from mftheory.cli.budget import require_memory, require_time

    modes = float(side) ** d
    what = f"--n {side} ({modes:.6g} Fourier modes in {d}D)"
    require_memory(modes * MODE_BYTES, f"{what}, {MODE_BYTES} bytes a mode,")
    require_time(
        modes * (TABLE_SECONDS if table else DATA_SECONDS),
        f"{what}{', printed as a table' if table else ''},",
    )


def _mode_records(
    table: ModeTable, finite: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """JSON modes and table rows of a ModeTable; rates and scales NaN without a fixed point."""
    modes: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for i, mode in enumerate(table.as_rows()):
        raw = {
            "rate": float(table.rate[i]),
            "xi": float(table.xi[i]),
            "rate_q": float(table.rate_q[i]),
            "xi_q": float(table.xi_q_f[i]),
        }
        if not finite:
            raw = dict.fromkeys(raw, math.nan)
        modes.append({**mode, **raw})
        rows.append({**mode, "lambda": complex(table.lam[i]), **raw})
    return modes, rows


def depthscales(
    ctx: typer.Context,
    v: VOption = "uniform",
    kernel: KernelSide = None,
    dim: DimOption = None,
    n: NOption = None,
    act: Act = "tanh",
    sigma_w: SigmaWCritical = None,
    sigma_w2: SigmaW2Critical = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = DEFAULT_SIGMA_B2,  # type: ignore[assignment]
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """Fourier-mode depth scales of a CNN with kernel variance vector v.

    For every spatial frequency f of an n-pixel (n x n in 2D) circular image: the eigenvalue
    lambda_f of the convolution's covariance operator, the per-layer factor chi_c*|lambda_f|
    of a correlation perturbation in that mode, its depth scale xi_f = -1/log(chi_c*|lambda_f|)
    and the diagonal-mode scale -1/log(chi_q*|lambda_f|); most persistent mode first. With no
    weight scale given, the critical sigma_w for --act and the bias is used (a note says so,
    and JSON has "sigma_w2_source": "critical").

    Example:

    \b
        mftheory depthscales --v 0.025,0.95,0.025
        mftheory depthscales --v gs2 --dim 2 --act tanh --sigma-b2 0.05 --format json
    """
    from mftheory.cli.common import (
        normalized_v,
        resolve_scale,
        scalar,
        start,
        variance_vector_of,
        weight_variance,
    )
    from mftheory.cli.degenerate import degenerate_fields, note_degenerate
    from mftheory.cli.output import emit
    from mftheory.cnn.modes import mode_table
    from mftheory.meanfield.fixed_points import fixed_point

    messages, activation = start(
        ctx, act=act, negative_slope=negative_slope, alpha=alpha, quiet=quiet, output=output
    )
    vec = variance_vector_of(v, kernel, 2 if dim is None and ";" in v else dim)
    d = int(vec.ndim)
    side = DEFAULT_N[d] if n is None else n
    _require_budget(side, d, fmt is None and output is None)
    weight = resolve_scale(ctx, "w", sigma_w, sigma_w2)
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert bias is not None
    v_used, v_sum = normalized_v(vec, messages)
    b2 = bias.value
    w2, source = weight_variance(activation, weight, b2, messages)
    fp = fixed_point(activation, sigma_w2=w2, sigma_b2=b2)
    chi_c, chi_q = scalar(fp.chi_c), scalar(fp.chi_q)
    finite = math.isfinite(chi_c) and math.isfinite(chi_q)
    # The rates are magnitudes: a negative slope (possible for non-monotonic activations)
    # alternates the sign of a mode but shrinks it by |chi| |lambda_f| per layer.
    table = mode_table(
        v_used, side, chi_c=abs(chi_c) if finite else 1.0, chi_q=abs(chi_q) if finite else 1.0
    )
    if not finite:
        messages.warn(
            f"no finite fixed point for {activation.label} at sigma_w2 = {w2:g},"
            f" sigma_b2 = {b2:g} (phase '{fp.phase}'): rates and depth scales"
            " are null"
        )
    report = _report(fp, table, finite, source, side, (v, vec, v_used, v_sum))
    deg, degenerate = degenerate_fields(fp)
    if deg is not None and deg.kind != "divergent":
        note_degenerate(deg, messages)
        degenerate["convention"] += (
            "; the mode rates are those of Sigma* - Sigma^l with the C-map's own slope chi_1"
            " (the covariance); modes of the normalised correlations decay by |lambda_f|"
        )
    report.payload.update(degenerate)
    emit(report, fmt=fmt, output=output, messages=messages)


def _report(
    fp: FixedPoint,
    table: ModeTable,
    finite: bool,
    source: str,
    side: int,
    spec: tuple[str, Any, Any, float],
) -> Report:
    """The depthscales report; ``spec`` is (--v as given, v, v normalized, the sum of v)."""
    from mftheory.cli.common import activation_fields, format_v, scalar, settings_of
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column, Records

    v, vec, v_used, v_sum = spec
    w2, b2 = scalar(fp.sigma_w2), scalar(fp.sigma_b2)
    d = int(vec.ndim)
    modes, rows = _mode_records(table, finite)
    params: dict[str, Any] = {
        "sigma_w": math.sqrt(w2),
        "sigma_w2": w2,
        "sigma_w2_source": source,
        "sigma_b": math.sqrt(b2),
        "sigma_b2": b2,
    }
    fixed = {
        key: scalar(getattr(fp, key)) for key in ("q_star", "c_star", "chi_1", "chi_c", "chi_q")
    }
    payload: dict[str, Any] = {
        **activation_fields(fp.activation),
        **params,
        **fixed,
        "xi_c": scalar(fp.xi_c),
        "xi_q": scalar(fp.xi_q),
        "phase": str(fp.phase),
        "dim": d,
        "kernel": list(vec.shape),
        "n": side,
        "v_spec": v,
        "v": v_used.tolist(),
        "v_sum_given": v_sum,
        "modes": modes,
    }
    columns = [
        Column("frequency", "f"),
        Column("lambda", "lambda_f"),
        Column("abs_lambda", "|lambda_f|"),
        Column("rate", "chi_c*|lambda_f|"),
        Column("xi", "xi_f"),
        Column("xi_q", "diagonal-mode scale"),
    ]
    title = (
        f"Fourier modes of {fp.activation.label}, sigma_w = {math.sqrt(w2):.6g}"
        f" (sigma_w^2 = {w2:.6g}{', critical' if source == 'critical' else ''}),"
        f" sigma_b = {math.sqrt(b2):.6g} (sigma_b^2 = {b2:.6g}), chi_c* = {fixed['chi_c']:.6g},"
        f" xi_c = {scalar(fp.xi_c):.6g}, n = {side}\nv = {format_v(v_used)}"
    )
    freq_keys = ["frequency"] if d == 1 else [f"frequency_{k + 1}" for k in range(d)]
    csv_rows = []
    for mode in modes:
        row = {"lambda_imag": 0.0, **mode, **params, "chi_c": fixed["chi_c"]}
        row["chi_q"] = fixed["chi_q"]
        row.update(zip(freq_keys, mode["frequency"], strict=True))
        csv_rows.append(row)
    csv_keys = [*freq_keys, "lambda", "lambda_imag", "abs_lambda", "rate", "xi", "rate_q", "xi_q"]
    csv_keys += [*params, "chi_c", "chi_q"]
    return Report(
        command="depthscales",
        payload=payload,
        settings=settings_of(fp),
        table=Records(columns, rows, title=title),
        csv=Records([Column(key) for key in csv_keys], csv_rows),
    )
