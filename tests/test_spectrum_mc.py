"""Tests of mftheory.montecarlo.jacobians: sampled Jacobian spectra of finite random networks.

The references are exact identities of the finite networks (an orthogonal linear network is an
isometry up to its gain; the looks-linear ReLU network equals a linear one; the rank of a ReLU
Jacobian is fixed by its masks), exact finite-N moments of products of Gaussian matrices,
a 50-digit recomputation of one product, and the free-probability variance of docs/theory.md
section 5, never numbers produced by the sampler itself.

How the tolerances are set. A sampled spectrum pools ``draws`` independent networks; the
standard error (SE) of a pooled statistic comes from the spread across draws (the mean's from
the per-draw means, the variance's by the delete-one-draw jackknife). (estimate - truth) / SE
is then roughly Student t with ``draws - 1`` degrees of freedom: with 20 or more draws a 4 SE
bound fails by chance with probability below ~1e-3 (t with 19 dof: 7.7e-4), and the fixed seeds
make every run deterministic anyway. Where the expectation is exact at finite N (the mean and
second moment of a linear Gaussian network, the ReLU rank count, the Delta-Orthogonal CNN
against a fully connected network of the CNN's channel width) the tolerance is that alone.
Comparisons with the N -> infinity free-probability limit add a finite-N bias allowance of
order L/N, stated and measured where it is used.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import mpmath
import numpy as np
import pytest
from conftest import slow_except
from scipy.stats import binom

from mftheory.errors import MFTheoryError
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.montecarlo.jacobians import (
    SampledSpectrum,
    sample_delta_orthogonal_spectrum,
    sample_jacobian_spectrum,
    sample_looks_linear_spectrum,
)

K_SE = 4.0  # standard errors allowed (see the module docstring)
EXACT = 1e-10  # relative round-off allowed where every value is known exactly (a few L ulp)
TANH_B2 = 0.05  # Schoenholz et al.'s bias variance, docs/theory.md section 5


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


def gaussian_product_moments(width: int, depth: int, sigma_w2: float) -> tuple[float, float]:
    """Exact ``E[tr M] / N`` and ``E[tr M^2] / N`` for ``M = J^T J``, ``J = W_L ... W_1``.

    ``W`` has i.i.d. ``N(0, s / N)`` entries. With ``A = J' J'^T`` for the first ``L - 1``
    factors and ``w_a`` the rows of the new factor, Wick's theorem gives
    ``E[tr (W A W^T)^2] = s^2 [(1 + 1/N) tr A^2 + (tr A)^2 / N]`` (``a != b`` pairs contribute
    ``(s/N)^2 tr A^2``, the ``N`` diagonal ones ``(s/N)^2 [(tr A)^2 + 2 tr A^2]``) and
    ``E[(tr W A W^T)^2] = s^2 [(tr A)^2 + 2 tr A^2 / N]``: a closed linear recursion for
    ``T = E tr M^2`` and ``U = E (tr M)^2`` from ``T_0 = N``, ``U_0 = N^2``. As N -> infinity
    ``T / N -> s^{2L} (L + 1)``, the Fuss-Catalan number (tested below); at ``L = 1`` it is the
    Wishart ``2 + 1/N``.
    """
    n = float(width)
    t, u = n, n * n
    for _ in range(depth):
        t, u = sigma_w2**2 * ((1.0 + 1.0 / n) * t + u / n), sigma_w2**2 * (u + 2.0 * t / n)
    return sigma_w2**depth, t / n


def fuss_catalan(depth: int, k: int) -> float:
    """``k``-th moment of a product of ``depth`` free Wishart (Marchenko-Pastur, ratio 1)
    matrices of mean 1: ``binom((L + 1) k, k) / (L k + 1)``."""
    return math.comb((depth + 1) * k, k) / (depth * k + 1)


def tanh_critical() -> tuple[float, float, float]:
    """``(sigma_w2, q*, s)`` at the tanh critical point with ``sigma_b2 = 0.05``, where
    ``s = mu_2 / mu_1^2 - 1`` with ``mu_k = E[phi'(sqrt(q*) z)^{2k}]`` (Gauss-Hermite, 200
    nodes, independent of the project's quadrature) is the per-layer growth of
    ``var / mean^2`` for orthogonal weights (docs/theory.md section 5; Gaussian adds 1)."""
    cp = critical_point("tanh", sigma_b2=TANH_B2)
    w2, q = float(cp.sigma_w2), float(cp.q_star)
    z, wt = np.polynomial.hermite_e.hermegauss(200)
    wt = wt / wt.sum()
    d2 = 1.0 / np.cosh(math.sqrt(q) * z) ** 4  # phi'(u)^2 = sech(u)^4
    mu1, mu2 = float(wt @ d2), float(wt @ d2**2)
    return w2, q, mu2 / mu1**2 - 1.0


def per_draw_se(x: np.ndarray) -> float:
    """Standard error of the mean of per-draw statistics ``x``."""
    return float(np.std(x, ddof=1) / math.sqrt(x.size))


def second_moments(r: SampledSpectrum) -> np.ndarray:
    """Per-draw ``(1/N) tr (J J^T)^2``."""
    return np.asarray(np.mean(r.values**2, axis=1))


def replay_gaussian_fc(
    seed: int, *, width: int, depth: int, draws: int, sigma_w2: float, sigma_b2: float, q0: float
) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """The Gaussian weights and layer inputs ``h^{l-1}`` of :func:`sample_jacobian_spectrum`,
    redrawn from the documented stream order (per draw ``h^0``, then per layer ``W^l, b^l``).
    Only the ReLU forward pass is recomputed; returns ``(weights, pre-activations)`` per draw.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        h = rng.standard_normal(width) * math.sqrt(q0)
        ws, hs = [], []
        for _ in range(depth):
            w = rng.standard_normal((width, width)) * math.sqrt(sigma_w2 / width)
            b = rng.standard_normal(width) * math.sqrt(sigma_b2)
            ws.append(w)
            hs.append(h)
            h = w @ np.maximum(h, 0.0) + b
        out.append((ws, hs))
    return out


# --------------------------------------------------------------------------------------------
# Exact spectra
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigma_w2", "sigma_b2", "depth"),
    [(1.0, 0.0, 1), (1.0, 0.0, 6), (1.0, 0.3, 4), (1.44, 0.0, 3)],
)
def test_linear_orthogonal_network_is_a_scaled_isometry(
    sigma_w2: float, sigma_b2: float, depth: int
) -> None:
    # J = sigma_w^L Q_L ... Q_1 exactly; biases do not enter J. Round-off: a few L ulp.
    r = sample_jacobian_spectrum(
        "linear", sigma_w2=sigma_w2, sigma_b2=sigma_b2, depth=depth, width=64, draws=2, seed=1
    )
    assert r.values.shape == (2, 64)
    np.testing.assert_allclose(r.values, sigma_w2**depth, rtol=EXACT, atol=0)
    assert r.unresolved_share == 0.0


