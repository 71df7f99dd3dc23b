"""The ``mftheory`` command line (typer): one module per command in
``mftheory.cli.commands``, registered by ``mftheory.cli.app``.

Shared layers: ``params`` (the ``parser=`` types of the options),
``options`` (the options several commands share), ``common``
(the prologue: activation, scales, messages, output checks), ``output``,
``render`` and ``messages`` (what goes to stdout, files and
stderr).

Only the console script imports this package (it needs typer); ``import mftheory`` does not."""

from mftheory.cli.app import app, main

__all__ = ["app", "main"]
