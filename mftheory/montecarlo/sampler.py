"""The ensemble sampler: layers of random CNNs, chunk by chunk, on any array back end.

``run_ensemble`` carries out what ``mftheory.montecarlo.simulate_ensemble`` has
validated (an ``EnsemblePlan``): it draws the first recorded layer, then each next
layer with ``method="gram"`` (the exact conditional Gaussian law given the previous layer) or
``method="weights"`` (drawn weights, literal circular convolution), and accumulates the
empirical covariance of every layer with Welford's running mean and variance over networks in
their global order. All array work goes through an ``mftheory.montecarlo.backends.ArrayOps``.

Notes
-----
docs/theory.md sections 1-2 (the network and the covariance map it samples).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mftheory.cnn.modes import kernel_offsets, wrap_kernel
from mftheory.errors import MFTheoryError
from mftheory.montecarlo.backends import ArrayOps

__all__ = [
    "EnsemblePlan",
    "GroupSums",
    "Welford",
    "apply_A_batched",
    "auto_chunk",
    "run_ensemble",
]

FloatArray = NDArray[np.float64]

_CHUNK_BYTES = 128 * 1024**2  # working memory aimed at per chunk of networks


@dataclass(frozen=True)
class EnsemblePlan:
    """Everything one chunk of networks needs, validated (built by ``simulate_ensemble``).

    ``images_total`` counts the images of one network including the control copy, ``M`` the
    main (image, pixel) pairs and ``P`` all of them; the roots are principal square roots of
    ``Sigma0`` (start a), of ``Sigma*`` (the control) and of the images' layer-1 covariance
    (start b, ``method="gram"``); ``images`` are the ``(c_in, B*N)`` pixels of start b.
    """

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


def _spatial_axes(plan: EnsemblePlan, first: int) -> tuple[int, ...]:
    return tuple(range(first, first + len(plan.shape)))


def apply_A_batched(ops: ArrayOps, plan: EnsemblePlan, g: Any) -> Any:
    """``A_v * G`` for a stack ``(K, P, P)`` of matrices over (image, pixel) pairs.

    docs/theory.md section 2: ``(A_v * G)(a, a') = sum_b v_b G(a + b, a' + b)``, every image pair
    at once; ``ops`` rolls the arrays.
    """
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


def _gaussian_rows(ops: ArrayOps, nets: range, plan: EnsemblePlan, cov: Any) -> Any:
    """``c`` i.i.d. rows per network with covariance ``cov`` (``(K, P, P)``)."""
    w, vec = ops.eigh(cov)
    root = vec * ops.sqrt_clip(w)[:, None, :]
    z = ops.stack([ops.normal(n, (plan.channels, plan.P)) for n in nets])
    return z @ root.swapaxes(-1, -2)


def _first_layer(ops: ArrayOps, nets: range, plan: EnsemblePlan) -> Any:
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


def _conv_weights(
    ops: ArrayOps, nets: range, plan: EnsemblePlan, x: Any, c_in: int, images: int
) -> Any:
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


def _next_layer(ops: ArrayOps, nets: range, plan: EnsemblePlan, h: Any) -> Any:
    """Layer ``l + 1`` from layer ``l`` (``(K, c, P)`` both)."""
    x = ops.phi(h)
    if plan.method == "weights":
        return _conv_weights(ops, nets, plan, x, plan.channels, plan.images_total)
    cov = plan.sigma_w2 * apply_A_batched(ops, plan, _gram(x)) + plan.sigma_b2
    bad = ops.bad_networks(cov)
    if bad.size:
        raise _Diverged(-1, int(bad[0]))
    return _gaussian_rows(ops, nets, plan, cov)


class Welford:
    """Running mean and sum of squared deviations over networks, one network at a time.

    Networks are added in their global order whatever the chunking, so the result does not
    depend on the chunk size (not even in the last bit).
    """

    def __init__(self, records: int, M: int) -> None:
        self.mean = np.zeros((records, M, M))
        self.m2 = np.zeros((records, M, M))

    def add(self, record: int, first: int, values: FloatArray) -> None:
        """Add ``values[k]`` as network ``first + k`` of layer record ``record``."""
        mean, m2 = self.mean[record], self.m2[record]
        for k in range(values.shape[0]):
            x = values[k]
            delta = x - mean
            mean += delta / (first + k + 1)
            m2 += delta * (x - mean)

    def sem(self, n: int) -> FloatArray:
        """Standard error of the mean over ``n`` networks, ``std(ddof=1) / sqrt(n)``."""
        return np.sqrt(self.m2 / (n - 1) / n)


class GroupSums:
    """Sums of a per-network record over groups of consecutive networks.

    Network ``k`` of ``networks`` belongs to group ``floor(k * groups / networks)``, so the
    groups hold whole networks and their sizes differ by at most one; with
    ``groups == networks`` every network is its own group (what a bootstrap over networks
    resamples).
    """

    def __init__(self, groups: int, networks: int, records: int, M: int) -> None:
        self.sums = np.zeros((groups, records, M, M))
        self.group_of = (np.arange(networks) * groups) // networks
        self.sizes = np.bincount(self.group_of, minlength=groups).astype(np.int64)

    def add(self, record: int, first: int, values: FloatArray) -> None:
        """Add ``values[k]`` as network ``first + k`` of layer record ``record``."""
        for k in range(values.shape[0]):
            self.sums[self.group_of[first + k], record] += values[k]

    def means(self) -> FloatArray:
        """Mean of the record over each group, ``(groups, records, M, M)``."""
        return self.sums / self.sizes[:, None, None, None]


def run_ensemble(
    ops: ArrayOps,
    plan: EnsemblePlan,
    networks: int,
    chunk: int,
    progress: Callable[[int, int], Any] | None,
    groups: int | None = None,
) -> tuple[Welford, Welford | None, int, GroupSums | None]:
    """Simulate ``networks`` networks, ``chunk`` at a time, and accumulate their statistics.

    Returns the running statistics of ``Sigma_hat_main^l`` and of the control difference
    ``D^l`` (None without a control), the number of recorded layers, and with ``groups``
    (and a control) the sums of ``D^l`` over that many groups of networks (``GroupSums``;
    else None). Raises ``MFTheoryError`` when a network's pre-activations stop being finite.
    """
    records = plan.depth + 1 if plan.root0 is not None else plan.depth
    first_layer = 0 if plan.root0 is not None else 1
    main = Welford(records, plan.M)
    diff = Welford(records, plan.M) if plan.root_star is not None else None
    kept = None
    if groups is not None and diff is not None:
        kept = GroupSums(groups, networks, records, plan.M)
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
                    d = gn[:, M:, M:] - gn[:, :M, :M]
                    diff.add(record, start, d)
                    if kept is not None:
                        kept.add(record, start, d)
        except _Diverged as exc:
            where = layer if exc.layer < 0 else exc.layer
            raise MFTheoryError(
                f"the variance diverged: pre-activations of network {start + exc.network} stopped"
                f" being finite at layer {where} (unbounded activation above its critical line?"
                " lower sigma_w2 or the depth)"
            ) from None
        if progress is not None:
            progress(nets.stop, networks)
    return main, diff, records, kept


def auto_chunk(plan: EnsemblePlan, c_in: int) -> int:
    """Networks per chunk so that one chunk's working memory stays near 128 MB."""
    c, P = plan.channels, plan.P
    per_net = 8 * (4 * c * P + 6 * P * P)
    if plan.method == "weights":
        per_net += 8 * int(np.count_nonzero(plan.v)) * c * max(c, c_in)
    return max(1, _CHUNK_BYTES // per_net)
