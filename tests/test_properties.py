"""Properties the fixed points and expectations must have for any parameters (hypothesis).

Random points in sigma_w2 in [0.5, 4], sigma_b2 in [0, 1] for smooth activations (tanh, erf,
sigmoid, sin, gelu); the examples are derandomised by the "ci" profile in conftest.py, so a
failure reproduces. Each property is a definition from docs/theory.md section 3 checked by a
route the core does not use: the fixed-point equations themselves, and finite differences of
the maps for the slopes (Price's theorem: the slope of the C-map is chi_c).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from mftheory.activations.builtins import Activation, get_activation
from mftheory.gaussian.expectations import derivative_second_moment, pair_expectation, second_moment
from mftheory.meanfield.fixed_points import FixedPoint, fixed_point
from mftheory.meanfield.maps import c_map, q_map

SMOOTH = ("tanh", "erf", "sigmoid", "sin", "gelu")
ACTS = {name: get_activation(name) for name in SMOOTH}

activations = st.sampled_from(SMOOTH)
weight_variances = st.floats(0.5, 4.0)
bias_variances = st.floats(0.0, 1.0)


def _solve(name: str, sigma_w2: float, sigma_b2: float) -> tuple[Activation, FixedPoint]:
    act = ACTS[name]
    fp = fixed_point(act, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    assume(np.isfinite(fp.q_star))  # gelu diverges for sigma_w2 > ~2.2
    return act, fp


def _c(act: Activation, c: float | np.ndarray, fp: FixedPoint) -> np.ndarray:
    return c_map(act, c, q=fp.q_star, sigma_w2=fp.sigma_w2, sigma_b2=fp.sigma_b2)


@given(activations, weight_variances, bias_variances)
def test_q_star_is_a_stable_fixed_point_of_the_q_map(name, sigma_w2, sigma_b2):
    act, fp = _solve(name, sigma_w2, sigma_b2)
    q = float(fp.q_star)
    image = float(q_map(act, q, sigma_w2=sigma_w2, sigma_b2=sigma_b2))
    assert abs(image - q) <= 1e-10 * (1.0 + q)
    assert float(fp.chi_q) <= 1.0 + 1e-12  # stable: the iteration from q0 converges to it


@given(activations, weight_variances, bias_variances)
def test_c_equal_one_is_fixed_and_c_star_is_a_stable_fixed_point(name, sigma_w2, sigma_b2):
    """c_map(1) = q_map(q*)/q* = 1, and c_map(c*) = c* with 0 <= chi_c <= 1 (stability);
    absolute tolerance 1e-12 on correlations, which live in [-1, 1]."""
    act, fp = _solve(name, sigma_w2, sigma_b2)
    assume(float(fp.q_star) > 1e-8)  # q* = 0 (odd phi, no bias, ordered): no C-map
    assert abs(float(_c(act, 1.0, fp)) - 1.0) <= 1e-12
    c = float(fp.c_star)
    assert 0.0 <= c <= 1.0
    assert abs(float(_c(act, c, fp)) - c) <= 1e-12
    assert 0.0 <= float(fp.chi_c) <= 1.0 + 1e-12


@given(activations, weight_variances, bias_variances)
def test_chi_c_is_the_slope_of_the_c_map(name, sigma_w2, sigma_b2):
    """Centred difference with h = 1e-5: truncation h^2/6 |c_map'''| ~ 2e-11 |c_map'''|,
    round-off ~ 1e-16 / h = 1e-11; a tolerance of 1e-6 is far above both (c_map''' is O(1-100)
    for these smooth activations) and far below any real mistake (a missing factor, the slope
    taken at the wrong c), which would be O(chi_c)."""
    act, fp = _solve(name, sigma_w2, sigma_b2)
    assume(float(fp.q_star) > 1e-8)
    c = float(fp.c_star)
    assume(c < 1.0 - 1e-3)  # chaotic phase with c* away from 1
    h = 1e-5
    lo, hi = _c(act, np.array([c - h, c + h]), fp)
    slope = (hi - lo) / (2.0 * h)
    assert abs(slope - float(fp.chi_c)) <= 1e-6


@given(activations, weight_variances, bias_variances)
def test_chi_1_is_the_slope_of_the_c_map_at_one(name, sigma_w2, sigma_b2):
    """One-sided second-order difference at c = 1 from the left (c > 1 is not a correlation),
    ``(3 f(1) - 4 f(1 - h) + f(1 - 2h)) / 2h`` with h = 1e-4: truncation (h^2/3) |f'''| ~ 3e-9
    |f'''|, round-off ~ 1e-16 / h = 1e-12; tolerance 1e-6."""
    act, fp = _solve(name, sigma_w2, sigma_b2)
    assume(float(fp.q_star) > 1e-8)
    h = 1e-4
    f0, f1, f2 = _c(act, np.array([1.0, 1.0 - h, 1.0 - 2.0 * h]), fp)
    slope = (3.0 * f0 - 4.0 * f1 + f2) / (2.0 * h)
    assert abs(slope - float(fp.chi_1)) <= 1e-6 * max(1.0, float(fp.chi_1))


@given(activations, weight_variances, bias_variances)
def test_phase_follows_chi_1(name, sigma_w2, sigma_b2):
    _, fp = _solve(name, sigma_w2, sigma_b2)
    chi_1 = float(fp.chi_1)
    if abs(chi_1 - 1.0) <= fp.critical_tol:
        assert fp.phase == "critical"
    else:
        assert fp.phase == ("ordered" if chi_1 < 1.0 else "chaotic")
        assert (float(fp.c_star) == 1.0) == (chi_1 < 1.0)
    assert float(fp.xi_q) == -1.0 / math.log(float(fp.chi_q))


# --- expectations -------------------------------------------------------------------------------

lengths = st.floats(0.01, 10.0)
correlations = st.floats(-0.999, 0.999)


@given(activations, lengths, lengths, correlations)
def test_pair_expectation_symmetry_and_cauchy_schwarz(name, q1, q2, rho):
    act = ACTS[name]
    a = float(pair_expectation(act, q1, q2, rho))
    assert math.isclose(a, float(pair_expectation(act, q2, q1, rho)), rel_tol=1e-13, abs_tol=1e-15)
    bound = math.sqrt(float(second_moment(act, q1)) * float(second_moment(act, q2)))
    assert abs(a) <= bound * (1.0 + 1e-13)
    dbound = math.sqrt(
        float(derivative_second_moment(act, q1)) * float(derivative_second_moment(act, q2))
    )
    assert abs(float(pair_expectation(act, q1, q2, rho, derivative=True))) <= dbound * (1.0 + 1e-13)


@given(activations, lengths, correlations)
def test_price_theorem(name, q, rho):
    """d/drho E[phi(u1) phi(u2)] = q E[phi'(u1) phi'(u2)] (equal variances q): a centred
    difference (h = 1e-5, error ~1e-10 relative) against the derivative expectation."""
    act = ACTS[name]
    h = 1e-5
    lo, hi = pair_expectation(act, q, q, np.array([rho - h, rho + h]))
    slope = (hi - lo) / (2.0 * h)
    want = q * float(pair_expectation(act, q, q, rho, derivative=True))
    scale = q * float(derivative_second_moment(act, q))
    assert abs(slope - want) <= 1e-6 * scale


@given(activations, lengths)
def test_pair_at_full_correlation_is_the_second_moment(name, q):
    """Two code paths (the 1D rule for rho = 1, the second-moment rule) that should agree to
    their accuracy, ~1e-12; measured: 2.1e-13 apart for tanh' at q = 10, where the reference
    sides with the second-moment rule."""
    act = ACTS[name]
    assert math.isclose(
        float(pair_expectation(act, q, q, 1.0)), float(second_moment(act, q)), rel_tol=1e-12
    )
    assert math.isclose(
        float(pair_expectation(act, q, q, 1.0, derivative=True)),
        float(derivative_second_moment(act, q)),
        rel_tol=1e-12,
    )
