"""Figures: the (sigma_w^2, sigma_b^2) phase diagram, mode amplitudes against depth, and the
sorted |lambda_f| of variance vectors (Fig. 4(b)).

Uses matplotlib's object API only (:class:`matplotlib.figure.Figure`, no pyplot state), so
it never opens a window and is safe in threads and servers; files are rendered by the Agg,
SVG or PDF backend chosen from the suffix. :func:`save_figure` strips timestamps and tool
versions from the file metadata, so the same figure gives the same bytes.

This module imports matplotlib; ``import mftheory`` does not import it.

Notes
-----
docs/theory.md section 3 (phases: ordered for chi_1 < 1, chaotic for chi_1 > 1, the critical line
chi_1 = 1, divergent where q* is infinite) and section 4 (the depth scale xi_c).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps, colors, rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from numpy.typing import NDArray

from mftheory.errors import MFTheoryError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mftheory.meanfield.critical import CriticalPoint
    from mftheory.meanfield.fixed_points import FixedPoint
    from mftheory.spectrum.density import JacobianSpectrum

__all__ = [
    "PHASE_DIAGRAM_QUANTITIES",
    "eigenvalue_figure",
    "mode_amplitude_figure",
    "phase_diagram_figure",
    "save_figure",
    "spectrum_figure",
]

#: Quantities :func:`phase_diagram_figure` can colour by: colour-bar label, log scale default.
PHASE_DIAGRAM_QUANTITIES: Mapping[str, tuple[str, bool]] = {
    "xi_c": (r"correlation depth scale $\xi_c = -1/\log\chi_c^*$ (layers)", True),
    "q_star": (r"fixed-point variance $q^*$", True),
    "c_star": (r"fixed-point correlation $c^*$", False),
    "chi_1": (r"$\chi_1$ (per-layer gradient factor)", False),
}

_DIVERGENT_COLOUR = "0.78"
_METADATA: Mapping[str, dict[str, Any]] = {
    ".png": {"Software": None},
    ".svg": {"Date": None, "Creator": None},
    ".pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


def _axes_values(result: FixedPoint) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The sigma_w2 values along columns and sigma_b2 values along rows of a 2D grid."""
    shape = np.shape(result.q_star)
    if len(shape) != 2 or min(shape) < 2:
        raise MFTheoryError(
            "a phase diagram needs a 2D grid of at least 2 x 2 points: call fixed_point with"
            f" sigma_w2=W[None, :] and sigma_b2=B[:, None]; got q_star of shape {shape}"
        )
    w = np.broadcast_to(np.asarray(result.sigma_w2, dtype=np.float64), shape)[0, :]
    b = np.broadcast_to(np.asarray(result.sigma_b2, dtype=np.float64), shape)[:, 0]
    if np.any(np.diff(w) <= 0) or np.any(np.diff(b) <= 0):
        raise MFTheoryError("phase diagram axes must be strictly increasing in sigma_w2, sigma_b2")
    return w, b


def _norm(values: NDArray[np.float64], quantity: str, log: bool) -> colors.Normalize:
    valid = values.compressed() if np.ma.isMaskedArray(values) else values.ravel()
    if valid.size == 0:
        return colors.Normalize(0.0, 1.0)
    lo, hi = float(valid.min()), float(valid.max())
    if lo == hi:
        lo, hi = (lo / 2, lo * 2) if log else (lo - 0.5, hi + 0.5)
    if log:
        return colors.LogNorm(lo, hi)
    if quantity == "chi_1" and lo < 1.0 < hi:
        return colors.TwoSlopeNorm(1.0, lo, hi)
    return colors.Normalize(lo, hi)


