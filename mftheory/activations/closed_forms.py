"""Closed forms of the Gaussian expectations, one object per family.

An activation with a closed form carries one of these objects (``Activation.closed_form``);
every integrator asks the object instead of comparing names. With ``u = sqrt(q) z``,
``z ~ N(0, 1)``, an object gives

* ``second_moment(q)`` ``F(q) = E[phi(u)^2]``,
* ``derivative_second_moment(q)`` ``G(q) = E[phi'(u)^2]``,
* ``second_moment_slope(q)`` ``F'(q) = dF/dq``,
* ``pair(q1, q2, rho, derivative)`` ``E[phi(u1) phi(u2)]`` (or with ``phi'``) for a Gaussian
  pair with variances ``q1, q2`` and correlation ``rho``,

and two flags: ``kappa`` (not None for a positively homogeneous ``phi``, where
``F(q) = kappa q`` and ``G = F' = kappa``; the q-map is then linear and has no finite
chaotic phase) and ``key``, the string printed in JSON (``"closed_form": "erf"``).

Families: ``Erf`` (``erf(s x)``), ``PositivelyHomogeneous`` (relu, leaky_relu,
linear: ``x`` for ``x > 0``, ``a x`` below) and ``Sin``. A user family subclasses
``ClosedForm`` and is attached to an activation with
``mftheory.activations.register_activation``.

Notes
-----
docs/theory.md section 3 (closed forms for erf, ReLU and linear; the dual activation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["ClosedForm", "Erf", "PositivelyHomogeneous", "Sin"]

Array = NDArray[np.float64]


class ClosedForm:
    """Exact Gaussian expectations of one activation (see the module docstring).

    Subclasses are frozen dataclasses (equal and hashed by value: they take part in the
    identity of an ``Activation``) and override the four methods.
    Arguments are float arrays that broadcast together; ``q >= 0`` and ``rho`` in [-1, 1] are
    checked by the callers.
    """

    #: The name printed as ``"closed_form"`` in JSON.
    key: str = ""
    #: ``F(q) / q`` for a positively homogeneous phi (``F = kappa q``, ``G = F' = kappa``),
    #: None otherwise.
    kappa: float | None = None

    @property
    def homogeneous(self) -> bool:
        """True when ``phi(t x) = t phi(x)`` for ``t > 0`` (the q-map is linear)."""
        return self.kappa is not None

    def second_moment(self, q: Array) -> Array:
        """``F(q) = E[phi(sqrt(q) z)^2]``."""
        raise NotImplementedError

    def derivative_second_moment(self, q: Array) -> Array:
        """``G(q) = E[phi'(sqrt(q) z)^2]``."""
        raise NotImplementedError

    def second_moment_slope(self, q: Array) -> Array:
        """``F'(q) = dF/dq``."""
        raise NotImplementedError

    def pair(self, q1: Array, q2: Array, rho: Array, derivative: bool = False) -> Array:
        """``E[phi(u1) phi(u2)]``, or ``E[phi'(u1) phi'(u2)]`` with ``derivative``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Erf(ClosedForm):
    """``phi(x) = erf(scale x)``: the substitution ``q -> scale^2 q`` of the erf formulas.

    ``F(q) = (2/pi) asin(2q/(1+2q))``, ``G(q) = (4/pi)/sqrt(1+4q)``,
    ``F'(q) = (4/pi) / ((1+2q) sqrt(1+4q))``, ``E[phi(u1) phi(u2)] =
    (2/pi) asin(2 rho sqrt(q1 q2) / sqrt((1+2q1)(1+2q2)))`` and
    ``E[phi'(u1) phi'(u2)] = (4/pi) / sqrt((1+2q1)(1+2q2) - 4 rho^2 q1 q2)`` at scale 1.
    """

    scale: float = 1.0
    key: str = "erf"

    def _s2(self) -> float:
        return float(self.scale) ** 2

    def second_moment(self, q: Array) -> Array:
        qs = self._s2() * q
        return (2.0 / math.pi) * np.arcsin(2.0 * qs / (1.0 + 2.0 * qs))

    def derivative_second_moment(self, q: Array) -> Array:
        qs = self._s2() * q
        return self._s2() * (4.0 / math.pi) / np.sqrt(1.0 + 4.0 * qs)

    def second_moment_slope(self, q: Array) -> Array:
        qs = self._s2() * q
        return self._s2() * (4.0 / math.pi) / ((1.0 + 2.0 * qs) * np.sqrt(1.0 + 4.0 * qs))

    def pair(self, q1: Array, q2: Array, rho: Array, derivative: bool = False) -> Array:
        s2 = self._s2()
        q1, q2 = s2 * q1, s2 * q2
        with np.errstate(invalid="ignore", divide="ignore"):
            a1, a2 = 1.0 + 2.0 * q1, 1.0 + 2.0 * q2
            if derivative:
                return s2 * (4.0 / math.pi) / np.sqrt(a1 * a2 - 4.0 * rho**2 * q1 * q2)
            arg = np.clip(2.0 * rho * np.sqrt(q1 * q2) / np.sqrt(a1 * a2), -1.0, 1.0)
            return (2.0 / math.pi) * np.arcsin(arg)


@dataclass(frozen=True)
class PositivelyHomogeneous(ClosedForm):
    """``phi(x) = x`` for ``x > 0`` and ``a x`` below: relu (a = 0), leaky_relu, linear (a = 1).

    ``F(q) = kappa q`` with ``kappa = (1 + a^2) / 2``; ``G = F' = kappa``. With
    ``k(r) = (sqrt(1 - r^2) + (pi - acos r) r) / (2 pi)`` (the arc-cosine kernel),
    ``E[phi(u1) phi(u2)] = sqrt(q1 q2) ((1 + a^2) k(rho) - 2 a k(-rho))`` and
    ``E[phi'(u1) phi'(u2)] = (1 + a^2) p + 2 a (1/2 - p)``, ``p = (pi - acos rho) / (2 pi)``.
    ``linear`` uses ``rho sqrt(q1 q2)`` and ``1`` directly (the same values, exactly).
    """

    negative_slope: float = 0.0
    key: str = "relu"

    @property
    def kappa(self) -> float:  # type: ignore[override]
        a = float(self.negative_slope)
        return 0.5 * (1.0 + a * a)

    def second_moment(self, q: Array) -> Array:
        return self.kappa * q

    def derivative_second_moment(self, q: Array) -> Array:
        return np.full_like(q, self.kappa)

    def second_moment_slope(self, q: Array) -> Array:
        return np.full_like(q, self.kappa)

    def pair(self, q1: Array, q2: Array, rho: Array, derivative: bool = False) -> Array:
        a = float(self.negative_slope)
        with np.errstate(invalid="ignore", divide="ignore"):
            if a == 1.0:
                return np.ones_like(rho) if derivative else rho * np.sqrt(q1 * q2)
            if derivative:
                p_pos = (math.pi - np.arccos(rho)) / (2.0 * math.pi)  # P(u1 > 0, u2 > 0)
                return (1.0 + a * a) * p_pos + 2.0 * a * (0.5 - p_pos)

            def k(r: Array) -> Array:  # E[relu(u1) relu(u2)] / sqrt(q1 q2)
                return (np.sqrt(np.clip(1.0 - r * r, 0.0, None)) + (math.pi - np.arccos(r)) * r) / (
                    2.0 * math.pi
                )

            return np.sqrt(q1 * q2) * ((1.0 + a * a) * k(rho) - 2.0 * a * k(-rho))


@dataclass(frozen=True)
class Sin(ClosedForm):
    """``phi(x) = sin(x)``: ``F(q) = (1 - e^{-2q})/2``, ``G(q) = (1 + e^{-2q})/2``,
    ``F'(q) = e^{-2q}``, ``E[sin u1 sin u2] = e^{-(q1+q2)/2} sinh(r)`` and
    ``E[cos u1 cos u2] = e^{-(q1+q2)/2} cosh(r)`` with ``r = rho sqrt(q1 q2)``.

    The pair is evaluated without overflow: ``sinh`` overflows and the damping underflows
    once ``q`` passes ~710 (``0 * inf = NaN``); since ``|r| <= (q1+q2)/2``,
    ``sign(r) e^{|r| - (q1+q2)/2} (1 - e^{-2|r|}) / 2`` (``expm1`` keeps small ``r`` exact)
    and ``e^{|r| - (q1+q2)/2} (1 + e^{-2|r|}) / 2`` are the same values with no overflow.
    """

    key: str = "sin"

    def second_moment(self, q: Array) -> Array:
        return 0.5 * (1.0 - np.exp(-2.0 * q))

    def derivative_second_moment(self, q: Array) -> Array:
        return 0.5 * (1.0 + np.exp(-2.0 * q))

    def second_moment_slope(self, q: Array) -> Array:
        return np.exp(-2.0 * q)

    def pair(self, q1: Array, q2: Array, rho: Array, derivative: bool = False) -> Array:
        r = rho * np.sqrt(q1 * q2)
        a = np.abs(r)
        damp = np.exp(a - 0.5 * (q1 + q2))
        if derivative:
            return 0.5 * damp * (1.0 + np.exp(-2.0 * a))
        return np.sign(r) * 0.5 * damp * -np.expm1(-2.0 * a)
