"""Monte Carlo ensembles of finite random CNNs: the empirical covariance per layer.

A finite network of ``c`` channels is the judge of the mean-field covariance map
(:mod:`mftheory.cnn.spatial`): the ensemble mean of its empirical pre-activation covariance,

    Sigma_hat^l = (1/c) sum_j h^l_j h^l_j^T      (over (image, pixel) pairs, no mean removed)

equals the mean-field ``Sigma^l`` up to ``O(1/c)``, exactly so one layer after a Gaussian or
fixed input. :func:`simulate_ensemble` samples ``networks`` such networks, every one applying
its own weights to a whole batch of images, and returns the mean and standard error of
``Sigma_hat^l`` per layer in an :class:`EnsembleResult`.

Variance reduction: a *control* input at the spatially uniform fixed point ``Sigma*`` goes
through the same weights (and, for a Gaussian input, starts from the same random numbers).
``D^l = Sigma_hat_ctrl^l - Sigma_hat_main^l`` then estimates ``eps^l = Sigma* - Sigma^l``
(THEORY.md section 4) with far less noise than ``Sigma_hat_main`` itself, because most of the
fluctuation of a finite network is common to both inputs.

Two samplers give the same ensemble (the same joint law of every layer of every network):

* ``method="gram"`` (default): given layer ``l`` of one network, the next layer's channels
  are i.i.d. Gaussian over (image, pixel) with covariance
  ``K = sigma_w2 A_v * (phi(h^l)^T phi(h^l) / c) + sigma_b2``, because its weights are
  Gaussian, independent of everything before and used nowhere else. Sampling that directly
  costs ``O(c P^2)`` per layer (``P`` the image-pixel pairs) instead of ``O(c^2 P)`` plus
  ``c^2`` Gaussian draws per kernel position.
* ``method="weights"``: draws every weight ``W_b`` (``c_out x c_in`` per kernel position) and
  applies it literally: circular convolution as rolls of the activations followed by batched
  matrix products. The slow, obvious reference for the first.

The core uses numpy; ``backend="torch"`` runs the same algorithm with torch (imported only
then, never by ``import mftheory``), on CUDA when it is available.

Notes
-----
THEORY.md section 1 (the network), section 2 (the covariance map it is compared with),
sections 3-4 (the fixed point ``Sigma*`` and the perturbation ``eps^l`` the control measures).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.checks import int_at_least, nonnegative_float
from mftheory.cnn.modes import check_variance_vector, kernel_offsets, wrap_kernel
from mftheory.cnn.spatial import _image_shape, uniform_fixed_covariance
from mftheory.errors import MFTheoryError

__all__ = ["BACKENDS", "METHODS", "EnsembleResult", "simulate_ensemble"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

BACKENDS: tuple[str, ...] = ("numpy", "torch")
"""Array libraries :func:`simulate_ensemble` can run on."""

METHODS: tuple[str, ...] = ("gram", "weights")
"""Samplers of :func:`simulate_ensemble` (see the module docstring)."""

_SUM_TOL = 1e-10  # how far sum(v) may be from 1
_SYM_TOL = 1e-10  # relative asymmetry tolerated in Sigma0 / Sigma_star
_PSD_TOL = 1e-8  # relative negative eigenvalue tolerated in Sigma0 / Sigma_star (round-off)
_MAX_RECORD_BYTES = 2 * 1024**3  # the (L, M, M) records together may not exceed ~2 GB
_CHUNK_BYTES = 128 * 1024**2  # working memory aimed at per chunk of networks


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EnsembleResult:
    """Ensemble statistics of the empirical covariance of finite random CNNs.

    ``M = batch * prod(image_shape)`` indexes (image, pixel) pairs, images outer, pixels
    row-major; ``L = len(layers)`` records.

    Attributes
    ----------
    layers : ndarray of int64, shape ``(L,)``
        Layer index of each record: ``0..depth`` from a Gaussian input (``Sigma0``),
        ``1..depth`` from raw images.
    mean : ndarray of float64, shape ``(L, M, M)``
        Ensemble mean of ``Sigma_hat_main^l = (1/c) sum_j h^l_j h^l_j^T``.
    sem : ndarray of float64, shape ``(L, M, M)``
        Its standard error over networks, ``std(ddof=1) / sqrt(networks)``.
    difference_mean : ndarray of float64, shape ``(L, M, M)``, or None
        Ensemble mean of ``D^l = Sigma_hat_ctrl^l - Sigma_hat_main^l``, an estimate of
        ``eps^l = Sigma* - Sigma^l``; None when no control was given.
    difference_sem : ndarray of float64, shape ``(L, M, M)``, or None
        Standard error of ``difference_mean``.
    channels, networks, seed : int
        Width ``c``, ensemble size, seed of :func:`numpy.random.SeedSequence`.
    backend : str
        ``"numpy"`` or ``"torch"``.
    image_shape : tuple of int
        Pixels per side.
    batch : int
        Images per network (``B``), not counting the control.
    device : str
        Where it ran (``"cpu"``, ``"cuda:0"``...).
    method : str
        ``"gram"`` or ``"weights"``.
    activation : str
        Label of ``phi``.

    Notes
    -----
    Compared by identity (``eq=False``): the arrays have no single truth value.
    THEORY.md section 2: ``mean`` estimates the mean-field ``Sigma^l`` up to ``O(1/c)``;
    section 4: ``difference_mean`` estimates ``eps^l``.
    """

    layers: IntArray
    mean: FloatArray
    sem: FloatArray
    difference_mean: FloatArray | None
    difference_sem: FloatArray | None
    channels: int
    networks: int
    seed: int
    backend: str
    image_shape: tuple[int, ...]
    batch: int
    device: str = "cpu"
    method: str = "gram"
    activation: str = ""

    @property
    def has_control(self) -> bool:
        """Whether a control input was simulated (``difference_mean`` is not None)."""
        return self.difference_mean is not None

    def index(self, layer: int) -> int:
        """Position of ``layer`` in :attr:`layers` (``MFTheoryError`` if it was not recorded)."""
        hits = np.flatnonzero(self.layers == int(layer))
        if hits.size == 0:
            raise MFTheoryError(
                f"layer {layer} was not recorded; recorded layers are"
                f" {int(self.layers[0])}..{int(self.layers[-1])}"
            )
        return int(hits[0])

    def settings(self) -> dict[str, Any]:
        """JSON-ready settings of the run: channels, networks, seed, backend, device, method."""
        return {
            "channels": int(self.channels),
            "networks": int(self.networks),
            "seed": int(self.seed),
            "backend": str(self.backend),
            "device": str(self.device),
            "method": str(self.method),
        }


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _variance_vector(v: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    arr = check_variance_vector(v)
    if arr.ndim != len(shape):
        raise MFTheoryError(
            f"variance vector has {arr.ndim} dimension(s) (shape {arr.shape}) but images have"
            f" {len(shape)} (image_shape {shape})"
        )
    total = float(arr.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise MFTheoryError(
            f"variance vector sums to {total:.12g}, not 1: rescale it with"
            " normalize_variance_vector (sigma_w2 absorbs the factor)"
        )
    return arr


def _finite_array(value: ArrayLike, name: str) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise MFTheoryError(f"{name} must be an array of real numbers") from None
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise MFTheoryError(f"{name}{list(idx)} = {arr[idx]} is not finite")
    return arr


def _covariance_matrix(value: ArrayLike, name: str, size: int | None, n_pix: int) -> FloatArray:
    """Validate the shape, finiteness and symmetry of a covariance (cheap checks only)."""
    s = _finite_array(value, name)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise MFTheoryError(f"{name} must be a non-empty square matrix, got shape {s.shape}")
    m = s.shape[0]
    if size is None and m % n_pix != 0:
        raise MFTheoryError(
            f"{name} is {m} x {m}: {m} is not a multiple of the {n_pix} pixels of one image"
        )
    if size is not None and m != size:
        raise MFTheoryError(
            f"{name} must be {size} x {size} (batch x pixels, as the input), got {m} x {m}"
        )
    scale = max(float(np.max(np.abs(s))), np.finfo(np.float64).tiny)
    if float(np.max(np.abs(s - s.T))) > _SYM_TOL * scale:
        raise MFTheoryError(f"{name} is not symmetric: not a covariance")
    return 0.5 * (s + s.T)


def _principal_root(s: FloatArray, name: str) -> FloatArray:
    """The principal (symmetric) square root of a positive semi-definite matrix."""
    w, vec = np.linalg.eigh(s)
    if float(w[0]) < -_PSD_TOL * max(float(np.max(np.abs(w))), np.finfo(np.float64).tiny):
        raise MFTheoryError(
            f"{name} has a negative eigenvalue {float(w[0]):.6g}: not positive semi-definite,"
            " so not a covariance"
        )
    # Eigenvalues at round-off level are set to 0 (their square roots would otherwise add
    # noise of relative size sqrt(eps) to a rank-deficient root). The principal root is
    # continuous in the matrix, so the roots of two nearby covariances are nearby: that is
    # what makes common random numbers for the main and the control input work.
    root = (vec * np.sqrt(_drop_roundoff(w, np))) @ vec.T
    return np.asarray(root, dtype=np.float64)


def _drop_roundoff(w: Any, xp: Any) -> Any:
    """Eigenvalues ``w`` (ascending along the last axis) with round-off-level ones set to 0.

    An eigenvalue is round-off when it is below ``size * eps * max(w)``, the accuracy of a
    symmetric eigensolver; negative ones (PSD matrices only) are always round-off.
    """
    size = w.shape[-1]
    floor = size * float(np.finfo(np.float64).eps) * w[..., -1:]
    return xp.where(w > floor, w, 0.0 * w)


# --------------------------------------------------------------------------------------------
# Array back ends: the handful of operations the simulation needs
# --------------------------------------------------------------------------------------------


class _NumpyOps:
    name = "numpy"

    def __init__(self, act: Activation, seed: int, networks: int) -> None:
        self.act = act
        self.device = "cpu"
        children = np.random.SeedSequence(seed).spawn(networks)
        self.rngs = [np.random.default_rng(ch) for ch in children]

    def normal(self, net: int, shape: tuple[int, ...]) -> Any:
        return self.rngs[net].standard_normal(shape)

    def asarray(self, a: FloatArray) -> Any:
        return a

    def to_numpy(self, a: Any) -> FloatArray:
        return np.asarray(a, dtype=np.float64)

    def stack(self, arrays: list[Any]) -> Any:
        return np.stack(arrays)

    def concat(self, arrays: list[Any], axis: int) -> Any:
        return np.concatenate(arrays, axis=axis)

    def roll(self, a: Any, shifts: tuple[int, ...], axes: tuple[int, ...]) -> Any:
        return np.roll(a, shifts, axis=axes)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        w, vec = np.linalg.eigh(a)
        return w, vec

    def sqrt_clip(self, w: Any) -> Any:
        return np.sqrt(_drop_roundoff(w, np))

    def phi(self, a: Any) -> Any:
        return self.act.phi(a)

    def bad_networks(self, a: Any) -> IntArray:
        flat = a.reshape(a.shape[0], -1)
        return np.flatnonzero(~np.isfinite(flat).all(axis=1)).astype(np.int64)


def _torch_phi(act: Activation, torch: Any) -> Callable[[Any], Any] | None:
    """A native torch version of a registered activation, None for anything else.

    Only an activation built by its registry record (same functions and parameters) gets
    the record's ``torch_phi``; any other, even one sharing a name, is evaluated through
    NumPy.
    """
    from mftheory.activations.registry import record_of

    record = record_of(act)
    if record is None or record.torch_phi is None:
        return None
    return record.torch_phi(torch, **dict(act.params))


class _TorchOps:
    name = "torch"

    def __init__(self, act: Activation, seed: int, networks: int, device: str | None) -> None:
        try:
            import torch
        except ImportError:
            raise MFTheoryError(
                "backend='torch' needs PyTorch, which is not installed:"
                " pip install 'mftheory[torch]' or use backend='numpy'"
            ) from None
        self.torch = torch
        self.act = act
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.dev = torch.device(device)
            torch.zeros(1, device=self.dev)
        except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MFTheoryError(f"torch cannot use device {device!r}: {msg}") from None
        self.device = str(self.dev)
        self.native = _torch_phi(act, torch)
        children = np.random.SeedSequence(seed).spawn(networks)
        self.gens = []
        for ch in children:
            gen = torch.Generator(device=self.dev)
            gen.manual_seed(int(ch.generate_state(1, np.uint64)[0]))
            self.gens.append(gen)

    def normal(self, net: int, shape: tuple[int, ...]) -> Any:
        return self.torch.randn(
            shape, generator=self.gens[net], dtype=self.torch.float64, device=self.dev
        )

    def asarray(self, a: FloatArray) -> Any:
        return self.torch.as_tensor(a, dtype=self.torch.float64, device=self.dev)

    def to_numpy(self, a: Any) -> FloatArray:
        return np.asarray(a.detach().cpu().numpy(), dtype=np.float64)

    def stack(self, arrays: list[Any]) -> Any:
        return self.torch.stack(arrays)

    def concat(self, arrays: list[Any], axis: int) -> Any:
        return self.torch.cat(arrays, dim=axis)

    def roll(self, a: Any, shifts: tuple[int, ...], axes: tuple[int, ...]) -> Any:
        return self.torch.roll(a, shifts=shifts, dims=axes)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        w, vec = self.torch.linalg.eigh(a)
        return w, vec

    def sqrt_clip(self, w: Any) -> Any:
        return self.torch.sqrt(_drop_roundoff(w, self.torch))

    def phi(self, a: Any) -> Any:
        if self.native is not None:
            return self.native(a)
        # A user expression: evaluate it with numpy (exactly the mean-field phi) and come back.
        out = self.act.phi(a.detach().cpu().numpy())
        return self.asarray(np.asarray(out, dtype=np.float64))

    def bad_networks(self, a: Any) -> IntArray:
        flat = a.reshape(a.shape[0], -1)
        ok = self.torch.isfinite(flat).all(dim=1)
        return np.flatnonzero(~ok.cpu().numpy()).astype(np.int64)


# --------------------------------------------------------------------------------------------
# The simulation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Everything one chunk of networks needs, validated."""

    shape: tuple[int, ...]
    images_total: int  # images per network including the control copy
    M: int  # main (image, pixel) pairs
    P: int  # all (image, pixel) pairs, control included
    channels: int
    depth: int
    sigma_w2: float
    sigma_b2: float
    v: FloatArray
    method: str
    root0: FloatArray | None  # principal root of Sigma0 (case a)
    root_star: FloatArray | None  # principal root of Sigma* (control), None without
    images: FloatArray | None  # (c_in, B*N) pixels of the raw input (case b)
    root1: FloatArray | None  # root of the layer-1 covariance of the images (gram, case b)


