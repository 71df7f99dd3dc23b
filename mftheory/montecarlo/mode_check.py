"""Mean-field mode decay against finite random CNNs: the check behind ``mftheory simulate``.

``compare_modes`` runs the mean-field map (``mftheory.cnn.propagation.propagate``) and an
ensemble of finite networks (``mftheory.montecarlo.simulate_ensemble``) on the same input,
measures the Fourier-mode amplitudes of ``eps^l = Sigma* - Sigma^l`` in both, and fits each
mode's per-layer decay rate where the Monte Carlo signal stands above its noise, next to the
prediction ``chi_c* |lambda_f|``.

One fitting rule (``FIT_RULE``) serves both: the window and the weights come from the finite
networks' amplitudes, and the same ``weighted_rate`` with the same window and weights fits
the finite networks and the mean-field map's amplitudes on the same layers. The standard
error of a measured rate is the spread of the whole rule (window, weights, fit) over a
bootstrap over networks (whole networks resampled with replacement,
``numpy.random.default_rng(seed)``), so it includes the correlation of one network's
amplitudes across layers and pixels and the choice of the window.

The finite networks estimate ``eps^l`` with a control input (variance reduction): the same
weights process the input and a stationary input whose mean-field covariance is ``Sigma*``;
the difference of their empirical covariances has much less noise than either.

Notes
-----
docs/theory.md sections 2-4.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.checks import int_at_least
from mftheory.cnn.propagation import (
    DiagonalGather,
    Propagation,
    gathered_mode_amplitudes,
    propagate,
)
from mftheory.cnn.spatial import uniform_fixed_covariance
from mftheory.errors import MFTheoryError
from mftheory.montecarlo.backends import ArrayBackend
from mftheory.montecarlo.ensembles import EnsembleResult, simulate_ensemble
from mftheory.serialize import finite_or_none

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "FIT_RULE",
    "MC_MARGIN",
    "ModeComparison",
    "compare_modes",
    "fit_window",
    "stacked_mode_amplitudes",
    "weighted_rate",
]

FloatArray = NDArray[np.float64]

#: A Monte Carlo amplitude enters a rate fit where it exceeds this many standard errors.
MC_MARGIN = 5.0

#: Bootstrap resamples of the networks behind every standard error (default).
BOOTSTRAP_RESAMPLES = 200

#: The fitting rule, as the JSON settings state it.
FIT_RULE = (
    "window: the first run of recorded layers, from the first, where the finite networks'"
    " amplitude exceeds fit_margin_se standard errors (at least 3 layers); weights: the"
    " finite networks' amplitude / its standard error on each layer of the window; rate ="
    " exp(slope) of the weighted least-squares line through log(amplitude) against the layer."
    " The same window and weights fit the finite networks and the mean-field map."
    " measured_rate_se: the standard deviation of the rule's rate (its own window, weights"
    " and fit) over bootstrap resamples of the networks (whole networks with replacement)."
)

#: Per-group records kept for the bootstrap stay below this; above, networks are pooled in
#: groups of consecutive networks, and the bootstrap resamples the groups.
BOOTSTRAP_BYTES = 256 * 1024**2
_BOOTSTRAP_CHUNK_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class ModeComparison:
    """Mode amplitudes and decay rates: mean-field prediction against finite networks.

    Attributes
    ----------
    mean_field : Propagation
        The mean-field run (its ``amplitude`` per layer, ``predicted_rate``...).
    ensemble : EnsembleResult
        The finite networks.
    layers : ndarray of int, shape ``(L,)``
        Recorded layers (the same in both).
    amplitude : ndarray, shape ``(L, N)``
        Mode amplitudes of the ensemble's ``Sigma*`` estimate minus its ``Sigma^l``
        (``difference_mean``), per frequency as in ``mftheory.cnn.propagation.mode_amplitudes``.
    noise : ndarray, shape ``(L,)``
        Standard error of those amplitudes: ``sqrt(mean(sem^2) / N)`` over the off-diagonal
        entries of ``difference_sem`` (the error of one Fourier coefficient of a cyclic
        diagonal when the entries' errors are independent). Sets the fit window and weights.
    measured_rate : ndarray, shape ``(N,)``
        ``weighted_rate`` of the amplitudes over the mode's window with its weights
        (``FIT_RULE``); NaN where fewer than 3 layers qualify.
    measured_rate_se : ndarray, shape ``(N,)``
        Standard deviation of the rule's rate over the bootstrap resamples of the networks
        (each resample with the window and weights its own amplitudes give; resamples whose
        window is under 3 layers are left out).
    mean_field_rate : ndarray, shape ``(N,)``
        The same fit (same window, same weights) of the mean-field map's amplitudes.
    fit_window : ndarray of int, shape ``(N, 2)``
        First and last layer of each mode's window (``-1`` without a fit).
    fit_weight : ndarray, shape ``(L, N)``
        Each layer's weight in each mode's fit (0 outside the window).
    amplitude_se : ndarray, shape ``(L, N)``
        Bootstrap standard deviation of each amplitude.
    bootstrap : int
        Bootstrap resamples.
    bootstrap_groups : int
        Units resampled: the networks, or groups of consecutive networks when keeping every
        network would exceed ``BOOTSTRAP_BYTES``.
    """

    mean_field: Propagation
    ensemble: EnsembleResult
    layers: NDArray[np.int64]
    amplitude: FloatArray
    noise: FloatArray
    measured_rate: FloatArray
    measured_rate_se: FloatArray
    mean_field_rate: FloatArray
    fit_window: NDArray[np.int64]
    fit_weight: FloatArray
    amplitude_se: FloatArray
    bootstrap: int
    bootstrap_groups: int

    @property
    def predicted_rate(self) -> FloatArray:
        """``chi_c* |lambda_f|``."""
        return self.mean_field.predicted_rate

    def mode_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per mode orbit ``{f, -f}``: ``frequency``, ``lambda``,
        ``predicted_rate``, ``measured_rate``, ``measured_rate_se``, ``mean_field_rate``,
        ``fit_layers``, ``relative_difference`` (measured / predicted - 1)."""
        mf = self.mean_field
        n = np.array(mf.image_shape)
        seen: set[tuple[int, ...]] = set()
        order = sorted(range(len(mf.lam)), key=lambda i: (-round(float(abs(mf.lam[i])), 12), i))
        rows: list[dict[str, Any]] = []
        for i in order:
            f = tuple(int(x) for x in mf.frequency[i])
            if f in seen:
                continue
            seen.add(f)
            seen.add(tuple(int(x) for x in (-np.array(f)) % n))
            pred, meas = float(mf.predicted_rate[i]), float(self.measured_rate[i])
            win = self.fit_window[i]
            rows.append(
                {
                    "frequency": list(f),
                    "lambda": float(mf.lam[i].real),
                    "predicted_rate": finite_or_none(pred),
                    "measured_rate": finite_or_none(meas),
                    "measured_rate_se": finite_or_none(float(self.measured_rate_se[i])),
                    "mean_field_rate": finite_or_none(float(self.mean_field_rate[i])),
                    "fit_layers": None if win[0] < 0 else [int(win[0]), int(win[1])],
                    "relative_difference": finite_or_none(meas / pred - 1.0) if pred > 0 else None,
                }
            )
        return rows


def fit_window(amplitude: ArrayLike, noise: ArrayLike, margin: float = MC_MARGIN) -> int:
    """Length of the fit window: the first run of recorded layers, from the first, on which
    ``amplitude > margin * noise`` (0 when the first layer is already below).

    Parameters
    ----------
    amplitude, noise : array_like, shape ``(L,)``
        A mode's ensemble amplitude and its standard error per recorded layer.
    margin : float
        Standard errors an amplitude must stand above the noise.

    Returns
    -------
    int
        The window is ``layers[:run]``; a rate needs ``run >= 3``.

    Notes
    -----
    docs/theory.md section 4 (the fitted mode decay).
    """
    amp = np.asarray(amplitude, dtype=np.float64)
    ok = (amp > margin * np.asarray(noise, dtype=np.float64)) & np.isfinite(amp)
    return int(np.argmin(ok)) if not ok.all() else int(amp.size)


def weighted_rate(layers: ArrayLike, amplitude: ArrayLike, weight: ArrayLike) -> FloatArray:
    """The fitting rule: ``exp(slope)`` of the weighted least-squares line through
    ``log(amplitude)`` against the layer.

    Parameters
    ----------
    layers : array_like, shape ``(n,)``
        Layers of the window.
    amplitude : array_like, shape ``(..., n)``
        Amplitudes on those layers; every leading index is fitted separately (a stack of
        bootstrap resamples, say).
    weight : array_like, shape ``(n,)``
        Weight of each layer's residual (as ``numpy.polyfit``'s ``w``: the normal equations
        carry ``weight**2``).

    Returns
    -------
    ndarray, shape ``(...)``
        Per-layer rate; NaN where an amplitude is not positive and finite.

    Notes
    -----
    docs/theory.md section 4: mode ``f`` shrinks by ``chi_c* |lambda_f|`` per layer, so
    ``log`` amplitude is linear in the layer. The same function, with the same ``layers`` and
    ``weight``, fits the finite networks and the mean-field map (and every bootstrap
    resample, with that resample's own window and weights).
    """
    x = np.asarray(layers, dtype=np.float64)
    w2 = np.asarray(weight, dtype=np.float64) ** 2
    amp = np.asarray(amplitude, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where((amp > 0) & np.isfinite(amp), np.log(np.where(amp > 0, amp, 1.0)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):  # all-zero weights: NaN
        total = np.sum(w2, axis=-1, keepdims=True)
        dx = x - np.sum(w2 * x, axis=-1, keepdims=True) / total
        y_bar = np.sum(w2 * y, axis=-1, keepdims=True) / total
        slope = np.sum(w2 * dx * (y - y_bar), axis=-1) / np.sum(w2 * dx * dx, axis=-1)
    return np.asarray(np.exp(slope), dtype=np.float64)


def stacked_mode_amplitudes(gather: DiagonalGather, eps: FloatArray) -> FloatArray:
    """Off-diagonal mode amplitudes of a stack of ``(B*N, B*N)`` matrices at once.

    The same numbers as ``mftheory.cnn.propagation.gathered_mode_amplitudes(gather, m)[0]``
    for every ``m`` in ``eps`` (shape ``(R, B*N, B*N)``); returns ``(R, N)``.

    Notes
    -----
    docs/theory.md section 4 (the Fourier modes of the perturbation).
    """
    B, N, shape = gather.batch, gather.N, gather.shape
    R, d = eps.shape[0], len(shape)
    tensor = eps.reshape(R, B, N, B, N)
    D = tensor[:, :, gather.rows, :, gather.shifted]  # (N_a, N_t, R, B, B)
    coef = np.fft.rfftn(D.reshape(*shape, N * R * B * B), axes=tuple(range(d)))
    power = coef.real**2 + coef.imag**2
    half = power.shape[:d]
    power = power.reshape(*half, N, R, B, B) / float(N * N)
    diag_half = np.einsum("...ii->...", power[..., 0, :, :, :])  # (*half, R)
    total_half = power.sum(axis=(-4, -2, -1))  # (*half, R)
    freq = np.indices(shape).reshape(d, -1)
    mirror = freq[-1] > shape[-1] // 2
    src = np.where(mirror, (-freq) % np.array(shape)[:, None], freq)
    flat = np.ravel_multi_index(tuple(src), half)
    diag_power = diag_half.reshape(-1, R)[flat]
    total = total_half.reshape(-1, R)[flat]
    off_count = N * B * B - B
    if off_count == 0:
        return np.zeros((R, N))
    return np.asarray(np.sqrt(np.maximum(total - diag_power, 0.0) / off_count).T)


def _bootstrap_amplitudes(
    gather: DiagonalGather,
    groups: FloatArray,
    sizes: NDArray[np.int64],
    weights: FloatArray,
    keep_layers: int,
) -> tuple[FloatArray, FloatArray]:
    """Amplitudes of every bootstrap resample: ``(R, keep_layers, N)`` on the first
    ``keep_layers`` records, and their standard deviation over resamples on all, ``(L, N)``.

    ``weights[r, g]`` is how often resample ``r`` drew group ``g``; the resample's mean is
    ``sum_g weights sizes groups / sum_g weights sizes``.
    """
    G, L, M = groups.shape[0], groups.shape[1], groups.shape[2]
    R, N = weights.shape[0], gather.N
    share = weights * sizes[None, :]
    share = share / share.sum(axis=1, keepdims=True)
    kept = np.empty((R, keep_layers, N))
    sd = np.empty((L, N))
    step = max(1, _BOOTSTRAP_CHUNK_BYTES // (8 * M * M * 4))
    for k in range(L):
        flat = groups[:, k].reshape(G, M * M)
        amps = np.empty((R, N))
        for r0 in range(0, R, step):
            means = (share[r0 : r0 + step] @ flat).reshape(-1, M, M)
            amps[r0 : r0 + step] = stacked_mode_amplitudes(gather, means)
        sd[k] = np.std(amps, axis=0, ddof=1)
        if k < keep_layers:
            kept[:, k] = amps
    return kept, sd


def compare_modes(
    act: Activation | str,
    *,
    v: ArrayLike,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    channels: int,
    networks: int,
    images: ArrayLike | None = None,
    Sigma0: ArrayLike | None = None,
    image_shape: int | Sequence[int] | None = None,
    seed: int = 0,
    backend: str | ArrayBackend = "numpy",
    device: str | None = None,
    margin: float = MC_MARGIN,
    progress: Callable[[int, int], Any] | None = None,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
) -> ModeComparison:
    """Fit per-mode decay rates in finite random CNNs and set them beside the theory.

    Parameters
    ----------
    act, v, sigma_w2, sigma_b2, depth, images, Sigma0, image_shape
        As ``mftheory.cnn.propagation.propagate`` (the same input for both runs).
    channels, networks, seed, backend, device
        As ``mftheory.montecarlo.simulate_ensemble``.
    margin : float
        Amplitudes enter the fit while above ``margin`` standard errors.
    progress : callable, optional
        ``progress(done_networks, networks)``.
    bootstrap : int
        Bootstrap resamples (``>= 2``) behind ``measured_rate_se`` and ``amplitude_se``,
        drawn by ``numpy.random.default_rng(seed)``.

    Returns
    -------
    ModeComparison

    Notes
    -----
    docs/theory.md section 4: mode ``f`` of the off-diagonal perturbation shrinks by
    ``chi_c* |lambda_f|`` per layer near the fixed point. The rule (``FIT_RULE``): the window
    is the first run of layers (from the first recorded) on which the ensemble's amplitude
    exceeds ``margin * noise``; each layer's weight is ``amplitude / noise`` (the inverse
    standard error of the log amplitude), both from the ensemble; ``weighted_rate`` with that
    window and those weights fits the ensemble and the map's amplitudes on the same layers.
    ``measured_rate_se`` is the standard deviation of the rule's rate over bootstrap
    resamples of the networks, each resample choosing its own window and weights the same
    way (so the error includes the choice of the window).
    """
    n_boot = int_at_least(bootstrap, "bootstrap", 2)
    activation = get_activation(act) if isinstance(act, str) else act
    mf = propagate(
        activation,
        v=v,
        sigma_w2=sigma_w2,
        sigma_b2=sigma_b2,
        depth=depth,
        images=images,
        Sigma0=Sigma0,
        image_shape=image_shape,
    )
    if mf.unavailable is not None:  # the comparison is of Sigma* - Sigma^l: needs a finite q*
        raise MFTheoryError(mf.unavailable.split(", so")[0] + ": no Sigma* to compare against")
    size = mf.covariance.shape[0]
    q_star, c_star = float(mf.fixed.q_star), float(mf.fixed.c_star)
    ens = simulate_ensemble(
        activation,
        sigma_w2=sigma_w2,
        sigma_b2=sigma_b2,
        v=mf.v,
        image_shape=mf.image_shape,
        depth=depth,
        channels=channels,
        networks=networks,
        Sigma0=Sigma0,
        images=images,
        Sigma_star=uniform_fixed_covariance(q_star, c_star, size),
        seed=seed,
        backend=backend,
        device=device,
        progress=progress,
        groups=_groups(networks, depth + (Sigma0 is not None), size),
    )
    assert ens.difference_mean is not None and ens.difference_sem is not None
    layers = np.asarray(ens.layers, dtype=np.int64)
    gather = DiagonalGather(mf.image_shape, mf.batch)
    N = gather.N
    off = ~np.eye(size, dtype=bool)
    amp = np.empty((layers.size, N))
    noise = np.empty(layers.size)
    for k in range(layers.size):
        amp[k] = gathered_mode_amplitudes(gather, ens.difference_mean[k])[0]
        noise[k] = math.sqrt(float(np.mean(ens.difference_sem[k][off] ** 2)) / N)
    mf_amp = mf.amplitude[np.searchsorted(mf.layers, layers)]
    runs = np.array([fit_window(amp[:, f], noise, margin) for f in range(N)])
    weight = np.zeros((layers.size, N))
    for f in np.flatnonzero(runs >= 3):
        weight[: runs[f], f] = amp[: runs[f], f] / noise[: runs[f]]
    assert ens.difference_groups is not None and ens.group_sizes is not None
    rng = np.random.default_rng(int(seed))
    G = ens.group_sizes.size
    draws = np.zeros((n_boot, G))
    np.add.at(draws, (np.arange(n_boot)[:, None], rng.integers(0, G, size=(n_boot, G))), 1.0)
    # a resample's window may run past the ensemble's: keep room for it (twice the longest)
    keep = min(layers.size, 2 * int(runs.max(initial=0)) + 3)
    boot, amp_se = _bootstrap_amplitudes(
        gather, ens.difference_groups, ens.group_sizes, draws, keep
    )
    measured, measured_se, mf_rate = (np.full(N, np.nan) for _ in range(3))
    window = np.full((N, 2), -1, dtype=np.int64)
    for f in np.flatnonzero(runs >= 3):
        sel = slice(0, runs[f])
        measured[f] = weighted_rate(layers[sel], amp[sel, f], weight[sel, f])
        mf_rate[f] = weighted_rate(layers[sel], mf_amp[sel, f], weight[sel, f])
        rates = _resample_rates(layers[:keep], boot[:, :, f], noise[:keep], margin)
        rates = rates[np.isfinite(rates)]  # resamples whose window is under 3 layers: left out
        measured_se[f] = np.std(rates, ddof=1) if rates.size >= 2 else math.nan
        window[f] = (layers[0], layers[runs[f] - 1])
    return ModeComparison(
        mean_field=mf,
        ensemble=ens,
        layers=layers,
        amplitude=amp,
        noise=noise,
        measured_rate=measured,
        measured_rate_se=measured_se,
        mean_field_rate=mf_rate,
        fit_window=window,
        fit_weight=weight,
        amplitude_se=amp_se,
        bootstrap=n_boot,
        bootstrap_groups=G,
    )


def _resample_rates(
    layers: NDArray[np.int64], boot: FloatArray, noise: FloatArray, margin: float
) -> FloatArray:
    """The whole rule on every resample ``boot[r]`` (``(R, K)`` amplitudes on the first ``K``
    layers): its own window (``fit_window``) and weights (amplitude / noise), then
    ``weighted_rate``; NaN where a resample's window has fewer than 3 layers."""
    ok = (boot > margin * noise) & np.isfinite(boot)
    run = np.where(ok.all(axis=1), boot.shape[1], np.argmin(ok, axis=1))
    inside = np.arange(boot.shape[1])[None, :] < run[:, None]
    weight = np.where(inside, boot / noise, 0.0)
    rates = weighted_rate(layers, np.where(inside, boot, 1.0), weight)
    return np.where(run >= 3, rates, np.nan)


def _groups(networks: int, records: int, M: int) -> int:
    """Bootstrap units: every network, unless that would keep over ``BOOTSTRAP_BYTES``."""
    fit = BOOTSTRAP_BYTES // (8 * records * M * M)
    return int(max(2, min(networks, fit)))
