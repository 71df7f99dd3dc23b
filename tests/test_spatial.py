"""Tests of mftheory.cnn.spatial: the CNN covariance map Sigma^{l+1} = A_v * C(Sigma^l).

docs/theory.md sections 2 (the map), 3 (its uniform fixed point) and 4 (A_v is diagonalised by the
Fourier transform along each cyclic diagonal; modes decay by chi_c lambda_f per layer).
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mftheory.activations.builtins import get_activation
from mftheory.cnn.modes import mode_eigenvalues, variance_vector
from mftheory.cnn.spatial import (
    apply_A,
    c_transform,
    covariance_map,
    iterate_covariance_map,
    uniform_fixed_covariance,
)
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import pair_expectation, second_moment
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.meanfield.maps import c_map, q_map

# A_v is a sum of at most 9 products v_b M_{..}: two correct evaluations in a different order
# differ by a few ulp of max|M| ~ 1, so 1e-13 is ~500 ulp of margin; a wrong shift or sign
# gives O(0.1) errors.
LINALG_TOL = 1e-13


def random_symmetric(size: int, seed: int, complex_: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((size, size))
    if complex_:
        m = m + 1j * rng.standard_normal((size, size))
    return m + m.T


def random_covariance(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size, 3 * size)) * rng.uniform(0.3, 1.5, (size, 1))
    return x @ x.T / (3 * size)


def reference_apply_A(v: np.ndarray, m: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The definition, literally: (A M)_{a,a'} = sum_b v_b M_{a+b, a'+b}, loops over a, a', b."""
    n_pix = math.prod(shape)
    batch = m.shape[0] // n_pix
    pixels = list(itertools.product(*(range(s) for s in shape)))
    centre = [s // 2 for s in v.shape]
    offsets = [
        (pos, tuple(p - c for p, c in zip(pos, centre, strict=True)))
        for pos in itertools.product(*(range(s) for s in v.shape))
    ]

    def flat(img: int, pix: tuple[int, ...]) -> int:
        return img * n_pix + int(np.ravel_multi_index(pix, shape))

    out = np.zeros_like(m)
    for i, j in itertools.product(range(batch), repeat=2):
        for a, a2 in itertools.product(pixels, repeat=2):
            total = 0.0 * m[0, 0]
            for pos, b in offsets:
                ab = tuple((x + y) % s for x, y, s in zip(a, b, shape, strict=True))
                a2b = tuple((x + y) % s for x, y, s in zip(a2, b, shape, strict=True))
                total += v[pos] * m[flat(i, ab), flat(j, a2b)]
            out[flat(i, a), flat(j, a2)] = total
    return out


def cyclic_diagonal_1d(m: np.ndarray, t: int) -> np.ndarray:
    """Entries M_{a, a+t mod n} of an n x n matrix, a = 0..n-1."""
    n = m.shape[0]
    a = np.arange(n)
    return m[a, (a + t) % n]


def fourier_coefficient(profile: np.ndarray, f: int) -> complex:
    n = profile.shape[0]
    return complex(np.sum(profile * np.exp(-2j * np.pi * f * np.arange(n) / n)) / n)


# ------------------------------------------------------------------------------------------
# apply_A
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v", "shape"),
    [
        (np.array([0.2, 0.5, 0.3]), (5,)),
        (np.array([0.1, 0.2, 0.4, 0.2, 0.1]), (7,)),
        (np.array([0.1, 0.2, 0.4, 0.2, 0.1]), (3,)),  # kernel wider than the image: wraps
        (np.arange(1.0, 10.0).reshape(3, 3) / 45.0, (4, 4)),
        (np.arange(1.0, 10.0).reshape(3, 3) / 45.0, (3, 5)),  # rectangular image
    ],
)
def test_apply_A_matches_triple_loop(v: np.ndarray, shape: tuple[int, ...]) -> None:
    m = random_symmetric(math.prod(shape), seed=sum(shape))
    np.testing.assert_allclose(
        apply_A(v, m, image_shape=shape), reference_apply_A(v, m, shape), rtol=0, atol=LINALG_TOL
    )


def test_apply_A_batch_and_complex_match_triple_loop() -> None:
    v = np.array([0.2, 0.5, 0.3])
    shape = (4,)
    m = random_symmetric(3 * 4, seed=7)  # a batch of B = 3 images
    np.testing.assert_allclose(
        apply_A(v, m, image_shape=shape), reference_apply_A(v, m, shape), rtol=0, atol=LINALG_TOL
    )
    mc = random_symmetric(2 * 16, seed=8, complex_=True)  # B = 2 images of 4x4, complex
    v2 = variance_vector("gs1", kernel=3, dim=2)
    out = apply_A(v2, mc, image_shape=(4, 4))
    assert np.iscomplexobj(out)
    np.testing.assert_allclose(out, reference_apply_A(v2, mc, (4, 4)), rtol=0, atol=LINALG_TOL)


