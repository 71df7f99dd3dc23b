"""Invariants of the quadrature rules in :mod:`mftheory.gaussian.quadrature`.

Every reference here is independent of the rules under test: monomial integrals in closed form,
Gaussian moments ``E[z^k] = (k - 1)!!`` and their truncations to ``[-z_max, z_max]`` (the
regularised incomplete gamma function of scipy), the Gaussian mass ``erf(z_max / sqrt 2)``,
closed forms of ``E|z - a|`` and of the Hermite coefficients of ``exp(t z)``
(``E[exp(t z) He_k(z)] = t^k exp(t^2 / 2)``).

``normal_rule`` folds the Gaussian density into Gauss-Legendre weights, so ``w_i / phi(z_i)``
are plain Gauss-Legendre weights on each panel: exact for polynomials of degree ``2 n - 1``
(n nodes per panel) and not for degree ``2 n``. Tolerances are a few ulps of the size of the
sums involved.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf, factorial2, gammainc, ndtr

from mftheory.errors import MFTheoryError
from mftheory.gaussian.quadrature import (
    QuadratureSettings,
    hermite_functions,
    hermite_panels,
    normal_rule,
)

INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
DEFAULT = QuadratureSettings()


def density(z: np.ndarray) -> np.ndarray:
    """Standard normal density."""
    return np.exp(-0.5 * z * z) * INV_SQRT_2PI


def plain_weights(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The Gauss-Legendre weights: ``w`` with the Gaussian density taken back out."""
    return w / density(z)


