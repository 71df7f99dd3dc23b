"""Signal propagation of real images through the CNN covariance map, mode by mode.

``propagate`` starts from images (or any input covariance), iterates
``Sigma^{l+1} = A_v * C(Sigma^l)`` with the fast engine of ``mftheory.cnn.ctransform``, and
decomposes ``eps^l = Sigma* - Sigma^l`` into the Fourier modes of docs/theory.md section 4: along
every cyclic diagonal ``eps_{a, a+t}`` (and every pair of images) the Fourier coefficient of
frequency ``f`` shrinks by ``chi_c* lambda_f`` per layer near the fixed point (``chi_q*
lambda_f`` on the main diagonal). ``mode_amplitudes`` measures those coefficients,
``fit_decay_rate`` the per-layer factor they actually shrink by.

Notes
-----
docs/theory.md sections 2 (the map), 3 (the uniform fixed point Sigma*) and 4 (modes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mftheory.activations.builtins import Activation, get_activation
from mftheory.cnn.ctransform import CTransformEngine
from mftheory.cnn.first_layer import _AOperator, _check_images, input_covariance
from mftheory.cnn.modes import _require_normalised, mode_eigenvalues
from mftheory.cnn.spatial import _check_covariance, _check_v_for_image, check_image_shape
from mftheory.errors import MFTheoryError
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS, QuadratureSettings
from mftheory.meanfield.fixed_points import FixedPoint, fixed_point
from mftheory.meanfield.maps import check_variances
from mftheory.serialize import finite_or_none

__all__ = [
    "DiagonalGather",
    "Propagation",
    "fit_decay_rate",
    "gathered_mode_amplitudes",
    "input_covariance",
    "mode_amplitudes",
    "propagate",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Amplitudes are used for a rate fit only where they exceed this multiple of the error floor.
FIT_MARGIN = 1e3
#: Rounding of the covariance entries themselves, relative to q*, added to the error floor.
_ROUNDING = 4 * np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------
# Mode amplitudes
# --------------------------------------------------------------------------------------------


class DiagonalGather:
    """Index arrays that read every cyclic diagonal ``M_{a, a+t}`` of an (image, pixel)
    matrix at once.

    Parameters
    ----------
    shape : tuple of int
        Pixels per side (already validated, e.g. by
        ``mftheory.cnn.spatial.check_image_shape``).
    batch : int
        Images ``B``: the matrices read are ``(B*N, B*N)``, ``N = prod(shape)``.
    """

    def __init__(self, shape: tuple[int, ...], batch: int) -> None:
        self.shape, self.batch = shape, batch
        N = math.prod(shape)
        coords = np.indices(shape).reshape(len(shape), -1)  # (d, N), row-major
        # shifted[a, t] = flat index of (a + t) mod n
        summed = (coords[:, :, None] + coords[:, None, :]) % np.array(shape)[:, None, None]
        self.shifted = np.ravel_multi_index(tuple(summed), shape)
        self.rows = np.arange(N)[:, None]
        self.N = N

    def diagonals(self, M: FloatArray) -> FloatArray:
        """``D[a, t, i, j] = M[(i, a), (j, a + t)]``."""
        B, N = self.batch, self.N
        tensor = M.reshape(B, N, B, N)
        return np.asarray(tensor[:, self.rows, :, self.shifted])


def mode_amplitudes(
    eps: ArrayLike, image_shape: int | Sequence[int]
) -> tuple[FloatArray, FloatArray]:
    """Fourier-mode amplitudes of a perturbation ``eps = Sigma* - Sigma`` of the covariance.

    Parameters
    ----------
    eps : array_like, shape ``(B*N, B*N)``
        Symmetric matrix over (image, pixel) pairs, pixels row-major.
    image_shape : int or tuple of int
        Pixels per side.

    Returns
    -------
    off_diagonal : ndarray, shape ``(N,)``
        For every frequency ``f`` (row-major over ``{0..n-1}^d``, as
        ``mftheory.cnn.modes.mode_eigenvalues``), the root mean square over every off-diagonal
        cyclic diagonal (offset ``t`` and image pair ``(i, j)``, except ``t = 0, i = j``) of
        ``D_f = (1/N) sum_a eps[(i, a), (j, a + t)] exp(-2 pi i <f, a> / n)``.
    diagonal : ndarray, shape ``(N,)``
        The same over the main diagonals (``t = 0``, ``i = j``): the pixel variances.

    Notes
    -----
    docs/theory.md section 4: ``A_v`` multiplies ``D_f`` of every cyclic diagonal by
    ``lambda_f``, so near the fixed point ``off_diagonal[f]`` shrinks by ``chi_c* |lambda_f|``
    per layer and ``diagonal[f]`` by ``chi_q* |lambda_f|``. The normalisation makes a
    spatially uniform perturbation ``e`` of every off-diagonal entry have amplitude ``|e|``
    at ``f = 0``. For real ``eps``, frequencies ``f`` and ``-f`` have equal amplitudes.
    """
    shape = check_image_shape(image_shape)
    arr = np.asarray(eps, dtype=np.float64)
    N = math.prod(shape)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] % N or arr.shape[0] == 0:
        raise MFTheoryError(
            f"eps must be a square matrix over whole images of {N} pixels, got {arr.shape}"
        )
    return gathered_mode_amplitudes(DiagonalGather(shape, arr.shape[0] // N), arr)


def gathered_mode_amplitudes(
    gather: DiagonalGather, eps: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``mode_amplitudes`` of a validated ``(B*N, B*N)`` matrix, with a prepared gather.

    Parameters
    ----------
    gather : DiagonalGather
        Built once for the image shape and batch, reused for every matrix.
    eps : ndarray, shape ``(B*N, B*N)``

    Returns
    -------
    off_diagonal, diagonal : ndarray, shape ``(N,)``
        As ``mode_amplitudes``.
    """
    B, N, shape = gather.batch, gather.N, gather.shape
    d = len(shape)
    D = gather.diagonals(eps).reshape(*shape, N * B * B)
    # real input: the FFT over the last pixel axis keeps frequencies 0..n/2, the others follow
    # from |D_{-f}| = |D_f|
    coef = np.fft.rfftn(D, axes=tuple(range(d)))
    power = coef.real**2 + coef.imag**2
    half = power.shape[:d]
    power = power.reshape(*half, N, B, B) / float(N * N)
    diag_half = np.einsum("...ii->...", power[..., 0, :, :])
    total_half = power.sum(axis=(-3, -2, -1))
    freq = np.indices(shape).reshape(d, -1)
    last = freq[-1]
    mirror = last > shape[-1] // 2
    src = np.where(mirror, (-freq) % np.array(shape)[:, None], freq)
    flat = np.ravel_multi_index(tuple(src), half)
    diag_power = diag_half.reshape(-1)[flat]
    total = total_half.reshape(-1)[flat]
    off_count = N * B * B - B
    if off_count == 0:
        off = np.zeros(N)
    else:
        off = np.sqrt(np.maximum(total - diag_power, 0.0) / off_count)
    return np.asarray(off, dtype=np.float64), np.sqrt(diag_power / B)


