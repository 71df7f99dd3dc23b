"""Activations written by the user as formulas in ``x``, parsed safely (never evaluated as Python).

``mftheory critical --act "x*sigmoid(x)"`` hands the text to :func:`parse_activation`, which
reads it with :func:`ast.parse` used purely as a parser, checks every node against a strict
whitelist, builds a small expression tree of its own, and from that tree makes a vectorised
NumPy ``phi``, the symbolic derivative ``phi'`` and the list of kinks. No user text is ever
passed to ``eval``, ``exec`` or ``compile``.

Grammar
-------
Python's syntax and precedence rules for this subset (``-x**2`` is ``-(x**2)``, ``**`` is
right-associative, ``2*x`` needs its ``*``)::

    expr := expr ("+" | "-" | "*" | "/" | "**") expr
          | ("-" | "+") expr
          | "(" expr ")"
          | FUNCTION "(" expr ["," expr ...] ")"      positional arguments only
          | "x"                                       the pre-activation
          | "pi" | "e"                                the constants
          | NUMBER                                    int or float literal (1, 0.5, 1e-3)

Names are case-sensitive (``Phi`` is the normal CDF, ``exp`` not ``Exp``). ``^`` is refused
with a hint to use ``**``. At most 500 characters and 50 levels of nesting.

Functions
---------
=========================  ===========================================================
``exp expm1 log log1p``     as in NumPy
``sqrt abs``                as in NumPy (``log(x)``, ``sqrt(x)`` fail the check in Notes)
``sin cos tan``             trigonometric
``sinh cosh tanh``          hyperbolic
``arctan`` (``atan``)       inverse tangent
``erf erfc``                error functions (:mod:`scipy.special`)
``sigmoid``                 logistic ``1 / (1 + e^-x)`` (:func:`scipy.special.expit`)
``softplus``                ``log(1 + e^x)``, computed as ``logaddexp(0, x)``
``relu``                    ``max(x, 0)``
``step`` (``heaviside``)    1 for x > 0 else 0; its derivative is taken as 0
``sign``                    -1, 0 or 1; derivative 0
``max(a, b)  min(a, b)``    elementwise
``gauss_cdf`` (``Phi``)     standard normal CDF ``erfc(-x / sqrt 2) / 2``
``gelu``                    ``x * Phi(x)`` (the exact GELU)
``silu`` (``swish``)        ``x * sigmoid(x)``
``clip(a, lo, hi)``         ``lo`` and ``hi`` must not depend on ``x``
=========================  ===========================================================

Kinks
-----
The integrators split their panels where ``phi`` or ``phi'`` is not smooth. For every call
of a non-smooth function (``abs relu step sign max min clip``) the relevant argument
(``a - b`` for ``max``/``min``; ``arg - lo`` and ``arg - hi`` for ``clip``) is probed at a few
points; if it is affine in ``x`` with a non-zero slope its root is a kink. A non-smooth call
whose argument is not affine (``relu(x**2 - 1)``) is accepted but contributes no kink, so
quadrature over it converges algebraically rather than exponentially: results are then less
accurate for the same settings (raise ``panels`` or rewrite the argument affinely).

Notes
-----
THEORY.md section 1: ``phi`` acts on pre-activations that are Gaussian over the whole real
line, so an expression must be finite, with a finite derivative, at every probe point
``x = -5, -4, ..., 5`` (``log(x)`` and ``sqrt(x)`` are refused, ``log1p(x**2)`` is fine).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import special

from mftheory.activations.base import Activation
from mftheory.errors import MFTheoryError

__all__ = ["EXPRESSION_FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "parse_activation"]

Array = NDArray[np.float64]

#: Longest expression accepted, in characters.
MAX_LENGTH = 500
#: Deepest nesting of the expression tree accepted.
MAX_DEPTH = 50

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
    :func:`_signature`): two parses of one formula are the same function, spacing aside.
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

# --- parsing ---------------------------------------------------------------------------------

_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}
_REFUSED_OPERATORS: dict[type[ast.operator], str] = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
}
_NODE_WORDS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.IfExp: "conditional expression",
    ast.BoolOp: "and/or",
    ast.Compare: "comparison",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Tuple: "tuple",
    ast.List: "list",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.Starred: "starred argument",
    ast.JoinedStr: "f-string",
    ast.NamedExpr: "assignment expression",
    ast.Slice: "slice",
    ast.Await: "await",
}
_HINT = "use numbers, x, pi, e, + - * / ** and calls of the allowed functions"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Builder:
    """Walks a Python AST, refusing anything off the whitelist, into our expression tree."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.quoted = repr(_shorten(source))

    def fail(self, message: str, hint: str = "") -> MFTheoryError:
        """The error for ``message`` (naming the offending part), the expression, a hint."""
        tail = f"; {hint}" if hint else ""
        return MFTheoryError(f"{message} in activation expression {self.quoted}{tail}")

    def snippet(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.source, node)
        return repr(_shorten(segment if segment is not None else ast.unparse(node), 40))

    def build(self, node: ast.AST, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise MFTheoryError(
                f"activation expression {self.quoted} is nested too deeply "
                f"(more than {MAX_DEPTH} levels)"
            )
        if isinstance(node, ast.Expression):
            return self.build(node.body, depth)
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return _Neg(self.build(node.operand, depth + 1))
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, depth + 1)
            raise self.fail(f"unary operator {self.snippet(node)} is not allowed", _HINT)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Compare):
            raise self.fail(
                f"comparison {self.snippet(node)} is not allowed",
                "use step(x) for (x > 0), max/min/clip for the rest",
            )
        word = _NODE_WORDS.get(type(node), type(node).__name__)
        raise self.fail(f"{word} {self.snippet(node)} is not allowed", _HINT)

    def binop(self, node: ast.BinOp, depth: int) -> Node:
        op = _OPERATORS.get(type(node.op))
        if op is None:
            if isinstance(node.op, ast.BitXor):
                raise self.fail(
                    f"'^' in {self.snippet(node)} (bitwise xor in Python, not a power)",
                    "use ** for powers, e.g. x**2",
                )
            symbol = _REFUSED_OPERATORS.get(type(node.op), type(node.op).__name__)
            raise self.fail(f"operator {symbol!r} is not allowed", "allowed: + - * / **")
        return _BinOp(op, self.build(node.left, depth + 1), self.build(node.right, depth + 1))

    def call(self, node: ast.Call, depth: int) -> Node:
        if not isinstance(node.func, ast.Name):
            raise self.fail(
                f"call of {self.snippet(node.func)} is not allowed",
                f"call one of {', '.join(EXPRESSION_FUNCTIONS)} by name",
            )
        name = node.func.id
        canonical = _ALIASES.get(name, name)
        spec = _FUNCTIONS.get(canonical)
        if spec is None:
            near = ""
            if name.lower() in EXPRESSION_FUNCTIONS:
                near = f"names are case-sensitive: did you mean {name.lower()!r}? "
            raise self.fail(
                f"unknown function {name!r}", f"{near}allowed: {', '.join(EXPRESSION_FUNCTIONS)}"
            )
        if node.keywords:
            raise self.fail(
                f"keyword argument in {self.snippet(node)}", "pass arguments by position"
            )
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail(f"starred argument {self.snippet(arg)} is not allowed", _HINT)
        if len(node.args) != spec.arity:
            plural = "s" if spec.arity != 1 else ""
            raise self.fail(
                f"wrong number of arguments in {self.snippet(node)}",
                f"{name}() takes {spec.arity} argument{plural}, got {len(node.args)}",
            )
        args = tuple(self.build(a, depth + 1) for a in node.args)
        if canonical == "clip":
            args = (args[0], *self.clip_bounds(node, args[1:]))
        return _Call(canonical, args)

    def clip_bounds(self, node: ast.Call, bounds: tuple[Node, ...]) -> tuple[Node, ...]:
        if any(_depends_on_x(b) for b in bounds):
            raise self.fail(f"clip bounds depending on x in {self.snippet(node)}", "use numbers")
        lo, hi = (_evaluate_constant(b) for b in bounds)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise self.fail(
                f"invalid clip bounds lo={lo!r}, hi={hi!r} in {self.snippet(node)}",
                "they must be finite with lo <= hi",
            )
        return _Const(lo), _Const(hi)

    def name(self, node: ast.Name) -> Node:
        if node.id == "x":
            return _X
        if node.id in _CONSTANTS:
            return _Const(_CONSTANTS[node.id])
        if node.id in EXPRESSION_FUNCTIONS:
            raise self.fail(f"uncalled function {node.id!r}", f"write e.g. {node.id}(x)")
        raise self.fail(f"unknown name {node.id!r}", "the variable is x; constants: pi, e")

    def constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float | complex):
            kind = {bool: "boolean", str: "string", bytes: "bytes"}.get(type(value), "constant")
            raise self.fail(f"{kind} {self.snippet(node)} is not allowed", "only numbers are")
        if isinstance(value, complex):
            raise self.fail(f"complex number {self.snippet(node)} is not allowed", "x is real")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.fail(f"number {self.snippet(node)} is too large", "numbers must be finite")
        return _Const(number)


