"""Rendering of records: rich tables, CSV (row-wise or column-wise) and strict JSON text."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import numpy as np

from mftheory.serialize import jsonable

__all__ = [
    "Column",
    "ColumnArrays",
    "Records",
    "array_of",
    "csv_text",
    "format_log10",
    "render_table",
    "to_json",
    "write_csv",
    "write_json",
]

#: Points per block when CSV is written from ``ColumnArrays`` (bounds the memory the
#: text of one block takes).
_CSV_BLOCK_POINTS = 1 << 16
#: Characters that make csv.writer quote a field.
_CSV_SPECIAL = (",", '"', "\r", "\n")


@dataclass(frozen=True)
class Column:
    """One column of a table or CSV file: the record key, and the header a table shows."""

    key: str
    header: str = ""
    justify: Literal["left", "right"] = "right"
    wrap: bool = False  # True for prose; values are never wrapped or truncated

    @property
    def title(self) -> str:
        return self.header or self.key


@dataclass(frozen=True)
class Records:
    """Rows (dicts keyed by ``Column.key``) with their columns, for tables and CSV."""

    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]
    title: str | None = None


@dataclass(frozen=True)
class ColumnArrays:
    """Records stored column-wise, for CSV with many rows (a big grid in long format).

    Every array in ``data`` has the same shape; record ``k`` is element ``k`` of each array
    in C order. The arrays may be broadcast views (``np.broadcast_to``): a column that repeats
    along an axis is formatted once per distinct value, not once per record.
    """

    columns: Sequence[Column]
    data: Mapping[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        first = np.shape(self.data[self.columns[0].key])
        for col in self.columns:
            if np.shape(self.data[col.key]) != first:
                raise ValueError(f"column {col.key!r} does not have the shape {first}")
        return tuple(first)


def to_json(payload: Mapping[str, Any], indent: int | None = 2) -> str:
    """Strict JSON text (no NaN/Infinity tokens) of ``payload``."""
    return json.dumps(jsonable(payload), allow_nan=False, indent=indent)


def write_json(fh: TextIO, payload: Mapping[str, Any], indent: int | None = 2) -> None:
    """Write ``to_json(payload, indent)`` to ``fh``.

    With ``indent=None`` (one line, used for big grids) the object is converted and written
    one top-level field at a time, so that only one field's Python objects exist at once; the
    text is the same as ``to_json``'s.
    """
    if indent is not None:
        fh.write(to_json(payload, indent))
        return
    fh.write("{")
    for i, (key, value) in enumerate(payload.items()):
        item = json.dumps(jsonable(value), allow_nan=False)
        fh.write(f"{', ' if i else ''}{json.dumps(str(key))}: {item}")
    fh.write("}")


def _format_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.8g}"


def _cell(value: Any) -> str:
    """How a value looks in a rich table."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _format_float(float(value))
    if isinstance(value, (complex, np.complexfloating)):
        z = complex(value)
        if z.imag == 0:
            return _format_float(z.real)
        sign = "+" if z.imag >= 0 else "-"
        return f"{_format_float(z.real)}{sign}{_format_float(abs(z.imag))}i"
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [_cell(v) for v in value]
        return items[0] if len(items) == 1 else "(" + ", ".join(items) + ")"
    return str(value)


