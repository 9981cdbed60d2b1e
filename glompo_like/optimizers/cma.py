"""CMA-ES through pycma's ask/tell interface."""

from __future__ import annotations

import _imp
import contextlib
import pickle
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import BaseOptimizer, GenerationInTurns
from .box import LinQuadBox

__all__ = ["CMAOptimizer"]

#: pycma options that change how it maps its samples into the box; with any of them set,
#: pycma handles the bounds itself (``bounds`` option) instead of :class:`LinQuadBox`
_OWN_BOUND_HANDLING = frozenset({"BoundaryHandler", "fixed_variables", "scaling_of_variables", "typical_x",
                                 "integer_variables", "maxstd_boundrange", "transformation"})


#: optional modules pycma imports when it is imported, but uses only for what glompo_like
#: never asks of it (``cma.s``'s plotting shortcuts; the Kendall tau of ``cma.fitness_models``,
#: which falls back to its own): three quarters of the import's time (0.5 of 0.65 s)
_NOT_FOR_PYCMA = ("scipy.stats", "matplotlib")


def _import_cma():
    """``import cma``, without the optional modules of :data:`_NOT_FOR_PYCMA` when nothing
    has imported them yet (they stay importable, by pycma's own plotting too: only its
    import does without them).  The import lock is held meanwhile, so no other thread's
    import sees them missing."""
    if "cma" in sys.modules:
        return sys.modules["cma"]
    with warnings.catch_warnings(), _import_lock():
        # pycma warns at import time when matplotlib is missing; plotting is not used here.
        warnings.simplefilter("ignore")
        hidden = [m for m in _NOT_FOR_PYCMA if m not in sys.modules]
        for m in hidden:
            sys.modules[m] = None  # type: ignore[assignment]  # (import raises ImportError)
        try:
            import cma
        finally:
            for m in hidden:
                if sys.modules.get(m, 0) is None:
                    del sys.modules[m]
    return cma


@contextlib.contextmanager
def _import_lock() -> Iterator[None]:
    acquire, release = getattr(_imp, "acquire_lock", None), getattr(_imp, "release_lock", None)
    if acquire is None or release is None:
        yield
        return
    acquire()
    try:
        yield
    finally:
        release()


class _Randn:
    """pycma's ``randn(lam, n)`` hook backed by the optimizer's own ``np.random.Generator``
    (pycma would otherwise draw from NumPy's global state, shared by every thread)."""

    __slots__ = ("rng",)

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


