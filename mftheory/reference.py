"""A slow, independent reference implementation of the fixed-point theory, for tests only.

Everything ``mftheory`` prints is checked against this module. It is deliberately simple
and deliberately slow: every Gaussian expectation is one adaptive ``scipy.integrate.quad``
(nested for the two-dimensional ones), every equation is solved by ``scipy.optimize.brentq``,
every argument is a Python scalar, and nothing is shared with the fast core (the quadrature
rules, the closed forms, the vectorised solvers); only ``Activation.phi``, ``Activation.dphi``
and ``Activation.kinks`` are used. Expect ~1 ms for a one-dimensional expectation, 0.03-0.3 s
for a two-dimensional one, and 0.5-7 s for a chaotic-phase fixed point (each c-map trial is a
nested integral). For tests and benchmarks only: the benchmarks use it as the baseline the
fast core is measured against.

Accuracy. Each integral is taken over the finite range ``|z| <= 12`` of the standard normal
variable(s), so that the activation's kinks can be handed to QUADPACK as breakpoints
(``points=``; QAGP needs a finite range). The mass left out is ``P(|z| > 12) = 3.6e-33``, and
every built-in activation grows at most linearly, so the neglected part of any integrand
``|phi(sqrt(q) z)|^2 <= C (1 + q z^2)`` is below ``1e-29 (1 + q)``: far below the requested
``epsabs = 1e-14`` (scaled down with ``q`` where the integrand is ``O(q)``) and
``epsrel = 1e-12``. The result of a QUADPACK call that reports trouble
(round-off, subdivision limit) is accepted only if its own error estimate is still below
``1e-11 max(1, |value|)``; otherwise ``MFTheoryError`` is raised rather than a doubtful
number returned. Measured against the closed forms of docs/theory.md section 3 (erf, ReLU, leaky
ReLU, linear, sin; q in [0.01, 10], rho in [-0.9, 1]) the expectations agree to 7e-16
relative to their scale (2.5e-15 for sin); q*, c*, chi_1 and chi_c agree to 2e-15 and
chi_q to 2e-13 (Stein's form below cancels a few digits); critical points to 2e-15, except
at ``sigma_b2 = 0`` (see ``ref_critical_sigma_w2``). See ``tests/test_reference.py``.

The limit ``q -> 0+``. A variance ``q = 0`` is treated as the limit from above: ``sqrt(q)``
is replaced by ``1e-150``, so ``E[f(sqrt(q) z)]`` becomes ``(f(0-) + f(0+)) / 2`` at a kink
at the origin (ReLU: ``E[step(u)^2] -> 1/2``) and ``f(0)`` elsewhere.

Notes
-----
docs/theory.md section 3: the q-map, the C-map, the slopes chi_1, chi_c and chi_q, and the phases.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
from scipy.integrate import quad
from scipy.optimize import brentq

from mftheory.activations.builtins import Activation
from mftheory.errors import MFTheoryError

__all__ = [
    "ref_c_map",
    "ref_c_star",
    "ref_chi_1",
    "ref_chi_c",
    "ref_chi_q",
    "ref_critical_sigma_w2",
    "ref_derivative_second_moment",
    "ref_fixed_point",
    "ref_pair_expectation",
    "ref_q_map",
    "ref_q_slope",
    "ref_q_star",
    "ref_second_moment",
]

Scalar = Callable[[float], float]

#: Half-width of the integration range in units of the standard normal variable.
Z_MAX = 12.0
#: Absolute and relative tolerances requested from QUADPACK; ``LIMIT`` is its subdivision cap.
EPSABS = 1e-14
EPSREL = 1e-12
LIMIT = 200
#: Largest error estimate accepted from a QUADPACK call that reported trouble (relative).
ACCEPT = 1e-11
#: Stand-in for ``sqrt(q)`` at ``q = 0`` (the limit from above).
SQRT_Q_MIN = 1e-150
#: ``chi_1`` within this distance of 1 labels a point "critical".
CRITICAL_TOL = 1e-10
#: The upward search for ``q*`` gives up (``q* = inf``, "divergent") beyond this value.
Q_MAX = 1e12

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --- plumbing ------------------------------------------------------------------------------


def _density(z: float) -> float:
    """Standard normal density."""
    return _INV_SQRT_2PI * math.exp(-0.5 * z * z)


def _scalar(f: Callable[..., object]) -> Scalar:
    """Evaluate a vectorised activation callable at one point, as a Python float."""

    def g(x: float) -> float:
        return float(f(np.float64(x)))  # type: ignore[arg-type]

    return g


def _quad(f: Scalar, breaks: Iterable[float], epsabs: float = EPSABS) -> float:
    """``int_{-Z_MAX}^{Z_MAX} f(z) dz`` by adaptive QUADPACK, split at ``breaks`` and at 0."""
    points = sorted({0.0, *(b for b in breaks if -Z_MAX < b < Z_MAX)})
    out = quad(
        f,
        -Z_MAX,
        Z_MAX,
        points=points,
        epsabs=epsabs,
        epsrel=EPSREL,
        limit=LIMIT,
        full_output=1,
    )
    value, abserr = float(out[0]), float(out[1])
    if len(out) > 3 and abserr > ACCEPT * max(1.0, abs(value)):
        raise MFTheoryError(
            f"reference quadrature did not converge (estimate {value!r}, error {abserr:.2e}): "
            f"{out[3]}"
        )
    return value


def _check_q(q: float, name: str = "q") -> float:
    q = float(q)
    if not (math.isfinite(q) and q >= 0.0):
        raise MFTheoryError(f"{name} must be finite and >= 0, got {q!r}")
    return q


def _check_sigmas(sigma_w2: float, sigma_b2: float) -> tuple[float, float]:
    w, b = float(sigma_w2), float(sigma_b2)
    for name, v in (("sigma_w2", w), ("sigma_b2", b)):
        if not (math.isfinite(v) and v >= 0.0):
            raise MFTheoryError(f"{name} must be finite and >= 0, got {v!r}")
    return w, b


def _sqrt_q(q: float) -> float:
    return max(math.sqrt(q), SQRT_Q_MIN)


def _kinks_in_z(act: Activation, scale: float) -> list[float]:
    """The kinks of ``f(scale * z)`` as values of ``z``."""
    return [k / scale for k in act.kinks] if scale != 0.0 else []


def _expect_1d(f: Scalar, act: Activation, scale: float, epsabs: float = EPSABS) -> float:
    """``E_z[f(scale z)]`` for ``z ~ N(0, 1)``."""
    return _quad(lambda z: f(scale * z) * _density(z), _kinks_in_z(act, scale), epsabs)


# --- one-dimensional expectations ------------------------------------------------------------


def ref_second_moment(act: Activation, q: float) -> float:
    """``E_z[phi(sqrt(q) z)^2]``, z standard normal, by adaptive quadrature (slow; tests only).

    Parameters
    ----------
    act : Activation
        The nonlinearity; only ``phi`` and ``kinks`` are used.
    q : float
        Pre-activation variance, ``q >= 0`` (``q = 0`` is the limit from above).

    Returns
    -------
    float
        The second moment, to ~1e-13 relative.

    Notes
    -----
    docs/theory.md section 3 (the q-map is ``sigma_w2`` times this plus ``sigma_b2``).
    """
    phi = _scalar(act.phi)
    q = _check_q(q)
    # epsabs scales with q: at small q the value is O(q) (phi(0) = 0), and the q-map's fixed
    # point near a bifurcation at q* = 0 needs its sign right, not just 1e-14 absolute.
    return _expect_1d(lambda u: phi(u) ** 2, act, _sqrt_q(q), EPSABS * min(1.0, q))


def ref_derivative_second_moment(act: Activation, q: float) -> float:
    """``E_z[phi'(sqrt(q) z)^2]`` by adaptive quadrature (slow; tests only).

    Notes
    -----
    docs/theory.md section 3: ``chi_1 = sigma_w2`` times this at ``q = q*``.
    """
    dphi = _scalar(act.dphi)
    return _expect_1d(lambda u: dphi(u) ** 2, act, _sqrt_q(_check_q(q)))


def ref_q_slope(act: Activation, q: float) -> float:
    """``d/dq E_z[phi(sqrt(q) z)^2]`` (slow; tests only); ``chi_q = sigma_w2`` times this.

    Computed by Stein's lemma, ``E[z g(z)] = E[g'(z)]``, in the form that needs only ``phi``
    and ``phi'``::

        d/dq E[phi(sqrt(q) z)^2] = E[z phi(u) phi'(u)] / sqrt(q),   u = sqrt(q) z,

    which equals docs/theory.md's ``E[phi'(u)^2 + phi(u) phi''(u)]`` for smooth ``phi``, and stays
    correct where ``phi'`` jumps (hard_tanh, whose ``phi phi''`` has delta functions at the
    kinks that a pointwise ``phi''`` would miss). At ``q = 0`` the derivative is
    ``(phi phi')'(0)``, taken by a Richardson-extrapolated central difference (step 1e-3,
    error ~1e-12; the symmetric difference averages the two sides of a kink at 0).

    Notes
    -----
    docs/theory.md section 3 (the slope of the q-map).
    """
    q = _check_q(q)
    phi, dphi = _scalar(act.phi), _scalar(act.dphi)

    def pp(x: float) -> float:
        return phi(x) * dphi(x)

    if q == 0.0:

        def central(h: float) -> float:
            return (pp(h) - pp(-h)) / (2.0 * h)

        h = 1e-3
        return (4.0 * central(h / 2) - central(h)) / 3.0
    s = math.sqrt(q)
    return _quad(lambda z: z * pp(s * z) * _density(z), _kinks_in_z(act, s)) / s


# --- the two-dimensional expectation ----------------------------------------------------------


def ref_pair_expectation(
    act: Activation, q1: float, q2: float, rho: float, derivative: bool = False
) -> float:
    """``E[f(u1) f(u2)]`` for a centred Gaussian pair, ``f = phi`` or ``phi'`` (slow; tests only).

    ``u1 = sqrt(q1) z1`` and ``u2 = sqrt(q2) (rho z1 + sqrt(1 - rho^2) z2)`` with ``z1, z2``
    independent standard normals, so ``Var u_i = q_i`` and ``corr(u1, u2) = rho``.

    Parameters
    ----------
    act : Activation
        The nonlinearity; ``phi`` (or ``dphi``) and ``kinks`` are used.
    q1, q2 : float
        Variances, ``>= 0`` (0 is the limit from above).
    rho : float
        Correlation in ``[-1, 1]``.
    derivative : bool
        Integrate ``phi'(u1) phi'(u2)`` instead of ``phi(u1) phi(u2)``.

    Returns
    -------
    float
        The expectation, to ~1e-12 relative (~1e-14 absolute).

    Notes
    -----
    docs/theory.md section 3 (the C-map and chi_c). A nested ``quad``: the outer integral over
    ``z1`` (breakpoints at the kinks of ``f(u1)`` and at the points ``z1 = k / (rho
    sqrt(q2))`` where the inner integrand's kink crosses ``z2 = 0``), the inner one over
    ``z2`` (breakpoints at ``z2 = (k / sqrt(q2) - rho z1) / sqrt(1 - rho^2)``, which move
    with ``z1``). At ``rho = 0`` the expectation factorises and at ``rho = +-1`` it is a
    one-dimensional integral; both are computed as such.
    """
    q1, q2 = _check_q(q1, "q1"), _check_q(q2, "q2")
    rho = float(rho)
    if not (math.isfinite(rho) and -1.0 <= rho <= 1.0):
        raise MFTheoryError(f"rho must be in [-1, 1], got {rho!r}")
    f = _scalar(act.dphi if derivative else act.phi)
    s1, s2 = _sqrt_q(q1), _sqrt_q(q2)
    # phi(u) is O(sqrt(q)) at small q when phi(0) = 0: scale epsabs with it (see
    # ref_second_moment); phi' is O(1).
    e1, e2 = (EPSABS, EPSABS) if derivative else (EPSABS * min(1.0, s1), EPSABS * min(1.0, s2))
    if rho == 0.0:
        return _expect_1d(f, act, s1, e1) * _expect_1d(f, act, s2, e2)
    if abs(rho) == 1.0:
        t = rho * s2
        return _quad(
            lambda z: f(s1 * z) * f(t * z) * _density(z),
            _kinks_in_z(act, s1) + _kinks_in_z(act, t),
            e1 * min(1.0, s2),
        )
    r = math.sqrt((1.0 - rho) * (1.0 + rho))

    def inner(z1: float) -> float:
        shift = rho * z1
        breaks = [(k / s2 - shift) / r for k in act.kinks]
        return _quad(lambda z2: f(s2 * (shift + r * z2)) * _density(z2), breaks, e2)

    def outer(z1: float) -> float:
        a = f(s1 * z1)
        if a == 0.0:
            return 0.0
        return a * inner(z1) * _density(z1)

    # The inner integral, as a function of z1, is a kink smoothed over a width r / |rho|
    # around each z1 = k / (rho sqrt(q2)); near rho = +-1 that width is tiny, so the outer
    # range is also split at a few multiples of it on either side of those points.
    breaks = _kinks_in_z(act, s1)
    for centre in _kinks_in_z(act, rho * s2):
        breaks += [centre + j * r / abs(rho) for j in (-8.0, -2.0, 0.0, 2.0, 8.0)]
    return _quad(outer, breaks, e1 * min(1.0, s2))


# --- maps and slopes ---------------------------------------------------------------------------


def ref_q_map(act: Activation, q: float, sigma_w2: float, sigma_b2: float) -> float:
    """The q-map ``sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2`` (slow; tests only).

    Notes
    -----
    docs/theory.md section 3.
    """
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    return w * ref_second_moment(act, q) + b


def ref_c_map(act: Activation, c: float, q: float, sigma_w2: float, sigma_b2: float) -> float:
    """The C-map ``(sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q`` at correlation ``c``.

    Both variances equal ``q`` (normally ``q*``); slow, for tests only.

    Notes
    -----
    docs/theory.md section 3.
    """
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q = _check_q(q)
    if q == 0.0:
        raise MFTheoryError("the C-map needs q > 0")
    return (w * ref_pair_expectation(act, q, q, c) + b) / q


def ref_chi_1(act: Activation, sigma_w2: float, q: float) -> float:
    """``chi_1 = sigma_w2 E[phi'(sqrt(q) z)^2]`` (slow; tests only).

    Notes
    -----
    docs/theory.md section 3: the slope of the C-map at ``c = 1``.
    """
    return float(sigma_w2) * ref_derivative_second_moment(act, q)


def ref_chi_c(act: Activation, sigma_w2: float, q: float, c: float) -> float:
    """``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]`` with variances ``q`` and correlation ``c``.

    Slow; tests only.

    Notes
    -----
    docs/theory.md section 3: by Price's theorem the slope of the C-map at ``c``.
    """
    return float(sigma_w2) * ref_pair_expectation(act, q, q, c, derivative=True)


def ref_chi_q(act: Activation, sigma_w2: float, q: float) -> float:
    """``chi_q = sigma_w2 d/dq E[phi(sqrt(q) z)^2]``, the slope of the q-map (slow; tests only).

    Notes
    -----
    docs/theory.md section 3; see ``ref_q_slope`` for how the derivative is taken.
    """
    return float(sigma_w2) * ref_q_slope(act, q)


# --- fixed points ------------------------------------------------------------------------------


def ref_q_star(act: Activation, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """The fixed point ``q*`` that iterating the q-map from ``q0`` reaches (slow; tests only).

    Parameters
    ----------
    act : Activation
        The nonlinearity.
    sigma_w2, sigma_b2 : float
        Weight and bias variances, ``>= 0``.
    q0 : float
        Starting variance, ``>= 0``.

    Returns
    -------
    float
        ``q*`` to ~1e-15 relative in the root (the q-map itself is good to ~1e-13), or
        ``inf`` when no fixed point lies in ``[q0, 1e12]`` above a growing start (the
        divergent case: ReLU with ``sigma_w2 > 2``, linear with ``sigma_w2 > 1``).

    Notes
    -----
    docs/theory.md section 3. With ``g(q) = q_map(q) - q``: if ``g(q0) > 0`` the iteration
    climbs, so ``q`` is doubled until ``g < 0`` (giving up at 1e12); if ``g(q0) < 0`` it
    descends, and ``q`` steps down geometrically toward ``sigma_b2`` (a lower bound of the
    q-map), ``q_k = sigma_b2 + (q0 - sigma_b2) 2^-k``, until ``g >= 0``. The first sign
    change met is the nearest fixed point in the direction of travel, which is the one the
    iteration converges to; ``brentq`` then solves ``g = 0`` inside that bracket with
    ``xtol = 1e-15 * hi`` (the root is at least ``hi / 2``, so this is relative).
    """
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q0 = _check_q(q0, "q0")
    if w == 0.0:
        return b

    def g(q: float) -> float:
        return w * ref_second_moment(act, q) + b - q

    g0 = g(q0)
    if g0 == 0.0:
        return q0
    if g0 > 0.0:
        lo, hi = q0, max(2.0 * q0, 1.0)
        while g(hi) > 0.0:
            if hi >= Q_MAX:
                return math.inf
            lo, hi = hi, 2.0 * hi
    else:
        hi = q0
        for k in range(1, 64):
            lo = b + (q0 - b) * 2.0**-k
            g_lo = g(lo)
            if g_lo == 0.0:
                return lo
            if g_lo > 0.0:
                break
            hi = lo
        else:
            return b  # q* = sigma_b2 (= 0 here: phi(0) = 0 and no bias)
    return float(brentq(g, lo, hi, xtol=1e-15 * hi, rtol=4 * np.finfo(float).eps, maxiter=200))


def ref_half_square_difference(act: Activation, q: float, c: float) -> float:
    """``E[(phi(u1) - phi(u2))^2] / 2`` for u1, u2 of variance q and correlation c (slow).

    Equals ``F(q) - E[phi(u1) phi(u2)]`` but is computed without that subtraction: in the
    symmetric coordinates ``u1,2 = sqrt(q) (a x +- b y)``, ``a = sqrt((1+c)/2)``,
    ``b = sqrt((1-c)/2)``, the difference of phi is formed point by point, so the result
    keeps its relative accuracy as c -> 1 (where it is of order ``1 - c``).
    """
    s = _sqrt_q(q)
    a, b = math.sqrt((1.0 + c) / 2.0), math.sqrt((1.0 - c) / 2.0)
    phi = _scalar(act.phi)
    if b == 0.0:
        return 0.0

    def inner(x: float) -> float:
        breaks = [sign * (k / s - a * x) / b for k in act.kinks for sign in (1.0, -1.0)]
        return _quad(
            lambda y: (phi(s * (a * x + b * y)) - phi(s * (a * x - b * y))) ** 2 * _density(y),
            breaks,
            epsabs=EPSABS * (1.0 - c) * min(1.0, q),
        )

    # As a function of x the inner integral has a layer of width ~ b/a around each
    # x = k/(s a) (where u1 and u2 straddle the kink): split the outer range across it.
    layer = (0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 4.0, -4.0, 8.0, -8.0)
    outer_breaks = [k / (s * a) + m * b / a for k in act.kinks for m in layer] if a > 0 else []
    return 0.5 * _quad(
        lambda x: inner(x) * _density(x), outer_breaks, epsabs=EPSABS * (1.0 - c) * min(1.0, q)
    )


def ref_c_star(act: Activation, sigma_w2: float, sigma_b2: float, q_star: float) -> float:
    """The stable fixed point ``c*`` of the C-map at ``q = q_star`` (slow; tests only).

    Returns
    -------
    float
        1.0 in the ordered phase (``chi_1 <= 1``); otherwise the root in ``[0, 1)`` of
        ``c_map(c) - c``, found as the root of the cancellation-free
        ``(sigma_w2/q) (F - E(c)) / (1 - c) = 1`` (see ``ref_half_square_difference``);
        0.0 when ``c_map(0) <= 1e-15`` (odd activation without bias, for which ``c = 0``
        is exactly fixed); NaN when ``q_star`` is infinite, or zero in the chaotic phase.

    Notes
    -----
    docs/theory.md section 3. ``g(c) = c_map(c) - c`` is ``>= 0`` at ``c = 0`` and behaves like
    ``(1 - chi_1)(1 - c) < 0`` just below ``c = 1`` in the chaotic phase; ``delta`` in
    ``c = 1 - delta`` is shrunk from 0.1 by factors of 10 (to 1e-12) until ``g(1 - delta)
    < 0``, and ``brentq`` finds the root in the tightest bracket seen.
    """
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q = float(q_star)
    if not math.isfinite(q):
        return math.nan
    _check_q(q, "q_star")
    chi1 = ref_chi_1(act, w, q)
    if chi1 <= 1.0:
        return 1.0
    if q == 0.0:
        return math.nan

    def g(c: float) -> float:
        return (w * ref_pair_expectation(act, q, q, c) + b) / q - c

    lo = 0.0
    if g(lo) <= 1e-15:
        return 0.0

    # The chaotic root of C(c) = c is the root of h(c) = (sigma_w2/q) (F - E(c)) / (1 - c) - 1
    # (using C(1) = 1 at the fixed point), with F - E(c) from ref_half_square_difference: no
    # subtraction of nearly equal numbers near c = 1, unlike c_map(c) - c.
    def h(c: float) -> float:
        return w / q * ref_half_square_difference(act, q, c) / (1.0 - c) - 1.0

    delta = 0.1
    while True:
        hi = 1.0 - delta
        if h(hi) > 0.0:
            break
        lo = hi
        delta /= 10.0
        if delta < 1e-12:
            raise MFTheoryError(
                f"reference c-map has no sign change below c = 1 (chi_1 = {chi1!r})"
            )
    return float(brentq(h, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200))


def ref_critical_sigma_w2(act: Activation, sigma_b2: float, *, q0: float = 1.0) -> float:
    """The ``sigma_w2`` where the ordered phase ends, at bias variance ``sigma_b2``.

    Slow (0.02-0.6 s); tests only.

    Returns
    -------
    float
        The root of ``chi_1(sigma_w2, q*(sigma_w2, sigma_b2)) = 1`` in ``sigma_w2`` (the
        order-to-chaos transition), or, where the ordered phase ends before chi_1 reaches 1,
        the ``sigma_w2`` beyond which ``q*`` is infinite: the divergence boundary of ReLU,
        linear and softplus (2, 1, 2), or the saddle-node of the q-map at which the finite
        ``q*`` disappears (silu at ``sigma_b2 = 0.05``: 2.6702, with ``chi_1 = 0.78`` just
        below it). Evaluate ``chi_1`` just below the result to tell the two apart.

    Notes
    -----
    docs/theory.md section 3. A route different from the core's (which solves for ``q`` on the
    critical line): ``brentq`` over ``sigma_w2``, each trial solving for ``q*`` with
    ``ref_q_star``. A divergent trial (``q* = inf``) counts as beyond the transition,
    so for ReLU and linear with ``sigma_b2 > 0`` the root is the divergence boundary.
    The bracket starts at ``[0.5, 1]`` and widens by factors of 2 (up to ``[1e-6, 1e6]``).
    The root is good to ~1e-13 wherever ``chi_1 - 1`` crosses zero linearly. At
    ``sigma_b2 = 0`` with ``phi(0) = 0`` (tanh, erf) the transition is where ``q*`` leaves 0,
    and on the chaotic side ``chi_1 - 1`` grows only like ``q*^2 ~ (sigma_w2 - w_c)^2``: the
    root is then resolved to ~1e-8 only (below that ``chi_1 - 1`` is under round-off).
    """
    _, b = _check_sigmas(1.0, sigma_b2)

    def g(w: float) -> float:
        q = ref_q_star(act, w, b, q0)
        if not math.isfinite(q):
            return 1.0
        return ref_chi_1(act, w, q) - 1.0

    lo, hi = 0.5, 1.0
    while g(lo) >= 0.0:
        lo /= 2.0
        if lo < 1e-6:
            raise MFTheoryError("no ordered phase found for sigma_w2 >= 1e-6")
    while g(hi) <= 0.0:
        hi *= 2.0
        if hi > 1e6:
            raise MFTheoryError("no chaotic phase found for sigma_w2 <= 1e6")
    return float(brentq(g, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=200))


def _depth_scale(chi: float) -> float:
    """``-1 / log(chi)``: infinite at ``chi >= 1``, NaN for NaN."""
    if math.isnan(chi):
        return math.nan
    if chi >= 1.0:
        return math.inf
    if chi <= 0.0:
        return 0.0
    return -1.0 / math.log(chi)


def ref_fixed_point(
    act: Activation, sigma_w2: float, sigma_b2: float, q0: float = 1.0
) -> dict[str, float | str]:
    """Everything at the fixed point, by the slow reference route (tests and benchmarks only).

    Returns
    -------
    dict
        ``q_star``, ``c_star``, ``chi_1``, ``chi_c``, ``chi_q``, ``xi_c``, ``xi_q`` (floats)
        and ``phase``: ``"divergent"`` (``q_star = inf``, the rest NaN), ``"critical"``
        (``|chi_1 - 1| <= 1e-10``, as in the core), ``"ordered"`` (``chi_1 < 1``, ``c* = 1``,
        ``chi_c = chi_1``) or ``"chaotic"``. Depth scales are ``xi = -1 / log(chi)``
        (infinite at ``chi = 1``).

    Notes
    -----
    docs/theory.md section 3. Several seconds per point in the chaotic phase.
    """
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q = ref_q_star(act, w, b, q0)
    if not math.isfinite(q):
        nan = math.nan
        return {
            "q_star": math.inf,
            "c_star": nan,
            "chi_1": nan,
            "chi_c": nan,
            "chi_q": nan,
            "xi_c": nan,
            "xi_q": nan,
            "phase": "divergent",
        }
    chi_1 = ref_chi_1(act, w, q)
    chi_q = ref_chi_q(act, w, q)
    if abs(chi_1 - 1.0) <= CRITICAL_TOL:
        phase = "critical"
    elif chi_1 < 1.0:
        phase = "ordered"
    else:
        phase = "chaotic"
    if phase == "chaotic":
        c = ref_c_star(act, w, b, q)
        chi_c = ref_chi_c(act, w, q, c) if math.isfinite(c) else math.nan
    else:
        c, chi_c = 1.0, chi_1
    return {
        "q_star": q,
        "c_star": c,
        "chi_1": chi_1,
        "chi_c": chi_c,
        "chi_q": chi_q,
        "xi_c": _depth_scale(chi_c),
        "xi_q": _depth_scale(chi_q),
        "phase": phase,
    }
