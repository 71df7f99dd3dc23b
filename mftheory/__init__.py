"""mftheory: the mean-field theory of deep random networks, as numbers.

The core reads top-down (THEORY.md sections in brackets):

* :mod:`mftheory.activations` and :mod:`mftheory.expression`: phi, phi' and kinks [1]
* :mod:`mftheory.quadrature`, :mod:`mftheory.expectations`: Gaussian expectations [3]
* :mod:`mftheory.maps`: the q- and C-maps [3]
* :mod:`mftheory.fixed_points`, :mod:`mftheory.critical`: q*, c*, slopes, depth scales,
  phases and the critical line [3]
* :mod:`mftheory.modes`, :mod:`mftheory.spatial`: Fourier modes and the CNN covariance map
  [2, 4]
* :mod:`mftheory.spectrum`, :mod:`mftheory.isometry`: the Jacobian's singular-value spectrum
  by free probability, and dynamical isometry of initialisations [5]
  (:mod:`mftheory.spectrum_mc` samples finite networks' Jacobians to check it)
* :mod:`mftheory.reference`: a slow, independent adaptive-quadrature path for checking.

``import mftheory`` loads numpy and scipy only (no torch, matplotlib, typer or rich).
"""

from ._version import __version__
from .activations import ACTIVATION_NAMES, Activation, get_activation
from .critical import CriticalPoint, critical_point
from .errors import MFTheoryError
from .expectations import (
    derivative_second_moment,
    pair_expectation,
    second_moment,
    second_moment_slope,
)
from .fixed_points import FixedPoint, depth_scale, fixed_point
from .maps import c_map, q_map
from .quadrature import QuadratureSettings

__all__ = [
    "ACTIVATION_NAMES",
    "Activation",
    "CriticalPoint",
    "FixedPoint",
    "MFTheoryError",
    "QuadratureSettings",
    "__version__",
    "c_map",
    "critical_point",
    "depth_scale",
    "derivative_second_moment",
    "fixed_point",
    "get_activation",
    "pair_expectation",
    "q_map",
    "second_moment",
    "second_moment_slope",
]