def test_apply_A_delta_is_identity() -> None:
    m = random_symmetric(25, seed=3)
    for dim, shape in [(1, (25,)), (2, (5, 5))]:
        v = variance_vector("delta", kernel=3, dim=dim)
        # one term 1.0 * M: exact
        assert np.array_equal(apply_A(v, m, image_shape=shape), m)


def test_apply_A_keeps_circulant_matrices() -> None:
    # M_{a,a'} depending only on a' - a (mod n) per dimension: every cyclic diagonal constant.
    shape = (4, 6)
    idx = np.array(list(itertools.product(range(4), range(6))))
    rng = np.random.default_rng(0)
    table = rng.standard_normal(shape)
    diff = (idx[None, :, :] - idx[:, None, :]) % np.array(shape)
    m = table[diff[..., 0], diff[..., 1]]
    v = variance_vector("0.1,0.2,0.1;0.1,0.2,0.1;0.05,0.1,0.05")
    assert abs(v.sum() - 1.0) < 1e-15
    # A_v multiplies a constant diagonal by sum(v) = 1: round-off only.
    np.testing.assert_allclose(apply_A(v, m, image_shape=shape), m, rtol=0, atol=LINALG_TOL)


@pytest.mark.parametrize("t", [1, 2, 5])
@pytest.mark.parametrize("f", [0, 1, 3, 5])
def test_apply_A_scales_a_fourier_mode_by_lambda(f: int, t: int) -> None:
    """docs/theory.md section 4: a cyclic diagonal with profile exp(2 pi i f a / n) is an
    eigenvector of A_v with eigenvalue lambda_f (asymmetric v: complex lambda)."""
    n = 10
    v = np.array([0.1, 0.2, 0.5, 0.15, 0.05])
    _, lam = mode_eigenvalues(v, n)
    a = np.arange(n)
    m = np.zeros((n, n), dtype=complex)
    m[a, (a + t) % n] = np.exp(2j * np.pi * f * a / n)
    # entries are O(1) sums of 5 terms: round-off ~1e-16
    np.testing.assert_allclose(apply_A(v, m, image_shape=n), lam[f] * m, rtol=0, atol=LINALG_TOL)


def test_apply_A_2d_mode() -> None:
    shape = (5, 5)
    v = np.random.default_rng(4).random((3, 3))
    freq, lam = mode_eigenvalues(v, 5)
    idx = np.array(list(itertools.product(range(5), range(5))))
    shift = np.array([1, 2])
    cols = np.ravel_multi_index(tuple(((idx + shift) % 5).T), shape)
    for k in (0, 7, 18):
        f = freq[k]
        m = np.zeros((25, 25), dtype=complex)
        m[np.arange(25), cols] = np.exp(2j * np.pi * (idx @ f) / 5)
        out = apply_A(v, m, image_shape=shape)
        # sums of 9 terms of size <= 1: round-off ~1e-15 at most
        np.testing.assert_allclose(out, lam[k] * m, rtol=0, atol=LINALG_TOL)


@pytest.mark.parametrize(
    ("v", "m", "shape", "fragment"),
    [
        ([1.0], np.ones((3, 4)), (3,), "square"),
        ([1.0], np.ones((0, 0)), (3,), "square"),
        ([1.0], np.ones((5, 5)), (3,), "not a multiple"),
        ([1.0], np.full((3, 3), np.nan), (3,), "not finite"),
        (np.ones((3, 3)), np.eye(3), (3,), "2 dimension"),
        ([1.0, 1.0], np.eye(3), (3,), "odd"),
        ([1.0], np.eye(3), (0,), "smaller than 1"),
        ([1.0], np.eye(3), "3", "image_shape"),
        ([1.0], np.array([["a"]]), (1,), "numeric"),
    ],
)
def test_apply_A_errors(v: object, m: object, shape: object, fragment: str) -> None:
    with pytest.raises(MFTheoryError, match=fragment):
        apply_A(v, m, image_shape=shape)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# c_transform
# ------------------------------------------------------------------------------------------


def test_c_transform_erf_closed_form(cf: SimpleNamespace) -> None:
    erf = get_activation("erf")
    sigma = random_covariance(12, seed=11)
    sigma[3, :] = sigma[:, 3] = 0.0  # a pixel of zero variance: rho = 0 there
    w2, b2 = 1.7, 0.3
    out = c_transform(erf, sigma, sigma_w2=w2, sigma_b2=b2)
    q = np.diag(sigma)
    expected = np.empty_like(sigma)
    for a, b in itertools.product(range(12), repeat=2):
        denom = math.sqrt(q[a] * q[b])
        rho = sigma[a, b] / denom if denom > 0 else 0.0
        expected[a, b] = w2 * cf.pair("erf", {}, q[a], q[b], min(1.0, rho)) + b2
    # closed forms on both sides, evaluated in different order: ~1e-16 each
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-14)
    assert np.array_equal(out, out.T)


def test_c_transform_tanh_matches_entrywise_integrals() -> None:
    tanh = get_activation("tanh")
    sigma = random_covariance(9, seed=5)
    w2, b2 = 1.5, 0.05
    out = c_transform(tanh, sigma, sigma_w2=w2, sigma_b2=b2)
    q = np.diag(sigma)
    # every entry integrated separately: no upper-triangle mirroring, no merging of equal
    # (q1, q2, rho) triples, and (q2, q1) in swapped order (E is symmetric under the swap)
    rows, cols = np.nonzero(~np.eye(9, dtype=bool))
    rho = sigma[rows, cols] / np.sqrt(q[rows] * q[cols])
    expected = np.empty_like(sigma)
    expected[rows, cols] = w2 * pair_expectation(tanh, q[cols], q[rows], rho) + b2
    expected[np.diag_indices(9)] = w2 * second_moment(tanh, q) + b2
    # the same quadrature for each entry, so only round-off separates the two (the
    # integrator's own 1e-12 tolerance would allow more; 1e-13 checks the bookkeeping)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    ("sigma", "fragment"),
    [
        (np.array([[1.0, 0.5], [0.4, 1.0]]), "not symmetric"),
        (np.array([[-1.0, 0.0], [0.0, 1.0]]), "negative variance"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "correlation above 1"),
        (np.array([[1.0, np.inf], [np.inf, 1.0]]), "not finite"),
        (np.ones((2, 3)), "square"),
        (np.eye(2) * (1 + 1j), "real"),
    ],
)
def test_c_transform_errors(sigma: np.ndarray, fragment: str) -> None:
    with pytest.raises(MFTheoryError, match=fragment):
        c_transform("erf", sigma, sigma_w2=1.0, sigma_b2=0.0)


def test_c_transform_variance_errors() -> None:
    with pytest.raises(MFTheoryError, match="sigma_w2"):
        c_transform("erf", np.eye(2), sigma_w2=-1.0, sigma_b2=0.0)
    with pytest.raises(MFTheoryError, match="sigma_b2"):
        c_transform("erf", np.eye(2), sigma_w2=1.0, sigma_b2=math.nan)


# ------------------------------------------------------------------------------------------
# covariance_map: fully-connected limit and fixed points
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act_name", ["erf", "tanh", "relu"])
def test_delta_kernel_reduces_to_fully_connected_maps(act_name: str) -> None:
    act = get_activation(act_name)
    q, c, w2, b2 = 0.8, 0.3, 1.6, 0.1
    for shape in [(6,), (3, 3)]:
        n_pix = math.prod(shape)
        sigma = uniform_fixed_covariance(q, c, n_pix)
        v = variance_vector("delta", kernel=3, dim=len(shape))
        out = covariance_map(act, sigma, v, image_shape=shape, sigma_w2=w2, sigma_b2=b2)
        qq = float(q_map(act, q, sigma_w2=w2, sigma_b2=b2))
        qc = q * float(c_map(act, c, q=q, sigma_w2=w2, sigma_b2=b2))
        # the same integrals by the same integrator: only round-off (and q * (x / q)) differs
        np.testing.assert_allclose(np.diag(out), qq, rtol=1e-14)
        off = out[~np.eye(n_pix, dtype=bool)]
        np.testing.assert_allclose(off, qc, rtol=1e-14)


def test_uniform_fixed_point_stays_fixed_erf(cf: SimpleNamespace) -> None:
    erf = get_activation("erf")
    w2, b2 = 2.25, 0.25  # sigma_w = 1.5, sigma_b = 0.5: chaotic, c* ~ 0.815
    q_star = cf.q_star("erf", {}, w2, b2)
    c_star = cf.c_star("erf", {}, w2, b2)
    assert 0.0 < c_star < 1.0
    cases: list[tuple[tuple[int, ...], np.ndarray]] = [
        ((10,), np.array([0.025, 0.95, 0.025])),
        ((4, 4), variance_vector("uniform", dim=2)),
    ]
    for shape, v in cases:
        sigma = uniform_fixed_covariance(q_star, c_star, math.prod(shape))
        out = iterate_covariance_map(
            erf, sigma, v, image_shape=shape, sigma_w2=w2, sigma_b2=b2, depth=5
        )
        # brentq roots to ~1e-16 and closed-form maps: the fixed point holds to round-off;
        # 1e-12 allows the five layers to amplify it (slopes < 1) with a wide margin
        np.testing.assert_allclose(out, sigma, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("w2", "b2"), [(1.76, 0.05), (3.0, 0.05), (1.2, 0.2)])
def test_uniform_fixed_point_stays_fixed_tanh(w2: float, b2: float) -> None:
    fp = fixed_point("tanh", sigma_w2=w2, sigma_b2=b2)
    q_star, c_star = float(fp.q_star), float(fp.c_star)
    shape = (4, 4)
    sigma = uniform_fixed_covariance(q_star, c_star, 16)
    out = covariance_map(
        "tanh",
        sigma,
        variance_vector("gs2", kernel=3, dim=2),
        image_shape=shape,
        sigma_w2=w2,
        sigma_b2=b2,
    )
    # fixed_point solves to ~1e-15 relative and the quadrature is accurate to ~1e-12, but both
    # use the same integrals as c_transform, so the residual is far below 1e-10
    np.testing.assert_allclose(out, sigma, rtol=0, atol=1e-10 * q_star)


# ------------------------------------------------------------------------------------------
# the theory's key claim: Fourier modes decay by chi_c lambda_f (docs/theory.md section 4, Fig. S4)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def figs4(cf: SimpleNamespace) -> SimpleNamespace:
    """The paper's Fig. S4 setting: erf, sigma_w = 1.5, sigma_b = 0.5, n = 10, kernel 3."""
    w2, b2 = 2.25, 0.25
    q = cf.q_star("erf", {}, w2, b2)
    c = cf.c_star("erf", {}, w2, b2)
    s = 1.0 + 2.0 * q
    chi_q = w2 * (4.0 / math.pi) / (s * math.sqrt(1.0 + 4.0 * q))
    v = np.array([0.025, 0.95, 0.025])
    _, lam = mode_eigenvalues(v, 10)
    return SimpleNamespace(
        w2=w2,
        b2=b2,
        q=q,
        c=c,
        chi_c=cf.chi_c("erf", {}, w2, b2),
        chi_q=chi_q,
        v=v,
        n=10,
        lam=lam.real,
        sigma=uniform_fixed_covariance(q, c, 10),
    )


@pytest.mark.parametrize("f", [0, 1, 2, 3, 5])
def test_off_diagonal_mode_decays_by_chi_c_lambda_f(figs4: SimpleNamespace, f: int) -> None:
    n, eps, depth = figs4.n, 1e-7, 6
    a = np.arange(n)
    pert = np.zeros((n, n))
    pert[a, (a + 1) % n] = eps * np.cos(2 * np.pi * f * a / n)  # first cyclic diagonal, mode f
    pert = pert + pert.T
    _, hist = iterate_covariance_map(
        "erf",
        figs4.sigma + pert,
        figs4.v,
        image_shape=n,
        sigma_w2=figs4.w2,
        sigma_b2=figs4.b2,
        depth=depth,
        record=True,
    )
    diff = hist - figs4.sigma
    coef = np.array([fourier_coefficient(cyclic_diagonal_1d(d, 1), f) for d in diff])
    ratios = coef[1:] / coef[:-1]
    expected = figs4.chi_c * figs4.lam[f]
    # linearisation error O(eps |C''/C'|) ~ 1e-7 and cancellation in Sigma - Sigma*
    # (1e-16 q* / (eps rate^l) ~ 1e-8): measured <= 3e-8; 1e-6 leaves a margin and is still
    # 1000x smaller than the gap between neighbouring lambda_f (~1e-2)
    np.testing.assert_allclose(ratios.real, expected, rtol=1e-6)
    assert np.abs(ratios.imag).max() < 1e-6
    # the diagonal is untouched (C_aa depends on Sigma_aa only; A_v does not mix them)
    assert np.array_equal(np.diag(hist[-1]), np.diag(figs4.sigma))


