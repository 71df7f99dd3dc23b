"""Activation functions: one registry of named families, closed forms, the expression parser.

* ``base``: ``Activation`` and ``ActivationRecord``,
* ``closed_forms``: ``ClosedForm`` and its families,
* ``registry``: ``get_activation``, ``ACTIVATION_NAMES``,
  ``register_activation`` and friends,
* ``builtins``: the built-in records (registered on import),
* ``expression``: the safe parser of formulas in ``x``.
"""

from mftheory.activations.base import Activation, ActivationRecord, BoundFunction
from mftheory.activations.builtins import BUILTIN_RECORDS
from mftheory.activations.closed_forms import ClosedForm, Erf, PositivelyHomogeneous, Sin
from mftheory.activations.expression import (
    EXPRESSION_FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    parse_activation,
)
from mftheory.activations.registry import (
    ACTIVATION_NAMES,
    act_help,
    activation_records,
    get_activation,
    lookup_activation,
    record_of,
    register_activation,
    registered_activation,
    unregister_activation,
)

__all__ = [
    "ACTIVATION_NAMES",
    "BUILTIN_RECORDS",
    "EXPRESSION_FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Activation",
    "ActivationRecord",
    "BoundFunction",
    "ClosedForm",
    "Erf",
    "PositivelyHomogeneous",
    "Sin",
    "act_help",
    "activation_records",
    "get_activation",
    "lookup_activation",
    "parse_activation",
    "record_of",
    "register_activation",
    "registered_activation",
    "unregister_activation",
]
