"""Monte Carlo judges: finite random networks whose statistics check the mean-field predictions."""

from mftheory.montecarlo.backends import BACKENDS, ArrayBackend, ArrayOps, NumpyBackend
from mftheory.montecarlo.ensembles import (
    METHODS,
    EnsembleResult,
    simulate_ensemble,
)
from mftheory.montecarlo.jacobians import (
    NETWORKS,
    WEIGHTS,
    sample_delta_orthogonal_spectrum,
    sample_jacobian_spectrum,
    sample_looks_linear_spectrum,
)
from mftheory.montecarlo.mode_check import (
    MC_MARGIN,
    ModeComparison,
    compare_modes,
)
from mftheory.montecarlo.sampled_spectrum import SampledSpectrum

__all__ = [
    "BACKENDS",
    "MC_MARGIN",
    "METHODS",
    "NETWORKS",
    "WEIGHTS",
    "ArrayBackend",
    "ArrayOps",
    "EnsembleResult",
    "ModeComparison",
    "NumpyBackend",
    "SampledSpectrum",
    "compare_modes",
    "sample_delta_orthogonal_spectrum",
    "sample_jacobian_spectrum",
    "sample_looks_linear_spectrum",
    "simulate_ensemble",
]
