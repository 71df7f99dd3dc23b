"""Activation functions: the registry of built-ins, closed forms, and the safe expression parser."""

from mftheory.activations.builtins import (
    ACTIVATION_NAMES,
    Activation,
    get_activation,
)
from mftheory.activations.expression import (
    EXPRESSION_FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    parse_activation,
)

__all__ = [
    "ACTIVATION_NAMES",
    "EXPRESSION_FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Activation",
    "get_activation",
    "parse_activation",
]
