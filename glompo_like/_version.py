"""The version of glompo_like (one place; the package and its checkpoints read it)."""

__version__ = "0.2.0"
