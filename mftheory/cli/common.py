"""The prologue every command shares, and helpers more than one command uses.

* ``start``: messages, the activation (with notes on parameters that do not apply to it)
  and the check of the ``-o`` suffix, before any computation;
* ``resolve_scale``: one ``--sigma-X`` / ``--sigma-X2`` pair as variances;
* ``given``, ``pick_alias``: whether the user typed an option, and hidden old names;
* variance vectors (``--v``, ``--kernel``, ``--dim``), the critical weight variance used
  when none is given, and the fields every JSON object shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import typer
from numpy.typing import NDArray

from mftheory.cli.messages import Messages
from mftheory.cli.output import check_output_path
from mftheory.cli.params import ScaleValue
from mftheory.errors import MFTheoryError

if TYPE_CHECKING:
    from mftheory.activations.builtins import Activation

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_KERNEL",
    "DEFAULT_NEGATIVE_SLOPE",
    "DEFAULT_SIGMA_B2",
    "Scale",
    "activation_fields",
    "begin",
    "format_v",
    "given",
    "load_activation",
    "normalized_v",
    "pick_alias",
    "resolve_scale",
    "scalar",
    "scale_fields",
    "settings_of",
    "start",
    "variance_vector_of",
    "weight_variance",
]

FloatArray = NDArray[np.float64]
T = TypeVar("T")

#: Bias variance used when neither --sigma-b nor --sigma-b2 is given (Schoenholz et al. 2017
#: quote sigma_b^2 = 0.05 for tanh).
DEFAULT_SIGMA_B2 = 0.05
#: The largest finite float64.
_FLOAT_MAX = float(np.finfo(np.float64).max)
#: PyTorch's defaults for leaky_relu and elu.
DEFAULT_NEGATIVE_SLOPE = 0.01
DEFAULT_ALPHA = 1.0
#: Kernel side of a preset --v when --kernel is not given.
DEFAULT_KERNEL = 3


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave the parameter ``name`` (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def pick_alias(ctx: typer.Context, new: tuple[str, str, T], old: tuple[str, str, T | None]) -> T:
    """The value of an option that also has a hidden old name.

    ``new`` and ``old`` are ``(parameter name, option as typed, value)``; the old one wins
    when only it was given.

    Raises
    ------
    MFTheoryError
        Both given.
    """
    (new_name, new_opt, new_value), (old_name, old_opt, old_value) = new, old
    if old_value is None or not given(ctx, old_name):
        return new_value
    if given(ctx, new_name):
        raise MFTheoryError(f"give {new_opt} or {old_opt} (its old name), not both")
    return old_value


def load_activation(
    ctx: typer.Context, spec: str, negative_slope: float, alpha: float
) -> tuple[Activation, list[str]]:
    """The activation for ``--act``, and notes about parameters given that do not apply.

    Raises
    ------
    MFTheoryError
        Unknown name or invalid expression.
    """
    from mftheory.activations.builtins import get_activation

    act = get_activation(spec, negative_slope=negative_slope, alpha=alpha)
    used = {key for key, _ in act.params}
    notes = [
        f"{option} applies to {family} only; ignored for {act.label}"
        for option, name, family in (
            ("--negative-slope", "negative_slope", "leaky_relu"),
            ("--alpha", "alpha", "elu"),
        )
        if given(ctx, name) and name not in used
    ]
    return act, notes


def begin(quiet: bool, output: Path | None = None, *, figures: bool = False) -> Messages:
    """The prologue of a command without an activation: its messages, and the check that
    ``output`` has a suffix the command can write (``figures``: it draws one)."""
    check_output_path(output, figures=figures)
    return Messages(quiet)


def start(
    ctx: typer.Context,
    *,
    act: str,
    negative_slope: float,
    alpha: float,
    quiet: bool,
    output: Path | None = None,
    figures: bool = False,
) -> tuple[Messages, Activation]:
    """The prologue of a command: its messages, its activation (notes on parameters given
    that do not apply to it) and the check of the ``-o`` suffix, before any computation."""
    activation, notes = load_activation(ctx, act, negative_slope, alpha)
    messages = begin(quiet, output, figures=figures)
    for note in notes:
        messages.warn(note)
    return messages, activation


@dataclass(frozen=True)
class Scale:
    """A weight or bias scale as variances.

    Attributes
    ----------
    variance : ndarray of float64
        Shape ``()`` for one value, ``(count,)`` for a range.
    option : str
        The option that gave it (``"--sigma-b"`` or ``"--sigma-b2"``), ``""`` for a default.
    is_range : bool
        True when the user wrote ``START:STOP:COUNT``.
    """

    variance: FloatArray
    option: str
    is_range: bool

    @property
    def value(self) -> float:
        """The single variance (only for a non-range scale)."""
        return float(self.variance)


def resolve_scale(
    ctx: typer.Context, name: str, std: ScaleValue | None, var: ScaleValue | None
) -> Scale | None:
    """The ``--sigma-{name}`` / ``--sigma-{name}2`` pair as variances (a standard deviation
    is squared point by point); the variance's default when neither was given, ``None`` when
    it has none.

    Raises
    ------
    MFTheoryError
        Both forms given.
    """
    std_opt, var_opt = f"--sigma-{name}", f"--sigma-{name}2"
    var_given = var is not None and given(ctx, f"sigma_{name}2")
    if std is not None and var_given:
        raise MFTheoryError(f"give {std_opt} or {var_opt}, not both")
    if std is not None:
        with np.errstate(over="ignore"):
            squared = np.asarray(std.values, dtype=np.float64) ** 2
        if not np.isfinite(squared).all():
            from mftheory.cli.params import shown

            raise MFTheoryError(
                f"{std_opt} {shown(std.text)} is too large: its square, the variance"
                f" {var_opt}, is not a finite float (a standard deviation must be below"
                f" {math.sqrt(_FLOAT_MAX):.3g})"
            )
        return Scale(squared, std_opt, std.is_range)
    if var is None:
        return None
    return Scale(var.values, var_opt if var_given else "", var.is_range)


def scale_fields(w2: float, b2: float) -> dict[str, float]:
    """Both forms of the weight and bias scales, for outputs."""
    return {
        "sigma_w": math.sqrt(w2),
        "sigma_w2": w2,
        "sigma_b": math.sqrt(b2),
        "sigma_b2": b2,
    }


def activation_fields(act: Activation) -> dict[str, Any]:
    """``activation`` (the label, e.g. ``leaky_relu(negative_slope=0.01)``) and its parameters."""
    return {"activation": act.label, "activation_params": dict(act.params)}


def settings_of(result: Any) -> dict[str, Any]:
    """The numerical settings of a core result: quadrature, and solver options it records."""
    out: dict[str, Any] = dict(result.settings.as_dict())
    for key in ("q0", "critical_tol"):
        if hasattr(result, key):
            out[key] = getattr(result, key)
    return out


def scalar(x: Any) -> float:
    """A 0-d array or number as a Python float."""
    return float(np.asarray(x, dtype=np.float64))


def variance_vector_of(spec: str, kernel: int | None, dim: int | None) -> FloatArray:
    """The (unnormalized) v from ``--v``, ``--kernel`` and ``--dim``, checked for consistency.

    Raises
    ------
    MFTheoryError
        A malformed v, more than 2 dimensions, or a ``--kernel``/``--dim`` that does not match.
    """
    from mftheory.cnn.modes import VARIANCE_VECTOR_PRESETS, variance_vector

    text = spec.strip()
    try:
        if text.lower() in VARIANCE_VECTOR_PRESETS:
            return variance_vector(
                text,
                kernel=DEFAULT_KERNEL if kernel is None else kernel,
                dim=1 if dim is None else dim,
            )
        v = variance_vector(text)
    except MFTheoryError as exc:
        raise MFTheoryError(f"--v: {exc}") from None
    if v.ndim > 2:
        raise MFTheoryError(f"--v {spec!r} has {v.ndim} dimensions; only 1 or 2 are supported")
    if dim is not None and dim != v.ndim:
        raise MFTheoryError(f"--dim {dim} does not match --v {spec!r}, which is {v.ndim}D")
    if kernel is not None and any(side != kernel for side in v.shape):
        raise MFTheoryError(
            f"--kernel {kernel} does not match --v {spec!r}, whose kernel is"
            f" {'x'.join(str(s) for s in v.shape)}"
        )
    return v


def format_v(v: Any) -> str:
    """v as the ``--v`` syntax: commas within a row, ``;`` between rows."""
    rows = v.reshape(-1, v.shape[-1])
    return "; ".join(",".join(f"{x:.6g}" for x in row) for row in rows)


def normalized_v(vec: FloatArray, messages: Messages) -> tuple[FloatArray, float]:
    """``vec`` rescaled to sum to 1 (a note says when it did not), and its sum as given."""
    from mftheory.cnn.modes import normalize_variance_vector

    v_used, v_sum = normalize_variance_vector(vec)
    if abs(v_sum - 1.0) > 1e-12:
        messages.warn(
            f"v sums to {v_sum:.12g}, not 1; rescaled to sum to 1 (v / {v_sum:.12g});"
            " sigma_w2 is used as given"
        )
    return np.asarray(v_used, dtype=np.float64), float(v_sum)


def weight_variance(
    activation: Activation, weight: Scale | None, sigma_b2: float, messages: Messages
) -> tuple[float, str]:
    """The weight variance and where it came from: ``"given"``, or ``"critical"`` (noted).

    Raises
    ------
    MFTheoryError
        No weight given and no critical point at this bias.
    """
    from mftheory.meanfield.critical import critical_point

    if weight is not None:
        return weight.value, "given"
    w2 = scalar(critical_point(activation, sigma_b2=sigma_b2).sigma_w2)
    if not math.isfinite(w2):
        raise MFTheoryError(
            f"no critical sigma_w2 for {activation.label} at sigma_b2 = {sigma_b2:g};"
            " give --sigma-w or --sigma-w2"
        )
    messages.note(
        f"no weight scale given: using the critical sigma_w2 = {w2:.10g}"
        f" (sigma_w = {math.sqrt(w2):.10g}) of {activation.label} at sigma_b2 = {sigma_b2:g}"
    )
    return w2, "critical"
