"""mftheory.meanfield.solvers and the callers' handling of non-convergence; trainable_depth;
fixed_point's grid path.

References: closed-form roots (square and cube roots, the fixed point of a quadratic map),
the slow adaptive path :mod:`mftheory.reference`, and the pointwise exact path of
fixed_point for the grid path (whose accuracy phase_grid documents).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import slow_except

import mftheory
from mftheory import MFTheoryError, critical_point, fixed_point, get_activation
from mftheory.meanfield import critical, fixed_points, grid, solvers
from mftheory.meanfield.diagnosis import diagnose_init
from mftheory.meanfield.grid import INTERP_TOL, phase_grid
from mftheory.meanfield.solvers import (
    Roots,
    bracketed_newton,
    illinois,
    newton_fixed_point,
    newton_from_one,
    probe_start,
    require_converged,
)
from mftheory.reference import ref_fixed_point

A = np.array([0.25, 2.0, 9.0, 1e6])


def _square(x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x * x - A[idx], 2 * x


# --- the solvers against closed forms ----------------------------------------------------------


def test_bracketed_newton_finds_square_roots_and_reports_convergence() -> None:
    roots = bracketed_newton(_square, np.zeros(4), A + 1, -np.ones(4))
    assert roots.all_converged and roots.first_unconverged() is None
    np.testing.assert_allclose(roots.x, np.sqrt(A), rtol=1e-15)
    short = bracketed_newton(_square, np.zeros(4), A + 1, -np.ones(4), maxiter=2)
    assert not short.converged.all() and short.maxiter == 2


def test_illinois_finds_cube_roots() -> None:
    def cube(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return x**3 - A[idx]

    lo, hi = np.zeros(4), A + 1
    roots = illinois(cube, lo, hi, cube(lo, np.arange(4)), cube(hi, np.arange(4)))
    assert roots.all_converged
    np.testing.assert_allclose(roots.x, np.cbrt(A), rtol=1e-14)
    short = illinois(cube, lo, hi, cube(lo, np.arange(4)), cube(hi, np.arange(4)), maxiter=3)
    assert not short.all_converged


def test_monotone_newtons_find_the_fixed_point_of_a_quadratic_map() -> None:
    """C(c) = (1 - t) + t c^2 with 1/2 < t <= 1 maps 1 to 1 (as a C-map does), is increasing
    and convex on [0, 1], and has the chaotic fixed point c* = (1 - t) / t, slope 2 (1 - t)."""
    t = np.array([1.0, 0.9, 0.6, 0.51])
    want = (1 - t) / t

    def cmap(c: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (1 - t[i]) + t[i] * c * c, 2 * t[i] * c

    start = probe_start(lambda c, i: cmap(c, i)[0], 4)
    assert np.all(start <= want)
    roots, slope = newton_fixed_point(cmap, start)
    assert roots.all_converged
    np.testing.assert_allclose(roots.x, want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(slope, 2 * (1 - t), rtol=1e-6, atol=1e-12)
    assert not newton_fixed_point(cmap, np.zeros(4), maxiter=1)[0].all_converged

    # newton_from_one: an increasing convex f on [0, 1] with the simple root c*
    def f(c: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return c * c + c - want[i] ** 2 - want[i], 2 * c + 1

    from_one = newton_from_one(f, 4)
    assert from_one.all_converged
    np.testing.assert_allclose(from_one.x, want, rtol=1e-12, atol=1e-12)
    assert not newton_from_one(f, 4, maxiter=1).all_converged


def test_require_converged_names_the_first_unconverged_point() -> None:
    roots = Roots(x=np.array([1.0, 2.0, 3.0]), converged=np.array([True, False, False]), maxiter=7)
    want = r"^sigma_w2=2.5, sigma_b2=0.5: q\* did not converge in 7"
    with pytest.raises(MFTheoryError, match=want):
        require_converged(roots, "q*", sigma_w2=np.array([1.0, 2.5, 3.0]), sigma_b2=[0, 0.5, 1])
    ok = Roots(x=np.array([1.0]), converged=np.array([True]), maxiter=7)
    assert require_converged(ok, "q*", sigma_w2=[1.0]) is ok.x


# --- callers never return an unconverged number ------------------------------------------------


def test_fixed_point_raises_when_q_star_does_not_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixed_points, "Q_MAXITER", 1)
    with pytest.raises(MFTheoryError, match=r"sigma_w2=1\.0, sigma_b2=0\.3: q\* did not converge"):
        fixed_point("tanh", sigma_w2=[1.0, 2.0], sigma_b2=0.3)
    with pytest.raises(MFTheoryError, match=r"q\* did not converge in 1 iterations"):
        phase_grid("tanh", sigma_w2=[1.0, 2.0], sigma_b2=[0.3])


@pytest.mark.parametrize("name", ["tanh", "erf", "hard_tanh"])
def test_fixed_point_raises_when_c_star_does_not_converge(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """tanh: Hermite stages, then the nested rule; erf: the closed form; hard_tanh: kinks."""
    monkeypatch.setattr(fixed_points, "C_MAXITER", 1)
    with pytest.raises(MFTheoryError, match=r"sigma_w2=3\.0, sigma_b2=0\.1: .*c\* did not"):
        fixed_point(name, sigma_w2=3.0, sigma_b2=0.1)
    # an ordered point needs no c* solve
    assert str(fixed_point(name, sigma_w2=0.5, sigma_b2=0.1).phase) == "ordered"


def test_critical_point_raises_when_the_line_does_not_converge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(critical, "CRITICAL_MAXITER", 1)
    with pytest.raises(MFTheoryError, match=r"sigma_b2=0\.05: the critical q\* did not converge"):
        critical_point("tanh", sigma_b2=[0.05, 0.2])


def test_unconverged_hermite_stage_falls_back_to_the_nested_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Hermite stage that does not converge is not used: the point goes on to the next
    stage and finally to the nested rule, whose answer matches the reference."""
    calls: list[int] = []
    real = fixed_points.newton_from_one

    def stuck(fun, n, *, maxiter):  # type: ignore[no-untyped-def]
        calls.append(n)
        return real(fun, n, maxiter=1)

    monkeypatch.setattr(fixed_points, "newton_from_one", stuck)
    fp = fixed_point("tanh", sigma_w2=2.5, sigma_b2=0.2)
    assert calls
    ref = ref_fixed_point(get_activation("tanh"), 2.5, 0.2)
    assert float(fp.c_star) == pytest.approx(ref["c_star"], rel=1e-10)