def _label_region(
    ax: Axes, mask: NDArray[np.bool_], w: NDArray[Any], b: NDArray[Any], text: str
) -> None:
    """Write ``text`` at the grid point of ``mask`` nearest the region's centroid."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return
    x = (w[cols] - w[0]) / (w[-1] - w[0])
    y = (b[rows] - b[0]) / (b[-1] - b[0])
    k = int(np.argmin((x - x.mean()) ** 2 + (y - y.mean()) ** 2))
    ax.text(
        w[cols[k]],
        b[rows[k]],
        text,
        ha="center",
        va="center",
        fontsize=12,
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "alpha": 0.75, "linewidth": 0},
    )


def phase_diagram_figure(
    result: FixedPoint,
    quantity: str = "xi_c",
    log: bool | None = None,
    *,
    critical: CriticalPoint | None = None,
    figsize: tuple[float, float] = (7.0, 5.0),
    dpi: float = 110.0,
) -> Figure:
    """The (sigma_w^2, sigma_b^2) plane coloured by a mean-field quantity.

    Parameters
    ----------
    result : FixedPoint
        :func:`mftheory.meanfield.fixed_point` on a grid: ``sigma_w2=W[None, :]`` and
        ``sigma_b2=B[:, None]`` with increasing ``W`` and ``B`` (at least 2 of each).
    quantity : {"xi_c", "q_star", "c_star", "chi_1"}
        What the colour shows.
    log : bool or None
        Logarithmic colour scale; ``None`` picks it for ``xi_c`` and ``q_star``. Values that
        are not finite (or not positive on a log scale) are left blank.
    critical : CriticalPoint or None
        The critical line to draw; computed with :func:`mftheory.meanfield.critical_point` at
        the grid's ``sigma_b2`` values when not given. Points with a non-finite ``sigma_w2``
        or outside the plotted range are skipped.
    figsize, dpi
        Size of the figure in inches, and its resolution.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot; save it with :func:`save_figure` or ``fig.savefig``.

    Notes
    -----
    The divergent region (no finite q*, docs/theory.md section 3) is grey; the regions are named
    where they occur; the critical line is ``chi_1 = 1``.
    """
    if quantity not in PHASE_DIAGRAM_QUANTITIES:
        raise MFTheoryError(
            f"unknown quantity {quantity!r}; choose one of {', '.join(PHASE_DIAGRAM_QUANTITIES)}"
        )
    w, b = _axes_values(result)
    shape = (b.size, w.size)
    label, log_default = PHASE_DIAGRAM_QUANTITIES[quantity]
    use_log = log_default if log is None else bool(log)
    phase = np.broadcast_to(np.asarray(result.phase), shape)
    divergent = phase == "divergent"

    values = np.broadcast_to(np.asarray(getattr(result, quantity), dtype=np.float64), shape)
    hide = ~np.isfinite(values) | divergent
    if use_log:
        hide |= ~(values > 0)  # NaN-safe: NaN > 0 is False
    shown = np.ma.masked_array(np.where(hide, 1.0, values), mask=hide)

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    cmap = "RdBu_r" if quantity == "chi_1" else "viridis"
    mesh = ax.pcolormesh(
        w,
        b,
        shown,
        shading="nearest",
        cmap=cmap,
        norm=_norm(shown, quantity, use_log),
        rasterized=True,
    )
    fig.colorbar(mesh, ax=ax, label=label)
    handles: list[Any] = []
    if divergent.any():
        grey = colors.ListedColormap([_DIVERGENT_COLOUR])
        ax.pcolormesh(
            w,
            b,
            np.ma.masked_array(np.ones(shape), mask=~divergent),
            shading="nearest",
            rasterized=True,
            cmap=grey,
            vmin=0.0,
            vmax=2.0,
        )
        handles.append(Patch(color=_DIVERGENT_COLOUR, label=r"divergent (no finite $q^*$)"))

    if critical is None:
        from mftheory.meanfield.critical import critical_point

        critical = critical_point(result.activation, sigma_b2=b, settings=result.settings)
    cw = np.asarray(critical.sigma_w2, dtype=np.float64).reshape(-1)
    cb = np.asarray(critical.sigma_b2, dtype=np.float64).reshape(-1)
    on_plot = np.isfinite(cw) & np.isfinite(cb) & (cw >= w[0]) & (cw <= w[-1])
    on_plot &= (cb >= b[0]) & (cb <= b[-1])
    if on_plot.any():
        ax.plot(cw[on_plot], cb[on_plot], color="white", linewidth=3.0, solid_capstyle="round")
        (line,) = ax.plot(
            cw[on_plot],
            cb[on_plot],
            color="black",
            linewidth=1.4,
            linestyle="--",
            label=r"critical line $\chi_1 = 1$",
        )
        handles.insert(0, line)

    for name in ("ordered", "chaotic", "divergent"):
        _label_region(ax, phase == name, w, b, name)
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.85)
    ax.set_xlim(w[0] - (w[1] - w[0]) / 2, w[-1] + (w[-1] - w[-2]) / 2)
    ax.set_ylim(b[0] - (b[1] - b[0]) / 2, b[-1] + (b[-1] - b[-2]) / 2)
    ax.set_xlabel(r"weight variance $\sigma_w^2$")
    ax.set_ylabel(r"bias variance $\sigma_b^2$")
    title = result.activation.label.replace("$", r"\$")
    ax.set_title(f"Phase diagram of {title}")
    return fig


def mode_amplitude_figure(
    layers: NDArray[Any],
    amplitude: NDArray[np.float64],
    labels: list[str],
    predicted_rate: NDArray[np.float64],
    *,
    floor: NDArray[np.float64] | None = None,
    measured: tuple[NDArray[Any], NDArray[np.float64], NDArray[np.float64]] | None = None,
    anchor: NDArray[Any] | None = None,
    title: str = "",
    ylabel: str = r"mode amplitude $|\epsilon_f^l|$",
    figsize: tuple[float, float] = (7.0, 5.0),
    dpi: float = 110.0,
) -> Figure:
    """Mode amplitudes against depth, with the predicted per-layer rates as dashed lines.

    Parameters
    ----------
    layers : array of int, shape ``(L,)``
    amplitude : ndarray, shape ``(L, K)``
        Mean-field amplitude of each of ``K`` modes (solid lines).
    labels : list of str
        One legend label per mode.
    predicted_rate : ndarray, shape ``(K,)``
        ``chi_c* |lambda_f|``: each dashed line is ``A_f(l0) rate^(l - l0)``.
    floor : ndarray, shape ``(L,)``, optional
        Error floor (grey band): amplitudes below it are numerical noise.
    measured : (layers, mean, sem), optional
        Monte Carlo amplitudes ``(L', K)`` with standard errors, drawn as markers.
    anchor : array of int, shape ``(K,)``, optional
        Layer ``l0`` of each dashed line (default: the first layer).
    title, ylabel, figsize, dpi
        Decoration.

    Notes
    -----
    docs/theory.md section 4: near the fixed point mode ``f`` shrinks by ``chi_c* |lambda_f|``.
    """
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    lay = np.asarray(layers, dtype=np.float64)
    cmap = colormaps["viridis"]
    k_modes = amplitude.shape[1]
    positive = amplitude[amplitude > 0]
    lowest = float(positive.min()) if positive.size else 1e-16
    for k in range(k_modes):
        colour = cmap(k / max(1, k_modes - 1) * 0.9)
        amp = np.where(amplitude[:, k] > 0, amplitude[:, k], np.nan)
        ax.plot(lay, amp, color=colour, linewidth=1.6, label=labels[k])
        i0 = 0 if anchor is None else int(np.searchsorted(lay, anchor[k]))
        i0 = min(max(i0, 0), lay.size - 1)
        if np.isfinite(amp[i0]) and np.isfinite(predicted_rate[k]) and predicted_rate[k] > 0:
            line = amp[i0] * predicted_rate[k] ** (lay - lay[i0])
            line = np.where(line >= lowest * 1e-2, line, np.nan)
            ax.plot(lay, line, color=colour, linewidth=1.0, linestyle="--")
        if measured is not None:
            m_lay, m_amp, m_sem = measured
            ok = m_amp[:, k] > 2.0 * m_sem[:, k]  # points within 2 s.e. of 0 carry no slope
            ax.errorbar(
                np.asarray(m_lay)[ok],
                m_amp[ok, k],
                yerr=m_sem[ok, k],
                fmt="o",
                markersize=3.5,
                color=colour,
                elinewidth=0.8,
                capsize=1.5,
            )
    if floor is not None:
        ax.fill_between(lay, lowest * 1e-2, floor, color="0.85", zorder=0, label="error floor")
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(lowest * 0.5, 1e-300))
    ax.set_xlabel("layer $l$")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=8)
    handles, names = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", linestyle="--"))
    names.append(r"predicted $(\chi_c^*|\lambda_f|)^l$")
    if measured is not None:
        handles.append(Line2D([], [], color="0.3", marker="o", linestyle="none"))
        names.append("Monte Carlo (mean +- s.e., > 2 s.e.)")
    ax.legend(handles, names, fontsize=7, loc="lower left", ncol=2, framealpha=0.85)
    return fig


def eigenvalue_figure(
    values: Mapping[str, NDArray[np.float64]],
    *,
    title: str = "",
    figsize: tuple[float, float] = (6.0, 4.2),
    dpi: float = 110.0,
) -> Figure:
    """Sorted ``|lambda_f|`` of several variance vectors (the paper's Fig. 4(b)).

    Parameters
    ----------
    values : mapping
        Name -> ``|lambda_f|`` in descending order.

    Notes
    -----
    docs/theory.md section 4.
    """
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    for k, (name, vals) in enumerate(values.items()):
        ax.plot(
            np.arange(vals.size),
            vals,
            marker="o",
            markersize=3,
            linewidth=1.2,
            color=cmap(k / max(1, len(values) - 1) * 0.9),
            label=name.upper(),
        )
    ax.set_xlabel("mode index (sorted)")
    ax.set_ylabel(r"$|\lambda_f|$")
    ax.set_ylim(-0.02, 1.05)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def spectrum_figure(
    spec: JacobianSpectrum,
    sampled: NDArray[np.float64] | None = None,
    floor: float = 0.0,
    label: str = "",
) -> Figure:
    """The predicted density of the squared singular values, with a sampled histogram.

    Parameters
    ----------
    spec : JacobianSpectrum
    sampled : array, optional
        Squared singular values of sampled networks (drawn as a histogram).
    floor : float
        Sampled values below it are not resolved in float64 and are left out (counted in the
        legend).
    label : str
        Legend text of the sampled histogram.

    Notes
    -----
    docs/theory.md section 5. When the spectrum spans more than two decades the horizontal axis is
    ``log10 x`` and both curves are densities per unit ``log10 x``; otherwise it is ``x``
    itself. An atom at 0 is stated in the title (it has no place on a log axis).
    """
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    t = spec.log_x
    lq = spec.log10_quantiles
    lo_q, hi_q = lq.get("0.05", -np.inf), lq.get("0.95", np.inf)
    wide = t.size > 0 and (t[-1] - t[0]) / np.log(10.0) > 2.0
    if t.size:
        if wide:
            ax.plot(t / np.log(10.0), spec.log_density * np.log(10.0), color="C0", label="theory")
            ax.set_xlabel(r"$\log_{10} x$, $x$ = squared singular value of $J$")
            ax.set_ylabel(r"density per unit $\log_{10} x$")
        else:
            ax.plot(spec.x, spec.density, color="C0", label="theory")
            ax.set_xlabel(r"$x$ = squared singular value of $J$")
            ax.set_ylabel("density")
    for x, m in spec.atoms:
        if x > 0:
            where = np.log10(x) if wide else x
            ax.axvline(where, color="C3", lw=1.5, label=f"atom: mass {m:.3g} at x = {x:.4g}")
    if sampled is not None and sampled.size:
        vals = np.asarray(sampled, dtype=np.float64)
        ok = vals > floor
        dropped = int(np.count_nonzero(~ok))
        vals = vals[ok]
        text = label or "sampled"
        if dropped:
            text += f" ({dropped} below float64 resolution not shown)"
        if vals.size:
            data = np.log10(vals) if wide else vals
            hist, edges = np.histogram(data, bins=min(80, max(10, vals.size // 40)))
            width = np.diff(edges)
            dens = hist / (sampled.size * width)  # normalised over all values, as the theory
            ax.stairs(dens, edges, color="C1", alpha=0.8, label=text)
    zero = sum(m for x, m in spec.atoms if x == 0)
    title = f"{spec.activation.label}, {spec.weights} weights, depth {spec.depth}"
    if zero > 0:
        title += f"; atom at 0 of mass {zero:.3g}"
    ax.set_title(title, fontsize=10)
    if np.isfinite(lo_q) and np.isfinite(hi_q) and wide:
        ax.axvspan(lo_q, hi_q, color="0.9", zorder=0, label="5%-95% quantiles")
    ax.legend(fontsize=8)
    return fig


def save_figure(fig: Figure, path: str | Path) -> None:
    """Save ``fig`` to ``path`` (png, svg or pdf by suffix) with no timestamp in the file.

    The same figure always gives the same bytes: the metadata that records the date and the
    software version is dropped, and SVG element ids use a fixed salt.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _METADATA:
        raise MFTheoryError(f"cannot save a figure as {str(path)!r}: use .png, .svg or .pdf")
    with rc_context({"svg.hashsalt": "mftheory", "pdf.compression": 6}):
        fig.savefig(path, format=suffix[1:], metadata=_METADATA[suffix])
