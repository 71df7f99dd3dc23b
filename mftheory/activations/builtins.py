"""The built-in activations: one ``ActivationRecord`` each, registered on import.

Names mean what PyTorch means by them: ``gelu`` is the exact ``x * Phi(x)`` (``gelu_tanh`` is
the tanh approximation), ``swish`` = ``silu`` = ``x * sigmoid(x)``, ``softplus`` =
``log(1 + e^x)``, ``sigmoid`` the logistic function, ``hard_tanh`` clips to [-1, 1],
``leaky_relu`` has ``negative_slope`` (default 0.01), ``elu`` has ``alpha`` (default 1), and
``selu`` uses PyTorch's fixed constants.

Adding a built-in means adding one record to ``BUILTIN_RECORDS`` (with a
``ClosedForm`` if the Gaussian expectations have a
closed form); nothing else in the package lists activation names.

Notes
-----
docs/theory.md section 1 (the network) and section 3 (closed forms for erf, ReLU and linear).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

from mftheory.activations.base import Activation, ActivationRecord
from mftheory.activations.closed_forms import Erf, PositivelyHomogeneous, Sin
from mftheory.activations.registry import ACTIVATION_NAMES, _register_builtin, get_activation

__all__ = [
    "ACTIVATION_NAMES",
    "BUILTIN_RECORDS",
    "Activation",
    "get_activation",
]

Array = NDArray[np.float64]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

# --- phi and phi' (module-level functions: the same objects on every look-up) ---------------


def _tanh_d(x: Array) -> Array:
    return 1.0 / np.cosh(x) ** 2


def _erf_d(x: Array) -> Array:
    return (2.0 / math.sqrt(math.pi)) * np.exp(-np.square(x))


def _relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


def _step(x: Array) -> Array:
    return (x > 0).astype(np.float64)


def _leaky_relu(x: Array, negative_slope: float) -> Array:
    return np.where(x > 0, x, negative_slope * x)


def _leaky_relu_d(x: Array, negative_slope: float) -> Array:
    return np.where(x > 0, 1.0, negative_slope)


def _linear(x: Array) -> Array:
    return np.asarray(x, dtype=np.float64) * 1.0


def _sigmoid_d(x: Array) -> Array:
    s = special.expit(x)
    return s * (1.0 - s)


def _hard_tanh(x: Array) -> Array:
    return np.clip(x, -1.0, 1.0)


def _hard_tanh_d(x: Array) -> Array:
    return ((x > -1.0) & (x < 1.0)).astype(np.float64)


def _softplus(x: Array) -> Array:
    return np.logaddexp(0.0, x)


def _silu(x: Array) -> Array:
    return x * special.expit(x)


def _silu_d(x: Array) -> Array:
    s = special.expit(x)
    return s * (1.0 + x * (1.0 - s))


def _gauss_cdf(x: Array) -> Array:
    return 0.5 * special.erfc(-x / _SQRT2)


def _gelu(x: Array) -> Array:
    return x * _gauss_cdf(x)


def _gelu_d(x: Array) -> Array:
    return _gauss_cdf(x) + x * np.exp(-0.5 * np.square(x)) / math.sqrt(2.0 * math.pi)


def _gelu_tanh(x: Array) -> Array:
    k = _SQRT_2_OVER_PI
    return 0.5 * x * (1.0 + np.tanh(k * (x + 0.044715 * x**3)))


def _gelu_tanh_d(x: Array) -> Array:
    k = _SQRT_2_OVER_PI
    t = np.tanh(k * (x + 0.044715 * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * k * (1.0 + 3 * 0.044715 * x**2)


def _elu(x: Array, alpha: float) -> Array:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _elu_d(x: Array, alpha: float) -> Array:
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def _selu(x: Array) -> Array:
    s, a = SELU_SCALE, SELU_ALPHA
    return s * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0)))


def _selu_d(x: Array) -> Array:
    s, a = SELU_SCALE, SELU_ALPHA
    return s * np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0)))


# --- torch: native functions and nn-module matchers (torch is passed in, never imported) ----


def _module(cls_name: str) -> Any:
    """A matcher for ``torch.nn.<cls_name>`` (subclasses included), without parameters."""

    def match(torch: Any, module: Any) -> Mapping[str, float] | None:
        return {} if isinstance(module, getattr(torch.nn, cls_name)) else None

    return match


def _match_leaky(torch: Any, m: Any) -> Mapping[str, float] | None:
    if isinstance(m, torch.nn.LeakyReLU):
        return {"negative_slope": float(m.negative_slope)}
    return None


def _match_gelu(approximate: str) -> Any:
    def match(torch: Any, m: Any) -> Mapping[str, float] | None:
        ok = isinstance(m, torch.nn.GELU) and (m.approximate == "none") == (approximate == "none")
        return {} if ok else None

    return match


def _match_elu(torch: Any, m: Any) -> Mapping[str, float] | None:
    return {"alpha": float(m.alpha)} if isinstance(m, torch.nn.ELU) else None


def _match_softplus(torch: Any, m: Any) -> Mapping[str, float] | None:
    return {} if isinstance(m, torch.nn.Softplus) and float(m.beta) == 1.0 else None


def _match_hard_tanh(torch: Any, m: Any) -> Mapping[str, float] | None:
    ok = type(m) is torch.nn.Hardtanh and float(m.min_val) == -1.0 and float(m.max_val) == 1.0
    return {} if ok else None


def _torch_leaky(torch: Any, negative_slope: float) -> Any:
    slope = float(negative_slope)
    return lambda x: torch.where(x > 0, x, slope * x)


def _torch_elu(torch: Any, alpha: float) -> Any:
    a = float(alpha)
    return lambda x: torch.where(x > 0, x, a * torch.expm1(torch.clamp(x, max=0.0)))


def _R(name: str, phi: Any, dphi: Any, help: str, **kw: Any) -> ActivationRecord:
    return ActivationRecord(name, phi, dphi, help, **kw)


#: The built-in records, in the order of ``ACTIVATION_NAMES``.
BUILTIN_RECORDS: tuple[ActivationRecord, ...] = (
    _R("tanh", np.tanh, _tanh_d, "tanh(x)",
       torch_phi=lambda t: t.tanh, torch_module=_module("Tanh")),
    _R("erf", special.erf, _erf_d, "erf(x) (closed forms)", closed_form=Erf,
       torch_phi=lambda t: t.special.erf),
    _R("relu", _relu, _step, "max(x, 0) (closed forms)", kinks=(0.0,),
       closed_form=lambda: PositivelyHomogeneous(0.0, key="relu"),
       torch_phi=lambda t: t.relu, torch_module=_module("ReLU")),
    _R("leaky_relu", _leaky_relu, _leaky_relu_d,
       "x for x > 0, negative_slope * x below (closed forms)", aliases=("leakyrelu",),
       kinks=(0.0,), params=(("negative_slope", 0.01),),
       closed_form=lambda negative_slope: PositivelyHomogeneous(negative_slope, key="leaky_relu"),
       torch_phi=_torch_leaky, torch_module=_match_leaky),
    _R("linear", _linear, np.ones_like, "x (closed forms)", aliases=("identity",),
       closed_form=lambda: PositivelyHomogeneous(1.0, key="linear"),
       torch_phi=lambda t: lambda x: x * 1.0),
    _R("sigmoid", special.expit, _sigmoid_d, "1 / (1 + e^-x)",
       torch_phi=lambda t: t.sigmoid, torch_module=_module("Sigmoid")),
    _R("hard_tanh", _hard_tanh, _hard_tanh_d, "x clipped to [-1, 1]", aliases=("hardtanh",),
       kinks=(-1.0, 1.0), torch_phi=lambda t: lambda x: t.clamp(x, -1.0, 1.0),
       torch_module=_match_hard_tanh),
    _R("softplus", _softplus, special.expit, "log(1 + e^x)",
       torch_phi=lambda t: lambda x: t.logaddexp(x, t.zeros_like(x)),
       torch_module=_match_softplus),
    _R("swish", _silu, _silu_d, "x * sigmoid(x) (= silu)",
       torch_phi=lambda t: t.nn.functional.silu),
    _R("silu", _silu, _silu_d, "x * sigmoid(x)",
       torch_phi=lambda t: t.nn.functional.silu, torch_module=_module("SiLU")),
    _R("gelu", _gelu, _gelu_d, "x * Phi(x), the exact GELU",
       torch_phi=lambda t: t.nn.functional.gelu, torch_module=_match_gelu("none")),
    _R("gelu_tanh", _gelu_tanh, _gelu_tanh_d, "the tanh approximation of GELU",
       torch_phi=lambda t: lambda x: t.nn.functional.gelu(x, approximate="tanh"),
       torch_module=_match_gelu("tanh")),
    _R("elu", _elu, _elu_d, "x for x > 0, alpha * (e^x - 1) below", kinks=(0.0,),
       params=(("alpha", 1.0),), torch_phi=_torch_elu, torch_module=_match_elu),
    _R("selu", _selu, _selu_d, "PyTorch's SELU (fixed constants)", kinks=(0.0,),
       torch_phi=lambda t: t.nn.functional.selu, torch_module=_module("SELU")),
    _R("sin", np.sin, np.cos, "sin(x) (closed forms)", closed_form=Sin,
       torch_phi=lambda t: t.sin),
)  # fmt: skip

for _record in BUILTIN_RECORDS:
    _register_builtin(_record)
