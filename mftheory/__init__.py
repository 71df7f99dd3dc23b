"""mftheory: the mean-field theory of deep random networks, as numbers.

The package reads as the theory does, from the bottom up:

* ``mftheory.activations``: phi, phi', kinks, closed forms; the safe expression parser
* ``mftheory.gaussian``: quadrature rules and Gaussian expectations
* ``mftheory.meanfield``: the q- and C-maps, fixed points, depth scales, phases, the
  critical line, grids and the diagnosis of an initialisation
* ``mftheory.cnn``: variance vectors and Fourier modes, the spatial covariance map,
  propagation of images, orthogonal kernels
* ``mftheory.spectrum``: the Jacobian's singular-value spectrum and dynamical isometry
* ``mftheory.montecarlo``: finite random networks that check the predictions
* ``mftheory.reference``: a slow, independent adaptive-quadrature path for checking
* ``mftheory.torch`` (optional), ``mftheory.validation``, ``mftheory.cli``: PyTorch
  initialisers, training experiments and the command-line tool.

``import mftheory`` loads numpy and scipy only (no torch, matplotlib, typer or rich).
"""

from mftheory._version import __version__
from mftheory.activations import ACTIVATION_NAMES, Activation, get_activation
from mftheory.cnn import (
    ModeTable,
    Propagation,
    covariance_map,
    mode_table,
    propagate,
    variance_vector,
)
from mftheory.errors import MFTheoryError
from mftheory.gaussian import (
    QuadratureSettings,
    derivative_second_moment,
    pair_expectation,
    second_moment,
    second_moment_slope,
)
from mftheory.meanfield import (
    PHASES,
    TRAINABLE_DEPTH_FACTOR,
    CriticalPoint,
    FixedPoint,
    InitDiagnosis,
    c_map,
    critical_point,
    depth_scale,
    diagnose_init,
    fixed_point,
    init_scale,
    phase_grid,
    q_map,
    trainable_depth,
)
from mftheory.montecarlo import EnsembleResult, SampledSpectrum, simulate_ensemble
from mftheory.spectrum import (
    IsometryRow,
    JacobianSpectrum,
    SpectrumSettings,
    isometry_table,
    jacobian_spectrum,
)

__all__ = [
    "ACTIVATION_NAMES",
    "PHASES",
    "TRAINABLE_DEPTH_FACTOR",
    "Activation",
    "CriticalPoint",
    "EnsembleResult",
    "FixedPoint",
    "InitDiagnosis",
    "IsometryRow",
    "JacobianSpectrum",
    "MFTheoryError",
    "ModeTable",
    "Propagation",
    "QuadratureSettings",
    "SampledSpectrum",
    "SpectrumSettings",
    "__version__",
    "c_map",
    "covariance_map",
    "critical_point",
    "depth_scale",
    "derivative_second_moment",
    "diagnose_init",
    "fixed_point",
    "get_activation",
    "init_scale",
    "isometry_table",
    "jacobian_spectrum",
    "mode_table",
    "pair_expectation",
    "phase_grid",
    "propagate",
    "q_map",
    "second_moment",
    "second_moment_slope",
    "simulate_ensemble",
    "trainable_depth",
    "variance_vector",
]
