"""The singular-value spectrum of the input-output Jacobian, by free probability.

Criticality fixes the mean squared singular value of ``J = prod_l D^l W^l``; this module
gives the whole law of the squared singular values ``x`` (the eigenvalues of ``J J^T``) of a
deep network at its fixed point: its density, moments, quantiles and atoms.

Method (docs/theory.md section 5, after Pennington, Schoenholz & Ganguli 2017/2018). Every layer
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
Gauss-Legendre rule of ``mftheory.gaussian.quadrature`` (split at the activation's kinks).

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
variance are compared with them in ``JacobianSpectrum.checks``.

Atoms: an atom of ``D^2`` at 0 (``phi' = 0`` with positive probability, as for ReLU) is an
atom of ``J J^T`` at 0 of the same mass. With orthogonal weights an atom of ``D^2`` at
``a`` of mass ``p`` gives ``J J^T`` an atom at ``(sigma_w2 a)^L`` of mass ``L p - (L - 1)``
when that is positive (Belinschi's rule for free multiplicative convolution): a linear
network has all its mass there. Spectra that mix such a non-zero atom with a continuous part
(orthogonal hard-tanh at tiny q*, depth 1 with orthogonal weights) are refused.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.errors import MFTheoryError
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.maps import check_variances
from mftheory.spectrum.law import (
    S_1,
    WEIGHTS,
    DerivativeLaw,
    check_depth,
    check_weights,
    derivative_law,
    derivative_moments,
    resolve_q,
    spectrum_moments,
)
from mftheory.spectrum.result import QUANTILE_LEVELS, JacobianSpectrum, quantiles_log10
from mftheory.spectrum.solver import SpectrumSettings, SubordinationSolver

# WEIGHTS .. spectrum_moments are re-exported: this module was their home before the split.
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

#: Largest accepted |mass of the grid density - mass of the continuous part|. The bulk agrees
#: with Monte Carlo far better than this; the slack is for the far lower tail of deep
#: orthogonal networks, where the density found can carry up to ~1% more mass than remains.
_MASS_TOL = 1e-2


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
    docs/theory.md section 5; the method is in the module docstring.

    Examples
    --------
    >>> spec = jacobian_spectrum("linear", depth=10, sigma_b2=0.0, weights="orthogonal")
    >>> spec.atoms, spec.variance
    (((1.0, 1.0),), 0.0)
    """
    a = get_activation(act)
    L = check_depth(depth)
    weights = check_weights(weights)
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
    q = float(resolve_q(a, w_arr, b_arr, q_star, qs))
    if not math.isfinite(q):
        raise MFTheoryError(
            f"no finite q* for {a.label} at sigma_w2 = {w2:g}, sigma_b2 = {b2:g}: the"
            " pre-activations diverge, so there is no fixed point to expand around"
        )
    for lv in levels:
        if not (isinstance(lv, float | int) and 0 < lv < 1):
            raise MFTheoryError(f"quantile levels must be in (0, 1), got {lv!r}")
    law = derivative_law(a, q, qs)
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

    atoms, continuous = _atoms(law, w2, L, gaussian)

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
        solver = SubordinationSolver(law, w2, L, gaussian, st)
        t_walk, z_walk, m_walk, _ = solver.walk(continuous, st)
        # Belinschi's mass L p - (L - 1) = 0 exactly (half atoms at depth 2): no atom, but an
        # integrable singularity at (sigma_w2 a)^L, the edge of the support.
        singular = tuple(
            L * math.log(w2 * a)
            for a, p in law.atoms
            if not gaussian and a > 0 and abs(L * p - (L - 1)) < 1e-9
        )
        t_grid, rho = _fine_grid(solver, t_walk, z_walk, m_walk, st, singular)
        spec = JacobianSpectrum(
            activation=a, sigma_w2=w2, sigma_b2=b2, q_star=q, depth=L, weights=weights,
            mu_1=mu1, mu_2=mu2, chi_1=chi, mean=mean, variance=variance,
            normalized_variance=norm_var, log10_quantiles={}, atoms=tuple(atoms),
            log_x=t_grid, log_density=rho, tail=0.0, checks={}, settings=st,
        )  # fmt: skip
        grid_mass = _trapezoid(rho, t_grid)
        tail = max(continuous - grid_mass, 0.0)
        spec = replace(spec, tail=tail, checks=_checks(spec, grid_mass, continuous))
        if abs(continuous - grid_mass) > _MASS_TOL:
            raise MFTheoryError(
                f"spectrum: the density integrates to {grid_mass:.6g} where the continuous"
                f" part has mass {continuous:.6g}; the solve did not converge"
            )
    q_vals = quantiles_log10(spec, tuple(float(v) for v in levels))
    quantiles = {f"{lv:g}": float(v) for lv, v in zip(levels, q_vals, strict=True)}
    spec = replace(spec, log10_quantiles=quantiles)
    return spec


def _atoms(
    law: DerivativeLaw, w2: float, L: int, gaussian: bool
) -> tuple[list[tuple[float, float]], float]:
    """The atoms ``(x, mass)`` of ``J J^T`` and the mass of its continuous part.

    An atom of ``D^2`` at 0 is an atom of ``J J^T`` at 0 of the same mass; with orthogonal
    weights an atom at ``a`` of mass ``p`` gives one at ``(sigma_w2 a)^L`` of mass
    ``L p - (L - 1)`` when that is positive (module docstring). Laws this solver does not
    handle raise ``MFTheoryError``.
    """
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
    return atoms, continuous


