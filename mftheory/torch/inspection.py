"""Reading an existing torch model as a mean-field network, and its Jacobian's spectrum.

``diagnose`` (the torch counterpart of ``mftheory.meanfield.diagnose_init``, which
works from an initialisation rule instead of a model) measures every Conv/Linear layer's
``sigma_w2``, ``sigma_b2`` and variance share, detects the activation from the model's
modules, and places the network on the mean-field phase diagram (``DiagnoseReport``).
``jacobian_singular_values`` computes the singular values of one model's input-output
Jacobian, to set beside ``mftheory.spectrum.jacobian_spectrum``.

Notes
-----
docs/theory.md section 1 (the fan-in scaled variance), section 3 (the fixed point), section 4
(Fourier eigenvalues of the variance share) and section 5 (the Jacobian).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from mftheory.activations.builtins import Activation, get_activation
from mftheory.cnn.modes import check_variance_vector, mode_eigenvalues, wrap_kernel
from mftheory.errors import MFTheoryError
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point, trainable_depth
from mftheory.torch.weights import (
    as_float,
    bias_of,
    layers_of,
    unread_modules,
    weight_of,
    weight_shape,
)

__all__ = ["DiagnoseReport", "diagnose", "jacobian_singular_values"]

FloatArray = NDArray[np.float64]


def jacobian_singular_values(model: nn.Module, x: torch.Tensor) -> FloatArray:
    """Singular values of the input-output Jacobian ``d model(x) / d x`` at one input.

    Parameters
    ----------
    model : torch.nn.Module
        Returns one tensor.
    x : torch.Tensor
        One input as the model takes it (with or without a batch dimension of size 1; a
        larger batch gives the block-diagonal Jacobian of the whole batch).

    Returns
    -------
    ndarray of float64
        ``min(model(x).numel(), x.numel())`` singular values, descending, of the Jacobian
        flattened to ``(model(x).numel(), x.numel())``.

    Raises
    ------
    MFTheoryError
        ``x`` not a floating tensor, or a model that does not return one tensor.

    Notes
    -----
    docs/theory.md section 5: ``J = prod_l D^l W^l``; dynamical isometry is all its singular
    values near 1. Computed with ``torch.autograd.functional.jacobian`` and
    ``torch.linalg.svdvals`` (in float64).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise MFTheoryError("jacobian_singular_values needs x as a floating-point torch.Tensor")
    inp = x.detach().clone()
    jac: Any = torch.autograd.functional.jacobian(model, inp)
    if not isinstance(jac, torch.Tensor):
        raise MFTheoryError("jacobian_singular_values needs a model that returns one tensor")
    mat = jac.reshape(-1, inp.numel()).to(torch.float64)
    return np.asarray(torch.linalg.svdvals(mat).cpu().numpy(), dtype=np.float64)


def _activation_of(module: nn.Module) -> Activation | str | None:
    """The mftheory activation of a torch activation module; a str for an unsupported one.

    The first registry record whose ``torch_module`` matcher accepts the module wins.
    """
    from mftheory.activations.registry import activation_records

    for record in activation_records():
        if record.torch_module is None:
            continue
        params = record.torch_module(torch, module)
        if params is not None:
            return get_activation(record.name, **params)
    if type(module).__module__ == "torch.nn.modules.activation":
        return type(module).__name__
    return None


def _detect_activation(model: nn.Module) -> Activation:
    found: dict[str, Activation] = {}
    unsupported: list[str] = []
    for m in model.modules():
        a = _activation_of(m)
        if isinstance(a, Activation):
            found.setdefault(a.label, a)
        elif isinstance(a, str):
            unsupported.append(a)
    if unsupported:
        raise MFTheoryError(
            f"diagnose: activation module {unsupported[0]} has no mean-field counterpart here;"
            " pass act= (a name or an expression in x)"
        )
    if len(found) > 1:
        raise MFTheoryError(
            f"diagnose: the model mixes activations ({', '.join(sorted(found))}); pass act="
        )
    if not found:
        raise MFTheoryError(
            "diagnose: no activation module in the model (functional calls in forward() are"
            " invisible); pass act="
        )
    return next(iter(found.values()))


