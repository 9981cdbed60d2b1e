"""A public conformance check for optimizers.

:func:`check_optimizer` runs an optimizer class through the contract of
:class:`~glompo_like.optimizers.BaseOptimizer` and raises :class:`AssertionError` with a
clear message at the first violation.  Run it in your own tests on your own optimizers::

    import numpy as np
    from glompo_like.optimizers import BaseOptimizer
    from glompo_like.testing import check_optimizer

    class CoordinateSearch(BaseOptimizer):
        deterministic = True  # uses no random numbers: skip the different-seeds check

        def __init__(self, bounds, x0=None, seed=None, *, step=0.25):
            super().__init__(bounds, x0, seed)
            self.step, self.center, self.center_f = step, self.x0.copy(), np.inf

        def _ask(self):
            moves = np.diag(self.step * self.bounds.width)
            return self.bounds.clip(np.vstack([self.center + moves, self.center - moves]))

        def _tell(self, xs, fs):
            i = int(np.argmin(fs))
            if fs[i] < self.center_f:
                self.center, self.center_f = xs[i].copy(), float(fs[i])
            else:
                self.step /= 2

        def _get_state(self):
            return {"step": self.step, "center": self.center.copy(), "center_f": self.center_f}

        def _set_state(self, state):
            self.step, self.center_f = state["step"], state["center_f"]
            self.center = state["center"].copy()

        def __repr__(self):
            return f"CoordinateSearch(step={self.step})"

    def test_coordinate_search_follows_the_contract():
        check_optimizer(CoordinateSearch, step=0.1)

What is checked (``cls`` is constructed as ``cls(bounds, x0, seed, **kwargs)``):

1. ``check_options(**kwargs)`` accepts ``kwargs``; if ``__init__`` takes ``**kwargs``,
   ``check_options`` rejects an unknown option with ``ConfigError``.
2. ``repr()`` starts with the class name.
3. The optimizer pickles before its first ``ask()`` (process backends send it to a child),
   and the copy asks the same first points.
4. For ``n_generations`` generations: ``stop()`` returns a dict (the loop ends early when it
   is not empty); ``ask()`` returns a 2-D float array of shape ``(n, dim)``, ``n >= 1``,
   finite and inside the bounds; ``tell()`` accepts the values; ``result.fx`` never
   increases and equals the best value told.  One generation gets a failed evaluation's
   penalty value, as the runner sends it.
5. The same seed gives identical asks.  Different seeds give different asks, unless the
   class sets ``deterministic = True``.
6. ``get_state()`` pickles, and an optimizer built with *another* seed that receives it
   through ``set_state()`` asks exactly what the original asks next; taking the state
   does not change the original.  Skipped when the class sets ``checkpointable = False``.
7. The traits declared on :class:`~glompo_like.optimizers.BaseOptimizer`:
   ``generational``, ``checkpointable``, ``deterministic`` and ``supports_async`` are
   ``True`` or ``False``, ``preload_modules`` is a tuple of module names; an instance's
   ``generation_size`` is an integer >= 1 and its ``async_eval`` is ``True`` or ``False``,
   ``True`` only when the class ``supports_async``.

Every optimizer created is closed (``close()``).
"""

from __future__ import annotations

import inspect
import pickle
from numbers import Integral
from typing import Any

import numpy as np

from .bounds import as_bounds
from .errors import ConfigError, ContractError
from .optimizers.base import BaseOptimizer

__all__ = ["check_optimizer"]

#: Parameters of unequal widths, so that mixed-up coordinates show.
DEFAULT_BOUNDS = [(-5.0, 5.0), (-1.0, 3.0), (0.0, 10.0)]
_SEED, _OTHER_SEED = 12345, 54321
_PENALTY_GENERATION = 2  # the generation (0-based) in which one value is a penalty
#: the class-level traits of BaseOptimizer, each True or False
CLASS_TRAITS = ("generational", "checkpointable", "deterministic", "supports_async")


