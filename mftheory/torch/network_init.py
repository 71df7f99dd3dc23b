"""Initialisation of a whole network: on the critical line, anywhere, or looks-linear.

``critical_init_`` and ``mean_field_init_`` fill every Conv/Linear layer of a vanilla
network with the fan-in scaled variance ``sum w^2 / c_out = sigma_w2`` the mean-field maps
assume (conventions in ``mftheory.torch.initializers``); ``looks_linear_`` is Burkholz
& Dubatovka's parameter sharing for ReLU networks.

Notes
-----
docs/theory.md section 3 (the critical point and fixed point), section 5 (looks-linear ReLU) and
section 6 (orthogonal and Delta-Orthogonal kernels).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from numpy.typing import ArrayLike
from torch import nn

from mftheory.activations.builtins import Activation, get_activation
from mftheory.checks import nonnegative_float
from mftheory.errors import MFTheoryError
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.torch.initializers import variance_vector_normal_
from mftheory.torch.weights import (
    LAYER_TYPES,
    as_float,
    bias_of,
    centre,
    check_odd,
    draw_device,
    fill_algorithm1,
    fill_delta,
    layers_of,
    randn,
    random_orthogonal,
    unread_modules,
    weight_of,
    weight_shape,
)

__all__ = ["SCHEMES", "CriticalInitReport", "critical_init_", "looks_linear_", "mean_field_init_"]

#: ``progress(layers_done, layers)``, called after each layer is filled.
ProgressCallback = Callable[[int, int], None]

logger = logging.getLogger("mftheory")

_SLOW_SECONDS = 1.0  # a fill that took this long is summed up at INFO level

SCHEMES: tuple[str, ...] = ("delta-orthogonal", "orthogonal", "gaussian")
"""Weight schemes of ``critical_init_``."""


@dataclass(frozen=True)
class CriticalInitReport:
    """What ``critical_init_`` did, and the mean-field point it put the network at.

    Attributes
    ----------
    sigma_w2, sigma_b2 : float
        Critical weight variance (fan-in scaled, ``sigma_w = sqrt(sigma_w2)``) and bias
        variance.
    q_star, c_star, chi_1, chi_c, xi_c, xi_q : float
        Fixed point and slopes at ``(sigma_w2, sigma_b2)``
        (``mftheory.meanfield.fixed_point``); ``xi_c`` is infinite on the critical line.
    scheme : str
        ``"delta-orthogonal"``, ``"orthogonal"`` or ``"gaussian"``.
    layers : int
        Number of Conv/Linear layers initialised.
    notes : tuple of str
        Per-layer decisions worth knowing (non-square layers, ignored ``v``).
    activation : str
        The activation's label.
    """

    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float
    chi_1: float
    chi_c: float
    xi_c: float
    xi_q: float
    scheme: str
    layers: int
    notes: tuple[str, ...] = ()
    activation: str = ""

    @property
    def sigma_w(self) -> float:
        """``sqrt(sigma_w2)``."""
        return math.sqrt(self.sigma_w2)

    @property
    def sigma_b(self) -> float:
        """``sqrt(sigma_b2)``."""
        return math.sqrt(self.sigma_b2)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: plain types, non-finite floats as None."""
        from mftheory.serialize import jsonable

        return {
            "activation": self.activation,
            "scheme": self.scheme,
            "sigma_w2": jsonable(self.sigma_w2),
            "sigma_w": jsonable(self.sigma_w),
            "sigma_b2": jsonable(self.sigma_b2),
            "sigma_b": jsonable(self.sigma_b),
            "q_star": jsonable(self.q_star),
            "c_star": jsonable(self.c_star),
            "chi_1": jsonable(self.chi_1),
            "chi_c": jsonable(self.chi_c),
            "xi_c": jsonable(self.xi_c),
            "xi_q": jsonable(self.xi_q),
            "layers": self.layers,
            "notes": list(self.notes),
        }


def _check_layers(model: nn.Module, scheme: str, fname: str) -> list[tuple[str, nn.Module]]:
    """The model's Conv/Linear layers, after checking the scheme and that they are vanilla."""
    if scheme not in SCHEMES:
        raise MFTheoryError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    layers = layers_of(model)
    if not layers:
        raise MFTheoryError(f"{fname} found no nn.Conv1d/2d/3d or nn.Linear layer")
    for name, m in layers:
        if getattr(m, "groups", 1) != 1:
            raise MFTheoryError(
                f"layer {name!r} is a grouped convolution (groups={getattr(m, 'groups', 1)});"
                f" {fname} handles vanilla networks only"
            )
    return layers


