"""Write what a validation sweep found: ``summary.json``, the figure and ``report.md``.

Folder layout (``out``)::

    cells/<key>.json     one result per cell (written by the runner, read back on resume)
    summary.json         the summary, the settings, versions and the command
    <experiment>.png     the figure
    report.md            a short markdown report that embeds the figure

Every file is written atomically (``mftheory.files.atomic_write``): an interrupted run
leaves the previous one as it was.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mftheory import __version__
from mftheory.files import atomic_write
from mftheory.serialize import jsonable
from mftheory.validation.experiments import Plan

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AGREEMENT_COLUMNS", "agreement_lines", "figure_for", "markdown_report", "write_outputs"]

_TITLES = {
    "trainability": "Trainability against the predicted depth limit 6 xi_c (paper Fig. 2)",
    "learning-speed": "Learning speed at criticality: Gaussian against orthogonal (Fig. 5)",
    "ultra-deep": "Ultra-deep Delta-Orthogonal CNNs at criticality (Fig. 1)",
    "spatial-modes": "Spatially non-uniform variance vectors GS0..GS4 (Fig. 3/4)",
}


def figure_for(
    plan: Plan, results: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]
) -> Figure | None:
    """The experiment's figure (a matplotlib Figure), or None when no cell finished."""
    from mftheory.validation.figures import (
        curves_figure,
        depth_figure,
        trainability_figure,
        ultra_deep_figure,
    )

    done = [r for r in results if r.get("status") == "done"]
    if not done:
        return None
    exp = plan.experiment
    if exp == "trainability":
        return trainability_figure(summary)
    if exp == "spatial-modes":
        return depth_figure(summary, title=_TITLES[exp])
    if exp == "learning-speed":
        labels = [f"{r['config']['scheme']}, depth {r['config']['depth']}" for r in done]
        return curves_figure(done, labels, axis="step", title=_TITLES[exp])
    return ultra_deep_figure(summary, done, title=_TITLES[exp])


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_COLUMNS = {
    "trainability": (
        "depth",
        "sigma_w2",
        "replicate",
        "six_xi_c",
        "train_accuracy",
        "test_accuracy",
        "trained",
        "predicted_trainable",
        "agrees",
        "stopped_at_step",
    ),
    "learning-speed": (
        "scheme",
        "depth",
        "train_accuracy",
        "test_accuracy",
        "steps_to_threshold",
        "epochs_to_threshold",
    ),
    "ultra-deep": (
        "depth",
        "scheme",
        "lr",
        "train_accuracy",
        "test_accuracy",
        "steps_to_threshold",
        "epochs_to_threshold",
        "diverged",
        "wall_time_s",
    ),
    "spatial-modes": ("v", "modes_alive", "depth", "train_accuracy", "test_accuracy"),
}


def columns(experiment: str) -> tuple[str, ...]:
    """The per-cell fields the report and the CLI table show for ``experiment``."""
    return _COLUMNS[experiment]


def _lr_table(summary: Mapping[str, Any]) -> list[str]:
    """ultra-deep: the selected rate and its count per depth x scheme, and the verdict."""
    names = list(summary["thresholds"])
    head = " | ".join(f"steps to {summary['thresholds'][n]:.3g} (lr)" for n in names)
    lines = [f"| depth | scheme | {head} |", "|---|---|" + "---|" * len(names)]
    for e in summary["table"]:
        parts = []
        for n in names:
            steps, lr = e[f"best_steps_{n}"], e[f"best_lr_{n}"]
            parts.append("not reached" if steps is None else f"{steps:.0f} ({lr:g})")
        lines.append(f"| {e['depth']} | {e['scheme']} | " + " | ".join(parts) + " |")
    return [*lines, "", *(f"- {v}" for v in summary["verdict"]), ""]


AGREEMENT_COLUMNS: tuple[str, ...] = (
    "group",
    "cells",
    "agreeing",
    "agreement",
    "ci95_low",
    "ci95_high",
    "all_train_baseline",
    "none_train_baseline",
)
"""The columns of the trainability agreement table (``agreement_groups``' fields)."""


