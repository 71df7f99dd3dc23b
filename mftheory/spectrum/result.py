"""The predicted spectrum as a result: ``JacobianSpectrum``, its quantiles and JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.builtins import Activation
from mftheory.spectrum.solver import SpectrumSettings

__all__ = ["QUANTILE_LEVELS", "JacobianSpectrum", "pow10", "quantiles_log10"]

Array = NDArray[np.float64]

#: Quantile levels reported by default.
QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.5, 0.95)
_LN10 = math.log(10.0)


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
        return {k: pow10(v) for k, v in self.log10_quantiles.items()}

    @property
    def x(self) -> Array:
        """The grid in ``x`` (entries below the float range are 0)."""
        with np.errstate(under="ignore", over="ignore"):
            return np.exp(self.log_x)

    @property
    def density(self) -> Array:
        """Density ``p(x)`` of ``x`` on ``x`` (inf where ``x`` underflows)."""
        with np.errstate(under="ignore", over="ignore", divide="ignore"):
            return self.log_density * np.exp(-self.log_x)

    @property
    def singular_value_spread(self) -> float:
        """Ratio of the 95th to the 5th percentile of the singular values ``sqrt(x)``."""
        lo = self.log10_quantiles.get("0.05", float("nan"))
        hi = self.log10_quantiles.get("0.95", float("nan"))
        return pow10(0.5 * (hi - lo))

    def quantile(self, level: float) -> float:
        """Quantile of ``x`` at any level in (0, 1) (from the same CDF)."""
        return pow10(float(quantiles_log10(self, (level,))[0]))

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


def pow10(value: float) -> float:
    """``10**value`` as a float: inf above the float range, 0.0 below (never raises)."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.power(10.0, np.float64(value)))


def quantiles_log10(spec: JacobianSpectrum, levels: tuple[float, ...]) -> Array:
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
