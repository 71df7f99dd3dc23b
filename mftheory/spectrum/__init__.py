"""The input-output Jacobian's singular-value spectrum (free probability) and dynamical isometry."""

from mftheory.spectrum.density import jacobian_spectrum
from mftheory.spectrum.isometry import (
    INITIALISATIONS,
    IsometryRow,
    isometry_table,
)
from mftheory.spectrum.law import WEIGHTS, derivative_moments, spectrum_moments
from mftheory.spectrum.result import QUANTILE_LEVELS, JacobianSpectrum
from mftheory.spectrum.solver import SpectrumSettings

__all__ = [
    "INITIALISATIONS",
    "QUANTILE_LEVELS",
    "WEIGHTS",
    "IsometryRow",
    "JacobianSpectrum",
    "SpectrumSettings",
    "derivative_moments",
    "isometry_table",
    "jacobian_spectrum",
    "spectrum_moments",
]
