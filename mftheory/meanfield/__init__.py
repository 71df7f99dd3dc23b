"""Fully connected mean field: the q- and C-maps, fixed points, depth scales, the critical line,
grids and initialisation diagnosis."""

from mftheory.meanfield.critical import (
    CriticalPoint,
    critical_point,
)
from mftheory.meanfield.diagnosis import (
    INIT_SCHEMES,
    TRAINABLE_DEPTH_FACTOR,
    InitDiagnosis,
    diagnose_init,
    init_scale,
)
from mftheory.meanfield.fixed_points import (
    PHASES,
    FixedPoint,
    depth_scale,
    fixed_point,
    solve_q_star,
)
from mftheory.meanfield.grid import (
    INTERP_TOL,
    phase_grid,
)
from mftheory.meanfield.maps import (
    c_map,
    check_variances,
    q_map,
)

__all__ = [
    "INIT_SCHEMES",
    "INTERP_TOL",
    "PHASES",
    "TRAINABLE_DEPTH_FACTOR",
    "CriticalPoint",
    "FixedPoint",
    "InitDiagnosis",
    "c_map",
    "check_variances",
    "critical_point",
    "depth_scale",
    "diagnose_init",
    "fixed_point",
    "init_scale",
    "phase_grid",
    "q_map",
    "solve_q_star",
]
