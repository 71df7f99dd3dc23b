"""Fixed points of the q- and C-maps, their slopes, depth scales and the phase.

Notes
-----
docs/theory.md section 3. For a point ``(sigma_w2, sigma_b2)``:

* ``q*``: the fixed point of the q-map **reached by iterating it from** ``q0`` (default 1,
  a unit-variance input). It is found by bracketing in the direction the map moves from q0
  (so the root nearest q0 on that side, which is the limit of the iteration whenever the
  q-map is increasing, as it is for every built-in activation) and polished by safeguarded
  Newton. If the map still moves up at ``q = 1e15`` the point is *divergent*: no finite q*.
* ``chi_1 = sigma_w2 E[phi'(u)^2]``, ``chi_q = sigma_w2 dF/dq``, both at ``q*``.
* ``c*``: 1 in the ordered and critical phases; in the chaotic phase the fixed point of the
  C-map in ``[0, 1)``. On ``[0, 1]`` the C-map is a power series in c with non-negative
  coefficients (increasing and convex), so that root is unique and Newton from ``c = 0``
  converges monotonically to it.
* ``chi_c`` is the C-map's slope at ``c*`` (``= chi_1`` when ``c* = 1``);
  ``xi_c = -1/log(chi_c)``, ``xi_q = -1/log(chi_q)``, gradient scale
  ``xi_grad = 1/|log(chi_1)|`` (gradients vanish for chi_1 < 1 and explode for chi_1 > 1).
* phase: ``critical`` where ``|chi_1 - 1| <= critical_tol`` (default 1e-10), else
  ``ordered`` (chi_1 < 1) or ``chaotic``; ``divergent`` where q* is infinite.
* next to the critical line (``|chi_1 - 1| < NEAR_CRITICAL``, not ``critical``) q* is
  polished in extended precision and ``xi_c = -1/log1p(-(1 - chi_c))`` from a deficit formed
  without cancellation (``mftheory.meanfield.near_critical``; docs/accuracy.md).

At degenerate points (q* = 0, q* = inf, a homogeneous phi without bias) ``chi_c`` is still the
C-map's slope at q*, which is not the rate at which correlations converge there:
``mftheory.meanfield.degenerate.degeneracy`` says what the theory defines instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.activations.closed_forms import Erf, Sin
from mftheory.checks import plain, plain_fields
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import (
    HermiteSeries,
    closed_pair,
    derivative_second_moment,
    hermite_series,
    homogeneous_kappa,
    nested_pair_expectation,
    polynomial_and_slope,
    second_moment,
    second_moment_slope,
)
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS, QuadratureSettings
from mftheory.meanfield.depth_scales import (
    TRAINABLE_DEPTH_FACTOR,
    _gradient_scale,
    depth_scale,
    trainable_depth,
    xi_from_chi_or_deficit,
)
from mftheory.meanfield.maps import check_variances
from mftheory.meanfield.near_critical import (
    NEAR_CRITICAL,
    chaotic_deficit,
    hermite_deficit,
    one_minus_chi_1,
    polish_q_star,
    quadrature_chaotic_deficit,
)
from mftheory.meanfield.solvers import (
    MAXITER,
    PROBES,
    bracketed_newton,
    newton_fixed_point,
    newton_from_one,
    probe_start,
    require_converged,
)

__all__ = [
    "PHASES",
    "TRAINABLE_DEPTH_FACTOR",
    "FixedPoint",
    "depth_scale",
    "fixed_point",
    "solve_q_star",
    "trainable_depth",
]

Array = NDArray[np.float64]
PHASES = ("ordered", "critical", "chaotic", "divergent")
Q_MAX = 1e15  # beyond this q the q-map is declared divergent
HERMITE_ESCALATION = 8  # factor on hermite_terms before the nested 2D rule
Q_MAXITER = MAXITER  # Newton steps of the q* solve
C_MAXITER = MAXITER  # Newton steps of each c* solve (Hermite stages, nested rule)
_MAX_BRACKET = 200  # steps of the downward search for a bracket of q*
Q_MIN = 1e-30  # below this (with sigma_b2 = 0) q* is the fixed point at 0


@dataclass(frozen=True)
class FixedPoint:
    """Mean-field fixed point and slopes on a broadcast grid of (sigma_w2, sigma_b2).

    Every array attribute has the broadcast shape of the inputs; for scalar inputs (shape
    ``()``) each is a plain Python ``float`` (``phase`` a ``str``). Divergent points have
    ``q_star = inf`` and NaN in every quantity that needs a finite q*.

    Attributes
    ----------
    activation : Activation
    sigma_w2, sigma_b2 : ndarray or float
        Weight and bias variances (``sigma_w = sqrt(sigma_w2)``).
    q_star, c_star : ndarray or float
        Fixed-point length and correlation.
    chi_1, chi_c, chi_q : ndarray or float
        C-map slope at c = 1, C-map slope at c*, q-map slope at q*.
    xi_c, xi_q, xi_grad : ndarray or float
        Correlation, length and gradient depth scales.
    phase : ndarray of str or str
        ``"ordered"``, ``"critical"``, ``"chaotic"`` or ``"divergent"``.
    settings : QuadratureSettings
    q0, critical_tol : float
        Starting length of the q-map iteration; tolerance of the critical label.
    """

    activation: Activation
    sigma_w2: Array | float
    sigma_b2: Array | float
    q_star: Array | float
    c_star: Array | float
    chi_1: Array | float
    chi_c: Array | float
    chi_q: Array | float
    xi_c: Array | float
    xi_q: Array | float
    xi_grad: Array | float
    phase: NDArray[np.str_] | str
    settings: QuadratureSettings
    q0: float = 1.0
    critical_tol: float = 1e-10

    FIELDS: ClassVar[tuple[str, ...]] = (
        "q_star",
        "c_star",
        "chi_1",
        "chi_c",
        "chi_q",
        "xi_c",
        "xi_q",
        "xi_grad",
    )

    def __post_init__(self) -> None:
        plain_fields(self, ("sigma_w2", "sigma_b2", *self.FIELDS, "phase"))

    @property
    def sigma_w(self) -> Array | float:
        return plain(np.sqrt(self.sigma_w2))

    @property
    def sigma_b(self) -> Array | float:
        return plain(np.sqrt(self.sigma_b2))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.q_star))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: nested lists, non-finite floats as None."""
        from mftheory.serialize import jsonable

        out: dict[str, object] = {
            "activation": self.activation.label,
            "sigma_w2": jsonable(self.sigma_w2),
            "sigma_b2": jsonable(self.sigma_b2),
        }
        for name in self.FIELDS:
            out[name] = jsonable(getattr(self, name))
        out["phase"] = jsonable(self.phase)
        return out