def _fill_layer(
    name: str,
    m: nn.Module,
    sw: float,
    scheme: str,
    v: str | ArrayLike,
    generator: torch.Generator | None,
    fname: str,
) -> str | None:
    """Fill one layer's weight with ``scheme`` at ``sigma_w = sw``; a note, or None."""
    w = weight_of(m)
    c_out, c_in, spatial = weight_shape(w, fname)
    if scheme == "gaussian":
        variance_vector_normal_(w, v, gain=sw, generator=generator)
        return None
    check_odd(spatial, scheme)
    if scheme == "orthogonal" and len(set(spatial)) > 1:
        raise MFTheoryError(f"kernel shape {spatial} is not cubic (Algorithm 1)")
    s = sw * math.sqrt(c_out / min(c_in, c_out))
    fill = fill_algorithm1 if scheme == "orthogonal" and spatial else fill_delta
    fill(w, s, generator)
    if c_in > c_out:
        return (
            f"layer {name!r}: c_in = {c_in} > c_out = {c_out}, orthonormal rows"
            f" times sigma_w = {sw:.6g} (not an isometry)"
        )
    if c_in < c_out:
        return (
            f"layer {name!r}: c_in = {c_in} < c_out = {c_out}, singular value"
            f" sigma_w sqrt(c_out / c_in) = {s:.6g} so that sum w^2 / c_out ="
            " sigma_w2"
        )
    return None


