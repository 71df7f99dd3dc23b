"""Tests of mftheory.cnn.rates (effective per-mode rates of the covariance map over layers
0..L) and of ``mftheory depthscales --depth``.

The references are independent of the code under test: closed forms (a linear map), and the
covariance map written out here on a 1D ring, with its own two-dimensional Gauss-Hermite
quadrature, its own circular average A_v and its own Fourier amplitudes (docs/theory.md
sections 2 and 4).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mftheory.cli import app
from mftheory.cnn.modes import mode_eigenvalues
from mftheory.cnn.rates import (
    DEFAULT_PERTURBATION,
    effective_mode_rates,
    pair_perturbation_start,
)
from mftheory.errors import MFTheoryError

V = np.array([0.025, 0.95, 0.025])  # the issue's (and Fig. S4's) variance vector
N = 10
#: Critical tanh at sigma_b2 = 0.05 (Schoenholz et al. 2017: sigma_w2 ~ 1.76); the reference
#: map below runs at exactly this sigma_w2, so its precise criticality does not matter.
W2_CRIT, B2 = 1.7609546396067381, 0.05

# --- an independent covariance map on a 1D ring ---------------------------------------------

#: Gauss-Hermite nodes: tanh(sqrt(q) z) has its nearest poles at |Im z| = pi / (2 sqrt(2 q))
#: ~ 1.5 for q ~ 0.6, so 120 nodes per axis converge far below 1e-15.
_X, _W = np.polynomial.hermite.hermgauss(120)
_Z = _X * math.sqrt(2.0)
_P = _W / math.sqrt(math.pi)


def _ref_tanh_map(S: np.ndarray, w2: float, b2: float, v: np.ndarray) -> np.ndarray:
    """``A_v * C(S)`` for tanh, every entry by a 120 x 120 Gauss-Hermite rule on the
    Cholesky factor of its 2 x 2 marginal, then ``(A_v M)_ab = sum_k v_k M_{a+k, b+k}``."""
    n = S.shape[0]
    q = np.diag(S)
    C = np.empty_like(S)
    for a in range(n):
        for b in range(a, n):
            rho = min(1.0, S[a, b] / math.sqrt(q[a] * q[b]))
            u1 = math.sqrt(q[a]) * _Z[:, None]
            u2 = math.sqrt(q[b]) * (rho * _Z[:, None] + math.sqrt(1.0 - rho * rho) * _Z[None, :])
            e = float(np.sum(_P[:, None] * _P[None, :] * np.tanh(u1) * np.tanh(u2)))
            C[a, b] = C[b, a] = w2 * e + b2
    out = np.zeros_like(C)
    for k, weight in zip((-1, 0, 1), v, strict=True):
        out += weight * np.roll(C, (-k, -k), axis=(0, 1))  # reads C[a + k, b + k]
    return out


def _ref_q_star(w2: float, b2: float) -> float:
    """The fixed point of the q-map by plain iteration (chi_q* ~ 0.52: 200 steps suffice)."""
    q = 1.0
    for _ in range(200):
        q = w2 * float(np.sum(_P * np.tanh(math.sqrt(q) * _Z) ** 2)) + b2
    return q


def _ref_amplitudes(eps: np.ndarray) -> np.ndarray:
    """Off-diagonal amplitude of every frequency, straight from the definition (loops):
    the root mean square over offsets t = 1..n-1 of |(1/n) sum_a eps[a, a+t] e^(-2 pi i f a/n)|."""
    n = eps.shape[0]
    out = np.empty(n)
    for f in range(n):
        power = 0.0
        for t in range(1, n):
            d = sum(eps[a, (a + t) % n] * np.exp(-2j * np.pi * f * a / n) for a in range(n)) / n
            power += abs(d) ** 2
        out[f] = math.sqrt(power / (n - 1))
    return out


def _lam(v: np.ndarray, n: int) -> np.ndarray:
    """|lambda_f| of a symmetric 3-tap v: v_0 + 2 v_1 cos(2 pi f / n) (closed form)."""
    f = np.arange(n)
    return np.abs(v[1] + 2.0 * v[0] * np.cos(2.0 * np.pi * f / n))


# --- the pair start ----------------------------------------------------------------------


def test_pair_start_has_equal_amplitude_in_every_mode() -> None:
    q, c, delta = 0.7, 0.4, 0.3
    S = pair_perturbation_start(q, c, N, delta)
    eps = np.full((N, N), q * c)
    np.fill_diagonal(eps, q)
    eps -= S
    assert np.count_nonzero(eps) == 2 and eps[0, 1] == eps[1, 0] == pytest.approx(q * delta)
    amp = _ref_amplitudes(eps)
    # one entry on each of two cyclic diagonals: |D_f| = q delta / n on both, so the RMS over
    # the n - 1 off-diagonal diagonals is q delta sqrt(2 / (n - 1)) / n, for every f
    expected = q * delta * math.sqrt(2.0 / (N - 1)) / N
    np.testing.assert_allclose(amp, expected, rtol=1e-14)


def test_pair_start_2d_perturbs_the_neighbour_along_the_last_axis() -> None:
    S = pair_perturbation_start(1.0, 1.0, (3, 4), 0.25)
    assert S[0, 1] == S[1, 0] == 0.75
    assert np.count_nonzero(S != 1.0) == 2


@pytest.mark.parametrize(
    ("c_star", "delta", "shape", "mentions"),
    [
        (1.0, 2.5, 10, "outside [-1, 1]"),
        (0.2, -0.9, 10, "outside [-1, 1]"),
        (1.0, 0.0, 10, "non-zero"),
        (1.0, math.nan, 10, "finite"),
        (1.0, 0.5, 1, "one-pixel"),
    ],
)
def test_pair_start_refuses(c_star: float, delta: float, shape: int, mentions: str) -> None:
    with pytest.raises(MFTheoryError, match=mentions.replace("[", r"\[").replace("]", r"\]")):
        pair_perturbation_start(1.0, c_star, shape, delta)


# --- (1) a linear map: the effective rate is chi_c* |lambda_f| exactly -----------------------


@pytest.mark.parametrize(("w2", "depth"), [(0.6, 10), (0.9, 30)])
def test_linear_activation_effective_rate_is_the_asymptotic_one(w2: float, depth: int) -> None:
    """phi(x) = x makes the map linear, eps^{l+1} = w2 A_v eps^l: every mode shrinks by exactly
    w2 |lambda_f| per layer (chi_c* = w2), at every depth, from any start. Tolerance 1e-12:
    rounding of 30 layers of float64 arithmetic on the strong modes."""
    v = np.array([0.25, 0.5, 0.25])
    r = effective_mode_rates("linear", v=v, sigma_w2=w2, sigma_b2=0.1, depth=depth, image_shape=N)
    exact = w2 * _lam(v, N)  # cos^2(pi f / n), the closed form of docs/theory.md section 4
    ok = r.resolved
    strong = np.array([0, 1, N - 1])
    assert ok[strong].all()
    np.testing.assert_allclose(r.effective_rate[strong], exact[strong], rtol=1e-12)
    np.testing.assert_allclose(r.local_rate[strong], exact[strong], rtol=1e-12)
    # weaker modes: within the error the map itself states, its accumulated floor over the
    # last amplitude (the L-th root divides it by L for the effective rate)
    bound = r.error_floor_last / r.amplitude_last[ok]
    assert (np.abs(r.effective_rate[ok] / exact[ok] - 1) <= bound / depth + 1e-13).all()
    assert (np.abs(r.local_rate[ok] / exact[ok] - 1) <= 2 * bound + 1e-13).all()
    np.testing.assert_allclose(r.asymptotic_rate, exact, rtol=1e-14)
    assert np.isnan(r.effective_rate[~ok]).all() and np.isnan(r.local_rate[~ok]).all()
    xi = -1.0 / np.log(exact[strong])
    np.testing.assert_allclose(r.effective_xi[strong], xi, rtol=1e-10)


def test_linear_activation_from_images_starts_at_layer_one() -> None:
    """From images the range is layers 1..L (the first layer is affine); the map is still
    linear, so the rates are exact (tolerance as above)."""
    v = np.array([0.25, 0.5, 0.25])
    images = np.random.default_rng(3).standard_normal((2, 3, N))
    r = effective_mode_rates("linear", v=v, sigma_w2=0.8, sigma_b2=0.2, depth=25, images=images)
    assert (r.start, r.first, r.depth, r.perturbation) == ("images", 1, 25, None)
    ok = r.resolved
    assert ok[[0, 1, N - 1]].all()
    exact = 0.8 * _lam(v, N)
    bound = r.error_floor_last / r.amplitude_last[ok] / 24 + 1e-13  # as above, 24 layers
    assert (np.abs(r.effective_rate[ok] / exact[ok] - 1) <= bound).all()


def test_small_perturbation_off_criticality_gives_the_asymptotic_rate() -> None:
    """erf in the ordered phase (sigma_w = 1.5, sigma_b = 0.5, chi_c* ~ 0.92): the fixed point
    is hyperbolic, so a perturbation of 1e-6 in correlation follows the linear map to
    O(1e-6) relative; tolerance 1e-5."""
    r = effective_mode_rates(
        "erf", v=V, sigma_w2=2.25, sigma_b2=0.25, depth=20, image_shape=N, perturbation=1e-6
    )
    ok = r.resolved
    assert ok[:3].all()
    np.testing.assert_allclose(r.effective_rate[ok], r.chi_c * _lam(V, N)[ok], rtol=1e-5)


# --- (2) critical tanh: against the map iterated here ---------------------------------------


def test_critical_tanh_matches_an_independent_map() -> None:
    """30 layers of critical tanh from the default pair start, against the map iterated here
    (own quadrature, A_v and amplitudes). The entries of both maps are accurate to ~1e-13, so
    the amplitudes of the modes used (at least 1e-5 at layer 30, with an error of a few 1e-13)
    agree to ~1e-8 relative, and the 30th root of their ratio to ~1e-9; tolerance 1e-8."""
    depth = 30
    r = effective_mode_rates("tanh", v=V, sigma_w2=W2_CRIT, sigma_b2=B2, depth=depth, image_shape=N)
    q = _ref_q_star(W2_CRIT, B2)
    assert r.q_star == pytest.approx(q, rel=1e-12)
    star = np.full((N, N), q)  # c* = 1 at (and below) the critical line with a bias
    S = star.copy()
    S[0, 1] = S[1, 0] = q * (1.0 - DEFAULT_PERTURBATION)
    a0 = _ref_amplitudes(star - S)
    prev = last = a0
    for _ in range(depth):
        S = _ref_tanh_map(S, W2_CRIT, B2, V)
        prev, last = last, _ref_amplitudes(star - S)
    ref_eff = (last / a0) ** (1.0 / depth)
    ref_local = last / prev
    use = last > 1e-5
    assert use.sum() >= 7 and r.resolved[use].all()
    np.testing.assert_allclose(r.effective_rate[use], ref_eff[use], rtol=1e-8, atol=0)
    np.testing.assert_allclose(r.local_rate[use], ref_local[use], rtol=1e-8, atol=0)
    # and the point of the exercise: every non-zero mode decays faster than chi_c* |lambda_f|
    lam = _lam(V, N)
    assert (ref_eff[1:][use[1:]] < lam[1:][use[1:]] - 5e-3).all()


# --- (3) the asymptotic limit --------------------------------------------------------------


def test_critical_effective_rate_tends_to_the_asymptotic_one() -> None:
    """At the critical point the effective rate of the two most persistent modes (f = 0 and
    f = 1, whose second-order rate max_g |lambda_g lambda_(f-g)| does not exceed |lambda_f|)
    climbs monotonically towards chi_c* |lambda_f| as L grows, and stays below it (the
    algebraic approach: the gap shrinks like log(L) / L, not exponentially). Weaker modes
    tend to their second-order rate instead (f = 2: lambda_1^2 = 0.981 > lambda_2 = 0.965)."""
    depths = [25, 50, 100, 200, 400, 800]
    runs = [
        effective_mode_rates("tanh", v=V, sigma_w2=W2_CRIT, sigma_b2=B2, depth=L, image_shape=N)
        for L in depths
    ]
    lam = _lam(V, N)
    for f in (0, 1):
        eff = np.array([run.effective_rate[f] for run in runs])
        assert all(run.resolved[f] for run in runs)
        assert (np.diff(eff) > 0).all(), (f, eff)
        assert (eff < lam[f]).all()
        gap = lam[f] - eff
        assert gap[-1] < gap[0] / 3, (f, gap)
    local = np.array([run.local_rate[1] for run in runs])
    assert (np.diff(local) > 0).all() and (local < lam[1]).all()
    # f = 2 ends above its linear rate, below its second-order one
    assert lam[2] < runs[-2].effective_rate[2] < lam[1] ** 2  # L = 400


# --- refusals -----------------------------------------------------------------------------


def test_effective_mode_rates_refuses_bad_requests() -> None:
    with pytest.raises(MFTheoryError, match="no finite"):
        effective_mode_rates("relu", v=V, sigma_w2=3.0, sigma_b2=0.1, depth=5, image_shape=N)
    with pytest.raises(MFTheoryError, match="at most one"):
        effective_mode_rates(
            "tanh",
            v=V,
            sigma_w2=1.0,
            sigma_b2=0.1,
            depth=5,
            Sigma0=np.eye(N),
            images=np.ones((1, 1, N)),
            image_shape=N,
        )
    with pytest.raises(MFTheoryError, match=">= 2"):
        effective_mode_rates(
            "tanh", v=V, sigma_w2=1.0, sigma_b2=0.1, depth=1, images=np.ones((1, 1, N))
        )
    with pytest.raises(MFTheoryError, match="image_shape"):
        effective_mode_rates("tanh", v=V, sigma_w2=1.0, sigma_b2=0.1, depth=3)


def test_as_dict_records_the_start_and_settings() -> None:
    r = effective_mode_rates("erf", v=V, sigma_w2=2.25, sigma_b2=0.25, depth=5, image_shape=N)
    d = json.loads(json.dumps(r.as_dict(), allow_nan=False))
    assert d["start"] == "pair" and d["perturbation"] == DEFAULT_PERTURBATION
    assert d["first_layer"] == 0 and d["depth"] == 5 and d["image_shape"] == [N]
    assert d["tol"] > 0 and d["margin"] == r.margin
    assert len(d["modes"]) == N
    f, lam = mode_eigenvalues(V, N)
    for mode, freq, lam_f in zip(d["modes"], f, lam, strict=True):
        assert mode["frequency"] == [int(freq[0])]
        assert mode["abs_lambda"] == abs(lam_f)


# --- the command --------------------------------------------------------------------------

runner = CliRunner()


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


def test_depthscales_depth_json_carries_the_core_rates() -> None:
    args = ["depthscales", "--v", "0.025,0.95,0.025", "--depth", "40", "--format", "json"]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    r = effective_mode_rates(
        "tanh", v=V, sigma_w2=data["sigma_w2"], sigma_b2=B2, depth=40, image_shape=N
    )
    eff = data["effective"]
    assert eff["start"] == "pair" and eff["perturbation"] == 0.5 and eff["depth"] == 40
    assert "starting_covariance" in eff and eff["first_layer"] == 0
    for mode in data["modes"]:
        assert mode | r.rate_of(mode["frequency"]) == mode
        assert mode["rate"] == pytest.approx(mode["abs_lambda"], rel=1e-9)  # chi_c* = 1


def test_depthscales_depth_table_and_csv_columns() -> None:
    base = ["depthscales", "--v", "gs2", "--dim", "2", "--n", "4", "--depth", "20"]
    table = _run(*base, "--perturbation", "0.2")
    assert table.exit_code == 0, table.output
    assert "effective rate 0..20" in table.stdout and "local rate l=20" in table.stdout
    assert "c* - 0.2" in table.stdout
    csv_out = _run(*base, "--format", "csv")
    assert csv_out.exit_code == 0, csv_out.output
    header = csv_out.stdout.splitlines()[0].split(",")
    assert {"effective_rate", "effective_xi", "local_rate"} <= set(header)
    plain = _run("depthscales", "--v", "gs2", "--dim", "2", "--n", "4", "--format", "csv")
    assert "effective_rate" not in plain.stdout.splitlines()[0]


def test_depthscales_default_perturbation_is_the_core_default() -> None:
    from mftheory.cli.commands import depthscales

    assert depthscales.DEFAULT_PERTURBATION == DEFAULT_PERTURBATION
    noted = _run("depthscales", "--perturbation", "0.2", "--format", "json")
    assert noted.exit_code == 0 and "--perturbation has no effect without --depth" in noted.stderr


def test_depthscales_depth_refusals_and_divergent_points() -> None:
    bad = _run("depthscales", "--depth", "10", "--perturbation", "3")
    assert bad.exit_code == 2 and "outside [-1, 1]" in bad.stderr
    zero = _run("depthscales", "--depth", "0")
    assert zero.exit_code == 2
    divergent = _run(
        "depthscales", "--act", "relu", "--sigma-w2", "3", "--depth", "5", "--format", "json"
    )
    assert divergent.exit_code == 0, divergent.output
    data = json.loads(divergent.stdout)
    assert all(m["effective_rate"] is None for m in data["modes"])
    eff = data["effective"]
    assert (eff["depth"], eff["perturbation"]) == (5, 0.5) and "q_star" not in eff
    assert "starting_covariance" in eff


def test_depthscales_depth_from_an_image() -> None:
    """--image: the map starts from the image's first layer (layers 1..L), as the core does
    from the same array (docs/images/digit0.npy read with --dim 1: 8 channels of 8 pixels)."""
    path = Path(__file__).resolve().parents[1] / "docs" / "images" / "digit0.npy"
    args = ["depthscales", "--v", "0.025,0.95,0.025", "--depth", "30", "--image", str(path)]
    result = _run(*args, "--dim", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    eff = data["effective"]
    assert eff["start"] == "images" and eff["first_layer"] == 1 and eff["perturbation"] is None
    assert data["n"] == 8 and eff["image_shape"] == [8]
    images = np.load(path)[None].astype(np.float64)  # (1 image, 8 channels, 8 pixels)
    r = effective_mode_rates(
        "tanh", v=V, sigma_w2=data["sigma_w2"], sigma_b2=B2, depth=30, images=images
    )
    for mode in data["modes"]:
        assert mode | r.rate_of(mode["frequency"]) == mode
    assert data["modes"][1]["effective_rate"] < data["modes"][1]["rate"] - 0.01


@pytest.mark.parametrize(
    ("extra", "mentions"),
    [
        (["--image", "sample:digit0"], "needs --depth"),
        (["--image", "sample:digit0", "--depth", "5", "--n", "10"], "--n 10"),
        (["--image", "sample:digit0", "--depth", "5", "--v", "1,2,1"], "2D"),
        (["--image", "sample:digit0", "--depth", "1"], ">= 2"),
    ],
)
def test_depthscales_image_refusals(extra: list[str], mentions: str) -> None:
    result = _run("depthscales", *extra)
    assert result.exit_code == 2, result.output
    assert mentions in result.stderr
