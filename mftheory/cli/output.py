"""The one place that writes results: rich tables, strict JSON, CSV, npz and figures.

A command builds a :class:`Report` (the JSON object, the records its table and CSV show, and
optionally arrays for ``.npz`` and a figure maker) and hands it to :func:`emit`. Data goes to
stdout or to the ``-o`` file; messages go to stderr through :class:`Messages`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import numpy as np

from mftheory._version import __version__
from mftheory.cli.options import OutputFormat
from mftheory.errors import MFTheoryError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

    from mftheory.activations.builtins import Activation

__all__ = [
    "DATA_SUFFIXES",
    "FIGURE_SUFFIXES",
    "PROGRESS_NOTE_POINTS",
    "Column",
    "ColumnArrays",
    "Messages",
    "ProgressCallback",
    "Records",
    "Report",
    "activation_fields",
    "check_output_path",
    "csv_text",
    "emit",
    "jsonable",
    "scalar",
    "settings_of",
    "to_json",
    "write_csv",
    "write_json",
]

DATA_SUFFIXES = (".json", ".csv", ".npz")
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")

#: ``progress(done, total)``: called by a long computation after each chunk of its work.
ProgressCallback = Callable[[int, int], None]

#: Above this many points a computation without a progress bar (stderr not a terminal) says
#: on stderr when it starts and when it ends.
PROGRESS_NOTE_POINTS = 1_000_000

#: Points per block when CSV is written from :class:`ColumnArrays` (bounds the memory the
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
    """Rows (dicts keyed by :attr:`Column.key`) with their columns, for tables and CSV."""

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


@dataclass
class Report:
    """Everything a command can output.

    Attributes
    ----------
    command : str
        The command's name, recorded in the JSON object.
    payload : dict
        The fields of the JSON object after ``version``, ``command`` and ``settings`` (see
        :meth:`document`). May hold numpy values and non-finite floats; they are converted on
        output.
    settings : mapping
        The numerical settings used (quadrature, solver options).
    table : Records
        What ``--format table`` shows.
    csv : Records, ColumnArrays or None
        What ``--format csv`` writes (machine-readable keys as headers); defaults to ``table``.
    arrays : mapping or None
        Arrays for ``-o file.npz``; defaults to the CSV columns. The JSON payload without these
        keys is stored beside them as the string array ``meta``.
    figure : callable or None
        Makes the figure for ``-o file.png|svg|pdf``; ``None`` where the command has none.
    json_indent : int or None
        Indentation of the JSON text (``None``: one line, for big grids).
    """

    command: str
    payload: dict[str, Any]
    settings: Mapping[str, Any]
    table: Records
    csv: Records | ColumnArrays | None = None
    arrays: Mapping[str, Any] | None = None
    figure: Callable[[], Figure] | None = None
    json_indent: int | None = 2

    def document(self) -> dict[str, Any]:
        """The JSON object: version, command, settings, then the payload."""
        return {
            "version": __version__,
            "command": self.command,
            "settings": dict(self.settings),
            **self.payload,
        }


class Messages:
    """Notes and warnings on stderr (rich, so NO_COLOR is honoured); silent with ``--quiet``."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._console

    def status(self, text: str) -> AbstractContextManager[Any]:
        """A spinner with ``text`` while a block runs, only on an interactive stderr."""
        if self.quiet or not self.console.is_terminal:
            return nullcontext()
        return self.console.status(text)

    @contextmanager
    def progress(self, text: str, *, points: int) -> Iterator[ProgressCallback]:
        """A progress bar on stderr while a block runs; yields its ``progress(done, total)``.

        The bar (with a spinner and the elapsed time) shows only on an interactive stderr and
        without ``--quiet``, and disappears when the block ends. Otherwise the callback does
        nothing; a computation of more than :data:`PROGRESS_NOTE_POINTS` points then notes on
        stderr when it starts and when it ends (unless ``--quiet``), so that a log shows what
        the wait was for.
        """
        if self.quiet:
            yield _ignore_progress
            return
        if not self.console.is_terminal:
            if points <= PROGRESS_NOTE_POINTS:
                yield _ignore_progress
                return
            self.note(f"{text} ...")
            start = time.perf_counter()
            yield _ignore_progress
            self.note(f"{text}: done in {time.perf_counter() - start:.1f} s")
            return
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        ) as bar:
            task = bar.add_task(text, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            yield update

    def note(self, text: str) -> None:
        """An informational line (suppressed by ``--quiet``)."""
        if not self.quiet:
            from rich.text import Text

            self.console.print(Text(text, style="dim"))

    def warn(self, text: str) -> None:
        """Something the user should know about the result (suppressed by ``--quiet``)."""
        if not self.quiet:
            from rich.text import Text

            self.console.print(Text(f"Note: {text}", style="yellow"))


def _ignore_progress(done: int, total: int) -> None:
    """The progress callback when no bar is shown."""


# --- conversions ----------------------------------------------------------------------------


def activation_fields(act: Activation) -> dict[str, Any]:
    """``activation`` (the label, e.g. ``leaky_relu(negative_slope=0.01)``) and its parameters."""
    return {"activation": act.label, "activation_params": dict(act.params)}


def settings_of(result: Any) -> dict[str, Any]:
    """The numerical settings of a core result: quadrature, and solver options it records."""
    out: dict[str, Any] = dict(result.settings.as_dict())
    for key in ("q0", "critical_tol"):
        if hasattr(result, key):
            out[key] = getattr(result, key)
    return out


def scalar(x: Any) -> float:
    """A 0-d array or number as a Python float."""
    return float(np.asarray(x, dtype=np.float64))


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones and non-finite floats as ``None``."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _array_jsonable(obj)
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, complex):
        raise TypeError(f"complex value {obj!r} has no JSON form")
    return obj