class _Diverged(Exception):
    def __init__(self, layer: int, network: int) -> None:
        super().__init__(layer, network)
        self.layer = layer
        self.network = network


def _spatial_axes(plan: _Plan, first: int) -> tuple[int, ...]:
    return tuple(range(first, first + len(plan.shape)))


def _apply_A_batched(ops: Any, plan: _Plan, g: Any) -> Any:
    """``A_v * G`` for a stack ``(K, P, P)`` of matrices over (image, pixel) pairs."""
    d = len(plan.shape)
    k = g.shape[0]
    t = plan.images_total
    tensor = g.reshape((k, t, *plan.shape, t, *plan.shape))
    axes = _spatial_axes(plan, 2) + _spatial_axes(plan, d + 3)
    periodic = wrap_kernel(plan.v, plan.shape)
    out = None
    for m in np.argwhere(periodic > 0):
        # roll(x, s)[i] = x[i - s]: shift by -m to read G at (a + m, a' + m).
        shifts = tuple(int(-x) for x in m) * 2
        term = float(periodic[tuple(m)]) * ops.roll(tensor, shifts, axes)
        out = term if out is None else out + term
    assert out is not None  # v has a positive entry (check_variance_vector)
    return out.reshape(g.shape)


def _gram(h: Any) -> Any:
    """``(1/c) h^T h`` per network: ``(K, c, P) -> (K, P, P)``."""
    return (h.swapaxes(-1, -2) @ h) / h.shape[-2]