def _lambda_range(share: FloatArray, n: tuple[int, ...]) -> tuple[float, float]:
    """min and max of ``|lambda_f|`` for the variance share on an image of sides ``n``."""
    if len(set(n)) == 1:
        _, lam = mode_eigenvalues(share, n[0])
    else:  # a non-cubic image: the same formula, folded per dimension
        arr = check_variance_vector(share)
        lam = np.fft.ifftn(wrap_kernel(arr, n), norm="forward").reshape(-1)
    mag = np.abs(lam)
    return float(mag.min()), float(mag.max())


def _layer_row(
    name: str, m: nn.Module, input_shape: tuple[int, ...] | None, notes: list[str]
) -> dict[str, Any]:
    """One layer's row of ``DiagnoseReport.layers``; what it cannot measure goes to notes."""
    w = weight_of(m).detach().to(torch.float64).cpu()
    c_out, c_fan, spatial = weight_shape(w, "diagnose")
    d = len(spatial)
    sq = w.square()
    total = float(sq.sum())
    share = (sq.sum(dim=(0, 1)) / total).numpy() if total > 0 else np.zeros(spatial)
    bias = bias_of(m)
    b2 = float(bias.detach().to(torch.float64).square().mean()) if bias is not None else 0.0
    n = None if input_shape is None else (input_shape[-d:] if d else ())
    rng: tuple[float, float] | None = None
    if n is None:
        notes.append(f"layer {name!r} was not called by the forward pass")
    elif total == 0:
        notes.append(f"layer {name!r} has all-zero weights")
    elif any(s % 2 == 0 for s in spatial):
        notes.append(f"layer {name!r} has an even kernel {spatial}: no |lambda_f| range")
    elif not d:
        rng = (1.0, 1.0)  # a Linear layer: v = [1], lambda = 1
    else:
        rng = _lambda_range(np.asarray(share, dtype=np.float64), n)
    return {
        "name": name,
        "type": type(m).__name__,
        "c_in": c_fan * int(getattr(m, "groups", 1)),
        "c_out": c_out,
        "kernel": list(spatial),
        "input_spatial": list(n) if n is not None else None,
        "sigma_w2": total / c_out,
        "sigma_w": math.sqrt(total / c_out),
        "sigma_b2": b2,
        "v": np.asarray(share, dtype=np.float64).tolist() if d else [1.0],
        "abs_lambda_min": rng[0] if rng else None,
        "abs_lambda_max": rng[1] if rng else None,
    }


