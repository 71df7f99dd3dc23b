"""``mftheory depthscales``: per-Fourier-mode depth scales of a convolution with variance v."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mftheory.cli.common import DEFAULT_ALPHA, DEFAULT_NEGATIVE_SLOPE, DEFAULT_SIGMA_B2
from mftheory.cli.modes import Normalization, Normalize
from mftheory.cli.options import (
    Act,
    Alpha,
    Format,
    KernelSide,
    NegativeSlope,
    Output,
    Quiet,
    SigmaB,
    SigmaB2,
    SigmaW2Critical,
    SigmaWCritical,
    VOption,
)
from mftheory.cli.params import Int, Number

if TYPE_CHECKING:
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column
    from mftheory.cnn.modes import ModeTable
    from mftheory.cnn.rates import EffectiveRates
    from mftheory.meanfield.fixed_points import FixedPoint

__all__ = ["DEFAULT_N", "depthscales"]

#: Image side per spatial dimension when --n is not given (the paper's: 10 in 1D, 8 in 2D).
DEFAULT_N = {1: 10, 2: 8}

DimOption = Annotated[
    int | None,
    typer.Option(
        "--dim",
        metavar="1|2",
        help="Spatial dimensions; without it, 2 if --v has ';' rows, else 1.",
        parser=Int(1, 2),
    ),
]
NOption = Annotated[
    int | None,
    typer.Option(
        "--n",
        metavar="INT",
        help="Image side in pixels (circular boundaries); without it, 10 in 1D and 8 in 2D "
        "(the paper's).",
        parser=Int(1),
    ),
]
#: Default --perturbation: mftheory.cnn.rates.DEFAULT_PERTURBATION, not imported here so that the
#: command line starts without the CNN modules (a test checks they agree).
DEFAULT_PERTURBATION = 0.5
#: Deepest --depth of the effective rates (the same limit as propagate's).
MAX_RATE_DEPTH = 100_000
RateDepth = Annotated[
    int | None,
    typer.Option(
        "--depth",
        metavar="INT",
        help="Also iterate the covariance map over layers 0..L and report each mode's effective"
        " rate (|eps_f^L| / |eps_f^0|)^(1/L), its depth scale and the local rate at layer L,"
        f" 1 to {MAX_RATE_DEPTH}.",
        parser=Int(1, MAX_RATE_DEPTH),
    ),
]
DepthImage = Annotated[
    list[Path] | None,
    typer.Option(
        "--image",
        metavar="PATH",
        help="With --depth: start from these images instead (as in propagate: .png, .npy or"
        " sample:digit0; square, n x n in 2D), over layers 1..L. Repeatable.",
        show_default=False,
    ),
]
Perturbation = Annotated[
    float,
    typer.Option(
        "--perturbation",
        metavar="DELTA",
        help="With --depth: the start is the fixed point Sigma* with one pair of neighbouring"
        " pixels (0 and 1) at correlation c* - DELTA, the same amplitude in every mode.",
        parser=Number(),
    ),
]


#: Bytes per Fourier mode while its records are built and written (the eigenvalue arrays,
#: the JSON and table records), and seconds per mode of a printed table (rich) or a data format.
MODE_BYTES = 6000
TABLE_SECONDS, DATA_SECONDS = 2e-3, 2e-4


def _require_budget(side: int, d: int, table: bool) -> None:
    """Refuse, before any work, ``side^d`` modes that need too much memory (``MODE_BYTES``
    each) or time (a table row costs ``TABLE_SECONDS``, a JSON/CSV record ``DATA_SECONDS``)."""
    from mftheory.cli.budget import require_memory, require_time

    modes = float(side) ** d
    what = f"--n {side} ({modes:.6g} Fourier modes in {d}D)"
    require_memory(modes * MODE_BYTES, f"{what}, {MODE_BYTES} bytes a mode,")
    require_time(
        modes * (TABLE_SECONDS if table else DATA_SECONDS),
        f"{what}{', printed as a table' if table else ''},",
    )


def _mode_records(
    table: ModeTable, finite: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """JSON modes and table rows of a ModeTable; rates and scales NaN without a fixed point."""
    modes: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for i, mode in enumerate(table.as_rows()):
        raw = {
            "rate": float(table.rate[i]),
            "xi": float(table.xi[i]),
            "rate_q": float(table.rate_q[i]),
            "xi_q": float(table.xi_q_f[i]),
        }
        if not finite:
            raw = dict.fromkeys(raw, math.nan)
        modes.append({**mode, **raw})
        rows.append({**mode, "lambda": complex(table.lam[i]), **raw})
    return modes, rows


def depthscales(
    ctx: typer.Context,
    v: VOption = "uniform",
    kernel: KernelSide = None,
    dim: DimOption = None,
    n: NOption = None,
    act: Act = "tanh",
    sigma_w: SigmaWCritical = None,
    sigma_w2: SigmaW2Critical = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = DEFAULT_SIGMA_B2,  # type: ignore[assignment]
    negative_slope: NegativeSlope = DEFAULT_NEGATIVE_SLOPE,
    alpha: Alpha = DEFAULT_ALPHA,
    depth: RateDepth = None,
    perturbation: Perturbation = DEFAULT_PERTURBATION,
    image: DepthImage = None,
    normalize: Normalize = Normalization.none,
    fmt: Format = None,
    output: Output = None,
    quiet: Quiet = False,
) -> None:
    """Fourier-mode depth scales of a CNN with kernel variance vector v.

    For every spatial frequency f of an n-pixel (n x n in 2D) circular image: the eigenvalue
    lambda_f of the convolution's covariance operator, the per-layer factor chi_c*|lambda_f|
    of a correlation perturbation in that mode, its depth scale xi_f = -1/log(chi_c*|lambda_f|)
    and the diagonal-mode scale -1/log(chi_q*|lambda_f|); most persistent mode first. With no
    weight scale given, the critical sigma_w for --act and the bias is used (a note says so,
    and JSON has "sigma_w2_source": "critical").

    These are the asymptotic rates, the limit of a small perturbation of the fixed point. With
    --depth L the covariance map itself is iterated over layers 0..L from Sigma* with one pair
    of neighbouring pixels at correlation c* - DELTA (--perturbation), and every mode also gets
    its effective rate (|eps_f^L| / |eps_f^0|)^(1/L), the effective depth scale -1/log of it
    and the local rate |eps_f^L| / |eps_f^(L-1)| (null where the mode has sunk to the numerical
    error floor). At the critical point they lie below chi_c*|lambda_f| over practical depths.
    With --image the map starts from real images instead (layers 1..L, as in propagate).

    Example:

    \b
        mftheory depthscales --v 0.025,0.95,0.025
        mftheory depthscales --v gs2 --dim 2 --act tanh --sigma-b2 0.05 --format json
        mftheory depthscales --v 0.025,0.95,0.025 --depth 100
        mftheory depthscales --v gs2 --depth 400 --image sample:digit0
    """
    from mftheory.cli.common import (
        normalized_v,
        resolve_scale,
        scalar,
        start,
        variance_vector_of,
        weight_variance,
    )
    from mftheory.cli.degenerate import degenerate_fields, note_degenerate
    from mftheory.cli.output import emit
    from mftheory.cnn.modes import mode_table
    from mftheory.meanfield.fixed_points import fixed_point

    messages, activation = start(
        ctx, act=act, negative_slope=negative_slope, alpha=alpha, quiet=quiet, output=output
    )
    images, described = _images(image, depth, dim, n, normalize, messages)
    if perturbation != DEFAULT_PERTURBATION and (depth is None or images is not None):
        messages.warn(
            "--perturbation has no effect "
            + ("without --depth" if depth is None else "with --image (the images are the start)")
        )
    if images is None:
        vec = variance_vector_of(v, kernel, 2 if dim is None and ";" in v else dim)
    else:
        vec = _image_v(v, kernel, images.ndim - 2)
    d = int(vec.ndim)
    side = (DEFAULT_N[d] if n is None else n) if images is None else int(images.shape[2])
    _require_budget(side, d, fmt is None and output is None)
    if depth is not None:
        from mftheory.cli.modes import require_cnn_budget

        batch = 1 if images is None else int(images.shape[0])
        require_cnn_budget(batch * side**d, side**d, depth)
    weight = resolve_scale(ctx, "w", sigma_w, sigma_w2)
    bias = resolve_scale(ctx, "b", sigma_b, sigma_b2)
    assert bias is not None
    v_used, v_sum = normalized_v(vec, messages)
    b2 = bias.value
    w2, source = weight_variance(activation, weight, b2, messages)
    fp = fixed_point(activation, sigma_w2=w2, sigma_b2=b2)
    chi_c, chi_q = scalar(fp.chi_c), scalar(fp.chi_q)
    finite = math.isfinite(chi_c) and math.isfinite(chi_q)
    # The rates are magnitudes: a negative slope (possible for non-monotonic activations)
    # alternates the sign of a mode but shrinks it by |chi| |lambda_f| per layer.
    table = mode_table(
        v_used, side, chi_c=abs(chi_c) if finite else 1.0, chi_q=abs(chi_q) if finite else 1.0
    )
    if not finite:
        messages.warn(
            f"no finite fixed point for {activation.label} at sigma_w2 = {w2:g},"
            f" sigma_b2 = {b2:g} (phase '{fp.phase}'): rates and depth scales"
            " are null"
        )
    rates = None
    if depth is not None and finite:
        rates = _effective(messages, fp, v_used, side, depth, perturbation, images)
    effective = None
    if depth is not None:
        if images is None:
            how = f"from Sigma* with pixels 0 and 1 at correlation c* - {perturbation:g}"
        else:
            how = f"from {described} (--image {' '.join(map(str, image or []))})"
        effective = _Effective(rates, depth, perturbation, how, images is not None)
    report = _report(fp, table, finite, source, side, (v, vec, v_used, v_sum), effective)
    deg, degenerate = degenerate_fields(fp)
    if deg is not None and deg.kind != "divergent":
        note_degenerate(deg, messages)
        # the table and the mode rates here use the C-map's own slope at q*: keep it
        degenerate.pop("chi_c", None)
        degenerate.pop("xi_c", None)
        degenerate["convention"] = (
            "chi_c, xi_c and the mode rates are those of Sigma* - Sigma^l with the C-map's own"
            " slope at q* (the covariance itself); the normalised correlations have no"
            " exponential depth scale (their slope at c = 1 is 1) and their spatial modes"
            " decay by about |lambda_f|"
        )
    report.payload.update(degenerate)
    emit(report, fmt=fmt, output=output, messages=messages)


@dataclass(frozen=True)
class _Effective:
    """What --depth adds to the report: the rates (None without a fixed point), --depth,
    --perturbation, how the map started (for the title) and whether from images."""

    rates: EffectiveRates | None
    depth: int
    perturbation: float
    how: str
    from_images: bool


def _images(
    image: list[Path] | None,
    depth: int | None,
    dim: int | None,
    n: int | None,
    normalize: Normalization,
    messages: Any,
) -> tuple[Any, str]:
    """The --image images as (B, channels, *pixels) and their description, or (None, "")."""
    from mftheory.cli.modes import load_inputs
    from mftheory.errors import MFTheoryError

    if not image:
        return None, ""
    if depth is None:
        raise MFTheoryError("--image needs --depth: images are a starting point of the map")
    images, described = load_inputs(image, dim, normalize, messages)
    shape = tuple(int(s) for s in images.shape[2:])
    if len(set(shape)) != 1:
        raise MFTheoryError(
            f"--image: the images are {'x'.join(map(str, shape))} pixels; depthscales needs"
            " square images (the same side n in every dimension)"
        )
    if n is not None and n != shape[0]:
        raise MFTheoryError(f"--n {n} does not match the images' side {shape[0]}")
    return images, described


def _image_v(v: str, kernel: int | None, d: int) -> Any:
    """The (unnormalized) v for ``d``-dimensional images: a preset in ``d`` dimensions, else
    the given v, which must be ``d``-dimensional."""
    from mftheory.cli.common import variance_vector_of
    from mftheory.cnn.modes import VARIANCE_VECTOR_PRESETS
    from mftheory.errors import MFTheoryError

    preset = v.strip().lower() in VARIANCE_VECTOR_PRESETS
    vec = variance_vector_of(v, kernel, d if preset else None)
    if vec.ndim != d:
        raise MFTheoryError(f"--v {v!r} is {vec.ndim}D but the images are {d}D")
    return vec


def _effective(
    messages: Any,
    fp: FixedPoint,
    v_used: Any,
    side: int,
    depth: int,
    perturbation: float,
    images: Any,
) -> EffectiveRates:
    """``effective_mode_rates`` from the pair start or the images, with a progress bar."""
    from mftheory.cnn.rates import effective_mode_rates

    pixels = side ** int(v_used.ndim)
    batch = 1 if images is None else int(images.shape[0])
    with messages.progress("iterating the map", points=depth * (batch * pixels) ** 2) as bar:
        return effective_mode_rates(
            fp.activation,
            v=v_used,
            sigma_w2=float(fp.sigma_w2),
            sigma_b2=float(fp.sigma_b2),
            depth=depth,
            image_shape=None if images is not None else (side,) * int(v_used.ndim),
            perturbation=perturbation,
            images=images,
            progress=bar,
        )


#: Per-mode fields of --depth, in JSON/CSV and the table.
EFFECTIVE_KEYS = ("effective_rate", "effective_xi", "local_rate")


def _effective_fields(
    table: ModeTable, effective: _Effective
) -> tuple[list[dict[str, Any]], dict[str, Any], list[Column]]:
    """Per-mode effective rates in ``table`` order (null without a fixed point), the run's
    settings for the JSON, and the table columns of --depth."""
    from mftheory.cli.render import Column

    rates, depth, perturbation = effective.rates, effective.depth, effective.perturbation
    first = 1 if effective.from_images else 0
    fields = []
    for i in range(len(table)):
        if rates is None:
            fields.append(dict.fromkeys(EFFECTIVE_KEYS))
        else:
            fields.append(rates.rate_of([int(x) for x in table.frequency[i]]))
    settings: dict[str, Any] = {"depth": depth, "perturbation": perturbation}
    if effective.from_images:
        settings = {"depth": depth, "start": "images"}
    if rates is not None:
        settings = {key: value for key, value in rates.as_dict().items() if key != "modes"}
    settings["starting_covariance"] = (
        "Sigma^1 = sigma_w^2 A_v * (X X^T / channels) + sigma_b^2 of the images, layers 1..L"
        if effective.from_images
        else "Sigma* = q* [(1 - c*) I + c* 11^T] except the pair of pixels 0 and 1"
        " (row-major), at correlation c* - perturbation; layers 0..L"
    )
    columns = [
        Column("effective_rate", f"effective rate {first}..{depth}"),
        Column("effective_xi", "effective xi"),
        Column("local_rate", f"local rate l={depth}"),
    ]
    return fields, settings, columns


def _report(
    fp: FixedPoint,
    table: ModeTable,
    finite: bool,
    source: str,
    side: int,
    spec: tuple[str, Any, Any, float],
    effective: _Effective | None = None,
) -> Report:
    """The depthscales report; ``spec`` is (--v as given, v, v normalized, the sum of v);
    ``effective`` what --depth adds (None without it)."""
    from mftheory.cli.common import activation_fields, format_v, scalar, settings_of
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column, Records

    v, vec, v_used, v_sum = spec
    w2, b2 = scalar(fp.sigma_w2), scalar(fp.sigma_b2)
    d = int(vec.ndim)
    modes, rows = _mode_records(table, finite)
    params: dict[str, Any] = {
        "sigma_w": math.sqrt(w2),
        "sigma_w2": w2,
        "sigma_w2_source": source,
        "sigma_b": math.sqrt(b2),
        "sigma_b2": b2,
    }
    fixed = {
        key: scalar(getattr(fp, key)) for key in ("q_star", "c_star", "chi_1", "chi_c", "chi_q")
    }
    payload: dict[str, Any] = {
        **activation_fields(fp.activation),
        **params,
        **fixed,
        "xi_c": scalar(fp.xi_c),
        "xi_q": scalar(fp.xi_q),
        "phase": str(fp.phase),
        "dim": d,
        "kernel": list(vec.shape),
        "n": side,
        "v_spec": v,
        "v": v_used.tolist(),
        "v_sum_given": v_sum,
        "modes": modes,
    }
    extra: list[dict[str, Any]] = [{} for _ in modes]
    extra_columns: list[Column] = []
    if effective is not None:
        extra, payload["effective"], extra_columns = _effective_fields(table, effective)
        for mode, row, more in zip(modes, rows, extra, strict=True):
            mode.update(more)
            row.update(more)
    columns = [
        Column("frequency", "f"),
        Column("lambda", "lambda_f"),
        Column("abs_lambda", "|lambda_f|"),
        Column("rate", "chi_c*|lambda_f|"),
        Column("xi", "xi_f"),
        Column("xi_q", "diagonal-mode scale"),
        *extra_columns,
    ]
    title = (
        f"Fourier modes of {fp.activation.label}, sigma_w = {math.sqrt(w2):.6g}"
        f" (sigma_w^2 = {w2:.6g}{', critical' if source == 'critical' else ''}),"
        f" sigma_b = {math.sqrt(b2):.6g} (sigma_b^2 = {b2:.6g}), chi_c* = {fixed['chi_c']:.6g},"
        f" xi_c = {scalar(fp.xi_c):.6g}, n = {side}\nv = {format_v(v_used)}"
    )
    if effective is not None:
        first = 1 if effective.from_images else 0
        title += (
            f"\neffective rates over layers {first}..{effective.depth} of the map itself,"
            f" {effective.how}"
        )
    freq_keys = ["frequency"] if d == 1 else [f"frequency_{k + 1}" for k in range(d)]
    csv_rows = []
    for mode in modes:
        row = {"lambda_imag": 0.0, **mode, **params, "chi_c": fixed["chi_c"]}
        row["chi_q"] = fixed["chi_q"]
        row.update(zip(freq_keys, mode["frequency"], strict=True))
        csv_rows.append(row)
    csv_keys = [*freq_keys, "lambda", "lambda_imag", "abs_lambda", "rate", "xi", "rate_q", "xi_q"]
    if effective is not None:
        csv_keys += list(EFFECTIVE_KEYS)
    csv_keys += [*params, "chi_c", "chi_q"]
    return Report(
        command="depthscales",
        payload=payload,
        settings=settings_of(fp),
        table=Records(columns, rows, title=title),
        csv=Records([Column(key) for key in csv_keys], csv_rows),
    )
