"""One module per ``mftheory`` command; ``mftheory.cli.app`` registers them."""