def _array_jsonable(a: np.ndarray) -> Any:
    """:func:`jsonable` of an array, without a Python call per element where possible.

    Float arrays become nested lists of floats with ``None`` for non-finite values (through an
    object array, so the conversion stays in C); booleans, integers and strings convert as
    they are.
    """
    kind = a.dtype.kind
    if kind == "f":
        finite = np.isfinite(a)
        if finite.all():
            return a.tolist()
        obj = a.astype(object)
        obj[~finite] = None
        return obj.tolist()
    if kind in "biuU":
        return a.tolist()
    if kind == "c":
        raise TypeError(f"complex array of dtype {a.dtype} has no JSON form")
    return jsonable(a.tolist())


def to_json(payload: Mapping[str, Any], indent: int | None = 2) -> str:
    """Strict JSON text (no NaN/Infinity tokens) of ``payload``."""
    return json.dumps(jsonable(payload), allow_nan=False, indent=indent)


def write_json(fh: TextIO, payload: Mapping[str, Any], indent: int | None = 2) -> None:
    """Write ``to_json(payload, indent)`` to ``fh``.

    With ``indent=None`` (one line, used for big grids) the object is converted and written
    one top-level field at a time, so that only one field's Python objects exist at once; the
    text is the same as :func:`to_json`'s.
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
    """How a value looks in CSV: full precision, empty for missing or non-finite."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return repr(x) if math.isfinite(x) else ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return " ".join(_csv_cell(v) for v in value)
    return str(value)


def _array_of(values: Sequence[Any]) -> np.ndarray:
    """A column of a records table as an npz-friendly array (missing numbers as NaN)."""
    if values and all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=str)
    cleaned = [np.nan if v is None else v for v in values]
    try:
        return np.asarray(cleaned, dtype=np.float64)
    except (TypeError, ValueError):
        return np.asarray([_csv_cell(v) for v in values], dtype=str)


# --- renderers ------------------------------------------------------------------------------


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

    Numbers are written in full precision (``repr``), missing and non-finite values as empty
    fields. :class:`ColumnArrays` are written in blocks of rows, each column converted to text
    as a whole.
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
    """The CSV fields of array ``a`` in C order, as :func:`_csv_cell` writes them.

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
        for k in np.flatnonzero(~np.isfinite(flat)).tolist():
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


def _npz_arrays(report: Report) -> dict[str, np.ndarray]:
    if report.arrays is not None:
        arrays = {k: np.asarray(v) for k, v in report.arrays.items()}
    else:
        records = report.csv or report.table
        if isinstance(records, ColumnArrays):
            arrays = {
                col.key: np.asarray(records.data[col.key]).reshape(-1) for col in records.columns
            }
        else:
            arrays = {
                col.key: _array_of([row.get(col.key) for row in records.rows])
                for col in records.columns
            }
    meta = {k: v for k, v in report.document().items() if k not in arrays}
    arrays["meta"] = np.asarray(to_json(meta, indent=None))
    return arrays


def check_output_path(path: Path | None, *, figures: bool = False) -> None:
    """Refuse an ``-o`` suffix the command cannot write, before any computation.

    Raises
    ------
    MFTheoryError
        Unknown suffix, or a figure suffix for a command that makes no figure.
    """
    if path is None:
        return
    suffix = path.suffix.lower()
    if suffix in DATA_SUFFIXES or (figures and suffix in FIGURE_SUFFIXES):
        return
    if suffix in FIGURE_SUFFIXES:
        raise MFTheoryError(
            f"cannot write figure {str(path)!r}: this command makes no figure;"
            " use .json, .csv or .npz"
        )
    kinds = ", ".join([*DATA_SUFFIXES, *(FIGURE_SUFFIXES if figures else ())])
    raise MFTheoryError(
        f"cannot tell the format of -o {str(path)!r} from its suffix; use one of {kinds}"
    )


def _write_file(path: Path, report: Report, messages: Messages) -> None:
    check_output_path(path, figures=report.figure is not None)
    suffix = path.suffix.lower()
    try:
        with messages.status(f"writing {path}"):
            if suffix in FIGURE_SUFFIXES:
                assert report.figure is not None
                from mftheory.plotting import save_figure

                save_figure(report.figure(), path)
            elif suffix == ".json":
                with path.open("w", encoding="utf-8", newline="\n") as fh:
                    write_json(fh, report.document(), report.json_indent)
                    fh.write("\n")
            elif suffix == ".csv":
                with path.open("w", encoding="utf-8", newline="") as fh:
                    write_csv(fh, report.csv or report.table)
            else:
                with path.open("wb") as fh:
                    savez: Any = np.savez  # its stub types **kwds like allow_pickle (bool)
                    savez(fh, **_npz_arrays(report))
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    messages.note(f"wrote {path}")


class OutputError(RuntimeError):
    """Writing an output file failed (exit code 1: the input was fine)."""


def emit(
    report: Report, *, fmt: OutputFormat | None, output: Path | None, messages: Messages
) -> None:
    """Write ``report``: to ``output`` (format from its suffix) and/or to stdout.

    With ``-o`` the file gets the data and stdout stays empty unless ``--format`` was given
    explicitly; without ``-o`` stdout gets ``--format`` (table by default).
    """
    if output is not None:
        _write_file(output, report, messages)
        if fmt is None:
            return
    fmt = fmt or OutputFormat.table
    if fmt is OutputFormat.json:
        write_json(sys.stdout, report.document(), report.json_indent)
        sys.stdout.write("\n")
    elif fmt is OutputFormat.csv:
        write_csv(sys.stdout, report.csv or report.table)
    else:
        render_table(report.table)