class QMoments(Protocol):
    """The functions of q alone behind the q-map: ``F``, ``F' = dF/dq`` and ``G``."""

    def F(self, q: ArrayLike) -> Array: ...

    def F_q(self, q: ArrayLike) -> Array: ...

    def G(self, q: ArrayLike) -> Array: ...

    def F_and_F_q(self, q: ArrayLike) -> tuple[Array, Array]: ...


class ExactMoments:
    """``QMoments`` by direct quadrature (see ``mftheory.gaussian.expectations``)."""

    def __init__(self, act: Activation, settings: QuadratureSettings) -> None:
        self.act, self.settings = act, settings

    def F(self, q: ArrayLike) -> Array:
        return second_moment(self.act, q, settings=self.settings)

    def F_q(self, q: ArrayLike) -> Array:
        return second_moment_slope(self.act, q, settings=self.settings)

    def G(self, q: ArrayLike) -> Array:
        return derivative_second_moment(self.act, q, settings=self.settings)

    def F_and_F_q(self, q: ArrayLike) -> tuple[Array, Array]:
        return self.F(q), self.F_q(q)


def solve_q_star(
    act: Activation,
    sigma_w2: Array,
    sigma_b2: Array,
    *,
    q0: float = 1.0,
    settings: QuadratureSettings | None = None,
    moments: QMoments | None = None,
) -> Array:
    """The stable length ``q*`` reached from ``q0``; ``inf`` where the q-map diverges.

    Parameters are flat arrays of equal size. See the module notes for the definition.
    ``moments`` supplies ``F(q)`` and ``F'(q)`` (default: exact quadrature; a
    ``mftheory.gaussian.qtable.QTable`` for grids).

    Raises
    ------
    MFTheoryError
        Naming the first point whose q* did not converge in ``Q_MAXITER`` Newton steps.

    Notes
    -----
    docs/theory.md section 3 (q-map); "unbounded activations ... have no finite q*".
    """
    st = settings or DEFAULT_SETTINGS
    w, b = sigma_w2.ravel(), sigma_b2.ravel()
    q = np.full(w.shape, np.nan)
    if act.homogeneous:
        slope = w * homogeneous_kappa(act)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(slope < 1.0, b / (1.0 - slope), np.inf)
        return np.where((slope == 1.0) & (b == 0.0), q0, q)

    mom = moments or ExactMoments(act, st)

    def g(x: Array, idx: NDArray[np.intp]) -> Array:
        return w[idx] * mom.F(x) + b[idx] - x

    def g_and_slope(x: Array, idx: NDArray[np.intp]) -> tuple[Array, Array]:
        F, F_q = mom.F_and_F_q(x)
        return w[idx] * F + b[idx] - x, w[idx] * F_q - 1.0

    lo, hi = _bracket_q_star(g, w, b, q, q0)
    todo = np.flatnonzero(np.isnan(q))
    if todo.size:
        sign_lo = np.sign(g(lo[todo], todo))
        # a zero exactly at lo
        at_lo = sign_lo == 0
        q[todo[at_lo]] = lo[todo[at_lo]]
        todo = todo[~at_lo]
        sign_lo = sign_lo[~at_lo]
        if todo.size:
            # start at the secant point of the bracket (the q-map is smooth there)
            g_lo, g_hi = g(lo[todo], todo), g(hi[todo], todo)
            with np.errstate(divide="ignore", invalid="ignore"):
                x0 = lo[todo] - g_lo * (hi[todo] - lo[todo]) / (g_hi - g_lo)
            x0 = np.where(np.isfinite(x0), x0, 0.5 * (lo[todo] + hi[todo]))
            roots = bracketed_newton(
                lambda x, i: g_and_slope(x, todo[i]),
                lo[todo],
                hi[todo],
                sign_lo,
                x0=x0,
                maxiter=Q_MAXITER,
            )
            q[todo] = require_converged(roots, "q*", sigma_w2=w[todo], sigma_b2=b[todo])
    q[w == 0] = b[w == 0]
    return q


