"""The expression tree behind ``mftheory.activations.expression``: nodes, evaluation,
symbolic differentiation and the whitelisted functions (each with its NumPy implementation,
its derivative rule and, for non-smooth ones, the arguments whose roots are kinks).

Nothing here reads text: ``mftheory.activations.expression`` parses and checks it, then
builds these nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import special

Array = NDArray[np.float64]

_SQRT2 = math.sqrt(2.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# --- the expression tree ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Const:
    value: float


@dataclass(frozen=True, eq=False)
class _Var:
    pass


@dataclass(frozen=True, eq=False)
class _Neg:
    arg: Node


@dataclass(frozen=True, eq=False)
class _BinOp:
    op: str  # one of + - * / **
    left: Node
    right: Node


@dataclass(frozen=True, eq=False)
class _Call:
    func: str  # canonical name, a key of _FUNCTIONS
    args: tuple[Node, ...]


Node = _Const | _Var | _Neg | _BinOp | _Call

_ZERO = _Const(0.0)
_ONE = _Const(1.0)
_TWO = _Const(2.0)
_HALF = _Const(0.5)
_X = _Var()


def _is_const(node: Node, value: float) -> bool:
    return isinstance(node, _Const) and node.value == value


def _depends_on_x(node: Node) -> bool:
    if isinstance(node, _Var):
        return True
    if isinstance(node, _Const):
        return False
    if isinstance(node, _Neg):
        return _depends_on_x(node.arg)
    if isinstance(node, _BinOp):
        return _depends_on_x(node.left) or _depends_on_x(node.right)
    return any(_depends_on_x(a) for a in node.args)


def _signature(node: Node) -> tuple[object, ...]:
    """The tree as nested tuples: equal signatures, the same function of ``x``."""
    if isinstance(node, _Var):
        return ("x",)
    if isinstance(node, _Const):
        return ("const", node.value)
    if isinstance(node, _Neg):
        return ("neg", _signature(node.arg))
    if isinstance(node, _BinOp):
        return (node.op, _signature(node.left), _signature(node.right))
    return (node.func, *(_signature(a) for a in node.args))


# --- evaluation ------------------------------------------------------------------------------

_BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "**": np.power,
}


def _evaluate(node: Node, x: Array, cache: dict[int, Array]) -> Array:
    """Value of ``node`` at ``x`` (a scalar-shaped array where the node is constant).

    ``cache`` is keyed by ``id``: the derivative tree shares sub-trees with ``phi``'s tree and
    with itself, and each shared node is computed once per call. Callers hold the tree, so
    the ids stay valid for the cache's lifetime.
    """
    key = id(node)
    hit = cache.get(key)
    if hit is not None:
        return hit
    out: Array
    if isinstance(node, _Const):
        out = np.asarray(node.value, dtype=np.float64)
    elif isinstance(node, _Var):
        out = x
    elif isinstance(node, _Neg):
        out = np.negative(_evaluate(node.arg, x, cache))
    elif isinstance(node, _BinOp):
        left = _evaluate(node.left, x, cache)
        right = _evaluate(node.right, x, cache)
        out = np.asarray(_BINARY[node.op](left, right), dtype=np.float64)
    else:
        args = [_evaluate(a, x, cache) for a in node.args]
        out = np.asarray(_FUNCTIONS[node.func].evaluate(*args), dtype=np.float64)
    cache[key] = out
    return out


def _evaluate_constant(node: Node) -> float:
    """Value of an ``x``-free sub-tree."""
    with np.errstate(all="ignore"):
        return float(_evaluate(node, np.asarray(0.0), {}))


@dataclass(frozen=True)
class _TreeFunction:
    """A vectorised callable ``f(x)`` evaluating an expression tree elementwise.

    Returns a new float64 array of ``x``'s shape (also when the tree does not involve ``x``).
    Overflow and invalid operations give ``inf``/``nan`` silently, as for a NumPy ufunc under
    ``np.errstate(all="ignore")``; ``exp(x)`` at x = 1000 is ``inf`` with no warning.

    Equal (and hash equal) when the trees are equal node by node (``key``, from
    ``_signature``): two parses of one formula are the same function, spacing aside.
    """

    tree: Node = field(compare=False)
    text: str = field(compare=False)
    key: tuple[object, ...] = field(default=(), repr=False)

    def __call__(self, x: Array) -> Array:
        xa = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = _evaluate(self.tree, xa, {})
        return np.array(np.broadcast_to(out, xa.shape), dtype=np.float64)

    def __repr__(self) -> str:
        return f"<activation expression {self.text!r}>"


# --- simplifying constructors (used to build the derivative) ------------------------------


def _fold(op: str, a: _Const, b: _Const) -> _Const:
    with np.errstate(all="ignore"):
        value = _BINARY[op](np.asarray(a.value), np.asarray(b.value))
    return _Const(float(value))


def _add(a: Node, b: Node) -> Node:
    if _is_const(a, 0.0):
        return b
    if _is_const(b, 0.0):
        return a
    if isinstance(a, _Const) and isinstance(b, _Const):
        return _fold("+", a, b)
    return _BinOp("+", a, b)


def _sub(a: Node, b: Node) -> Node:
    if _is_const(b, 0.0):
        return a
    if _is_const(a, 0.0):
        return _neg(b)
    if isinstance(a, _Const) and isinstance(b, _Const):
        return _fold("-", a, b)
    return _BinOp("-", a, b)


def _mul(a: Node, b: Node) -> Node:
    if _is_const(a, 0.0) or _is_const(b, 0.0):
        return _ZERO
    if _is_const(a, 1.0):
        return b
    if _is_const(b, 1.0):
        return a
    if _is_const(a, -1.0):
        return _neg(b)
    if _is_const(b, -1.0):
        return _neg(a)
    if isinstance(a, _Const) and isinstance(b, _Const):
        return _fold("*", a, b)
    return _BinOp("*", a, b)


def _div(a: Node, b: Node) -> Node:
    if _is_const(a, 0.0):
        return _ZERO
    if _is_const(b, 1.0):
        return a
    if isinstance(a, _Const) and isinstance(b, _Const):
        return _fold("/", a, b)
    return _BinOp("/", a, b)


def _pow(a: Node, b: Node) -> Node:
    if _is_const(b, 0.0):
        return _ONE
    if _is_const(b, 1.0):
        return a
    if isinstance(a, _Const) and isinstance(b, _Const):
        return _fold("**", a, b)
    return _BinOp("**", a, b)


def _neg(a: Node) -> Node:
    if isinstance(a, _Const):
        return _Const(-a.value)
    if isinstance(a, _Neg):
        return a.arg
    return _Neg(a)


def _call(func: str, *args: Node) -> Node:
    return _Call(func, args)


def _derivative(node: Node) -> Node:
    """The symbolic derivative d node / dx, lightly simplified (0*a, 1*a, a+0, a**1...)."""
    if isinstance(node, _Const):
        return _ZERO
    if isinstance(node, _Var):
        return _ONE
    if isinstance(node, _Neg):
        return _neg(_derivative(node.arg))
    if isinstance(node, _BinOp):
        a, b = node.left, node.right
        if node.op == "**":
            return _power_derivative(node)
        da, db = _derivative(a), _derivative(b)
        if node.op == "+":
            return _add(da, db)
        if node.op == "-":
            return _sub(da, db)
        if node.op == "*":
            return _add(_mul(da, b), _mul(a, db))
        # quotient rule, written da/b - a*db/b**2
        return _sub(_div(da, b), _div(_mul(a, db), _pow(b, _TWO)))
    return _FUNCTIONS[node.func].derivative(node, tuple(_derivative(a) for a in node.args))


def _power_derivative(node: _BinOp) -> Node:
    a, b = node.left, node.right
    if not _depends_on_x(b):
        # power rule c * a**(c-1) * a', with the x-free exponent folded to a number
        c = _Const(_evaluate_constant(b))
        return _mul(_mul(c, _pow(a, _sub(c, _ONE))), _derivative(a))
    db = _derivative(b)
    if not _depends_on_x(a):
        # c**b = exp(b log c): derivative c**b * log(c) * b'
        return _mul(_mul(node, _call("log", a)), db)
    # a**b = exp(b log a): derivative a**b * (b' log a + b a' / a)
    da = _derivative(a)
    return _mul(node, _add(_mul(db, _call("log", a)), _div(_mul(b, da), a)))


# --- the whitelisted functions ---------------------------------------------------------------

Derivative = Callable[[_Call, tuple[Node, ...]], Node]


@dataclass(frozen=True)
class _Function:
    """A whitelisted function: its arity, NumPy implementation and derivative rule.

    ``derivative(call, dargs)`` returns d call / dx given the derivatives ``dargs`` of its
    arguments (chain rule included). ``kink_arguments(call)``, for non-smooth functions, gives
    the expressions whose roots are the kinks.
    """

    arity: int
    evaluate: Callable[..., Array]
    derivative: Derivative
    kink_arguments: Callable[[_Call], tuple[Node, ...]] | None = None


def _chain(outer: Callable[[Node], Node]) -> Derivative:
    """Derivative rule f'(u) * u' for a function of one argument, from u -> f'(u)."""
    return lambda call, dargs: _mul(outer(call.args[0]), dargs[0])


