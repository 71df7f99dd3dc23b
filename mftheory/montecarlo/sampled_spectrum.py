"""The result of a sampled Jacobian spectrum: ``SampledSpectrum`` and its statistics.

The squared singular values of every draw, with their mean, variance and normalised variance
and jackknife standard errors over draws (``mftheory.montecarlo.jacobians`` samples them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mftheory.errors import MFTheoryError
from mftheory.serialize import finite_or_none, jsonable

__all__ = ["SampledSpectrum"]

FloatArray = NDArray[np.float64]

_SUMMARY_QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)  # reported by SampledSpectrum.as_dict


@dataclass(frozen=True, eq=False)
class SampledSpectrum:
    """Squared singular values of the input-output Jacobian of sampled random networks.

    Attributes
    ----------
    network : str
        ``"fc"``, ``"looks-linear"`` or ``"delta-orthogonal-cnn"``.
    activation : str
        Label of ``phi`` (``mftheory.activations.Activation.label``); ``"relu"`` for the
        looks-linear network.
    weights : str
        ``"gaussian"`` or ``"orthogonal"``.
    sigma_w2, sigma_b2 : float
        Weight and bias variances (``gain**2`` and 0 for the looks-linear network).
    depth : int
        Number of weight layers ``L``.
    width : int
        Size ``N`` of the square Jacobian (``channels * size`` for the CNN).
    draws : int
        Independent networks sampled.
    q0 : float
        Variance of the i.i.d. Gaussian input pre-activations ``h^0``.
    seed : int
        Seed of the one ``numpy.random.default_rng`` stream all draws come from.
    values : ndarray of float64, shape ``(draws, width)``
        Squared singular values of ``J`` per draw, in descending order.
    floor : float
        Resolution of the squared singular values: ``(width * eps * s_max)^2`` with ``eps``
        the float64 machine epsilon and ``s_max`` the largest singular value of ``J``
        (largest over the draws), a conservative bound (see the module docstring). Values at
        or below it are round-off.
    channels, size, kernel : int or None
        Layout of the CNN (``width = channels * size``); None for the other networks.

    Notes
    -----
    Compared by identity (``eq=False``): ``values`` has no single truth value. The statistics
    pool all ``draws * width`` values (one empirical spectral distribution); their standard
    errors come from the spread across draws, which are independent (NaN for one draw).
    docs/theory.md section 5: ``mean`` estimates ``chi_1^L`` at the fixed point, and
    ``normalized_variance`` the free-probability ``var / mean^2``.
    """

    network: str
    activation: str
    weights: str
    sigma_w2: float
    sigma_b2: float
    depth: int
    width: int
    draws: int
    q0: float
    seed: int
    values: FloatArray
    floor: float
    channels: int | None = None
    size: int | None = None
    kernel: int | None = None

    @property
    def all_values(self) -> FloatArray:
        """All squared singular values, flat, ``(draws * width,)`` (draw by draw)."""
        return np.asarray(self.values, dtype=np.float64).reshape(-1)

    @property
    def mean(self) -> float:
        """Mean of all squared singular values (``tr(J J^T) / N`` averaged over draws)."""
        return float(np.mean(self.values))

    @property
    def variance(self) -> float:
        """Variance of the pooled empirical spectral distribution (``ddof = 0``)."""
        return float(np.var(self.values))

    @property
    def normalized_variance(self) -> float:
        """``variance / mean^2`` (NaN when the mean is 0): scale-free spread of the spectrum."""
        m = self.mean
        return self.variance / (m * m) if m != 0 else math.nan

    @property
    def mean_se(self) -> float:
        """Standard error of ``mean`` from the spread of the per-draw means (NaN if 1 draw)."""
        if self.draws < 2:
            return math.nan
        per_draw = np.mean(self.values, axis=1)
        return float(np.std(per_draw, ddof=1) / math.sqrt(self.draws))

    @property
    def variance_se(self) -> float:
        """Jackknife (delete one draw) standard error of ``variance`` (NaN if 1 draw)."""
        return _jackknife_se(self._leave_one_out()[1])

    @property
    def normalized_variance_se(self) -> float:
        """Jackknife standard error of ``normalized_variance`` (NaN if 1 draw)."""
        means, variances = self._leave_one_out()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = variances / (means * means)
        return _jackknife_se(ratios)

    @property
    def unresolved_share(self) -> float:
        """Share of the values at or below ``floor`` (round-off, or exact zeros)."""
        return float(np.mean(self.values <= self.floor))

    def quantile(self, p: float) -> float:
        """The ``p``-quantile (``0 <= p <= 1``) of the pooled squared singular values.

        Raises
        ------
        MFTheoryError
            ``p`` not a number in ``[0, 1]``.
        """
        try:
            pf = float(p)
        except (TypeError, ValueError):
            raise MFTheoryError(f"quantile p must be a number in [0, 1], got {p!r}") from None
        if not 0.0 <= pf <= 1.0:
            raise MFTheoryError(f"quantile p must be in [0, 1], got {p!r}")
        return float(np.quantile(self.values, pf))

    def as_dict(self, *, include_values: bool = False) -> dict[str, Any]:
        """JSON-ready settings and summary statistics; NaN and infinities become None.

        Parameters
        ----------
        include_values : bool
            Also include ``values`` as a list (per draw) of lists (descending).
        """
        out: dict[str, Any] = {
            "network": self.network,
            "activation": self.activation,
            "weights": self.weights,
            "sigma_w2": finite_or_none(self.sigma_w2),
            "sigma_b2": finite_or_none(self.sigma_b2),
            "depth": int(self.depth),
            "width": int(self.width),
            "channels": self.channels,
            "size": self.size,
            "kernel": self.kernel,
            "draws": int(self.draws),
            "q0": finite_or_none(self.q0),
            "seed": int(self.seed),
            "floor": finite_or_none(self.floor),
            "mean": finite_or_none(self.mean),
            "mean_se": finite_or_none(self.mean_se),
            "variance": finite_or_none(self.variance),
            "variance_se": finite_or_none(self.variance_se),
            "normalized_variance": finite_or_none(self.normalized_variance),
            "normalized_variance_se": finite_or_none(self.normalized_variance_se),
            "min": finite_or_none(float(np.min(self.values))),
            "max": finite_or_none(float(np.max(self.values))),
            "quantiles": {f"{p:g}": finite_or_none(self.quantile(p)) for p in _SUMMARY_QUANTILES},
            "unresolved_share": finite_or_none(self.unresolved_share),
        }
        if include_values:
            out["values"] = jsonable(self.values)
        return out

    def _leave_one_out(self) -> tuple[FloatArray, FloatArray]:
        """Mean and (pooled, ddof 0) variance of all draws but one, for each draw left out.

        Combines per-draw centred sums (Chan et al.'s parallel formula) rather than raw second
        moments, so a spectrum with variance far below ``mean^2`` loses no digits.
        """
        v = np.asarray(self.values, dtype=np.float64)
        d, n = v.shape
        if d < 2:
            return np.full(d, math.nan), np.full(d, math.nan)
        means = v.mean(axis=1)
        m2 = np.sum((v - means[:, None]) ** 2, axis=1)
        grand = float(means.mean())
        dev = means - grand
        loo_mean = grand - dev / (d - 1)
        # sum over d != i of (m_d - loo_mean_i)^2 = S_i - (d - 1) (loo_mean_i - grand)^2,
        # with S_i = sum_{d != i} (m_d - grand)^2
        s_i = np.sum(dev * dev) - dev * dev
        between = s_i - (d - 1) * (loo_mean - grand) ** 2
        loo_m2 = (np.sum(m2) - m2) + n * np.maximum(between, 0.0)
        return loo_mean, loo_m2 / ((d - 1) * n)


def _jackknife_se(estimates: FloatArray) -> float:
    """Jackknife standard error from the delete-one estimates (NaN for fewer than 2)."""
    d = estimates.size
    if d < 2 or not np.all(np.isfinite(estimates)):
        return math.nan
    dev = estimates - estimates.mean()
    return float(math.sqrt((d - 1) / d * float(np.sum(dev * dev))))
