"""Edge cases of the fast C-transform (mftheory.cnn.ctransform) and of mftheory.cnn.propagation,
each checked against the slow, entry-by-entry references (mftheory.cnn.spatial,
mftheory.gaussian.expectations),
the closed forms of docs/theory.md section 3 (tests/conftest.py, mpmath) or the scipy-quad
reference (mftheory.reference).

Tolerances. The slow path is accurate to ``SLOW_TOL = 1e-12`` times ``sqrt(F_a F_b)`` per
expectation; the engine reports its own bound ``stats.error_bound`` (already in covariance
units). A difference between the two must stay below ``error_bound + sigma_w2 * SLOW_TOL *
scale`` (``scale`` the largest ``F`` involved) plus a few ulps of rounding. Over ``L`` layers
of ``propagate`` the per-layer bounds add up (``Propagation.error_floor``) and so do the slow
path's, ``L * sigma_w2 * SLOW_TOL * scale``; ``A_v`` is an average (``sum v = 1``) and the
C-map's slope is about ``chi_1 ~ 1`` in these settings, so neither amplifies them.

docs/theory.md sections 2 (the map), 3 (fixed point, closed forms) and 4 (Fourier modes).
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import mpmath as mp
import numpy as np
import pytest

from mftheory.activations.builtins import get_activation
from mftheory.cnn.ctransform import CTransformEngine
from mftheory.cnn.modes import kernel_offsets, variance_vector
from mftheory.cnn.propagation import (
    Propagation,
    _AOperator,
    fit_decay_rate,
    input_covariance,
    mode_amplitudes,
    propagate,
)
from mftheory.cnn.spatial import apply_A, c_transform, iterate_covariance_map
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import second_moment
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.reference import ref_pair_expectation, ref_second_moment

SLOW_TOL = 1e-12
EPS = float(np.finfo(np.float64).eps)


def correlation(size: int, seed: int) -> np.ndarray:
    """A random correlation matrix with correlations of both signs."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size, size + 2))
    R = x @ x.T
    d = np.sqrt(np.diag(R))
    return R / np.outer(d, d)


def with_variances(R: np.ndarray, q: np.ndarray) -> np.ndarray:
    s = np.sqrt(q)
    return R * np.outer(s, s)


