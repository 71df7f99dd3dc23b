"""The result rows and the one place that prints them (rich, plain text or Markdown)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["AccuracyCheck", "Row", "print_report", "render", "save_json"]


@dataclass
class Row:
    """One line of the table: an operation at one size.

    ``seconds`` is the median of the repeats (``None`` for a one-off measurement such as the
    memory runs, whose single wall time is ``cold``). ``ref_seconds_per_point`` is the slow
    path's mean time per point on ``ref_points`` random points of the same inputs, measured in
    the same run; the speed-up is that times ``points`` over ``seconds``.
    """

    case: str
    operation: str
    size: str
    points: int
    cold: float | None = None
    seconds: float | None = None
    times: list[float] = field(default_factory=list)
    ref_seconds_per_point: float | None = None
    ref_points: int = 0
    check: str = ""
    target: str = ""
    met: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def points_per_second(self) -> float | None:
        if self.seconds is None or not self.seconds > 0 or self.points <= 0:
            return None
        return self.points / self.seconds

    @property
    def speedup(self) -> float | None:
        t = self.seconds if self.seconds is not None else self.cold
        if self.ref_seconds_per_point is None or t is None or not t > 0:
            return None
        return self.ref_seconds_per_point * self.points / t


@dataclass
class AccuracyCheck:
    """Largest relative error per quantity of one group of points against the slow path."""

    case: str
    group: str
    points: int
    max_rel: dict[str, float]
    phase_mismatches: int = 0
    note: str = ""
    worst_at: dict[str, Any] = field(default_factory=dict)


def _sig(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits}g}"
    return f"{x:.{digits - 1}e}".replace("e-0", "e-").replace("e+0", "e")


def _rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _speedup(row: Row) -> str:
    s = row.speedup
    if s is None:
        return "-"
    text = f"{s:,.0f}x" if s >= 100 else f"{s:.3g}x"
    return f"{text} ({row.ref_points} pts)"


def _err(x: float) -> str:
    if math.isnan(x):
        return "-"
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf"
    return f"{x:.1e}"


COLUMNS = (
    "operation",
    "size",
    "cold (s)",
    "median (s)",
    "points/s",
    "vs slow path",
    "check",
    "target",
    "met",
)


def _cells(row: Row) -> list[str]:
    return [
        row.operation,
        row.size,
        _sig(row.cold),
        _sig(row.seconds),
        _rate(row.points_per_second),
        _speedup(row),
        row.check,
        row.target,
        row.met,
    ]


def _accuracy_table(checks: Sequence[AccuracyCheck]) -> tuple[list[str], list[list[str]]]:
    names: list[str] = []
    for c in checks:
        names += [k for k in c.max_rel if k not in names]
    header = ["case", "points", "n", *names, "phase mismatches"]
    body = [
        [
            c.case,
            c.group + (f" ({c.note})" if c.note else ""),
            str(c.points),
            *[_err(c.max_rel.get(k, math.nan)) for k in names],
            str(c.phase_mismatches),
        ]
        for c in checks
    ]
    return header, body


def _plain(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    rows = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join([line.rstrip(), rule, *rows])


def _markdown(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
    return "\n".join(lines)


def _machine_lines(info: dict[str, Any]) -> list[str]:
    mem = info.get("memory_gib")
    return [
        f"machine: {info['cpu']}, {info['cpus_usable']} usable of {info['cpu_count']} CPUs"
        + (f", {mem} GiB" if mem is not None else ""),
        f"system:  {info['uname']}",
        f"python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"mftheory {info['mftheory']}" + (f" ({info['commit']})" if info.get("commit") else ""),
    ]


def render(
    info: dict[str, Any],
    settings: dict[str, Any],
    rows: Sequence[Row],
    checks: Sequence[AccuracyCheck],
    style: str,
) -> str:
    """The whole report as ``"plain"`` text or ``"markdown"``."""
    table = _markdown if style == "markdown" else _plain
    head = _machine_lines(info)
    run = ", ".join(f"{k}={v}" for k, v in settings.items())
    parts = []
    if style == "markdown":
        parts.append("\n".join(f"- {line}" for line in [*head, f"run: {run}"]))
    else:
        parts.append("\n".join([*head, f"run: {run}"]))
    parts.append(table(list(COLUMNS), [_cells(r) for r in rows]))
    if checks:
        header, body = _accuracy_table(checks)
        title = "Largest relative error against the slow path (mftheory.reference)"
        parts.append("**" + title + "**" if style == "markdown" else title + ":")
        parts.append(table(header, body))
    return "\n\n".join(parts) + "\n"


def _print_rich(
    info: dict[str, Any],
    settings: dict[str, Any],
    rows: Sequence[Row],
    checks: Sequence[AccuracyCheck],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 250)  # no wrapping in a pipe
    for line in _machine_lines(info):
        console.print(line, highlight=False, markup=False)
    console.print("run: " + ", ".join(f"{k}={v}" for k, v in settings.items()), markup=False)
    table = Table(title="mftheory benchmarks", title_justify="left")
    for name in COLUMNS:
        right = name in {"cold (s)", "median (s)", "points/s", "vs slow path"}
        table.add_column(name, justify="right" if right else "left", overflow="fold")
    for r in rows:
        table.add_row(*_cells(r))
    console.print(table)
    if checks:
        header, body = _accuracy_table(checks)
        acc = Table(
            title="Largest relative error against the slow path (mftheory.reference)",
            title_justify="left",
        )
        for name in header:
            acc.add_column(name, justify="left" if name in {"case", "points"} else "right")
        for cells in body:
            acc.add_row(*cells)
        console.print(acc)


def print_report(
    info: dict[str, Any],
    settings: dict[str, Any],
    rows: Sequence[Row],
    checks: Sequence[AccuracyCheck],
    style: str = "auto",
    stream: TextIO | None = None,
) -> None:
    """Print the report: ``style`` is ``"auto"`` (rich on a terminal, else plain),
    ``"rich"``, ``"plain"`` or ``"markdown"``."""
    out = stream or sys.stdout
    if style == "auto":
        style = "rich" if out.isatty() else "plain"
    if style == "rich":
        _print_rich(info, settings, rows, checks)
    else:
        out.write(render(info, settings, rows, checks, style))
        out.flush()


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def save_json(
    path: Path,
    info: dict[str, Any],
    settings: dict[str, Any],
    rows: Sequence[Row],
    checks: Sequence[AccuracyCheck],
) -> None:
    """Write everything measured, one object per row, to ``path``."""
    data = {
        "machine": info,
        "settings": settings,
        "rows": [
            {**asdict(r), "points_per_second": r.points_per_second, "speedup": r.speedup}
            for r in rows
        ],
        "accuracy": [asdict(c) for c in checks],
    }
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n")
