"""The ``glompo-like`` command line (also ``python -m glompo_like``).

Commands::

    glompo-like demo       a small managed run on a built-in test function, with a result table
    glompo-like report     plots (PNG) of a run from its evaluation log (needs matplotlib), or
                           with --html one self-contained interactive page (needs plotly)
    glompo-like dashboard  a local web page that follows a run from its log (needs plotly)
    glompo-like export     a run's evaluation log as CSV files (or HDF5)
    glompo-like log        the last evaluations of a run: value, status, sample, metadata
    glompo-like resume     continue a run from a checkpoint

Each command is a function ``_cmd_<name>(args) -> int``; :func:`main` parses the arguments
and returns the exit code.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .errors import GlompoError
from .policies.base import Checker
from .problems.functions import FUNCTIONS
from .settings import LEVEL1

__all__ = ["main", "build_parser"]

PROG = "glompo-like"
_REASON_WIDTH = 60


# --------------------------------------------------------------------------- parsing
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _run_or_study(text: str) -> Path | str:
    """A run's directory (or log file), or a study's storage URL (kept as text: a path
    would fold its '//')."""
    return text if "://" in text else Path(text)


_DASH_HINT = (
    "A path that starts with '-' goes after '--' (glompo-like export -- -run1) or as ./-run1; "
    "an option takes it as --working-dir=-run1."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``glompo-like`` (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Globally managed parallel optimization: run several optimizers at once on one "
            "objective, stop the ones that stall, start new ones, keep a log of every evaluation."
        ),
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command.  {_DASH_HINT}",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="print the manager's progress messages (optimizers started, killed, ...) while it runs",
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a small managed optimization on a built-in test function and print the result",
        description=(
            "Run the manager on a built-in test function (default: 10-D Rastrigin) with CMA-ES "
            "optimizers until the evaluation budget is used or the known minimum is reached, "
            "then print the result and a table of the optimizers from the evaluation log."
        ),
    )
    demo.add_argument("--function", choices=sorted(FUNCTIONS), default="rastrigin",
                      help="test function to minimise (default: %(default)s)")
    demo.add_argument("--dim", type=_positive_int, default=10, metavar="N",
                      help="number of parameters (default: %(default)s)")
    demo.add_argument("--budget", type=_positive_int, default=20_000, metavar="N",
                      help="the run's budget: evaluations, all optimizers together (default: %(default)s)")
    demo.add_argument("--evals", type=_positive_int, dest="budget", help=argparse.SUPPRESS)  # (old name)
    demo.add_argument("--backend", choices=LEVEL1, default="processes",
                      help="how the optimizers run side by side (Level 1 parallelism; 'auto' measures "
                           "the function first and chooses; default: %(default)s)")
    demo.add_argument("--max-jobs", type=_positive_int, default=2, metavar="N",
                      help="optimizers running at the same time (default: %(default)s)")
    demo.add_argument("--seed", type=_non_negative_int, default=1, metavar="N",
                      help="random seed; the same seed gives the same start points (default: %(default)s)")
    demo.add_argument("--working-dir", type=Path, default=None, metavar="DIR",
                      help="where the evaluation log and summary are written "
                           "(default: a new temporary directory)")
    demo.set_defaults(handler=_cmd_demo)

    report = commands.add_parser(
        "report",
        help="draw plots of a run (PNG files) from its evaluation log",
        description=(
            "Draw three plots from the evaluation log of a run and save them as PNG files: "
            "each optimizer's best value against the number of evaluations (with kills, "
            "convergences and crashes marked), the best value of the whole run against "
            "evaluations and against time, and a timeline of when each optimizer ran. "
            "The log is only read, so this works while the run is going and after it was "
            "killed.  Needs matplotlib: pip install 'glompo_like[plots]'."
        ),
    )
    report.add_argument("run_dir", type=_run_or_study, metavar="RUN_DIR",
                        help="the run's working directory (where evaluations.sqlite is), or a study's "
                             "storage URL (sqlite:///path/to/study.db, postgresql://user@host/dbname)")
    report.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where to save the files (default: RUN_DIR, or the directory of a SQLite "
                             "study's file; needed for a study on a database server)")
    report.add_argument("--html", action="store_true",
                        help="write report.html instead: one self-contained interactive page (the "
                             "dashboard's, with the data inside; opens without a network). Needs plotly: "
                             "pip install 'glompo_like[interactive]'")
    report.set_defaults(handler=_cmd_report)

    dashboard = commands.add_parser(
        "dashboard",
        help="serve a local web page that follows a run from its evaluation log",
        description=(
            "Serve a web page that follows a run from its evaluation log: the best value of every "
            "optimizer against evaluations and time, evaluations per second, the optimizers with "
            "their states and who hunted whom, failed evaluations, the settings and how the run "
            "ended.  It refreshes while the run goes and only reads the log, so it never blocks "
            "the run; start it before, during or after the run.  Needs plotly: "
            "pip install 'glompo_like[interactive]'."
        ),
    )
    dashboard.add_argument("run_dir", metavar="RUN_DIR", help="the run's working directory (where "
                           "evaluations.sqlite is or will be), or a study's URL (sqlite:///study.db, postgresql://...)")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default: %(default)s, this machine only)")
    dashboard.add_argument("--port", type=_non_negative_int, default=8050, metavar="N",
                           help="port to listen on; 0 picks a free one (default: %(default)s)")
    dashboard.add_argument("--refresh", type=float, default=2.0, metavar="SECONDS",
                           help="how often the page asks for new data (default: %(default)s)")
    dashboard.set_defaults(handler=_cmd_dashboard)

    export = commands.add_parser(
        "export",
        help="write a run's evaluation log as CSV files (or HDF5) for other tools",
        description=(
            "Copy the two tables of a run's evaluation log into files that spreadsheets, "
            "pandas, R and other tools read directly: evaluations.csv (one row per "
            "evaluation: its optimizer, point x_0 ..., value fx, status, timing) and "
            "optimizers.csv (one row per optimizer: type, settings, start, end, how and "
            "why it ended).  With --hdf5, both tables go into evaluations.h5 (needs h5py: "
            "pip install 'glompo_like[hdf5]').  Without --csv or --hdf5, CSV is written.  "
            "The log is only read, so this works while the run is going."
        ),
    )
    export.add_argument("run_dir", type=_run_or_study, metavar="RUN_DIR",
                        help="the run's working directory (where evaluations.sqlite is), or a study's "
                             "storage URL (sqlite:///path/to/study.db, postgresql://user@host/dbname)")
    export.add_argument("--csv", action="store_true",
                        help="write evaluations.csv and optimizers.csv (the default)")
    export.add_argument("--hdf5", action="store_true",
                        help="write evaluations.h5 with both tables (needs h5py)")
    export.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where to write the files (default: RUN_DIR, or the directory of a SQLite "
                             "study's file; needed for a study on a database server)")
    export.set_defaults(handler=_cmd_export)

    evals = commands.add_parser(
        "log",
        help="print the last evaluations of a run, with their sample number and metadata",
        description="Print the last evaluations of a run from its evaluation log: id, optimizer, "
        "value, status, sample (which measurement of its point, with samples > 1), worker and the "
        "metadata the task returned with where the evaluation ran.  The log is only read.",
    )
    evals.add_argument("run_dir", type=_run_or_study, metavar="RUN_DIR",
                       help="the run's working directory (or its evaluations.sqlite), or a study's storage "
                            "URL (sqlite:///path/to/study.db, postgresql://user@host/dbname)")
    evals.add_argument("--last", type=_positive_int, default=20, metavar="N",
                       help="how many evaluations, the newest last (default: 20)")
    evals.add_argument("--opt", type=_positive_int, default=None, metavar="ID",
                       help="only the evaluations of this optimizer")
    evals.set_defaults(handler=_cmd_log)

    resume = commands.add_parser(
        "resume",
        help="continue a run from a checkpoint",
        description="Continue a run from a checkpoint file (or a directory: its newest "
        "checkpoint), optionally with a larger budget.  Only load checkpoints you trust: "
        "loading one runs pickle-level code.",
    )
    resume.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                        help="a checkpoint file, or a directory holding checkpoints")
    resume.add_argument("--task", metavar="MODULE:FUNCTION", default=None,
                        help="the objective, if the checkpoint could not store it "
                        "(e.g. mypackage.sim:energy)")
    resume.add_argument("--budget", type=_positive_int, default=None, metavar="N",
                        help="new budget: total evaluations of the whole run, those before the "
                             "checkpoint included (default: the run's own checkers)")
    resume.add_argument("--evals", type=_positive_int, dest="budget", help=argparse.SUPPRESS)  # (old name)
    resume.add_argument("--max-jobs", type=_positive_int, default=None, metavar="N",
                        help="slots for the resumed run (default: as before)")
    resume.set_defaults(handler=_cmd_resume)

    stop = commands.add_parser(
        "stop", help="end a study: every manager working on it ends at its next sync",
        description="End the study at STUDY_URL (sqlite:///path/to/study.db or "
        "postgresql://user@host/dbname): every manager of it ends cleanly within a second or so.")
    stop.add_argument("study", metavar="STUDY_URL", help="the study's storage URL")
    stop.add_argument("--reason", default=None, help="why (shown in every manager's end reason)")
    stop.set_defaults(handler=_cmd_stop)

    status = commands.add_parser(
        "status", help="every manager and running optimizer of a study",
        description="Show the study at STUDY_URL: its evaluations and best value, every manager "
        "(running, ended or lost: managers whose heartbeat is older than the study's timeout are "
        "marked lost now) and the optimizers that are running.")
    status.add_argument("study", metavar="STUDY_URL", help="the study's storage URL")
    status.set_defaults(handler=_cmd_status)
    return parser


def _cmd_stop(args: argparse.Namespace) -> int:
    import getpass
    import socket

    from .record.study import open_existing

    study = open_existing(args.study)
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
        reason = args.reason or f"stopped with '{PROG} stop' by {who}"
        if study.request_stop(reason, who):
            print(f"study {args.study}: stop requested ({reason}); its managers end at their next sync")
        else:
            print(f"study {args.study}: already stopped ({study.snapshot().stop_reason})")
    finally:
        study.close()
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import time

    from .record.study import open_existing

    study = open_existing(args.study)
    try:
        timeout = float(study.fingerprint().get("study_timeout", 60.0))
        study.mark_lost(timeout)
        snap = study.snapshot()
        names, rows = study.read_rows("managers")
        managers = [dict(zip(names, r, strict=True)) for r in rows]
        names, rows = study.read_rows("optimizers")
        opts = [dict(zip(names, r, strict=True)) for r in rows]
    finally:
        study.close()
    now = time.time()
    print(f"study {args.study}: {snap.n_evals} evaluations, best {_fmt_value(snap.best_fx)}"
          + (f" (manager {snap.best_manager})" if snap.best_manager else "")
          + (f"; stopped: {snap.stop_reason}" if snap.stop_reason else ""))
    print(f"managers ({snap.managers_running} running; lost after {timeout:g} s without a heartbeat):")
    for m in managers:
        running = [o for o in opts if o["manager_id"] == m["manager_id"] and o["end_kind"] is None]
        beat = "" if m["heartbeat_at"] is None else f", heartbeat {now - m['heartbeat_at']:.1f} s ago"
        print(f"  {m['manager_id']}  {m['state']:<8} {m['host']} pid {m['pid']}, max_jobs {m['max_jobs']}, "
              f"{_fmt_int(m['n_evals'])} evaluations, best {_fmt_value(m['best_fx'])}{beat}"
              + (f", {len(running)} optimizer(s) running" if m["state"] == "running" else "")
              + (f"  ({m['end_reason']})" if m["end_reason"] else ""))
        if m["state"] == "running":
            for o in running:
                print(f"      optimizer {o['opt_id']} ({o['type']}, its local id {o['local_opt_id']})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``glompo-like`` command line; returns the exit code."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    _tolerate_undecodable_paths()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        if e.code == 2 and any(a.startswith("-") and a not in ("-", "--") and os.path.lexists(a) for a in argv):
            print(f"{PROG}: hint: {_DASH_HINT}", file=sys.stderr)
        raise
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except GlompoError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `glompo-like demo | head`: the reader left early
        sys.stdout = open(os.devnull, "w")  # so the final flush at exit does not fail again
        return 1


def _tolerate_undecodable_paths() -> None:
    """A path may hold bytes that are not valid in the terminal's encoding (legal on POSIX;
    Python keeps them as lone surrogates): print them as escapes instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


