"""PyTorch integration (optional extra ``mftheory[torch]``): initialisers, model diagnosis.

``import mftheory`` never imports this package; import ``mftheory.torch`` explicitly.

Modules: ``initializers`` (one weight tensor),
``network_init`` (a whole network), ``inspection``
(reading a model: ``diagnose``, ``jacobian_singular_values``),
``backend`` (``TorchBackend``, the torch array back end of
``mftheory.montecarlo.simulate_ensemble``) and ``weights`` (their
shared tensor helpers).
"""

from mftheory.torch.backend import TorchBackend
from mftheory.torch.initializers import (
    conv_orthogonal_,
    delta_orthogonal_,
    variance_vector_normal_,
)
from mftheory.torch.inspection import DiagnoseReport, diagnose, jacobian_singular_values
from mftheory.torch.network_init import (
    SCHEMES,
    CriticalInitReport,
    critical_init_,
    looks_linear_,
    mean_field_init_,
)

__all__ = [
    "SCHEMES",
    "CriticalInitReport",
    "DiagnoseReport",
    "TorchBackend",
    "conv_orthogonal_",
    "critical_init_",
    "delta_orthogonal_",
    "diagnose",
    "jacobian_singular_values",
    "looks_linear_",
    "mean_field_init_",
    "variance_vector_normal_",
]
