"""What ``propagate``, ``simulate`` and ``reproduce`` share: images in, Fourier modes out.

Reading the ``--image`` files, the CNN set-up (activation, v, scales), the long-format CSV
columns per (layer, mode), the mode table and figures, and the Monte Carlo report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from mftheory.cli.params import Choice, ChoiceEnum, Int

if TYPE_CHECKING:
    from mftheory.cli.messages import Messages
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column
    from mftheory.cnn.propagation import Propagation
    from mftheory.montecarlo.mode_check import ModeComparison

__all__ = [
    "MAX_DEPTH",
    "Backend",
    "BackendName",
    "Bootstrap",
    "Channels",
    "Depth",
    "Device",
    "ImageDim",
    "ImageOption",
    "ModesShown",
    "Networks",
    "Normalization",
    "Normalize",
    "Seed",
    "array_backend",
    "cnn_setup",
    "comparison_report",
    "figure_modes",
    "freq_label",
    "load_inputs",
    "mode_columns",
    "mode_layer_columns",
    "note_slopes",
    "require_cnn_budget",
    "run_ensemble",
]


class Normalization(ChoiceEnum):
    """What ``--normalize`` does to the images (``mftheory.cli.images.NORMALIZATIONS``)."""

    none = "none"
    standardize = "standardize"


class BackendName(ChoiceEnum):
    """Array libraries for the sampled networks."""

    numpy = "numpy"
    torch = "torch"


_NORMALIZE = Choice(Normalization, "normalization")
_BACKEND = Choice(BackendName, "backend")

ImageOption = Annotated[
    list[Path],
    typer.Option(
        "--image",
        help="Image file, .png (2D, read as intensities in [0, 1]) or .npy (used as stored: "
        "(n,) 1D, (h, w) 2D, (channels, h, w)), or sample:digit0, an 8x8 handwritten zero "
        "shipped with mftheory. Repeat for several images: their cross-covariances propagate "
        "too.",
        metavar="PATH",
        show_default=False,
    ),
]
ImageDim = Annotated[
    int | None,
    typer.Option(
        "--dim",
        metavar="1|2",
        help="Read a 2D .npy array as (channels, n) of a 1D image (--dim 1); without it, the "
        "dimensions come from the file.",
        parser=Int(1, 2),
    ),
]
Normalize = Annotated[
    Normalization,
    typer.Option(
        "--normalize",
        metavar=_NORMALIZE.metavar,
        help="none: use the images as read; standardize: shift and scale each image to mean 0, "
        "variance 1 over its pixels and channels.",
        parser=_NORMALIZE,
    ),
]
#: Deepest --depth of propagate, simulate and reproduce (and the memory limit, see
#: ``require_cnn_budget``).
MAX_DEPTH = 100_000
Depth = Annotated[
    int,
    typer.Option(
        "--depth",
        metavar="INT",
        help=f"Number of layers L (Sigma^L is reported), 1 to {MAX_DEPTH}.",
        parser=Int(1, MAX_DEPTH),
    ),
]
ModesShown = Annotated[
    int,
    typer.Option(
        "--modes",
        metavar="INT",
        help="Modes the table shows (most persistent first); JSON/CSV have all.",
        parser=Int(0),
    ),
]
Channels = Annotated[
    int,
    typer.Option(
        "--channels", metavar="INT", help="Channels c of every hidden layer.", parser=Int(1)
    ),
]
Networks = Annotated[
    int,
    typer.Option(
        "--networks", metavar="INT", help="Random networks in the ensemble.", parser=Int(2)
    ),
]
Bootstrap = Annotated[
    int,
    typer.Option(
        "--bootstrap",
        metavar="INT",
        help="Bootstrap resamples of the networks (drawn from --seed) behind every standard "
        "error of a measured rate.",
        parser=Int(2, 100_000),
    ),
]
Seed = Annotated[
    int, typer.Option("--seed", metavar="INT", help="Seed of every random draw.", parser=Int(0))
]
Backend = Annotated[
    BackendName,
    typer.Option(
        "--backend",
        metavar=_BACKEND.metavar,
        help="Array library for the networks; torch (the [torch] extra) runs on a GPU when "
        "one is available.",
        parser=_BACKEND,
    ),
]
Device = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="NAME",
        help="torch device (cpu, cuda, cuda:1...); without it, cuda if available, else cpu.",
    ),
]


def load_inputs(
    images: list[Path], dim: int | None, normalize: Normalization, messages: Messages
) -> tuple[Any, str]:
    """Images as (B, channels, *pixels) and a short description of them."""
    from mftheory.cli.images import load_images

    arr, notes = load_images(list(images), dim=dim, normalize=normalize.value)
    for note in notes:
        messages.warn(note)
    shape = "x".join(str(s) for s in arr.shape[2:])
    return arr, f"{arr.shape[0]} image(s) of {shape} pixels, {arr.shape[1]} channel(s)"


def cnn_setup(
    activation: Any,
    v: str,
    kernel: int | None,
    d: int,
    weight: Any,
    b2: float,
    messages: Messages,
) -> tuple[Any, float, str]:
    """The normalized v for ``d``-dimensional images, and sigma_w2 with its source."""
    from mftheory.cli.common import normalized_v, variance_vector_of, weight_variance
    from mftheory.cnn.modes import VARIANCE_VECTOR_PRESETS
    from mftheory.errors import MFTheoryError

    vec = variance_vector_of(v, kernel, d if v.strip().lower() in VARIANCE_VECTOR_PRESETS else None)
    if vec.ndim != d:
        raise MFTheoryError(f"--v {v!r} is {vec.ndim}D but the images are {d}D")
    v_used, _ = normalized_v(vec, messages)
    w2, source = weight_variance(activation, weight, b2, messages)
    return v_used, float(w2), source


def note_slopes(fp: Any, messages: Messages) -> None:
    """Warn when chi_q* > chi_c*: then the diagonal drives the off-diagonal modes."""
    chi_c, chi_q = float(fp.chi_c), float(fp.chi_q)
    if chi_q > chi_c:
        messages.warn(
            f"chi_q* = {chi_q:.6g} > chi_c* = {chi_c:.6g}: the pixel variances relax more slowly"
            " than the correlations and drive the off-diagonal modes, which then shrink by"
            " chi_q*|lambda_f| rather than chi_c*|lambda_f| (the theory assumes chi_q* < chi_c*)"
        )


def mode_layer_columns(layers: Any, res: Propagation, **values: Any) -> dict[str, Any]:
    """CSV columns in long format, one record per (layer, mode): ``layer``, the frequency
    (``frequency`` in 1D, ``frequency_1``... otherwise), ``abs_lambda``, then ``values``
    (arrays broadcast to (layers, modes))."""
    L, N = len(layers), len(res.lam)
    d = res.frequency.shape[1]
    names = [f"frequency_{k + 1}" for k in range(d)] if d > 1 else ["frequency"]
    return {
        "layer": np.broadcast_to(np.asarray(layers)[:, None], (L, N)),
        **{
            name: np.broadcast_to(res.frequency[:, k][None, :], (L, N))
            for k, name in enumerate(names)
        },
        "abs_lambda": np.broadcast_to(np.abs(res.lam)[None, :], (L, N)),
        **{key: np.broadcast_to(val, (L, N)) for key, val in values.items()},
    }


def freq_label(f: list[int]) -> str:
    return "(" + ",".join(str(x) for x in f) + ")" if len(f) > 1 else str(f[0])


def mode_columns(extra: list[Column] | None = None) -> list[Column]:
    from mftheory.cli.render import Column

    return [
        Column("f", "f"),
        Column("lambda", "lambda_f"),
        Column("predicted_rate", "chi_c*|lambda_f|"),
        Column("measured_rate", "measured rate"),
        Column("fit", "fit layers"),
        *(extra or []),
        Column("second_order_rate", "2nd-order rate"),
    ]


def figure_modes(res: Propagation, count: int = 6) -> list[int]:
    """Indices of up to ``count`` modes with distinct |lambda_f|, most persistent first."""
    chosen: list[int] = []
    seen: list[float] = []
    order = sorted(range(len(res.lam)), key=lambda i: (-round(float(abs(res.lam[i])), 12), i))
    for i in order:
        lam = abs(res.lam[i])
        if all(abs(lam - s) > 1e-9 for s in seen):
            seen.append(lam)
            chosen.append(i)
        if len(chosen) == count:
            break
    return chosen


def array_backend(backend: str, device: str | None) -> tuple[Any, str | None]:
    """``(backend, device)`` for the core: ``--backend torch`` becomes a ``TorchBackend``."""
    if backend != "torch":
        return backend, device
    from mftheory.errors import MFTheoryError

    try:
        from mftheory.torch import TorchBackend
    except ImportError:
        raise MFTheoryError(
            "--backend torch needs PyTorch, which is not installed:"
            ' pip install "mftheory[torch]" or use --backend numpy'
        ) from None
    return TorchBackend(device=device), None


#: Float64 ``M x M`` covariances alive in the mean-field map (Sigma, Sigma*, C, the spatial
#: map's work arrays), and seconds per layer and covariance entry.
MAP_COPIES, MAP_SECONDS = 10, 1e-6
#: Multiply-adds per second of the sampled networks (``c P^2 + P^3`` per network and layer).
SAMPLE_RATE = 2e8
#: One chunk of sampled networks (``mftheory.montecarlo.sampler.auto_chunk``'s target).
CHUNK_BYTES = 128 * 1024**2
#: The per-network records kept for the bootstrap, at most
#: (``mftheory.montecarlo.mode_check.BOOTSTRAP_BYTES``).
BOOTSTRAP_BYTES = 256 * 1024**2


def require_cnn_budget(
    M: int, N: int, depth: int, channels: int | None = None, networks: int | None = None
) -> None:
    """Refuse, before any work, images and depths whose covariance map (and ensemble) need more
    than the memory limit, or more than an hour.

    ``M`` is images x pixels (the covariance is ``M x M``), ``N`` pixels per image. The map holds
    ``MAP_COPIES`` float64 ``M x M`` arrays and ``6 x depth x N`` amplitudes; an ensemble adds
    its records (``4 x depth`` matrices ``M x M``), a chunk of networks and the bootstrap's
    records (``networks x depth`` matrices, at most ``BOOTSTRAP_BYTES``), and runs ``networks x
    depth x (c P^2 + P^3)`` multiply-adds with ``P = 2 M`` (the control input).
    """
    from mftheory.cli.budget import require_memory, require_time

    m2 = float(M) * M
    what = f"{M // max(N, 1)} image(s) of {N} pixels through {depth} layers"
    need = 8.0 * (MAP_COPIES * m2 + 6.0 * depth * N)
    seconds = depth * m2 * MAP_SECONDS
    if channels is not None and networks is not None:
        what += f" with {networks} networks of {channels} channels"
        need += 8.0 * 4 * depth * m2 + CHUNK_BYTES
        need += min(8.0 * networks * depth * m2, BOOTSTRAP_BYTES)
        P = 2.0 * M
        seconds += networks * depth * (channels * P * P + P**3) / SAMPLE_RATE
    require_memory(need, what + f" (covariances of {M} x {M})")
    require_time(seconds, what)


def run_ensemble(messages: Messages, networks: int, **kwargs: Any) -> ModeComparison:
    """``compare_modes`` with a progress bar, after
    ``require_cnn_budget``."""
    import math

    from mftheory.montecarlo.mode_check import compare_modes

    if kwargs.get("images") is not None:
        shape = np.shape(kwargs["images"])
        N = math.prod(shape[2:])
        M = shape[0] * N
    else:
        M = int(np.shape(kwargs["Sigma0"])[0])
        side = kwargs["image_shape"]
        N = side if isinstance(side, int) else math.prod(side)
    require_cnn_budget(M, N, kwargs["depth"], kwargs["channels"], networks)

    kwargs["backend"], kwargs["device"] = array_backend(kwargs["backend"], kwargs["device"])

    with messages.progress("simulating networks", points=networks * 1000) as bar:
        return compare_modes(progress=bar, networks=networks, **kwargs)


def comparison_report(
    command: str,
    cmp: ModeComparison,
    head: str,
    payload: dict[str, Any],
    messages: Messages,
    shown: int | None,
) -> Report:
    """The report of a Monte Carlo comparison: measured against predicted rate per mode."""
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column, ColumnArrays, Records

    mf = cmp.mean_field
    fp = mf.fixed
    note_slopes(fp, messages)
    rows = cmp.mode_rows()
    table_rows = [
        {
            **r,
            "f": freq_label(r["frequency"]),
            "measured": None
            if r["measured_rate"] is None
            else f"{r['measured_rate']:.4f} +- {r['measured_rate_se']:.4f}",
            "fit": None if r["fit_layers"] is None else "{}-{}".format(*r["fit_layers"]),
        }
        for r in (rows if shown is None else rows[:shown])
    ]
    ens = cmp.ensemble
    title = (
        f"{head}\nq* = {float(fp.q_star):.6g}, c* = {float(fp.c_star):.6g},"
        f" chi_c* = {float(fp.chi_c):.6g}; {ens.networks} networks of {ens.channels} channels"
        f" ({ens.backend}, seed {ens.seed}); measured = Monte Carlo fit +- standard error"
        f" (bootstrap over networks, {cmp.bootstrap} resamples); one fit rule for both rates"
    )
    columns = [
        Column("f", "f"),
        Column("lambda", "lambda_f"),
        Column("predicted_rate", "chi_c*|lambda_f|"),
        Column("measured", "measured rate"),
        Column("relative_difference", "measured/predicted - 1"),
        Column("mean_field_rate", "mean-field map, same fit"),
        Column("fit", "fit layers"),
    ]
    resolved = [r for r in rows if r["measured_rate"] is not None]
    if resolved:
        worst = max(abs(r["relative_difference"]) for r in resolved)
        messages.note(
            f"{len(resolved)} of {len(rows)} modes resolved above the Monte Carlo noise;"
            f" largest |measured/predicted - 1| = {worst:.3f}"
        )
    else:
        messages.warn("no mode stands above the Monte Carlo noise: add --networks or --channels")
    mf_idx = np.searchsorted(mf.layers, cmp.layers)
    csv_data = mode_layer_columns(
        cmp.layers,
        mf,
        amplitude_measured=cmp.amplitude,
        noise=cmp.noise[:, None],
        amplitude_bootstrap_se=cmp.amplitude_se,
        amplitude_mean_field=mf.amplitude[mf_idx],
        fit_weight=cmp.fit_weight,
        predicted_rate=mf.predicted_rate[None, :],
        measured_rate=cmp.measured_rate[None, :],
        measured_rate_se=cmp.measured_rate_se[None, :],
        mean_field_rate=cmp.mean_field_rate[None, :],
    )
    full = {
        **payload,
        "q_star": float(fp.q_star),
        "c_star": float(fp.c_star),
        "chi_c": float(fp.chi_c),
        "chi_q": float(fp.chi_q),
        "modes": rows,
        "amplitudes": {
            "layers": cmp.layers,
            "frequency": mf.frequency,
            "measured": cmp.amplitude,
            "noise": cmp.noise,
            "bootstrap_se": cmp.amplitude_se,
            "mean_field": mf.amplitude[mf_idx],
            "fit_weight": cmp.fit_weight,
        },
    }
    return Report(
        command=command,
        payload=full,
        settings=_comparison_settings(cmp),
        table=Records(columns, table_rows, title=title),
        csv=ColumnArrays([Column(k) for k in csv_data], csv_data),
        arrays={
            "layers": cmp.layers,
            "frequency": mf.frequency,
            "abs_lambda": np.abs(mf.lam),
            "amplitude_measured": cmp.amplitude,
            "noise": cmp.noise,
            "amplitude_bootstrap_se": cmp.amplitude_se,
            "amplitude_mean_field": mf.amplitude[mf_idx],
            "fit_weight": cmp.fit_weight,
            "predicted_rate": mf.predicted_rate,
            "measured_rate": cmp.measured_rate,
            "measured_rate_se": cmp.measured_rate_se,
            "mean_field_rate": cmp.mean_field_rate,
        },
        figure=lambda: _comparison_figure(cmp, head),
    )


def _comparison_settings(cmp: ModeComparison) -> dict[str, Any]:
    """Numerical settings of a Monte Carlo comparison: the fixed point's, the ensemble's, the
    fit rule and the bootstrap."""
    from mftheory.cli.common import settings_of
    from mftheory.montecarlo.mode_check import FIT_RULE, MC_MARGIN

    ens = cmp.ensemble
    return {
        **settings_of(cmp.mean_field.fixed),
        **ens.settings(),
        "fit_margin_se": MC_MARGIN,
        "fit_rule": FIT_RULE,
        "bootstrap_resamples": cmp.bootstrap,
        "bootstrap_units": "networks"
        if cmp.bootstrap_groups == ens.networks
        else f"{cmp.bootstrap_groups} groups of consecutive networks",
        "bootstrap_rng": f"numpy.random.default_rng({ens.seed})",
    }


def mode_legend(frequency: Any, lam: complex) -> str:
    """A mode's legend entry in mathtext: ``$f = (0,1)$, $|\\lambda_f| = 0.5$``."""
    f = freq_label([int(x) for x in frequency])
    return rf"$f = {f}$, $|\lambda_f| = {abs(lam):.3g}$"


def _comparison_figure(cmp: ModeComparison, head: str) -> Any:
    from mftheory.plotting import mathtext_label, mode_amplitude_figure

    mf = cmp.mean_field
    idx = figure_modes(mf)
    labels = [mode_legend(mf.frequency[i], mf.lam[i]) for i in idx]
    mf_idx = np.searchsorted(mf.layers, cmp.layers)
    noise = np.broadcast_to(cmp.noise[:, None], cmp.amplitude.shape)
    return mode_amplitude_figure(
        cmp.layers,
        mf.amplitude[mf_idx][:, idx],
        labels,
        mf.predicted_rate[idx],
        measured=(cmp.layers, cmp.amplitude[:, idx], noise[:, idx]),
        title=mathtext_label(head),
    )
