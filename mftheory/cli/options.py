"""Option types shared by every command (``Annotated`` aliases for typer).

Scales are taken as text and parsed by :mod:`mftheory.cli.params`, so that a number, a range
``START:STOP:COUNT`` and every bad value get the same one-line error.
"""

import enum
from pathlib import Path
from typing import Annotated

import typer
from typer.models import OptionInfo

from mftheory.activations.registry import act_help

__all__ = [
    "Act",
    "Alpha",
    "Format",
    "NegativeSlope",
    "Output",
    "OutputFormat",
    "Quiet",
    "SigmaB",
    "SigmaB2",
    "SigmaB2Range",
    "SigmaBRange",
    "SigmaW",
    "SigmaW2",
]


class OutputFormat(str, enum.Enum):
    """What ``--format`` prints on stdout."""

    table = "table"
    json = "json"
    csv = "csv"


class _ActOption(OptionInfo):
    """``--act``: the help is read from the activation registry each time typer builds the
    command, so it lists every registered activation (built-in or added by the user)."""

    @property
    def help(self) -> str:
        return act_help()

    @help.setter
    def help(self, value: object) -> None:  # OptionInfo.__init__ assigns it; ignored
        pass


Act = Annotated[str, _ActOption(param_decls=("--act",), default=..., metavar="NAME|EXPR")]
NegativeSlope = Annotated[
    str | None,
    typer.Option(
        "--negative-slope",
        help="Slope of leaky_relu for x < 0.  [default: 0.01]",
        metavar="FLOAT",
        show_default=False,
    ),
]
Alpha = Annotated[
    str | None,
    typer.Option(
        "--alpha", help="alpha of elu.  [default: 1.0]", show_default=False, metavar="FLOAT"
    ),
]
SigmaW = Annotated[
    str | None,
    typer.Option("--sigma-w", help="Weight standard deviation sigma_w.", metavar="FLOAT"),
]
SigmaW2 = Annotated[
    str | None,
    typer.Option("--sigma-w2", help="Weight variance sigma_w^2.", metavar="FLOAT"),
]
SigmaB = Annotated[
    str | None,
    typer.Option(
        "--sigma-b",
        help="Bias standard deviation sigma_b.  [default: sigma_b^2 = 0.05]",
        metavar="FLOAT",
    ),
]
SigmaB2 = Annotated[
    str | None,
    typer.Option(
        "--sigma-b2",
        help="Bias variance sigma_b^2.  [default: 0.05]",
        metavar="FLOAT",
    ),
]
Format = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        help="What to print on stdout: table, json or csv.  [default: table, or nothing with -o]",
        show_default=False,
        case_sensitive=False,
    ),
]
Output = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write the data to PATH instead of stdout, format by suffix: .json, .csv, .npz.",
        dir_okay=False,
        metavar="PATH",
    ),
]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No notes on stderr (errors are still reported)."),
]
SigmaBRange = Annotated[
    str | None,
    typer.Option(
        "--sigma-b",
        help="Bias standard deviation sigma_b, or a range START:STOP:COUNT.  "
        "[default: sigma_b^2 = 0.05]",
        metavar="FLOAT|RANGE",
    ),
]
SigmaB2Range = Annotated[
    str | None,
    typer.Option(
        "--sigma-b2",
        help="Bias variance sigma_b^2, or a range START:STOP:COUNT (evenly spaced, both ends "
        "included).  [default: 0.05]",
        metavar="FLOAT|RANGE",
    ),
]
