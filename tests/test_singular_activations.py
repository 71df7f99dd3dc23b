"""Issue 15, items 2 and 7: singular points, jumps and mass beyond the quadrature cut-off.

References are independent of the code under test: closed forms (the arcsin law of sign),
scipy ``quad`` with ``points=`` at the jump, and the heat identity
``d/drho E[phi(u1) phi(u2)] = q E[phi'(u1) phi'(u2)]`` evaluated by scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from typer.testing import CliRunner

from mftheory.activations.expression import parse_activation
from mftheory.cli import app
from mftheory.errors import MFTheoryError
from mftheory.gaussian.expectations import (
    derivative_second_moment,
    pair_expectation,
    second_moment,
    second_moment_slope,
)
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point

runner = CliRunner()

# --- singular points ----------------------------------------------------------------------

NOT_INTEGRABLE = [
    ("1/(x-0.5)", 0.5),
    ("1/(x-0.5)**2", 0.5),
    ("1/(x-1000)", 1000.0),
    ("1/(x-3e7)", 3e7),
    ("tan(x)", -math.pi / 2),
    ("1/(1+sin(x))", -math.pi / 2),
    ("1/((x-0.3)*(x+10))", 0.3),
]


@pytest.mark.parametrize(("text", "x0"), NOT_INTEGRABLE)
def test_pole_refused_naming_the_point(text, x0):
    with pytest.raises(MFTheoryError, match=r"E\[phi\(h\)\^2\] does not exist") as err:
        parse_activation(text)
    shown = float(str(err.value).split("x = ")[1].split()[0])
    assert shown == pytest.approx(x0, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize(
    "text",
    [
        "log(abs(x-0.5))",  # integrable in phi^2, but E[phi'^2] infinite
        "abs(x-0.3)**-0.25",
        "sqrt(abs(x-0.3))",  # phi finite, phi' infinite at 0.3
        "abs(x-0.3)**0.75",  # phi'^2 integrable but singular: not integrated accurately
        "log((x-0.7)**2)",
        "(x-3)**(-1/3)",
        "sqrt((x-0.5)**2-0.0001)",  # NaN only on (0.49, 0.51), between the probe points
        "log(x)",
        "sqrt(x)",
        "x**x",
        "x**-1",
    ],
)
def test_integrable_or_domain_singularities_refused(text):
    with pytest.raises(MFTheoryError):
        parse_activation(text)


@pytest.mark.parametrize(
    "text",
    ["1/(x**2+1)", "1/sigmoid(x)", "log(sigmoid(x))", "1/(2+sin(50*x))", "x/(x**2+2*x+2)",
     "1/(x**2+1e-12)", "sqrt(x**2+1)", "abs(x)**1.5", "tanh(x)"],
)  # fmt: skip
def test_no_real_pole_accepted(text):
    parse_activation(text)


def test_lorentzian_second_moment_against_quad():
    act = parse_activation("1/(x**2+1)")
    for q in (0.3, 1.0, 7.0):
        s = math.sqrt(q)
        ref, _ = integrate.quad(lambda z, s=s: (1 / (s * s * z * z + 1)) ** 2 * stats.norm.pdf(z),
                                -np.inf, np.inf, epsabs=0, epsrel=1e-13)  # fmt: skip
        assert float(second_moment(act, q)) == pytest.approx(ref, rel=1e-10)


def test_unknown_discontinuous_function_refused():
    with pytest.raises(MFTheoryError, match="unknown function 'floor'"):
        parse_activation("floor(x)")


# --- jumps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "jumps"),
    [
        ("sign(x)", ((0.0, 2.0),)),
        ("step(x-0.3)", ((0.3, 1.0),)),
        ("heaviside(x)", ((0.0, 1.0),)),
        ("sign(x-0.3)", ((0.3, 2.0),)),
        ("x+sign(x)", ((0.0, 2.0),)),
        ("sign(x**2-1)", ((-1.0, -2.0), (1.0, 2.0))),
        ("x*step(x)", ()),  # a kink, not a jump
        ("abs(x)", ()),
        ("relu(x)", ()),
    ],
)
def test_jumps_found(text, jumps):
    act = parse_activation(text)
    assert len(act.jumps) == len(jumps)
    for (x0, size), (rx, rs) in zip(act.jumps, jumps, strict=True):
        assert x0 == pytest.approx(rx, abs=1e-12)
        assert size == pytest.approx(rs, rel=1e-9)
        assert any(abs(k - x0) < 1e-12 for k in act.kinks)


def _sign_c_star(w, b):
    q = w + b  # E[sign^2] = 1
    return q, optimize.brentq(lambda c: (w * (2 / math.pi) * math.asin(c) + b) / q - c, 1e-9, 0.999)


def test_sign_fixed_point_arcsin_closed_form():
    fp = fixed_point("sign(x)", sigma_w2=1.0, sigma_b2=0.05)
    q, c = _sign_c_star(1.0, 0.05)
    assert str(fp.phase) == "chaotic"
    assert float(fp.chi_1) == math.inf
    assert float(fp.xi_grad) == 0.0
    assert float(fp.q_star) == pytest.approx(q, rel=1e-12)
    assert float(fp.c_star) == pytest.approx(c, abs=1e-9)
    assert float(fp.c_star) == pytest.approx(0.121, abs=5e-4)
    chi_c = 1.0 * (2 / math.pi) / (q * math.sqrt(1 - c * c))  # slope of the arcsin C-map
    assert float(fp.chi_c) == pytest.approx(chi_c, rel=1e-8)
    assert float(fp.xi_c) == pytest.approx(-1 / math.log(chi_c), rel=1e-8)


def test_sign_c_star_monte_carlo():
    """The arcsin law itself, checked by sampling (seeded, 4e6 pairs, 5 sigma < 3e-3)."""
    rng = np.random.default_rng(15)
    c = 0.3
    z1, z2 = rng.standard_normal((2, 4_000_000))
    u2 = c * z1 + math.sqrt(1 - c * c) * z2
    mc = float(np.mean(np.sign(z1) * np.sign(u2)))
    act = parse_activation("sign(x)")
    assert float(pair_expectation(act, 1.3, 1.3, c)) == pytest.approx(mc, abs=3e-3)
    assert float(pair_expectation(act, 1.3, 1.3, c)) == pytest.approx(
        2 / math.pi * math.asin(c), abs=1e-10
    )


def test_sign_derivative_pair_is_the_bivariate_density():
    act = parse_activation("sign(x)")
    q, rho = 0.7, 0.4
    ref = 4.0 / (2 * math.pi * q * math.sqrt(1 - rho * rho))  # 2^2 p12(0, 0)
    got = float(pair_expectation(act, q, q, rho, derivative=True))
    assert got == pytest.approx(ref, rel=1e-10)
    assert float(pair_expectation(act, q, q, 1.0, derivative=True)) == math.inf
    assert float(derivative_second_moment(act, q)) == math.inf


MIXED = "step(x-0.3)+0.5*x"


def _mixed(u):
    return (u > 0.3) + 0.5 * u


def _mixed_C(q, rho):
    """E[phi(u1) phi(u2)] by quad over u1 with E[phi(u2) | u1] in closed form."""
    s = math.sqrt(q)
    sd = s * math.sqrt(1 - rho * rho)

    def f(u):
        m = rho * u
        inner = stats.norm.cdf((m - 0.3) / sd) + 0.5 * m
        return _mixed(u) * inner * stats.norm.pdf(u / s) / s

    val, _ = integrate.quad(f, -12 * s, 12 * s, points=[0.3], epsabs=0, epsrel=1e-13, limit=200)
    return val


def _mixed_F(q):
    s = math.sqrt(q)
    val, _ = integrate.quad(lambda u: _mixed(u) ** 2 * stats.norm.pdf(u / s) / s, -12 * s, 12 * s,
                            points=[0.3], epsabs=0, epsrel=1e-13, limit=200)  # fmt: skip
    return val


def test_mixed_jump_moments_against_quad():
    act = parse_activation(MIXED)
    q = 1.7
    assert float(second_moment(act, q)) == pytest.approx(_mixed_F(q), rel=1e-10)
    h = 1e-4
    slope = (_mixed_F(q + h) - _mixed_F(q - h)) / (2 * h)
    assert float(second_moment_slope(act, q)) == pytest.approx(slope, rel=1e-6)
    for rho in (0.2, 0.75):
        assert float(pair_expectation(act, q, q, rho)) == pytest.approx(_mixed_C(q, rho), rel=1e-9)
        # heat identity: dC/drho = q E[phi'(u1) phi'(u2)]
        dC = (_mixed_C(q, rho + 1e-4) - _mixed_C(q, rho - 1e-4)) / 2e-4
        got = float(pair_expectation(act, q, q, rho, derivative=True))
        assert q * got == pytest.approx(dC, rel=1e-6)


def test_mixed_jump_fixed_point_against_quad():
    w, b = 1.5, 0.1
    fp = fixed_point(MIXED, sigma_w2=w, sigma_b2=b)
    q = optimize.brentq(lambda q: w * _mixed_F(q) + b - q, 0.5, 10.0, xtol=1e-14)
    c = optimize.brentq(lambda c: (w * _mixed_C(q, c) + b) / q - c, 0.0, 0.999, xtol=1e-13)
    dC = (_mixed_C(q, c + 1e-4) - _mixed_C(q, c - 1e-4)) / 2e-4
    assert str(fp.phase) == "chaotic"
    assert float(fp.chi_1) == math.inf
    assert float(fp.q_star) == pytest.approx(q, rel=1e-9)
    assert float(fp.c_star) == pytest.approx(c, abs=1e-8)
    assert float(fp.chi_c) == pytest.approx(w * dC / q, rel=1e-6)


def test_sign_has_no_critical_line():
    cp = critical_point("sign(x)", sigma_b2=0.05)
    assert math.isnan(float(cp.sigma_w2))


# --- mass beyond the cut-off ------------------------------------------------------------------


def test_exp_100_refused_not_printed_wrong():
    with pytest.raises(MFTheoryError, match="beyond the quadrature cut-off"):
        critical_point("exp(x)**100", sigma_b2=0.05)
    with pytest.raises(MFTheoryError, match="beyond the quadrature cut-off"):
        second_moment(parse_activation("exp(x)**100"), 0.05)


def test_exp_within_the_rule_still_exact():
    act = parse_activation("exp(x)")
    for q in (0.1, 1.0, 2.0):
        assert float(second_moment(act, q)) == pytest.approx(math.exp(2 * q), rel=1e-12)


# --- the CLI --------------------------------------------------------------------------------


def _cli(*args):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


@pytest.mark.parametrize(
    "args",
    [
        ("fixed-point", "--act", "1/(x-0.5)", "--sigma-w2", "1", "--sigma-b2", "0.05"),
        ("fixed-point", "--act", "tan(x)", "--sigma-w2", "1", "--sigma-b2", "0.05"),
        ("fixed-point", "--act", "log(abs(x-0.5))", "--sigma-w2", "1", "--sigma-b2", "0.05"),
        ("critical", "--act", "exp(x)**100"),
        ("spectrum", "--act", "sign(x)", "--depth", "10", "--sigma-w2", "1", "--sigma-b2", "0.05"),
    ],
)
def test_cli_refuses_in_one_line(args):
    result = _cli(*args)
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    assert len(text.splitlines()) == 1
    assert "Warning" not in text


def test_cli_sign_is_chaotic():
    result = _cli("fixed-point", "--act", "sign(x)", "--sigma-w2", "1", "--sigma-b2", "0.05")
    assert result.exit_code == 0, result.output
    assert "chaotic" in result.output
    assert "0.1214165" in result.output
