"""The one registry of named activations: look-up, the list of names, and user registration.

Every part of mftheory that needs to know about a named activation asks this module: the
integrators (through ``Activation.closed_form``), ``--act`` of the CLI (``act_help``),
the torch backend of the Monte Carlo ensembles (``ActivationRecord.torch_phi``) and
``mftheory.torch.diagnose`` (``ActivationRecord.torch_module``). The built-ins are
registered by ``mftheory.activations.builtins``; a user adds a family with
``register_activation`` (and removes it with ``unregister_activation``, or uses
``registered_activation`` as a context manager).

Examples
--------
>>> import numpy as np
>>> from mftheory.activations import Erf, get_activation, registered_activation
>>> from scipy import special
>>> with registered_activation(
...     "erf_half",
...     lambda x: special.erf(x / 2),
...     lambda x: np.exp(-x * x / 4) / np.sqrt(np.pi),
...     help="erf(x/2)",
...     closed_form=lambda: Erf(scale=0.5),
... ):
...     get_activation("erf_half").closed_form
Erf(scale=0.5, key='erf')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, overload

from mftheory.activations.base import (
    Activation,
    ActivationRecord,
    Array,
    TorchFactory,
    TorchMatcher,
)
from mftheory.activations.closed_forms import ClosedForm
from mftheory.activations.expression import parse_activation
from mftheory.errors import MFTheoryError

__all__ = [
    "ACTIVATION_NAMES",
    "act_help",
    "activation_records",
    "get_activation",
    "lookup_activation",
    "record_of",
    "register_activation",
    "registered_activation",
    "unregister_activation",
]

_RECORDS: dict[str, ActivationRecord] = {}
_ALIASES: dict[str, str] = {}
_BUILTIN: set[str] = set()


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


class _Names(Sequence[str]):
    """The registered names, in order of registration: a live, read-only sequence."""

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...
    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        return tuple(_RECORDS)[i]

    def __len__(self) -> int:
        return len(_RECORDS)

    def __contains__(self, name: object) -> bool:
        return name in _RECORDS

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(tuple(_RECORDS))


#: Names accepted by ``get_activation`` (besides user expressions); follows the registry.
ACTIVATION_NAMES: Sequence[str] = _Names()


def activation_records() -> tuple[ActivationRecord, ...]:
    """Every registered record, built-ins first, in order of registration."""
    return tuple(_RECORDS.values())


def lookup_activation(name: str) -> ActivationRecord | None:
    """The record of a name or alias (case-insensitive, ``-`` and ``_`` alike), or None."""
    key = _key(name)
    return _RECORDS.get(_ALIASES.get(key, key))


def record_of(act: Activation) -> ActivationRecord | None:
    """The record that builds exactly ``act`` (same functions and parameters), or None."""
    record = _RECORDS.get(act.name)
    if record is None or {k for k, _ in act.params} != {k for k, _ in record.params}:
        return None
    return record if record.build(**dict(act.params)) == act else None


def act_help() -> str:
    """The ``--act`` help of the CLI: every registered name with its one-line help."""
    names = "; ".join(f"{r.name} = {r.help}" for r in _RECORDS.values())
    return f"Activation: {names}; or an expression in x such as 'x*sigmoid(x)'."


def register_activation(
    name: str,
    phi: Callable[..., Array],
    dphi: Callable[..., Array],
    *,
    help: str,
    aliases: Sequence[str] = (),
    kinks: Sequence[float] = (),
    closed_form: Callable[..., ClosedForm] | None = None,
    params: Mapping[str, float] | None = None,
    torch_phi: TorchFactory | None = None,
    torch_module: TorchMatcher | None = None,
) -> ActivationRecord:
    """Add a named activation family; every part of mftheory sees it at once.

    Parameters
    ----------
    name : str
        A new name: an identifier other than ``x`` (stored lower case).
    phi, dphi : callable
        ``phi(x, **params)`` and its derivative, vectorised over float arrays.
    help : str
        One line describing it (shown by ``--help``).
    aliases : sequence of str
        Other names accepted by ``get_activation``.
    kinks : sequence of float
        Where ``phi`` or ``phi'`` is not smooth.
    closed_form : callable, optional
        ``closed_form(**params)`` -> a ``ClosedForm``.
    params : mapping of str to float, optional
        Parameter names and their defaults (passed to ``phi``, ``dphi``, ``closed_form``).
    torch_phi : callable, optional
        ``torch_phi(torch, **params)`` -> a function on tensors (native torch backend).
    torch_module : callable, optional
        ``torch_module(torch, module)`` -> parameters (``{}`` for none) if the ``torch.nn``
        module is this activation, else None (``mftheory.torch.diagnose``).

    Returns
    -------
    ActivationRecord

    Raises
    ------
    MFTheoryError
        A name or alias that is not an identifier, is ``x``, or is already taken; a
        non-finite parameter default.
    """
    key = _key(name)
    alias_keys = tuple(_key(a) for a in aliases)
    for k in (key, *alias_keys):
        if not k.isidentifier() or k == "x":
            raise MFTheoryError(f"activation name {k!r} must be an identifier other than x")
        if k in _RECORDS or k in _ALIASES:
            raise MFTheoryError(f"activation name {k!r} is already registered")
    if len(set((key, *alias_keys))) != 1 + len(alias_keys):
        raise MFTheoryError(f"activation {key!r}: repeated name among the aliases")
    defaults = tuple((str(k), float(v)) for k, v in (params or {}).items())
    for pname, pval in defaults:
        if not math.isfinite(pval):
            raise MFTheoryError(f"default of {pname} must be finite, got {pval!r}")
    record = ActivationRecord(
        name=key,
        phi=phi,
        dphi=dphi,
        help=str(help),
        aliases=alias_keys,
        kinks=tuple(float(k) for k in kinks),
        closed_form=closed_form,
        params=defaults,
        torch_phi=torch_phi,
        torch_module=torch_module,
    )
    _RECORDS[key] = record
    for a in alias_keys:
        _ALIASES[a] = key
    return record


def _register_builtin(record: ActivationRecord) -> None:
    """Used by ``mftheory.activations.builtins`` only: these cannot be unregistered."""
    register_activation(
        record.name,
        record.phi,
        record.dphi,
        help=record.help,
        aliases=record.aliases,
        kinks=record.kinks,
        closed_form=record.closed_form,
        params=dict(record.params),
        torch_phi=record.torch_phi,
        torch_module=record.torch_module,
    )
    _BUILTIN.add(record.name)


def unregister_activation(name: str) -> None:
    """Remove a family added by ``register_activation`` (built-ins cannot be removed)."""
    record = lookup_activation(name)
    if record is None:
        raise MFTheoryError(f"no registered activation {name!r}")
    if record.name in _BUILTIN:
        raise MFTheoryError(f"{record.name!r} is a built-in activation and cannot be removed")
    del _RECORDS[record.name]
    for a in record.aliases:
        _ALIASES.pop(a, None)


@contextmanager
def registered_activation(
    name: str, phi: Callable[..., Array], dphi: Callable[..., Array], **kwargs: Any
) -> Iterator[ActivationRecord]:
    """``register_activation`` for the duration of a ``with`` block (same arguments)."""
    record = register_activation(name, phi, dphi, **kwargs)
    try:
        yield record
    finally:
        unregister_activation(record.name)


def get_activation(
    spec: str | Activation,
    *,
    negative_slope: float | None = None,
    alpha: float | None = None,
    **params: float,
) -> Activation:
    """Look up a registered activation by name, or parse a user expression in ``x``.

    Parameters
    ----------
    spec : str or Activation
        A name from ``ACTIVATION_NAMES`` or an alias (case-insensitive; ``-`` and ``_``
        alike), an expression such as ``"x*sigmoid(x)"`` (parsed by
        ``mftheory.activations.expression``, never evaluated as Python), or an
        ``Activation``, returned unchanged.
    negative_slope : float, optional
        Slope of ``leaky_relu`` for x < 0 (default: PyTorch's 0.01).
    alpha : float, optional
        ``alpha`` of ``elu`` (default: PyTorch's 1).
    **params : float
        Parameters of a family added with ``register_activation``.

    Raises
    ------
    MFTheoryError
        Unknown name, invalid expression, a non-finite parameter, or a parameter in
        ``**params`` that the family does not have.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> erf = get_activation("erf")
    >>> float(erf.phi(np.array(0.5))) == math.erf(0.5), erf.kinks
    (True, ())
    >>> leaky = get_activation("leaky_relu", negative_slope=0.2)
    >>> leaky.kinks, float(leaky.dphi(np.array(-1.0)))
    ((0.0,), 0.2)
    """
    if isinstance(spec, Activation):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise MFTheoryError("activation must be a non-empty name or expression")
    key = _key(spec)
    record = lookup_activation(key)
    if record is not None:
        given = dict(params)
        for pname, pval in (("negative_slope", negative_slope), ("alpha", alpha)):
            if pval is not None:
                given[pname] = pval
        for pname, pval in given.items():
            if not math.isfinite(pval):
                raise MFTheoryError(f"{pname} must be finite, got {pval!r}")
        known = {k for k, _ in record.params}
        extra = sorted(set(params) - known)
        if extra:
            raise MFTheoryError(f"activation {record.name!r} has no parameter {extra[0]!r}")
        return record.build(**{k: v for k, v in given.items() if k in known})
    if key.isidentifier() and key != "x":
        names = ", ".join(ACTIVATION_NAMES)
        raise MFTheoryError(
            f"unknown activation {spec!r}; choose one of {names}, or give an expression in x"
        )
    return parse_activation(spec)
