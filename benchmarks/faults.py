"""The fault table, end to end: what survives failing, hanging and dying evaluations,
killed optimizers and a killed manager — measured, not just asserted.

Every case runs a real manager (CMA-ES, ``popsize=6``, 3-D, bounds ``[(-1, 1)] * 3``, an
evaluation budget of 800, an evaluation log in a temporary directory) on a task that
sleeps 2 ms and then misbehaves as the case says.  The faults that happen once (a hang, a
crash) fire on the first call, in any process, that is at least the 8th call of its
process; a marker file makes sure only one call in the whole run triggers it.

Per case the table reports:

outcome
    How the run ended: ``completed`` (the budget was used, ``MaxFuncCalls``), the error a
    case ends with by design (``EvaluationError`` for ``on_error="raise"``,
    ``OptimizerCrashed`` after five barren crashes, ``ConfigError`` for a refused
    combination) or, for the manager-kill cases, the manager's exit.
told-logged
    Evaluations the manager was told about (``result.stats["f_evals"]``) minus rows in the
    evaluation log (``read_log``).  Goal 0.  For a SIGINT/SIGTERM-ed manager the count
    comes from ``summary.yml``; a SIGKILL-ed manager leaves no count behind, so this is
    not measurable there (``n/m``).
ran-logged
    Task calls that actually started (every call appends a line to a file before doing
    anything else) minus log rows: work done and lost without trace.  A Level 1 process
    that dies takes with it the evaluations it had not reported yet (a crash is not
    logged as a row).  ``n/m`` for the manager-kill cases (their task does not count).
procs left
    Processes started during the case (sampled every 10 ms with psutil; for the
    manager-kill cases, the pids the manager script recorded) still alive 5 s after the
    run ended or the manager was killed.  Goal 0.  Any survivor is killed afterwards.
extra
    ``crashed``/``timed_out`` rows in the log that the injected fault does not explain
    (e.g. an evaluation timed out although the task never hung).  Goal 0.
detect / recover
    Seconds from the fault (the moment the task hung or died, or the SIGKILL was sent) to
    the manager noticing it (a ``crashed``/``timed_out`` row or the optimizer's end), and
    to the first evaluation by the replacement (a worker or optimizer that did not exist
    before the fault).  For the manager-kill cases, ``recover`` is from the signal to the
    last child process gone.

Run from the repository root::

    python benchmarks/faults.py            # writes benchmarks/results/faults.json
    python benchmarks/faults.py --quick    # a handful of cases
"""

from __future__ import annotations

import argparse
import datetime as _dt
import faulthandler
import json
import logging
import math
import multiprocessing
import os
import platform
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

import glompo_like
from glompo_like import ConfigError, EvaluationError, GloMPOManager, OptimizerCrashed, read_log
from glompo_like.optimizers.cma import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.selectors import CycleSelector

try:  # imported as benchmarks.<name>, or run as a script from its folder
    from ._common import json_default
except ImportError:
    from _common import json_default  # type: ignore[no-redef]

__all__ = ["main", "FaultyTask", "CASES", "QUICK_CASES"]

ROOT = Path(__file__).resolve().parents[1]
MANAGER_SCRIPT = ROOT / "tests" / "_manager_script.py"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "faults.json"
DIM = 3
BUDGET = 800  # long enough that a replacement worker started at a timeout gets to evaluate
POPSIZE = 6
DELAY = 0.002
FAULT_AFTER = 8
LEFT_WINDOW = 5.0  # seconds after which a process still alive counts as left behind
_HELPERS = ("forkserver", "resource_tracker", "semaphore_tracker")


