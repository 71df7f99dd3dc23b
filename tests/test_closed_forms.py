"""The fast core against the closed forms of docs/theory.md section 3, on both of its paths.

The core short-circuits the closed forms for erf, relu, leaky_relu, linear and sin, so each
family is tested twice: as shipped ("closed", checking the formulas and the plumbing) and
rebuilt with ``closed_form=None`` ("numerical", checking the quadrature, the Hermite series,
the nested 2D rule and the solvers on integrands whose answers are known). The numerical path
must reach 1e-10 on smooth activations and 1e-8 on kinked ones (the issue's targets).

Errors of the pair expectations are measured relative to their Cauchy-Schwarz scale
``sqrt(E[f(u1)^2] E[f(u2)^2])``, which is the size of the integrand: a plain relative error
is meaningless where the value is exactly 0 (odd activations at rho = 0).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import CLOSED_FORM_FAMILIES, family_id

from mftheory.activations.builtins import Activation, get_activation
from mftheory.gaussian.expectations import (
    derivative_second_moment,
    pair_expectation,
    second_moment,
    second_moment_slope,
)
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.meanfield.maps import c_map, q_map

Q_GRID = np.array([0.01, 0.1, 1.0, 3.0, 10.0])
RHO_GRID = np.array([-0.9, -0.3, 0.0, 0.5, 0.9, 0.99, 0.999, 1.0])
KINKED = ("relu", "leaky_relu")


def build(family: tuple[str, dict[str, float]], path: str) -> Activation:
    name, kw = family
    act = get_activation(name, **kw)
    return act if path == "closed" else dataclasses.replace(act, closed_form=None)


def tolerance(family: tuple[str, dict[str, float]], path: str) -> float:
    """1e-12 for the formulas; 1e-10 (smooth) or 1e-8 (kinks) for the quadrature."""
    if path == "closed":
        return 1e-12
    return 1e-8 if family[0] in KINKED else 1e-10


CASES = [
    pytest.param(fam, path, id=f"{family_id(fam)}-{path}")
    for fam in CLOSED_FORM_FAMILIES
    for path in ("closed", "numerical")
]
ALL = pytest.mark.parametrize(("family", "path"), CASES)


def rel_err(got: np.ndarray, want: np.ndarray, scale: np.ndarray | float = 1.0) -> float:
    """max |got - want| / max(|want|, scale)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), scale)))


# --- expectations -------------------------------------------------------------------------------


@ALL
def test_one_dimensional_expectations(family, path, cf):
    name, kw = family
    act, tol = build(family, path), tolerance(family, path)
    for fun, form in (
        (second_moment, cf.second_moment),
        (derivative_second_moment, cf.derivative_second_moment),
        (second_moment_slope, cf.q_slope),
    ):
        got = fun(act, Q_GRID)
        want = np.array([form(name, kw, q) for q in Q_GRID])
        err = rel_err(got, want)
        assert err <= tol, f"{fun.__name__}: max relative error {err:.2e} > {tol:.0e}"


@ALL
@pytest.mark.parametrize("derivative", [False, True], ids=["phi", "dphi"])
def test_pair_expectation_grid(family, path, derivative, cf):
    """All of Q_GRID x RHO_GRID, q1 = q2, in one broadcast call."""
    name, kw = family
    act, tol = build(family, path), tolerance(family, path)
    q, rho = Q_GRID[:, None], RHO_GRID[None, :]
    got = pair_expectation(act, q, q, rho, derivative=derivative)
    want = np.array([[cf.pair(name, kw, a, a, r, derivative) for r in RHO_GRID] for a in Q_GRID])
    norm = cf.derivative_second_moment if derivative else cf.second_moment
    scale = np.array([[norm(name, kw, a)] for a in Q_GRID])
    err = np.abs(got - want) / scale
    i, j = np.unravel_index(np.argmax(err), err.shape)
    assert err.max() <= tol, (
        f"max error {err.max():.2e} (relative to scale) at q={Q_GRID[i]}, rho={RHO_GRID[j]}: "
        f"got {got[i, j]!r}, want {want[i, j]!r}"
    )