@pytest.mark.parametrize("depth", [2, 5, 20])
@pytest.mark.parametrize("width", [8, 64])
def test_looks_linear_relu_network_is_orthogonal(depth: int, width: int) -> None:
    # relu(u) - relu(-u) = u through the actual masks: J = W_L ... W_1, orthogonal. 1e-9 is
    # the round-off of a 20-layer product of 2N-wide matrices with room to spare (seen: 4e-15).
    r = sample_looks_linear_spectrum(depth=depth, width=width, draws=2, seed=3)
    np.testing.assert_allclose(r.values, 1.0, rtol=1e-9, atol=0)
    assert (r.network, r.activation, r.weights) == ("looks-linear", "relu", "orthogonal")
    assert (r.sigma_w2, r.sigma_b2, r.q0, r.depth, r.width) == (1.0, 0.0, 1.0, depth, width)


@pytest.mark.parametrize("depth", [2, 5, 20])
def test_looks_linear_gain_scales_every_singular_value(depth: int) -> None:
    # Each block W_l has all singular values 1.2, so J J^T = 1.2^(2L) I. Tolerance as above.
    r = sample_looks_linear_spectrum(depth=depth, width=16, gain=1.2, draws=2, seed=4)
    np.testing.assert_allclose(r.values, 1.2 ** (2 * depth), rtol=1e-9, atol=0)
    assert r.sigma_w2 == pytest.approx(1.44, rel=1e-15)


