"""``mftheory critical``: the weight scale on the critical line chi_1 = 1 for given biases."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE, DEFAULT_SIGMA_B2
from mftheory.cli.options import (
    Act,
    Alpha,
    Format,
    NegativeSlope,
    Output,
    Quiet,
    SigmaB2Range,
    SigmaBRange,
)

if TYPE_CHECKING:
    from mftheory.cli.messages import Messages
    from mftheory.meanfield.critical import CriticalPoint

__all__ = ["critical"]

#: What each status of a critical point means, for the notes on stderr.
STATUS_NOTES = {
    "divergence-boundary": "the critical point lies on the boundary of the divergent region;"
    " q* is infinite there (null in JSON)",
    "marginal": "every q is a fixed point on the critical line; q* is undefined (null in JSON);"
    " the normalised correlation map has slope 1 at c = 1, so correlations approach 1"
    " polynomially (fixed-point gives the constant)",
    "none": "no critical point found (chi_1 does not reach 1 at finite q*); values are null",
    "zero": "q* = 0 (no bias): at chi_1 = 1 the variance shrinks polynomially, not"
    " geometrically, so xi_q = inf describes no exponential scale (docs/theory.md section 3,"
    " degenerate fixed points)",
}


def critical(
    ctx: typer.Context,
    act: Act = "tanh",
    sigma_b: SigmaBRange = None,
    sigma_b2: SigmaB2Range = DEFAULT_SIGMA_B2,  # type: ignore[assignment]
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """The critical weight scale (chi_1 = 1) for a bias, with q*, chi_q*, xi_q.

    Prints sigma_w and sigma_w^2 on the critical line, the fixed-point variance q*, the slope
    chi_q* of the variance map and its depth scale xi_q = -1/log(chi_q*), and the gradient
    depth scale 1/|log chi_1| (infinite on the critical line, null in JSON). A bias range
    START:STOP:COUNT prints the critical line, one row per bias. The status column says ok,
    divergence-boundary (relu, linear with sigma_b^2 > 0: q* is infinite), marginal (relu,
    linear with sigma_b^2 = 0: every q is a fixed point) or none (no critical point).

    Example:

    \b
        mftheory critical --act tanh --sigma-b2 0.05
        mftheory critical --act erf --sigma-b2 0:2:41 --format csv
    """
    from mftheory.cli.common import activation_fields, resolve_scale, settings_of, start
    from mftheory.cli.output import Report, emit
    from mftheory.cli.render import Column, Records
    from mftheory.meanfield.critical import critical_point

    messages, activation = start(
        ctx, act=act, negative_slope=negative_slope, alpha=alpha, quiet=quiet, output=output
    )
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert bias is not None
    cp = critical_point(activation, sigma_b2=bias.variance)
    points = _points(cp)
    _note_statuses(points, activation.label, messages)

    payload: dict[str, Any] = activation_fields(activation)
    if bias.is_range:
        payload["points"] = points
    else:
        payload.update(points[0])
    columns = [
        Column("sigma_b", "sigma_b"),
        Column("sigma_b2", "sigma_b^2"),
        Column("sigma_w", "sigma_w"),
        Column("sigma_w2", "sigma_w^2"),
        Column("q_star", "q*"),
        Column("chi_q", "chi_q*"),
        Column("xi_q", "xi_q"),
        Column("xi_grad", "gradient depth scale"),
        Column("status", justify="left"),
    ]
    report = Report(
        command="critical",
        payload=payload,
        settings=settings_of(cp),
        table=Records(columns, points, title=f"Critical line chi_1 = 1 of {activation.label}"),
        csv=Records([Column("activation"), *columns], points),
    )
    emit(report, fmt=fmt, output=output, messages=messages)


def _points(cp: CriticalPoint) -> list[dict[str, Any]]:
    """One record per bias: the fields of ``cp.as_dict()`` (non-finite values kept as floats
    for the table; JSON turns them into null) and the gradient depth scale."""
    import numpy as np

    fields = ("sigma_b2", "sigma_w2", "q_star", "chi_q", "xi_q", "xi_grad")
    flat = {key: np.asarray(getattr(cp, key), dtype=np.float64).reshape(-1) for key in fields}
    status = np.asarray(cp.status).astype(str).reshape(-1)
    points: list[dict[str, Any]] = []
    for i in range(status.size):
        b2, w2 = float(flat["sigma_b2"][i]), float(flat["sigma_w2"][i])
        points.append(
            {
                "activation": cp.activation.label,
                "sigma_b": math.sqrt(b2),
                "sigma_b2": b2,
                "sigma_w": math.sqrt(w2) if w2 >= 0 else math.nan,  # NaN stays NaN
                "sigma_w2": w2,
                **{key: float(flat[key][i]) for key in ("q_star", "chi_q", "xi_q", "xi_grad")},
                "status": str(status[i]),
            }
        )
        kind = "zero" if points[-1]["q_star"] == 0.0 else points[-1]["status"]
        if kind in STATUS_NOTES:  # a degenerate point: what it is, in JSON too
            points[-1]["note"] = STATUS_NOTES[kind]
    return points


def _note_statuses(points: list[dict[str, Any]], label: str, messages: Messages) -> None:
    """A note per kind of special critical point (boundary, marginal, none)."""
    for text in STATUS_NOTES.values():
        where = [p["sigma_b2"] for p in points if p.get("note") == text]
        if len(where) == 1:
            messages.warn(f"{label}, sigma_b2 = {where[0]:g}: {text}")
        elif where:
            messages.warn(
                f"{label}, {len(where)} biases with sigma_b2 in"
                f" [{min(where):g}, {max(where):g}]: {text}"
            )
