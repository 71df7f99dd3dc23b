"""Monte Carlo spectra of the input-output Jacobian of finite random networks.

What it samples. A random network of width ``N`` and depth ``L`` at initialisation, its
input-output Jacobian ``J = dh^L / dh^0`` (an ``N x N`` matrix) computed exactly through the
derivative masks of the drawn network, and the squared singular values of ``J`` (the
eigenvalues of ``J J^T``), per independent draw of the network:

* ``sample_jacobian_spectrum``: a fully connected network with i.i.d. Gaussian or
  Haar-orthogonal weights, ``J = W^L D^L ... W^1 D^1`` with ``D^l = diag(phi'(h^{l-1}))``;
* ``sample_looks_linear_spectrum``: Burkholz & Dubatovka's looks-linear ReLU network,
  computed literally with ``2N`` ReLU units per hidden layer (never short-cut to the linear
  product it is supposed to equal);
* ``sample_delta_orthogonal_spectrum``: a 1D circular CNN with Delta-Orthogonal kernels,
  every layer applied as a real convolution over all kernel taps.

Why. docs/theory.md section 5: criticality fixes the mean squared singular value of ``J``
(``chi_1^L``) but not its spread; the free-probability prediction of the whole spectral
density (S-transforms) and of its variance must be checked against "the empirical spectrum of
a product of random matrices of moderate size". This module is that empirical side.

Resolution floor (a known limitation). ``J`` is accumulated in float64 as
``J <- W^l (D^l J)``, and its singular values come from LAPACK's SVD; both are backward
stable, so a singular value carries an absolute error of order ``eps * s_max`` (``eps`` the
float64 machine epsilon, ``s_max`` the largest singular value of ``J``), not a relative one.
``SampledSpectrum.floor`` is the conservative bound ``(N * eps * s_max)^2`` (largest over
the draws): squared values at or below it are round-off, not spectrum, and
``SampledSpectrum.unresolved_share`` counts them. Exact zeros (the rank deficiency of a
ReLU network's masks) land there too. (Against a 50-digit computation of a 24-wide, 16-deep
Gaussian product, the values above the floor were right to ``1e-5`` relative; some just below
it may still be accurate, the smallest was off by a factor 38.) The squared singular values of
a deep product spread over a range exponential in ``L`` (their logarithms spread linearly, like
Lyapunov exponents), so the unresolved share grows with depth: for a critical linear network
with Gaussian weights at ``N = 200`` it is about 0.5% at ``L = 10``, 15% at ``L = 30`` and 57%
at ``L = 100``, and even critical tanh with orthogonal weights has about a quarter of its
values below the floor at ``L = 100`` (``N = 200`` or ``1000``). Statistics that weigh the
bottom of the spectrum (its logarithm, negative moments, low quantiles, the density near 0)
are then not resolved; the mean, the variance and the upper quantiles are dominated by the top
of the spectrum and are unaffected.

Cost. Each layer costs ``O(N^3)`` (a QR for an orthogonal weight, and one ``N x N`` matrix
product), and each draw one SVD, ``O(N^3)``: ``O(draws L N^3)`` in all, with ``O(N^2)``
memory. For the CNN the convolution of ``J`` costs ``O(kernel channels N^2)`` per layer
instead of ``O(N^3)``, plus the ``O(N^3)`` SVD. For scale: about 11 s per draw at ``N = 1000``,
``L = 100`` and 0.03 s at ``N = 300``, ``L = 4`` (orthogonal weights, two CPU cores).

Notes
-----
docs/theory.md section 5 (Jacobian, dynamical isometry, looks-linear initialisation, the
free-probability recipe) and section 6 (Delta-Orthogonal kernels).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.checks import int_at_least
from mftheory.errors import MFTheoryError
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS
from mftheory.meanfield.maps import check_variances
from mftheory.montecarlo.sampled_spectrum import SampledSpectrum
from mftheory.spectrum.law import WEIGHTS, resolve_q

__all__ = [
    "NETWORKS",
    "WEIGHTS",
    "SampledSpectrum",
    "sample_delta_orthogonal_spectrum",
    "sample_jacobian_spectrum",
    "sample_looks_linear_spectrum",
]

FloatArray = NDArray[np.float64]

NETWORKS: tuple[str, ...] = ("fc", "looks-linear", "delta-orthogonal-cnn")
"""Values of ``SampledSpectrum.network``."""

_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _variances(sigma_w2: float, sigma_b2: float) -> tuple[float, float]:
    w, b = check_variances(sigma_w2, sigma_b2)
    if w.ndim != 0:
        raise MFTheoryError(f"sigma_w2 and sigma_b2 must be single numbers, got shape {w.shape}")
    return float(w), float(b)


def _weights(weights: Any) -> str:
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise MFTheoryError(f"weights must be 'gaussian' or 'orthogonal', got {weights!r}")
    return weights


def _input_variance(act: Activation, q0: float | None, sigma_w2: float, sigma_b2: float) -> float:
    """``q0`` as given (finite, ``>= 0``), else the fixed point ``q*`` (docs/theory.md §3)."""
    if q0 is not None:
        try:
            q = float(q0)
        except (TypeError, ValueError):
            raise MFTheoryError(f"q0 must be a finite non-negative number, got {q0!r}") from None
        if not (math.isfinite(q) and q >= 0.0):
            raise MFTheoryError(f"q0 must be a finite non-negative number, got {q0!r}")
        return q
    # The fixed point, with the rule of mftheory.spectrum.density for positively homogeneous phi
    # (the law of phi' is the same for every q > 0, so q = 1 where q* is 0 or infinite).
    w2, b2 = np.asarray(sigma_w2), np.asarray(sigma_b2)
    q_star = float(resolve_q(act, w2, b2, None, DEFAULT_SETTINGS))
    if math.isfinite(q_star):
        return q_star
    raise MFTheoryError(
        f"{act.label} has no finite q* at sigma_w2={sigma_w2:g}, sigma_b2={sigma_b2:g}:"
        " pass q0 explicitly"
    )


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _haar_orthogonal(rng: np.random.Generator, n: int) -> FloatArray:
    """A Haar-random ``n x n`` orthogonal matrix: QR of a Gaussian matrix, ``diag(R) > 0``."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return np.asarray(q * signs, dtype=np.float64)


