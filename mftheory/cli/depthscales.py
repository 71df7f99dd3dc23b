"""``mftheory depthscales``: per-Fourier-mode depth scales of a convolution with variance v."""

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mftheory.cli.options import (
    Act,
    Alpha,
    Format,
    NegativeSlope,
    Output,
    Quiet,
    SigmaB,
    SigmaB2,
)

if TYPE_CHECKING:
    from mftheory.activations.builtins import Activation
    from mftheory.cli.output import Messages
    from mftheory.cli.params import Scale
    from mftheory.cnn.modes import ModeTable

__all__ = ["depthscales"]

#: Image side per spatial dimension when --n is not given (the paper's: 10 in 1D, 8 in 2D).
DEFAULT_N = {1: 10, 2: 8}
DEFAULT_KERNEL = 3

VOption = Annotated[
    str,
    typer.Option(
        "--v",
        help="Variance vector over kernel positions: a comma list (1D, e.g. 0.025,0.95,0.025), "
        "rows split by ';' (2D, e.g. '0,1,0;1,4,1;0,1,0'), or a preset: delta, uniform, "
        "gs0..gs4 (gsj = (1-j/4) delta + (j/4) uniform). Entries must be >= 0; a v that does "
        "not sum to 1 is rescaled, with a note.",
        metavar="LIST|PRESET",
    ),
]
KernelOption = Annotated[
    str | None,
    typer.Option(
        "--kernel",
        metavar="INT",
        help="Kernel side length for a preset (odd).  [default: 3; for a list: its length]",
        show_default=False,
    ),
]
DimOption = Annotated[
    str | None,
    typer.Option(
        "--dim",
        metavar="1|2",
        help="Spatial dimensions (1 or 2).  [default: 2 if --v has ';' rows, else 1]",
        show_default=False,
    ),
]
NOption = Annotated[
    str | None,
    typer.Option(
        "--n",
        metavar="INT",
        help="Image side in pixels (circular boundaries).  [default: 10 in 1D, 8 in 2D]",
        show_default=False,
    ),
]
SigmaWCritical = Annotated[
    str | None,
    typer.Option(
        "--sigma-w",
        help="Weight standard deviation sigma_w.  [default: the critical value]",
        metavar="FLOAT",
    ),
]
SigmaW2Critical = Annotated[
    str | None,
    typer.Option(
        "--sigma-w2",
        help="Weight variance sigma_w^2.  [default: the critical value for --act and the bias]",
        metavar="FLOAT",
    ),
]


def _variance_vector(spec: str, kernel: int | None, dim: int | None) -> Any:
    """The (unnormalised) v from --v, --kernel and --dim, checked for consistency."""
    from mftheory.cnn.modes import VARIANCE_VECTOR_PRESETS, variance_vector
    from mftheory.errors import MFTheoryError

    text = spec.strip()
    try:
        if text.lower() in VARIANCE_VECTOR_PRESETS:
            return variance_vector(
                text,
                kernel=DEFAULT_KERNEL if kernel is None else kernel,
                dim=1 if dim is None else dim,
            )
        v = variance_vector(text)
    except MFTheoryError as exc:
        raise MFTheoryError(f"--v: {exc}") from None
    if v.ndim > 2:
        raise MFTheoryError(f"--v {spec!r} has {v.ndim} dimensions; only 1 or 2 are supported")
    if dim is not None and dim != v.ndim:
        raise MFTheoryError(f"--dim {dim} does not match --v {spec!r}, which is {v.ndim}D")
    if kernel is not None and any(side != kernel for side in v.shape):
        raise MFTheoryError(
            f"--kernel {kernel} does not match --v {spec!r}, whose kernel is"
            f" {'x'.join(str(s) for s in v.shape)}"
        )
    return v


def _format_v(v: Any) -> str:
    """v as the --v syntax: commas within a row, ';' between rows."""
    rows = v.reshape(-1, v.shape[-1])
    return "; ".join(",".join(f"{x:.6g}" for x in row) for row in rows)


def _weight_variance(
    activation: "Activation", weight: "Scale | None", sigma_b2: float, messages: "Messages"
) -> tuple[float, str]:
    """The weight variance and where it came from: ``"given"``, or ``"critical"`` (with a note)."""
    from mftheory.cli.output import scalar
    from mftheory.errors import MFTheoryError
    from mftheory.meanfield.critical import critical_point

    if weight is not None:
        return weight.value, "given"
    w2 = scalar(critical_point(activation, sigma_b2=sigma_b2).sigma_w2)
    if not math.isfinite(w2):
        raise MFTheoryError(
            f"no critical sigma_w2 for {activation.label} at sigma_b2 = {sigma_b2:g};"
            " give --sigma-w or --sigma-w2"
        )
    messages.note(
        f"no weight scale given: using the critical sigma_w2 = {w2:.10g}"
        f" (sigma_w = {math.sqrt(w2):.10g}) of {activation.label} at sigma_b2 = {sigma_b2:g}"
    )
    return w2, "critical"


