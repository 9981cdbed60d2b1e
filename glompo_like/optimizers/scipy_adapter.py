"""``scipy.optimize.minimize`` as an ask/tell optimizer.

scipy owns its loop: it calls the objective and waits for the value.  The adapter runs
``minimize`` on a helper thread whose objective hands each point to the optimizer and
blocks until ``tell`` brings the value back::

    runner thread                          helper thread (started by the first ask)
    ─────────────                          ────────────────────────────────────────
    ask()  ◄── _Request(xs) ───────────────  objective(x) called by minimize
    (evaluate xs in the Level 2 pool)          │ blocks on the replies queue
    tell() ─── values ─────────────────────►   │ returns f (and a gradient) to scipy
           ◄── next _Request, or _Done ──────  minimize goes on, or returns
    stop() reads the message tell received: {} or {"scipy": message}
    close() ── _CLOSE ─────────────────────►  objective raises _Closed; the thread ends

``tell`` waits for the helper's next message, so ``stop()`` is exact: it reports scipy's
termination as soon as ``minimize`` has returned.

Gradient methods get a forward-difference gradient computed here: the point and its
``dim`` neighbours are asked as one batch (so a Level 2 pool evaluates them in parallel)
and ``minimize`` receives ``(f, grad)`` with ``jac=True``.
"""

from __future__ import annotations

import inspect
import queue
import threading
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from .base import BaseOptimizer

__all__ = ["ScipyOptimizer"]

#: Supported methods (lower case -> scipy's spelling).  All accept bounds.  COBYQA is left
#: out: scipy runs it under a process-wide lock, so two of them would block each other.
DERIVATIVE_FREE = {"nelder-mead": "Nelder-Mead", "powell": "Powell", "cobyla": "COBYLA"}
GRADIENT = {"l-bfgs-b": "L-BFGS-B", "tnc": "TNC", "slsqp": "SLSQP", "trust-constr": "trust-constr"}
METHODS = {**DERIVATIVE_FREE, **GRADIENT}

# scipy's private solver functions, read only to list the options each method accepts
_SOLVERS = {
    "nelder-mead": "_minimize_neldermead",
    "powell": "_minimize_powell",
    "cobyla": "_minimize_cobyla",
    "l-bfgs-b": "_minimize_lbfgsb",
    "tnc": "_minimize_tnc",
    "slsqp": "_minimize_slsqp",
    "trust-constr": "_minimize_trustregion_constr",
}
# solver parameters that are not options, or that glompo_like sets itself
_NOT_OPTIONS = {"fun", "func", "x0", "args", "jac", "grad", "hess", "hessp", "bounds", "callback", "unknown_options"}
_RESERVED = {
    "constraints": "constraints are not supported by ScipyOptimizer",
    "eps": "the gradient is computed by glompo_like: use fd_step= instead",
    "finite_diff_rel_step": "the gradient is computed by glompo_like: use fd_step= instead",
    "workers": "parallel evaluation is the Level 2 pool's job: give the optimizer entry workers=",
}


# ---------------------------------------------------------------------- messages
@dataclass(frozen=True)
class _Request:
    """The helper needs the values of ``xs``."""

    xs: np.ndarray


@dataclass(frozen=True)
class _Done:
    """``minimize`` returned."""

    message: str
    success: bool


@dataclass(frozen=True)
class _Failed:
    """``minimize`` raised ``error``."""

    error: BaseException


_CLOSE = object()


class _Closed(BaseException):
    """Raised inside the objective when the optimizer is closed mid-run.  A BaseException,
    so that no ``except Exception`` inside scipy can swallow it."""


class _Channel:
    """The two queues between the optimizer and its helper thread.  The helper references
    only this object (never the optimizer), so a forgotten optimizer can still be collected
    and its finalizer can end the thread."""

    def __init__(self) -> None:
        self.to_main: queue.Queue[Any] = queue.Queue()
        self.to_helper: queue.Queue[Any] = queue.Queue()

    def evaluate(self, xs: np.ndarray) -> np.ndarray:
        """Helper side: ask for the values of ``xs`` and wait for them."""
        self.to_main.put(_Request(xs))
        reply = self.to_helper.get()
        if reply is _CLOSE:
            raise _Closed
        return reply

    def receive(self, thread: threading.Thread) -> Any:
        """Main side: the helper's next message.  The helper always posts one before it
        ends, unless it was closed; a dead helper is reported instead of waited for."""
        while True:
            try:
                return self.to_main.get(timeout=0.5)
            except queue.Empty:
                if not thread.is_alive():
                    try:
                        return self.to_main.get_nowait()
                    except queue.Empty:
                        return _Failed(RuntimeError("the scipy helper thread ended without a result"))


