"""The one place that writes results: a :class:`Report` to stdout or to the ``-o`` file.

A command builds a :class:`Report` (the JSON object, the records its table and CSV show, and
optionally arrays for ``.npz`` and a figure maker) and hands it to :func:`emit`. Data goes to
stdout or to the ``-o`` file (format by suffix); messages go to stderr through
:class:`~mftheory.cli.messages.Messages`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mftheory import __version__
from mftheory.cli.options import OutputFormat
from mftheory.cli.render import (
    ColumnArrays,
    Records,
    array_of,
    render_table,
    to_json,
    write_csv,
    write_json,
)
from mftheory.errors import MFTheoryError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mftheory.cli.messages import Messages

__all__ = [
    "DATA_SUFFIXES",
    "FIGURE_SUFFIXES",
    "OutputError",
    "Report",
    "check_output_path",
    "emit",
]

DATA_SUFFIXES = (".json", ".csv", ".npz")
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


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
                col.key: array_of([row.get(col.key) for row in records.rows])
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
