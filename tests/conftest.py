"""Shared test configuration: the hypothesis profile and the closed forms of
docs/theory.md section 3.

The closed forms here are written out independently of both the fast core and
:mod:`mftheory.reference`, so that each of those can be checked against them.
"""

# ruff: noqa: E402  (the BLAS thread count must be set before numpy is imported)
from __future__ import annotations

import os

# One BLAS thread, set before numpy is first imported (pytest does not import it before this
# file). The tests' matrices are small, and on a loaded 2-core machine threaded OpenBLAS (QR,
# SVD of 300 x 300) was measured 5-10x slower than one thread. A value already in the
# environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import math
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import settings
from scipy.optimize import brentq

# Reproducible property tests: the same examples on every run and every machine, no deadline
# (the first call of a solver may compile caches). HYPOTHESIS_PROFILE=dev explores randomly.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40)
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-slow``: also run the tests marked ``slow`` (CI does; see docs/development.md)."""
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (deselected by default; CI runs them)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the ``slow`` tests unless ``--run-slow`` is given or ``-m`` picks tests itself
    (``-m slow`` runs only them); pytest's summary line counts them as deselected."""
    if config.getoption("--run-slow") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


def pytest_report_header(config: pytest.Config) -> str:
    """Say whether the slow tests run."""
    if config.getoption("--run-slow"):
        return "slow tests: included (--run-slow)"
    if config.getoption("markexpr"):
        return f"slow tests: as selected by -m {config.getoption('markexpr')!r}"
    return "slow tests: deselected (add --run-slow to run them too, or -m slow for only them)"


def pytest_configure(config: pytest.Config) -> None:
    """In CI (``MFTHEORY_REQUIRE_TORCH=1``) the torch and validation tests must run: a missing
    torch, scikit-learn, mnist1d or dask.distributed is an error there, not a reason to skip."""
    if os.environ.get("MFTHEORY_REQUIRE_TORCH") == "1":
        import importlib

        for module, extra in (
            ("torch", "torch"),
            ("sklearn", "validate"),
            ("mnist1d", "validate"),
            ("distributed", "cluster"),
        ):
            try:
                importlib.import_module(module)
            except ImportError:
                raise pytest.UsageError(
                    f"MFTHEORY_REQUIRE_TORCH=1 but {module} is not installed: install the"
                    f" [{extra}] extra"
                ) from None


def slow_except(values: list[Any], fast: list[Any], *, multi: bool = False) -> list[Any]:
    """Parametrisation values with every one not in ``fast`` marked ``slow``: the default run
    keeps ``fast``, ``--run-slow`` (CI) all of them. ``multi``: each value is a tuple of
    several argnames. Test ids stay as pytest derives them from the values."""
    out: list[Any] = []
    for value in values:
        if value in fast:
            out.append(value)
        else:
            out.append(pytest.param(*(value if multi else (value,)), marks=pytest.mark.slow))
    return out


#: Families with closed forms: (activation name, keyword arguments of get_activation).
CLOSED_FORM_FAMILIES: list[tuple[str, dict[str, float]]] = [
    ("erf", {}),
    ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.01}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("linear", {}),
    ("sin", {}),
]


def family_id(family: tuple[str, dict[str, float]]) -> str:
    """Readable pytest id for an entry of CLOSED_FORM_FAMILIES."""
    name, kw = family
    return name + "".join(f"-{v:g}" for v in kw.values())


# --- closed forms (docs/theory.md section 3) ---------------------------------------------


def _slope(name: str, kw: dict[str, float]) -> float:
    """Leak ``a`` of a positively homogeneous family (relu: 0, linear: 1)."""
    if name == "relu":
        return 0.0
    if name == "linear":
        return 1.0
    if name == "leaky_relu":
        return float(kw.get("negative_slope", 0.01))
    raise ValueError(name)


def _k_relu(q1: float, q2: float, rho: float) -> float:
    """``E[relu(u1) relu(u2)]``."""
    rho = min(1.0, max(-1.0, rho))
    return (
        math.sqrt(q1 * q2)
        * (math.sqrt(max(0.0, 1.0 - rho * rho)) + (math.pi - math.acos(rho)) * rho)
        / (2.0 * math.pi)
    )


