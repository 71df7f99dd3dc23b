"""Monte Carlo ensembles of finite random CNNs: the empirical covariance per layer.

A finite network of ``c`` channels is the judge of the mean-field covariance map
(``mftheory.cnn.spatial``): the ensemble mean of its empirical pre-activation covariance,

    Sigma_hat^l = (1/c) sum_j h^l_j h^l_j^T      (over (image, pixel) pairs, no mean removed)

equals the mean-field ``Sigma^l`` up to ``O(1/c)``, exactly so one layer after a Gaussian or
fixed input. ``simulate_ensemble`` samples ``networks`` such networks, every one applying
its own weights to a whole batch of images, and returns the mean and standard error of
``Sigma_hat^l`` per layer in an ``EnsembleResult``.

Variance reduction: a *control* input at the spatially uniform fixed point ``Sigma*`` goes
through the same weights (and, for a Gaussian input, starts from the same random numbers).
``D^l = Sigma_hat_ctrl^l - Sigma_hat_main^l`` then estimates ``eps^l = Sigma* - Sigma^l``
(docs/theory.md section 4) with far less noise than ``Sigma_hat_main`` itself, because most of the
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

The array work goes through a back end the caller passes in
(``mftheory.montecarlo.backends``): numpy by default, or
``mftheory.torch.TorchBackend(device=...)``, which runs the same algorithm with torch (on
CUDA when it is available). This package never imports torch.

Notes
-----
docs/theory.md section 1 (the network), section 2 (the covariance map it is compared with),
sections 3-4 (the fixed point ``Sigma*`` and the perturbation ``eps^l`` the control measures).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.checks import int_at_least, nonnegative_float
from mftheory.cnn.spatial import check_image_shape
from mftheory.errors import MFTheoryError
from mftheory.montecarlo.backends import BACKENDS, ArrayBackend, resolve_backend
from mftheory.montecarlo.ensemble_inputs import (
    checked_variance_vector,
    control_covariance,
    make_plan,
    start_input,
)
from mftheory.montecarlo.sampler import auto_chunk, run_ensemble

__all__ = ["BACKENDS", "METHODS", "PROGRESS_STEPS", "EnsembleResult", "simulate_ensemble"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

METHODS: tuple[str, ...] = ("gram", "weights")
"""Samplers of ``simulate_ensemble`` (see the module docstring)."""

PROGRESS_STEPS = 20
"""With a ``progress`` callback and the default ``chunk``, ``simulate_ensemble`` reports
at least this many times (once per network when there are fewer networks)."""


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
        Width ``c``, ensemble size, seed of ``numpy.random.SeedSequence``.
    backend : str
        Name of the back end it ran on (``"numpy"``, ``"torch"``...).
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
    difference_groups : ndarray of float64, shape ``(G, L, M, M)``, or None
        Mean of ``D^l`` over each of ``G`` groups of consecutive networks (network ``k`` in
        group ``floor(k G / networks)``); with ``G = networks``, every network's own ``D^l``.
        What a bootstrap over networks resamples. None unless ``groups`` was asked for (and
        a control given).
    group_sizes : ndarray of int64, shape ``(G,)``, or None
        Networks per group (they differ by at most one).

    Notes
    -----
    Compared by identity (``eq=False``): the arrays have no single truth value.
    docs/theory.md section 2: ``mean`` estimates the mean-field ``Sigma^l`` up to ``O(1/c)``;
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
    difference_groups: FloatArray | None = None
    group_sizes: IntArray | None = None

    @property
    def has_control(self) -> bool:
        """Whether a control input was simulated (``difference_mean`` is not None)."""
        return self.difference_mean is not None

    def index(self, layer: int) -> int:
        """Position of ``layer`` in ``layers`` (``MFTheoryError`` if it was not recorded)."""
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
    backend: Literal["numpy"] | str | ArrayBackend = "numpy",
    device: str | None = None,
    method: Literal["gram", "weights"] | str = "gram",
    chunk: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
    groups: int | None = None,
) -> EnsembleResult:
    """Mean and standard error of the empirical covariance of an ensemble of random CNNs.

    Parameters
    ----------
    act : Activation or str
        The nonlinearity ``phi`` (a name is looked up with ``get_activation``).
    sigma_w2, sigma_b2 : float
        Weight and bias *variances* (``sigma_w**2``, ``sigma_b**2``).
    v : array_like
        Variance vector over kernel positions: as many dimensions as the image, odd sides,
        centred offsets (``mftheory.cnn.modes.kernel_offsets``), summing to 1 (within 1e-10).
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
        (from ``mftheory.meanfield.fixed_point``). Without either, no control.
    q_star, c_star : float, optional
        Build ``Sigma_star`` with ``mftheory.cnn.spatial.uniform_fixed_covariance``.
    seed : int
        Seed (``>= 0``) of ``numpy.random.SeedSequence``; each network draws from its own
        spawned child, so results do not depend on ``chunk``. The torch back end seeds one
        ``torch.Generator`` per network from the same children: reproducible, but not the
        numbers numpy draws.
    backend : "numpy" or ArrayBackend
        ``"numpy"`` (default), or a back-end object
        (``mftheory.montecarlo.backends.ArrayBackend``) such as
        ``mftheory.torch.TorchBackend(device=...)``, which runs in float64 on its device
        (default ``"cuda"`` when available, else ``"cpu"``). The string ``"torch"`` is refused
        with a message naming ``TorchBackend``: this numpy core never imports torch.
    device : str, optional
        Only ``None`` or ``"cpu"`` with numpy; a back-end object carries its own device.
    method : {"gram", "weights"}
        ``"gram"`` samples each layer from its exact conditional Gaussian law given the
        previous one; ``"weights"`` draws the weights and convolves. Same ensemble; "gram"
        is much faster for wide layers (see Notes).
    chunk : int, optional
        Networks simulated together (vectorised). Default: as many as fit in ~128 MB of
        working memory, and with a ``progress`` callback at most
        ``networks // PROGRESS_STEPS``. Does not change the results.
    progress : callable, optional
        Called as ``progress(done_networks, networks)`` after each chunk: with the default
        ``chunk`` at least ``PROGRESS_STEPS`` times (every network when there are fewer),
        increasing, the last call ``(networks, networks)``. The function itself prints
        nothing.
    groups : int, optional
        Also keep the mean of ``D^l`` over this many groups of consecutive networks
        (``2 <= groups <= networks``; ``networks`` keeps every network): the input of a
        bootstrap over networks (``mftheory.montecarlo.mode_check``). Needs a control; costs
        ``8 groups L M^2`` bytes.

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
        dimension than the image, or not summing to 1; unknown backend or method;
        ``backend="torch"`` as a string; torch missing or an unusable device (from the back
        end); records above ~2 GB; a network whose pre-activations stop being finite (the
        variance diverged: an unbounded activation above its critical line).

    Notes
    -----
    docs/theory.md section 1, the network (indices mod ``n`` per dimension):

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
    shape = check_image_shape(image_shape)
    n_pix = math.prod(shape)
    varr = checked_variance_vector(v, shape)
    depth_i = int_at_least(depth, "depth", 1)
    c = int_at_least(channels, "channels", 1)
    n_net = int_at_least(networks, "networks", 2, " (a standard error needs two networks)")
    seed_i = int_at_least(seed, "seed", 0)
    arrays = resolve_backend(backend, device)
    if method not in METHODS:
        raise MFTheoryError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    start = start_input(Sigma0, images, shape, n_pix, c)
    star = control_covariance(Sigma_star, q_star, c_star, start.M, n_pix)
    plan = make_plan(
        start,
        star,
        shape=shape,
        n_pix=n_pix,
        channels=c,
        depth=depth_i,
        sigma_w2=w2,
        sigma_b2=b2,
        v=varr,
        method=str(method),
    )
    if chunk is None:
        chunk_i = min(n_net, auto_chunk(plan, start.c_in))
        if progress is not None:  # report often enough for a moving progress bar
            chunk_i = min(chunk_i, max(1, n_net // PROGRESS_STEPS))
    else:
        chunk_i = int_at_least(chunk, "chunk", 1)

    groups_i = None
    if groups is not None:
        groups_i = int_at_least(groups, "groups", 2)
        if groups_i > n_net:
            raise MFTheoryError(f"groups must be at most networks ({n_net}), got {groups_i}")
        if star is None:
            raise MFTheoryError("groups needs a control input (Sigma_star or q_star, c_star)")
    ops = arrays.bind(activation, seed_i, n_net)
    with np.errstate(over="ignore", invalid="ignore"):
        main, diff, records, kept = run_ensemble(ops, plan, n_net, chunk_i, progress, groups_i)
    first_layer = 0 if plan.root0 is not None else 1
    return EnsembleResult(
        layers=np.arange(first_layer, first_layer + records, dtype=np.int64),
        mean=main.mean,
        sem=main.sem(n_net),
        difference_mean=None if diff is None else diff.mean,
        difference_sem=None if diff is None else diff.sem(n_net),
        channels=c,
        networks=n_net,
        seed=seed_i,
        backend=str(arrays.name),
        image_shape=shape,
        batch=start.M // n_pix,
        device=str(ops.device),
        method=str(method),
        activation=activation.label,
        difference_groups=None if kept is None else kept.means(),
        group_sizes=None if kept is None else kept.sizes,
    )
