"""Tests of mftheory.cnn.ctransform (the fast C-transform) and mftheory.cnn.propagation (images
through the CNN covariance map, mode amplitudes, fitted rates).

docs/theory.md sections 2 (the map), 3 (the fixed point) and 4 (Fourier modes of each cyclic
diagonal shrink by chi_c* lambda_f per layer).
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from mftheory.activations.builtins import get_activation
from mftheory.cnn.ctransform import CTransformEngine
from mftheory.cnn.modes import mode_eigenvalues, variance_vector
from mftheory.cnn.propagation import (
    fit_decay_rate,
    input_covariance,
    mode_amplitudes,
    propagate,
)
from mftheory.cnn.spatial import apply_A, c_transform, iterate_covariance_map
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import pair_expectation, second_moment
from mftheory.meanfield.fixed_points import fixed_point

# The slow path (spatial.c_transform) is accurate to 1e-12 * sqrt(F_a F_b) per expectation
# (its Hermite/nested tolerance); the engine reports its own bound. Their difference must stay
# below the sum, times sigma_w2, plus rounding.
SLOW_TOL = 1e-12


def random_covariance(size: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size, 2 * size)) * rng.uniform(0.3, 1.5, (size, 1))
    return scale * x @ x.T / (2 * size)


def image_covariance(n: int, seed: int, w2: float, b2: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random((1, 1, n, n))
    return input_covariance(
        x, variance_vector("uniform", kernel=3, dim=2), sigma_w2=w2, sigma_b2=b2
    )


# --- the engine ---------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "gelu"])
def test_engine_series_matches_slow_c_transform(act: str) -> None:
    S = random_covariance(24, seed=1)
    w2, b2 = 1.9, 0.1
    engine = CTransformEngine(act, sigma_w2=w2, sigma_b2=b2)
    C, stats = engine(S)
    ref = c_transform(act, S, sigma_w2=w2, sigma_b2=b2)
    assert stats.method == "series"
    assert np.array_equal(C, C.T)
    scale = float(np.max(np.abs(np.diag(ref))))
    assert np.max(np.abs(C - ref)) <= stats.error_bound + w2 * SLOW_TOL * scale + 1e-15


def test_engine_tables_match_slow_c_transform_near_fixed_point() -> None:
    """Pixel variances within a few percent of q*: the Taylor tables in log(q/q*) are used,
    at orders from 0 up, and agree with the integrals entry by entry."""
    w2, b2 = 1.76, 0.05
    q_star = float(fixed_point("tanh", sigma_w2=w2, sigma_b2=b2).q_star)
    engine = CTransformEngine("tanh", sigma_w2=w2, sigma_b2=b2, q_ref=q_star)
    rng = np.random.default_rng(3)
    orders = set()
    for spread in (5e-3, 1e-3, 1e-6, 0.0):
        base = random_covariance(16, seed=4)
        d = np.sqrt(q_star * (1 + spread * rng.uniform(-1, 1, 16)) / np.diag(base))
        S = base * np.outer(d, d)
        C, stats = engine(S)
        ref = c_transform("tanh", S, sigma_w2=w2, sigma_b2=b2)
        assert stats.method == "tables"
        orders.add(stats.order)
        assert np.max(np.abs(C - ref)) <= stats.error_bound + w2 * SLOW_TOL * q_star + 1e-15
    assert 0 in orders and max(orders) >= 2


def test_engine_closed_form_erf(cf: SimpleNamespace) -> None:
    S = random_covariance(10, seed=5)
    w2, b2 = 2.25, 0.25
    C, stats = CTransformEngine("erf", sigma_w2=w2, sigma_b2=b2)(S)
    assert stats.method == "closed-form"
    for a, b in itertools.product(range(10), repeat=2):
        q1, q2 = S[a, a], S[b, b]
        if a == b:
            expected = w2 * cf.second_moment("erf", {}, q1) + b2
        else:
            rho = S[a, b] / math.sqrt(q1 * q2)
            expected = w2 * cf.pair("erf", {}, q1, q2, rho) + b2
        assert C[a, b] == pytest.approx(expected, rel=1e-13, abs=1e-15)


def test_engine_kinked_activation_falls_back_and_stays_exact() -> None:
    """hard_tanh: the Hermite series converges slowly near |rho| = 1, so those entries go to
    the nested quadrature; the result still matches the slow path."""
    S = random_covariance(6, seed=6, scale=2.0)
    S[0, 1] = S[1, 0] = 0.999 * math.sqrt(S[0, 0] * S[1, 1])
    C, stats = CTransformEngine("hard_tanh", sigma_w2=1.5, sigma_b2=0.1)(S)
    ref = c_transform("hard_tanh", S, sigma_w2=1.5, sigma_b2=0.1)
    assert stats.nested > 0
    assert np.max(np.abs(C - ref)) <= 1.5 * 2 * SLOW_TOL * 2.0 + 1e-14


# --- mode amplitudes ----------------------------------------------------------------------


def literal_amplitudes(eps: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The definition with loops: D_f = (1/N) sum_a eps[(i,a),(j,a+t)] e^{-2 pi i f.a/n}."""
    N = math.prod(shape)
    B = eps.shape[0] // N
    pixels = list(itertools.product(*(range(s) for s in shape)))

    def flat(i: int, p: tuple[int, ...]) -> int:
        return i * N + int(np.ravel_multi_index(p, shape))

    off = np.zeros(N)
    diag = np.zeros(N)
    for fi, f in enumerate(pixels):
        for i, j in itertools.product(range(B), repeat=2):
            for t in pixels:
                total = 0j
                for a in pixels:
                    at = tuple((x + y) % s for x, y, s in zip(a, t, shape, strict=True))
                    phase = sum(fk * ak / s for fk, ak, s in zip(f, a, shape, strict=True))
                    total += eps[flat(i, a), flat(j, at)] * np.exp(-2j * np.pi * phase)
                power = abs(total / N) ** 2
                if i == j and not any(t):
                    diag[fi] += power
                else:
                    off[fi] += power
    return np.sqrt(off / (N * B * B - B)), np.sqrt(diag / B)