def _weight_matrix(rng: np.random.Generator, n: int, sigma_w2: float, weights: str) -> FloatArray:
    if weights == "gaussian":
        return rng.standard_normal((n, n)) * math.sqrt(sigma_w2 / n)
    return math.sqrt(sigma_w2) * _haar_orthogonal(rng, n)


def _evaluate(f: Callable[[FloatArray], FloatArray], h: FloatArray) -> FloatArray:
    # tanh' = 1 / cosh^2 overflows to the right limit (0) at large |h|: no warning wanted
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(f(h), dtype=np.float64)


def _check_finite(a: FloatArray, what: str, layer: int, draw: int) -> None:
    if not np.isfinite(a).all():
        raise MFTheoryError(
            f"{what} is not finite after layer {layer} (draw {draw}): it overflowed float64;"
            " lower sigma_w2 or depth"
        )


def _squared_singular_values(j: FloatArray, draw: int) -> tuple[FloatArray, float]:
    """Descending squared singular values of ``j`` and their resolution floor."""
    s = np.linalg.svd(j, compute_uv=False)
    with np.errstate(over="ignore"):
        values = np.asarray(s * s, dtype=np.float64)
    if not np.isfinite(values).all():
        raise MFTheoryError(
            f"the squared singular values of the Jacobian overflow float64 (draw {draw});"
            " lower sigma_w2 or depth"
        )
    return values, (j.shape[0] * _EPS * float(s[0])) ** 2


