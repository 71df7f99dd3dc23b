"""What the theory defines at degenerate fixed points: q* = 0, q* = inf, homogeneous phi.

Notes
-----
docs/theory.md section 3, "Jumps, poles and degenerate fixed points". ``fixed_point``
reports, at every point, ``chi_c`` as the slope of the C-map at ``c*`` evaluated at ``q*``,
and ``xi_c = -1/log(chi_c)``. Three cases make that slope say nothing about how
*correlations* converge:

* **homogeneous phi without bias** (relu, leaky_relu, linear: ``phi(s u) = s phi(u)`` for
  ``s > 0``; ``sigma_b2 = 0``): ``q^{l+1} = chi_1 q^l`` exactly, ``chi_1 = sigma_w2 kappa``,
  so ``q^l`` shrinks or grows geometrically (q* = 0, q* = inf) or stays (chi_1 = 1). The
  normalised correlation map ``c -> E[phi(u) phi(v)] / E[phi(u)^2]`` does not depend on
  ``sigma_w`` or ``q`` and has slope exactly 1 at ``c = 1`` (``phi(u) = u phi'(u)`` gives
  ``E[phi^2] = q E[phi'^2]``). Writing ``phi = (1+a)/2 u + (1-a)/2 |u|`` (``a`` the negative
  slope), near ``c = 1`` it is ``1 - e + k e^(3/2)``, ``e = 1 - c``,
  ``k = (1-a)^2 / (1+a^2) * 2 sqrt(2) / (3 pi)``, so ``1 - c^l ~ 4 / (k^2 l^2)``: polynomial,
  ``xi_c = inf`` (relu: ``1 - c^l ~ 9 pi^2 / (2 l^2)``; linear: ``k = 0``, correlations never
  change).
* **q* = 0** for any other phi (``sigma_b2 = 0``, ordered): ``q^l -> 0`` geometrically at the
  rate ``chi_q* = chi_1``; as ``q -> 0`` the map becomes linear in the pre-activations, so the
  normalised correlation map tends to the identity and the correlations settle at values that
  depend on the input: no correlation depth scale.
* **q* = inf** (divergent): no fixed point at all. For a homogeneous phi with a bias the bias
  becomes negligible against ``q^l`` and the correlations approach 1 as without bias
  (polynomially); for other phi the theory has nothing to linearise around.

Wherever a command needs a length ``q`` these points lack (the Jacobian spectrum, the isometry
check), it is evaluated at ``q = q0`` (the start of the q-map iteration, 1 by default); for a
homogeneous phi every such quantity is the same at every ``q``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mftheory.meanfield.fixed_points import FixedPoint

__all__ = ["Degeneracy", "degeneracy", "degenerate_count", "homogeneous_approach_constant"]


def homogeneous_approach_constant(negative_slope: float) -> float:
    """``A`` in ``1 - c^l ~ A / l^2`` for ``phi(u) = u (u > 0), a u (u < 0)``, zero bias.

    Parameters
    ----------
    negative_slope : float
        ``a`` (0 for relu, 1 for linear).

    Returns
    -------
    float
        ``4 / k^2`` with ``k = (1-a)^2 / (1+a^2) * 2 sqrt(2) / (3 pi)``; ``inf`` for ``a = 1``
        (linear: the correlations never change).

    Notes
    -----
    docs/theory.md section 3, "Jumps, poles and degenerate fixed points". For relu
    ``A = 9 pi^2 / 2``.

    Examples
    --------
    >>> round(homogeneous_approach_constant(0.0) / math.pi**2, 12)
    4.5
    """
    a = float(negative_slope)
    k = (1.0 - a) ** 2 / (1.0 + a * a) * 2.0 * math.sqrt(2.0) / (3.0 * math.pi)
    return math.inf if k == 0.0 else 4.0 / (k * k)


@dataclass(frozen=True)
class Degeneracy:
    """What a degenerate fixed point is, and the quantities the theory defines there.

    Attributes
    ----------
    kind : str
        ``"homogeneous"`` (homogeneous phi, ``sigma_b2 = 0``; q* may be 0, finite or inf),
        ``"zero"`` (q* = 0, other phi) or ``"divergent"`` (q* = inf, other cases).
    q_ratio : float or None
        ``q^{l+1} / q^l`` (exact for homogeneous phi without bias; the asymptotic rate for
        q* = 0), None where the theory does not fix it.
    correlation_slope : float or None
        Slope of the normalised correlation map at ``c = 1`` (1 for homogeneous phi, and in
        the limit ``q -> 0``).
    correlation_approach : str
        ``"polynomial"`` (``1 - c^l ~ approach_constant / l^2``), ``"frozen"`` (correlations
        settle at input-dependent values) or ``"undefined"``.
    approach_constant : float or None
        ``A`` of ``1 - c^l ~ A / l^2`` (homogeneous phi), ``inf`` for linear.
    xi_c : float
        Correlation depth scale of the normalised map: ``inf`` (no exponential scale), NaN
        where undefined.
    convention : str
        How the fields that need a finite positive q* are filled.
    note : str
        One line saying what the point is.
    """

    kind: str
    q_ratio: float | None
    correlation_slope: float | None
    correlation_approach: str
    approach_constant: float | None
    xi_c: float
    convention: str
    note: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (non-finite floats as None)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


_Q_CONVENTION = (
    "quantities that need a length (the Jacobian spectrum, isometry) are evaluated at q = q0"
    " = {q0:g}"
)


def degeneracy(fp: FixedPoint) -> Degeneracy | None:
    """The degeneracy of a scalar fixed point, or None where q* is finite, positive and the
    activation is not homogeneous without bias.

    Parameters
    ----------
    fp : FixedPoint
        A scalar result of ``mftheory.meanfield.fixed_points.fixed_point``.

    Returns
    -------
    Degeneracy or None

    Notes
    -----
    docs/theory.md section 3, "Jumps, poles and degenerate fixed points" (this module's notes).
    """
    q_star, w2, b2 = float(fp.q_star), float(fp.sigma_w2), float(fp.sigma_b2)
    chi_1 = float(fp.chi_1)
    act = fp.activation
    label = act.label
    q_conv = _Q_CONVENTION.format(q0=fp.q0)
    if act.homogeneous and (b2 == 0.0 or not math.isfinite(q_star)):
        a = float(getattr(act.closed_form, "negative_slope", 0.0))
        constant = homogeneous_approach_constant(a)
        approach = "frozen" if math.isinf(constant) else "polynomial"
        how = (
            "correlations never change (linear map)"
            if approach == "frozen"
            else f"correlations approach 1 polynomially, 1 - c^l ~ {constant:.4g} / l^2"
        )
        if b2 == 0.0:
            growth = "shrinks" if chi_1 < 1.0 else "grows"
            q_text = (
                "q^l stays at q0 (chi_1 = 1)"
                if chi_1 == 1.0
                else f"q^l {growth} by chi_1 = {chi_1:.6g} per layer exactly"
            )
            ratio: float | None = chi_1
        else:
            q_text = f"q^l grows without bound (q* = inf; chi_1 = {chi_1:.6g})"
            ratio = chi_1 if chi_1 > 1.0 else None
        bias = " with zero bias" if b2 == 0.0 else " and the bias becomes negligible"
        return Degeneracy(
            kind="homogeneous",
            q_ratio=ratio,
            correlation_slope=1.0,
            correlation_approach=approach,
            approach_constant=constant,
            xi_c=math.inf,
            convention=(
                (
                    "chi_1 and chi_q are the per-layer factors of gradients and of q^l; chi_c = 1"
                    " and xi_c = inf describe the normalised correlation map, which does not"
                    " depend on sigma_w or q"
                    if math.isfinite(q_star)
                    else "no finite q*: c*, chi_c, chi_q and their depth scales stay undefined"
                    " (null); chi_1 is the per-layer factor of gradients"
                )
                + f"; {q_conv}, and for {label} they do not depend on q"
            ),
            note=(
                f"{label} is positively homogeneous{bias}: {q_text};"
                f" the correlation map has slope 1 at c = 1, so {how}: no depth scale"
                " xi_c (inf)"
            ),
        )
    if q_star == 0.0:
        return Degeneracy(
            kind="zero",
            q_ratio=chi_1,
            correlation_slope=1.0,
            correlation_approach="frozen",
            approach_constant=None,
            xi_c=math.inf,
            convention=(
                "chi_1 = chi_q is the rate at which q^l -> 0; chi_c = 1 and xi_c = inf describe"
                f" the normalised correlations; {q_conv}"
            ),
            note=(
                f"q* = 0: q^l -> 0 by chi_q* = {chi_1:.6g} per layer and the map becomes linear,"
                " so correlations freeze at input-dependent values: no depth scale xi_c (inf)"
            ),
        )
    if not math.isfinite(q_star):
        return Degeneracy(
            kind="divergent",
            q_ratio=None,
            correlation_slope=None,
            correlation_approach="undefined",
            approach_constant=None,
            xi_c=math.nan,
            convention=f"fixed-point quantities are undefined (null); {q_conv}",
            note=(
                f"q* = inf: no finite fixed point for {label} at sigma_w2 = {w2:g}, sigma_b2 ="
                f" {b2:g} (the variance grows without bound)"
            ),
        )
    return None


def degenerate_count(fp: FixedPoint) -> dict[str, int]:
    """How many points of a grid result are degenerate, by kind (``homogeneous`` counts
    homogeneous phi at ``sigma_b2 = 0``; ``zero``, ``divergent`` the others)."""
    q = np.asarray(fp.q_star, dtype=np.float64)
    b = np.broadcast_to(np.asarray(fp.sigma_b2, dtype=np.float64), q.shape)
    homog = (b == 0.0) if fp.activation.homogeneous else np.zeros(q.shape, dtype=bool)
    return {
        "homogeneous": int(homog.sum()),
        "zero": int(((q == 0.0) & ~homog).sum()),
        "divergent": int((~np.isfinite(q) & ~homog).sum()),
    }