def _gaussian_rows(ops: Any, nets: range, plan: _Plan, cov: Any) -> Any:
    """``c`` i.i.d. rows per network with covariance ``cov`` (``(K, P, P)``)."""
    w, vec = ops.eigh(cov)
    root = vec * ops.sqrt_clip(w)[:, None, :]
    z = ops.stack([ops.normal(n, (plan.channels, plan.P)) for n in nets])
    return z @ root.swapaxes(-1, -2)


def _first_layer(ops: Any, nets: range, plan: _Plan) -> Any:
    """The first recorded layer, ``(K, c, P)``: layer 0 (case a) or layer 1 (case b)."""
    c, M = plan.channels, plan.M
    if plan.root0 is not None:
        roots = [plan.root0] if plan.root_star is None else [plan.root0, plan.root_star]
        # One z per network for main and control: common random numbers.
        r_t = ops.asarray(np.concatenate([r.T for r in roots], axis=1))
        z = ops.stack([ops.normal(n, (c, M)) for n in nets])
        return z @ r_t
    assert plan.images is not None
    parts = []
    if plan.method == "gram":
        assert plan.root1 is not None
        r1 = ops.asarray(plan.root1.T)
        parts.append(ops.stack([ops.normal(n, (c, M)) for n in nets]) @ r1)
    else:
        x = ops.asarray(plan.images)
        c_in = x.shape[0]
        batch = M // math.prod(plan.shape)
        parts.append(_conv_weights(ops, nets, plan, x.reshape((1, c_in, M)), c_in, batch))
    if plan.root_star is not None:
        r_star = ops.asarray(plan.root_star.T)
        parts.append(ops.stack([ops.normal(n, (c, M)) for n in nets]) @ r_star)
    return parts[0] if len(parts) == 1 else ops.concat(parts, axis=2)