def check_optimizer(
    cls: type[BaseOptimizer],
    bounds: Any = None,
    n_generations: int = 5,
    **kwargs: Any,
) -> None:
    """Check that ``cls`` follows the optimizer contract; raise ``AssertionError`` if not.

    Parameters
    ----------
    cls:
        The optimizer class (a subclass of :class:`~glompo_like.optimizers.BaseOptimizer`).
    bounds:
        The box to run it in.  Default: three parameters of unequal widths.
    n_generations:
        Ask/tell rounds per run (``>= 2``; fewer if the optimizer stops earlier).
    **kwargs:
        Settings passed to ``cls``.

    Examples
    --------
    >>> from glompo_like.optimizers import RandomOptimizer
    >>> from glompo_like.testing import check_optimizer
    >>> check_optimizer(RandomOptimizer, popsize=4)
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseOptimizer)):
        raise TypeError(f"check_optimizer needs a BaseOptimizer subclass, got {cls!r}")
    if n_generations < 2:
        raise ValueError("check_optimizer: n_generations must be >= 2")
    box = as_bounds(DEFAULT_BOUNDS if bounds is None else bounds)
    checker = _Checker(cls, box, n_generations, kwargs)
    checker.check_options()
    checker.check_traits()
    checker.check_repr()
    checker.check_pickles_before_first_ask()
    asks = checker.check_runs()
    checker.check_seeds(asks)
    checker.check_state_round_trip(asks)


class _Checker:
    def __init__(self, cls: type[BaseOptimizer], bounds: Any, n_generations: int, kwargs: dict) -> None:
        self.cls = cls
        self.name = cls.__name__
        self.bounds = bounds
        self.dim = bounds.dim
        self.n = n_generations
        self.kwargs = kwargs
        # a start point off-centre and an optimum elsewhere, both inside the box
        self.x0 = bounds.lower + 0.3 * bounds.width
        self.optimum = bounds.lower + 0.65 * bounds.width
        self.scale = 1.0 / bounds.width**2 * 10.0 ** np.linspace(0, 2, self.dim)

    # ------------------------------------------------------------------ helpers
    def objective(self, xs: np.ndarray) -> np.ndarray:
        return ((xs - self.optimum) ** 2 * self.scale).sum(axis=1)

    def build(self, seed: int = _SEED) -> BaseOptimizer:
        try:
            return self.cls(self.bounds, self.x0.copy(), seed, **self.kwargs)
        except Exception as e:
            raise AssertionError(
                f"{self.name}(bounds, x0, seed={seed}, **{self.kwargs!r}) could not be constructed: "
                f"{type(e).__name__}: {e}"
            ) from e

    def fail(self, what: str) -> AssertionError:
        return AssertionError(f"{self.name}: {what}")

    def ask(self, opt: BaseOptimizer, generation: int) -> np.ndarray:
        where = f"ask() of generation {generation}"
        try:
            xs = opt.ask()
        except ContractError as e:
            raise self.fail(f"{where}: {e}") from e
        if not isinstance(xs, np.ndarray):
            raise self.fail(f"{where} returned {type(xs).__name__}, expected a numpy array")
        if xs.dtype.kind != "f":
            raise self.fail(f"{where} returned dtype {xs.dtype}, expected a float array")
        if xs.ndim != 2 or xs.shape[1] != self.dim or xs.shape[0] < 1:
            raise self.fail(f"{where} returned shape {xs.shape}, expected (n, {self.dim}) with n >= 1")
        if not np.all(np.isfinite(xs)):
            raise self.fail(f"{where} returned non-finite coordinates:\n{xs}")
        outside = ~np.all((xs >= self.bounds.lower) & (xs <= self.bounds.upper), axis=1)
        if outside.any():
            raise self.fail(
                f"{where} returned {int(outside.sum())} point(s) outside the bounds, e.g. "
                f"{xs[outside][0].tolist()} (bounds {self.bounds.as_pairs()})"
            )
        return xs

    def stop(self, opt: BaseOptimizer, generation: int) -> dict:
        reasons = opt.stop()
        if not isinstance(reasons, dict):
            raise self.fail(
                f"stop() before generation {generation} returned {type(reasons).__name__}, "
                "expected a dict ({} to go on, {reason: value} to stop)"
            )
        return reasons

    def values(self, xs: np.ndarray, generation: int) -> np.ndarray:
        fs = self.objective(xs)
        if generation == _PENALTY_GENERATION:
            worst = float(fs.max())
            fs[-1] = worst + max(1.0, abs(worst))  # a failed evaluation, as the runner tells it
        return fs

    def run(self, opt: BaseOptimizer, generations: range) -> list[np.ndarray]:
        """Ask/tell ``generations``; return the asks.  Checks every step."""
        asks = []
        best = opt.result.fx
        for g in generations:
            if self.stop(opt, g):
                break
            xs = self.ask(opt, g)
            asks.append(xs.copy())
            fs = self.values(xs, g)
            try:
                opt.tell(xs, fs)
            except Exception as e:
                raise self.fail(f"tell() of generation {g} raised {type(e).__name__}: {e}") from e
            expected = min(best, float(fs.min()))
            got = opt.result.fx
            if got > best:
                raise self.fail(f"result.fx increased from {best} to {got} in generation {g}")
            if got != expected:
                raise self.fail(f"result.fx is {got} after generation {g}, but the best value told is {expected}")
            best = got
        self.stop(opt, generations.stop)
        return asks

    # ------------------------------------------------------------------ checks
    def check_options(self) -> None:
        check = self.cls.check_options
        try:
            check(**self.kwargs)
        except ConfigError as e:
            raise self.fail(f"check_options(**{self.kwargs!r}) rejected the settings under test: {e}") from e
        params = inspect.signature(self.cls.__init__).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            bogus = "no_such_option_for_check_optimizer"
            try:
                check(**self.kwargs, **{bogus: 1})
            except ConfigError:
                pass
            except Exception as e:
                raise self.fail(
                    f"check_options() raised {type(e).__name__} for the unknown option {bogus!r}; "
                    "it must raise glompo_like.errors.ConfigError naming the option"
                ) from e
            else:
                raise self.fail(
                    f"check_options() accepted the unknown option {bogus!r}; the class takes "
                    "**kwargs, so check_options must reject names it does not know with ConfigError"
                )

    def check_traits(self) -> None:
        for trait in CLASS_TRAITS:
            value = getattr(self.cls, trait)
            if not isinstance(value, bool):
                raise self.fail(f"the class trait {trait} must be True or False, got {value!r}")
        modules = self.cls.preload_modules
        if not (isinstance(modules, tuple) and all(isinstance(m, str) for m in modules)):
            raise self.fail(f"preload_modules must be a tuple of module names, got {modules!r}")
        opt = self.build()
        try:
            size, async_eval = opt.generation_size, opt.async_eval
        finally:
            opt.close()
        if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
            raise self.fail(f"generation_size must be an integer >= 1, got {size!r}")
        if not isinstance(async_eval, bool):
            raise self.fail(f"async_eval must be True or False, got {async_eval!r}")
        if async_eval and not self.cls.supports_async:
            raise self.fail(
                "async_eval is True but the class does not set supports_async = True: the runner "
                "would evaluate it through ask_one/tell_one; implement _ask_one/_tell_one and set "
                "supports_async = True, or leave async_eval False"
            )

    def check_repr(self) -> None:
        opt = self.build()
        try:
            text = repr(opt)
        finally:
            opt.close()
        if not (isinstance(text, str) and text.startswith(self.name)):
            raise self.fail(f"repr() should start with the class name and list the settings, got {text!r}")

    def check_pickles_before_first_ask(self) -> None:
        opt = self.build()
        copy = None
        try:
            try:
                copy = pickle.loads(pickle.dumps(opt))
            except Exception as e:
                raise self.fail(
                    f"does not pickle before its first ask() ({type(e).__name__}: {e}); process "
                    "backends send optimizers to child processes: create threads, pools and "
                    "other unpicklable resources lazily"
                ) from e
            if not np.array_equal(self.ask(opt, 0), self.ask(copy, 0)):
                raise self.fail(
                    "an unpickled copy asks different first points than the original; draw "
                    "random numbers only from self.rng and keep everything the asks depend on "
                    "in picklable attributes"
                )
        finally:
            opt.close()
            if copy is not None:
                copy.close()

    def check_runs(self) -> list[np.ndarray]:
        """One checked run with the reference seed; a second one must repeat it exactly."""
        runs = []
        for attempt in range(2):
            opt = self.build(_SEED)
            try:
                runs.append(self.run(opt, range(self.n)))
            finally:
                opt.close()
            if attempt == 0 and not runs[0]:
                raise self.fail("stop() asked to stop before the first ask()")
        if not _same(runs[0], runs[1]):
            raise self.fail(
                f"two runs with the same seed ({_SEED}) and the same values asked different points "
                f"(first difference in generation {_first_difference(runs[0], runs[1])}); draw "
                "random numbers only from self.rng"
            )
        return runs[0]

    def check_seeds(self, reference: list[np.ndarray]) -> None:
        if self.cls.deterministic:
            return
        opt = self.build(_OTHER_SEED)
        try:
            other = self.run(opt, range(self.n))
        finally:
            opt.close()
        if _same(reference, other):
            raise self.fail(
                f"seeds {_SEED} and {_OTHER_SEED} gave identical asks; draw random numbers from "
                "self.rng (or set the class attribute deterministic = True if it uses none)"
            )

    def check_state_round_trip(self, reference: list[np.ndarray]) -> None:
        if not self.cls.checkpointable:
            return
        split = min(max(1, self.n // 2), len(reference))
        original = self.build(_SEED)
        restored = None
        try:
            self.run(original, range(split))
            try:
                blob = pickle.dumps(original.get_state())
            except Exception as e:
                raise self.fail(
                    f"get_state() after generation {split - 1} failed or did not pickle "
                    f"({type(e).__name__}: {e}); set checkpointable = False on classes that "
                    "cannot save their state"
                ) from e
            restored = self.build(_OTHER_SEED)
            restored.set_state(pickle.loads(blob))
            rest = range(split, self.n)
            after_original = self.run(original, rest)
            after_restored = self.run(restored, rest)
        finally:
            original.close()
            if restored is not None:
                restored.close()
        if not _same(after_original, reference[split:]):
            raise self.fail(
                f"get_state() changed the optimizer: after it, the asks differ from an identical "
                f"run without it (generation {split + _first_difference(after_original, reference[split:])})"
            )
        if not _same(after_restored, after_original):
            raise self.fail(
                f"after a pickle round trip of get_state() (taken after generation {split - 1}) into "
                f"an optimizer built with another seed, set_state() did not restore it exactly: the "
                f"asks differ in generation {split + _first_difference(after_restored, after_original)}; "
                "save everything the next asks depend on in _get_state()"
            )


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _first_difference(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if not np.array_equal(x, y):
            return i
    return min(len(a), len(b)) if len(a) != len(b) else -1

