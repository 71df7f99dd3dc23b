"""The activation registry, activation identity (the q-table cache bug) and the stable sin pair.

References are independent of the code under test: :mod:`mftheory.reference` (adaptive
quadrature of ``phi`` alone), exact relations between activations (``2 tanh`` has the q-map
of ``tanh`` at four times ``sigma_w2``), the numerical path of the integrators (the same
activation without its closed form) and mpmath at high precision.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import mpmath
import numpy as np
import pytest
from conftest import slow_except
from scipy import special
from typer.testing import CliRunner

from mftheory import reference as ref
from mftheory.activations import (
    ACTIVATION_NAMES,
    Activation,
    ClosedForm,
    Erf,
    get_activation,
    record_of,
    register_activation,
    registered_activation,
    unregister_activation,
)
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import (
    derivative_second_moment,
    pair_expectation,
    second_moment,
    second_moment_slope,
)
from mftheory.gaussian.qtable import q_table
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.meanfield.grid import phase_grid

runner = CliRunner()


def _cli(*args: str) -> Any:
    from mftheory.cli import app

    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


# --- identity: no cache may mix two activations -----------------------------------------------


def _tanh_d(x: np.ndarray) -> np.ndarray:
    return 1.0 / np.cosh(x) ** 2


def _mine_pair() -> tuple[Activation, Activation]:
    """Two user activations named "mine": tanh and 2 tanh."""
    one = Activation("mine", np.tanh, _tanh_d)
    two = Activation("mine", lambda x: 2.0 * np.tanh(x), lambda x: 2.0 * _tanh_d(x))
    return one, two


def test_identity_includes_the_functions() -> None:
    one, two = _mine_pair()
    assert one != two
    assert len({one, two}) == 2
    assert one == Activation("mine", np.tanh, _tanh_d)
    assert hash(one) == hash(Activation("mine", np.tanh, _tanh_d))
    # built-ins: equal and hash equal across look-ups, parameters included
    assert get_activation("tanh") == get_activation("TANH")
    assert hash(get_activation("tanh")) == hash(get_activation("tanh"))
    leaky = get_activation("leaky_relu", negative_slope=0.2)
    assert leaky == get_activation("leakyrelu", negative_slope=0.2)
    assert hash(leaky) == hash(get_activation("leaky-relu", negative_slope=0.2))
    assert leaky != get_activation("leaky_relu", negative_slope=0.3)
    assert get_activation("elu") == get_activation("elu", alpha=1.0)
    erf = get_activation("erf")
    assert dataclasses.replace(erf, closed_form=None) != erf
    # a built-in name does not make a user activation the built-in
    assert Activation("tanh", lambda x: 2.0 * np.tanh(x), _tanh_d) != get_activation("tanh")
    # expressions: one text, one function; different texts, different functions
    assert get_activation("x*sigmoid(x)") == get_activation("x * sigmoid(x)")
    assert hash(get_activation("x*sigmoid(x)")) == hash(get_activation("x*sigmoid(x)"))
    assert get_activation("tanh(x)") != get_activation("2*tanh(x)")


def test_q_table_cache_is_keyed_on_the_functions() -> None:
    one, two = _mine_pair()
    assert q_table(one) is not q_table(two)
    assert q_table(get_activation("tanh")) is q_table(get_activation("tanh"))
    q = np.array([0.5, 2.0, 7.0])
    np.testing.assert_allclose(q_table(two).F(q), 4.0 * q_table(one).F(q), rtol=1e-13)


def test_same_named_pair_through_fixed_point_and_phase_grid() -> None:
    one, two = _mine_pair()
    w = np.linspace(0.5, 3.0, 6)
    b = np.array([0.05, 0.3, 1.0])
    for act in (one, two, one):  # in turn, so that a shared cache would show
        grid = phase_grid(act, sigma_w2=w, sigma_b2=b)
        alone = fixed_point(act, sigma_w2=w[None, :], sigma_b2=b[:, None])
        np.testing.assert_allclose(grid.q_star, alone.q_star, rtol=1e-11)
        np.testing.assert_allclose(grid.chi_1, alone.chi_1, rtol=1e-11)
        m = np.isfinite(alone.c_star)
        np.testing.assert_allclose(grid.c_star[m], alone.c_star[m], rtol=0, atol=1e-9)
    # 2 tanh at sigma_w2 has the q-map of tanh at 4 sigma_w2: the same q*
    q_two = phase_grid(two, sigma_w2=w, sigma_b2=b).q_star
    q_one = phase_grid(one, sigma_w2=4.0 * w, sigma_b2=b).q_star
    np.testing.assert_allclose(q_two, q_one, rtol=1e-11)
    # and the slow reference at two points
    for i, j in ((0, 2), (2, 5)):
        expected = ref.ref_q_star(two, float(w[j]), float(b[i]))
        assert q_two[i, j] == pytest.approx(expected, rel=1e-10)


def test_same_named_pair_through_critical_point_on_64_biases() -> None:
    one, two = _mine_pair()
    # tanh(2x), also named "mine": F/G differs from tanh's, so a shared table would show
    three = Activation("mine", lambda x: np.tanh(2.0 * x), lambda x: 2.0 * _tanh_d(2.0 * x))
    b = np.linspace(0.01, 0.5, 64)  # >= 64 biases: the scan uses a q-table
    first = critical_point(one, sigma_b2=b)
    second = critical_point(two, sigma_b2=b)
    third = critical_point(three, sigma_b2=b)
    again = critical_point(one, sigma_b2=b)
    np.testing.assert_array_equal(again.sigma_w2, first.sigma_w2)
    # 2 tanh: the critical sigma_w2 is a quarter of tanh's, at the same q*
    np.testing.assert_allclose(second.sigma_w2, first.sigma_w2 / 4.0, rtol=1e-10)
    np.testing.assert_allclose(second.q_star, first.q_star, rtol=1e-9)
    # tanh(2x) at (w, b) is tanh at (4w, 4b) with q* four times larger
    scaled = critical_point(one, sigma_b2=4.0 * b)
    np.testing.assert_allclose(third.sigma_w2, scaled.sigma_w2 / 4.0, rtol=1e-10)
    np.testing.assert_allclose(third.q_star, scaled.q_star / 4.0, rtol=1e-9)
    for act, res, k in ((two, second, 0), (three, third, 40)):
        expected = ref.ref_critical_sigma_w2(act, float(b[k]))
        assert res.sigma_w2[k] == pytest.approx(expected, rel=1e-9)


# --- sin at large variances --------------------------------------------------------------------


@pytest.mark.parametrize(("q1", "q2", "rho"), [(800.0, 900.0, 0.9), (2000.0, 1500.0, -0.7)])
def test_sin_pair_does_not_overflow(q1: float, q2: float, rho: float) -> None:
    sin = get_activation("sin")
    mpmath.mp.dps = 50
    r = mpmath.mpf(rho) * mpmath.sqrt(mpmath.mpf(q1) * q2)
    damp = mpmath.exp(-(mpmath.mpf(q1) + q2) / 2)
    for derivative, exact in ((False, damp * mpmath.sinh(r)), (True, damp * mpmath.cosh(r))):
        got = float(pair_expectation(sin, q1, q2, rho, derivative=derivative))
        assert math.isfinite(got)
        assert got == pytest.approx(float(exact), rel=1e-12, abs=1e-300)


def test_cli_sin_at_huge_variance_is_finite() -> None:
    res = _cli("fixed-point", "--act", "sin", "--sigma-w2", "2000", "--sigma-b2", "800",
               "--format", "json")  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["chi_c"] is not None and math.isfinite(data["chi_c"])
    assert data["q_star"] == pytest.approx(1800.0, rel=1e-12)  # F(q) = 1/2 to double precision


@pytest.mark.parametrize(
    ("w", "b"), slow_except([(10.0, 800.0), (3.0, 1500.0)], [(10.0, 800.0)], multi=True)
)
def test_sin_fixed_point_at_large_variance_against_reference(w: float, b: float) -> None:
    sin = get_activation("sin")
    fp = fixed_point(sin, sigma_w2=w, sigma_b2=b)
    q, c, chi_c = float(fp.q_star), float(fp.c_star), float(fp.chi_c)
    assert q > 710  # where e^{-q} sinh(q c) overflowed
    assert ref.ref_q_map(sin, q, w, b) == pytest.approx(q, rel=1e-12)
    assert ref.ref_c_map(sin, c, q, w, b) == pytest.approx(c, rel=1e-10)
    assert ref.ref_chi_c(sin, w, q, c) == pytest.approx(chi_c, rel=1e-8)


@pytest.mark.slow
def test_sin_fixed_point_at_large_variance_full_reference() -> None:
    sin = get_activation("sin")
    fp = fixed_point(sin, sigma_w2=10.0, sigma_b2=800.0)
    expected = ref.ref_fixed_point(sin, 10.0, 800.0)
    for key in ("q_star", "c_star", "chi_c"):
        assert float(getattr(fp, key)) == pytest.approx(expected[key], rel=1e-8), key


# --- a new activation registered in one place ------------------------------------------------


def _half_erf(x: np.ndarray) -> np.ndarray:
    return special.erf(0.5 * x)


def _half_erf_d(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.25 * np.square(x)) / math.sqrt(math.pi)


def _registration(calls: list[str] | None = None) -> Any:
    """``erf_half(x) = erf(x/2)``: closed form, torch twin and nn-module matcher."""

    def torch_phi(torch: Any) -> Any:
        if calls is not None:
            calls.append("torch_phi")
        return lambda x: torch.special.erf(0.5 * x)

    def torch_module(torch: Any, module: Any) -> dict[str, float] | None:
        return {} if type(module).__name__ == "HalfErf" else None

    return registered_activation(
        "erf_half",
        _half_erf,
        _half_erf_d,
        help="erf(x/2), a test family",
        aliases=("half-erf",),
        closed_form=lambda: Erf(scale=0.5),
        torch_phi=torch_phi,
        torch_module=torch_module,
    )


def test_registered_activation_is_seen_and_then_gone() -> None:
    assert "erf_half" not in ACTIVATION_NAMES
    with _registration() as record:
        act = get_activation("Half-Erf")
        assert act == get_activation("erf_half") and act.name == "erf_half"
        assert record_of(act) is record
        assert isinstance(act.closed_form, ClosedForm)
        assert act.as_dict()["closed_form"] == "erf"
        assert "erf_half" in ACTIVATION_NAMES and ACTIVATION_NAMES[-1] == "erf_half"
        res = _cli("fixed-point", "--help")
        assert res.exit_code == 0
        assert "erf_half = erf(x/2), a test family" in " ".join(res.stdout.split())
        with pytest.raises(MFTheoryError, match="already registered"):
            register_activation("erf_half", _half_erf, _half_erf_d, help="again")
    assert "erf_half" not in ACTIVATION_NAMES
    assert "erf_half" not in " ".join(_cli("fixed-point", "--help").stdout.split())
    with pytest.raises(MFTheoryError, match="unknown activation"):
        get_activation("erf_half")
    with pytest.raises(MFTheoryError, match="built-in"):
        unregister_activation("tanh")


@pytest.mark.parametrize("q", [0.0, 0.3, 4.0, 50.0])
def test_registered_closed_form_against_reference(q: float) -> None:
    with _registration():
        act = get_activation("erf_half")
        qa = np.array([q])
        for f, r in (
            (second_moment, ref.ref_second_moment),
            (derivative_second_moment, ref.ref_derivative_second_moment),
            (second_moment_slope, ref.ref_q_slope),
        ):
            assert float(f(act, qa)[0]) == pytest.approx(r(act, q), rel=1e-11, abs=1e-15)
        if q > 0:
            for rho in (-0.6, 0.4, 0.95):
                for d in (False, True):
                    expected = ref.ref_pair_expectation(act, q, 1.7 * q, rho, derivative=d)
                    got = float(pair_expectation(act, q, 1.7 * q, rho, derivative=d))
                    assert got == pytest.approx(expected, rel=1e-11, abs=1e-15)


def test_registered_activation_in_fixed_point_and_phase_grid() -> None:
    w = np.array([0.8, 2.0, 6.0, 12.0])
    b = np.array([0.0, 0.1, 0.5])
    with _registration():
        grid = phase_grid("erf_half", sigma_w2=w, sigma_b2=b)
        exact = fixed_point("erf_half", sigma_w2=w[None, :], sigma_b2=b[:, None])
        assert (grid.phase == exact.phase).all() and "chaotic" in grid.phase
        for key in ("q_star", "chi_1", "c_star", "chi_c"):
            np.testing.assert_allclose(getattr(grid, key), getattr(exact, key), rtol=1e-10)
        act = get_activation("erf_half")
        expected = ref.ref_fixed_point(act, 6.0, 0.1)
        for key in ("q_star", "c_star", "chi_1", "chi_c"):
            assert float(getattr(exact, key)[1, 2]) == pytest.approx(expected[key], rel=1e-9)


def test_registered_activation_in_the_torch_backend() -> None:
    torch = pytest.importorskip("torch")
    from mftheory.cnn.spatial import covariance_map
    from mftheory.montecarlo.ensembles import simulate_ensemble
    from mftheory.torch import TorchBackend
    from mftheory.torch.backend import _torch_phi

    backend = TorchBackend(device="cpu")

    calls: list[str] = []
    v = np.array([0.2, 0.5, 0.3])
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 4))
    sigma0 = a @ a.T / 4 + 0.3 * np.eye(4)
    with _registration(calls):
        act = get_activation("erf_half")
        native = _torch_phi(act, torch)
        assert native is not None
        x = np.linspace(-30.0, 30.0, 601)
        got = native(torch.as_tensor(x, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(got, act.phi(x), rtol=1e-12, atol=1e-14)
        assert _torch_phi(Activation("erf_half", _half_erf, _half_erf), torch) is None
        calls.clear()
        kw: dict[str, Any] = dict(sigma_w2=1.5, sigma_b2=0.1, v=v, image_shape=(4,), depth=1)
        res = simulate_ensemble(
            "erf_half", channels=4, networks=500, Sigma0=sigma0, backend=backend, **kw
        )
        assert calls, "the torch backend did not use the registered torch function"
        mf1 = covariance_map("erf_half", sigma0, v, image_shape=(4,), sigma_w2=1.5, sigma_b2=0.1)
        assert np.all(np.abs(res.mean[1] - mf1) <= 5.0 * res.sem[1])


def test_registered_activation_in_torch_diagnose() -> None:
    torch = pytest.importorskip("torch")
    import mftheory.torch as mt

    class HalfErf(torch.nn.Module):  # the matcher recognises this module by its class name
        def forward(self, x: Any) -> Any:
            return torch.special.erf(0.5 * x)

    f64 = torch.float64
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32, dtype=f64),
        HalfErf(),
        torch.nn.Linear(32, 32, dtype=f64),
        HalfErf(),
        torch.nn.Linear(32, 4, dtype=f64),
    )
    with _registration():
        diag = mt.diagnose(model, torch.zeros(2, 16, dtype=f64))
        assert diag.activation == "erf_half"
        cp = critical_point("erf_half", sigma_b2=diag.sigma_b2)
        assert diag.nearest_critical_sigma_w2 == pytest.approx(float(cp.sigma_w2), rel=1e-12)
    with pytest.raises(MFTheoryError, match="no activation module"):
        mt.diagnose(model, torch.zeros(2, 16, dtype=f64))
