"""The ``mftheory`` command line (typer): one module per command in
:mod:`mftheory.cli.commands`, registered by :mod:`mftheory.cli.app`.

Shared layers: :mod:`~mftheory.cli.params` (the ``parser=`` types of the options),
:mod:`~mftheory.cli.options` (the options several commands share), :mod:`~mftheory.cli.common`
(the prologue: activation, scales, messages, output checks), :mod:`~mftheory.cli.output`,
:mod:`~mftheory.cli.render` and :mod:`~mftheory.cli.messages` (what goes to stdout, files and
stderr).

Only the console script imports this package (it needs typer); ``import mftheory`` does not."""

from mftheory.cli.app import app, main

__all__ = ["app", "main"]
