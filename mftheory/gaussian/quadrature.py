"""Quadrature rules for expectations over a standard normal variable.

Two rules, both built from scipy's Gauss-Legendre roots:

* ``normal_rule``: composite Gauss-Legendre on ``[-z_max, z_max]`` with the Gaussian
  density folded into the weights, and extra panel edges at caller-given break points (the
  kinks of the activation, mapped into z). Splitting at kinks restores the exponential
  convergence that a kink inside a panel would destroy.
* ``hermite_functions``: the normalised Hermite functions on a fixed composite rule, used
  to compute the Hermite ("dual activation") coefficients of an activation.

Why not Gauss-Hermite: ``tanh(sqrt(q) z)`` has poles at distance ``pi / (2 sqrt(q))`` from the
real z axis, and Gauss-Hermite converges slowly for such integrands: with 400 nodes it is off
by 1e-7 at q = 10, where 40 panels of 12 Legendre nodes give 1e-15 (measured; see
``docs/accuracy.md``).

Notes
-----
docs/theory.md section 3: every mean-field quantity is an expectation over ``z ~ N(0, 1)``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.special import roots_legendre

from mftheory.errors import MFTheoryError

__all__ = ["QuadratureSettings", "hermite_functions", "hermite_panels", "normal_rule"]

Array = NDArray[np.float64]
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class QuadratureSettings:
    """Numerical settings of the expectation engine (recorded in every JSON output).

    Attributes
    ----------
    z_max : float
        Integration range ``[-z_max, z_max]`` for ``z ~ N(0, 1)``. The neglected Gaussian mass
        is ``erfc(z_max / sqrt(2))``: 1.5e-23 at the default 10.
    panels : int
        Number of equal panels on that range (kinks add more edges).
    nodes_per_panel : int
        Gauss-Legendre nodes per panel.
    hermite_terms : int
        Terms K of the Hermite series used for the C-map at fixed q.
    tol : float
        Largest accepted truncation bound of the Hermite series, relative to
        ``sqrt(E[phi(u1)^2] E[phi(u2)^2])``; beyond it a nested 2D rule is used instead.
    """

    z_max: float = 10.0
    panels: int = 40
    nodes_per_panel: int = 12
    hermite_terms: int = 400
    tol: float = 1e-12

    def __post_init__(self) -> None:
        for name in ("z_max", "tol"):
            value = getattr(self, name)
            if not (_is_real(value) and math.isfinite(value) and value > 0):
                raise MFTheoryError(f"{name} must be positive and finite, got {value!r}")
        for name in ("panels", "nodes_per_panel", "hermite_terms"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                raise MFTheoryError(f"{name} must be a positive integer, got {value!r}")

    def as_dict(self) -> dict[str, float | int]:
        """The settings as a JSON-ready dict."""
        return asdict(self)


def _is_real(value: object) -> bool:
    """A real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value: object) -> bool:
    """A Python int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


DEFAULT_SETTINGS = QuadratureSettings()


@lru_cache(maxsize=32)
def _legendre(m: int) -> tuple[Array, Array]:
    x, w = roots_legendre(m)
    return np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)


@lru_cache(maxsize=32)
def _plain_rule(z_max: float, panels: int, m: int) -> tuple[Array, Array]:
    """Composite rule with Gaussian weights and no break points (cached)."""
    z, w = _composite(np.linspace(-z_max, z_max, panels + 1), m)
    z.setflags(write=False)
    w.setflags(write=False)
    return z, w


def _composite(edges: Array, m: int) -> tuple[Array, Array]:
    """Gauss-Legendre on each panel of sorted ``edges`` (..., E), Gaussian density folded in."""
    x, wl = _legendre(m)
    a = edges[..., :-1, None]
    b = edges[..., 1:, None]
    half = 0.5 * (b - a)
    z = 0.5 * (a + b) + half * x
    w = half * wl * np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    shape = (*edges.shape[:-1], -1)
    return z.reshape(shape), w.reshape(shape)


def normal_rule(
    breaks: Array | None = None,
    settings: QuadratureSettings = DEFAULT_SETTINGS,
) -> tuple[Array, Array]:
    """Nodes and weights for ``E_{z ~ N(0,1)}[f(z)] ~= sum_i w_i f(z_i)``.

    Parameters
    ----------
    breaks : array of shape (..., B), optional
        Extra panel edges (in z units) for each of a batch of rules; values outside the range
        are clipped to it (giving empty panels of zero weight); non-finite values likewise.
    settings : QuadratureSettings
        Range, panel count and nodes per panel.

    Returns
    -------
    z, w : arrays of shape (..., (panels + B) * nodes_per_panel)
        Without ``breaks``, one shared rule of shape (panels * nodes_per_panel,).

    Notes
    -----
    Exact for polynomials of degree ``2 * nodes_per_panel - 1`` times the Gaussian on each
    panel; the truncation to ``[-z_max, z_max]`` neglects mass ``erfc(z_max / sqrt 2)``.
    """
    zm, p, m = settings.z_max, settings.panels, settings.nodes_per_panel
    if breaks is None or np.size(breaks) == 0:
        return _plain_rule(zm, p, m)
    br = np.asarray(breaks, dtype=np.float64)
    br = np.clip(np.nan_to_num(br, nan=zm, posinf=zm, neginf=-zm), -zm, zm)
    base = np.broadcast_to(np.linspace(-zm, zm, p + 1), (*br.shape[:-1], p + 1))
    edges = np.sort(np.concatenate([base, br], axis=-1), axis=-1)
    return _composite(edges, m)


def hermite_panels(terms: int) -> int:
    """Number of panels on [-13, 13] of the Hermite rule for ``terms`` terms.

    Raises
    ------
    MFTheoryError
        If ``terms`` is not a non-negative integer.
    """
    if not (_is_int(terms) and terms >= 0):
        raise MFTheoryError(f"Hermite terms must be a non-negative integer, got {terms!r}")
    return 52 if terms <= 160 else 104


def hermite_functions(terms: int) -> tuple[Array, Array, Array]:
    """Normalised Hermite functions on a composite rule, for Hermite coefficients.

    Returns nodes ``z`` (M,), weights ``w`` (M,) and ``H`` of shape (terms + 1, M) such that
    ``a_k = sum_i H[k, i] * w[i] * f(z_i)`` approximates ``E_z[f(z) He_k(z)] / sqrt(k!)``.
    ``terms`` must be a non-negative integer (else ``MFTheoryError``).

    Notes
    -----
    ``H[k] = h_k(z) * (2 pi)^(-1/4) exp(-z^2/4)`` with the Hermite functions
    ``h_k = He_k(z) (2 pi)^(-1/4) exp(-z^2/4) / sqrt(k!)``, computed by the stable three-term
    recurrence ``h_{k+1} = (z h_k - sqrt(k) h_{k-1}) / sqrt(k+1)`` (|h_k| <= 1.09, Cramér).
    Because of that bound the integrand is below ``exp(-z^2/4)`` and ``[-13, 13]`` suffices
    (neglected part < 1e-18). Panels of width 1/4 (1/2 for at most 160 terms) with 16 nodes
    resolve the oscillations of ``h_k`` (wavelength about ``2 pi / sqrt(k)``) up to k of
    several thousand.
    """
    hermite_panels(terms)  # refuses bad ``terms`` before the cache, where True == 1
    return _hermite_functions(terms)


@lru_cache(maxsize=8)
def _hermite_functions(terms: int) -> tuple[Array, Array, Array]:
    """``hermite_functions``, cached (``terms`` already checked)."""
    z_max = 13.0
    x, wl = _legendre(16)
    edges = np.linspace(-z_max, z_max, hermite_panels(terms) + 1)
    a, b = edges[:-1, None], edges[1:, None]
    z = (0.5 * (a + b) + 0.5 * (b - a) * x).ravel()
    w = (0.5 * (b - a) * wl).ravel()
    g = np.exp(-0.25 * z * z) * (2.0 * math.pi) ** -0.25
    H = np.empty((terms + 1, z.size))
    H[0] = g
    if terms >= 1:
        H[1] = z * g
    for k in range(1, terms):
        H[k + 1] = (z * H[k] - math.sqrt(k) * H[k - 1]) / math.sqrt(k + 1)
    H *= g
    for arr in (z, w, H):
        arr.setflags(write=False)
    return z, w, H
