"""The input-output Jacobian's singular-value spectrum (free probability) and dynamical isometry."""

from mftheory.spectrum.density import (
    QUANTILE_LEVELS,
    WEIGHTS,
    JacobianSpectrum,
    SpectrumSettings,
    derivative_moments,
    jacobian_spectrum,
    spectrum_moments,
)
from mftheory.spectrum.isometry import (
    INITIALISATIONS,
    IsometryRow,
    isometry_table,
)

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
