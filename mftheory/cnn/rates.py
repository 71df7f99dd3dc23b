"""Effective per-mode decay rates of the CNN covariance map over a finite depth range.

The per-mode rate ``chi_c* |lambda_f|`` of ``mftheory.cnn.modes`` is the *asymptotic* one: the
slope of the linearised map at the fixed point. Over the depths a network actually has, the
map itself may shrink a mode faster or slower: at the critical point the fixed point is
marginal (``chi_c* = 1``) and the spatially uniform part of the correlations approaches it
algebraically, so the local slope of the C-map stays below 1 for hundreds of layers.
``effective_mode_rates`` iterates the map (``mftheory.cnn.propagation.propagate``) from a
stated starting covariance and reports, for every Fourier mode ``f`` of
``eps^l = Sigma* - Sigma^l``,

* the geometric-mean rate ``(|eps_f^L| / |eps_f^0|)^(1 / L)`` over layers ``0..L``,
* the effective depth scale ``-1 / log`` of it,
* the local rate ``|eps_f^L| / |eps_f^{L-1}|`` at the last layer,

beside ``chi_c* |lambda_f|`` and ``xi_f``.

Notes
-----
docs/theory.md section 4 (per-mode depth scales, measuring modes, and the finite-depth rates
of the "effective rates" subsection).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.cnn.modes import mode_depth_scale
from mftheory.cnn.propagation import FIT_MARGIN, propagate
from mftheory.cnn.spatial import check_image_shape
from mftheory.errors import MFTheoryError
from mftheory.gaussian.quadrature import QuadratureSettings
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.meanfield.maps import check_variances
from mftheory.serialize import finite_or_none

__all__ = [
    "DEFAULT_PERTURBATION",
    "EffectiveRates",
    "effective_mode_rates",
    "pair_perturbation_start",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Default drop of the starting correlation of the perturbed pixel pair below c*.
DEFAULT_PERTURBATION = 0.5


def pair_perturbation_start(
    q_star: float, c_star: float, image_shape: int | Sequence[int], perturbation: float
) -> FloatArray:
    """The default starting covariance: the fixed point with one pixel pair decorrelated.

    Parameters
    ----------
    q_star, c_star : float
        The fixed point (finite ``q_star >= 0``, ``c_star`` in ``[-1, 1]``).
    image_shape : int or sequence of int
        Pixels per side.
    perturbation : float
        ``delta``: the pair's correlation is ``c* - delta``; ``c* - delta`` must lie in
        ``[-1, 1]``.

    Returns
    -------
    ndarray of float64, shape ``(N, N)``
        ``Sigma* = q* [(1 - c*) I + c* 11^T]`` except the entries ``(0, t)`` and ``(t, 0)``,
        which are ``q* (c* - delta)``; ``t`` is the pixel next to pixel 0 along the last
        axis (flat index 1, row-major).

    Raises
    ------
    MFTheoryError
        ``delta`` not finite, ``0`` (no perturbation), or ``c* - delta`` outside ``[-1, 1]``;
        a one-pixel image (no pixel pair).

    Notes
    -----
    docs/theory.md section 4: every cyclic diagonal of ``eps^0 = Sigma* - Sigma^0`` is zero
    except the two holding the pair, where it is ``q* delta`` at one position, so ``eps^0`` has
    the same amplitude ``q* delta sqrt(2 / (N - 1)) / N`` (``N > 2``) in every Fourier mode: no
    mode is favoured. The pixel variances start at ``q*``, so only correlations relax.
    """
    shape = check_image_shape(image_shape)
    N = math.prod(shape)
    try:
        delta = float(perturbation)
    except (TypeError, ValueError):
        raise MFTheoryError(f"perturbation must be a number, got {perturbation!r}") from None
    if not math.isfinite(delta) or delta == 0.0:
        raise MFTheoryError(f"perturbation must be finite and non-zero, got {perturbation!r}")
    c0 = float(c_star) - delta
    if not -1.0 <= c0 <= 1.0:
        raise MFTheoryError(
            f"perturbation {delta:g} puts the pair's correlation at c* - delta = {c0:.6g},"
            f" outside [-1, 1] (c* = {float(c_star):.6g})"
        )
    if N < 2:
        raise MFTheoryError("a one-pixel image has no pixel pair to perturb")
    sigma = np.full((N, N), q_star * c_star)
    np.fill_diagonal(sigma, q_star)
    # flat index 1: the neighbour of pixel 0 along the last axis (row-major), or along the
    # last axis longer than 1
    sigma[0, 1] = sigma[1, 0] = q_star * c0
    return sigma


@dataclass(frozen=True)
class EffectiveRates:
    """Per-mode rates of the covariance map over layers ``first..depth``, beside the
    asymptotic ones.

    Attributes
    ----------
    activation : Activation
    sigma_w2, sigma_b2 : float
    v : ndarray
        The (normalised) variance vector.
    image_shape : tuple of int
    start : str
        ``"pair"`` (``pair_perturbation_start``), ``"sigma0"`` (a given covariance) or
        ``"images"`` (first layer from images).
    perturbation : float or None
        ``delta`` of the pair start.
    first, depth : int
        First and last layer of the range (``first = 0`` from a covariance, 1 from images).
    q_star, c_star, chi_c, chi_q : float
        The fixed point and its slopes.
    frequency : ndarray of int, shape ``(N, d)``
        Row-major over ``{0..n-1}^d``, as ``mftheory.cnn.modes.mode_eigenvalues``.
    lam : ndarray of complex, shape ``(N,)``
    asymptotic_rate, asymptotic_xi : ndarray, shape ``(N,)``
        ``chi_c* |lambda_f|`` and ``-1 / log`` of it.
    effective_rate, effective_xi : ndarray, shape ``(N,)``
        ``(a_depth / a_first)^(1 / (depth - first))`` of the off-diagonal amplitude ``a`` of
        mode ``f`` and ``-1 / log`` of it; NaN where unresolved (see ``resolved``).
    local_rate : ndarray, shape ``(N,)``
        ``a_depth / a_{depth - 1}``; NaN where unresolved.
    amplitude_first, amplitude_last : ndarray, shape ``(N,)``
        ``a_first`` and ``a_depth``.
    resolved : ndarray of bool, shape ``(N,)``
        The mode's amplitude stands ``margin`` times above the accumulated numerical error
        floor at the first layer and at the last two (else its rates are NaN: numerical noise).
    error_floor_last : float
        The error floor at ``depth``.
    margin : float
    settings : QuadratureSettings
    tol : float
        Tolerance of each pair expectation of the map.
    amplitude : ndarray, shape ``(depth - first + 1, N)``
        Every layer's amplitudes (not in ``as_dict``).
    """

    activation: Activation
    sigma_w2: float
    sigma_b2: float
    v: FloatArray
    image_shape: tuple[int, ...]
    start: str
    perturbation: float | None
    first: int
    depth: int
    q_star: float
    c_star: float
    chi_c: float
    chi_q: float
    frequency: IntArray
    lam: NDArray[np.complex128]
    asymptotic_rate: FloatArray
    asymptotic_xi: FloatArray
    effective_rate: FloatArray
    effective_xi: FloatArray
    local_rate: FloatArray
    amplitude_first: FloatArray
    amplitude_last: FloatArray
    resolved: NDArray[np.bool_]
    error_floor_last: float
    margin: float
    settings: QuadratureSettings
    tol: float
    amplitude: FloatArray = field(repr=False)

    def rate_of(self, frequency: Sequence[int]) -> dict[str, float | None]:
        """The rates of one frequency: ``effective_rate``, ``effective_xi``, ``local_rate``
        (None where unresolved or infinite)."""
        f = tuple(int(x) % s for x, s in zip(frequency, self.image_shape, strict=True))
        i = int(np.ravel_multi_index(f, self.image_shape))
        return {
            "effective_rate": finite_or_none(float(self.effective_rate[i])),
            "effective_xi": finite_or_none(float(self.effective_xi[i])),
            "local_rate": finite_or_none(float(self.local_rate[i])),
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the settings of the run (start, perturbation, layers, fixed point,
        tolerance) and one record per frequency (row-major) with the asymptotic and the
        effective rates and depth scales, the local rate and the first and last amplitudes
        (None where unresolved or infinite)."""
        modes = []
        for i in range(self.frequency.shape[0]):
            modes.append(
                {
                    "frequency": [int(x) for x in self.frequency[i]],
                    "abs_lambda": float(abs(self.lam[i])),
                    "asymptotic_rate": finite_or_none(float(self.asymptotic_rate[i])),
                    "asymptotic_xi": finite_or_none(float(self.asymptotic_xi[i])),
                    "effective_rate": finite_or_none(float(self.effective_rate[i])),
                    "effective_xi": finite_or_none(float(self.effective_xi[i])),
                    "local_rate": finite_or_none(float(self.local_rate[i])),
                    "amplitude_first": float(self.amplitude_first[i]),
                    "amplitude_last": float(self.amplitude_last[i]),
                    "resolved": bool(self.resolved[i]),
                }
            )
        return {
            "activation": self.activation.label,
            "sigma_w2": self.sigma_w2,
            "sigma_b2": self.sigma_b2,
            "v": self.v.tolist(),
            "image_shape": list(self.image_shape),
            "start": self.start,
            "perturbation": self.perturbation,
            "first_layer": self.first,
            "depth": self.depth,
            "q_star": finite_or_none(self.q_star),
            "c_star": finite_or_none(self.c_star),
            "chi_c": finite_or_none(self.chi_c),
            "chi_q": finite_or_none(self.chi_q),
            "error_floor_last": self.error_floor_last,
            "margin": self.margin,
            "tol": self.tol,
            "modes": modes,
        }


