"""Phase diagrams at grid scale: every mean-field quantity on a (sigma_b2 x sigma_w2) grid.

``phase_grid`` returns the same ``FixedPoint`` as
``fixed_point(act, sigma_w2=w[None, :], sigma_b2=b[:, None])``, but exploits the structure
of the maps so that a million points take about a second:

1. ``q*``, ``chi_1`` and ``chi_q`` only need the functions of q alone ``F``, ``F'``, ``G``:
   they come from a ``QTable`` (cubic Hermite interpolation in log q,
   about 1e-11 relative), so each point costs a few interpolations.
2. ``c*`` and ``chi_c`` need the 2D C-map. Along one row of the grid (fixed sigma_b2) the
   chaotic fixed point is an analytic function of sigma_w2 on the chaotic segment, which
   starts at the critical point (c* = 1, chi_c = 1, a transcritical bifurcation). It is
   solved exactly (Hermite series, see ``mftheory.meanfield.fixed_points``) at Chebyshev
   nodes and interpolated (barycentric formula). First for all rows at once: in the coordinates
   ``x = (w - w_c(b)) / (w_max - w_c(b))`` and ``u = sqrt(sigma_b2)`` the segments of all
   rows fill a rectangle on which c* is smooth, so a 33 x 33 tensor interpolant serves a
   whole grid (about a thousand exact solves for a million points). Otherwise row by row.
   Every interpolant is **checked** against exact solves at points between the nodes (64
   random points for the tensor, 6 per row); what misses ``INTERP_TOL`` falls back: tensor
   to rows, a row to twice the nodes, then to exact solves at every point.
   Activations with kinks are solved exactly at every point: a jump in phi' (hard_tanh,
   selu) puts a ``sqrt(1 - c)`` singularity into the C-map's slope, so c* is not analytic
   in sigma_w2 at the critical end of the segment and interpolation would converge slowly.

Closed-form activations (erf, sin, relu, leaky_relu, linear) skip the tables: their exact
path is already cheap per point.

Notes
-----
docs/theory.md section 3 (the q-map depends on q alone; the C-map at fixed q is a power series
in c).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.errors import MFTheoryError
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS, QuadratureSettings
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import (
    CStarSolver,
    ExactMoments,
    FixedPoint,
    QMoments,
    _assemble,
    _result,
    _solve_c_star,
    solve_q_star,
)
from mftheory.meanfield.maps import check_variances
from mftheory.meanfield.near_critical import NEAR_CRITICAL

__all__ = [
    "GRID_FROM",
    "INTERP_TOL",
    "PROGRESS_STEPS",
    "fixed_point_on_grid",
    "grid_applies",
    "phase_grid",
]

Array = NDArray[np.float64]
INTERP_TOL = 1e-10  # accepted interpolation error of c* (absolute); chi_c: 10x, vs 1 - chi_c
_NOISE = 5e-15  # noise of an exact chi_c solve is about _NOISE / (1 - chi_c)
_NODES = (33, 65)  # Chebyshev nodes per row, tried in turn
_TENSOR_NODES = 33  # Chebyshev nodes per axis of the (x, sigma_b2) tensor interpolant
_TENSOR_CHECKS = 64  # exact check points of the tensor interpolant
_CHECKS = 6  # exact check points per row
_POINTS_PER_CHUNK = 1_000_000
#: ``phase_grid`` reports progress at least this many times on a grid of as many rows.
PROGRESS_STEPS = 20
#: From this many points on, ``fixed_point(method="auto")`` takes the grid path.
GRID_FROM = 10_000
_GRID_FILL = 2  # the grid of distinct values may have at most this many times the points


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
        As in ``mftheory.meanfield.fixed_point``.
    progress : callable, optional
        Called as ``progress(rows_done, rows_total)``, increasing, the last call
        ``(B, B)``: with the default ``chunk_rows`` at least ``PROGRESS_STEPS`` times
        (once per row when there are fewer rows), else after each chunk of rows.
    chunk_rows : int, optional
        Rows per chunk (default: about a million points per chunk), which bounds the memory
        of the temporaries; the result itself is ``B x W`` per field. By default the fixed
        points ``q*`` are solved in steps of ``B // PROGRESS_STEPS`` rows (at least one) and ``c*``
        once per chunk; the numbers do not depend on the steps.

    Returns
    -------
    FixedPoint
        Arrays of shape (B, W); row i belongs to ``sigma_b2[i]``.

    Notes
    -----
    docs/theory.md section 3; the method is in the module docstring. Accuracy against
    ``fixed_point``: about 1e-11 relative for q*, chi_1, chi_q
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
        from mftheory.gaussian.qtable import q_table

        mom = q_table(a, st)
    else:
        mom = ExactMoments(a, st)
    w_crit = np.asarray(critical_point(a, sigma_b2=b_axis, settings=st).sigma_w2)
    out = {k: np.empty((B, W)) for k in ("q_star", "c_star", "chi_1", "chi_c", "chi_q")}
    phase = np.empty((B, W), dtype="<U9")
    rows_per_chunk = chunk_rows or max(1, _POINTS_PER_CHUNK // W)
    step = chunk_rows or min(rows_per_chunk, max(1, B // PROGRESS_STEPS))
    for r0 in range(0, B, rows_per_chunk):
        r1 = min(B, r0 + rows_per_chunk)
        if a.closed_form is None and not a.kinks:
            solver: CStarSolver = _RowSolver(w_axis, b_axis[r0:r1], w_crit[r0:r1], q0, mom)
        else:
            solver = _solve_c_star
        deferred = _Deferred()
        for s0 in range(r0, r1, step):  # q*, slopes, phase: a progress step at a time
            s1 = min(r1, s0 + step)
            wg = np.broadcast_to(w_axis, (s1 - s0, W)).ravel()
            bg = np.repeat(b_axis[s0:s1], W)
            fields = _assemble(a, wg, bg, q0, critical_tol, st, mom, deferred)
            for k, arr in out.items():
                arr[s0:s1] = fields[k].reshape(s1 - s0, W)
            phase[s0:s1] = fields["phase"].reshape(s1 - s0, W)
            if progress is not None and s1 < r1:
                progress(r0 + -(-(s1 - r0) * 3 // 4), B)  # c* below takes about a quarter
        deferred.solve(a, st, solver, phase[r0:r1], out["c_star"][r0:r1], out["chi_c"][r0:r1])
        if progress is not None:
            progress(r1, B)
    _near_critical_pass(a, out, phase, w_axis, b_axis, q0, critical_tol, st)
    out["phase"] = phase
    return _result(
        a,
        np.broadcast_to(w_axis, (B, W)).copy(),
        np.broadcast_to(b_axis[:, None], (B, W)).copy(),
        out,
        st,
        q0,
        critical_tol,
    )


#: ``|chi_1 - 1|`` below which ``phase_grid`` re-solves a point of a numerical activation on
#: the near-critical path (tables and interpolation keep xi_c within 1e-10 above it).
GRID_NEAR = 1e-4


def _near_critical_pass(
    a: Activation,
    out: dict[str, Array],
    phase: NDArray[np.str_],
    w_axis: Array,
    b_axis: Array,
    q0: float,
    critical_tol: float,
    st: QuadratureSettings,
) -> None:
    """Re-solve the points next to the critical line pointwise, on the near-critical path.

    Band: ``|chi_1 - 1| < NEAR_CRITICAL`` for closed forms and kinked activations (both
    solved exactly at every point anyway), ``GRID_NEAR`` for the interpolated ones.
    Adds ``out["one_minus_chi_c"]`` (NaN off the band).
    """
    band = NEAR_CRITICAL if a.closed_form is not None or a.kinks else GRID_NEAR
    chi_1 = out["chi_1"]
    near = np.isfinite(chi_1) & (np.abs(chi_1 - 1.0) < band) & (phase != "critical")
    out["one_minus_chi_c"] = np.full(chi_1.shape, np.nan)
    ib, iw = np.nonzero(near)
    if ib.size == 0:
        return
    w, b = w_axis[iw], b_axis[ib]
    f = _assemble(a, w, b, q0, critical_tol, st, ExactMoments(a, st), _solve_c_star, True)
    for k, arr in out.items():
        arr[ib, iw] = f[k]
    phase[ib, iw] = f["phase"]


def grid_applies(
    a: Activation, sigma_w2: Array, sigma_b2: Array, settings: QuadratureSettings
) -> tuple[Array, Array] | None:
    """The axes ``(w_axis, b_axis)`` on which the grid path serves these points, or None.

    It serves them when it gains something and keeps the accuracy asked for: an activation
    without a closed form (closed forms are solved exactly either way), settings no finer
    than the default ``tol`` (the q-tables are accurate to about 1e-12), and points that
    fill the grid of their distinct values (at most ``_GRID_FILL`` grid points per point).
    """
    if a.closed_form is not None or settings.tol < DEFAULT_SETTINGS.tol:
        return None
    w_axis, b_axis = np.unique(sigma_w2), np.unique(sigma_b2)
    if w_axis.size * b_axis.size > _GRID_FILL * max(1, sigma_w2.size):
        return None
    return w_axis, b_axis


def fixed_point_on_grid(
    a: Activation,
    sigma_w2: Array,
    sigma_b2: Array,
    q0: float,
    critical_tol: float,
    settings: QuadratureSettings,
) -> FixedPoint | None:
    """``fixed_point`` of broadcast variances by way of
    ``phase_grid`` on their distinct values; None where ``grid_applies`` says no.

    The result has the shape of the inputs and the accuracy of ``phase_grid``.
    """
    axes = grid_applies(a, sigma_w2, sigma_b2, settings)
    if axes is None:
        return None
    w_axis, b_axis = axes
    g = phase_grid(
        a, sigma_w2=w_axis, sigma_b2=b_axis, q0=q0, critical_tol=critical_tol, settings=settings
    )
    iw = np.searchsorted(w_axis, sigma_w2)
    ib = np.searchsorted(b_axis, sigma_b2)
    fields = {k: getattr(g, k)[ib, iw] for k in ("q_star", "c_star", "chi_1", "chi_c", "chi_q")}
    fields["phase"] = np.asarray(g.phase)[ib, iw]
    out = _result(a, sigma_w2, sigma_b2, fields, settings, q0, critical_tol)
    return replace(out, xi_c=np.asarray(g.xi_c)[ib, iw])  # as computed there (near the line)


class _Deferred:
    """A c* solver for ``_assemble`` that only records the chaotic points.

    ``phase_grid`` solves ``q*`` a few rows at a time (for its progress reports) and then
    hands every chaotic point of a chunk to the real solver at once, so that the row and
    tensor interpolants see the whole chunk, exactly as without the steps.
    """

    def __init__(self) -> None:
        self.parts: list[tuple[Array, Array, Array]] = []

    def __call__(
        self, a: Activation, w: Array, b: Array, q: Array, st: QuadratureSettings
    ) -> tuple[Array, Array]:
        self.parts.append((w, b, q))
        return np.full(w.shape, np.nan), np.full(w.shape, np.nan)

    def solve(
        self,
        a: Activation,
        st: QuadratureSettings,
        solver: CStarSolver,
        phase: NDArray[np.str_],
        c_star: Array,
        chi_c: Array,
    ) -> None:
        """Solve the recorded points and write them into the chunk's ``c_star``, ``chi_c``.

        The points were recorded in row-major order, the order of the chaotic points of the
        chunk's ``phase``; ``c_star`` and ``chi_c`` are C-contiguous blocks of rows.
        """
        if not self.parts:
            return
        w, b, q = (np.concatenate(x) for x in zip(*self.parts, strict=True))
        c, chi = solver(a, w, b, q, st)
        at = np.flatnonzero(phase.reshape(-1) == "chaotic")
        c_star.reshape(-1)[at], chi_c.reshape(-1)[at] = c, chi


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
        # rows with sigma_b2 = 0 are excluded from the tensor: there c* can jump from 1 to 0
        # at the critical point (odd activations), so c*(x, b) is discontinuous at b = 0
        # and, for biases near 0, c* falls steeply from 1 just above the critical point, so
        # if the tensor fails for all rows it is tried again without the smallest biases
        b_max = max((p.b for p in plans), default=0.0)
        for b_min in (0.0, 0.01 * b_max):
            tensor = [p for p in plans if p.b > b_min]
            if self._tensor(a, tensor, w, c, chi_c, st):
                plans = [p for p in plans if p.b <= b_min]
                break
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

    def _tensor(
        self,
        a: Activation,
        plans: list[_Plan],
        w: Array,
        c: Array,
        chi_c: Array,
        st: QuadratureSettings,
    ) -> bool:
        """All rows at once: c*, chi_c as tensor Chebyshev interpolants in (x, sqrt(sigma_b2)).

        Applies when every planned row's segment runs from its critical point to the last
        column; ``x = (w - w_c(b)) / (w_max - w_c(b))`` then maps every segment onto [0, 1]
        and c*(x, b) is smooth in both. Checked at random points; False if not applicable or
        the check fails (the caller then interpolates row by row).
        """
        w_max = float(self.w_axis[-1])
        if len(plans) < 2 * _TENSOR_NODES or not all(
            p.from_critical and p.hi == w_max for p in plans
        ):
            return False
        b_rows = np.array([p.b for p in plans])
        b_lo, b_hi = float(b_rows.min()), float(b_rows.max())
        # c* varies fast in sigma_b2 near 0 (tanh: c* = 0 at sigma_b2 = 0), smoothly in
        # sqrt(sigma_b2): interpolate in u = sqrt(sigma_b2)
        x_nodes = _cheb(0.0, 1.0, _TENSOR_NODES)
        u_nodes = _cheb(np.sqrt(b_lo), np.sqrt(b_hi), _TENSOR_NODES)
        b_nodes = u_nodes**2
        wc_nodes = np.asarray(critical_point(a, sigma_b2=b_nodes, settings=st).sigma_w2)
        rng = np.random.default_rng(0)
        x_chk = rng.uniform(0.0, 1.0, _TENSOR_CHECKS)
        b_chk = rng.uniform(np.sqrt(b_lo), np.sqrt(b_hi), _TENSOR_CHECKS) ** 2
        wc_chk = np.asarray(critical_point(a, sigma_b2=b_chk, settings=st).sigma_w2)
        if not (np.all(np.isfinite(wc_nodes)) and np.all(np.isfinite(wc_chk))):
            return False
        if np.any(wc_nodes >= w_max) or np.any(wc_chk >= w_max):
            return False
        wv = np.concatenate(
            [
                (wc_nodes[:, None] + x_nodes[None, :] * (w_max - wc_nodes[:, None])).ravel(),
                wc_chk + x_chk * (w_max - wc_chk),
            ]
        )
        bv = np.concatenate([np.repeat(b_nodes, _TENSOR_NODES), b_chk])
        crit = np.flatnonzero(
            np.concatenate([np.tile(x_nodes == 0.0, _TENSOR_NODES), np.zeros(_TENSOR_CHECKS, bool)])
        )
        cv, chiv = self._exact(a, wv, bv, crit, st)
        if not (np.all(np.isfinite(cv)) and np.all(np.isfinite(chiv))):
            return False
        m = _TENSOR_NODES * _TENSOR_NODES
        C = cv[:m].reshape(_TENSOR_NODES, _TENSOR_NODES)  # rows: b nodes, columns: x nodes
        X = chiv[:m].reshape(_TENSOR_NODES, _TENSOR_NODES)
        Lb = _lagrange_matrix(u_nodes, np.sqrt(b_chk))
        Lx = _lagrange_matrix(x_nodes, x_chk)
        c_got = np.einsum("ij,jk,ik->i", Lb, C, Lx)
        chi_got = np.einsum("ij,jk,ik->i", Lb, X, Lx)
        gap = np.maximum(np.abs(1.0 - chiv[m:]), 1e-300)
        if not (
            np.all(np.abs(c_got - cv[m:]) <= INTERP_TOL)
            and np.all(np.abs(chi_got - chiv[m:]) <= 10 * INTERP_TOL * gap + _NOISE / gap)
        ):
            return False
        Lrows = _lagrange_matrix(u_nodes, np.sqrt(b_rows))
        C_rows, X_rows = Lrows @ C, Lrows @ X
        for k, p in enumerate(plans):
            x = (w[p.pts] - p.lo) / (w_max - p.lo)
            L = _lagrange_matrix(x_nodes, x)
            c[p.pts], chi_c[p.pts] = L @ C_rows[k], L @ X_rows[k]
        return True

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


def _cheb(lo: float, hi: float, n: int) -> Array:
    """Chebyshev points of the second kind on [lo, hi] (descending)."""
    return 0.5 * (hi + lo) + 0.5 * (hi - lo) * np.cos(np.pi * np.arange(n) / (n - 1))


def _lagrange_matrix(nodes: Array, x: Array) -> Array:
    """Matrix L with ``L @ f(nodes) = p(x)``, p the barycentric interpolant (2nd kind)."""
    n = nodes.size
    bary = np.ones(n)
    bary[1::2] = -1.0
    bary[[0, -1]] *= 0.5
    diff = x[:, None] - nodes[None, :]
    exact = diff == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        k = bary / diff
    k = np.where(exact.any(axis=1, keepdims=True), exact.astype(np.float64), k)
    return np.asarray(k / k.sum(axis=1, keepdims=True))


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
