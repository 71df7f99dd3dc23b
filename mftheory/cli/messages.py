"""Notes, warnings, spinners and progress bars on stderr (rich; silent with ``--quiet``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["PROGRESS_NOTE_POINTS", "Messages", "ProgressCallback"]

#: ``progress(done, total)``: called by a long computation after each chunk of its work.
ProgressCallback = Callable[[int, int], None]

#: Above this many points a computation without a progress bar (stderr not a terminal) says
#: on stderr when it starts and when it ends.
PROGRESS_NOTE_POINTS = 1_000_000


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
        nothing; a computation of more than ``PROGRESS_NOTE_POINTS`` points then notes on
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
