"""Fixed points next to the critical line: ``q*`` polished and ``1 - chi_c`` without cancellation.

Next to the critical line ``xi_c = -1/log(chi_c) ~ 1/(1 - chi_c)``, so the relative error of
``xi_c`` is the absolute error of ``chi_c`` divided by ``1 - chi_c``: at ``1 - chi_c = 1e-6``
a rounding error of one ulp in ``chi_c`` (or in ``q*``, which ``chi_c`` depends on) is already
a relative error of 1e-10 in ``xi_c``. Near the line (``|chi_1 - 1| < NEAR_CRITICAL``) the
solvers of ``mftheory.meanfield.fixed_points`` therefore

* polish ``q*`` by one Newton step whose residual ``sigma_w2 F(q) + sigma_b2 - q`` is
  evaluated in extended precision (``numpy.longdouble``), keeping ``q*`` as a sum
  ``q_hi + q_lo`` of two doubles (``polish_q_star``);
* compute the deficit ``1 - chi_1 = 1 - sigma_w2 G(q*)`` in extended precision
  (``one_minus_chi_1``);
* in the chaotic phase, solve for ``d = 1 - c*`` and ``1 - chi_c`` from equations with
  positive terms only, anchored on ``chi_1 - 1`` from extended precision: the smooth closed
  forms erf and sin (``chaotic_deficit``), the Hermite series (``hermite_deficit``), and,
  where that series does not converge (kinks, large q), a 2D quadrature of
  ``chi_1 - chi(c) >= 0`` (``quadrature_chaotic_deficit``);

and ``xi_c = -1 / log1p(-(1 - chi_c))``
(``mftheory.meanfield.depth_scales.depth_scale_from_deficit``).

``numpy.longdouble`` has a 64-bit significand on x86-64 Linux (eps 1.1e-19). Where it is
plain double (Windows, macOS on arm64) the same code runs with double-precision residuals:
then ``q*`` is only correct to about an ulp and ``xi_c`` at ``1 - chi_c = 1e-6`` to a few
1e-10 (see ``EXTENDED``).

Notes
-----
docs/theory.md section 4 (depth scales); docs/accuracy.md, "Next to the critical line:
every path".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import roots_legendre

from mftheory.activations.base import Activation
from mftheory.activations.closed_forms import Erf, PositivelyHomogeneous, Sin
from mftheory.gaussian.expectations import kink_breaks, polynomial_and_slope
from mftheory.gaussian.quadrature import QuadratureSettings, normal_rule
from mftheory.meanfield.solvers import Roots, positive_newton

__all__ = [
    "EXTENDED",
    "NEAR_CRITICAL",
    "chaotic_deficit",
    "hermite_deficit",
    "one_minus_chi_1",
    "polish_q_star",
    "quadrature_chaotic_deficit",
]

Array = NDArray[np.float64]
LArray = NDArray[np.floating[Any]]

#: ``|chi_1 - 1|`` below which the near-critical path is taken.
NEAR_CRITICAL = 1e-2
#: True where ``numpy.longdouble`` is wider than double (the polish then gains ~11 bits).
EXTENDED = bool(np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant)
_PI = np.arccos(np.longdouble(-1.0))
_GL_X, _GL_W = roots_legendre(16)
_GL_X = 0.5 * (_GL_X + 1.0)  # nodes on [0, 1]
_GL_W = 0.5 * _GL_W


def _moments_ld(act: Activation, q: LArray, st: QuadratureSettings) -> tuple[LArray, LArray]:
    """``F(q)`` and ``G(q)`` in extended precision (closed forms, else the 1D rule)."""
    cf = act.closed_form
    if isinstance(cf, Erf):
        s2 = np.longdouble(cf.scale) ** 2
        qs = s2 * q
        F = (2 / _PI) * np.arcsin(2 * qs / (1 + 2 * qs))
        return F, s2 * (4 / _PI) / np.sqrt(1 + 4 * qs)
    if isinstance(cf, Sin):
        e = np.exp(-2 * q)
        return -np.expm1(-2 * q) / 2, (1 + e) / 2
    if cf is not None:  # a user closed form: double precision
        qd = q.astype(np.float64)
        return (
            np.asarray(cf.second_moment(qd)).astype(np.longdouble),
            np.asarray(cf.derivative_second_moment(qd)).astype(np.longdouble),
        )
    s = np.sqrt(q)
    z, wts = normal_rule(kink_breaks(act, s.astype(np.float64)), st)
    u = s[:, None] * z.astype(np.longdouble)
    wl = wts.astype(np.longdouble)
    # the weights carry the normal density rounded to double: a common factor off by up to
    # an ulp, removed by normalising the rule to total mass 1 (its tails weigh < 1e-22)
    wl = wl / np.sum(wl, axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        F = np.sum(wl * np.square(_extended(act.phi, u)), axis=-1)
        G = np.sum(wl * np.square(_extended(act.dphi, u)), axis=-1)
    return F, G


def _extended(f: Callable[[Any], Any], u: LArray) -> LArray:
    """``f(u)`` in extended precision where ``f`` supports it, else in double.

    The rounding errors of double values of ``f`` are independent from node to node, so
    they largely average out of the weighted sum, which is formed in extended precision.
    """
    try:
        out = np.asarray(f(u))
    except TypeError:  # a ufunc without a long double loop (scipy.special.erf)
        out = np.asarray(f(u.astype(np.float64)))
    return out.astype(np.longdouble)


def polish_q_star(
    act: Activation, w: Array, b: Array, q: Array, chi_q: Array, st: QuadratureSettings
) -> tuple[Array, Array]:
    """One Newton step on ``q*`` with an extended-precision residual: ``(q_hi, q_lo)``.

    ``q`` comes from the double-precision solve (within a few ulp), so one step leaves
    only the error of the extended residual itself. Activations with jumps are returned
    unchanged (``q_lo = 0``).
    """
    if act.jumps or q.size == 0:
        return q, np.zeros_like(q)
    ql = q.astype(np.longdouble)
    F, _ = _moments_ld(act, ql, st)
    r = w.astype(np.longdouble) * F + b.astype(np.longdouble) - ql
    with np.errstate(divide="ignore", invalid="ignore"):
        step = r / (1 - chi_q.astype(np.longdouble))
    ok = np.isfinite(step) & (np.abs(step) <= 1e-12 * ql)
    ql = np.where(ok, ql + step, ql)
    hi = ql.astype(np.float64)
    return hi, (ql - hi).astype(np.float64)


def one_minus_chi_1(
    act: Activation, w: Array, q_hi: Array, q_lo: Array, st: QuadratureSettings
) -> Array:
    """``1 - chi_1 = 1 - sigma_w2 G(q*)`` in extended precision, rounded to double."""
    cf = act.closed_form
    wl = w.astype(np.longdouble)
    if isinstance(cf, PositivelyHomogeneous):
        a = np.longdouble(cf.negative_slope)
        return (1 - wl * (1 + a * a) / 2).astype(np.float64)
    _, G = _moments_ld(act, q_hi.astype(np.longdouble) + q_lo, st)
    return (1 - wl * G).astype(np.float64)


#: ``kernel(u, d, j) -> (K(u), W(u), K(d) - K(u))`` for problems ``j`` (``u``: shape (j.size, m),
#: ``d``: shape (j.size, 1)).
Kernel = Callable[[Array, Array, NDArray[np.intp]], tuple[Array, Array, Array]]


def _erf_kernel(cf: Erf, w: Array, q: LArray) -> tuple[Array, Kernel]:
    """``N0`` and the kernel of erf: ``chi(u) - 1 = (N0 - K(u)) W(u)`` (see chaotic_deficit)."""
    s2 = np.longdouble(cf.scale) ** 2
    A = w.astype(np.longdouble) * s2 * (4 / _PI)
    N0 = (A * A - 1 - 4 * s2 * q).astype(np.float64)
    qs_all = (s2 * q).astype(np.float64)[:, None]
    A_all = A.astype(np.float64)[:, None]

    def kernel(u: Array, d: Array, j: NDArray[np.intp]) -> tuple[Array, Array, Array]:
        qs, k = qs_all[j], 4.0 * qs_all[j] ** 2
        T = 1.0 + 4.0 * qs + k * u * (2.0 - u)
        W = 1.0 / (np.sqrt(T) * (np.sqrt(T) + A_all[j]))
        return k * u * (2.0 - u), W, k * (d - u) * (2.0 - d - u)

    return N0, kernel


def _e_sinh(q: Array, a: Array) -> Array:
    """``e^{-q} sinh(q a)`` for ``0 <= a <= 1``, without overflow."""
    return -np.exp(-q * (1.0 - a)) * np.expm1(-2.0 * q * a) / 2.0


def _sin_kernel(w: Array, q: LArray) -> tuple[Array, Kernel]:
    """``N0`` and the kernel of sin: ``chi(c) = sigma_w2 e^{-q} cosh(c q)``, ``W = 1``."""
    N0 = (w.astype(np.longdouble) * (1 + np.exp(-2 * q)) / 2 - 1).astype(np.float64)
    q_all, w_all = q.astype(np.float64)[:, None], w[:, None]

    def kernel(u: Array, d: Array, j: NDArray[np.intp]) -> tuple[Array, Array, Array]:
        qj, wj = q_all[j], w_all[j]
        K = 2.0 * wj * _e_sinh(qj, 1.0 - u / 2.0) * np.sinh(qj * u / 2.0)
        gap = 2.0 * wj * _e_sinh(qj, 1.0 - (u + d) / 2.0) * np.sinh(qj * (d - u) / 2.0)
        return K, np.ones_like(u), gap

    return N0, kernel


def chaotic_deficit(
    cf: Erf | Sin, w: Array, q_hi: Array, q_lo: Array, d0: Array
) -> tuple[Roots, Array]:
    """``d = 1 - c*`` and ``1 - chi_c`` in the chaotic phase next to the line (erf, sin).

    Write the C-map's slope at ``c = 1 - u`` as ``chi(u) - 1 = (N0 - K(u)) W(u)`` with
    ``N0 = chi_1 - 1`` (formed in extended precision), ``K(u) >= 0``, ``K(0) = 0`` and a
    weight ``W > 0``. erf (``qs = scale^2 q``, ``A = sigma_w2 scale^2 4/pi``):
    ``K = 4 qs^2 u (2 - u)``, ``W = 1 / (sqrt(T) (sqrt(T) + A))``,
    ``T = 1 + 4 qs + 4 qs^2 u (2 - u)``, ``N0 = A^2 - 1 - 4 qs``. sin: ``W = 1``,
    ``K = sigma_w2 e^{-q} (cosh q - cosh(q (1 - u)))``, ``N0 = sigma_w2 (1 + e^{-2q})/2 - 1``.
    With ``C(1) = 1`` (the q-map's fixed point), ``C(c*) = c*`` is
    ``int_0^d (chi(u) - 1) du = 0``: ``N0 = M(d)``, the mean of ``K`` over ``[0, d]`` under
    the weight ``W``. Then ``1 - chi_c = (K(d) - M(d)) W(d)``, the mean of
    ``K(d) - K(u) >= 0`` (formed as a product: ``(d - u) (2 - d - u)``, resp. a product of
    sinh) times ``W(d)``: positive terms only, so relative accuracy. The means are 16-point
    Gauss-Legendre sums, exact to rounding while ``d q`` is at most about 1 (erf's ``W`` has
    its nearest singularity at ``u ~ -1/(2 qs)``; sin's ``K`` grows like ``e^{q u}``).
    Newton on ``d`` (``dM/dd = (K(d) - M) W(d) / int_0^d W``) starts at ``d0``.
    """
    q = q_hi.astype(np.longdouble) + q_lo
    N0, kernel = _erf_kernel(cf, w, q) if isinstance(cf, Erf) else _sin_kernel(w, q)

    def parts(d: Array, j: NDArray[np.intp]) -> tuple[Array, Array, Array, Array]:
        """M(d), the mean gap, int_0^d W and W(d) for the problems j."""
        dc = d[:, None]
        K, W, gap = kernel(dc * _GL_X, dc, j)
        _, W_end, _ = kernel(dc, dc, j)
        i0 = W @ _GL_W
        return (K * W) @ _GL_W / i0, (gap * W) @ _GL_W / i0, d * i0, W_end[:, 0]

    def h(d: Array, j: NDArray[np.intp]) -> tuple[Array, Array]:
        m, gap, i0, W_end = parts(d, j)
        return m - N0[j], gap * W_end / i0

    roots = positive_newton(h, d0)
    d = roots.x
    _, gap, _, W_end = parts(d, np.arange(d.size))
    return roots, gap * W_end


def hermite_deficit(tails: Array, ratio: Array, excess: Array, d0: Array) -> tuple[Roots, Array]:
    """``d = 1 - c*`` and ``1 - chi_c`` from Hermite tails, given ``chi_1 - 1`` accurately.

    The Hermite path of ``mftheory.meanfield.fixed_points`` solves
    ``f(c) = (sigma_w2/q) c P1(c) - C(0) = 0`` with ``P1(c) = sum_{j>=1} T_j c^(j-1)``. By
    the fixed-point identity ``f(1) = chi_1 - 1``; computed from the coefficients, though,
    ``f(1)`` carries their rounding (about 1e-16), which next to the line is a relative
    error of 1e-16 / (chi_1 - 1) in ``c*`` and ``chi_c``. Here ``f(1)`` is replaced by
    ``excess = chi_1 - 1`` from the extended-precision moments: with
    ``U_i = sum_{j>i} T_j`` (``i >= 0``), ``f(1) - f(c) = (sigma_w2/q) (1 - c) Q(c)``,
    ``Q(c) = sum_i U_i c^i``, so ``d`` solves ``(sigma_w2/q) d Q(1 - d) = excess``
    (positive terms) and ``1 - chi_c = d (sigma_w2/q) P'(1 - d)``, ``P(c) = sum_j T_j c^j``.
    Newton on ``d`` starts at ``d0``.
    """
    U = np.cumsum(tails[:, :0:-1], axis=1)[:, ::-1]

    def h(d: Array, j: NDArray[np.intp]) -> tuple[Array, Array]:
        Q, dQ = polynomial_and_slope(U[j], 1.0 - d)
        return d * Q - excess[j] / ratio[j], Q - d * dQ

    roots = positive_newton(h, d0)
    d = roots.x
    _, dP = polynomial_and_slope(tails, 1.0 - d)
    return roots, d * ratio * dP


def _slope_gap(act: Activation, w: float, q: float, u: Array, st: QuadratureSettings) -> Array:
    """``K(u) = (sigma_w2/2) E[(phi'(u1) - phi'(u2))^2]`` for the pair at correlation ``1 - u``.

    ``u1, u2 = sqrt(q) (alpha x +- beta y)`` with ``alpha = sqrt(1 - u/2)``,
    ``beta = sqrt(u/2)``; ``y >= 0`` on the positive half of the 1D rule (the integrand is
    even in y), ``x`` on the 1D rule split where ``u1`` or ``u2`` crosses a kink (and at the
    fixed h-edges for large q): the integrand is smooth on every panel.
    """
    zy, wy = normal_rule(None, st)
    wy = 2.0 * wy[zy > 0]
    zy = zy[zy > 0]
    s = math.sqrt(q)
    al, be = np.sqrt(1.0 - u / 2.0), np.sqrt(u / 2.0)  # (m,)
    off = (be / al)[:, None] * zy  # (m, Y): the kinks of u1, u2 move by -+ off in x
    base = kink_breaks(act, s * al)  # (m, B) or None
    breaks = None
    if base is not None:
        b3 = base[:, None, :]
        breaks = np.concatenate([b3 - off[..., None], b3 + off[..., None]], axis=-1)
    x, wx = normal_rule(breaks, st)
    if breaks is None:
        x, wx = x[None, None, :], wx[None, None, :]
    c1 = (s * al)[:, None, None]
    c2 = (s * be)[:, None, None] * zy[None, :, None]
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        diff = act.dphi(c1 * x + c2) - act.dphi(c1 * x - c2)
        inner = np.sum(wx * diff * diff, axis=-1)  # (m, Y)
    return np.asarray(0.5 * w * (inner @ wy))


def quadrature_chaotic_deficit(
    act: Activation,
    w: Array,
    q: Array,
    excess: Array,
    d0: Array,
    st: QuadratureSettings,
) -> tuple[Roots, Array]:
    """``d = 1 - c*`` and ``1 - chi_c`` by 2D quadrature next to the line, any activation.

    For the points the Hermite series cannot take (kinked activations, large q). With
    ``K(u) = chi_1 - chi(u) = (sigma_w2/2) E[(phi'(u1) - phi'(u2))^2] >= 0`` at correlation
    ``1 - u`` (``_slope_gap``, no cancellation) and ``C(1) = 1``, ``C(c*) = c*`` is
    ``M(d) = (1/d) int_0^d K(u) du = chi_1 - 1 = excess`` (extended precision), and
    ``1 - chi_c = K(d) - excess``. ``M`` is a 16-point Gauss-Legendre sum in ``t`` with
    ``u = d t^2`` (a kink puts a ``sqrt(u)`` term into ``K``: the chaotic fixed point of a
    kinked activation is then at ``d ~ excess^2``). Newton on ``sqrt(d)``
    (``dM/d sqrt(d) = 2 (K(d) - M) / sqrt(d)``) from ``sqrt(d0)``.
    """
    t2 = np.append(_GL_X**2, 1.0)
    wt = 2.0 * _GL_X * _GL_W

    def parts(sq: Array, j: NDArray[np.intp]) -> tuple[Array, Array]:
        rows = [_slope_gap(act, w[i], q[i], s * s * t2, st) for s, i in zip(sq, j, strict=True)]
        K = np.stack(rows)
        return K[:, :-1] @ wt, K[:, -1]

    def h(sq: Array, j: NDArray[np.intp]) -> tuple[Array, Array]:
        M, K_end = parts(sq, j)
        return M - excess[j], 2.0 * (K_end - M) / sq

    # K is a 2D quadrature, right to about 1e-13: stop at steps of 1e-12 in sqrt(d)
    roots = positive_newton(h, np.sqrt(np.clip(d0, 1e-16, 1.0)), rtol=1e-12)
    _, K_end = parts(roots.x, np.arange(roots.x.size))
    d = roots.x**2
    return Roots(x=d, converged=roots.converged & (d < 1.0), maxiter=roots.maxiter), K_end - excess
