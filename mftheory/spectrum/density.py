"""The singular-value spectrum of the input-output Jacobian, by free probability.

Criticality fixes the mean squared singular value of ``J = prod_l D^l W^l``; this module
gives the whole law of the squared singular values ``x`` (the eigenvalues of ``J J^T``) of a
deep network at its fixed point: its density, moments, quantiles and atoms.

Method (THEORY.md section 5, after Pennington, Schoenholz & Ganguli 2017/2018). Every layer
contributes the same two freely independent factors: ``D^2``, diagonal with the law of
``phi'(h)^2``, ``h ~ N(0, q*)``, and ``W^T W``, a point mass at ``sigma_w2`` (orthogonal
weights) or Marchenko-Pastur of ratio 1 and scale ``sigma_w2`` (Gaussian weights). With
``M(z) = E[x / (z - x)]`` and the S-transform ``S(m) = (1 + m) / (m M^{-1}(m))``,
``S_{JJ^T} = [S_{D^2} S_{W^T W}]^L``. Writing ``z_D = M_{D^2}^{-1}(m)`` (the subordination
point of ``D^2``), ``m = M_{JJ^T}(z)`` solves

* orthogonal: ``z = ((1 + m) / m)^(1 - L) (sigma_w2 z_D)^L``
* Gaussian:   ``z = ((1 + m) / m) (sigma_w2 m z_D)^L``

together with ``m = M_{D^2}(z_D) = E[d / (z_D - d)]``. We solve for the one complex unknown
``z_D`` by Newton's method on the logarithm of the first equation (so depth 1,000 neither
overflows nor needs an L-th root's branch), the expectation over ``d`` on the composite
Gauss-Legendre rule of :mod:`mftheory.gaussian.quadrature` (split at the activation's kinks).

Working in ``t = ln x`` keeps everything finite however deep the network: at
``z = e^(t + i delta)`` the density of ``ln x`` is ``-Im m / pi`` (no division by x), so the
density and its quantiles are computed on a grid in ``t`` even where ``x`` itself would
underflow (a deep Gaussian network puts most of its mass below 1e-300).

1. Start outside the spectrum: for a tiny real ``m`` the real root ``z_D`` of
   ``M_{D^2}(z_D) = m`` is found directly, which gives a ``t`` above the top of the support.
2. Walk down in ``t`` with adaptive steps, each Newton solve started from the extrapolated
   previous root and kept on the physical branch (``Im z_D > 0``, ``Im m <= 0``),
   accumulating the mass, until all but ``tail`` of it lies above.
3. Solve all ``points`` points of an even grid in ``t`` over the range found, in one
   vectorised Newton iteration started from the walk's roots.

Moments need none of this: free probability gives ``mean = (sigma_w2 mu_1)^L = chi_1^L`` and
``variance / mean^2 = L (mu_2 / mu_1^2 - 1 - s_1)``, ``mu_k = E[phi'(h)^(2k)]``, ``s_1 = -1``
(Gaussian) or ``0`` (orthogonal), exactly and at any ``sigma_w2``; the density's own mean and
variance are compared with them in :attr:`JacobianSpectrum.checks`.

Atoms: an atom of ``D^2`` at 0 (``phi' = 0`` with positive probability, as for ReLU) is an
atom of ``J J^T`` at 0 of the same mass. With orthogonal weights an atom of ``D^2`` at
``a`` of mass ``p`` gives ``J J^T`` an atom at ``(sigma_w2 a)^L`` of mass ``L p - (L - 1)``
when that is positive (Belinschi's rule for free multiplicative convolution): a linear
network has all its mass there. Spectra that mix such a non-zero atom with a continuous part
(orthogonal hard-tanh at tiny q*, depth 1 with orthogonal weights) are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import _kink_breaks
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS, QuadratureSettings, normal_rule
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.meanfield.maps import check_variances

__all__ = [
    "QUANTILE_LEVELS",
    "WEIGHTS",
    "JacobianSpectrum",
    "SpectrumSettings",
    "derivative_moments",
    "jacobian_spectrum",
    "spectrum_moments",
]

Array = NDArray[np.float64]
CArray = NDArray[np.complex128]

#: Weight distributions: i.i.d. Gaussian ``N(0, sigma_w2 / N)`` or scaled Haar orthogonal.
WEIGHTS: tuple[str, ...] = ("gaussian", "orthogonal")
#: Quantile levels reported by default.
QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.5, 0.95)
#: First coefficient of ``sigma_w2 S_{W^T W}(m) = 1 + s_1 m + ...``.
S_1: dict[str, float] = {"gaussian": -1.0, "orthogonal": 0.0}
_LN10 = math.log(10.0)
#: Unresolved mass below which a walk that can go no further ends (the rest is reported as
#: ``tail``): tanh's phi'^2 reaches 0 only in the Gaussian tail, where the rule's nodes thin.
_ACCEPT_TAIL = 1e-3
#: Largest accepted |mass of the grid density - mass of the continuous part|. The bulk agrees
#: with Monte Carlo far better than this; the slack is for the far lower tail of deep
#: orthogonal networks, where the density found can carry up to ~1% more mass than remains.
_MASS_TOL = 1e-2


@dataclass(frozen=True)
class SpectrumSettings:
    """Numerical settings of the density solver (recorded in every JSON output).

    Attributes
    ----------
    points : int
        Grid points of the reported density (even in ``ln x``).
    tail : float
        Mass that may be left below the grid (the walk stops once less remains).
    delta : float
        Imaginary part of ``ln z`` (the density is smoothed on this scale of ``ln x``).
    tol : float
        Newton's tolerance on ``|ln z(z_D) - ln z|``.
    max_steps : int
        Most steps of the walk (a solve that needs more says so instead of hanging).
    quadrature : QuadratureSettings
        Rule for the law of ``phi'(h)^2``.
    """

    points: int = 1000
    tail: float = 1e-6
    delta: float = 1e-10
    tol: float = 1e-11
    max_steps: int = 20_000
    quadrature: QuadratureSettings = field(default_factory=lambda: DEFAULT_SETTINGS)

    def __post_init__(self) -> None:
        if not (isinstance(self.points, int) and self.points >= 2):
            raise MFTheoryError(f"points must be an integer >= 2, got {self.points!r}")
        for name in ("tail", "delta", "tol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value < 1e-2):
                raise MFTheoryError(f"{name} must be in (0, 0.01), got {value!r}")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 10):
            raise MFTheoryError(f"max_steps must be an integer >= 10, got {self.max_steps!r}")

    def as_dict(self) -> dict[str, object]:
        """The settings as a JSON-ready dict."""
        return {
            "points": self.points,
            "tail": self.tail,
            "delta": self.delta,
            "tol": self.tol,
            "max_steps": self.max_steps,
            "quadrature": self.quadrature.as_dict(),
        }


# --- the law of D^2 and its moments ----------------------------------------------------------


def _derivative_nodes(a: Activation, q: Array, settings: QuadratureSettings) -> tuple[Array, Array]:
    """Nodes ``phi'(sqrt(q) z)^2`` and weights of the normal rule, batched over ``q``."""
    s = np.sqrt(q)
    s_safe = np.where(s > 0, s, 1e-150)
    z, w = normal_rule(_kink_breaks(a, s_safe), settings)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        d = np.square(a.dphi(s_safe[..., None] * z))
    return np.asarray(d, dtype=np.float64), np.broadcast_to(w, d.shape)


