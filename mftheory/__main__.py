"""``python -m mftheory``: the same as the ``mftheory`` command."""

from mftheory.cli import main

if __name__ == "__main__":
    main()
