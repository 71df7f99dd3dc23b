"""The law of ``D^2 = phi'(h)^2`` at the fixed point, and the exact moments of the spectrum.

Free probability needs two things of each layer's derivative factor: its moments
``mu_k = E[phi'(h)^(2k)]``, ``h ~ N(0, q*)`` (they give the spectrum's mean and variance
exactly, ``spectrum_moments``), and, for the density (``mftheory.spectrum.density``),
its whole law on the composite Gauss-Legendre rule of ``mftheory.gaussian.quadrature``,
split at the activation's kinks: atoms (at 0 for ReLU's rank loss, elsewhere for piecewise
linear ``phi``) and the other nodes widened into bins (``DerivativeLaw``).

Notes
-----
docs/theory.md section 5: ``mean = (sigma_w2 mu_1)^L = chi_1^L`` and
``variance / mean^2 = L (mu_2 / mu_1^2 - 1 - s_1)``, ``s_1 = -1`` (Gaussian) or ``0``
(orthogonal weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import kink_breaks
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS, QuadratureSettings, normal_rule
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.meanfield.maps import check_variances

__all__ = [
    "S_1",
    "WEIGHTS",
    "DerivativeLaw",
    "check_depth",
    "check_weights",
    "derivative_law",
    "derivative_moments",
    "resolve_q",
    "spectrum_moments",
]

Array = NDArray[np.float64]

#: Weight distributions: i.i.d. Gaussian ``N(0, sigma_w2 / N)`` or scaled Haar orthogonal.
WEIGHTS: tuple[str, ...] = ("gaussian", "orthogonal")
#: First coefficient of ``sigma_w2 S_{W^T W}(m) = 1 + s_1 m + ...``.
S_1: dict[str, float] = {"gaussian": -1.0, "orthogonal": 0.0}


def _derivative_nodes(a: Activation, q: Array, settings: QuadratureSettings) -> tuple[Array, Array]:
    """Nodes ``phi'(sqrt(q) z)^2`` and weights of the normal rule, batched over ``q``."""
    if a.jumps:
        x0 = a.jumps[0][0]
        raise MFTheoryError(
            f"activation {a.label} jumps at x = {x0:g}: phi' holds a delta there, so "
            "E[phi'(h)^2] (chi_1) is infinite and the Jacobian spectrum does not exist"
        )
    s = np.sqrt(q)
    s_safe = np.where(s > 0, s, 1e-150)
    z, w = normal_rule(kink_breaks(a, s_safe), settings)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        d = np.square(a.dphi(s_safe[..., None] * z))
    return np.asarray(d, dtype=np.float64), np.broadcast_to(w, d.shape)


def derivative_moments(
    act: str | Activation,
    q: ArrayLike,
    *,
    orders: tuple[int, ...] = (1, 2),
    settings: QuadratureSettings | None = None,
) -> Array:
    """Moments ``mu_k = E[phi'(h)^(2k)]``, ``h ~ N(0, q)``, vectorised over ``q``.

    Parameters
    ----------
    act : str or Activation
    q : array_like
        Pre-activation variances (finite, ``>= 0``; 0 is the limit ``q -> 0+``).
    orders : tuple of int
        The ``k`` wanted (positive).
    settings : QuadratureSettings, optional

    Returns
    -------
    ndarray of shape ``(len(orders), *q.shape)``

    Notes
    -----
    docs/theory.md section 5: ``mu_1 = chi_1 / sigma_w2`` and ``mu_2`` set the spread of the
    Jacobian's spectrum. Same composite rule as ``mftheory.gaussian.expectations``.
    """
    a = get_activation(act)
    q_arr = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(q_arr)) or np.any(q_arr < 0):
        raise MFTheoryError("q must be finite and non-negative")
    if any(not (isinstance(k, int) and k >= 1) for k in orders):
        raise MFTheoryError(f"orders must be positive integers, got {orders!r}")
    d, w = _derivative_nodes(a, q_arr.ravel(), settings or DEFAULT_SETTINGS)
    out = np.stack([np.sum(w * d**k, axis=-1) for k in orders])
    return out.reshape((len(orders), *q_arr.shape))


