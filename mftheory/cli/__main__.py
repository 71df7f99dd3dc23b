"""``python -m mftheory.cli``: the same as the ``mftheory`` command."""

from .app import main

if __name__ == "__main__":
    main()
