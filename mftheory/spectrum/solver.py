"""The subordination solve: Newton's method for ``z_D`` along ``ln z = t + i delta``.

With ``m = M_{JJ^T}(z)`` and the subordination point ``z_D`` of ``D^2``
(``m = M_{D^2}(z_D)``), one complex equation in ``z_D`` per point (docs/theory.md section 5):

* orthogonal: ``z = ((1 + m) / m)^(1 - L) (sigma_w2 z_D)^L``
* Gaussian:   ``z = ((1 + m) / m) (sigma_w2 m z_D)^L``

solved on its logarithm (no overflow, no branch of an L-th root). ``SubordinationSolver``
starts above the spectrum and walks down in ``t = ln x``; ``mftheory.spectrum.density``
turns the walk into the reported density. ``SpectrumSettings`` holds the numerical
settings of both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mftheory.errors import MFTheoryError
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS, QuadratureSettings
from mftheory.spectrum.law import DerivativeLaw

__all__ = ["SpectrumSettings", "SubordinationSolver"]

Array = NDArray[np.float64]
CArray = NDArray[np.complex128]

#: Unresolved mass below which a walk that can go no further ends (the rest is reported as
#: ``tail``): tanh's phi'^2 reaches 0 only in the Gaussian tail, where the rule's nodes thin.
_ACCEPT_TAIL = 1e-3


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


#: Largest relative distance of an accepted root from the walk's linear predictor: a root
#: farther away is on another branch of the equation (deep orthogonal lower tails have two).
_PREDICTOR = 0.05


def _segment_mass(rho0: float, rho1: float, h: float) -> float:
    """Mass of a walk step of width ``h``: exact for an exponential between the ends (the
    trapezoid over-counts the convex, exponentially decaying tails)."""
    if rho0 > 0 and rho1 > 0 and abs(rho0 - rho1) > 1e-9 * max(rho0, rho1):
        return h * (rho0 - rho1) / math.log(rho0 / rho1)
    return 0.5 * (rho0 + rho1) * h


#: |x| = w / (2 |z - y|) below which a bin's integral uses its series (error < 1e-16).
_SERIES_X = 0.06


class SubordinationSolver:
    """Newton's method for ``z_D`` at ``ln z = t + i delta`` (vectorised over points)."""

    def __init__(
        self, law: DerivativeLaw, sigma_w2: float, depth: int, gaussian: bool, st: SpectrumSettings
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
                and abs(z1[0] - guess) <= _PREDICTOR * abs(guess)
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
            cum += _segment_mass(rho0, rho1, h)
            t, zd, m = tn, complex(z1[0]), complex(m1[0])
            ts.append(t)
            zs.append(zd)
            ms.append(m)
            if mass - cum < 0.01:
                if rho1 <= 0.0:
                    break
                if rho1 < rho0:
                    # Exponential extrapolation of the decay: the mass left below is
                    # rho1 * decay (the walk's running sum is too coarse to stop on).
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