def _zero_derivative(call: _Call, dargs: tuple[Node, ...]) -> Node:
    return _ZERO


def _gauss_pdf(u: Node) -> Node:
    return _mul(_Const(_INV_SQRT_2PI), _call("exp", _neg(_mul(_HALF, _pow(u, _TWO)))))


def _max_derivative(call: _Call, dargs: tuple[Node, ...]) -> Node:
    # max(a, b)' = a' where a > b, else b'
    a, b = call.args
    s = _call("step", _sub(a, b))
    return _add(_mul(s, dargs[0]), _mul(_sub(_ONE, s), dargs[1]))


def _min_derivative(call: _Call, dargs: tuple[Node, ...]) -> Node:
    # min(a, b)' = a' where a < b, else b'
    a, b = call.args
    s = _call("step", _sub(b, a))
    return _add(_mul(s, dargs[0]), _mul(_sub(_ONE, s), dargs[1]))


def _clip_derivative(call: _Call, dargs: tuple[Node, ...]) -> Node:
    u, lo, hi = call.args
    inside = _mul(_call("step", _sub(u, lo)), _call("step", _sub(hi, u)))
    return _mul(inside, dargs[0])


def _first_argument(call: _Call) -> tuple[Node, ...]:
    return (call.args[0],)


def _difference(call: _Call) -> tuple[Node, ...]:
    return (_BinOp("-", call.args[0], call.args[1]),)


