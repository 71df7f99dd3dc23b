"""Variance vectors over kernel positions, their Fourier eigenvalues, and per-mode depth scales.

A CNN's weights at kernel position ``b`` have variance ``sigma_w2 * v_b / c``. The operator
``A_v`` of the covariance map (``mftheory.cnn.spatial``) acts on every cyclic diagonal of the
pixel covariance as a circular cross-correlation with ``v``, so the discrete Fourier transform
diagonalises it, with eigenvalues

    lambda_f = sum_b v_b exp(2 pi i <f, b> / n),   f in {0..n-1}^d,  b centred on 0.

Near the fixed point the off-diagonal part of the covariance in mode ``f`` then decays like
``(chi_c * lambda_f)^l`` and the diagonal part like ``(chi_q * lambda_f)^l``; the per-mode depth
scale is ``xi_f = -1 / log(chi_c |lambda_f|)``.

Kernel positions are centred: a kernel of side ``2k + 1`` has offsets ``-k..k`` per dimension.
Even side lengths have no centre and are refused.

Notes
-----
docs/theory.md section 1 (the variance vector ``v``) and section 4 (Fourier modes, depth scales, the
GS0..GS4 interpolation between the Delta and the uniform kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.errors import MFTheoryError
from mftheory.meanfield.depth_scales import UNRESOLVED_NEAR_ONE
from mftheory.serialize import finite_or_none

__all__ = [
    "VARIANCE_VECTOR_PRESETS",
    "ModeTable",
    "check_variance_vector",
    "kernel_offsets",
    "mode_depth_scale",
    "mode_eigenvalues",
    "mode_table",
    "normalize_variance_vector",
    "variance_vector",
    "wrap_kernel",
]

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]
IntArray = NDArray[np.int64]

VARIANCE_VECTOR_PRESETS: tuple[str, ...] = ("delta", "uniform", "gs0", "gs1", "gs2", "gs3", "gs4")
"""Names accepted by ``variance_vector``."""

_MAX_DIM = 3
_SUM_TOL = 1e-10  # how far sum(v) may be from 1 where a normalised v is required
_IMAG_TOL = 1e-12  # |Im lambda| below this is reported as a real eigenvalue in JSON


# --------------------------------------------------------------------------------------------
# Variance vectors
# --------------------------------------------------------------------------------------------


def _check_kernel_dim(kernel: int, dim: int) -> None:
    if isinstance(kernel, bool) or not isinstance(kernel, (int, np.integer)):
        raise MFTheoryError(f"kernel size must be an integer, got {kernel!r}")
    if kernel < 1:
        raise MFTheoryError(f"kernel size must be at least 1, got {kernel}")
    if kernel % 2 == 0:
        raise MFTheoryError(
            f"kernel size {kernel} is even:"
            " kernel sizes must be odd so that the kernel has a centre"
        )
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise MFTheoryError(f"dim must be an integer, got {dim!r}")
    if not 1 <= dim <= _MAX_DIM:
        raise MFTheoryError(f"dim must be 1, 2 or 3 (spatial dimensions), got {dim}")


def _preset(name: str, kernel: int, dim: int) -> FloatArray:
    _check_kernel_dim(kernel, dim)
    shape = (int(kernel),) * int(dim)
    delta = np.zeros(shape)
    delta[(int(kernel) // 2,) * int(dim)] = 1.0
    uniform = np.full(shape, 1.0 / float(kernel) ** int(dim))
    if name == "delta":
        return delta
    if name == "uniform":
        return uniform
    j = int(name[2:])  # "gs0".."gs4"
    if j == 0:
        return delta
    if j == 4:
        return uniform
    return (1.0 - j / 4.0) * delta + (j / 4.0) * uniform


def _parse_entry(token: str) -> float:
    text = token.strip()
    try:
        return float(text)
    except ValueError:
        raise MFTheoryError(f"variance vector entry {text!r} is not a number") from None


def _parse_text(text: str) -> FloatArray:
    """Parse ``"a,b,c"`` (1D) or ``"a,b,c;d,e,f;g,h,i"`` (2D, rows split by ';')."""
    rows = text.split(";")
    parsed = [[_parse_entry(tok) for tok in row.split(",")] for row in rows]
    if len(rows) == 1:
        return np.asarray(parsed[0], dtype=np.float64)
    lengths = {len(r) for r in parsed}
    if len(lengths) != 1:
        raise MFTheoryError(
            f"variance vector rows have different lengths {[len(r) for r in parsed]} in {text!r}:"
            " every row split by ';' needs the same number of comma-separated entries"
        )
    return np.asarray(parsed, dtype=np.float64)


def _looks_numeric(text: str) -> bool:
    if "," in text or ";" in text:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_float_array(values: ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        reason = "ragged rows" if "inhomogeneous" in str(exc) else str(exc)
        raise MFTheoryError(
            f"variance vector {values!r} is not a rectangular array of numbers ({reason})"
        ) from None
    return arr


def check_variance_vector(v: ArrayLike | str, *, name: str = "variance vector") -> FloatArray:
    """Validate a variance vector and return it as a float array (not normalised).

    Parameters
    ----------
    v : array_like or str
        Non-negative, finite entries over kernel positions; 1 to 3 dimensions, every side of
        odd length, not all zero. Numeric text (``"1,2,1"``, ``"0,1,0;1,4,1;0,1,0"``) is
        parsed; preset names need ``variance_vector``.
    name : str
        How the value is called in error messages.

    Returns
    -------
    ndarray of float64
        ``v`` as a new float array, same shape.

    Raises
    ------
    MFTheoryError
        Empty, non-numeric, ragged, NaN/inf, negative, all-zero, even side length, or more
        than 3 dimensions.

    Notes
    -----
    docs/theory.md section 1: ``w_ij(b) ~ N(0, sigma_w^2 v_b / c)`` with ``v >= 0``.
    """
    if isinstance(v, str):
        text = v.strip()
        if not _looks_numeric(text):
            raise MFTheoryError(
                f"{name} {v!r} is not numeric text: build presets with"
                " variance_vector(name, kernel=..., dim=...)"
            )
        v = _parse_text(text)
    arr = np.array(_as_float_array(v), dtype=np.float64, copy=True)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size == 0:
        raise MFTheoryError(f"{name} is empty")
    if arr.ndim > _MAX_DIM:
        raise MFTheoryError(f"{name} has {arr.ndim} dimensions; only 1, 2 or 3 are supported")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise MFTheoryError(f"{name} entry {float(arr[idx])!r} at position {idx} is not finite")
    if (arr < 0).any():
        idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise MFTheoryError(
            f"{name} entry {float(arr[idx])!r} at position {idx} is negative:"
            " variances must be >= 0"
        )
    even = [s for s in arr.shape if s % 2 == 0]
    if even:
        raise MFTheoryError(
            f"{name} has shape {arr.shape}: side length {even[0]} is even; kernel sizes must be"
            " odd so that the kernel has a centre"
        )
    if not (arr > 0).any():
        raise MFTheoryError(f"{name} is all zeros: at least one kernel position needs variance")
    return arr


def variance_vector(spec: str | ArrayLike, *, kernel: int = 3, dim: int = 1) -> FloatArray:
    """Build a variance vector ``v`` over kernel positions from a preset name, text or array.

    Parameters
    ----------
    spec : str or array_like
        One of the presets (case-insensitive):

        - ``"delta"``: one-hot at the centre (the Delta / Delta-Orthogonal initialisation);
        - ``"uniform"``: ``1 / kernel**dim`` everywhere (the paper's default);
        - ``"gs0"`` .. ``"gs4"``: ``(1 - j/4) * delta + (j/4) * uniform``, so ``gs0`` is the
          delta and ``gs4`` the uniform vector.

        Or text: a comma list ``"0.025,0.95,0.025"`` (1D) or rows split by ``';'``
        (``"0,1,0;1,4,1;0,1,0"``, 2D). Or an array / nested list, passed through.
    kernel : int
        Side length of the kernel for the presets (odd, >= 1). Ignored for explicit values,
        whose own shape is kept.
    dim : int
        Number of spatial dimensions for the presets (1, 2 or 3). Ignored for explicit values.

    Returns
    -------
    ndarray of float64
        Shape ``(kernel,) * dim`` for a preset, the given shape otherwise. Presets sum to 1;
        explicit values are validated but *not* rescaled: use
        ``normalize_variance_vector`` (and tell the user) when they do not sum to 1.

    Raises
    ------
    MFTheoryError
        Unknown name, non-numeric entry, NaN/inf, negative entry, empty, ragged rows, even side
        length, all zeros, unsupported dimension, ``kernel < 1``.

    Notes
    -----
    docs/theory.md section 1 (``v``) and section 4 (the GS0..GS4 interpolation, which the paper
    defines for a 3x3 kernel; here any odd kernel size and dimension is allowed).

    Examples
    --------
    >>> variance_vector("gs2", kernel=3, dim=1)
    array([0.16666667, 0.66666667, 0.16666667])
    >>> variance_vector("0,1,0;1,4,1;0,1,0").shape
    (3, 3)
    """
    if isinstance(spec, str):
        text = spec.strip()
        key = text.lower()
        if key in VARIANCE_VECTOR_PRESETS:
            return _preset(key, kernel, dim)
        if not text:
            raise MFTheoryError("variance vector is empty")
        if not _looks_numeric(text):
            raise MFTheoryError(
                f"unknown variance vector {spec!r}: give one of"
                f" {', '.join(VARIANCE_VECTOR_PRESETS)}, a comma list such as 0.025,0.95,0.025,"
                " or rows split by ';' such as 0,1,0;1,4,1;0,1,0"
            )
        return check_variance_vector(_parse_text(text))
    return check_variance_vector(spec)


def normalize_variance_vector(v: ArrayLike) -> tuple[FloatArray, float]:
    """Rescale ``v`` to sum to 1, returning the rescaled vector and the original sum.

    Parameters
    ----------
    v : array_like
        A valid variance vector (see ``check_variance_vector``).

    Returns
    -------
    v_normalised : ndarray of float64
        ``v / sum(v)``.
    original_sum : float
        ``sum(v)`` before rescaling. Callers should tell the user when it is not 1, e.g.
        ``"v sums to S, not 1; rescaled to sum to 1 (sigma_w2 absorbs the factor)"``.

    Notes
    -----
    docs/theory.md section 1 requires ``sum_b v_b = 1``. A vector summing to ``S`` describes the
    same weight distribution as ``v / S`` with ``sigma_w2 * S`` in place of ``sigma_w2``, so
    rescaling changes the meaning of ``sigma_w2``, not the network; this is why the library
    never rescales silently.
    """
    arr = check_variance_vector(v)
    total = float(arr.sum())
    return arr / total, total


def _require_normalised(v: FloatArray) -> None:
    total = float(v.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise MFTheoryError(
            f"variance vector sums to {total:.12g}, not 1: rescale it with"
            " normalize_variance_vector (sigma_w2 absorbs the factor)"
        )


# --------------------------------------------------------------------------------------------
# Eigenvalues
# --------------------------------------------------------------------------------------------


def kernel_offsets(shape: Sequence[int]) -> IntArray:
    """Centred offsets ``b`` of every kernel position, shape ``(prod(shape), len(shape))``.

    Row-major order over the kernel array; a side of length ``2k + 1`` has offsets ``-k..k``.
    """
    grids = np.indices(tuple(int(s) for s in shape)).reshape(len(shape), -1).T
    centre = np.array([int(s) // 2 for s in shape], dtype=np.int64)
    return np.asarray(grids - centre, dtype=np.int64)


def wrap_kernel(v: FloatArray, n: int | Sequence[int]) -> FloatArray:
    """Fold ``v`` onto a periodic grid: ``P[m] = sum_{b = m mod n} v_b``.

    ``n`` is the side of a ``n^d`` image, or one side per dimension. Offsets are centred (see
    ``kernel_offsets``), so a kernel wider than the image wraps around it as it does on a
    circular image.
    """
    d = v.ndim
    shape = (int(n),) * d if isinstance(n, (int, np.integer)) else tuple(int(s) for s in n)
    offsets = kernel_offsets(v.shape)
    periodic = np.zeros(shape, dtype=np.float64)
    np.add.at(periodic, tuple((offsets % np.array(shape)).T), v.reshape(-1))
    return periodic


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise MFTheoryError(f"image side n must be an integer, got {n!r}")
    if n < 1:
        raise MFTheoryError(f"image side n must be at least 1, got {n}")
    return int(n)


def mode_eigenvalues(v: ArrayLike, n: int | Sequence[int]) -> tuple[IntArray, ComplexArray]:
    """Fourier eigenvalues ``lambda_f`` of ``A_v`` on images of side ``n``.

    Parameters
    ----------
    v : array_like
        Variance vector, ``d`` dimensions (1 to 3), odd side lengths. Used as given (not
        normalised): ``lambda_0 = sum(v)``.
    n : int or sequence of int
        Pixels per side of the (circular) image, ``>= 1``, or one side per dimension for a
        non-square image. The kernel may be wider than ``n``; it then wraps around.

    Returns
    -------
    frequency : ndarray of int64, shape ``(n**d, d)``
        Every frequency ``f in {0..n-1}^d`` (``prod(n)`` of them for per-dimension sides),
        row-major.
    lam : ndarray of complex128, shape ``(n**d,)``
        ``lambda_f`` for each row of ``frequency``. For a centro-symmetric ``v``
        (``v_b = v_{-b}``) the eigenvalues are real and the imaginary part is exactly 0.

    Notes
    -----
    docs/theory.md section 4:

        lambda_f = sum_b v_b exp(2 pi i <f, b> / n),   b centred on 0.

    Computed by folding ``v`` onto the periodic ``n^d`` grid and applying an unnormalised
    inverse FFT (numpy's ``ifftn`` carries the ``exp(+2 pi i ...)`` sign of this formula;
    ``norm="forward"`` drops its ``1/N``). Offsets equal modulo ``n`` are merged by the
    folding, so kernels wider than the image are handled exactly.
    """
    arr = check_variance_vector(v)
    d = arr.ndim
    if not isinstance(n, (tuple, list, np.ndarray)):
        shape = (_check_n(n),) * d  # an int (anything else is refused there)
    else:
        shape = tuple(_check_n(s) for s in n)
        if len(shape) != d:
            raise MFTheoryError(f"image sides {shape} do not match the {d}D variance vector")
    periodic = wrap_kernel(arr, shape)
    lam = np.asarray(np.fft.ifftn(periodic, norm="forward"), dtype=np.complex128).reshape(-1)
    flipped = arr[(slice(None, None, -1),) * d]
    if np.array_equal(arr, flipped):
        lam = lam.real.astype(np.complex128)
    frequency = np.indices(shape).reshape(d, -1).T.astype(np.int64)
    return frequency, lam


def mode_depth_scale(rate: ArrayLike) -> FloatArray:
    """Depth scale ``xi = -1 / log(rate)`` of a mode that shrinks by ``rate`` per layer.

    Parameters
    ----------
    rate : array_like
        Non-negative per-layer factors (``chi_c |lambda_f|`` or ``chi_q |lambda_f|``).

    Returns
    -------
    ndarray of float64
        ``0`` where ``rate == 0`` (gone after one layer), ``inf`` where ``rate >= 1`` (never
        decays) or within 8 ulp of 1 (not resolvable, as ``meanfield.depth_scale``), NaN
        for a negative or NaN rate, ``-1/log(rate)`` otherwise.

    Notes
    -----
    docs/theory.md section 4: ``xi_f = -1 / log(chi_c* |lambda_f|)``.
    """
    r = np.asarray(rate, dtype=np.float64)
    out = np.full(r.shape, np.inf)
    pos = (r > 0) & (r < 1 - UNRESOLVED_NEAR_ONE)
    out[pos] = -1.0 / np.log(r[pos])
    out[r == 0] = 0.0
    out[np.isnan(r) | (r < 0)] = np.nan
    return out


# --------------------------------------------------------------------------------------------
# Mode table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeTable:
    """Per-Fourier-mode eigenvalues, decay rates and depth scales, most persistent first.

    Attributes
    ----------
    frequency : ndarray of int64, shape ``(n**d, d)``
        Frequency ``f`` of each mode.
    lam : ndarray of complex128, shape ``(n**d,)``
        Eigenvalue ``lambda_f`` of ``A_v``.
    abs_lam : ndarray of float64
        ``|lambda_f|``.
    rate : ndarray of float64
        ``chi_c * |lambda_f|``: per-layer factor of the off-diagonal (correlation) part.
    xi : ndarray of float64
        ``-1 / log(rate)`` (``inf`` for ``rate >= 1``, ``0`` for ``rate == 0``).
    rate_q : ndarray of float64
        ``chi_q * |lambda_f|``: per-layer factor of the diagonal (variance) part.
    xi_q_f : ndarray of float64
        ``-1 / log(rate_q)``, same conventions.
    chi_c, chi_q : float
        Slopes of the C-map and q-map at the fixed point.
    n : int
        Pixels per image side.
    v : ndarray of float64
        The (normalised) variance vector.

    Notes
    -----
    Rows are sorted by descending ``|lambda_f|``; ties (within ``1e-12``) are broken by the
    frequency, lexicographically ascending, so ``f = 0`` (``lambda_0 = 1``) comes first.
    docs/theory.md section 4.
    """

    frequency: IntArray
    lam: ComplexArray
    abs_lam: FloatArray
    rate: FloatArray
    xi: FloatArray
    rate_q: FloatArray
    xi_q_f: FloatArray
    chi_c: float
    chi_q: float
    n: int
    v: FloatArray = field(repr=False)

    @property
    def dim(self) -> int:
        """Number of spatial dimensions ``d``."""
        return int(self.v.ndim)

    def __len__(self) -> int:
        return int(self.lam.shape[0])

    def as_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per mode, in table order.

        Keys: ``frequency`` (list of int), ``lambda`` (real part, float), ``lambda_imag``
        (only when ``|Im lambda_f| > 1e-12``; absent for a centro-symmetric ``v``, whose
        eigenvalues are real), ``abs_lambda``, ``rate``, ``xi``, ``rate_q``, ``xi_q``.
        Non-finite numbers (``xi = inf`` when ``rate >= 1``) become ``None``.
        """
        rows: list[dict[str, Any]] = []
        for i in range(len(self)):
            lam = complex(self.lam[i])
            row: dict[str, Any] = {
                "frequency": [int(x) for x in self.frequency[i]],
                "lambda": float(lam.real),
            }
            if abs(lam.imag) > _IMAG_TOL:
                row["lambda_imag"] = float(lam.imag)
            row["abs_lambda"] = float(self.abs_lam[i])
            row["rate"] = finite_or_none(float(self.rate[i]))
            row["xi"] = finite_or_none(float(self.xi[i]))
            row["rate_q"] = finite_or_none(float(self.rate_q[i]))
            row["xi_q"] = finite_or_none(float(self.xi_q_f[i]))
            rows.append(row)
        return rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary: ``n``, ``dim``, ``v`` (nested list), ``chi_c``, ``chi_q`` and
        ``modes`` (see ``as_rows``)."""
        return {
            "n": self.n,
            "dim": self.dim,
            "v": self.v.tolist(),
            "chi_c": finite_or_none(self.chi_c),
            "chi_q": finite_or_none(self.chi_q),
            "modes": self.as_rows(),
        }


def _check_chi(value: float, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise MFTheoryError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise MFTheoryError(
            f"{name} = {value!r} must be finite and >= 0 (no finite fixed point to expand around?)"
        )
    return x


def mode_table(v: ArrayLike, n: int, *, chi_c: float, chi_q: float) -> ModeTable:
    """Eigenvalues, per-layer decay rates and depth scales of every Fourier mode.

    Parameters
    ----------
    v : array_like
        Variance vector summing to 1 (use ``normalize_variance_vector`` first otherwise).
    n : int
        Pixels per image side.
    chi_c : float
        Slope of the C-map at the fixed point, ``chi_c*`` (docs/theory.md section 3).
    chi_q : float
        Slope of the q-map at the fixed point, ``chi_q*``.

    Returns
    -------
    ModeTable
        Sorted most persistent first (descending ``|lambda_f|``, ties by frequency).

    Raises
    ------
    MFTheoryError
        Invalid ``v`` or one that does not sum to 1 (within 1e-10), ``n < 1``, negative or
        non-finite ``chi_c``/``chi_q``.

    Notes
    -----
    docs/theory.md section 4: near the fixed point mode ``f`` of the covariance perturbation evolves
    as ``(chi_c* lambda_f)^l`` off the diagonal and ``(chi_q* lambda_f)^l`` on it, so

        xi_f = -1 / log(chi_c* |lambda_f|),   xi_c = xi_0 = -1 / log(chi_c*).

    Pure linear algebra: no fixed point is solved here.

    Examples
    --------
    For ``v = (1/4, 1/2, 1/4)`` on 10 pixels, ``lambda_f = 1/2 + cos(2 pi f / 10) / 2`` (the
    Fourier transform of ``v``), so mode 1 has ``|lambda_1| = 0.904508``:

    >>> t = mode_table([0.25, 0.5, 0.25], 10, chi_c=0.9, chi_q=0.5)
    >>> t.frequency[:3, 0].tolist(), t.abs_lam[:2].round(6).tolist()
    ([0, 1, 9], [1.0, 0.904508])
    >>> round(float(t.rate[1]), 6), round(float(t.xi[0]), 4)  # 0.9 * 0.904508, -1/log(0.9)
    (0.814058, 9.4912)
    """
    arr = check_variance_vector(v)
    _require_normalised(arr)
    chi_c_f = _check_chi(chi_c, "chi_c")
    chi_q_f = _check_chi(chi_q, "chi_q")
    frequency, lam = mode_eigenvalues(arr, n)
    abs_lam = np.abs(lam)
    # lexsort: last key is primary. Round |lambda| so that round-off does not split ties.
    keys = np.vstack([frequency[:, ::-1].T.astype(np.float64), -np.round(abs_lam, 12)])
    order = np.lexsort(keys)
    frequency, lam, abs_lam = frequency[order], lam[order], abs_lam[order]
    rate = chi_c_f * abs_lam
    rate_q = chi_q_f * abs_lam
    return ModeTable(
        frequency=frequency,
        lam=lam,
        abs_lam=abs_lam,
        rate=rate,
        xi=mode_depth_scale(rate),
        rate_q=rate_q,
        xi_q_f=mode_depth_scale(rate_q),
        chi_c=chi_c_f,
        chi_q=chi_q_f,
        n=int(n),
        v=arr,
    )
