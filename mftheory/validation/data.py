"""Datasets of the validation experiments, as standardised numpy arrays (nothing is downloaded).

``load_dataset`` returns a ``Dataset``: float32 inputs laid out for convolutional
networks, ``(N, C, H, W)`` for images and ``(N, C, L)`` for 1D signals, and int64 labels.

- ``digits``: scikit-learn's 1797 8x8 digit images (shipped with scikit-learn), split into
  train and test by a seeded stratified split.
- ``mnist1d``: MNIST-1D (Greydanus 2020) generated offline by the ``mnist1d`` package with its
  default arguments (``make_dataset``, never ``get_dataset``, which downloads): its own
  4000 train / 1000 test signals of length 40.
- ``mnist``: the four MNIST IDX files from a local folder (plain or ``.gz``, also in
  torchvision's ``MNIST/raw`` layout), official 60000 / 10000 split.
- ``cifar10``: the CIFAR-10 "python version" batches from a local folder, official split.

Every input is scaled to floats and standardised per channel with the mean and standard
deviation of the training set (after ``max_train``), so the training inputs have mean 0 and
variance 1 in every channel; the test set uses the training statistics. Any problem raises
``MFTheoryError`` with one line naming it and the fix. This module
imports only numpy; scikit-learn and mnist1d (the ``[validate]`` extra) are imported on use.
"""

from __future__ import annotations

import functools
import gzip
import pickle
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mftheory.errors import MFTheoryError

__all__ = ["DATASETS", "Dataset", "load_dataset"]

