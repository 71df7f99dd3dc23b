"""Convolutional networks: variance vectors and Fourier modes, the spatial covariance map, the fast
C-transform, propagation of images, effective per-mode rates over a depth range, and orthogonal
kernels."""

from mftheory.cnn.ctransform import (
    CTransformEngine,
    CTransformStats,
)
from mftheory.cnn.kernels import (
    KernelCheck,
    check_kernel,
    delta_orthogonal_kernel,
    gaussian_kernel,
    kernel_sigma_w2,
    kernel_variance_share,
    operator_singular_values,
    orthogonal_kernel,
    random_orthogonal,
)
from mftheory.cnn.modes import (
    VARIANCE_VECTOR_PRESETS,
    ModeTable,
    check_variance_vector,
    kernel_offsets,
    mode_depth_scale,
    mode_eigenvalues,
    mode_table,
    normalize_variance_vector,
    variance_vector,
    wrap_kernel,
)
from mftheory.cnn.paper import (
    FigureS4Setup,
    figure_4b_eigenvalues,
    figure_s4_setup,
)
from mftheory.cnn.propagation import (
    Propagation,
    fit_decay_rate,
    input_covariance,
    mode_amplitudes,
    propagate,
)
from mftheory.cnn.rates import (
    EffectiveRates,
    effective_mode_rates,
    pair_perturbation_start,
)
from mftheory.cnn.spatial import (
    apply_A,
    c_transform,
    covariance_map,
    iterate_covariance_map,
    uniform_fixed_covariance,
)

__all__ = [
    "VARIANCE_VECTOR_PRESETS",
    "CTransformEngine",
    "CTransformStats",
    "EffectiveRates",
    "FigureS4Setup",
    "KernelCheck",
    "ModeTable",
    "Propagation",
    "apply_A",
    "c_transform",
    "check_kernel",
    "check_variance_vector",
    "covariance_map",
    "delta_orthogonal_kernel",
    "effective_mode_rates",
    "figure_4b_eigenvalues",
    "figure_s4_setup",
    "fit_decay_rate",
    "gaussian_kernel",
    "input_covariance",
    "iterate_covariance_map",
    "kernel_offsets",
    "kernel_sigma_w2",
    "kernel_variance_share",
    "mode_amplitudes",
    "mode_depth_scale",
    "mode_eigenvalues",
    "mode_table",
    "normalize_variance_vector",
    "operator_singular_values",
    "orthogonal_kernel",
    "pair_perturbation_start",
    "propagate",
    "random_orthogonal",
    "uniform_fixed_covariance",
    "variance_vector",
    "wrap_kernel",
]
