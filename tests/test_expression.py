"""Tests of mftheory.activations.expression: the safe parser of user-written activations."""

from __future__ import annotations

import ast
import inspect
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mftheory.activations import expression
from mftheory.activations.builtins import get_activation
from mftheory.activations.expression import EXPRESSION_FUNCTIONS, parse_activation
from mftheory.errors import MFTheoryError

# Grid for the derivative checks: spacing 0.25, offset so that no point is within 0.03 of the
# kinks used below (0, +-1, 1/2, pi/6...), far more than the finite-difference step.
GRID = np.linspace(-3.0, 3.0, 25) + 0.0371

SMOOTH_OR_AWAY_FROM_KINKS = [
    "x*sigmoid(x)",
    "tanh(2*x + 0.3)",
    "exp(-x**2/2)",
    "log1p(x**2)",
    "sqrt(1 + x**2)",
    "sin(x)*cos(3*x)",
    "x/(1 + abs(x))",
    "atan(x)**2",
    "erf(x)*erfc(x/2)",
    "softplus(x) - log(2)",
    "gelu(x) + swish(x) - silu(-x)",
    "x**3 - 2*x",
    "2**x",
    "(1 + x**2)**(x/3)",
    "sinh(x/2)/cosh(x)",
    "expm1(x/2) + tan(x/4)",
    "relu(x)**2 + step(x)*x",
    "max(x, 0.1*x) + min(sin(x), 0.5)",
    "clip(x, -1, 1)*x + sign(x)*x**2",
    "Phi(x) + gauss_cdf(-2*x)",
    "abs(x - 1)**3 - heaviside(x)",
    "-(-x) + +x - pi*e",
]


def _central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2.0 * h)


