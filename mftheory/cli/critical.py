"""``mftheory critical``: the weight scale on the critical line chi_1 = 1 for given biases."""

import math
from typing import Any

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

__all__ = ["critical"]

#: What each status of a critical point means, for the notes on stderr.
STATUS_NOTES = {
    "divergence-boundary": "the critical point lies on the boundary of the divergent region;"
    " q* is infinite there (null in JSON)",
    "marginal": "every q is a fixed point on the critical line; q* is undefined (null in JSON)",
    "none": "no critical point found (chi_1 does not reach 1 at finite q*); values are null",
}


def critical(
    act: Act = "tanh",
    sigma_b: SigmaBRange = None,
    sigma_b2: SigmaB2Range = None,
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
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
    import numpy as np

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
    from mftheory.cli.params import DEFAULT_SIGMA_B2, load_activation, scale_option
    from mftheory.meanfield.critical import critical_point

    messages = Messages(quiet)
    activation, notes = load_activation(act, negative_slope, alpha)
    bias = scale_option("b", sigma_b, sigma_b2, default=DEFAULT_SIGMA_B2, allow_range=True)
    assert bias is not None
    check_output_path(output)
    for note in notes:
        messages.warn(note)

    cp = critical_point(activation, sigma_b2=bias.variance)
    fields = ("sigma_b2", "sigma_w2", "q_star", "chi_q", "xi_q", "xi_grad")
    flat = {key: np.asarray(getattr(cp, key), dtype=np.float64).reshape(-1) for key in fields}
    status = np.asarray(cp.status).astype(str).reshape(-1)
    label = activation_fields(activation)
    points: list[dict[str, Any]] = []
    for i in range(status.size):
        b2, w2 = float(flat["sigma_b2"][i]), float(flat["sigma_w2"][i])
        points.append(
            {
                "activation": label["activation"],
                "sigma_b": math.sqrt(b2),
                "sigma_b2": b2,
                "sigma_w": math.sqrt(w2) if w2 >= 0 else math.nan,  # NaN stays NaN
                "sigma_w2": w2,
                "q_star": float(flat["q_star"][i]),
                "chi_q": float(flat["chi_q"][i]),
                "xi_q": float(flat["xi_q"][i]),
                "xi_grad": float(flat["xi_grad"][i]),
                "status": str(status[i]),
            }
        )
    for key, text in STATUS_NOTES.items():
        where = [p["sigma_b2"] for p in points if p["status"] == key]
        if len(where) == 1:
            messages.warn(f"{activation.label}, sigma_b2 = {where[0]:g}: {text}")
        elif where:
            messages.warn(
                f"{activation.label}, {len(where)} biases with sigma_b2 in"
                f" [{min(where):g}, {max(where):g}]: {text}"
            )

    payload: dict[str, Any] = dict(label)
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
