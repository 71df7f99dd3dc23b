"""The one exception class of mftheory."""

from __future__ import annotations

__all__ = ["MFTheoryError"]


class MFTheoryError(ValueError):
    """Invalid input, or a computation that cannot give a trustworthy finite answer.

    The message is one line that names the offending value and, where possible, what to do.
    The command-line tool turns it into exit code 2 (bad input).
    """
