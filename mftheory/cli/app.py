"""The ``mftheory`` Typer app: commands, ``-V/--version``, shell completion
(``--install-completion``, ``--show-completion``, as Typer gives them), and the one place errors
become exits.

Exit codes (documented in ``mftheory --help``):

* 0: success, including a computation that has no finite answer (reported as ``divergent``);
* 1: the computation or writing the output failed (also a Python warning that escaped the
  computation: reported as one ``Error: internal warning: ...`` line, never as warning text);
* 2: bad input (one line ``Error: ...`` on stderr naming the bad value, never a traceback);
* 130: interrupted.
"""

import enum
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mftheory import __version__
from mftheory.cli.commands import (
    critical,
    depthscales,
    diagnose,
    fixed_point,
    isometry,
    kernel,
    phase_diagram,
    propagate,
    reproduce,
    simulate,
    spectrum,
    validate,
)

__all__ = ["ExitCode", "app", "main"]

# The click that typer uses (typer >= 0.26 vendors its own copy): find its exception classes
# through one that typer re-exports, so that the right ones are caught either way.
_click_exceptions: Any = importlib.import_module(typer.BadParameter.__module__)
_ClickException: type[Exception] = _click_exceptions.ClickException


class ExitCode(enum.IntEnum):
    """Exit statuses of the ``mftheory`` command."""

    OK = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 130


def _error_line(message: str) -> None:
    """Print ``Error: message`` as exactly one line on stderr (no rich wrapping)."""
    text = " ".join(str(message).split())
    typer.echo(f"Error: {text}", err=True)


def _internal_warning(caught: warnings.WarningMessage) -> str:
    """The one-line report of a Python warning that escaped the computation (a bug)."""
    text = " ".join(str(caught.message).split())
    text = text if len(text) <= 160 else text[:157] + "..."
    where = f"{caught.filename.rsplit('/', 1)[-1]}:{caught.lineno}"
    return f"internal warning: {caught.category.__name__}: {text} ({where}); please report it"


class _OneLineErrorGroup(TyperGroup):
    """The top-level command group: turns every failure into one stderr line and an exit code.

    ``MFTheoryError`` (bad values found by mftheory) and click's usage errors (unknown option,
    a non-number for a float option, a bad ``--format`` choice) both become
    ``Error: <message>`` and exit code 2.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        from mftheory.cli.output import OutputError
        from mftheory.errors import MFTheoryError

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            with warnings.catch_warnings(record=True) as caught:  # the filters stay as they are
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            if caught:  # a warning the code did not handle: a failure, never warning text
                _error_line(_internal_warning(caught[0]))
                sys.exit(ExitCode.FAILED)
        except _ClickException as exc:
            err: Any = exc
            if type(err).__name__ == "NoArgsIsHelpError":  # plain `mftheory`: show the help
                err.show()
            else:
                _error_line(err.format_message())
            sys.exit(int(err.exit_code))
        except MFTheoryError as exc:
            _error_line(str(exc))
            sys.exit(ExitCode.USAGE)
        except OutputError as exc:
            _error_line(str(exc))
            sys.exit(ExitCode.FAILED)
        except typer.Abort:
            _error_line("aborted")
            sys.exit(ExitCode.INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else ExitCode.OK)


app = typer.Typer(
    name="mftheory",
    cls=_OneLineErrorGroup,
    help=(
        "Mean-field theory of deep random networks: critical lines, fixed points, "
        "depth scales and phase diagrams.\n\n"
        "Scales are standard deviations (--sigma-w, --sigma-b) or variances (--sigma-w2, "
        "--sigma-b2); give one form of each, every output shows both.\n\n"
        "Exit codes: 0 success (also for divergent points), 1 computation or output failed, "
        "2 bad input, 130 interrupted."
    ),
    epilog="Example: mftheory critical --act tanh --sigma-b2 0.05",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mftheory {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Mean-field theory of deep random networks."""


app.command("critical", short_help="Critical sigma_w (chi_1 = 1) for a bias or a range.")(
    critical.critical
)
app.command("fixed-point", short_help="q*, c*, chi's, depth scales and phase at one point.")(
    fixed_point.fixed_point
)
app.command("diagnose", short_help="Where an initialisation (gain, he, xavier...) sits.")(
    diagnose.diagnose
)
app.command("kernel", short_help="Draw or check an orthogonal / Gaussian conv kernel.")(
    kernel.kernel
)
app.command("depthscales", short_help="Fourier-mode depth scales of a CNN kernel variance v.")(
    depthscales.depthscales
)
app.command("propagate", short_help="Images through the CNN covariance map, mode by mode.")(
    propagate.propagate
)
app.command("simulate", short_help="Finite random CNNs against the mean-field modes.")(
    simulate.simulate
)
app.command("reproduce", short_help="The paper's Fig. S4 (mode decay) or Fig. 4(b).")(
    reproduce.reproduce
)
app.command("spectrum", short_help="Predicted singular-value spectrum of the Jacobian.")(
    spectrum.spectrum
)
app.command("isometry", short_help="Which initialisations reach dynamical isometry.")(
    isometry.isometry
)
app.command("validate", short_help="Train real CNNs against the predictions (torch).")(
    validate.validate
)
app.command("phase-diagram", short_help="The (sigma_w^2, sigma_b^2) plane: figure or grid.")(
    phase_diagram.phase_diagram
)


def main() -> None:
    """Entry point of the ``mftheory`` console script."""
    app()
