"""Plots of a run, drawn from its evaluation log (needs matplotlib: the ``plots`` extra).

::

    from glompo_like.record.report import make_report

    make_report("run1")            # three PNG files in run1/
    make_report("run1", "figs")    # ... in figs/

or, from the shell, ``glompo-like report run1 [--out DIR]``.  The files:

``best_per_optimizer.png``
    Each optimizer's best value so far against the run's evaluation number (one line per
    optimizer), with how it ended marked at its last evaluation: killed (x, labelled with
    the optimizer that hunted it), converged (o), crashed (triangle), stopped (square),
    failed (diamond); failed evaluations are ticks along the bottom.
``best_overall.png``
    The best value of the whole run so far, against evaluations (left) and against wall
    time since the run started (right).
``optimizer_timeline.png``
    When each optimizer ran: one bar per optimizer from its start to its end, coloured by
    how it ended, with an arrow from hunter to victim at each hunt and, below, who hunted
    whom and why.  An optimizer with no recorded end (still running, or the run was
    killed) extends to the last evaluation in the log.

Every title names the problem and its dimension; legends sit beside the axes, never over
a curve.  A run in which no evaluation succeeded says so on each plot and points to the
``error`` column of the log, with the first error.

The log is only read (one consistent snapshot), so a report can be made while a run is
going, and from the log of a run that was killed.  Figures are drawn on
:class:`matplotlib.figure.Figure` objects with the Agg canvas: pyplot is not used and no
global matplotlib state (backend, rcParams, open figures) is changed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .export import default_out, open_log_readonly, read_columns, source

__all__ = ["make_report", "make_html_report", "REPORT_NAMES", "HTML_NAME"]

#: the files written by :func:`make_report`
REPORT_NAMES = ("best_per_optimizer.png", "best_overall.png", "optimizer_timeline.png")
#: the file written by :func:`make_html_report`
HTML_NAME = "report.html"

_END_MARKERS = {"killed": ("x", "killed"), "converged": ("o", "converged"), "crashed": ("^", "crashed"),
                "stopped": ("s", "stopped"), "failed": ("D", "failed")}
_KILLED_BY = re.compile(r"killed by optimizer (\d+): (.*)", re.S)
_LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}  # beside the axes
_MAX_LABELS = 20  # optimizers named in a legend
_END_COLOURS = {
    "converged": "tab:green",
    "killed": "tab:red",
    "crashed": "tab:purple",
    "stopped": "tab:blue",
    "failed": "tab:brown",
    None: "tab:gray",  # no end recorded: running, or the run was killed
}
_DPI = 100


def _import_matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "the run report needs matplotlib, which is not installed: "
            "pip install 'glompo_like[plots]'"
        ) from e
    return Figure, FigureCanvasAgg


# --------------------------------------------------------------------------- data
@dataclass
class _Trace:
    opt_id: int
    label: str
    eval_ids: np.ndarray  # the run's evaluation numbers of this optimizer's evaluations
    best: np.ndarray  # its best value so far after each (NaN before its first success)
    end_kind: str | None


@dataclass
class _RunData:
    evals: dict[str, np.ndarray]
    opts: dict[str, np.ndarray]
    fx_ok: np.ndarray  # fx of successful evaluations, NaN for the others
    t0: float  # wall clock of the run's start (seconds since the epoch)
    t_last: float  # wall clock of the last evaluation's end
    problem: str  # "rastrigin, 10 dimensions"
    first_error: str | None  # the first failed evaluation's error (its last line)

    @property
    def n(self) -> int:
        return len(self.fx_ok)

    def title(self, what: str) -> str:
        return f"{self.problem}: {what}"

    def hunts(self) -> list[tuple[int, int, str]]:
        """``(hunter, victim, why)`` of every optimizer that was hunted."""
        out = []
        for oid, kind, reason in zip(self.opts["opt_id"], self.opts["end_kind"], self.opts["end_reason"],
                                     strict=True):
            m = _KILLED_BY.match(reason or "") if kind == "killed" else None
            if m:
                out.append((int(m.group(1)), int(oid), m.group(2)))
        return out

    def no_success_text(self) -> str:
        """What a plot says when no evaluation succeeded."""
        if not self.n:
            return "no evaluation in the log yet"
        text = (f"no successful evaluation: all {self.n} evaluations failed;\n"
                "see the error column of the log: glompo_like.read_log(run_dir)['error']")
        if self.first_error:
            first = self.first_error if len(self.first_error) <= 90 else self.first_error[:87] + "..."
            text += f"\nfirst error: {first}"
        return text


def _problem(db: Any) -> str:
    """``"<task>, <dim> dimensions"`` from the log's meta table (the run's settings)."""
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except Exception:
        meta = {}
    task = None
    try:
        task = json.loads(meta.get("run") or "{}").get("task")
        task = task or json.loads(meta.get("fingerprint") or "{}").get("task")  # a study's
    except (ValueError, AttributeError):
        task = None
    dim = meta.get("dim")
    name = str(task) if task else "run"
    return f"{name}, {dim} dimension{'s' if str(dim) != '1' else ''}" if dim else name


def _load(run_dir: str | os.PathLike) -> _RunData:
    with open_log_readonly(run_dir) as db:
        evals = read_columns(db, "evaluations", ("eval_id", "opt_id", "fx", "status", "t_start", "duration"))
        opts = read_columns(db, "optimizers", ("opt_id", "type", "t_start", "t_end", "n_evals", "best_fx", "end_kind",
                                               "end_reason"))
        problem = _problem(db)
        row = db.execute("SELECT error FROM evaluations WHERE status != 'ok' AND error IS NOT NULL "
                         "ORDER BY eval_id LIMIT 1").fetchone()
    lines = (row[0] or "").strip().splitlines() if row else []
    first_error = lines[-1] if lines else None
    ok = np.array([s == "ok" for s in evals["status"]], dtype=bool)
    fx_ok = np.where(ok, evals["fx"], np.nan)
    fx_ok[~np.isfinite(fx_ok)] = np.nan
    starts = np.concatenate([evals["t_start"], opts["t_start"]])
    starts = starts[np.isfinite(starts)]
    ends = evals["t_start"] + np.nan_to_num(evals["duration"], nan=0.0)
    ends = np.concatenate([ends, opts["t_end"]])
    ends = ends[np.isfinite(ends)]
    t0 = float(starts.min()) if len(starts) else 0.0
    t_last = float(ends.max()) if len(ends) else t0
    return _RunData(evals, opts, fx_ok, t0, max(t_last, t0), problem, first_error)


def _best_so_far(fx: np.ndarray) -> np.ndarray:
    """Running minimum ignoring NaN (NaN until the first finite value)."""
    if not len(fx):
        return fx.copy()
    best = np.minimum.accumulate(np.where(np.isnan(fx), np.inf, fx))
    return np.where(np.isinf(best), np.nan, best)


def _traces(d: _RunData) -> list[_Trace]:
    opt_ids = d.evals["opt_id"]
    eval_ids = d.evals["eval_id"]
    kinds = {int(i): k for i, k in zip(d.opts["opt_id"], d.opts["end_kind"], strict=True)}
    types = {int(i): t for i, t in zip(d.opts["opt_id"], d.opts["type"], strict=True)}
    order = np.argsort(opt_ids, kind="stable")
    ids_sorted = opt_ids[order]
    uniq, first = np.unique(ids_sorted, return_index=True)
    out = []
    for k, oid in enumerate(uniq):
        idx = order[first[k]: first[k + 1] if k + 1 < len(first) else len(order)]
        i = int(oid)
        label = f"{i} {types.get(i) or ''}".rstrip()
        out.append(_Trace(i, label, eval_ids[idx], _best_so_far(d.fx_ok[idx]), kinds.get(i)))
    return out


def _positive(*arrays: np.ndarray) -> bool:
    """Whether there is at least one finite value and every finite value is > 0 (then a
    log scale shows the approach to the minimum best)."""
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    return bool(len(vals)) and bool(np.all(vals > 0))


def _no_data(ax: Any, text: str = "no successful evaluation in the log yet") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


# --------------------------------------------------------------------------- figures
def _new_figure(Figure: Any, Canvas: Any, size: tuple[float, float]) -> Any:
    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    Canvas(fig)  # attach the Agg canvas explicitly (non-interactive, nothing global)
    return fig


def _legend(ax: Any, handles: list[Any], labels: list[str], title: str | None = None) -> None:
    """A legend beside the axes (it never hides a curve)."""
    if handles:
        ax.legend(handles, labels, fontsize="small", title=title, title_fontsize="small", **_LEGEND)


def _fail_ticks(ax: Any, d: _RunData, x: np.ndarray) -> Any:
    """Failed evaluations as ticks along the bottom of the axes (at their x); returns the
    legend handle, or ``None`` when nothing failed."""
    failed = ~np.isfinite(d.fx_ok)
    if not failed.any():
        return None
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transData, ax.transAxes)
    return ax.plot(x[failed], np.full(int(failed.sum()), 0.015), linestyle="none", marker="|", markersize=9,
                   color="tab:red", alpha=0.6, transform=trans, clip_on=False)[0]


def _plot_per_optimizer(fig: Any, d: _RunData) -> None:
    ax = fig.subplots()
    traces = _traces(d)
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    cmap = colormaps["tab10" if len(traces) <= 10 else "tab20"]
    hunted_by = {victim: hunter for hunter, victim, _ in d.hunts()}
    handles: list[Any] = []
    labels: list[str] = []
    marked: set[str] = set()
    drawn = 0
    for n, t in enumerate(traces):
        good = np.isfinite(t.best)
        if not good.any():
            continue
        colour = cmap(n % cmap.N)
        (line,) = ax.plot(t.eval_ids[good], t.best[good], drawstyle="steps-post", color=colour, lw=1.2)
        drawn += 1
        if drawn <= _MAX_LABELS:
            handles.append(line)
            labels.append(t.label)
        marker = _END_MARKERS.get(t.end_kind or "")
        if marker is not None:
            sym, _ = marker
            x_end, y_end = t.eval_ids[-1], t.best[good][-1]
            ax.plot([x_end], [y_end], linestyle="none", marker=sym, markersize=8, markeredgewidth=1.8,
                    color=colour, markerfacecolor="none" if sym != "x" else colour)
            marked.add(t.end_kind or "")
            if t.opt_id in hunted_by:
                ax.annotate(f"by {hunted_by[t.opt_id]}", (x_end, y_end), xytext=(4, 4), textcoords="offset points",
                            fontsize="x-small", color=colour)
    if drawn > _MAX_LABELS:
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(f"... {drawn - _MAX_LABELS} more")
    if not drawn:
        _no_data(ax, d.no_success_text())
    elif _positive(*(t.best for t in traces)):
        ax.set_yscale("log")
    ticks = _fail_ticks(ax, d, d.evals["eval_id"].astype(float))
    ax.set_xlabel("evaluation number (whole run)")
    ax.set_ylabel("best value so far")
    ax.set_title(d.title("best value of each optimizer"))
    ax.grid(True, alpha=0.3)
    for kind in _END_MARKERS:
        if kind in marked:
            sym, what = _END_MARKERS[kind]
            handles.append(Line2D([], [], linestyle="none", marker=sym, color="0.2",
                                  markerfacecolor="none" if sym != "x" else "0.2", markersize=8))
            labels.append(what + (" (by: the hunter)" if kind == "killed" and hunted_by else ""))
    if ticks is not None:
        handles.append(ticks)
        labels.append(f"failed evaluation ({int((~np.isfinite(d.fx_ok)).sum())})")
    _legend(ax, handles, labels, title="optimizer")


def _plot_overall(fig: Any, d: _RunData) -> None:
    ax_n, ax_t = fig.subplots(1, 2, sharey=True)
    best_n = _best_so_far(d.fx_ok)
    t_done = d.evals["t_start"] + np.nan_to_num(d.evals["duration"], nan=0.0) - d.t0
    order = np.argsort(t_done, kind="stable")
    best_t = _best_so_far(d.fx_ok[order])
    ok_n, ok_t = np.isfinite(best_n), np.isfinite(best_t) & np.isfinite(t_done[order])
    if ok_n.any():
        ax_n.plot(d.evals["eval_id"][ok_n], best_n[ok_n], drawstyle="steps-post", color="tab:blue")
        ax_t.plot(t_done[order][ok_t], best_t[ok_t], drawstyle="steps-post", color="tab:blue")
        final = best_n[ok_n][-1]
        ax_n.set_title(d.title(f"best value of the run: {final:.6g}"), fontsize="medium")
        if _positive(best_n):
            ax_n.set_yscale("log")
    else:
        _no_data(ax_n, d.no_success_text())
        _no_data(ax_t, "(nothing to draw)")
        ax_n.set_title(d.title("best value of the run"), fontsize="medium")
    ticks = _fail_ticks(ax_n, d, d.evals["eval_id"].astype(float))
    _fail_ticks(ax_t, d, t_done)
    ax_t.set_title("... against wall time", fontsize="medium")
    ax_n.set_xlabel("evaluations")
    ax_t.set_xlabel("seconds since the run started")
    ax_n.set_ylabel("best value so far")
    for ax in (ax_n, ax_t):
        ax.grid(True, alpha=0.3)
    if ticks is not None:
        _legend(ax_t, [ticks], [f"failed evaluation ({int((~np.isfinite(d.fx_ok)).sum())})"])


def _plot_timeline(fig: Any, d: _RunData) -> None:
    hunts = d.hunts()
    if hunts:
        ax, ax_text = fig.subplots(2, 1, height_ratios=[3, 1])
    else:
        ax, ax_text = fig.subplots(), None
    o = d.opts
    n = len(o["opt_id"])
    if n == 0:
        _no_data(ax, "no optimizer in the log yet")
    starts = o["t_start"] - d.t0
    ends = np.where(np.isfinite(o["t_end"]), o["t_end"], d.t_last) - d.t0
    starts = np.where(np.isfinite(starts), starts, 0.0)
    ends = np.maximum(ends, starts)
    y = np.arange(n)
    kinds = list(o["end_kind"])
    colours = [_END_COLOURS.get(k, "tab:olive") for k in kinds]
    open_end = ~np.isfinite(o["t_end"])
    if n:
        ax.barh(y, ends - starts, left=starts, color=colours, height=0.7)
        if open_end.any():  # no recorded end: hatch them
            ax.barh(y[open_end], (ends - starts)[open_end], left=starts[open_end], height=0.7,
                    color="none", edgecolor="0.3", hatch="//", linewidth=0)
        ax.set_yticks(y, [str(int(i)) for i in o["opt_id"]], fontsize="small" if n <= 40 else "xx-small")
        ax.invert_yaxis()
        row = {int(i): k for k, i in enumerate(o["opt_id"])}
        for hunter, victim, _ in hunts:  # an arrow from the hunter's bar to the victim's end
            if hunter in row and victim in row:
                t = ends[row[victim]]
                ax.annotate("", xy=(t, row[victim]), xytext=(t, row[hunter]),
                            arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.0, "alpha": 0.8})
        from matplotlib.patches import Patch

        seen = [k for k in ("converged", "killed", "crashed", "stopped", "failed") if k in kinds]
        handles: list[Any] = [Patch(color=_END_COLOURS[k], label=k) for k in seen]
        handles += [Patch(facecolor=_END_COLOURS.get(k, "tab:olive"), label=str(k))
                    for k in sorted({k for k in kinds if k is not None and k not in _END_COLOURS})]
        if open_end.any():
            handles.append(Patch(facecolor=_END_COLOURS[None], edgecolor="0.3", hatch="//",
                                 label="no end recorded\n(running, or the run was killed)"))
        if hunts:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color="tab:red", marker=">", label="hunt: hunter → victim"))
        _legend(ax, handles, [str(h.get_label()) for h in handles])
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("optimizer")
    ax.set_title(d.title("optimizer lifetimes"))
    ax.grid(True, axis="x", alpha=0.3)
    if ax_text is not None:
        ax_text.axis("off")
        shown = hunts[:12]
        lines = [f"{victim} hunted by {hunter}: {why if len(why) <= 110 else why[:107] + '...'}"
                 for hunter, victim, why in shown]
        if len(hunts) > len(shown):
            lines.append(f"... and {len(hunts) - len(shown)} more hunts (the log's end_reason column)")
        ax_text.text(0.0, 1.0, "Hunts\n" + "\n".join(lines), va="top", ha="left", fontsize="x-small",
                     family="monospace", transform=ax_text.transAxes)


def make_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Draw the plots of a run from its evaluation log and save them as PNG files.

    Parameters
    ----------
    run_dir
        The run's working directory (or its ``evaluations.sqlite`` file), or a study's
        storage URL (``"sqlite:///..."``, ``"postgresql://..."``: optimizers and
        evaluations of every manager, with the study-wide ids).  The log is only read; the
        run may still be going or may have been killed.
    out_dir
        Where to write the PNG files (created if needed; default: the run directory, or
        the directory of the SQLite file; needed for a study on a database server).

    Returns
    -------
    list of Path
        ``best_per_optimizer.png``, ``best_overall.png`` and ``optimizer_timeline.png``
        in ``out_dir`` (see the module documentation for what each shows).

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install 'glompo_like[plots]'``).
    FileNotFoundError
        there is no evaluation log at ``run_dir``.
    """
    Figure, Canvas = _import_matplotlib()
    where = source(run_dir)
    out = default_out(where, out_dir)
    data = _load(where)
    out.mkdir(parents=True, exist_ok=True)
    n_opts = len(data.opts["opt_id"])
    plots = (
        (REPORT_NAMES[0], _plot_per_optimizer, (11.0, 5.5)),
        (REPORT_NAMES[1], _plot_overall, (13.0, 4.5)),
        (REPORT_NAMES[2], _plot_timeline, (11.0, max(3.0, min(0.25 * n_opts + 1.5, 20.0))
                                           + (0.0 if not data.hunts() else 0.16 * min(len(data.hunts()), 13) + 0.6))),
    )
    written = []
    for name, draw, size in plots:
        fig = _new_figure(Figure, Canvas, size)
        draw(fig, data)
        path = out / name
        tmp = path.with_name(path.stem + ".tmp.png")
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
        written.append(path)
    return written


def make_html_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Write ``report.html``: the dashboard's page of the run, with its data and Plotly's
    JavaScript inside, as one file that any browser opens without a server or a network
    (zoom, hover, hide or show each optimizer).  Needs plotly
    (``pip install 'glompo_like[interactive]'``); returns the file's path."""
    from .dashboard import static_page

    where = source(run_dir)
    if isinstance(where, str):
        raise ConfigError(f"the HTML report reads a run's log or a SQLite study, not a study on a database "
                          f"server ({where}): make the PNG report (make_report) or export it")
    page = static_page(where)
    out = default_out(where, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / HTML_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