# --------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    from . import GloMPOManager, read_log
    from .policies.checkers import MaxFuncCalls, TargetCost

    test = FUNCTIONS[args.function]
    bounds = test.bounds(args.dim)
    try:  # some functions take only some dimensions (Lennard-Jones: 3 per atom)
        test.f(np.array([(lo + hi) / 2 for lo, hi in bounds]))
    except Exception as e:
        return _error(f"{test.name} cannot be evaluated in {args.dim} dimensions: {e}")
    try:
        fmin: float | None = test.fmin_at(args.dim)
    except KeyError:
        fmin = None  # no known minimum in this dimension: the budget alone ends the run
    checker: Checker = MaxFuncCalls(args.budget)
    if fmin is not None:
        checker = checker | TargetCost(fmin, atol=1e-8)
    working_dir = args.working_dir
    if working_dir is None:
        working_dir = Path(tempfile.mkdtemp(prefix="glompo-like-demo-"))
    manager = GloMPOManager(
        task=test.f,
        bounds=bounds,
        backend=args.backend,
        max_jobs=args.max_jobs,
        convergence_checker=checker,
        working_dir=working_dir,
        seed=args.seed,
        status="auto",
        status_interval=1.0,
    )
    print(
        f"{PROG} demo: minimising {test.name} in {args.dim} dimensions "
        f"(known minimum {'unknown' if fmin is None else format(fmin, 'g')}), budget {args.budget} evaluations, "
        f"backend={args.backend}, max_jobs={args.max_jobs}, seed={args.seed}"
    )
    print("running ...", flush=True)
    t0 = time.perf_counter()
    with manager:
        result = manager.start_manager()
    wall = time.perf_counter() - t0

    print()
    print(_result_table(result, wall))
    if args.backend == "auto" and manager.plan is not None:
        reason = manager.plan.reasons.get("backend")
        print(f"  {'backend':<20}{manager.plan.level1} (chosen by backend='auto'{': ' + reason if reason else ''})")
    print()
    print("Optimizers (from the evaluation log)")
    print(_optimizer_table(read_log(working_dir, optimizers=True)))
    print()
    print(f"Working directory: {working_dir}")
    print("  evaluations.sqlite  every evaluation; read it with "
          f"glompo_like.read_log({str(working_dir)!r})")
    print("  summary.yml         settings, counters and result of the run")
    return 0


