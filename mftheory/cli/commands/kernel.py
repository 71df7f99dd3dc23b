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
        _require_check_memory(K)
    else:
        s = pick_alias(ctx, ("side", "--kernel", side), ("old_side", "--size", old_side))
        _require_memory(init, s, dim, cin, cout)
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


def _require_memory(kind: KernelInit, s: int, d: int, c_in: int, c_out: int) -> None:
    """Refuse, before drawing, a kernel whose draw and check need more than the memory limit.

    The kernel is ``8 s^d c_in c_out`` bytes (float64); drawing it takes 4 such arrays for
    ``orthogonal`` (the growth step's projection and its two padded copies), 2 for
    ``gaussian``, 1 for ``delta-orthogonal`` plus its ``c_in x c_out`` QR (4 arrays); the
    check's peak is ``mftheory.cnn.kernels.kernel_check_bytes``.
    """
    from mftheory.cli.budget import require_memory

    shape = (*(s,) * d, c_in, c_out)
    kernel_bytes = 8.0 * math.prod(float(x) for x in shape)
    copies = {KernelInit.orthogonal: 4, KernelInit.gaussian: 2}.get(kind, 1)
    draw = copies * kernel_bytes + 32.0 * c_in * c_out
    check = kernel_bytes + kernel_check_bytes(shape)
    text = "x".join(str(x) for x in shape)
    require_memory(
        max(draw, check),
        f"a {text} kernel (8 bytes x {format(kernel_bytes / 8, '.3g')} entries, and its"
        " check over every image side)",
    )
    _require_check_time(shape, f"checking a {text} kernel over every image side")


#: Assumed speed of the check's dense linear algebra (flop/s), for the time estimate.
FLOP_RATE = 3e8


def _require_check_time(shape: tuple[int, ...], what: str) -> None:
    """Refuse a check estimated to run for hours: per image side ``n``, ``n^d`` frequencies,
    each an ``S``-term DFT of a ``c_in x c_out`` block (``8 S c_in c_out`` flops) and its SVD
    (about ``4 c_in c_out min(c_in, c_out)``), at ``FLOP_RATE``."""
    from mftheory.cli.budget import require_time

    *spatial, ci, co = (float(x) for x in shape)
    d, side = len(spatial), int(max(spatial))
    top = max(side, 8 if d == 3 else 64)
    frequencies = sum(float(n) ** d for n in range(side, top + 1))
    flops = frequencies * ci * co * (8.0 * math.prod(spatial) + 4.0 * min(ci, co))
    require_time(flops / FLOP_RATE, what)


def _check_cost(K: Any) -> int:
    """About the entries of the FFT check's blocks (image sides from the kernel's to 64, or
    8 in 3D, as ``mftheory.cnn.kernels.check_kernel`` does by default)."""
    d = K.ndim - 2
    side = max(K.shape[:-2])
    top = max(side, 8 if d == 3 else 64)
    return int(K.shape[-2] * K.shape[-1] * sum(n**d for n in range(side, top + 1)))


def kernel_check_bytes(shape: tuple[int, ...]) -> float:
    """About the peak bytes ``mftheory.cnn.kernels.check_kernel`` allocates for a kernel of
    ``shape`` with its default image sides.

    Per side ``n`` the frequencies come in chunks of ``k = min(n^d, CHECK_CHUNK_BYTES / (16 c_in
    c_out))``; a chunk holds its phases and exponentials, ``k x S`` integers and complex numbers
    (``S`` kernel positions; 40 bytes an entry with the temporaries), and ``k`` complex blocks
    and Gram matrices; the singular values of every ``n`` are kept (``8 min(c_in, c_out) sum_n
    n^d``, twice when joined). A float: it may exceed any int64.
    """
    from mftheory.cnn.kernels import CHECK_CHUNK_BYTES, CHECK_N_MAX, CHECK_N_MAX_3D

    *spatial, ci, co = (int(x) for x in shape)
    d, side = len(spatial), max(spatial)
    positions = float(math.prod(spatial))
    ns = range(side, max(side, CHECK_N_MAX_3D if d == 3 else CHECK_N_MAX) + 1)
    per_chunk = max(1, CHECK_CHUNK_BYTES // (16 * ci * co))
    peak = max(
        min(float(n) ** d, per_chunk) * (40.0 * positions + 16.0 * ci * co + 24.0 * ci * ci)
        for n in ns
    )
    return peak + 16.0 * min(ci, co) * sum(float(n) ** d for n in ns)


def _require_check_memory(K: Any) -> None:
    """Refuse, before checking, a ``--check`` kernel whose check needs too much memory."""
    from mftheory.cli.budget import require_memory

    text = "x".join(str(x) for x in K.shape)
    what = f"checking a {text} kernel over every image side"
    require_memory(kernel_check_bytes(K.shape), what)
    _require_check_time(tuple(K.shape), what)


def _read(check: Path) -> Any:
    """The kernel in the .npy file ``check``, as float64."""
    from mftheory.cli.images import read_npy
    from mftheory.errors import MFTheoryError

    K = read_npy(check, "--check")
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
    from mftheory.files import atomic_write

    try:
        with atomic_write(output, "wb") as fh:  # complete or untouched, even on Ctrl-C
            np.save(fh, K)
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
