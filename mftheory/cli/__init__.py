"""The ``mftheory`` command line: ``critical``, ``fixed-point``, ``depthscales``, ``phase-
diagram``.

Only the console script imports this package (it needs typer); ``import mftheory`` does not."""

from mftheory.cli.app import app, main

__all__ = ["app", "main"]
