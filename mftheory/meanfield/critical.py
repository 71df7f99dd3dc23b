"""The critical line ``chi_1 = 1`` in the (sigma_w2, sigma_b2) plane.

Notes
-----
docs/theory.md section 3. On the critical line the fixed point satisfies both
``q = sigma_w2 F(q) + sigma_b2`` and ``sigma_w2 G(q) = 1`` (``F = E[phi^2]``,
``G = E[phi'^2]``), so instead of nesting a q* solve inside a sigma_w2 search we solve the
one-dimensional equation in q

    H(q) = q - F(q) / G(q) - sigma_b2 = 0,

then ``sigma_w2 = 1 / G(q)``. ``H(sigma_b2) = -F/G <= 0``; each sign change on a
logarithmic scan of ``q in (sigma_b2, 1e6]`` brackets a root, refined by the Illinois
method. Only a root where the q-map is stable (``chi_q < 1``) is a point of the critical
line; the first such root (smallest q*) is returned. For silu and gelu at small bias the
ordered phase ends instead at a saddle-node of the q-map, where the finite q* disappears
with chi_1 < 1: there is no critical point and the status is ``"none"``.

With ``sigma_b2 = 0`` and ``phi(0) = 0``, ``q = 0`` is a fixed point for every sigma_w2
and the critical point is ``sigma_w2 = 1 / phi'(0)^2`` at ``q* = 0`` (tanh: 1).

ReLU, leaky ReLU and linear are positively homogeneous: ``sigma_w2 = 1 / kappa`` (2 for ReLU,
1 for linear), where the q-map has slope 1. There ``q*`` is infinite for ``sigma_b2 > 0``
(status ``"divergence-boundary"``) and every q is a fixed point for ``sigma_b2 = 0``
(status ``"marginal"``, q* NaN). Activations with no stable root on the scan get status
``"none"`` and NaN: for instance softplus, whose chi_1 approaches 1 only as q* -> inf, so
that, as for ReLU, the ordered phase ends at the divergence boundary sigma_w2 = 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.checks import plain, plain_fields
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import (
    derivative_second_moment,
    homogeneous_kappa,
    second_moment_slope,
)
from mftheory.gaussian.qtable import node_moments, q_table
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS, QuadratureSettings
from mftheory.meanfield.fixed_points import ExactMoments, QMoments, _gradient_scale, depth_scale
from mftheory.meanfield.solvers import illinois, require_converged

__all__ = ["CriticalPoint", "critical_point"]

Array = NDArray[np.float64]
_SCAN = np.concatenate([[0.0], np.logspace(-10, 6, 65)])  # offsets above sigma_b2
Q_SCAN_MAX = 1e6  # critical points with a larger q* are reported as "none"
CRITICAL_MAXITER = 100  # Illinois steps per root of H


@dataclass(frozen=True)
class CriticalPoint:
    """Points of the critical line ``chi_1 = 1`` for given bias variances.

    Every array attribute has the shape of ``sigma_b2``; for a scalar ``sigma_b2`` each is a
    plain Python ``float`` (``status`` a ``str``).

    Attributes
    ----------
    activation : Activation
    sigma_b2, sigma_w2 : ndarray or float
        Bias variance (input) and the critical weight variance.
    q_star, chi_q, xi_q : ndarray or float
        Fixed-point length, q-map slope and length depth scale on the line.
    xi_grad : ndarray or float
        Gradient depth scale (infinite on the critical line by definition).
    status : ndarray of str or str
        ``"ok"``, ``"divergence-boundary"``, ``"marginal"`` or ``"none"`` (see module notes).
    settings : QuadratureSettings
    """

    activation: Activation
    sigma_b2: Array | float
    sigma_w2: Array | float
    q_star: Array | float
    chi_q: Array | float
    xi_q: Array | float
    xi_grad: Array | float
    status: NDArray[np.str_] | str
    settings: QuadratureSettings

    def __post_init__(self) -> None:
        names = ("sigma_b2", "sigma_w2", "q_star", "chi_q", "xi_q", "xi_grad", "status")
        plain_fields(self, names)

    @property
    def sigma_w(self) -> Array | float:
        return plain(np.sqrt(self.sigma_w2))

    @property
    def sigma_b(self) -> Array | float:
        return plain(np.sqrt(self.sigma_b2))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: nested lists, non-finite floats as None."""
        from mftheory.serialize import jsonable

        return {
            "activation": self.activation.label,
            "sigma_b2": jsonable(self.sigma_b2),
            "sigma_w2": jsonable(self.sigma_w2),
            "sigma_w": jsonable(self.sigma_w),
            "q_star": jsonable(self.q_star),
            "chi_q": jsonable(self.chi_q),
            "xi_q": jsonable(self.xi_q),
            "xi_grad": jsonable(self.xi_grad),
            "status": jsonable(self.status),
        }