def check_depth(depth: Any) -> int:
    """``depth`` as an int ``>= 1`` (``MFTheoryError`` otherwise)."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise MFTheoryError(f"depth must be an integer >= 1, got {depth!r}")
    return int(depth)


def check_weights(weights: str) -> str:
    """``weights`` if it is one of ``WEIGHTS`` (``MFTheoryError`` otherwise)."""
    if weights not in WEIGHTS:
        raise MFTheoryError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    return weights


def spectrum_moments(
    act: str | Activation,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    depth: int,
    weights: str = "orthogonal",
    q_star: ArrayLike | None = None,
    settings: QuadratureSettings | None = None,
) -> dict[str, Array]:
    """Exact mean and variance of the squared singular values of ``J``, vectorised.

    Parameters
    ----------
    act : str or Activation
    sigma_w2, sigma_b2 : array_like
        Broadcast against each other.
    depth : int
        Number of layers ``L``.
    weights : {"gaussian", "orthogonal"}
    q_star : array_like, optional
        The fixed point; computed with ``mftheory.meanfield.fixed_point`` if omitted.
    settings : QuadratureSettings, optional

    Returns
    -------
    dict of ndarray
        ``q_star, mu_1, mu_2, chi_1, mean, variance, normalized_variance`` (variance over
        mean squared). NaN where there is no finite q* (except for positively homogeneous
        activations, whose ``phi'`` law does not depend on q).

    Notes
    -----
    docs/theory.md section 5: ``mean = chi_1^L``, ``variance = mean^2 L (mu_2/mu_1^2 - 1 - s_1)``
    with ``s_1 = -1`` for Gaussian and ``0`` for orthogonal weights (at criticality
    ``variance = L (mu_2/mu_1^2 - 1 - s_1)``). Exact in free probability: the normalised
    variances of freely independent factors add.
    """
    a = get_activation(act)
    L = check_depth(depth)
    s1 = S_1[check_weights(weights)]
    st = settings or DEFAULT_SETTINGS
    w2, b2 = check_variances(sigma_w2, sigma_b2)
    q = resolve_q(a, w2, b2, q_star, st)
    ok = np.isfinite(q)
    mu = np.full((2, *q.shape), np.nan)
    if np.any(ok):
        mu[:, ok] = derivative_moments(a, q[ok], orders=(1, 2), settings=st)
    mu1, mu2 = mu
    chi = w2 * mu1
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        norm_var = L * (mu2 / mu1**2 - 1.0 - s1)
        mean = chi**L
        var = mean**2 * norm_var
    return {
        "q_star": q,
        "mu_1": mu1,
        "mu_2": mu2,
        "chi_1": chi,
        "mean": mean,
        "variance": var,
        "normalized_variance": norm_var,
    }


def resolve_q(
    a: Activation, w2: Array, b2: Array, q_star: ArrayLike | None, st: QuadratureSettings
) -> Array:
    """q* given or solved; q = 1 for homogeneous activations without a finite q*."""
    if q_star is not None:
        q = np.broadcast_to(np.asarray(q_star, dtype=np.float64), w2.shape).copy()
        if np.any(np.isnan(q)) or np.any(q < 0):
            raise MFTheoryError("q_star must be non-negative")
    else:
        q = np.asarray(fixed_point(a, sigma_w2=w2, sigma_b2=b2, settings=st).q_star, dtype=float)
    if a.homogeneous:
        q = np.where(np.isfinite(q) & (q > 0), q, 1.0)
    return q


@dataclass(frozen=True)
class DerivativeLaw:
    """The law of ``d = phi'(h)^2``: atoms, and the rule's other nodes widened into bins.

    A node of the quadrature rule as a point mass would give ``M_{D^2}`` a pole at every
    node, and the solve for ``z_D`` would snag on them wherever ``z_D`` comes near the real
    axis (the spectrum's far tails). Each node of the continuous part is instead spread
    uniformly over a bin centred on it, as wide as the local node spacing: the same mean, a
    second moment larger by ``w^2 / 12`` per bin (relative 1e-5 for tanh), and a density.
    """

    atom_d: Array  # values d > 0 carrying an atom (repeated at 4+ nodes)
    atom_p: Array
    bin_y: Array  # bins of the continuous part: centre, width, mass
    bin_w: Array
    bin_p: Array
    zero_mass: float
    atoms: tuple[tuple[float, float], ...]
    mu1: float
    mu2: float
    d_max: float


def derivative_law(a: Activation, q: float, st: QuadratureSettings) -> DerivativeLaw:
    """The law of ``phi'(h)^2``, ``h ~ N(0, q)``, on the rule of ``st`` (atoms and bins)."""
    d, w = _derivative_nodes(a, np.array([q]), st)
    d, w = d[0], np.asarray(w[0])
    if not np.all(np.isfinite(d)):
        raise MFTheoryError(f"phi'(h) is not finite for h ~ N(0, {q:g})")
    keep = w > 0
    d, w = d[keep], w[keep]
    zero = d == 0
    if np.any(zero) and not a.kinks and np.any(~zero):
        # A smooth phi' vanishes on no interval: phi'^2 == 0.0 at a node is underflow (sigmoid's
        # s (1 - s) for h >= 37), not rank loss; its mass joins the smallest positive value.
        low = int(np.argmin(np.where(zero, np.inf, d)))
        w = w.copy()
        w[low] += float(np.sum(w[zero]))
        d, w = d[~zero], w[~zero]
        zero = d == 0
    zero_mass = float(np.sum(w[zero]))
    vals, inverse, counts = np.unique(d[~zero], return_inverse=True, return_counts=True)
    mass = np.bincount(inverse, weights=w[~zero])
    # A value taken at 4 or more nodes is an atom (a smooth even phi' repeats values in pairs).
    is_atom = counts >= 4
    atoms = tuple((float(v), float(m)) for v, m in zip(vals[is_atom], mass[is_atom], strict=True))
    y, p = vals[~is_atom], mass[~is_atom]
    # Merge values equal to rounding (phi'(-h) and phi'(h) of an even phi' may differ by ulps).
    if y.size > 1:
        new = np.concatenate([[True], np.diff(y) > 1e-9 * y[1:]])
        grp = np.cumsum(new) - 1
        p_m = np.bincount(grp, weights=p)
        y = np.bincount(grp, weights=p * y) / p_m
        p = p_m
    if y.size == 1:
        atoms = (*atoms, (float(y[0]), float(p[0])))
        y, p = y[:0], p[:0]
    if y.size:
        gaps = np.diff(y)
        width = np.empty(y.size)
        width[0], width[-1] = gaps[0], gaps[-1]
        width[1:-1] = 0.5 * (gaps[1:] + gaps[:-1])
        width = np.minimum(width, 1.998 * y)  # keep every bin on d > 0
    else:
        width = y.copy()
    atom_d = np.array([v for v, _ in atoms])
    return DerivativeLaw(
        atom_d=atom_d,
        atom_p=np.array([m for _, m in atoms]),
        bin_y=y,
        bin_w=width,
        bin_p=np.asarray(p, dtype=np.float64),
        zero_mass=zero_mass,
        atoms=atoms,
        mu1=float(np.sum(w * d)),
        mu2=float(np.sum(w * d * d)),
        d_max=float(np.max(np.concatenate([y + 0.5 * width, atom_d, [0.0]]))),
    )
