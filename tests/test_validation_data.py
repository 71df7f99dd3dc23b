"""Tests of mftheory.validation.data: the datasets of the validation experiments.

The expectations are independent of the code under test. MNIST IDX files and CIFAR-10 batches
are written here from random bytes, with headers built from the published format (magic 2051
and 2049, big-endian sizes; 1024 red, then green, then blue values per CIFAR row), and the
expected arrays are standardised here in float64 from those bytes. The digits are mapped back
to their integer pixels (17 levels) and compared with scikit-learn's own copy. MNIST-1D is
compared with the mnist1d package's output. Inputs are float32, so values match to 1e-5.
"""

from __future__ import annotations

import gzip
import json
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mftheory.errors import MFTheoryError
from mftheory.validation import data
from mftheory.validation.data import DATASETS, load_dataset

TOL = 1e-5


def _standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 per-channel standardisation of (N, C, ...) arrays with the train statistics."""
    axes = (0, *range(2, train.ndim))
    train, test = train.astype(np.float64), test.astype(np.float64)
    mean, std = train.mean(axis=axes, keepdims=True), train.std(axis=axes, keepdims=True)
    return (train - mean) / std, (test - mean) / std


def _assert_standardised(x: np.ndarray) -> None:
    axes = (0, *range(2, x.ndim))
    np.testing.assert_allclose(x.mean(axis=axes, dtype=np.float64), 0.0, atol=TOL)
    np.testing.assert_allclose(x.std(axis=axes, dtype=np.float64), 1.0, atol=TOL)


# ----------------------------------------------------------------------------- arguments


def test_names_and_argument_errors() -> None:
    assert DATASETS == ("digits", "mnist1d", "mnist", "cifar10")
    with pytest.raises(MFTheoryError, match=r"unknown dataset 'mnist2d': choose one of digits, "):
        load_dataset("mnist2d")
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(MFTheoryError, match=r"test_fraction=.* strictly between 0 and 1"):
            load_dataset("digits", test_fraction=fraction)
    for bad in (0, -3, 1.5, True):
        with pytest.raises(MFTheoryError, match=r"max_train=.* must be an integer >= 1"):
            load_dataset("digits", max_train=bad)  # type: ignore[arg-type]
    with pytest.raises(MFTheoryError, match=r"max_test=0 must be an integer >= 1"):
        load_dataset("digits", max_test=0)
    with pytest.raises(MFTheoryError, match=r"split_seed=-1 must be an integer >= 0"):
        load_dataset("digits", split_seed=-1)
    assert issubclass(MFTheoryError, ValueError)


def test_import_needs_numpy_only() -> None:
    code = (
        "import sys, mftheory.validation.data; "
        "print(sorted(m for m in ('torch', 'sklearn', 'mnist1d') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_extra_is_one_line_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    fix = re.escape('install the validation extra: pip install "mftheory[validate]"')
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if absent
    with pytest.raises(MFTheoryError, match=f"digits needs scikit-learn, which is missing: {fix}"):
        load_dataset("digits")
    data._mnist1d_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(MFTheoryError, match=f"needs the mnist1d package, missing: {fix}"):
        load_dataset("mnist1d")


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_split_and_values() -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    raw = load_digits()
    images, labels = raw.data.astype(np.int64), raw.target
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
    assert (ds.n_classes, ds.spatial_dims, ds.input_shape) == (10, 2, (1, 8, 8))
    assert ds.source.startswith("scikit-learn load_digits") and "1437 train / 360 test" in ds.source
    assert json.loads(json.dumps(ds.as_dict())) == {
        "name": "digits",
        "source": ds.source,
        "n_train": 1437,
        "n_test": 360,
        "input_shape": [1, 8, 8],
        "n_classes": 10,
    }
    # Stratified: every class has 20 % of its samples in the test set, to within one sample.
    assert np.all(np.abs(np.bincount(ds.y_test, minlength=10) - 0.2 * np.bincount(labels)) <= 1)
    _assert_standardised(ds.x_train)
    # Back to the 17 integer pixel levels: the same affine map sends both sets to 0..16.
    levels = np.unique(np.concatenate([ds.x_train.ravel(), ds.x_test.ravel()]))
    assert len(levels) == 17
    px_train = np.searchsorted(levels, ds.x_train).reshape(-1, 64)
    px_test = np.searchsorted(levels, ds.x_test).reshape(-1, 64)
    mean, std = px_train.mean(), px_train.std()
    np.testing.assert_allclose(ds.x_train.reshape(-1, 64), (px_train - mean) / std, atol=TOL)
    np.testing.assert_allclose(ds.x_test.reshape(-1, 64), (px_test - mean) / std, atol=TOL)
    # Train and test partition scikit-learn's rows (all 1797 are distinct), labels attached.
    index = {row.tobytes(): i for i, row in enumerate(images)}
    assert len(index) == 1797
    i_train = [index[row.tobytes()] for row in px_train]
    i_test = [index[row.tobytes()] for row in px_test]
    assert sorted(i_train + i_test) == list(range(1797))
    np.testing.assert_array_equal(ds.y_train, labels[i_train])
    np.testing.assert_array_equal(ds.y_test, labels[i_test])


def test_digits_seed_fraction_and_truncation() -> None:
    pytest.importorskip("sklearn")
    a, b = load_dataset("digits", split_seed=3), load_dataset("digits", split_seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    c = load_dataset("digits", split_seed=4)
    assert not np.array_equal(a.y_test, c.y_test)
    test_rows = {row.tobytes() for row in a.x_test}
    assert test_rows != {row.tobytes() for row in c.x_test}
    half = load_dataset("digits", test_fraction=0.5)
    assert (len(half.y_train), len(half.y_test)) == (898, 899)
    small = load_dataset("digits", split_seed=3, max_train=50, max_test=20)
    assert (len(small.y_train), len(small.y_test)) == (50, 20)
    assert "50 of 1437 train / 20 of 360 test" in small.source
    np.testing.assert_array_equal(small.y_train, a.y_train[:50])
    _assert_standardised(small.x_train)  # statistics of the 50 kept samples
    with pytest.raises(MFTheoryError, match=r"digits: cannot split with test_fraction=0\.001"):
        load_dataset("digits", test_fraction=0.001)  # 2 test samples for 10 classes


# ----------------------------------------------------------------------------- mnist1d


def test_mnist1d_matches_package_and_keeps_global_random_state() -> None:
    pytest.importorskip("mnist1d")
    import mnist1d.data

    data._mnist1d_arrays.cache_clear()  # make sure this load generates
    np.random.seed(123)  # noqa: NPY002
    random.seed(7)
    np_before, py_before = np.random.get_state(), random.getstate()  # noqa: NPY002
    ds = load_dataset("mnist1d")
    np_after = np.random.get_state()  # noqa: NPY002
    assert np_after[0] == np_before[0] and np_after[2:] == np_before[2:]
    np.testing.assert_array_equal(np_after[1], np_before[1])
    assert random.getstate() == py_before

    assert ds.x_train.shape == (4000, 1, 40) and ds.x_test.shape == (1000, 1, 40)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert (ds.n_classes, ds.spatial_dims, ds.input_shape) == (10, 1, (1, 40))
    assert "4000 train / 1000 test, length 40, 1 channel" in ds.source
    _assert_standardised(ds.x_train)
    try:
        ref = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    finally:
        np.random.set_state(np_before)  # noqa: NPY002
        random.setstate(py_before)
    x_train, x_test = _standardised(ref["x"][:, None], ref["x_test"][:, None])
    np.testing.assert_allclose(ds.x_train, x_train, atol=TOL)
    np.testing.assert_allclose(ds.x_test, x_test, atol=TOL)
    np.testing.assert_array_equal(ds.y_train, ref["y"])
    np.testing.assert_array_equal(ds.y_test, ref["y_test"])

    # Cached: callers get fresh arrays, so changing them does not change the next load.
    ds.x_train[:] = 0.0
    ds.y_train[:] = 0
    again = load_dataset("mnist1d", max_train=100)
    np.testing.assert_allclose(again.x_train[:, 0].std(), 1.0, atol=TOL)
    np.testing.assert_array_equal(again.y_train, ref["y"][:100])
    assert not any(a.flags.writeable for a in data._mnist1d_arrays())


# ----------------------------------------------------------------------------- MNIST


def _idx(array: np.ndarray, magic: int) -> bytes:
    """IDX bytes: 4-byte big-endian magic, then each size as big-endian uint32, then the data."""
    shape = np.array(array.shape, dtype=">u4").tobytes()
    return magic.to_bytes(4, "big") + shape + array.astype(np.uint8).tobytes()


def _write_mnist(folder: Path, parts: dict[str, np.ndarray], gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in parts.items():
        raw = _idx(array, 2051 if "images" in stem else 2049)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)


def _mnist_parts(n_train: int = 7, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


@pytest.mark.parametrize("layout", ["plain", "gz", "torchvision raw", "torchvision raw gz"])
def test_mnist_idx_files(tmp_path: Path, layout: str) -> None:
    parts = _mnist_parts()
    folder = tmp_path / "MNIST" / "raw" if "raw" in layout else tmp_path
    _write_mnist(folder, parts, gz=layout.endswith("gz"))
    ds = load_dataset("mnist", data_dir=str(tmp_path))
    assert ds.x_train.shape == (7, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int64
    assert (ds.spatial_dims, ds.input_shape) == (2, (1, 28, 28))
    assert "7 train / 3 test, 28x28, 1 channel" in ds.source
    x_train, x_test = _standardised(
        parts["train-images-idx3-ubyte"][:, None], parts["t10k-images-idx3-ubyte"][:, None]
    )
    np.testing.assert_allclose(ds.x_train, x_train, atol=TOL)
    np.testing.assert_allclose(ds.x_test, x_test, atol=TOL)
    np.testing.assert_array_equal(ds.y_train, parts["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, parts["t10k-labels-idx1-ubyte"])


def test_mnist_truncation_uses_kept_train_statistics(tmp_path: Path) -> None:
    parts = _mnist_parts()
    _write_mnist(tmp_path, parts)
    ds = load_dataset("mnist", data_dir=tmp_path, max_train=4, max_test=2)
    assert "4 of 7 train / 2 of 3 test" in ds.source
    x_train, x_test = _standardised(
        parts["train-images-idx3-ubyte"][:4, None], parts["t10k-images-idx3-ubyte"][:2, None]
    )
    np.testing.assert_allclose(ds.x_train, x_train, atol=TOL)
    np.testing.assert_allclose(ds.x_test, x_test, atol=TOL)
    np.testing.assert_array_equal(ds.y_train, parts["train-labels-idx1-ubyte"][:4])


def test_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(MFTheoryError, match="--data-dir is required for mnist: a folder with"):
        load_dataset("mnist")
    with pytest.raises(MFTheoryError, match="is not an existing folder: check --data-dir"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")
    parts = _mnist_parts()
    _write_mnist(tmp_path, {k: v for k, v in parts.items() if not k.startswith("t10k-labels")})
    with pytest.raises(MFTheoryError, match=r"t10k-labels-idx1-ubyte not found in .*MNIST.raw"):
        load_dataset("mnist", data_dir=tmp_path)

    def corrupt(stem: str, raw: bytes, gz: bool = False) -> str:
        folder = tmp_path / stem.replace("-", "_")
        _write_mnist(folder, parts)
        (folder / stem).unlink()
        (folder / (stem + ".gz" * gz)).write_bytes(raw)
        with pytest.raises(MFTheoryError) as info:
            load_dataset("mnist", data_dir=folder)
        assert "\n" not in str(info.value) and "replace" in str(info.value)
        return str(info.value)

    images = _idx(parts["train-images-idx3-ubyte"], 2051)
    assert "expected 00000801" in corrupt("train-labels-idx1-ubyte", images)  # swapped magic
    assert "not an IDX file" in corrupt("train-images-idx3-ubyte", b"\x00\x00")
    assert "truncated" in corrupt("train-images-idx3-ubyte", images[:-5])
    assert "truncated" in corrupt("train-images-idx3-ubyte", images + b"\x00")
    assert "cannot read" in corrupt("train-images-idx3-ubyte", b"not gzip", gz=True)
    assert "cannot read" in corrupt("train-images-idx3-ubyte", gzip.compress(images)[:-9], gz=True)
    short = _idx(parts["train-labels-idx1-ubyte"][:6], 2049)
    assert "train files disagree (7 images" in corrupt("train-labels-idx1-ubyte", short)
    assert "labels up to 12" in corrupt("t10k-labels-idx1-ubyte", _idx(np.array([1, 12, 3]), 2049))
    odd = _idx(np.zeros((3, 20, 28), dtype=np.uint8), 2051)
    assert "t10k files disagree" in corrupt("t10k-images-idx3-ubyte", odd)

    empty = tmp_path / "empty"
    _write_mnist(
        empty,
        {
            **parts,
            "t10k-images-idx3-ubyte": np.zeros((0, 28, 28), np.uint8),
            "t10k-labels-idx1-ubyte": np.zeros(0, np.uint8),
        },
    )
    with pytest.raises(MFTheoryError, match="mnist: the train or the test set is empty"):
        load_dataset("mnist", data_dir=empty)
    flat = tmp_path / "flat"
    _write_mnist(flat, {**parts, "train-images-idx3-ubyte": np.full((7, 28, 28), 9, np.uint8)})
    with pytest.raises(MFTheoryError, match="channel 0 of the training inputs is constant"):
        load_dataset("mnist", data_dir=flat)


# ----------------------------------------------------------------------------- CIFAR-10


def _write_cifar(folder: Path, n: tuple[int, ...] = (2, 3, 2, 1, 2, 4), seed: int = 0) -> dict:
    """Six batches (data_batch_1..5, test_batch) of random uint8 rows; returns them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {}
    for name, size in zip(names, n, strict=True):
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, size)],
            b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches[name] = batch
    return batches


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_batches(tmp_path: Path, nested: bool) -> None:
    batches = _write_cifar(tmp_path / "cifar-10-batches-py" if nested else tmp_path)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert (ds.n_classes, ds.input_shape) == (10, (3, 32, 32))
    assert "10 train / 4 test, 32x32, 3 channels" in ds.source
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    rows = np.concatenate([b[b"data"] for b in train])
    test_rows = batches["test_batch"][b"data"]
    # Row layout: 1024 red values, then 1024 green, then 1024 blue, each 32x32 row-major.
    images, test_images = np.empty((10, 3, 32, 32)), np.empty((4, 3, 32, 32))
    for c in range(3):
        for h in range(32):
            start = c * 1024 + h * 32
            images[:, c, h, :] = rows[:, start : start + 32]
            test_images[:, c, h, :] = test_rows[:, start : start + 32]
    x_train, x_test = _standardised(images, test_images)
    np.testing.assert_allclose(ds.x_train, x_train, atol=TOL)
    np.testing.assert_allclose(ds.x_test, x_test, atol=TOL)
    _assert_standardised(ds.x_train)
    np.testing.assert_array_equal(ds.y_train, [v for b in train for v in b[b"labels"]])
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])