def _mode_records(
    table: "ModeTable", finite: bool
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
    v: VOption = "uniform",
    kernel: KernelOption = None,
    dim: DimOption = None,
    n: NOption = None,
    act: Act = "tanh",
    sigma_w: SigmaWCritical = None,
    sigma_w2: SigmaW2Critical = None,
    sigma_b: SigmaB = None,
    sigma_b2: SigmaB2 = None,
    negative_slope: NegativeSlope = None,
    alpha: Alpha = None,
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

    Example:

    \b
        mftheory depthscales --v 0.025,0.95,0.025
        mftheory depthscales --v gs2 --dim 2 --act tanh --sigma-b2 0.05 --format json
    """

    from mftheory.cli.output import (
        Column,
        Messages,
        Records,
        Report,
        activation_fields,
        check_output_path,
        emit,
        scalar,
        settings_of,
    )
    from mftheory.cli.params import DEFAULT_SIGMA_B2, load_activation, parse_int, scale_option
    from mftheory.cnn.modes import mode_table, normalize_variance_vector
    from mftheory.meanfield.fixed_points import fixed_point

    messages = Messages(quiet)
    activation, notes = load_activation(act, negative_slope, alpha)
    kernel_size = parse_int("--kernel", kernel)
    dims = parse_int("--dim", dim, high=2)
    side_given = parse_int("--n", n)
    if dims is None and ";" in v:
        dims = 2
    vec = _variance_vector(v, kernel_size, dims)
    d = int(vec.ndim)
    side = DEFAULT_N[d] if side_given is None else side_given
    weight = scale_option("w", sigma_w, sigma_w2)
    bias = scale_option("b", sigma_b, sigma_b2, default=DEFAULT_SIGMA_B2)
    assert bias is not None
    check_output_path(output)
    for note in notes:
        messages.warn(note)

    v_used, v_sum = normalize_variance_vector(vec)
    if abs(v_sum - 1.0) > 1e-12:
        messages.warn(
            f"v sums to {v_sum:.12g}, not 1; rescaled to sum to 1 (v / {v_sum:.12g});"
            " sigma_w2 is used as given"
        )

    b2 = bias.value
    w2, source = _weight_variance(activation, weight, b2, messages)
    fp = fixed_point(activation, sigma_w2=w2, sigma_b2=b2)
    phase = str(fp.phase.reshape(-1)[0])
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
            f" sigma_b2 = {b2:g} (phase '{phase}'): rates and depth scales are null"
        )
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
        **activation_fields(activation),
        **params,
        **fixed,
        "xi_c": scalar(fp.xi_c),
        "xi_q": scalar(fp.xi_q),
        "phase": phase,
        "dim": d,
        "kernel": list(vec.shape),
        "n": side,
        "v_spec": v,
        "v": v_used.tolist(),
        "v_sum_given": v_sum,
        "modes": modes,
    }
    columns = [
        Column("frequency", "f"),
        Column("lambda", "lambda_f"),
        Column("abs_lambda", "|lambda_f|"),
        Column("rate", "chi_c*|lambda_f|"),
        Column("xi", "xi_f"),
        Column("xi_q", "diagonal-mode scale"),
    ]
    title = (
        f"Fourier modes of {activation.label}, sigma_w = {math.sqrt(w2):.6g}"
        f" (sigma_w^2 = {w2:.6g}{', critical' if source == 'critical' else ''}),"
        f" sigma_b = {math.sqrt(b2):.6g} (sigma_b^2 = {b2:.6g}), chi_c* = {chi_c:.6g},"
        f" xi_c = {scalar(fp.xi_c):.6g}, n = {side}\nv = {_format_v(v_used)}"
    )
    freq_keys = ["frequency"] if d == 1 else [f"frequency_{k + 1}" for k in range(d)]
    csv_rows = []
    for mode in modes:
        row = {"lambda_imag": 0.0, **mode, **params, "chi_c": chi_c, "chi_q": chi_q}
        row.update(zip(freq_keys, mode["frequency"], strict=True))
        csv_rows.append(row)
    csv_keys = [*freq_keys, "lambda", "lambda_imag", "abs_lambda", "rate", "xi", "rate_q", "xi_q"]
    csv_keys += [*params, "chi_c", "chi_q"]
    report = Report(
        command="depthscales",
        payload=payload,
        settings=settings_of(fp),
        table=Records(columns, rows, title=title),
        csv=Records([Column(key) for key in csv_keys], csv_rows),
    )
    emit(report, fmt=fmt, output=output, messages=messages)