def fit_decay_rate(
    amplitude: ArrayLike,
    floor: ArrayLike,
    *,
    layers: ArrayLike | None = None,
    margin: float = FIT_MARGIN,
    fraction: float = 0.25,
) -> tuple[float | None, tuple[int, int] | None]:
    """Per-layer factor by which a mode amplitude shrinks, fitted where it is resolved.

    Parameters
    ----------
    amplitude : array_like, shape ``(L,)``
        Amplitude per recorded layer.
    floor : array_like, shape ``(L,)`` or scalar
        Numerical (or statistical) error of each amplitude.
    layers : array_like of int, optional
        Layer index of each amplitude (default ``0..L-1``).
    margin : float
        An amplitude counts as resolved where it exceeds ``margin * floor``.
    fraction : float
        Share of the resolved layers, counted from the last, that the fit uses.

    Returns
    -------
    rate : float or None
        ``exp(slope)`` of the least-squares line through ``log(amplitude)`` over the last
        ``fraction`` (at least 3 layers) of the first run of resolved layers; None when fewer
        than 3 layers are resolved or an amplitude is 0.
    window : (int, int) or None
        First and last layer of the fit.

    Notes
    -----
    docs/theory.md section 4: the prediction is ``chi_c* |lambda_f|`` per layer. The fit uses the
    end of the resolved range, where the perturbation is smallest and the linearised theory
    applies best.
    """
    if not (0.0 < fraction <= 1.0):
        raise MFTheoryError(f"fraction must be in (0, 1], got {fraction!r}")
    if not (margin >= 0.0 and math.isfinite(margin)):
        raise MFTheoryError(f"margin must be finite and >= 0, got {margin!r}")
    amp = np.asarray(amplitude, dtype=np.float64)
    fl = np.broadcast_to(np.asarray(floor, dtype=np.float64), amp.shape)
    lay = np.arange(amp.size) if layers is None else np.asarray(layers)
    ok = (amp > margin * fl) & (amp > 0) & np.isfinite(amp)
    run = int(np.argmin(ok)) if not ok.all() else amp.size
    if run < 3:
        return None, None
    k = min(run, max(3, round(run * fraction)))
    sl = slice(run - k, run)
    slope = np.polyfit(lay[sl].astype(np.float64), np.log(amp[sl]), 1)[0]
    return float(math.exp(slope)), (int(lay[sl][0]), int(lay[sl][-1]))


