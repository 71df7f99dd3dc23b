"""Degenerate fixed points (issue 16): ``propagate`` without Sigma*, and what the fixed-point
commands say at q* = 0, at divergent points and for homogeneous activations.

Independent references: the CNN covariance map iterated here entry by entry with relu's
closed-form arc-cosine kernel, ``E[relu(u) relu(v)] = sqrt(q_a q_b) / (2 pi) (sqrt(1 - c^2)
+ (pi - arccos c) c)``, and the closed-form normalised correlation map of relu.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
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


# --- degenerate fixed points: what the commands say ------------------------------------------


def relu_corr_map(c: float) -> float:
    """relu's normalised correlation map without bias (closed form, any sigma_w, any q)."""
    return (math.sqrt(max(1.0 - c * c, 0.0)) + (math.pi - math.acos(c)) * c) / math.pi


def leaky_corr_map(c: float, a: float) -> float:
    """leaky relu's, from ``phi = (1+a)/2 u + (1-a)/2 |u|`` and the closed form of
    ``E|u||v| = (2q/pi) (sqrt(1-c^2) + c arcsin c)``."""
    s = (2 / math.pi) * (math.sqrt(max(1.0 - c * c, 0.0)) + c * math.asin(c))
    return (((1 + a) / 2) ** 2 * c + ((1 - a) / 2) ** 2 * s) / ((1 + a * a) / 2)


def approach(cmap: Callable[[float], float], layers: int) -> float:
    """``l^2 (1 - c^l)`` after ``layers`` steps from ``c^0 = 0``."""
    c = 0.0
    for _ in range(layers):
        c = cmap(c)
    return layers**2 * (1.0 - c)


def test_relu_correlation_map_has_slope_one_and_polynomial_approach() -> None:
    # slope at c = 1: (pi - arccos c) / pi -> 1; one-sided difference with h = 1e-8 (error
    # O(sqrt(h)) from the (1-c)^(3/2) term: ~1e-4)
    h = 1e-8
    assert (relu_corr_map(1.0) - relu_corr_map(1.0 - h)) / h == pytest.approx(1.0, abs=1e-3)
    data = run_json("fixed-point", "--act", "relu", "--sigma-w", "1.2", "--sigma-b", "0")
    assert data["degenerate"] == "homogeneous" and data["correlation_approach"] == "polynomial"
    assert data["chi_1"] == pytest.approx(1.44 / 2, rel=1e-14)  # sigma_w2 E[relu'^2]
    assert data["chi_c"] == 1.0 and data["xi_c"] is None  # inf: no exponential scale
    assert data["q_star"] == 0.0 and "polynomially" in data["note"]
    # 1 - c^l ~ A / l^2: iterate the closed form to l = 20000 (relative correction
    # O(log l / l) ~ 1e-3 there: 1% tolerance)
    assert approach(relu_corr_map, 20000) == pytest.approx(data["approach_constant"], rel=1e-2)
    assert data["approach_constant"] == pytest.approx(9 * math.pi**2 / 2, rel=1e-14)
    table = run("fixed-point", "--act", "relu", "--sigma-w", "1.2", "--sigma-b", "0")
    assert "homogeneous" in table.stdout and "polynomial" in table.stdout
    assert "no depth scale xi_c" in table.stderr


def test_leaky_relu_approach_constant() -> None:
    data = run_json("fixed-point", "--act", "leaky_relu", "--negative-slope", "0.2",
                    "--sigma-w2", "1.5", "--sigma-b2", "0")  # fmt: skip
    got = approach(lambda c: leaky_corr_map(c, 0.2), 20000)
    assert got == pytest.approx(data["approach_constant"], rel=1e-2)
    linear = run_json("fixed-point", "--act", "linear", "--sigma-w2", "0.5", "--sigma-b2", "0")
    assert linear["correlation_approach"] == "frozen" and linear["approach_constant"] is None