def _normalise(text: str) -> tuple[str, str]:
    """Check the raw text; return (single-spaced text to parse, whitespace-free name)."""
    if not isinstance(text, str):
        raise MFTheoryError(f"activation expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise MFTheoryError(
            f"activation expression is too long ({len(text)} characters; at most {MAX_LENGTH})"
        )
    words = text.split()
    if not words:
        raise MFTheoryError(
            "activation expression is empty; give a formula in x, e.g. x*sigmoid(x)"
        )
    spaced = " ".join(words)
    for position, char in enumerate(spaced):
        if not " " <= char <= "~":
            raise MFTheoryError(
                f"character {char!r} (position {position}) is not allowed in activation "
                f"expression {_shorten(spaced)!r}; use plain ASCII"
            )
    if "#" in spaced:
        raise MFTheoryError(
            f"comments ('#') are not allowed in activation expression {_shorten(spaced)!r}"
        )
    return spaced, "".join(words)


# --- kinks and checks ------------------------------------------------------------------------

# Probe points of the affine test: -1, 0, 1, 2 and three more at irregular places, so that
# e.g. sin(pi*x), which vanishes at every integer, is not mistaken for a line.
_AFFINE_PROBES = np.array([-1.0, 0.0, 1.0, 2.0, -2.5, 0.318, 3.7])
_AFFINE_RTOL = 1e-12