def _conv_weights(ops: Any, nets: range, plan: _Plan, x: Any, c_in: int, images: int) -> Any:
    """``sum_b W_b roll(x, -b) + bias`` with freshly drawn weights, one set per network.

    ``x`` is ``(K or 1, c_in, images * N)``; returns ``(K, c, images * N)``.
    """
    c = plan.channels
    offsets = kernel_offsets(plan.v.shape)
    flat_v = plan.v.reshape(-1)
    keep = np.flatnonzero(flat_v > 0)
    scale = ops.asarray(np.sqrt(plan.sigma_w2 * flat_v[keep] / c_in)[:, None, None])
    bias_sd = math.sqrt(plan.sigma_b2)
    biases, weights = [], []
    for n in nets:
        biases.append(ops.normal(n, (c, 1)) * bias_sd)
        weights.append(ops.normal(n, (keep.size, c, c_in)) * scale)
    w = ops.stack(weights)  # (K, positions, c, c_in)
    out = ops.stack(biases)  # (K, c, 1)
    spatial = x.reshape((x.shape[0], c_in, images, *plan.shape))
    axes = _spatial_axes(plan, 3)
    for pos, idx in enumerate(keep):
        shifts = tuple(int(-b) for b in offsets[idx])
        rolled = ops.roll(spatial, shifts, axes).reshape((x.shape[0], c_in, x.shape[2]))
        out = out + w[:, pos] @ rolled
    return out