def derivative_moments(
    act: str | Activation,
    q: ArrayLike,
    *,
    orders: tuple[int, ...] = (1, 2),
    settings: QuadratureSettings | None = None,
) -> Array:
    """Moments ``mu_k = E[phi'(h)^(2k)]``, ``h ~ N(0, q)``, vectorised over ``q``.

    Parameters
    ----------
    act : str or Activation
    q : array_like
        Pre-activation variances (finite, ``>= 0``; 0 is the limit ``q -> 0+``).
    orders : tuple of int
        The ``k`` wanted (positive).
    settings : QuadratureSettings, optional

    Returns
    -------
    ndarray of shape ``(len(orders), *q.shape)``

    Notes
    -----
    THEORY.md section 5: ``mu_1 = chi_1 / sigma_w2`` and ``mu_2`` set the spread of the
    Jacobian's spectrum. Same composite rule as :mod:`mftheory.gaussian.expectations`.
    """
    a = get_activation(act)
    q_arr = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(q_arr)) or np.any(q_arr < 0):
        raise MFTheoryError("q must be finite and non-negative")
    if any(not (isinstance(k, int) and k >= 1) for k in orders):
        raise MFTheoryError(f"orders must be positive integers, got {orders!r}")
    d, w = _derivative_nodes(a, q_arr.ravel(), settings or DEFAULT_SETTINGS)
    out = np.stack([np.sum(w * d**k, axis=-1) for k in orders])
    return out.reshape((len(orders), *q_arr.shape))


def _check_depth(depth: Any) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise MFTheoryError(f"depth must be an integer >= 1, got {depth!r}")
    return int(depth)


def _check_weights(weights: str) -> str:
    if weights not in WEIGHTS:
        raise MFTheoryError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    return weights


def spectrum_moments(
    act: str | Activation,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    depth: int,
    weights: str = "orthogonal",
    q_star: ArrayLike | None = None,
    settings: QuadratureSettings | None = None,
) -> dict[str, Array]:
    """Exact mean and variance of the squared singular values of ``J``, vectorised.

    Parameters
    ----------
    act : str or Activation
    sigma_w2, sigma_b2 : array_like
        Broadcast against each other.
    depth : int
        Number of layers ``L``.
    weights : {"gaussian", "orthogonal"}
    q_star : array_like, optional
        The fixed point; computed with :func:`mftheory.meanfield.fixed_point` if omitted.
    settings : QuadratureSettings, optional

    Returns
    -------
    dict of ndarray
        ``q_star, mu_1, mu_2, chi_1, mean, variance, normalized_variance`` (variance over
        mean squared). NaN where there is no finite q* (except for positively homogeneous
        activations, whose ``phi'`` law does not depend on q).

    Notes
    -----
    THEORY.md section 5: ``mean = chi_1^L``, ``variance = mean^2 L (mu_2/mu_1^2 - 1 - s_1)``
    with ``s_1 = -1`` for Gaussian and ``0`` for orthogonal weights (at criticality
    ``variance = L (mu_2/mu_1^2 - 1 - s_1)``). Exact in free probability: the normalised
    variances of freely independent factors add.
    """
    a = get_activation(act)
    L = _check_depth(depth)
    s1 = S_1[_check_weights(weights)]
    st = settings or DEFAULT_SETTINGS
    w2, b2 = check_variances(sigma_w2, sigma_b2)
    q = _resolve_q(a, w2, b2, q_star, st)
    ok = np.isfinite(q)
    mu = np.full((2, *q.shape), np.nan)
    if np.any(ok):
        mu[:, ok] = derivative_moments(a, q[ok], orders=(1, 2), settings=st)
    mu1, mu2 = mu
    chi = w2 * mu1
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        norm_var = L * (mu2 / mu1**2 - 1.0 - s1)
        mean = chi**L
        var = mean**2 * norm_var
    return {
        "q_star": q,
        "mu_1": mu1,
        "mu_2": mu2,
        "chi_1": chi,
        "mean": mean,
        "variance": var,
        "normalized_variance": norm_var,
    }


