"""Activations written by the user as formulas in ``x``, parsed safely (never evaluated as Python).

``mftheory critical --act "x*sigmoid(x)"`` hands the text to ``parse_activation``, which
reads it with ``ast.parse`` used purely as a parser, checks every node against a strict
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
``erf erfc``                error functions (``scipy.special``)
``sigmoid``                 logistic ``1 / (1 + e^-x)`` (``scipy.special.expit``)
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
docs/theory.md section 1: ``phi`` acts on pre-activations that are Gaussian over the whole real
line, so an expression must be finite, with a finite derivative, at every probe point
``x = -5, -4, ..., 5`` (``log(x)`` and ``sqrt(x)`` are refused, ``log1p(x**2)`` is fine).
"""

from __future__ import annotations

import ast
import math

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.base import Activation
from mftheory.activations.expression_tree import (
    _ALIASES,
    _CONSTANTS,
    _FUNCTIONS,
    _X,
    EXPRESSION_FUNCTIONS,
    Node,
    _BinOp,
    _Call,
    _Const,
    _depends_on_x,
    _derivative,
    _evaluate,
    _evaluate_constant,
    _Neg,
    _signature,
    _TreeFunction,
)
from mftheory.activations.singular import (
    Singularity,
    find_jumps,
    find_singularity,
    singular_order,
)
from mftheory.errors import MFTheoryError

__all__ = ["EXPRESSION_FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "parse_activation"]

Array = NDArray[np.float64]

#: Longest expression accepted, in characters.
MAX_LENGTH = 500
#: Deepest nesting of the expression tree accepted.
MAX_DEPTH = 50

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


def _order(f: _TreeFunction, x0: float) -> float:
    """Growth order p of ``|f| ~ |x - x0|^-p`` (the larger of the two sides)."""
    scale = max(1.0, abs(x0))
    orders = []
    for side in (1.0, -1.0):
        d = side * scale * np.array([1e-4, 1e-8])
        with np.errstate(all="ignore"):
            orders.append(singular_order(np.abs(f(x0 + d)), x0))
    return max(orders)


def _check_singular(phi: _TreeFunction, dphi: _TreeFunction, quoted: str) -> None:
    """Refuse an expression with a singular point anywhere on ``|x| <= SEARCH_LIMIT``.

    ``phi`` infinite with ``|phi| ~ |x - x0|^-p``, p >= 1/2: ``E[phi(h)^2]`` does not exist.
    Weaker singularities (``log(abs(x - 1.5))``), and points where only ``phi'`` is infinite,
    leave ``E[phi'(h)^2]`` infinite or its integrand singular: refused too (the quadrature
    rules assume a bounded integrand, so a number would be silently inaccurate).
    """
    sing: Singularity | None = find_singularity(phi.tree)
    if sing is not None:
        where = f"x = {sing.x:.12g} ({sing.what})"
        if sing.kind == "domain":
            raise MFTheoryError(
                f"activation expression {quoted} is undefined (NaN) near {where}; "
                "pre-activations are Gaussian over the whole real line, so it must be "
                "defined for every real x"
            )
        if _order(phi, sing.x) >= 0.5 - 1e-3:
            raise MFTheoryError(
                f"activation expression {quoted}: phi is infinite at {where}, so "
                "E[phi(h)^2] does not exist for any Gaussian h"
            )
        raise MFTheoryError(
            f"activation expression {quoted}: phi is infinite at {where}; E[phi(h)^2] is "
            "finite but E[phi'(h)^2] (chi_1) is not, and singular activations are not supported"
        )
    dsing = find_singularity(dphi.tree)
    if dsing is not None:
        where = f"x = {dsing.x:.12g} ({dsing.what} in phi')"
        if _order(dphi, dsing.x) >= 0.5 - 1e-3:
            raise MFTheoryError(
                f"activation expression {quoted}: phi' is infinite at {where}, so "
                "E[phi'(h)^2] (chi_1) does not exist for any Gaussian h"
            )
        raise MFTheoryError(
            f"activation expression {quoted}: phi' is infinite at {where}; the quadrature "
            "cannot integrate it accurately, so singular activations are not supported"
        )


# --- the entry point -------------------------------------------------------------------------


def parse_activation(text: str) -> Activation:
    """Build an ``Activation`` from a formula in ``x``.

    The text is parsed, never executed: ``ast.parse`` reads it and every node is checked
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
    docs/theory.md section 1: ``phi`` is applied to Gaussian pre-activations, whence the
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
    phi, dphi, quoted = _functions(text)
    _check_finite(phi, "activation expression", quoted)
    _check_finite(dphi, "the derivative of activation expression", quoted)
    _check_singular(phi, dphi, quoted)
    jumps = find_jumps(phi.tree)
    kinks = tuple(sorted({*_kinks(phi.tree), *(x0 for x0, _ in jumps)}))
    return Activation(name=phi.text, phi=phi, dphi=dphi, kinks=kinks, jumps=jumps)


def _functions(text: str) -> tuple[_TreeFunction, _TreeFunction, str]:
    """``phi`` and ``phi'`` of the formula (parsed and whitelisted, not yet checked for
    finiteness or singular points) and the quoted text for messages."""
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
    return phi, dphi, builder.quoted
