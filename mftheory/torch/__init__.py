"""PyTorch integration (optional extra ``mftheory[torch]``): initialisers, model diagnosis.

``import mftheory`` never imports this package; import ``mftheory.torch`` explicitly."""

from mftheory.torch.init import (
    SCHEMES,
    CriticalInitReport,
    DiagnoseReport,
    conv_orthogonal_,
    critical_init_,
    delta_orthogonal_,
    diagnose,
    jacobian_singular_values,
    looks_linear_,
    mean_field_init_,
    variance_vector_normal_,
)

__all__ = [
    "SCHEMES",
    "CriticalInitReport",
    "DiagnoseReport",
    "conv_orthogonal_",
    "critical_init_",
    "delta_orthogonal_",
    "diagnose",
    "jacobian_singular_values",
    "looks_linear_",
    "mean_field_init_",
    "variance_vector_normal_",
]