def _affine_root(node: Node) -> float | None:
    """Root of ``node`` if it is affine in x with non-zero slope, else None."""
    if not _depends_on_x(node):
        return None
    with np.errstate(all="ignore"):
        v = np.broadcast_to(_evaluate(node, _AFFINE_PROBES, {}), _AFFINE_PROBES.shape)
    if not np.all(np.isfinite(v)):
        return None
    intercept, slope = float(v[1]), float(v[2] - v[1])
    scale = float(np.max(np.abs(v)))
    residual = v - (intercept + slope * _AFFINE_PROBES)
    if scale == 0.0 or abs(slope) <= _AFFINE_RTOL * scale:
        return None
    if float(np.max(np.abs(residual))) > _AFFINE_RTOL * scale:
        return None
    root = -intercept / slope
    with np.errstate(all="ignore"):
        # one Newton step removes the rounding of intercept/slope (e.g. x/3 - 1 -> 3 exactly)
        correction = float(_evaluate(node, np.asarray(root), {})) / slope
    if math.isfinite(correction) and abs(correction) <= 1e-8 * max(1.0, abs(root)):
        root -= correction
    return root + 0.0 if math.isfinite(root) else None  # + 0.0 turns -0.0 into 0.0


def _non_smooth_calls(node: Node) -> list[_Call]:
    found: list[_Call] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, _Call):
            if _FUNCTIONS[n.func].kink_arguments is not None:
                found.append(n)
            stack.extend(n.args)
        elif isinstance(n, _Neg):
            stack.append(n.arg)
        elif isinstance(n, _BinOp):
            stack.extend((n.left, n.right))
    return found


