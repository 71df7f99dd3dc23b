"""Jumps of phi in the Gaussian expectations, and the mass a quadrature rule does not see.

A jump ``J`` of ``phi`` at ``x0`` (``sign``: ``J = 2`` at 0) puts ``J delta(x - x0)`` into
``phi'`` (the activation's ``dphi`` is only the continuous part ``g``). Then

* ``E[phi'(u)^2]`` is infinite (a squared delta), so ``chi_1`` is;
* ``d/dq E[phi(u)^2]`` gains ``(phi(x0+)^2 - phi(x0-)^2) x0 p_q(x0) / (2 q)``
  (``p_q`` the N(0, q) density): from ``d/dq E[f(sqrt(q) z)] = E[f'(u) z] / (2 sqrt q)``
  with ``f = phi^2``, whose derivative holds the delta;
* ``E[phi'(u1) phi'(u2)]`` gains, for a Gaussian pair with correlation ``rho < 1``,
  ``sum_j J_j p1(x_j) E[g(u2) | u1 = x_j]`` (and the same with 1 and 2 swapped) plus
  ``sum_jk J_j J_k p12(x_j, x_k)``, ``p12`` the bivariate normal density.

``check_tails`` guards the 1D rule on ``[-z_max, z_max]`` against integrands whose mass
lies (partly) beyond it, such as ``exp(100 x)^2``.

Notes
-----
docs/theory.md section 3 (the expectations behind the q- and C-maps).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.base import Activation
from mftheory.errors import MFTheoryError
from mftheory.gaussian.quadrature import QuadratureSettings, normal_rule

__all__ = ["check_tails", "jump_pair_terms", "jump_slope_terms", "one_sided"]

Array = NDArray[np.float64]
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_WORDS = {"phi2": "phi(h)^2", "dphi2": "phi'(h)^2", "slope": "phi(h) phi'(h) h"}


def one_sided(act: Activation, x0: float) -> tuple[float, float]:
    """``phi(x0-)`` and ``phi(x0+)``, extrapolated from distances 1e-7 and 1e-10."""
    d = np.array([1e-7, 1e-10]) * max(1.0, abs(x0))
    with np.errstate(all="ignore"):
        left, right = act.phi(x0 - d), act.phi(x0 + d)
    lim = [float((v[1] * d[0] - v[0] * d[1]) / (d[0] - d[1])) for v in (left, right)]
    return lim[0], lim[1]


def _density(x: float, s: Array) -> Array:
    """The N(0, s^2) density at x (0 where s = 0 unless x = 0, where it is inf)."""
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        out = np.exp(-0.5 * (x / s) ** 2) * _INV_SQRT_2PI / s
    return np.where(s > 0, out, np.inf if x == 0.0 else 0.0)


def jump_slope_terms(act: Activation, q: Array) -> Array:
    """The jumps' part of ``F'(q) = d/dq E[phi(sqrt(q) z)^2]`` (q > 0, any shape)."""
    out = np.zeros(q.shape)
    s = np.sqrt(q)
    for x0, _ in act.jumps:
        lo, hi = one_sided(act, x0)
        if hi * hi == lo * lo or x0 == 0.0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out + (hi * hi - lo * lo) * x0 * _density(x0, s) / (2.0 * q)
    return out


def _conditional_mean_g(
    act: Activation, x0: float, s1: Array, s2: Array, rho: Array, st: QuadratureSettings
) -> Array:
    """``E[g(u2) | u1 = x0]`` with ``g = act.dphi``; u2 | u1 ~ N(rho s2 x0 / s1, s2^2 t^2)."""
    t = np.sqrt(np.clip(1.0 - rho * rho, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(s1 > 0, rho * s2 * x0 / s1, 0.0)
        sd = s2 * t
        kinks = np.asarray(act.kinks, dtype=np.float64)
        br = (kinks[None, :] - mean[:, None]) / sd[:, None] if kinks.size else None
    if br is not None:
        br = np.where(sd[:, None] > 0, br, np.inf)
    z, w = normal_rule(br, st)
    with np.errstate(all="ignore"):
        vals = act.dphi(mean[:, None] + sd[:, None] * z)
    return np.asarray(np.sum(w * vals, axis=-1))


def jump_pair_terms(
    act: Activation, q1: Array, q2: Array, rho: Array, st: QuadratureSettings
) -> Array:
    """The jumps' part of ``E[phi'(u1) phi'(u2)]`` (flat arrays; inf where two deltas meet).

    At ``|rho| = 1`` the pair lies on a line and two deltas meeting on it (``u1 = x_j`` and
    ``u2 = x_k`` at once) give ``inf``; otherwise the bivariate density is finite.
    """
    s1, s2 = np.sqrt(q1), np.sqrt(q2)
    out = np.zeros(q1.shape)
    for xj, jj in act.jumps:
        out += jj * _density(xj, s1) * _conditional_mean_g(act, xj, s1, s2, rho, st)
        out += jj * _density(xj, s2) * _conditional_mean_g(act, xj, s2, s1, rho, st)
        for xk, jk in act.jumps:
            out += jj * jk * _pair_density(xj, xk, s1, s2, rho)
    return out


def _pair_density(a: float, b: float, s1: Array, s2: Array, rho: Array) -> Array:
    """Bivariate normal density of (u1, u2) at (a, b); inf/0 on a degenerate line."""
    one_minus = np.clip(1.0 - rho * rho, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore", over="ignore"):
        za, zb = a / s1, b / s2
        expo = -(za * za - 2.0 * rho * za * zb + zb * zb) / (2.0 * one_minus)
        dens = np.exp(expo) / (2.0 * math.pi * s1 * s2 * np.sqrt(one_minus))
        on_line = np.isclose(za, np.sign(rho) * zb, rtol=1e-12, atol=1e-300)
    degenerate = (one_minus == 0) | (s1 == 0) | (s2 == 0)
    return np.where(degenerate, np.where(on_line, np.inf, 0.0), dens)


def check_tails(
    act: Activation, s: Array, integrand: str, total: Array, st: QuadratureSettings
) -> None:
    """Refuse when the integrand's mass reaches beyond ``z_max`` (1D rule, ``u = s z``).

    The Gaussian-weighted integrand ``p(z) |f(s z)|`` is evaluated at ``|z| = z_max`` and
    ``z_max - 1/2``; where it is above 1e-12 of the integral there and still grows outwards,
    or its exponential extrapolation beyond
    ``z_max`` exceeds 1e-10 of the integral, the rule misses mass and the result would be
    wrong (``exp(x)**100``: the mass of ``phi^2`` sits near ``z = 200 sqrt(q)``).
    """
    zm = st.z_max
    pts = np.array([-zm, -zm + 0.5, zm - 0.5, zm])
    u = s[..., None] * pts
    with np.errstate(all="ignore"):
        if integrand == "phi2":
            f = np.square(act.phi(u))
        elif integrand == "dphi2":
            f = np.square(act.dphi(u))
        else:
            f = np.abs(act.phi(u) * act.dphi(u)) * np.abs(pts)
        g = f * np.exp(-0.5 * pts * pts) * _INV_SQRT_2PI
        size = np.abs(total) if integrand != "slope" else np.abs(total) * s
        bad = np.zeros(s.shape, dtype=bool)
        for edge, inner in ((0, 1), (3, 2)):
            ge, gi = g[..., edge], g[..., inner]
            rate = 2.0 * np.log(gi / ge)  # decay rate per unit z outwards (> 0: decays)
            tail = np.where(rate > 0, ge / rate, np.inf)
            bad |= (ge > 1e-12 * size) & ~(tail <= 1e-10 * size)
    bad &= np.isfinite(total) | np.isnan(total)
    if np.any(bad):
        i = int(np.flatnonzero(bad.ravel())[0])
        q = float(s.ravel()[i]) ** 2
        raise MFTheoryError(
            f"the Gaussian integral of {_WORDS[integrand]} for "
            f"activation {act.label} at q = {q:.6g} has mass beyond the quadrature cut-off "
            f"z_max = {zm:g} (the integrand still matters there), so the result would be "
            "wrong or beyond double precision; use an activation that grows more slowly"
        )