def _fine_grid(
    solver: SubordinationSolver,
    t_walk: Array,
    z_walk: CArray,
    m_walk: CArray,
    st: SpectrumSettings,
    singular: tuple[float, ...] = (),
) -> tuple[Array, Array]:
    """The reported grid over the walk's support, solved in one vectorised Newton run.

    The support's ends are located by bisection between the walk's points; the grid points
    are equidistributed in (share of the t range) + (share of the mass) + (share of the
    mean ``E[x]``) + (share of ``sqrt`` of the distance to each end), so they are even in t
    where the density is flat, dense where the mass and the mean are, and clustered at
    square-root edges, where the trapezoid rule would otherwise lose accuracy. With
    ``singular`` (an integrable ``1/sqrt`` singularity at an end: two half atoms at depth 2)
    the fourth root replaces the square root, so the points crowd the singularity closely
    enough for the trapezoid (error ~ N^-2 instead of N^-1); ``_singular_ends`` fixes the
    end value.
    """
    tw, zw, mw = t_walk[::-1], z_walk[::-1], m_walk[::-1]  # ascending in t
    rw = -mw.imag / math.pi
    # Orthogonal weights: the top edge is where the density falls below 1e-6 of its peak (the
    # bins of the law of phi'^2 leave a faint smoothing tail beyond the hard edge). Gaussian
    # weights taper the top instead, where the mean is carried: 1e-9, as the bottom, which
    # keeps the walk's far tail.
    # (Below the peak's 1e-9 or half the walk's last value, whichever is lower: a singular
    # peak must not cut off a far tail the walk followed.)
    floor_lo = 1e-9 * float(np.max(rw))
    if rw[0] > 0:
        floor_lo = min(floor_lo, 0.5 * float(rw[0]))
    floor_hi = floor_lo if solver.gaussian else 1e-6 * float(np.max(rw))
    lo_i = int(np.flatnonzero(rw > floor_lo)[0])
    hi_i = int(np.flatnonzero(rw > floor_hi)[-1])
    t_hi = _edge(solver, tw, zw, hi_i, hi_i + 1, floor_hi) if hi_i + 1 < tw.size else tw[hi_i]
    t_lo = _edge(solver, tw, zw, lo_i, lo_i - 1, floor_lo) if lo_i > 0 else tw[0]
    snapped = False
    for t_s in singular:  # the singularity is the edge: the bisection stops past it
        if 0 <= t_hi - t_s < 1e-3 * (t_hi - t_lo):
            t_hi, snapped = t_s, True
        elif 0 <= t_s - t_lo < 1e-3 * (t_hi - t_lo):
            t_lo, snapped = t_s, True
    keep = (tw >= t_lo) & (tw <= t_hi)
    tk, rk = np.concatenate([[t_lo], tw[keep], [t_hi]]), np.concatenate([[0.0], rw[keep], [0.0]])
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rk[1:] + rk[:-1]) * np.diff(tk))])
    span = t_hi - t_lo
    u = (tk - t_lo) / span
    power = 0.25 if snapped else 0.5
    rm = rk * np.exp(tk - t_hi)  # where the mean is carried (the top, for deep networks)
    cum_mean = np.concatenate([[0.0], np.cumsum(0.5 * (rm[1:] + rm[:-1]) * np.diff(tk))])
    monitor = (
        u
        + cum / max(float(cum[-1]), 1e-300)
        + cum_mean / max(float(cum_mean[-1]), 1e-300)
        + u**power
        - (1.0 - u) ** power
    )
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
    return t, _singular_ends(t, np.maximum(-m.imag / math.pi, 0.0))


def _edge(
    solver: SubordinationSolver, tw: Array, zw: CArray, i_in: int, i_out: int, floor: float
) -> float:
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


def _substeps(
    solver: SubordinationSolver, z0: complex, t0: float, t1: float
) -> tuple[complex, complex, bool]:
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


def _trapezoid(y: NDArray[np.float64], x: NDArray[np.float64]) -> float:
    """The trapezoid rule of ``y`` over the points ``x``: ``np.trapezoid(y, x)``, term for term
    (written out because numpy < 2 has no ``np.trapezoid`` and ``np.trapz`` is gone from
    numpy 2)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _singular_ends(t: Array, rho: Array) -> Array:
    """``rho`` with the value at a singular end of the grid set so the trapezoid is exact.

    Beside an integrable singularity ``rho ~ A s^alpha``, ``-1 < alpha < 0``, at distance
    ``s`` from a grid end (the free product of two half atoms, depth 2), the density there is
    infinite and the value the solver finds at the end point is only the smoothing past it.
    The end segment's mass is ``rho_in s_in / (alpha + 1)`` (``alpha`` from the two inner
    points); the end value is the one whose trapezoid gives that mass, so the reported grid
    integrates right with the trapezoid rule (docs/theory.md section 5).
    """
    rho = rho.copy()
    n = t.size
    if n < 4:
        return rho
    for end, i1, i2 in ((n - 1, n - 2, n - 3), (0, 1, 2)):
        s1, s2 = abs(t[end] - t[i1]), abs(t[end] - t[i2])
        y1, y2 = rho[i1], rho[i2]
        if not (y1 > y2 > 0 and s2 > s1 > 0):
            continue
        alpha = math.log(y1 / y2) / math.log(s1 / s2)
        if -0.95 < alpha < -0.05:
            rho[end] = y1 * (2.0 / (alpha + 1.0) - 1.0)
    return rho


def _checks(spec: JacobianSpectrum, grid_mass: float, continuous: float) -> dict[str, float]:
    """The density's mass, mean and normalised variance (scaled to avoid overflow)."""
    t, rho = spec.log_x, spec.log_density
    ref = float(np.max(t))
    w1 = _trapezoid(rho * np.exp(t - ref), t)
    w2 = _trapezoid(rho * np.exp(2 * (t - ref)), t)
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