def test_normal_inputs_converge_to_the_reference() -> None:
    tanh = get_activation("tanh")
    fp = fixed_point(tanh, sigma_w2=[0.5, 1.5, 3.0], sigma_b2=0.05)
    for i, w2 in enumerate((0.5, 1.5, 3.0)):
        ref = ref_fixed_point(tanh, w2, 0.05)
        for k in ("q_star", "c_star", "chi_1", "chi_c"):
            assert getattr(fp, k)[i] == pytest.approx(ref[k], rel=1e-10), k


# --- trainable_depth --------------------------------------------------------------------------


def test_trainable_depth_rule() -> None:
    chi = 0.8
    got = mftheory.trainable_depth([-1 / math.log(chi), math.inf, math.nan])
    np.testing.assert_allclose(got, [-6 / math.log(chi), math.inf, 0.0], rtol=1e-15)
    assert mftheory.meanfield.TRAINABLE_DEPTH_FACTOR == 6.0
    # diagnose_init uses it: divergent (xi_c NaN) 0, critical inf
    assert diagnose_init("relu", sigma_w2=2.5, sigma_b2=0.1).max_trainable_depth == 0.0
    assert math.isinf(diagnose_init("relu", sigma_w2=2.0, sigma_b2=0.0).max_trainable_depth)


# --- fixed_point's grid path ------------------------------------------------------------------