def _s_relu(rho: float) -> float:
    """``E[step(u1) step(u2)]``."""
    rho = min(1.0, max(-1.0, rho))
    return (math.pi - math.acos(rho)) / (2.0 * math.pi)


def cf_pair(
    name: str, kw: dict[str, float], q1: float, q2: float, rho: float, derivative: bool = False
) -> float:
    """``E[phi(u1) phi(u2)]`` (or with ``phi'``) in closed form.

    Leaky ReLU ``l(x) = relu(x) - a relu(-x)``, ``l'(x) = step(x) + a step(-x)``, and
    ``(-u1, -u2)`` has correlation ``rho`` while ``(u1, -u2)`` has ``-rho``, so
    ``E[l l] = (1 + a^2) K(rho) - 2 a K(-rho)`` and ``E[l' l'] = (1 + a^2) S(rho) + 2 a S(-rho)``.
    ReLU (a = 0) and linear (a = 1: ``rho sqrt(q1 q2)`` and 1) are special cases.
    """
    if name == "sin":
        # E[cos(u1 -+ u2)] = exp(-(q1 + q2 -+ 2 rho sqrt(q1 q2)) / 2), and
        # sin a sin b = (cos(a - b) - cos(a + b)) / 2, cos a cos b = (cos(a - b) + cos(a + b)) / 2
        m = math.exp(-(q1 + q2 - 2.0 * rho * math.sqrt(q1 * q2)) / 2.0)
        p = math.exp(-(q1 + q2 + 2.0 * rho * math.sqrt(q1 * q2)) / 2.0)
        return (m + p) / 2.0 if derivative else (m - p) / 2.0
    if name == "erf":
        s1, s2 = 1.0 + 2.0 * q1, 1.0 + 2.0 * q2
        if derivative:
            return (4.0 / math.pi) / math.sqrt(s1 * s2 - 4.0 * rho * rho * q1 * q2)
        return (2.0 / math.pi) * math.asin(2.0 * rho * math.sqrt(q1 * q2) / math.sqrt(s1 * s2))
    a = _slope(name, kw)
    if derivative:
        return (1.0 + a * a) * _s_relu(rho) + 2.0 * a * _s_relu(-rho)
    return (1.0 + a * a) * _k_relu(q1, q2, rho) - 2.0 * a * _k_relu(q1, q2, -rho)


def cf_second_moment(name: str, kw: dict[str, float], q: float) -> float:
    """``E[phi(sqrt(q) z)^2]``."""
    if name == "sin":
        return -math.expm1(-2.0 * q) / 2.0
    if name == "erf":
        return (2.0 / math.pi) * math.asin(2.0 * q / (1.0 + 2.0 * q))
    a = _slope(name, kw)
    return (1.0 + a * a) * q / 2.0


def cf_derivative_second_moment(name: str, kw: dict[str, float], q: float) -> float:
    """``E[phi'(sqrt(q) z)^2]``."""
    if name == "sin":
        return (1.0 + math.exp(-2.0 * q)) / 2.0
    if name == "erf":
        return (4.0 / math.pi) / math.sqrt(1.0 + 4.0 * q)
    a = _slope(name, kw)
    return (1.0 + a * a) / 2.0


def cf_q_slope(name: str, kw: dict[str, float], q: float) -> float:
    """``d/dq E[phi(sqrt(q) z)^2]`` (``chi_q / sigma_w2``)."""
    if name == "sin":
        return math.exp(-2.0 * q)
    if name == "erf":
        return (4.0 / math.pi) / ((1.0 + 2.0 * q) * math.sqrt(1.0 + 4.0 * q))
    a = _slope(name, kw)
    return (1.0 + a * a) / 2.0