@dataclass(frozen=True)
class DiagnoseReport:
    """Mean-field reading of a model's current weights (``diagnose``).

    Attributes
    ----------
    layers : tuple of dict
        One dict per Conv/Linear layer, in module order: ``name``, ``type``, ``c_in``,
        ``c_out``, ``kernel``, ``input_spatial`` (the spatial size it saw, None if it was not
        called), ``sigma_w2`` (``sum w^2 / c_out``), ``sigma_w``, ``sigma_b2`` (mean square
        bias, 0 without one), ``v`` (variance share per kernel position, summing to 1),
        ``abs_lambda_min``, ``abs_lambda_max`` (range of ``|lambda_f|`` of ``v`` on the
        input's spatial size; None for even kernels, all-zero weights or an unused layer).
    activation : str
    hidden_layers : int
        How many layers the network averages are over (all but the first and last when there
        are at least three, else all).
    sigma_w2, sigma_b2 : float
        Mean over those layers.
    q_star, c_star, chi_1, chi_c, xi_c : float
        ``mftheory.meanfield.fixed_point`` at the mean variances.
    phase : str
        ``"ordered"``, ``"critical"``, ``"chaotic"`` or ``"divergent"``.
    max_trainable_depth : float
        ``6 xi_c`` (docs/theory.md section 5; infinite at criticality).
    depth : int
        Number of Conv/Linear layers.
    nearest_critical_sigma_w2 : float
        Critical ``sigma_w2`` at the same ``sigma_b2``, with its ``critical_status``.
    notes : tuple of str
    """

    layers: tuple[dict[str, Any], ...]
    activation: str
    hidden_layers: int
    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float
    chi_1: float
    chi_c: float
    phase: str
    xi_c: float
    max_trainable_depth: float
    depth: int
    nearest_critical_sigma_w2: float
    critical_status: str
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: plain types, non-finite floats as None."""
        from mftheory.serialize import jsonable

        out: dict[str, object] = {"layers": jsonable(list(self.layers))}
        for name in (
            "activation",
            "hidden_layers",
            "sigma_w2",
            "sigma_b2",
            "q_star",
            "c_star",
            "chi_1",
            "chi_c",
            "phase",
            "xi_c",
            "max_trainable_depth",
            "depth",
            "nearest_critical_sigma_w2",
            "critical_status",
        ):
            out[name] = jsonable(getattr(self, name))
        out["notes"] = list(self.notes)
        return out


@torch.no_grad()
def diagnose(
    model: nn.Module,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    act: str | Activation | None = None,
) -> DiagnoseReport:
    """Read a model's Conv/Linear weights as a mean-field network: where is it on the map?

    Parameters
    ----------
    model : torch.nn.Module
    example_input : torch.Tensor or tuple of torch.Tensor
        Used only for shapes: one forward pass (under ``torch.no_grad()``) with hooks records
        the spatial size each layer sees.
    act : str or Activation, optional
        The activation; by default detected from the model's modules (``nn.Tanh`` -> tanh,
        ``nn.ReLU`` -> relu, ``nn.LeakyReLU`` with its slope, ``nn.GELU``, ``nn.SiLU``,
        ``nn.ELU``, ``nn.SELU``, ``nn.Sigmoid``, ``nn.Softplus`` (beta 1), ``nn.Hardtanh``
        (-1, 1)).

    Returns
    -------
    DiagnoseReport

    Raises
    ------
    MFTheoryError
        No Conv/Linear layer; no, mixed or unsupported activation modules without ``act``.

    Notes
    -----
    Per layer (docs/theory.md section 1): for ``w_ij(b) ~ N(0, sigma_w2 v_b / c_in)``,
    ``E[sum_{i,j,b} w_ij(b)^2] = c_out sigma_w2``, so the estimate is
    ``sigma_w2 = sum w^2 / c_out`` (exact for orthogonal kernels, relative standard error
    ``sqrt(2 sum_b v_b^2 / (c_in c_out))`` for Gaussian ones), and the variance share is
    ``v_b = sum_{i,j} w_ij(b)^2 / sum w^2``. Its Fourier eigenvalues ``lambda_f`` on the
    layer's input size are those of ``mftheory.cnn.modes.mode_eigenvalues`` (section 4).
    Network (section 3): the mean ``sigma_w2``, ``sigma_b2`` over the hidden layers go to
    ``mftheory.meanfield.fixed_point``; ``max_trainable_depth = 6 xi_c`` (section 5).
    """
    layers = layers_of(model)
    if not layers:
        raise MFTheoryError("diagnose found no nn.Conv1d/2d/3d or nn.Linear layer")
    a = get_activation(act) if act is not None else _detect_activation(model)
    seen: dict[int, tuple[int, ...]] = {}
    handles = []

    def hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if id(mod) not in seen and inputs and isinstance(inputs[0], torch.Tensor):
            seen[id(mod)] = tuple(int(s) for s in inputs[0].shape)

    for _, m in layers:
        handles.append(m.register_forward_hook(hook))
    try:
        if isinstance(example_input, tuple):
            model(*example_input)
        else:
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    notes: list[str] = []
    other = unread_modules(model)
    if other:
        notes.append(f"parameters not read (not Conv/Linear): {', '.join(other)}")
    rows = [_layer_row(name, m, seen.get(id(m)), notes) for name, m in layers]
    hidden = rows[1:-1] if len(rows) >= 3 else rows
    w2 = float(np.mean([r["sigma_w2"] for r in hidden]))
    b2m = float(np.mean([r["sigma_b2"] for r in hidden]))
    fp = fixed_point(a, sigma_w2=w2, sigma_b2=b2m)
    cp = critical_point(a, sigma_b2=b2m)
    xi_c = as_float(fp.xi_c)
    return DiagnoseReport(
        layers=tuple(rows),
        activation=a.label,
        hidden_layers=len(hidden),
        sigma_w2=w2,
        sigma_b2=b2m,
        q_star=as_float(fp.q_star),
        c_star=as_float(fp.c_star),
        chi_1=as_float(fp.chi_1),
        chi_c=as_float(fp.chi_c),
        phase=str(fp.phase),
        xi_c=xi_c,
        max_trainable_depth=float(trainable_depth(xi_c)),
        depth=len(rows),
        nearest_critical_sigma_w2=as_float(cp.sigma_w2),
        critical_status=str(cp.status),
        notes=tuple(notes),
    )
