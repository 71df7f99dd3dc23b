"""Figures: the (sigma_w^2, sigma_b^2) phase diagram, mode amplitudes against depth, and the
sorted |lambda_f| of variance vectors (Fig. 4(b)).

Uses matplotlib's object API only (``matplotlib.figure.Figure``, no pyplot state), so
it never opens a window and is safe in threads and servers; files are rendered by the Agg,
SVG or PDF backend chosen from the suffix. ``save_figure`` strips timestamps and tool
versions from the file metadata, so the same figure gives the same bytes, and embeds TrueType
(Type 42) fonts in PDF and PostScript, as journals ask.

Every figure function draws into a given ``matplotlib.axes.Axes`` with ``ax=`` (a panel
of the caller's own figure) or makes its own figure of ``figsize`` inches at ``dpi``; it
returns the ``Figure`` it drew in. Symbols in titles and legends are
mathtext, as on the axes (``mathtext_label`` converts the plain-text notation the command
line prints). Neighbouring modes differ in colour and marker (``mode_styles``); depth axes
on a log scale get plain tick labels (``log_depth_axis``). No function changes the global
``matplotlib.rcParams``.

This module imports matplotlib; ``import mftheory`` does not import it.

Notes
-----
docs/theory.md section 3 (phases: ordered for chi_1 < 1, chaotic for chi_1 > 1, the critical line
chi_1 = 1, divergent where q* is infinite) and section 4 (the depth scale xi_c).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps, colors, rc_context, ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from numpy.typing import NDArray

from mftheory.errors import MFTheoryError
from mftheory.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis

    from mftheory.meanfield.critical import CriticalPoint
    from mftheory.meanfield.fixed_points import FixedPoint
    from mftheory.spectrum.density import JacobianSpectrum

__all__ = [
    "FIGURE_RC",
    "PHASE_DIAGRAM_AXIS_MAX",
    "PHASE_DIAGRAM_QUANTITIES",
    "eigenvalue_figure",
    "log_depth_axis",
    "mathtext_label",
    "mode_amplitude_figure",
    "mode_styles",
    "phase_diagram_figure",
    "save_figure",
    "spectrum_figure",
]

#: Quantities ``phase_diagram_figure`` can colour by: colour-bar label, log scale default.
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


#: matplotlib settings ``save_figure`` applies, locally, while it writes a file: TrueType
#: (Type 42) fonts in PDF and PostScript instead of Type 3, a fixed salt for SVG ids, a fixed
#: PDF compression level.
FIGURE_RC: Mapping[str, Any] = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.hashsalt": "mftheory",
    "pdf.compression": 6,
}

#: Markers cycled with the ``tab10`` colours by ``mode_styles`` (7 markers against 10
#: colours: the first 70 modes all differ in the pair).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")

#: Plain-text notation (as the command line prints it) and its mathtext, longest first.
_MATH_TOKENS: tuple[tuple[str, str], ...] = (
    (r"chi_c\*\s*\|lambda_f\|", r"\chi_c^*|\lambda_f|"),
    (r"sigma_w\^2", r"\sigma_w^2"),
    (r"sigma_b\^2", r"\sigma_b^2"),
    (r"sigma_w2", r"\sigma_w^2"),
    (r"sigma_b2", r"\sigma_b^2"),
    (r"sigma_w", r"\sigma_w"),
    (r"sigma_b", r"\sigma_b"),
    (r"\|lambda_f\|", r"|\lambda_f|"),
    (r"\|lambda\|", r"|\lambda|"),
    (r"lambda_f", r"\lambda_f"),
    (r"chi_c\*", r"\chi_c^*"),
    (r"chi_1", r"\chi_1"),
    (r"chi_c", r"\chi_c"),
    (r"chi_q", r"\chi_q"),
    (r"xi_c", r"\xi_c"),
    (r"xi_q", r"\xi_q"),
    (r"xi_grad", r"\xi_\nabla"),
    (r"q\*", r"q^*"),
    (r"c\*", r"c^*"),
)
_MATH_PATTERN = re.compile(
    r"(?<![A-Za-z0-9_\\])(" + "|".join(f"(?:{p})" for p, _ in _MATH_TOKENS) + r")(?![A-Za-z0-9])"
)


def mathtext_label(text: str) -> str:
    r"""``text`` with its mean-field symbols as matplotlib mathtext.

    The plain-text notation of the command line's tables (``sigma_w^2``, ``sigma_b^2``,
    ``chi_1``, ``chi_c*``, ``xi_c``, ``|lambda_f|``, ``q*``, ...) becomes ``$\sigma_w^2$``,
    ``$\chi_1$``, ... so that titles and legends match the axis labels. A ``$`` already in
    ``text`` (an activation's expression, say) is escaped first, so it is shown as is.

    Examples
    --------
    >>> mathtext_label("tanh, sigma_w^2 = 1.5, chi_1 = 1")
    'tanh, $\\sigma_w^2$ = 1.5, $\\chi_1$ = 1'
    """
    escaped = text.replace("$", r"\$")

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        for pattern, math in _MATH_TOKENS:
            if re.fullmatch(pattern, word):
                return f"${math}$"
        return word  # pragma: no cover - every match is one of the patterns

    return _MATH_PATTERN.sub(swap, escaped)


def mode_styles(count: int) -> list[dict[str, Any]]:
    """Line styles for ``count`` modes in order: neighbours differ in colour and marker.

    Colours cycle through matplotlib's qualitative ``tab10`` (not a colormap, on which
    neighbouring modes look alike) and markers through seven shapes, so mode ``k`` and
    ``k + 1`` always differ in both and no two of the first 70 modes share the pair.

    Returns
    -------
    list of dict
        ``{"color": (r, g, b, a), "marker": str}`` per mode, to pass to ``ax.plot(**style)``.
    """
    cmap = colormaps["tab10"]
    return [{"color": cmap(k % 10), "marker": _MARKERS[k % len(_MARKERS)]} for k in range(count)]


def _plain_tick(value: float, _pos: object = None) -> str:
    """A log-axis tick as a plain number: ``1``, ``20``, ``1000``, ``0.5``."""
    if value >= 1 and float(value).is_integer():
        return f"{int(value)}"
    return f"{value:g}"


def log_depth_axis(axis: Axis, depths: Sequence[float] | None = None) -> None:
    """Readable ticks on a log-scaled depth axis (``ax.xaxis`` or ``ax.yaxis``).

    The labels are plain numbers (``1, 10, 100, 1000``, not ``10^k``). With ``depths`` (the
    depths plotted, at most 12 distinct) the ticks are those depths; otherwise they are
    ``1, 2, 5 x 10^k`` when the axis spans less than two decades and ``10^k`` beyond.

    Parameters
    ----------
    axis : matplotlib.axis.Axis
        An axis already on a log scale (``ax.set_xscale("log")``).
    depths : sequence of float, optional
        The depths to mark.
    """
    marks = sorted({float(d) for d in depths or () if d > 0})
    if 0 < len(marks) <= 12:
        axis.set_major_locator(ticker.FixedLocator(marks))
    else:
        lo, hi = sorted(axis.get_view_interval())
        short = lo > 0 and hi / lo < 100.0
        axis.set_major_locator(
            ticker.LogLocator(base=10.0, subs=(1.0, 2.0, 5.0) if short else (1.0,))
        )
    axis.set_major_formatter(ticker.FuncFormatter(_plain_tick))
    axis.set_minor_formatter(ticker.NullFormatter())


def _canvas(ax: Axes | None, figsize: tuple[float, float], dpi: float) -> tuple[Figure, Axes]:
    """The figure and axes to draw in: ``ax`` and its (root) figure, or a new figure."""
    if ax is None:
        fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        return fig, fig.add_subplot()
    root: Any = ax.figure
    while root is not None and not isinstance(root, Figure):
        root = root.figure  # a SubFigure: its root figure
    if root is None:
        raise MFTheoryError("ax= must be an Axes that belongs to a figure")
    return root, ax


#: The largest sigma_w2 or sigma_b2 a phase diagram figure can draw (matplotlib overflows beyond).
PHASE_DIAGRAM_AXIS_MAX = 1e307


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
    top = max(w[-1], b[-1])
    if top > PHASE_DIAGRAM_AXIS_MAX:  # the cells' edges and the ticks would overflow
        raise MFTheoryError(
            f"a phase diagram figure shows sigma_w2 and sigma_b2 up to {PHASE_DIAGRAM_AXIS_MAX:g},"
            f" got {top:g}; save the grid as data (.npz, .json, .csv) instead"
        )
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
    ax: Axes | None = None,
    figsize: tuple[float, float] = (7.0, 5.0),
    dpi: float = 110.0,
) -> Figure:
    """The (sigma_w^2, sigma_b^2) plane coloured by a mean-field quantity.

    Parameters
    ----------
    result : FixedPoint
        ``mftheory.meanfield.fixed_point`` on a grid: ``sigma_w2=W[None, :]`` and
        ``sigma_b2=B[:, None]`` with increasing ``W`` and ``B`` (at least 2 of each).
    quantity : {"xi_c", "q_star", "c_star", "chi_1"}
        What the colour shows.
    log : bool or None
        Logarithmic colour scale; ``None`` picks it for ``xi_c`` and ``q_star``. Values that
        are not finite (or not positive on a log scale) are left blank.
    critical : CriticalPoint or None
        The critical line to draw; computed with ``mftheory.meanfield.critical_point`` at
        the grid's ``sigma_b2`` values when not given. Points with a non-finite ``sigma_w2``
        or outside the plotted range are skipped.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes (its colour bar takes room from it); ``figsize`` and ``dpi`` are
        then ignored. Without it a new figure is made.
    figsize, dpi
        Size of a new figure in inches, and its resolution.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn in (``ax``'s root figure when given). A new one is not attached to
        pyplot; save it with ``save_figure`` (TrueType fonts in PDF) or ``fig.savefig``.

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

    fig, ax = _canvas(ax, figsize, dpi)
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
    (ax.figure or fig).colorbar(mesh, ax=ax, label=label)
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
    ax: Axes | None = None,
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
        One legend label per mode (mathtext allowed, e.g. ``r"$f = 1$"``).
    predicted_rate : ndarray, shape ``(K,)``
        ``chi_c* |lambda_f|``: each dashed line is ``A_f(l0) rate^(l - l0)``.
    floor : ndarray, shape ``(L,)``, optional
        Error floor (grey band): amplitudes below it are numerical noise.
    measured : (layers, mean, sem), optional
        Monte Carlo amplitudes ``(L', K)`` with standard errors, drawn as markers.
    anchor : array of int, shape ``(K,)``, optional
        Layer ``l0`` of each dashed line (default: the first layer).
    title, ylabel : str
        Decoration (mathtext allowed; ``mathtext_label`` converts plain notation).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes; ``figsize`` and ``dpi`` are then ignored.
    figsize, dpi
        Size of a new figure in inches, and its resolution.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn in (``ax``'s root figure when given).

    Notes
    -----
    docs/theory.md section 4: near the fixed point mode ``f`` shrinks by ``chi_c* |lambda_f|``.
    """
    fig, ax = _canvas(ax, figsize, dpi)
    lay = np.asarray(layers, dtype=np.float64)
    k_modes = amplitude.shape[1]
    styles = mode_styles(k_modes)
    positive = amplitude[amplitude > 0]
    lowest = float(positive.min()) if positive.size else 1e-16
    every = max(1, lay.size // 8)
    for k in range(k_modes):
        colour, marker = styles[k]["color"], styles[k]["marker"]
        amp = np.where(amplitude[:, k] > 0, amplitude[:, k], np.nan)
        ax.plot(
            lay,
            amp,
            color=colour,
            marker=marker,
            markevery=(k % every, every),
            markersize=4,
            linewidth=1.6,
            label=labels[k],
        )
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
                fmt=marker,
                markersize=3.5,
                markerfacecolor="none",
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
        handles.append(
            Line2D([], [], color="0.3", marker="o", markerfacecolor="none", linestyle="none")
        )
        names.append(r"Monte Carlo (mean $\pm$ s.e., $>$ 2 s.e.)")
    ax.legend(handles, names, fontsize=7, loc="lower left", ncol=2, framealpha=0.85)
    return fig


def eigenvalue_figure(
    values: Mapping[str, NDArray[np.float64]],
    *,
    title: str = "",
    ax: Axes | None = None,
    figsize: tuple[float, float] = (6.0, 4.2),
    dpi: float = 110.0,
) -> Figure:
    """Sorted ``|lambda_f|`` of several variance vectors (the paper's Fig. 4(b)).

    Parameters
    ----------
    values : mapping
        Name -> ``|lambda_f|`` in descending order; neighbouring entries get different
        colours and markers (``mode_styles``).
    title : str
        Title (mathtext allowed).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes; ``figsize`` and ``dpi`` are then ignored.
    figsize, dpi
        Size of a new figure in inches, and its resolution.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn in (``ax``'s root figure when given).

    Notes
    -----
    docs/theory.md section 4.
    """
    fig, ax = _canvas(ax, figsize, dpi)
    styles = mode_styles(len(values))
    for k, (name, vals) in enumerate(values.items()):
        ax.plot(
            np.arange(vals.size),
            vals,
            markersize=3,
            linewidth=1.2,
            label=name.upper(),
            **styles[k],
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
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (6.4, 4.2),
    dpi: float = 100.0,
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
        Legend text of the sampled histogram (mathtext allowed).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes; ``figsize`` and ``dpi`` are then ignored.
    figsize, dpi
        Size of a new figure in inches, and its resolution.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn in (``ax``'s root figure when given).

    Notes
    -----
    docs/theory.md section 5. When the spectrum spans more than two decades the horizontal axis is
    ``log10 x`` and both curves are densities per unit ``log10 x``; otherwise it is ``x``
    itself. An atom at 0 is stated in the title (it has no place on a log axis).
    """
    fig, ax = _canvas(ax, figsize, dpi)
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
            ax.axvline(where, color="C3", lw=1.5, label=f"atom: mass {m:.3g} at $x = {x:.4g}$")
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
    name = spec.activation.label.replace("$", r"\$")
    title = f"{name}, {spec.weights} weights, depth $L = {spec.depth}$"
    if zero > 0:
        title += f"; atom at $x = 0$ of mass {zero:.3g}"
    ax.set_title(title, fontsize=10)
    if np.isfinite(lo_q) and np.isfinite(hi_q) and wide:
        ax.axvspan(lo_q, hi_q, color="0.9", zorder=0, label=r"5%-95% quantiles of $x$")
    ax.legend(fontsize=8)
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: float | None = None) -> None:
    """Save ``fig`` to ``path`` (png, svg or pdf by suffix) with no timestamp in the file.

    The same figure always gives the same bytes: the metadata that records the date and the
    software version is dropped, and SVG element ids use a fixed salt. Fonts are embedded
    in PDF as TrueType (Type 42), not Type 3. These settings (``FIGURE_RC``) hold only
    while the file is written: the global ``matplotlib.rcParams`` are left as they were.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
    dpi : float, optional
        Resolution of a PNG in dots per inch; default: the figure's own ``fig.dpi`` (whatever
        ``savefig.dpi`` the user's matplotlibrc sets), so a PNG is ``figsize * dpi`` pixels.

    Raises
    ------
    MFTheoryError
        A suffix other than png, svg or pdf.
    OSError
        The file cannot be written. The figure is written to a temporary file beside ``path``
        and renamed into place when complete (``mftheory.files.atomic_write``): a failed
        or interrupted save leaves an existing file as it was.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _METADATA:
        raise MFTheoryError(f"cannot save a figure as {str(path)!r}: use .png, .svg or .pdf")
    rc: Any = dict(FIGURE_RC)  # matplotlib's stub wants literal keys
    with rc_context(rc), atomic_write(path, "wb") as fh:
        fig.savefig(
            fh,
            format=suffix[1:],
            metadata=_METADATA[suffix],
            dpi=fig.dpi if dpi is None else dpi,
        )
