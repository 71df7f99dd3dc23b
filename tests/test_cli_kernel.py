"""``mftheory kernel``: draw or check a convolution kernel (issue 5). Wiring only: the kernels
are checked in tests/test_kernels.py; here the CLI's summary is compared with a dense operator
built independently (loops over pixels and offsets) for a small kernel."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import slow_except
from test_cli import assert_one_line_error, run, run_json


def dense_operator(K: np.ndarray, n: int) -> np.ndarray:
    """The periodic convolution (K * x)_j(a) = sum_i sum_b K(b)[i, j] x_i(a + b) as a matrix."""
    spatial, c_in, c_out = K.shape[:-2], K.shape[-2], K.shape[-1]
    d = len(spatial)
    pixels = list(itertools.product(range(n), repeat=d))
    index = {p: k for k, p in enumerate(pixels)}
    W = np.zeros((len(pixels) * c_out, len(pixels) * c_in))
    centre = [s // 2 for s in spatial]
    for a in pixels:
        for pos in itertools.product(*(range(s) for s in spatial)):
            b = [p - c for p, c in zip(pos, centre, strict=True)]
            src = tuple((x + y) % n for x, y in zip(a, b, strict=True))
            W[
                index[a] * c_out : (index[a] + 1) * c_out,
                index[src] * c_in : (index[src] + 1) * c_in,
            ] += K[pos].T
    return W


@pytest.mark.parametrize(
    "init", slow_except(["orthogonal", "delta-orthogonal"], ["delta-orthogonal"])
)
def test_kernel_written_is_orthogonal(tmp_path: Path, init: str) -> None:
    path = tmp_path / "k.npy"
    data = run_json("kernel", "--init", init, "--size", "3", "--dim", "2", "--cin", "3",
                    "--cout", "5", "--gain", "sqrt(2)", "--seed", "4", "-o", str(path))  # fmt: skip
    K = np.load(path)
    assert K.shape == (3, 3, 3, 5)
    W = dense_operator(K, 4)
    np.testing.assert_allclose(W.T @ W, 2.0 * np.eye(W.shape[1]), atol=1e-12)
    assert data["orthogonal"] and data["columns_orthonormal"]
    assert data["gain"] == pytest.approx(np.sqrt(2.0), rel=1e-15)
    again = run_json("kernel", "--check", str(path))
    assert again["orthogonal"] and again["n_values"][0] == 3 and again["n_values"][-1] == 64


def test_gaussian_kernel_is_reported_not_orthogonal(tmp_path: Path) -> None:
    data = run_json("kernel", "--init", "gaussian", "--size", "3", "--dim", "1", "--cin", "8",
                    "--cout", "8", "--v", "gs2")  # fmt: skip
    assert data["orthogonal"] is False
    assert len(data["variance_share"]) == 3


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--init", "orthogonal", "--cin", "8", "--cout", "4"], "c_in <= c_out"),
        (["--init", "orthogonal", "--size", "4"], "size"),
        (["--init", "orthogonal", "--dim", "4"], "--dim"),
        (["--init", "magic"], "--init"),
        (["--gain", "-1"], "--gain"),
        (["-o", "k.txt"], ".npy"),
        (["--check", "missing.npy"], "does not exist"),
    ],
)
def test_kernel_errors(args: list[str], mentions: str) -> None:
    assert_one_line_error(run("kernel", *args), mentions=mentions)