def _resolve_q(
    a: Activation, w2: Array, b2: Array, q_star: ArrayLike | None, st: QuadratureSettings
) -> Array:
    """q* given or solved; q = 1 for homogeneous activations without a finite q*."""
    if q_star is not None:
        q = np.broadcast_to(np.asarray(q_star, dtype=np.float64), w2.shape).copy()
        if np.any(np.isnan(q)) or np.any(q < 0):
            raise MFTheoryError("q_star must be non-negative")
    else:
        q = np.asarray(fixed_point(a, sigma_w2=w2, sigma_b2=b2, settings=st).q_star, dtype=float)
    if a.homogeneous:
        q = np.where(np.isfinite(q) & (q > 0), q, 1.0)
    return q


# --- the solver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Law:
    """The law of ``d = phi'(h)^2``: atoms, and the rule's other nodes widened into bins.

    A node of the quadrature rule as a point mass would give ``M_{D^2}`` a pole at every
    node, and the solve for ``z_D`` would snag on them wherever ``z_D`` comes near the real
    axis (the spectrum's far tails). Each node of the continuous part is instead spread
    uniformly over a bin centred on it, as wide as the local node spacing: the same mean, a
    second moment larger by ``w^2 / 12`` per bin (relative 1e-5 for tanh), and a density.
    """

    atom_d: Array  # values d > 0 carrying an atom (repeated at 4+ nodes)
    atom_p: Array
    bin_y: Array  # bins of the continuous part: centre, width, mass
    bin_w: Array
    bin_p: Array
    zero_mass: float
    atoms: tuple[tuple[float, float], ...]
    mu1: float
    mu2: float
    d_max: float


def _law(a: Activation, q: float, st: QuadratureSettings) -> _Law:
    d, w = _derivative_nodes(a, np.array([q]), st)
    d, w = d[0], np.asarray(w[0])
    if not np.all(np.isfinite(d)):
        raise MFTheoryError(f"phi'(h) is not finite for h ~ N(0, {q:g})")
    keep = w > 0
    d, w = d[keep], w[keep]
    zero = d == 0
    zero_mass = float(np.sum(w[zero]))
    vals, inverse, counts = np.unique(d[~zero], return_inverse=True, return_counts=True)
    mass = np.bincount(inverse, weights=w[~zero])
    # A value taken at 4 or more nodes is an atom (a smooth even phi' repeats values in pairs).
    is_atom = counts >= 4
    atoms = tuple((float(v), float(m)) for v, m in zip(vals[is_atom], mass[is_atom], strict=True))
    y, p = vals[~is_atom], mass[~is_atom]
    # Merge values equal to rounding (phi'(-h) and phi'(h) of an even phi' may differ by ulps).
    if y.size > 1:
        new = np.concatenate([[True], np.diff(y) > 1e-9 * y[1:]])
        grp = np.cumsum(new) - 1
        p_m = np.bincount(grp, weights=p)
        y = np.bincount(grp, weights=p * y) / p_m
        p = p_m
    if y.size == 1:
        atoms = (*atoms, (float(y[0]), float(p[0])))
        y, p = y[:0], p[:0]
    if y.size:
        gaps = np.diff(y)
        width = np.empty(y.size)
        width[0], width[-1] = gaps[0], gaps[-1]
        width[1:-1] = 0.5 * (gaps[1:] + gaps[:-1])
        width = np.minimum(width, 1.998 * y)  # keep every bin on d > 0
    else:
        width = y.copy()
    atom_d = np.array([v for v, _ in atoms])
    return _Law(
        atom_d=atom_d,
        atom_p=np.array([m for _, m in atoms]),
        bin_y=y,
        bin_w=width,
        bin_p=np.asarray(p, dtype=np.float64),
        zero_mass=zero_mass,
        atoms=atoms,
        mu1=float(np.sum(w * d)),
        mu2=float(np.sum(w * d * d)),
        d_max=float(np.max(np.concatenate([y + 0.5 * width, atom_d, [0.0]]))),
    )


#: |x| = w / (2 |z - y|) below which a bin's integral uses its series (error < 1e-16).
_SERIES_X = 0.06