def test_cifar10_errors(tmp_path: Path) -> None:
    with pytest.raises(MFTheoryError, match="--data-dir is required for cifar10"):
        load_dataset("cifar10")
    with pytest.raises(MFTheoryError, match=r"test_batch not found in .*cifar-10-batches-py"):
        _write_cifar(tmp_path / "a")
        (tmp_path / "a" / "test_batch").unlink()
        load_dataset("cifar10", data_dir=tmp_path / "a")

    def corrupt(batch: object | bytes) -> str:
        folder = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        _write_cifar(folder)
        raw = batch if isinstance(batch, bytes) else pickle.dumps(batch)
        (folder / "data_batch_3").write_bytes(raw)
        with pytest.raises(MFTheoryError) as info:
            load_dataset("cifar10", data_dir=folder)
        message = str(info.value)
        assert "\n" not in message and "data_batch_3" in message and "replace" in message
        return message

    data_ = np.zeros((2, 3072), np.uint8)
    assert "cannot read" in corrupt(b"garbage, not a pickle")
    assert "cannot read" in corrupt(pickle.dumps({b"data": data_})[:-4])  # truncated
    assert "cannot read" in corrupt({b"data": data_})  # no labels
    assert "expected uint8 (N, 3072)" in corrupt({b"data": data_[:, :100], b"labels": [0, 1]})
    assert "expected uint8" in corrupt({b"data": data_.astype(np.int16), b"labels": [0, 1]})
    assert "labels (3,)" in corrupt({b"data": data_, b"labels": [0, 1, 2]})
    assert "outside 0..9" in corrupt({b"data": data_, b"labels": [0, 10]})