# --------------------------------------------------------------------------- the task
class FaultyTask:
    """A sphere that sleeps ``delay`` and misbehaves as ``kind`` says (picklable).

    Kinds: ``ok``; ``raises`` / ``nan`` / ``none`` / ``array`` (for ``x[0] > 0.5``);
    ``hang`` (sleeps 60 s), ``exit`` (``os._exit(7)``), ``segfault``, ``external_hang``
    (starts ``sleep 60`` and waits for it), once per run; ``always_exit`` (every process
    dies on its third call).
    """

    def __init__(self, kind: str, workdir: str, delay: float = DELAY, after: int = FAULT_AFTER) -> None:
        self.kind = kind
        self.workdir = workdir
        self.delay = delay
        self.after = after
        self._n = 0

    def _append(self, name: str, text: str) -> None:
        fd = os.open(os.path.join(self.workdir, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def _claim(self) -> bool:
        """True for the one call of the whole run that gets to misbehave."""
        try:
            os.close(os.open(os.path.join(self.workdir, "fault.claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        self._append("fault.time", f"{time.time():.6f}\n")
        return True

    def __call__(self, x: np.ndarray) -> Any:
        self._n += 1
        self._append("calls", f"{os.getpid()}\n")
        if self.delay:
            time.sleep(self.delay)
        x = np.asarray(x, dtype=float)
        value = float(x @ x)
        k = self.kind
        if k in ("raises", "nan", "none", "array") and x[0] > 0.5:
            if k == "raises":
                raise ValueError("boom: simulator diverged")
            return {"nan": math.nan, "none": None, "array": np.ones(3)}[k]
        if k == "always_exit" and self._n == 3:
            os._exit(7)
        if k in ("hang", "exit", "segfault", "external_hang") and self._n >= self.after and self._claim():
            if k == "hang":
                time.sleep(60)
            elif k == "exit":
                os._exit(7)
            elif k == "segfault":
                faulthandler.disable()
                faulthandler._sigsegv()
            else:
                proc = subprocess.Popen(["sleep", "60"])
                self._append("external.pids", f"{proc.pid}\n")
                proc.wait()
        return value


# --------------------------------------------------------------------------- processes
def _is_helper(p: psutil.Process) -> bool:
    try:
        return any(h in " ".join(p.cmdline()) for h in _HELPERS)
    except psutil.Error:
        return False


class ProcessWatcher:
    """Samples this process's descendants every ``period`` seconds while a case runs.

    multiprocessing's helpers (the forkserver and resource tracker started by this
    process, which live for the whole benchmark) are not counted; processes that the
    forkserver starts for us are.
    """

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.seen: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ignore: set[int] = set()

    def _helpers(self) -> set[int]:
        me = psutil.Process()
        return {c.pid for c in me.children() if _is_helper(c)}

    def _sample(self) -> None:
        self._ignore |= self._helpers()
        for p in psutil.Process().children(recursive=True):
            if p.pid in self._ignore or p.pid in self.seen:
                continue
            if p.ppid() == os.getpid() and _is_helper(p):
                self._ignore.add(p.pid)
                continue
            if "resource_tracker" in " ".join(_safe_cmdline(p)):
                self._ignore.add(p.pid)
                continue
            self.seen[p.pid] = p

    def __enter__(self) -> ProcessWatcher:
        self._ignore = {p.pid for p in psutil.Process().children(recursive=True)}  # not ours
        self._thread = threading.Thread(target=self._run, name="fault-watcher", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except psutil.Error:
                pass
            self._stop.wait(self.period)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def ours(self) -> list[psutil.Process]:
        """The processes seen, less this process's own multiprocessing helpers (a helper
        sampled between its fork and its exec still showed its parent's command line)."""
        me = os.getpid()
        out = []
        for p in self.seen.values():
            try:
                helper = (p.ppid() == me and _is_helper(p)) or "resource_tracker" in " ".join(p.cmdline())
            except psutil.Error:
                helper = False
            if not helper:
                out.append(p)
        return out


def _safe_cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _alive(procs: Sequence[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


def wait_gone(procs: Sequence[psutil.Process], since: float, window: float = LEFT_WINDOW) -> dict[str, Any]:
    """Poll until every process in ``procs`` is gone or ``window`` seconds after ``since``
    (a ``time.monotonic()``) have passed.  Survivors are then killed (and reported)."""
    while True:
        alive = _alive(procs)
        now = time.monotonic()
        if not alive:
            return {"left": [], "all_gone_after_s": now - since, "tracked": len(procs)}
        if now - since >= window:
            break
        time.sleep(0.01)
    left = [{"pid": p.pid, "cmdline": " ".join(_safe_cmdline(p))[:200]} for p in alive]
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    return {"left": left, "all_gone_after_s": None, "tracked": len(procs)}


# --------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    id: str
    fault: str
    l1: str
    l2: str
    start_method: str | None = None
    kind: str = "ok"  # FaultyTask kind
    task_timeout: float | None = None
    on_error: str = "penalty"
    kill_optimizer: bool = False
    manager_signal: str | None = None  # SIGKILL / SIGINT / SIGTERM: run tests/_manager_script.py
    expect: str = "completed"  # completed / EvaluationError / OptimizerCrashed / refused / signal
    popsize: int = POPSIZE
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pair(self) -> str:
        return f"{self.l1} x {self.l2} ({self.start_method or 'default'})"


FAIL_PAIRS = [("threads", "serial", None), ("processes", "serial", "fork"),
              ("processes_forced", "processes", "forkserver")]
CRASH_PAIRS = [("processes", "serial", "fork"), ("threads", "processes", "forkserver"),
               ("processes_forced", "processes", "fork")]
MANAGER_PAIRS = [("threads", "processes", None), ("processes", "serial", "fork"),
                 ("processes_forced", "processes", "forkserver")]


def _cases() -> tuple[Case, ...]:
    out: list[Case] = []
    for kind, what in [("raises", "task raises"), ("nan", "task returns NaN"),
                       ("none", "task returns None"), ("array", "task returns an array")]:
        for l1, l2, m in FAIL_PAIRS:
            out.append(Case(f"{kind}-{l1}-{l2}", what, l1, l2, m, kind=kind))
    out.append(Case("raises-on_error=raise", "task raises, on_error='raise'", "processes", "serial", "fork",
                    kind="raises", on_error="raise", expect="EvaluationError"))
    out.append(Case("hang-threads-serial", "hangs, task_timeout=0.5", "threads", "serial", None,
                    kind="hang", task_timeout=0.5, expect="refused"))
    for l1, l2, m in [("processes", "serial", "fork"), ("processes_forced", "processes", "forkserver"),
                      ("threads", "processes", "spawn")]:
        out.append(Case(f"hang-{l1}-{l2}", "hangs, task_timeout=0.5", l1, l2, m, kind="hang", task_timeout=0.5))
    for l1, l2, m in [("threads", "processes", "spawn"), ("processes_forced", "processes", "forkserver")]:
        out.append(Case(f"healthy_timeout-{l1}-{l2}", "healthy task, task_timeout=0.5 (control)", l1, l2, m,
                        kind="ok", task_timeout=0.5))
    for l1, l2, m in [("processes", "serial", "fork"), ("processes_forced", "processes", "fork")]:
        out.append(Case(f"external_hang-{l1}-{l2}", "external program hangs, task_timeout=0.5",
                        l1, l2, m, kind="external_hang", task_timeout=0.5))
    for kind, what in [("exit", "os._exit(7) in the task"), ("segfault", "segfault in the task")]:
        for l1, l2, m in CRASH_PAIRS:
            out.append(Case(f"{kind}-{l1}-{l2}", what, l1, l2, m, kind=kind))
    for l1, l2, m in [("processes", "serial", "fork"), ("processes_forced", "processes", "forkserver")]:
        out.append(Case(f"sigkill_optimizer-{l1}-{l2}", "optimizer process SIGKILLed", l1, l2, m,
                        kill_optimizer=True))
    out.append(Case("always_exit-processes-serial", "every optimizer process dies", "processes", "serial",
                    "fork", kind="always_exit", expect="OptimizerCrashed"))
    for sig in ("SIGKILL", "SIGINT"):
        for l1, l2, m in MANAGER_PAIRS:
            out.append(Case(f"manager_{sig}-{l1}-{l2}", f"manager {sig}", l1, l2, m, manager_signal=sig,
                            expect="signal"))
    out.append(Case("manager_SIGTERM-processes-serial", "manager SIGTERM", "processes", "serial", "fork",
                    manager_signal="SIGTERM", expect="signal"))
    return tuple(out)


CASES = _cases()
QUICK_CASES = (
    "raises-processes-serial",
    "hang-processes-serial",
    "exit-threads-processes",
    "sigkill_optimizer-processes-serial",
    "manager_SIGKILL-processes-serial",
)


# --------------------------------------------------------------------------- measuring
def _log_stats(run_dir: Path) -> dict[str, Any]:
    log = read_log(run_dir)
    opts = read_log(run_dir, optimizers=True)
    status = [str(s) for s in np.asarray(log["status"])]
    counts: dict[str, int] = {}
    for s in status:
        counts[s] = counts.get(s, 0) + 1
    return {"log": log, "opts": opts, "rows": len(status), "status_counts": counts}


def _fault_time(workdir: Path) -> float | None:
    f = workdir / "fault.time"
    if not f.exists():
        return None
    return float(f.read_text().split()[0])


def _recovery(stats: dict[str, Any], fault: float | None, pool_size: int = 2) -> dict[str, Any]:
    """Detection and recovery times after ``fault`` (see the module docstring), and the
    number of ``crashed``/``timed_out`` rows that the injected fault does not explain."""
    log, opts = stats["log"], stats["opts"]
    t_start = np.asarray(log["t_start"], dtype=float)
    end = t_start + np.asarray(log["duration"], dtype=float)
    status = np.asarray([str(s) for s in log["status"]])
    workers = np.asarray([str(w) for w in log["worker"]])
    opt_ids = np.asarray(log["opt_id"], dtype=int)
    bad = np.flatnonzero(np.isin(status, ["crashed", "timed_out"]))
    out: dict[str, Any] = {"detect_s": None, "recover_s": None, "fault_row": None}
    if fault is None:
        out["unexplained_bad_rows"] = len(bad)
        return out
    # the evaluation that was running when the fault happened, if it was logged
    running = [i for i in bad if t_start[i] <= fault + 0.01 and end[i] >= fault]
    if running:
        i = min(running, key=lambda k: end[k])
        out["fault_row"] = int(i)
        out["detect_s"] = float(end[i] - fault)
        out["unexplained_bad_rows"] = len(bad) - 1
    else:
        out["unexplained_bad_rows"] = len(bad)
    if running and "/w" in workers[out["fault_row"]]:
        # Level 2: the optimizer goes on; a replacement worker takes over.  Pool workers
        # are numbered optN/w1, w2, ... in the order started: the replacement has a number
        # above both the pool size and every number the optimizer used before the fault.
        oid = opt_ids[out["fault_row"]]
        number = np.asarray([int(w.rsplit("/w", 1)[1]) if "/w" in w else 0 for w in workers])
        mine = opt_ids == oid
        floor = max(pool_size, int(number[mine & (t_start < fault)].max(initial=0)))
        new = (t_start >= fault) & mine & (number > floor)
    else:
        # Level 1: the optimizer process is gone; a new optimizer takes its slot
        ends = [float(t) for k, t in zip(opts["end_kind"], opts["t_end"], strict=True)
                if str(k) == "crashed" and t is not None and not (isinstance(t, float) and math.isnan(t))
                and float(t) >= fault]
        if ends and out["detect_s"] is None:
            out["detect_s"] = min(ends) - fault
        started = [int(o) for o, t in zip(opts["opt_id"], opts["t_start"], strict=True)
                   if t is not None and float(t) >= fault]
        new = np.isin(opt_ids, [min(started)]) if started else np.zeros(len(t_start), bool)
    if new.any():
        out["recover_s"] = float(t_start[new].min() - fault)
    return out


def _count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def run_in_process(case: Case, base: Path) -> dict[str, Any]:
    workdir = base / case.id
    workdir.mkdir(parents=True)
    run_dir = workdir / "run"
    task = FaultyTask(case.kind, str(workdir))
    workers = 2 if case.l2 != "serial" else 1
    sel = CycleSelector([(CMAOptimizer, {"popsize": case.popsize, "workers": workers, "backend": case.l2})])
    out: dict[str, Any] = {}
    try:
        m = GloMPOManager(
            task=task, bounds=[(-1, 1)] * DIM, opt_selector=sel, backend=case.l1, max_jobs=2 * workers,
            convergence_checker=MaxFuncCalls(BUDGET), start_method=case.start_method, seed=4,
            working_dir=run_dir, task_timeout=case.task_timeout, on_error=case.on_error,
        )
    except ConfigError as e:
        out.update(outcome="refused: ConfigError", error=str(e), as_expected=case.expect == "refused")
        return out

    kill_time: list[float] = []

    def assassin() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = m.optimizer_pids()
            if pids and m.ledger.counters.f_evals > 40:
                kill_time.append(time.time())
                os.kill(pids[min(pids)], signal.SIGKILL)
                return
            time.sleep(0.005)

    with ProcessWatcher() as watcher:
        killer = threading.Thread(target=assassin, daemon=True) if case.kill_optimizer else None
        if killer is not None:
            killer.start()
        t0 = time.monotonic()
        error: BaseException | None = None
        try:
            m.start_manager()
        except (EvaluationError, OptimizerCrashed) as e:
            error = e
        t_end = time.monotonic()
        if killer is not None:
            killer.join()
    gone = wait_gone(watcher.ours(), t_end)
    result = m.result
    if m.plan is not None and m.plan.pool_start_method is not None:  # how the Level 2 workers started
        out["pool_start_method"] = m.plan.pool_start_method
    stats = _log_stats(run_dir)
    told = int(result.stats["f_evals"])
    calls = _count_lines(workdir / "calls")
    fault = kill_time[0] if kill_time else _fault_time(workdir)
    rec = _recovery(stats, fault, workers)
    if error is None:
        completed = "MaxFuncCalls" in (result.stats["end_cond"] or "")
        outcome = "completed" if completed else f"ended: {result.stats['end_cond']}"
        as_expected = completed and case.expect == "completed"
    else:
        outcome = f"{type(error).__name__} (by design)" if case.expect == type(error).__name__ else (
            f"{type(error).__name__}: {error}")
        as_expected = case.expect == type(error).__name__
        out["error"] = str(error)
        if error.__cause__ is not None:
            out["error_cause"] = f"{type(error.__cause__).__name__}: {error.__cause__}"
    ext = workdir / "external.pids"
    if ext.exists():
        out["external_pids"] = [int(p) for p in ext.read_text().split()]
        out["external_alive_after"] = [p for p in out["external_pids"] if psutil.pid_exists(p)
                                       and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    out.update(
        outcome=outcome,
        as_expected=as_expected,
        end_cond=result.stats["end_cond"],
        wall_s=t_end - t0,
        told=told,
        logged=stats["rows"],
        told_minus_logged=told - stats["rows"],
        calls_started=calls,
        ran_minus_logged=calls - stats["rows"],
        status_counts=stats["status_counts"],
        opts_started=result.stats["opts_started"],
        opts_crashed=result.stats["opts_crashed"],
        crashes=[str(c) for c in m.crashes][:6],
        processes_tracked=gone["tracked"],
        processes_left=len(gone["left"]),
        processes_left_detail=gone["left"],
        all_children_gone_after_s=gone["all_gone_after_s"],
        fault_time=fault,
        detect_s=rec["detect_s"],
        recover_s=rec["recover_s"],
        unexplained_bad_rows=rec["unexplained_bad_rows"],
    )
    return out


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return ""
        return proc.stdout.readline()
    finally:
        sel.close()


def _summary_f_evals(path: Path) -> tuple[int | None, str | None]:
    if not path.exists():
        return None, None
    text = path.read_text()
    try:
        import yaml

        doc = yaml.safe_load(text)
        return int(doc["stats"]["f_evals"]), doc["stats"].get("end_cond")
    except ImportError:
        m = re.search(r"^\s*f_evals:\s*(\d+)", text, re.M)
        e = re.search(r"^\s*end_cond:\s*(.+)$", text, re.M)
        return (int(m.group(1)) if m else None), (e.group(1).strip() if e else None)


def run_manager_kill(case: Case, base: Path) -> dict[str, Any]:
    workdir = base / case.id
    workdir.mkdir(parents=True)
    run_dir, pidfile = workdir / "run", workdir / "pids"
    proc = subprocess.Popen(
        [sys.executable, str(MANAGER_SCRIPT), case.l1, case.l2, case.start_method or "default",
         str(run_dir), str(pidfile)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        cwd=str(ROOT),
    )
    out: dict[str, Any] = {}
    line = _readline(proc, 40.0)
    if line.strip() != "READY":
        proc.kill()
        _, err = proc.communicate(timeout=30)
        out.update(outcome="manager script did not get ready", as_expected=False, stderr=err[-2000:])
        return out
    pids = [int(p) for p in pidfile.read_text().split()]
    tracked = []
    for p in pids:
        try:
            tracked.append(psutil.Process(p))
        except psutil.Error:
            pass
    sig = getattr(signal, case.manager_signal)
    t_kill = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    t_exit = time.monotonic()
    gone = wait_gone(tracked, t_kill)
    rows = None
    try:
        rows = len(read_log(run_dir))
    except Exception as e:  # the point of the case: is the log still readable?
        out["log_error"] = f"{type(e).__name__}: {e}"
    counted, end_cond = _summary_f_evals(run_dir / "summary.yml")
    rc = proc.returncode
    expected_rc = {"SIGKILL": -signal.SIGKILL, "SIGINT": 3, "SIGTERM": 128 + signal.SIGTERM}[case.manager_signal]
    if case.manager_signal == "SIGKILL":
        outcome = f"killed (rc {rc}); log readable" if rows is not None else f"killed (rc {rc}); log UNREADABLE"
    else:
        outcome = f"exit {rc}, summary: {end_cond!r}"
    out.update(
        outcome=outcome,
        as_expected=rc == expected_rc and rows is not None and (case.manager_signal == "SIGKILL" or end_cond is not None),
        returncode=rc,
        stdout=stdout.strip()[-500:],
        stderr_tail=stderr.strip()[-1000:],
        told=counted,
        logged=rows,
        told_minus_logged=None if counted is None or rows is None else counted - rows,
        calls_started=None,
        ran_minus_logged=None,
        manager_exit_after_s=t_exit - t_kill,
        processes_tracked=gone["tracked"],
        processes_left=len(gone["left"]),
        processes_left_detail=gone["left"],
        all_children_gone_after_s=gone["all_gone_after_s"],
        detect_s=None,
        recover_s=gone["all_gone_after_s"],
    )
    return out


def run_case(case: Case, base: Path) -> dict[str, Any]:
    if case.manager_signal:
        r = run_manager_kill(case, base)
    else:
        r = run_in_process(case, base)
    return {"id": case.id, "fault": case.fault, "level1": case.l1, "level2": case.l2,
            "start_method": case.start_method or "default", "task_timeout": case.task_timeout,
            "on_error": case.on_error, "expect": case.expect, **r}


# --------------------------------------------------------------------------- reporting
def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "n/m"
    return format(v, spec)


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'fault':<42} {'L1 x L2 (start method)':<42} {'outcome':<32} {'told-log':>8} "
            f"{'ran-log':>7} {'extra':>5} {'left':>4} {'detect':>7} {'recover':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        pair = f"{r['level1']} x {r['level2']} ({r['start_method']})"
        if r.get("pool_start_method") and r["pool_start_method"] != r["start_method"]:
            pair = f"{pair[:-1]}; pool {r['pool_start_method']})"
        outcome = r["outcome"] if r.get("as_expected", False) else f"{r['outcome']} [UNEXPECTED]"
        if r["outcome"].startswith("refused"):
            tl = rl = ex = left = det = rec = "-"
        else:
            tl = _fmt(r.get("told_minus_logged"))
            rl = _fmt(r.get("ran_minus_logged"))
            ex = _fmt(r.get("unexplained_bad_rows"))
            left = _fmt(r.get("processes_left"))
            det = "-" if r.get("detect_s") is None else f"{r['detect_s']:.3f}"
            rec = "-" if r.get("recover_s") is None else f"{r['recover_s']:.3f}"
        lines.append(f"{r['fault'][:42]:<42} {pair:<42} {outcome[:32]:<32} {tl:>8} {rl:>7} {ex:>5} "
                     f"{left:>4} {det:>7} {rec:>7}")
    lines += [
        "",
        "told-log: evaluations the manager counted minus rows in the evaluation log (goal 0; n/m: not",
        "  measurable, a SIGKILL-ed manager's count dies with it).  ran-log: task calls started minus log",
        "  rows (work lost without trace; negative: rows for evaluations that never started).  extra:",
        "  crashed/timed_out rows the injected fault does not explain (goal 0).  left: processes alive",
        "  5 s after the run ended / the manager was signalled (goal 0).  detect/recover: seconds from",
        "  the fault to the manager noticing it / to the replacement's first evaluation; for the manager",
        "  cases recover = signal -> last child process gone.",
    ]
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "glompo_like": glompo_like.__version__,
        "psutil": psutil.__version__,
        "mp_start_method": multiprocessing.get_start_method(allow_none=True)
        or multiprocessing.get_all_start_methods()[0],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The fault table, end to end (see the module docstring).")
    p.add_argument("--quick", action="store_true", help=f"only the cases {', '.join(QUICK_CASES)}")
    p.add_argument("--cases", default=None, help="comma-separated case ids (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the case ids and exit")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="JSON results file (default benchmarks/results/faults.json)")
    p.add_argument("--verbose", action="store_true", help="show the manager's warnings")
    p.add_argument("--case-timeout", type=float, default=120.0,
                   help="watchdog per case: dump every thread's stack and exit (0 disables it)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for c in CASES:
            print(f"{c.id:<44} {c.fault} [{c.pair}]")
        return 0
    ids = [c.id for c in CASES]
    if args.cases:
        wanted = [s.strip() for s in args.cases.split(",") if s.strip()]
    elif args.quick:
        wanted = list(QUICK_CASES)
    else:
        wanted = ids
    unknown = [w for w in wanted if w not in ids]
    if unknown:
        print(f"unknown case(s): {unknown}; see --list", file=sys.stderr)
        return 2
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started in the background by a non-interactive shell, which ignores SIGINT: the
        # manager script would inherit that and could not be interrupted.  Catching it
        # here makes exec() reset it to the default in the children we start.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not args.verbose:
        lg = logging.getLogger("glompo_like")
        lg.addHandler(logging.NullHandler())
        lg.propagate = False
    started = _dt.datetime.now(_dt.timezone.utc)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="glompo_faults_") as tmp:
        for case in (c for c in CASES if c.id in wanted):
            if args.case_timeout:
                faulthandler.dump_traceback_later(args.case_timeout, exit=True)
            try:
                r = run_case(case, Path(tmp))
            finally:
                if args.case_timeout:
                    faulthandler.cancel_dump_traceback_later()
            rows.append(r)
            print(
                f"{case.id:<44} {r['outcome'][:40]:<40} told-log={_fmt(r.get('told_minus_logged'))} "
                f"ran-log={_fmt(r.get('ran_minus_logged'))} extra={_fmt(r.get('unexplained_bad_rows'))} "
                f"left={_fmt(r.get('processes_left'))} "
                f"recover={_fmt(r.get('recover_s'), '.3f')}"
                + ("" if r.get("as_expected") else "  [UNEXPECTED]"),
                flush=True,
            )
    print()
    table = format_table(rows)
    print(table)
    machine = machine_info()
    print(f"\nmachine: {machine['cpu_count']} CPUs, Python {machine['python']}, {machine['platform']}, "
          f"default start method {machine['mp_start_method']}")
    bad = [r["id"] for r in rows if not r.get("as_expected")]
    lost = [r["id"] for r in rows if (r.get("told_minus_logged") or 0) != 0]
    left = [r["id"] for r in rows if (r.get("processes_left") or 0) != 0]
    extra = [r["id"] for r in rows if (r.get("unexplained_bad_rows") or 0) != 0]
    print(f"unexpected outcomes: {bad or 'none'}; told != logged: {lost or 'none'}; "
          f"processes left: {left or 'none'}; unexplained crashed/timed_out rows: {extra or 'none'}")
    doc = {
        "benchmark": "faults",
        "date": started.isoformat(timespec="seconds"),
        "duration_s": (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(),
        "command": " ".join(["python", "benchmarks/faults.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {"dim": DIM, "budget": BUDGET, "popsize": POPSIZE, "task_delay_s": DELAY,
                     "fault_after_calls": FAULT_AFTER, "left_window_s": LEFT_WINDOW,
                     "manager_script": "tests/_manager_script.py"},
        "machine": machine,
        "cases": rows,
        "unexpected": bad,
        "told_not_logged": lost,
        "processes_left": left,
        "unexplained_bad_rows": extra,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=json_default) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0 if not (bad or lost or left or extra) else 1


if __name__ == "__main__":
    sys.exit(main())