def agreement_lines(groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """The markdown table of agreement per side and prediction, with intervals and baselines."""
    lines = [
        "Agreement of trained with `depth < 6 xi_c` per group of cells; 95% interval: Wilson"
        " score interval, cells counted as independent trials; baselines: the agreement of"
        ' predicting "every network trains" and "no network trains" on the same cells.',
        "",
        "| " + " | ".join(AGREEMENT_COLUMNS) + " |",
        "|" + "---|" * len(AGREEMENT_COLUMNS),
    ]
    for g in groups:
        lines.append("| " + " | ".join(_fmt(g.get(c)) for c in AGREEMENT_COLUMNS) + " |")
    return lines


def markdown_report(
    plan: Plan, summary: Mapping[str, Any], meta: Mapping[str, Any], figure: str | None
) -> str:
    """The text of ``report.md``."""
    s = plan.settings
    lines = [f"# {_TITLES[plan.experiment]}", ""]
    if summary.get("notice"):
        lines += [f"> **{summary['notice']}**", ""]
    lines += [
        f"- command: `{meta['command_line']}`",
        f"- finished: {meta['finished_at']}; mftheory {__version__}, torch"
        f" {meta.get('torch_version', '?')}, device {meta.get('device', '?')}",
        f"- cells: {len(summary['cells'])} finished, {summary['failed']} failed;"
        f" training time {summary['wall_time_s']:.1f} s (sum over cells)",
        f"- data: {meta.get('dataset', s['dataset'])}",
        f"- network: tanh CNN, 3 stem convolutions + depth x 3x3 convolutions,"
        f" {s['channels'] if s['channels'] is not None else '256/128'} channels;"
        f" sigma_b2 = {s['sigma_b2']:g}",
        f"- training: {s['optimizer']} lr "
        + (", ".join(f"{x:g}" for x in s["lrs"]) if "lrs" in s else f"{s['lr']:g}")
        + (f", momentum {s['momentum']:g}" if s["optimizer"] == "sgd" else "")
        + f", batch {s['batch_size']}, {s['steps']} steps, constant learning rate;"
        f" seed {s['seed']}" + (f", {s['seeds']} seeds per cell" if "seeds" in s else ""),
        f"- trained means training accuracy >= {summary['threshold']:.3f}"
        + (
            " (a cell stops at the first evaluation that reaches it)"
            if s.get("stop_at") is not None
            else ""
        ),
        "",
        f"**{summary['headline']}**",
        "",
    ]
    if figure:
        lines += [f"![{plan.experiment}]({figure})", ""]
    if "table" in summary:
        lines += _lr_table(summary)
    if summary.get("agreement_groups"):
        lines += [*agreement_lines(summary["agreement_groups"]), ""]
    cols = columns(plan.experiment)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for row in summary["cells"]:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(
    plan: Plan,
    results: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    out: Path,
    command: str,
    *,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
) -> dict[str, Any]:
    """Write ``summary.json``, the figure and ``report.md`` into ``out``; return the document.

    ``figsize`` (inches) and ``dpi`` size the PNG figure (default: the figure's own).

    The document is ``summary.json``'s content: ``mftheory_version``, ``command_line``,
    ``finished_at``, ``platform``, ``device``, ``torch_version``, ``settings`` (the plan's,
    the numerical settings of every cell included) and ``summary``.
    """
    from mftheory.plotting import save_figure

    done = [r for r in results if r.get("status") == "done"]
    meta: dict[str, Any] = {
        "command_line": command,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
    }
    if done:
        meta |= {
            "device": done[0].get("device"),
            "torch_version": done[0].get("torch_version"),
            "dataset": done[0]["dataset"].get("source"),
        }
    fig = figure_for(plan, results, summary)
    figure_name = None
    if fig is not None:
        figure_name = f"{plan.experiment}.png"
        if figsize is not None:
            fig.set_size_inches(*figsize)
        if dpi is not None:
            fig.set_dpi(dpi)
        save_figure(fig, out / figure_name)
    with atomic_write(out / "report.md", "w") as fh:  # complete or untouched, even on Ctrl-C
        fh.write(markdown_report(plan, summary, meta, figure_name))
    document = {"mftheory_version": __version__, **meta, "settings": plan.settings}
    document |= {"summary": summary, "figure": figure_name}
    document = jsonable(document)
    with atomic_write(out / "summary.json", "w") as fh:
        fh.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    return dict(document)