def _bracket_q_star(
    g: Callable[[Array, NDArray[np.intp]], Array], w: Array, b: Array, q: Array, q0: float
) -> tuple[Array, Array]:
    """Brackets ``[lo, hi]`` of q* in the direction the q-map moves from q0.

    ``g(x, idx) = q-map(x) - x``. Fills ``q`` in place where the answer is known without a
    root search: ``q0`` (a fixed point), ``inf`` (divergent), 0 (the fixed point at 0).
    """
    all_idx = np.arange(w.size)
    g0 = g(np.full(w.shape, q0), all_idx)
    q[g0 == 0] = q0
    lo = np.full(w.shape, q0)
    hi = np.full(w.shape, q0)
    # upward: the map moves q up from q0 (at most log16(Q_MAX) steps)
    up = np.flatnonzero(g0 > 0)
    while up.size:
        hi[up] = np.maximum(16.0 * hi[up], 1.0)
        gh = g(hi[up], up)
        found = gh <= 0
        diverged = ~found & (hi[up] > Q_MAX)
        q[up[diverged]] = np.inf
        lo[up] = np.where(found, hi[up] / 16.0, lo[up])
        up = up[~found & ~diverged]
        # keep lo as the last point with g > 0
        lo[up] = hi[up]
    # downward: the map moves q down from q0; g(b) = sigma_w2 F(b) >= 0 ends the search
    down = np.flatnonzero(g0 < 0)
    for _ in range(_MAX_BRACKET):
        if down.size == 0:
            break
        nxt = np.maximum(lo[down] / 16.0, b[down])
        tiny = nxt < Q_MIN
        nxt = np.where(tiny, 0.0, nxt)
        gl = g(nxt, down)
        # g(0) = sigma_b2 + sigma_w2 phi(0)^2 >= 0; g(0) = 0 makes q = 0 the fixed point.
        zero = tiny & (gl <= 0)
        found = (gl >= 0) & ~zero
        hi[down] = np.where(found, lo[down], nxt)  # last point with g < 0
        lo[down] = nxt
        q[down[zero]] = 0.0
        down = down[~found & ~zero]
    if down.size:  # only with a q-map that is NaN below q0
        raise MFTheoryError(
            f"sigma_w2={w[down[0]]!r}, sigma_b2={b[down[0]]!r}: no bracket of q* below"
            f" q0={q0!r} (the q-map is not finite there)"
        )
    return lo, hi