@pytest.mark.parametrize("text", SMOOTH_OR_AWAY_FROM_KINKS)
def test_derivative_matches_finite_differences(text):
    # the tree's phi and phi' alone: tan(x/4) has poles (refused by parse_activation since
    # issue 15) but its derivative rule is still checked here
    from mftheory.activations.expression import _functions

    phi, dphi, _ = _functions(text)
    act = SimpleNamespace(phi=phi, dphi=dphi)
    # h = 1e-5: truncation error ~ h^2 |phi'''| / 6 ~ 1e-10 and rounding ~ eps |phi| / h
    # ~ 1e-10 on this grid (|phi| < 1e3), both far below the 1e-6 relative tolerance, while a
    # wrong derivative rule is off by O(1).
    fd = _central_difference(act.phi, GRID, 1e-5)
    np.testing.assert_allclose(act.dphi(GRID), fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("text", "builtin"),
    [
        ("x*sigmoid(x)", "silu"),
        ("silu(x)", "silu"),
        ("tanh(x)", "tanh"),
        ("max(x, 0)", "relu"),
        ("relu(x)", "relu"),
        ("x*Phi(x)", "gelu"),
        ("gelu(x)", "gelu"),
        ("softplus(x)", "softplus"),
        ("sigmoid(x)", "sigmoid"),
        ("erf(x)", "erf"),
        ("clip(x, -1, 1)", "hard_tanh"),
        ("sin(x)", "sin"),
    ],
)
def test_agrees_with_builtin_activations(text, builtin):
    act, ref = parse_activation(text), get_activation(builtin)
    x = np.linspace(-8.0, 8.0, 161) + 0.013
    np.testing.assert_allclose(act.phi(x), ref.phi(x), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(act.dphi(x), ref.dphi(x), rtol=1e-12, atol=1e-14)
    assert act.kinks == ref.kinks


@pytest.mark.parametrize(
    ("text", "kinks"),
    [
        ("abs(x-1)", (1.0,)),
        ("relu(2*x+1)", (-0.5,)),
        ("max(x, 0.1*x)", (0.0,)),
        ("min(x, 0.1*x)", (0.0,)),
        ("clip(x, -1, 1)", (-1.0, 1.0)),
        ("clip(2*x, -1, 1)", (-0.5, 0.5)),
        ("relu(x/3 - 1)", (3.0,)),
        ("step(x) + sign(x - 2) + abs(x) + relu(-x)", (0.0, 2.0)),
        ("relu(x) * abs(x + 1e-20)", (0.0,)),
        ("tanh(x)", ()),
        ("x*sigmoid(x)", ()),
        ("relu(sin(pi*x))", ()),  # argument not affine: no kink (documented)
        ("relu(x**2 - 1)", ()),
        ("relu(0*x + 1)", ()),  # constant argument: smooth
    ],
)
def test_kinks(text, kinks):
    found = parse_activation(text).kinks
    assert len(found) == len(kinks)
    np.testing.assert_allclose(found, kinks, rtol=0, atol=1e-15)
    assert all(type(k) is float for k in found)


def test_kink_is_exact_where_an_affine_root_is_representable():
    assert parse_activation("relu(x/3 - 1)").kinks == (3.0,)
    assert parse_activation("abs(x - 0.1)").kinks == (0.1,)


def test_result_fields_and_name_normalisation():
    act = parse_activation("  x * sigmoid( x )\n")
    assert act.name == "x*sigmoid(x)"
    assert act.closed_form is None
    assert act.params == ()
    assert act.label == "x*sigmoid(x)"
    assert act.as_dict()["kinks"] == []


def test_get_activation_uses_the_parser():
    act = get_activation("x * sigmoid(x)")
    assert act.name == "x*sigmoid(x)"
    assert isinstance(act.phi, expression._TreeFunction)
    assert get_activation("x").name == "x"


@pytest.mark.parametrize("text", ["2", "pi", "exp(1) - 1", "abs(-3)"])
def test_constant_activation_keeps_the_shape(text):
    act = parse_activation(text)
    x = np.zeros((3, 4))
    assert act.phi(x).shape == (3, 4)
    assert act.dphi(x).shape == (3, 4)
    np.testing.assert_array_equal(act.dphi(x), 0.0)
    assert act.kinks == ()


def test_scalar_and_nd_inputs():
    act = parse_activation("x**2")
    out = act.phi(np.array(3.0))
    assert out.shape == () and out == 9.0
    assert act.phi(np.ones((2, 3, 4))).shape == (2, 3, 4)
    x = np.linspace(-2, 2, 5)
    before = x.copy()
    act.dphi(x)
    np.testing.assert_array_equal(x, before)


def test_no_warnings_on_large_inputs():
    # pytest turns warnings into errors: overflow to inf must stay silent
    x = np.array([-1e308, -1e4, -800.0, 0.0, 800.0, 1e4, 1e308])
    for text in ["exp(x)", "x*sigmoid(x)", "tanh(x)", "softplus(x)", "gelu(x)", "cosh(x)", "x**3"]:
        act = parse_activation(text)
        act.phi(x)
        act.dphi(x)


def test_tails_of_derivatives_are_accurate():
    # sech^2 and sigmoid(u)sigmoid(-u) avoid the cancellation of 1 - tanh^2, s(1 - s)
    act = parse_activation("tanh(x)")
    np.testing.assert_allclose(act.dphi(np.array([20.0])), 4.0 * np.exp(-40.0), rtol=1e-12)
    act = parse_activation("sigmoid(x)")
    np.testing.assert_allclose(act.dphi(np.array([40.0])), np.exp(-40.0), rtol=1e-12)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("x.real", "attribute access 'x.real'"),
        ("x[0]", "indexing 'x[0]'"),
        ("foo(x)", "unknown function 'foo'"),
        ("lambda: 1", "lambda"),
        ('"x"', "string"),
        ("x ^ 2", "use **"),
        ("1j*x", "complex number '1j'"),
        ("log(x)", "x = -5"),
        ("sqrt(x)", "x = -5"),
        ("", "empty"),
        ("   \n ", "empty"),
        ("x" * 10_000, "too long"),
        ("y + 1", "unknown name 'y'"),
        ("exp(x, 2)", "exp() takes 1 argument, got 2"),
        ("max(x)", "max() takes 2 arguments, got 1"),
        ("exp(x=1)", "keyword argument"),
        ("max(*x)", "starred"),
        ("Exp(x)", "did you mean 'exp'"),
        ("exp", "uncalled function 'exp'"),
        ("x > 0", "step(x)"),
        ("x if x else 1", "conditional expression"),
        ("x and 1", "and/or"),
        ("x % 2", "'%'"),
        ("x // 2", "'//'"),
        ("True * x", "boolean"),
        ("None", "not allowed"),
        ("[x]", "list"),
        ("(x, x)", "tuple"),
        ("x(1)", "unknown function 'x'"),
        ("(lambda: 1)()", "call of"),
        ("exp.__class__", "attribute access"),
        ("1e400 * x", "too large"),
        ("9" * 400 + " * x", "too large"),
        ("clip(x, x, 1)", "clip bounds depending on x"),
        ("clip(x, 1, -1)", "lo <= hi"),
        ("x # comment", "comments"),
        ("x +", "cannot parse"),
        ("x\x00", "'\\x00'"),
        ("ｘ + 1", "ASCII"),
        ("-" * 60 + "x", "nested too deeply"),
        ("sin(" * 60 + "x" + ")" * 60, "nested too deeply"),
        ("1/x", "x = 0"),
        ("sqrt(abs(x))", "derivative"),
        ("10.0**400 * x", "x = -5"),
    ],
)
def test_rejections_are_helpful(text, fragment):
    with pytest.raises(MFTheoryError) as info:
        parse_activation(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert len(message) < 800


def test_unknown_function_lists_the_allowed_ones():
    with pytest.raises(MFTheoryError, match=r"in activation expression 'foo\(x\)'; allowed: "):
        parse_activation("foo(x)")
    assert {"exp", "sigmoid", "Phi", "clip", "atan", "heaviside", "swish"} <= set(
        EXPRESSION_FUNCTIONS
    )


def test_non_string_is_rejected():
    with pytest.raises(MFTheoryError, match="must be a string"):
        parse_activation(3.0)  # type: ignore[arg-type]


def test_module_never_evaluates_code():
    tree = ast.parse(inspect.getsource(expression))
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"eval", "exec", "compile", "__import__", "getattr"}