def monomial_integral(k: int, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """``int_a^b z^k dz``."""
    return (np.asarray(b, dtype=float) ** (k + 1) - np.asarray(a, dtype=float) ** (k + 1)) / (k + 1)


def gaussian_moment(k: int) -> float:
    """``E[z^k]`` for ``z ~ N(0, 1)``: ``(k - 1)!!`` for even k, 0 for odd k."""
    return 0.0 if k % 2 else float(factorial2(k - 1)) if k else 1.0


def truncated_moment(k: int, z_max: float) -> float:
    """``int_{-z_max}^{z_max} z^k phi(z) dz = (k - 1)!! P((k + 1) / 2, z_max^2 / 2)``."""
    if k % 2:
        return 0.0
    return gaussian_moment(k) * float(gammainc((k + 1) / 2.0, z_max * z_max / 2.0))


def abs_moment(a: float, z_max: float) -> float:
    """``int_{-L}^{L} |z - a| phi(z) dz = 2 phi(a) - 2 phi(L) + a (2 Phi(a) - Phi(L) - Phi(-L))``
    (integrating ``z phi = -phi'`` on each side of ``a``)."""
    pa, pl = float(density(np.array(a))), float(density(np.array(z_max)))
    return 2.0 * pa - 2.0 * pl + a * (2.0 * ndtr(a) - ndtr(z_max) - ndtr(-z_max))


# --- polynomial exactness -----------------------------------------------------------------------


@pytest.mark.parametrize(("z_max", "panels", "nodes"), [(1.0, 1, 1), (3.0, 1, 5), (4.0, 6, 4)])
def test_each_panel_is_exact_up_to_degree_2n_minus_1(z_max, panels, nodes):
    st = QuadratureSettings(z_max=z_max, panels=panels, nodes_per_panel=nodes)
    z, w = normal_rule(None, st)
    assert z.shape == w.shape == (panels * nodes,)
    edges = np.linspace(-z_max, z_max, panels + 1)
    zp = z.reshape(panels, nodes)
    wp = plain_weights(z, w).reshape(panels, nodes)
    assert np.all((zp > edges[:-1, None]) & (zp < edges[1:, None]))  # nodes inside their panel
    for k in range(2 * nodes):
        want = monomial_integral(k, edges[:-1], edges[1:])
        scale = (np.abs(edges[:-1]) + np.abs(edges[1:])) ** (k + 1)
        assert np.all(np.abs(np.sum(wp * zp**k, axis=1) - want) <= 1e-14 * scale), k
    # ...and not for degree 2n (the degree is sharp): on one panel the error of Gauss-Legendre
    # for z^(2n) is (b - a)^(2n + 1) (n!)^4 / ((2n + 1) ((2n)!)^2) > 0.
    k = 2 * nodes
    got = np.sum(wp * zp**k, axis=1)
    width = 2.0 * z_max / panels
    gap = width ** (k + 1) * math.factorial(nodes) ** 4 / ((k + 1) * math.factorial(k) ** 2)
    err = monomial_integral(k, edges[:-1], edges[1:]) - got
    scale = (np.abs(edges[:-1]) + np.abs(edges[1:])) ** (k + 1)
    assert np.all(np.abs(err - gap) <= 1e-9 * gap + 1e-14 * scale)


@pytest.mark.parametrize("k", range(0, 24))
def test_default_rule_gives_gaussian_moments(k):
    """The default rule against the truncated moments (to rounding), and against the full ones
    up to k = 12, where the neglected tail ``int_10^inf z^k phi`` is below rounding."""
    z, w = normal_rule()
    got = float(np.sum(w * z**k))
    scale = max(1.0, gaussian_moment(k + (k % 2)))
    assert abs(got - truncated_moment(k, DEFAULT.z_max)) <= 1e-14 * scale
    if k <= 12:
        assert abs(got - gaussian_moment(k)) <= 1e-14 * scale


@pytest.mark.parametrize(
    ("z_max", "panels", "nodes"), [(10.0, 40, 12), (2.0, 4, 8), (0.5, 1, 10), (6.0, 3, 20)]
)
def test_weights_sum_to_the_mass_inside_the_cutoff(z_max, panels, nodes):
    z, w = normal_rule(None, QuadratureSettings(z_max=z_max, panels=panels, nodes_per_panel=nodes))
    assert np.all(w > 0) and np.all(np.abs(z) < z_max)
    assert abs(float(np.sum(w)) - float(erf(z_max / math.sqrt(2.0)))) <= 2e-15
    assert abs(float(np.sum(w * z))) <= 1e-16  # symmetric rule
    assert abs(float(np.sum(w * z * z)) - truncated_moment(2, z_max)) <= 2e-15


def test_plain_rule_is_shared_and_read_only():
    z1, w1 = normal_rule()
    z2, w2 = normal_rule(np.empty(0))
    assert z1 is z2 and w1 is w2
    with pytest.raises(ValueError):
        w1[0] = 1.0


# --- break points (kinks) ---------------------------------------------------------------------


@pytest.mark.parametrize("a", [0.3, -1.7, 2.0 / 3.0])
def test_break_makes_piecewise_polynomials_exact(a):
    """With an edge at the kink ``a``, ``|z - a|^3 + (z - a)_+`` is a polynomial on each panel,
    so the plain weights integrate it exactly; without the edge they do not."""
    st = QuadratureSettings(z_max=3.0, panels=2, nodes_per_panel=4)

    def f(z: np.ndarray) -> np.ndarray:
        return np.abs(z - a) ** 3 + np.maximum(z - a, 0.0)

    L = st.z_max
    want = ((L - a) ** 4 + (L + a) ** 4) / 4.0 + (L - a) ** 2 / 2.0
    z, w = normal_rule(np.array([a]), st)
    assert z.shape == ((st.panels + 1) * st.nodes_per_panel,)
    assert abs(float(np.sum(plain_weights(z, w) * f(z))) - want) <= 1e-13 * want
    z0, w0 = normal_rule(None, st)
    assert abs(float(np.sum(plain_weights(z0, w0) * f(z0))) - want) > 1e-6 * want


@pytest.mark.parametrize("a", [0.0, 0.3, -1.234, 4.3])
def test_break_at_kink_integrates_abs_against_the_gaussian(a):
    """``E|z - a|`` on the default range: to rounding with the break, far worse without."""
    want = abs_moment(a, DEFAULT.z_max)
    z, w = normal_rule(np.array([a]))
    assert abs(float(np.sum(w * np.abs(z - a))) - want) <= 1e-14
    if a != 0.0:  # 0 is already a panel edge of the default rule
        z0, w0 = normal_rule()
        assert abs(float(np.sum(w0 * np.abs(z0 - a))) - want) > 1e-9


def test_batched_breaks_give_one_rule_per_row():
    a = np.array([[0.3, -2.0], [1.1, 1.1], [0.0, 5.0]])
    z, w = normal_rule(a)
    n = (DEFAULT.panels + 2) * DEFAULT.nodes_per_panel
    assert z.shape == w.shape == (3, n)
    for row in range(3):
        zr, wr = normal_rule(a[row])
        np.testing.assert_array_equal(z[row], zr)
        np.testing.assert_array_equal(w[row], wr)
        want = sum(abs_moment(x, DEFAULT.z_max) for x in a[row])
        got = float(np.sum(w[row] * sum(np.abs(z[row] - x) for x in a[row])))
        assert abs(got - want) <= 2e-14


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 50.0, -1e300])
def test_breaks_outside_the_range_add_empty_panels(bad):
    """Out-of-range and non-finite breaks are clipped to the ends: zero-width panels whose
    weights are exactly 0, leaving the rule's sums unchanged."""
    z, w = normal_rule(np.array([0.3, bad]))
    zr, wr = normal_rule(np.array([0.3]))
    m = DEFAULT.nodes_per_panel
    assert z.shape == (zr.size + m,)
    assert np.count_nonzero(w == 0.0) == m
    keep = w != 0.0
    np.testing.assert_array_equal(np.sort(z[keep]), np.sort(zr))
    assert abs(float(np.sum(w)) - float(np.sum(wr))) <= 1e-16


