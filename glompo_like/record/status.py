"""Live status of a running optimization: progress lines in the log, or a live table.

A status reporter has two methods, both called by the manager from its own thread with
the run's read-only :class:`~glompo_like.record.view.RunView`:

``update(view)``
    while the run goes, at most once every ``status_interval`` seconds;
``close(view)``
    once, when the run has ended (after its optimizers were stopped).

Three reporters ship with the library:

:class:`LogStatus`
    one line per update through the :mod:`logging` logger ``"glompo_like.status"``
    (level INFO): evaluations, evaluations per second since the last update, the best
    value and which optimizer found it, how many optimizers are alive / were killed /
    converged / crashed, and the progress with an ETA.  Shown wherever logging is
    configured to go; when the application configured no logging at all, the lines of a
    run with ``status="auto"`` go to stderr (see :class:`LogStatus`).
:class:`RichStatus`
    a table redrawn in place on the terminal, with the same counters, a progress bar and
    the optimizers that are running.  Needs rich (``pip install 'glompo_like[progress]'``).
:class:`NotebookStatus`
    the same table as HTML, updated in place in a Jupyter notebook's output cell.

Progress and ETA: the manager hands each reporter a budget meter
(:class:`glompo_like.policies.progress.BudgetMeter`, from the run's convergence checker)
through :meth:`StatusReporter.set_budget`; :attr:`StatusReporter.progress` is then a
:class:`~glompo_like.record.progress.Progress` (which budget bounds the run, how much of it
is used, an estimate of the time left) or ``None`` when no budget bounds the run.

:func:`make_status` turns the names ``"auto"``, ``"rich"``, ``"log"`` (or ``None``: no
status) into a reporter.  Any object with ``update(view)`` and ``close(view)`` methods can
be used as a reporter too (subclass :class:`StatusReporter` for the rate and progress
bookkeeping).
"""

from __future__ import annotations

import html
import logging
import math
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ..errors import ConfigError
from .progress import Progress, RateWindow, format_duration

if TYPE_CHECKING:
    from .view import RunView

__all__ = ["StatusReporter", "LogStatus", "RichStatus", "NotebookStatus", "SafeStatus", "make_status",
           "STATUS_LOGGER", "rich_available", "in_notebook", "StatusLike"]

#: name of the logger :class:`LogStatus` writes to
STATUS_LOGGER = "glompo_like.status"
STATUS_KINDS = ("auto", "rich", "log", None)


class StatusLike(Protocol):
    """What ``status=`` takes besides a name: an object with ``update(view)`` and ``close(view)``."""

    def update(self, view: RunView, /) -> Any: ...

    def close(self, view: RunView, /) -> Any: ...


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
        self._meter: Callable[[Any, float], Progress | None] | None = None
        self._rates = RateWindow()
        #: how far the run is, with an ETA (``None``: no budget meter, or no budget bounds the run)
        self.progress: Progress | None = None

    def set_budget(self, meter: Callable[[Any, float], Progress | None] | None) -> None:
        """The manager gives the reporter ``meter(view, rate) -> Progress | None`` (see
        :class:`glompo_like.policies.progress.BudgetMeter`) before the run starts."""
        self._meter = meter

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
        if self._meter is not None:
            rate = self._rates.update(float(view.t_elapsed), int(view.f_evals), float(view.t_total))
            self.progress = self._meter(view, rate)
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
        """The one-line status: evaluations, rate, best value and who, optimizers, time,
        and the progress with its ETA when a budget bounds the run."""
        rate = f"{self.rate:,.1f}/s" if math.isfinite(self.rate) else "-/s"
        out = (f"{view.f_evals} evaluations ({rate}) | best {self.best_text(view)} | "
               f"optimizers: {self.optimizers_text(view)} | {view.t_elapsed:.1f} s")
        if self.progress is not None:
            out += f" | {self.progress.text()}"
        return out