def _next_layer(ops: Any, nets: range, plan: _Plan, h: Any) -> Any:
    """Layer ``l + 1`` from layer ``l`` (``(K, c, P)`` both)."""
    x = ops.phi(h)
    if plan.method == "weights":
        return _conv_weights(ops, nets, plan, x, plan.channels, plan.images_total)
    cov = plan.sigma_w2 * _apply_A_batched(ops, plan, _gram(x)) + plan.sigma_b2
    bad = ops.bad_networks(cov)
    if bad.size:
        raise _Diverged(-1, int(bad[0]))
    return _gaussian_rows(ops, nets, plan, cov)


class _Welford:
    """Running mean and sum of squared deviations over networks, one network at a time.

    Networks are added in their global order whatever the chunking, so the result does not
    depend on the chunk size (not even in the last bit).
    """

    def __init__(self, records: int, M: int) -> None:
        self.mean = np.zeros((records, M, M))
        self.m2 = np.zeros((records, M, M))

    def add(self, record: int, first: int, values: FloatArray) -> None:
        mean, m2 = self.mean[record], self.m2[record]
        for k in range(values.shape[0]):
            x = values[k]
            delta = x - mean
            mean += delta / (first + k + 1)
            m2 += delta * (x - mean)

    def sem(self, n: int) -> FloatArray:
        return np.sqrt(self.m2 / (n - 1) / n)


