"""GloMPOManager: runs several optimizers on one task, hunts, spawns, stops, reports.

The manager is an event loop over one ``multiprocessing.connection.wait`` (see
:class:`~glompo_like.execution.supervisor.Supervisor`)::

    spawn → receive (log, count, share) → hunt → check → spawn → …

Decisions are made by pure policies that see a read-only :class:`~glompo_like.record.view.RunView`:
the selector and generator choose what to start, the hunters choose whom to stop, the
checkers choose when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import pickle
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .control.flow import Credit
from .control.steering import Interventions
from .errors import (
    CheckpointError,
    ConfigError,
    ConfigTypeError,
    EvaluationError,
    GlompoError,
    OptimizerCrashed,
)
from .evaluation.core import EvalBatch, EvalStatus, Outcome
from .evaluation.dask_cluster import dask_for_run
from .execution.auto import (
    PROBE_MIN_EVALS,
    TaskProfile,
    choose_backends,
    choose_thread_slice,
    probe_for_turns,
    probe_task,
)
from .execution.handles import Child
from .execution.messages import (
    Ack,
    Converged,
    Crashed,
    EvalStarted,
    Evaluated,
    Inject,
    RequestState,
    Resume,
    StateReply,
    Stopped,
)
from .execution.runner import RunnerSpec
from .execution.supervisor import Supervisor, make_supervisor
from .policies.base import next_check_in, remaining_evals
from .procs.hygiene import kill_group
from .procs.start import resolve_pool_start_method
from .record.checkpoint import CheckpointingControl, read_checkpoint, write_checkpoint
from .record.log import LOG_NAME, EvaluationLog, read_points
from .record.prints import ThreadRoutedStreams
from .record.status import make_status
from .record.summary import write_summary
from .record.view import OptimizerRecord, RunCounters, RunView
from .result import Result
from .settings import ManagerConfig, build_config, pickle_task

__all__ = ["GloMPOManager"]

log = logging.getLogger("glompo_like.manager")


class _Terminate(BaseException):
    """Raised by the SIGTERM handler inside start_manager."""


class GloMPOManager:
    """Run several optimizers concurrently on one task and return the best result.

    Parameters
    ----------
    task:
        The objective: a callable taking a 1-D float array and returning a float.
    bounds:
        ``[(lower, upper), ...]``, one pair per parameter.
    opt_selector:
        Which optimizers to start (a selector from :mod:`glompo_like.policies.selectors`).
        Default: ``IPOPSelector(CMAOptimizer, growth=2, steps=6, interleave=True)``:
        CMA-ES restarts (step size a quarter of the box) whose population alternates
        between the default and 2, 4, 8, 16, 32 times it.
    backend:
        Level 1 parallelism: ``"threads"``, ``"processes"`` (default),
        ``"processes_forced"`` (non-daemonic, so optimizers may own process pools), or
        ``"auto"`` (measure the task briefly and choose; see :mod:`glompo_like.execution.auto`).  An
        optimizer entry's own ``backend`` (Level 2) may be ``"auto"`` too.
    max_jobs:
        Slots (cores) the run may use; an optimizer takes ``workers`` slots.  Default: the
        cores available to this process.
    convergence_checker:
        When the run ends (checkers compose with ``|`` and ``&``).  Default:
        ``MaxFuncCalls(10_000 * dim)``.
    killing_conditions:
        When the best optimizer stops another (hunters compose with ``&`` and ``|``), or
        ``False`` for no hunting.  Default: ``MinFuncCalls(100 * dim, min_generations=50) &
        BestUnmoving(40 * dim, 0.01, generations=25)``.
    x0_generator:
        Start points of new optimizers.  Default: ``RandomGenerator()``.
    hunt_frequency:
        Evaluations between hunts.  Default ``10 * dim``.
    share_best_solutions:
        Send every new incumbent to the running optimizers (``inject``).
    working_dir:
        Where the evaluation log (``evaluations.sqlite``) and ``summary.yml`` go; ``None``
        writes nothing.
    seed:
        Makes the run reproducible: start points, selector choices and every optimizer's
        seed derive from it.  A seeded run with ``max_jobs=1`` repeats exactly.
    start_method:
        ``multiprocessing`` start method of optimizer processes (``None``: the platform
        default), and of Level 2 workers unless ``pool_start_method`` is given.
    pool_start_method:
        Start method of Level 2 process-pool workers.  ``None`` (the default): ``start_method``
        if that is given, else ``"forkserver"`` where the platform has one and the main
        script keeps its run under ``if __name__ == "__main__":`` (the workers then start
        from a lean server process instead of being forked from the busy optimizer
        process; see :doc:`parallelism`), else the platform default.  The choice and its
        reason are in :attr:`pool_start_choice` and the run summary.
    task_timeout:
        Seconds one evaluation may take; needs evaluations in worker processes (Level 2
        ``backend="processes"``).  The worker is killed and the evaluation logged as ``timed_out``.
    on_error:
        What an optimizer is told about a failed evaluation (exception, NaN, inf, None, an
        array): ``"penalty"`` (default: ``penalty``, or if ``None`` a value worse than any
        it has seen), ``"resample"`` (evaluate the point once more, then penalise), or
        ``"raise"`` (end the run with :class:`~glompo_like.errors.EvaluationError`).
    blas_threads:
        BLAS/OpenMP threads in Level 2 worker processes (default 1; ``None``: untouched).
    shutdown_grace:
        Seconds children get to finish their generation when stopped, before they are
        terminated.
    overwrite:
        Replace the log of an earlier run in ``working_dir`` (otherwise that is an error).
    report_interval:
        Longest time (seconds) an optimizer keeps evaluated generations before reporting
        them.  Optimizers with fast generations report a few at a time, which keeps the
        manager's cost low; near the end of an evaluation budget they report every
        generation, so the budget is overshot by at most one generation per optimizer.
        ``0`` makes every optimizer report each generation and wait for the manager's
        decision (hunt, stop) before evaluating the next.
    thread_slice:
        ``backend="threads"``: runner threads take turns, each running whole generations
        for this many seconds (e.g. ``0.01``), instead of contending for the interpreter
        lock all the time, which costs 10–25% of the throughput when the task is fast and
        holds the GIL (pure Python; see docs/parallelism).  ``"auto"`` (default): the
        manager measures the task when the run starts (one evaluation if it takes 5 ms or
        more, otherwise the probe of :mod:`glompo_like.execution.auto`, at most 5 % of the budget;
        the evaluations are logged and counted as optimizer 0) and takes turns of 10 ms
        only for a fast task that holds the GIL; the choice and its reason go to the log
        and the run summary.  Only runs whose optimizers all evaluate serially in their
        runner threads are measured (a task meant for Level 2 pools is never called in
        the manager's process).  ``None``: never take turns.  A number forces turns, which
        serialises tasks that release the GIL (external programs, I/O, GIL-free
        extensions).
    reuse_processes:
        Process backends: when an optimizer ends cleanly (converged, or stopped by a hunt
        or a checker), its process stays and runs the next optimizer, which saves starting
        a process (a few milliseconds with ``fork``, tens to hundreds with ``spawn`` and
        ``forkserver``) for every restart.  The task is unpickled once per process, so
        what it keeps in module or object state carries over between the optimizers of one
        process (as it does with ``backend="threads"``).  ``False``: a new process for
        every optimizer.  A process whose optimizer crashed is never reused.
    checkpoint_control:
        When to write checkpoints (a :class:`~glompo_like.record.checkpoint.CheckpointingControl`);
        resume with :meth:`load_checkpoint`.  A ``CHKPT`` file in ``working_dir`` or
        :meth:`checkpoint` writes one at once; Ctrl-C writes one when this is set.
    status:
        Live status while the run goes: ``"auto"`` (a live table in a terminal when
        ``rich`` is installed, otherwise a line on the ``glompo_like.status`` logger),
        ``"rich"``, ``"log"``, a reporter object (see :mod:`glompo_like.record.status`), or
        ``None`` for none.
    status_interval:
        Seconds between status updates.
    capture_prints:
        With a ``working_dir``, what each optimizer (and its task) prints goes to
        ``<working_dir>/prints/opt_<id>.out`` and ``.err`` (see :mod:`glompo_like.record.prints`).
    clock:
        The time source (seconds, monotonic) for policies; tests inject a fake one.
    dask_address:
        Scheduler of an existing Dask cluster (``"tcp://host:8786"``) for entries with
        ``backend="dask"``; ``None`` starts an embedded cluster on 127.0.0.1 for the run.
    """

    def __init__(
        self,
        task: Callable[[np.ndarray], float],
        bounds: Any,
        *,
        opt_selector: Any = None,
        backend: str = "processes",
        max_jobs: int | None = None,
        convergence_checker: Any = None,
        killing_conditions: Any = None,
        x0_generator: Any = None,
        hunt_frequency: int | None = None,
        share_best_solutions: bool = False,
        working_dir: str | Path | None = None,
        seed: int | None = None,
        start_method: str | None = None,
        pool_start_method: str | None = None,
        task_timeout: float | None = None,
        on_error: str = "penalty",
        penalty: float | None = None,
        blas_threads: int | None = 1,
        shutdown_grace: float = 2.0,
        overwrite: bool = False,
        report_interval: float = 0.02,
        thread_slice: float | str | None = "auto",
        reuse_processes: bool = True,
        checkpoint_control: CheckpointingControl | None = None,
        status: Any = "auto",
        status_interval: float = 10.0,
        capture_prints: bool = True,
        clock: Callable[[], float] = time.monotonic,
        dask_address: str | None = None,
        _resume: dict[str, Any] | None = None,
    ) -> None:
        self.config: ManagerConfig = build_config(
            task=task,
            bounds=bounds,
            opt_selector=opt_selector,
            backend=backend,
            max_jobs=max_jobs,
            convergence_checker=convergence_checker,
            killing_conditions=killing_conditions,
            x0_generator=x0_generator,
            hunt_frequency=hunt_frequency,
            share_best_solutions=share_best_solutions,
            working_dir=working_dir,
            seed=seed,
            start_method=start_method,
            pool_start_method=pool_start_method,
            task_timeout=task_timeout,
            on_error=on_error,
            penalty=penalty,
            blas_threads=blas_threads,
            shutdown_grace=shutdown_grace,
            overwrite=overwrite,
            resuming=_resume is not None,
            dask_address=dask_address,
        )
        self._clock = clock
        ss = np.random.SeedSequence(seed)
        self.entropy = ss.entropy
        self._policy_rng = np.random.default_rng(ss.spawn(1)[0])
        self.counters = RunCounters()
        self.records: dict[int, OptimizerRecord] = {}
        self.view = RunView(self.counters, self.records, clock(), clock, self.config.bounds)
        self._next_opt_id = 1
        self._next_hunt = self.config.hunt_frequency
        if isinstance(report_interval, bool) or not isinstance(report_interval, (int, float)) or not (
            0 <= report_interval < math.inf
        ):
            raise ConfigError(f"report_interval must be a number of seconds >= 0, got {report_interval!r}")
        self.report_interval = float(report_interval)
        if thread_slice is not None and thread_slice != "auto":
            if isinstance(thread_slice, bool) or not isinstance(thread_slice, (int, float)):
                raise ConfigTypeError(
                    f"thread_slice must be a number of seconds (e.g. 0.005), 'auto' or None, got {thread_slice!r}"
                )
            if not (0 < thread_slice < math.inf):
                raise ConfigError(f"thread_slice must be a positive number of seconds (e.g. 0.005), got {thread_slice!r}")
            if self.config.backend not in ("threads", "auto"):
                raise ConfigError(
                    f"thread_slice applies to backend='threads' only (got backend={self.config.backend!r}); "
                    "remove thread_slice or use backend='threads'"
                )
        self.thread_slice = thread_slice if thread_slice in (None, "auto") else float(thread_slice)
        #: what ``thread_slice="auto"`` chose, and why (``None`` until a threads run starts)
        self.thread_slice_choice: dict[str, Any] | None = None
        #: how Level 2 process-pool workers start: ``{"start_method": ..., "reason": ...}``
        #: (set when the run starts, ``None`` if no entry has a process pool)
        self.pool_start_choice: dict[str, str] | None = None
        self._profile: TaskProfile | None = None
        if not isinstance(reuse_processes, bool):
            raise ConfigTypeError(f"reuse_processes must be True or False, got {reuse_processes!r}")
        self.reuse_processes = reuse_processes
        self.checkpoint_control = _check_checkpoint_control(checkpoint_control, self.config)
        if isinstance(status_interval, bool) or not isinstance(status_interval, (int, float)) or not (
            0 <= status_interval < math.inf
        ):
            raise ConfigError(f"status_interval must be a number of seconds >= 0, got {status_interval!r}")
        self.status_interval = float(status_interval)
        if not isinstance(capture_prints, bool):
            raise ConfigTypeError("capture_prints must be True or False")
        wd = self.config.working_dir
        self._print_dir = str(wd / "prints") if capture_prints and wd is not None else None
        self._status = make_status(status)
        self._next_status: float | None = None
        # a seeded single-optimizer run is exactly reproducible: strict lock-step
        self._lockstep = self.config.max_jobs == 1 and seed is not None
        self._credit = Credit(0.0 if self._lockstep else self.report_interval, self._lockstep)
        self._supervisor: Supervisor | None = None
        self._log: EvaluationLog | None = None
        self._fatal: BaseException | None = None
        self._end_cond: str | None = None
        self.result: Result | None = None
        self._started = False
        self._running = False
        self._resumed_from: dict[str, Any] | None = None
        self._broken = False
        self._pending_acks: list[Child] = []
        self._starved: dict[int, Child] = {}
        #: one OptimizerCrashed per optimizer that crashed (remote exception as __cause__)
        self.crashes: list[OptimizerCrashed] = []
        self._barren_crashes = 0
        self._cleanups: list[Callable[..., Any]] = []
        #: paths of the checkpoints this manager wrote, oldest first
        self.checkpoints: list[Path] = []
        #: seconds each checkpoint paused the run (collecting states, writing, resuming)
        self.checkpoint_pauses: list[float] = []
        self._entries: dict[int, tuple[Any, Any]] = {}  # opt_id -> (entry, level 2 backend)
        self._states: dict[int, StateReply] = {}
        self._collecting: set[int] = set()
        self._checkpoint_request = threading.Event()
        self._resume_queue: list[dict[str, Any]] = []
        self._interventions: Interventions | None = None
        ctl = self.checkpoint_control
        self._next_chk_evals = ctl.every_evaluations if ctl and ctl.every_evaluations else None
        self._next_chk_time: float | None = None
        if _resume is not None:
            self._restore(_resume)
        self.backend_choice: dict[str, Any] | None = None
        self._l1 = self.config.backend
        self._l2: dict[int, Any] = {}

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> GloMPOManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop anything still running (only relevant if ``start_manager`` was interrupted
        in an unusual way); idempotent."""
        if self._supervisor is not None and self._supervisor.children:
            self._supervisor.shutdown("manager closed", self.config.shutdown_grace, self._on_message, self._on_end)
        if self._log is not None:
            self._log.close()
            self._log = None

    def optimizer_pids(self) -> dict[int, int]:
        """``{opt_id: pid}`` of the optimizers running in their own process right now
        (empty for the threads backend).  Safe to call from another thread."""
        sup = self._supervisor
        if sup is None:
            return {}
        return {i: c.pid for i, c in list(sup.children.items()) if c.pid is not None}

    # ------------------------------------------------------------------ the run
    def start_manager(self) -> Result:
        """Run until a convergence condition is met; returns the :class:`Result`."""
        if self._started:
            raise GlompoError("start_manager() can be called once per manager; create a new one")
        self._started = True
        self._running = True
        cfg = self.config
        t0 = self._clock()
        self.view._t0 = t0
        if cfg.working_dir is not None:
            cfg.working_dir.mkdir(parents=True, exist_ok=True)
            if cfg.overwrite:
                for name in (LOG_NAME, LOG_NAME + "-wal", LOG_NAME + "-shm", "summary.yml"):
                    (cfg.working_dir / name).unlink(missing_ok=True)
            self._log = EvaluationLog(cfg.working_dir / LOG_NAME, cfg.bounds.dim)
            if self._resumed_from is not None:
                dropped = self._log.rollback(
                    self.counters.f_evals, self._next_opt_id, [r.opt_id for r in self.records.values() if r.alive]
                )
                if dropped:
                    log.info("resuming: rolled back %d evaluation(s) logged after the checkpoint", dropped)
            self._interventions = Interventions(cfg.working_dir)
        ctl = self.checkpoint_control
        if ctl is not None and ctl.every_seconds:
            self._next_chk_time = time.monotonic() + ctl.every_seconds
        if self._status is not None:
            self._next_status = time.monotonic() + self.status_interval
        self._l1 = cfg.backend
        self._l2 = {id(e): e.backend for e in cfg.opt_selector.entries}
        if cfg.needs_probe and self.backend_choice is not None:  # resumed: keep the choice
            self._apply_backend_choice(self.backend_choice)
        elif cfg.needs_probe:
            self._resolve_auto()
        self._resolve_pool_start()
        self._preload()
        self._dask_address, close_dask = dask_for_run(cfg)  # the embedded cluster, if one is needed
        streams = None
        if self._print_dir is not None and self._l1 == "threads":
            streams = ThreadRoutedStreams(self._print_dir)
            streams.__enter__()
            self._cleanups.append(streams.__exit__)
        thread_slice = self._resolve_thread_slice()
        self._supervisor = make_supervisor(self._l1, cfg.task, cfg.start_method, streams, thread_slice,
                                           self.reuse_processes, cfg.max_jobs)
        log.info("starting: %s", self._describe())
        restore = _install_sigterm()
        interrupted: BaseException | None = None
        try:
            self._loop()
            if self.checkpoint_control is not None and self.checkpoint_control.at_end:
                self._take_checkpoint("the run ended", ending=True)
        except (KeyboardInterrupt, _Terminate) as e:
            interrupted = e
            self._end_cond = "interrupted (KeyboardInterrupt)" if isinstance(e, KeyboardInterrupt) else "terminated (SIGTERM)"
        except BaseException as e:
            interrupted = e
            self._broken = True  # keep shutting down even if handling a message fails again
            self._end_cond = f"manager error: {type(e).__name__}: {e}"
        finally:
            try:
                with _signals_deferred():
                    self._wind_down(interrupted, t0)
            finally:
                self._supervisor.close()
                close_dask()
                for undo in reversed(self._cleanups):
                    undo()
                self._cleanups.clear()
                self._running = False
                restore()
        log.info("finished: %s", self._end_cond)
        if isinstance(interrupted, _Terminate):
            raise SystemExit(128 + signal.SIGTERM)
        if interrupted is not None:
            raise interrupted
        if self._fatal is not None:
            raise self._fatal
        return self.result

    def _wind_down(self, interrupted: BaseException | None, t0: float) -> None:
        """Stop the optimizers, write the result, the summary and the log, and make sure
        no process is left.  Their processes exit while the summary and log are written."""
        cfg = self.config
        try:
            if interrupted is not None and self.checkpoint_control is not None and not self._broken:
                try:
                    self._take_checkpoint(self._end_cond or "interrupted", timeout=cfg.shutdown_grace + 10,
                                          ending=True)
                except Exception:
                    log.exception("could not write a checkpoint while stopping")
            # on return every optimizer has ended and its last batch is logged
            self._supervisor.stop_all(
                self._end_cond or "manager stopped", cfg.shutdown_grace, self._on_message, self._on_end
            )
            self.result = self._make_result(self._clock() - t0)
            self._report_status(final=True)
            if cfg.working_dir is not None:
                write_summary(cfg.working_dir / "summary.yml", self._summary())
        finally:
            try:
                if self._log is not None:
                    self._log.close()
                    self._log = None
            finally:
                reaped = self._supervisor.sweep(cfg.shutdown_grace)
                if reaped:
                    log.warning("had to force %d leftover process(es) to end: %s", len(reaped), reaped)

    def _loop(self) -> None:
        cfg, sup = self.config, self._supervisor
        assert sup is not None
        self._fill_slots()
        while True:
            if self._fatal is not None:
                self._end_cond = f"fatal error: {self._fatal}"
                return
            decision = cfg.convergence_checker(self.view)
            if decision:
                self._end_cond = decision.reason or str(cfg.convergence_checker)
                return
            if not sup.children:
                self._end_cond = "no optimizer running and the selector starts no more"
                return
            self._send_acks()
            sup.poll(self._wake_after(), self._on_message, self._on_end)
            self._enforce_deadlines()
            if self._steer():
                return
            self._report_status()
            if cfg.killing_conditions is not False and self.counters.f_evals >= self._next_hunt:
                self._next_hunt = self.counters.f_evals + cfg.hunt_frequency
                self._hunt()
            self._fill_slots()

    def _preload(self) -> None:
        """Import the optimizers' heavy dependencies once, here, before children start:
        forked children inherit them, and this process's forkserver, if it starts optimizer
        processes, is told to preload them, with the modules its children run.  (A pool's
        workers are the runner's business: ``make_pool`` sets up the forkserver it uses.)"""
        modules = ["__main__", "glompo_like.execution.runner"]
        for e in self.config.opt_selector.entries:
            e.cls.preload()
            modules += [e.cls.__module__, *e.cls.preload_modules]
        if self._l1 != "threads" and self._start_method() == "forkserver":
            multiprocessing.get_context("forkserver").set_forkserver_preload(list(dict.fromkeys(modules)))

    def _resolve_pool_start(self) -> None:
        """How this run's Level 2 process pools start their workers (see ``pool_start_method``)."""
        if any(b == "processes" for b in self._l2.values()):
            method, reason = resolve_pool_start_method(self.config.pool_start_method, self.config.start_method)
            self.pool_start_choice = {"start_method": method, "reason": reason}

    def _pool_start_method(self) -> str | None:
        return None if self.pool_start_choice is None else self.pool_start_choice["start_method"]

    def _start_method(self) -> str:
        return self.config.start_method or multiprocessing.get_context().get_start_method()

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> Path | None:
        """Write a checkpoint.  While the run is going (call it from another thread) this
        asks the manager to write one at its next turn and returns ``None``; the path then
        appears in :attr:`checkpoints`.  Otherwise it writes one at once and returns it."""
        if self.checkpoint_control is None:
            raise GlompoError("checkpoint() needs checkpoint_control=CheckpointingControl(...)")
        if self._running:
            self._checkpoint_request.set()
            self._supervisor.wakeup()
            return None
        return self._write(self._checkpoint_data({}))

    def _take_checkpoint(self, why: str, timeout: float | None = None, ending: bool = False) -> Path | None:
        """``ending``: the run stops after this checkpoint, so the paused optimizers are
        not resumed (the log then ends exactly where the checkpoint does)."""
        t0 = time.perf_counter()
        states = self._collect_states(timeout)
        try:
            path = self._write(self._checkpoint_data(states))
        finally:
            for opt_id in states if not ending else ():  # let the paused optimizers go on
                child = self._supervisor.children.get(opt_id)
                if child is not None:
                    child.send(Resume())
        pause = time.perf_counter() - t0
        self.checkpoint_pauses.append(pause)
        log.info("checkpoint (%s) written in %.1f ms: %s", why, 1e3 * pause, path)
        return path

    def _write(self, data: dict[str, Any]) -> Path:
        ctl = self.checkpoint_control
        directory = ctl.directory or (self.config.working_dir / "checkpoints")
        path = write_checkpoint(directory, data, ctl.keep_last)
        self.checkpoints = [p for p in self.checkpoints if p.exists()] + [path]
        return path

    def _collect_states(self, timeout: float | None) -> dict[int, StateReply]:
        """Ask every running optimizer for its state at its next clean point (it pauses
        there), keep handling reports meanwhile, and return the states once all are in.
        The counters then match the log exactly: nothing is evaluated while paused."""
        sup = self._supervisor
        self._states = {}
        self._collecting = {i for i in sup.children if self.records[i].alive and i not in sup.stopping}
        for opt_id in self._collecting:
            sup.children[opt_id].send(RequestState())
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._collecting:
            # Runners answer at their next clean point: between tell and ask, or while
            # waiting for credit.  No acknowledgements go out meanwhile: what is pending is
            # sent after the checkpoint (not at all if the run is ending), so nobody
            # evaluates past this point because of it.
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise CheckpointError(f"optimizers {sorted(self._collecting)} did not report their state in time")
            sup.poll(left, self._on_message, self._on_end)
            self._enforce_deadlines()
        return dict(self._states)

    def _checkpoint_data(self, states: dict[int, StateReply]) -> dict[str, Any]:
        """The explicit state record of the run (see checkpoint.py for the file format)."""
        cfg = self.config
        task_bytes = cfg.task_bytes
        if task_bytes is None:
            try:
                task_bytes = pickle_task(cfg.task)
            except GlompoError:
                task_bytes = None  # load_checkpoint(..., task=...) must supply it
        optimizers = []
        for opt_id, reply in sorted(states.items()):
            if reply.state is None:  # not checkpointable: a resumed run starts another one
                continue
            entry, l2 = self._entries[opt_id]
            optimizers.append({
                "opt_id": opt_id, "cls": entry.cls, "kwargs": dict(entry.kwargs), "workers": entry.workers,
                "backend": l2, "generation": reply.generation, "state": reply.state,
            })
        return {
            "format": "glompo_like-checkpoint",
            "library_version": _version(),
            "created": time.time(),
            "config": {
                "bounds": cfg.bounds.as_pairs(), "backend": cfg.backend, "max_jobs": cfg.max_jobs,
                "hunt_frequency": cfg.hunt_frequency, "share_best_solutions": cfg.share_best_solutions,
                "working_dir": None if cfg.working_dir is None else str(cfg.working_dir), "seed": cfg.seed,
                "start_method": cfg.start_method, "pool_start_method": cfg.pool_start_method,
                "task_timeout": cfg.task_timeout, "on_error": cfg.on_error,
                "penalty": cfg.penalty, "blas_threads": cfg.blas_threads, "shutdown_grace": cfg.shutdown_grace,
                "report_interval": self.report_interval, "checkpoint_control": self.checkpoint_control,
                "thread_slice": self.thread_slice, "reuse_processes": self.reuse_processes,
            },
            "policies": {
                "opt_selector": cfg.opt_selector, "convergence_checker": cfg.convergence_checker,
                "killing_conditions": cfg.killing_conditions, "x0_generator": cfg.x0_generator,
            },
            "task": task_bytes,
            "manager": {
                "entropy": self.entropy, "policy_rng": self._policy_rng.bit_generator.state,
                "counters": self.counters, "next_opt_id": self._next_opt_id,
                "records": {k: r.for_checkpoint() for k, r in self.records.items()},
                "next_hunt": self._next_hunt, "t_used": self.view.t_total if self._running else
                self.counters.t_used_before, "backend_choice": self.backend_choice,
                "thread_slice_choice": self.thread_slice_choice,
            },
            "optimizers": optimizers,
        }

    #: what load_checkpoint lets a resumed run change
    RESUME_OVERRIDES = frozenset({
        "convergence_checker", "killing_conditions", "max_jobs", "backend", "working_dir", "hunt_frequency",
        "x0_generator", "opt_selector", "checkpoint_control", "task_timeout", "shutdown_grace",
        "report_interval", "share_best_solutions", "start_method", "pool_start_method", "blas_threads",
        "on_error", "penalty",
        "status", "status_interval", "dask_address", "thread_slice", "reuse_processes",
    })

    @classmethod
    def load_checkpoint(cls, path: str | Path, task: Callable | None = None, **overrides: Any) -> GloMPOManager:
        """A manager that continues the run saved in ``path`` (a checkpoint file, or a
        directory: its newest checkpoint) when :meth:`start_manager` is called.

        ``task`` must be given when the checkpoint could not store it (it was not
        picklable).  ``overrides`` replace settings, e.g. a larger budget
        (``convergence_checker=MaxFuncCalls(50_000)``), ``max_jobs``, ``backend``, hunters
        or ``working_dir`` (see :attr:`RESUME_OVERRIDES`).  The evaluation log of the
        working directory is continued; rows written after the checkpoint (by a run that
        was killed later) are rolled back.

        .. warning:: Loading unpickles the file: only load checkpoints you trust.
        """
        data = read_checkpoint(path)
        unknown = set(overrides) - cls.RESUME_OVERRIDES
        if unknown:
            raise ConfigError(f"load_checkpoint cannot override {sorted(unknown)}; it can override "
                              f"{sorted(cls.RESUME_OVERRIDES)}")
        if task is None:
            if data["task"] is None:
                raise CheckpointError("this checkpoint does not hold the task (it could not be pickled); "
                                      "pass it again: load_checkpoint(path, task=...)")
            task = pickle.loads(data["task"])
        conf, pol = data["config"], data["policies"]
        kwargs: dict[str, Any] = {k: v for k, v in conf.items() if k not in ("bounds",)}
        kwargs.update(pol)
        kwargs.update(overrides)
        return cls(task, conf["bounds"], _resume=data, **kwargs)

    def _restore(self, data: dict[str, Any]) -> None:
        m = data["manager"]
        self.entropy = m["entropy"]
        self._policy_rng.bit_generator.state = m["policy_rng"]
        self.counters = m["counters"]
        self.counters.t_used_before = m["t_used"]
        self.records = m["records"]
        self._restore_points()
        self.view = RunView(self.counters, self.records, self._clock(), self._clock, self.config.bounds)
        self._next_opt_id = m["next_opt_id"]
        self._next_hunt = m["next_hunt"]
        self.backend_choice = m["backend_choice"]
        self.thread_slice_choice = m.get("thread_slice_choice")
        self._resume_queue = list(data["optimizers"])
        saved = {o["opt_id"] for o in self._resume_queue}
        for rec in self.records.values():  # alive then, but without a state to go on from
            if rec.alive and rec.opt_id not in saved:
                self._mark_end(rec, "stopped", "not resumed: the checkpoint holds no state for it "
                               "(it was stopping, or its optimizer is not checkpointable)")
        self._resumed_from = data
        if self._next_chk_evals is not None:
            self._next_chk_evals = self.counters.f_evals + self.checkpoint_control.every_evaluations

    def _restore_points(self) -> None:
        """Checkpoints do not carry each optimizer's evaluated points (they are in the
        log, and would make every checkpoint grow with the run): read them back."""
        points: dict[int, np.ndarray] = {}
        wd = self.config.working_dir
        if wd is not None and (wd / LOG_NAME).exists():
            try:
                points = read_points(wd, self.config.bounds.dim, self.counters.f_evals)
            except sqlite3.Error as e:
                log.warning("resuming: could not read evaluated points from the log (%s)", e)
        missing = [r.opt_id for r in self.records.values() if not r.restore_points(points.get(r.opt_id))]
        if missing:
            log.warning(
                "resuming: the evaluated points of optimizer(s) %s are not in %s; their point "
                "histories (x_history) are NaN before the checkpoint", missing, wd
            )

    # ------------------------------------------------------------------ backend="auto"
    def _resolve_auto(self) -> None:
        cfg = self.config
        profile = self._profile = probe_task(cfg.task, cfg.bounds, self._policy_rng)
        self._record_probe(profile, "backend='auto' probe")
        entries = cfg.opt_selector.entries
        l1, l2, reason = choose_backends(
            profile,
            cfg.backend,
            [(e.backend, e.workers) for e in entries],
            picklable=cfg.task_bytes is not None,
            killable=cfg.task_timeout is not None,
        )
        self.backend_choice = {
            "level1": l1,
            "level2": [b if isinstance(b, str) else type(b).__name__ for b in l2],
            "reason": reason,
            "t_eval": profile.t_eval,
            "concurrency_ratio": profile.concurrency_ratio,
            "probe_evals": len(profile.probes),
        }
        self._apply_backend_choice(self.backend_choice)
        log.info("backend='auto' chose Level 1 %r, Level 2 %s: %s", l1, self.backend_choice["level2"], reason)

    def _apply_backend_choice(self, choice: dict[str, Any]) -> None:
        entries = self.config.opt_selector.entries
        if self.config.backend == "auto":
            self._l1 = choice["level1"]
        for e, b in zip(entries, choice["level2"], strict=False):
            if e.backend == "auto":
                self._l2[id(e)] = b

    def _resolve_thread_slice(self) -> float | None:
        """The turn length of runner threads: ``thread_slice``, or what "auto" chooses."""
        if self.thread_slice != "auto":
            return self.thread_slice
        if self._l1 != "threads" or self.config.max_jobs < 2:  # no runner threads side by side
            return None
        if self.thread_slice_choice is None:  # (a resumed run keeps the choice it made)
            chosen, reason = self._choose_thread_slice()
            self.thread_slice_choice = {"thread_slice": chosen, "reason": reason}
            log.info("thread_slice='auto' chose %s: %s", chosen, reason)
        return self.thread_slice_choice["thread_slice"]

    def _choose_thread_slice(self) -> tuple[float | None, str]:
        cfg = self.config
        if not all(self._l2.get(id(e), e.backend) == "serial" for e in cfg.opt_selector.entries):
            # never call a task meant for worker processes in this process
            return None, "evaluations run in Level 2 pools, not in the runner threads: no turns"
        profile = self._profile  # backend="auto" has measured the task already
        if profile is None:
            if 0 in self.records:  # resumed: optimizer 0 is an earlier probe
                return None, "resumed run without a measurement of the task: no turns"
            budget = remaining_evals(cfg.convergence_checker, self.view)
            if budget is not None and budget < 20 * PROBE_MIN_EVALS:  # a probe takes at most 5 %
                return None, f"a budget of {budget} evaluations is too small to spend a probe on: no turns"
            max_serial = 32 if budget is None else min(32, (budget // 20 - 1) // 2)
            profile = self._profile = probe_for_turns(cfg.task, cfg.bounds, self._policy_rng, max_serial)
            self._record_probe(profile, "thread_slice='auto' probe")
        return choose_thread_slice(profile)

    def _record_probe(self, profile: TaskProfile, description: str) -> None:
        """The probe's evaluations are real: log and count them as optimizer 0."""
        xs = np.array([x for x, _ in profile.probes])
        batch = EvalBatch.from_outcomes(xs, [o for _, o in profile.probes])
        rec = OptimizerRecord(
            opt_id=0, opt_type="probe", description=description, slots=0,
            t_start=self._clock(), x0=xs[0], dim=self.config.bounds.dim,
        )
        self.records[0] = rec
        if self._log is not None:
            self._log.start_optimizer(0, rec.opt_type, rec.description, 0, xs[0], time.time())
        self._mark_end(rec, "stopped", f"{description} finished")
        self._on_evaluated(None, rec, Evaluated(0, 1, batch))
        if self._log is not None:
            self._log.end_optimizer(0, time.time(), len(rec.fx), rec.best_fx, "stopped", rec.end_reason or "", None)

    def _wake_after(self) -> float | None:
        """Seconds until something time-based is due: a checker, a task_timeout, a timed
        checkpoint, or a look for intervention files."""
        times = [next_check_in(self.config.convergence_checker, self.view)]
        now = time.monotonic()
        times += [max(0.0, c.deadline - now) for c in self._supervisor.children.values()
                  if getattr(c, "deadline", None)]
        if self._next_chk_time is not None:
            times.append(max(0.0, self._next_chk_time - now))
        if self._interventions is not None:
            times.append(self._interventions.seconds_to_next_look())
        if self._next_status is not None:
            times.append(max(0.0, self._next_status - now))
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def _steer(self) -> bool:
        """Intervention files and checkpoint triggers; returns True to end the run."""
        req = self._interventions.look() if self._interventions is not None else None
        if req:
            for opt_id in req.stop_optimizers:
                rec = self.records.get(opt_id)
                if rec is not None and rec.alive:
                    self._stop_optimizer(rec, "stopped", f"STOP_{opt_id} file")
            if req.checkpoint and self.checkpoint_control is None:
                log.warning("CHKPT file ignored: this run has no checkpoint_control")
        if self.checkpoint_control is not None and (
            (req and req.checkpoint) or self._checkpoint_request.is_set() or self._checkpoint_due()
        ):
            self._checkpoint_request.clear()
            self._take_checkpoint("requested")
        if req and req.stop_run:
            self._end_cond = "STOP file in the working directory"
            return True
        return False

    def _report_status(self, final: bool = False) -> None:
        """Live status; a failing reporter is switched off, never allowed to end the run."""
        if self._status is None:
            return
        try:
            if final:
                self._status.close(self.view)
            elif time.monotonic() >= self._next_status:
                self._status.update(self.view)
                self._next_status = time.monotonic() + self.status_interval
        except Exception:
            log.exception("the status reporter failed; status is off for the rest of the run")
            self._status = None
            self._next_status = None

    def _checkpoint_due(self) -> bool:
        ctl = self.checkpoint_control
        due = False
        if self._next_chk_evals is not None and self.counters.f_evals >= self._next_chk_evals:
            while self._next_chk_evals <= self.counters.f_evals:
                self._next_chk_evals += ctl.every_evaluations
            due = True
        if self._next_chk_time is not None and time.monotonic() >= self._next_chk_time:
            self._next_chk_time = time.monotonic() + ctl.every_seconds
            due = True
        return due

    def _enforce_deadlines(self) -> None:
        """task_timeout for optimizers that evaluate in their own process: a process whose
        evaluation passed its deadline is killed with its process group (so whatever the
        task started dies too); the evaluation is logged as timed out."""
        now = time.monotonic()
        for child in list(self._supervisor.children.values()):
            deadline = getattr(child, "deadline", None)
            if deadline is None or deadline > now:
                continue
            x, t_wall = child.current
            child.deadline = child.current = None
            kill_group(child.pid)
            rec = self.records[child.opt_id]
            msg = (f"evaluation exceeded task_timeout={self.config.task_timeout:g} s; optimizer "
                   f"process {child.pid} and its process group killed")
            outcome = Outcome(math.nan, EvalStatus.TIMED_OUT, t_wall, time.time() - t_wall, f"opt{rec.opt_id}", msg)
            self._on_evaluated(None, rec, Evaluated(rec.opt_id, rec.generations, EvalBatch.from_outcomes(
                np.asarray([x]), [outcome]), n_generations=0))
            if self._mark_end(rec, "crashed", msg):
                self.counters.opts_crashed += 1
                self._record_crash(rec.opt_id, f"optimizer {rec.opt_id}: {msg}", None, None)
            log.warning("optimizer %d: %s", rec.opt_id, msg)

    # ------------------------------------------------------------------ spawning
    def _fill_slots(self) -> None:
        cfg, sup = self.config, self._supervisor
        assert sup is not None
        while self._resume_queue and cfg.max_jobs - sup.used_slots >= self._resume_queue[0]["workers"]:
            self._restart(self._resume_queue.pop(0))
        if self._resume_queue:
            return
        while True:
            if cfg.convergence_checker(self.view):
                return
            free = cfg.max_jobs - sup.used_slots
            if free <= 0:
                return
            entry = cfg.opt_selector.select(self.view, free, self._policy_rng)
            if entry is None:
                return
            x0 = np.asarray(cfg.x0_generator.generate(self.view, self._policy_rng), dtype=float)
            self._start_optimizer(entry, x0)

    def _start_optimizer(self, entry: Any, x0: np.ndarray) -> None:
        opt_id = self._next_opt_id
        self._next_opt_id += 1
        l2 = self._l2.get(id(entry), entry.backend)
        desc = _describe_entry(entry, l2)
        self.records[opt_id] = OptimizerRecord(
            opt_id=opt_id, opt_type=entry.cls.__name__, description=desc, slots=entry.workers,
            t_start=self._clock(), x0=x0, dim=self.config.bounds.dim,
        )
        self.counters.opts_started += 1
        self._launch(opt_id, entry, l2, x0)
        log.info("started optimizer %d: %s", opt_id, desc)

    def _restart(self, saved: dict[str, Any]) -> None:
        """Start an optimizer of a resumed run again, from its checkpointed state."""
        from .policies.selectors import as_entry

        entry = as_entry((saved["cls"], {**saved["kwargs"], "workers": saved["workers"]}), "checkpointed optimizer")
        rec = self.records[saved["opt_id"]]
        rec.granted_until = saved["generation"] + 1
        self._launch(saved["opt_id"], entry, saved["backend"], rec.x0, saved["state"], saved["generation"])
        log.info("resumed optimizer %d from its checkpointed state", saved["opt_id"])

    def _launch(self, opt_id: int, entry: Any, l2: Any, x0: np.ndarray,
                state: dict[str, Any] | None = None, first_generation: int = 0) -> None:
        cfg = self.config
        seed = np.random.SeedSequence(self.entropy, spawn_key=(1, opt_id))
        spec = RunnerSpec(
            opt_id=opt_id,
            opt_cls=entry.cls,
            opt_kwargs=dict(entry.kwargs),
            bounds=cfg.bounds,
            x0=x0,
            seed=seed,
            task_bytes=cfg.task_bytes,
            l2_backend=l2,
            l2_workers=entry.workers,
            start_method=cfg.start_method,
            pool_start_method=self._pool_start_method(),
            task_timeout=cfg.task_timeout,
            blas_threads=cfg.blas_threads,
            on_error=cfg.on_error,
            penalty=cfg.penalty,
            lockstep=self._lockstep,
            report_interval=0.0 if self._lockstep else self.report_interval,
            state=state,
            first_generation=first_generation,
            print_dir=self._print_dir,
            dask_address=self._dask_address,
        )
        self._entries[opt_id] = (entry, l2)
        self._supervisor.start(spec, entry.workers)
        if self._log is not None and state is None:
            rec = self.records[opt_id]
            self._log.start_optimizer(opt_id, rec.opt_type, rec.description, entry.workers, x0, time.time())

    # ------------------------------------------------------------------ messages
    def _on_message(self, child: Child, msg: Any) -> None:
        if self._broken:
            try:
                self._dispatch(child, msg)
            except Exception:
                log.exception("while stopping after an error, could not handle %r", type(msg).__name__)
            return
        self._dispatch(child, msg)

    def _dispatch(self, child: Child, msg: Any) -> None:
        rec = self.records[msg.opt_id]
        if isinstance(msg, Evaluated):
            if getattr(child, "deadline", None) is not None:
                child.deadline = child.current = None  # the announced evaluation finished
            self._on_evaluated(child, rec, msg)
        elif isinstance(msg, EvalStarted):
            child.current = (msg.x, msg.t_wall)
            child.deadline = time.monotonic() + self.config.task_timeout
        elif isinstance(msg, Converged):
            reasons = ", ".join(f"{k}={v}" for k, v in msg.reasons.items())
            if self._mark_end(rec, "converged", f"converged: {reasons}"):
                self.counters.opts_converged += 1
                self.counters.converged_at_kill_count[self.counters.opts_converged] = self.counters.opts_killed
        elif isinstance(msg, Stopped):
            kind = "failed" if msg.reason.startswith("all_failed") else "stopped"
            if self._mark_end(rec, kind, msg.reason) and kind == "failed":
                log.warning("optimizer %d stopped: %s", rec.opt_id, msg.reason)
        elif isinstance(msg, Crashed):
            self._on_crashed(rec, msg)
        elif isinstance(msg, StateReply):
            self._states[msg.opt_id] = msg
            self._collecting.discard(msg.opt_id)

    def _on_evaluated(self, child: Child | None, rec: OptimizerRecord, msg: Evaluated) -> None:
        b = msg.batch
        c = self.counters
        first = c.f_evals + 1
        ok = b.ok
        rec.add_batch(b.x, b.fx, ok, msg.n_generations)
        if rec.t_first_eval is None and len(b):  # its t_start is wall-clock time
            rec.t_first_eval = self._clock() - max(0.0, time.time() - float(b.t_start[0]))
        c.f_evals += len(b)
        c.evals_failed += len(b) - int(ok.sum())
        improved = rec.best_fx < c.best_fx
        if improved:
            c.best_fx, c.best_x, c.best_opt_id = rec.best_fx, rec.best_x, rec.opt_id
        if self._log is not None:
            self._log.add_batch(first, rec.opt_id, b)
        if improved and self.config.share_best_solutions and self._supervisor is not None:  # (not probes)
            for oid, other in self._supervisor.children.items():
                if oid != rec.opt_id and self.records[oid].alive:
                    other.send(Inject(c.best_x.copy(), c.best_fx))
        if rec.alive and child is not None:
            self._pending_acks.append(child)  # sent once the checkers have seen this batch

    def _send_acks(self) -> None:
        """Let runners go on: called once the checkers and hunters have seen the latest
        reports, so no stop decision comes late.  Runners that cannot be given credit
        now (the budget left is promised to others) wait, and are looked at again on every
        turn of the loop."""
        waiting = {c.opt_id: c for c in self._pending_acks}
        waiting.update(self._starved)
        self._pending_acks.clear()
        self._starved = {}
        for opt_id, child in sorted(waiting.items()):
            rec = self.records[opt_id]
            if not rec.alive or opt_id not in self._supervisor.children:
                continue
            until = self._grant(rec)
            if until > rec.generations:
                if until > rec.granted_until or rec.granted_until <= rec.generations:
                    rec.granted_until = until
                    child.send(Ack(until=until))
            else:
                self._starved[opt_id] = child
        if self._starved and not any(
            r.alive and r.granted_until > r.generations for r in self.records.values() if r.opt_id
        ):  # nobody can move: one generation for one optimizer, so the run goes on
            opt_id = min(self._starved)
            child = self._starved.pop(opt_id)
            rec = self.records[opt_id]
            rec.granted_until = rec.generations + 1
            child.send(Ack(until=rec.granted_until))

    def _grant(self, rec: OptimizerRecord) -> int:
        """The last generation ``rec`` may start before it must wait (see :mod:`.flow`)."""
        left = remaining_evals(self.config.convergence_checker, self.view)
        running = len(self._supervisor.children) - len(self._supervisor.stopping)
        return self._credit.grant(rec, self.records.values(), left, running, self._clock())

    def _on_crashed(self, rec: OptimizerRecord, msg: Crashed) -> None:
        cause = None
        if msg.exc_pickle is not None:
            try:
                cause = pickle.loads(msg.exc_pickle)
            except Exception:
                cause = None
        if isinstance(cause, EvaluationError):
            self._mark_end(rec, "crashed", msg.message)
            self._fatal = cause
            return
        if self._mark_end(rec, "crashed", msg.message):
            self.counters.opts_crashed += 1
            self._record_crash(rec.opt_id, f"optimizer {rec.opt_id} raised {msg.message}", None, cause)
        log.warning("optimizer %d crashed: %s\n%s", rec.opt_id, msg.message, msg.traceback)

    #: this many optimizers in a row crashing before a single evaluation ends the run
    MAX_BARREN_CRASHES = 5

    def _record_crash(self, opt_id: int, text: str, exitcode: int | None, cause: BaseException | None) -> None:
        err = OptimizerCrashed(text, opt_id=opt_id, exitcode=exitcode)
        err.__cause__ = cause
        self.crashes.append(err)
        if len(self.records[opt_id].fx):
            self._barren_crashes = 0
            return
        self._barren_crashes += 1
        if self._barren_crashes >= self.MAX_BARREN_CRASHES and self._fatal is None:
            fatal = OptimizerCrashed(
                f"{self._barren_crashes} optimizers in a row crashed before completing a single "
                f"evaluation (the last: {text}); the task or the optimizer settings are broken",
                opt_id=opt_id, exitcode=exitcode,
            )
            fatal.__cause__ = err
            self._fatal = fatal

    def _on_end(self, child: Child) -> None:
        self._collecting.discard(child.opt_id)
        rec = self.records[child.opt_id]
        rec.stopping = False  # it has ended: it holds no credit any more
        code = getattr(child, "exitcode_final", None)
        if rec.alive:  # died without saying why
            from .procs.terminate import signal_name

            what = f"optimizer process died ({signal_name(code)})" if child.pid is not None else "runner thread ended unexpectedly"
            self._mark_end(rec, "crashed", what)
            self.counters.opts_crashed += 1
            self._record_crash(rec.opt_id, f"optimizer {rec.opt_id}: {what}", code, None)
            log.warning("optimizer %d: %s", rec.opt_id, what)
        if self._log is not None:
            self._log.end_optimizer(rec.opt_id, time.time(), len(rec.fx), rec.best_fx,
                                    rec.end_kind or "stopped", rec.end_reason or "", code)

    def _stop_optimizer(self, rec: OptimizerRecord, kind: str, reason: str) -> None:
        """End a running optimizer: recorded at once, while its runner hears of it at its
        next check and keeps its credit until then (it may use it, and the budget must
        still count it)."""
        self._mark_end(rec, kind, reason)
        rec.stopping = True
        self._supervisor.stop(rec.opt_id, reason)

    def _mark_end(self, rec: OptimizerRecord, kind: str, reason: str) -> bool:
        """Record how an optimizer ended; the first word wins (a killed optimizer that then
        reports 'stopped' stays killed).  Returns whether this call set it."""
        if not rec.alive:
            return False
        rec.alive = False
        rec.end_kind = kind
        rec.end_reason = reason
        rec.t_end = self._clock()
        return True

    # ------------------------------------------------------------------ hunting
    def _hunt(self) -> None:
        alive = [r for r in self.records.values() if r.alive and len(r.fx)]
        if len(alive) < 2:
            return
        hunter = min(alive, key=lambda r: r.best_fx)
        cond = self.config.killing_conditions
        for victim in alive:
            if victim is hunter:
                continue
            d = cond(self.view, hunter.opt_id, victim.opt_id)
            if d:
                reason = f"killed by optimizer {hunter.opt_id}: {d.reason}"
                self._stop_optimizer(victim, "killed", reason)
                self.counters.opts_killed += 1
                log.info("optimizer %d %s", victim.opt_id, reason)

    # ------------------------------------------------------------------ reporting
    def _make_result(self, t_used: float) -> Result:
        c = self.counters
        origin: dict[str, Any] = {}
        if c.best_opt_id is not None:
            rec = self.records[c.best_opt_id]
            origin = {"opt_id": rec.opt_id, "type": rec.opt_type, "description": rec.description}
        stats = {
            "f_evals": c.f_evals,
            "evals_failed": c.evals_failed,
            "opts_started": c.opts_started,
            "opts_killed": c.opts_killed,
            "opts_converged": c.opts_converged,
            "opts_crashed": c.opts_crashed,
            "end_cond": self._end_cond,
            "t_used": t_used,
            "seed_entropy": self.entropy,
        }
        x = None if c.best_x is None else np.array(c.best_x)
        return Result(x=x, fx=c.best_fx, origin=origin, stats=stats)

    def _describe(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "task": getattr(cfg.task, "__qualname__", repr(cfg.task)),
            "dim": cfg.bounds.dim,
            "backend": cfg.backend,
            "max_jobs": cfg.max_jobs,
            "opt_selector": repr(cfg.opt_selector),
            "convergence_checker": repr(cfg.convergence_checker),
            "killing_conditions": repr(cfg.killing_conditions),
            "x0_generator": repr(cfg.x0_generator),
            "hunt_frequency": cfg.hunt_frequency,
            "share_best_solutions": cfg.share_best_solutions,
            "seed_entropy": self.entropy,
            "backend_choice": self.backend_choice,
            "thread_slice_choice": self.thread_slice_choice,
            "pool_start_choice": self.pool_start_choice,
            "task_timeout": cfg.task_timeout,
            "on_error": cfg.on_error,
        }

    def _summary(self) -> dict[str, Any]:
        r = self.result
        assert r is not None
        return {
            "settings": self._describe(),
            "result": {
                "fx": None if not math.isfinite(r.fx) else r.fx,
                "x": None if r.x is None else r.x.tolist(),
                "origin": dict(r.origin),
            },
            "stats": dict(r.stats),
            "resources": _resource_use(),
            "optimizers": [
                {
                    "opt_id": rec.opt_id,
                    "type": rec.opt_type,
                    "n_evals": len(rec.fx),
                    "best_fx": None if not math.isfinite(rec.best_fx) else rec.best_fx,
                    "end": rec.end_kind,
                    "reason": rec.end_reason,
                }
                for rec in self.records.values()
            ],
        }

    def __repr__(self) -> str:
        c = self.config
        return f"GloMPOManager(task={getattr(c.task, '__qualname__', c.task)!r}, dim={c.bounds.dim}, backend={c.backend!r}, max_jobs={c.max_jobs})"


def _resource_use() -> dict[str, Any]:
    """CPU time and peak memory of the manager process and of its finished children."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    out: dict[str, Any] = {
        "manager_cpu_s": me.ru_utime + me.ru_stime,
        "manager_max_rss_mb": me.ru_maxrss / 1024,
        "children_cpu_s": kids.ru_utime + kids.ru_stime,
        "children_max_rss_mb": kids.ru_maxrss / 1024,
    }
    try:
        import psutil

        out["manager_rss_mb_now"] = psutil.Process().memory_info().rss / 2**20
        out["cpu_count"] = psutil.cpu_count()
    except Exception:  # resource use is informative only
        pass
    return out


def _version() -> str:
    from . import __version__

    return __version__


def _check_checkpoint_control(ctl: Any, cfg: ManagerConfig) -> CheckpointingControl | None:
    if ctl is None:
        return None
    if not isinstance(ctl, CheckpointingControl):
        raise ConfigTypeError(
            f"checkpoint_control must be a CheckpointingControl(...) or None, got {type(ctl).__name__}"
        )
    if ctl.directory is None and cfg.working_dir is None:
        raise ConfigError("checkpoint_control needs a directory: set working_dir, or "
                          "CheckpointingControl(directory=...)")
    try:
        pickle.dumps((cfg.opt_selector, cfg.convergence_checker, cfg.killing_conditions, cfg.x0_generator))
    except Exception as e:
        raise ConfigError(
            f"checkpoint_control: the run's policies cannot be saved ({type(e).__name__}: {e}); define "
            "custom optimizers and policies at module level and avoid user-owned executors"
        ) from e
    return ctl


def _describe_entry(entry: Any, l2_backend: Any) -> str:
    kw = ", ".join(f"{k}={v!r}" for k, v in entry.kwargs.items())
    l2 = "" if l2_backend == "serial" and entry.workers == 1 else f" [L2 {l2_backend} × {entry.workers}]"
    return f"{entry.cls.__name__}({kw}){l2}"


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """While children are being stopped, a second Ctrl-C or SIGTERM must not cut the
    clean-up short (it is bounded: grace period, then escalation): such signals are noted
    and the run's own interruption is re-raised afterwards anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if noted:
            log.warning("signal(s) %s arrived while stopping; the run was already ending", noted)


def _install_sigterm() -> Callable[[], None]:
    """While the run goes, SIGTERM ends it cleanly (only if nobody else handles SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise _Terminate()

    signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)

