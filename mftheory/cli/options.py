"""Option types shared by every command (``Annotated`` aliases for typer).

Values are parsed by the ``parser=`` types of ``mftheory.cli.params``, so that a number, a
range ``START:STOP:COUNT`` and every bad value get the same one-line error. Defaults are the
real ones, in the command signatures (``--help`` shows them); a scale with no fixed default
(``--sigma-w`` where it is the critical value) says so in its help.
"""

from pathlib import Path
from typing import Annotated

import typer
from typer.models import OptionInfo

from mftheory.activations.registry import act_help
from mftheory.cli.params import (
    Choice,
    ChoiceEnum,
    FigureSize,
    FigureSizeText,
    Int,
    Number,
    ScaleText,
    ScaleValue,
    VarianceVectorText,
)

__all__ = [
    "DEFAULT_DPI",
    "DEFAULT_FIGSIZE",
    "Act",
    "Alpha",
    "Dpi",
    "FigSize",
    "FigureOutput",
    "Format",
    "KernelSide",
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
    "SigmaW2Critical",
    "SigmaWCritical",
    "VOption",
]


class OutputFormat(ChoiceEnum):
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
    float,
    typer.Option(
        "--negative-slope",
        help="Slope of leaky_relu for x < 0 (PyTorch's default).",
        metavar="FLOAT",
        parser=Number(),
    ),
]
Alpha = Annotated[
    float,
    typer.Option(
        "--alpha", help="alpha of elu (PyTorch's default).", metavar="FLOAT", parser=Number()
    ),
]
SigmaW = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-w",
        help="Weight standard deviation sigma_w (or give --sigma-w2).",
        metavar="FLOAT",
        parser=ScaleText("standard deviation"),
    ),
]
SigmaW2 = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-w2",
        help="Weight variance sigma_w^2 (or give --sigma-w).",
        metavar="FLOAT",
        parser=ScaleText("variance"),
    ),
]
SigmaB = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-b",
        help="Bias standard deviation sigma_b (instead of --sigma-b2).",
        metavar="FLOAT",
        parser=ScaleText("standard deviation"),
    ),
]
SigmaB2 = Annotated[
    ScaleValue,
    typer.Option(
        "--sigma-b2",
        help="Bias variance sigma_b^2 (Schoenholz et al. 2017 use 0.05 for tanh).",
        metavar="FLOAT",
        parser=ScaleText("variance"),
    ),
]
Format = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        help="What to print on stdout (without it: table, or nothing with -o).",
        metavar="table|json|csv",
        parser=Choice(OutputFormat, "format"),
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
FigureOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to PATH, format by suffix: a figure (.png, .svg, .pdf) or the data"
        " (.json, .csv, .npz).",
        dir_okay=False,
        metavar="PATH",
    ),
]
#: Size (inches) and resolution of the -o figures, unless a command sets its own.
DEFAULT_FIGSIZE = FigureSize(7.0, 5.0)
DEFAULT_DPI = 110.0
FigSize = Annotated[
    FigureSize,
    typer.Option(
        "--figsize",
        help="Size of the -o figure, WIDTHxHEIGHT in inches (e.g. 6x4).",
        metavar="WxH",
        parser=FigureSizeText(),
    ),
]
Dpi = Annotated[
    float,
    typer.Option(
        "--dpi",
        help="Resolution of the -o figure in dots per inch: a .png is figsize x dpi pixels"
        " (.pdf and .svg are vector drawings).",
        metavar="FLOAT",
        parser=Number(1.0),
    ),
]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No notes on stderr (errors are still reported)."),
]
SigmaBRange = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-b",
        help="Bias standard deviation sigma_b, or a range START:STOP:COUNT (instead of "
        "--sigma-b2).",
        metavar="FLOAT|RANGE",
        parser=ScaleText("standard deviation", ranges="yes"),
    ),
]
SigmaB2Range = Annotated[
    ScaleValue,
    typer.Option(
        "--sigma-b2",
        help="Bias variance sigma_b^2, or a range START:STOP:COUNT (evenly spaced, both ends "
        "included).",
        metavar="FLOAT|RANGE",
        parser=ScaleText("variance", ranges="yes"),
    ),
]

# --- convolutions: variance vector, kernel side, the critical weight default ---------------

VOption = Annotated[
    str,
    typer.Option(
        "--v",
        help="Variance vector over kernel positions: a comma list (1D, e.g. 0.025,0.95,0.025), "
        "rows split by ';' (2D, e.g. '0,1,0;1,4,1;0,1,0'), or a preset: delta, uniform, "
        "gs0..gs4 (gsj = (1-j/4) delta + (j/4) uniform). Entries must be >= 0; a v that does "
        "not sum to 1 is rescaled, with a note.",
        metavar="LIST|PRESET",
        parser=VarianceVectorText(),
    ),
]
KernelSide = Annotated[
    int | None,
    typer.Option(
        "--kernel",
        metavar="INT",
        help="Kernel side length of a preset --v (odd; 3 if not given); a list sets its own.",
        parser=Int(1),
    ),
]
SigmaWCritical = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-w",
        help="Weight standard deviation sigma_w; without it (or --sigma-w2), the critical value "
        "for --act and the bias.",
        metavar="FLOAT",
        parser=ScaleText("standard deviation"),
    ),
]
SigmaW2Critical = Annotated[
    ScaleValue | None,
    typer.Option(
        "--sigma-w2",
        help="Weight variance sigma_w^2 (or give --sigma-w); without either, the critical value.",
        metavar="FLOAT",
        parser=ScaleText("variance"),
    ),
]
