"""Reading the images that ``propagate`` and ``simulate`` take (``--image``, repeatable).

* ``.npy``: used exactly as stored. Shape ``(n,)`` is a 1D image, ``(h, w)`` a 2D grayscale
  image, ``(channels, h, w)`` a 2D image with channels; with ``--dim 1`` a 2D array is
  ``(channels, n)``.
* ``.png``: 2D; grayscale or RGB (an alpha channel is dropped, with a note). PNG stores
  intensities on a 0..2^bits - 1 scale; they are read as intensities in [0, 1]
  (value / 255 for 8-bit files), the format's own meaning, with no other change.

* ``sample:NAME``: an image shipped inside the package (``SAMPLES``), so that the examples
  run without any file: ``sample:digit0`` is an 8x8 handwritten zero (the first of
  scikit-learn's digits, intensities / 16 in [0, 1]).

``--normalize standardize`` then shifts and scales each image to mean 0 and variance 1 over
its pixels and channels; the default, ``none``, uses the values as read.

A file that cannot be used (missing, a folder, unreadable, empty, truncated, corrupt, a
``.npz`` archive or a pickle under a ``.npy`` name, Python objects, records, no values) is one
line naming the option and the file, exit code 2. ``.npy`` files are read with
``allow_pickle=False``, always.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mftheory.errors import MFTheoryError

__all__ = [
    "NORMALIZATIONS",
    "SAMPLES",
    "SAMPLE_PREFIX",
    "check_input_file",
    "load_images",
    "read_npy",
    "sample_image",
]

NORMALIZATIONS = ("none", "standardize")

#: ``--image sample:NAME``: the images shipped in ``mftheory/data`` (name -> file, description).
SAMPLE_PREFIX = "sample:"
SAMPLES: dict[str, tuple[str, str]] = {
    "digit0": ("digit0.npy", "an 8x8 handwritten zero (scikit-learn's first digit, in [0, 1])"),
}


def sample_image(name: str) -> NDArray[np.float64]:
    """The shipped sample image ``name`` (a key of ``SAMPLES``) as stored.

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


#: The first bytes of a .npy file, of a zip archive (.npz) and of a pickle (protocol 2+).
_NPY_MAGIC, _ZIP_MAGIC, _PICKLE_MAGIC = b"\x93NUMPY", b"PK\x03\x04", b"\x80"


def check_input_file(path: Path, option: str) -> None:
    """Refuse an input file that is missing, a folder, not a regular file, or unreadable.

    Raises
    ------
    MFTheoryError
        One line naming ``option`` and the file.
    """
    where = f"{option} {str(path)!r}"
    try:
        if path.is_dir():
            raise MFTheoryError(f"{where} is a folder, not a file")
        if not path.exists():
            raise MFTheoryError(f"{where} does not exist")
        if not path.is_file():
            raise MFTheoryError(f"{where} is not a regular file")
        with path.open("rb"):
            pass
    except OSError as exc:
        raise MFTheoryError(f"{where} cannot be read: {exc.strerror or exc}") from None


def _npy_kind(path: Path, where: str) -> None:
    """Refuse a file that does not start like a .npy file, saying what it looks like."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise MFTheoryError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if head == _NPY_MAGIC:
        return
    if not head:
        raise MFTheoryError(f"{where} is empty (0 bytes), not a .npy file")
    if head.startswith(_ZIP_MAGIC):
        kind = "a zip archive (such as .npz)"
    elif head.startswith(_PICKLE_MAGIC):
        kind = "pickled Python data, which is never loaded"
    else:
        kind = "not a .npy file: it lacks the NumPy header"
    if len(head) < len(_NPY_MAGIC) and _NPY_MAGIC.startswith(head):
        kind = f"truncated ({len(head)} bytes), not a complete .npy file"
    raise MFTheoryError(f"{where} is {kind}")


def _npy_header(path: Path, where: str) -> None:
    """Check the .npy header against the file: Python objects, records and a file shorter than
    its header says are refused before any memory is allocated for the array."""
    fmt = np.lib.format
    try:
        with path.open("rb") as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(fh)
            else:  # a newer header version: np.load checks it
                return
            offset = fh.tell()
        size = path.stat().st_size
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise MFTheoryError(f"{where} is truncated or corrupt: {reason}") from None
    if dtype.hasobject:
        raise MFTheoryError(f"{where} holds Python objects, which are never loaded")
    if dtype.names is not None:
        raise MFTheoryError(f"{where} holds records ({dtype}), not numbers")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size - offset < expected:
        raise MFTheoryError(
            f"{where} is truncated: its header says {'x'.join(map(str, shape)) or 'one'}"
            f" {dtype} value(s), {expected} bytes, but it holds {size - offset}"
        )


def read_npy(path: Path, option: str) -> NDArray[Any]:
    """The array in the ``.npy`` file ``path`` (read with ``allow_pickle=False``), as stored.

    Parameters
    ----------
    path : Path
    option : str
        The option that named the file (``--image``, ``--check``), for the messages.

    Raises
    ------
    MFTheoryError
        One line naming ``option`` and the file: missing, a folder, unreadable, empty, not a
        .npy file (a .npz archive, a pickle, other bytes), truncated or corrupt, Python objects
        or records, strings or complex numbers instead of real numbers, or no values at all.
    """
    where = f"{option} {str(path)!r}"
    check_input_file(path, option)
    _npy_kind(path, where)
    _npy_header(path, where)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise MFTheoryError(f"{where} is truncated or corrupt: {reason}") from None
    if not isinstance(arr, np.ndarray):  # pragma: no cover - the magic was .npy's
        raise MFTheoryError(f"{where} is not a .npy file")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise MFTheoryError(f"{where} holds {arr.dtype} values, not real numbers")
    if arr.size == 0:
        raise MFTheoryError(f"{where} holds no values (shape {arr.shape})")
    return arr


def _read_png(path: Path) -> tuple[NDArray[np.float64], list[str]]:
    import warnings

    from PIL import Image, UnidentifiedImageError

    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Very large images: the size checks decide, not PIL's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode_png(path, notes)
    except Image.DecompressionBombError:
        raise MFTheoryError(f"--image {str(path)!r} has too many pixels to read") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())[:200]
        raise MFTheoryError(f"--image {str(path)!r} is not a readable PNG: {reason}") from None


def _decode_png(path: Path, notes: list[str]) -> tuple[NDArray[np.float64], list[str]]:
    from PIL import Image

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


def _read_npy(path: Path, dim: int | None) -> NDArray[np.float64]:
    arr = np.asarray(read_npy(path, "--image"), dtype=np.float64)
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
    """A shipped sample image, shaped as ``_read_npy`` shapes a stored array."""
    arr = sample_image(name)
    if dim == 1:
        raise MFTheoryError(f"--image {SAMPLE_PREFIX}{name} is a 2D image, but --dim is 1")
    return arr[None] if arr.ndim == 2 else arr


def _read_file(path: Path, dim: int | None) -> tuple[NDArray[np.float64], list[str]]:
    """One ``--image`` file, by its suffix, and notes for the user."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path, dim), []
    if suffix == ".png":
        if dim == 1:
            raise MFTheoryError(f"--image {str(path)!r}: a PNG is a 2D image, but --dim is 1")
        return _read_png(path)
    raise MFTheoryError(
        f"--image {str(path)!r}: cannot read {suffix or 'files without a suffix'};"
        " give .png or .npy"
    )


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
        else:
            check_input_file(path, "--image")
            arr, more = _read_file(path, dim)
            notes += more
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