@torch.no_grad()
def _init_layers(
    model: nn.Module,
    layers: list[tuple[str, nn.Module]],
    w2: float,
    b2: float,
    scheme: str,
    v: str | ArrayLike,
    generator: torch.Generator | None,
    fname: str,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Fill every layer at ``(sigma_w2, sigma_b2)`` with ``scheme``; the notes to report.

    Logs on ``logging.getLogger("mftheory")``: what it fills (INFO), each layer and its time
    (DEBUG), and the total when it took long (INFO). ``progress(layers_done, layers)`` after
    each layer.
    """
    sw = math.sqrt(w2)
    notes: list[str] = []
    other = unread_modules(model)
    if other:
        notes.append(f"modules left as they were (not Conv/Linear): {', '.join(other)}")
    if scheme != "gaussian" and not (isinstance(v, str) and v.strip().lower() == "uniform"):
        notes.append(f"v is ignored by the {scheme} scheme")
    n_weights = sum(weight_of(m).numel() for _, m in layers)
    logger.info(
        "%s: filling %d layers (%d weights) with the %s scheme",
        fname,
        len(layers),
        n_weights,
        scheme,
    )
    begin = time.perf_counter()
    for done, (name, m) in enumerate(layers, start=1):
        tic = time.perf_counter()
        try:
            note = _fill_layer(name, m, sw, scheme, v, generator, fname)
        except MFTheoryError as err:
            raise MFTheoryError(f"layer {name!r}: {err}") from None
        if note is not None:
            notes.append(note)
        bias = bias_of(m)
        if bias is not None:
            dev = draw_device(bias, generator)
            bias.copy_(randn(tuple(bias.shape), generator, dev) * math.sqrt(b2))
        logger.debug(
            "%s: layer %d/%d %r %s filled in %.3f s",
            fname,
            done,
            len(layers),
            name,
            tuple(weight_of(m).shape),
            time.perf_counter() - tic,
        )
        if progress is not None:
            progress(done, len(layers))
    elapsed = time.perf_counter() - begin
    if elapsed >= _SLOW_SECONDS:
        logger.info("%s: %d layers filled in %.1f s", fname, len(layers), elapsed)
    return notes


@torch.no_grad()
def critical_init_(
    model: nn.Module,
    act: str | Activation = "tanh",
    sigma_b2: float = 0.05,
    scheme: str = "delta-orthogonal",
    v: str | ArrayLike = "uniform",
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
) -> CriticalInitReport:
    """Initialise every Conv/Linear layer of a vanilla network on the critical line.

    Parameters
    ----------
    model : torch.nn.Module
        A network of ``nn.Conv1d/2d/3d`` and ``nn.Linear`` layers (``groups=1``) with one
        activation. Other modules are left as they are.
    act : str or Activation
        The network's activation (a name of ``mftheory.ACTIVATION_NAMES`` or an
        expression).
    sigma_b2 : float
        Bias *variance* (0.05 is Schoenholz et al.'s choice for tanh).
    scheme : str
        ``"delta-orthogonal"`` (``delta_orthogonal_``), ``"orthogonal"``
        (``conv_orthogonal_``, Algorithm 1) or ``"gaussian"``
        (``variance_vector_normal_`` with ``v``).
    v : str or array_like
        Variance vector of the Gaussian scheme (a preset name, sized per layer, or one array
        that fits every Conv layer); ignored by the orthogonal schemes, with a note.
    generator : torch.Generator, optional
    progress : callable, optional
        Called as ``progress(layers_done, layers)`` after each layer is filled. The function
        also logs on ``logging.getLogger("mftheory")``: what it fills (INFO), every layer with
        its time (DEBUG) and the total time when it took a second or more (INFO).

    Returns
    -------
    CriticalInitReport

    Raises
    ------
    MFTheoryError
        No Conv/Linear layer, a grouped convolution, unknown scheme, no finite critical point
        for ``(act, sigma_b2)`` (status other than ``"ok"``: ReLU has none at
        ``sigma_b2 > 0``, see ``looks_linear_``), or a layer the scheme cannot fill (the
        message names it).

    Notes
    -----
    docs/theory.md section 3: ``sigma_w2`` is the critical weight variance of
    ``mftheory.meanfield.critical_point`` (``chi_1 = 1``), the report's fields are those of
    ``mftheory.meanfield.fixed_point`` there. Biases are ``N(0, sigma_b2)``.

    Every layer is given the fan-in scaled variance ``sum w^2 / c_out = sigma_w2`` that the
    q-map assumes (module docstring). The Gaussian scheme does so in expectation. The
    orthogonal schemes do so exactly by their singular value
    ``s = sigma_w sqrt(c_out / min(c_in, c_out))``: ``s = sigma_w`` for square layers,
    ``s = sigma_w sqrt(c_out / c_in)`` for channel-expanding ones (an isometry times ``s``).
    A layer with ``c_in > c_out`` (a wide readout or input layer) cannot be an isometry: it
    gets orthonormal *rows* times ``sigma_w`` (its transpose is an isometry; for Algorithm 1,
    ``orthogonal_kernel(size, c_out, c_in)`` read with the channel axes swapped), which has
    the right fan-in scaled variance and all singular values equal to ``sigma_w``. Each such
    layer is listed in ``notes``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, padding_mode="circular"), nn.Tanh())
    >>> rep = critical_init_(net, "tanh", sigma_b2=0.05, generator=torch.Generator().manual_seed(0))
    >>> round(rep.sigma_w2, 3), round(rep.q_star, 3)
    (1.761, 0.57)
    """
    b2 = nonnegative_float(sigma_b2, "sigma_b2")
    layers = _check_layers(model, scheme, "critical_init_")
    a = get_activation(act)
    cp = critical_point(a, sigma_b2=b2)
    status = str(cp.status)
    if status != "ok":
        raise MFTheoryError(
            f"{a.label} at sigma_b2={b2:g} has no finite critical point (status {status!r});"
            " try another sigma_b2 (ReLU: use looks_linear_ or sigma_w2 = 2 by hand)"
        )
    w2 = as_float(cp.sigma_w2)
    fp = fixed_point(a, sigma_w2=w2, sigma_b2=b2)
    notes = _init_layers(model, layers, w2, b2, scheme, v, generator, "critical_init_", progress)
    return CriticalInitReport(
        sigma_w2=w2,
        sigma_b2=b2,
        q_star=as_float(fp.q_star),
        c_star=as_float(fp.c_star),
        chi_1=as_float(fp.chi_1),
        chi_c=as_float(fp.chi_c),
        xi_c=as_float(fp.xi_c),
        xi_q=as_float(fp.xi_q),
        scheme=scheme,
        layers=len(layers),
        notes=tuple(notes),
        activation=a.label,
    )


def mean_field_init_(
    model: nn.Module,
    sigma_w2: float,
    sigma_b2: float,
    scheme: str = "gaussian",
    v: str | ArrayLike = "uniform",
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Initialise every Conv/Linear layer at any ``(sigma_w2, sigma_b2)``, in place.

    ``critical_init_`` without the critical point: the same schemes and the same
    fan-in scaled variance ``sum w^2 / c_out = sigma_w2`` per layer, for a point anywhere in
    the phase diagram (ordered, critical or chaotic), as the validation experiments need.

    Parameters
    ----------
    model : torch.nn.Module
        A network of ``nn.Conv1d/2d/3d`` and ``nn.Linear`` layers (``groups=1``).
    sigma_w2, sigma_b2 : float
        Weight and bias *variances* (``>= 0``, finite).
    scheme : str
        ``"gaussian"`` (with ``v``), ``"orthogonal"`` or ``"delta-orthogonal"``.
    v : str or array_like
        Variance vector of the Gaussian scheme (see ``critical_init_``).
    generator : torch.Generator, optional
    progress : callable, optional
        ``progress(layers_done, layers)`` after each layer; logging as ``critical_init_``.

    Returns
    -------
    list of str
        Notes on layers that could not be filled exactly as asked (see
        ``critical_init_``).

    Raises
    ------
    MFTheoryError
        As ``critical_init_``, and for a negative or non-finite ``sigma_w2``.

    Notes
    -----
    docs/theory.md sections 1 and 6.
    """
    w2 = nonnegative_float(sigma_w2, "sigma_w2")
    b2 = nonnegative_float(sigma_b2, "sigma_b2")
    layers = _check_layers(model, scheme, "mean_field_init_")
    return _init_layers(model, layers, w2, b2, scheme, v, generator, "mean_field_init_", progress)