def edge_covariance(q_other: list[float]) -> np.ndarray:
    """A covariance (PSD by construction: a Gram matrix) with identical pixels (rho = +1),
    a negated pixel (rho = -1), a zero-variance pixel, negative correlations, and extra
    pixels of the given variances."""
    rng = np.random.default_rng(11)
    base = [0.7, 1.3, 0.4]
    q = np.array(base + list(q_other))
    x = rng.standard_normal((q.size, q.size + 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x *= np.sqrt(q)[:, None]
    rows = np.vstack([x, x[0], -x[1], np.zeros(x.shape[1])])  # copy of 0, minus 1, zero pixel
    return rows @ rows.T


def assert_close_to_slow(
    C: np.ndarray, ref: np.ndarray, bound: float, w2: float, scale: float
) -> None:
    assert np.array_equal(C, C.T)
    tol = bound + w2 * SLOW_TOL * scale + 8 * EPS * max(1.0, float(np.max(np.abs(ref))))
    assert np.max(np.abs(C - ref)) <= tol


# --- the engine on awkward covariances ------------------------------------------------------


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "gelu"])
def test_engine_on_identical_negated_and_zero_variance_pixels(act: str) -> None:
    """rho = +-1 (identical and negated pixels), q = 0, negative correlations and a tiny
    variance, with and without q_ref = q* (the q = 0 pixel keeps both on the series path)."""
    S = edge_covariance([1e-6, 2.0, 0.05])
    w2, b2 = 1.5, 0.1
    phi = get_activation(act)
    ref = c_transform(phi, S, sigma_w2=w2, sigma_b2=b2)
    q_star = float(fixed_point(phi, sigma_w2=w2, sigma_b2=b2).q_star)
    for q_ref in (None, q_star):
        C, stats = CTransformEngine(phi, sigma_w2=w2, sigma_b2=b2, q_ref=q_ref)(S)
        assert stats.method == "series"
        scale = float(np.max(second_moment(phi, np.diag(S))))
        assert_close_to_slow(C, ref, stats.error_bound, w2, scale)
    size = S.shape[0]
    zero, copy, minus = size - 1, size - 3, size - 2
    # the identical pixel's row is computed from the same (q, rho) pairs: equal to the ulp
    others = [k for k in range(size) if k not in (0, copy)]
    np.testing.assert_allclose(C[copy, others], C[0, others], rtol=0, atol=4 * EPS)
    # E[phi(u)^2] (the diagonal) at rho = +1; odd phi gives -F at rho = -1
    assert abs(C[0, copy] - C[0, 0]) <= stats.error_bound + w2 * SLOW_TOL + 4 * EPS
    if act == "tanh":
        assert abs(C[1, minus] + C[1, 1] - 2 * b2) <= stats.error_bound + w2 * SLOW_TOL + 4 * EPS
    # a zero-variance pixel is the constant phi(0): C = w2 phi(0) E[phi(u_b)] + b2
    phi0 = float(phi.phi(np.zeros(1))[0])
    for b in range(size - 1):
        mean_b = ref_pair_expectation(phi, 0.0, S[b, b], 0.0) / phi0 if phi0 else 0.0
        expected = w2 * phi0 * mean_b + b2
        assert C[zero, b] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_engine_tiny_variances_are_accurate_relative_to_their_scale() -> None:
    """All q ~ 1e-6: the bound is relative to sqrt(F_a F_b) ~ 1e-6, so the comparison must
    be too (a tolerance on the scale of 1 would hide a 1e-7 relative error)."""
    q = 1e-6 * np.linspace(1.0, 3.0, 8)
    S = with_variances(correlation(8, seed=12), q)
    w2, b2 = 1.3, 0.0
    C, stats = CTransformEngine("tanh", sigma_w2=w2, sigma_b2=b2)(S)
    ref = c_transform("tanh", S, sigma_w2=w2, sigma_b2=b2)
    scale = float(np.max(second_moment(get_activation("tanh"), q)))
    assert stats.error_bound <= w2 * 1e-12 * scale
    assert np.max(np.abs(C - ref)) <= stats.error_bound + w2 * SLOW_TOL * scale + 1e-21
    # and against the quad reference on a few entries
    tanh = get_activation("tanh")
    for a, b in [(0, 1), (2, 7), (3, 5)]:
        rho = S[a, b] / math.sqrt(S[a, a] * S[b, b])
        expected = w2 * ref_pair_expectation(tanh, S[a, a], S[b, b], rho)
        assert C[a, b] == pytest.approx(expected, rel=1e-11, abs=1e-12 * scale)


def test_engine_large_variances_fall_back_like_the_slow_path() -> None:
    """q = 1e3 (tanh saturates, its Hermite series converges slowly): the entries near
    |rho| = 1 go to the nested quadrature, as in the slow path, and the two agree."""
    S = edge_covariance([1e3, 1e3, 2.0, 1e-6])
    S[3, 4] = S[4, 3] = 0.999 * 1e3  # two large pixels, nearly identical
    w2, b2 = 1.2, 0.05
    C, stats = CTransformEngine("tanh", sigma_w2=w2, sigma_b2=b2)(S)
    ref = c_transform("tanh", S, sigma_w2=w2, sigma_b2=b2)
    assert stats.method == "series" and stats.nested > 0
    assert_close_to_slow(C, ref, stats.error_bound, w2, scale=1.0)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize(("q", "rho"), [(1e3, 1.0), (1e3, 0.5), (1e3, 0.999), (40.0, 0.9)])
def test_engine_large_variance_against_quad_reference(act: str, q: float, rho: float) -> None:
    """Large variances: phi(sqrt(q) z) bends within 1/sqrt(q) of z = 0, so the 2D rules and
    the Hermite coefficients add the 1D rule's fixed edges in h (they were once off by 1e-5
    at q = 1e3). Against scipy quad (mftheory.reference), within the engine's bound plus the
    reference's 1e-12 relative tolerance."""
    S = np.array([[q, rho * q], [rho * q, q]])
    C, stats = CTransformEngine(act, sigma_w2=1.0, sigma_b2=0.0)(S)
    phi = get_activation(act)
    expected = ref_pair_expectation(phi, q, q, rho)
    scale = ref_second_moment(phi, q)
    assert abs(C[0, 1] - expected) <= stats.error_bound + SLOW_TOL * scale + 1e-15
    assert abs(C[0, 0] - scale) <= SLOW_TOL * scale