def _csv_cell(value: Any) -> str:
    """How a value looks in CSV: full precision; ``inf``/``-inf`` for infinities; empty for a
    missing value or NaN."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return "" if math.isnan(x) else repr(x)  # repr(inf) is "inf"
    if isinstance(value, (list, tuple, np.ndarray)):
        return " ".join(_csv_cell(v) for v in value)
    return str(value)


def array_of(values: Sequence[Any]) -> np.ndarray:
    """A column of a records table as an npz-friendly array (missing numbers as NaN)."""
    if values and all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=str)
    cleaned = [np.nan if v is None else v for v in values]
    try:
        return np.asarray(cleaned, dtype=np.float64)
    except (TypeError, ValueError):
        return np.asarray([_csv_cell(v) for v in values], dtype=str)


def render_table(records: Records) -> None:
    """A rich table on stdout (plain text when stdout is not a terminal or NO_COLOR is set).

    The title is printed above the table as is (one or more lines, never re-wrapped).
    """
    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=max(console.width, 200))
    if records.title:
        console.print(Text(records.title, style="bold"), soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    cells = [[_cell(row.get(col.key)) for col in records.columns] for row in records.rows]
    for i, col in enumerate(records.columns):
        widest = max([len(col.title), *(len(line[i]) for line in cells)])
        table.add_column(
            col.title,
            justify=col.justify,
            no_wrap=not col.wrap,
            min_width=None if col.wrap else widest,
            overflow="fold",
        )
    for line in cells:
        table.add_row(*line)
    needed = Measurement.get(console, console.options.update(max_width=10**4), table).minimum
    if needed > console.width:  # wider than the terminal: let lines wrap, never crop values
        console = Console(highlight=False, width=needed)
    console.print(table)


def csv_text(records: Records | ColumnArrays) -> str:
    """CSV text: a header of column keys, then one line per record."""
    buf = io.StringIO()
    write_csv(buf, records)
    return buf.getvalue()


def write_csv(fh: TextIO, records: Records | ColumnArrays) -> None:
    """Write CSV to ``fh``: a header of column keys, then one line per record.

    Numbers are written in full precision (``repr``), infinities as ``inf`` and ``-inf`` (a
    depth scale on the critical line is infinite, not missing: numpy, pandas and Python's
    ``float`` read these back), NaN and missing values as empty fields (pandas reads them as
    NaN). JSON has no infinity and writes ``null`` for both. ``ColumnArrays`` are
    written in blocks of rows, each column converted to text as a whole.
    """
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow([col.key for col in records.columns])
    if isinstance(records, Records):
        for row in records.rows:
            writer.writerow([_csv_cell(row.get(col.key)) for col in records.columns])
        return
    shape = records.shape
    arrays = [np.asarray(records.data[col.key]) for col in records.columns]
    if not shape:  # one record
        writer.writerow([_csv_cell(a.item()) for a in arrays])
        return
    if len(arrays) == 1:  # csv quotes a lone empty field: let it write every row
        for value in arrays[0].reshape(-1).tolist():
            writer.writerow([_csv_cell(value)])
        return
    per_row = math.prod(shape[1:])
    block = max(1, _CSV_BLOCK_POINTS // max(per_row, 1))
    for start in range(0, shape[0], block):
        columns = [_csv_strings(a[start : start + block]) for a in arrays]
        fh.write("\n".join(map(",".join, zip(*columns, strict=True))))
        fh.write("\n")


def _csv_strings(a: np.ndarray) -> list[str]:
    """The CSV fields of array ``a`` in C order, as ``_csv_cell`` writes them.

    Axes along which ``a`` is a broadcast view (stride 0) are formatted once and repeated.
    """
    index = tuple(
        slice(0, 1) if stride == 0 and n > 1 else slice(None)
        for stride, n in zip(a.strides, a.shape, strict=True)
    )
    base = a[index]
    flat = base.reshape(-1)
    kind = flat.dtype.kind
    if kind == "f":
        text = list(map(repr, flat.tolist()))
        for k in np.flatnonzero(np.isnan(flat)).tolist():
            text[k] = ""
    elif kind == "b":
        text = ["true" if v else "false" for v in flat.tolist()]
    elif kind in "iu":
        text = list(map(str, flat.tolist()))
    else:
        text = flat.tolist() if kind == "U" else [_csv_cell(v) for v in flat.tolist()]
        special = {v for v in set(text) if any(ch in v for ch in _CSV_SPECIAL)}
        if special:  # as csv.writer's QUOTE_MINIMAL quotes them
            text = ['"' + v.replace('"', '""') + '"' if v in special else v for v in text]
    if base.shape == a.shape:
        return text
    cells = np.empty(flat.size, dtype=object)
    cells[:] = text
    return np.broadcast_to(cells.reshape(base.shape), a.shape).reshape(-1).tolist()


def format_log10(value: float) -> str:
    """A number given by its log10, as text even beyond the float range (``1.23e-1792``)."""
    if value == -math.inf:
        return "0"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    if -300 < value < 300:
        return f"{10.0**value:.4g}"
    exp = math.floor(value)
    mant = 10.0 ** (value - exp)
    if mant >= 9.9995:
        mant, exp = 1.0, exp + 1
    return f"{mant:.3f}e{exp:+d}"