def critical_point(
    act: str | Activation,
    *,
    sigma_b2: ArrayLike,
    settings: QuadratureSettings | None = None,
) -> CriticalPoint:
    """The critical weight variance ``sigma_w2`` (``chi_1 = 1``) for each bias variance.

    Parameters
    ----------
    act : str or Activation
    sigma_b2 : array_like
        Bias variances (``>= 0``), any shape.
    settings : QuadratureSettings, optional

    Returns
    -------
    CriticalPoint

    Notes
    -----
    docs/theory.md section 3 (the critical line); the method is in the module docstring.

    Examples
    --------
    >>> cp = critical_point("tanh", sigma_b2=0.05)
    >>> round(float(cp.sigma_w2), 2)
    1.76
    """
    a = get_activation(act)
    st = settings or DEFAULT_SETTINGS
    b_in = np.asarray(sigma_b2, dtype=np.float64)
    bad = ~np.isfinite(b_in) | (b_in < 0)
    if np.any(bad):
        raise MFTheoryError(f"sigma_b2 must be finite and non-negative, got {b_in[bad].flat[0]!r}")
    shape = b_in.shape
    b = b_in.ravel()
    n = b.size
    w = np.full(n, np.nan)
    q = np.full(n, np.nan)
    chi_q = np.full(n, np.nan)
    status = np.full(n, "none", dtype="<U19")
    if a.homogeneous:
        w[:] = 1.0 / homogeneous_kappa(a)
        q[:] = np.where(b > 0, np.inf, np.nan)
        status[:] = np.where(b > 0, "divergence-boundary", "marginal")
    else:
        phi0 = float(a.phi(np.zeros(1))[0])
        at_zero = (b == 0) & (phi0 == 0.0)
        if np.any(at_zero):
            g0 = float(derivative_second_moment(a, np.zeros(1), settings=st)[0])
            w[at_zero] = 1.0 / g0 if g0 > 0 else np.nan
            q[at_zero] = 0.0
            status[at_zero] = "ok" if g0 > 0 else "none"
        rest = np.flatnonzero(~at_zero)
        if rest.size:
            _scan_roots(a, b, rest, q, w, chi_q, status, st, _moments(a, st, rest.size))
    zero = np.isfinite(q) & np.isfinite(w) & (q == 0)
    chi_q[zero] = w[zero] * second_moment_slope(a, q[zero], settings=st)
    if a.homogeneous:
        chi_q = np.ones(n)  # the q-map's slope is sigma_w2 * kappa = 1 on the line
    xi_grad = _gradient_scale(np.where(np.isfinite(w), 1.0, np.nan))
    return CriticalPoint(
        activation=a,
        sigma_b2=b.reshape(shape),
        sigma_w2=w.reshape(shape),
        q_star=q.reshape(shape),
        chi_q=chi_q.reshape(shape),
        xi_q=np.reshape(depth_scale(chi_q), shape),
        xi_grad=xi_grad.reshape(shape),
        status=status.reshape(shape),
        settings=st,
    )


_MAX_ROOTS = 4  # sign changes of H examined per bias, in increasing q


