"""Inputs of ``mftheory.montecarlo.simulate_ensemble``: validated, turned into a plan.

The starting input (a Gaussian ``Sigma0`` or raw ``images``), the control's covariance
``Sigma*`` and the variance vector are checked here, and ``make_plan`` gathers them, with
the principal square roots the sampler draws from, into an
``mftheory.montecarlo.sampler.EnsemblePlan``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import get_activation
from mftheory.cnn.modes import check_variance_vector
from mftheory.cnn.spatial import uniform_fixed_covariance
from mftheory.errors import MFTheoryError
from mftheory.montecarlo.backends import NumpyOps, drop_roundoff
from mftheory.montecarlo.sampler import EnsemblePlan, apply_A_batched

__all__ = [
    "StartInput",
    "checked_variance_vector",
    "control_covariance",
    "make_plan",
    "principal_root",
    "start_input",
]

FloatArray = NDArray[np.float64]

_SUM_TOL = 1e-10  # how far sum(v) may be from 1
_SYM_TOL = 1e-10  # relative asymmetry tolerated in Sigma0 / Sigma_star
_PSD_TOL = 1e-8  # relative negative eigenvalue tolerated in Sigma0 / Sigma_star (round-off)
_MAX_RECORD_BYTES = 2 * 1024**3  # the (L, M, M) records together may not exceed ~2 GB


def checked_variance_vector(v: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    """``v`` as an array with one dimension per image dimension, summing to 1 (within 1e-10)."""
    arr = check_variance_vector(v)
    if arr.ndim != len(shape):
        raise MFTheoryError(
            f"variance vector has {arr.ndim} dimension(s) (shape {arr.shape}) but images have"
            f" {len(shape)} (image_shape {shape})"
        )
    total = float(arr.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise MFTheoryError(
            f"variance vector sums to {total:.12g}, not 1: rescale it with"
            " normalize_variance_vector (sigma_w2 absorbs the factor)"
        )
    return arr


def _finite_array(value: ArrayLike, name: str) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise MFTheoryError(f"{name} must be an array of real numbers") from None
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise MFTheoryError(f"{name}{list(idx)} = {arr[idx]} is not finite")
    return arr


def _covariance_matrix(value: ArrayLike, name: str, size: int | None, n_pix: int) -> FloatArray:
    """Validate the shape, finiteness and symmetry of a covariance (cheap checks only)."""
    s = _finite_array(value, name)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise MFTheoryError(f"{name} must be a non-empty square matrix, got shape {s.shape}")
    m = s.shape[0]
    if size is None and m % n_pix != 0:
        raise MFTheoryError(
            f"{name} is {m} x {m}: {m} is not a multiple of the {n_pix} pixels of one image"
        )
    if size is not None and m != size:
        raise MFTheoryError(
            f"{name} must be {size} x {size} (batch x pixels, as the input), got {m} x {m}"
        )
    scale = max(float(np.max(np.abs(s))), np.finfo(np.float64).tiny)
    if float(np.max(np.abs(s - s.T))) > _SYM_TOL * scale:
        raise MFTheoryError(f"{name} is not symmetric: not a covariance")
    return 0.5 * (s + s.T)


def principal_root(s: FloatArray, name: str) -> FloatArray:
    """The principal (symmetric) square root of a positive semi-definite matrix."""
    w, vec = np.linalg.eigh(s)
    if float(w[0]) < -_PSD_TOL * max(float(np.max(np.abs(w))), np.finfo(np.float64).tiny):
        raise MFTheoryError(
            f"{name} has a negative eigenvalue {float(w[0]):.6g}: not positive semi-definite,"
            " so not a covariance"
        )
    # Eigenvalues at round-off level are set to 0 (their square roots would otherwise add
    # noise of relative size sqrt(eps) to a rank-deficient root). The principal root is
    # continuous in the matrix, so the roots of two nearby covariances are nearby: that is
    # what makes common random numbers for the main and the control input work.
    root = (vec * np.sqrt(drop_roundoff(w, np))) @ vec.T
    return np.asarray(root, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class StartInput:
    """The validated starting input: ``Sigma0`` (start a) or the images' pixels (start b).

    Attributes
    ----------
    sigma0 : ndarray, shape ``(M, M)``, or None
        Symmetrised ``Sigma0``.
    pixels : ndarray, shape ``(c_in, M)``, or None
        The images' pixels in (image, pixel) order.
    c_in : int
        Input channels (the width ``c`` for start a).
    M : int
        (image, pixel) pairs of the main input.
    """

    sigma0: FloatArray | None
    pixels: FloatArray | None
    c_in: int
    M: int


def start_input(
    Sigma0: ArrayLike | None,
    images: ArrayLike | None,
    shape: tuple[int, ...],
    n_pix: int,
    channels: int,
) -> StartInput:
    """Check that exactly one start is given, and validate it (see ``simulate_ensemble``)."""
    if (Sigma0 is None) == (images is None):
        which = "both" if Sigma0 is not None else "neither"
        raise MFTheoryError(
            f"give exactly one of Sigma0 (a Gaussian input) and images (raw input); got {which}"
        )
    if Sigma0 is not None:
        sigma0 = _covariance_matrix(Sigma0, "Sigma0", None, n_pix)
        return StartInput(sigma0=sigma0, pixels=None, c_in=channels, M=sigma0.shape[0])
    assert images is not None
    img = _finite_array(images, "images")
    if img.ndim != 2 + len(shape) or tuple(img.shape[2:]) != shape or 0 in img.shape[:2]:
        raise MFTheoryError(
            f"images must have shape (B, c_in, {', '.join(map(str, shape))}) for"
            f" image_shape {shape}, got {img.shape}"
        )
    c_in = int(img.shape[1])
    M = int(img.shape[0]) * n_pix
    # (B, c_in, *shape) -> (c_in, B * N): the pixels of every image, (image, pixel) order.
    pixels = np.ascontiguousarray(np.moveaxis(img, 1, 0).reshape(c_in, M))
    return StartInput(sigma0=None, pixels=pixels, c_in=c_in, M=M)


def control_covariance(
    Sigma_star: ArrayLike | None,
    q_star: float | None,
    c_star: float | None,
    M: int,
    n_pix: int,
) -> FloatArray | None:
    """The control input's covariance from ``Sigma_star`` or ``(q_star, c_star)``; None."""
    star_given = q_star is not None or c_star is not None
    if Sigma_star is not None and star_given:
        raise MFTheoryError("give Sigma_star or q_star/c_star for the control, not both")
    if star_given and (q_star is None or c_star is None):
        raise MFTheoryError("the control needs both q_star and c_star")
    if Sigma_star is not None:
        return _covariance_matrix(Sigma_star, "Sigma_star", M, n_pix)
    if q_star is not None and c_star is not None:
        return uniform_fixed_covariance(q_star, c_star, M)
    return None