@pytest.mark.parametrize("name", ["erf", "relu", "sin"])
def test_engine_closed_forms_on_edge_covariances(name: str, cf: SimpleNamespace) -> None:
    """Closed forms (no quadrature) entry by entry against the independent formulas of
    conftest, including q = 0, rho = +-1, q = 1e-6 and q = 1e3."""
    S = edge_covariance([1e-6, 1e3, 0.05])
    w2, b2 = 1.4, 0.2
    C, stats = CTransformEngine(name, sigma_w2=w2, sigma_b2=b2)(S)
    assert stats.method == "closed-form" and stats.error_bound == 0.0
    q = np.diag(S)
    for a, b in itertools.product(range(q.size), repeat=2):
        if a == b:
            expected = w2 * cf.second_moment(name, {}, q[a]) + b2
        else:
            denom = math.sqrt(q[a] * q[b])
            rho = min(1.0, max(-1.0, S[a, b] / denom)) if denom > 0 else 0.0
            expected = w2 * cf.pair(name, {}, q[a], q[b], rho) + b2
        # rounding of S (relative eps) moves the value by its derivative times eps * q
        tol = 16 * EPS * w2 * (1.0 + max(q[a], q[b]))
        assert abs(C[a, b] - expected) <= tol, (a, b)


def test_engine_sin_does_not_overflow_at_large_variance() -> None:
    """sin at q > ~710: exp(-(q1+q2)/2) sinh(r) is 0 * inf = NaN in floating point. The
    engine uses the overflow-free form; checked against mpmath at 40 digits (computed from
    the stored entries of S, so only the engine's rounding counts)."""
    q = np.array([800.0, 800.0, 2000.0, 3.0, 1e-6, 0.0])
    R = correlation(6, seed=13)
    R[0, 1] = R[1, 0] = 1.0
    S = with_variances(R, q)
    w2, b2 = 1.3, 0.2
    C, stats = CTransformEngine("sin", sigma_w2=w2, sigma_b2=b2)(S)
    assert stats.method == "closed-form"
    assert np.isfinite(C).all()
    for a, b in itertools.combinations(range(6), 2):
        with mp.workdps(40):
            qa, qb, sab = (mp.mpf(float(x)) for x in (S[a, a], S[b, b], S[a, b]))
            exact = float(mp.exp(-(qa + qb) / 2) * mp.sinh(sab))  # rho sqrt(qa qb) = S_ab
        expected = w2 * exact + b2
        # relative rounding eps of the exponent's terms (size ~q) and of the result
        tol = 8 * EPS * w2 * (1.0 + max(S[a, a], S[b, b])) * max(abs(exact), EPS) + 4 * EPS
        assert abs(C[a, b] - expected) <= tol, (a, b)
    assert C[0, 1] == pytest.approx(w2 * 0.5 + b2, rel=1e-13)  # rho = 1: F(800) = 1/2


def test_propagate_sin_with_large_inputs_is_finite() -> None:
    """Raw, large pixel values (q ~ 1600 at layer 1) through sin: bounded activation, so the
    covariance must stay finite (it used to raise 'the variance diverges')."""
    img = np.array([[[40.0, -40.0, 40.0, 0.0]]])
    v = np.array([0.25, 0.5, 0.25])
    w2, b2 = 1.0, 0.1
    res = propagate("sin", v=v, sigma_w2=w2, sigma_b2=b2, depth=4, images=img, record=True)
    assert res.history is not None and np.isfinite(res.history).all()
    # layer 2 = A_v * C(Sigma^1): diagonal of C is w2 (1 - e^{-2q})/2 + b2 ~ w2/2 + b2
    S1 = res.history[0]
    C2 = CTransformEngine("sin", sigma_w2=w2, sigma_b2=b2)(S1)[0]
    np.testing.assert_allclose(res.history[1], apply_A(v, C2, image_shape=4), rtol=0, atol=1e-15)
    assert np.max(np.abs(np.diag(C2) - (w2 / 2 + b2))) < 1e-15