class _Solver:
    """Newton's method for ``z_D`` at ``ln z = t + i delta`` (vectorised over points)."""

    def __init__(
        self, law: _Law, sigma_w2: float, depth: int, gaussian: bool, st: SpectrumSettings
    ):
        self.law = law
        self.log_w2 = math.log(sigma_w2)
        self.L = depth
        self.gaussian = gaussian
        self.delta = st.delta
        self.tol = st.tol

    def m_of(self, zd: CArray) -> tuple[CArray, CArray, CArray]:
        """``m = M_{D^2}(z_D)``, ``1 + m`` (accurate as m -> -1) and ``dm/dz_D``.

        A bin of centre ``y``, width ``w`` and mass ``p`` adds ``p (-1 + z Lambda / w)`` to
        ``m`` with ``Lambda = log(zeta + w/2) - log(zeta - w/2)``, ``zeta = z - y``, and
        ``p z Lambda / w`` to ``1 + m``; far from the bin (``|x| = |w / (2 zeta)|`` small)
        ``Lambda / w = atanh(x) * 2 / w`` is summed as its series.
        """
        law = self.law
        z = zd[..., None]
        m = np.zeros(zd.shape, dtype=np.complex128)
        u = np.full(zd.shape, law.zero_mass, dtype=np.complex128)
        dm = np.zeros(zd.shape, dtype=np.complex128)
        if law.atom_d.size:
            r = 1.0 / (z - law.atom_d)
            m += np.sum(law.atom_p * law.atom_d * r, axis=-1)
            u += zd * np.sum(law.atom_p * r, axis=-1)
            dm -= np.sum(law.atom_p * law.atom_d * r * r, axis=-1)
        if law.bin_y.size:
            zeta = z - law.bin_y
            half = 0.5 * law.bin_w
            x = half / zeta
            x2 = x * x
            # atanh(x) / x - 1 = x^2/3 + x^4/5 + ...  (error < 1e-16 for |x| < 0.06)
            sm1 = x2 * (1 / 3 + x2 * (1 / 5 + x2 * (1 / 7 + x2 * (1 / 9 + x2 * (1 / 11)))))
            lam_w = (1.0 + sm1) / zeta  # Lambda / w
            near = np.abs(x) >= _SERIES_X
            if np.any(near):
                zn = zeta[near]
                hn = np.broadcast_to(half, zeta.shape)[near]
                lam_w[near] = (np.log(zn + hn) - np.log(zn - hn)) / (2 * hn)
                sm1[near] = zn * lam_w[near] - 1.0
            p = law.bin_p
            # z Lambda / w - 1 = y Lambda / w + (zeta Lambda / w - 1): no cancellation as m -> 0
            m += np.sum(p * (law.bin_y * lam_w + sm1), axis=-1)
            u += zd * np.sum(p * lam_w, axis=-1)
            dm += np.sum(p * (lam_w - z / (zeta * zeta - half * half)), axis=-1)
        return m, u, dm

    def residual(self, zd: CArray, t: Array) -> tuple[CArray, CArray, CArray]:
        """Wrapped ``ln z(z_D) - (t + i delta)``, its derivative in ``z_D``, and ``m``."""
        L = self.L
        m, u, dm = self.m_of(zd)
        with np.errstate(all="ignore"):
            if self.gaussian:
                lz = np.log(u) - np.log(m) + L * (np.log(m * zd) + self.log_w2)
                dlz = (1.0 / u + (L - 1) / m) * dm + L / zd
            else:
                lz = (1 - L) * (np.log(u) - np.log(m)) + L * (np.log(zd) + self.log_w2)
                dlz = (L - 1) / (m * u) * dm + L / zd
            f = lz - (t + 1j * self.delta)
        f = f.real + 1j * (np.mod(f.imag + np.pi, 2 * np.pi) - np.pi)
        return f, dlz, m

    def newton(
        self, zd: CArray, t: Array, maxit: int = 40
    ) -> tuple[CArray, CArray, NDArray[np.bool_], NDArray[np.int64]]:
        """Damped Newton from ``zd``: roots, ``m``, converged flags and iteration counts."""
        zd = np.array(zd, dtype=np.complex128)
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), zd.shape)
        done = np.zeros(zd.shape, dtype=bool)
        its = np.zeros(zd.shape, dtype=np.int64)
        m = np.full(zd.shape, np.nan + 0j)
        for _ in range(maxit):
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            f, dlz, m_a = self.residual(zd[act], t[act])
            m[act] = m_a
            ok = np.isfinite(f) & (np.abs(f) < self.tol)
            done[act[ok]] = True
            act, f, dlz = act[~ok], f[~ok], dlz[~ok]
            if act.size == 0:
                break
            with np.errstate(all="ignore"):
                step = f / dlz
            z0 = zd[act]
            lam = np.ones(act.size)
            for _ in range(30):  # keep Im z_D > 0 and the relative step below 1/2
                new = z0 - lam * step
                bad = ~np.isfinite(new) | (new.imag <= 0) | (np.abs(lam * step) > 0.5 * np.abs(z0))
                if not np.any(bad):
                    break
                lam = np.where(bad, lam / 2, lam)
            zd[act] = z0 - lam * step
            its[act] += 1
            # Converged as far as rounding allows: a full Newton step below 1e-13 relative.
            tiny = (lam == 1.0) & (np.abs(step) <= 1e-13 * np.abs(z0))
            done[act[tiny]] = True
        bad_branch = ~np.isfinite(m) | (m.imag > 1e-9 * (1.0 + np.abs(m)))
        return zd, m, done & ~bad_branch, its

    def start(self) -> tuple[float, complex, complex]:
        """A point above the spectrum: real ``m`` tiny, ``z_D`` solved on the real axis."""
        m0 = 1e-8
        d_max = self.law.d_max
        z = self.law.mu1 / m0 + d_max
        for _ in range(200):
            m, _, dm = self.m_of(np.array([z + 0j]))
            step = float((m[0].real - m0) / dm[0].real)
            z_new = z - step
            if z_new <= d_max:
                z_new = 0.5 * (z + d_max)
            if abs(z_new - z) <= 1e-14 * z:
                z = z_new
                break
            z = z_new
        zd = np.array([complex(z, 1e-300)])
        f, _, _ = self.residual(zd, np.zeros(1))
        t0 = float(f[0].real)
        zd, m, ok, _ = self.newton(zd, np.array([t0]))
        if not ok[0]:
            raise MFTheoryError("spectrum: could not start the solver above the spectrum")
        return t0, complex(zd[0]), complex(m[0])

    def walk(self, mass: float, st: SpectrumSettings) -> tuple[Array, CArray, CArray, float]:
        """Adaptive walk down in t until less than ``st.tail`` of ``mass`` remains below.

        A step is taken when Newton converges on the physical branch, ``m`` moves by less than
        a quarter, the density by less than a fifth (plus 1e-3 of the mass) and the step
        carries less than 1% of the mass. The walk ends once an exponential extrapolation of
        the density's decay puts less than ``tail`` below (and 99% of the mass is above), or
        when Newton can go no further with less than 1e-3 of the mass left.
        """
        t, zd, m = self.start()
        ts, zs, ms = [t], [zd], [m]
        scale = max(1.0, 0.02 * self.L)
        h = 0.01 * scale
        cum = 0.0
        for _ in range(st.max_steps):
            tn = t - h
            if len(ts) >= 2:
                guess = zs[-1] + (zs[-1] - zs[-2]) * (tn - ts[-1]) / (ts[-1] - ts[-2])
                if guess.imag <= 0:
                    guess = complex(guess.real, max(zs[-1].imag, 1e-12 * abs(zs[-1])))
            else:
                guess = zd
            z1, m1, ok, its = self.newton(np.array([guess]), np.array([tn]))
            rho0 = -m.imag / math.pi
            rho1 = -m1[0].imag / math.pi if ok[0] else math.nan
            accept = (
                bool(ok[0])
                and abs(m1[0] - m) <= 0.25 * (abs(m) + 1e-3)
                and abs(rho1 - rho0) <= 0.2 * max(rho0, rho1) + 1e-3 * mass
                and h * max(rho0, rho1) <= 0.01 * mass
            )
            if not accept:
                h /= 2
                if h < 1e-12 * scale:
                    if mass - cum < _ACCEPT_TAIL:
                        break  # the rest is a tail the rule cannot resolve; reported as tail
                    raise MFTheoryError(
                        f"spectrum: the density solver got stuck at ln x = {t:.6g}"
                        f" ({mass - cum:.3g} of the mass below it unresolved)"
                    )
                continue
            cum += 0.5 * (rho0 + rho1) * h
            t, zd, m = tn, complex(z1[0]), complex(m1[0])
            ts.append(t)
            zs.append(zd)
            ms.append(m)
            if cum >= mass - st.tail:
                break  # all the mass is above (see the module notes on the far tail)
            if mass - cum < 0.01:
                if rho1 <= 0.0:
                    break
                if rho1 < rho0:
                    decay = h / math.log(rho0 / rho1)
                    if rho1 * decay < st.tail:
                        break
            if its[0] <= 4:
                h = min(1.5 * h, 0.05 * scale + 0.1 * (ts[0] - t))
        else:
            raise MFTheoryError(
                f"spectrum: the density solver needed more than {st.max_steps} steps"
                f" ({mass - cum:.3g} of the mass unresolved at ln x = {t:.6g})"
            )
        return np.array(ts), np.array(zs), np.array(ms), mass - cum