_TOKENS = [*"x()+-*/^.,e0123456789 [ ]'", "**", "pi", "tanh", "relu", "max", "clip", "log", "1e308"]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(max_size=40), st.lists(st.sampled_from(_TOKENS), max_size=12).map("".join))
)
def test_arbitrary_text_gives_an_activation_or_mftheoryerror(text):
    try:
        act = parse_activation(text)
    except MFTheoryError:
        return
    x = np.linspace(-5.0, 5.0, 11)
    assert np.all(np.isfinite(act.phi(x)))
    assert np.all(np.isfinite(act.dphi(x)))
    act.phi(np.array([-1e300, 1e300]))  # no warning escapes (filterwarnings = error)
    act.dphi(np.array([-1e300, 1e300]))


_ATOMS = st.sampled_from(["x", "2", "0.5", "pi", "-x", "(x+1)"])


@st.composite
def _expressions(draw, depth=3):
    if depth == 0 or draw(st.booleans()):
        return draw(_ATOMS)
    kind = draw(st.sampled_from(["op", "f1", "f2"]))
    if kind == "op":
        op = draw(st.sampled_from(["+", "-", "*"]))
        return f"({draw(_expressions(depth - 1))}){op}({draw(_expressions(depth - 1))})"
    if kind == "f1":
        f = draw(
            st.sampled_from(["tanh", "sin", "cos", "sigmoid", "softplus", "erf", "atan", "gelu"])
        )
        return f"{f}({draw(_expressions(depth - 1))})"
    f = draw(st.sampled_from(["max", "min"]))
    return f"{f}({draw(_expressions(depth - 1))}, {draw(_expressions(depth - 1))})"


@settings(max_examples=150, deadline=None)
@given(_expressions())
def test_random_expressions_differentiate_correctly(text):
    act = parse_activation(text)
    x = GRID / 4.0  # |x| < 1: exp(exp(exp(x))) stays moderate
    fd = _central_difference(act.phi, x, 1e-6)
    d = act.dphi(x)
    # max/min can put a kink within 1e-6 of a grid point only by accident; skip such points
    kinked = np.abs(_central_difference(act.dphi, x, 1e-6)) > 1e4
    np.testing.assert_allclose(d[~kinked], fd[~kinked], rtol=1e-5, atol=1e-6)