# --- the Taylor tables around q* ------------------------------------------------------------


def near_fixed_point(q_star: float, taus: np.ndarray, seed: int) -> np.ndarray:
    R = correlation(taus.size, seed)
    R[0, 1] = R[1, 0] = 1.0  # an identical pair (tau equal), a negated one
    R[2, 3] = R[3, 2] = -1.0
    taus = taus.copy()
    taus[1], taus[3] = taus[0], taus[2]
    return with_variances(R, q_star * np.exp(taus))


def test_tables_with_variances_on_both_sides_of_q_star() -> None:
    w2, b2 = 1.76, 0.05
    q_star = float(fixed_point("tanh", sigma_w2=w2, sigma_b2=b2).q_star)
    engine = CTransformEngine("tanh", sigma_w2=w2, sigma_b2=b2, q_ref=q_star)
    for T in (1e-2, 1e-3, 1e-5):
        S = near_fixed_point(q_star, np.linspace(-T, T, 14), seed=14)
        C, stats = engine(S)
        assert stats.method == "tables"
        assert_close_to_slow(
            C, c_transform("tanh", S, sigma_w2=w2, sigma_b2=b2), stats.error_bound, w2, q_star
        )


def test_tables_check_each_side_of_q_star_once() -> None:
    """The engine checks its Taylor order against exact coefficients at the extreme variances
    and remembers, per order, the checked range of tau on each side of q*. Certify on tau in
    [0, T]; tau in [-T, 0] is then checked anew (the other side), and later, shrinking spreads
    of alternating sign inside both ranges reuse the checks. Every result meets its bound."""
    w2, b2 = 1.76, 0.05
    q_star = float(fixed_point("tanh", sigma_w2=w2, sigma_b2=b2).q_star)
    engine = CTransformEngine("tanh", sigma_w2=w2, sigma_b2=b2, q_ref=q_star)
    T = 1e-2
    first = near_fixed_point(q_star, np.linspace(0.0, T, 12), seed=15)
    C, stats = engine(first)
    assert stats.method == "tables"
    tables = engine._tables
    assert tables is not None
    m = stats.order
    assert tables.checked_hi[m] == pytest.approx(T) and tables.checked_lo[m] == 0.0
    spreads = [-0.999 * T, -T / 2, T / 4, -T / 8, T / 16, -1e-4]  # within |tau| <= T
    for k, spread in enumerate(spreads):
        S = near_fixed_point(q_star, np.linspace(0.0, spread, 12), seed=16 + k)
        before = (tables.checked_lo.copy(), tables.checked_hi.copy())
        C, stats = engine(S)
        assert stats.method == "tables"
        if k == 0 and stats.order == m:  # the negative side was checked now
            assert tables.checked_lo[m] == pytest.approx(-0.999 * T)
        if k > 0 and stats.order == m:  # inside both checked ranges: nothing new
            assert np.array_equal(tables.checked_lo, before[0])
            assert np.array_equal(tables.checked_hi, before[1])
        ref = c_transform("tanh", S, sigma_w2=w2, sigma_b2=b2)
        assert_close_to_slow(C, ref, stats.error_bound, w2, q_star)


# --- A_v ---------------------------------------------------------------------------------------


