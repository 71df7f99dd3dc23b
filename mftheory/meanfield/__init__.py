"""Fully connected mean field: the q- and C-maps, fixed points, depth scales, the critical line,
grids, initialisation diagnosis and the root finders behind them."""

from mftheory.meanfield.critical import (
    CriticalPoint,
    critical_point,
)
from mftheory.meanfield.degenerate import (
    Degeneracy,
    degeneracy,
    degenerate_count,
    homogeneous_approach_constant,
)
from mftheory.meanfield.diagnosis import (
    INIT_SCHEMES,
    InitDiagnosis,
    diagnose_init,
    init_scale,
)
from mftheory.meanfield.fixed_points import (
    PHASES,
    TRAINABLE_DEPTH_FACTOR,
    FixedPoint,
    depth_scale,
    fixed_point,
    solve_q_star,
    trainable_depth,
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
from mftheory.meanfield.solvers import (
    Roots,
    bracketed_newton,
    illinois,
    newton_fixed_point,
    newton_from_one,
    require_converged,
)

__all__ = [
    "INIT_SCHEMES",
    "INTERP_TOL",
    "PHASES",
    "TRAINABLE_DEPTH_FACTOR",
    "CriticalPoint",
    "Degeneracy",
    "FixedPoint",
    "InitDiagnosis",
    "Roots",
    "bracketed_newton",
    "c_map",
    "check_variances",
    "critical_point",
    "degeneracy",
    "degenerate_count",
    "depth_scale",
    "diagnose_init",
    "fixed_point",
    "homogeneous_approach_constant",
    "illinois",
    "init_scale",
    "newton_fixed_point",
    "newton_from_one",
    "phase_grid",
    "q_map",
    "require_converged",
    "solve_q_star",
    "trainable_depth",
]