# --- the result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JacobianSpectrum:
    """The law of the squared singular values ``x`` of the input-output Jacobian.

    Attributes
    ----------
    activation : Activation
    sigma_w2, sigma_b2, q_star : float
        The point; ``q*`` the fixed point the layers sit at.
    depth : int
    weights : str
        ``"gaussian"`` or ``"orthogonal"``.
    mu_1, mu_2 : float
        ``E[phi'(h)^2]``, ``E[phi'(h)^4]`` at ``q*``.
    chi_1 : float
        ``sigma_w2 mu_1``; the mean of ``x`` is ``chi_1^L``.
    mean, variance : float
        Exact moments of ``x`` (free probability; may overflow to inf far from criticality).
    normalized_variance : float
        ``variance / mean^2 = L (mu_2/mu_1^2 - 1 - s_1)``.
    log10_quantiles : dict of str to float
        ``log10`` of the quantiles of ``x`` (``-inf`` inside an atom at 0), keyed ``"0.05"``.
    atoms : tuple of (float, float)
        ``(x, mass)`` of the atoms of the law (``x = 0`` for rank loss).
    log_x : ndarray
        Grid in ``t = ln x`` (even), empty for a purely atomic law.
    log_density : ndarray
        Density of ``ln x`` on that grid (``x p(x)``).
    tail : float
        Mass of the continuous part left below the grid.
    checks : dict of str to float
        The density's own mass, mean and normalised variance, to compare with the exact ones.
    settings : SpectrumSettings
    """

    activation: Activation
    sigma_w2: float
    sigma_b2: float
    q_star: float
    depth: int
    weights: str
    mu_1: float
    mu_2: float
    chi_1: float
    mean: float
    variance: float
    normalized_variance: float
    log10_quantiles: dict[str, float]
    atoms: tuple[tuple[float, float], ...]
    log_x: Array = field(repr=False)
    log_density: Array = field(repr=False)
    tail: float
    checks: dict[str, float]
    settings: SpectrumSettings

    @property
    def quantiles(self) -> dict[str, float]:
        """Quantiles of ``x`` (0.0 where below the float range, as in an atom at 0)."""
        return {k: _pow10(v) for k, v in self.log10_quantiles.items()}

    @property
    def x(self) -> Array:
        """The grid in ``x`` (entries below the float range are 0)."""
        with np.errstate(under="ignore", over="ignore"):
            return np.exp(self.log_x)

    @property
    def density(self) -> Array:
        """Density ``p(x)`` of ``x`` on :attr:`x` (inf where ``x`` underflows)."""
        with np.errstate(under="ignore", over="ignore", divide="ignore"):
            return self.log_density * np.exp(-self.log_x)

    @property
    def singular_value_spread(self) -> float:
        """Ratio of the 95th to the 5th percentile of the singular values ``sqrt(x)``."""
        lo = self.log10_quantiles.get("0.05", float("nan"))
        hi = self.log10_quantiles.get("0.95", float("nan"))
        return _pow10(0.5 * (hi - lo))

    def quantile(self, level: float) -> float:
        """Quantile of ``x`` at any level in (0, 1) (from the same CDF)."""
        return _pow10(float(_log10_quantiles(self, (level,))[0]))

    def as_dict(self, density: bool = True) -> dict[str, object]:
        """JSON-ready: exact moments, quantiles, atoms, the density and the checks.

        ``density`` has ``x`` and ``p`` (the points where ``x`` is a normal float) and
        ``log10_x`` and ``p_log10`` (density per unit ``log10 x``) on the whole grid.
        """
        from mftheory.serialize import finite_or_none

        out: dict[str, object] = {
            "activation": self.activation.label,
            "sigma_w2": self.sigma_w2,
            "sigma_b2": self.sigma_b2,
            "q_star": finite_or_none(self.q_star),
            "depth": self.depth,
            "weights": self.weights,
            "mu_1": self.mu_1,
            "mu_2": self.mu_2,
            "chi_1": self.chi_1,
            "mean": finite_or_none(self.mean),
            "variance": finite_or_none(self.variance),
            "normalized_variance": finite_or_none(self.normalized_variance),
            "quantiles": {k: finite_or_none(v) for k, v in self.quantiles.items()},
            "log10_quantiles": {k: finite_or_none(v) for k, v in self.log10_quantiles.items()},
            "singular_value_spread": finite_or_none(self.singular_value_spread),
            "atoms": [{"x": x, "mass": m} for x, m in self.atoms],
            "tail": self.tail,
            "checks": {k: finite_or_none(v) for k, v in self.checks.items()},
            "settings": self.settings.as_dict(),
        }
        if density:
            x, p = self.x, self.density
            normal = (x >= np.finfo(float).tiny) & np.isfinite(p) & np.isfinite(x)
            out["density"] = {"x": x[normal].tolist(), "p": p[normal].tolist()}
            out["density_log10"] = {
                "log10_x": (self.log_x / _LN10).tolist(),
                "p_log10": (self.log_density * _LN10).tolist(),
            }
        return out


