"""``glompo_like.minimize``: the managed run behind one call, scipy-style.

::

    from glompo_like import minimize

    res = minimize(f, [(-5, 5)] * 10, max_evals=20_000, seed=1)
    res.x, res.fun, res.nfev, res.message

It builds a :class:`~glompo_like.GloMPOManager` with the manager's defaults (every
setting can be passed by name), runs it, and returns a :class:`scipy.optimize.OptimizeResult`
(see :meth:`glompo_like.Result.to_scipy`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, SupportsFloat

import numpy as np

from .bounds import BoundsLike
from .errors import ConfigError, ConfigTypeError
from .manager import GloMPOManager
from .validation import integer

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult

    from .settings import ManagerOptions

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = ["minimize"]


class _WithArgs:
    """``fun(x, *args)`` as a picklable one-argument task (for process backends)."""

    def __init__(self, fun: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fun, self.args = fun, args
        self.__qualname__ = getattr(fun, "__qualname__", type(fun).__name__)

    def __call__(self, x: np.ndarray) -> Any:
        return self.fun(x, *self.args)


def minimize(
    fun: Callable[..., SupportsFloat],
    bounds: BoundsLike,
    *,
    args: tuple[Any, ...] = (),
    max_evals: int | None = None,
    **settings: Unpack[ManagerOptions],
) -> OptimizeResult:
    """Minimise ``fun`` over the box ``bounds`` with several managed optimizers at once.

    Parameters
    ----------
    fun
        The objective, ``fun(x, *args) -> float`` with ``x`` a 1-D float array.  With the
        default process backend it must be picklable (a module-level function; lambdas and
        closures work through cloudpickle).
    bounds
        ``[(lower, upper), ...]``, one pair per parameter (or a :class:`~glompo_like.Bounds`,
        an ``(n, 2)`` array, a :class:`scipy.optimize.Bounds`).
    args
        Extra positional arguments of ``fun``.
    max_evals
        The evaluation budget: shorthand for ``convergence_checker=MaxFuncCalls(max_evals)``
        (give one or the other).  Default: the manager's, ``MaxFuncCalls(10_000 * dim)``.
    **settings
        Any setting of :class:`~glompo_like.GloMPOManager` (``seed``, ``backend``,
        ``max_jobs``, ``working_dir``, ``callbacks``, ``status`` ...).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``success``, ``status``, ``message``, ``nfev`` and the manager's
        ``origin`` and ``stats`` (see :meth:`glompo_like.Result.to_scipy`).

    Examples
    --------
    .. code-block:: python

       from glompo_like import minimize
       from glompo_like.problems import sphere

       if __name__ == "__main__":
           res = minimize(sphere, [(-5, 5)] * 3, max_evals=3000, seed=1, backend="threads", status=None)
           print(res.fun < 1e-6, res.nfev <= 3000 + 100)
    """
    if not callable(fun):
        raise ConfigTypeError(f"minimize: fun must be a callable fun(x, *args) -> float, got {type(fun).__name__}")
    options: dict[str, Any] = dict(settings)
    if max_evals is not None:
        if options.get("convergence_checker") is not None:
            raise ConfigError("minimize: give max_evals or convergence_checker, not both "
                              "(e.g. convergence_checker=MaxFuncCalls(n) | TargetCost(0.0))")
        from .policies.checkers import MaxFuncCalls

        options["convergence_checker"] = MaxFuncCalls(integer(max_evals, "max_evals", owner="minimize",
                                                              minimum=1, example=20_000))
    if not isinstance(args, tuple):
        args = (args,)
    task = _WithArgs(fun, args) if args else fun
    with GloMPOManager(task, bounds, **options) as manager:
        return manager.start_manager().to_scipy()
