"""What the commands that show fixed-point quantities say at degenerate fixed points.

Notes
-----
docs/theory.md section 3, "Jumps, poles and degenerate fixed points"; the quantities come from
``mftheory.meanfield.degenerate.degeneracy``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mftheory.cli.messages import Messages
    from mftheory.meanfield.degenerate import Degeneracy
    from mftheory.meanfield.fixed_points import FixedPoint

__all__ = [
    "DEGENERATE_ROWS",
    "degenerate_fields",
    "degenerate_title",
    "length_fields",
    "note_degenerate",
]

#: (key, meaning) of the rows the quantity tables add at a degenerate point.
DEGENERATE_ROWS: tuple[tuple[str, str], ...] = (
    ("degenerate", "kind of degenerate fixed point (zero, divergent, homogeneous)"),
    ("correlation_approach", "how correlations approach their limit with depth"),
    ("approach_constant", "A in 1 - c^l ~ A / l^2 (homogeneous phi)"),
)


def degenerate_fields(fp: FixedPoint) -> tuple[Degeneracy | None, dict[str, Any]]:
    """The degeneracy of a scalar fixed point and the fields to put in a command's record.

    Returns
    -------
    (Degeneracy or None, dict)
        Where the point is degenerate: ``chi_c = 1`` and ``xi_c`` of the normalised correlation
        map (``inf``) where q* is finite, plus ``degenerate``, ``correlation_approach``,
        ``approach_constant``, ``convention`` and ``note``. Elsewhere
        ``(None, {})``: the outputs of ordinary points do not change.
    """
    from mftheory.meanfield.degenerate import degeneracy

    deg = degeneracy(fp)
    if deg is None:
        return None, {}
    fields: dict[str, Any] = {}
    # with a finite q* (0, or q0 on the critical line) chi_c and xi_c describe the normalised
    # correlations; without one they stay undefined (NaN, null in JSON) as at every divergent
    # point, and the note says how the correlations behave
    if deg.correlation_slope is not None and math.isfinite(float(fp.q_star)):
        fields["chi_c"] = deg.correlation_slope
        fields["xi_c"] = deg.xi_c
    fields.update(
        {
            "degenerate": deg.kind,
            "correlation_approach": deg.correlation_approach,
            "approach_constant": deg.approach_constant,
            "convention": deg.convention,
            "note": deg.note,
        }
    )
    return deg, fields


def note_degenerate(deg: Degeneracy | None, messages: Messages) -> None:
    """One line on stderr saying what the point is (nothing where it is not degenerate)."""
    if deg is not None:
        messages.warn(deg.note)


def degenerate_title(title: str, deg: Degeneracy | None) -> str:
    """A table title with, at a degenerate point, the convention on a second line."""
    return title if deg is None else f"{title}\n{deg.kind} fixed point: {deg.convention}"


def length_fields(
    activation: Any, sigma_w2: float, sigma_b2: float, q_used: float
) -> tuple[Degeneracy | None, dict[str, Any]]:
    """For a quantity evaluated at a length ``q_used`` (a spectrum): at a degenerate point,
    ``degenerate``, ``q_star_fixed_point`` (the fixed point's own q*, None where infinite),
    ``convention`` (at which q it is evaluated, and whether that matters) and ``note``;
    elsewhere ``(None, {})``."""
    from mftheory.meanfield.degenerate import degeneracy
    from mftheory.meanfield.fixed_points import fixed_point
    from mftheory.serialize import finite_or_none

    fp = fixed_point(activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    deg = degeneracy(fp)
    if deg is None:
        return None, {}
    q_star = float(fp.q_star)
    if activation.homogeneous:
        where = f"evaluated at q = {q_used:g}; for {activation.label} it does not depend on q"
    else:
        where = f"evaluated at q = {q_used:g} (the limit of q^l)"
    if not math.isfinite(q_star):
        status = "q* = inf (no finite fixed point)"
    elif q_star == 0.0:
        status = "q* = 0"
    else:
        status = f"q* = {q_star:g} = q0 (homogeneous phi, no bias, chi_1 = 1: every q is fixed)"
    convention = f"{status}: {where}"
    return deg, {
        "degenerate": deg.kind,
        "q_star_fixed_point": finite_or_none(q_star),
        "convention": convention,
        "note": f"{status}: the spectrum is {where}",
    }