class CMAOptimizer(GenerationInTurns, BaseOptimizer):
    """Covariance Matrix Adaptation Evolution Strategy (pycma).

    Parameters
    ----------
    sigma0:
        Initial step size.  Default: a quarter of the mean width of the bounds.  When the
        parameters have different widths, each coordinate's step is scaled by its width
        relative to the mean width, so ``sigma0`` is the step of an average-width parameter.
    popsize:
        Candidates per generation.  Default: pycma's ``4 + 3 ln(dim)`` (rounded down).
    popsize_factor:
        Multiplies the default population ``4 + 3 ln(dim)`` (the result is rounded to the
        nearest integer, at least 2): ``popsize_factor=4`` is four times the default
        population, in any dimension.  Used by
        :class:`~glompo_like.policies.selectors.IPOPSelector` to grow the population from one
        restart to the next.  Give ``popsize`` or ``popsize_factor``, not both.
    async_eval:
        Take each value as its evaluation finishes and tell the generation, in candidate
        order, once all are in (see :class:`~glompo_like.optimizers.base.GenerationInTurns`):
        the same search as without it, seeded runs give the same result.
    **cma_options:
        Passed to ``cma.CMAEvolutionStrategy`` (e.g. ``tolfun=1e-11``, ``CMA_diagonal=True``).
        ``bounds``, ``seed`` and ``randn`` are set by glompo_like.

    Notes
    -----
    Bounds: pycma samples without bounds and each generation is mapped into the box at
    once by :class:`~glompo_like.optimizers.box.LinQuadBox`, the transformation of pycma's
    default bound handling (the same candidates in less time: ``benchmarks/cma_box.py``);
    ``maxstd`` defaults to a third of each coordinate's range, as pycma sets it
    from bounds.  ``es`` therefore works in the unbounded coordinates (``es.mean`` is a
    genotype).  An option that changes how samples map into the box (``BoundaryHandler``,
    ``fixed_variables``, ``scaling_of_variables``, ``typical_x``, ``integer_variables``,
    ``maxstd_boundrange``, ``transformation``) hands the bounds to pycma instead.
    """

    def __init__(
        self,
        bounds: Any,
        x0: Any = None,
        seed: Any = None,
        *,
        sigma0: float | None = None,
        popsize: int | None = None,
        popsize_factor: float | None = None,
        async_eval: bool = False,
        **cma_options: Any,
    ) -> None:
        super().__init__(bounds, x0, seed)
        self.check_options(sigma0=sigma0, popsize=popsize, popsize_factor=popsize_factor, async_eval=async_eval,
                           **cma_options)
        self.async_eval = async_eval
        cma = _import_cma()
        width = self.bounds.width
        mean_width = float(np.mean(width))
        self.sigma0 = 0.25 * mean_width if sigma0 is None else float(sigma0)
        if popsize_factor is not None:
            popsize = self.default_popsize(self.bounds.dim, popsize_factor)
        self.popsize = popsize
        self.popsize_factor = popsize_factor
        self.cma_options = dict(cma_options)
        lower, upper = self.bounds.lower, self.bounds.upper
        opts: dict[str, Any] = {
            "seed": float("nan"),  # never reseed NumPy's global generator
            "randn": _Randn(self.rng),
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
            # pycma would read options from a file "cma_signals.in" in the working
            # directory on every generation (a stat call each time, and a stray file
            # changing the run's settings)
            "signals_filename": None,
        }
        if popsize is not None:
            opts["popsize"] = int(popsize)
        if not np.allclose(width, mean_width):
            opts["CMA_stds"] = (width / mean_width).tolist()
        opts.update(cma_options)
        x0 = self.x0
        #: the box transformation applied here to whole generations (see module
        #: glompo_like.optimizers.box), or None when pycma handles the bounds itself
        self.box: LinQuadBox | None = None
        if _OWN_BOUND_HANDLING.isdisjoint(cma_options):
            self.box = LinQuadBox(lower, upper)
            # what pycma derives from its bounds when it handles them: the largest step
            opts.setdefault("maxstd", ((upper - lower) * (1 / 3)).tolist())
            x0 = self.box.inverse(x0)
        elif np.all(lower == lower[0]) and np.all(upper == upper[0]):
            # the same box side in every coordinate: scalars, which pycma's bound handling
            # (run on every candidate) processes faster than per-coordinate lists
            opts["bounds"] = [float(lower[0]), float(upper[0])]
        else:
            opts["bounds"] = [lower.tolist(), upper.tolist()]
        self._asked: tuple[np.ndarray, np.ndarray] | None = None  # (phenotypes, genotypes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pycma chatters about bound handling
            self.es = cma.CMAEvolutionStrategy(x0.tolist(), self.sigma0, opts)

    preload_modules = ("glompo_like.optimizers._cma_import",)

    @classmethod
    def preload(cls) -> None:
        _import_cma()

    @staticmethod
    def default_popsize(dim: int, factor: float = 1.0) -> int:
        """pycma's default population ``int(4 + 3 ln(dim))``, times ``factor`` (rounded,
        at least 2)."""
        base = int(4 + 3 * np.log(dim))
        return max(2, int(round(base * float(factor))))

    @classmethod
    def check_options(
        cls, sigma0: Any = None, popsize: Any = None, popsize_factor: Any = None, async_eval: Any = False,
        **cma_options: Any
    ) -> None:
        """Raise :class:`ConfigError` for settings pycma would reject or silently ignore."""
        if not isinstance(async_eval, bool):
            raise ConfigError(f"CMAOptimizer: async_eval must be True or False, got {async_eval!r}")
        if sigma0 is not None and not (np.isfinite(sigma0) and sigma0 > 0):
            raise ConfigError(f"CMAOptimizer: sigma0 must be a positive number, got {sigma0!r}")
        if popsize is not None and (not isinstance(popsize, (int, np.integer)) or popsize < 2):
            raise ConfigError(f"CMAOptimizer: popsize must be an integer >= 2, got {popsize!r}")
        if popsize_factor is not None:
            if isinstance(popsize_factor, bool) or not isinstance(popsize_factor, (int, float, np.integer, np.floating)) \
                    or not (np.isfinite(popsize_factor) and popsize_factor > 0):
                raise ConfigError(
                    f"CMAOptimizer: popsize_factor must be a number > 0 (a multiple of the default "
                    f"population), got {popsize_factor!r}"
                )
            if popsize is not None:
                raise ConfigError(
                    "CMAOptimizer: give popsize or popsize_factor, not both (popsize_factor "
                    "multiplies the default population; popsize sets it directly)"
                )
        reserved = {"bounds", "seed", "randn"} & set(cma_options)
        if reserved:
            raise ConfigError(
                f"CMAOptimizer: options {sorted(reserved)} are set by glompo_like; pass bounds "
                "to the manager and seed= to the manager (or the optimizer), not as cma options"
            )
        if cma_options:
            known = set(_import_cma().CMAOptions.defaults())
            unknown = sorted(set(cma_options) - known)
            if unknown:
                raise ConfigError(
                    f"CMAOptimizer: unknown pycma option(s) {unknown}; see cma.CMAOptions() "
                    "for valid names"
                )

    @property
    def generation_size(self) -> int:
        return int(self.es.popsize)

    def _ask(self) -> np.ndarray:
        xs = np.asarray(self.es.ask(), dtype=float)
        if self.box is None:
            return xs
        pheno = self.box(xs)
        self._asked = (pheno, xs)
        return pheno

    def _tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        # No warnings.catch_warnings() here: it swaps process-wide state, which is not
        # thread-safe with runner threads, and it costs time on every generation.
        if self.box is not None:
            asked, self._asked = self._asked, None
            if asked is not None and np.array_equal(asked[0], xs):
                xs = asked[1]
            else:  # not the candidates of the last ask: their genotypes in the invertible range
                xs = self.box.inverse(xs)
        self.es.tell(list(xs), fs.tolist())

    def _stop(self) -> dict[str, Any]:
        if self.es.countiter == 0:
            return {}
        return {k: v for k, v in self.es.stop().items()}

    def _inject(self, x: np.ndarray, fx: float) -> None:
        x = self.bounds.clip(x)
        self.es.inject([x if self.box is None else self.box.inverse(x)], force=True)

    def _get_state(self) -> dict[str, Any]:
        return {"es": pickle.dumps(self.es, protocol=pickle.HIGHEST_PROTOCOL), "box": self.box,
                "asked": self._asked}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.es = pickle.loads(state["es"])
        self.rng = self.es.opts["randn"].rng
        # a checkpoint from before the box transformation: pycma handles the bounds
        self.box = state.get("box")
        self._asked = state.get("asked")

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.cma_options.items())
        pop = self.popsize if self.popsize is not None else int(self.es.popsize)
        fac = f", popsize_factor={self.popsize_factor:g}" if self.popsize_factor is not None else ""
        asy = ", async_eval=True" if self.async_eval else ""
        return f"CMAOptimizer(sigma0={self.sigma0:g}, popsize={pop}{fac}{extra}{asy})"