def effective_mode_rates(
    act: Activation | str,
    *,
    v: ArrayLike,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    image_shape: int | Sequence[int] | None = None,
    perturbation: float = DEFAULT_PERTURBATION,
    Sigma0: ArrayLike | None = None,
    images: ArrayLike | None = None,
    settings: QuadratureSettings | None = None,
    tol: float | None = None,
    margin: float = FIT_MARGIN,
    progress: Callable[[int, int], None] | None = None,
) -> EffectiveRates:
    """Effective per-mode decay rates of the CNN covariance map over layers ``0..depth``.

    Parameters
    ----------
    act : Activation or str
        The nonlinearity.
    v : array_like
        Variance vector summing to 1.
    sigma_w2, sigma_b2 : float
        Weight and bias variances; the fixed point must be finite.
    depth : int
        Last layer ``L >= 1`` of the range (``>= 2`` from images, whose range starts at 1).
    image_shape : int or sequence of int, optional
        Pixels per side; needed unless ``images`` are given.
    perturbation : float
        ``delta`` of the default start (``pair_perturbation_start``): the fixed point with one
        pair of neighbouring pixels at correlation ``c* - delta``. Ignored with ``Sigma0`` or
        ``images``.
    Sigma0 : array_like, optional
        A layer-0 covariance to start from instead (with ``image_shape``).
    images : array_like, shape ``(B, channels, *pixels)``, optional
        Raw images to start from instead: the range is then layers ``1..depth`` (the first
        layer is affine in the images, as in ``propagate``).
    settings : QuadratureSettings, optional
    tol : float, optional
        Tolerance of each pair expectation (``mftheory.cnn.ctransform.CTransformEngine``).
    margin : float
        A mode's rates are reported only where its amplitude exceeds ``margin`` times the
        numerical error floor at the first and the last two layers.
    progress : callable, optional
        ``progress(layer, depth)`` after each layer.

    Returns
    -------
    EffectiveRates

    Raises
    ------
    MFTheoryError
        Bad input (as ``propagate``), both ``Sigma0`` and ``images``, no finite fixed point, a
        depth too small for the range, or a perturbation outside ``[-1, 1]`` in correlation.

    Notes
    -----
    docs/theory.md section 4. The off-diagonal amplitude ``a_l`` of mode ``f`` is that of
    ``mftheory.cnn.propagation.mode_amplitudes`` applied to ``Sigma* - Sigma^l``. Away from the
    critical line and for small perturbations, ``effective_rate`` and ``local_rate`` equal
    ``chi_c* |lambda_f|``; at the critical point the marginal fixed point is approached
    algebraically and the local slope of the C-map lags below ``chi_c*``, so both lie below
    it over practical depths and tend to it only slowly as ``depth`` grows.

    Examples
    --------
    The linear activation: the map is linear, so every rate is ``chi_c* |lambda_f|`` exactly
    (``chi_c* = sigma_w2``; ``lambda_1 = 1/2 + cos(2 pi / 10) / 2``):

    >>> r = effective_mode_rates("linear", v=[0.25, 0.5, 0.25], sigma_w2=0.9, sigma_b2=0.1,
    ...                          depth=20, image_shape=10)
    >>> round(float(r.effective_rate[1]), 10), round(float(r.asymptotic_rate[1]), 10)
    (0.8140576475, 0.8140576475)
    """
    activation = get_activation(act) if isinstance(act, str) else act
    w2, b2 = (float(x) for x in check_variances(sigma_w2, sigma_b2))
    if Sigma0 is not None and images is not None:
        raise MFTheoryError("give at most one of Sigma0 and images")
    first = 1 if images is not None else 0
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth <= first:
        raise MFTheoryError(
            f"depth must be an integer >= {first + 1} (the range starts at layer {first}),"
            f" got {depth!r}"
        )
    start, delta = "images" if images is not None else "sigma0", None
    if images is None and Sigma0 is None:
        if image_shape is None:
            raise MFTheoryError("the default start needs image_shape")
        fp = fixed_point(activation, sigma_w2=w2, sigma_b2=b2, settings=settings)
        if not (math.isfinite(float(fp.q_star)) and math.isfinite(float(fp.c_star))):
            raise MFTheoryError(
                f"{activation.label} at sigma_w2 = {w2:g}, sigma_b2 = {b2:g} has no finite"
                " fixed point: effective rates towards it are undefined"
            )
        start, delta = "pair", float(perturbation)
        Sigma0 = pair_perturbation_start(
            float(fp.q_star), float(fp.c_star), image_shape, perturbation
        )
    prop = propagate(
        activation,
        v=v,
        sigma_w2=w2,
        sigma_b2=b2,
        depth=int(depth),
        images=images,
        Sigma0=Sigma0,
        image_shape=None if images is not None else image_shape,
        settings=settings,
        tol=tol,
        progress=progress,
    )
    if prop.unavailable is not None:  # no (unique) Sigma*: propagate no longer raises
        raise MFTheoryError(
            prop.unavailable.split(", so")[0] + ": effective rates towards Sigma* are undefined"
        )
    amp, floor = prop.amplitude, prop.error_floor
    span = int(depth) - first
    a0, a_last, a_prev = amp[0], amp[-1], amp[-2]
    resolved = (a0 > margin * floor[0]) & (a_last > margin * floor[-1])
    resolved &= a_prev > margin * floor[-2]
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.where(resolved, (a_last / a0) ** (1.0 / span), np.nan)
        local = np.where(resolved, a_last / a_prev, np.nan)
    eff_xi = np.where(resolved, mode_depth_scale(np.where(resolved, eff, 0.0)), np.nan)
    fp = prop.fixed
    # a magnitude: a negative chi_c* alternates the sign of a mode, |eps_f| shrinks by |chi_c*|
    asymptotic = np.abs(prop.predicted_rate)
    return EffectiveRates(
        activation=activation,
        sigma_w2=w2,
        sigma_b2=b2,
        v=prop.v,
        image_shape=prop.image_shape,
        start=start,
        perturbation=delta,
        first=first,
        depth=int(depth),
        q_star=float(fp.q_star),
        c_star=float(fp.c_star),
        chi_c=float(fp.chi_c),
        chi_q=float(fp.chi_q),
        frequency=prop.frequency,
        lam=prop.lam,
        asymptotic_rate=asymptotic,
        asymptotic_xi=mode_depth_scale(asymptotic),
        effective_rate=np.asarray(eff, dtype=np.float64),
        effective_xi=np.asarray(eff_xi, dtype=np.float64),
        local_rate=np.asarray(local, dtype=np.float64),
        amplitude_first=np.asarray(a0, dtype=np.float64),
        amplitude_last=np.asarray(a_last, dtype=np.float64),
        resolved=np.asarray(resolved, dtype=np.bool_),
        error_floor_last=float(floor[-1]),
        margin=float(margin),
        settings=prop.settings,
        tol=float(prop.tol),
        amplitude=amp,
    )