class LogStatus(StatusReporter):
    """Status lines through :mod:`logging` (logger ``"glompo_like.status"``).

    Each update logs, at ``level`` (default INFO)::

        1200 evaluations (310.5/s) | best 0.0123 by optimizer 3 (CMAOptimizer) |
        optimizers: 2 alive, 4 killed, 1 converged, 0 crashed | 3.9 s

    followed, when a budget bounds the run, by ``| 37% of 20,000 evaluations, about
    1 min 12 s left``; :meth:`close` logs the final state, prefixed ``finished:``, with the
    average rate of the whole run.

    With ``ensure_output=True`` (what ``status="auto"`` uses when the output is not a
    terminal), the lines are seen even when the application configured no logging: if no
    handler other than a ``NullHandler`` would receive the logger's records, the reporter
    adds a handler writing to ``sys.stderr`` to that logger (and lowers its level to
    ``level``) at its first update, and removes both when the run ends.  Once the
    application configures logging itself (e.g. ``logging.basicConfig()``), that is used
    instead and nothing is added.  ``status=None`` shows nothing at all.
    """

    def __init__(self, logger: logging.Logger | str | None = None, level: int = logging.INFO,
                 ensure_output: bool = False) -> None:
        super().__init__()
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or STATUS_LOGGER)
        self.logger = logger
        self.level = level
        self.ensure_output = ensure_output
        self._installed: _Fallback | None = None

    def show(self, view: Any) -> None:
        if self.ensure_output and self._installed is None and not logging_configured(self.logger):
            self._installed = _Fallback.install(self.logger, self.level)
        self.logger.log(self.level, "%s", self.line(view))

    def close(self, view: Any) -> None:
        t = float(view.t_elapsed)
        self.rate = view.session_evals / t if t > 0 else math.nan
        self.progress = None
        try:
            if self.ensure_output and self._installed is None and not logging_configured(self.logger):
                self._installed = _Fallback.install(self.logger, self.level)
            self.logger.log(self.level, "finished: %s", self.line(view))
        finally:
            if self._installed is not None:
                self._installed.remove()
                self._installed = None

    def __repr__(self) -> str:
        return f"LogStatus(logger={self.logger.name!r}, level={logging.getLevelName(self.level)!r})"


def logging_configured(logger: logging.Logger) -> bool:
    """Whether a handler other than a ``NullHandler`` would receive ``logger``'s records
    (on it or, while records propagate, on its ancestors up to the root)."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) and not isinstance(h, _StderrHandler)
               for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("glompo_like: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _Fallback:
    """The one stderr handler shared by the runs that need it (several managers at once
    print each line once), with the level it replaced; removed with the last run."""

    _lock = threading.Lock()
    _active: dict[str, tuple[_StderrHandler, int, int]] = {}  # logger -> (handler, old level, users)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    @classmethod
    def install(cls, logger: logging.Logger, level: int) -> _Fallback:
        with cls._lock:
            entry = cls._active.get(logger.name)
            if entry is None:
                handler = _StderrHandler()
                logger.addHandler(handler)
                old = logger.level
                if logger.getEffectiveLevel() > level:
                    logger.setLevel(level)
                cls._active[logger.name] = (handler, old, 1)
            else:
                handler, old, users = entry
                cls._active[logger.name] = (handler, old, users + 1)
        return cls(logger)

    def remove(self) -> None:
        with self._lock:
            handler, old, users = self._active[self.logger.name]
            if users > 1:
                self._active[self.logger.name] = (handler, old, users - 1)
                return
            del self._active[self.logger.name]
            self.logger.removeHandler(handler)
            self.logger.setLevel(old)


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
        if self.progress is not None and not final:
            from rich.progress_bar import ProgressBar
            from rich.table import Table as Grid

            bar = Grid.grid(padding=(0, 1))
            bar.add_row(ProgressBar(total=1.0, completed=self.progress.fraction, width=30), self.progress.text())
            head.add_row("progress", bar)

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


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython is imported and its shell is the
    kernel's)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class NotebookStatus(StatusReporter):
    """The status as an HTML table in a Jupyter notebook, updated in place.

    It shows the same counters as :class:`RichStatus`, a progress bar with the ETA, and
    the running optimizers (at the end: the best of all).  The first update displays the
    table; later ones replace it through its display handle.

    Parameters
    ----------
    display
        ``display(obj, display_id=True) -> handle`` with ``handle.update(obj)`` (default:
        :func:`IPython.display.display`); tests pass a stand-in.
    max_rows
        Most optimizers listed.
    """

    def __init__(self, display: Callable[..., Any] | None = None, max_rows: int = 12) -> None:
        super().__init__()
        if display is None:
            from IPython.display import display as ipython_display

            display = ipython_display
        self._display = display
        self.max_rows = max_rows
        self._handle: Any = None
        self._closed = False

    def html(self, view: Any, final: bool = False) -> str:
        """The table as HTML (what the notebook shows)."""
        rate = f"{self.rate:,.1f}/s" if math.isfinite(self.rate) else "-"
        state = "finished" if final else "running"
        rows = [("glompo_like run", f"{state} after {format_duration(float(view.t_elapsed))}"),
                ("evaluations", f"{view.f_evals} ({'average ' if final else ''}{rate})"),
                ("best", self.best_text(view)),
                ("optimizers", self.optimizers_text(view))]
        head = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(v)}</td></tr>" for k, v in rows)
        if self.progress is not None and not final:
            p = self.progress
            head += (f"<tr><th style='text-align:left'>progress</th><td style='text-align:left'>"
                     f"<progress value='{p.fraction:.4f}' max='1' style='width:16em'></progress> "
                     f"{html.escape(p.text())}</td></tr>")
        opts = view.optimizers
        shown = list(opts.values()) if final else [opts[i] for i in view.alive_ids if i in opts]
        shown.sort(key=lambda o: o.best_fx)
        body = "".join(
            f"<tr><td>{o.opt_id}</td><td>{html.escape(o.opt_type)}</td><td>{o.n_evals}</td>"
            f"<td>{_fmt(o.best_fx)}{' *' if o.opt_id == view.best_opt_id else ''}</td>"
            f"<td>{'running' if o.alive else html.escape(str(o.end_kind))}</td></tr>"
            for o in shown[: self.max_rows])
        if len(shown) > self.max_rows:
            body += f"<tr><td colspan='5'>… {len(shown) - self.max_rows} more</td></tr>"
        table = ("<table><thead><tr><th>optimizer</th><th>type</th><th>evaluations</th><th>best</th>"
                 f"<th>state</th></tr></thead><tbody>{body}</tbody></table>") if shown else ""
        return f"<div class='glompo-like-status'><table>{head}</table>{table}</div>"

    def _show_html(self, text: str) -> None:
        obj = _HTML(text)
        if self._handle is None:
            self._handle = self._display(obj, display_id=True)
        else:
            self._handle.update(obj)

    def show(self, view: Any) -> None:
        if not self._closed:
            self._show_html(self.html(view))

    def close(self, view: Any) -> None:
        if self._closed:
            return
        t = float(view.t_elapsed)
        self.rate = view.session_evals / t if t > 0 else math.nan
        self._show_html(self.html(view, final=True))
        self._closed = True

    def __repr__(self) -> str:
        return f"NotebookStatus(max_rows={self.max_rows})"


class _HTML:
    """Rich display of an HTML string in Jupyter (what IPython.display.HTML does)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return "<glompo_like status>"