def _kinks(tree: Node) -> tuple[float, ...]:
    roots: list[float] = []
    for call in _non_smooth_calls(tree):
        kink_arguments = _FUNCTIONS[call.func].kink_arguments
        assert kink_arguments is not None
        for argument in kink_arguments(call):
            root = _affine_root(argument)
            if root is not None:
                roots.append(root)
    unique: list[float] = []
    for r in sorted(roots):
        if not unique or abs(r - unique[-1]) > 1e-12 * max(1.0, abs(r)):
            unique.append(r)
    return tuple(unique)


_FINITE_PROBES = np.linspace(-5.0, 5.0, 11)


def _check_finite(f: _TreeFunction, what: str, quoted: str) -> None:
    with np.errstate(all="ignore"):
        values = f(_FINITE_PROBES)
    bad = ~np.isfinite(values)
    if np.any(bad):
        x = float(_FINITE_PROBES[np.argmax(bad)])
        raise MFTheoryError(
            f"{what} {quoted} is {values[np.argmax(bad)]} at x = {x:g}; pre-activations are "
            "Gaussian over the whole real line, so it must be finite for every real x"
        )


# --- the entry point -------------------------------------------------------------------------


def parse_activation(text: str) -> Activation:
    """Build an :class:`~mftheory.activations.Activation` from a formula in ``x``.

    The text is parsed, never executed: :func:`ast.parse` reads it and every node is checked
    against a whitelist (see the module docstring for the grammar and the functions).

    Parameters
    ----------
    text : str
        The formula, e.g. ``"x*sigmoid(x)"``, ``"max(x, 0.1*x)"``, ``"tanh(2*x) + 0.1*x"``.
        At most 500 characters.

    Returns
    -------
    Activation
        ``name`` is the text with all whitespace removed; ``phi`` and ``dphi`` are vectorised
        (a new float64 array of the input's shape, also for an ``x``-free constant formula),
        with ``dphi`` from symbolic differentiation (at a kink it takes one of the one-sided
        values); ``kinks`` are the sorted roots of the affine arguments of non-smooth
        functions; ``closed_form`` is None and ``params`` empty.

    Raises
    ------
    MFTheoryError
        Empty or over-long text, a syntax error, anything off the whitelist (names other
        than ``x``, ``pi``, ``e``; unknown functions or a wrong number of arguments;
        attributes, indexing, strings, complex numbers, ``^``...), nesting deeper than 50, or
        a formula whose value or derivative is not finite at one of x = -5, -4, ..., 5.

    Notes
    -----
    THEORY.md section 1: ``phi`` is applied to Gaussian pre-activations, whence the
    finiteness check on the whole real line. Kinks are found only where the argument of a
    non-smooth function (``abs relu step sign max min clip``) is affine in ``x``; otherwise
    the activation is still returned but the quadrature is not split there and converges
    more slowly (accuracy may degrade at the default settings).

    Examples
    --------
    >>> act = parse_activation("max(x, 0.1 * x)")
    >>> act.name, act.kinks
    ('max(x,0.1*x)', (0.0,))
    >>> float(act.dphi(np.array(-2.0)))
    0.1
    """
    spaced, name = _normalise(text)
    builder = _Builder(spaced)
    try:
        parsed = ast.parse(spaced, mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise MFTheoryError(
            f"cannot parse activation expression {builder.quoted}: {exc.msg}{where}"
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise MFTheoryError(f"cannot parse activation expression {builder.quoted}: {exc}") from None
    tree = builder.build(parsed)
    phi = _TreeFunction(tree, name, _signature(tree))
    dtree = _derivative(tree)
    dphi = _TreeFunction(dtree, f"d/dx {name}", ("d/dx", _signature(dtree)))
    _check_finite(phi, "activation expression", builder.quoted)
    _check_finite(dphi, "the derivative of activation expression", builder.quoted)
    return Activation(name=name, phi=phi, dphi=dphi, kinks=_kinks(tree))