def _shutdown(channel: _Channel, thread: threading.Thread, timeout: float) -> None:
    channel.to_helper.put(_CLOSE)
    thread.join(timeout)


# ---------------------------------------------------------------------- helper thread
def _run_minimize(
    channel: _Channel,
    method: str,
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    gradient: bool,
    fd_step: float,
    options: dict[str, Any],
) -> None:
    """The helper thread's body: run ``minimize`` with an objective served by ``channel``."""
    from scipy.optimize import Bounds, minimize

    def value(x: np.ndarray) -> float:
        return float(channel.evaluate(np.clip(x, lower, upper)[None, :])[0])

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        x = np.clip(np.asarray(x, dtype=float), lower, upper)
        h = fd_step * np.maximum(1.0, np.abs(x))
        h = np.where(x + h <= upper, h, -h)  # step backwards at the upper bound
        batch = np.clip(x + np.vstack([np.zeros_like(x), np.diag(h)]), lower, upper)
        fs = channel.evaluate(batch)
        steps = np.diag(batch[1:] - x)
        grad = np.divide(fs[1:] - fs[0], steps, out=np.zeros_like(x), where=steps != 0)
        return float(fs[0]), grad

    try:
        res = minimize(
            value_and_gradient if gradient else value,
            x0,
            method=method,
            jac=True if gradient else None,
            bounds=Bounds(lower, upper),
            options=options,
        )
    except _Closed:
        return
    except BaseException as e:  # reported to the runner by the next ask/tell
        channel.to_main.put(_Failed(e))
        return
    channel.to_main.put(_Done(str(res.message), bool(res.success)))


