"""Fast ``C(Sigma)`` for whole covariance matrices, layer after layer.

``mftheory.cnn.spatial.c_transform`` integrates every distinct entry of ``C(Sigma)`` from
scratch. Iterating the spatial map of a real image for hundreds of layers needs millions of
pair expectations ``E[phi(u_a) phi(u_b)]`` (``u_a ~ N(0, q_a)``, correlation ``rho_ab``), so
``CTransformEngine`` uses what the map preserves instead:

* **Symmetry**: only the upper triangle is evaluated.
* **The diagonal is the q-map**: ``C_aa = sigma_w2 F(q_a) + sigma_b2`` (1D quadrature).
* **Closed forms** (erf, relu, leaky_relu, linear, sin) are applied directly.
* **The Hermite series** ``E = sum_k a_k(q_a) a_k(q_b) rho^k``: coefficients once per
  distinct variance of the layer, then one Horner sum per entry with as many terms as *that*
  entry needs (``|rho|^(K+1)`` shortens most sums), chosen from the exact tail bound
  ``sqrt(T_a(K) T_b(K)) |rho|^(K+1)`` with ``T(K) = F(q) - sum_{k<=K} a_k(q)^2``.
* **Tables at the fixed point**: once every pixel variance is near ``q_ref`` (the fixed point
  ``q*``), the coefficients are a Taylor series in ``tau = log(q / q_ref)``,
  ``a(q) = sum_i tau^i u_i`` with ``u_i = (B/2)^i a(q_ref) / i!`` and the banded operator
  ``(B a)_k = k a_k + sqrt((k+1)(k+2)) a_{k+2}`` (from ``d a_k / d log q``, Stein's lemma).
  Then ``E_ab = sum_{i,j} tau_a^i tau_b^j G_ij(rho_ab)`` with the fixed polynomials
  ``G_ij(rho) = sum_k u_i[k] u_j[k] rho^k``, tabulated once as piecewise Taylor polynomials
  on ``[-1, 1]``: a handful of table look-ups per entry, whatever the number of terms.

Every call returns a bound (or, for the Taylor order in ``tau``, a conservative estimate
checked against exact coefficients) on the error of the off-diagonal entries; entries whose
series cannot meet the tolerance fall back to ``mftheory.gaussian.pair_expectation``
(nested quadrature), so the engine is slow for kinked activations, never wrong.

Notes
-----
docs/theory.md section 2 (the map, entries from 2x2 marginals) and section 3 (the Hermite "dual
activation" expansion).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import special

from mftheory.activations.builtins import Activation, get_activation
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import (
    closed_pair,
    hermite_series,
    pair_expectation,
    second_moment,
)
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS, QuadratureSettings

__all__ = ["CTransformEngine", "CTransformStats"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

_CHUNK = 1 << 15  # entries per block of rows of C (the block's arrays stay in cache)
_BUCKETS = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
_LADDER = (64, 128, 256, 512, 1024)
_CELL_DEGREE = 5  # degree of the piecewise Taylor polynomials of the rho-tables
_EXTRA_ORDERS = 6  # terms of the tau-series beyond the order used, for its remainder estimate


@dataclass(frozen=True)
class CTransformStats:
    """How one ``CTransformEngine.__call__`` computed ``C(Sigma)``.

    Attributes
    ----------
    method : str
        ``"closed-form"``, ``"series"`` (Hermite sums per entry) or ``"tables"`` (Taylor
        tables around ``q_ref``).
    error_bound : float
        Bound on ``max |C_ab - C_ab(exact)|`` over the off-diagonal entries, in covariance
        units (``sigma_w2`` times the bound on the expectation). For closed forms: 0 (only
        rounding). For ``"tables"`` the part from the Taylor order in ``tau`` is an estimate
        (sum of the next six terms, checked against exact coefficients), not a proof.
    terms : int
        Hermite terms used (0 for closed forms).
    order : int
        Taylor order in ``tau`` (``"tables"`` only, else -1).
    nested : int
        Entries that needed the nested quadrature fallback.
    """

    method: str
    error_bound: float
    terms: int = 0
    order: int = -1
    nested: int = 0


@lru_cache(maxsize=8)
def _triu(size: int) -> tuple[IntArray, IntArray]:
    iu, ju = np.triu_indices(size, k=1)
    iu.setflags(write=False)
    ju.setflags(write=False)
    return iu, ju


def _raise_b(u: FloatArray) -> FloatArray:
    """``(B u)_k = k u_k + sqrt((k+1)(k+2)) u_{k+2}`` (entries past the end taken as 0)."""
    k = np.arange(u.size, dtype=np.float64)
    out = k * u
    out[:-2] += np.sqrt((k[:-2] + 1.0) * (k[:-2] + 2.0)) * u[2:]
    return out


def _taylor_cells(b: FloatArray, cells: int, degree: int) -> FloatArray:
    """Taylor coefficients of ``sum_k b_k x^k`` at the centres of ``cells`` equal cells of
    [-1, 1]: row ``j`` holds ``f^(j)(c) / j!`` (Horner's scheme run for every derivative)."""
    h = 2.0 / cells
    c = -1.0 + h * (np.arange(cells) + 0.5)
    d = np.zeros((degree + 1, cells))
    for bk in b[::-1]:
        for j in range(degree, 0, -1):
            d[j] *= c
            d[j] += d[j - 1]
        d[0] *= c
        d[0] += bk
    return d


def _cell_bound(b: FloatArray, cells: int, degree: int) -> float:
    """Bound on the Taylor remainder in every cell: ``(h/2)^(p+1) sum_k |b_k| C(k, p+1)``
    (the (p+1)-th derivative over (p+1)! is at most that sum on [-1, 1])."""
    k = np.arange(b.size)
    return float((1.0 / cells) ** (degree + 1) * np.sum(np.abs(b) * special.comb(k, degree + 1)))


def _closed_values(act: Activation, q1: FloatArray, q2: FloatArray, rho: FloatArray) -> FloatArray:
    """``E[phi(u1) phi(u2)]`` from the activation's closed form (overflow-free for large q:
    see ``mftheory.activations.closed_forms.Sin``)."""
    return closed_pair(act, q1, q2, rho, False)


class _TauTables:
    """Taylor tables around ``q_ref`` (see the module notes)."""

    def __init__(
        self, act: Activation, q_ref: float, tol: float, max_order: int, st: QuadratureSettings
    ) -> None:
        self.act, self.q_ref, self.tol, self.max_order, self.st = act, q_ref, tol, max_order, st
        F_ref = float(second_moment(act, np.array([q_ref]), settings=st)[0])
        self.F_ref = F_ref
        extra = 2 * (max_order + _EXTRA_ORDERS)
        ser = None
        for K in _LADDER:
            ser = hermite_series(act, np.array([q_ref]), settings=replace(st, hermite_terms=K))
            if float(ser.tail[0]) <= 1e-3 * tol * F_ref and K >= 32 + extra:
                break
        assert ser is not None
        self.ok = float(ser.tail[0]) <= 1e-3 * tol * F_ref
        a = ser.a[0]
        self.K = K = a.size - 1 - extra
        u = [a]
        for i in range(1, max_order + _EXTRA_ORDERS + 1):
            u.append(_raise_b(u[-1]) / (2.0 * i))
        self.u = [x[: K + 1] for x in u]
        self.norms = np.array([float(np.linalg.norm(x)) for x in self.u])
        self._tables: dict[tuple[int, int], tuple[FloatArray, float]] = {}
        self.cells = self._choose_cells()
        # per order: the most negative and most positive tau checked against exact
        # coefficients, and the largest residual found there (the remainder grows with |tau|
        # on each side of 0, so a later layer inside both bounds reuses the check)
        self.checked_lo = np.zeros(max_order + 1)
        self.checked_hi = np.zeros(max_order + 1)
        self.checked_res = np.full(max_order + 1, np.inf)
        self.tail_checked = 0.0  # largest Hermite tail T(K) seen at those checks

    def _choose_cells(self) -> int:
        b = self.u[0] * self.u[0]
        for cells in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
            if _cell_bound(b, cells, _CELL_DEGREE) <= 1e-2 * self.tol * self.F_ref:
                return cells
        return 65536

    def table(self, i: int, j: int) -> tuple[FloatArray, float]:
        key = (i, j)
        if key not in self._tables:
            b = self.u[i] * self.u[j]
            coef = _taylor_cells(b, self.cells, _CELL_DEGREE)
            self._tables[key] = (coef, _cell_bound(b, self.cells, _CELL_DEGREE))
        return self._tables[key]

    def coefficients(self, tau: float, order: int) -> FloatArray:
        return np.asarray(sum(tau**i * self.u[i] for i in range(order + 1)), dtype=np.float64)

    def choose_order(self, tau: FloatArray, F: FloatArray) -> tuple[int, float] | None:
        """Smallest Taylor order whose error estimate meets the tolerance, and that estimate
        (on ``E[phi phi]``), or None."""
        if not self.ok:
            return None
        t_lo, t_hi = float(tau.min()), float(tau.max())
        t_max = max(abs(t_lo), abs(t_hi))
        F_min, F_max = float(F.min()), float(F.max())
        exact: dict[float, tuple[FloatArray, float]] = {}
        for m in range(self.max_order + 1):
            powers = t_max ** np.arange(m + 1, m + _EXTRA_ORDERS + 1)
            r = float(np.sum(powers * self.norms[m + 1 : m + _EXTRA_ORDERS + 1]))
            if 2.0 * r * math.sqrt(F_max) > self.tol * F_min:
                continue
            tail = self.tail_checked
            inside = self.checked_lo[m] <= t_lo and t_hi <= self.checked_hi[m]
            if inside and math.isfinite(self.checked_res[m]):
                r = max(r, float(self.checked_res[m]))
            else:
                # check the estimate against exact coefficients at the extreme variances
                worst, tail = 0.0, 0.0
                for t in {t_lo, t_hi}:
                    if t not in exact:
                        q = self.q_ref * math.exp(t)
                        st = replace(self.st, hermite_terms=self.K)
                        ser = hermite_series(self.act, np.array([q]), settings=st)
                        exact[t] = (ser.a[0], float(ser.tail[0]))
                    a_t, tail_t = exact[t]
                    worst = max(worst, float(np.linalg.norm(a_t - self.coefficients(t, m))))
                    tail = max(tail, tail_t)
                if 2.0 * worst * math.sqrt(F_max) + tail > self.tol * F_min:
                    continue
                r = max(r, worst)
                self.checked_lo[m] = min(self.checked_lo[m], t_lo)
                self.checked_hi[m] = max(self.checked_hi[m], t_hi)
                res = self.checked_res[m]
                self.checked_res[m] = worst if not math.isfinite(res) else max(res, worst)
                self.tail_checked = max(self.tail_checked, tail)
            cells = sum(
                self.table(i, j)[1] * 2.0 * t_max ** (i + j)
                for i in range(m + 1)
                for j in range(i, m + 1)
            )
            return m, 2.0 * r * math.sqrt(F_max) + r * r + tail + cells
        return None

    def evaluate(
        self, order: int, tau_a: FloatArray, tau_b: FloatArray, rho: FloatArray
    ) -> FloatArray:
        """``sum_{i,j <= order} tau_a^i tau_b^j G_ij(rho)`` (``tau_a``, ``tau_b`` broadcast
        against ``rho``)."""
        h = 2.0 / self.cells
        idx = np.minimum(((rho + 1.0) / h).astype(np.intp), self.cells - 1)
        t = rho - (-1.0 + h * (idx + 0.5))
        acc = np.zeros(rho.shape)
        for i in range(order + 1):
            for j in range(i, order + 1):
                coef = self.table(i, j)[0]
                val = coef[_CELL_DEGREE].take(idx)
                for p in range(_CELL_DEGREE - 1, -1, -1):
                    val *= t
                    val += coef[p].take(idx)
                if i == 0 and j == 0:
                    acc += val
                elif i == j:
                    acc += (tau_a * tau_b) ** i * val
                else:
                    acc += (tau_a**i * tau_b**j + tau_a**j * tau_b**i) * val
        return acc


class CTransformEngine:
    """``C(Sigma) = sigma_w2 E[phi(h) phi(h)^T] + sigma_b2`` for whole covariance matrices.

    Parameters
    ----------
    act : Activation or str
        The nonlinearity.
    sigma_w2, sigma_b2 : float
        Weight and bias variances.
    q_ref : float, optional
        Variance around which to build the Taylor tables (the fixed point ``q*``); without it
        only the per-entry Hermite sums are used.
    tol : float, optional
        Accepted error of each ``E[phi(u_a) phi(u_b)]`` relative to
        ``sqrt(F(q_a) F(q_b))`` (default ``settings.tol``, 1e-12).
    settings : QuadratureSettings, optional
        Quadrature of the 1D moments and of the fallback.
    max_order : int
        Largest Taylor order in ``tau = log(q / q_ref)`` of the tables (default 4).

    Notes
    -----
    docs/theory.md sections 2 and 3; the methods are described in the module docstring. The
    caller validates ``Sigma`` (square, symmetric, finite, non-negative diagonal), as
    ``mftheory.cnn.spatial.c_transform`` does.
    """

    def __init__(
        self,
        act: Activation | str,
        *,
        sigma_w2: float,
        sigma_b2: float,
        q_ref: float | None = None,
        tol: float | None = None,
        settings: QuadratureSettings | None = None,
        max_order: int = 4,
    ) -> None:
        self.act = get_activation(act) if isinstance(act, str) else act
        self.sigma_w2 = float(sigma_w2)
        self.sigma_b2 = float(sigma_b2)
        self.settings = settings or DEFAULT_SETTINGS
        self.tol = float(self.settings.tol if tol is None else tol)
        if not (self.tol > 0 and math.isfinite(self.tol)):
            raise MFTheoryError(f"tol must be positive and finite, got {tol!r}")
        self.max_order = int(max_order)
        self.q_ref = None if q_ref is None or not math.isfinite(q_ref) or q_ref <= 0 else q_ref
        self._tables: _TauTables | None = None
        self._terms = _LADDER[0]

    def __call__(self, Sigma: FloatArray) -> tuple[FloatArray, CTransformStats]:
        """Return ``C(Sigma)`` (exactly symmetric) and how it was computed."""
        s = np.asarray(Sigma, dtype=np.float64)
        size = s.shape[0]
        q = np.diag(s).copy()
        q_u, q_inv = np.unique(q, return_inverse=True)
        q_inv = q_inv.reshape(-1)
        F_u = np.asarray(second_moment(self.act, q_u, settings=self.settings), dtype=np.float64)
        F = F_u[q_inv]
        out = np.empty_like(s)
        if size == 1:
            stats = CTransformStats(
                "closed-form" if self.act.closed_form is not None else "series", 0.0
            )
        elif self.act.closed_form is not None:
            stats = CTransformStats("closed-form", 0.0)
            act = self.act
            self._blocks(
                s,
                q,
                out,
                lambda r0, r1, rho: _closed_values(act, q[r0:r1, None], q[None, r0:], rho),
            )
        else:
            stats = self._pairs(s, q, F, q_u, F_u, q_inv, out)
        out[np.diag_indices(size)] = self.sigma_w2 * F + self.sigma_b2
        return out, replace(stats, error_bound=self.sigma_w2 * stats.error_bound)

    def _blocks(
        self,
        s: FloatArray,
        q: FloatArray,
        out: FloatArray,
        pair: Callable[[int, int, FloatArray], FloatArray],
    ) -> None:
        """Fill ``out`` with ``sigma_w2 pair(...) + sigma_b2`` by blocks of rows of the upper
        triangle (contiguous slices, no index arrays), mirrored into the lower one."""
        size = s.shape[0]
        rows = max(1, _CHUNK // size)
        sq = np.sqrt(q)
        for r0 in range(0, size, rows):
            r1 = min(size, r0 + rows)
            denom = sq[r0:r1, None] * sq[None, r0:]
            pos = denom > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                rho = np.where(pos, s[r0:r1, r0:] / np.where(pos, denom, 1.0), 0.0)
            np.clip(rho, -1.0, 1.0, out=rho)
            vals = self.sigma_w2 * pair(r0, r1, rho) + self.sigma_b2
            out[r0:r1, r0:] = vals
            out[r0:, r0:r1] = vals.T

    # ---------------------------------------------------------------------------------------

    def _pairs(
        self,
        s: FloatArray,
        q: FloatArray,
        F: FloatArray,
        q_u: FloatArray,
        F_u: FloatArray,
        q_inv: IntArray,
        out: FloatArray,
    ) -> CTransformStats:
        if self.q_ref is not None and float(q.min()) > 0:
            if self._tables is None:
                self._tables = _TauTables(
                    self.act, self.q_ref, self.tol, self.max_order, self.settings
                )
            tables = self._tables
            tau = np.log(q / self.q_ref)
            choice = tables.choose_order(tau, F)
            if choice is not None:
                m, err = choice
                self._blocks(
                    s,
                    q,
                    out,
                    lambda r0, r1, rho: tables.evaluate(m, tau[r0:r1, None], tau[None, r0:], rho),
                )
                return CTransformStats("tables", err, tables.K, m)
        iu, ju = _triu(s.shape[0])
        denom = np.sqrt(q[iu] * q[ju])
        zero = denom == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(zero, 0.0, s[iu, ju] / np.where(zero, 1.0, denom))
        np.clip(rho, -1.0, 1.0, out=rho)
        vals, stats = self._series(q_u, F_u, q_inv, iu, ju, rho)
        vals = self.sigma_w2 * vals + self.sigma_b2
        out[iu, ju] = vals
        out[ju, iu] = vals
        return stats

    def _series(
        self,
        q_u: FloatArray,
        F_u: FloatArray,
        q_inv: IntArray,
        iu: IntArray,
        ju: IntArray,
        rho: FloatArray,
    ) -> tuple[FloatArray, CTransformStats]:
        st = self.settings
        rmax = float(np.max(np.abs(rho)))
        start = _LADDER.index(self._terms)
        ser = None
        for K in _LADDER[start:]:
            ser = hermite_series(self.act, q_u, settings=replace(st, hermite_terms=K), F=F_u)
            worst = np.max(ser.tail / np.maximum(ser.norm, 1e-300)) * rmax ** (K + 1)
            if worst <= self.tol:
                break
        assert ser is not None
        K = ser.terms
        # the next layer starts one rung lower: variances settle, so fewer terms may do
        self._terms = _LADDER[max(0, _LADDER.index(K) - 1)]
        a2 = ser.a * ser.a
        # T_a(k) = F - sum_{j <= k} a_j^2 = tail(K) + sum_{k < j <= K} a_j^2
        upper = np.cumsum(a2[:, ::-1], axis=1)[:, ::-1]
        tails = np.concatenate([upper[:, 1:], np.zeros((q_u.size, 1))], axis=1)
        tails += ser.tail[:, None]
        scale = np.sqrt(np.maximum(ser.norm, 1e-300))
        ia, ib = q_inv[iu], q_inv[ju]
        absr = np.abs(rho)
        need = np.full(rho.shape, -1, dtype=np.intp)
        bound = np.zeros(rho.shape)
        for k in (b for b in _BUCKETS if b <= K):
            rel = np.sqrt(tails[:, k]) / scale
            with np.errstate(under="ignore"):
                bk = rel[ia] * rel[ib] * absr ** (k + 1)
            take = (need < 0) & (bk <= self.tol)
            need[take] = k
            bound[take] = bk[take]
        vals = np.empty(rho.shape)
        coef_t = np.ascontiguousarray(ser.a.T)  # (K+1, P): row k holds a_k for every q
        for k in np.unique(need[need >= 0]):
            sel = np.flatnonzero(need == k)
            r, xa, xb = rho[sel], ia[sel], ib[sel]
            p = coef_t[k][xa] * coef_t[k][xb]
            for j in range(int(k) - 1, -1, -1):
                p *= r
                p += coef_t[j][xa] * coef_t[j][xb]
            vals[sel] = p
        rest = np.flatnonzero(need < 0)
        if rest.size:
            vals[rest] = pair_expectation(
                self.act, q_u[ia[rest]], q_u[ib[rest]], rho[rest], settings=st
            )
            bound[rest] = st.tol
        # bound is relative to sqrt(F_a F_b); make it absolute
        err = float(np.max(bound * scale[ia] * scale[ib]))
        return vals, CTransformStats("series", err, K, -1, int(rest.size))
