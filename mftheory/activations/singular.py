"""Singular points and jumps of an expression activation, found from its expression tree.

``find_singularity`` looks at every sub-expression that can make ``phi`` (or ``phi'``)
infinite or undefined at a real ``x``: a denominator that vanishes, ``tan`` of an argument
whose cosine vanishes, ``log`` of an argument that reaches zero or below, ``sqrt`` or a
fractional power of an argument that goes negative, a negative power of an argument that
vanishes, a power with an ``x``-dependent exponent of a base that is not positive. Each such
argument ``g`` is sampled on ``SEARCH_GRID`` (every 2^-10 on ``|x| <= 64``, then 4000
geometrically spaced points out to ``|x| = 1e8``); sign changes are refined by bisection, and
local minima of ``|g|`` (or of ``g``, for a domain ``g >= 0``) by golden-section search, so
that double roots (``1/(x-0.5)**2``) and narrow dips between samples are found too.
Singular points beyond ``|x| = 1e8`` are not looked for.

``find_jumps`` finds the discontinuities of ``phi`` (from ``step`` and ``sign``, and from
non-smooth calls inside a denominator): the roots of their arguments where the left and
right limits of ``phi`` differ.

Notes
-----
docs/theory.md section 1: pre-activations are Gaussian over the whole real line, so a point
where ``phi`` is infinite or undefined anywhere on it makes ``E[phi(h)^2]`` (or
``E[phi'(h)^2]``) infinite or undefined for every variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.expression_tree import (
    Node,
    _BinOp,
    _Call,
    _Const,
    _depends_on_x,
    _evaluate,
    _evaluate_constant,
    _Neg,
)

__all__ = ["SEARCH_LIMIT", "Singularity", "find_jumps", "find_singularity"]

Array = NDArray[np.float64]

#: Largest |x| searched for singular points.
SEARCH_LIMIT = 1e8
_STEP = 2.0**-10
_LINEAR = np.arange(-65536, 65537, dtype=np.float64) * _STEP  # [-64, 64]
_FAR = np.geomspace(64.0 + _STEP, SEARCH_LIMIT, 4000)
#: The sample points, sorted.
SEARCH_GRID = np.concatenate([-_FAR[::-1], _LINEAR, _FAR])
_ZERO_RTOL = 1e-9  # |g(x*)| below this times |g| one sample away: g vanishes at x*


@dataclass(frozen=True)
class Singularity:
    """A point where a sub-expression makes ``phi`` infinite or undefined.

    Attributes
    ----------
    x : float
        The point (the one nearest 0 among those found).
    kind : str
        ``"zero"`` (a denominator or the like vanishes there: infinite) or ``"domain"``
        (an argument leaves its domain there: undefined, NaN).
    what : str
        What happens, in words (``"division by zero"``, ``"log of a negative number"``...).
    """

    x: float
    kind: str
    what: str


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, _Neg):
        return (node.arg,)
    if isinstance(node, _BinOp):
        return (node.left, node.right)
    if isinstance(node, _Call):
        return node.args
    return ()


def _walk(node: Node) -> list[Node]:
    out: list[Node] = []
    stack = [node]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        stack.extend(_children(n))
    return out


def _hazards(node: Node) -> list[tuple[Node, str, str]]:
    """(argument, condition, words) for each way ``node`` can be infinite or undefined.

    Conditions: ``"zero"`` (bad where the argument is 0), ``"negative"`` (bad where < 0),
    ``"nonpositive"`` (bad where <= 0).
    """
    if isinstance(node, _BinOp) and node.op == "/" and _depends_on_x(node.right):
        return [(node.right, "zero", "division by zero")]
    if isinstance(node, _BinOp) and node.op == "**" and _depends_on_x(node.left):
        base = node.left
        if _depends_on_x(node.right):
            return [(base, "nonpositive", "a power with a variable exponent of a base <= 0")]
        c = _evaluate_constant(node.right)
        out: list[tuple[Node, str, str]] = []
        if c < 0:
            out.append((base, "zero", "a negative power of zero"))
        if math.isfinite(c) and c != math.floor(c):
            out.append((base, "negative", "a fractional power of a negative number"))
        return out
    if isinstance(node, _Call) and _depends_on_x(node.args[0]):
        u = node.args[0]
        if node.func == "log":
            return [(u, "nonpositive", "log of a number <= 0")]
        if node.func == "log1p":
            return [(_BinOp("+", u, _Const(1.0)), "nonpositive", "log1p of a number <= -1")]
        if node.func == "sqrt":
            return [(u, "negative", "sqrt of a negative number")]
        if node.func == "tan":
            return [(_Call("cos", (u,)), "zero", "tan at an odd multiple of pi/2")]
    return []


def _eval(node: Node, x: Array) -> Array:
    with np.errstate(all="ignore"):
        return np.array(np.broadcast_to(_evaluate(node, x, {}), x.shape), dtype=np.float64)


def _bisect(g: Node, a: Array, b: Array, ga: Array) -> tuple[Array, Array]:
    """Shrink sign-change brackets [a, b] to adjacent doubles."""
    for _ in range(80):
        m = 0.5 * (a + b)
        gm = _eval(g, m)
        left = np.sign(gm) == np.sign(ga)
        a = np.where(left, m, a)
        ga = np.where(left, gm, ga)
        b = np.where(left, b, m)
    return a, b


def _golden(g: Node, a: Array, b: Array, absolute: bool) -> Array:
    """Minimisers of ``|g|`` (or ``g``) on brackets [a, b], vectorised golden section."""
    r = (math.sqrt(5.0) - 1.0) / 2.0

    def f(x: Array) -> Array:
        v = _eval(g, x)
        v = np.abs(v) if absolute else v
        return np.where(np.isnan(v), -np.inf, v)

    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(90):
        left = fc < fd
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        d_new = np.where(left, c, a + r * (b - a))
        c_new = np.where(left, b - r * (b - a), d)
        fd_new = np.where(left, fc, np.nan)
        fc_new = np.where(left, np.nan, fd)
        c, d = c_new, d_new
        need_c, need_d = np.isnan(fc_new), np.isnan(fd_new)
        fc = np.where(need_c, f(c), fc_new)
        fd = np.where(need_d, f(d), fd_new)
    return 0.5 * (a + b)


def _underflow(v: Array) -> NDArray[np.bool_]:
    """Zeros of ``g`` in a run reaching an end of the grid after values below 1e-250:
    ``g`` underflowing (``sigmoid(x)`` far left), not vanishing."""
    out = np.zeros(v.shape, dtype=bool)
    for sl in (slice(None), slice(None, None, -1)):
        w = v[sl]
        nz = np.flatnonzero(w != 0)
        if nz.size == 0:
            continue
        first = int(nz[0])
        if first > 0 and abs(float(w[first])) < 1e-250:
            out[sl][:first] = True
    return out


def _zero_factors(g: Node) -> list[Node]:
    """Sub-expressions whose zeros are exactly those of ``g`` (powers, products, abs and sqrt
    taken apart), so that ``(x**2 + 1e-12)**2`` is judged by ``x**2 + 1e-12``, not by a value
    squared down to 1e-24."""
    if isinstance(g, _Neg):
        return _zero_factors(g.arg)
    if isinstance(g, _BinOp) and g.op == "**" and not _depends_on_x(g.right):
        c = _evaluate_constant(g.right)
        return _zero_factors(g.left) if c > 0 else [g]
    if isinstance(g, _BinOp) and g.op == "*":
        parts = [p for p in (g.left, g.right) if _depends_on_x(p)]
        return [f for p in parts for f in _zero_factors(p)]
    if isinstance(g, _Call) and g.func in ("abs", "sqrt"):
        return _zero_factors(g.args[0])
    return [g]


def _zeros(g: Node) -> Array:
    """Points of the search grid (refined) where ``g`` vanishes (a continuous zero)."""
    x = SEARCH_GRID
    v = _eval(g, x)
    ok = np.isfinite(v)
    found = [x[(v == 0) & ~_underflow(v)]]
    # sign changes between neighbouring samples: a root if g is continuous there
    i = np.flatnonzero(ok[:-1] & ok[1:] & (np.sign(v[:-1]) * np.sign(v[1:]) < 0))
    if i.size:
        lo, hi = _bisect(g, x[i], x[i + 1], v[i])
        glo, ghi = np.abs(_eval(g, lo)), np.abs(_eval(g, hi))
        scale = np.maximum(np.abs(v[i]), np.abs(v[i + 1]))
        cont = np.maximum(glo, ghi) <= 1e-6 * scale
        found.append(np.where(glo <= ghi, lo, hi)[cont])
    found.append(_dips(g, x, v, absolute=True))
    return np.concatenate(found)


def _dips(g: Node, x: Array, v: Array, absolute: bool) -> Array:
    """Refined local minima of ``|g|`` (absolute) or ``g`` between samples that reach zero
    (or, for ``g`` itself, below it)."""
    a = np.abs(v) if absolute else v
    ok = np.isfinite(a)
    inner = ok[:-2] & ok[1:-1] & ok[2:] & (a[1:-1] <= a[:-2]) & (a[1:-1] <= a[2:])
    inner &= a[1:-1] > 0
    i = np.flatnonzero(inner) + 1
    if i.size == 0:
        return np.empty(0)
    # keep the minima well below a neighbour, or whose parabola comes near or below zero
    h0, h1 = x[i] - x[i - 1], x[i + 1] - x[i]
    curv = (a[i + 1] - a[i]) / h1 + (a[i - 1] - a[i]) / h0
    depth = a[i] - 0.25 * np.minimum(h0, h1) * curv
    top = np.maximum(a[i - 1], a[i + 1])
    near = (depth <= 0.05 * top) | (a[i] <= 0.5 * top)
    i = i[near][np.argsort(np.abs(x[i[near]]))][:2000]
    if i.size == 0:
        return np.empty(0)
    xm = _golden(g, x[i - 1], x[i + 1], absolute)
    gm = _eval(g, xm)
    scale = np.maximum(np.abs(v[i - 1]), np.abs(v[i + 1]))
    bad = (np.abs(gm) <= _ZERO_RTOL * scale) if absolute else (gm < 0)
    return np.asarray(xm[bad | np.isnan(gm)])


def _bad_points(g: Node, condition: str) -> Array:
    """Points (grid samples, refined) where ``g`` meets ``condition``."""
    found: list[Array] = []
    if condition != "zero":
        v = _eval(g, SEARCH_GRID)
        found.append(SEARCH_GRID[v < 0])
        found.append(_dips(g, SEARCH_GRID, v, absolute=False))
    if condition != "negative":
        found.extend(_zeros(f) for f in _zero_factors(g))
    return np.concatenate(found)


def find_singularity(tree: Node) -> Singularity | None:
    """The singular point of ``tree`` nearest 0 within ``|x| <= SEARCH_LIMIT``, or None."""
    best: Singularity | None = None
    for node in _walk(tree):
        for g, condition, what in _hazards(node):
            pts = _bad_points(g, condition)
            if pts.size == 0:
                continue
            x0 = float(pts[np.argmin(np.abs(pts))])
            if best is None or abs(x0) < abs(best.x):
                kind = "domain" if condition == "negative" else "zero"
                best = Singularity(_tidy(x0), kind, what)
    return best


def _tidy(x: float) -> float:
    """``x`` rounded to 12 significant digits when that is where it is (0.5, not 0.49999...)."""
    if x == 0.0:
        return 0.0
    rounded = float(f"{x:.12g}")
    return rounded + 0.0


def singular_order(f_abs: Array, x0: float) -> float:
    """Growth order p of ``|phi| ~ |x - x0|^-p`` from values at distances 1e-4 and 1e-8."""
    near, far = float(f_abs[1]), float(f_abs[0])
    if not (math.isfinite(near) and math.isfinite(far)) or near <= 0 or far <= 0:
        return math.inf
    return math.log(near / far) / math.log(1e4)


# --- jumps -----------------------------------------------------------------------------------

_JUMPERS = ("step", "sign")


def _jump_candidates(tree: Node) -> Array:
    """Roots of the arguments of ``step``/``sign`` calls, and of any non-smooth call's
    argument (a jump of a denominator's argument makes a jump of phi)."""
    pts: list[Array] = []
    for node in _walk(tree):
        if isinstance(node, _Call) and node.func in _JUMPERS and _depends_on_x(node.args[0]):
            g = node.args[0]
            x = SEARCH_GRID
            v = _eval(g, x)
            ok = np.isfinite(v)
            pts.append(x[ok & (v == 0)])
            i = np.flatnonzero(ok[:-1] & ok[1:] & (np.sign(v[:-1]) * np.sign(v[1:]) < 0))
            if i.size:
                lo, hi = _bisect(g, x[i], x[i + 1], v[i])
                pts.append(0.5 * (lo + hi))
    return np.unique(np.concatenate(pts)) if pts else np.empty(0)


def find_jumps(tree: Node) -> tuple[tuple[float, float], ...]:
    """Discontinuities of ``tree`` as ``(x0, phi(x0+) - phi(x0-))``, sorted by ``x0``.

    Candidates are the roots of ``step``/``sign`` arguments; one is a jump when the one-sided
    values at distances 1e-7 and 1e-10 (relative) agree with each other and differ across
    ``x0`` by more than 1e-6 of their size (a kink like ``x * step(x)`` is not a jump).
    """
    out: list[tuple[float, float]] = []
    for x0 in _jump_candidates(tree):
        x0 = _tidy(float(x0))
        d = np.array([1e-7, 1e-10]) * max(1.0, abs(x0))
        right, left = _eval(tree, x0 + d), _eval(tree, x0 - d)
        if not (np.all(np.isfinite(right)) and np.all(np.isfinite(left))):
            continue
        # the jump, extrapolated to distance 0 (removes the slope of a term like x + sign(x))
        gap = right - left
        size = _tidy(float((gap[1] * d[0] - gap[0] * d[1]) / (d[0] - d[1])))
        scale = max(1.0, float(np.max(np.abs(np.concatenate([right, left])))))
        if abs(size) <= 1e-6 * scale:
            continue
        if abs(float(gap[0]) - size) > 1e-3 * abs(size):
            continue
        out.append((x0, size))
    return tuple(out)
