"""Tests of mftheory.cnn.modes: variance vectors, Fourier eigenvalues lambda_f, depth scales.

docs/theory.md section 4. Tolerances: eigenvalues are sums of at most a few dozen O(1) terms, so
two correct evaluations differ by a few ulp (~1e-16 each); 1e-14 leaves a margin of ~50 ulp
and still catches any wrong sign, offset or wrap-around (those give O(0.01) errors or more).
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from mftheory.cnn.modes import (
    VARIANCE_VECTOR_PRESETS,
    ModeTable,
    check_variance_vector,
    mode_depth_scale,
    mode_eigenvalues,
    mode_table,
    normalize_variance_vector,
    variance_vector,
    wrap_kernel,
)
from mftheory.errors import MFTheoryError

# Round-off of an O(1) sum of <= 125 terms: a few ulp; see the module docstring.
EIG_TOL = 1e-14


def direct_eigenvalues(v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """lambda_f = sum_b v_b exp(2 pi i <f, b> / n) by the literal double loop (no FFT)."""
    d = v.ndim
    centre = np.array([s // 2 for s in v.shape])
    freqs = list(itertools.product(range(n), repeat=d))
    lam = np.zeros(len(freqs), dtype=complex)
    for i, f in enumerate(freqs):
        total = 0j
        for pos in itertools.product(*(range(s) for s in v.shape)):
            b = np.array(pos) - centre
            total += v[pos] * np.exp(2j * np.pi * np.dot(f, b) / n)
        lam[i] = total
    return np.array(freqs), lam


# ------------------------------------------------------------------------------------------
# variance_vector and presets
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_presets_shapes_and_sums(kernel: int, dim: int) -> None:
    for name in VARIANCE_VECTOR_PRESETS:
        v = variance_vector(name, kernel=kernel, dim=dim)
        assert v.shape == (kernel,) * dim
        # presets are built from exact fractions j/4 and 1/k^d: the sum is 1 to round-off.
        assert abs(v.sum() - 1.0) < 1e-14
        assert (v >= 0).all()


def test_gs_interpolation_endpoints_and_middle() -> None:
    delta = variance_vector("delta", kernel=3, dim=2)
    uniform = variance_vector("uniform", kernel=3, dim=2)
    assert np.array_equal(variance_vector("gs0", kernel=3, dim=2), delta)
    assert np.array_equal(variance_vector("gs4", kernel=3, dim=2), uniform)
    assert delta[1, 1] == 1.0 and delta.sum() == 1.0
    assert np.all(uniform == 1.0 / 9.0)
    for j in range(5):
        v = variance_vector(f"GS{j}", kernel=3, dim=2)  # case-insensitive
        # exact arithmetic combination of delta and uniform: only round-off differences.
        np.testing.assert_allclose(v, (1 - j / 4) * delta + (j / 4) * uniform, atol=1e-16)


def test_parse_text_1d_and_2d() -> None:
    v = variance_vector("0.025,0.95,0.025")
    assert v.shape == (3,)
    np.testing.assert_array_equal(v, [0.025, 0.95, 0.025])
    w = variance_vector(" 0, 1 ,0; 1,4,1 ;0,1,0 ")
    np.testing.assert_array_equal(w, [[0, 1, 0], [1, 4, 1], [0, 1, 0]])
    assert variance_vector("1").shape == (1,)


def test_arrays_pass_through_unnormalised() -> None:
    v = variance_vector([[0, 1, 0], [1, 4, 1], [0, 1, 0]])
    assert v.dtype == np.float64 and v.sum() == 8.0
    original = np.array([1.0, 2.0, 1.0])
    out = variance_vector(original)
    out[0] = 99.0
    assert original[0] == 1.0  # a copy, not a view


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("foo", "unknown variance vector 'foo'"),
        ("1,2,x", "'x' is not a number"),
        ("1,,1", "'' is not a number"),
        ("1,nan,1", "nan"),
        ("1,inf,1", "inf"),
        ("1,-0.5,1", "-0.5"),
        ("1,1", "odd so that the kernel has a centre"),
        ("0,1,0,0", "odd so that the kernel has a centre"),
        ("0,0,0", "all zeros"),
        ("1,2,3;1,2", "different lengths"),
        ("", "empty"),
        ("   ", "empty"),
        ([], "empty"),
        ([[1, 2, 3], [1, 2]], "ragged"),
        ([[["a"]]], "not a rectangular array of numbers"),
        (np.ones((1, 1, 1, 1)), "4 dimensions"),
        (np.ones((3, 2)), "side length 2 is even"),
    ],
)
def test_parse_errors(spec: object, fragment: str) -> None:
    with pytest.raises(MFTheoryError) as err:
        variance_vector(spec)  # type: ignore[arg-type]
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"kernel": 0}, "at least 1"),
        ({"kernel": -3}, "at least 1"),
        ({"kernel": 4}, "kernel sizes must be odd so that the kernel has a centre"),
        ({"kernel": 2.5}, "integer"),
        ({"dim": 0}, "1, 2 or 3"),
        ({"dim": 4}, "1, 2 or 3"),
    ],
)
def test_preset_argument_errors(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(MFTheoryError, match=fragment):
        variance_vector("uniform", **kwargs)  # type: ignore[arg-type]


def test_check_variance_vector_refuses_preset_names() -> None:
    with pytest.raises(MFTheoryError, match="variance_vector"):
        check_variance_vector("uniform")
    np.testing.assert_array_equal(check_variance_vector("1,2,1"), [1, 2, 1])


def test_normalize_variance_vector() -> None:
    v, total = normalize_variance_vector("0,1,0;1,4,1;0,1,0")
    assert total == 8.0
    np.testing.assert_array_equal(v, np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 8.0)
    v1, total1 = normalize_variance_vector([0.25, 0.5, 0.25])
    assert total1 == 1.0 and np.array_equal(v1, [0.25, 0.5, 0.25])
    with pytest.raises(MFTheoryError, match="all zeros"):
        normalize_variance_vector([0.0, 0.0, 0.0])


# ------------------------------------------------------------------------------------------
# eigenvalues
# ------------------------------------------------------------------------------------------


def test_lambda_zero_is_one_for_normalised_v() -> None:
    rng = np.random.default_rng(1)
    for shape in [(3,), (5,), (3, 3), (5, 3), (3, 3, 3)]:
        v, _ = normalize_variance_vector(rng.random(shape))
        for n in (1, 2, 7):
            freq, lam = mode_eigenvalues(v, n)
            assert np.all(freq[0] == 0)
            # lambda_0 = sum(v) = 1 up to the round-off of a sum of <= 27 terms.
            assert abs(lam[0] - 1.0) < EIG_TOL


@pytest.mark.parametrize("dim", [1, 2])
def test_delta_gives_unit_eigenvalues(dim: int) -> None:
    for n in (1, 4, 9):
        _, lam = mode_eigenvalues(variance_vector("delta", kernel=5, dim=dim), n)
        # a single term exp(0) = 1: exact.
        assert np.array_equal(lam, np.ones(n**dim))


def test_uniform_1d_closed_form() -> None:
    n = 10
    freq, lam = mode_eigenvalues(variance_vector("uniform", kernel=3), n)
    f = freq[:, 0]
    expected = (1.0 + 2.0 * np.cos(2.0 * np.pi * f / n)) / 3.0
    np.testing.assert_allclose(lam.real, expected, rtol=0, atol=EIG_TOL)
    assert np.all(lam.imag == 0.0)  # symmetric v: imaginary part set to exactly 0


def test_separable_2d_is_product_of_1d() -> None:
    a = np.array([0.2, 0.5, 0.3])
    b = np.array([0.1, 0.1, 0.6, 0.15, 0.05])
    n = 6
    _, la = mode_eigenvalues(a, n)
    _, lb = mode_eigenvalues(b, n)
    freq, lab = mode_eigenvalues(np.outer(a, b), n)
    np.testing.assert_allclose(lab, la[freq[:, 0]] * lb[freq[:, 1]], rtol=0, atol=EIG_TOL)


# 1D: n = 3..12; 2D: n = 3..8 (the literal reference loop is O(n^2 k^2) in 2D).
_FFT_CASES = [(1, k, n) for k in (3, 5) for n in range(3, 13)] + [
    (2, k, n) for k in (3, 5) for n in range(3, 9)
]


@pytest.mark.parametrize(("dim", "kernel", "n"), _FFT_CASES)
def test_fft_matches_direct_sum(dim: int, kernel: int, n: int) -> None:
    rng = np.random.default_rng(100 * n + 10 * kernel + dim)
    v, _ = normalize_variance_vector(rng.random((kernel,) * dim))
    freq, lam = mode_eigenvalues(v, n)
    dfreq, dlam = direct_eigenvalues(v, n)
    assert np.array_equal(freq, dfreq)
    np.testing.assert_allclose(lam, dlam, rtol=0, atol=EIG_TOL)


@pytest.mark.parametrize(("kernel", "n", "dim"), [(5, 3, 1), (5, 2, 1), (7, 3, 1), (5, 3, 2)])
def test_kernel_wider_than_image_wraps_around(kernel: int, n: int, dim: int) -> None:
    rng = np.random.default_rng(kernel * n)
    v, _ = normalize_variance_vector(rng.random((kernel,) * dim))
    _, lam = mode_eigenvalues(v, n)
    _, dlam = direct_eigenvalues(v, n)
    np.testing.assert_allclose(lam, dlam, rtol=0, atol=EIG_TOL)
    # the folded kernel keeps the total weight
    assert abs(wrap_kernel(v, n).sum() - 1.0) < EIG_TOL


def test_asymmetric_v_gives_complex_conjugate_pairs() -> None:
    v = np.array([0.1, 0.6, 0.3])
    n = 8
    freq, lam = mode_eigenvalues(v, n)
    assert np.abs(lam.imag).max() > 0.1
    # lambda_{-f} = conj(lambda_f) for real v
    neg = (-freq[:, 0]) % n
    np.testing.assert_allclose(lam[neg], np.conj(lam), rtol=0, atol=EIG_TOL)


def test_n_one_is_fully_connected() -> None:
    freq, lam = mode_eigenvalues(variance_vector("uniform", kernel=3, dim=2), 1)
    assert freq.shape == (1, 2) and abs(lam[0] - 1.0) < EIG_TOL


@pytest.mark.parametrize("n", [0, -2, 2.0, True])
def test_bad_n(n: object) -> None:
    with pytest.raises(MFTheoryError, match="image side n"):
        mode_eigenvalues([1.0], n)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# depth scales and the mode table
# ------------------------------------------------------------------------------------------


def test_depth_scale_edges() -> None:
    xi = mode_depth_scale([0.0, 0.5, 1.0, 1.5, math.exp(-1.0)])
    assert xi[0] == 0.0
    assert xi[1] == pytest.approx(1.0 / math.log(2.0), rel=1e-15)  # same formula, round-off
    assert xi[2] == math.inf and xi[3] == math.inf
    assert xi[4] == pytest.approx(1.0, rel=1e-15)
    assert np.isnan(mode_depth_scale([-0.1, math.nan])).all()


def test_mode_table_sorted_and_consistent() -> None:
    v = variance_vector("gs2", kernel=3, dim=2)
    chi_c, chi_q = 0.9, 0.6
    table = mode_table(v, 8, chi_c=chi_c, chi_q=chi_q)
    assert isinstance(table, ModeTable) and len(table) == 64 and table.dim == 2
    assert np.array_equal(table.frequency[0], [0, 0])
    # descending |lambda|, ties broken by frequency (lexicographic)
    for i in range(len(table) - 1):
        a, b = table.abs_lam[i], table.abs_lam[i + 1]
        assert a >= b - 1e-12
        if abs(a - b) <= 1e-12:
            assert tuple(table.frequency[i]) < tuple(table.frequency[i + 1])
    np.testing.assert_array_equal(table.rate, chi_c * table.abs_lam)
    np.testing.assert_array_equal(table.rate_q, chi_q * table.abs_lam)
    np.testing.assert_array_equal(table.xi, mode_depth_scale(table.rate))
    assert table.xi[0] == pytest.approx(-1.0 / math.log(chi_c), rel=1e-14)  # xi_0 = xi_c
    # every row is a permutation of mode_eigenvalues' rows
    freq, lam = mode_eigenvalues(v, 8)
    lookup = {tuple(f): l_ for f, l_ in zip(freq, lam, strict=True)}
    for f, l_ in zip(table.frequency, table.lam, strict=True):
        assert lookup[tuple(f)] == l_


def test_mode_table_1d_order() -> None:
    table = mode_table("0.025,0.95,0.025", 10, chi_c=1.0, chi_q=0.5)
    assert [int(f[0]) for f in table.frequency] == [0, 1, 9, 2, 8, 3, 7, 4, 6, 5]
    assert table.xi[0] == math.inf  # chi_c |lambda_0| = 1: never decays
    assert np.all(np.isfinite(table.xi[1:]))


def test_mode_table_json() -> None:
    table = mode_table("0.025,0.95,0.025", 10, chi_c=1.0, chi_q=0.5)
    data = table.as_dict()
    text = json.dumps(data, allow_nan=False)  # strict JSON: non-finite became None
    back = json.loads(text)
    assert back["n"] == 10 and back["dim"] == 1 and back["v"] == [0.025, 0.95, 0.025]
    first = back["modes"][0]
    assert first["frequency"] == [0] and first["lambda"] == pytest.approx(1.0, abs=1e-15)
    assert first["xi"] is None and first["rate"] == pytest.approx(1.0, abs=1e-15)
    assert all("lambda_imag" not in m for m in back["modes"])  # symmetric v: real lambda
    assert set(first) == {"frequency", "lambda", "abs_lambda", "rate", "xi", "rate_q", "xi_q"}
    skew = mode_table([0.1, 0.6, 0.3], 8, chi_c=0.5, chi_q=0.5).as_rows()
    assert any("lambda_imag" in m for m in skew)
    for m in skew:
        lam = complex(m["lambda"], m.get("lambda_imag", 0.0))
        assert abs(abs(lam) - m["abs_lambda"]) < 1e-12  # lambda_imag omitted only if < 1e-12


def test_mode_table_requires_normalised_v_and_valid_chi() -> None:
    with pytest.raises(MFTheoryError, match="sums to 8"):
        mode_table("0,1,0;1,4,1;0,1,0", 4, chi_c=1.0, chi_q=1.0)
    for bad in (math.nan, math.inf, -0.1):
        with pytest.raises(MFTheoryError, match="chi_c"):
            mode_table([1.0], 4, chi_c=bad, chi_q=1.0)
        with pytest.raises(MFTheoryError, match="chi_q"):
            mode_table([1.0], 4, chi_c=1.0, chi_q=bad)


def test_zero_rate_depth_scale_is_zero() -> None:
    t = mode_table(variance_vector("uniform"), 3, chi_c=0.0, chi_q=0.8)
    assert np.all(t.xi == 0.0)  # chi_c = 0: every mode is gone after one layer
    assert np.all(t.xi_q_f[:1] > 0)


def test_depth_scales_unresolved_within_8_ulp_of_one() -> None:
    """A factor a few ulp below 1 (a critical point computed in floats) has xi = inf in every
    depth scale: xi_c, xi_grad and the mode scale xi_0 agree (the convention of depth_scale)."""
    from mftheory.cnn.modes import mode_depth_scale
    from mftheory.meanfield import critical_point, fixed_point

    eps = np.finfo(np.float64).eps
    assert np.isinf(mode_depth_scale([1 - eps, 1 - 8 * eps])).all()
    assert np.isfinite(mode_depth_scale([1 - 16 * eps]))[0]
    w2 = critical_point("tanh", sigma_b2=0.05).sigma_w2
    fp = fixed_point("tanh", sigma_w2=w2, sigma_b2=0.05)
    assert fp.phase == "critical"
    assert math.isinf(fp.xi_c) and math.isinf(fp.xi_grad)
    assert np.isinf(mode_depth_scale([fp.chi_c]))[0]
