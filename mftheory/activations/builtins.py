"""Activation functions: the nonlinearity phi, its derivative, and what the integrators need.

Every activation is an :class:`Activation`: vectorised callables for ``phi`` and ``phi'``, the
points where either is not smooth (``kinks``; the quadrature splits its panels there), and,
where one exists, the key of a closed form for the Gaussian expectations (``closed_form``).

Names mean what PyTorch means by them: ``gelu`` is the exact ``x * Phi(x)`` (``gelu_tanh`` is
the tanh approximation), ``swish`` = ``silu`` = ``x * sigmoid(x)``, ``softplus`` =
``log(1 + e^x)``, ``sigmoid`` the logistic function, ``hard_tanh`` clips to [-1, 1],
``leaky_relu`` has ``negative_slope`` (default 0.01), ``elu`` has ``alpha`` (default 1), and
``selu`` uses PyTorch's fixed constants.

Notes
-----
THEORY.md section 1 (the network) and section 3 (closed forms for erf, ReLU and linear).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import special

from mftheory.errors import MFTheoryError

__all__ = [
    "ACTIVATION_NAMES",
    "Activation",
    "get_activation",
]

Array = NDArray[np.float64]
Func = Callable[[Array], Array]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity with what the mean-field integrators need.

    Attributes
    ----------
    name : str
        Canonical name (``"tanh"``, ``"leaky_relu"``...) or the user's expression text.
    phi, dphi : callable
        Vectorised ``phi(x)`` and ``phi'(x)`` on float arrays. At a kink ``dphi`` may take
        either one-sided value: it is only ever integrated.
    kinks : tuple of float
        Points where ``phi`` or ``phi'`` is not smooth. Quadrature panels are split there,
        which restores the exponential convergence that a kink would otherwise destroy.
    closed_form : str or None
        Key of an exact formula for the Gaussian expectations (``"erf"``, ``"relu"``,
        ``"leaky_relu"``, ``"linear"``, ``"sin"``), or None to integrate numerically.
    params : tuple of (str, float)
        Parameters of the family (``negative_slope`` of leaky_relu, ``alpha`` of elu...).
    """

    name: str
    phi: Func = field(repr=False, compare=False)
    dphi: Func = field(repr=False, compare=False)
    kinks: tuple[float, ...] = ()
    closed_form: str | None = None
    params: tuple[tuple[str, float], ...] = ()

    def param(self, key: str) -> float:
        """The value of family parameter ``key``."""
        return dict(self.params)[key]

    @property
    def label(self) -> str:
        """Name with its parameters, for tables and plot titles."""
        if not self.params:
            return self.name
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.name}({inner})"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready description: name, parameters, kinks, closed form."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "kinks": list(self.kinks),
            "closed_form": self.closed_form,
        }


# --- the built-in families -----------------------------------------------------------------


def _tanh() -> Activation:
    return Activation("tanh", np.tanh, lambda x: 1.0 / np.cosh(x) ** 2)


def _erf() -> Activation:
    return Activation(
        "erf",
        special.erf,
        lambda x: (2.0 / math.sqrt(math.pi)) * np.exp(-np.square(x)),
        closed_form="erf",
    )


def _relu() -> Activation:
    return Activation(
        "relu",
        lambda x: np.maximum(x, 0.0),
        lambda x: (x > 0).astype(np.float64),
        kinks=(0.0,),
        closed_form="relu",
    )


def _leaky_relu(negative_slope: float) -> Activation:
    a = float(negative_slope)
    return Activation(
        "leaky_relu",
        lambda x: np.where(x > 0, x, a * x),
        lambda x: np.where(x > 0, 1.0, a),
        kinks=(0.0,),
        closed_form="leaky_relu",
        params=(("negative_slope", a),),
    )


def _linear() -> Activation:
    return Activation(
        "linear",
        lambda x: np.asarray(x, dtype=np.float64) * 1.0,
        np.ones_like,
        closed_form="linear",
    )


def _sigmoid() -> Activation:
    def d(x: Array) -> Array:
        s = special.expit(x)
        return s * (1.0 - s)

    return Activation("sigmoid", special.expit, d)


