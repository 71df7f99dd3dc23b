"""The spatial covariance map of a CNN, ``Sigma^{l+1} = A_v * C(Sigma^l)``.

Pixels of a ``d``-dimensional image (``d = 1, 2`` or 3) with shape ``image_shape`` (usually
``(n,) * d``) are flattened row-major into ``N = prod(image_shape)`` indices; boundaries are
circular. A batch of ``B`` images is a covariance of shape ``(B*N, B*N)`` ordered
(image, pixel): ``C`` acts entry by entry and ``A_v`` shifts the pixel index on both sides by
the same offset.

Notes
-----
docs/theory.md section 2 (the map), section 3 (its spatially uniform fixed point) and section 4
(``A_v`` is diagonalised by the discrete Fourier transform along each cyclic diagonal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.checks import nonnegative_float
from mftheory.cnn.modes import _require_normalised, check_variance_vector, wrap_kernel
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import pair_expectation, second_moment
from mftheory.gaussian.quadrature import QuadratureSettings

__all__ = [
    "apply_A",
    "c_transform",
    "check_image_shape",
    "covariance_map",
    "iterate_covariance_map",
    "uniform_fixed_covariance",
]

FloatArray = NDArray[np.float64]

_SYM_TOL = 1e-10  # relative asymmetry tolerated in Sigma (round-off of the caller's arithmetic)
_RHO_TOL = 1e-8  # how far |Sigma_ab| may exceed sqrt(Sigma_aa Sigma_bb) before it is an error
_PAIR_BLOCK = 8192  # (q1, q2, rho) triples per call of pair_expectation: bounds the memory


def check_image_shape(image_shape: int | Sequence[int]) -> tuple[int, ...]:
    """Validate an image shape and return it as a tuple of ints.

    Parameters
    ----------
    image_shape : int or sequence of int
        Pixels per side: an int is a 1D image; 1 to 3 dimensions, every side ``>= 1``.

    Returns
    -------
    tuple of int

    Raises
    ------
    MFTheoryError
        Not an int or a sequence of ints, fewer than 1 or more than 3 dimensions, or a side
        smaller than 1.
    """
    if isinstance(image_shape, bool) or isinstance(image_shape, (str, bytes)):
        raise MFTheoryError(f"image_shape must be an int or a tuple of ints, got {image_shape!r}")
    if isinstance(image_shape, (int, np.integer)):
        shape: tuple[int, ...] = (int(image_shape),)
    else:
        try:
            shape = tuple(int(s) for s in image_shape)
        except (TypeError, ValueError):
            raise MFTheoryError(
                f"image_shape must be an int or a tuple of ints, got {image_shape!r}"
            ) from None
    if not 1 <= len(shape) <= 3:
        raise MFTheoryError(f"image_shape {shape} must have 1, 2 or 3 dimensions")
    if any(s < 1 for s in shape):
        raise MFTheoryError(f"image_shape {shape} has a side smaller than 1")
    return shape


def _square_matrix(m: ArrayLike, name: str) -> NDArray[np.float64] | NDArray[np.complex128]:
    arr = np.asarray(m)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise MFTheoryError(f"{name} must be a numeric matrix, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise MFTheoryError(f"{name} must be a non-empty square matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise MFTheoryError(f"{name}{list(idx)} = {arr[idx]} is not finite")
    if np.iscomplexobj(arr):
        return np.asarray(arr, dtype=np.complex128)
    return np.asarray(arr, dtype=np.float64)


def _batch_size(size: int, shape: tuple[int, ...], name: str) -> int:
    n_pix = math.prod(shape)
    if size % n_pix != 0:
        raise MFTheoryError(
            f"{name} has {size} rows, not a multiple of the {n_pix} pixels of image_shape {shape}"
        )
    return size // n_pix


def _check_v_for_image(v: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    arr = check_variance_vector(v)
    if arr.ndim != len(shape):
        raise MFTheoryError(
            f"variance vector has {arr.ndim} dimension(s) (shape {arr.shape}) but images have"
            f" {len(shape)} (image_shape {shape})"
        )
    return arr


def apply_A(
    v: ArrayLike,
    M: ArrayLike,
    *,
    image_shape: int | Sequence[int],
) -> NDArray[np.float64] | NDArray[np.complex128]:
    """Apply the convolution operator ``A_v`` to a pixel-pixel matrix.

    Parameters
    ----------
    v : array_like
        Variance vector over kernel positions, as many dimensions as the image, odd sides
        (centred offsets). Used as given: not normalised (``A_v`` is linear in ``v``).
    M : array_like, shape ``(B*N, B*N)``
        Real or complex matrix over (image, pixel) pairs, ``N = prod(image_shape)``, pixels
        flattened row-major. Need not be symmetric.
    image_shape : int or tuple of int
        Pixels per side, e.g. ``(n,)`` or ``(n, n)``; an int means a 1D image.

    Returns
    -------
    ndarray, shape ``(B*N, B*N)``
        ``A_v * M``, float (complex for complex ``M``).

    Raises
    ------
    MFTheoryError
        Invalid ``v``, ``v`` with a different number of dimensions than the image, ``M`` not
        square, not finite, or not a whole number of images.

    Notes
    -----
    docs/theory.md section 2:

        (A_v * M)_{a,a'} = sum_b v_b M_{a+b, a'+b}     (indices mod n per dimension)

    with the same shift ``b`` on both pixel indices (and on every image of a batch). Kernel
    offsets that coincide modulo the image side are merged first, so the cost is
    ``O(min(K, N) * (B N)^2)`` for ``K`` kernel positions. On each cyclic diagonal
    ``M_{a, a+t}`` this is a circular cross-correlation with ``v``, so Fourier mode ``f`` of the
    diagonal is multiplied by ``lambda_f`` (``mftheory.cnn.modes.mode_eigenvalues``).
    """
    shape = check_image_shape(image_shape)
    varr = _check_v_for_image(v, shape)
    mat = _square_matrix(M, "M")
    batch = _batch_size(mat.shape[0], shape, "M")
    d = len(shape)
    periodic = wrap_kernel(varr, shape)
    tensor = mat.reshape((batch, *shape, batch, *shape))
    axes = tuple(range(1, d + 1)) + tuple(range(d + 2, 2 * d + 2))
    out = np.zeros_like(tensor)
    for m in np.argwhere(periodic > 0):
        # np.roll(x, s)[i] = x[i - s]: shift by -m to read M at a + m (mod n).
        shift = tuple(int(-x) for x in m) * 2
        out += periodic[tuple(m)] * np.roll(tensor, shift, axis=axes)
    return out.reshape(mat.shape)


def _as_activation(act: Activation | str) -> Activation:
    return get_activation(act) if isinstance(act, str) else act


def _check_covariance(sigma: ArrayLike, name: str = "Sigma") -> FloatArray:
    mat = _square_matrix(sigma, name)
    if np.iscomplexobj(mat):
        raise MFTheoryError(f"{name} must be real, got a complex matrix")
    s = np.asarray(mat, dtype=np.float64)
    diag = np.diag(s)
    if (diag < 0).any():
        a = int(np.argmax(diag < 0))
        raise MFTheoryError(
            f"{name}[{a}, {a}] = {float(diag[a])!r} is a negative variance: not a covariance"
        )
    scale = max(float(np.max(np.abs(s))), np.finfo(np.float64).tiny)
    asym = np.abs(s - s.T)
    if float(asym.max()) > _SYM_TOL * scale:
        a, b = (int(i) for i in np.unravel_index(int(np.argmax(asym)), asym.shape))
        raise MFTheoryError(
            f"{name} is not symmetric: {name}[{a}, {b}] = {float(s[a, b])!r} but"
            f" {name}[{b}, {a}] = {float(s[b, a])!r}"
        )
    return s


def c_transform(
    act: Activation | str,
    Sigma: ArrayLike,
    *,
    sigma_w2: float,
    sigma_b2: float,
    settings: QuadratureSettings | None = None,
) -> FloatArray:
    """Apply the pointwise map ``C`` to a pixel covariance.

    Parameters
    ----------
    act : Activation or str
        The nonlinearity ``phi`` (a name is looked up with ``get_activation``).
    Sigma : array_like, shape ``(M, M)``
        Symmetric covariance of the pre-activations with a non-negative diagonal (any
        ordering of pixels and images: ``C`` acts on each 2x2 marginal separately).
    sigma_w2, sigma_b2 : float
        Weight and bias *variances*.
    settings : QuadratureSettings, optional
        Numerical settings of the Gaussian integrals.

    Returns
    -------
    ndarray of float64, shape ``(M, M)``
        ``C(Sigma)``, exactly symmetric.

    Raises
    ------
    MFTheoryError
        ``Sigma`` not square, not finite, not symmetric (beyond ``1e-10`` relative), with a
        negative diagonal entry, or an off-diagonal entry larger than
        ``sqrt(Sigma_aa Sigma_bb)`` beyond round-off; negative or non-finite variances.

    Notes
    -----
    docs/theory.md section 2:

        C(Sigma)_{a,a'} = sigma_w^2 E[phi(h_a) phi(h_a')] + sigma_b^2,   h ~ N(0, Sigma)

    Each entry needs only the 2x2 marginal: variances ``q1 = Sigma_aa``, ``q2 = Sigma_a'a'``
    and correlation ``rho = Sigma_aa' / sqrt(q1 q2)`` (clipped to [-1, 1]; 0 where ``q1`` or
    ``q2`` is 0). Only the upper triangle is integrated, and identical ``(q1, q2, rho)``
    triples once each (a spatially uniform covariance needs two integrals, not ``N^2 / 2``),
    in blocks of 8192 to bound the memory of the integrator.
    The diagonal uses the one-dimensional second moment ``E[phi(sqrt(q) z)^2]``.
    """
    activation = _as_activation(act)
    s = _check_covariance(Sigma)
    w2 = nonnegative_float(sigma_w2, "sigma_w2")
    b2 = nonnegative_float(sigma_b2, "sigma_b2")
    size = s.shape[0]
    q = np.diag(s).copy()
    out = np.empty_like(s)

    q_unique, q_inv = np.unique(q, return_inverse=True)
    diag_e = np.asarray(second_moment(activation, q_unique, settings=settings), dtype=np.float64)
    out[np.diag_indices(size)] = w2 * diag_e[q_inv.reshape(-1)] + b2

    if size > 1:
        iu, ju = np.triu_indices(size, k=1)
        q1, q2, cov = q[iu], q[ju], s[iu, ju]
        denom = np.sqrt(q1 * q2)
        zero = denom == 0
        rho = np.where(zero, 0.0, cov / np.where(zero, 1.0, denom))
        over = np.abs(rho) > 1.0 + _RHO_TOL
        if over.any():
            k = int(np.argmax(over))
            raise MFTheoryError(
                f"Sigma[{iu[k]}, {ju[k]}] = {float(cov[k])!r} exceeds"
                f" sqrt(Sigma[{iu[k]}, {iu[k]}] * Sigma[{ju[k]}, {ju[k]}]) = {float(denom[k])!r}:"
                " not a covariance (correlation above 1)"
            )
        rho = np.clip(rho, -1.0, 1.0)
        # E[phi(u1) phi(u2)] is symmetric under swapping u1 and u2: order the pair to merge more.
        lo, hi = np.minimum(q1, q2), np.maximum(q1, q2)
        triples = np.stack([lo, hi, rho], axis=1)
        uniq, inv = np.unique(triples, axis=0, return_inverse=True)
        pair_e = np.empty(uniq.shape[0])
        for start in range(0, uniq.shape[0], _PAIR_BLOCK):
            blk = uniq[start : start + _PAIR_BLOCK]
            pair_e[start : start + _PAIR_BLOCK] = pair_expectation(
                activation, blk[:, 0], blk[:, 1], blk[:, 2], settings=settings
            )
        vals = w2 * pair_e[inv.reshape(-1)] + b2
        out[iu, ju] = vals
        out[ju, iu] = vals
    return out


def covariance_map(
    act: Activation | str,
    Sigma: ArrayLike,
    v: ArrayLike,
    *,
    image_shape: int | Sequence[int],
    sigma_w2: float,
    sigma_b2: float,
    settings: QuadratureSettings | None = None,
) -> FloatArray:
    """One layer of the CNN covariance map, ``A_v * C(Sigma)``.

    Parameters
    ----------
    act : Activation or str
        The nonlinearity.
    Sigma : array_like, shape ``(B*N, B*N)``
        Covariance over (image, pixel) pairs, ``N = prod(image_shape)``.
    v : array_like
        Variance vector summing to 1 (within 1e-10), as many dimensions as the image.
    image_shape : int or tuple of int
        Pixels per side.
    sigma_w2, sigma_b2 : float
        Weight and bias variances.
    settings : QuadratureSettings, optional
        Numerical settings of the Gaussian integrals.

    Returns
    -------
    ndarray of float64, shape ``(B*N, B*N)``
        ``Sigma^{l+1}``.

    Raises
    ------
    MFTheoryError
        As ``apply_A`` and ``c_transform``, and when ``v`` does not sum to 1: the bias
        term ``sigma_b^2`` passes through ``A_v`` as ``sum(v) * sigma_b^2``, so only a
        normalised ``v`` describes the network (rescale with
        ``mftheory.cnn.modes.normalize_variance_vector``; ``sigma_w2`` absorbs the factor).

    Notes
    -----
    docs/theory.md section 2: ``Sigma^{l+1} = A_v * C(Sigma^l)``.
    """
    shape = check_image_shape(image_shape)
    varr = _check_v_for_image(v, shape)
    _require_normalised(varr)
    s = _check_covariance(Sigma)
    _batch_size(s.shape[0], shape, "Sigma")
    c = c_transform(act, s, sigma_w2=sigma_w2, sigma_b2=sigma_b2, settings=settings)
    return np.asarray(apply_A(varr, c, image_shape=shape), dtype=np.float64)


@overload
def iterate_covariance_map(
    act: Activation | str,
    Sigma0: ArrayLike,
    v: ArrayLike,
    *,
    image_shape: int | Sequence[int],
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    settings: QuadratureSettings | None = ...,
    record: Literal[False] = ...,
) -> FloatArray: ...


@overload
def iterate_covariance_map(
    act: Activation | str,
    Sigma0: ArrayLike,
    v: ArrayLike,
    *,
    image_shape: int | Sequence[int],
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    settings: QuadratureSettings | None = ...,
    record: Literal[True],
) -> tuple[FloatArray, FloatArray]: ...


def iterate_covariance_map(
    act: Activation | str,
    Sigma0: ArrayLike,
    v: ArrayLike,
    *,
    image_shape: int | Sequence[int],
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    settings: QuadratureSettings | None = None,
    record: bool = False,
) -> FloatArray | tuple[FloatArray, FloatArray]:
    """Apply ``covariance_map`` ``depth`` times.

    Parameters
    ----------
    act, Sigma0, v, image_shape, sigma_w2, sigma_b2, settings
        As ``covariance_map``; ``Sigma0`` is the input-layer covariance.
    depth : int
        Number of layers, ``>= 0``.
    record : bool
        Also return every layer.

    Returns
    -------
    Sigma : ndarray of float64, shape ``(B*N, B*N)``
        ``Sigma^depth``.
    history : ndarray of float64, shape ``(depth + 1, B*N, B*N)``
        Only with ``record=True``: ``Sigma^0 .. Sigma^depth``.

    Raises
    ------
    MFTheoryError
        Invalid input (see ``covariance_map``), ``depth < 0``, or a covariance that stops
        being finite (an unbounded activation above its divergence line).

    Notes
    -----
    docs/theory.md section 2 (the map) and section 4 (near the uniform fixed point, mode ``f`` of a
    perturbation shrinks by ``chi_c* lambda_f`` off the diagonal per layer).
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise MFTheoryError(f"depth must be an integer >= 0, got {depth!r}")
    sigma = _check_covariance(Sigma0, "Sigma0")
    history = [sigma] if record else []
    for layer in range(1, int(depth) + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            sigma = covariance_map(
                act,
                sigma,
                v,
                image_shape=image_shape,
                sigma_w2=sigma_w2,
                sigma_b2=sigma_b2,
                settings=settings,
            )
        if not np.isfinite(sigma).all():
            raise MFTheoryError(
                f"covariance stopped being finite at layer {layer}: the variance diverges"
                " (unbounded activation above its critical line?)"
            )
        if record:
            history.append(sigma)
    if record:
        return sigma, np.stack(history)
    return sigma


def uniform_fixed_covariance(q_star: float, c_star: float, N: int) -> FloatArray:
    """The spatially uniform covariance ``q* [(1 - c*) I + c* 11^T]``.

    Parameters
    ----------
    q_star : float
        Fixed-point variance, finite and ``>= 0``.
    c_star : float
        Fixed-point correlation in ``[-1, 1]``.
    N : int
        Number of pixels (times images), ``>= 1``.

    Returns
    -------
    ndarray of float64, shape ``(N, N)``
        ``q*`` on the diagonal, ``q* c*`` off it.

    Notes
    -----
    docs/theory.md section 3: the fixed point of the CNN map is spatially uniform and is the same
    as the fully-connected one.

    Examples
    --------
    >>> uniform_fixed_covariance(2.0, 0.5, 3)
    array([[2., 1., 1.],
           [1., 2., 1.],
           [1., 1., 2.]])
    """
    q = nonnegative_float(q_star, "q_star")
    try:
        c = float(c_star)
    except (TypeError, ValueError):
        raise MFTheoryError(f"c_star must be a number, got {c_star!r}") from None
    if not (math.isfinite(c) and -1.0 <= c <= 1.0):
        raise MFTheoryError(f"c_star must be a correlation in [-1, 1], got {c_star!r}")
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise MFTheoryError(f"N must be an integer >= 1, got {N!r}")
    out = np.full((int(N), int(N)), q * c)
    np.fill_diagonal(out, q)
    return out