def _solve_c_star(
    act: Activation,
    w: Array,
    b: Array,
    q: Array,
    st: QuadratureSettings,
    moments: QMoments | None = None,
    q_lo: Array | None = None,
    deficit: Array | None = None,
    chi_1_excess: Array | None = None,
) -> tuple[Array, Array]:
    """c* in [0, 1) and chi_c there, for chaotic points (flat arrays).

    ``moments`` (a table) supplies F and G for the Hermite tail bounds instead of quadrature.
    ``deficit``, if given, receives ``1 - chi_c`` formed without cancellation where the path
    allows (Hermite series; erf and sin near the line, with ``q* = q + q_lo``), else
    ``1 - chi_c``; ``chi_1_excess`` (``chi_1 - 1`` in extended precision, NaN off the line)
    anchors the Hermite path next to the line (``near_critical.hermite_deficit``).
    Raises ``MFTheoryError`` naming the first point where no stage converged.
    """
    out = np.empty(q.size) if deficit is None else deficit
    if act.closed_form is not None and not act.homogeneous:  # erf, sin: smooth in c

        def cmap_and_slope(c: Array, idx: NDArray[np.intp]) -> tuple[Array, Array]:
            qi = q[idx]
            e = closed_pair(act, qi, qi, c, False)
            de = closed_pair(act, qi, qi, c, True)
            return (w[idx] * e + b[idx]) / qi, w[idx] * de

        start = probe_start(lambda c, i: cmap_and_slope(c, i)[0], q.size)
        roots, _ = newton_fixed_point(cmap_and_slope, start, maxiter=C_MAXITER)
        c = require_converged(roots, "c*", sigma_w2=w, sigma_b2=b)
        chi_c = cmap_and_slope(c, np.arange(q.size))[1]
        out[:] = 1.0 - chi_c
        cf = act.closed_form
        if isinstance(cf, (Erf, Sin)) and chi_1_excess is not None:  # next to the line
            d0 = 1.0 - c
            qs = q * cf.scale**2 if isinstance(cf, Erf) else q
            near = np.flatnonzero(np.isfinite(chi_1_excess) & (d0 <= 0.1) & (d0 * qs <= 1.0))
            ql = np.zeros(q.size) if q_lo is None else q_lo
            dr, out[near] = chaotic_deficit(cf, w[near], q[near], ql[near], d0[near])
            d = require_converged(dr, "c*", sigma_w2=w[near], sigma_b2=b[near])
            c[near], chi_c[near] = 1.0 - d, 1.0 - out[near]
        return c, chi_c

    c = np.zeros(q.size)
    chi_c = np.zeros(q.size)
    ex = np.full(q.size, np.nan) if chi_1_excess is None else chi_1_excess
    bad = _hermite_c_star(act, w, b, q, st, moments, c, chi_c, out, ex)
    close = bad & np.isfinite(ex)
    if np.any(close):  # next to the line: 2D quadrature of a cancellation-free form
        idx = np.flatnonzero(close)
        dr, dd = quadrature_chaotic_deficit(act, w[idx], q[idx], ex[idx], 1.0 - c[idx], st)
        ok = idx[dr.converged]
        c[ok], out[ok] = 1.0 - dr.x[dr.converged], dd[dr.converged]
        chi_c[ok] = 1.0 - out[ok]
        bad[ok] = False
    if np.any(bad):
        idx = np.flatnonzero(bad)
        c[idx], chi_c[idx] = _nested_c_star(act, w[idx], b[idx], q[idx], st)
        out[idx] = 1.0 - chi_c[idx]
    return c, chi_c


