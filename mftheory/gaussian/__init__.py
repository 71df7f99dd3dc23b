"""Gaussian integration: quadrature rules, one- and two-dimensional expectations, q-tables."""

from mftheory.gaussian.expectations import (
    HermiteSeries,
    derivative_second_moment,
    hermite_series,
    nested_pair_expectation,
    pair_expectation,
    polynomial_and_slope,
    second_moment,
    second_moment_slope,
)
from mftheory.gaussian.qtable import (
    QTable,
    node_moments,
    q_table,
)
from mftheory.gaussian.quadrature import (
    QuadratureSettings,
    hermite_functions,
    hermite_panels,
    normal_rule,
)

__all__ = [
    "HermiteSeries",
    "QTable",
    "QuadratureSettings",
    "derivative_second_moment",
    "hermite_functions",
    "hermite_panels",
    "hermite_series",
    "nested_pair_expectation",
    "node_moments",
    "normal_rule",
    "pair_expectation",
    "polynomial_and_slope",
    "q_table",
    "second_moment",
    "second_moment_slope",
]
