"""Reading the images that ``propagate`` and ``simulate`` take (``--image``, repeatable).

* ``.npy``: used exactly as stored. Shape ``(n,)`` is a 1D image, ``(h, w)`` a 2D grayscale
  image, ``(channels, h, w)`` a 2D image with channels; with ``--dim 1`` a 2D array is
  ``(channels, n)``.
* ``.png``: 2D; grayscale or RGB (an alpha channel is dropped, with a note). PNG stores
  intensities on a 0..2^bits - 1 scale; they are read as intensities in [0, 1]
  (value / 255 for 8-bit files), the format's own meaning, with no other change.

* ``sample:NAME``: an image shipped inside the package (:data:`SAMPLES`), so that the examples
  run without any file: ``sample:digit0`` is an 8x8 handwritten zero (the first of
  scikit-learn's digits, intensities / 16 in [0, 1]).

``--normalize standardize`` then shifts and scales each image to mean 0 and variance 1 over
its pixels and channels; the default, ``none``, uses the values as read.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mftheory.errors import MFTheoryError

__all__ = ["NORMALIZATIONS", "SAMPLES", "SAMPLE_PREFIX", "load_images", "sample_image"]

NORMALIZATIONS = ("none", "standardize")

#: ``--image sample:NAME``: the images shipped in ``mftheory/data`` (name -> file, description).
SAMPLE_PREFIX = "sample:"
SAMPLES: dict[str, tuple[str, str]] = {
    "digit0": ("digit0.npy", "an 8x8 handwritten zero (scikit-learn's first digit, in [0, 1])"),
}


def sample_image(name: str) -> NDArray[np.float64]:
    """The shipped sample image ``name`` (a key of :data:`SAMPLES`) as stored.

    Raises
    ------
    MFTheoryError
        ``name`` is not a shipped sample.
    """
    if name not in SAMPLES:
        raise MFTheoryError(
            f"--image {SAMPLE_PREFIX}{name}: no such sample image; the samples are"
            f" {', '.join(SAMPLE_PREFIX + key for key in SAMPLES)}"
        )
    resource = importlib.resources.files("mftheory").joinpath("data", SAMPLES[name][0])
    with resource.open("rb") as handle:
        return np.asarray(np.load(handle, allow_pickle=False), dtype=np.float64)


def _read_png(path: Path) -> tuple[NDArray[np.float64], list[str]]:
    from PIL import Image, UnidentifiedImageError

    notes: list[str] = []
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64) / 65535.0
                return arr[None], notes
            if mode in ("RGBA", "LA", "PA"):
                notes.append(f"{path}: alpha channel dropped")
            if mode == "1":
                return np.asarray(img.convert("L"), dtype=np.float64)[None] / 255.0, notes
            if mode in ("L", "LA"):
                arr = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
                return arr[None], notes
            arr = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
            return np.moveaxis(arr, -1, 0), notes
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MFTheoryError(f"--image {str(path)!r} is not a readable PNG: {exc}") from None


def _read_npy(path: Path, dim: int | None) -> NDArray[np.float64]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MFTheoryError(f"--image {str(path)!r} is not a readable .npy file: {exc}") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise MFTheoryError(f"--image {str(path)!r} holds {arr.dtype} values, not real numbers")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        if dim == 2:
            raise MFTheoryError(f"--image {str(path)!r} is 1D (shape {arr.shape}) but --dim is 2")
        return arr[None]
    if arr.ndim == 2:
        return arr if dim == 1 else arr[None]
    if arr.ndim == 3:
        if dim == 1:
            raise MFTheoryError(
                f"--image {str(path)!r} has shape {arr.shape}: with --dim 1 give (n,) or"
                " (channels, n)"
            )
        return arr
    raise MFTheoryError(
        f"--image {str(path)!r} has shape {arr.shape}: give (n,), (h, w) or (channels, h, w)"
    )


def _sample(name: str, dim: int | None) -> NDArray[np.float64]:
    """A shipped sample image, shaped as :func:`_read_npy` shapes a stored array."""
    arr = sample_image(name)
    if dim == 1:
        raise MFTheoryError(f"--image {SAMPLE_PREFIX}{name} is a 2D image, but --dim is 1")
    return arr[None] if arr.ndim == 2 else arr


def load_images(
    paths: list[Path], *, dim: int | None = None, normalize: str = "none"
) -> tuple[NDArray[np.float64], list[str]]:
    """Read and stack images into ``(B, channels, *pixels)``; notes for the user.

    Raises
    ------
    MFTheoryError
        Missing or unreadable file, unknown suffix, shapes that differ between images,
        non-finite values, a constant image with ``standardize``, unknown ``normalize``.
    """
    if normalize not in NORMALIZATIONS:
        raise MFTheoryError(
            f"--normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}"
        )
    if not paths:
        raise MFTheoryError("give at least one --image")
    images: list[NDArray[np.float64]] = []
    notes: list[str] = []
    for path in paths:
        if str(path).startswith(SAMPLE_PREFIX):
            arr = _sample(str(path)[len(SAMPLE_PREFIX) :], dim)
        elif not path.is_file():
            raise MFTheoryError(f"--image {str(path)!r} does not exist")
        elif (suffix := path.suffix.lower()) == ".npy":
            arr = _read_npy(path, dim)
        elif suffix == ".png":
            if dim == 1:
                raise MFTheoryError(f"--image {str(path)!r}: a PNG is a 2D image, but --dim is 1")
            arr, more = _read_png(path)
            notes += more
        else:
            raise MFTheoryError(
                f"--image {str(path)!r}: cannot read {suffix or 'files without a suffix'};"
                " give .png or .npy"
            )
        if not np.isfinite(arr).all():
            raise MFTheoryError(f"--image {str(path)!r} contains NaN or infinite values")
        if images and arr.shape != images[0].shape:
            raise MFTheoryError(
                f"--image {str(path)!r} has shape {arr.shape[1:]} with {arr.shape[0]}"
                f" channel(s), but {str(paths[0])!r} has {images[0].shape[1:]} with"
                f" {images[0].shape[0]}: all images must match"
            )
        if normalize == "standardize":
            std = float(arr.std())
            if std == 0:
                raise MFTheoryError(f"--image {str(path)!r} is constant: cannot standardize it")
            arr = (arr - arr.mean()) / std
        images.append(arr)
    return np.stack(images), notes