@torch.no_grad()
def looks_linear_(
    layers: Sequence[nn.Module], gain: float = 1.0, generator: torch.Generator | None = None
) -> Sequence[nn.Module]:
    """Burkholz & Dubatovka's looks-linear initialisation of a ReLU network, in place.

    Parameters
    ----------
    layers : sequence of nn.Linear or nn.Conv1d/2d/3d
        The network's layers in order (at least two), a ReLU between consecutive ones; every
        hidden width (``out`` of all but the last) even, and each layer's ``in`` equal to the
        previous layer's ``out``. Conv kernels need odd sides.
    gain : float
        Singular value of each shared block ``W_l`` (1 gives an orthogonal network).
    generator : torch.Generator, optional

    Returns
    -------
    sequence of nn.Module
        ``layers``.

    Raises
    ------
    MFTheoryError
        Fewer than two layers, a module that is not Linear/Conv, an odd hidden width,
        mismatched widths, an even kernel side, a grouped convolution, a bad gain.

    Notes
    -----
    docs/theory.md section 5. With hidden widths ``2 m_l`` the weights are

        first:  [W_1; -W_1]            middle:  [[W_l, -W_l], [-W_l, W_l]]     last:  [W_L, -W_L]

    and all biases 0. Then the pre-activations of hidden layer ``l`` are ``[u_l; -u_l]`` with
    ``u_l = W_l ... W_1 x``, and ``relu(u) - relu(-u) = u`` makes the network exactly the
    linear map ``W_L ... W_1 x`` at initialisation. Each ``W_l`` (``m_l x m_{l-1}``) is
    ``gain`` times a Haar-random matrix with orthonormal columns, or rows when it is wide
    (as ``torch.nn.init.orthogonal_``); for Conv layers it sits at the centre tap
    (Delta-Orthogonal). With square blocks and ``gain = 1`` every singular value of the
    input-output Jacobian is 1, which ReLU networks cannot reach with independent weights.
    """
    g = nonnegative_float(gain, "gain")
    mods = list(layers)
    if len(mods) < 2:
        raise MFTheoryError(f"looks_linear_ needs at least two layers, got {len(mods)}")
    shapes = []
    for idx, m in enumerate(mods):
        if not isinstance(m, LAYER_TYPES):
            raise MFTheoryError(
                f"looks_linear_: layer {idx} is {type(m).__name__}, not nn.Linear or nn.ConvNd"
            )
        if getattr(m, "groups", 1) != 1:
            raise MFTheoryError(f"looks_linear_: layer {idx} is a grouped convolution")
        c_out, c_in, spatial = weight_shape(weight_of(m), "looks_linear_")
        check_odd(spatial, f"looks_linear_ layer {idx}")
        shapes.append((c_out, c_in, spatial))
    for idx in range(len(mods) - 1):
        width = shapes[idx][0]
        if width % 2:
            raise MFTheoryError(
                f"looks_linear_: hidden width {width} (output of layer {idx}) is odd; units"
                " come in pairs"
            )
        if shapes[idx + 1][1] != width:
            raise MFTheoryError(
                f"looks_linear_: layer {idx + 1} takes {shapes[idx + 1][1]} inputs, layer {idx}"
                f" gives {width}"
            )
    last = len(mods) - 1
    for idx, m in enumerate(mods):
        w = weight_of(m)
        c_out, c_in, spatial = shapes[idx]
        rows = c_out if idx == last else c_out // 2
        cols = c_in if idx == 0 else c_in // 2
        blk = g * random_orthogonal(rows, cols, generator, draw_device(w, generator))
        if idx == 0:
            full = torch.cat([blk, -blk], dim=0)
        elif idx == last:
            full = torch.cat([blk, -blk], dim=1)
        else:
            full = torch.cat([torch.cat([blk, -blk], 1), torch.cat([-blk, blk], 1)], 0)
        out = torch.zeros(tuple(w.shape), dtype=torch.float64, device=full.device)
        out[centre(spatial)] = full
        w.copy_(out)
        bias = bias_of(m)
        if bias is not None:
            bias.zero_()
    return layers