@pytest.mark.parametrize(("shape", "batch"), [((6,), 1), ((5,), 2), ((4, 3), 1), ((3, 3), 2)])
def test_mode_amplitudes_match_definition(shape: tuple[int, ...], batch: int) -> None:
    size = batch * math.prod(shape)
    eps = random_covariance(size, seed=7) - 0.3
    off, diag = mode_amplitudes(eps, shape)
    ref_off, ref_diag = literal_amplitudes(eps, shape)
    np.testing.assert_allclose(off, ref_off, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(diag, ref_diag, rtol=1e-12, atol=1e-15)


def test_uniform_perturbation_has_amplitude_e_at_f0() -> None:
    eps = np.full((9, 9), 0.25)
    np.fill_diagonal(eps, -0.5)
    off, diag = mode_amplitudes(eps, 9)
    assert off[0] == pytest.approx(0.25, rel=1e-14)
    assert diag[0] == pytest.approx(0.5, rel=1e-14)
    assert np.max(off[1:]) < 1e-15 and np.max(diag[1:]) < 1e-15


def test_fit_decay_rate_exact_geometric_and_unresolved() -> None:
    amp = 0.3 * 0.8 ** np.arange(40)
    rate, window = fit_decay_rate(amp, 1e-30)
    assert rate == pytest.approx(0.8, rel=1e-12)
    assert window == (30, 39)
    rate, window = fit_decay_rate(amp, 1.0)  # nothing above 1e3 * floor
    assert rate is None and window is None


# --- the first layer ----------------------------------------------------------------------


def test_input_covariance_matches_definition() -> None:
    rng = np.random.default_rng(8)
    images = rng.normal(size=(2, 3, 4, 5))
    v = variance_vector("0,1,0;1,4,1;0,1,0") / 8.0
    got = input_covariance(images, v, sigma_w2=1.3, sigma_b2=0.2)
    X = np.moveaxis(images, 1, -1).reshape(-1, 3)
    ref = 1.3 * apply_A(v, X @ X.T / 3, image_shape=(4, 5)) + 0.2
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-15)


# --- propagation --------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["tanh", "erf"])
def test_delta_kernel_uniform_input_is_the_fully_connected_maps(act: str) -> None:
    """A delta v with a spatially uniform input: every pixel follows the q-map and every pair
    the C-map of the fully-connected network (docs/theory.md section 3)."""
    w2, b2 = 1.8, 0.05
    q0, c0 = 0.9, 0.4
    n = 6
    Sigma0 = np.full((n, n), q0 * c0)
    np.fill_diagonal(Sigma0, q0)
    res = propagate(
        act,
        v=variance_vector("delta", kernel=3, dim=1),
        sigma_w2=w2,
        sigma_b2=b2,
        depth=30,
        Sigma0=Sigma0,
        image_shape=n,
        record=True,
    )
    phi = get_activation(act)
    q, c = q0, c0
    assert res.history is not None
    for layer in range(1, 31):
        q_next = w2 * float(second_moment(phi, q)) + b2
        cov = w2 * float(pair_expectation(phi, q, q, c)) + b2
        q, c = q_next, cov / q_next
        S = res.history[layer]
        assert np.allclose(np.diag(S), q, rtol=1e-12, atol=0)
        off = S[~np.eye(n, dtype=bool)]
        assert np.allclose(off, q * c, rtol=1e-11, atol=0)


def test_uniform_fixed_point_stays_fixed() -> None:
    fp = fixed_point("tanh", sigma_w2=2.5, sigma_b2=0.1)
    q, c = float(fp.q_star), float(fp.c_star)
    n = 5
    S = np.full((n * n, n * n), q * c)
    np.fill_diagonal(S, q)
    res = propagate(
        "tanh",
        v=variance_vector("gs2", kernel=3, dim=2),
        sigma_w2=2.5,
        sigma_b2=0.1,
        depth=20,
        Sigma0=S,
        image_shape=(n, n),
    )
    # the fixed point is solved to ~1e-15 relative: Sigma* - Sigma^l stays at that level
    assert np.max(res.amplitude) < 1e-13 * q
    assert np.max(np.abs(res.covariance - S)) < 1e-13 * q


