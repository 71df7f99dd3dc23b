"""One module per ``mftheory`` command; :mod:`mftheory.cli.app` registers them."""
