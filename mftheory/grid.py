"""Phase diagrams at grid scale: every mean-field quantity on a (sigma_b2 x sigma_w2) grid.

:func:`phase_grid` returns the same :class:`~mftheory.fixed_points.FixedPoint` as
``fixed_point(act, sigma_w2=w[None, :], sigma_b2=b[:, None])``, but exploits the structure
of the maps so that a million points take about a second:

1. ``q*``, ``chi_1`` and ``chi_q`` only need the functions of q alone ``F``, ``F'``, ``G``:
   they come from a :class:`~mftheory.tables.QTable` (cubic Hermite interpolation in log q,
   about 1e-11 relative), so each point costs a few interpolations.
2. ``c*`` and ``chi_c`` need the 2D C-map. Along one row of the grid (fixed sigma_b2) the
   chaotic fixed point is an analytic function of sigma_w2 on the chaotic segment, which
   starts at the critical point (c* = 1, chi_c = 1, a transcritical bifurcation). It is
   solved exactly (Hermite series, see :mod:`mftheory.fixed_points`) at Chebyshev nodes of
   the segment and interpolated (barycentric formula). Every row is **checked**: the
   interpolant is compared with exact solves at points between the nodes; a row that misses
   ``INTERP_TOL`` is redone with twice the nodes, then exactly at every point.
   Activations with kinks are solved exactly at every point: a jump in phi' (hard_tanh,
   selu) puts a ``sqrt(1 - c)`` singularity into the C-map's slope, so c* is not analytic
   in sigma_w2 at the critical end of the segment and interpolation would converge slowly.

Closed-form activations (erf, sin, relu, leaky_relu, linear) skip the tables: their exact
path is already cheap per point.

Notes
-----
THEORY.md section 3 (the q-map depends on q alone; the C-map at fixed q is a power series
in c).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .activations import Activation, get_activation
from .critical import critical_point
from .errors import MFTheoryError
from .fixed_points import (
    ExactMoments,
    FixedPoint,
    QMoments,
    _assemble,
    _gradient_scale,
    _solve_c_star,
    depth_scale,
    solve_q_star,
)
from .maps import check_variances
from .quadrature import DEFAULT_SETTINGS, QuadratureSettings

__all__ = ["INTERP_TOL", "phase_grid"]

Array = NDArray[np.float64]
INTERP_TOL = 1e-10  # accepted interpolation error of c* (absolute); chi_c: 10x, vs 1 - chi_c
_NOISE = 5e-15  # noise of an exact chi_c solve is about _NOISE / (1 - chi_c)
_NODES = (33, 65)  # Chebyshev nodes per row, tried in turn
_CHECKS = 6  # exact check points per row
_POINTS_PER_CHUNK = 1_000_000


def _axis(values: ArrayLike, name: str) -> Array:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise MFTheoryError(f"{name} must be a non-empty 1-D array of values")
    return arr


def phase_grid(
    act: str | Activation,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    q0: float = 1.0,
    critical_tol: float = 1e-10,
    settings: QuadratureSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_rows: int | None = None,
) -> FixedPoint:
    """Fixed points, slopes, depth scales and phases on a grid, fast.

    Parameters
    ----------
    act : str or Activation
    sigma_w2 : array_like, shape (W,)
        Weight variances (the columns).
    sigma_b2 : array_like, shape (B,)
        Bias variances (the rows).
    q0, critical_tol, settings
        As in :func:`mftheory.fixed_points.fixed_point`.
    progress : callable, optional
        Called as ``progress(rows_done, rows_total)`` after each chunk of rows.
    chunk_rows : int, optional
        Rows per chunk (default: about a million points per chunk), which bounds the memory
        of the temporaries; the result itself is ``B x W`` per field.

    Returns
    -------
    FixedPoint
        Arrays of shape (B, W); row i belongs to ``sigma_b2[i]``.

    Notes
    -----
    THEORY.md section 3; the method is in the module docstring. Accuracy against
    :func:`~mftheory.fixed_points.fixed_point`: about 1e-11 relative for q*, chi_1, chi_q
    (table interpolation), ``INTERP_TOL`` for c* and for chi_c relative to ``1 - chi_c``
    (checked per row).

    Examples
    --------
    >>> g = phase_grid("tanh", sigma_w2=[1.0, 2.0, 3.0], sigma_b2=[0.05, 0.5])
    >>> g.phase.tolist()
    [['ordered', 'chaotic', 'chaotic'], ['ordered', 'ordered', 'chaotic']]
    """
    a = get_activation(act)
    st = settings or DEFAULT_SETTINGS
    if not (np.isfinite(q0) and q0 > 0):
        raise MFTheoryError(f"q0 must be positive and finite, got {q0!r}")
    w_axis = _axis(sigma_w2, "sigma_w2")
    b_axis = _axis(sigma_b2, "sigma_b2")
    check_variances(w_axis, 0.0)
    check_variances(0.0, b_axis)
    B, W = b_axis.size, w_axis.size
    mom: QMoments
    if a.closed_form is None:
        from .tables import q_table

        mom = q_table(a, st)
    else:
        mom = ExactMoments(a, st)
    w_crit = critical_point(a, sigma_b2=b_axis, settings=st).sigma_w2
    out = {k: np.empty((B, W)) for k in ("q_star", "c_star", "chi_1", "chi_c", "chi_q")}
    phase = np.empty((B, W), dtype="<U9")
    rows_per_chunk = chunk_rows or max(1, _POINTS_PER_CHUNK // W)
    for r0 in range(0, B, rows_per_chunk):
        r1 = min(B, r0 + rows_per_chunk)
        wg = np.broadcast_to(w_axis, (r1 - r0, W)).ravel()
        bg = np.repeat(b_axis[r0:r1], W)
        if a.closed_form is None and not a.kinks:
            solver = _RowSolver(w_axis, b_axis[r0:r1], w_crit[r0:r1], q0, mom)
            fields = _assemble(a, wg, bg, q0, critical_tol, st, mom, solver)
        else:
            fields = _assemble(a, wg, bg, q0, critical_tol, st, mom, _solve_c_star)
        for k, arr in out.items():
            arr[r0:r1] = fields[k].reshape(r1 - r0, W)
        phase[r0:r1] = fields["phase"].reshape(r1 - r0, W)
        if progress is not None:
            progress(r1, B)
    return FixedPoint(
        activation=a,
        sigma_w2=np.broadcast_to(w_axis, (B, W)).copy(),
        sigma_b2=np.broadcast_to(b_axis[:, None], (B, W)).copy(),
        q_star=out["q_star"],
        c_star=out["c_star"],
        chi_1=out["chi_1"],
        chi_c=out["chi_c"],
        chi_q=out["chi_q"],
        xi_c=depth_scale(out["chi_c"]),
        xi_q=depth_scale(out["chi_q"]),
        xi_grad=_gradient_scale(out["chi_1"]),
        phase=phase,
        settings=st,
        q0=float(q0),
        critical_tol=float(critical_tol),
    )


@dataclass(frozen=True)
class _Plan:
    """One row's chaotic segment: its points, the interval [lo, hi] in sigma_w2, the bias,
    and whether lo is the critical point (where c* = chi_c = 1 exactly)."""

    pts: NDArray[np.intp]
    lo: float
    hi: float
    b: float
    from_critical: bool


class _RowSolver:
    """c* solver for the chaotic points of a chunk of grid rows (see the module notes)."""

    def __init__(
        self, w_axis: Array, b_rows: Array, w_crit: Array, q0: float, mom: QMoments
    ) -> None:
        self.w_axis = w_axis
        self.b_rows = b_rows
        self.w_crit = w_crit
        self.q0 = q0
        self.mom = mom

    def __call__(
        self, a: Activation, w: Array, b: Array, q: Array, st: QuadratureSettings
    ) -> tuple[Array, Array]:
        c = np.full(w.shape, np.nan)
        chi_c = np.full(w.shape, np.nan)
        exact = np.zeros(w.shape, dtype=bool)
        plans: list[_Plan] = []
        for r, b_r in enumerate(self.b_rows):
            pts = np.flatnonzero(b == b_r)
            if pts.size == 0 or np.any(self.b_rows[:r] == b_r):
                continue
            plan = self._plan(pts, w, b_r, float(self.w_crit[r]))
            if plan is None:
                exact[pts] = True
            else:
                plans.append(plan)
        for n_nodes in _NODES:
            if not plans:
                break
            plans = self._interpolate(a, plans, n_nodes, w, c, chi_c, st)
        for plan in plans:
            exact[plan.pts] = True
        idx = np.flatnonzero(exact)
        if idx.size:
            c[idx], chi_c[idx] = _solve_c_star(a, w[idx], b[idx], q[idx], st, self.mom)
        return c, chi_c

    def _plan(self, pts: NDArray[np.intp], w: Array, b_r: float, wc: float) -> _Plan | None:
        """Interpolation segment of one row, or None to solve its points exactly."""
        if pts.size <= _NODES[0] + _CHECKS or not _increasing(self.w_axis):
            return None
        cols = np.searchsorted(self.w_axis, w[pts])
        if np.any(np.diff(cols) != 1) or np.any(self.w_axis[cols] != w[pts]):
            return None  # the chaotic columns are not one contiguous segment
        lo, hi = float(w[pts[0]]), float(w[pts[-1]])
        prev = self.w_axis[cols[0] - 1] if cols[0] > 0 else -np.inf
        from_critical = bool(np.isfinite(wc) and prev <= wc <= lo)
        return _Plan(pts, wc if from_critical else lo, hi, b_r, from_critical)

    def _interpolate(
        self,
        a: Activation,
        plans: list[_Plan],
        n: int,
        w: Array,
        c: Array,
        chi_c: Array,
        st: QuadratureSettings,
    ) -> list[_Plan]:
        """Interpolate every planned row with n nodes; return the rows that failed the check."""
        x_nodes = np.cos(np.pi * np.arange(n) / (n - 1))  # Chebyshev, second kind: 1 .. -1
        between = np.round(np.linspace(0, n - 2, _CHECKS)).astype(int)
        x_check = np.cos(np.pi * (between + 0.5) / (n - 1))
        bary = np.ones(n)
        bary[1::2] = -1.0
        bary[[0, -1]] *= 0.5
        m = n + _CHECKS
        x_all = np.concatenate([x_nodes, x_check])
        wv = np.concatenate([0.5 * (p.hi + p.lo) + 0.5 * (p.hi - p.lo) * x_all for p in plans])
        bv = np.repeat([p.b for p in plans], m)
        critical_at = [k * m + (n - 1) for k, p in enumerate(plans) if p.from_critical]
        cv, chiv = self._exact(a, wv, bv, np.array(critical_at, dtype=np.intp), st)
        failed = []
        for k, p in enumerate(plans):
            cn, chin = cv[k * m : k * m + n], chiv[k * m : k * m + n]
            cc, chic = cv[k * m + n : (k + 1) * m], chiv[k * m + n : (k + 1) * m]
            if not (
                np.all(np.isfinite(cv[k * m : (k + 1) * m]))
                and np.all(np.isfinite(chiv[k * m : (k + 1) * m]))
            ):
                failed.append(p)
                continue
            table = np.stack([cn, chin])
            got = _barycentric(x_nodes, bary, table, x_check)
            # xi_c = -1/log(chi_c) ~ 1/(1 - chi_c): chi_c must be right relative to 1 - chi_c
            # (plus the noise of the exact solve itself, which grows like eps / (1 - chi_c)
            # next to the critical point, where the C-map residual C(c) - c cancels)
            gap = np.maximum(np.abs(1.0 - chic), 1e-300)
            ok = np.all(np.abs(got[0] - cc) <= INTERP_TOL) and np.all(
                np.abs(got[1] - chic) <= 10 * INTERP_TOL * gap + _NOISE / gap
            )
            if not ok:
                failed.append(p)
                continue
            x = (w[p.pts] - 0.5 * (p.hi + p.lo)) / (0.5 * (p.hi - p.lo))
            vals = _barycentric(x_nodes, bary, table, x)
            c[p.pts], chi_c[p.pts] = vals[0], vals[1]
        return failed

    def _exact(
        self,
        a: Activation,
        wv: Array,
        bv: Array,
        critical_at: NDArray[np.intp],
        st: QuadratureSettings,
    ) -> tuple[Array, Array]:
        """Exact c*, chi_c at nodes and check points; ``critical_at`` are critical points."""
        q = solve_q_star(a, wv, bv, q0=self.q0, settings=st, moments=self.mom)
        chi_1 = wv * self.mom.G(q)
        c = np.ones(wv.shape)
        chi = np.where(np.isfinite(q), np.minimum(chi_1, 1.0), np.nan)
        chaos = np.isfinite(q) & (chi_1 > 1.0)
        chaos[critical_at] = False
        chi[critical_at] = 1.0
        idx = np.flatnonzero(chaos)
        if idx.size:
            c[idx], chi[idx] = _solve_c_star(a, wv[idx], bv[idx], q[idx], st, self.mom)
        c[~np.isfinite(q)] = np.nan
        return c, chi


def _increasing(x: Array) -> bool:
    return bool(np.all(np.diff(x) > 0))


def _barycentric(x_nodes: Array, bary: Array, values: Array, x: Array) -> Array:
    """Barycentric interpolation (second form) of ``values`` (m, n) at points ``x``."""
    diff = x[:, None] - x_nodes[None, :]
    exact = diff == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        k = bary / diff
    k = np.where(exact.any(axis=1, keepdims=True), exact.astype(np.float64), k)
    return np.asarray((values @ k.T) / k.sum(axis=1))
