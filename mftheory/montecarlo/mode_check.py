"""Mean-field mode decay against finite random CNNs: the check behind ``mftheory simulate``.

``compare_modes`` runs the mean-field map (``mftheory.cnn.propagation.propagate``) and an
ensemble of finite networks (``mftheory.montecarlo.simulate_ensemble``) on the same input,
measures the Fourier-mode amplitudes of ``eps^l = Sigma* - Sigma^l`` in both, and fits each
mode's per-layer decay rate where the Monte Carlo signal stands above its noise, next to the
prediction ``chi_c* |lambda_f|``.

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
from mftheory.cnn.propagation import (
    DiagonalGather,
    Propagation,
    fit_decay_rate,
    gathered_mode_amplitudes,
    propagate,
)
from mftheory.cnn.spatial import uniform_fixed_covariance
from mftheory.errors import MFTheoryError
from mftheory.montecarlo.backends import ArrayBackend
from mftheory.montecarlo.ensembles import EnsembleResult, simulate_ensemble
from mftheory.serialize import finite_or_none

__all__ = ["MC_MARGIN", "ModeComparison", "compare_modes"]

FloatArray = NDArray[np.float64]

#: A Monte Carlo amplitude enters a rate fit where it exceeds this many standard errors.
MC_MARGIN = 5.0


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
        diagonal when the entries' errors are independent).
    measured_rate, measured_rate_se : ndarray, shape ``(N,)``
        Weighted least-squares fit of ``log(amplitude)`` against the layer over the first run
        of layers above ``MC_MARGIN`` standard errors: ``exp(slope)`` and its standard error
        (NaN where fewer than 3 layers qualify).
    mean_field_rate : ndarray, shape ``(N,)``
        The same fit of the mean-field amplitudes over the same layers.
    fit_window : ndarray of int, shape ``(N, 2)``
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


def _weighted_rate(
    layers: NDArray[Any], amp: FloatArray, noise: FloatArray, margin: float
) -> tuple[float, float, tuple[int, int] | None]:
    ok = (amp > margin * noise) & np.isfinite(amp)
    run = int(np.argmin(ok)) if not ok.all() else amp.size
    if run < 3:
        return math.nan, math.nan, None
    x = layers[:run].astype(np.float64)
    y = np.log(amp[:run])
    w = amp[:run] / noise[:run]  # 1 / (standard error of log amplitude)
    coef, cov = np.polyfit(x, y, 1, w=w, cov="unscaled")
    slope, se = float(coef[0]), float(math.sqrt(max(cov[0, 0], 0.0)))
    return math.exp(slope), math.exp(slope) * se, (int(x[0]), int(x[-1]))


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

    Returns
    -------
    ModeComparison

    Notes
    -----
    docs/theory.md section 4: mode ``f`` of the off-diagonal perturbation shrinks by
    ``chi_c* |lambda_f|`` per layer near the fixed point. The fit weights each layer by
    ``amplitude / noise`` (the inverse standard error of the log amplitude).
    """
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
    mf_index = np.searchsorted(mf.layers, layers)
    measured = np.full(N, np.nan)
    measured_se = np.full(N, np.nan)
    mf_rate = np.full(N, np.nan)
    window = np.full((N, 2), -1, dtype=np.int64)
    for f in range(N):
        rate, se, win = _weighted_rate(layers, amp[:, f], noise, margin)
        if win is None:
            continue
        measured[f], measured_se[f] = rate, se
        window[f] = win
        sel = (layers >= win[0]) & (layers <= win[1])
        mf_amp = mf.amplitude[mf_index[sel], f]
        if np.all(mf_amp > 0):
            r, _ = fit_decay_rate(mf_amp, 0.0, layers=layers[sel], margin=0.0, fraction=1.0)
            mf_rate[f] = math.nan if r is None else r
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
    )
