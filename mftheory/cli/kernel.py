"""``mftheory kernel``: write an orthogonal, Delta-Orthogonal or Gaussian convolution kernel,
or check one, by the singular values of the operator it defines on periodic images."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from mftheory.cli.options import Format, Quiet

__all__ = ["kernel"]

KINDS = ("orthogonal", "delta-orthogonal", "gaussian")


def _int_option(name: str, help_text: str) -> Any:
    return typer.Option(name, metavar="INT", help=help_text)


def kernel(
    init: Annotated[
        str,
        typer.Option("--init", metavar="|".join(KINDS), help="Which kernel to draw."),
    ] = "delta-orthogonal",
    size: Annotated[str, _int_option("--size", "Kernel side (odd).")] = "3",
    dim: Annotated[str, typer.Option("--dim", metavar="1|2|3", help="Spatial dimensions.")] = "2",
    cin: Annotated[str, _int_option("--cin", "Input channels.")] = "64",
    cout: Annotated[str, _int_option("--cout", "Output channels (>= --cin if orthogonal).")] = "64",
    gain: Annotated[
        str,
        typer.Option(
            "--gain",
            metavar="EXPR",
            help="Gain: the operator's singular values (orthogonal kinds), or sigma_w "
            "(gaussian: Var w = gain^2 v_b / c_in). A number or an expression such as sqrt(2).",
        ),
    ] = "1",
    v: Annotated[
        str,
        typer.Option(
            "--v",
            metavar="LIST|PRESET",
            help="Variance vector of --init gaussian (preset or list, as depthscales).",
        ),
    ] = "uniform",
    seed: Annotated[str, _int_option("--seed", "Seed of the random draws (>= 0).")] = "0",
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            metavar="PATH",
            help="Check this .npy kernel, laid out (spatial..., c_in, c_out), instead of "
            "drawing one.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="Write the kernel to this .npy file, laid out (spatial..., c_in, c_out).",
            show_default=False,
        ),
    ] = None,
    fmt: Format = None,
    quiet: Quiet = False,
) -> None:
    """Draw a convolution kernel (or check one) and print its operator's singular values.

    orthogonal: the paper's Algorithm 1 (block convolutions of random symmetric projections);
    delta-orthogonal: a random orthogonal matrix at the centre, zeros elsewhere; gaussian:
    i.i.d. N(0, gain^2 v_b / c_in). The check computes, for every periodic image side n from
    the kernel size to 64, the singular values of the convolution operator by the FFT over
    spatial frequencies: an orthogonal kernel has all of them equal to the gain (to 1e-12),
    and for c_in < c_out orthonormal columns. It also prints the kernel's implied variance
    vector v (its per-position share of the weight variance) and the range of its |lambda_f|.

    Example:

    \b
        mftheory kernel --init delta-orthogonal --size 3 --cin 64 --cout 64 -o k.npy
        mftheory kernel --init orthogonal --size 5 --dim 1 --cin 8 --cout 16 --seed 1
        mftheory kernel --check k.npy --format json
    """
    from mftheory.cli.depthscales import _format_v, _variance_vector
    from mftheory.cli.diagnose import parse_gain
    from mftheory.cli.output import Column, Messages, Records, Report, emit
    from mftheory.cli.params import parse_int
    from mftheory.cnn.kernels import (
        check_kernel,
        delta_orthogonal_kernel,
        gaussian_kernel,
        kernel_sigma_w2,
        kernel_variance_share,
        orthogonal_kernel,
    )
    from mftheory.cnn.modes import mode_eigenvalues
    from mftheory.errors import MFTheoryError

    messages = Messages(quiet)
    if output is not None and output.suffix.lower() != ".npy":
        raise MFTheoryError(f"-o {str(output)!r}: kernels are written as .npy files")
    if check is not None:
        if not check.is_file():
            raise MFTheoryError(f"--check {str(check)!r} does not exist")
        try:
            K = np.load(check, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MFTheoryError(
                f"--check {str(check)!r} is not a readable .npy file: {exc}"
            ) from None
        if K.ndim < 3 or K.ndim > 5:
            raise MFTheoryError(
                f"--check {str(check)!r} has shape {K.shape}: expected (spatial..., c_in, c_out)"
                " with 1 to 3 spatial dimensions"
            )
        K = np.asarray(K, dtype=np.float64)
        source = f"checked {check}"
        g: float | None = None
    else:
        kind = init.strip().lower()
        if kind not in KINDS:
            raise MFTheoryError(f"--init must be one of {', '.join(KINDS)}, got {init!r}")
        s = parse_int("--size", size)
        d = parse_int("--dim", dim, high=3)
        c_in = parse_int("--cin", cin)
        c_out = parse_int("--cout", cout)
        sd = parse_int("--seed", seed, low=0)
        assert s is not None and d is not None and c_in is not None and c_out is not None
        g = parse_gain(gain)
        if kind == "orthogonal":
            K = orthogonal_kernel(s, c_in, c_out, dim=d, gain=g, seed=sd)
        elif kind == "delta-orthogonal":
            K = delta_orthogonal_kernel(s, c_in, c_out, dim=d, gain=g, seed=sd)
        else:
            vec = _variance_vector(v, s, d)
            total = float(vec.sum())
            if abs(total - 1.0) > 1e-12:
                messages.warn(f"v sums to {total:.12g}, not 1; rescaled to sum to 1")
                vec = vec / total
            K = gaussian_kernel(vec, c_in, c_out, gain=g, seed=sd)
        source = f"{kind}, seed {sd}"
    result = check_kernel(K, gain=g)
    share = kernel_variance_share(K)
    spatial = K.shape[:-2]
    side = max(8, max(spatial))
    lam = np.abs(mode_eigenvalues(share, side)[1])
    if output is not None:
        try:
            np.save(output, K)
        except OSError as exc:
            from mftheory.cli.output import OutputError

            raise OutputError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
        messages.note(f"wrote {output} (shape {K.shape}, layout (spatial..., c_in, c_out))")
    summary = result.as_dict()
    payload: dict[str, Any] = {
        "source": source,
        "shape": list(K.shape),
        "layout": "(spatial..., c_in, c_out)",
        **summary,
        "sigma_w2": kernel_sigma_w2(K),
        "sigma_w": math.sqrt(kernel_sigma_w2(K)),
        "variance_share": share,
        "abs_lambda_range": [float(lam.min()), float(lam.max())],
        "abs_lambda_n": side,
    }
    rows = [
        {"quantity": "kernel", "value": source},
        {"quantity": "shape", "value": "x".join(str(x) for x in K.shape)},
        *(
            {"quantity": k, "value": summary[k]}
            for k in summary
            if not isinstance(summary[k], list)
        ),
        {"quantity": "sigma_w2 (sum K^2 / c_out)", "value": payload["sigma_w2"]},
        {"quantity": "implied v", "value": _format_v(share)},
    ]
    rows.append(
        {
            "quantity": f"|lambda_f| on {side}-pixel sides",
            "value": f"{lam.min():.6g} .. {lam.max():.6g}",
        }
    )
    report = Report(
        command="kernel",
        payload=payload,
        settings={"tol": summary.get("tol")},
        table=Records(
            [Column("quantity", justify="left"), Column("value", justify="left")],
            rows,
            title="Singular values of the periodic convolution operator",
        ),
    )
    emit(report, fmt=fmt, output=None, messages=messages)