@pytest.mark.parametrize(
    ("channels", "size", "kernel", "sigma_w2"),
    [(8, 5, 3, 1.0), (6, 4, 1, 1.3), (5, 3, 5, 0.8)],  # the last kernel wraps past the image
)
def test_linear_delta_orthogonal_cnn_is_a_scaled_isometry(
    channels: int, size: int, kernel: int, sigma_w2: float
) -> None:
    # A Delta-Orthogonal convolution is sigma_w times an isometry of periodic images
    # (docs/theory.md section 6), so every squared singular value of J is sigma_w2^L exactly.
    r = sample_delta_orthogonal_spectrum(
        "linear",
        sigma_w2=sigma_w2,
        sigma_b2=0.1,
        depth=4,
        channels=channels,
        size=size,
        kernel=kernel,
        draws=2,
        seed=2,
    )
    assert r.values.shape == (2, channels * size)
    np.testing.assert_allclose(r.values, sigma_w2**4, rtol=EXACT, atol=0)
    assert (r.channels, r.size, r.kernel, r.width) == (channels, size, kernel, channels * size)


# --------------------------------------------------------------------------------------------
# Products of Gaussian matrices
# --------------------------------------------------------------------------------------------


def test_fuss_catalan_is_the_large_width_limit_of_the_exact_moments() -> None:
    # The recursion's N -> infinity limit against the closed form; FC_L(2) = L + 1.
    for depth in range(1, 11):
        assert fuss_catalan(depth, 2) == depth + 1
        _, m2 = gaussian_product_moments(10**12, depth, 1.0)
        assert m2 == pytest.approx(depth + 1, rel=1e-9)
    assert gaussian_product_moments(7, 1, 1.0)[1] == pytest.approx(2.0 + 1.0 / 7, rel=1e-14)


@pytest.mark.parametrize(
    ("width", "depth", "sigma_w2", "draws"),
    [(200, 1, 1.0, 40), (200, 3, 1.0, 40), (100, 4, 1.3, 100), (10, 2, 1.0, 2000)],
)
def test_linear_gaussian_moments(width: int, depth: int, sigma_w2: float, draws: int) -> None:
    # E[mean] = sigma_w2^L and E[second moment] from the exact finite-N recursion: 4 SE, no
    # bias allowance. N = 10 shows the finite-N term matters: exact 3.33 vs the limit 3.
    r = sample_jacobian_spectrum(
        "linear",
        sigma_w2=sigma_w2,
        sigma_b2=0.0,
        depth=depth,
        width=width,
        weights="gaussian",
        draws=draws,
        seed=11,
    )
    mean_ref, m2_ref = gaussian_product_moments(width, depth, sigma_w2)
    assert abs(r.mean - mean_ref) <= K_SE * r.mean_se
    m2 = second_moments(r)
    assert abs(float(m2.mean()) - m2_ref) <= K_SE * per_draw_se(m2)


def test_finite_width_term_of_the_second_moment_is_resolved() -> None:
    # Same run as the N = 10 case above: the N -> infinity value L + 1 = 3 is far outside
    # the error bars (about 10 SE), so the exact recursion is what the sampler matches.
    r = sample_jacobian_spectrum(
        "linear", sigma_w2=1.0, sigma_b2=0.0, depth=2, width=10, weights="gaussian", draws=2000
    )
    m2 = second_moments(r)
    assert abs(float(m2.mean()) - fuss_catalan(2, 2)) > 6 * per_draw_se(m2)


