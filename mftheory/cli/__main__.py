"""``python -m mftheory.cli``: the same as the ``mftheory`` command."""

from mftheory.cli.app import main

if __name__ == "__main__":
    main()