@ALL
@pytest.mark.parametrize("derivative", [False, True], ids=["phi", "dphi"])
def test_pair_expectation_unequal_variances(family, path, derivative, cf):
    name, kw = family
    act, tol = build(family, path), tolerance(family, path)
    q1 = np.array([0.1, 10.0, 3.0, 0.01, 1.0])
    q2 = np.array([3.0, 0.01, 0.1, 10.0, 2.0])
    rho = np.array([-0.5, 0.99, -1.0, 0.3, 1.0])
    got = pair_expectation(act, q1, q2, rho, derivative=derivative)
    want = np.array([cf.pair(name, kw, *a, derivative) for a in zip(q1, q2, rho, strict=True)])
    norm = cf.derivative_second_moment if derivative else cf.second_moment
    scale = np.sqrt([norm(name, kw, a) * norm(name, kw, b) for a, b in zip(q1, q2, strict=True)])
    err = float(np.max(np.abs(got - want) / scale))
    assert err <= tol, f"max error {err:.2e}: got {got}, want {want}"


# --- maps ---------------------------------------------------------------------------------------


@ALL
def test_q_map(family, path, cf):
    name, kw = family
    act, tol = build(family, path), tolerance(family, path)
    w, b = 1.7, 0.2
    got = q_map(act, Q_GRID, sigma_w2=w, sigma_b2=b)
    want = np.array([w * cf.second_moment(name, kw, q) + b for q in Q_GRID])
    assert rel_err(got, want) <= tol


@ALL
def test_c_map(family, path, cf):
    name, kw = family
    act, tol = build(family, path), tolerance(family, path)
    w, b = 1.7, 0.2
    c = np.array([0.0, 0.3, 0.9, 0.999, 1.0])
    q = Q_GRID[:, None]
    got = c_map(act, c[None, :], q=q, sigma_w2=w, sigma_b2=b)
    want = np.array([[(w * cf.pair(name, kw, a, a, r) + b) / a for r in c] for a in Q_GRID])
    err = rel_err(got, want)
    assert err <= tol, f"max relative error {err:.2e}"


# --- fixed points -------------------------------------------------------------------------------

BOUNDED_POINTS = [(0.5, 0.0), (1.0, 0.05), (0.8, 0.3), (2.0, 0.05), (4.0, 0.5), (3.0, 0.0)]


@pytest.mark.parametrize("name", ["erf", "sin"])
@pytest.mark.parametrize("path", ["closed", "numerical"])
def test_bounded_fixed_points(name, path, cf):
    """q* by brentq on the closed-form q-map; chi_1 = sigma_w2 G(q*) (erf: (4/pi)
    sigma_w2 / sqrt(1+4q*)); chi_q = sigma_w2 F'(q*) (erf: (4/pi) sigma_w2 / ((1+2q*)
    sqrt(1+4q*))); c* and chi_c from the closed-form C-map. One vectorised call."""
    family = (name, {})
    act, tol = build(family, path), tolerance(family, path)
    w = np.array([p[0] for p in BOUNDED_POINTS])
    b = np.array([p[1] for p in BOUNDED_POINTS])
    fp = fixed_point(act, sigma_w2=w, sigma_b2=b)
    q = np.array([cf.q_star(name, {}, *p) for p in BOUNDED_POINTS])
    want = {
        "q_star": q,
        "chi_1": w * np.array([cf.derivative_second_moment(name, {}, a) for a in q]),
        "chi_q": w * np.array([cf.q_slope(name, {}, a) for a in q]),
        "c_star": np.array([cf.c_star(name, {}, *p) for p in BOUNDED_POINTS]),
        "chi_c": np.array([cf.chi_c(name, {}, *p) for p in BOUNDED_POINTS]),
    }
    for key, val in want.items():
        got = getattr(fp, key)
        err = rel_err(got, val, 1e-300 if key != "c_star" else 1.0)
        assert err <= tol, f"{key}: max relative error {err:.2e}; got {got}, want {val}"
    phases = np.where(want["chi_1"] > 1.0, "chaotic", "ordered")
    assert fp.phase.tolist() == phases.tolist()


HOMOGENEOUS = [f for f in CLOSED_FORM_FAMILIES if f[0] in ("relu", "leaky_relu", "linear")]