def _simulate(
    ops: Any, plan: _Plan, networks: int, chunk: int, progress: Callable[[int, int], Any] | None
) -> tuple[_Welford, _Welford | None, int]:
    records = plan.depth + 1 if plan.root0 is not None else plan.depth
    first_layer = 0 if plan.root0 is not None else 1
    main = _Welford(records, plan.M)
    diff = _Welford(records, plan.M) if plan.root_star is not None else None
    M = plan.M
    for start in range(0, networks, chunk):
        nets = range(start, min(start + chunk, networks))
        layer = first_layer
        try:
            h = _first_layer(ops, nets, plan)
            for record in range(records):
                if record > 0:
                    layer += 1
                    h = _next_layer(ops, nets, plan, h)
                g = _gram(h)
                bad = ops.bad_networks(g)
                if bad.size:
                    raise _Diverged(layer, int(bad[0]))
                gn = ops.to_numpy(g)
                main.add(record, start, gn[:, :M, :M])
                if diff is not None:
                    diff.add(record, start, gn[:, M:, M:] - gn[:, :M, :M])
        except _Diverged as exc:
            where = layer if exc.layer < 0 else exc.layer
            raise MFTheoryError(
                f"the variance diverged: pre-activations of network {start + exc.network} stopped"
                f" being finite at layer {where} (unbounded activation above its critical line?"
                " lower sigma_w2 or the depth)"
            ) from None
        if progress is not None:
            progress(nets.stop, networks)
    return main, diff, records