# ---------------------------------------------------------------------- the optimizer
class ScipyOptimizer(BaseOptimizer):
    """A local optimizer from :func:`scipy.optimize.minimize`, run on a helper thread.

    Parameters
    ----------
    method:
        One of ``"Nelder-Mead"``, ``"Powell"``, ``"COBYLA"`` (derivative free, one point
        per ask) or ``"L-BFGS-B"``, ``"TNC"``, ``"SLSQP"``, ``"trust-constr"`` (gradient
        based: ``dim + 1`` points per ask).  Case-insensitive.  Default ``"L-BFGS-B"``,
        scipy's own choice for bounded problems.  (``"COBYQA"`` is not offered: scipy runs
        it under a process-wide lock, so two optimizers using it would block each other.)
    fd_step:
        Forward-difference step of the gradient methods, relative to ``max(1, |x_i|)``.
        Default ``sqrt(machine epsilon)`` (about ``1.5e-8``), the usual optimum for forward
        differences of a smooth, noise-free function; use a larger step for noisy
        objectives.  At the upper bound the step is taken backwards.
    **options:
        Passed to ``minimize`` as ``options`` (e.g. ``maxiter=200``, ``ftol=1e-10``).
        Unknown names are rejected at construction.  ``eps``, ``finite_diff_rel_step``,
        ``workers`` and ``constraints`` are not accepted (see ``fd_step`` and the entry's
        ``workers``).

    Notes
    -----
    - Every point scipy evaluates is clipped into the bounds first (methods may step
      slightly outside); scipy receives the value of the clipped point.
    - ``stop()`` returns ``{"scipy": message}`` once ``minimize`` has returned.
    - The helper thread starts at the first ``ask()``, so the optimizer pickles until then.
      ``close()`` ends it promptly even mid-run.
    - Not checkpointable: a thread's stack cannot be saved, so ``get_state()`` and
      ``set_state()`` raise :class:`NotImplementedError` (``checkpointable = False``).
    """

    checkpointable: ClassVar[bool] = False
    deterministic: ClassVar[bool] = True
    #: Seconds ``close()`` waits for the helper thread to end.
    close_timeout: ClassVar[float] = 10.0

    def __init__(
        self,
        bounds: Any,
        x0: Any = None,
        seed: Any = None,
        *,
        method: str = "L-BFGS-B",
        fd_step: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(bounds, x0, seed)
        self.check_options(method=method, fd_step=fd_step, **options)
        key = method.lower()
        self.method = METHODS[key]
        self.gradient = key in GRADIENT
        self.fd_step = float(np.sqrt(np.finfo(float).eps)) if fd_step is None else float(fd_step)
        self.options = dict(options)
        self._channel: _Channel | None = None
        self._thread: threading.Thread | None = None
        self._finalizer: weakref.finalize | None = None
        self._pending: Any = None  # the helper's last message
        self._closed = False

    preload_modules = ("scipy.optimize",)

    @classmethod
    def preload(cls) -> None:
        import scipy.optimize  # noqa: F401

    @classmethod
    def check_options(cls, method: Any = "L-BFGS-B", fd_step: Any = None, **options: Any) -> None:
        """Raise :class:`ConfigError` for an unsupported method or an option it would not use."""
        if not isinstance(method, str) or method.lower() not in METHODS:
            raise ConfigError(
                f"ScipyOptimizer: method must be one of {sorted(METHODS.values())}, got {method!r}"
            )
        if fd_step is not None and not (
            isinstance(fd_step, (int, float)) and not isinstance(fd_step, bool) and 0 < fd_step < 1
        ):
            raise ConfigError(f"ScipyOptimizer: fd_step must be a number in (0, 1) or None, got {fd_step!r}")
        for name, why in _RESERVED.items():
            if name in options:
                raise ConfigError(f"ScipyOptimizer: option {name!r} is not accepted: {why}")
        known = _known_options(method.lower())
        if known is not None:
            unknown = sorted(set(options) - known)
            if unknown:
                raise ConfigError(
                    f"ScipyOptimizer: unknown option(s) {unknown} for method {METHODS[method.lower()]!r}; "
                    f"it accepts {sorted(known)}"
                )

    @property
    def generation_size(self) -> int:
        return self.bounds.dim + 1 if self.gradient else 1

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> np.ndarray:
        if self._closed:
            raise RuntimeError("ScipyOptimizer.ask() after close()")
        if self._thread is None:
            self._start()
        msg = self._pending
        if isinstance(msg, _Request):
            return msg.xs.copy()
        if isinstance(msg, _Failed):
            raise msg.error
        raise RuntimeError(
            f"ScipyOptimizer({self.method}) has finished ({msg!r}); check stop() before ask()"
        )

    def _tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        msg = self._pending
        if not isinstance(msg, _Request) or xs.shape != msg.xs.shape:
            raise ValueError("ScipyOptimizer.tell() expects the values of the points of the last ask()")
        assert self._channel is not None and self._thread is not None
        self._channel.to_helper.put(np.array(fs, dtype=float))
        self._pending = self._channel.receive(self._thread)
        if isinstance(self._pending, _Failed):
            raise self._pending.error

    def _start(self) -> None:
        channel = _Channel()
        thread = threading.Thread(
            target=_run_minimize,
            args=(
                channel,
                self.method,
                self.x0.copy(),
                self.bounds.lower.copy(),
                self.bounds.upper.copy(),
                self.gradient,
                self.fd_step,
                dict(self.options),
            ),
            name=f"ScipyOptimizer-{self.method}",
            daemon=True,
        )
        self._channel, self._thread = channel, thread
        self._finalizer = weakref.finalize(self, _shutdown, channel, thread, self.close_timeout)
        thread.start()
        self._pending = channel.receive(thread)

    def _stop(self) -> dict[str, Any]:
        if self._closed:
            return {"closed": True}
        if isinstance(self._pending, _Done):
            return {"scipy": self._pending.message}
        return {}

    def close(self) -> None:
        """End the helper thread (raising a private exception inside the objective if
        ``minimize`` is still running) and wait for it.  Idempotent."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict[str, Any]:
        raise NotImplementedError(
            "ScipyOptimizer cannot be checkpointed: scipy.optimize.minimize runs on a helper "
            "thread whose stack cannot be saved.  Restart it from the best point instead."
        )

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError(
            "ScipyOptimizer cannot be restored from a checkpoint (see get_state); start a new "
            "one from the best point instead."
        )

    def __getstate__(self) -> dict[str, Any]:
        if self._thread is not None:
            raise TypeError(
                "a ScipyOptimizer can only be pickled before its first ask(): after that its "
                "state lives on the stack of a helper thread"
            )
        return self.__dict__.copy()

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"ScipyOptimizer(method={self.method!r}, fd_step={self.fd_step:g}{extra})"


def _known_options(key: str) -> set[str] | None:
    """The options scipy's solver for ``key`` accepts, or ``None`` if it cannot be read
    (scipy then warns about unknown options itself)."""
    try:
        from scipy.optimize import _minimize
    except ImportError:
        return None
    solver = getattr(_minimize, _SOLVERS[key], None)
    if solver is None:
        return None
    params = inspect.signature(solver).parameters
    return {
        name
        for name, p in params.items()
        if name not in _NOT_OPTIONS
        and name not in _RESERVED
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }
