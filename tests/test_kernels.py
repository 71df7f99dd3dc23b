"""Tests of mftheory.cnn.kernels: orthogonal, Delta-Orthogonal and Gaussian kernels and their
checks.

docs/theory.md section 6. Tolerances:

- Orthogonality, ``1e-12`` absolute: a singular value or Gram entry of a correct kernel is an
  O(1) sum of at most ``size^dim * c`` products (here <= 125 * 6), each rounded to ~1e-16,
  so the error is ~1e-15 (measured <= 5e-15); 1e-12 leaves a margin of ~200x and still
  catches any wrong sign, offset or projection (those give O(0.1) errors).
- The dense operator (an independent path: explicit loops over pixels and offsets, no FFT)
  is compared with the same 1e-12: sums of <= 125 * 6 O(1) products again.
- Monte Carlo checks use 5 standard errors of the estimate (estimated from the sample, or
  from the known Gaussian variance): a correct implementation fails one comparison with
  probability ~6e-7, a wrong share (e.g. uniform 1/3 instead of 1/4) misses by > 20 errors.
  The seeds are fixed, so the runs are reproducible anyway.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import slow_except
from scipy.stats import binom

from mftheory.cnn.kernels import (
    KernelCheck,
    _orthogonal_kernel,
    check_kernel,
    delta_orthogonal_kernel,
    gaussian_kernel,
    kernel_sigma_w2,
    kernel_variance_share,
    operator_singular_values,
    orthogonal_kernel,
    random_orthogonal,
)
from mftheory.cnn.modes import mode_eigenvalues, variance_vector
from mftheory.errors import MFTheoryError

ORTH_TOL = 1e-12  # see the module docstring
MC_SIGMAS = 5.0  # Monte Carlo tolerance in standard errors

KINDS: dict[str, Callable[..., np.ndarray]] = {
    "orthogonal": orthogonal_kernel,
    "delta": delta_orthogonal_kernel,
}


def dense_operator(kernel: np.ndarray, n: int) -> np.ndarray:
    """The operator on periodic ``n^d`` images as a dense ``(c_out N) x (c_in N)`` matrix.

    Built literally from ``y_j(a) = sum_i sum_b K(b)[i, j] x_i(a + b)`` (indices mod n),
    with loops over pixels ``a`` and kernel positions; row ``a * c_out + j``, column
    ``a' * c_in + i`` (pixels row-major). No FFT anywhere.
    """
    spatial = kernel.shape[:-2]
    d = len(spatial)
    ci, co = kernel.shape[-2:]
    pixels = list(itertools.product(range(n), repeat=d))
    index = {p: k for k, p in enumerate(pixels)}
    w = np.zeros((co * len(pixels), ci * len(pixels)))
    for a in pixels:
        for pos in itertools.product(*(range(s) for s in spatial)):
            b = [pos[t] - spatial[t] // 2 for t in range(d)]
            src = tuple((a[t] + b[t]) % n for t in range(d))
            ra, rs = index[a], index[src]
            w[ra * co : (ra + 1) * co, rs * ci : (rs + 1) * ci] += kernel[pos].T
    return w


def roll_convolution(kernel: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``y_j = sum_b sum_i K(b)[i, j] roll(x_i, -b)``: images ``x`` of shape ``(c_in,) + n^d``."""
    spatial = kernel.shape[:-2]
    d = len(spatial)
    y = np.zeros((kernel.shape[-1], *x.shape[1:]))
    for pos in itertools.product(*(range(s) for s in spatial)):
        b = tuple(-(pos[t] - spatial[t] // 2) for t in range(d))
        shifted = np.roll(x, b, axis=tuple(range(1, d + 1)))
        y += np.einsum("ij,i...->j...", kernel[pos], shifted)
    return y


def binomial_share(size: int, dim: int, p_shift: float = 0.5) -> np.ndarray:
    """Outer product over axes of ``Binomial(size - 1, p_shift)`` over the ``size`` positions."""
    one = binom.pmf(np.arange(size), size - 1, p_shift)
    out = one
    for _ in range(dim - 1):
        out = np.multiply.outer(out, one)
    return np.asarray(out)


# ------------------------------------------------------------------------------------------
# Orthogonality: every singular value equals the gain, for every image size
# ------------------------------------------------------------------------------------------

CHANNELS_GAIN = [(4, 4, 1.0), (4, 4, 1.7), (2, 5, 1.0), (2, 5, 1.7)]
ORTHOGONALITY_CASES = [
    (kind, dim, size, *cg)
    for kind in sorted(KINDS)
    for dim in (1, 2, 3)
    for size in (1, 3, 5)
    for cg in CHANNELS_GAIN
]


# The default run keeps every kind, dimension and size with rectangular channels and a gain
# (2 -> 5, 1.7), and square unit-gain kernels in 1D and 3D; --run-slow all 72 cases.
@pytest.mark.parametrize(
    ("kind", "dim", "size", "c_in", "c_out", "gain"),
    slow_except(
        ORTHOGONALITY_CASES,
        [
            c
            for c in ORTHOGONALITY_CASES
            if c[3:] == (2, 5, 1.7) or (c[3:] == (4, 4, 1.0) and c[1] != 2)
        ],
        multi=True,
    ),
)
def test_orthogonal_kernels_have_every_singular_value_equal_to_gain(
    kind: str, dim: int, size: int, c_in: int, c_out: int, gain: float
) -> None:
    kernel = KINDS[kind](size, c_in, c_out, dim=dim, gain=gain, seed=11)
    assert kernel.shape == (size,) * dim + (c_in, c_out)
    assert kernel.dtype == np.float64
    res = check_kernel(kernel, gain=gain, tol=ORTH_TOL)
    top = 8 if dim == 3 else 64
    assert res.n_values == tuple(range(size, top + 1))
    assert res.orthogonal, res
    assert res.columns_orthonormal, res
    assert res.max_deviation <= ORTH_TOL
    assert res.max_gram_deviation <= ORTH_TOL
    assert abs(res.min_singular - gain) <= ORTH_TOL
    assert abs(res.max_singular - gain) <= ORTH_TOL
    # the estimated gain (median singular value) finds the same
    est = check_kernel(kernel, n_values=[size, size + 1], tol=ORTH_TOL)
    assert est.gain_estimated and abs(est.gain - gain) <= ORTH_TOL and est.orthogonal


@pytest.mark.parametrize(
    ("dim", "size", "n", "c_in", "c_out", "gain"),
    [
        (1, 3, 5, 3, 3, 1.0),
        (1, 5, 7, 2, 4, 1.7),
        (1, 5, 2, 2, 3, 1.7),  # kernel wider than the image: wraps
        (1, 5, 1, 2, 2, 1.0),
        (2, 3, 4, 2, 2, 1.7),
        (2, 3, 3, 2, 3, 1.0),
        (2, 5, 3, 1, 2, 1.7),  # wraps
        (3, 3, 3, 1, 2, 1.0),
    ],
)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dense_operator_is_a_scaled_isometry(
    kind: str, dim: int, size: int, n: int, c_in: int, c_out: int, gain: float
) -> None:
    """The independent path: W^T W = gain^2 I for the dense matrix, and its singular values
    are exactly those operator_singular_values finds through the DFT."""
    kernel = KINDS[kind](size, c_in, c_out, dim=dim, gain=gain, seed=3)
    w = dense_operator(kernel, n)
    gram = w.T @ w
    assert np.max(np.abs(gram - gain**2 * np.eye(gram.shape[0]))) <= ORTH_TOL
    dense_sv = np.linalg.svd(w, compute_uv=False)
    fft_sv = np.sort(operator_singular_values(kernel, n).ravel())[::-1]
    np.testing.assert_allclose(fft_sv, dense_sv, rtol=0, atol=ORTH_TOL)


@pytest.mark.parametrize(
    ("shape", "n"),
    [((3, 2, 3), 4), ((5, 3, 2), 3), ((5, 1, 1), 2), ((3, 3, 2, 2), 4), ((3, 5, 2, 3), 3)],
)
def test_singular_values_match_dense_operator_for_any_kernel(
    shape: tuple[int, ...], n: int
) -> None:
    """A generic (Gaussian, unequal-sided, c_in > c_out) kernel: same singular values."""
    kernel = np.random.default_rng(5).standard_normal(shape)
    sv = operator_singular_values(kernel, n)
    d = len(shape) - 2
    assert sv.shape == (n**d, min(shape[-2:]))
    dense_sv = np.linalg.svd(dense_operator(kernel, n), compute_uv=False)
    np.testing.assert_allclose(np.sort(sv.ravel())[::-1], dense_sv[: sv.size], atol=ORTH_TOL)


def test_dense_operator_matches_the_definition() -> None:
    """The test's own reference, checked once against np.roll convolution."""
    rng = np.random.default_rng(8)
    kernel = rng.standard_normal((3, 5, 2, 3))
    x = rng.standard_normal((2, 4, 4))
    y = roll_convolution(kernel, x)
    # dense columns are pixel-major then channel: reorder x to (pixel, channel)
    flat_x = np.moveaxis(x, 0, -1).reshape(-1)
    flat_y = dense_operator(kernel, 4) @ flat_x
    np.testing.assert_allclose(flat_y, np.moveaxis(y, 0, -1).reshape(-1), atol=1e-12)


def test_torch_circular_conv_preserves_norms() -> None:
    """The layout is torch's (cross-correlation, centred, circular padding) after transposing
    the channel axes: an orthogonal kernel keeps ||y|| = gain ||x||, and torch agrees with the
    roll definition."""
    torch = pytest.importorskip("torch")
    kernel = orthogonal_kernel(3, 3, 5, dim=2, gain=1.7, seed=4)
    x = np.random.default_rng(2).standard_normal((3, 6, 6))
    weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    xt = torch.nn.functional.pad(torch.from_numpy(x)[None], (1, 1, 1, 1), mode="circular")
    y = torch.nn.functional.conv2d(xt, weight)[0].numpy()
    np.testing.assert_allclose(y, roll_convolution(kernel, x), atol=1e-12)
    assert abs(np.linalg.norm(y) - 1.7 * np.linalg.norm(x)) <= 1e-12 * np.linalg.norm(y)


def test_size_one_orthogonal_equals_delta_orthogonal() -> None:
    a = orthogonal_kernel(1, 3, 5, dim=2, gain=1.3, seed=9)
    b = delta_orthogonal_kernel(1, 3, 5, dim=2, gain=1.3, seed=9)
    np.testing.assert_array_equal(a, b)


def test_delta_orthogonal_is_zero_off_centre() -> None:
    k = delta_orthogonal_kernel(5, 2, 3, dim=2, gain=1.7, seed=1)
    centre = k[2, 2]
    np.testing.assert_allclose(centre @ centre.T, 1.7**2 * np.eye(2), atol=ORTH_TOL)
    k[2, 2] = 0.0
    assert not k.any()


def test_single_channel_orthogonal_kernel_is_a_signed_shift() -> None:
    """c_out = 1: every projection is 0 or 1, so the kernel is +-gain at one position."""
    k = orthogonal_kernel(5, 1, 1, dim=2, gain=2.0, seed=6)
    assert np.count_nonzero(k) == 1
    assert abs(abs(float(k.sum())) - 2.0) <= ORTH_TOL


def test_gaussian_kernel_is_not_orthogonal() -> None:
    res = check_kernel(gaussian_kernel("uniform", 4, 4, size=3, dim=2, seed=1))
    assert not res.orthogonal
    assert not res.columns_orthonormal
    assert res.gain_estimated
    assert res.max_deviation > 0.1
    # given a gain, still not
    assert not check_kernel(gaussian_kernel("uniform", 4, 4, seed=1), gain=1.0).orthogonal


def test_more_inputs_than_outputs_never_has_orthonormal_columns() -> None:
    res = check_kernel(np.random.default_rng(0).standard_normal((3, 4, 2)), n_values=[3])
    assert not res.columns_orthonormal


def test_zero_gain_kernel() -> None:
    k = orthogonal_kernel(3, 2, 2, dim=1, gain=0.0, seed=1)
    assert not k.any()
    res = check_kernel(k, gain=0.0, n_values=[3])
    assert res.orthogonal  # every singular value equals the gain 0
    assert not res.columns_orthonormal and math.isnan(res.max_gram_deviation)
    assert res.as_dict()["max_gram_deviation"] is None


def test_check_kernel_as_dict_is_json() -> None:
    res = check_kernel(orthogonal_kernel(3, 2, 3, dim=2, seed=1), n_values=range(1, 6))
    assert isinstance(res, KernelCheck)
    data = json.loads(json.dumps(res.as_dict()))
    assert data["n_values"] == [1, 2, 3, 4, 5]
    assert data["orthogonal"] is True and data["columns_orthonormal"] is True
    assert data["shape"] == [3, 3, 2, 3]
    with pytest.raises(AttributeError):
        res.gain = 2.0  # type: ignore[misc]


def test_default_n_values_cover_kernels_wider_than_64() -> None:
    k = delta_orthogonal_kernel(67, 1, 1, dim=1, seed=0)
    assert check_kernel(k).n_values == (67,)


def test_singular_values_of_a_scalar_kernel_are_abs_lambda() -> None:
    """c_in = c_out = 1 with a non-negative kernel v: sigma_w = |lambda_w| of mftheory.cnn.modes
    (the conjugate DFT sign does not change the modulus)."""
    for v, n in [(variance_vector("gs2", kernel=3, dim=2), 5), (np.array([0.1, 0.2, 0.7]), 6)]:
        _, lam = mode_eigenvalues(v, n)
        sv = operator_singular_values(v[..., None, None], n)
        np.testing.assert_allclose(sv[:, 0], np.abs(lam), atol=1e-14)


# ------------------------------------------------------------------------------------------
# Seeding
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*sorted(KINDS), "gaussian"])
def test_seeding(kind: str) -> None:
    def make(seed: Any) -> np.ndarray:
        if kind == "gaussian":
            return gaussian_kernel("uniform", 3, 4, seed=seed)
        return KINDS[kind](3, 3, 4, dim=2, seed=seed)

    np.testing.assert_array_equal(make(7), make(7))
    assert not np.array_equal(make(7), make(8))
    np.testing.assert_array_equal(make(np.random.default_rng(7)), make(7))
    gen = np.random.default_rng(7)
    first, second = make(gen), make(gen)  # a generator is advanced
    assert not np.array_equal(first, second)


def test_random_orthogonal() -> None:
    q = random_orthogonal(6, 4, 1)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=ORTH_TOL)
    r = random_orthogonal(3, 7, np.random.default_rng(1))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=ORTH_TOL)
    np.testing.assert_array_equal(random_orthogonal(5, 5, 2), random_orthogonal(5, 5, 2))


def test_random_orthogonal_is_haar_in_mean() -> None:
    """Haar: E[Q_11^2] = 1/n and the sign-fixed diagonal has mean 0 (without the sign fix of
    R the diagonal of Q would be biased positive). 4000 draws of 4x4: the standard error of
    the mean of Q_11 is sqrt(1/4 / 4000) = 0.0079; of Q_11^2, sqrt(Var) / sqrt(4000) with
    Var = 2/(n(n+2)) - 1/n^2 = 1/48, i.e. 0.0023."""
    rng = np.random.default_rng(12)
    draws = np.array([random_orthogonal(4, 4, rng)[0, 0] for _ in range(4000)])
    assert abs(draws.mean()) <= MC_SIGMAS * 0.0079
    assert abs((draws**2).mean() - 0.25) <= MC_SIGMAS * 0.0023


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((3, 5, 4), {}, "c_in <= c_out"),
        ((4, 2, 2), {}, "even"),
        ((0, 2, 2), {}, "at least 1"),
        ((3.0, 2, 2), {}, "integer"),
        ((3, 2, 2), {"dim": 4}, "dim must be 1, 2 or 3"),
        ((3, 2, 2), {"dim": 0}, "dim must be 1, 2 or 3"),
        ((3, 0, 2), {}, "c_in"),
        ((3, 2, 0), {}, "c_out"),
        ((3, 2, 2), {"gain": -1.0}, "gain"),
        ((3, 2, 2), {"gain": math.nan}, "gain"),
        ((3, 2, 2), {"gain": math.inf}, "gain"),
        ((3, 2, 2), {"seed": "abc"}, "seed"),
        ((3, 2, 2), {"seed": -1}, "seed"),
    ],
)
def test_orthogonal_kernel_errors(
    kind: str, args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(MFTheoryError, match=match):
        KINDS[kind](*args, **kwargs)


def test_random_orthogonal_errors() -> None:
    with pytest.raises(MFTheoryError, match="n_rows"):
        random_orthogonal(0, 3, 1)
    with pytest.raises(MFTheoryError, match="seed"):
        random_orthogonal(3, 3, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kernel", "match"),
    [
        (np.full((3, 2, 2), np.nan), "not finite"),
        (np.ones((2, 2, 2)), "even"),
        (np.ones((3, 3)), "expected"),
        (np.ones((3, 3, 3, 3, 2, 2)), "expected"),
        (np.ones((3, 0, 2)), "no entries"),
        ([[["a"]]], "real numbers"),
    ],
)
def test_kernel_validation_errors(kernel: Any, match: str) -> None:
    for fn in (
        lambda k: operator_singular_values(k, 4),
        check_kernel,
        kernel_variance_share,
        kernel_sigma_w2,
    ):
        with pytest.raises(MFTheoryError, match=match):
            fn(kernel)


def test_inf_entry_and_bad_n() -> None:
    k = np.ones((3, 2, 2))
    k[1, 0, 1] = np.inf
    with pytest.raises(MFTheoryError, match=r"inf.*\(1, 0, 1\)"):
        operator_singular_values(k, 4)
    good = np.ones((3, 2, 2))
    with pytest.raises(MFTheoryError, match="image side n"):
        operator_singular_values(good, 0)
    with pytest.raises(MFTheoryError, match="image side n"):
        check_kernel(good, n_values=[3, 0])
    with pytest.raises(MFTheoryError, match="empty"):
        check_kernel(good, n_values=[])
    with pytest.raises(MFTheoryError, match="gain"):
        check_kernel(good, gain=-1.0)
    with pytest.raises(MFTheoryError, match="tol"):
        check_kernel(good, tol=math.nan)
    with pytest.raises(MFTheoryError, match="all zeros"):
        kernel_variance_share(np.zeros((3, 2, 2)))


@pytest.mark.parametrize(
    ("v", "kwargs", "match"),
    [
        (np.array([0.2, 0.2, 0.2]), {}, "normalize_variance_vector"),
        ("1,2,1", {}, "normalize_variance_vector"),
        ("bogus", {}, "unknown variance vector"),
        (np.array([0.5, 0.5]), {}, "even"),
        (np.array([-0.5, 1.0, 0.5]), {}, "negative"),
        ("uniform", {"size": 4}, "even"),
        ("uniform", {"c_in": 0}, "c_in"),
        ("uniform", {"gain": -2.0}, "gain"),
    ],
)
def test_gaussian_kernel_errors(v: Any, kwargs: dict[str, Any], match: str) -> None:
    c_in = kwargs.pop("c_in", 2)
    with pytest.raises(MFTheoryError, match=match):
        gaussian_kernel(v, c_in, 3, **kwargs)


# ------------------------------------------------------------------------------------------
# Variance share and sigma_w^2
# ------------------------------------------------------------------------------------------


def mean_share(
    make: Callable[[np.random.Generator], np.ndarray], draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and standard error of kernel_variance_share over ``draws`` kernels."""
    rng = np.random.default_rng(seed)
    shares = np.array([kernel_variance_share(make(rng)) for _ in range(draws)])
    return shares.mean(axis=0), shares.std(axis=0, ddof=1) / math.sqrt(draws)


@pytest.mark.parametrize(("size", "dim"), [(3, 1), (5, 1), (3, 2), (5, 2)])
def test_orthogonal_kernel_variance_share_is_binomial(size: int, dim: int) -> None:
    """E[share] = outer product of Binomial(size - 1, 1/2) (docs/theory.md section 6): 200 kernels
    of 16 channels, within 5 standard errors of the sample mean at every position."""
    mean, se = mean_share(lambda g: orthogonal_kernel(size, 16, 16, dim=dim, seed=g), 200, 21)
    expected = binomial_share(size, dim)
    assert np.all(np.abs(mean - expected) <= MC_SIGMAS * se + 1e-12), (mean, expected, se)
    # and not the uniform share: the test has the power to tell them apart (>= 47 errors off)
    assert np.max(np.abs(mean - 1.0 / size**dim) / se) > 3 * MC_SIGMAS


def test_orthogonal_kernel_variance_share_with_c_in_below_c_out() -> None:
    mean, se = mean_share(lambda g: orthogonal_kernel(3, 8, 16, dim=2, seed=g), 200, 22)
    assert np.all(np.abs(mean - binomial_share(3, 2)) <= MC_SIGMAS * se + 1e-12)


@pytest.mark.parametrize("keep", [0.25, 0.8])
def test_variance_share_follows_the_projection_rank(keep: float) -> None:
    """With E[m] / c = keep the share is Binomial(size - 1, 1 - keep): only the mean rank
    fraction matters (the docstring's claim, through the private core)."""

    def make(g: np.random.Generator) -> np.ndarray:
        return _orthogonal_kernel(5, 16, 16, 1, 1.0, g, keep=keep)

    mean, se = mean_share(make, 200, 23)
    expected = binomial_share(5, 1, 1.0 - keep)
    assert np.all(np.abs(mean - expected) <= MC_SIGMAS * se + 1e-12), (mean, expected, se)
    assert check_kernel(make(np.random.default_rng(0)), gain=1.0).orthogonal


def test_delta_orthogonal_share_is_delta() -> None:
    share = kernel_variance_share(delta_orthogonal_kernel(3, 4, 6, dim=2, gain=1.7, seed=2))
    np.testing.assert_array_equal(share, variance_vector("delta", kernel=3, dim=2))


@pytest.mark.parametrize(("c_in", "c_out"), [(4, 4), (3, 7), (1, 5)])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_orthogonal_sigma_w2_is_exact(kind: str, c_in: int, c_out: int) -> None:
    """sum K^2 = trace(sum_b K(b) K(b)^T) = gain^2 c_in exactly, so sigma_w2 = gain^2 c_in / c_out
    (relative round-off of a sum of <= 9 * 7 * 7 squares: ~1e-15)."""
    for gain in (1.0, 1.7):
        k = KINDS[kind](3, c_in, c_out, dim=2, gain=gain, seed=5)
        expected = gain**2 * c_in / c_out
        assert abs(kernel_sigma_w2(k) - expected) <= 1e-13 * expected


@pytest.mark.parametrize("v", ["uniform", "gs2", "delta", np.array([[0.1, 0.3, 0.0]] * 3) / 1.2])
def test_gaussian_kernel_sigma_w2_and_share(v: Any) -> None:
    """sum K^2 / c_out estimates gain^2. Var(K(b)_ij^2) = 2 (gain^2 v_b / c_in)^2, so the
    estimate has standard deviation gain^2 sqrt(2 sum_b v_b^2 / (c_in c_out)); per position,
    the mean of K(b)_ij^2 over the c_in c_out entries has relative standard deviation
    sqrt(2 / (c_in c_out)) (1.1% for 128 x 128). 5 sigma each."""
    c_in, c_out, gain = 128, 128, 1.7
    k = gaussian_kernel(v, c_in, c_out, gain=gain, seed=31, size=3, dim=2)
    vv = variance_vector(v, kernel=3, dim=2)
    assert k.shape == (*vv.shape, c_in, c_out)
    sd = gain**2 * math.sqrt(2.0 * float((vv**2).sum()) / (c_in * c_out))
    assert abs(kernel_sigma_w2(k) - gain**2) <= MC_SIGMAS * sd
    per_position = np.mean(k**2, axis=(-2, -1))
    expected = gain**2 * vv / c_in
    rel_sd = math.sqrt(2.0 / (c_in * c_out))
    assert np.all(np.abs(per_position - expected) <= MC_SIGMAS * rel_sd * expected)
    assert np.all(k[vv == 0] == 0.0)


def test_gaussian_kernel_explicit_v_and_shapes() -> None:
    k = gaussian_kernel([0.25, 0.5, 0.25], 5, 2, seed=1)  # c_in > c_out is fine
    assert k.shape == (3, 5, 2)
    assert operator_singular_values(k, 4).shape == (4, 2)
    k3 = gaussian_kernel("uniform", 2, 2, size=3, dim=3, seed=1)
    assert k3.shape == (3, 3, 3, 2, 2)
    assert gaussian_kernel("0.1,0.8,0.1", 2, 2, seed=1).shape == (3, 2, 2)


# ------------------------------------------------------------------------------------------
# Heavier checks
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_wide_orthogonal_kernel_is_orthogonal() -> None:
    """Wide kernels (3x3, 128 -> 256 channels; round-off grows with c, ~1e-15 measured here)
    on an image smaller than the kernel (wraps) and a larger one."""
    k = orthogonal_kernel(3, 128, 256, dim=2, gain=1.7, seed=1)
    res = check_kernel(k, gain=1.7, n_values=[2, 4])
    assert res.orthogonal and res.columns_orthonormal, res
    assert abs(kernel_sigma_w2(k) - 1.7**2 * 128 / 256) <= 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("dim", [1, 2])
def test_variance_share_many_draws(dim: int, size: int) -> None:
    """2000 kernels of 32 channels: the binomial share to 5 (ten times smaller) standard errors."""
    mean, se = mean_share(lambda g: orthogonal_kernel(size, 32, 32, dim=dim, seed=g), 2000, 40)
    assert np.all(np.abs(mean - binomial_share(size, dim)) <= MC_SIGMAS * se + 1e-12)