# --------------------------------------------------------------------------- resume
def _load_task(spec: str) -> Any:
    import importlib

    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"--task must look like MODULE:FUNCTION, got {spec!r}")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _cmd_resume(args: argparse.Namespace) -> int:
    from . import GloMPOManager
    from .policies.checkers import MaxFuncCalls

    overrides: dict[str, Any] = {}
    if args.budget is not None:
        overrides["convergence_checker"] = MaxFuncCalls(args.budget)
    if args.max_jobs is not None:
        overrides["max_jobs"] = args.max_jobs
    try:
        task = _load_task(args.task) if args.task else None
    except (ValueError, ImportError, AttributeError) as e:
        return _error(f"cannot load --task: {e}")
    manager = GloMPOManager.load_checkpoint(args.checkpoint, task=task, **overrides)
    print(f"{PROG} resume: continuing from {manager.view.f_evals} evaluations", flush=True)
    t0 = time.perf_counter()
    with manager:
        result = manager.start_manager()
    print()
    print(_result_table(result, time.perf_counter() - t0))
    return 0


# --------------------------------------------------------------------------- report, export
def _error(text: Any) -> int:
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return 1


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        if args.html:
            from .record.report import make_html_report

            files = [make_html_report(args.run_dir, args.out)]
        else:
            from .record.report import make_report

            files = make_report(args.run_dir, args.out)
    except (ImportError, FileNotFoundError) as e:
        return _error(e)
    if args.html:
        print(f"{PROG} report: an interactive page of {args.run_dir} (open it in a browser)")
        print(f"  {files[0]}")
        return 0
    print(f"{PROG} report: {len(files)} plots of {args.run_dir}")
    for f in files:
        print(f"  {f}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    if "://" not in args.run_dir and not Path(args.run_dir).is_dir():
        return _error(f"no run directory {args.run_dir} (give a run's working directory or a study's URL)")
    if not args.refresh > 0:
        return _error(f"--refresh must be a positive number of seconds, got {args.refresh}")
    try:
        from .record.dashboard import serve

        serve(args.run_dir, args.host, args.port, args.refresh, announce=lambda s: print(f"{PROG} {s}", flush=True))
    except ImportError as e:
        return _error(e)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .record.export import export_log

    csv = args.csv or not args.hdf5
    try:
        files = export_log(args.run_dir, csv=csv, hdf5=args.hdf5, out_dir=args.out)
    except (ImportError, FileNotFoundError) as e:
        return _error(e)
    print(f"{PROG} export: the evaluation log of {args.run_dir}")
    for f in files:
        print(f"  {f}")
    return 0


def _cmd_log(args: argparse.Namespace) -> int:
    import json
    import sqlite3

    from .record.export import open_log_readonly

    try:
        with open_log_readonly(args.run_dir) as db:  # (a study on a server: a copy in memory)
            have = {r[1] for r in db.execute("PRAGMA table_info(evaluations)")}
            sample = "sample" if "sample" in have else "0"
            meta = "meta" if "meta" in have else "NULL"
            where, params = ("WHERE opt_id = ?", (args.opt,)) if args.opt is not None else ("", ())
            rows = db.execute(f"SELECT eval_id, opt_id, fx, status, {sample}, worker, {meta} FROM evaluations "
                              f"{where} ORDER BY eval_id DESC LIMIT ?", (*params, args.last)).fetchall()[::-1]
    except FileNotFoundError as e:
        return _error(e)
    except sqlite3.Error as e:
        return _error(f"cannot read {args.run_dir}: {e}")
    print(f"{'eval_id':>8} {'opt':>4} {'fx':>14} {'status':<15} {'sample':>6} {'worker':<16} meta")
    for eval_id, opt_id, fx, status, k, worker, m in rows:
        m = "" if m is None else json.dumps(json.loads(m), sort_keys=True)
        print(f"{eval_id:>8} {opt_id:>4} {_fmt_value(fx, '.6g'):>14} {status or 'ok':<15} {k:>6} "
              f"{_truncate(worker, 16):<16} {m}")
    return 0


def _fmt_value(v: Any, spec: str = ".10g") -> str:
    if v is None:
        return "-"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "-"
    return format(f, spec)


def _fmt_int(v: Any) -> str:
    if v is None:
        return "-"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f) or f < 0:  # NumPy fallback of read_log stores missing integers as -1
        return "-"
    return str(int(f))