def figs4_eps0(n: int = 10) -> np.ndarray:
    """Appendix F: eps^0 nonzero on the first cyclic diagonal, whose Fourier transform is
    -(1/6)[1, 2/3, (2/3)^3, (2/3)^5, (2/3)^4, (2/3)^2, (2/3)^4, (2/3)^5, (2/3)^3, 2/3]."""
    r = 2.0 / 3.0
    F = -np.array([1, r, r**3, r**5, r**4, r**2, r**4, r**5, r**3, r]) / 6.0
    diag = np.fft.ifft(F).real
    eps = np.zeros((n, n))
    for a in range(n):
        eps[a, (a + 1) % n] = eps[(a + 1) % n, a] = diag[a]
    return eps


@pytest.mark.parametrize("shrink", [0.1, 0.01])
def test_mode_rates_approach_chi_c_lambda_as_perturbation_shrinks(shrink: float) -> None:
    """Fig. S4 setting through the mean-field map (erf, closed forms): the fitted per-layer
    rate of every mode of the first cyclic diagonal tends to chi_c* lambda_f. The deviation is
    second order in the perturbation, so it shrinks about tenfold per tenfold smaller eps0:
    1e-3 relative at eps0/10, 1e-4 at eps0/100."""
    w2, b2 = 2.25, 0.25
    fp = fixed_point("erf", sigma_w2=w2, sigma_b2=b2)
    q, c = float(fp.q_star), float(fp.c_star)
    n = 10
    S = np.full((n, n), q * c)
    np.fill_diagonal(S, q)
    Sigma0 = S - shrink * figs4_eps0(n)
    v = np.array([0.025, 0.95, 0.025])
    res = propagate("erf", v=v, sigma_w2=w2, sigma_b2=b2, depth=60, Sigma0=Sigma0, image_shape=n)
    _, lam = mode_eigenvalues(v, n)
    predicted = float(fp.chi_c) * np.abs(lam)
    np.testing.assert_allclose(res.predicted_rate, predicted, rtol=1e-14)
    assert np.all(np.isfinite(res.measured_rate))
    rel = np.abs(res.measured_rate / predicted - 1)
    assert np.max(rel) < 10 * shrink * 1e-2


def test_propagate_matches_slow_iteration() -> None:
    """The fast engine over 12 layers of a real-image-like input agrees with the slow,
    entry-by-entry spatial map within the accumulated tolerances."""
    w2, b2 = 1.76, 0.05
    S1 = image_covariance(4, seed=9, w2=w2, b2=b2)
    v = variance_vector("uniform", kernel=3, dim=2)
    res = propagate("tanh", v=v, sigma_w2=w2, sigma_b2=b2, depth=12, Sigma0=S1, image_shape=(4, 4))
    ref = iterate_covariance_map(
        "tanh", S1, v, image_shape=(4, 4), sigma_w2=w2, sigma_b2=b2, depth=12
    )
    assert np.max(np.abs(res.covariance - ref)) < 12 * 2 * w2 * SLOW_TOL + 1e-14


def test_propagate_errors() -> None:
    v = variance_vector("uniform", kernel=3, dim=2)
    img = np.ones((1, 1, 4, 4))
    with pytest.raises(MFTheoryError, match="exactly one"):
        propagate("tanh", v=v, sigma_w2=1.0, sigma_b2=0.1, depth=3)
    with pytest.raises(MFTheoryError, match="depth"):
        propagate("tanh", v=v, sigma_w2=1.0, sigma_b2=0.1, depth=0, images=img)
    # issue 16: no finite fixed point is no longer an error; the Sigma* analysis is marked
    # unavailable (tests/test_degenerate.py checks the covariance it still computes)
    res = propagate("relu", v=v, sigma_w2=3.0, sigma_b2=0.1, depth=3, images=img)
    assert res.unavailable is not None and "no finite fixed point" in res.unavailable
    with pytest.raises(MFTheoryError, match="dimension"):
        propagate("tanh", v=[0.2, 0.6, 0.2], sigma_w2=1.0, sigma_b2=0.1, depth=3, images=img)
    with pytest.raises(MFTheoryError, match="sums to"):
        propagate("tanh", v=2 * v, sigma_w2=1.0, sigma_b2=0.1, depth=3, images=img)
    with pytest.raises(MFTheoryError, match="not finite"):
        propagate(
            "tanh", v=v, sigma_w2=1.0, sigma_b2=0.1, depth=3, images=np.full((1, 1, 4, 4), np.nan)
        )
    with pytest.raises(MFTheoryError, match="shape"):
        propagate("tanh", v=v, sigma_w2=1.0, sigma_b2=0.1, depth=3, images=np.ones((4, 4)))