def make_plan(
    start: StartInput,
    star: FloatArray | None,
    *,
    shape: tuple[int, ...],
    n_pix: int,
    channels: int,
    depth: int,
    sigma_w2: float,
    sigma_b2: float,
    v: FloatArray,
    method: str,
) -> EnsemblePlan:
    """The plan of a run: sizes checked, principal roots of the input covariances computed.

    Raises ``MFTheoryError`` when the records would exceed ~2 GB or a covariance is not
    positive semi-definite.
    """
    M = start.M
    records = depth + 1 if start.sigma0 is not None else depth
    n_arrays = 4 if star is not None else 2  # mean and squared deviations of each statistic
    need = n_arrays * records * M * M * 8
    if need > _MAX_RECORD_BYTES:
        raise MFTheoryError(
            f"the records would need {need / 1024**3:.1f} GiB ({records} layers of {M} x {M}"
            " matrices): use fewer images, smaller images or a smaller depth"
        )
    root0 = None if start.sigma0 is None else principal_root(start.sigma0, "Sigma0")
    root_star = None if star is None else principal_root(star, "Sigma_star")
    images_total = (M // n_pix) * (2 if root_star is not None else 1)
    plan = EnsemblePlan(
        shape=shape,
        images_total=images_total,
        M=M,
        P=images_total * n_pix,
        channels=channels,
        depth=depth,
        sigma_w2=sigma_w2,
        sigma_b2=sigma_b2,
        v=v,
        method=method,
        root0=root0,
        root_star=root_star,
        images=start.pixels,
        root1=None,
    )
    pixels = start.pixels
    if pixels is not None and method == "gram":
        one = NumpyOps(get_activation("linear"), 0, 1)
        plan_b = replace(plan, images_total=M // n_pix, P=M)
        gx = (pixels.T @ pixels / start.c_in)[None]
        cov1 = sigma_w2 * apply_A_batched(one, plan_b, gx)[0] + sigma_b2
        root1 = principal_root(0.5 * (cov1 + cov1.T), "the layer-1 covariance")
        plan = replace(plan, root1=root1)
    return plan
