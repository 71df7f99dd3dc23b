"""``mftheory simulate`` and ``mftheory reproduce``: the mode theory against finite networks,
and the paper's Fig. S4 and Fig. 4(b)."""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from mftheory.cli.depthscales import KernelOption, SigmaW2Critical, SigmaWCritical, VOption
from mftheory.cli.options import Act, Alpha, Format, NegativeSlope, Output, Quiet, SigmaB, SigmaB2
from mftheory.cli.propagate import (
    Depth,
    ImageDim,
    ImageOption,
    ModesShown,
    Normalize,
    figure_modes,
    freq_label,
    load_inputs,
    mode_layer_columns,
    note_slopes,
    setup,
)

if TYPE_CHECKING:
    from mftheory.cli.output import Messages, Report
    from mftheory.montecarlo.mode_check import ModeComparison

__all__ = ["reproduce", "simulate"]

Channels = Annotated[
    str, typer.Option("--channels", metavar="INT", help="Channels c of every hidden layer.")
]
Networks = Annotated[
    str,
    typer.Option("--networks", metavar="INT", help="Random networks in the ensemble (>= 2)."),
]
Seed = Annotated[
    str, typer.Option("--seed", metavar="INT", help="Seed of every random draw (>= 0).")
]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        metavar="numpy|torch",
        help="Array library for the networks; torch (the [torch] extra) runs on a GPU when "
        "one is available.",
    ),
]
Device = Annotated[
    str | None,
    typer.Option(
        "--device", metavar="NAME", help="torch device (cpu, cuda, cuda:1...).  [default: "
        "cuda if available, else cpu]", show_default=False,
    ),
]  # fmt: skip


def _ints(
    channels: str, networks: str, seed: str, depth: str, backend: str
) -> tuple[int, int, int, int]:
    """The integer options (and --backend), checked before any work."""
    from mftheory.cli.params import parse_int
    from mftheory.errors import MFTheoryError

    if backend not in ("numpy", "torch"):
        raise MFTheoryError(f"--backend must be numpy or torch, got {backend!r}")
    c = parse_int("--channels", channels)
    k = parse_int("--networks", networks, low=2)
    s = parse_int("--seed", seed, low=0)
    d = parse_int("--depth", depth)
    assert c is not None and k is not None and s is not None and d is not None
    return c, k, s, d


def _array_backend(backend: str, device: str | None) -> tuple[Any, str | None]:
    """``(backend, device)`` for the core: ``--backend torch`` becomes a ``TorchBackend``."""
    if backend != "torch":
        return backend, device
    from mftheory.errors import MFTheoryError

    try:
        from mftheory.torch import TorchBackend
    except ImportError:
        raise MFTheoryError(
            "--backend torch needs PyTorch, which is not installed:"
            " pip install 'mftheory[torch]' or use --backend numpy"
        ) from None
    return TorchBackend(device=device), None


def _run(messages: Messages, networks: int, **kwargs: Any) -> ModeComparison:
    from mftheory.montecarlo.mode_check import compare_modes

    kwargs["backend"], kwargs["device"] = _array_backend(kwargs["backend"], kwargs["device"])
    with messages.progress("simulating networks", points=networks * 1000) as bar:
        return compare_modes(progress=bar, networks=networks, **kwargs)


def _report(
    command: str,
    cmp: ModeComparison,
    head: str,
    payload: dict[str, Any],
    messages: Messages,
    shown: int | None,
) -> Report:
    from mftheory.cli.output import Column, ColumnArrays, Records, Report, settings_of

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
    )
    columns = [
        Column("f", "f"),
        Column("lambda", "lambda_f"),
        Column("predicted_rate", "chi_c*|lambda_f|"),
        Column("measured", "measured rate"),
        Column("relative_difference", "measured/predicted - 1"),
        Column("mean_field_rate", "mean-field map, same layers"),
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
        amplitude_mean_field=mf.amplitude[mf_idx],
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
            "mean_field": mf.amplitude[mf_idx],
        },
    }
    return Report(
        command=command,
        payload=full,
        settings={**settings_of(fp), **ens.settings(), "fit_margin_se": 5.0},
        table=Records(columns, table_rows, title=title),
        csv=ColumnArrays([Column(k) for k in csv_data], csv_data),
        arrays={
            "layers": cmp.layers,
            "frequency": mf.frequency,
            "abs_lambda": np.abs(mf.lam),
            "amplitude_measured": cmp.amplitude,
            "noise": cmp.noise,
            "amplitude_mean_field": mf.amplitude[mf_idx],
            "predicted_rate": mf.predicted_rate,
            "measured_rate": cmp.measured_rate,
            "measured_rate_se": cmp.measured_rate_se,
        },
        figure=lambda: _figure(cmp, head),
    )


