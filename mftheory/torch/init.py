"""PyTorch initialisers and diagnostics built on the mean-field core.

Everything here is a thin layer over the numpy core: the critical point and fixed point come
from :mod:`mftheory.meanfield.critical` and :mod:`mftheory.meanfield.fixed_points`, the
Algorithm 1 kernels from :mod:`mftheory.cnn.kernels`, the variance vectors and Fourier
eigenvalues from :mod:`mftheory.cnn.modes`. This module imports torch at its top;
``import mftheory`` never imports it (import ``mftheory.torch`` explicitly).

Layouts. PyTorch stores a convolution weight as ``(c_out, c_in, *spatial)`` and a linear
weight as ``(out, in)``; :mod:`mftheory.cnn.kernels` uses ``(*spatial, c_in, c_out)``. The
conversion is ``w[o, i, b] = K[b, i, o]``. PyTorch's convolution is a cross-correlation: with
``padding=k`` and ``padding_mode="circular"`` a ``(2k+1)``-wide layer computes

    out_o(a) = sum_i sum_{t=0}^{2k} w[o, i, t] x_i(a + t - k)  (indices mod n),

which is THEORY.md section 1's ``h_j(a) = sum_i sum_b w_ij(b) x_i(a + b)`` with the centred
offset ``b = t - k``. (Orthogonality does not depend on that convention: flipping a kernel
keeps ``sum_b K(b)^T K(b + g) = delta_g I``.)

Initialisers follow ``torch.nn.init``: a trailing underscore, in place under
``torch.no_grad()``, the tensor returned, its device and dtype kept, an optional
``torch.Generator``. ``gain`` is always a *standard deviation* (``sigma_w``), never a variance.
Randomness follows ``generator``: torch draws use it directly, and the numpy-built Algorithm 1
kernels get a seed drawn from it, so the same generator state gives the same tensor. With
``generator=None`` the global torch RNG is used (``torch.manual_seed`` makes it reproducible).

Fan-in scaled weight variance. For ``w_ij(b) ~ N(0, sigma_w2 v_b / c_in)`` the identity
``sum_{i,j,b} E[w_ij(b)^2] = c_out sigma_w2`` holds for every ``v``, so this module measures
and sets ``sigma_w2 = sum w^2 / c_out`` (:func:`diagnose`, :func:`critical_init_`). An
orthogonal operator with singular value ``s`` on ``min(c_in, c_out)`` channels has
``sum w^2 = s^2 min(c_in, c_out)`` (Parseval for Algorithm 1 kernels), hence
``sigma_w2 = s^2 min(c_in, c_out) / c_out``: ``s^2`` for a square or wide layer, less for a
channel-expanding one, which :func:`critical_init_` corrects.

Notes
-----
THEORY.md section 1 (the network and ``v``), section 3 (the critical point and fixed point),
section 5 (dynamical isometry; Burkholz & Dubatovka's looks-linear ReLU initialisation) and
section 6 (orthogonal and Delta-Orthogonal kernels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from mftheory.activations.builtins import Activation, get_activation
from mftheory.checks import nonnegative_float
from mftheory.cnn.modes import (
    VARIANCE_VECTOR_PRESETS,
    check_variance_vector,
    mode_eigenvalues,
    variance_vector,
    wrap_kernel,
)
from mftheory.errors import MFTheoryError
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point, trainable_depth

__all__ = [
    "SCHEMES",
    "CriticalInitReport",
    "DiagnoseReport",
    "conv_orthogonal_",
    "critical_init_",
    "delta_orthogonal_",
    "diagnose",
    "jacobian_singular_values",
    "looks_linear_",
    "mean_field_init_",
    "variance_vector_normal_",
]

FloatArray = NDArray[np.float64]

SCHEMES: tuple[str, ...] = ("delta-orthogonal", "orthogonal", "gaussian")
"""Weight schemes of :func:`critical_init_`."""

_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_SUM_TOL = 1e-10  # how far sum(v) may be from 1


# --------------------------------------------------------------------------------------------
# Validation and random building blocks
# --------------------------------------------------------------------------------------------


def _weight_shape(tensor: Any, fname: str) -> tuple[int, int, tuple[int, ...]]:
    """``(c_out, c_in, spatial)`` of a Linear ``(out, in)`` or Conv ``(c_out, c_in, *k)``."""
    if not isinstance(tensor, torch.Tensor):
        raise MFTheoryError(f"{fname} needs a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise MFTheoryError(f"{fname} needs a floating-point tensor, got dtype {tensor.dtype}")
    if not 2 <= tensor.ndim <= 5:
        raise MFTheoryError(
            f"{fname} needs a weight of 2 dimensions (Linear: out, in) or 3 to 5"
            f" (Conv1d/2d/3d: c_out, c_in, *kernel), got shape {tuple(tensor.shape)}"
        )
    if tensor.numel() == 0:
        raise MFTheoryError(f"{fname} got an empty tensor of shape {tuple(tensor.shape)}")
    shape = tuple(int(s) for s in tensor.shape)
    return shape[0], shape[1], shape[2:]


def _check_odd(spatial: tuple[int, ...], fname: str) -> None:
    even = [s for s in spatial if s % 2 == 0]
    if even:
        raise MFTheoryError(
            f"{fname}: kernel shape {spatial} has an even side {even[0]}; kernel sizes must be"
            " odd so that the kernel has a centre"
        )


def _draw_device(tensor: torch.Tensor | None, generator: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: the generator's device, else the tensor's (or CPU)."""
    if generator is not None:
        return generator.device
    return tensor.device if tensor is not None else torch.device("cpu")


