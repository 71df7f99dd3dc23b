"""Paper-ready figures (issue 14): ``ax=``, size and resolution, TrueType fonts in PDF, mathtext
in titles and legends, distinct neighbouring modes, plain log depth ticks, rcParams untouched.

Rendered with the Agg/PDF backends into a tmpdir; no pyplot.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib import colors
from matplotlib.figure import Figure
from PIL import Image

from mftheory import fixed_point, jacobian_spectrum
from mftheory.plotting import (
    eigenvalue_figure,
    log_depth_axis,
    mathtext_label,
    mode_amplitude_figure,
    mode_styles,
    phase_diagram_figure,
    save_figure,
    spectrum_figure,
)


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _grid() -> Any:
    w, b = np.linspace(0.5, 3, 6), np.linspace(0, 1, 5)
    return fixed_point("relu", sigma_w2=w[None, :], sigma_b2=b[:, None])


def _modes(k: int = 4, layers: int = 12) -> dict[str, Any]:
    lay = np.arange(1, layers + 1)
    rates = np.linspace(0.9, 0.5, k)
    amp = rates[None, :] ** lay[:, None]
    labels = [rf"$f = {i}$, $|\lambda_f| = {r:.2f}$" for i, r in enumerate(rates)]
    return {"layers": lay, "amplitude": amp, "labels": labels, "predicted_rate": rates}


def _spectrum() -> Any:
    return jacobian_spectrum("tanh", sigma_w2=1.2, sigma_b2=0.05, depth=4)


MAKERS = {
    "phase_diagram": lambda **kw: phase_diagram_figure(_grid(), **kw),
    "mode_amplitude": lambda **kw: mode_amplitude_figure(**_modes(), **kw),
    "eigenvalue": lambda **kw: eigenvalue_figure(
        {"gs0": np.linspace(1, 0, 8), "gs1": np.linspace(0.9, 0, 8)}, **kw
    ),
    "spectrum": lambda **kw: spectrum_figure(_spectrum(), **kw),
}


@pytest.mark.parametrize("name", MAKERS)
def test_pdf_embeds_truetype_fonts_not_type3(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.pdf"
    save_figure(MAKERS[name](), path)
    data = path.read_bytes()
    assert b"/FontFile2" in data  # an embedded TrueType font program (Type 42)
    assert b"/Type3" not in data


@pytest.mark.parametrize("name", MAKERS)
def test_png_is_figsize_times_dpi(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    save_figure(MAKERS[name](figsize=(3.0, 2.0), dpi=40.0), path)
    assert _size(path) == (120, 80)


def test_save_figure_ignores_a_user_savefig_dpi(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    with matplotlib.rc_context({"savefig.dpi": 300}):
        save_figure(MAKERS["eigenvalue"](figsize=(2.0, 1.5), dpi=50.0), path)
    assert _size(path) == (100, 75)
    save_figure(MAKERS["eigenvalue"](figsize=(2.0, 1.5), dpi=50.0), path, dpi=100)
    assert _size(path) == (200, 150)


@pytest.mark.parametrize("name", MAKERS)
def test_ax_draws_into_the_given_axes(name: str) -> None:
    fig = Figure(figsize=(8, 3))
    left, right = fig.subplots(1, 2)
    returned = MAKERS[name](ax=right)
    assert returned is fig
    assert right.has_data() and not left.has_data()


def test_ax_in_a_subfigure_returns_the_root_figure() -> None:
    fig = Figure(figsize=(8, 3))
    sub = fig.subfigures(1, 2)[1]
    ax = sub.add_subplot()
    assert MAKERS["mode_amplitude"](ax=ax) is fig
    assert ax.has_data()


def test_global_rcparams_are_unchanged(tmp_path: Path) -> None:
    before = dict(matplotlib.rcParams)
    for name, make in MAKERS.items():
        for suffix in (".pdf", ".svg", ".png"):
            save_figure(make(), tmp_path / f"{name}{suffix}")
    after = dict(matplotlib.rcParams)
    assert after.keys() == before.keys()
    changed = [k for k in before if before[k] != after[k] and k != "backend"]
    assert changed == []
    assert matplotlib.rcParams["pdf.fonttype"] == before["pdf.fonttype"]


def _texts(fig: Figure) -> list[str]:
    out = []
    for ax in fig.axes:
        out.append(ax.get_title())
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return out


def test_titles_and_legends_use_mathtext() -> None:
    fig = MAKERS["mode_amplitude"](title=mathtext_label("tanh, sigma_w^2 = 1.5, chi_1 = 1"))
    texts = _texts(fig)
    assert r"$\sigma_w^2$" in texts[0] and r"$\chi_1$" in texts[0]
    legend = texts[1:]
    assert all("$" in t for t in legend), legend
    assert any(r"\chi_c^*" in t for t in legend)
    assert any(r"\lambda_f" in t for t in legend)
    phase = _texts(MAKERS["phase_diagram"]())
    assert any(r"$\chi_1 = 1$" in t for t in phase), phase
    spec = _texts(MAKERS["spectrum"]())
    assert "$L = 4$" in spec[0]


def test_mathtext_label() -> None:
    text = "erf, sigma_w^2 = 2 (critical), sigma_b^2 = 0.1, chi_c*|lambda_f|, xi_c, q* = 1"
    assert mathtext_label(text) == (
        r"erf, $\sigma_w^2$ = 2 (critical), $\sigma_b^2$ = 0.1, $\chi_c^*|\lambda_f|$,"
        r" $\xi_c$, $q^*$ = 1"
    )
    assert mathtext_label("x*sigmoid(x) costs $5") == r"x*sigmoid(x) costs \$5"
    assert mathtext_label("no symbols here: chaotic") == "no symbols here: chaotic"
    assert mathtext_label("Fig. 4(b): |lambda_f| of GS0") == r"Fig. 4(b): $|\lambda_f|$ of GS0"


def _line_style(line: Any) -> tuple[tuple[float, ...], str]:
    return colors.to_rgba(line.get_color()), str(line.get_marker())


def test_neighbouring_modes_differ_in_colour_and_marker() -> None:
    fig = MAKERS["mode_amplitude"]()
    solid = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
    assert len(solid) == 4
    for a, b in pairwise(solid):
        (ca, ma), (cb, mb) = _line_style(a), _line_style(b)
        assert ma != mb and ma not in ("None", "", " ")
        # clearly different colours, not neighbours on a continuous colormap
        assert np.abs(np.subtract(ca[:3], cb[:3])).max() > 0.25
    eig = [ln for ln in MAKERS["eigenvalue"]().axes[0].get_lines()]
    assert _line_style(eig[0]) != _line_style(eig[1])
    assert eig[0].get_marker() != eig[1].get_marker()


def test_mode_styles_pairs_are_distinct() -> None:
    styles = mode_styles(70)
    pairs = {(colors.to_hex(s["color"]), s["marker"]) for s in styles}
    assert len(pairs) == 70
    for a, b in pairwise(styles):
        assert a["marker"] != b["marker"] and colors.to_hex(a["color"]) != colors.to_hex(b["color"])


def _tick_labels(fig: Figure, axis: Any) -> list[str]:
    lo, hi = sorted(axis.get_view_interval())
    return [
        axis.get_major_formatter()(v)
        for v in axis.get_major_locator()()
        if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)
    ]


def test_log_depth_axis_has_plain_labels() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([1, 1000], [0, 1])
    ax.set_xscale("log")
    ax.set_xlim(1, 1000)
    log_depth_axis(ax.xaxis)
    assert _tick_labels(fig, ax.xaxis) == ["1", "10", "100", "1000"]
    # a short range: 1, 2, 5 per decade, not only the powers of ten
    ax.set_xlim(3, 60)
    log_depth_axis(ax.xaxis)
    assert _tick_labels(fig, ax.xaxis) == ["5", "10", "20", "50"]
    # the plotted depths themselves
    log_depth_axis(ax.xaxis, [4, 8, 16, 32])
    assert _tick_labels(fig, ax.xaxis) == ["4", "8", "16", "32"]
