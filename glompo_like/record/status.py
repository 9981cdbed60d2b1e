"""Live status of a running optimization: progress lines in the log, or a live table.

A status reporter has two methods, both called by the manager from its own thread with
the run's read-only :class:`~glompo_like.record.view.RunView`:

``update(view)``
    while the run goes, at most once every ``status_interval`` seconds;
``close(view)``
    once, when the run has ended (after its optimizers were stopped).

Two reporters ship with the library:

:class:`LogStatus`
    one line per update through the :mod:`logging` logger ``"glompo_like.status"``
    (level INFO): evaluations, evaluations per second since the last update, the best
    value and which optimizer found it, how many optimizers are alive / were killed /
    converged / crashed.  Shown wherever logging is configured to go, e.g. after
    ``logging.basicConfig(level=logging.INFO)``.
:class:`RichStatus`
    a table redrawn in place on the terminal, with the same counters and the optimizers
    that are running.  Needs rich (``pip install 'glompo_like[progress]'``).

:func:`make_status` turns the names ``"auto"``, ``"rich"``, ``"log"`` (or ``None``: no
status) into a reporter.  Any object with ``update(view)`` and ``close(view)`` methods can
be used as a reporter too (subclass :class:`StatusReporter` for the rate bookkeeping).
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any, TextIO

from ..errors import ConfigError

__all__ = ["StatusReporter", "LogStatus", "RichStatus", "SafeStatus", "make_status", "STATUS_LOGGER",
           "rich_available"]

#: name of the logger :class:`LogStatus` writes to
STATUS_LOGGER = "glompo_like.status"
STATUS_KINDS = ("auto", "rich", "log", None)


def _fmt(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else "none yet"


class StatusReporter:
    """Base class of status reporters: keeps the evaluation rate between updates.

    Subclasses implement :meth:`show` (called by :meth:`update`) and may extend
    :meth:`close`.  :attr:`rate` is the evaluations per second since the previous update
    (since the start of the run at the first one).
    """

    def __init__(self) -> None:
        self._last_t: float | None = None
        self._last_evals = 0
        self.rate: float = math.nan
        self.n_updates = 0

    def _measure(self, view: Any) -> None:
        t = float(view.t_elapsed)
        evals = int(view.session_evals)
        t_prev = 0.0 if self._last_t is None else self._last_t
        evals_prev = 0 if self._last_t is None else self._last_evals
        dt = t - t_prev
        self.rate = (evals - evals_prev) / dt if dt > 0 else math.nan
        self._last_t, self._last_evals = t, evals

    def update(self, view: Any) -> None:
        """Show the state of the run (the manager calls this at most every
        ``status_interval`` seconds)."""
        self._measure(view)
        self.n_updates += 1
        self.show(view)

    def show(self, view: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, view: Any) -> None:
        """The run has ended: show its final state (once)."""

    # ---------------------------------------------------------------- shared text
    @staticmethod
    def best_text(view: Any) -> str:
        """``"1.2345 by optimizer 3 (CMAOptimizer)"``, or ``"none yet"``."""
        best = float(view.best_fx)
        if not math.isfinite(best):
            return "none yet"
        who = view.best_opt_id
        if who is None:
            return _fmt(best)
        try:
            kind = view.optimizer(who).opt_type
        except KeyError:
            return f"{_fmt(best)} by optimizer {who}"
        return f"{_fmt(best)} by optimizer {who} ({kind})"

    @staticmethod
    def optimizers_text(view: Any) -> str:
        """``"2 alive, 5 killed, 1 converged, 0 crashed"``."""
        return (f"{len(view.alive_ids)} alive, {view.opts_killed} killed, "
                f"{view.opts_converged} converged, {view.opts_crashed} crashed")

    def line(self, view: Any) -> str:
        """The one-line status: evaluations, rate, best value and who, optimizers."""
        rate = f"{self.rate:,.1f}/s" if math.isfinite(self.rate) else "-/s"
        return (f"{view.f_evals} evaluations ({rate}) | best {self.best_text(view)} | "
                f"optimizers: {self.optimizers_text(view)} | {view.t_elapsed:.1f} s")


class LogStatus(StatusReporter):
    """Status lines through :mod:`logging` (logger ``"glompo_like.status"``).

    Each update logs, at ``level`` (default INFO)::

        1200 evaluations (310.5/s) | best 0.0123 by optimizer 3 (CMAOptimizer) |
        optimizers: 2 alive, 4 killed, 1 converged, 0 crashed | 3.9 s

    and :meth:`close` logs the final state, prefixed ``finished:``, with the average rate
    of the whole run.
    """

    def __init__(self, logger: logging.Logger | str | None = None, level: int = logging.INFO) -> None:
        super().__init__()
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or STATUS_LOGGER)
        self.logger = logger
        self.level = level

    def show(self, view: Any) -> None:
        self.logger.log(self.level, "%s", self.line(view))

    def close(self, view: Any) -> None:
        t = float(view.t_elapsed)
        self.rate = view.session_evals / t if t > 0 else math.nan
        self.logger.log(self.level, "finished: %s", self.line(view))

    def __repr__(self) -> str:
        return f"LogStatus(logger={self.logger.name!r}, level={logging.getLevelName(self.level)!r})"


def rich_available() -> bool:
    """Whether rich is installed."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class RichStatus(StatusReporter):
    """A table redrawn in place on the terminal (needs rich: the ``progress`` extra).

    It shows the run's counters (evaluations, rate, best value and who found it,
    optimizers alive / killed / converged / crashed) and one row per running optimizer
    (at most ``max_rows``, the best ones first; at the end, the best optimizers of the
    run with how they ended).  Nothing is drawn in a thread: the table
    is redrawn when the manager calls :meth:`update`, and left on the screen with the
    final state by :meth:`close`.

    Parameters
    ----------
    console
        A :class:`rich.console.Console` to draw on (default: a new one on stdout).
    max_rows
        Most optimizers listed.
    """

    def __init__(self, console: Any = None, max_rows: int = 12) -> None:
        super().__init__()
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError as e:
            raise ImportError(
                "the live status table needs rich, which is not installed: "
                "pip install 'glompo_like[progress]' (or use status='log')"
            ) from e
        self.console = console if console is not None else Console()
        self.max_rows = max_rows
        self._live_cls = Live
        self._live: Any = None
        self._closed = False

    def table(self, view: Any, final: bool = False) -> Any:
        """The rich renderable of the current state: the run's counters above a table of
        the running optimizers (at the end: of all optimizers), best first."""
        from rich.console import Group
        from rich.table import Table

        rate = f"{self.rate:,.1f}/s" if math.isfinite(self.rate) else "-"
        state = "finished" if final else "running"
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        head.add_row("glompo_like run", f"{state} after {view.t_elapsed:.1f} s")
        head.add_row("evaluations", f"{view.f_evals} ({'average ' if final else ''}{rate})")
        head.add_row("best", self.best_text(view))
        head.add_row("optimizers", self.optimizers_text(view))

        t = Table(expand=False)
        t.add_column("optimizer", justify="right")
        t.add_column("type")
        t.add_column("evaluations", justify="right")
        t.add_column("best", justify="right")
        t.add_column("state")
        opts = view.optimizers
        shown = list(opts.values()) if final else [opts[i] for i in view.alive_ids if i in opts]
        shown.sort(key=lambda o: o.best_fx)
        for o in shown[: self.max_rows]:
            mark = " *" if o.opt_id == view.best_opt_id else ""
            t.add_row(str(o.opt_id), o.opt_type, str(o.n_evals), _fmt(o.best_fx) + mark,
                      "running" if o.alive else str(o.end_kind))
        extra = len(shown) - self.max_rows
        if extra > 0:
            t.add_row("…", f"{extra} more", "", "", "")
        if not shown:
            t.add_row("-", "no optimizer" if final else "no optimizer running", "", "", "")
        return Group(head, t)

    def show(self, view: Any) -> None:
        if self._closed:
            return
        renderable = self.table(view)
        if self._live is None:
            self._live = self._live_cls(
                renderable, console=self.console, auto_refresh=False,
                redirect_stdout=False, redirect_stderr=False, transient=False,
            )
            self._live.start(refresh=True)
        else:
            self._live.update(renderable, refresh=True)

    def close(self, view: Any) -> None:
        if self._closed:
            return
        t = float(view.t_elapsed)
        self.rate = view.session_evals / t if t > 0 else math.nan
        final = self.table(view, final=True)
        if self._live is None:
            self.console.print(final)
        else:
            self._live.update(final, refresh=True)
            self._live.stop()
            self._live = None
        self._closed = True

    def __repr__(self) -> str:
        return f"RichStatus(max_rows={self.max_rows})"