@pytest.mark.parametrize("f", [0, 1, 5])
def test_diagonal_mode_decays_by_chi_q_lambda_f(figs4: SimpleNamespace, f: int) -> None:
    n, eps, depth = figs4.n, 1e-6, 4
    a = np.arange(n)
    pert = np.diag(eps * np.cos(2 * np.pi * f * a / n))
    _, hist = iterate_covariance_map(
        "erf",
        figs4.sigma + pert,
        figs4.v,
        image_shape=n,
        sigma_w2=figs4.w2,
        sigma_b2=figs4.b2,
        depth=depth,
        record=True,
    )
    coef = np.array([fourier_coefficient(np.diag(d - figs4.sigma), f) for d in hist])
    ratios = (coef[1:] / coef[:-1]).real
    # chi_q ~ 0.28 shrinks the perturbation fast, so the cancellation error
    # 1e-16 q* / (eps 0.28^4) ~ 3e-8 grows with depth; linearisation O(eps) ~ 1e-6: measured
    # ~3e-6, tolerance 3e-5
    np.testing.assert_allclose(ratios, figs4.chi_q * figs4.lam[f], rtol=3e-5)


# ------------------------------------------------------------------------------------------
# iterate_covariance_map, uniform_fixed_covariance, validation
# ------------------------------------------------------------------------------------------


def test_iterate_record_and_depth_zero() -> None:
    sigma0 = random_covariance(6, seed=2)
    v = [0.25, 0.5, 0.25]
    kw: dict[str, Any] = {"image_shape": (6,), "sigma_w2": 1.3, "sigma_b2": 0.1}
    final, hist = iterate_covariance_map("tanh", sigma0, v, depth=3, record=True, **kw)
    assert hist.shape == (4, 6, 6)
    assert np.array_equal(hist[0], sigma0) and np.array_equal(hist[-1], final)
    one = covariance_map("tanh", sigma0, v, **kw)
    assert np.array_equal(hist[1], one)
    assert np.array_equal(iterate_covariance_map("tanh", sigma0, v, depth=0, **kw), sigma0)
    assert np.array_equal(final, final.T)  # exactly symmetric by construction
    with pytest.raises(MFTheoryError, match="depth"):
        iterate_covariance_map("tanh", sigma0, v, depth=-1, **kw)


def test_batch_of_images_matches_single_image_blocks() -> None:
    """Two images: the diagonal blocks evolve exactly as each image alone (C acts entrywise
    and A_v shifts both images alike)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((16, 40))
    sigma = x @ x.T / 40
    v = variance_vector("gs3", kernel=3, dim=2)
    kw: dict[str, Any] = {"image_shape": (2, 4), "sigma_w2": 1.8, "sigma_b2": 0.2}
    both = covariance_map("erf", sigma, v, **kw)
    first = covariance_map("erf", sigma[:8, :8], v, **kw)
    second = covariance_map("erf", sigma[8:, 8:], v, **kw)
    # identical operations on identical entries (dedup only merges equal triples): exact up
    # to the order of summation inside apply_A, which is the same
    np.testing.assert_allclose(both[:8, :8], first, rtol=0, atol=1e-15)
    np.testing.assert_allclose(both[8:, 8:], second, rtol=0, atol=1e-15)


def test_covariance_map_errors() -> None:
    sigma = np.eye(9)
    kw: dict[str, Any] = {"sigma_w2": 1.0, "sigma_b2": 0.0}
    with pytest.raises(MFTheoryError, match="sums to 8"):
        covariance_map("erf", sigma, "0,1,0;1,4,1;0,1,0", image_shape=(3, 3), **kw)
    with pytest.raises(MFTheoryError, match="dimension"):
        covariance_map("erf", sigma, [0.25, 0.5, 0.25], image_shape=(3, 3), **kw)
    with pytest.raises(MFTheoryError, match="multiple"):
        covariance_map("erf", sigma, [0.25, 0.5, 0.25], image_shape=(4,), **kw)


def test_uniform_fixed_covariance() -> None:
    s = uniform_fixed_covariance(2.0, 0.25, 4)
    assert np.array_equal(s, 2.0 * (0.75 * np.eye(4) + 0.25 * np.ones((4, 4))))
    assert uniform_fixed_covariance(1.5, 1.0, 1).tolist() == [[1.5]]
    for args, fragment in [
        ((math.inf, 0.5, 3), "q_star"),
        ((-1.0, 0.5, 3), "q_star"),
        ((1.0, 1.5, 3), "c_star"),
        ((1.0, math.nan, 3), "c_star"),
        ((1.0, 0.5, 0), "N"),
        ((1.0, 0.5, 2.0), "N"),
    ]:
        with pytest.raises(MFTheoryError, match=fragment):
            uniform_fixed_covariance(*args)  # type: ignore[arg-type]
