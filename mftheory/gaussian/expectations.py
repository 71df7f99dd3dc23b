"""Gaussian expectations of an activation: the integrals behind every mean-field map.

One-dimensional (``u = sqrt(q) z``, ``z ~ N(0, 1)``):

* ``second_moment`` ``F(q) = E[phi(u)^2]`` (the q-map is ``sigma_w2 F(q) + sigma_b2``),
* ``derivative_second_moment`` ``G(q) = E[phi'(u)^2]`` (``chi_1 = sigma_w2 G(q*)``),
* ``second_moment_slope`` ``F'(q) = E[phi(u) phi'(u) z] / sqrt(q)``
  (``chi_q = sigma_w2 F'(q*)``).

Two-dimensional: ``pair_expectation`` ``E[phi(u1) phi(u2)]`` (or with ``phi'``) for a
Gaussian pair with variances ``q1, q2`` and correlation ``rho``.

Methods, in order of preference: the closed form of the activation
(``act.closed_form``, ``mftheory.activations.closed_forms``); composite
Gauss-Legendre in z split at the kinks (1D); the Hermite series
``E[phi(u1) phi(u2)] = sum_k a_k(q1) a_k(q2) rho^k`` whose truncation error is bounded
exactly because ``sum_k a_k(q)^2 = F(q)`` is known (2D, fast); a nested kink-aware 2D
Gauss-Legendre rule where that bound exceeds ``settings.tol`` (2D, slow, robust).

Notes
-----
docs/theory.md section 3 (q- and C-maps, slopes, closed forms, the dual activation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation
from mftheory.errors import MFTheoryError
from mftheory.gaussian.jumps import check_tails, jump_pair_terms, jump_slope_terms
from mftheory.gaussian.quadrature import (
    DEFAULT_SETTINGS,
    QuadratureSettings,
    hermite_functions,
    hermite_panels,
    normal_rule,
)

__all__ = [
    "HermiteSeries",
    "closed_pair",
    "derivative_second_moment",
    "hermite_series",
    "homogeneous_kappa",
    "nested_pair_expectation",
    "pair_expectation",
    "polynomial_and_slope",
    "second_moment",
    "second_moment_slope",
]

Array = NDArray[np.float64]
_MAX_BLOCK = 4_000_000  # array elements per block of the nested 2D rule (memory bound)
_LAYER = np.array([-8.0, -4.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 4.0, 8.0])


def _as_nonneg(q: ArrayLike, name: str = "q") -> Array:
    arr = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise MFTheoryError(f"{name} must be finite, got {arr[~np.isfinite(arr)].flat[0]!r}")
    if np.any(arr < 0):
        raise MFTheoryError(f"{name} must be non-negative, got {arr[arr < 0].flat[0]!r}")
    return arr


def _kinks(act: Activation) -> Array:
    return np.asarray(act.kinks, dtype=np.float64)


#: Extra panel edges in h = sqrt(q) z, used once q > 9: they keep panels at most 0.75 wide in
#: h where activations bend (|h| < 3), so the rule stays accurate as q grows.
_H_EDGES = np.array([0.75, 1.5, 2.25, 3.0, 4.0, 5.5, 7.5, 10.0, 14.0, 20.0])
_H_EDGES = np.concatenate([-_H_EDGES[::-1], _H_EDGES])
#: sqrt(q) above which the h-edges are used (q > 9).
_LARGE_S = 3.0


def kink_breaks(act: Activation, s: Array) -> Array | None:
    """Panel edges in z for ``phi(s z)``: kinks ``k / s``, and fixed h-edges for large q.

    Parameters
    ----------
    act : Activation
        Its ``kinks`` (points in h where ``phi`` or ``phi'`` is not smooth) are the edges.
    s : ndarray
        Standard deviations ``sqrt(q)`` (any shape ``...``); above 3 the fixed edges in h
        are added so that panels stay narrow where activations bend.

    Returns
    -------
    ndarray of shape ``(..., B)`` or None
        Edges in ``z = h / s`` for ``mftheory.gaussian.quadrature.normal_rule``
        (``inf`` where ``s = 0``), None when there are none.
    """
    pts = _kinks(act)
    if s.size and float(np.max(s)) > _LARGE_S:
        pts = np.concatenate([pts, _H_EDGES])
    if pts.size == 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        br = pts / s[..., None]
    return np.where(s[..., None] > 0, br, np.inf)


def _expect_1d(act: Activation, q: Array, integrand: str, settings: QuadratureSettings) -> Array:
    """E over z of phi^2, phi'^2 or phi phi' z / sqrt(q) at u = sqrt(q) z.

    Batches mixing q <= 9 and q > 9 are split, so that only the large ones pay for the
    per-q panel edges in h (``kink_breaks``).
    """
    large = q > 9.0
    if np.any(large) and not np.all(large):
        out = np.empty(q.shape)
        out[large] = _expect_1d_batch(act, q[large], integrand, settings)
        out[~large] = _expect_1d_batch(act, q[~large], integrand, settings)
        return out
    return _expect_1d_batch(act, q, integrand, settings)


def _expect_1d_batch(
    act: Activation, q: Array, integrand: str, settings: QuadratureSettings
) -> Array:
    s_true = np.sqrt(q)
    # q = 0 is evaluated as the limit q -> 0+ (one-sided derivatives at a kink at 0 average).
    s = np.where(s_true > 0, s_true, 1e-150)
    breaks = kink_breaks(act, s)
    z, w = normal_rule(breaks, settings)
    u = s[..., None] * z
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if integrand == "phi2":
            vals = np.square(act.phi(u))
        elif integrand == "dphi2":
            vals = np.square(act.dphi(u))
        else:  # "slope": F'(q) = E[phi(u) phi'(u) z] / sqrt(q)  (Stein's lemma)
            vals = act.phi(u) * act.dphi(u) * z
        out = np.sum(w * vals, axis=-1)
        if integrand == "slope":
            out = out / s
    if np.any(s_true > 0):
        pos = s_true > 0
        check_tails(act, s_true[pos], integrand, out[pos], settings)
    if act.jumps and integrand == "slope":
        out = np.where(s_true > 0, out + jump_slope_terms(act, s * s), out)
    if act.jumps and integrand == "dphi2":
        # phi' holds J delta(x - x0): E[phi'^2] is infinite (at q = 0 only for a jump at 0)
        at_zero = any(x0 == 0.0 for x0, _ in act.jumps)
        out = np.where((s_true > 0) | at_zero, np.inf, out)
    if integrand == "phi2" and np.any(s_true == 0):
        out = np.where(s_true == 0, float(np.square(act.phi(np.zeros(1)))[0]), out)
    if integrand == "slope" and np.any(s_true == 0):
        # q = 0: F'(0+) = (phi'(0+)^2 + phi'(0-)^2) / 2 when phi(0) = 0. (If phi(0) != 0 a
        # zero q* needs sigma_w2 = 0, where chi_q = 0 whatever this value is.)
        eps = np.array([1e-300, -1e-300])
        d0 = 0.5 * float(np.sum(np.square(act.dphi(eps))))
        out = np.where(s_true == 0, d0, out)
    return np.asarray(out, dtype=np.float64)


def second_moment(
    act: Activation, q: ArrayLike, *, settings: QuadratureSettings | None = None
) -> Array:
    """``F(q) = E_z[phi(sqrt(q) z)^2]``, the q-map without its affine part.

    Parameters
    ----------
    act : Activation
    q : array_like
        Pre-activation variances, ``q >= 0``; any shape.
    settings : QuadratureSettings, optional

    Returns
    -------
    ndarray of the shape of ``q``.

    Notes
    -----
    docs/theory.md section 3. Closed forms: erf ``(2/pi) asin(2q/(1+2q))``; relu ``q/2``;
    leaky_relu ``(1+a^2) q/2``; linear ``q``; sin ``(1 - e^{-2q})/2``.
    """
    qa = _as_nonneg(q)
    if act.closed_form is not None:
        return act.closed_form.second_moment(qa)
    return _expect_1d(act, qa, "phi2", settings or DEFAULT_SETTINGS)


def derivative_second_moment(
    act: Activation, q: ArrayLike, *, settings: QuadratureSettings | None = None
) -> Array:
    """``G(q) = E_z[phi'(sqrt(q) z)^2]``; ``chi_1 = sigma_w2 G(q*)``.

    Notes
    -----
    docs/theory.md section 3. Closed forms: erf ``(4/pi)/sqrt(1+4q)``; relu ``1/2``;
    leaky_relu ``(1+a^2)/2``; linear ``1``.
    """
    qa = _as_nonneg(q)
    if act.closed_form is not None:
        return act.closed_form.derivative_second_moment(qa)
    return _expect_1d(act, qa, "dphi2", settings or DEFAULT_SETTINGS)


def second_moment_slope(
    act: Activation, q: ArrayLike, *, settings: QuadratureSettings | None = None
) -> Array:
    """``F'(q) = dF/dq``; the q-map's slope is ``chi_q = sigma_w2 F'(q*)``.

    Notes
    -----
    docs/theory.md section 3 gives ``chi_q = sigma_w2 E[phi'(u)^2 + phi(u) phi''(u)]``. By Stein's
    lemma that equals ``sigma_w2 E[phi(u) phi'(u) z] / sqrt(q)``, which needs no second
    derivative and so also holds for kinked activations. Closed form for erf:
    ``(4/pi) / ((1+2q) sqrt(1+4q))``.
    """
    qa = _as_nonneg(q)
    if act.closed_form is not None:
        return act.closed_form.second_moment_slope(qa)
    return _expect_1d(act, qa, "slope", settings or DEFAULT_SETTINGS)


def homogeneous_kappa(act: Activation) -> float:
    """``F(q)/q`` of a positively homogeneous closed form (``act.homogeneous``)."""
    kappa = None if act.closed_form is None else act.closed_form.kappa
    if kappa is None:
        raise MFTheoryError(f"activation {act.label} is not positively homogeneous")
    return float(kappa)


# --- two-dimensional expectations ------------------------------------------------------------


def closed_pair(act: Activation, q1: Array, q2: Array, rho: Array, derivative: bool) -> Array:
    """``E[phi(u1) phi(u2)]`` (or of ``phi'``) from the activation's closed form."""
    if act.closed_form is None:
        raise MFTheoryError(f"activation {act.label} has no closed form")
    return np.asarray(act.closed_form.pair(q1, q2, rho, derivative), dtype=np.float64)


class HermiteSeries:
    """Hermite (dual-activation) coefficients of ``phi(sqrt(q) z)`` for a batch of q.

    ``E[phi(u1) phi(u2)] = sum_k a_k(q1) a_k(q2) rho^k`` with
    ``a_k(q) = E_z[phi(sqrt(q) z) He_k(z)] / sqrt(k!)``. The tail after K terms is bounded
    by ``sqrt(T(q1) T(q2)) |rho|^(K+1)`` where ``T(q) = F(q) - sum_{k<=K} a_k(q)^2``.

    Attributes
    ----------
    a : ndarray (P, K+1)
        Coefficients, one row per q.
    tail : ndarray (P,)
        ``T(q)`` (clipped at 0).
    tail_estimate : ndarray (P,)
        ``T(q)``, or an estimate of it where ``T`` is below rounding (see below).
    norm : ndarray (P,)
        ``F(q)``.
    """

    def __init__(self, a: Array, F: Array) -> None:
        a2 = a * a
        self.a = a
        self.norm = F
        self.tail = np.maximum(F - a2.sum(axis=-1), 0.0)
        self._a2 = a2
        self.tail_estimate = self._tail_estimate(F)

    def _tail_estimate(self, F: Array) -> Array:
        """``T_K``; where ``F - sum a_k^2`` is at rounding level (it cannot resolve a smaller
        tail), ``(K + 1)`` times the largest of the last 21 ``a_k^2`` instead, capped at
        that rounding level: an estimate, not a bound, which assumes that the coefficients
        do not grow again beyond K (true for the decaying series of smooth activations)."""
        a2 = self._a2
        K = a2.shape[-1] - 1
        rounding = 64 * np.finfo(np.float64).eps * np.abs(F)
        recent = np.max(a2[:, max(0, K - 20) :], axis=1) * (K + 1)
        return np.where(self.tail > rounding, self.tail, np.minimum(recent, rounding))

    @property
    def terms(self) -> int:
        return int(self.a.shape[-1] - 1)

    def tails(self, idx: NDArray[np.intp] | None = None) -> Array:
        """``T_j = sum_{k > j} a_k^2`` for j = 0..K-1 (the last includes the tail beyond K).

        ``(C(1) - C(c)) / (1 - c) = sum_j T_j c^j``: a series with positive terms, which
        gives the chaotic fixed point without the cancellation of ``C(c) - c`` near c = 1.
        """
        a2 = self._a2 if idx is None else self._a2[idx]
        tail = self.tail_estimate if idx is None else self.tail_estimate[idx]
        upper = np.cumsum(a2[:, :0:-1], axis=1)[:, ::-1]  # sum_{k=j+1..K} a_k^2, j = 0..K-1
        return np.asarray(upper + tail[:, None])


def _horner2(coef: Array, c: Array) -> tuple[Array, Array]:
    """Polynomial with coefficient rows ``coef`` (lowest power first) and its derivative."""
    p = np.zeros_like(c)
    dp = np.zeros_like(c)
    for j in range(coef.shape[-1] - 1, -1, -1):
        dp = dp * c + p
        p = p * c + coef[:, j]
    return p, dp


def hermite_series(
    act: Activation,
    q: ArrayLike,
    *,
    settings: QuadratureSettings | None = None,
    F: Array | None = None,
) -> HermiteSeries:
    """The Hermite coefficients ``a_k(q)``, k = 0..K, for a flat array of variances.

    Notes
    -----
    docs/theory.md section 3 (the "dual activation"). One shared node set serves every q (kinks at
    0 stay at z = 0, a panel edge); kinks elsewhere move with q, and only the panels that
    contain one are integrated again with a per-q rule split at the kinks. For q > 9 the
    fixed edges in h of the 1D rule (``_H_EDGES``) are added the same way: ``phi(sqrt(q) z)``
    then bends within ``1/sqrt(q)`` of ``z = 0``, narrower than the shared panels.
    """
    st = settings or DEFAULT_SETTINGS
    qa = _as_nonneg(q).ravel()
    s = np.sqrt(qa)
    K = st.hermite_terms
    # F(q) for the tail bounds: by quadrature unless the caller has it (e.g. from a QTable)
    F = second_moment(act, qa, settings=st) if F is None else np.asarray(F).ravel()
    kinks = _kinks(act)
    large = s > _LARGE_S
    a = np.empty((s.size, K + 1))
    for rows, edges in ((~large, kinks), (large, np.concatenate([kinks, _H_EDGES]))):
        idx = np.flatnonzero(rows)
        if idx.size == 0:
            continue
        if np.all(edges == 0.0):
            z, w, H = hermite_functions(K)
            with np.errstate(over="ignore", invalid="ignore", under="ignore"):
                fz = act.phi(s[idx, None] * z) * w
            a[idx] = fz @ H.T
            continue
        for i in range(0, idx.size, 512):
            a[idx[i : i + 512]] = _kinked_coefficients(act, s[idx[i : i + 512]], edges, K)
    return HermiteSeries(a, F)


def _kinked_coefficients(act: Activation, s: Array, kinks: Array, K: int) -> Array:
    """Hermite coefficients for kinks off 0: the shared rule with the kink panels replaced.

    Panels of the shared rule (width 1/4 on [-13, 13], see ``hermite_functions``) that hold
    a kink ``k / s`` get weight 0 there; each is integrated instead by a sub-rule split at all
    kinks in it, with the Hermite functions evaluated at those nodes by the same recurrence.
    """
    z, w, H = hermite_functions(K)
    n_pan, m, z_max = hermite_panels(K), 16, 13.0
    width = 2 * z_max / n_pan
    P, B = s.size, kinks.size
    with np.errstate(divide="ignore", invalid="ignore"):
        zk = np.where(s[:, None] > 0, kinks[None, :] / s[:, None], np.inf)
    pos = (zk + z_max) / width
    inside = np.isfinite(zk) & (np.abs(zk) < z_max) & (pos != np.floor(pos))
    pan = np.where(inside, np.clip(np.floor(np.nan_to_num(pos)), 0, n_pan - 1), -1).astype(int)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        fz = (act.phi(s[:, None] * z) * w).reshape(P, n_pan, m)
    rows = np.repeat(np.arange(P), B)
    hit = pan.ravel() >= 0
    fz[rows[hit], pan.ravel()[hit], :] = 0.0
    a = fz.reshape(P, -1) @ H.T
    # sub-rules: kink j handles its panel unless an earlier kink is in the same panel
    x, wl = _legendre_nodes(m)
    same = pan[:, :, None] == pan[:, None, :]  # (P, B, B)
    first = inside & ~np.any(np.tril(same, k=-1) & inside[:, None, :], axis=2)
    lo_edge = -z_max + width * np.maximum(pan, 0)
    cuts = np.where(same & inside[:, None, :], zk[:, None, :], lo_edge[:, :, None])
    edges = np.sort(
        np.concatenate([lo_edge[..., None], lo_edge[..., None] + width, cuts], axis=-1), axis=-1
    )  # (P, B, B + 2)
    lo, hi = edges[..., :-1, None], edges[..., 1:, None]
    zs = (0.5 * (lo + hi) + 0.5 * (hi - lo) * x).reshape(P, -1)
    ws = (0.5 * (hi - lo) * wl * first[:, :, None, None]).reshape(P, -1)
    g = np.exp(-0.25 * zs * zs) * (2.0 * math.pi) ** -0.25
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        fs = np.where(ws != 0, act.phi(s[:, None] * zs), 0.0) * ws * g
    h_prev, h = g, zs * g
    a[:, 0] += np.sum(fs * h_prev, axis=-1)
    if K >= 1:
        a[:, 1] += np.sum(fs * h, axis=-1)
    for k in range(1, K):
        h_prev, h = h, (zs * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)
        a[:, k + 1] += np.sum(fs * h, axis=-1)
    return a


def _legendre_nodes(m: int) -> tuple[Array, Array]:
    from mftheory.gaussian.quadrature import _legendre

    return _legendre(m)


def _by_size(
    rule: Callable[..., Array], act: Activation, q1: Array, q2: Array, *args: Any
) -> Array:
    """Run a 2D ``rule`` separately on the pairs with ``max(q1, q2) > 9`` (with the h-edges
    of the 1D rule as extra panel edges: phi bends within ``1/sqrt(q)`` of 0 in z) and on the
    others (without, at the usual cost)."""
    large = np.maximum(q1, q2) > _LARGE_S**2
    if not np.any(large):
        return rule(act, q1, q2, *args, h_edges=False)
    if np.all(large):
        return rule(act, q1, q2, *args, h_edges=True)
    out = np.empty(q1.shape)
    for mask, flag in ((large, True), (~large, False)):
        out[mask] = rule(act, q1[mask], q2[mask], *(a[mask] for a in args[:1]), *args[1:],
                         h_edges=flag)  # fmt: skip
    return out


def _nested_pair(
    act: Activation,
    q1: Array,
    q2: Array,
    rho: Array,
    derivative: bool,
    st: QuadratureSettings,
    *,
    h_edges: bool = False,
) -> Array:
    """Nested composite Gauss-Legendre for E[f(u1) f(u2)], kink-aware in both variables.

    ``u1 = sqrt(q1) x``, ``u2 = sqrt(q2) (rho x + t y)``, ``t = sqrt(1 - rho^2)``. The inner
    rule over y is split where ``u2`` crosses a kink, ``y = (k/sqrt(q2) - rho x) / t``; the
    outer rule over x at the kinks of ``u1`` and at ``x = k / (rho sqrt(q2))``, where the
    inner (Gaussian-smoothed) integral has its smoothed kink when t is small. With
    ``h_edges`` the smooth bends of phi near 0 (``_H_EDGES`` in h) are resolved the same way,
    without the layer edges a kink needs.
    """
    f = act.dphi if derivative else act.phi
    s1, s2 = np.sqrt(q1), np.sqrt(q2)
    t = np.sqrt(np.clip(1.0 - rho * rho, 0.0, None))
    kinks = _kinks(act)
    points = np.concatenate([kinks, _H_EDGES]) if h_edges else kinks
    out = np.empty(q1.shape)
    if points.size:
        # The inner integral, as a function of x, is the kink smoothed over a width
        # t / |rho| around x_k = k / (rho sqrt(q2)): resolve that layer with extra edges.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x_k = kinks / (rho * s2)[:, None]
            width = (t / np.abs(rho))[:, None, None]
            layer = (x_k[..., None] + width * _LAYER).reshape(q1.size, -1)
            smooth = _H_EDGES / s1[:, None] if h_edges else np.empty((q1.size, 0))
            bends = _H_EDGES / (rho * s2)[:, None] if h_edges else np.empty((q1.size, 0))
            outer_br = np.concatenate([kinks / s1[:, None], x_k, layer, smooth, bends], axis=-1)
        zx, wx = normal_rule(outer_br, st)
    else:
        zx1, wx1 = normal_rule(None, st)
        zx = np.broadcast_to(zx1, (q1.size, zx1.size))
        wx = np.broadcast_to(wx1, (q1.size, zx1.size))
    m_out = zx.shape[-1]
    m_in = (st.panels + points.size) * st.nodes_per_panel
    block = max(1, _MAX_BLOCK // (m_out * m_in))
    for start in range(0, q1.size, block):
        sl = slice(start, start + block)
        x = zx[sl]
        if points.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                inner_br = (points / s2[sl, None, None] - rho[sl, None, None] * x[..., None]) / t[
                    sl, None, None
                ]
            zy, wy = normal_rule(inner_br, st)
        else:
            zy1, wy1 = normal_rule(None, st)
            zy, wy = zy1[None, None, :], wy1[None, None, :]
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            u2 = s2[sl, None, None] * (rho[sl, None, None] * x[..., None] + t[sl, None, None] * zy)
            inner = np.sum(wy * f(u2), axis=-1)
            out[sl] = np.sum(wx[sl] * f(s1[sl, None] * x) * inner, axis=-1)
    return out


def _diagonal_pair(
    act: Activation,
    q1: Array,
    q2: Array,
    sign: Array,
    derivative: bool,
    st: QuadratureSettings,
    *,
    h_edges: bool = False,
) -> Array:
    """rho = +-1: the 1D integral E[f(s1 z) f(+-s2 z)], split at the kinks of both factors
    (and, with ``h_edges``, at the fixed edges in h that resolve phi's bends for large q)."""
    f = act.dphi if derivative else act.phi
    s1, s2 = np.sqrt(q1), np.sqrt(q2)
    kinks = np.concatenate([_kinks(act), _H_EDGES]) if h_edges else _kinks(act)
    if kinks.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            br = np.concatenate([kinks / s1[:, None], sign[:, None] * kinks / s2[:, None]], -1)
        z, w = normal_rule(br, st)
    else:
        z, w = normal_rule(None, st)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        return np.sum(w * f(s1[:, None] * z) * f(sign[:, None] * s2[:, None] * z), axis=-1)


def pair_expectation(
    act: Activation,
    q1: ArrayLike,
    q2: ArrayLike,
    rho: ArrayLike,
    *,
    derivative: bool = False,
    settings: QuadratureSettings | None = None,
) -> Array:
    """``E[phi(u1) phi(u2)]`` (or ``E[phi'(u1) phi'(u2)]``) for a correlated Gaussian pair.

    Parameters
    ----------
    act : Activation
    q1, q2 : array_like
        Variances of ``u1`` and ``u2`` (``>= 0``).
    rho : array_like
        Their correlation, in ``[-1, 1]``.
    derivative : bool
        Integrate ``phi'`` instead of ``phi`` (``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]``).
    settings : QuadratureSettings, optional

    Returns
    -------
    ndarray of the broadcast shape of the arguments.

    Notes
    -----
    docs/theory.md section 2 (entries of ``C(Sigma)``) and 3 (the C-map). Closed forms for erf,
    relu, leaky_relu, linear; a 1D rule at ``|rho| = 1``; otherwise the Hermite series where
    its exact truncation bound is below ``settings.tol * sqrt(F(q1) F(q2))``, and the nested
    kink-aware 2D Gauss-Legendre rule elsewhere.
    """
    st = settings or DEFAULT_SETTINGS
    q1a, q2a = _as_nonneg(q1, "q1"), _as_nonneg(q2, "q2")
    ra = np.asarray(rho, dtype=np.float64)
    if not np.all(np.isfinite(ra)) or np.any(np.abs(ra) > 1.0 + 1e-12):
        raise MFTheoryError("rho must be a correlation in [-1, 1]")
    ra = np.clip(ra, -1.0, 1.0)
    q1b, q2b, rb = (np.ascontiguousarray(x).ravel() for x in np.broadcast_arrays(q1a, q2a, ra))
    shape = np.broadcast_shapes(q1a.shape, q2a.shape, ra.shape)
    if act.closed_form is not None:
        return np.asarray(closed_pair(act, q1b, q2b, rb, derivative)).reshape(shape)
    if derivative and act.jumps:
        out = nested_pair_expectation(act, q1b, q2b, rb, derivative=True, settings=st)
        return out.reshape(shape)
    out = np.empty(q1b.shape)
    diag = np.abs(rb) == 1.0
    if np.any(diag):
        out[diag] = _by_size(
            _diagonal_pair, act, q1b[diag], q2b[diag], np.sign(rb[diag]), derivative, st
        )
    rest = ~diag
    if np.any(rest):
        out[rest] = _series_or_nested(act, q1b[rest], q2b[rest], rb[rest], derivative, st)
    return out.reshape(shape)


def _series_or_nested(
    act: Activation, q1: Array, q2: Array, rho: Array, derivative: bool, st: QuadratureSettings
) -> Array:
    out = np.empty(q1.shape)
    if derivative:
        # Hermite coefficients of phi' converge slowly for kinked phi; use the nested rule.
        return _by_size(_nested_pair, act, q1, q2, rho, True, st)
    qs, inv = np.unique(np.concatenate([q1, q2]), return_inverse=True)
    ser = hermite_series(act, qs, settings=st)
    i1, i2 = inv[: q1.size], inv[q1.size :]
    a1, a2 = ser.a[i1], ser.a[i2]
    K = ser.terms
    powers = rho[:, None] ** np.arange(K + 1)
    val = np.sum(a1 * a2 * powers, axis=-1)
    bound = np.sqrt(ser.tail[i1] * ser.tail[i2]) * np.abs(rho) ** (K + 1)
    scale = np.sqrt(ser.norm[i1] * ser.norm[i2])
    bad = bound > st.tol * np.maximum(scale, 1e-300)
    out[:] = val
    if np.any(bad):
        out[bad] = _by_size(_nested_pair, act, q1[bad], q2[bad], rho[bad], False, st)
    return out


def nested_pair_expectation(
    act: Activation,
    q1: Array,
    q2: Array,
    rho: Array,
    *,
    derivative: bool = False,
    settings: QuadratureSettings | None = None,
) -> Array:
    """``E[phi(u1) phi(u2)]`` (or of ``phi'``) by the nested 2D rule alone, flat arrays.

    The kink-aware nested composite Gauss-Legendre rule that ``pair_expectation`` falls
    back to, without trying closed forms or the Hermite series first: for solvers that need
    it where the series is not accurate enough (``u1 = sqrt(q1) z1``, ``u2 = sqrt(q2) z2``,
    ``corr(z1, z2) = rho``).
    """
    st = settings or DEFAULT_SETTINGS
    out = _by_size(_nested_pair, act, q1, q2, rho, derivative, st)
    if derivative and act.jumps:
        # phi' = g + sum_j J_j delta(x - x_j): the delta terms (see gaussian.jumps)
        out = out + jump_pair_terms(act, q1, q2, np.clip(rho, -1.0, 1.0), st)
    return out


def polynomial_and_slope(coef: Array, c: Array) -> tuple[Array, Array]:
    """Polynomials with coefficient rows ``coef`` (lowest power first) and their derivatives
    at ``c`` (one per row), by Horner's scheme."""
    return _horner2(coef, c)
