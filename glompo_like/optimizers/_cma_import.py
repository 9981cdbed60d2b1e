"""Imported by a forkserver before it starts optimizer processes: pycma, without the
warnings it prints at import time (see :attr:`CMAOptimizer.preload_modules`)."""

from .cma import _import_cma

_import_cma()