def make_status(kind: str | StatusLike | None = "auto", stream: TextIO | None = None) -> Any:
    """The status reporter for ``kind``.

    ``"auto"``
        :class:`NotebookStatus` in a Jupyter kernel; else :class:`RichStatus` when rich is
        installed and ``stream`` (default: stdout) is a terminal; else
        ``LogStatus(ensure_output=True)``: a line every ``status_interval`` seconds, on
        stderr if the application configured no logging;
    ``"rich"``
        :class:`RichStatus` (ImportError naming the ``progress`` extra if rich is missing);
    ``"log"``
        :class:`LogStatus` (through logging only, as configured by the application);
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
        if stream is None and in_notebook():
            return NotebookStatus()
        stream = sys.stdout if stream is None else stream
        try:
            tty = bool(stream.isatty())
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            tty = False
        if tty and rich_available():
            from rich.console import Console

            return RichStatus(console=Console(file=stream) if stream is not sys.stdout else None)
        return LogStatus(ensure_output=True)
    raise ConfigError(f"status must be one of {STATUS_KINDS}, got {kind!r}")


class SafeStatus:
    """The manager's hold on its reporter (or on none): gives it the run's budget meter
    (when it takes one: :meth:`StatusReporter.set_budget`); a reporter that fails is
    switched off and logged, never allowed to end the run."""

    def __init__(self, reporter: Any, meter: Callable[[Any, float], Progress | None] | None = None) -> None:
        self.reporter = reporter
        if reporter is not None and meter is not None and callable(getattr(reporter, "set_budget", None)):
            self._call("set_budget", meter)

    @property
    def on(self) -> bool:
        return self.reporter is not None

    def _call(self, method: str, arg: Any) -> bool:
        if self.reporter is None:
            return False
        try:
            getattr(self.reporter, method)(arg)
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