def _fmt_point(x: Any, decimals: int = 4, show: int = 12) -> str:
    """``x`` rounded to ``decimals`` places; long vectors show their first and last entries."""
    if x is None:
        return "-"
    values = np.round(np.asarray(x, dtype=float), decimals) + 0.0  # + 0.0 turns -0 into 0
    items = [f"{v:g}" for v in values]
    if len(items) > show:
        items = [*items[: show - 4], f"... ({len(items) - show + 1} more) ...", *items[-3:]]
    return "[" + ", ".join(items) + "]"


def _result_table(result: Any, wall: float) -> str:
    s = result.stats
    origin = result.origin
    found_by = "-"
    if origin:
        found_by = f"optimizer {origin.get('opt_id')} ({origin.get('description') or origin.get('type')})"
    evals = int(s.get("f_evals", 0))
    t_used = float(s.get("t_used", wall)) or wall
    rate = evals / t_used if t_used > 0 else float("nan")
    rows = [
        ("best value", _fmt_value(result.fx) if math.isfinite(result.fx) else "none (no evaluation succeeded)"),
        ("best point", _fmt_point(result.x)),
        ("found by", found_by),
        ("evaluations", f"{evals} ({s.get('evals_failed', 0)} failed)"),
        ("optimizers", f"{s.get('opts_started', 0)} started: {s.get('opts_killed', 0)} killed, "
                       f"{s.get('opts_converged', 0)} converged, {s.get('opts_stopped', 0)} stopped, "
                       f"{s.get('opts_failed', 0)} failed, {s.get('opts_crashed', 0)} crashed"),
        ("end condition", str(s.get("end_cond"))),
        ("wall time", f"{t_used:.2f} s"),
        ("evaluations/second", f"{rate:,.0f}"),
    ]
    return "Result\n" + "\n".join(f"  {k:<20}{v}" for k, v in rows)


def _truncate(text: Any, width: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def _optimizer_table(table: Any) -> str:
    """Format the ``optimizers`` table of :func:`~glompo_like.read_log` (a pandas DataFrame
    or a NumPy structured array: both are indexed by column name)."""
    columns = ("opt_id", "type", "n_evals", "best_fx", "end_kind", "end_reason")
    header = ("opt_id", "type", "n_evals", "best_fx", "end", "end_reason")
    values = [list(table[c]) for c in columns]
    rows = []
    for i in range(len(table)):
        opt_id, kind, n, fx, end_kind, reason = (col[i] for col in values)
        rows.append((
            _fmt_int(opt_id), str(kind), _fmt_int(n), _fmt_value(fx, ".6g"),
            "-" if end_kind is None else str(end_kind), _truncate(reason, _REASON_WIDTH),
        ))
    if not rows:
        return "  (no optimizer was started)"
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    right = {0, 2, 3}  # numbers are right-aligned

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  " + "  ".join(out).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