def _hermite_c_star(
    act: Activation,
    w: Array,
    b: Array,
    q: Array,
    st: QuadratureSettings,
    moments: QMoments | None,
    c: Array,
    chi_c: Array,
    deficit: Array,
    excess: Array,
) -> NDArray[np.bool_]:
    """c*, chi_c, ``deficit = 1 - chi_c`` (in place) from Hermite series of growing length.

    Each stage only takes the points whose truncation bound is still above tol or whose
    Newton iteration did not converge; returns where that is still so after the last stage
    (those go to the nested 2D rule).
    """
    bad = np.ones(q.size, dtype=bool)
    for terms in _hermite_ladder(st.hermite_terms):
        idx = np.flatnonzero(bad)
        if idx.size == 0:
            break
        F = None if moments is None else moments.F(q[idx])
        ser = hermite_series(act, q[idx], settings=replace(st, hermite_terms=terms), F=F)
        wi, qi = w[idx], q[idx]
        tails = ser.tails()
        ratio = wi / qi
        c_map_0 = (wi * ser.a[:, 0] ** 2 + b[idx]) / qi  # C(0), no cancellation

        # Chaotic fixed point as the root of (sigma_w2/q) P(c) = 1 with P(c) = sum_j T_j c^j
        # = (C(1) - C(c)) / (1 - c): positive terms, no cancellation near c = 1. With the
        # fixed-point identity (sigma_w2/q) F = 1 - sigma_b2/q this is
        # f(c) = (sigma_w2/q) c P1(c) - C(0) = 0, P1(c) = sum_{j>=1} T_j c^(j-1), exact at
        # c = 0 too; and 1 - chi_c = (1 - c*) (sigma_w2/q) P'(c*) exactly.
        def tail_poly(
            cc: Array,
            j: NDArray[np.intp],
            tails: Array = tails,
            ratio: Array = ratio,
            c_map_0: Array = c_map_0,
        ) -> tuple[Array, Array]:
            p1, dp1 = polynomial_and_slope(tails[j, 1:], cc)
            return ratio[j] * cc * p1 - c_map_0[j], ratio[j] * (p1 + cc * dp1)

        roots = newton_from_one(tail_poly, idx.size, maxiter=C_MAXITER)
        c[idx] = roots.x
        _, dp = tail_poly(c[idx], np.arange(idx.size))
        one_minus = (1.0 - c[idx]) * dp
        pol = np.flatnonzero(np.isfinite(excess[idx]) & roots.converged)
        if pol.size:  # next to the line: with chi_1 - 1 from extended precision
            dr, dd = hermite_deficit(tails[pol], ratio[pol], excess[idx[pol]], 1.0 - c[idx[pol]])
            ok = pol[dr.converged]
            c[idx[ok]], one_minus[ok] = 1.0 - dr.x[dr.converged], dd[dr.converged]
        chi_c[idx] = 1.0 - one_minus
        deficit[idx] = one_minus
        bad[idx] = _loose_tails(ser, c[idx], ratio, dp, one_minus, st) | ~roots.converged
    return bad


def _nested_c_star(
    act: Activation, w: Array, b: Array, q: Array, st: QuadratureSettings
) -> tuple[Array, Array]:
    """c* and chi_c by the nested 2D rule (flat arrays; raises where Newton does not converge).

    Newton on the convex ``g(c) = C(c) - c`` from the left converges monotonically; the
    start is the largest probe with ``g >= 0`` (0 always qualifies), so it is left of c*.
    """

    def value(cc: Array, j: NDArray[np.intp]) -> Array:
        e = nested_pair_expectation(act, q[j], q[j], cc, settings=st)
        return (w[j] * e + b[j]) / q[j]

    def nested(cc: Array, j: NDArray[np.intp]) -> tuple[Array, Array]:
        de = nested_pair_expectation(act, q[j], q[j], cc, derivative=True, settings=st)
        return value(cc, j), w[j] * de

    start = probe_start(value, q.size, (*PROBES, 0.99999))
    roots, _ = newton_fixed_point(nested, start, maxiter=C_MAXITER)
    c = require_converged(roots, "the C-map fixed point c*", sigma_w2=w, sigma_b2=b)
    _, chi_c = nested(c, np.arange(q.size))
    return c, chi_c


def _hermite_ladder(terms: int) -> tuple[int, ...]:
    """Numbers of Hermite terms tried in turn: a cheap first pass, the setting, 8x it."""
    first = min(128, terms)
    return tuple(dict.fromkeys((first, terms, terms * HERMITE_ESCALATION)))