@pytest.mark.parametrize("family", HOMOGENEOUS, ids=family_id)
@pytest.mark.parametrize("path", ["closed", "numerical"])
def test_homogeneous_fixed_points(family, path, cf):
    """The q-map is m sigma_w2 q + sigma_b2 (m = (1 + a^2)/2: 1/2 for ReLU, 1 for linear):
    q* = sigma_b2 / (1 - m sigma_w2), chi_1 = chi_q = m sigma_w2, c* = 1 (ordered)."""
    name, kw = family
    act, tol = build(family, path), tolerance(family, path)
    m = cf.q_slope(name, kw, 1.0)
    w = np.array([0.2, 0.5, 0.9, 0.99])[:, None] / m
    b = np.array([0.05, 0.5, 3.0])[None, :]
    fp = fixed_point(act, sigma_w2=w, sigma_b2=b)
    assert rel_err(fp.q_star, b / (1.0 - m * w)) <= tol
    assert rel_err(fp.chi_1, np.broadcast_to(m * w, fp.shape)) <= tol
    assert rel_err(fp.chi_q, np.broadcast_to(m * w, fp.shape)) <= tol
    assert np.all(fp.c_star == 1.0)
    assert np.all(fp.chi_c == fp.chi_1)
    assert np.all(fp.phase == "ordered")


@pytest.mark.parametrize("family", HOMOGENEOUS, ids=family_id)
@pytest.mark.parametrize("path", ["closed", "numerical"])
def test_homogeneous_divergence(family, path, cf):
    """m sigma_w2 > 1 with a bias: no finite q* (ReLU sigma_w2 > 2, linear sigma_w2 > 1)."""
    name, kw = family
    act = build(family, path)
    m = cf.q_slope(name, kw, 1.0)
    w = np.array([1.001, 1.25, 2.0]) / m
    fp = fixed_point(act, sigma_w2=w, sigma_b2=0.1)
    assert np.all(np.isinf(fp.q_star))
    assert np.all(fp.phase == "divergent")
    assert np.all(np.isnan(fp.c_star))


# --- critical line ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["erf", "sin"])
@pytest.mark.parametrize("path", ["closed", "numerical"])
def test_bounded_critical_line(name, path, cf):
    """q on the line solves (q - sigma_b2) G(q) = F(q) (brentq on the closed forms); at
    sigma_b2 = 0 it is sigma_w2 = 1 / phi'(0)^2 (erf: pi/4, sin: 1)."""
    family = (name, {})
    act, tol = build(family, path), tolerance(family, path)
    b = np.array([0.0, 0.05, 0.5, 2.0])
    cp = critical_point(act, sigma_b2=b)
    want = np.array([cf.critical_sigma_w2(name, {}, x) for x in b])
    err = rel_err(cp.sigma_w2, want)
    assert err <= tol, f"max relative error {err:.2e}; got {cp.sigma_w2}, want {want}"


@pytest.mark.parametrize("family", HOMOGENEOUS, ids=family_id)
def test_homogeneous_critical_point(family, cf):
    """ReLU: sigma_w2 = 2; linear: 1; leaky: 2 / (1 + a^2); q* = inf with a bias."""
    name, kw = family
    cp = critical_point(get_activation(name, **kw), sigma_b2=[0.0, 0.1, 1.0])
    want = 1.0 / cf.q_slope(name, kw, 1.0)
    assert np.allclose(cp.sigma_w2, want, rtol=1e-15, atol=0)
    assert np.all(np.isinf(cp.q_star[1:]))


def test_relu_and_linear_constants():
    """The two numbers every user knows."""
    assert float(critical_point("relu", sigma_b2=0.0).sigma_w2) == 2.0
    assert float(critical_point("linear", sigma_b2=0.0).sigma_w2) == 1.0
    fp = fixed_point("relu", sigma_w2=[1.0, 2.5], sigma_b2=0.1)
    assert fp.q_star[0] == pytest.approx(0.1 / 0.5, rel=1e-15)
    assert fp.phase.tolist() == ["ordered", "divergent"]
    assert math.isinf(float(fixed_point("linear", sigma_w2=1.5, sigma_b2=0.1).q_star))