def test_q_star_zero_freezes_correlations() -> None:
    """tanh at sigma_w2 = 0.5 without bias: q^l -> 0 and c^l settles below 1, at a value that
    depends on c^0 (Gauss-Hermite 2D quadrature, 60 nodes per axis: exact to ~1e-14 here)."""
    x, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()

    def step(q: float, c: float) -> tuple[float, float]:
        u = math.sqrt(q) * x[:, None]
        v = math.sqrt(q) * (c * x[:, None] + math.sqrt(1 - c * c) * x[None, :])
        q_next = 0.5 * float(w @ np.tanh(math.sqrt(q) * x) ** 2)
        cov = 0.5 * float(w @ (np.tanh(u) * np.tanh(v)) @ w)
        return q_next, cov / q_next

    ends = []
    for c0 in (0.3, 0.6):
        q, c = 1.0, c0
        for _ in range(40):
            q, c = step(q, c)
        ends.append(c)
        assert q < 1e-10 and c < 0.99
    assert ends[1] - ends[0] > 0.1  # input-dependent limits
    data = run_json("fixed-point", "--act", "tanh", "--sigma-w2", "0.5", "--sigma-b2", "0")
    assert data["degenerate"] == "zero" and data["correlation_approach"] == "frozen"
    assert data["xi_c"] is None and data["chi_q"] == pytest.approx(0.5, rel=1e-9)


def test_spectrum_at_a_divergent_point_states_its_q() -> None:
    result = run("spectrum", "--act", "relu", "--sigma-w2", "3", "--depth", "6", "--format",
                 "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["q_star_fixed_point"] is None and data["q_star"] == 1.0
    assert "does not depend on q" in data["convention"] and "q* = inf" in result.stderr
    # mean of x = chi_1^L with chi_1 = sigma_w2 / 2, whatever q
    assert data["mean"] == pytest.approx(1.5**6, rel=1e-12)
    ordinary = run_json("spectrum", "--act", "tanh", "--depth", "6")
    assert "degenerate" not in ordinary and "convention" not in ordinary


def test_other_commands_say_what_the_point_is() -> None:
    diag = run_json("diagnose", "--act", "relu", "--sigma-w2", "1.44", "--sigma-b2", "0")
    assert diag["degenerate"] == "homogeneous" and diag["max_trainable_depth"] is None
    assert "polynomial" in diag["verdict"]
    scales = run_json("depthscales", "--act", "relu", "--sigma-w2", "1.44", "--sigma-b2", "0")
    assert scales["degenerate"] == "homogeneous" and "mode rates" in scales["convention"]
    crit = run_json("critical", "--act", "tanh", "--sigma-b2", "0")
    assert crit["q_star"] == 0.0 and "polynomially" in crit["note"]
    iso = run_json("isometry", "--depth", "4")
    kinds = {r["name"]: r.get("degenerate") for r in iso["rows"]}
    assert kinds["relu-he"] == "homogeneous" and kinds["relu-looks-linear"] == "homogeneous"
    grid = run_json("phase-diagram", "--act", "relu", "--sigma-w2", "0.5:3:6", "--sigma-b2",
                    "0:1:3")  # fmt: skip
    assert grid["degenerate"]["homogeneous"] == 6  # the sigma_b2 = 0 row
    plain = run_json("fixed-point", "--act", "tanh", "--sigma-w2", "1.5", "--sigma-b2", "0.05")
    assert "degenerate" not in plain


def test_propagate_where_every_q_is_fixed() -> None:
    """relu at sigma_w2 = 2 without bias: q^l stays at the input's variance, so there is no
    unique Sigma*; the covariance still matches the hand iteration, and the slowest f != 0 mode
    of the correlation matrix shrinks by |lambda_f| per layer (the normalised map has slope 1 at
    c = 1). Tolerance 2%: at 30 layers 1 - c^l ~ 0.03 and the map's local slope differs from 1
    by (3/2) k sqrt(1 - c) (k = 0.30) only in the uniform part; the measured gap is ~0.2%."""
    images = np.random.default_rng(6).standard_normal((1, 1, 8))
    res = propagate("relu", v=V, sigma_w2=2.0, sigma_b2=0.0, depth=30, images=images, record=True)
    assert res.unavailable is not None and "every q is a fixed point" in res.unavailable
    ref = reference_layers(images, 2.0, 0.0, 30)
    assert res.history is not None
    assert np.max(np.abs(res.history[-1] - ref[-1])) <= 1e-12 * np.max(np.abs(ref[-1]))
    # f = 1, the slowest non-uniform mode (weaker ones are overtaken by second-order terms,
    # e.g. f = 2 fed by f = 1 twice at |lambda_1|^2 = 0.73 > |lambda_2| = 0.5)
    assert res.correlation_rate[1] == pytest.approx(abs(res.lam[1]), rel=2e-2)