def literal_A(v: np.ndarray, M: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(A_v M)_{(i,a),(j,a')} = sum_b v_b M_{(i,a+b),(j,a'+b)}, indices mod n, with loops
    (no kernel folding)."""
    N = math.prod(shape)
    B = M.shape[0] // N
    pixels = list(itertools.product(*(range(s) for s in shape)))
    offsets = kernel_offsets(v.shape)

    def flat(i: int, p: tuple[int, ...], off: np.ndarray) -> int:
        moved = tuple((x + int(o)) % s for x, o, s in zip(p, off, shape, strict=True))
        return i * N + int(np.ravel_multi_index(moved, shape))

    out = np.zeros_like(M)
    for i, j in itertools.product(range(B), repeat=2):
        for a, ap in itertools.product(pixels, repeat=2):
            zero = np.zeros(len(shape), dtype=int)
            out[flat(i, a, zero), flat(j, ap, zero)] = sum(
                vb * M[flat(i, a, off), flat(j, ap, off)]
                for off, vb in zip(offsets, v.reshape(-1), strict=True)
            )
    return out


A_CASES = [
    # (image shape, batch, v, rank one?)
    ((3, 5), 2, np.outer([0.2, 0.5, 0.3], [0.1, 0.6, 0.3]), True),
    ((3, 5), 3, np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 8.0, False),
    ((4, 3), 1, variance_vector("gs2", kernel=3, dim=2), False),
    ((2, 3), 2, variance_vector("uniform", kernel=3, dim=2), True),
    ((3, 3), 1, np.outer([0.1, 0.2, 0.3, 0.25, 0.15], [0.3, 0.2, 0.1, 0.15, 0.25]), True),
    ((3, 3), 2, np.arange(1.0, 26.0).reshape(5, 5) % 7 / 75.0, False),  # kernel 5 on n = 3
    ((3,), 2, np.array([0.1, 0.2, 0.3, 0.25, 0.15]), False),  # 1D, kernel wider than image
    ((5,), 3, np.array([0.2, 0.7, 0.1]), False),
    (
        (2, 2, 3),
        2,
        np.multiply.outer(np.outer([0.2, 0.5, 0.3], [0.1, 0.6, 0.3]), [0.3, 0.3, 0.4]),
        True,
    ),
]


@pytest.mark.parametrize(("shape", "batch", "v", "rank_one"), A_CASES)
def test_A_operator_matches_apply_A_and_definition(
    shape: tuple[int, ...], batch: int, v: np.ndarray, rank_one: bool
) -> None:
    v = v / v.sum()
    N = math.prod(shape)
    M = np.random.default_rng(17).standard_normal((batch * N, batch * N))
    A = _AOperator(v, shape, batch)
    # the separable path is used exactly for rank-one v in 2D/3D
    assert len(A.passes) == (len(shape) if rank_one else 1)
    got = A(M)
    np.testing.assert_allclose(got, apply_A(v, M, image_shape=shape), rtol=0, atol=1e-15)
    np.testing.assert_allclose(got, literal_A(v, M, shape), rtol=0, atol=1e-15)


def test_A_operator_does_not_modify_its_input() -> None:
    v = variance_vector("uniform", kernel=3, dim=2)
    M = np.random.default_rng(18).standard_normal((24, 24))
    keep = M.copy()
    _AOperator(v, (3, 4), 2)(M)
    assert np.array_equal(M, keep)


# --- propagate against the slow iteration ----------------------------------------------------


def check_against_slow(
    act: str,
    res: Propagation,
    S_start: np.ndarray,
    v: np.ndarray,
    shape: tuple[int, ...],
    w2: float,
    b2: float,
    scale: float,
) -> None:
    history = res.history
    assert history is not None
    layers = history.shape[0] - 1
    _, ref = iterate_covariance_map(
        act, S_start, v, image_shape=shape, sigma_w2=w2, sigma_b2=b2, depth=layers, record=True
    )
    floor = res.error_floor
    for k in range(layers + 1):
        tol = floor[k] + k * w2 * SLOW_TOL * scale + 1e-15
        assert np.max(np.abs(history[k] - ref[k])) <= tol, k


def test_propagate_two_non_square_images_cross_blocks() -> None:
    """B = 2 images of 3x4 pixels: every block, the cross-image ones included, matches the
    slow map layer by layer (from the same first layer, input_covariance)."""
    rng = np.random.default_rng(19)
    images = rng.random((2, 3, 3, 4))
    images[1, :, :, 2:] = 0.0  # a flat region
    v = variance_vector("uniform", kernel=3, dim=2)
    w2, b2 = 1.76, 0.05
    res = propagate("tanh", v=v, sigma_w2=w2, sigma_b2=b2, depth=8, images=images, record=True)
    assert res.batch == 2 and res.image_shape == (3, 4)
    assert res.layers[0] == 1 and res.layers[-1] == 8
    S1 = input_covariance(images, v, sigma_w2=w2, sigma_b2=b2)
    assert res.history is not None and np.array_equal(res.history[0], S1)
    check_against_slow("tanh", res, S1, v, (3, 4), w2, b2, scale=1.0)
    # the cross-image block is really there (not a copy of a diagonal block)
    assert np.max(np.abs(res.covariance[:12, 12:] - res.covariance[:12, :12])) > 1e-3


def test_propagate_zero_variance_pixels_without_bias() -> None:
    """sigma_b2 = 0 and a black image region: pixels with q = 0 exactly (no tables, series
    with rho = 0 for them), in the chaotic phase (q* > 0) and the ordered one (q* = 0)."""
    img = np.random.default_rng(20).random((2, 1, 5, 5))
    img[:, :, :, 3:] = 0.0
    img[1] = 0.0  # a black image
    v = np.outer([0.1, 0.8, 0.1], [0.1, 0.8, 0.1])
    for w2 in (1.5, 0.8):
        res = propagate("tanh", v=v, sigma_w2=w2, sigma_b2=0.0, depth=5, images=img, record=True)
        assert res.history is not None
        assert np.min(np.diag(res.history[0])) == 0.0
        S1 = input_covariance(img, v, sigma_w2=w2, sigma_b2=0.0)
        check_against_slow("tanh", res, S1, v, (5, 5), w2, 0.0, scale=1.0)
        # the black image stays exactly zero (tanh(0) = 0, no bias)
        assert np.all(res.covariance[25:, :] == 0.0)


def test_propagate_sigma0_non_square_and_tables_over_layers() -> None:
    """Sigma0 of one 3x5 image near the fixed point, variances on both sides of q*, spread
    shrinking layer by layer: the tables are used and agree with the slow map."""
    w2, b2 = 1.76, 0.05
    fp = fixed_point("tanh", sigma_w2=w2, sigma_b2=b2)
    q, c = float(fp.q_star), float(fp.c_star)
    rng = np.random.default_rng(21)
    N = 15
    star = np.full((N, N), q * c)
    np.fill_diagonal(star, q)
    x = rng.standard_normal((N, 3 * N))
    P = x @ x.T
    d = np.sqrt(np.diag(P))
    Sigma0 = 0.9 * star + 0.1 * q * P / np.outer(d, d)
    scale = np.sqrt(q * np.exp(0.02 * rng.uniform(-1, 1, N)) / np.diag(Sigma0))
    Sigma0 *= np.outer(scale, scale)
    v = variance_vector("gs2", kernel=3, dim=2)
    res = propagate(
        "tanh",
        v=v,
        sigma_w2=w2,
        sigma_b2=b2,
        depth=12,
        Sigma0=Sigma0,
        image_shape=(3, 5),
        record=True,
    )
    assert res.layers[0] == 0 and res.methods.get("tables", 0) >= 10
    assert res.lam.shape == (15,) and res.lam[0] == pytest.approx(1.0)
    check_against_slow("tanh", res, Sigma0, v, (3, 5), w2, b2, scale=q)


@pytest.mark.parametrize(
    ("act", "w2", "b2"), [("erf", 2.25, 0.25), ("sin", 1.5, 0.1), ("relu", 1.5, 0.1)]
)
def test_propagate_closed_form_activations_match_slow_map(act: str, w2: float, b2: float) -> None:
    """Closed forms on both sides: only rounding differs (1e-14 of the scale per layer)."""
    images = np.random.default_rng(22).normal(size=(3, 2, 4))
    v = np.array([0.25, 0.5, 0.25])
    res = propagate(act, v=v, sigma_w2=w2, sigma_b2=b2, depth=10, images=images, record=True)
    assert set(res.methods) == {"closed-form"}
    assert res.history is not None
    S1 = res.history[0]
    _, ref = iterate_covariance_map(
        act, S1, v, image_shape=4, sigma_w2=w2, sigma_b2=b2, depth=9, record=True
    )
    scale = float(np.max(np.abs(ref)))
    for k in range(10):
        assert np.max(np.abs(res.history[k] - ref[k])) <= (k + 1) * 1e-14 * scale


def test_propagate_relu_converges_to_its_ordered_fixed_point(cf: SimpleNamespace) -> None:
    """relu below its critical sigma_w2 = 2 with sigma_b2 > 0: q* = b2 / (1 - w2/2), c* = 1
    (ordered), and Sigma^l tends to q* 11^T."""
    w2, b2 = 1.5, 0.1
    images = np.random.default_rng(23).random((2, 1, 3, 3))
    res = propagate(
        "relu",
        v=variance_vector("gs2", kernel=3, dim=2),
        sigma_w2=w2,
        sigma_b2=b2,
        depth=200,
        images=images,
    )
    q_star = cf.q_star("relu", {}, w2, b2)
    assert float(res.fixed.q_star) == pytest.approx(q_star, rel=1e-13)
    assert float(res.fixed.c_star) == 1.0
    assert np.max(np.abs(res.covariance - q_star)) < 1e-3 * q_star
    assert float(res.fixed.chi_c) == pytest.approx(w2 / 2, rel=1e-12)  # chi_1 = w2 / 2 < 1
    assert res.predicted_rate[0] == pytest.approx(w2 / 2, rel=1e-12)  # lambda_0 = 1


def test_propagate_expression_equals_tanh() -> None:
    """'2*sigmoid(2*x) - 1' is tanh written differently: same covariances to ~1e-11 (both
    numerical, each within 1e-12 of the exact value per layer)."""
    images = np.random.default_rng(24).random((2, 1, 5))
    v = np.array([0.2, 0.6, 0.2])
    a, b = (
        propagate(act, v=v, sigma_w2=1.76, sigma_b2=0.05, depth=15, images=images)
        for act in ("tanh", "2*sigmoid(2*x) - 1")
    )
    assert "tables" in a.methods and "tables" in b.methods
    assert np.max(np.abs(a.covariance - b.covariance)) < 1e-11
    np.testing.assert_allclose(a.predicted_rate, b.predicted_rate, rtol=1e-10)


def test_propagate_fully_connected_batch_follows_the_c_map() -> None:
    """n = 1, v = [1]: a batch of 3 'images' of one pixel is the fully-connected network, so
    each pair follows the C-map of docs/theory.md section 3 (checked against scipy quad)."""
    w2, b2 = 2.0, 0.1
    Sigma0 = np.array([[1.0, 0.3, -0.5], [0.3, 0.8, 0.1], [-0.5, 0.1, 1.5]])
    res = propagate(
        "tanh",
        v=[1.0],
        sigma_w2=w2,
        sigma_b2=b2,
        depth=2,
        Sigma0=Sigma0,
        image_shape=1,
        record=True,
    )
    tanh = get_activation("tanh")
    assert res.history is not None
    S = res.history
    for a, b in itertools.combinations(range(3), 2):
        q1, q2 = Sigma0[a, a], Sigma0[b, b]
        expected = w2 * ref_pair_expectation(tanh, q1, q2, Sigma0[a, b] / math.sqrt(q1 * q2)) + b2
        assert S[1][a, b] == pytest.approx(expected, rel=1e-11, abs=1e-13)
    for a in range(3):
        assert S[1][a, a] == pytest.approx(
            w2 * ref_second_moment(tanh, Sigma0[a, a]) + b2, rel=1e-12
        )


def test_propagate_refuses_sigma0_of_the_wrong_size() -> None:
    with pytest.raises(MFTheoryError, match="multiple"):
        propagate(
            "tanh",
            v=[0.25, 0.5, 0.25],
            sigma_w2=1.0,
            sigma_b2=0.1,
            depth=2,
            Sigma0=np.eye(5),
            image_shape=3,
        )
    with pytest.raises(MFTheoryError, match="image_shape"):
        propagate(
            "tanh", v=[0.25, 0.5, 0.25], sigma_w2=1.0, sigma_b2=0.1, depth=2, Sigma0=np.eye(3)
        )


# --- fit_decay_rate ---------------------------------------------------------------------------


GEOMETRIC = 0.3 * 0.8 ** np.arange(40)


def test_fit_decay_rate_stops_at_a_zero_or_nan_amplitude() -> None:
    """The fit uses the first run of resolved layers: a zero or NaN ends it."""
    for bad in (0.0, np.nan, np.inf):
        amp = GEOMETRIC.copy()
        amp[10] = bad
        rate, window = fit_decay_rate(amp, 0.0)
        assert rate == pytest.approx(0.8, rel=1e-12)
        assert window == (7, 9)  # 10 resolved layers, fraction 0.25 -> at least 3


@pytest.mark.parametrize("first_bad", [0, 1, 2])
def test_fit_decay_rate_needs_three_resolved_layers(first_bad: int) -> None:
    amp = GEOMETRIC.copy()
    amp[first_bad] = 0.0
    assert fit_decay_rate(amp, 0.0) == (None, None)
    assert fit_decay_rate(GEOMETRIC[:first_bad], 0.0) == (None, None)


def test_fit_decay_rate_three_layers_and_the_fraction() -> None:
    rate, window = fit_decay_rate(GEOMETRIC[:3], 0.0)
    assert rate == pytest.approx(0.8, rel=1e-12) and window == (0, 2)
    assert fit_decay_rate(GEOMETRIC, 0.0, fraction=1.0)[1] == (0, 39)
    assert fit_decay_rate(GEOMETRIC, 0.0, fraction=0.5)[1] == (20, 39)
    assert fit_decay_rate(GEOMETRIC, 0.0, fraction=0.01)[1] == (37, 39)  # at least 3
    for bad in (0.0, 3.0, float("nan")):
        with pytest.raises(MFTheoryError, match="fraction"):
            fit_decay_rate(GEOMETRIC, 0.0, fraction=bad)
    with pytest.raises(MFTheoryError, match="margin"):
        fit_decay_rate(GEOMETRIC, 0.0, margin=-1.0)


def test_propagate_refuses_a_sigma0_with_correlation_above_one() -> None:
    S = np.array([[1.0, 1.5], [1.5, 1.0]])
    with pytest.raises(MFTheoryError, match="correlation above 1"):
        propagate("tanh", v=[1.0], sigma_w2=1.0, sigma_b2=0.1, depth=2, Sigma0=S, image_shape=2)


def test_fit_decay_rate_floor_array_and_layer_labels() -> None:
    """A per-layer floor ends the resolved run where amplitude <= margin * floor; layer
    labels change the window and the slope per label step."""
    floor = np.full(40, 1e-30)
    floor[20:] = 1.0
    rate, window = fit_decay_rate(GEOMETRIC, floor)
    assert window == (15, 19) and rate == pytest.approx(0.8, rel=1e-12)
    rate, window = fit_decay_rate(GEOMETRIC, 1e-30, layers=2 * np.arange(40) + 1)
    assert window == (61, 79)
    assert rate == pytest.approx(math.sqrt(0.8), rel=1e-12)
    # exactly margin * floor is not resolved
    assert fit_decay_rate(GEOMETRIC, GEOMETRIC / 1e3) == (None, None)


# --- mode_amplitudes validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("eps", "shape"),
    [
        (np.zeros((4, 5)), 2),  # not square
        (np.zeros((6, 6)), 4),  # not whole images
        (np.zeros((9, 9)), (2, 2)),
        (np.zeros((2, 2, 2)), 2),  # not a matrix
        (np.zeros((0, 0)), 2),  # no image at all
    ],
)
def test_mode_amplitudes_rejects_bad_shapes(eps: np.ndarray, shape: int | tuple[int, ...]) -> None:
    with pytest.raises(MFTheoryError, match="square matrix over whole images"):
        mode_amplitudes(eps, shape)


def test_mode_amplitudes_single_pixel_images() -> None:
    """n = 1: only f = 0; one image has no off-diagonal entry (amplitude 0), two have one
    cross pair."""
    off, diag = mode_amplitudes([[2.0]], 1)
    assert off.tolist() == [0.0] and diag.tolist() == [2.0]
    off, diag = mode_amplitudes([[2.0, -0.5], [-0.5, 1.0]], 1)
    assert off[0] == pytest.approx(0.5, rel=1e-15)
    assert diag[0] == pytest.approx(math.sqrt((4.0 + 1.0) / 2), rel=1e-15)
