"""The ``Activation`` dataclass and the ``ActivationRecord`` of a registered family.

Identity. Two activations are equal (and hash equal) only if their name, kinks, closed form,
parameters AND their ``phi`` and ``dphi`` are equal, the functions compared as objects
(``==``: identity for plain functions). Caches keyed on activations (the q-table cache of
``mftheory.gaussian.qtable.q_table``) can therefore never mix two activations that share
a name but not their functions. Built-ins stay equal across calls of ``get_activation``
because a registry record hands out the same function objects every time (for a family with
parameters, a ``BoundFunction`` that compares by function and parameter values), and
expressions because the parser's functions compare by the parsed text.

Notes
-----
docs/theory.md section 1 (the network) and section 3 (closed forms).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.closed_forms import ClosedForm

__all__ = ["Activation", "ActivationRecord", "BoundFunction"]

Array = NDArray[np.float64]
Func = Callable[[Array], Array]
Params = tuple[tuple[str, float], ...]


def _hash_part(f: object) -> int:
    """``hash(f)``, or its id for an unhashable callable (compared by identity then)."""
    try:
        return hash(f)
    except TypeError:
        return id(f)


@dataclass(frozen=True, eq=False)
class Activation:
    """A pointwise nonlinearity with what the mean-field integrators need.

    Attributes
    ----------
    name : str
        Canonical name (``"tanh"``, ``"leaky_relu"``...) or the user's expression text.
    phi, dphi : callable
        Vectorised ``phi(x)`` and ``phi'(x)`` on float arrays. At a kink ``dphi`` may take
        either one-sided value: it is only ever integrated. Part of the identity (see the
        module docstring).
    kinks : tuple of float
        Points where ``phi`` or ``phi'`` is not smooth. Quadrature panels are split there,
        which restores the exponential convergence that a kink would otherwise destroy.
    closed_form : ClosedForm or None
        Exact formulas for the Gaussian expectations
        (``mftheory.activations.closed_forms``), or None to integrate numerically.
    params : tuple of (str, float)
        Parameters of the family (``negative_slope`` of leaky_relu, ``alpha`` of elu...).
    jumps : tuple of (float, float)
        Discontinuities of ``phi`` as ``(x0, phi(x0+) - phi(x0-))`` (``sign``: ``((0, 2),)``).
        There ``phi'`` holds a delta ``J delta(x - x0)`` that ``dphi`` omits; the integrators
        add its contribution (``E[phi'(h)^2]`` is then infinite). Their points are also in
        ``kinks``.
    """

    name: str
    phi: Func = field(repr=False)
    dphi: Func = field(repr=False)
    kinks: tuple[float, ...] = ()
    closed_form: ClosedForm | None = None
    params: Params = ()
    jumps: tuple[tuple[float, float], ...] = ()

    def _identity(self) -> tuple[object, ...]:
        return (self.name, self.kinks, self.closed_form, self.params, self.phi, self.dphi,
                self.jumps)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Activation):
            return NotImplemented
        return bool(self._identity() == other._identity())

    def __hash__(self) -> int:
        functions = (_hash_part(self.phi), _hash_part(self.dphi))
        return hash((self.name, self.kinks, self.closed_form, self.params, self.jumps, *functions))

    def param(self, key: str) -> float:
        """The value of family parameter ``key``."""
        return dict(self.params)[key]

    @property
    def homogeneous(self) -> bool:
        """True for a positively homogeneous closed form (relu, leaky_relu, linear)."""
        return self.closed_form is not None and self.closed_form.homogeneous

    @property
    def label(self) -> str:
        """Name with its parameters, for tables and plot titles."""
        if not self.params:
            return self.name
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.name}({inner})"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready description: name, parameters, kinks, closed form (its key)."""
        out: dict[str, object] = {
            "name": self.name,
            "params": dict(self.params),
            "kinks": list(self.kinks),
            "closed_form": None if self.closed_form is None else self.closed_form.key,
        }
        if self.jumps:
            out["jumps"] = [list(j) for j in self.jumps]
        return out


@dataclass(frozen=True)
class BoundFunction:
    """``f(x, **params)`` with the parameters fixed; equal when ``f`` and the values are."""

    func: Callable[..., Array]
    params: Params

    def __call__(self, x: Array) -> Array:
        return self.func(x, **dict(self.params))


#: ``torch_module(torch, module)``: the parameters of a matching ``torch.nn`` module, or None.
TorchMatcher = Callable[[Any, Any], "Mapping[str, float] | None"]
#: ``torch_phi(torch, **params)``: a function on tensors.
TorchFactory = Callable[..., Callable[[Any], Any]]


@dataclass(frozen=True, eq=False)
class ActivationRecord:
    """Everything mftheory knows about one named activation family (one registry entry).

    Attributes
    ----------
    name : str
        Canonical name (lower case, ``_`` between words).
    phi, dphi : callable
        ``phi(x, **params)`` and ``phi'(x, **params)``, vectorised over float arrays.
    help : str
        One line for ``--help`` (``"tanh"``, ``"x for x > 0, negative_slope * x below"``).
    aliases : tuple of str
        Other accepted names.
    kinks : tuple of float
        Where ``phi`` or ``phi'`` is not smooth.
    closed_form : callable or None
        ``closed_form(**params)`` -> ``ClosedForm``, or None (numerical quadrature).
    params : tuple of (str, float)
        Parameter names with their defaults, in order.
    torch_phi : callable or None
        ``torch_phi(torch, **params)`` -> a native torch function (torch is passed in: the
        registry never imports it). None: the torch backend evaluates ``phi`` through NumPy.
    torch_module : callable or None
        ``torch_module(torch, module)`` -> the parameters (a mapping, ``{}`` for none) when
        the ``torch.nn`` module ``module`` is this activation, else None.
    """

    name: str
    phi: Callable[..., Array]
    dphi: Callable[..., Array]
    help: str
    aliases: tuple[str, ...] = ()
    kinks: tuple[float, ...] = ()
    closed_form: Callable[..., ClosedForm] | None = None
    params: Params = ()
    torch_phi: TorchFactory | None = None
    torch_module: TorchMatcher | None = None

    @property
    def homogeneous(self) -> bool:
        """Positively homogeneous (a closed form with ``kappa``), at the default parameters."""
        return self.closed_form is not None and self.closed_form(**dict(self.params)).homogeneous

    def build(self, **params: float) -> Activation:
        """The ``Activation`` at these parameter values (defaults for those not given).

        Equal calls return equal activations: the functions are the record's own (bound to
        the parameter values for a family with parameters).
        """
        values: Params = tuple((k, float(params.get(k, v))) for k, v in self.params)
        phi: Func = self.phi if not values else BoundFunction(self.phi, values)
        dphi: Func = self.dphi if not values else BoundFunction(self.dphi, values)
        cf = None if self.closed_form is None else self.closed_form(**dict(values))
        return Activation(self.name, phi, dphi, kinks=self.kinks, closed_form=cf, params=values)
