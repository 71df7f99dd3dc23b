"""Degenerate fixed points (issue 16): ``propagate`` without Sigma*, and what the fixed-point
commands say at q* = 0, at divergent points and for homogeneous activations.

Independent references: the CNN covariance map iterated here entry by entry with relu's
closed-form arc-cosine kernel, ``E[relu(u) relu(v)] = sqrt(q_a q_b) / (2 pi) (sqrt(1 - c^2)
+ (pi - arccos c) c)``, and the closed-form normalised correlation map of relu.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_cli import run, run_json

from mftheory.cnn.propagation import mode_amplitudes, propagate

V = np.array([0.25, 0.5, 0.25])


def relu_pair(S: np.ndarray) -> np.ndarray:
    """``E[relu(u_a) relu(u_b)]`` for ``(u_a, u_b) ~ N(0, S)``, every entry (closed form)."""
    d = np.sqrt(np.diag(S))
    qq = np.outer(d, d)
    c = np.clip(S / qq, -1.0, 1.0)
    return qq / (2 * np.pi) * (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c)


def a_v(M: np.ndarray, batch: int, n: int) -> np.ndarray:
    """``(A_v * M)[(i, a), (j, b)] = sum_m v_m M[(i, a+m), (j, b+m)]`` on 1D images, periodic,
    ``v`` centred (offsets -1, 0, 1)."""
    T = M.reshape(batch, n, batch, n)
    out = np.zeros_like(T)
    for k, w in enumerate(V):
        out += w * np.roll(T, (-(k - 1), -(k - 1)), axis=(1, 3))
    return out.reshape(M.shape)


def reference_layers(images: np.ndarray, w2: float, b2: float, depth: int) -> list[np.ndarray]:
    """``Sigma^1 .. Sigma^depth`` of relu, iterated by hand."""
    batch, channels, n = images.shape
    X = np.moveaxis(images, 1, -1).reshape(-1, channels)
    S = w2 * a_v(X @ X.T / channels, batch, n) + b2
    out = [S]
    for _ in range(depth - 1):
        S = a_v(w2 * relu_pair(S) + b2, batch, n)
        out.append(S)
    return out


# relu at the critical sigma_w2 = 2 with a bias (q grows linearly), and two divergent points
# (q grows geometrically by sigma_w2 / 2 per layer)
CASES = [(2.0, 0.1), (3.0, 0.0), (3.0, 0.1)]


@pytest.mark.parametrize(("w2", "b2"), CASES)
def test_propagate_without_fixed_point_matches_hand_iteration(w2: float, b2: float) -> None:
    images = np.random.default_rng(3).standard_normal((2, 2, 6))
    depth = 25
    res = propagate("relu", v=V, sigma_w2=w2, sigma_b2=b2, depth=depth, images=images, record=True)
    ref = reference_layers(images, w2, b2, depth)
    assert res.history is not None
    for layer, (got, want) in enumerate(zip(res.history, ref, strict=True), start=1):
        # both use the same closed form; only rounding differs (relative to the largest entry,
        # which grows up to 1.5^25 ~ 2.5e4 times): 1e-12 leaves ~100 ulp per entry
        assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want)), layer
        assert res.q_mean[layer - 1] == pytest.approx(np.mean(np.diag(want)), rel=1e-12)
    # the Sigma* analysis is marked unavailable, with the reason
    assert res.unavailable is not None and "no finite fixed point" in res.unavailable
    assert np.isnan(res.amplitude).all() and np.isnan(res.measured_rate).all()
    assert np.isnan(res.predicted_rate).all()
    # the correlation modes are those of 1 - Sigma^l / q^l of the hand-iterated covariance
    for layer in (1, depth):
        S = ref[layer - 1]
        off, diag = mode_amplitudes(1.0 - S / np.mean(np.diag(S)), 6)
        np.testing.assert_allclose(res.correlation_amplitude[layer - 1], off, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(
            res.correlation_amplitude_diagonal[layer - 1], diag, rtol=1e-9, atol=1e-13
        )
    # spatial structure fades: every f != 0 mode of the correlation matrix shrinks with depth
    # (f = 3 has lambda_3 = 0: it is zero, up to rounding, from layer 1 on)
    start, end = res.correlation_amplitude[0, 1:], res.correlation_amplitude[-1, 1:]
    assert np.all((end < start)[start > 1e-12])
    rows = res.mode_rows()
    assert all(r["predicted_rate"] is None and r["amplitude_last"] is None for r in rows)
    assert any(r["correlation_rate"] is not None for r in rows)


def test_propagate_with_fixed_point_keeps_sigma_star_analysis() -> None:
    """Where q* is finite nothing changes: the correlation fields are extra, ``unavailable``
    is None."""
    images = np.random.default_rng(4).standard_normal((1, 1, 6))
    res = propagate("tanh", v=V, sigma_w2=1.5, sigma_b2=0.1, depth=10, images=images)
    assert res.unavailable is None
    assert np.isfinite(res.amplitude).all() and np.isfinite(res.predicted_rate).all()


def test_cli_propagate_without_fixed_point(tmp_path: Path) -> None:
    image = np.random.default_rng(5).random(6)
    path = tmp_path / "img.npy"
    np.save(path, image)
    args = ["propagate", "--image", str(path), "--act", "relu", "--sigma-w2", "2",
            "--sigma-b2", "0.1", "--v", "0.25,0.5,0.25", "--depth", "10"]  # fmt: skip
    data = run_json(*args)
    assert data["q_star"] is None and "no finite fixed point" in data["sigma_star_unavailable"]
    assert all(m["predicted_rate"] is None for m in data["modes"])
    assert data["correlation"]["q_mean"][-1] > data["correlation"]["q_mean"][0]
    # the covariance at depth 10 against the hand iteration (closed form, rounding only)
    want = reference_layers(image[None, None, :], 2.0, 0.1, 10)[-1]
    got = np.asarray(data["covariance"])
    assert np.max(np.abs(got - want)) <= 1e-12 * np.max(want)
    table = run(*args)
    assert table.exit_code == 0
    assert "no finite q*" in table.stdout and "1 - Sigma/q" in table.stdout
    csv = run(*args, "--format", "csv").stdout.splitlines()
    assert csv[0].endswith(",note") and "no finite fixed point" in csv[1]