def _auto_chunk(plan: _Plan, c_in: int) -> int:
    c, P = plan.channels, plan.P
    per_net = 8 * (4 * c * P + 6 * P * P)
    if plan.method == "weights":
        per_net += 8 * int(np.count_nonzero(plan.v)) * c * max(c, c_in)
    return max(1, _CHUNK_BYTES // per_net)


def simulate_ensemble(
    act: Activation | str,
    *,
    sigma_w2: float,
    sigma_b2: float,
    v: ArrayLike,
    image_shape: int | Sequence[int],
    depth: int,
    channels: int,
    networks: int,
    Sigma0: ArrayLike | None = None,
    images: ArrayLike | None = None,
    Sigma_star: ArrayLike | None = None,
    q_star: float | None = None,
    c_star: float | None = None,
    seed: int = 0,
    backend: Literal["numpy", "torch"] | str = "numpy",
    device: str | None = None,
    method: Literal["gram", "weights"] | str = "gram",
    chunk: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> EnsembleResult:
    """Mean and standard error of the empirical covariance of an ensemble of random CNNs.

    Parameters
    ----------
    act : Activation or str
        The nonlinearity ``phi`` (a name is looked up with :func:`get_activation`).
    sigma_w2, sigma_b2 : float
        Weight and bias *variances* (``sigma_w**2``, ``sigma_b**2``).
    v : array_like
        Variance vector over kernel positions: as many dimensions as the image, odd sides,
        centred offsets (:func:`mftheory.cnn.modes.kernel_offsets`), summing to 1 (within 1e-10).
        Positions with ``v_b = 0`` have no weights.
    image_shape : int or tuple of int
        Pixels per side (1 to 3 dimensions, circular boundaries); an int is a 1D image.
    depth : int
        Number of layers after the input, ``>= 1``.
    channels : int
        Width ``c`` of every layer, ``>= 1``.
    networks : int
        Ensemble size, ``>= 2`` (a standard error needs two).
    Sigma0 : array_like, shape ``(M, M)``, optional
        Start (a): layer-0 pre-activations are ``c`` i.i.d. Gaussian fields with this
        covariance over (image, pixel) pairs, ``M = B * prod(image_shape)``. Positive
        semi-definite (rank-deficient is fine). Records layers ``0..depth``.
    images : array_like, shape ``(B, c_in, *image_shape)``, optional
        Start (b): raw input images, used as given. Layer 1 is affine in them (no ``phi``).
        Records layers ``1..depth``. Exactly one of ``Sigma0`` and ``images``.
    Sigma_star : array_like, shape ``(M, M)``, optional
        Covariance of the control input at the starting layer, normally the uniform fixed
        point ``q* [(1 - c*) I + c* 11^T]``. Alternatively give ``q_star`` and ``c_star``
        (from :func:`mftheory.meanfield.fixed_point`). Without either, no control.
    q_star, c_star : float, optional
        Build ``Sigma_star`` with :func:`mftheory.cnn.spatial.uniform_fixed_covariance`.
    seed : int
        Seed (``>= 0``) of :class:`numpy.random.SeedSequence`; each network draws from its own
        spawned child, so results do not depend on ``chunk``. The torch backend seeds one
        ``torch.Generator`` per network from the same children: reproducible, but not the
        numbers numpy draws.
    backend : {"numpy", "torch"}
        Array library. torch runs in float64, on ``device`` (default ``"cuda"`` when
        available, else ``"cpu"``).
    device : str, optional
        torch device; only ``None`` or ``"cpu"`` with numpy.
    method : {"gram", "weights"}
        ``"gram"`` samples each layer from its exact conditional Gaussian law given the
        previous one; ``"weights"`` draws the weights and convolves. Same ensemble; "gram"
        is much faster for wide layers (see Notes).
    chunk : int, optional
        Networks simulated together (vectorised). Default: as many as fit in ~128 MB of
        working memory. Does not change the results.
    progress : callable, optional
        Called as ``progress(done_networks, networks)`` after each chunk.

    Returns
    -------
    EnsembleResult

    Raises
    ------
    MFTheoryError
        Negative or non-finite variances; ``channels < 1``, ``networks < 2``, ``depth < 1``;
        both or neither of ``Sigma0`` and ``images``; ``Sigma0`` / ``Sigma_star`` not square,
        not symmetric, not positive semi-definite, or not a whole number of images;
        ``images`` not ``(B, c_in, *image_shape)``; ``v`` invalid, of a different
        dimension than the image, or not summing to 1; unknown backend or method; torch
        missing; records above ~2 GB; a network whose pre-activations stop being finite (the
        variance diverged: an unbounded activation above its critical line).

    Notes
    -----
    THEORY.md section 1, the network (indices mod ``n`` per dimension):

        h^{l+1}_j(a) = sum_i sum_b w^{l+1}_{ij}(b) phi(h^l_i(a + b)) + b^{l+1}_j,
        w_{ij}(b) ~ N(0, sigma_w^2 v_b / c_in),   b_j ~ N(0, sigma_b^2)

    and the recorded statistic ``Sigma_hat^l = (1/c) sum_j h^l_j h^l_j^T``. Every network
    applies its own weights to all its ``B`` images (so cross-image covariances mean
    something) and to the control. Section 2: the ensemble mean matches
    ``Sigma^{l+1} = A_v * C(Sigma^l)`` up to ``O(1/c)``, and exactly one layer after the
    start: ``E Sigma_hat^1 = A_v * C(Sigma0)`` (start a) or
    ``sigma_w2 A_v * (X X^T / c_in) + sigma_b2`` (start b, ``X`` the ``(B N, c_in)`` pixels).

    The control input (sections 3-4): in start (a) ``h^0 = z R^T`` and
    ``h^0_ctrl = z R_*^T`` with the same ``z`` and ``R``, ``R_*`` the principal square roots
    of ``Sigma0`` and ``Sigma*`` (negative round-off eigenvalues clipped); in start (b)
    ``h^1_ctrl = z R_*^T`` with a fresh ``z``. From then on it shares the weights of the main
    input, and ``D^l = Sigma_hat_ctrl^l - Sigma_hat_main^l`` estimates
    ``eps^l = Sigma* - Sigma^l``.

    ``method="gram"``: given ``x = phi(h^l)`` of one network, the rows ``h^{l+1}_j`` are
    i.i.d. ``N(0, K)`` with ``K = sigma_w2 A_v * (x^T x / c) + sigma_b2`` over all its
    (image, pixel) pairs, control included (the weights of layer ``l + 1`` are Gaussian and
    independent of the past). So ``h^{l+1} = Z V sqrt(w)^T`` from ``K = V w V^T``, with
    ``Z`` a fresh ``c x P`` Gaussian matrix: ``c P`` draws and ``O(c P^2 + P^3)`` work per
    layer, against ``c^2`` draws per kernel position and ``O(c^2 P)`` work for
    ``method="weights"``. The joint law of all layers is identical.

    Standard errors use Welford's running variance over networks in order.
    """
    activation = get_activation(act) if isinstance(act, str) else act
    if not isinstance(activation, Activation):
        raise MFTheoryError(f"act must be an Activation or a name, got {act!r}")
    w2 = nonnegative_float(sigma_w2, "sigma_w2")
    b2 = nonnegative_float(sigma_b2, "sigma_b2")
    shape = _image_shape(image_shape)
    n_pix = math.prod(shape)
    varr = _variance_vector(v, shape)
    depth_i = int_at_least(depth, "depth", 1)
    c = int_at_least(channels, "channels", 1)
    n_net = int_at_least(networks, "networks", 2, " (a standard error needs two networks)")
    seed_i = int_at_least(seed, "seed", 0)
    if backend not in BACKENDS:
        raise MFTheoryError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if method not in METHODS:
        raise MFTheoryError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if backend == "numpy" and device not in (None, "cpu"):
        raise MFTheoryError(f"device {device!r} needs backend='torch'; numpy runs on the cpu")
    if (Sigma0 is None) == (images is None):
        which = "both" if Sigma0 is not None else "neither"
        raise MFTheoryError(
            f"give exactly one of Sigma0 (a Gaussian input) and images (raw input); got {which}"
        )

    sigma0: FloatArray | None = None
    pixels: FloatArray | None = None
    c_in = c
    if Sigma0 is not None:
        sigma0 = _covariance_matrix(Sigma0, "Sigma0", None, n_pix)
        M = sigma0.shape[0]
    else:
        assert images is not None
        img = _finite_array(images, "images")
        if img.ndim != 2 + len(shape) or tuple(img.shape[2:]) != shape or 0 in img.shape[:2]:
            raise MFTheoryError(
                f"images must have shape (B, c_in, {', '.join(map(str, shape))}) for"
                f" image_shape {shape}, got {img.shape}"
            )
        c_in = int(img.shape[1])
        M = int(img.shape[0]) * n_pix
        # (B, c_in, *shape) -> (c_in, B * N): the pixels of every image, (image, pixel) order.
        pixels = np.ascontiguousarray(np.moveaxis(img, 1, 0).reshape(c_in, M))

    star_given = q_star is not None or c_star is not None
    if Sigma_star is not None and star_given:
        raise MFTheoryError("give Sigma_star or q_star/c_star for the control, not both")
    if star_given and (q_star is None or c_star is None):
        raise MFTheoryError("the control needs both q_star and c_star")
    star: FloatArray | None = None
    if Sigma_star is not None:
        star = _covariance_matrix(Sigma_star, "Sigma_star", M, n_pix)
    elif q_star is not None and c_star is not None:
        star = uniform_fixed_covariance(q_star, c_star, M)

    records = depth_i + 1 if sigma0 is not None else depth_i
    n_arrays = 4 if star is not None else 2  # mean and squared deviations of each statistic
    need = n_arrays * records * M * M * 8
    if need > _MAX_RECORD_BYTES:
        raise MFTheoryError(
            f"the records would need {need / 1024**3:.1f} GiB ({records} layers of {M} x {M}"
            " matrices): use fewer images, smaller images or a smaller depth"
        )
    root0 = None if sigma0 is None else _principal_root(sigma0, "Sigma0")
    root_star = None if star is None else _principal_root(star, "Sigma_star")

    images_total = (M // n_pix) * (2 if root_star is not None else 1)
    plan = _Plan(
        shape=shape,
        images_total=images_total,
        M=M,
        P=images_total * n_pix,
        channels=c,
        depth=depth_i,
        sigma_w2=w2,
        sigma_b2=b2,
        v=varr,
        method=str(method),
        root0=root0,
        root_star=root_star,
        images=pixels,
        root1=None,
    )
    if pixels is not None and method == "gram":
        one = _NumpyOps(activation, 0, 1)
        plan_b = replace(plan, images_total=M // n_pix, P=M)
        gx = (pixels.T @ pixels / c_in)[None]
        cov1 = w2 * _apply_A_batched(one, plan_b, gx)[0] + b2
        root1 = _principal_root(0.5 * (cov1 + cov1.T), "the layer-1 covariance")
        plan = replace(plan, root1=root1)

    if chunk is None:
        chunk_i = min(n_net, _auto_chunk(plan, c_in))
    else:
        chunk_i = int_at_least(chunk, "chunk", 1)

    ops: Any
    if backend == "torch":
        ops = _TorchOps(activation, seed_i, n_net, device)
    else:
        ops = _NumpyOps(activation, seed_i, n_net)
    with np.errstate(over="ignore", invalid="ignore"):
        main, diff, records = _simulate(ops, plan, n_net, chunk_i, progress)
    first_layer = 0 if root0 is not None else 1
    return EnsembleResult(
        layers=np.arange(first_layer, first_layer + records, dtype=np.int64),
        mean=main.mean,
        sem=main.sem(n_net),
        difference_mean=None if diff is None else diff.mean,
        difference_sem=None if diff is None else diff.sem(n_net),
        channels=c,
        networks=n_net,
        seed=seed_i,
        backend=str(backend),
        image_shape=shape,
        batch=M // n_pix,
        device=ops.device,
        method=str(method),
        activation=activation.label,
    )