# --- the Hermite rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(("terms", "panels"), [(0, 52), (1, 52), (160, 52), (161, 104), (400, 104)])
def test_hermite_panel_counts_and_shapes(terms, panels):
    assert hermite_panels(terms) == panels
    z, w, H = hermite_functions(terms)
    assert z.shape == w.shape == (16 * panels,)
    assert H.shape == (terms + 1, 16 * panels)
    # plain Gauss-Legendre on [-13, 13]: the weights sum to the length, z^2 is exact
    assert abs(float(np.sum(w)) - 26.0) <= 1e-13
    assert abs(float(np.sum(w * z * z)) - 2.0 * 13.0**3 / 3.0) <= 1e-11
    assert not (z.flags.writeable or w.flags.writeable or H.flags.writeable)


@pytest.mark.parametrize("terms", [40, 400])
def test_hermite_coefficients_of_hermite_polynomials(terms):
    """``E[He_j He_k] / sqrt(j! k!) = delta_jk`` for the low degrees j whose products with
    ``exp(-z^2 / 4)`` are negligible at the cut-off 13 (the rule is built for integrands
    below ``exp(-z^2 / 4)``, see its Notes)."""
    z, w, H = hermite_functions(terms)
    he = [np.ones_like(z), z]
    for j in range(1, 4):
        he.append(z * he[j] - j * he[j - 1])
    for j, poly in enumerate(he):
        a = H @ (w * poly / math.sqrt(math.factorial(j)))
        np.testing.assert_allclose(a, np.eye(terms + 1)[j], rtol=0, atol=1e-13)


@pytest.mark.parametrize("terms", [160, 400])
def test_hermite_coefficients_of_the_sign_function(terms):
    """A kink at 0, which is a panel edge: ``E[sign(z) He_k] = 2 phi(0) He_(k-1)(0)``, so
    ``a_k = 0`` for even k and ``2 phi(0) (-1)^m (2m - 1)!! / sqrt((2m + 1)!)`` for k = 2m + 1."""
    z, w, H = hermite_functions(terms)
    got = H @ (w * np.sign(z))
    want = np.zeros(terms + 1)
    for k in range(1, terms + 1, 2):
        m = (k - 1) // 2
        log_df = math.lgamma(2 * m + 1) - m * math.log(2.0) - math.lgamma(m + 1)  # (2m-1)!!
        want[k] = (-1) ** m * 2.0 * INV_SQRT_2PI * math.exp(log_df - 0.5 * math.lgamma(k + 1))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("t", [0.5, -0.7])
def test_hermite_coefficients_of_an_exponential(t):
    """``a_k = E[exp(t z) He_k(z)] / sqrt(k!) = t^k exp(t^2 / 2) / sqrt(k!)``; |t| small
    enough that ``exp(|t| 13 - 13^2 / 4)`` (the neglected tail) is below rounding."""
    terms = 60
    z, w, H = hermite_functions(terms)
    got = H @ (w * np.exp(t * z))
    k = np.arange(terms + 1)
    log_want = k * math.log(abs(t)) + t * t / 2.0 - 0.5 * np.array([math.lgamma(j + 1) for j in k])
    want = np.sign(t) ** k * np.exp(log_want)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14 * math.exp(t * t / 2.0))
    # Parseval: sum_k a_k^2 = E[exp(2 t z)] = exp(2 t^2)
    assert abs(float(np.sum(got**2)) - math.exp(2.0 * t * t)) <= 1e-13 * math.exp(2.0 * t * t)


# --- settings -----------------------------------------------------------------------------------


def test_default_settings():
    assert DEFAULT.as_dict() == {
        "z_max": 10.0,
        "panels": 40,
        "nodes_per_panel": 12,
        "hermite_terms": 400,
        "tol": 1e-12,
    }
    assert QuadratureSettings(**DEFAULT.as_dict()) == DEFAULT
    with pytest.raises(AttributeError):
        DEFAULT.panels = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"z_max": 0.0},
        {"z_max": -1.0},
        {"z_max": math.nan},
        {"z_max": math.inf},
        {"z_max": "10"},
        {"z_max": None},
        {"z_max": True},
        {"panels": 0},
        {"panels": -3},
        {"panels": 2.0},
        {"panels": True},
        {"panels": "40"},
        {"nodes_per_panel": 0},
        {"nodes_per_panel": 1.5},
        {"nodes_per_panel": False},
        {"hermite_terms": 0},
        {"hermite_terms": -1},
        {"hermite_terms": None},
        {"tol": 0.0},
        {"tol": -1e-12},
        {"tol": math.nan},
        {"tol": math.inf},
        {"tol": "1e-12"},
    ],
    ids=lambda kw: "-".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_bad_settings_are_refused(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(MFTheoryError, match=name):
        QuadratureSettings(**kwargs)


def test_numpy_floats_are_accepted():
    st = QuadratureSettings(z_max=np.float64(4.0), tol=np.float32(1e-6))
    assert st.z_max == 4.0


@pytest.mark.parametrize("terms", [-1, -2, 1.5, True, None, "3"])
def test_bad_hermite_terms_are_refused(terms):
    hermite_functions(1)  # cached: True == 1 must still be refused
    for fun in (hermite_panels, hermite_functions):
        with pytest.raises(MFTheoryError, match="Hermite terms"):
            fun(terms)