def _pow10(value: float) -> float:
    """``10**value`` as a float: inf above the float range, 0.0 below (never raises)."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.power(10.0, np.float64(value)))


def _log10_quantiles(spec: JacobianSpectrum, levels: tuple[float, ...]) -> Array:
    """Quantiles of ``x`` in log10, from the atoms and the CDF of the grid density.

    The CDF is anchored at the top of the grid (no mass lies above the support), so the
    unresolved tail sits at the bottom; a level inside it gets the grid's lowest point.
    """
    t, rho = spec.log_x, spec.log_density
    zero = sum(m for x, m in spec.atoms if x == 0)
    out = np.empty(len(levels))
    if t.size:
        seg = 0.5 * (rho[1:] + rho[:-1]) * np.diff(t)
        cdf = 1.0 - np.concatenate([np.cumsum(seg[::-1])[::-1], [0.0]])
    for i, p in enumerate(levels):
        if p <= zero:
            out[i] = -math.inf
        elif t.size == 0:  # purely atomic: step through the atoms
            cum = zero
            out[i] = math.nan
            for x, m in sorted(a for a in spec.atoms if a[0] > 0):
                cum += m
                if p <= cum + 1e-12:
                    out[i] = math.log10(x)
                    break
        elif p <= cdf[0]:
            out[i] = t[0] / _LN10
        else:
            j = min(max(int(np.searchsorted(cdf, p)), 1), t.size - 1)
            c0, c1 = cdf[j - 1], cdf[j]
            frac = 0.0 if c1 == c0 else (p - c0) / (c1 - c0)
            out[i] = (t[j - 1] + frac * (t[j] - t[j - 1])) / _LN10
    return out


def jacobian_spectrum(
    act: str | Activation,
    *,
    depth: int,
    sigma_b2: float,
    sigma_w2: float | None = None,
    weights: str = "orthogonal",
    q_star: float | None = None,
    levels: tuple[float, ...] = QUANTILE_LEVELS,
    settings: SpectrumSettings | None = None,
) -> JacobianSpectrum:
    """The predicted law of the squared singular values of the input-output Jacobian.

    Parameters
    ----------
    act : str or Activation
    depth : int
        Number of layers ``L >= 1`` (``>= 2`` for orthogonal weights unless the law is atomic).
    sigma_b2 : float
    sigma_w2 : float, optional
        Defaults to the critical value for ``sigma_b2`` (``chi_1 = 1``).
    weights : {"gaussian", "orthogonal"}
    q_star : float, optional
        Override the fixed point (the layers' pre-activation variance).
    levels : tuple of float
        Quantile levels in (0, 1).
    settings : SpectrumSettings, optional

    Returns
    -------
    JacobianSpectrum

    Raises
    ------
    MFTheoryError
        Bad input; no finite q*; no critical point; a law this solver does not handle; a solve
        that does not converge.

    Notes
    -----
    THEORY.md section 5; the method is in the module docstring.

    Examples
    --------
    >>> spec = jacobian_spectrum("linear", depth=10, sigma_b2=0.0, weights="orthogonal")
    >>> spec.atoms, spec.variance
    (((1.0, 1.0),), 0.0)
    """
    a = get_activation(act)
    L = _check_depth(depth)
    weights = _check_weights(weights)
    st = settings or SpectrumSettings()
    qs = st.quadrature
    if sigma_w2 is None:
        cp = critical_point(a, sigma_b2=sigma_b2, settings=qs)
        w2 = float(cp.sigma_w2)
        if not math.isfinite(w2):
            raise MFTheoryError(
                f"{a.label} has no critical point at sigma_b2 = {sigma_b2:g}; give sigma_w2"
            )
        if q_star is None and math.isfinite(float(cp.q_star)):
            q_star = float(cp.q_star)
    else:
        w2 = float(sigma_w2)
    w_arr, b_arr = check_variances(w2, sigma_b2)
    w2, b2 = float(w_arr), float(b_arr)
    if w2 <= 0:
        raise MFTheoryError("sigma_w2 must be positive for a Jacobian spectrum")
    q = float(_resolve_q(a, w_arr, b_arr, q_star, qs))
    if not math.isfinite(q):
        raise MFTheoryError(
            f"no finite q* for {a.label} at sigma_w2 = {w2:g}, sigma_b2 = {b2:g}: the"
            " pre-activations diverge, so there is no fixed point to expand around"
        )
    for lv in levels:
        if not (isinstance(lv, float | int) and 0 < lv < 1):
            raise MFTheoryError(f"quantile levels must be in (0, 1), got {lv!r}")
    law = _law(a, q, qs)
    gaussian = weights == "gaussian"
    s1 = S_1[weights]
    mu1, mu2 = law.mu1, law.mu2
    if mu1 <= 0:
        raise MFTheoryError(f"phi'(h) = 0 almost surely at q* = {q:g}: J = 0")
    chi = w2 * mu1
    norm_var = L * max(mu2 / mu1**2 - 1.0, 0.0) + L * (-s1)
    with np.errstate(over="ignore"):
        mean = chi**L
        variance = mean**2 * norm_var

    atoms: list[tuple[float, float]] = []
    if law.zero_mass > 0:
        atoms.append((0.0, law.zero_mass))
    if not gaussian:
        for val, p in law.atoms:
            mass = L * p - (L - 1)
            if mass > 1e-12:
                with np.errstate(over="ignore"):
                    atoms.append((float((w2 * val) ** L), min(mass, 1.0)))
    continuous = 1.0 - sum(m for _, m in atoms)
    if continuous < 1e-9:
        continuous = 0.0
    if not gaussian and continuous > 0 and any(x > 0 for x, _ in atoms):
        raise MFTheoryError(
            "the spectrum mixes an atom at x > 0 with a continuous part (orthogonal weights"
            " and phi'^2 constant with high probability); this solver does not handle it"
        )
    if not gaussian and continuous > 0 and L == 1:
        raise MFTheoryError(
            "depth 1 with orthogonal weights: J J^T = sigma_w2 D^2 has the law of"
            " sigma_w2 phi'(h)^2 itself, not a free product; use depth >= 2"
        )

    empty = np.zeros(0)
    if continuous == 0.0:
        spec = JacobianSpectrum(
            activation=a, sigma_w2=w2, sigma_b2=b2, q_star=q, depth=L, weights=weights,
            mu_1=mu1, mu_2=mu2, chi_1=chi, mean=mean, variance=variance,
            normalized_variance=norm_var, log10_quantiles={}, atoms=tuple(atoms),
            log_x=empty, log_density=empty, tail=0.0,
            checks={"mass": 1.0 - continuous}, settings=st,
        )  # fmt: skip
    else:
        solver = _Solver(law, w2, L, gaussian, st)
        t_walk, z_walk, m_walk, _ = solver.walk(continuous, st)
        t_grid, rho = _fine_grid(solver, t_walk, z_walk, m_walk, st)
        spec = JacobianSpectrum(
            activation=a, sigma_w2=w2, sigma_b2=b2, q_star=q, depth=L, weights=weights,
            mu_1=mu1, mu_2=mu2, chi_1=chi, mean=mean, variance=variance,
            normalized_variance=norm_var, log10_quantiles={}, atoms=tuple(atoms),
            log_x=t_grid, log_density=rho, tail=0.0, checks={}, settings=st,
        )  # fmt: skip
        grid_mass = float(np.trapezoid(rho, t_grid))
        tail = max(continuous - grid_mass, 0.0)
        spec = replace(spec, tail=tail, checks=_checks(spec, grid_mass, continuous))
        if abs(continuous - grid_mass) > _MASS_TOL:
            raise MFTheoryError(
                f"spectrum: the density integrates to {grid_mass:.6g} where the continuous"
                f" part has mass {continuous:.6g}; the solve did not converge"
            )
    q_vals = _log10_quantiles(spec, tuple(float(v) for v in levels))
    quantiles = {f"{lv:g}": float(v) for lv, v in zip(levels, q_vals, strict=True)}
    spec = replace(spec, log10_quantiles=quantiles)
    return spec


def _fine_grid(
    solver: _Solver, t_walk: Array, z_walk: CArray, m_walk: CArray, st: SpectrumSettings
) -> tuple[Array, Array]:
    """The reported grid over the walk's support, solved in one vectorised Newton run.

    The support's ends are located by bisection between the walk's points; the grid points
    are equidistributed in (share of the t range) + (share of the mass) + (share of
    ``sqrt`` of the distance to each end), so they are even in t where the density is flat,
    dense where the mass is, and clustered at square-root edges, where the trapezoid rule
    would otherwise lose accuracy.
    """
    tw, zw, mw = t_walk[::-1], z_walk[::-1], m_walk[::-1]  # ascending in t
    rw = -mw.imag / math.pi
    floor = 1e-9 * float(np.max(rw))
    inside = rw > floor
    idx = np.flatnonzero(inside)
    lo_i, hi_i = int(idx[0]), int(idx[-1])
    t_hi = _edge(solver, tw, zw, hi_i, hi_i + 1, floor) if hi_i + 1 < tw.size else tw[hi_i]
    t_lo = _edge(solver, tw, zw, lo_i, lo_i - 1, floor) if lo_i > 0 else tw[0]
    keep = (tw >= t_lo) & (tw <= t_hi)
    tk, rk = np.concatenate([[t_lo], tw[keep], [t_hi]]), np.concatenate([[0.0], rw[keep], [0.0]])
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rk[1:] + rk[:-1]) * np.diff(tk))])
    span = t_hi - t_lo
    u = (tk - t_lo) / span
    monitor = u + cum / max(float(cum[-1]), 1e-300) + np.sqrt(u) - np.sqrt(1.0 - u)
    t = np.interp(np.linspace(monitor[0], monitor[-1], st.points), monitor, tk)
    guess = np.interp(t, tw, zw.real) + 1j * np.interp(t, tw, zw.imag)
    guess = np.where(guess.imag > 0, guess, guess.real + 1e-12j * np.abs(guess))
    zd, m, ok, _ = solver.newton(guess, t)
    if not np.all(ok):
        # Continue from converged neighbours (top down, then bottom up) in substeps.
        for sweep in (range(st.points - 2, -1, -1), range(1, st.points)):
            for i in sweep:
                j = i + 1 if sweep.step < 0 else i - 1
                if ok[i] or not ok[j]:
                    continue
                zi, mi, oki = _substeps(solver, zd[j], t[j], t[i])
                if oki:
                    zd[i], m[i], ok[i] = zi, mi, True
        if not np.all(ok):
            bad = t[~ok]
            raise MFTheoryError(
                f"spectrum: Newton did not converge at {bad.size} grid points (first at"
                f" ln x = {bad[0]:.6g})"
            )
    return t, np.maximum(-m.imag / math.pi, 0.0)


def _edge(solver: _Solver, tw: Array, zw: CArray, i_in: int, i_out: int, floor: float) -> float:
    """Bisect between walk points ``i_in`` (density above ``floor``) and ``i_out``."""
    t_in, t_out = float(tw[i_in]), float(tw[i_out])
    z_in = complex(zw[i_in])
    for _ in range(60):
        if abs(t_in - t_out) <= 1e-12 * max(1.0, abs(t_in)):
            break
        mid = 0.5 * (t_in + t_out)
        z, m, ok, _ = solver.newton(np.array([z_in]), np.array([mid]))
        if ok[0] and -m[0].imag / math.pi > floor:
            t_in, z_in = mid, complex(z[0])
        else:
            t_out = mid
    return t_out


def _substeps(solver: _Solver, z0: complex, t0: float, t1: float) -> tuple[complex, complex, bool]:
    """Continue a root from ``t0`` to ``t1`` in up to 2^12 substeps."""
    for n in (4, 16, 64, 256, 1024, 4096):
        z = complex(z0)
        m = complex("nan")
        ok_all = True
        for k in range(1, n + 1):
            tk = t0 + (t1 - t0) * k / n
            zz, mm, ok, _ = solver.newton(np.array([z]), np.array([tk]))
            if not ok[0]:
                ok_all = False
                break
            z, m = complex(zz[0]), complex(mm[0])
        if ok_all:
            return z, m, True
    return complex(z0), complex("nan"), False


def _checks(spec: JacobianSpectrum, grid_mass: float, continuous: float) -> dict[str, float]:
    """The density's mass, mean and normalised variance (scaled to avoid overflow)."""
    t, rho = spec.log_x, spec.log_density
    ref = float(np.max(t))
    w1 = float(np.trapezoid(rho * np.exp(t - ref), t))
    w2 = float(np.trapezoid(rho * np.exp(2 * (t - ref)), t))
    a1 = sum(m * x * math.exp(-ref) for x, m in spec.atoms if x > 0)
    a2 = sum(m * (x * math.exp(-ref)) ** 2 for x, m in spec.atoms if x > 0)
    m1 = w1 + a1
    m2 = w2 + a2
    log_mean = math.log(m1) + ref if m1 > 0 else -math.inf
    out: dict[str, float] = {
        "mass": grid_mass + (1.0 - continuous),
        "mean": math.exp(log_mean) if log_mean < 700 else math.inf,
        "normalized_variance": m2 / m1**2 - 1.0 if m1 > 0 else math.nan,
    }
    return out