DATASETS: tuple[str, ...] = ("digits", "mnist1d", "mnist", "cifar10")
_INSTALL = 'install the validation extra: pip install "mftheory[validate]"'
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """A train/test classification dataset ready for a convolutional network.

    Attributes
    ----------
    name : str
        One of ``DATASETS``.
    x_train, x_test : numpy.ndarray
        float32 inputs, ``(N, C, H, W)`` for images or ``(N, C, L)`` for 1D signals,
        standardised per channel with the training set's statistics.
    y_train, y_test : numpy.ndarray
        int64 labels in ``0 .. n_classes - 1``, shape ``(N,)``.
    n_classes : int
        Number of classes.
    source : str
        One human-readable line: where the data came from, the sizes and the input shape.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str

    @property
    def spatial_dims(self) -> int:
        """1 for signals ``(N, C, L)``, 2 for images ``(N, C, H, W)``."""
        return int(self.x_train.ndim - 2)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input: ``(C, H, W)`` or ``(C, L)``."""
        return tuple(int(n) for n in self.x_train.shape[1:])

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary (no arrays): name, source, sizes, input shape, classes."""
        return {
            "name": self.name,
            "source": self.source,
            "n_train": len(self.y_train),
            "n_test": len(self.y_test),
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
        }


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    max_train: int | None = None,
    max_test: int | None = None,
) -> Dataset:
    """Load one of ``DATASETS`` as a standardised ``Dataset``.

    Parameters
    ----------
    name : str
        ``"digits"``, ``"mnist1d"``, ``"mnist"`` or ``"cifar10"``.
    data_dir : str or Path, optional
        Folder of the local files; required for ``mnist`` (the four IDX files) and ``cifar10``
        (``cifar-10-batches-py`` or the folder itself). CIFAR-10 batches are pickles, the
        standard format, but unpickling a file can run code: only use files you trust.
    split_seed : int
        Seed of the stratified train/test split (``digits`` only; the others have fixed splits).
    test_fraction : float
        Fraction of the data in the test set, in (0, 1) (``digits`` only).
    max_train, max_test : int, optional
        Keep only the first so many samples of each set (>= 1), e.g. for tiny CI runs.

    Returns
    -------
    Dataset

    Raises
    ------
    MFTheoryError
        Unknown name, bad argument, missing or corrupt files, or the extra not installed.
    """
    if name not in DATASETS:
        raise MFTheoryError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if not 0.0 < test_fraction < 1.0:
        raise MFTheoryError(f"test_fraction={test_fraction!r} must lie strictly between 0 and 1")
    for label, value, low in (("max_train", max_train, 1), ("max_test", max_test, 1)):
        if value is not None and not _is_int(value, low):
            raise MFTheoryError(f"{label}={value!r} must be an integer >= {low} (or None for all)")
    if not _is_int(split_seed, 0):
        raise MFTheoryError(f"split_seed={split_seed!r} must be an integer >= 0")
    if name == "digits":
        arrays, scale = _digits(split_seed, test_fraction), 16.0
        origin = f"scikit-learn load_digits, stratified split seed {split_seed}"
    elif name == "mnist1d":
        arrays, scale = _mnist1d_arrays(), 1.0
        origin = "mnist1d make_dataset (default arguments, generated offline)"
    else:
        if data_dir is None:
            what = "the four IDX files" if name == "mnist" else "cifar-10-batches-py"
            raise MFTheoryError(f"--data-dir is required for {name}: a folder with {what}")
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise MFTheoryError(f"{name}: {folder} is not an existing folder: check --data-dir")
        arrays, scale = (_mnist(folder) if name == "mnist" else _cifar10(folder)), 255.0
        origin = f"{'MNIST IDX files' if name == 'mnist' else 'CIFAR-10 batches'} in {folder}"
    x_tr, y_tr, x_te, y_te = arrays
    if len(y_tr) == 0 or len(y_te) == 0:
        raise MFTheoryError(f"{name}: the train or the test set is empty: replace the files")
    x_train, x_test = _standardise(name, x_tr[:max_train], x_te[:max_test], scale)
    y_train, y_test = y_tr[:max_train].astype(np.int64), y_te[:max_test].astype(np.int64)
    c, *sides = x_train.shape[1:]
    size = "x".join(map(str, sides)) if len(sides) == 2 else f"length {sides[0]}"
    counts = [
        f"{len(a)}" if len(a) == len(b) else f"{len(a)} of {len(b)}"
        for a, b in ((y_train, y_tr), (y_test, y_te))
    ]
    source = f"{origin}: {counts[0]} train / {counts[1]} test, {size}, {c} channel{'s' * (c > 1)}"
    return Dataset(name, x_train, y_train, x_test, y_test, 10, source)


def _is_int(value: object, low: int) -> bool:
    """Whether ``value`` is an integer (not a bool) >= ``low``."""
    return (
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value >= low)
    )


def _standardise(
    name: str, x_train: np.ndarray, x_test: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """float32 copies scaled by ``1 / scale``, standardised per channel with train statistics."""
    train = np.multiply(x_train, 1.0 / scale, dtype=np.float32)
    test = np.multiply(x_test, 1.0 / scale, dtype=np.float32)
    for c in range(train.shape[1]):  # one channel at a time: float64 temporaries stay small
        mean = float(train[:, c].mean(dtype=np.float64))
        std = float(np.sqrt(np.square(train[:, c] - mean, dtype=np.float64).mean()))
        if not std > 0.0:
            raise MFTheoryError(
                f"{name}: channel {c} of the training inputs is constant and cannot be "
                "standardised: use more training samples (max_train)"
            )
        for x in (train, test):
            x[:, c] = (x[:, c] - mean) / std
    return train, test


def _digits(split_seed: int, test_fraction: float) -> _Arrays:
    """scikit-learn's 8x8 digits (pixels 0..16), stratified split by ``split_seed``."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise MFTheoryError(f"digits needs scikit-learn, which is missing: {_INSTALL}") from None
    digits = load_digits()
    x, y = digits.data.reshape(-1, 1, 8, 8), np.asarray(digits.target, dtype=np.int64)
    try:  # sklearn seeds its own RandomState(split_seed); the global state is untouched
        train, test = train_test_split(
            np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=split_seed
        )
    except ValueError as exc:
        msg = (
            f"digits: cannot split with test_fraction={test_fraction}: {' '.join(str(exc).split())}"
        )
        raise MFTheoryError(msg) from None
    return x[train], y[train], x[test], y[test]


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> _Arrays:
    """MNIST-1D with the default arguments, generated once; read-only arrays."""
    try:
        import mnist1d.data
    except ImportError:
        raise MFTheoryError(f"mnist1d needs the mnist1d package, missing: {_INSTALL}") from None
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:  # make_dataset seeds numpy's and Python's global generators: restore both afterwards
        data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    out = [np.array(data[k]) for k in ("x", "y", "x_test", "y_test")]
    for a in out:  # load_dataset returns fresh copies; read-only guards the cache itself
        a.setflags(write=False)
    return out[0][:, None, :], out[1], out[2][:, None, :], out[3]


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (magic ``00 00 08 ndim``, big-endian uint32 sizes)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise MFTheoryError(f"mnist: cannot read {path} ({exc}): replace the file") from None
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes((0, 0, 8, ndim)):
        raise MFTheoryError(
            f"mnist: {path} is not an IDX file of {ndim}-D unsigned bytes (magic "
            f"{raw[:4].hex()}, expected {bytes((0, 0, 8, ndim)).hex()}): replace the file"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(dims)):
        raise MFTheoryError(
            f"mnist: {path} is truncated or corrupt: its header says {dims} = "
            f"{int(np.prod(dims))} bytes, it holds {len(raw) - header}: replace the file"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _mnist(folder: Path) -> _Arrays:
    """The four MNIST IDX files in ``folder`` or ``folder/MNIST/raw``, plain or ``.gz``."""
    paths: list[Path] = []
    for stem in _MNIST_FILES:
        candidates = [
            d / (stem + gz) for d in (folder, folder / "MNIST" / "raw") for gz in ("", ".gz")
        ]
        paths += [p for p in candidates if p.is_file()][:1]
    if len(paths) < len(_MNIST_FILES):
        missing = [s for s in _MNIST_FILES if not any(p.name.startswith(s) for p in paths)]
        raise MFTheoryError(
            f"mnist: {', '.join(missing)} not found in {folder} or {folder / 'MNIST' / 'raw'}: "
            f"put the four IDX files ({', '.join(_MNIST_FILES)}, plain or .gz) there"
        )
    x_tr, y_tr, x_te, y_te = (_read_idx(p, 3 if "images" in p.name else 1) for p in paths)
    for part, x, y in (("train", x_tr, y_tr), ("t10k", x_te, y_te)):
        if len(x) != len(y) or x.shape[1:] != x_tr.shape[1:] or (y.size and y.max() > 9):
            raise MFTheoryError(
                f"mnist: the {part} files disagree ({len(x)} images of {x.shape[1:]}, "
                f"{len(y)} labels up to {y.max(initial=0)}): replace them"
            )
    return x_tr[:, None], y_tr, x_te[:, None], y_te


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch: ``b"data"`` (N, 3072) uint8 and ``b"labels"`` (N)."""
    try:
        with path.open("rb") as f:
            batch: Any = pickle.load(f, encoding="bytes")  # trusted standard format, see above
        x, y = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except Exception as exc:  # an unpickling failure can take many forms
        raise MFTheoryError(f"cifar10: cannot read {path} ({exc!r}): replace the file") from None
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or y.shape != (len(x),):
        raise MFTheoryError(
            f"cifar10: {path} holds data {x.dtype}{x.shape} and labels {y.shape}, expected "
            "uint8 (N, 3072) and (N,): replace the file"
        )
    if y.size and (y.dtype.kind not in "iu" or y.min() < 0 or y.max() > 9):
        raise MFTheoryError(f"cifar10: {path} has labels outside 0..9: replace the file")
    return x.reshape(-1, 3, 32, 32), y


def _cifar10(folder: Path) -> _Arrays:
    """CIFAR-10 python batches from ``folder/cifar-10-batches-py`` or ``folder`` itself."""
    base = folder / "cifar-10-batches-py"
    base = base if base.is_dir() else folder
    missing = [n for n in (*_CIFAR_FILES, "test_batch") if not (base / n).is_file()]
    if missing:
        raise MFTheoryError(
            f"cifar10: {', '.join(missing)} not found in {base}: --data-dir must hold "
            "cifar-10-batches-py (data_batch_1..5, test_batch; the CIFAR-10 python version)"
        )
    train = [_cifar_batch(base / n) for n in _CIFAR_FILES]
    x_te, y_te = _cifar_batch(base / "test_batch")
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_te, y_te