def _randn(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float64, device=device)


def _numpy_seed(generator: torch.Generator | None) -> int:
    """A seed for the numpy core, drawn from ``generator`` (the global torch RNG if None)."""
    dev = _draw_device(None, generator)
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=dev).item())


def _random_orthogonal(
    rows: int, cols: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Haar-random ``rows x cols`` matrix (float64) with orthonormal columns or rows.

    Orthonormal columns when ``rows >= cols``, orthonormal rows otherwise: the QR of a
    Gaussian matrix with the signs of R's diagonal moved into Q (THEORY.md section 6).
    """
    big, small = max(rows, cols), min(rows, cols)
    q, r = torch.linalg.qr(_randn((big, small), generator, device))
    d = torch.sign(torch.diagonal(r))
    q = q * torch.where(d == 0, torch.ones_like(d), d)
    return q if rows >= cols else q.T


def _centre(spatial: tuple[int, ...]) -> Any:
    """Index of the centre tap of a ``(c_out, c_in, *spatial)`` weight."""
    return (slice(None), slice(None), *(s // 2 for s in spatial))


def _fill_delta(tensor: torch.Tensor, gain: float, generator: torch.Generator | None) -> None:
    """Zero but the centre tap, which holds gain times a random orthogonal matrix."""
    c_out, c_in, spatial = _weight_shape(tensor, "delta_orthogonal_")
    q = gain * _random_orthogonal(c_out, c_in, generator, _draw_device(tensor, generator))
    out = torch.zeros(tuple(tensor.shape), dtype=torch.float64, device=q.device)
    out[_centre(spatial)] = q
    tensor.copy_(out)


def _fill_algorithm1(tensor: torch.Tensor, gain: float, generator: torch.Generator | None) -> None:
    """Algorithm 1 kernel in PyTorch layout; co-isometric (orthonormal rows) when c_in > c_out.

    For ``c_in > c_out`` the kernel of ``orthogonal_kernel(size, c_out, c_in)`` is used with its
    channel axes read the other way round: its operator is the transpose of an isometry's
    (per frequency ``L(w) = M(w)^T`` with ``M^H M = I``), so ``L L^H = I``.
    """
    from mftheory.cnn.kernels import orthogonal_kernel

    c_out, c_in, spatial = _weight_shape(tensor, "conv_orthogonal_")
    d = len(spatial)
    seed = _numpy_seed(generator)
    if c_in <= c_out:
        k = orthogonal_kernel(spatial[0], c_in, c_out, dim=d, gain=gain, seed=seed)
        w = np.transpose(k, (d + 1, d, *range(d)))  # (spatial, c_in, c_out) -> (c_out, c_in, .)
    else:
        k = orthogonal_kernel(spatial[0], c_out, c_in, dim=d, gain=gain, seed=seed)
        w = np.transpose(k, (d, d + 1, *range(d)))  # (spatial, c_out, c_in) -> (c_out, c_in, .)
    tensor.copy_(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float64)))


def _refuse_wide(c_out: int, c_in: int, fname: str) -> None:
    if c_in > c_out:
        raise MFTheoryError(
            f"{fname}: c_in = {c_in} > c_out = {c_out}; an orthogonal operator needs"
            " c_in <= c_out (critical_init_ gives such layers orthonormal rows instead)"
        )


# --------------------------------------------------------------------------------------------
# Initialisers
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def delta_orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a Conv weight with the Delta-Orthogonal kernel, in place.

    Parameters
    ----------
    tensor : torch.Tensor
        A Conv1d/2d/3d weight ``(c_out, c_in, *kernel)`` with odd kernel sides and
        ``c_in <= c_out``, or a Linear weight ``(out, in)`` with ``in <= out``.
    gain : float
        ``sigma_w``, the common singular value of the operator (a standard deviation).
    generator : torch.Generator, optional
        Source of the random numbers (its device is where they are drawn).

    Returns
    -------
    torch.Tensor
        ``tensor``, with its device and dtype.

    Raises
    ------
    MFTheoryError
        Not a floating 2- to 5-dimensional tensor, ``c_in > c_out``, an even kernel side,
        a negative or non-finite gain.

    Notes
    -----
    THEORY.md section 6: every tap is zero but the spatial centre, which holds
    ``gain * Q`` with ``Q`` a Haar-random ``c_out x c_in`` matrix with orthonormal columns
    (QR of a Gaussian matrix, signs fixed). The convolution is then ``gain`` times an isometry
    on periodic images of any size, and every Fourier eigenvalue ``lambda_f`` of its variance
    vector (the delta) is 1 (section 4). A Linear weight gets ``gain * Q`` itself, like
    ``torch.nn.init.orthogonal_`` but refusing ``in > out``, which cannot be an isometry.
    """
    c_out, c_in, spatial = _weight_shape(tensor, "delta_orthogonal_")
    g = nonnegative_float(gain, "gain")
    _refuse_wide(c_out, c_in, "delta_orthogonal_")
    _check_odd(spatial, "delta_orthogonal_")
    _fill_delta(tensor, g, generator)
    return tensor


@torch.no_grad()
def conv_orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a Conv weight with an orthogonal kernel from the paper's Algorithm 1, in place.

    Parameters
    ----------
    tensor : torch.Tensor
        A Conv1d/2d/3d weight ``(c_out, c_in, *kernel)``, cubic kernel of odd side,
        ``c_in <= c_out``; or a Linear weight ``(out, in)``, ``in <= out``.
    gain : float
        ``sigma_w``, the common singular value of the operator (a standard deviation).
    generator : torch.Generator, optional
        A seed for :func:`mftheory.cnn.kernels.orthogonal_kernel` is drawn from it.

    Returns
    -------
    torch.Tensor
        ``tensor``, with its device and dtype.

    Raises
    ------
    MFTheoryError
        Not a floating 2- to 5-dimensional tensor, ``c_in > c_out``, an even or non-cubic
        kernel, a negative or non-finite gain.

    Notes
    -----
    THEORY.md section 6 (Algorithm 1, Kautsky & Turcajova's block convolutions): the kernel
    ``K`` of :func:`mftheory.cnn.kernels.orthogonal_kernel` in layout ``(*kernel, c_in, c_out)``
    is written as ``w[o, i, b] = K[b, i, o]``. Every ``K^(w) = sum_b K(b) exp(-i <w, b>)`` has
    orthonormal columns, so ``nn.ConvNd(..., padding=k, padding_mode="circular")`` with this
    weight is ``gain`` times an isometry on periodic images of every size. Its variance share
    is not uniform (binomial per dimension in expectation). A Linear weight (kernel of size 1)
    gets a Haar-random matrix with orthonormal columns times ``gain``.
    """
    c_out, c_in, spatial = _weight_shape(tensor, "conv_orthogonal_")
    g = nonnegative_float(gain, "gain")
    _refuse_wide(c_out, c_in, "conv_orthogonal_")
    _check_odd(spatial, "conv_orthogonal_")
    if not spatial:
        _fill_delta(tensor, g, generator)
        return tensor
    if len(set(spatial)) != 1:
        raise MFTheoryError(
            f"conv_orthogonal_: kernel shape {spatial} is not cubic; Algorithm 1 builds kernels"
            " with the same odd side in every dimension"
        )
    _fill_algorithm1(tensor, g, generator)
    return tensor


def _resolve_v(v: str | ArrayLike, spatial: tuple[int, ...], fname: str) -> FloatArray:
    """The variance vector for a kernel of shape ``spatial`` (``()`` for Linear: ``v = 1``)."""
    if not spatial:
        if isinstance(v, str):
            variance_vector(v, kernel=1, dim=1)  # validates the name
            return np.ones(())
        arr = np.asarray(v, dtype=np.float64)
        if arr.size != 1 or abs(float(arr.reshape(-1)[0]) - 1.0) > _SUM_TOL:
            raise MFTheoryError(
                f"{fname}: a Linear weight has one kernel position, so v must be 1 or a"
                f" preset name, got shape {arr.shape}"
            )
        return np.ones(())
    if isinstance(v, str) and v.strip().lower() in VARIANCE_VECTOR_PRESETS:
        if len(set(spatial)) != 1:
            raise MFTheoryError(
                f"{fname}: preset {v!r} needs a cubic kernel, got shape {spatial}; pass v as an"
                " array of that shape"
            )
        arr = variance_vector(v, kernel=spatial[0], dim=len(spatial))
    else:
        arr = variance_vector(v) if isinstance(v, str) else check_variance_vector(v, name="v")
    if arr.shape != spatial:
        raise MFTheoryError(f"{fname}: v has shape {arr.shape}, the kernel {spatial}")
    total = float(arr.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise MFTheoryError(
            f"{fname}: v sums to {total:.12g}, not 1; rescale it (sigma_w2 absorbs the factor)"
        )
    return arr


@torch.no_grad()
def variance_vector_normal_(
    tensor: torch.Tensor,
    v: str | ArrayLike,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill a weight with Gaussian entries of variance ``gain^2 v_b / c_in``, in place.

    Parameters
    ----------
    tensor : torch.Tensor
        A Conv1d/2d/3d weight ``(c_out, c_in, *kernel)`` (odd sides) or a Linear weight.
    v : str or array_like
        Variance vector of the kernel's spatial shape, summing to 1, or a preset name
        (``"delta"``, ``"uniform"``, ``"gs0"`` .. ``"gs4"``; cubic kernels) built by
        :func:`mftheory.cnn.modes.variance_vector`. A Linear weight takes any preset (its only
        position has ``v = 1``).
    gain : float
        ``sigma_w`` (a standard deviation).
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor
        ``tensor``, with its device and dtype.

    Raises
    ------
    MFTheoryError
        Bad tensor, even kernel side, ``v`` of the wrong shape, not summing to 1, negative or
        non-finite, unknown preset, bad gain.

    Notes
    -----
    THEORY.md section 1: ``w_ij(b) ~ N(0, sigma_w^2 v_b / c)`` with ``c = c_in`` the fan-in
    channels (``tensor.shape[1]``), so ``E[sum w^2] / c_out = sigma_w^2``.
    """
    _, c_in, spatial = _weight_shape(tensor, "variance_vector_normal_")
    g = nonnegative_float(gain, "gain")
    _check_odd(spatial, "variance_vector_normal_")
    arr = _resolve_v(v, spatial, "variance_vector_normal_")
    dev = _draw_device(tensor, generator)
    std = torch.as_tensor(g * np.sqrt(arr / c_in), dtype=torch.float64, device=dev)
    tensor.copy_(_randn(tuple(tensor.shape), generator, dev) * std)
    return tensor


# --------------------------------------------------------------------------------------------
# Critical initialisation of a whole network
# --------------------------------------------------------------------------------------------


def _as_float(x: Any) -> float:
    return float(np.asarray(x, dtype=np.float64))


@dataclass(frozen=True)
class CriticalInitReport:
    """What :func:`critical_init_` did, and the mean-field point it put the network at.

    Attributes
    ----------
    sigma_w2, sigma_b2 : float
        Critical weight variance (fan-in scaled, ``sigma_w = sqrt(sigma_w2)``) and bias
        variance.
    q_star, c_star, chi_1, chi_c, xi_c, xi_q : float
        Fixed point and slopes at ``(sigma_w2, sigma_b2)``
        (:func:`mftheory.meanfield.fixed_point`); ``xi_c`` is infinite on the critical line.
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
        return math.sqrt(self.sigma_w2)

    @property
    def sigma_b(self) -> float:
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


def _layers_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (n or type(m).__name__, m) for n, m in model.named_modules() if isinstance(m, _LAYER_TYPES)
    ]


def _unread(model: nn.Module) -> list[str]:
    """Names of modules with their own parameters that are not Conv/Linear layers."""
    return [
        n or type(m).__name__
        for n, m in model.named_modules()
        if not isinstance(m, _LAYER_TYPES) and any(True for _ in m.parameters(recurse=False))
    ]


def _weight_of(module: nn.Module) -> torch.Tensor:
    w = module.weight
    assert isinstance(w, torch.Tensor)
    return w


def _bias_of(module: nn.Module) -> torch.Tensor | None:
    b = getattr(module, "bias", None)
    return b if isinstance(b, torch.Tensor) else None


def _check_layers(model: nn.Module, scheme: str, fname: str) -> list[tuple[str, nn.Module]]:
    """The model's Conv/Linear layers, after checking the scheme and that they are vanilla."""
    if scheme not in SCHEMES:
        raise MFTheoryError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    layers = _layers_of(model)
    if not layers:
        raise MFTheoryError(f"{fname} found no nn.Conv1d/2d/3d or nn.Linear layer")
    for name, m in layers:
        if getattr(m, "groups", 1) != 1:
            raise MFTheoryError(
                f"layer {name!r} is a grouped convolution (groups={getattr(m, 'groups', 1)});"
                f" {fname} handles vanilla networks only"
            )
    return layers


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
) -> list[str]:
    """Fill every layer at ``(sigma_w2, sigma_b2)`` with ``scheme``; the notes to report."""
    sw = math.sqrt(w2)
    notes: list[str] = []
    other = _unread(model)
    if other:
        notes.append(f"modules left as they were (not Conv/Linear): {', '.join(other)}")
    if scheme != "gaussian" and not (isinstance(v, str) and v.strip().lower() == "uniform"):
        notes.append(f"v is ignored by the {scheme} scheme")
    for name, m in layers:
        w = _weight_of(m)
        c_out, c_in, spatial = _weight_shape(w, fname)
        try:
            if scheme == "gaussian":
                variance_vector_normal_(w, v, gain=sw, generator=generator)
            else:
                _check_odd(spatial, scheme)
                if scheme == "orthogonal" and len(set(spatial)) > 1:
                    raise MFTheoryError(f"kernel shape {spatial} is not cubic (Algorithm 1)")
                s = sw * math.sqrt(c_out / min(c_in, c_out))
                fill = _fill_algorithm1 if scheme == "orthogonal" and spatial else _fill_delta
                fill(w, s, generator)
                if c_in > c_out:
                    notes.append(
                        f"layer {name!r}: c_in = {c_in} > c_out = {c_out}, orthonormal rows"
                        f" times sigma_w = {sw:.6g} (not an isometry)"
                    )
                elif c_in < c_out:
                    notes.append(
                        f"layer {name!r}: c_in = {c_in} < c_out = {c_out}, singular value"
                        f" sigma_w sqrt(c_out / c_in) = {s:.6g} so that sum w^2 / c_out ="
                        " sigma_w2"
                    )
        except MFTheoryError as err:
            raise MFTheoryError(f"layer {name!r}: {err}") from None
        bias = _bias_of(m)
        if bias is not None:
            dev = _draw_device(bias, generator)
            bias.copy_(_randn(tuple(bias.shape), generator, dev) * math.sqrt(b2))
    return notes


@torch.no_grad()
def critical_init_(
    model: nn.Module,
    act: str | Activation = "tanh",
    sigma_b2: float = 0.05,
    scheme: str = "delta-orthogonal",
    v: str | ArrayLike = "uniform",
    generator: torch.Generator | None = None,
) -> CriticalInitReport:
    """Initialise every Conv/Linear layer of a vanilla network on the critical line.

    Parameters
    ----------
    model : torch.nn.Module
        A network of ``nn.Conv1d/2d/3d`` and ``nn.Linear`` layers (``groups=1``) with one
        activation. Other modules are left as they are.
    act : str or Activation
        The network's activation (a name of :data:`mftheory.ACTIVATION_NAMES` or an
        expression).
    sigma_b2 : float
        Bias *variance* (0.05 is Schoenholz et al.'s choice for tanh).
    scheme : str
        ``"delta-orthogonal"`` (:func:`delta_orthogonal_`), ``"orthogonal"``
        (:func:`conv_orthogonal_`, Algorithm 1) or ``"gaussian"``
        (:func:`variance_vector_normal_` with ``v``).
    v : str or array_like
        Variance vector of the Gaussian scheme (a preset name, sized per layer, or one array
        that fits every Conv layer); ignored by the orthogonal schemes, with a note.
    generator : torch.Generator, optional

    Returns
    -------
    CriticalInitReport

    Raises
    ------
    MFTheoryError
        No Conv/Linear layer, a grouped convolution, unknown scheme, no finite critical point
        for ``(act, sigma_b2)`` (status other than ``"ok"``: ReLU has none at
        ``sigma_b2 > 0``, see :func:`looks_linear_`), or a layer the scheme cannot fill (the
        message names it).

    Notes
    -----
    THEORY.md section 3: ``sigma_w2`` is the critical weight variance of
    :func:`mftheory.meanfield.critical_point` (``chi_1 = 1``), the report's fields are those of
    :func:`mftheory.meanfield.fixed_point` there. Biases are ``N(0, sigma_b2)``.

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
    w2 = _as_float(cp.sigma_w2)
    fp = fixed_point(a, sigma_w2=w2, sigma_b2=b2)
    notes = _init_layers(model, layers, w2, b2, scheme, v, generator, "critical_init_")
    return CriticalInitReport(
        sigma_w2=w2,
        sigma_b2=b2,
        q_star=_as_float(fp.q_star),
        c_star=_as_float(fp.c_star),
        chi_1=_as_float(fp.chi_1),
        chi_c=_as_float(fp.chi_c),
        xi_c=_as_float(fp.xi_c),
        xi_q=_as_float(fp.xi_q),
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
) -> list[str]:
    """Initialise every Conv/Linear layer at any ``(sigma_w2, sigma_b2)``, in place.

    :func:`critical_init_` without the critical point: the same schemes and the same
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
        Variance vector of the Gaussian scheme (see :func:`critical_init_`).
    generator : torch.Generator, optional

    Returns
    -------
    list of str
        Notes on layers that could not be filled exactly as asked (see
        :func:`critical_init_`).

    Raises
    ------
    MFTheoryError
        As :func:`critical_init_`, and for a negative or non-finite ``sigma_w2``.

    Notes
    -----
    THEORY.md sections 1 and 6.
    """
    w2 = nonnegative_float(sigma_w2, "sigma_w2")
    b2 = nonnegative_float(sigma_b2, "sigma_b2")
    layers = _check_layers(model, scheme, "mean_field_init_")
    return _init_layers(model, layers, w2, b2, scheme, v, generator, "mean_field_init_")


# --------------------------------------------------------------------------------------------
# ReLU: looks-linear parameter sharing, and the Jacobian spectrum
# --------------------------------------------------------------------------------------------


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
    THEORY.md section 5. With hidden widths ``2 m_l`` the weights are

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
        if not isinstance(m, _LAYER_TYPES):
            raise MFTheoryError(
                f"looks_linear_: layer {idx} is {type(m).__name__}, not nn.Linear or nn.ConvNd"
            )
        if getattr(m, "groups", 1) != 1:
            raise MFTheoryError(f"looks_linear_: layer {idx} is a grouped convolution")
        c_out, c_in, spatial = _weight_shape(_weight_of(m), "looks_linear_")
        _check_odd(spatial, f"looks_linear_ layer {idx}")
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
        w = _weight_of(m)
        c_out, c_in, spatial = shapes[idx]
        rows = c_out if idx == last else c_out // 2
        cols = c_in if idx == 0 else c_in // 2
        blk = g * _random_orthogonal(rows, cols, generator, _draw_device(w, generator))
        if idx == 0:
            full = torch.cat([blk, -blk], dim=0)
        elif idx == last:
            full = torch.cat([blk, -blk], dim=1)
        else:
            full = torch.cat([torch.cat([blk, -blk], 1), torch.cat([-blk, blk], 1)], 0)
        out = torch.zeros(tuple(w.shape), dtype=torch.float64, device=full.device)
        out[_centre(spatial)] = full
        w.copy_(out)
        bias = _bias_of(m)
        if bias is not None:
            bias.zero_()
    return layers


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
    THEORY.md section 5: ``J = prod_l D^l W^l``; dynamical isometry is all its singular
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


# --------------------------------------------------------------------------------------------
# Diagnosis of an existing model
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class DiagnoseReport:
    """Mean-field reading of a model's current weights (:func:`diagnose`).

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
        :func:`mftheory.meanfield.fixed_point` at the mean variances.
    phase : str
        ``"ordered"``, ``"critical"``, ``"chaotic"`` or ``"divergent"``.
    max_trainable_depth : float
        ``6 xi_c`` (THEORY.md section 5; infinite at criticality).
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
    Per layer (THEORY.md section 1): for ``w_ij(b) ~ N(0, sigma_w2 v_b / c_in)``,
    ``E[sum_{i,j,b} w_ij(b)^2] = c_out sigma_w2``, so the estimate is
    ``sigma_w2 = sum w^2 / c_out`` (exact for orthogonal kernels, relative standard error
    ``sqrt(2 sum_b v_b^2 / (c_in c_out))`` for Gaussian ones), and the variance share is
    ``v_b = sum_{i,j} w_ij(b)^2 / sum w^2``. Its Fourier eigenvalues ``lambda_f`` on the
    layer's input size are those of :func:`mftheory.cnn.modes.mode_eigenvalues` (section 4).
    Network (section 3): the mean ``sigma_w2``, ``sigma_b2`` over the hidden layers go to
    :func:`mftheory.meanfield.fixed_point`; ``max_trainable_depth = 6 xi_c`` (section 5).
    """
    layers = _layers_of(model)
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
    other = _unread(model)
    if other:
        notes.append(f"parameters not read (not Conv/Linear): {', '.join(other)}")
    rows: list[dict[str, Any]] = []
    for name, m in layers:
        w = _weight_of(m).detach().to(torch.float64).cpu()
        c_out, c_fan, spatial = _weight_shape(w, "diagnose")
        d = len(spatial)
        sq = w.square()
        total = float(sq.sum())
        share = (sq.sum(dim=(0, 1)) / total).numpy() if total > 0 else np.zeros(spatial)
        bias = _bias_of(m)
        b2 = float(bias.detach().to(torch.float64).square().mean()) if bias is not None else 0.0
        shape_in = seen.get(id(m))
        n = None if shape_in is None else (shape_in[-d:] if d else ())
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
        rows.append(
            {
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
        )
    hidden = rows[1:-1] if len(rows) >= 3 else rows
    w2 = float(np.mean([r["sigma_w2"] for r in hidden]))
    b2m = float(np.mean([r["sigma_b2"] for r in hidden]))
    fp = fixed_point(a, sigma_w2=w2, sigma_b2=b2m)
    cp = critical_point(a, sigma_b2=b2m)
    xi_c = _as_float(fp.xi_c)
    return DiagnoseReport(
        layers=tuple(rows),
        activation=a.label,
        hidden_layers=len(hidden),
        sigma_w2=w2,
        sigma_b2=b2m,
        q_star=_as_float(fp.q_star),
        c_star=_as_float(fp.c_star),
        chi_1=_as_float(fp.chi_1),
        chi_c=_as_float(fp.chi_c),
        phase=str(fp.phase),
        xi_c=xi_c,
        max_trainable_depth=float(trainable_depth(xi_c)),
        depth=len(rows),
        nearest_critical_sigma_w2=_as_float(cp.sigma_w2),
        critical_status=str(cp.status),
        notes=tuple(notes),
    )
