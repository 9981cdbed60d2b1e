"""``python -m glompo_like``: the same as the ``glompo-like`` command."""

from .cli import main

if __name__ == "__main__":  # not when a spawned child process imports this module
    raise SystemExit(main())