def _scale_rows(d: FloatArray, j: FloatArray) -> FloatArray:
    """``diag(d) J``: ``d`` scales the leading axes of ``j`` it covers (``J``'s rows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(d.reshape(d.shape + (1,) * (j.ndim - d.ndim)) * j, dtype=np.float64)


def _matmul(a: FloatArray, b: FloatArray) -> FloatArray:
    # Overflow is detected by _check_finite right after, with a message naming the layer.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(a @ b, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Fully connected
# --------------------------------------------------------------------------------------------


def sample_jacobian_spectrum(
    act: str | Activation,
    *,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    width: int,
    weights: str = "orthogonal",
    q0: float | None = None,
    draws: int = 1,
    seed: int = 0,
) -> SampledSpectrum:
    """Squared singular values of the input-output Jacobian of random fully connected nets.

    Parameters
    ----------
    act : str or Activation
        The nonlinearity ``phi`` (a name or expression for
        ``mftheory.activations.get_activation``).
    sigma_w2, sigma_b2 : float
        Weight and bias *variances*.
    depth : int
        Number of weight layers ``L >= 1``.
    width : int
        Width ``N >= 1`` of every layer (``J`` is ``N x N``).
    weights : {"orthogonal", "gaussian"}
        ``W^l = sqrt(sigma_w2) Q`` with ``Q`` Haar-orthogonal, or i.i.d. entries
        ``N(0, sigma_w2 / N)``.
    q0 : float, optional
        Variance of the input pre-activations ``h^0`` (i.i.d. Gaussian). Default: the fixed
        point ``q*`` of ``mftheory.meanfield.fixed_point``, so that every layer is at
        the fixed point in the mean-field limit. For a positively homogeneous ``phi`` (relu,
        leaky_relu, linear: the law of ``phi'(h)`` is the same for every ``q > 0``) it is 1
        where ``q*`` is infinite or 0 (at ``q = 0`` every unit would sit on the kink).
    draws : int
        Independent networks, ``>= 1``.
    seed : int
        Seed (``>= 0``) of the one ``numpy.random.default_rng`` stream: per draw ``h^0``,
        then per layer ``W^l`` and ``b^l``.

    Returns
    -------
    SampledSpectrum
        ``network="fc"``.

    Raises
    ------
    MFTheoryError
        Negative or non-finite variances, ``depth``/``width``/``draws`` below 1 or not
        integers, unknown ``weights``, a negative ``seed``, a bad ``q0``, no finite ``q*``
        for a non-homogeneous ``phi`` without ``q0``, or ``J`` or ``h`` overflowing float64.

    Notes
    -----
    docs/theory.md section 5. Per layer ``l = 1..L``: ``D^l = diag(phi'(h^{l-1}))``,
    ``h^l = W^l phi(h^{l-1}) + b^l`` with ``b^l ~ N(0, sigma_b2)`` i.i.d., and
    ``J <- W^l (D^l J)`` from ``J = I``, so ``J = W^L D^L ... W^1 D^1 = dh^L / dh^0``. The
    floor and the cost are discussed in the module docstring.
    """
    a = get_activation(act)
    w2, b2 = _variances(sigma_w2, sigma_b2)
    n_layers = int_at_least(depth, "depth", 1)
    n = int_at_least(width, "width", 1)
    n_draws = int_at_least(draws, "draws", 1)
    s = int_at_least(seed, "seed", 0)
    kind = _weights(weights)
    q = _input_variance(a, q0, w2, b2)
    rng = np.random.default_rng(s)
    values = np.empty((n_draws, n))
    floor = 0.0
    for draw in range(n_draws):
        h = rng.standard_normal(n) * math.sqrt(q)
        j = np.eye(n)
        for layer in range(1, n_layers + 1):
            w = _weight_matrix(rng, n, w2, kind)
            b = rng.standard_normal(n) * math.sqrt(b2)
            d = _evaluate(a.dphi, h)
            _check_finite(d, "phi'(h)", layer - 1, draw)
            j = _matmul(w, _scale_rows(d, j))
            _check_finite(j, "the Jacobian", layer, draw)
            if layer < n_layers:
                h = _matmul(w, _evaluate(a.phi, h)) + b
                _check_finite(h, "the pre-activation h", layer, draw)
        values[draw], f = _squared_singular_values(j, draw)
        floor = max(floor, f)
    return SampledSpectrum(
        network="fc",
        activation=a.label,
        weights=kind,
        sigma_w2=w2,
        sigma_b2=b2,
        depth=n_layers,
        width=n,
        draws=n_draws,
        q0=q,
        seed=s,
        values=values,
        floor=floor,
    )


# --------------------------------------------------------------------------------------------
# Looks-linear ReLU network
# --------------------------------------------------------------------------------------------


def sample_looks_linear_spectrum(
    *, depth: int, width: int, gain: float = 1.0, draws: int = 1, seed: int = 0
) -> SampledSpectrum:
    """Jacobian spectrum of Burkholz & Dubatovka's looks-linear ReLU network, computed literally.

    Parameters
    ----------
    depth : int
        Number of weight layers ``L >= 2``.
    width : int
        Input and output width ``N >= 1``; hidden layers have ``2N`` ReLU units.
    gain : float
        Singular value of each shared block ``W_l`` (finite, ``>= 0``).
    draws : int
        Independent networks, ``>= 1``.
    seed : int
        Seed (``>= 0``) of the ``numpy.random.default_rng`` stream: per draw the input
        ``x`` (i.i.d. ``N(0, 1)``), then ``W_1 .. W_L``.

    Returns
    -------
    SampledSpectrum
        ``network="looks-linear"``, ``activation="relu"``, ``weights="orthogonal"``,
        ``sigma_w2 = gain**2``, ``sigma_b2 = 0``, ``q0 = 1``.

    Raises
    ------
    MFTheoryError
        ``depth < 2``, ``width``/``draws`` below 1 or not integers, a negative or non-finite
        gain, a negative ``seed``, or ``J`` overflowing float64.

    Notes
    -----
    docs/theory.md section 5 (and ``mftheory.torch.looks_linear_``). With ``W_l`` ``gain``
    times Haar-orthogonal ``N x N`` matrices the weight matrices are

        first:  [W_1; -W_1]     middle:  [[W_l, -W_l], [-W_l, W_l]]     last:  [W_L, -W_L]

    with zero biases. The Jacobian is accumulated through the actual ReLU masks at the input
    ``x``, ``J <- M_l (D_{l-1} J)`` with ``D_{l-1} = diag(relu'(z^{l-1}))`` of the hidden
    pre-activations ``z^{l-1}``; that it equals ``W_L ... W_1`` (all squared singular values
    ``gain^{2L}``) is what this function lets one check, not an assumption.
    """
    n_layers = int_at_least(depth, "depth", 2, " (a first and a last weight layer)")
    n = int_at_least(width, "width", 1)
    n_draws = int_at_least(draws, "draws", 1)
    s = int_at_least(seed, "seed", 0)
    try:
        g = float(gain)
    except (TypeError, ValueError):
        raise MFTheoryError(f"gain must be a finite non-negative number, got {gain!r}") from None
    if not (math.isfinite(g) and g >= 0.0):
        raise MFTheoryError(f"gain must be a finite non-negative number, got {gain!r}")
    relu = get_activation("relu")
    rng = np.random.default_rng(s)
    values = np.empty((n_draws, n))
    floor = 0.0
    for draw in range(n_draws):
        x = rng.standard_normal(n)
        blocks = [g * _haar_orthogonal(rng, n) for _ in range(n_layers)]
        first = np.concatenate([blocks[0], -blocks[0]], axis=0)  # (2N, N)
        z = _matmul(first, x)
        _check_finite(z, "the pre-activation", 1, draw)
        j = first.copy()
        for layer in range(2, n_layers + 1):
            blk = blocks[layer - 1]
            if layer < n_layers:
                m = np.block([[blk, -blk], [-blk, blk]])  # (2N, 2N)
            else:
                m = np.concatenate([blk, -blk], axis=1)  # (N, 2N)
            mask = relu.dphi(z)
            j = _matmul(m, _scale_rows(mask, j))
            _check_finite(j, "the Jacobian", layer, draw)
            z = _matmul(m, relu.phi(z))
            _check_finite(z, "the pre-activation", layer, draw)
        values[draw], f = _squared_singular_values(j, draw)
        floor = max(floor, f)
    return SampledSpectrum(
        network="looks-linear",
        activation=relu.label,
        weights="orthogonal",
        sigma_w2=g * g,
        sigma_b2=0.0,
        depth=n_layers,
        width=n,
        draws=n_draws,
        q0=1.0,
        seed=s,
        values=values,
        floor=floor,
    )


# --------------------------------------------------------------------------------------------
# Delta-Orthogonal CNN
# --------------------------------------------------------------------------------------------


def _convolve(taps: FloatArray, x: FloatArray) -> FloatArray:
    """Circular 1D convolution ``out[:, a] = sum_b K_b x[:, a + b]`` over all ``k`` taps.

    ``taps`` is ``(k, c_out, c_in)`` with offsets ``b = -(k//2) .. k//2``; ``x`` is
    ``(c_in, n, ...)`` (trailing axes carried along, e.g. the columns of ``J``).
    """
    k = taps.shape[0]
    half = k // 2
    out = np.zeros((taps.shape[1], *x.shape[1:]))
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(k):
            # np.roll(x, -b)[:, a] = x[:, a + b] (indices mod n)
            rolled = np.roll(x, -(t - half), axis=1)
            out += np.tensordot(taps[t], rolled, axes=(1, 0))
    return out


def sample_delta_orthogonal_spectrum(
    act: str | Activation,
    *,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    channels: int,
    size: int,
    kernel: int = 3,
    q0: float | None = None,
    draws: int = 1,
    seed: int = 0,
) -> SampledSpectrum:
    """Jacobian spectrum of a random 1D circular CNN with Delta-Orthogonal kernels.

    Parameters
    ----------
    act : str or Activation
        The nonlinearity ``phi``.
    sigma_w2, sigma_b2 : float
        Weight and bias *variances*.
    depth : int
        Number of convolutional layers ``L >= 1``.
    channels : int
        Channels ``c >= 1`` of every layer.
    size : int
        Spatial positions ``n >= 1`` (circular boundary).
    kernel : int
        Kernel width, odd, ``>= 1``.
    q0 : float, optional
        Variance of the input pre-activations (i.i.d. per channel and position); default
        ``q*`` as in ``sample_jacobian_spectrum``.
    draws : int
        Independent networks, ``>= 1``.
    seed : int
        Seed (``>= 0``) of the ``numpy.random.default_rng`` stream: per draw ``h^0``,
        then per layer the orthogonal centre tap and the biases.

    Returns
    -------
    SampledSpectrum
        ``network="delta-orthogonal-cnn"``, ``weights="orthogonal"``,
        ``width = channels * size`` (``J`` indexed by (channel, position), channel-major).

    Raises
    ------
    MFTheoryError
        As ``sample_jacobian_spectrum``, and ``kernel`` even or below 1.

    Notes
    -----
    docs/theory.md sections 1 and 6. Every layer's kernel ``K`` (``kernel x c x c``) is zero but
    the centre tap, ``sqrt(sigma_w2)`` times a Haar-orthogonal ``c x c`` matrix; biases are
    ``N(0, sigma_b2)`` per channel. The layer ``h^l(a) = sum_b K_b phi(h^{l-1})(a + b) +
    bias`` is applied as a real circular convolution over all taps, zero ones included, and
    ``J`` (``c n x c n``) is accumulated the same way, ``J <- conv(D^l J)``, so that the
    equality in law of its spectrum with the orthogonal fully connected one is something to
    check rather than built in.
    """
    a = get_activation(act)
    w2, b2 = _variances(sigma_w2, sigma_b2)
    n_layers = int_at_least(depth, "depth", 1)
    c = int_at_least(channels, "channels", 1)
    n = int_at_least(size, "size", 1)
    k = int_at_least(kernel, "kernel", 1)
    if k % 2 == 0:
        raise MFTheoryError(f"kernel must be odd (a centre tap), got {k}")
    n_draws = int_at_least(draws, "draws", 1)
    s = int_at_least(seed, "seed", 0)
    q = _input_variance(a, q0, w2, b2)
    rng = np.random.default_rng(s)
    big = c * n
    values = np.empty((n_draws, big))
    floor = 0.0
    for draw in range(n_draws):
        h = rng.standard_normal((c, n)) * math.sqrt(q)
        j = np.eye(big).reshape(c, n, big)
        for layer in range(1, n_layers + 1):
            taps = np.zeros((k, c, c))
            taps[k // 2] = math.sqrt(w2) * _haar_orthogonal(rng, c)
            bias = rng.standard_normal(c) * math.sqrt(b2)
            d = _evaluate(a.dphi, h)
            _check_finite(d, "phi'(h)", layer - 1, draw)
            j = _convolve(taps, _scale_rows(d, j))
            _check_finite(j, "the Jacobian", layer, draw)
            if layer < n_layers:
                h = _convolve(taps, _evaluate(a.phi, h)) + bias[:, None]
                _check_finite(h, "the pre-activation h", layer, draw)
        values[draw], f = _squared_singular_values(j.reshape(big, big), draw)
        floor = max(floor, f)
    return SampledSpectrum(
        network="delta-orthogonal-cnn",
        activation=a.label,
        weights="orthogonal",
        sigma_w2=w2,
        sigma_b2=b2,
        depth=n_layers,
        width=big,
        draws=n_draws,
        q0=q,
        seed=s,
        values=values,
        floor=floor,
        channels=c,
        size=n,
        kernel=k,
    )