# --------------------------------------------------------------------------------------------
# Propagation
# --------------------------------------------------------------------------------------------


def _resolved(amplitude: float, floor: float) -> float | None:
    """The amplitude, or None where it is below the floor or NaN."""
    return float(amplitude) if amplitude > floor else None


@dataclass(frozen=True)
class Propagation:
    """The covariance of images layer by layer, and its Fourier modes.

    Attributes
    ----------
    activation : Activation
    sigma_w2, sigma_b2 : float
    v : ndarray
        The (normalised) variance vector.
    image_shape : tuple of int
        Pixels per side.
    batch : int
        Number of images ``B``.
    layers : ndarray of int, shape ``(L,)``
        Layer index of each record (``1..depth`` from images).
    covariance : ndarray, shape ``(B*N, B*N)``
        ``Sigma^depth`` over (image, pixel) pairs, pixels row-major.
    fixed : FixedPoint
        ``q*``, ``c*``, ``chi_c*``, ``chi_q*`` of the fully-connected maps.
    frequency : ndarray of int, shape ``(N, d)``
    lam : ndarray of complex, shape ``(N,)``
        ``lambda_f`` of ``A_v`` on this image size.
    amplitude, amplitude_diagonal : ndarray, shape ``(L, N)``
        ``mode_amplitudes`` of ``Sigma* - Sigma^l`` per layer.
    error_floor : ndarray, shape ``(L,)``
        Accumulated bound on the numerical error of the entries of ``Sigma^l`` (sum of the
        per-layer bounds of the C-transform plus rounding): amplitudes below it are noise.
    predicted_rate, predicted_rate_diagonal : ndarray, shape ``(N,)``
        ``chi_c* |lambda_f|`` and ``chi_q* |lambda_f|``.
    second_order_rate : ndarray, shape ``(N,)``
        ``chi_c*^2 max_g |lambda_g lambda_{f-g}|``: the rate of the second-order term that the
        product of modes ``g`` and ``f - g`` feeds into mode ``f``. Where it exceeds
        ``predicted_rate`` that term outlives the linear one, and the measured rate tends to
        it (or to higher orders) instead.
    measured_rate, measured_rate_diagonal : ndarray, shape ``(N,)``
        ``fit_decay_rate`` of each amplitude series (NaN where unresolved).
    fit_window : ndarray of int, shape ``(N, 2)``
        First and last layer of each off-diagonal fit (-1 where none).
    methods : dict
        How many layers used each C-transform method.
    history : ndarray or None
        ``(L, B*N, B*N)`` covariances when requested.
    q_mean : ndarray, shape ``(L,)``
        ``q^l``: the mean pixel variance of ``Sigma^l`` (over images and pixels).
    correlation_amplitude, correlation_amplitude_diagonal : ndarray, shape ``(L, N)``
        ``mode_amplitudes`` of ``J - Sigma^l / q^l`` (``J`` all ones): the distance of the
        normalised covariance from perfect correlation. Defined with or without a fixed point;
        modes ``f != 0`` are the same as those of the correlation matrix ``Sigma^l / q^l``.
    correlation_floor : ndarray, shape ``(L,)``
        Error floor of those amplitudes (relative to ``q^l``).
    correlation_rate : ndarray, shape ``(N,)``
        ``fit_decay_rate`` of each correlation amplitude series (NaN where unresolved).
    correlation_fit_window : ndarray of int, shape ``(N, 2)``
    unavailable : str or None
        Why the ``Sigma* - Sigma^l`` analysis is missing (no finite ``q*``: its fields are
        NaN), or None.
    """

    activation: Activation
    sigma_w2: float
    sigma_b2: float
    v: FloatArray
    image_shape: tuple[int, ...]
    batch: int
    layers: IntArray
    covariance: FloatArray
    fixed: FixedPoint
    frequency: IntArray
    lam: NDArray[np.complex128]
    amplitude: FloatArray
    amplitude_diagonal: FloatArray
    error_floor: FloatArray
    predicted_rate: FloatArray
    predicted_rate_diagonal: FloatArray
    measured_rate: FloatArray
    measured_rate_diagonal: FloatArray
    second_order_rate: FloatArray
    fit_window: IntArray
    methods: dict[str, int]
    settings: QuadratureSettings
    tol: float
    history: FloatArray | None = field(default=None, repr=False)
    q_mean: FloatArray = field(default_factory=lambda: np.empty(0), repr=False)
    correlation_amplitude: FloatArray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    correlation_amplitude_diagonal: FloatArray = field(
        default_factory=lambda: np.empty((0, 0)), repr=False
    )
    correlation_floor: FloatArray = field(default_factory=lambda: np.empty(0), repr=False)
    correlation_rate: FloatArray = field(default_factory=lambda: np.empty(0), repr=False)
    correlation_fit_window: IntArray = field(
        default_factory=lambda: np.empty((0, 2), dtype=np.int64), repr=False
    )
    unavailable: str | None = None

    @property
    def depth(self) -> int:
        return int(self.layers[-1])

    def mode_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per mode orbit ``{f, -f}`` (equal amplitudes), most persistent
        first: ``frequency``, ``lambda``, ``abs_lambda``, ``predicted_rate``,
        ``measured_rate``, ``fit_layers``, ``predicted_rate_diagonal``,
        ``measured_rate_diagonal``, ``second_order_rate``, ``amplitude_first``,
        ``amplitude_last`` (None where below the error floor: numerical noise, or where
        ``unavailable``), ``correlation_rate``, ``correlation_fit_layers``,
        ``correlation_first``, ``correlation_last`` (the modes of ``J - Sigma^l / q^l``)."""
        n = np.array(self.image_shape)
        seen: set[tuple[int, ...]] = set()
        order = np.lexsort((*self.frequency[:, ::-1].T, -np.round(np.abs(self.lam), 12)))
        rows: list[dict[str, Any]] = []
        for i in order:
            f = tuple(int(x) for x in self.frequency[i])
            if f in seen:
                continue
            seen.add(f)
            seen.add(tuple(int(x) for x in (-np.array(f)) % n))
            win = self.fit_window[i]
            cwin = self.correlation_fit_window[i]
            rows.append(
                {
                    "frequency": list(f),
                    "lambda": float(self.lam[i].real),
                    "abs_lambda": float(abs(self.lam[i])),
                    "predicted_rate": finite_or_none(self.predicted_rate[i]),
                    "measured_rate": finite_or_none(self.measured_rate[i]),
                    "fit_layers": None if win[0] < 0 else [int(win[0]), int(win[1])],
                    "predicted_rate_diagonal": finite_or_none(
                        float(self.predicted_rate_diagonal[i])
                    ),
                    "measured_rate_diagonal": finite_or_none(self.measured_rate_diagonal[i]),
                    "second_order_rate": finite_or_none(self.second_order_rate[i]),
                    "amplitude_first": _resolved(self.amplitude[0, i], self.error_floor[0]),
                    "amplitude_last": _resolved(self.amplitude[-1, i], self.error_floor[-1]),
                    "correlation_rate": finite_or_none(self.correlation_rate[i]),
                    "correlation_fit_layers": None if cwin[0] < 0 else [int(cwin[0]), int(cwin[1])],
                    "correlation_first": _resolved(
                        self.correlation_amplitude[0, i], self.correlation_floor[0]
                    ),
                    "correlation_last": _resolved(
                        self.correlation_amplitude[-1, i], self.correlation_floor[-1]
                    ),
                }
            )
        return rows


def _initial_covariance(
    images: ArrayLike | None,
    Sigma0: ArrayLike | None,
    v: ArrayLike,
    image_shape: int | Sequence[int] | None,
    w2: float,
    b2: float,
) -> tuple[FloatArray, tuple[int, ...], FloatArray, int]:
    """The first recorded covariance, the image shape, the checked ``v`` and the first layer.

    From images: ``Sigma^1`` of ``input_covariance`` (first layer 1); from ``Sigma0``: the
    checked matrix itself (first layer 0).
    """
    if (images is None) == (Sigma0 is None):
        raise MFTheoryError("give exactly one of images and Sigma0")
    if images is not None:
        arr = _check_images(images)
        shape = tuple(int(s) for s in arr.shape[2:])
        varr = _check_v_for_image(v, shape)
        _require_normalised(varr)
        sigma = input_covariance(arr, varr, sigma_w2=w2, sigma_b2=b2)
        first = 1
    else:
        if image_shape is None or Sigma0 is None:
            raise MFTheoryError("Sigma0 needs image_shape")
        shape = check_image_shape(image_shape)
        varr = _check_v_for_image(v, shape)
        _require_normalised(varr)
        sigma = _check_covariance(Sigma0, "Sigma0")
        d = np.sqrt(np.diag(sigma))
        excess = np.abs(sigma) - (1.0 + 1e-8) * np.outer(d, d)
        if np.any(excess > 0):
            a, b = (int(i) for i in np.unravel_index(int(np.argmax(excess)), excess.shape))
            raise MFTheoryError(
                f"Sigma0[{a}, {b}] = {float(sigma[a, b])!r} exceeds"
                f" sqrt(Sigma0[{a}, {a}] * Sigma0[{b}, {b}]): not a covariance (correlation"
                " above 1)"
            )
        first = 0
    N = math.prod(shape)
    if sigma.shape[0] % N:
        raise MFTheoryError(
            f"Sigma0 has {sigma.shape[0]} rows, not a multiple of the {N} pixels of {shape}"
        )
    return sigma, shape, varr, first


def propagate(
    act: Activation | str,
    *,
    v: ArrayLike,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    images: ArrayLike | None = None,
    Sigma0: ArrayLike | None = None,
    image_shape: int | Sequence[int] | None = None,
    settings: QuadratureSettings | None = None,
    tol: float | None = None,
    record: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Propagation:
    """Iterate the CNN covariance map for images and decompose it into Fourier modes.

    Parameters
    ----------
    act : Activation or str
        The nonlinearity.
    v : array_like
        Variance vector summing to 1, as many dimensions as the images.
    sigma_w2, sigma_b2 : float
        Weight and bias variances.
    depth : int
        Number of layers ``L >= 1``; ``Sigma^L`` is reported.
    images : array_like, shape ``(B, channels, *pixels)``, optional
        Raw images (used as given). The first layer is affine:
        ``Sigma^1 = sigma_w2 A_v * (X X^T / channels) + sigma_b2`` (``input_covariance``),
        then ``Sigma^{l+1} = A_v * C(Sigma^l)``; records are layers ``1..L``.
    Sigma0 : array_like, optional
        Instead of images: the layer-0 pre-activation covariance (with ``image_shape``);
        records are layers ``0..L``.
    image_shape : int or tuple of int, optional
        Pixels per side, with ``Sigma0``.
    settings : QuadratureSettings, optional
    tol : float, optional
        Tolerance of each pair expectation (see ``mftheory.cnn.ctransform.CTransformEngine``).
    record : bool
        Keep every layer's covariance in ``history``.
    progress : callable, optional
        Called as ``progress(layer, depth)`` after each layer.

    Returns
    -------
    Propagation

    Raises
    ------
    MFTheoryError
        Bad images, ``v``, variances or depth; a covariance that stops being finite
        (overflow).

    Notes
    -----
    docs/theory.md sections 2-4. Without a finite fixed point (a divergent point, e.g. relu at
    ``sigma_w2 >= 2`` with a bias) the covariance is still iterated and recorded; the
    ``Sigma* - Sigma^l`` fields are NaN and ``unavailable`` says why (so too where every ``q``
    is a fixed point: relu at ``sigma_w2 = 2`` without bias), while the modes of the
    correlation matrix ``J - Sigma^l / q^l`` (``correlation_*``) are measured as always
    (docs/theory.md section 3, "Jumps, poles and degenerate fixed points").

    Examples
    --------
    Two random 1D images of 10 pixels through 30 erf layers. The predicted per-layer factor of
    mode ``f`` is ``chi_c* |lambda_f|``, with ``lambda_1 = 1/2 + cos(2 pi / 10) / 2 = 0.904508``
    for ``v = (1/4, 1/2, 1/4)`` (the Fourier transform of ``v``):

    >>> import numpy as np
    >>> images = np.random.default_rng(0).standard_normal((2, 1, 10))
    >>> prop = propagate("erf", v=[0.25, 0.5, 0.25], sigma_w2=1.5, sigma_b2=0.1, depth=30,
    ...                  images=images)
    >>> prop.amplitude.shape  # (layers, modes)
    (30, 10)
    >>> round(float(prop.predicted_rate[1] / prop.fixed.chi_c), 6)
    0.904508
    """
    activation = get_activation(act) if isinstance(act, str) else act
    st = settings or DEFAULT_SETTINGS
    w2, b2 = (float(x) for x in check_variances(sigma_w2, sigma_b2))
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise MFTheoryError(f"depth must be an integer >= 1, got {depth!r}")
    sigma, shape, varr, first = _initial_covariance(images, Sigma0, v, image_shape, w2, b2)
    N = math.prod(shape)
    batch = sigma.shape[0] // N
    fp = fixed_point(activation, sigma_w2=w2, sigma_b2=b2, settings=st)
    q_star, c_star = float(fp.q_star), float(fp.c_star)
    unavailable = None
    if not (math.isfinite(q_star) and math.isfinite(c_star)):
        unavailable = (
            f"no finite fixed point q* ({activation.label} at sigma_w2 = {w2:g}, sigma_b2 ="
            f" {b2:g}: the variance grows without bound), so Sigma* - Sigma^l and its rates are"
            " undefined; the modes of the correlation matrix Sigma^l / q^l are shown instead"
        )
    elif activation.homogeneous and b2 == 0.0 and q_star > 0.0:
        unavailable = (
            f"every q is a fixed point ({activation.label} without bias at chi_1 = 1: q^l stays"
            " at the input's own variance), so Sigma* depends on the input and Sigma* -"
            " Sigma^l and its rates are undefined; the modes of the correlation matrix"
            " Sigma^l / q^l are shown instead"
        )
    engine = CTransformEngine(
        activation,
        sigma_w2=w2,
        sigma_b2=b2,
        q_ref=q_star if unavailable is None else None,
        tol=tol,
        settings=st,
    )
    run = _iterate(
        engine,
        _AOperator(varr, shape, batch),
        sigma,
        shape,
        first,
        depth,
        record,
        progress,
        None if unavailable is not None else (q_star, c_star),
    )
    frequency, lam = mode_eigenvalues(varr, shape)
    abs_lam = np.abs(lam)
    layers = np.arange(first, depth + 1)
    measured, window = _fit_all(run["amp"], run["floor"], layers)
    measured_d, _ = _fit_all(run["amp_d"], run["floor"], layers)
    corr_rate, corr_window = _fit_all(run["corr"], run["corr_floor"], layers)
    chi_c = float(fp.chi_c) if unavailable is None else math.nan
    chi_q = float(fp.chi_q) if unavailable is None else math.nan
    return Propagation(
        activation=activation,
        sigma_w2=w2,
        sigma_b2=b2,
        v=varr,
        image_shape=shape,
        batch=batch,
        layers=layers.astype(np.int64),
        covariance=run["sigma"],
        fixed=fp,
        frequency=frequency,
        lam=lam,
        amplitude=run["amp"],
        amplitude_diagonal=run["amp_d"],
        error_floor=run["floor"],
        predicted_rate=chi_c * abs_lam,
        predicted_rate_diagonal=chi_q * abs_lam,
        measured_rate=measured,
        measured_rate_diagonal=measured_d,
        second_order_rate=chi_c**2 * _product_peak(abs_lam, shape),
        fit_window=window,
        methods=run["methods"],
        settings=st,
        tol=engine.tol,
        history=run["history"],
        q_mean=run["q_mean"],
        correlation_amplitude=run["corr"],
        correlation_amplitude_diagonal=run["corr_d"],
        correlation_floor=run["corr_floor"],
        correlation_rate=corr_rate,
        correlation_fit_window=corr_window,
        unavailable=unavailable,
    )


def _iterate(
    engine: CTransformEngine,
    A: _AOperator,
    sigma: FloatArray,
    shape: tuple[int, ...],
    first: int,
    depth: int,
    record: bool,
    progress: Callable[[int, int], None] | None,
    star: tuple[float, float] | None,
) -> dict[str, Any]:
    """Iterate the map from ``sigma`` (layer ``first``) to ``depth``, measuring per layer the
    modes of ``Sigma* - Sigma^l`` (NaN where ``star = (q*, c*)`` is None) and of ``J - Sigma^l /
    q^l`` (``q^l`` the mean variance, ``J`` all ones), with their error floors."""
    N = math.prod(shape)
    batch = sigma.shape[0] // N
    gather = DiagonalGather(shape, batch)
    total = depth - first + 1
    amp = np.full((total, N), np.nan)
    amp_d = np.full((total, N), np.nan)
    corr = np.empty((total, N))
    corr_d = np.empty((total, N))
    floor = np.empty(total)
    corr_floor = np.empty(total)
    q_mean = np.empty(total)
    history: list[FloatArray] | None = [] if record else None
    methods: dict[str, int] = {}
    acc_err = 0.0
    sigma_star = None
    if star is not None:
        sigma_star = np.full(sigma.shape, star[0] * star[1])
        np.fill_diagonal(sigma_star, star[0])
    for k in range(total):
        layer = first + k
        if k > 0:
            with np.errstate(over="ignore", invalid="ignore"):
                C, stats = engine(sigma)
                sigma = A(C)
            if not np.isfinite(sigma).all():
                raise MFTheoryError(
                    f"covariance stopped being finite at layer {layer}: the variance diverges"
                )
            acc_err += stats.error_bound
            methods[stats.method] = methods.get(stats.method, 0) + 1
        diag = np.diag(sigma)
        with np.errstate(over="ignore"):
            q_mean[k] = float(np.mean(diag))
        if not np.isfinite(q_mean[k]):
            raise MFTheoryError(
                f"covariance stopped being finite at layer {layer}: the variance diverges"
            )
        scale = star[0] if star is not None else float(np.max(diag))
        floor[k] = acc_err + _ROUNDING * scale * (k + 1)
        if sigma_star is not None:
            amp[k], amp_d[k] = gathered_mode_amplitudes(gather, sigma_star - sigma)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr[k], corr_d[k] = gathered_mode_amplitudes(gather, 1.0 - sigma / q_mean[k])
            # an entry of Sigma^l / q^l errs by its own error plus the ratio's times that of q^l
            corr_floor[k] = 2.0 * (acc_err / q_mean[k]) + _ROUNDING * (k + 1)
        if history is not None:
            history.append(sigma.copy())
        if progress is not None:
            progress(layer, depth)
    return {
        "sigma": sigma,
        "amp": amp,
        "amp_d": amp_d,
        "corr": corr,
        "corr_d": corr_d,
        "floor": floor,
        "corr_floor": corr_floor,
        "q_mean": q_mean,
        "methods": methods,
        "history": None if history is None else np.stack(history),
    }


def _fit_all(
    amplitude: FloatArray, floor: FloatArray, layers: IntArray
) -> tuple[FloatArray, IntArray]:
    """``fit_decay_rate`` of every mode's series: rates (NaN where none) and windows (-1)."""
    N = amplitude.shape[1]
    rate = np.full(N, np.nan)
    window = np.full((N, 2), -1, dtype=np.int64)
    for f in range(N):
        r, win = fit_decay_rate(amplitude[:, f], floor, layers=layers)
        if r is not None and win is not None:
            rate[f] = r
            window[f] = win
    return rate, window


def _product_peak(abs_lam: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """``max_g |lambda_g| |lambda_{f-g}|`` for every ``f`` (frequencies mod n per axis)."""
    coords = np.indices(shape).reshape(len(shape), -1)
    diff = (coords[:, :, None] - coords[:, None, :]) % np.array(shape)[:, None, None]
    other = abs_lam[np.ravel_multi_index(tuple(diff), shape)]  # [f, g] -> |lambda_{f-g}|
    return np.asarray(np.max(other * abs_lam[None, :], axis=1), dtype=np.float64)