def test_floor_against_a_50_digit_product() -> None:
    # The weights are redrawn from the documented stream and multiplied at 50 digits. Values
    # above the floor must match to 1e-3 relative (seen: 1e-5: the floor is conservative);
    # this deep Gaussian product also has values below it (the limitation documented).
    width, depth, seed = 24, 16, 3
    r = sample_jacobian_spectrum(
        "linear",
        sigma_w2=1.0,
        sigma_b2=0.0,
        depth=depth,
        width=width,
        weights="gaussian",
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    rng.standard_normal(width)  # h^0 (does not enter a linear network's J)
    with mpmath.workdps(50):
        prod = mpmath.eye(width)
        for _ in range(depth):
            w = rng.standard_normal((width, width)) * math.sqrt(1.0 / width)
            rng.standard_normal(width)  # b^l
            prod = mpmath.matrix(w.tolist()) * prod
        sv = mpmath.svd_r(prod, compute_uv=False)
        ref = np.sort(np.array([float(s) ** 2 for s in sv]))[::-1]
    above = ref > r.floor
    assert r.floor == pytest.approx((width * np.finfo(float).eps) ** 2 * r.values.max())
    np.testing.assert_allclose(r.values[0][above], ref[above], rtol=1e-3, atol=0)
    assert 0.0 < r.unresolved_share < 0.5


# --------------------------------------------------------------------------------------------
# ReLU: half of the singular values are zero
# --------------------------------------------------------------------------------------------


def expected_zero_share(width: int, depth: int) -> float:
    """``1 - E[min_l S_l] / N`` for i.i.d. ``S_l ~ Binomial(N, 1/2)``: see the test below."""
    k = np.arange(1, width + 1)
    e_min = float(np.sum(binom.sf(k - 1, width, 0.5) ** depth))
    return 1.0 - e_min / width


@pytest.mark.parametrize("depth", [1, 3])
def test_relu_zero_singular_values_match_the_masks(depth: int) -> None:
    # rank J = min_l |S_l| (S_l the active units of D^l; with Gaussian weights the chain of
    # restricted maps is generic), so the number of values at the floor is N - min_l |S_l|
    # exactly, draw by draw; the masks come from an independent replay of the forward pass.
    # Zero values come out at <= 1e-3 floor and the others above 1e17 floor (seen), so the
    # count cannot depend on where exactly the floor sits: asserted as a gap of 1e6.
    width, draws, seed = 200, 30, 5
    r = sample_jacobian_spectrum(
        "relu",
        sigma_w2=2.0,
        sigma_b2=0.0,
        depth=depth,
        width=width,
        weights="gaussian",
        draws=draws,
        seed=seed,
    )
    replay = replay_gaussian_fc(
        seed, width=width, depth=depth, draws=draws, sigma_w2=2.0, sigma_b2=0.0, q0=r.q0
    )
    for d, (_, hs) in enumerate(replay):
        active = min(int(np.sum(h > 0)) for h in hs)
        below = r.values[d] <= r.floor
        assert int(below.sum()) == width - active
        assert np.all(r.values[d][~below] > 1e6 * r.floor)
        assert np.all(r.values[d][below] < 1e-2 * r.floor)


@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("depth", [1, 3])
def test_relu_share_of_zero_singular_values_is_about_half(weights: str, depth: int) -> None:
    # With zero biases h^l = W x is symmetric given the layer below (Gaussian, or uniform on a
    # sphere for orthogonal W), so each unit is active with probability 1/2 independently and
    # the S_l are i.i.d. Binomial(N, 1/2): the zero share has expectation 1 - E[min S_l] / N,
    # exactly 1/2 at L = 1 and 0.530 at L = 3, N = 200 (1/2 + O(1/sqrt N)). 4 SE over draws.
    width, draws = 200, 30
    r = sample_jacobian_spectrum(
        "relu",
        sigma_w2=2.0,
        sigma_b2=0.0,
        depth=depth,
        width=width,
        weights=weights,
        draws=draws,
        seed=6,
    )
    per_draw = np.mean(r.values <= r.floor, axis=1)
    assert float(per_draw.mean()) == pytest.approx(r.unresolved_share, abs=1e-15)
    assert abs(r.unresolved_share - expected_zero_share(width, depth)) <= K_SE * per_draw_se(
        per_draw
    )
    assert expected_zero_share(width, 1) == pytest.approx(0.5, abs=1e-12)


# --------------------------------------------------------------------------------------------
# tanh at criticality: mean chi_1^L = 1, variance from free probability
# --------------------------------------------------------------------------------------------


def test_free_probability_reference_reproduces_theory_numbers() -> None:
    # docs/theory.md section 5 quotes var/mean^2 = 0.685, 1.369, 2.738 at L = 2, 4, 8.
    _, _, s = tanh_critical()
    for depth, quoted in ((2, 0.685), (4, 1.369), (8, 2.738)):
        assert depth * s == pytest.approx(quoted, abs=5e-4)


@pytest.mark.parametrize("weights", slow_except(["orthogonal", "gaussian"], ["gaussian"]))
def test_tanh_critical_mean_is_one(weights: str) -> None:
    # chi_1^L = 1 at the critical point. Tolerance 4 SE + 0.5 L / N: a finite-N bias of the
    # mean of about 0.1-0.2 L / N was measured (orthogonal, N = 50-100, 800-2000 draws).
    w2, q, _ = tanh_critical()
    width, depth = 300, 4
    r = sample_jacobian_spectrum(
        "tanh",
        sigma_w2=w2,
        sigma_b2=TANH_B2,
        depth=depth,
        width=width,
        weights=weights,
        draws=20,
        seed=7,
    )
    assert r.q0 == pytest.approx(q, rel=1e-8)  # the default input is at the fixed point
    assert fixed_point("tanh", sigma_w2=w2, sigma_b2=TANH_B2).chi_1 == pytest.approx(1.0)
    assert abs(r.mean - 1.0) <= K_SE * r.mean_se + 0.5 * depth / width


@pytest.mark.parametrize("depth", slow_except([2, 4, 8], [2]))
def test_tanh_critical_orthogonal_normalized_variance(depth: int) -> None:
    # var/mean^2 -> L (mu_2/mu_1^2 - 1) as N -> infinity. At finite N it is biased upwards by
    # about 0.4-0.7 L / N relative (L = 8: +9.9% at N = 50, +4.2% at 100, +1.1% at 300, +0.8%
    # at 500, +0.5-0.7% at 1000, each within ~0.3%), so the tolerance is 4 SE + 1.0 L / N
    # relative; at N = 300 that is 1-3%.
    w2, _, s = tanh_critical()
    width = 300
    r = sample_jacobian_spectrum(
        "tanh", sigma_w2=w2, sigma_b2=TANH_B2, depth=depth, width=width, draws=20, seed=8
    )
    ref = depth * s
    assert abs(r.normalized_variance - ref) <= K_SE * r.normalized_variance_se + ref * depth / width


@pytest.mark.parametrize("depth", slow_except([2, 4], [2]))
def test_tanh_critical_gaussian_normalized_variance(depth: int) -> None:
    # Gaussian weights add s_1 = -1 per layer: L (mu_2/mu_1^2 - 1 + 1). Their finite-N bias is
    # larger, about 1.7-1.9 L / N relative (measured at N = 50-400): allowance 2.5 L / N.
    w2, _, s = tanh_critical()
    width = 300
    r = sample_jacobian_spectrum(
        "tanh",
        sigma_w2=w2,
        sigma_b2=TANH_B2,
        depth=depth,
        width=width,
        weights="gaussian",
        draws=20,
        seed=9,
    )
    ref = depth * (s + 1.0)
    tol = K_SE * r.normalized_variance_se + 2.5 * ref * depth / width
    assert abs(r.normalized_variance - ref) <= tol


@pytest.mark.slow
@pytest.mark.parametrize(("depth", "draws"), [(2, 8), (4, 8), (8, 8), (32, 6), (100, 6)])
def test_tanh_critical_orthogonal_wide_and_deep(depth: int, draws: int) -> None:
    # N = 1000 as in docs/theory.md section 5, up to L = 100 (about 11 s per draw there). With 5-7
    # degrees of freedom the bound is 5 SE (P(|t_5| > 5) = 0.4%) plus the 1.0 L / N relative
    # finite-N allowance of the fast test; the mean also within 5 SE + 0.5 L / N.
    w2, _, s = tanh_critical()
    width = 1000
    r = sample_jacobian_spectrum(
        "tanh", sigma_w2=w2, sigma_b2=TANH_B2, depth=depth, width=width, draws=draws, seed=10
    )
    ref = depth * s
    assert abs(r.normalized_variance - ref) <= 5 * r.normalized_variance_se + ref * depth / width
    assert abs(r.mean - 1.0) <= 5 * r.mean_se + 0.5 * depth / width


# --------------------------------------------------------------------------------------------
# Delta-Orthogonal CNN against the fully connected orthogonal network
# --------------------------------------------------------------------------------------------


def test_delta_orthogonal_cnn_has_the_fully_connected_spectrum() -> None:
    # With a Delta kernel each position a evolves as its own width-c fully connected network
    # (J acts on position a through Q_L D_L(a) ... Q_1 D_1(a)), so each block's spectrum is
    # equal in law to that of an orthogonal FC net of width c = channels: pooled mean and
    # second moment have exactly the same expectation, compared within 4 combined SE. Against
    # the FC net of the same total width N = c n, and against free probability, the CNN
    # carries the finite-width bias of width c (about 0.5 L / c relative for var/mean^2, see
    # the tanh tests): 4 SE + 1.0 L / c relative.
    w2, _, s = tanh_critical()
    channels, size, depth = 64, 4, 4
    cnn = sample_delta_orthogonal_spectrum(
        "tanh",
        sigma_w2=w2,
        sigma_b2=TANH_B2,
        depth=depth,
        channels=channels,
        size=size,
        draws=20,
        seed=12,
    )
    narrow = sample_jacobian_spectrum(
        "tanh", sigma_w2=w2, sigma_b2=TANH_B2, depth=depth, width=channels, draws=80, seed=13
    )
    wide = sample_jacobian_spectrum(
        "tanh", sigma_w2=w2, sigma_b2=TANH_B2, depth=depth, width=channels * size, draws=20, seed=14
    )
    assert cnn.width == wide.width == channels * size

    def close(a: float, sa: float, b: float, sb: float, allowance: float = 0.0) -> bool:
        return abs(a - b) <= K_SE * math.hypot(sa, sb) + allowance

    assert close(cnn.mean, cnn.mean_se, narrow.mean, narrow.mean_se)
    m2_cnn, m2_fc = second_moments(cnn), second_moments(narrow)
    assert close(float(m2_cnn.mean()), per_draw_se(m2_cnn), float(m2_fc.mean()), per_draw_se(m2_fc))
    assert close(
        cnn.normalized_variance,
        cnn.normalized_variance_se,
        narrow.normalized_variance,
        narrow.normalized_variance_se,
    )
    ref = depth * s
    allowance = ref * depth / channels
    assert close(cnn.mean, cnn.mean_se, wide.mean, wide.mean_se, 0.5 * depth / channels)
    assert close(
        cnn.normalized_variance,
        cnn.normalized_variance_se,
        wide.normalized_variance,
        wide.normalized_variance_se,
        allowance,
    )
    assert close(cnn.normalized_variance, cnn.normalized_variance_se, ref, 0.0, allowance)


# --------------------------------------------------------------------------------------------
# Result object, reproducibility, defaults
# --------------------------------------------------------------------------------------------


def small_runs(seed: int, draws: int = 2) -> list[SampledSpectrum]:
    return [
        sample_jacobian_spectrum(
            "tanh", sigma_w2=1.5, sigma_b2=0.1, depth=3, width=12, draws=draws, seed=seed
        ),
        sample_jacobian_spectrum(
            "erf",
            sigma_w2=1.5,
            sigma_b2=0.1,
            depth=3,
            width=12,
            weights="gaussian",
            draws=draws,
            seed=seed,
        ),
        sample_looks_linear_spectrum(depth=3, width=6, gain=0.9, draws=draws, seed=seed),
        sample_delta_orthogonal_spectrum(
            "tanh", sigma_w2=1.5, sigma_b2=0.1, depth=3, channels=4, size=3, draws=draws, seed=seed
        ),
    ]


def test_same_seed_same_values_different_seed_different() -> None:
    for a, b, c in zip(small_runs(0), small_runs(0), small_runs(1), strict=True):
        assert np.array_equal(a.values, b.values)
        assert a.seed == 0 and c.seed == 1
        if a.network != "looks-linear":  # its spectrum is gain^(2L) whatever the seed
            assert not np.allclose(a.values, c.values)
        assert np.all(np.diff(a.values, axis=1) <= 0)  # descending per draw


def test_draws_come_from_one_stream() -> None:
    # The first draw of a 3-draw run is the 1-draw run with the same seed.
    for one, three in zip(small_runs(4, draws=1), small_runs(4, draws=3), strict=True):
        assert np.array_equal(one.values[0], three.values[0])
        assert three.values.shape[0] == 3


def test_floor_and_summary_statistics() -> None:
    r = sample_jacobian_spectrum(
        "tanh", sigma_w2=1.5, sigma_b2=0.1, depth=3, width=20, draws=5, seed=2
    )
    eps = np.finfo(np.float64).eps
    assert r.floor > 0
    assert r.floor == pytest.approx((20 * eps) ** 2 * float(r.values.max()), rel=1e-12)
    flat = r.all_values
    assert flat.shape == (100,)
    assert r.mean == pytest.approx(float(np.mean(flat)), rel=1e-14)
    assert r.variance == pytest.approx(float(np.var(flat)), rel=1e-14)
    assert r.normalized_variance == pytest.approx(r.variance / r.mean**2, rel=1e-14)
    for p in (0.0, 0.25, 0.5, 1.0):
        assert r.quantile(p) == pytest.approx(float(np.quantile(flat, p)), rel=1e-14)
    assert r.quantile(1.0) == float(flat.max())
    with pytest.raises(MFTheoryError, match="quantile p"):
        r.quantile(1.5)


def test_standard_errors_are_the_jackknife_over_draws() -> None:
    # Synthetic values with a mean far above their spread (1e8 + U(0, 1)): the delete-one-draw
    # formula must lose no digits against the brute-force jackknife (np.var, two-pass).
    rng = np.random.default_rng(0)
    values = 1e8 + rng.random((7, 5)) * np.arange(1, 8)[:, None]
    r = SampledSpectrum(
        network="fc",
        activation="x",
        weights="gaussian",
        sigma_w2=1.0,
        sigma_b2=0.0,
        depth=1,
        width=5,
        draws=7,
        q0=1.0,
        seed=0,
        values=values,
        floor=0.0,
    )

    def jackknife(stat: Any) -> float:
        est = np.array([stat(np.delete(values, i, axis=0)) for i in range(7)])
        return float(math.sqrt(6 / 7 * np.sum((est - est.mean()) ** 2)))

    assert r.mean_se == pytest.approx(jackknife(np.mean), rel=1e-6)
    assert r.variance_se == pytest.approx(jackknife(np.var), rel=1e-8)
    assert r.normalized_variance_se == pytest.approx(
        jackknife(lambda v: np.var(v) / np.mean(v) ** 2), rel=1e-8
    )
    one = sample_jacobian_spectrum("tanh", sigma_w2=1.5, sigma_b2=0.1, depth=2, width=8)
    assert math.isnan(one.mean_se) and math.isnan(one.variance_se)
    assert math.isnan(one.normalized_variance_se)


def test_as_dict_is_strict_json() -> None:
    for r in [*small_runs(0, draws=1), *small_runs(0, draws=3)]:
        d = r.as_dict()
        text = json.dumps(d, allow_nan=False)
        back = json.loads(text)
        assert back["network"] == r.network and back["draws"] == r.draws
        assert back["mean"] == pytest.approx(r.mean)
        assert "values" not in back
        if r.draws == 1:
            assert back["mean_se"] is None and back["variance_se"] is None
        else:
            assert back["mean_se"] == pytest.approx(r.mean_se)
        assert set(back["quantiles"]) == {"0.01", "0.1", "0.5", "0.9", "0.99"}
        full = json.loads(json.dumps(r.as_dict(include_values=True), allow_nan=False))
        assert np.array_equal(np.array(full["values"]), r.values)
    cnn = small_runs(0)[3].as_dict()
    assert (cnn["channels"], cnn["size"], cnn["kernel"], cnn["width"]) == (4, 3, 3, 12)


def test_default_input_variance() -> None:
    # tanh: q*; relu above its critical line: q* is infinite, q0 = 1 (phi' ignores q > 0);
    # softplus there: no finite q* and phi' depends on q, so refuse; an explicit q0 is kept.
    fp = fixed_point("tanh", sigma_w2=1.5, sigma_b2=0.1)
    r = sample_jacobian_spectrum("tanh", sigma_w2=1.5, sigma_b2=0.1, depth=1, width=4)
    assert r.q0 == pytest.approx(float(fp.q_star), rel=1e-12)
    assert sample_jacobian_spectrum("relu", sigma_w2=3.0, sigma_b2=0.0, depth=1, width=4).q0 == 1
    # relu below its critical line without bias: q* = 0, where every unit would sit on the
    # kink (J = 0); q0 = 1 instead. The mean is chi_1^L = (sigma_w2 / 2)^L exactly in
    # expectation at any N (w -> -w flips the mask of a unit but not its row of J): 4 SE.
    r = sample_jacobian_spectrum(
        "relu", sigma_w2=1.5, sigma_b2=0.0, depth=3, width=50, weights="gaussian", draws=40
    )
    assert r.q0 == 1.0
    assert abs(r.mean - 0.75**3) <= K_SE * r.mean_se
    with pytest.raises(MFTheoryError, match="no finite q"):
        sample_jacobian_spectrum("softplus", sigma_w2=3.0, sigma_b2=0.0, depth=1, width=4)
    with pytest.raises(MFTheoryError, match="no finite q"):
        sample_delta_orthogonal_spectrum(
            "softplus", sigma_w2=3.0, sigma_b2=0.0, depth=1, channels=2, size=2
        )
    r = sample_jacobian_spectrum("softplus", sigma_w2=3.0, sigma_b2=0.0, depth=2, width=4, q0=0.7)
    assert r.q0 == 0.7


# --------------------------------------------------------------------------------------------
# Input validation and overflow
# --------------------------------------------------------------------------------------------

FC: dict[str, Any] = {"sigma_w2": 1.0, "sigma_b2": 0.0, "depth": 2, "width": 4}
CNN: dict[str, Any] = {"sigma_w2": 1.0, "sigma_b2": 0.0, "depth": 2, "channels": 2, "size": 3}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"depth": 0}, "depth must be at least 1"),
        ({"depth": 2.0}, "depth must be an integer"),
        ({"width": 0}, "width must be at least 1"),
        ({"width": True}, "width must be an integer"),
        ({"draws": 0}, "draws must be at least 1"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"weights": "uniform"}, "weights must be 'gaussian' or 'orthogonal'"),
        ({"sigma_w2": -1.0}, "sigma_w2 must be finite and non-negative"),
        ({"sigma_b2": math.nan}, "sigma_b2 must be finite and non-negative"),
        ({"sigma_w2": math.inf}, "sigma_w2 must be finite and non-negative"),
        ({"sigma_w2": [1.0, 2.0]}, "single numbers"),
        ({"q0": -0.5}, "q0 must be a finite non-negative number"),
        ({"q0": math.inf}, "q0 must be a finite non-negative number"),
    ],
)
def test_fc_input_validation(changes: dict[str, Any], match: str) -> None:
    kwargs: dict[str, Any] = {**FC, **changes}
    with pytest.raises(MFTheoryError, match=match):
        sample_jacobian_spectrum("tanh", **kwargs)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"depth": 1}, r"depth must be at least 2 \(a first and a last weight layer\)"),
        ({"width": 0}, "width must be at least 1"),
        ({"draws": 0}, "draws must be at least 1"),
        ({"gain": -1.0}, "gain must be a finite non-negative number"),
        ({"gain": math.inf}, "gain must be a finite non-negative number"),
        ({"gain": "big"}, "gain must be a finite non-negative number"),
        ({"seed": -3}, "seed must be at least 0"),
    ],
)
def test_looks_linear_input_validation(changes: dict[str, Any], match: str) -> None:
    kwargs: dict[str, Any] = {"depth": 2, "width": 4, **changes}
    with pytest.raises(MFTheoryError, match=match):
        sample_looks_linear_spectrum(**kwargs)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"kernel": 2}, "kernel must be odd"),
        ({"kernel": 0}, "kernel must be at least 1"),
        ({"channels": 0}, "channels must be at least 1"),
        ({"size": 0}, "size must be at least 1"),
        ({"depth": 0}, "depth must be at least 1"),
        ({"draws": -1}, "draws must be at least 1"),
        ({"sigma_b2": -0.1}, "sigma_b2 must be finite and non-negative"),
    ],
)
def test_cnn_input_validation(changes: dict[str, Any], match: str) -> None:
    kwargs: dict[str, Any] = {**CNN, **changes}
    with pytest.raises(MFTheoryError, match=match):
        sample_delta_orthogonal_spectrum("tanh", **kwargs)