def _scan_roots(
    a: Activation,
    b: Array,
    rest: NDArray[np.intp],
    q: Array,
    w: Array,
    chi_q_out: Array,
    status: NDArray[np.str_],
    st: QuadratureSettings,
    mom: QMoments,
) -> None:
    """Fill q, w, status for biases ``rest``: the first root of H with chi_q < 1.

    The scan and the Illinois iteration use ``mom`` (a table for many biases); each root is
    then polished by one Newton step on the exact quadrature, so the result does not carry
    the table's interpolation error (about 1e-11).
    """
    with np.errstate(over="ignore"):  # b near the largest double: the offset is inf, clipped
        qs = np.minimum(
            b[rest, None] + _SCAN * (1.0 + b[rest, None]), np.maximum(Q_SCAN_MAX, b[rest, None])
        )
    h = _h(mom, qs, b[rest, None])
    sg = np.sign(np.nan_to_num(h, nan=0.0))
    change = (sg[:, :-1] * sg[:, 1:] < 0) | ((sg[:, 1:] == 0) & (sg[:, :-1] != 0))
    rank = np.cumsum(change, axis=1)
    pending = np.ones(rest.size, dtype=bool)
    for r in range(1, _MAX_ROOTS + 1):
        mask = change & (rank == r) & pending[:, None]
        has = mask.any(axis=1)
        if not has.any():
            break
        rows = np.flatnonzero(has)
        j = np.argmax(mask[rows], axis=1)
        lo, hi = qs[rows, j], qs[rows, j + 1]
        f_lo, f_hi = h[rows, j], h[rows, j + 1]
        flip = np.where(f_lo > 0, -1.0, 1.0)  # orient so that f(lo) < 0 <= f(hi)
        bb = b[rest[rows]]

        def oriented(x: Array, i: NDArray[np.intp], fl: Array = flip, bv: Array = bb) -> Array:
            return fl[i] * _h(mom, x, bv[i])

        roots = illinois(oriented, lo, hi, flip * f_lo, flip * f_hi, maxiter=CRITICAL_MAXITER)
        root = require_converged(roots, "the critical q*", sigma_b2=bb)
        if not isinstance(mom, ExactMoments):
            root = _exact_newton_step(a, root, bb, st)
        F_q, G = _exact_slope_and_g(a, root, st)
        w_root = 1.0 / G
        chi_q = w_root * F_q
        stable = chi_q < 1.0
        ok = rest[rows[stable]]
        q[ok] = root[stable]
        w[ok] = w_root[stable]
        chi_q_out[ok] = chi_q[stable]
        status[ok] = "ok"
        pending[rows[stable]] = False


_TABLE_FROM = 64  # biases from which the scan uses a QTable


def _moments(a: Activation, st: QuadratureSettings, count: int) -> QMoments:
    if count >= _TABLE_FROM:
        return q_table(a, st)
    return ExactMoments(a, st)


def _exact_newton_step(a: Activation, q: Array, b: Array, st: QuadratureSettings) -> Array:
    """One Newton step on ``H(q) = q - F/G - b`` with exact F, F', G, G' (heat identities)."""
    pos = q > 0
    out = q.copy()
    if np.any(pos):
        values, slopes, _ = node_moments(a, q[pos], st)
        F, F1, G = values
        G1 = slopes[2] / q[pos]
        h = q[pos] - F / G - b[pos]
        dh = 1.0 - (F1 * G - F * G1) / (G * G)
        step = h / dh
        out[pos] = np.where(np.isfinite(step), q[pos] - step, q[pos])
    return out


def _exact_slope_and_g(a: Activation, q: Array, st: QuadratureSettings) -> tuple[Array, Array]:
    """Exact ``F'(q)`` and ``G(q)`` in one quadrature pass (q > 0)."""
    F_q, G = np.full(q.shape, np.nan), np.full(q.shape, np.nan)
    pos = q > 0
    if np.any(pos):
        values, _, _ = node_moments(a, q[pos], st)
        F_q[pos], G[pos] = values[1], values[2]
    if not np.all(pos):
        F_q[~pos] = second_moment_slope(a, q[~pos], settings=st)
        G[~pos] = derivative_second_moment(a, q[~pos], settings=st)
    return F_q, G


def _h(mom: QMoments, q: Array, b: Array) -> Array:
    """``H(q) = q - F(q)/G(q) - sigma_b2`` (NaN where G <= 0)."""
    F = mom.F(q)
    G = mom.G(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = q - F / G - b
    return np.where(G > 0, out, np.nan)
