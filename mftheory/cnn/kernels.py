"""Convolution kernels for initialisation: orthogonal, Delta-Orthogonal and Gaussian, with checks.

Layout everywhere: ``(size,) * dim + (c_in, c_out)`` (spatial axes, then input and output
channels), as in the paper and TensorFlow. A kernel ``K`` defines on periodic images of side
``n`` (circular boundaries) the linear operator

    (K * x)_j(a) = sum_i sum_b K(b)[i, j] x_i(a + b),

with centred offsets ``b`` (a side of ``2k + 1`` positions has offsets ``-k..k``, as in
``mftheory.cnn.modes.kernel_offsets``). The discrete Fourier transform block-diagonalises it:
at frequency ``w in {0..n-1}^dim`` the operator acts on the channels through the transpose of

    K^(w) = sum_b K(b) exp(-2 pi i <w, b> / n)          (a c_in x c_out matrix),

so its singular values are those of the ``K^(w)`` over all ``w``, and the operator is an
isometry scaled by ``gain`` (``W^T W = gain^2 I``) iff every ``c_out x c_in`` block
``K^(w)^T`` has orthonormal columns times ``gain``, i.e. ``K^(w) K^(w)^H = gain^2 I_{c_in}``.

Notes
-----
docs/theory.md section 6 (orthogonal kernels, the paper's Algorithm 1, Delta-Orthogonal), section 1
(``w_ij(b) ~ N(0, sigma_w^2 v_b / c)``: ``gaussian_kernel``, ``kernel_sigma_w2``) and
section 4 (the variance vector ``v`` behind the Fourier modes: ``kernel_variance_share``
gives the ``v`` an initialiser implies).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.checks import moderate_float, nonnegative_float
from mftheory.cnn.modes import check_variance_vector, kernel_offsets, variance_vector
from mftheory.errors import MFTheoryError
from mftheory.serialize import finite_or_none

__all__ = [
    "KernelCheck",
    "check_kernel",
    "delta_orthogonal_kernel",
    "gaussian_kernel",
    "kernel_sigma_w2",
    "kernel_variance_share",
    "operator_singular_values",
    "orthogonal_kernel",
    "random_orthogonal",
]

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]
SeedLike = int | np.random.Generator | None

_MAX_DIM = 3
_SUM_TOL = 1e-10  # how far sum(v) may be from 1 (as in mftheory.cnn.modes)
CHECK_CHUNK_BYTES = 1 << 26  # complex K^(w) blocks are built 64 MiB at a time
_KEEP_PROBABILITY = 0.5  # each column of the projection frame is kept with this probability
CHECK_N_MAX = 64  # check_kernel: n from the kernel size to 64 (1D and 2D) ...
CHECK_N_MAX_3D = 8  # ... and to 8 in 3D (n^3 SVDs per n)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, bool):
        raise MFTheoryError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise MFTheoryError(
            f"seed must be a non-negative int, a numpy Generator or None, got {seed!r}"
        ) from None


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MFTheoryError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise MFTheoryError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_size(size: Any) -> int:
    s = _check_int(size, "kernel size", 1)
    if s % 2 == 0:
        raise MFTheoryError(
            f"kernel size {s} is even: kernel sizes must be odd so that the kernel has a centre"
        )
    return s


def _check_dim(dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise MFTheoryError(f"dim must be an integer, got {dim!r}")
    if not 1 <= dim <= _MAX_DIM:
        raise MFTheoryError(f"dim must be 1, 2 or 3 (spatial dimensions), got {dim}")
    return int(dim)


def _check_orthogonal_args(
    size: Any, c_in: Any, c_out: Any, dim: Any, gain: Any
) -> tuple[int, int, int, int, float]:
    s = _check_size(size)
    d = _check_dim(dim)
    ci = _check_int(c_in, "c_in (input channels)", 1)
    co = _check_int(c_out, "c_out (output channels)", 1)
    g = moderate_float(gain, "gain")
    if ci > co:
        raise MFTheoryError(
            f"orthogonal kernels need c_in <= c_out, got c_in={ci} > c_out={co}:"
            " an operator from more channels to fewer cannot have orthonormal columns"
        )
    return s, ci, co, d, g


_ENTRY_MAX = 1e100


def _check_kernel(kernel: ArrayLike) -> FloatArray:
    """A kernel as a float64 array of shape ``spatial + (c_in, c_out)``, validated."""
    try:
        arr = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise MFTheoryError("kernel is not a rectangular array of real numbers") from None
    if not 3 <= arr.ndim <= _MAX_DIM + 2:
        raise MFTheoryError(
            f"kernel has shape {arr.shape}: expected (size,)*dim + (c_in, c_out) with dim 1..3"
        )
    if arr.size == 0:
        raise MFTheoryError(f"kernel has shape {arr.shape}: no entries")
    even = [s for s in arr.shape[:-2] if s % 2 == 0]
    if even:
        raise MFTheoryError(
            f"kernel has shape {arr.shape}: spatial side {even[0]} is even; kernel sizes must be"
            " odd so that the kernel has a centre"
        )
    bad = ~np.isfinite(arr) | (np.abs(arr) > _ENTRY_MAX)  # beyond it, K^2 sums overflow
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "is not finite" if not np.isfinite(arr[idx]) else f"exceeds {_ENTRY_MAX:g} in size"
        raise MFTheoryError(f"kernel entry {float(arr[idx])!r} at index {idx} {what}")
    return arr


def _check_n(n: Any) -> int:
    return _check_int(n, "image side n", 1)


# --------------------------------------------------------------------------------------------
# Random orthogonal matrices and the kernels
# --------------------------------------------------------------------------------------------


def random_orthogonal(n_rows: int, n_cols: int, seed: SeedLike = None) -> FloatArray:
    """A Haar-distributed matrix with orthonormal columns (``n_rows >= n_cols``) or rows.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape, both ``>= 1``.
    seed : int, numpy Generator or None
        Seed or generator (``numpy.random.default_rng``); a generator is advanced.

    Returns
    -------
    ndarray of float64, shape ``(n_rows, n_cols)``
        For ``n_rows >= n_cols`` the first ``n_cols`` columns of a Haar orthogonal
        ``n_rows x n_rows`` matrix (``Q^T Q = I``); otherwise the transpose of such a matrix
        (``Q Q^T = I``), which is distributed as the first ``n_rows`` rows of a Haar matrix.

    Notes
    -----
    docs/theory.md section 6: QR of a Gaussian matrix with the signs of ``R``'s diagonal made
    positive (Mezzadri 2007), without which ``Q`` is not Haar distributed.
    """
    rows = _check_int(n_rows, "n_rows", 1)
    cols = _check_int(n_cols, "n_cols", 1)
    gen = _rng(seed)
    if rows < cols:
        return _haar_frame(cols, rows, gen).T.copy()
    return _haar_frame(rows, cols, gen)


def _haar_frame(n: int, m: int, rng: np.random.Generator) -> FloatArray:
    """``m <= n`` orthonormal columns in ``R^n``, Haar distributed (``m = 0`` allowed)."""
    if m == 0:
        return np.zeros((n, 0))
    q, r = np.linalg.qr(rng.standard_normal((n, m)))
    signs = np.where(np.diagonal(r) < 0, -1.0, 1.0)
    return np.asarray(q * signs, dtype=np.float64)


def _grow(kernel: FloatArray, axis: int, rng: np.random.Generator, keep: float) -> FloatArray:
    """One 1D growth step along ``axis``: ``K(z) -> K(z) (P + (I - P) z)``.

    ``P = U U^T`` projects onto ``m`` Haar-random directions of the ``c_out`` output channels,
    ``m ~ Binomial(c_out, keep)``. The new kernel, one position longer along ``axis``, is
    ``K'[t] = K[t] P + K[t - 1] (I - P)`` (zero outside the old kernel). Since ``P (I - P) = 0``
    the factor is paraunitary, ``(P + (I - P) z)(P + (I - P) z)^H = I`` on ``|z| = 1``, so
    ``K'^(w) K'^(w)^H = K^(w) K^(w)^H``: orthogonality is kept. Cost ``O(positions c_in c^2)``.
    """
    c = kernel.shape[-1]
    m = int(rng.binomial(c, keep))
    u = _haar_frame(c, m, rng)
    flat = kernel.reshape(-1, c)
    kp = ((flat @ u) @ u.T).reshape(kernel.shape)
    at_end = [(0, 0)] * kernel.ndim
    at_start = [(0, 0)] * kernel.ndim
    at_end[axis] = (0, 1)
    at_start[axis] = (1, 0)
    return np.pad(kp, at_end) + np.pad(kernel - kp, at_start)


def _orthogonal_kernel(
    size: int,
    c_in: int,
    c_out: int,
    dim: int,
    gain: float,
    rng: np.random.Generator,
    keep: float = _KEEP_PROBABILITY,
) -> FloatArray:
    """Algorithm 1 with validated arguments; ``keep`` = expected rank fraction of each ``P``."""
    start = random_orthogonal(c_in, c_out, rng)  # first c_in rows of a Haar c_out x c_out H
    kernel = start.reshape((1,) * dim + (c_in, c_out))
    for _ in range(size - 1):
        for axis in range(dim):
            kernel = _grow(kernel, axis, rng, keep)
    return np.ascontiguousarray(gain * kernel, dtype=np.float64)


def orthogonal_kernel(
    size: int,
    c_in: int,
    c_out: int,
    *,
    dim: int = 2,
    gain: float = 1.0,
    seed: SeedLike = None,
) -> FloatArray:
    """A random orthogonal convolution kernel (the paper's Algorithm 1).

    Parameters
    ----------
    size : int
        Side of the kernel, odd, ``>= 1`` (``size = 1`` gives a random orthogonal 1x1 kernel).
    c_in, c_out : int
        Input and output channels, ``1 <= c_in <= c_out``.
    dim : int
        Spatial dimensions, 1, 2 or 3.
    gain : float
        Finite, ``>= 0``: every singular value of the operator equals ``gain`` (``sigma_w``).
    seed : int, numpy Generator or None
        Randomness only through ``numpy.random.default_rng(seed)``.

    Returns
    -------
    ndarray of float64, shape ``(size,) * dim + (c_in, c_out)``
        On periodic images of every side ``n`` the operator satisfies ``W^T W = gain^2 I``
        (``sum_b K(b) K(b + g)^T = gain^2 delta_g I_{c_in}``, offsets taken mod ``n``).

    Raises
    ------
    MFTheoryError
        ``c_in > c_out``; even, non-integer or ``< 1`` size; ``dim`` not in 1..3; channels
        ``< 1``; gain negative or not finite; an unusable seed.

    Notes
    -----
    docs/theory.md section 6 (Xiao et al. 2018, Algorithm 1, after Kautsky & Turcajova 1994). The
    kernel is the matrix polynomial ``K(z) = gain H_in prod_steps prod_axes (P + (I - P) z_axis)``:

    - ``H_in`` is ``c_in x c_out`` with orthonormal rows, Haar distributed, i.e. the first
      ``c_in`` rows of a Haar ``c_out x c_out`` matrix ``H`` (drawn directly, which is the
      same distribution; keeping the first rows at the start instead of the end gives the same
      kernel, as the growth only multiplies on the right);
    - there are ``size - 1`` growth steps; each multiplies, for every spatial axis in turn, by
      the 2-tap factor ``P + (I - P) z_axis`` with a fresh random symmetric projection
      ``P = U U^T`` (``U`` Haar ``c_out x m``). Along two axes one step is the block
      convolution with ``[[P Q, P (I - Q)], [(I - P) Q, (I - P)(I - Q)]]``, in 3D likewise;
    - the rank ``m`` is ``Binomial(c_out, 1/2)`` (each column of a Haar frame kept with
      probability 1/2, as TensorFlow's ``ConvolutionOrthogonal`` initialisers do), so ``m = 0``
      and ``m = c_out`` (a pure shift, or nothing) occur, and ``c_out = 1`` works;
    - the polynomial's exponents ``0..size-1`` become the centred offsets ``-k..k``.

    Each factor is paraunitary, so the operator stays orthogonal. Expected per-position share
    of the squared weights (``kernel_variance_share``): the product over axes of the
    binomial ``C(size-1, t) / 2^(size-1)`` (``(1/4, 1/2, 1/4)`` for size 3), because only
    ``E[m] / c_out = 1/2`` enters it; a rank rule with ``E[m] / c_out = p`` would give
    ``Binomial(size - 1, 1 - p)`` instead. Cost ``O(size^dim c_in c_out^2)`` flops plus
    ``O(dim size c_out^3)`` for the QR factorisations.
    """
    s, ci, co, d, g = _check_orthogonal_args(size, c_in, c_out, dim, gain)
    return _orthogonal_kernel(s, ci, co, d, g, _rng(seed))


def delta_orthogonal_kernel(
    size: int,
    c_in: int,
    c_out: int,
    *,
    dim: int = 2,
    gain: float = 1.0,
    seed: SeedLike = None,
) -> FloatArray:
    """A Delta-Orthogonal kernel: zero except the centre, a scaled random isometry.

    Parameters
    ----------
    size, c_in, c_out, dim, gain, seed
        As for ``orthogonal_kernel`` (``1 <= c_in <= c_out``).

    Returns
    -------
    ndarray of float64, shape ``(size,) * dim + (c_in, c_out)``
        The centre holds ``gain * H_in`` with ``H_in`` the first ``c_in`` rows of a Haar
        orthogonal ``c_out x c_out`` matrix (``H_in H_in^T = I_{c_in}``); every ``K^(w)`` is
        that same matrix, so ``W^T W = gain^2 I`` on every image size.

    Raises
    ------
    MFTheoryError
        As ``orthogonal_kernel``.

    Notes
    -----
    docs/theory.md section 6 (Delta-Orthogonal: dynamical isometry with ``lambda_f = 1`` for every
    Fourier mode). With the same seed, ``orthogonal_kernel(1, ...)`` gives the same matrix.
    """
    s, ci, co, d, g = _check_orthogonal_args(size, c_in, c_out, dim, gain)
    kernel = np.zeros((s,) * d + (ci, co))
    kernel[(s // 2,) * d] = g * random_orthogonal(ci, co, _rng(seed))
    return kernel


def gaussian_kernel(
    v: ArrayLike | str,
    c_in: int,
    c_out: int,
    *,
    gain: float = 1.0,
    seed: SeedLike = None,
    size: int = 3,
    dim: int = 2,
) -> FloatArray:
    """A Gaussian kernel, ``K(b)[i, j] ~ N(0, gain^2 v_b / c_in)`` independently.

    Parameters
    ----------
    v : array_like or str
        Variance vector over kernel positions summing to 1 (odd sides, 1 to 3 dimensions), or
        a preset name / numeric text understood by ``mftheory.cnn.modes.variance_vector``.
    c_in, c_out : int
        Channels, ``>= 1`` (any order).
    gain : float
        ``sigma_w``, finite and ``>= 0``.
    seed : int, numpy Generator or None
        Randomness only through ``numpy.random.default_rng(seed)``.
    size, dim : int
        Kernel side and spatial dimensions for a preset name only (``"uniform"``, ``"delta"``,
        ``"gs0"``..``"gs4"``); an explicit ``v`` keeps its own shape.

    Returns
    -------
    ndarray of float64, shape ``v.shape + (c_in, c_out)``

    Raises
    ------
    MFTheoryError
        Invalid ``v`` or unknown preset; ``v`` not summing to 1 (within 1e-10); channels
        ``< 1``; bad gain or seed.

    Notes
    -----
    docs/theory.md section 1: ``w_ij(b) ~ N(0, sigma_w^2 v_b / c)`` with ``c = c_in`` (fan-in), so
    ``E sum_{b, i, j} K^2 = gain^2 c_out`` and ``kernel_sigma_w2`` estimates ``gain^2``.
    """
    if isinstance(v, str):
        arr = variance_vector(v, kernel=size, dim=dim)
    else:
        arr = check_variance_vector(v)
    total = float(arr.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise MFTheoryError(
            f"variance vector sums to {total:.12g}, not 1: rescale it with"
            " normalize_variance_vector (sigma_w2 absorbs the factor)"
        )
    ci = _check_int(c_in, "c_in (input channels)", 1)
    co = _check_int(c_out, "c_out (output channels)", 1)
    g = moderate_float(gain, "gain")
    std = g * np.sqrt(arr / ci)
    noise = _rng(seed).standard_normal((*arr.shape, ci, co))
    return np.asarray(noise * std[..., None, None], dtype=np.float64)


# --------------------------------------------------------------------------------------------
# The operator's spectrum
# --------------------------------------------------------------------------------------------


def _frequency_blocks(kernel: FloatArray, n: int) -> Iterator[ComplexArray]:
    """``K^(w)`` for every frequency ``w`` (row-major), a chunk of frequencies at a time.

    A direct DFT over the kernel positions: the phase ``exp(-2 pi i <w, b> / n)`` is computed
    from the integer ``<w, b> mod n``, so offsets equal mod ``n`` (a kernel wider than the
    image) get identical phases and fold exactly as on a circular image.
    """
    d = kernel.ndim - 2
    ci, co = kernel.shape[-2:]
    offsets = kernel_offsets(kernel.shape[:-2])  # (S, d)
    flat = kernel.reshape(offsets.shape[0], ci * co)
    total = n**d
    chunk = max(1, min(total, CHECK_CHUNK_BYTES // (16 * ci * co)))
    for start in range(0, total, chunk):
        idx = np.arange(start, min(start + chunk, total))
        freq = np.stack(np.unravel_index(idx, (n,) * d), axis=1).astype(np.int64)
        phase = np.mod(freq @ offsets.T, n)  # (chunk, S)
        e = np.exp((-2j * np.pi / n) * phase)
        yield (e @ flat).reshape(-1, ci, co)


def operator_singular_values(kernel: ArrayLike, n: int) -> FloatArray:
    """Singular values of the convolution operator on periodic images of side ``n``.

    Parameters
    ----------
    kernel : array_like
        Shape ``(size,) * dim + (c_in, c_out)`` (sides odd; unequal odd sides are accepted),
        real and finite, ``dim`` in 1..3.
    n : int
        Pixels per side of the circular image, ``>= 1``. Kernels wider than ``n`` wrap.

    Returns
    -------
    ndarray of float64, shape ``(n**dim, min(c_in, c_out))``
        Row ``r`` holds the singular values (descending) of ``K^(w)`` for the ``r``-th
        frequency ``w`` in row-major order over ``{0..n-1}^dim``; together they are the
        singular values of the ``(c_out n^dim) x (c_in n^dim)`` operator.

    Raises
    ------
    MFTheoryError
        Bad shape, even side, non-finite entry, ``n < 1``.

    Notes
    -----
    docs/theory.md section 6: ``K^(w) = sum_b K(b) exp(-2 pi i <w, b> / n)`` (the operator block at
    ``w`` is its transpose, with the same singular values). Batched
    ``numpy.linalg.svd(compute_uv=False)``, in chunks of at most 64 MiB of ``K^(w)``; cost
    ``O(n^dim (size^dim + min(c_in, c_out)) c_in c_out)``.
    """
    arr = _check_kernel(kernel)
    nn = _check_n(n)
    parts = [np.linalg.svd(block, compute_uv=False) for block in _frequency_blocks(arr, nn)]
    return np.asarray(np.concatenate(parts, axis=0), dtype=np.float64)


@dataclass(frozen=True)
class KernelCheck:
    """Whether a kernel is a scaled orthogonal operator on periodic images of several sizes.

    Attributes
    ----------
    n_values : tuple of int
        The image sides ``n`` checked.
    gain : float
        The gain compared against (given, or the median singular value).
    gain_estimated : bool
        True when ``gain`` is the median singular value rather than given.
    min_singular, max_singular : float
        Extremes of the singular values over every ``n`` and frequency.
    max_deviation : float
        ``max |sigma - gain|`` over every ``n``, frequency and singular value.
    max_gram_deviation : float
        Largest entry of ``|K^(w) K^(w)^H / gain^2 - I_{c_in}|`` over every ``n`` and ``w``
        (the ``c_out x c_in`` operator blocks' column Gram matrix); ``nan`` when ``gain = 0``.
    orthogonal : bool
        ``max_deviation <= tol``: every singular value equals the gain.
    columns_orthonormal : bool
        ``max_gram_deviation <= tol``: every operator block, divided by the gain, has
        orthonormal columns (``W^T W = gain^2 I``). Always false when ``c_in > c_out``.
    tol : float
        The absolute tolerance used.
    shape : tuple of int
        Shape of the kernel checked.

    Notes
    -----
    docs/theory.md section 6 (the FFT test of orthogonality).
    """

    n_values: tuple[int, ...]
    gain: float
    gain_estimated: bool
    min_singular: float
    max_singular: float
    max_deviation: float
    max_gram_deviation: float
    orthogonal: bool
    columns_orthonormal: bool
    tol: float
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (lists for tuples, ``None`` for non-finite numbers)."""
        return {
            "n_values": list(self.n_values),
            "gain": finite_or_none(self.gain),
            "gain_estimated": self.gain_estimated,
            "min_singular": finite_or_none(self.min_singular),
            "max_singular": finite_or_none(self.max_singular),
            "max_deviation": finite_or_none(self.max_deviation),
            "max_gram_deviation": finite_or_none(self.max_gram_deviation),
            "orthogonal": self.orthogonal,
            "columns_orthonormal": self.columns_orthonormal,
            "tol": self.tol,
            "shape": list(self.shape),
        }


def _default_n_values(kernel: FloatArray) -> list[int]:
    side = max(kernel.shape[:-2])
    top = CHECK_N_MAX_3D if kernel.ndim - 2 == 3 else CHECK_N_MAX
    return list(range(side, max(side, top) + 1))


def _check_n_values(n_values: Iterable[int]) -> list[int]:
    if isinstance(n_values, (int, np.integer)):
        return [_check_n(n_values)]
    try:
        values = [_check_n(n) for n in n_values]
    except TypeError:
        raise MFTheoryError(f"n_values must be a sequence of integers, got {n_values!r}") from None
    if not values:
        raise MFTheoryError("n_values is empty: give at least one image side n")
    return values


def check_kernel(
    kernel: ArrayLike,
    *,
    gain: float | None = None,
    n_values: Iterable[int] | None = None,
    tol: float = 1e-12,
) -> KernelCheck:
    """Check that a kernel's operator has every singular value equal to ``gain``, for many ``n``.

    Parameters
    ----------
    kernel : array_like
        Shape ``(size,) * dim + (c_in, c_out)``, real, finite, odd sides.
    gain : float or None
        The expected singular value (``sigma_w``, finite, ``>= 0``). Default: the median of
        all singular values found.
    n_values : iterable of int or None
        Image sides to check (each ``>= 1``; smaller than the kernel is allowed, it wraps).
        Default: every ``n`` from the largest kernel side to 64 in 1D and 2D, to 8 in 3D
        (``n^3`` SVDs per ``n``: 64 in 3D alone would be 262,144); just the side when it is
        larger than that.
    tol : float
        Absolute tolerance on ``|sigma - gain|`` and on the Gram matrix entries, ``>= 0``.

    Returns
    -------
    KernelCheck

    Raises
    ------
    MFTheoryError
        Invalid kernel, gain, ``n_values`` or ``tol``.

    Notes
    -----
    docs/theory.md section 6. Cost: ``sum_n n^dim`` SVDs of ``c_in x c_out`` matrices, about 87,000
    for the 2D default; for wide kernels (hundreds of channels) pass a few ``n_values``.
    """
    arr = _check_kernel(kernel)
    g_given = None if gain is None else moderate_float(gain, "gain")
    t = nonnegative_float(tol, "tol")
    ns = _default_n_values(arr) if n_values is None else _check_n_values(n_values)
    ci = arr.shape[-2]
    sigmas: list[FloatArray] = []
    off_max, diag_min, diag_max = 0.0, math.inf, -math.inf
    off_mask = ~np.eye(ci, dtype=bool)
    for n in ns:
        for block in _frequency_blocks(arr, n):
            sigmas.append(np.asarray(np.linalg.svd(block, compute_uv=False), dtype=np.float64))
            gram = block @ np.conj(np.swapaxes(block, -1, -2))  # (chunk, c_in, c_in)
            diag = np.einsum("kii->ki", gram).real
            diag_min = min(diag_min, float(diag.min()))
            diag_max = max(diag_max, float(diag.max()))
            if ci > 1:
                off_max = max(off_max, float(np.abs(gram[:, off_mask]).max()))
    values = np.concatenate([s.reshape(-1) for s in sigmas])
    g = float(np.median(values)) if g_given is None else g_given
    s_min, s_max = float(values.min()), float(values.max())
    deviation = max(abs(s_max - g), abs(s_min - g))
    g2 = g * g
    if g2 > 0:  # a gain whose square underflows has no usable Gram ratio either
        gram_dev = max(off_max / g2, abs(diag_max / g2 - 1.0), abs(diag_min / g2 - 1.0))
    else:
        gram_dev = math.nan
    columns_ok = bool(ci <= arr.shape[-1] and gram_dev <= t)  # False for nan
    return KernelCheck(
        n_values=tuple(ns),
        gain=g,
        gain_estimated=g_given is None,
        min_singular=s_min,
        max_singular=s_max,
        max_deviation=deviation,
        max_gram_deviation=gram_dev,
        orthogonal=bool(deviation <= t),
        columns_orthonormal=columns_ok,
        tol=t,
        shape=tuple(int(x) for x in arr.shape),
    )


# --------------------------------------------------------------------------------------------
# What a kernel implies for the mean-field theory
# --------------------------------------------------------------------------------------------


def kernel_variance_share(kernel: ArrayLike) -> FloatArray:
    """The share of the squared weights at each kernel position: the ``v`` a kernel implies.

    Parameters
    ----------
    kernel : array_like
        Shape ``(size,) * dim + (c_in, c_out)``, real, finite, not all zero.

    Returns
    -------
    ndarray of float64, shape ``kernel.shape[:-2]``
        ``v_b = sum_{i, j} K(b)[i, j]^2 / sum_{b', i, j} K(b')[i, j]^2`` (sums to 1).

    Raises
    ------
    MFTheoryError
        Invalid kernel, or all zeros.

    Notes
    -----
    docs/theory.md sections 1 and 4: for ``w_ij(b) ~ N(0, sigma_w^2 v_b / c)`` this estimates
    ``v``. For ``orthogonal_kernel`` its expectation is the binomial share (see there);
    for ``delta_orthogonal_kernel`` it is exactly the Delta vector.
    """
    arr = _check_kernel(kernel)
    per_position = np.sum(arr * arr, axis=(-2, -1))
    total = float(per_position.sum())
    if total == 0.0:
        raise MFTheoryError("kernel is all zeros: it has no variance share")
    return np.asarray(per_position / total, dtype=np.float64)


def kernel_sigma_w2(kernel: ArrayLike) -> float:
    """The fan-in-scaled weight variance ``sigma_w^2`` a kernel implies: ``sum K^2 / c_out``.

    Parameters
    ----------
    kernel : array_like
        Shape ``(size,) * dim + (c_in, c_out)``, real, finite.

    Returns
    -------
    float
        ``sum_{b, i, j} K(b)[i, j]^2 / c_out``.

    Raises
    ------
    MFTheoryError
        Invalid kernel.

    Notes
    -----
    docs/theory.md section 1: with ``w_ij(b) ~ N(0, sigma_w^2 v_b / c_in)`` and ``sum_b v_b = 1``,
    ``E sum_{b, i, j} w^2 = c_out c_in sigma_w^2 / c_in = sigma_w^2 c_out``, so this is an
    unbiased estimate of ``sigma_w^2`` (the pre-activation variance of each output channel is
    ``sigma_w^2`` times the input's). For an orthogonal or Delta-Orthogonal kernel of gain
    ``g``, the ``g = 0`` term of ``sum_b K(b) K(b + g)^T = g^2 delta_g I_{c_in}`` gives
    ``sum K^2 = g^2 c_in`` exactly, so the value is ``g^2 c_in / c_out``: ``g^2`` only when
    ``c_in = c_out`` (an isometry into more channels spreads its norm over them).
    """
    arr = _check_kernel(kernel)
    return float(np.sum(arr * arr) / arr.shape[-1])