def make_status(kind: str | StatusReporter | None = "auto", stream: TextIO | None = None) -> Any:
    """The status reporter for ``kind``.

    ``"auto"``
        :class:`RichStatus` when rich is installed and ``stream`` (default: stdout) is a
        terminal, else :class:`LogStatus`;
    ``"rich"``
        :class:`RichStatus` (ImportError naming the ``progress`` extra if rich is missing);
    ``"log"``
        :class:`LogStatus`;
    ``None``
        no status: returns ``None``.

    An object with ``update`` and ``close`` methods is returned as it is.
    """
    if kind is None:
        return None
    if not isinstance(kind, str):
        if callable(getattr(kind, "update", None)) and callable(getattr(kind, "close", None)):
            return kind
        raise ConfigError(
            f"status must be one of {STATUS_KINDS} or an object with update(view) and close(view) "
            f"methods, got {kind!r}"
        )
    if kind == "log":
        return LogStatus()
    if kind == "rich":
        return RichStatus()
    if kind == "auto":
        stream = sys.stdout if stream is None else stream
        try:
            tty = bool(stream.isatty())
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            tty = False
        if tty and rich_available():
            from rich.console import Console

            return RichStatus(console=Console(file=stream) if stream is not sys.stdout else None)
        return LogStatus()
    raise ConfigError(f"status must be one of {STATUS_KINDS}, got {kind!r}")


class SafeStatus:
    """The manager's hold on its reporter (or on none): a reporter that fails is switched
    off and logged, never allowed to end the run."""

    def __init__(self, reporter: Any) -> None:
        self.reporter = reporter

    @property
    def on(self) -> bool:
        return self.reporter is not None

    def _call(self, method: str, view: Any) -> bool:
        if self.reporter is None:
            return False
        try:
            getattr(self.reporter, method)(view)
            return True
        except Exception:
            logging.getLogger("glompo_like.manager").exception(
                "the status reporter failed; status is off for the rest of the run")
            self.reporter = None
            return False

    def update(self, view: Any) -> bool:
        """Show the run; returns whether the reporter is still on."""
        return self._call("update", view)

    def close(self, view: Any) -> None:
        self._call("close", view)