def _figure(cmp: ModeComparison, head: str) -> Any:
    from mftheory.plotting import mode_amplitude_figure

    mf = cmp.mean_field
    idx = figure_modes(mf)
    labels = [
        f"f = {freq_label([int(x) for x in mf.frequency[i]])}, |lambda| = {abs(mf.lam[i]):.3g}"
        for i in idx
    ]
    mf_idx = np.searchsorted(mf.layers, cmp.layers)
    noise = np.broadcast_to(cmp.noise[:, None], cmp.amplitude.shape)
    return mode_amplitude_figure(
        cmp.layers,
        mf.amplitude[mf_idx][:, idx],
        labels,
        mf.predicted_rate[idx],
        measured=(cmp.layers, cmp.amplitude[:, idx], noise[:, idx]),
        title=head,
    )


def simulate(
    image: ImageOption,
    dim: ImageDim = None,
    normalize: Normalize = "none",
    act: Act = "tanh",
    sigma_w: SigmaWCritical = None,
    sigma_w2: SigmaW2Critical = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = None,
    v: VOption = "uniform",
    kernel: KernelOption = None,
    depth: Depth = "30",
    modes: ModesShown = "10",
    channels: Channels = "256",
    networks: Networks = "100",
    seed: Seed = "0",
    backend: Backend = "numpy",
    device: Device = None,
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """Finite random CNNs against the mean-field modes, on real images.

    Draws --networks random CNNs of --channels channels (circular convolutions, weights
    N(0, sigma_w^2 v_b / c), biases N(0, sigma_b^2)), feeds them the images and, with the same
    weights, a control input at the fixed point Sigma* (variance reduction: the difference of
    the two empirical covariances estimates Sigma* - Sigma^l with far less noise). Each
    Fourier mode's amplitude is fitted against depth where it stands 5 standard errors above
    the noise; the fitted per-layer rate is shown beside chi_c*|lambda_f| and beside the same
    fit of the mean-field map. -o modes.png draws measured points, mean-field curves and the
    predicted slopes.

    Example:

    \b
        mftheory simulate --image digit.npy --act tanh --channels 256 --networks 100
    """
    from mftheory.cli.output import Messages, activation_fields, check_output_path, emit
    from mftheory.cli.params import parse_int

    messages = Messages(quiet)
    check_output_path(output, figures=True)
    c, k, s, d_layers = _ints(channels, networks, seed, depth, backend)
    shown = parse_int("--modes", modes, low=0)
    assert shown is not None
    images, described = load_inputs(image, dim, normalize, messages)
    d = images.ndim - 2
    activation, v_used, w2, source, b2 = setup(
        act, negative_slope, alpha, v, kernel, d, sigma_w, sigma_w2, sigma_b, sigma_b2, messages
    )
    cmp = _run(
        messages,
        k,
        act=activation,
        v=v_used,
        sigma_w2=w2,
        sigma_b2=b2,
        depth=d_layers,
        channels=c,
        images=images,
        seed=s,
        backend=backend,
        device=device,
    )
    head = (
        f"{activation.label}, sigma_w^2 = {w2:.6g}{' (critical)' if source == 'critical' else ''},"
        f" sigma_b^2 = {b2:.6g}, {described}, depth {d_layers}"
    )
    payload = {
        **activation_fields(activation),
        "sigma_w": math.sqrt(w2),
        "sigma_w2": w2,
        "sigma_w2_source": source,
        "sigma_b": math.sqrt(b2),
        "sigma_b2": b2,
        "v": v_used.tolist(),
        "depth": d_layers,
        "shape": list(images.shape[2:]),
        "images": [str(p) for p in image],
        "normalize": normalize,
    }
    report = _report("simulate", cmp, head, payload, messages, shown)
    emit(report, fmt=fmt, output=output, messages=messages)


class Figure(str, enum.Enum):
    """Figures ``reproduce`` knows."""

    fig_s4 = "fig-s4"
    fig_4b = "fig-4b"


def reproduce(
    figure: Annotated[
        Figure,
        typer.Argument(
            help="fig-s4 (multiple depth scales, appendix F) or fig-4b "
            "(sorted |lambda_f| of GS0..GS4).",
            show_default=False,
        ),
    ],
    depth: Depth = "40",
    channels: Channels = "300",
    networks: Networks = "400",
    seed: Seed = "0",
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            metavar="FLOAT",
            help="fig-s4: multiply the paper's perturbation (smaller: closer to the linear "
            "regime; the variance reduction keeps the noise proportional).",
        ),
    ] = "1",
    backend: Backend = "numpy",
    device: Device = None,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """Reproduce a figure of Xiao et al. (2018) with its exact settings.

    fig-s4: erf, sigma_w = 1.5, sigma_b = 0.5, 1D images of 10 pixels, kernel 3,
    v = [0.025, 0.95, 0.025]; the fixed point perturbed on its first cyclic diagonal by the
    Fourier profile -(1/6)[1, 2/3, (2/3)^3, (2/3)^5, (2/3)^4, (2/3)^2, (2/3)^4, (2/3)^5,
    (2/3)^3, 2/3]; an ensemble of finite networks against chi_c* lambda_f per mode.

    fig-4b: the 64 values |lambda_f| of the 3x3 variance vectors GS0 (delta) .. GS4 (uniform)
    on 8x8 images, each sorted in descending order.

    Example:

    \b
        mftheory reproduce fig-s4 -o figS4.png
        mftheory reproduce fig-4b --format csv
    """
    from mftheory.cli.output import Messages, check_output_path, emit
    from mftheory.cli.params import parse_number

    messages = Messages(quiet)
    check_output_path(output, figures=True)
    if figure is Figure.fig_4b:
        emit(_figure_4b(), fmt=fmt, output=output, messages=messages)
        return
    from mftheory.cnn.paper import figure_s4_setup
    from mftheory.errors import MFTheoryError

    c, k, s, d_layers = _ints(channels, networks, seed, depth, backend)
    factor = parse_number("--scale", scale)
    if not factor > 0:
        raise MFTheoryError(f"--scale must be positive, got {scale!r}")
    setup_ = figure_s4_setup(factor)
    if float(np.linalg.eigvalsh(setup_.sigma0).min()) < 0:
        raise MFTheoryError(
            f"--scale {scale}: Sigma* - eps0 is not a covariance (not positive semi-definite)"
        )
    cmp = _run(
        messages,
        k,
        act=setup_.activation,
        v=setup_.v,
        sigma_w2=setup_.sigma_w2,
        sigma_b2=setup_.sigma_b2,
        depth=d_layers,
        channels=c,
        Sigma0=setup_.sigma0,
        image_shape=setup_.n,
        seed=s,
        backend=backend,
        device=device,
    )
    head = (
        f"Fig. S4: erf, sigma_w = 1.5, sigma_b = 0.5, n = 10, v = [0.025, 0.95, 0.025],"
        f" perturbation x {factor:g}"
    )
    payload = {
        "figure": "fig-s4",
        "activation": "erf",
        "sigma_w": 1.5,
        "sigma_w2": setup_.sigma_w2,
        "sigma_b": 0.5,
        "sigma_b2": setup_.sigma_b2,
        "v": setup_.v.tolist(),
        "depth": d_layers,
        "shape": [setup_.n],
        "scale": factor,
        "eps0_first_diagonal_fourier": setup_.eps_fourier,
    }
    report = _report("reproduce", cmp, head, payload, messages, None)
    emit(report, fmt=fmt, output=output, messages=messages)


