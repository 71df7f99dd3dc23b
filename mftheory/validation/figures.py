"""Figures of the validation experiments, from a summary and the cells' results.

matplotlib's object API only (no pyplot state), saved by ``mftheory.plotting.save_figure``.

- ``trainability_figure``: the paper's Fig. 2: final training accuracy over
  ``(sigma_w2, depth)`` with the predicted boundary ``6 xi_c`` and the critical ``sigma_w2``
  drawn on top; cells where measurement and prediction disagree are crossed.
- ``curves_figure``: accuracy against steps or epochs, one colour per run (Fig. 1, 5).
- ``depth_figure``: test accuracy against depth, one line per variance vector (Fig. 3/4).
- ``ultra_deep_figure``: steps to a training accuracy against depth per weight scheme, and
  the learning curves of the selected learning rates (Fig. 1).

Notes
-----
docs/theory.md section 5 (the ``6 xi_c`` rule) and section 7 (the paper's figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps, patheffects
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

__all__ = ["curves_figure", "depth_figure", "trainability_figure", "ultra_deep_figure"]


def _edges(values: Sequence[float], log: bool) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints when ``log``)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] / 1.5, v[0] * 1.5]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    t = np.log(v) if log else v
    mid = (t[1:] + t[:-1]) / 2
    e = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return np.exp(e) if log else e


def trainability_figure(summary: Mapping[str, Any]) -> Figure:
    """Heatmap of final training accuracy with the ``6 xi_c`` curve (the paper's Fig. 2).

    With several seeds per ``(sigma_w2, depth)`` the colour is their mean accuracy and the
    text in the square says how many of them trained (``2/3``). A ``sigma_w2`` axis that
    spans more than a factor 8 is logarithmic.
    """
    rows = summary["cells"]
    w2 = sorted({r["sigma_w2"] for r in rows})
    depths = sorted({r["depth"] for r in rows})
    total = np.zeros((len(depths), len(w2)))
    count = np.zeros((len(depths), len(w2)), dtype=int)
    trained = np.zeros((len(depths), len(w2)), dtype=int)
    for r in rows:
        value = r["train_accuracy"]
        i, j = depths.index(r["depth"]), w2.index(r["sigma_w2"])
        total[i, j] += 0.0 if value is None else value
        count[i, j] += 1
        trained[i, j] += bool(r["trained"])
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    log_depth = min(depths) > 0 and len(depths) > 2 and max(depths) / min(depths) > 8
    log_w2 = min(w2) > 0 and len(w2) > 1 and max(w2) / min(w2) > 8
    mesh = ax.pcolormesh(
        _edges(w2, log_w2),
        _edges(depths, log_depth),
        acc,
        cmap=colormaps["viridis"],
        vmin=0.0,
        vmax=1.0,
    )
    fig.colorbar(mesh, ax=ax, label="training accuracy")
    curve = summary["curve"]
    y = np.array([np.nan if v is None else v for v in curve["six_xi_c"]], dtype=float)
    outline = [patheffects.withStroke(linewidth=3.5, foreground="black")]
    ax.plot(
        curve["sigma_w2"],
        y,
        color="white",
        lw=2,
        path_effects=outline,
        label=r"$6\,\xi_c$ (predicted limit)",
    )
    ax.axvline(
        summary["critical_sigma_w2"],
        color="white",
        ls=":",
        lw=1.5,
        path_effects=outline,
        label=r"critical $\sigma_w^2$",
    )
    if count.max(initial=0) > 1:
        for i, d in enumerate(depths):
            for j, w in enumerate(w2):
                if count[i, j]:
                    ax.annotate(
                        f"{trained[i, j]}/{count[i, j]}",
                        (w, d),
                        xytext=(0, 8),
                        textcoords="offset points",
                        ha="center",
                        color="white",
                        fontsize="x-small",
                        path_effects=outline,
                    )
    bad = [r for r in rows if not r["agrees"]]
    if bad:
        ax.plot(
            [r["sigma_w2"] for r in bad],
            [r["depth"] for r in bad],
            "x",
            color="red",
            ms=8,
            mew=2,
            label="disagrees (any seed)" if count.max(initial=0) > 1 else "disagrees",
        )
    if log_depth:
        ax.set_yscale("log")
    if log_w2:
        ax.set_xscale("log")
        ax.set_xticks(w2, [f"{w:g}" for w in w2])
        ew = _edges(w2, log_w2)
        ax.set_xlim(ew[0], ew[-1])
    e = _edges(depths, log_depth)
    ax.set_ylim(e[0], e[-1])
    ax.set_yticks(depths, [str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("depth (body convolutions)")
    ax.set_title(
        f"tanh CNN, $\\sigma_b^2$ = {summary['sigma_b2']:g}: "
        f"agreement {100 * summary['agreement']:.0f}%"
    )
    fig.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    return fig


def curves_figure(
    results: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    *,
    axis: str = "step",
    title: str = "",
) -> Figure:
    """Training (solid) and test (dashed) accuracy against ``axis`` ("step" or "epoch")."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["tab10"]
    for i, (r, label) in enumerate(zip(results, labels, strict=True)):
        c = r["curve"]
        x = np.asarray(c[axis], dtype=float)
        for name, ls, suffix in (("train_accuracy", "-", "train"), ("test_accuracy", "--", "test")):
            y = np.array([np.nan if v is None else v for v in c[name]], dtype=float)
            ax.plot(x, y, ls=ls, color=cmap(i % 10), label=f"{label} ({suffix})")
        if r.get("diverged"):
            ax.annotate("diverged", (x[-1], 0.0), color=cmap(i % 10), fontsize="small")
    ax.set_ylim(0, 1)
    ax.set_xlabel("training steps" if axis == "step" else "epochs")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    return fig


def depth_figure(summary: Mapping[str, Any], *, title: str = "") -> Figure:
    """Test accuracy against depth, one line per variance vector (Fig. 3/4)."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    from mftheory.plotting import log_depth_axis, mode_styles

    presets = list(summary["modes_alive"])
    styles = mode_styles(len(presets))  # neighbouring presets differ in colour and marker
    for i, p in enumerate(presets):
        rows = sorted((r for r in summary["cells"] if r["v"] == p), key=lambda r: r["depth"])
        acc = [np.nan if r["test_accuracy"] is None else r["test_accuracy"] for r in rows]
        share = summary["modes_alive"][p]
        ax.plot(
            [r["depth"] for r in rows],
            acc,
            linestyle="-",
            label=f"{p.upper()} ({100 * share:.0f}% modes $|\\lambda_f| \\geq 0.5$)",
            **styles[i],
        )
    ax.set_xscale("log")
    log_depth_axis(ax.xaxis, [r["depth"] for r in summary["cells"]])
    ax.set_ylim(0, 1)
    ax.set_xlabel("depth (body convolutions)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _shown_run(
    entry: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> Mapping[str, Any] | None:
    """The run whose curve stands for a (depth, scheme): the selected rate of the first
    threshold reached (in ``names`` order), else the rate with the best final accuracy."""
    mine = [
        r
        for r in runs
        if r["config"]["depth"] == entry["depth"] and r["config"]["scheme"] == entry["scheme"]
    ]
    for n in names:
        lr = entry.get(f"best_lr_{n}")
        if lr is not None:
            return next((r for r in mine if float(r["config"]["lr"]) == lr), None)
    return max(mine, key=lambda r: r["final"].get("train_accuracy") or 0.0, default=None)


_SHORT = {"delta-orthogonal": "D-O", "gaussian": "Gauss."}


def ultra_deep_figure(
    summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]], *, title: str = ""
) -> Figure:
    """Left: steps to each threshold against depth (log-log), per scheme, at the selected
    learning rate; x marks a depth where no rate reached it. Right: training accuracy
    against steps of the selected rates, one colour per depth (solid Delta-Orthogonal,
    dashed Gaussian)."""
    from mftheory.plotting import log_depth_axis

    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    names = list(summary["thresholds"])
    table = summary["table"]
    schemes = list(dict.fromkeys(e["scheme"] for e in table))
    depths = sorted({e["depth"] for e in table})
    cmap = colormaps["tab10"]
    budget = max((float(r["curve"]["step"][-1]) for r in results), default=1.0)
    for i, sc in enumerate(schemes):
        rows = [e for e in table if e["scheme"] == sc]
        for j, n in enumerate(names):
            thr = summary["thresholds"][n]
            hit = [e for e in rows if e[f"best_steps_{n}"] is not None]
            miss = [e["depth"] for e in rows if e[f"best_steps_{n}"] is None]
            style = {"color": cmap(i), "ls": "-" if j == 0 else ":", "marker": "o"}
            left.plot(
                [e["depth"] for e in hit],
                [e[f"best_steps_{n}"] for e in hit],
                label=f"{sc}, accuracy {thr:.2f}",
                **style,
            )
            if miss:
                left.plot(miss, [budget * 1.15] * len(miss), "x", color=cmap(i), ms=8)
    left.axhline(budget, color="grey", lw=0.8, ls="--", label=f"budget ({budget:.0f} steps)")
    left.set_xscale("log")
    left.set_yscale("log")
    log_depth_axis(left.xaxis, depths)
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.yaxis.set_minor_formatter(ScalarFormatter())
    left.set_xlabel("depth (body convolutions)")
    left.set_ylabel("steps to training accuracy (x: not reached)")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize="small")
    shades = colormaps["viridis"]
    for e in table:
        r = _shown_run(e, results, names)
        if r is None:
            continue
        k = depths.index(e["depth"]) / max(1, len(depths) - 1)
        y = [np.nan if v is None else v for v in r["curve"]["train_accuracy"]]
        lr = r["config"]["lr"]
        right.plot(
            r["curve"]["step"],
            y,
            color=shades(0.9 * k),
            ls="-" if e["scheme"] == "delta-orthogonal" else "--",
            label=f"{_SHORT.get(e['scheme'], e['scheme'])} {e['depth']}, lr {lr:.2g}",
        )
    for j, n in enumerate(names):
        right.axhline(summary["thresholds"][n], color="grey", lw=0.8, ls="-" if j == 0 else ":")
    right.set_ylim(0, 1)
    right.set_xlabel("training steps")
    right.set_ylabel("training accuracy")
    right.grid(alpha=0.3)
    right.legend(
        fontsize="x-small",
        ncol=2,
        loc="upper left",
        title="scheme depth, lr",
        title_fontsize="x-small",
    )
    fig.suptitle(title)
    return fig