@pytest.mark.parametrize("name", slow_except(["tanh", "gelu"], ["tanh"]))  # gelu: 10-18 s
def test_grid_path_agrees_with_pointwise(name: str) -> None:
    """Tolerances are phase_grid's documented accuracy: q*, chi_1, chi_q come from quintic
    tables (about 1e-12 relative; 1e-11 asserted); c* is interpolated and checked against
    exact solves to INTERP_TOL at sample points, so 10 INTERP_TOL is asserted everywhere
    between them; chi_c to 1e-10 relative (tests/test_grid.py's bound)."""
    w = np.linspace(0.5, 4.0, 60)
    b = np.linspace(0.0, 1.0, 40)
    exact = fixed_point(name, sigma_w2=w[None, :], sigma_b2=b[:, None], method="pointwise")
    fast = fixed_point(name, sigma_w2=w[None, :], sigma_b2=b[:, None], method="grid")
    assert fast.shape == exact.shape == (40, 60)
    assert (fast.phase == exact.phase).all()
    for k in ("q_star", "chi_1", "chi_q"):
        m = np.isfinite(getattr(exact, k))
        np.testing.assert_allclose(getattr(fast, k)[m], getattr(exact, k)[m], rtol=1e-11)
    m = np.isfinite(exact.c_star)
    np.testing.assert_allclose(fast.c_star[m], exact.c_star[m], rtol=0, atol=10 * INTERP_TOL)
    np.testing.assert_allclose(fast.chi_c[m], exact.chi_c[m], rtol=1e-10)
    np.testing.assert_array_equal(fast.sigma_w2, exact.sigma_w2)
    np.testing.assert_array_equal(fast.sigma_b2, exact.sigma_b2)


def test_auto_takes_the_grid_path_from_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real = grid.phase_grid

    def spy(act, *, sigma_w2, sigma_b2, **kw):  # type: ignore[no-untyped-def]
        calls.append((len(sigma_b2), len(sigma_w2)))
        return real(act, sigma_w2=sigma_w2, sigma_b2=sigma_b2, **kw)

    monkeypatch.setattr(grid, "phase_grid", spy)
    monkeypatch.setattr(grid, "GRID_FROM", 100)
    w = np.linspace(3.0, 0.5, 20)  # descending, and transposed: the path sorts the axes
    b = np.array([0.3, 0.0, 0.1, 0.3, 0.2])
    fp = fixed_point("tanh", sigma_w2=w[:, None], sigma_b2=b[None, :])
    assert calls == [(4, 20)] and fp.shape == (20, 5)
    exact = fixed_point("tanh", sigma_w2=w[:, None], sigma_b2=b[None, :], method="pointwise")
    np.testing.assert_allclose(fp.q_star, exact.q_star, rtol=1e-11)
    assert (fp.phase == exact.phase).all()
    calls.clear()
    # below the threshold, scattered points and closed forms stay pointwise
    fixed_point("tanh", sigma_w2=w[:4], sigma_b2=0.1)
    rng = np.random.default_rng(0)
    fixed_point("tanh", sigma_w2=rng.uniform(0.5, 3, 200), sigma_b2=rng.uniform(0, 1, 200))
    fixed_point("erf", sigma_w2=w[:, None], sigma_b2=b[None, :])
    assert calls == []


def test_method_is_checked() -> None:
    with pytest.raises(MFTheoryError, match="method"):
        fixed_point("tanh", sigma_w2=1.0, sigma_b2=0.0, method="fast")  # type: ignore[arg-type]


def test_solvers_module_is_the_one_copy() -> None:
    """The old private loops are gone from the callers."""
    for mod in (fixed_points, critical, grid):
        for old in ("_bracketed_newton", "_newton_from_one", "_newton_from_zero", "_illinois"):
            assert not hasattr(mod, old)
    assert solvers.MAXITER == fixed_points.Q_MAXITER == fixed_points.C_MAXITER


def test_positive_newton_polishes_and_guards_positivity():
    """Roots of x^2 - a (closed form sqrt(a)); a start whose step would go negative halves."""
    from mftheory.meanfield.solvers import positive_newton

    a = np.array([2.0, 9.0, 1e-12])

    def fun(x, idx):
        return x * x - a[idx], 2.0 * x

    roots = positive_newton(fun, np.array([1.3, 0.01, 1e-6]))
    assert roots.all_converged
    # Newton for sqrt converges to within an ulp: 2 ulp of rounding slack
    np.testing.assert_allclose(roots.x, np.sqrt(a), rtol=4.5e-16)
    stuck = positive_newton(lambda x, i: (np.ones_like(x), np.zeros_like(x)), np.ones(1), maxiter=5)
    assert not stuck.converged[0] and stuck.x[0] == 1.0 / 32
