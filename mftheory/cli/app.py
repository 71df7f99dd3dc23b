"""The ``mftheory`` Typer app: commands, ``-V/--version``, shell completion
(``--install-completion``, ``--show-completion``, as Typer gives them), and the one place errors
become exits.

Exit codes (documented in ``mftheory --help``):

* 0: success, including a computation that has no finite answer (reported as ``divergent``);
* 1: the computation or writing the output failed (also a Python warning that escaped the
  computation: reported as one ``Error: internal warning: ...`` line, never as warning text);
* 2: bad input (one line ``Error: ...`` on stderr naming the bad value, never a traceback);
* 130: interrupted (Ctrl-C): one line ``interrupted`` on stderr, or ``interrupted: <what was
  kept>``; 143: stopped by SIGTERM (``terminated``, likewise). Files being written are left as
  they were (``mftheory.files``), worker processes are stopped.
"""

import enum
import importlib
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mftheory import __version__
from mftheory.cli.budget import MAX_MEMORY_HELP
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
    TERMINATED = 143


class _Stopped(Exception):
    """A ``KeyboardInterrupt`` (or SIGTERM) caught before typer turns it into a silent exit."""

    def __init__(self, line: str, code: int) -> None:
        super().__init__(line)
        self.line, self.code = line, code


class _Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler, so that SIGTERM unwinds (and cleans up) as Ctrl-C does."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated


def _stopped(exc: BaseException) -> _Stopped:
    """The one line and the exit code of an interrupt: ``interrupted[: what was kept]``."""
    terminated = isinstance(exc, _Terminated) or isinstance(exc.__context__, _Terminated)
    word, code = ("terminated", ExitCode.TERMINATED) if terminated else ("interrupted", None)
    note = " ".join(str(exc).split()) if type(exc).__name__ == "Interrupted" else ""
    return _Stopped(f"{word}: {note}" if note else word, code or ExitCode.INTERRUPTED)


#: Longest word (a run without spaces) of an error line; a longer one, such as a 100 KB
#: argument echoed back, is cut to its start and "...".
_MAX_WORD = 80


def _error_line(message: str) -> None:
    """Print ``Error: message`` as exactly one line on stderr (no rich wrapping), every word
    at most ``_MAX_WORD`` characters long."""
    text = " ".join(
        word if len(word) <= _MAX_WORD else word[: _MAX_WORD - 4] + "...'"
        for word in str(message).split()
    )
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
        from mftheory.cli.budget import ComputationFailed
        from mftheory.cli.output import OutputError
        from mftheory.errors import MFTheoryError

        args = _hoist_max_memory(list(sys.argv[1:] if args is None else args))
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        previous = _catch_sigterm()
        try:
            with warnings.catch_warnings(record=True) as caught:  # the filters stay as they are
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            if caught:  # a warning the code did not handle: a failure, never warning text
                _error_line(_internal_warning(caught[0]))
                sys.exit(ExitCode.FAILED)
        except _Stopped as exc:
            typer.echo(exc.line, err=True)
            sys.exit(exc.code)
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
        except (OutputError, ComputationFailed) as exc:
            _error_line(str(exc))
            sys.exit(ExitCode.FAILED)
        except typer.Abort:
            _error_line("aborted")
            sys.exit(ExitCode.INTERRUPTED)
        except MemoryError:
            # The up-front estimates (mftheory.cli.budget) should make this rare.
            _error_line(
                "out of memory: the request needed more than the machine could give;"
                " ask for less, or lower --max-memory so that it is refused up front"
            )
            sys.exit(ExitCode.FAILED)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if rv == ExitCode.INTERRUPTED:  # Ctrl-C while the options were parsed (typer's Exit)
            typer.echo("interrupted", err=True)
        sys.exit(rv if isinstance(rv, int) else ExitCode.OK)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; an interrupt becomes one line and exit 130, a stray end of file
        (a truncated input a reader did not check) one line and exit 2, never click's
        ``Aborted!``."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _stopped(exc) from None
        except EOFError as exc:
            reason = " ".join(str(exc).split()) or "no data left"
            raise _Stopped(
                f"Error: an input file ended early ({reason}): it is truncated or corrupt",
                ExitCode.USAGE,
            ) from None


def _catch_sigterm() -> Any:
    """Make SIGTERM unwind like Ctrl-C (temporary files removed, workers stopped); the
    previous handler, to restore, or None where signals cannot be set (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - no signals here
        return None


app = typer.Typer(
    name="mftheory",
    cls=_OneLineErrorGroup,
    help=(
        "Mean-field theory of deep random networks: critical lines, fixed points, "
        "depth scales and phase diagrams.\n\n"
        "Scales are standard deviations (--sigma-w, --sigma-b) or variances (--sigma-w2, "
        "--sigma-b2); give one form of each, every output shows both.\n\n"
        "Exit codes: 0 success (also for divergent points), 1 computation or output failed, "
        "2 bad input or a refused request, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).\n\n"
        "Requests are checked before any work starts: one estimated to need more memory than "
        "--max-memory (or MFTHEORY_MAX_MEMORY; default: half the available memory) is refused "
        "with exit code 2."
    ),
    epilog="Example: mftheory critical --act tanh --sigma-b2 0.05",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _hoist_max_memory(args: list[str]) -> list[str]:
    """``args`` with a ``--max-memory SIZE`` typed after the command's name moved before it,
    so that the global option works in either place (it is read before any command runs)."""
    head: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg == "--max-memory" and i + 1 < len(args):
            head += args[i : i + 2]
            i += 2
            continue
        if arg.startswith("--max-memory="):
            head.append(arg)
        else:
            rest.append(arg)
        i += 1
    return head + rest


def _max_memory_callback(value: str | None) -> None:
    from mftheory.cli.budget import parse_size, set_max_memory

    set_max_memory(None if value is None else parse_size(value))


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
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            metavar="SIZE",
            help=MAX_MEMORY_HELP,
            envvar=None,
            callback=_max_memory_callback,
            show_default=False,
        ),
    ] = None,
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
    """Entry point of the ``mftheory`` console script.

    Once the command has finished (its files written, its exit code decided), a late Ctrl-C
    is ignored while Python shuts down, so that it cannot turn a finished run into a death by
    SIGINT.
    """
    try:
        app()
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