def _clip_bounds(call: _Call) -> tuple[Node, ...]:
    u, lo, hi = call.args
    return (_BinOp("-", u, lo), _BinOp("-", u, hi))


def _np_gauss_cdf(u: Array) -> Array:
    return np.asarray(0.5 * special.erfc(-u / _SQRT2), dtype=np.float64)


def _np_clip(u: Array, lo: Array, hi: Array) -> Array:
    return np.asarray(np.clip(u, lo, hi), dtype=np.float64)


_FUNCTIONS: dict[str, _Function] = {
    "exp": _Function(1, np.exp, _chain(lambda u: _call("exp", u))),
    "log": _Function(1, np.log, lambda c, d: _div(d[0], c.args[0])),
    "log1p": _Function(1, np.log1p, lambda c, d: _div(d[0], _add(_ONE, c.args[0]))),
    "expm1": _Function(1, np.expm1, _chain(lambda u: _call("exp", u))),
    "sqrt": _Function(1, np.sqrt, lambda c, d: _div(d[0], _mul(_TWO, c))),
    "abs": _Function(1, np.abs, _chain(lambda u: _call("sign", u)), _first_argument),
    "sin": _Function(1, np.sin, _chain(lambda u: _call("cos", u))),
    "cos": _Function(1, np.cos, _chain(lambda u: _neg(_call("sin", u)))),
    "tan": _Function(1, np.tan, lambda c, d: _div(d[0], _pow(_call("cos", c.args[0]), _TWO))),
    # sech^2 as 1/cosh^2: accurate in the tails, where 1 - tanh^2 cancels
    "tanh": _Function(1, np.tanh, lambda c, d: _div(d[0], _pow(_call("cosh", c.args[0]), _TWO))),
    "sinh": _Function(1, np.sinh, _chain(lambda u: _call("cosh", u))),
    "cosh": _Function(1, np.cosh, _chain(lambda u: _call("sinh", u))),
    "arctan": _Function(1, np.arctan, lambda c, d: _div(d[0], _add(_ONE, _pow(c.args[0], _TWO)))),
    "erf": _Function(
        1,
        special.erf,
        _chain(lambda u: _mul(_Const(_TWO_OVER_SQRT_PI), _call("exp", _neg(_pow(u, _TWO))))),
    ),
    "erfc": _Function(
        1,
        special.erfc,
        _chain(lambda u: _mul(_Const(-_TWO_OVER_SQRT_PI), _call("exp", _neg(_pow(u, _TWO))))),
    ),
    # sigmoid' = sigmoid(u) sigmoid(-u): no cancellation for large |u|
    "sigmoid": _Function(
        1, special.expit, _chain(lambda u: _mul(_call("sigmoid", u), _call("sigmoid", _neg(u))))
    ),
    "softplus": _Function(1, lambda u: np.logaddexp(0.0, u), _chain(lambda u: _call("sigmoid", u))),
    "relu": _Function(
        1, lambda u: np.maximum(u, 0.0), _chain(lambda u: _call("step", u)), _first_argument
    ),
    "step": _Function(1, lambda u: np.heaviside(u, 0.0), _zero_derivative, _first_argument),
    "sign": _Function(1, np.sign, _zero_derivative, _first_argument),
    "max": _Function(2, np.maximum, _max_derivative, _difference),
    "min": _Function(2, np.minimum, _min_derivative, _difference),
    "gauss_cdf": _Function(1, _np_gauss_cdf, _chain(_gauss_pdf)),
    "gelu": _Function(
        1,
        lambda u: u * _np_gauss_cdf(u),
        _chain(lambda u: _add(_call("gauss_cdf", u), _mul(u, _gauss_pdf(u)))),
    ),
    # silu' = sigmoid(u) (1 + u sigmoid(-u))
    "silu": _Function(
        1,
        lambda u: u * special.expit(u),
        _chain(lambda u: _mul(_call("sigmoid", u), _add(_ONE, _mul(u, _call("sigmoid", _neg(u)))))),
    ),
    "clip": _Function(3, _np_clip, _clip_derivative, _clip_bounds),
}

_ALIASES = {"atan": "arctan", "heaviside": "step", "Phi": "gauss_cdf", "swish": "silu"}

#: Function names accepted in expressions (aliases included).
EXPRESSION_FUNCTIONS: tuple[str, ...] = tuple(sorted([*_FUNCTIONS, *_ALIASES]))

_CONSTANTS = {"pi": math.pi, "e": math.e}