def test_unknown_activation_is_refused() -> None:
    with pytest.raises(MFTheoryError):
        sample_jacobian_spectrum("no_such_activation", **FC)


def test_overflow_is_an_error_naming_the_layer() -> None:
    # sigma_w = 1e150: J has singular values 1e150 after layer 1, 1e300 after 2, inf after 3.
    with pytest.raises(MFTheoryError, match="Jacobian is not finite after layer 3"):
        sample_jacobian_spectrum("linear", sigma_w2=1e300, sigma_b2=0.0, depth=3, width=4, q0=1.0)
    with pytest.raises(MFTheoryError, match=r"squared singular values .* overflow"):
        sample_jacobian_spectrum("linear", sigma_w2=1e200, sigma_b2=0.0, depth=2, width=4, q0=1.0)
    with pytest.raises(MFTheoryError, match="after layer 2"):
        sample_looks_linear_spectrum(depth=2, width=4, gain=1e160)
    with pytest.raises(MFTheoryError, match="Jacobian is not finite after layer 3"):
        sample_delta_orthogonal_spectrum(
            "linear", sigma_w2=1e300, sigma_b2=0.0, depth=3, channels=2, size=3, q0=1.0
        )


def test_imports_no_heavy_modules() -> None:
    code = (
        "import sys, mftheory.montecarlo.jacobians\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'typer', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