def _loose_tails(
    ser: HermiteSeries,
    c: Array,
    ratio: Array,
    dp: Array,
    one_minus_chi: Array,
    st: QuadratureSettings,
) -> NDArray[np.bool_]:
    """Where truncating ``P(c) = sum_j T_j c^j`` at K terms may matter.

    The omitted terms have ``T_j <= T_K`` (``ser.tail_estimate``): their sum is at most
    ``T_K c^K / (1 - c)`` and that of their derivatives at most
    ``T_K c^(K-1) (K / (1 - c) + 1 / (1 - c)^2)``; compared with 1 (the equation) and
    with ``(sigma_w2/q) P'`` (which sets ``1 - chi_c``).
    """
    K = ser.terms
    d = np.maximum(1.0 - c, 1e-300)
    cK = np.abs(c) ** (K - 1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        value = ratio * ser.tail_estimate * cK * np.abs(c) / d
        slope = ratio * ser.tail_estimate * cK * (K / d + 1.0 / (d * d))
    return (
        (value > st.tol) | (slope > st.tol * np.maximum(dp, 1e-300)) | ~np.isfinite(one_minus_chi)
    )


CStarSolver = Callable[[Activation, Array, Array, Array, QuadratureSettings], tuple[Array, Array]]


def _assemble(
    a: Activation,
    w: Array,
    b: Array,
    q0: float,
    critical_tol: float,
    st: QuadratureSettings,
    mom: QMoments,
    c_solver: CStarSolver,
    near_critical: bool = False,
) -> dict[str, NDArray[Any]]:
    """q*, slopes, phase and (through ``c_solver`` on the chaotic points) c* and chi_c.

    Flat arrays in, flat arrays out; shared by ``fixed_point`` (exact quadrature) and
    ``mftheory.meanfield.grid.phase_grid`` (tables and interpolation along rows). With
    ``near_critical``, points with ``|chi_1 - 1| < NEAR_CRITICAL`` take the path of
    ``mftheory.meanfield.near_critical`` (polished q*, ``1 - chi_c`` without cancellation,
    returned as ``one_minus_chi_c``; NaN elsewhere) and ``c_solver`` is not used.
    """
    q = solve_q_star(a, w, b, q0=q0, settings=st, moments=mom)
    finite = np.isfinite(q)
    chi_1 = np.full(w.shape, np.nan)
    chi_q = np.full(w.shape, np.nan)
    qf = q[finite]
    chi_1[finite] = w[finite] * mom.G(qf)
    chi_q[finite] = w[finite] * mom.F_q(qf)
    if a.homogeneous:
        chi_1 = np.where(finite, chi_1, w * homogeneous_kappa(a))
    deficit, q_lo = np.full(w.shape, np.nan), np.zeros(w.shape)
    near = finite & (np.abs(chi_1 - 1.0) < NEAR_CRITICAL) & near_critical
    if np.any(near):
        if not a.homogeneous:
            q[near], q_lo[near] = polish_q_star(a, w[near], b[near], q[near], chi_q[near], st)
        deficit[near] = one_minus_chi_1(a, w[near], q[near], q_lo[near], st)
        chi_1[near] = 1.0 - deficit[near]
    phase = np.full(w.shape, "divergent", dtype="<U9")
    crit = finite & (np.abs(chi_1 - 1.0) <= critical_tol)
    phase[finite & (chi_1 < 1.0)] = "ordered"
    phase[finite & (chi_1 > 1.0)] = "chaotic"
    phase[crit] = "critical"
    c_star = np.where(finite, 1.0, np.nan)
    chi_c = np.where(finite, chi_1, np.nan)
    chaos = np.flatnonzero(phase == "chaotic")
    if chaos.size and near_critical:
        dc = np.empty(chaos.size)
        c_star[chaos], chi_c[chaos] = _solve_c_star(
            a,
            w[chaos],
            b[chaos],
            q[chaos],
            st,
            q_lo=q_lo[chaos],
            deficit=dc,
            chi_1_excess=-deficit[chaos],
        )
        deficit[chaos] = np.where(near[chaos], dc, np.nan)
    elif chaos.size:
        c_star[chaos], chi_c[chaos] = c_solver(a, w[chaos], b[chaos], q[chaos], st)
    deficit[phase == "critical"] = np.nan
    return {
        "q_star": q,
        "c_star": c_star,
        "chi_1": chi_1,
        "chi_c": chi_c,
        "chi_q": chi_q,
        "phase": phase,
        "one_minus_chi_c": deficit,
    }


def fixed_point(
    act: str | Activation,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    q0: float = 1.0,
    critical_tol: float = 1e-10,
    settings: QuadratureSettings | None = None,
    method: Literal["auto", "pointwise", "grid"] = "auto",
) -> FixedPoint:
    """Fixed point ``(q*, c*)``, slopes, depth scales and phase, vectorised.

    Parameters
    ----------
    act : str or Activation
        Activation name or expression (see ``mftheory.activations.get_activation``).
    sigma_w2, sigma_b2 : array_like
        Weight and bias variances; broadcast against each other.
    q0 : float
        Length the q-map iteration starts from (which stable q* is reported).
    critical_tol : float
        ``|chi_1 - 1|`` up to which a point is labelled critical (and c* = 1).
    settings : QuadratureSettings, optional
    method : {"auto", "pointwise", "grid"}
        ``"pointwise"`` solves every point exactly. ``"grid"`` takes the fast path of
        ``mftheory.meanfield.grid.phase_grid`` on the distinct values of the two
        variances, with its accuracy (about 1e-11 relative for q*, chi_1, chi_q; ``INTERP_TOL``
        for c*), where it applies (see ``mftheory.meanfield.grid.grid_applies``), else
        the pointwise path. ``"auto"`` (default) is ``"grid"`` from
        ``mftheory.meanfield.grid.GRID_FROM`` points on, else ``"pointwise"``.

    Returns
    -------
    FixedPoint

    Raises
    ------
    MFTheoryError
        Negative, NaN or infinite variances; q0 not positive; an unknown method; a solve
        that did not converge (naming the point).

    Notes
    -----
    docs/theory.md section 3; definitions in this module's docstring.

    Examples
    --------
    For erf the q-map has the closed form ``q = sigma_w2 (2/pi) arcsin(2q / (1 + 2q)) +
    sigma_b2`` and ``chi_1 = sigma_w2 (4/pi) / sqrt(1 + 4 q*)`` (docs/theory.md section 3,
    closed forms); solved by hand with ``scipy.optimize.brentq`` they give the same numbers:

    >>> fp = fixed_point("erf", sigma_w2=2.25, sigma_b2=0.25)
    >>> str(fp.phase)
    'chaotic'
    >>> round(float(fp.q_star), 6), round(float(fp.chi_1), 6)
    (1.451326, 1.098168)
    """
    a = get_activation(act)
    st = settings or DEFAULT_SETTINGS
    if not (np.isfinite(q0) and q0 > 0):
        raise MFTheoryError(f"q0 must be positive and finite, got {q0!r}")
    if method not in ("auto", "pointwise", "grid"):
        raise MFTheoryError(f"method must be 'auto', 'pointwise' or 'grid', got {method!r}")
    w_arr, b_arr = check_variances(sigma_w2, sigma_b2)
    if method != "pointwise":
        # phase_grid never calls fixed_point (it assembles from the solvers below), so this
        # delegation cannot recurse
        from mftheory.meanfield import grid

        if method == "grid" or w_arr.size >= grid.GRID_FROM:
            on_grid = grid.fixed_point_on_grid(a, w_arr, b_arr, q0, critical_tol, st)
            if on_grid is not None:
                return on_grid
    shape = w_arr.shape
    w, b = w_arr.ravel(), b_arr.ravel()
    fields = _assemble(a, w, b, q0, critical_tol, st, ExactMoments(a, st), _solve_c_star, True)
    fields = {k: np.asarray(v).reshape(shape) for k, v in fields.items()}
    return _result(a, w.reshape(shape), b.reshape(shape), fields, st, q0, critical_tol)


def _result(
    a: Activation,
    sigma_w2: Array,
    sigma_b2: Array,
    fields: dict[str, NDArray[Any]],
    st: QuadratureSettings,
    q0: float,
    critical_tol: float,
) -> FixedPoint:
    """A ``FixedPoint`` from the solved fields, adding the depth scales."""
    return FixedPoint(
        activation=a,
        sigma_w2=sigma_w2,
        sigma_b2=sigma_b2,
        q_star=fields["q_star"],
        c_star=fields["c_star"],
        chi_1=fields["chi_1"],
        chi_c=fields["chi_c"],
        chi_q=fields["chi_q"],
        xi_c=xi_from_chi_or_deficit(fields["chi_c"], fields.get("one_minus_chi_c")),
        xi_q=depth_scale(np.asarray(fields["chi_q"])),
        xi_grad=_gradient_scale(fields["chi_1"]),
        phase=fields["phase"],
        settings=st,
        q0=float(q0),
        critical_tol=float(critical_tol),
    )
