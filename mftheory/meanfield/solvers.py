"""Vectorised one-dimensional root finders of the mean-field solvers, reporting convergence.

Every solver works on many independent problems at once: it takes a function
``fun(x, idx)`` evaluated at the current iterates ``x`` of the problems ``idx`` (integer
indices into the full set), iterates only the problems not yet converged, and returns a
``Roots``: the last iterates and a boolean ``converged`` array. A problem that is still
active after ``maxiter`` iterations is **not** converged; callers check (see
``require_converged``), so no unconverged number is returned silently.

* ``bracketed_newton``: Newton safeguarded by bisection on a sign-changing bracket
  (the stable length ``q*``).
* ``illinois``: the Illinois (modified regula falsi) method on a bracket, derivative
  free (the critical line).
* ``newton_from_one``: Newton for an increasing convex function on ``[0, 1]`` started
  at 1 (monotone from the right; the chaotic ``c*`` from the Hermite series).
* ``newton_fixed_point``: Newton on ``g(c) = C(c) - c`` for a convex map ``C`` on
  ``[0, 1]`` started left of the root (monotone from the left; ``c*`` by quadrature).
* ``positive_newton``: Newton for a positive root from a close start (the polish of
  ``1 - c*`` next to the critical line, ``mftheory.meanfield.near_critical``).

Notes
-----
docs/theory.md section 3: the q-map is increasing in q, the C-map on ``[0, 1]`` is a power series
in c with non-negative coefficients (increasing and convex), which is what makes the
monotone Newton iterations of ``newton_from_one`` and ``newton_fixed_point`` safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.errors import MFTheoryError

__all__ = [
    "MAXITER",
    "PROBES",
    "Roots",
    "bracketed_newton",
    "illinois",
    "newton_fixed_point",
    "newton_from_one",
    "positive_newton",
    "probe_start",
    "require_converged",
    "step_converged",
]

Array = NDArray[np.float64]
Index = NDArray[np.intp]
#: ``fun(x, idx) -> (f, f')``: values and slopes at iterates x of problems idx.
ValueAndSlope = Callable[[Array, Index], tuple[Array, Array]]
#: ``fun(x, idx) -> f``: values at iterates x of problems idx.
Value = Callable[[Array, Index], Array]

MAXITER = 200  # default iteration limit of every solver here
PROBES = (0.5, 0.9, 0.99, 0.999, 0.9999)  # warm starts of the c* Newton iteration


@dataclass(frozen=True)
class Roots:
    """What a vectorised solver returns.

    Attributes
    ----------
    x : ndarray
        The last iterate of every problem (the root where ``converged``).
    converged : ndarray of bool
        False where the problem was still iterating after ``maxiter`` iterations.
    maxiter : int
        The iteration limit that applied.
    """

    x: Array
    converged: NDArray[np.bool_]
    maxiter: int

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))

    def first_unconverged(self) -> int | None:
        """Index of the first unconverged problem, or None."""
        bad = np.flatnonzero(~self.converged)
        return int(bad[0]) if bad.size else None


def require_converged(roots: Roots, what: str, **params: ArrayLike) -> Array:
    """``roots.x``, or an ``MFTheoryError`` naming the first unconverged problem.

    Parameters
    ----------
    roots : Roots
    what : str
        What was solved for, e.g. ``"q*"``.
    **params : array_like
        Arrays aligned with ``roots.x`` naming each problem (e.g. ``sigma_w2=w, sigma_b2=b``).

    Raises
    ------
    MFTheoryError
        ``"sigma_w2=2.5, sigma_b2=0.1: q* did not converge in 200 iterations"``.
    """
    i = roots.first_unconverged()
    if i is None:
        return roots.x
    named = ", ".join(f"{k}={float(np.asarray(v).ravel()[i])!r}" for k, v in params.items())
    raise MFTheoryError(
        f"{named}: {what} did not converge in {roots.maxiter} iterations"
        "; try finer QuadratureSettings"
    )


def bracketed_newton(
    fun: ValueAndSlope,
    lo: Array,
    hi: Array,
    f_lo_sign: Array,
    *,
    rtol: float = 4e-16,
    maxiter: int = MAXITER,
    x0: Array | None = None,
) -> Roots:
    """Vectorised Newton safeguarded by bisection on brackets ``[lo, hi]``.

    Parameters
    ----------
    fun : callable
        ``fun(x, idx)`` returns ``(f, f')`` at points ``x`` of problems ``idx``.
    lo, hi : ndarray
        Brackets on which f changes sign.
    f_lo_sign : ndarray
        The sign of f at ``lo``.
    rtol : float
        Relative step (or bracket width) at which a problem has converged.
    maxiter : int
    x0 : ndarray, optional
        Starting points (clipped to the brackets; default: the midpoints).

    Returns
    -------
    Roots
    """
    lo, hi = lo.astype(np.float64).copy(), hi.astype(np.float64).copy()
    x = 0.5 * (lo + hi) if x0 is None else np.clip(x0, lo, hi)
    active = np.arange(x.size)
    for _ in range(maxiter):
        if active.size == 0:
            break
        xa = x[active]
        f, df = fun(xa, active)
        same = np.sign(f) == f_lo_sign[active]
        lo[active] = np.where(same, xa, lo[active])
        hi[active] = np.where(same, hi[active], xa)
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = xa - f / df
        la, ha = lo[active], hi[active]
        outside = ~np.isfinite(xn) | (xn <= la) | (xn >= ha)
        xn = np.where(outside, 0.5 * (la + ha), xn)
        done = (
            (f == 0)
            | (np.abs(xn - xa) <= rtol * np.abs(xa) + 1e-300)
            | (ha - la <= rtol * np.abs(ha))
        )
        x[active] = np.where(f == 0, xa, xn)
        active = active[~done]
    return _roots(x, active, maxiter)


def illinois(
    fun: Value,
    lo: Array,
    hi: Array,
    f_lo: Array,
    f_hi: Array,
    *,
    maxiter: int = 100,
) -> Roots:
    """Vectorised Illinois (modified regula falsi) on brackets with ``f_lo < 0 <= f_hi``.

    Parameters
    ----------
    fun : callable
        ``fun(x, idx)`` returns f at points ``x`` of problems ``idx``.
    lo, hi : ndarray
        Brackets.
    f_lo, f_hi : ndarray
        f at the bracket ends (``f_hi == 0``: the root is ``hi``).
    maxiter : int

    Returns
    -------
    Roots
        Converged where f vanished or the bracket shrank to rounding level.
    """
    lo, hi, f_lo, f_hi = lo.copy(), hi.copy(), f_lo.copy(), f_hi.copy()
    x = hi.copy()
    side = np.zeros(lo.shape, dtype=np.int8)
    active = np.flatnonzero(f_hi != 0)
    for _ in range(maxiter):
        if active.size == 0:
            break
        a, b, fa, fb = lo[active], hi[active], f_lo[active], f_hi[active]
        xn = (a * fb - b * fa) / (fb - fa)
        xn = np.where(np.isfinite(xn) & (xn > a) & (xn < b), xn, 0.5 * (a + b))
        fx = fun(xn, active)
        neg = fx < 0
        # Illinois: halve the retained end's value when the same side is kept twice
        keep_hi = neg & (side[active] == 1)
        keep_lo = ~neg & (side[active] == -1)
        f_hi[active] = np.where(neg, np.where(keep_hi, 0.5 * fb, fb), fx)
        f_lo[active] = np.where(neg, fx, np.where(keep_lo, 0.5 * fa, fa))
        lo[active] = np.where(neg, xn, a)
        hi[active] = np.where(neg, b, xn)
        side[active] = np.where(neg, 1, -1)
        x[active] = xn
        width = hi[active] - lo[active]
        done = (fx == 0) | (width <= 4e-16 * np.abs(hi[active]) + 1e-300)
        active = active[~done]
    return _roots(x, active, maxiter)


def step_converged(step: Array, residual: Array, prev_step: Array) -> NDArray[np.bool_]:
    """Whether Newton on c in [0, 1] has converged.

    A step at rounding level, a residual ``C(c) - c`` at rounding level, or a small step
    that no longer shrinks (the noise floor of the expectation, amplified by
    ``1 / (1 - chi_c)`` near the critical line).
    """
    a = np.abs(step)
    eps = np.finfo(np.float64).eps
    return (a <= 2e-15) | (np.abs(residual) <= 8 * eps) | ((a < 1e-9) & (a >= 0.5 * prev_step))


def newton_from_one(fun: ValueAndSlope, n: int, *, maxiter: int = MAXITER) -> Roots:
    """Newton for ``n`` increasing convex functions f on [0, 1] from c = 1.

    The iteration is monotone from the right; it stops at the root (see
    ``step_converged``) or at ``c = 0`` when the root is at 0.

    Parameters
    ----------
    fun : callable
        ``fun(c, idx)`` returns ``(f, f')``.
    n : int
        Number of problems.
    maxiter : int

    Returns
    -------
    Roots
    """
    c = np.ones(n)
    prev = np.full(n, np.inf)
    active = np.arange(n)
    for _ in range(maxiter):
        if active.size == 0:
            break
        ca = c[active]
        f, df = fun(ca, active)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -f / df
        step = np.where(np.isfinite(step), step, 0.0)
        cn = np.clip(ca + step, 0.0, 1.0)
        done = step_converged(cn - ca, f, prev[active]) | ((cn == 0.0) & (ca == 0.0))
        prev[active] = np.abs(cn - ca)
        c[active] = cn
        active = active[~done]
    return _roots(c, active, maxiter)


def probe_start(c_map: Value, n: int, probes: tuple[float, ...] = PROBES) -> Array:
    """The largest probe value of c with ``C(c) - c >= 0`` (else 0), per problem.

    For a convex ``g(c) = C(c) - c`` with ``g(0) >= 0`` this is left of the smallest root, so
    Newton from it stays monotone; near c = 1 it saves most of the iterations from 0.
    """
    c = np.zeros(n)
    everyone = np.arange(n)
    for probe in probes:
        cm = c_map(np.full(n, probe), everyone)
        c = np.where(cm - probe >= 0, probe, c)
    return c


def newton_fixed_point(
    fun: ValueAndSlope, c0: Array, *, maxiter: int = MAXITER
) -> tuple[Roots, Array]:
    """Newton on ``g(c) = C(c) - c`` from ``c0`` left of the root (monotone on convex C).

    Parameters
    ----------
    fun : callable
        ``fun(c, idx)`` returns ``(C(c), C'(c))``.
    c0 : ndarray
        Starting points in [0, 1], left of the roots (see ``probe_start``).
    maxiter : int

    Returns
    -------
    roots : Roots
        The fixed points ``c*`` in [0, 1].
    slope : ndarray
        ``C'`` at the last evaluated iterate of every problem (``chi_c`` at convergence up
        to the last step); NaN for a problem never evaluated.
    """
    c = np.asarray(c0, dtype=np.float64).copy()
    slope_out = np.full(c.shape, np.nan)
    prev = np.full(c.shape, np.inf)
    active = np.arange(c.size)
    for _ in range(maxiter):
        if active.size == 0:
            break
        ca = c[active]
        cm, slope = fun(ca, active)
        gval = cm - ca
        with np.errstate(divide="ignore", invalid="ignore"):
            step = gval / (1.0 - slope)
        step = np.where(np.isfinite(step), step, 0.0)
        cn = np.clip(ca + step, 0.0, 1.0)
        done = step_converged(cn - ca, gval, prev[active])
        prev[active] = np.abs(cn - ca)
        c[active] = cn
        slope_out[active] = slope
        active = active[~done]
    return _roots(c, active, maxiter), slope_out


def positive_newton(
    fun: ValueAndSlope, x0: Array, *, rtol: float = 1e-15, maxiter: int = MAXITER
) -> Roots:
    """Newton's method for positive roots from close starting points (a polish).

    Parameters
    ----------
    fun : callable
        ``fun(x, idx)`` returns ``(f, f')`` at iterates ``x`` of problems ``idx``.
    x0 : ndarray
        Positive starting points near the roots (e.g. from a less accurate solve).
    rtol : float
        Relative step at which a problem has converged.
    maxiter : int

    Returns
    -------
    Roots
        A step that would leave ``x > 0`` (or is not finite) halves ``x`` instead.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    active = np.arange(x.size)
    for _ in range(maxiter):
        if active.size == 0:
            break
        xa = x[active]
        f, df = fun(xa, active)
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = xa - f / df
        xn = np.where(np.isfinite(xn) & (xn > 0), xn, 0.5 * xa)
        done = np.abs(xn - xa) <= rtol * xa
        x[active] = xn
        active = active[~done]
    return _roots(x, active, maxiter)


def _roots(x: Array, active: Index, maxiter: int) -> Roots:
    converged = np.ones(x.shape, dtype=bool)
    converged[active] = False
    return Roots(x=x, converged=converged, maxiter=int(maxiter))