def cf_q_star(name: str, kw: dict[str, float], sigma_w2: float, sigma_b2: float) -> float:
    """``q*`` reached from q0 = 1: erf and sin by brentq on the closed-form q-map (bounded by
    ``sigma_w2 + sigma_b2``, as ``phi^2 <= 1``; with ``sigma_b2 = 0`` it is 0 when
    ``sigma_w2 phi'(0)^2 <= 1`` and positive otherwise, since F is concave); the homogeneous
    families have the linear q-map ``m sigma_w2 q + sigma_b2`` with ``m = (1 + a^2) / 2``."""
    if name in ("erf", "sin"):

        def g(q: float) -> float:
            return sigma_w2 * cf_second_moment(name, kw, q) + sigma_b2 - q

        if sigma_b2 == 0.0 and sigma_w2 * cf_derivative_second_moment(name, kw, 0.0) <= 1.0:
            return 0.0
        return float(brentq(g, max(sigma_b2, 1e-300), sigma_b2 + sigma_w2 + 1.0, xtol=1e-16))
    slope = sigma_w2 * cf_q_slope(name, kw, 1.0)
    if slope < 1.0:
        return sigma_b2 / (1.0 - slope)
    if slope == 1.0 and sigma_b2 == 0.0:
        return 1.0
    return math.inf


def cf_c_star(name: str, kw: dict[str, float], sigma_w2: float, sigma_b2: float) -> float:
    """``c*``: 1 in the ordered phase; for erf and sin in the chaotic phase the root of the
    closed-form C-map (convex and increasing on [0, 1]), by brentq."""
    q = cf_q_star(name, kw, sigma_w2, sigma_b2)
    if sigma_w2 * cf_derivative_second_moment(name, kw, q) <= 1.0:
        return 1.0
    if name not in ("erf", "sin"):
        raise ValueError("only erf and sin have a chaotic phase among the closed forms")

    def g(c: float) -> float:
        return (sigma_w2 * cf_pair(name, kw, q, q, c) + sigma_b2) / q - c

    if g(0.0) == 0.0:
        return 0.0
    hi = 1.0 - 1e-3
    while g(hi) >= 0.0:
        hi = 1.0 - (1.0 - hi) / 10.0
    return float(brentq(g, 0.0, hi, xtol=1e-16))


def cf_chi_c(name: str, kw: dict[str, float], sigma_w2: float, sigma_b2: float) -> float:
    """``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]`` at ``(q*, c*)``."""
    q = cf_q_star(name, kw, sigma_w2, sigma_b2)
    c = cf_c_star(name, kw, sigma_w2, sigma_b2)
    return sigma_w2 * cf_pair(name, kw, q, q, c, derivative=True)


def cf_critical_sigma_w2(name: str, kw: dict[str, float], sigma_b2: float) -> float:
    """Critical ``sigma_w2``. Homogeneous families: ``chi_1 = m sigma_w2 = 1``. erf and sin:
    on the critical line ``sigma_w2 = (q - sigma_b2) / F(q)`` and ``sigma_w2 G(q) = 1``, so q
    solves ``(q - sigma_b2) G(q) = F(q)``; for erf ``(q - sigma_b2) (4/pi) / sqrt(1 + 4q) =
    (2/pi) asin(2q / (1 + 2q))``. At ``sigma_b2 = 0``: q* -> 0, ``sigma_w2 = 1 / phi'(0)^2``."""
    if name not in ("erf", "sin"):
        return 1.0 / cf_q_slope(name, kw, 1.0)
    if sigma_b2 == 0.0:
        return 1.0 / cf_derivative_second_moment(name, kw, 0.0)  # erf: pi / 4, sin: 1

    def h(q: float) -> float:
        return (q - sigma_b2) * cf_derivative_second_moment(name, kw, q) - cf_second_moment(
            name, kw, q
        )

    hi = 2.0 * sigma_b2 + 1.0
    while h(hi) <= 0.0:
        hi *= 2.0
    q = float(brentq(h, sigma_b2, hi, xtol=1e-16))
    return (q - sigma_b2) / cf_second_moment(name, kw, q)


@pytest.fixture(scope="session")
def cf() -> SimpleNamespace:
    """The closed forms, as a namespace (``cf.pair``, ``cf.q_star``, ...)."""
    return SimpleNamespace(
        pair=cf_pair,
        second_moment=cf_second_moment,
        derivative_second_moment=cf_derivative_second_moment,
        q_slope=cf_q_slope,
        q_star=cf_q_star,
        c_star=cf_c_star,
        chi_c=cf_chi_c,
        critical_sigma_w2=cf_critical_sigma_w2,
    )
