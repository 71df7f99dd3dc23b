"""``mftheory kernel``: write an orthogonal, Delta-Orthogonal or Gaussian convolution kernel,
or check one, by the singular values of the operator it defines on periodic images."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from mftheory.cli.options import Format, Quiet, VOption
from mftheory.cli.params import Choice, ChoiceEnum, Gain, Int

if TYPE_CHECKING:
    from mftheory.cli.messages import Messages

__all__ = ["KernelInit", "kernel"]


class KernelInit(ChoiceEnum):
    """Kernels ``--init`` draws."""

    orthogonal = "orthogonal"
    delta_orthogonal = "delta-orthogonal"
    gaussian = "gaussian"


_KINDS = Choice(KernelInit, "kernel kind")


def _int(name: str, help_text: str, low: int = 1, high: int | None = None) -> Any:
    return typer.Option(name, metavar="INT", help=help_text, parser=Int(low, high))


def kernel(
    ctx: typer.Context,
    init: Annotated[
        KernelInit,
        typer.Option("--init", metavar=_KINDS.metavar, help="Which kernel to draw.", parser=_KINDS),
    ] = KernelInit.delta_orthogonal,
    side: Annotated[int, _int("--kernel", "Kernel side length (odd).")] = 3,
    old_side: Annotated[int | None, typer.Option("--size", hidden=True, parser=Int(1))] = None,
    dim: Annotated[
        int, typer.Option("--dim", metavar="1|2|3", help="Spatial dimensions.", parser=Int(1, 3))
    ] = 2,
    cin: Annotated[int, _int("--cin", "Input channels.")] = 64,
    cout: Annotated[int, _int("--cout", "Output channels (>= --cin if orthogonal).")] = 64,
    gain: Annotated[
        float,
        typer.Option(
            "--gain",
            metavar="EXPR",
            help="Gain: the operator's singular values (orthogonal kinds), or sigma_w "
            "(gaussian: Var w = gain^2 v_b / c_in). A number or an expression such as sqrt(2).",
            parser=Gain(),
        ),
    ] = 1.0,
    v: VOption = "uniform",
    seed: Annotated[int, _int("--seed", "Seed of the random draws.", low=0)] = 0,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            metavar="PATH",
            help="Check this .npy kernel, laid out (spatial..., c_in, c_out), instead of "
            "drawing one.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Write the kernel to this .npy file, laid out (spatial..., c_in, c_out).",
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
        mftheory kernel --init delta-orthogonal --kernel 3 --cin 64 --cout 64 -o k.npy
        mftheory kernel --init orthogonal --kernel 5 --dim 1 --cin 8 --cout 16 --seed 1
        mftheory kernel --check k.npy --format json
    """
    from mftheory.cli.common import begin, pick_alias
    from mftheory.cli.output import emit
    from mftheory.errors import MFTheoryError

    messages = begin(quiet)
    if output is not None and output.suffix.lower() != ".npy":
        raise MFTheoryError(f"-o {str(output)!r}: kernels are written as .npy files")
    if check is not None:
        K, source, g = _read(check), f"checked {check}", None
    else:
        s = pick_alias(ctx, ("side", "--kernel", side), ("old_side", "--size", old_side))
        shape = "x".join(str(x) for x in (*(s,) * dim, cin, cout))
        with messages.progress(f"drawing a {shape} kernel", points=s**dim * cin * cout):
            K = _draw(init, s, dim, cin, cout, gain, v, seed, messages)
        source, g = f"{init.value}, seed {seed}", gain
    if output is not None:
        _save(output, K, messages)
    with messages.progress(
        "checking the operator's singular values for every image side n", points=_check_cost(K)
    ):
        report = _report(K, source, g)
    emit(report, fmt=fmt, output=None, messages=messages)


def _check_cost(K: Any) -> int:
    """About the entries of the FFT check's blocks (image sides from the kernel's to 64, or
    8 in 3D, as :func:`mftheory.cnn.kernels.check_kernel` does by default)."""
    d = K.ndim - 2
    side = max(K.shape[:-2])
    top = max(side, 8 if d == 3 else 64)
    return int(K.shape[-2] * K.shape[-1] * sum(n**d for n in range(side, top + 1)))


def _read(check: Path) -> Any:
    """The kernel in the .npy file ``check``, as float64."""
    from mftheory.errors import MFTheoryError

    if not check.is_file():
        raise MFTheoryError(f"--check {str(check)!r} does not exist")
    try:
        K = np.load(check, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MFTheoryError(f"--check {str(check)!r} is not a readable .npy file: {exc}") from None
    if K.ndim < 3 or K.ndim > 5:
        raise MFTheoryError(
            f"--check {str(check)!r} has shape {K.shape}: expected (spatial..., c_in, c_out)"
            " with 1 to 3 spatial dimensions"
        )
    return np.asarray(K, dtype=np.float64)


def _draw(
    kind: KernelInit,
    s: int,
    d: int,
    c_in: int,
    c_out: int,
    g: float,
    v: str,
    seed: int,
    messages: Messages,
) -> Any:
    """A kernel of ``kind``, side ``s``, ``d`` spatial dimensions."""
    from mftheory.cli.common import variance_vector_of
    from mftheory.cnn.kernels import delta_orthogonal_kernel, gaussian_kernel, orthogonal_kernel

    if kind is KernelInit.orthogonal:
        return orthogonal_kernel(s, c_in, c_out, dim=d, gain=g, seed=seed)
    if kind is KernelInit.delta_orthogonal:
        return delta_orthogonal_kernel(s, c_in, c_out, dim=d, gain=g, seed=seed)
    vec = variance_vector_of(v, s, d)
    total = float(vec.sum())
    if abs(total - 1.0) > 1e-12:
        messages.warn(f"v sums to {total:.12g}, not 1; rescaled to sum to 1")
        vec = vec / total
    return gaussian_kernel(vec, c_in, c_out, gain=g, seed=seed)


def _save(output: Path, K: Any, messages: Messages) -> None:
    from mftheory.cli.output import OutputError

    try:
        np.save(output, K)
    except OSError as exc:
        raise OutputError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
    messages.note(f"wrote {output} (shape {K.shape}, layout (spatial..., c_in, c_out))")


def _report(K: Any, source: str, g: float | None) -> Any:
    """The check of ``K`` (its ``as_dict()``), the implied v and the range of |lambda_f|."""
    from mftheory.cli.common import format_v
    from mftheory.cli.output import Report
    from mftheory.cli.render import Column, Records
    from mftheory.cnn.kernels import check_kernel, kernel_sigma_w2, kernel_variance_share
    from mftheory.cnn.modes import mode_eigenvalues

    summary = check_kernel(K, gain=g).as_dict()
    share = kernel_variance_share(K)
    side = max(8, max(K.shape[:-2]))
    lam = np.abs(mode_eigenvalues(share, side)[1])
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
        *({"quantity": k, "value": val} for k, val in summary.items() if not isinstance(val, list)),
        {"quantity": "sigma_w2 (sum K^2 / c_out)", "value": payload["sigma_w2"]},
        {"quantity": "implied v", "value": format_v(share)},
        {
            "quantity": f"|lambda_f| on {side}-pixel sides",
            "value": f"{lam.min():.6g} .. {lam.max():.6g}",
        },
    ]
    return Report(
        command="kernel",
        payload=payload,
        settings={"tol": summary.get("tol")},
        table=Records(
            [Column("quantity", justify="left"), Column("value", justify="left")],
            rows,
            title="Singular values of the periodic convolution operator",
        ),
    )