def _hard_tanh() -> Activation:
    return Activation(
        "hard_tanh",
        lambda x: np.clip(x, -1.0, 1.0),
        lambda x: ((x > -1.0) & (x < 1.0)).astype(np.float64),
        kinks=(-1.0, 1.0),
    )


def _softplus() -> Activation:
    return Activation("softplus", lambda x: np.logaddexp(0.0, x), special.expit)


def _silu(name: str) -> Activation:
    def d(x: Array) -> Array:
        s = special.expit(x)
        return s * (1.0 + x * (1.0 - s))

    return Activation(name, lambda x: x * special.expit(x), d)


def _gelu() -> Activation:
    def cdf(x: Array) -> Array:
        return 0.5 * special.erfc(-x / _SQRT2)

    def d(x: Array) -> Array:
        return cdf(x) + x * np.exp(-0.5 * np.square(x)) / math.sqrt(2.0 * math.pi)

    return Activation("gelu", lambda x: x * cdf(x), d)


def _gelu_tanh() -> Activation:
    k = _SQRT_2_OVER_PI

    def phi(x: Array) -> Array:
        return 0.5 * x * (1.0 + np.tanh(k * (x + 0.044715 * x**3)))

    def d(x: Array) -> Array:
        t = np.tanh(k * (x + 0.044715 * x**3))
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * k * (1.0 + 3 * 0.044715 * x**2)

    return Activation("gelu_tanh", phi, d)


def _elu(alpha: float) -> Activation:
    a = float(alpha)
    return Activation(
        "elu",
        lambda x: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0))),
        lambda x: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0))),
        kinks=(0.0,),
        params=(("alpha", a),),
    )


def _selu() -> Activation:
    s, a = SELU_SCALE, SELU_ALPHA
    return Activation(
        "selu",
        lambda x: s * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0))),
        lambda x: s * np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0))),
        kinks=(0.0,),
    )


def _sin() -> Activation:
    return Activation("sin", np.sin, np.cos, closed_form="sin")


_FACTORIES: dict[str, Callable[..., Activation]] = {
    "tanh": _tanh,
    "erf": _erf,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "linear": _linear,
    "sigmoid": _sigmoid,
    "hard_tanh": _hard_tanh,
    "softplus": _softplus,
    "swish": lambda: _silu("swish"),
    "silu": lambda: _silu("silu"),
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "elu": _elu,
    "selu": _selu,
    "sin": _sin,
}
_ALIASES = {"identity": "linear", "hardtanh": "hard_tanh", "leakyrelu": "leaky_relu"}

#: Names accepted by :func:`get_activation` (besides user expressions).
ACTIVATION_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def get_activation(
    spec: str | Activation,
    *,
    negative_slope: float = 0.01,
    alpha: float = 1.0,
) -> Activation:
    """Look up a built-in activation by name, or parse a user expression in ``x``.

    Parameters
    ----------
    spec : str or Activation
        A name from :data:`ACTIVATION_NAMES` (case-insensitive; ``-`` and ``_`` alike), an
        expression such as ``"x*sigmoid(x)"`` (parsed by
        :mod:`mftheory.activations.expression`, never evaluated as Python), or an
        :class:`Activation`, returned unchanged.
    negative_slope : float
        Slope of ``leaky_relu`` for x < 0 (PyTorch's default 0.01).
    alpha : float
        ``alpha`` of ``elu`` (PyTorch's default 1).

    Raises
    ------
    MFTheoryError
        Unknown name, invalid expression, or a non-finite parameter.
    """
    if isinstance(spec, Activation):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise MFTheoryError("activation must be a non-empty name or expression")
    key = spec.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in _FACTORIES:
        for pname, pval in (("negative_slope", negative_slope), ("alpha", alpha)):
            if not math.isfinite(pval):
                raise MFTheoryError(f"{pname} must be finite, got {pval!r}")
        if key == "leaky_relu":
            return _leaky_relu(negative_slope)
        if key == "elu":
            return _elu(alpha)
        return _FACTORIES[key]()
    if key.isidentifier() and key != "x":
        names = ", ".join(ACTIVATION_NAMES)
        raise MFTheoryError(
            f"unknown activation {spec!r}; choose one of {names}, or give an expression in x"
        )
    from mftheory.activations.expression import parse_activation

    return parse_activation(spec)
