"""The one place that writes results: a ``Report`` to stdout or to the ``-o`` file.

A command builds a ``Report`` (the JSON object, the records its table and CSV show, and
optionally arrays for ``.npz`` and a figure maker) and hands it to ``emit``. Data goes to
stdout or to the ``-o`` file (format by suffix); messages go to stderr through
``Messages``. A figure is drawn at the ``--figsize`` and ``--dpi``
of a ``FigureStyle``.

CSV writes an infinite value as ``inf`` / ``-inf`` (a critical point's ``xi_c`` is infinite,
not missing) and a NaN (a quantity that is undefined there, such as a depth scale of a
divergent point) or a missing value as an empty field; JSON, which has no infinity, writes
``null`` for both.

Every file is written atomically (``mftheory.files.atomic_write``): to a temporary file
beside the target, renamed into place when complete, so that a failed or interrupted run
(Ctrl-C) leaves an existing file as it was and no temporary file behind.
"""

from __future__ import annotations

import sys
import warnings
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
from mftheory.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mftheory.cli.messages import Messages

__all__ = [
    "DATA_SUFFIXES",
    "FIGURE_SUFFIXES",
    "MAX_FIGURE_PIXELS",
    "FigureStyle",
    "Interrupted",
    "OutputError",
    "Report",
    "check_output_path",
    "emit",
]

DATA_SUFFIXES = (".json", ".csv", ".npz")
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
#: Largest figure, in pixels (width x height at --dpi), that -o draws.
MAX_FIGURE_PIXELS = 200_000_000


@dataclass(frozen=True)
class FigureStyle:
    """The size (inches) and resolution (dots per inch) of a figure written with ``-o``.

    Raises
    ------
    MFTheoryError
        More than ``MAX_FIGURE_PIXELS`` pixels: checked when the command starts, before
        any computation.
    """

    figsize: tuple[float, float]
    dpi: float

    def __post_init__(self) -> None:
        w, h = self.figsize
        pixels = w * self.dpi * h * self.dpi
        if pixels > MAX_FIGURE_PIXELS:
            raise MFTheoryError(
                f"a {w:g}x{h:g} inch figure at {self.dpi:g} dpi has {pixels:.3g} pixels, more"
                f" than {MAX_FIGURE_PIXELS:.0e}: lower --dpi or --figsize"
            )

    def apply(self, fig: Figure) -> Figure:
        """Give ``fig`` this size and resolution (its layout adapts when drawn)."""
        fig.set_size_inches(*self.figsize)
        fig.set_dpi(self.dpi)
        return fig


@dataclass
class Report:
    """Everything a command can output.

    Attributes
    ----------
    command : str
        The command's name, recorded in the JSON object.
    payload : dict
        The fields of the JSON object after ``version``, ``command`` and ``settings`` (see
        ``document``). May hold numpy values and non-finite floats; they are converted on
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


def _write_file(path: Path, report: Report, messages: Messages, style: FigureStyle | None) -> None:
    check_output_path(path, figures=report.figure is not None)
    suffix = path.suffix.lower()
    try:
        with messages.status(f"writing {path}"):
            if suffix in FIGURE_SUFFIXES:
                assert report.figure is not None
                from mftheory.plotting import save_figure

                fig = report.figure()
                if style is not None:
                    style.apply(fig)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    save_figure(fig, path, dpi=fig.dpi)
                if any("constrained_layout" in str(w.message) for w in caught):
                    w_in, h_in = fig.get_size_inches()
                    messages.warn(
                        f"a {w_in:g}x{h_in:g} inch figure is too small for its labels and"
                        " legend; give a larger --figsize"
                    )
            elif suffix == ".json":
                with atomic_write(path, "w", encoding="utf-8", newline="\n") as fh:
                    write_json(fh, report.document(), report.json_indent)
                    fh.write("\n")
            elif suffix == ".csv":
                with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
                    write_csv(fh, report.csv or report.table)
            else:
                with atomic_write(path, "wb") as fh:
                    savez: Any = np.savez  # its stub types **kwds like allow_pickle (bool)
                    savez(fh, **_npz_arrays(report))
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    messages.note(f"wrote {path}")


class OutputError(RuntimeError):
    """Writing an output file failed (exit code 1: the input was fine)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with a note on what was kept: ``mftheory`` prints ``interrupted: <note>``.

    A command raises it from the ``KeyboardInterrupt`` it caught, once it has stopped its work
    (exit code 130, as for any interrupt).
    """


def emit(
    report: Report,
    *,
    fmt: OutputFormat | None,
    output: Path | None,
    messages: Messages,
    style: FigureStyle | None = None,
) -> None:
    """Write ``report``: to ``output`` (format from its suffix) and/or to stdout.

    With ``-o`` the file gets the data and stdout stays empty unless ``--format`` was given
    explicitly; without ``-o`` stdout gets ``--format`` (table by default). A figure gets
    ``style``'s size and resolution (the figure's own without it).
    """
    if output is not None:
        _write_file(output, report, messages, style)
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