def _figure_4b() -> Report:
    from mftheory.cli.output import Column, Records, Report
    from mftheory.cnn.modes import variance_vector
    from mftheory.cnn.paper import figure_4b_eigenvalues

    values = figure_4b_eigenvalues(8, 3)
    names = list(values)
    rows = [{"index": i, **{n: float(values[n][i]) for n in names}} for i in range(64)]
    payload = {
        "figure": "fig-4b",
        "n": 8,
        "kernel": 3,
        "v": {n: variance_vector(n, kernel=3, dim=2).tolist() for n in names},
        "abs_lambda_sorted": values,
    }
    title = (
        "Fig. 4(b): |lambda_f| of GS0 (delta) .. GS4 (uniform), 3x3 kernel, 8x8 images, sorted"
        " (GSj = (1 - j/4) delta + (j/4) uniform)"
    )
    columns = [Column("index", "rank"), *(Column(n, n.upper()) for n in names)]
    return Report(
        command="reproduce",
        payload=payload,
        settings={},
        table=Records(columns, rows, title=title),
        arrays={n: values[n] for n in names},
        figure=lambda: _plot_4b(values, title),
    )


def _plot_4b(values: dict[str, Any], title: str) -> Any:
    from mftheory.plotting import eigenvalue_figure

    return eigenvalue_figure(values, title=title.split(",")[0])
