"""GloMPOManager: runs several optimizers on one task, hunts, spawns, stops, reports.

The manager is an event loop over one wait on every optimizer's channel (see
:mod:`glompo_like.execution.supervisor`)::

    spawn → receive (book, share, acknowledge) → hunt → check → checkpoint → spawn → …

It decides nothing itself.  Policies decide (they see a read-only
:class:`~glompo_like.record.view.RunView`): the selector and generator what to start, the
hunters whom to stop, the checkers when the run ends.  Collaborators do the work, each
owning one thing: the :class:`~glompo_like.record.ledger.Ledger` keeps the books and the
log, the :class:`~glompo_like.control.spawner.Spawner` starts optimizers, the supervisor
runs them, :class:`~glompo_like.control.flow.Acks` paces them, the
:class:`~glompo_like.control.checkpointer.Checkpointer` saves them, and one
:class:`~glompo_like.control.deadlines.Deadlines` heap says when to wake up.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .control import checkpointer as ckpt
from .control import incidents
from .control.callbacks import Callbacks
from .control.deadlines import Deadlines
from .control.flow import Acks, Credit
from .control.hunting import Hunt
from .control.signals import TERMINATED_EXIT_CODE, SignalWatch, Terminated, signals_deferred
from .control.spawner import Spawner
from .control.startup import start_run
from .control.steering import LOOK_EVERY, SteeringFiles
from .control.study import SYNC_EVERY, StudyMember
from .errors import GlompoError
from .evaluation.core import EvalBatch
from .execution import messages as m
from .execution.handles import Child
from .execution.plan import ExecutionPlan, validate
from .execution.supervisor import Supervisor
from .policies.base import final_reason, next_check_in, remaining_evals
from .policies.progress import BudgetMeter
from .record import workspace
from .record.ledger import Ledger, OptimizerRecord
from .record.status import SafeStatus, make_status
from .record.summary import describe_run, run_summary, write_summary
from .record.view import RunView
from .result import Result
from .settings import RESUME_OVERRIDES, Settings, Task, document_settings
from .states import EndCause, EndKind, RunEnd, RunState

if TYPE_CHECKING:
    from .bounds import BoundsLike
    from .settings import ManagerOptions

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = ["GloMPOManager"]

log = logging.getLogger("glompo_like.manager")
_CHECKER, _STATUS, _STEER, _CHECKPOINT, _STUDY = "checker", "status", "steer", "checkpoint", "study"


class GloMPOManager:
    """Run several optimizers concurrently on one task and return the best result.

    ``GloMPOManager(task, bounds, **settings)``: every setting below is keyword-only,
    checked at construction (a typed error names the argument and the fix), and described
    once, in :class:`~glompo_like.settings.Settings`.  Use the manager as a context manager
    (leaving it stops anything still running), call :meth:`start_manager` once, and read
    the :class:`~glompo_like.Result` it returns.
    """

    def __init__(self, task: Task, bounds: BoundsLike, **settings: Unpack[ManagerOptions]) -> None:
        self._init(Settings.build(task=task, bounds=bounds, **settings), None)

    def _init(self, s: Settings, resumed: ckpt.Resumed | None) -> None:
        self.settings = s
        self._spawner = Spawner(s, validate(s), s.seed)
        self.checkpointer = ckpt.Checkpointer.for_run(s, None if resumed is None else resumed.run_id)
        workspace.check(s.working_dir, s.overwrite, resuming=resumed is not None)
        self.ledger = Ledger(s.bounds, s.clock)
        self.plan: ExecutionPlan | None = None  # resolved when the run starts
        self.state = RunState.CREATED
        self.end: RunEnd | None = None
        self.result: Result | None = None
        self._hunt = Hunt(s.killing_conditions, s.hunt_frequency)
        self._acks = Acks(Credit(0.0 if s.lockstep else s.report_interval, s.lockstep),
                          lambda: self.ledger.records, s.clock)
        self._deadlines = Deadlines()
        self._status = SafeStatus(make_status(s.status), BudgetMeter(s.convergence_checker))
        self._sup: Supervisor | None = None
        self._workspace = workspace.Workspace(s.working_dir, s.dim)
        self._callbacks = Callbacks(s.callbacks, lambda reason: self._end_run(EndCause.CALLBACK, reason))
        self._study = None if s.study is None else StudyMember(s, self.ledger, resuming=resumed is not None)
        if resumed is not None:
            ckpt.restore_run(resumed, self.ledger, self._spawner, self._hunt, self.checkpointer)
            ckpt.restore_points(self.ledger, s.working_dir)

    # ------------------------------------------------------------------ public
    def __enter__(self) -> GloMPOManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop anything still running (only relevant if ``start_manager`` was interrupted
        in an unusual way); idempotent."""
        if self._sup is not None and self._sup.children:
            self._sup.shutdown("manager closed", self.settings.shutdown_grace, self._on_message, self._on_end)
        self.ledger.log.close()
        self._workspace.release()
        if self._study is not None:
            self._study.close()

    @property
    def view(self) -> RunView:
        """The read-only view of the run that policies get."""
        return self.ledger.view

    @property
    def crashes(self) -> list:
        """One :class:`~glompo_like.errors.OptimizerCrashed` per optimizer that crashed."""
        return self.ledger.crashes

    @property
    def run_id(self) -> str:
        """This run's identity: in its log, summary and checkpoints; kept when it resumes."""
        return self.checkpointer.run_id

    @property
    def checkpoints(self) -> list[Path]:
        """The checkpoints this manager wrote, oldest first."""
        return self.checkpointer.written

    @property
    def study_manager_id(self) -> str | None:
        """This manager's identity in its study (``None`` without ``study``)."""
        return None if self._study is None else self._study.link.manager_id

    def optimizer_pids(self) -> dict[int, int]:
        """``{opt_id: pid}`` of the optimizers running in their own process right now
        (empty for the threads backend).  Safe to call from another thread."""
        sup = self._sup
        if sup is None:
            return {}
        return {i: c.pid for i, c in list(sup.children.items()) if c.pid is not None}

    def checkpoint(self) -> Path | None:
        """Write a checkpoint.  While the run is going (call it from another thread) this
        asks the manager to write one at its next turn and returns ``None``; the path then
        appears in :attr:`checkpoints`.  Otherwise it writes one at once and returns it."""
        if not self.checkpointer.enabled:
            raise GlompoError("checkpoint() needs checkpoint_control=CheckpointingControl(...)")
        if self.state is RunState.RUNNING and self._sup is not None:
            self.checkpointer.requested.set()
            self._sup.wakeup()
            return None
        return self.checkpointer.write(self._checkpoint_record({}))

    @classmethod
    def load_checkpoint(cls, path: str | Path, task: Task | None = None,
                        **overrides: Unpack[ManagerOptions]) -> GloMPOManager:
        """A manager that continues the run saved in ``path`` (a checkpoint file, or a
        directory: its newest checkpoint) when :meth:`start_manager` is called.

        ``task`` must be given when the checkpoint could not store it (it was not
        picklable).  ``overrides`` replace settings, e.g. a larger budget
        (``convergence_checker=MaxFuncCalls(50_000)``), ``max_jobs``, ``backend``, hunters
        or ``working_dir`` (see :data:`~glompo_like.settings.RESUME_OVERRIDES`).  The
        evaluation log of the working directory is continued; rows written after the
        checkpoint (by a run that was killed later) are rolled back.

        .. warning:: Loading unpickles the file: only load checkpoints you trust.
        """
        task, saved, resumed = ckpt.read_for_resume(path, task, dict(overrides), RESUME_OVERRIDES)
        manager = cls.__new__(cls)
        manager._init(Settings.build(task=task, **saved), resumed)
        return manager

    # ------------------------------------------------------------------ the run
    def start_manager(self) -> Result:
        """Run until a convergence condition is met; returns the :class:`Result`."""
        if self.state is not RunState.CREATED:
            raise GlompoError("start_manager() can be called once per manager; create a new one")
        self.state = RunState.RUNNING
        interrupted: BaseException | None = None
        with contextlib.ExitStack() as resources:
            resources.callback(self._workspace.release)
            resources.callback(lambda: self.ledger.log.close())
            try:
                self._prepare(resources)
            except BaseException:
                self.ledger.log.close()
                self._workspace.undo()  # a failed start leaves the directory as it found it
                raise
            self._workspace.started()
            log.info("starting: %s", self._describe())
            self.ledger.log.describe_run(self._describe())  # (readers of the running log see it)
            try:
                with SignalWatch(self._sup.wakeup) as signals:
                    self._loop(signals)
                    if self.checkpointer.enabled and self.checkpointer.control.at_end:
                        self._take_checkpoint("the run ended", ending=True)
            except (KeyboardInterrupt, Terminated) as e:
                interrupted = e
                self._end_run(EndCause.INTERRUPTED if isinstance(e, KeyboardInterrupt) else EndCause.TERMINATED,
                              "interrupted (KeyboardInterrupt)" if isinstance(e, KeyboardInterrupt)
                              else "terminated (SIGTERM)")
            except BaseException as e:
                interrupted = e
                self.end = RunEnd(EndCause.MANAGER_ERROR, f"manager error: {type(e).__name__}: {e}")
            finally:
                self.state = RunState.ENDING
                with signals_deferred():
                    self._wind_down(interrupted)
        self.state = RunState.ENDED
        log.info("finished: %s", self.end)
        if isinstance(interrupted, Terminated):
            raise SystemExit(TERMINATED_EXIT_CODE)
        if interrupted is not None:
            raise interrupted
        if self.end is not None and self.end.error is not None:
            raise self.end.error
        assert self.result is not None
        return self.result

    def _prepare(self, resources: contextlib.ExitStack) -> None:
        """Start what the run needs (:func:`.control.startup.start_run`) and its timers."""
        s = self.settings
        self.plan, self._sup = start_run(s, self.ledger, self._spawner, self._workspace, self.checkpointer, resources,
                                        self._study)
        d = self._deadlines
        d.set_in(_CHECKPOINT, self.checkpointer.start(self.ledger.counters.f_evals))
        d.set_in(_STATUS, s.status_interval if self._status.on else None)
        d.set_in(_STEER, None if s.working_dir is None else 0.0)
        if self._study is not None:
            d.set_in(_STUDY, SYNC_EVERY)

    def _loop(self, signals: SignalWatch) -> None:
        s, sup, view = self.settings, self._sup, self.ledger.view
        while True:
            signals.raise_if_signalled()
            if self._study is not None:
                self._ended_by(self._study.ended())
            if self.end is not None or self._checked():  # (self.end: a fatal error, a STOP file, the study)
                return
            self._fill_slots()  # (after the checks: a run that is over starts nothing)
            if not sup.children:
                self._end_run(EndCause.EXHAUSTED, "no optimizer running and the selector starts no more")
                return
            self._acks.send(sup.children, len(sup.children) - len(sup.stopping),
                            remaining_evals(s.convergence_checker, view))
            self._deadlines.set_in(_CHECKER, next_check_in(s.convergence_checker, view))
            self._poll(self._deadlines.next_in())
            self._on_deadlines()
            if self.checkpointer.enabled and (self.checkpointer.requested.is_set()
                                              or self.checkpointer.due_by_evaluations(view.f_evals)):
                self.checkpointer.requested.clear()
                self._take_checkpoint("requested")
            if self._hunt.due(view.f_evals):
                for victim, reason in self._hunt.victims(self.ledger.records, view):
                    self._stop_optimizer(victim, EndKind.KILLED, reason)

    def _poll(self, timeout: float | None) -> None:
        """Deliver what the children sent (waiting up to ``timeout`` seconds for it).  The
        log rows of everything delivered are one transaction, committed on return: before
        any runner is acknowledged, hunted or checkpointed, and before the callbacks hear
        of them."""
        with self._callbacks.held(), self.ledger.log.group():
            self._sup.poll(timeout, self._on_message, self._on_end)

    def _on_deadlines(self) -> None:
        for key, data in self._deadlines.pop_due():
            if key == _STATUS and self._status.update(self.view):  # (off if it failed)
                self._deadlines.set_in(_STATUS, self.settings.status_interval)
            elif key == _STEER:
                self._steer()
                self._deadlines.set_in(_STEER, LOOK_EVERY)
            elif key == _STUDY:
                self._share(self._study.sync(self.ledger))
                self._deadlines.set_in(_STUDY, SYNC_EVERY)
            elif key == _CHECKPOINT:
                self.checkpointer.requested.set()
                self._deadlines.set_in(_CHECKPOINT, self.checkpointer.control.every_seconds)
            elif isinstance(key, tuple) and key[0] == "timeout":
                self._evaluation_timed_out(key[1], *data)

    def _fill_slots(self) -> None:
        s, sup = self.settings, self._sup
        self._spawner.fill(lambda: s.max_jobs - sup.used_slots, self.ledger, self.plan, sup.start)

    def _wind_down(self, interrupted: BaseException | None) -> None:
        """Stop the optimizers, write the result, the summary and the log, and make sure no
        process is left.  Their processes exit while the summary and log are written."""
        s, sup = self.settings, self._sup
        end = self.end or RunEnd(EndCause.MANAGER_ERROR, "manager stopped")
        try:
            if interrupted is not None and self.checkpointer.enabled and end.cause is not EndCause.MANAGER_ERROR:
                self._take_checkpoint(str(end), timeout=s.shutdown_grace + 10, ending=True)
            for rec in list(self.ledger.records.values()):  # a normal end: stopped, not crashed
                if rec.alive and rec.opt_id in sup.children:
                    self.ledger.stop(rec, EndKind.STOPPED, f"the run ended: {end}")
            # on return every optimizer has ended and its last batch is logged
            sup.stop_all(str(end), s.shutdown_grace, self._on_message, self._on_end)
            if end.cause is EndCause.CHECKER:  # its numbers, as the run ended
                end = self.end = replace(end, reason=final_reason(s.convergence_checker, self.view) or end.reason)
            study = None if self._study is None else self._study.leave(self.ledger, end)
            self.result = self._callbacks.annotate(self.ledger.result(str(end), self._spawner.entropy))
            if study is not None:
                self.result.stats["study"] = study
            self._status.close(self.view)
            if s.working_dir is not None:
                write_summary(s.working_dir / workspace.SUMMARY_NAME,
                              run_summary(self._describe(), self.result, self.ledger,
                                          {"checkpoints": self.checkpointer.warnings}))
        finally:
            try:
                self.ledger.log.close()
            finally:
                reaped = sup.sweep(s.shutdown_grace)
                if reaped:
                    log.warning("had to force %d leftover process(es) to end: %s", len(reaped), reaped)

    def _end_run(self, cause: EndCause, reason: str, error: BaseException | None = None) -> None:
        """The run ends (the first reason given wins)."""
        self._ended_by(RunEnd(cause, reason, error))

    def _ended_by(self, end: RunEnd | None) -> None:
        """``end`` (if any) ends the run, unless it already ended; a fatal error is kept."""
        if end is not None and (self.end is None or (self.end.error is None and end.error is not None
                                                     and end.cause is EndCause.FATAL)):
            self.end = end

    # ------------------------------------------------------------------ messages
    def _on_message(self, child: Child, msg: Any) -> None:
        if self.end is not None and self.end.cause is EndCause.MANAGER_ERROR:
            try:  # keep shutting down even if handling a message fails again
                self._dispatch(child, msg)
            except Exception:
                log.exception("while stopping after an error, could not handle %r", type(msg).__name__)
            return
        self._dispatch(child, msg)

    def _dispatch(self, child: Child, msg: Any) -> None:
        rec = self.ledger.records[msg.opt_id]
        if isinstance(msg, m.Evaluated):
            self._deadlines.clear(("timeout", msg.opt_id))  # an announced evaluation finished
            self._on_evaluated(child, rec, msg.batch, msg.n_generations)
        elif isinstance(msg, m.EvalStarted):
            self._deadlines.set_in(("timeout", msg.opt_id), self.settings.task_timeout, (msg.x, msg.t_wall))
        elif isinstance(msg, m.Converged):
            reasons = ", ".join(f"{k}={v}" for k, v in msg.reasons.items())
            self.ledger.finish(rec, EndKind.CONVERGED, f"converged: {reasons}")
        elif isinstance(msg, m.Stopped):
            kind = EndKind.FAILED if msg.failed else EndKind.STOPPED
            if self.ledger.finish(rec, kind, msg.reason) and msg.failed:
                log.warning("optimizer %d stopped: %s", rec.opt_id, msg.reason)
        elif isinstance(msg, m.Crashed):
            self._ended_by(incidents.crash_reported(self.ledger, rec, msg))
        elif isinstance(msg, m.StateReply) and not self.checkpointer.got_state(msg):
            child.send(m.Resume())  # it answered after its checkpoint was taken: go on

    def _on_evaluated(self, child: Child | None, rec: OptimizerRecord, batch: EvalBatch, generations: int) -> None:
        improved = self.ledger.record(rec, batch, generations)
        if self.ledger.all_failed(self.settings.fail_fast):
            self._ended_by(incidents.broken_task(self.ledger, self.settings.fail_fast))
        c = self.ledger.counters
        self._callbacks.batch_logged(self.view, rec, batch, c.f_evals, improved)
        if improved and child is not None:
            self._share((c.best_x, c.best_fx), rec.opt_id)
        if rec.alive and child is not None:
            self._acks.reported(rec.opt_id, child)  # answered once the checkers have seen it

    def _share(self, best: tuple[np.ndarray, float] | None, source: int | None = None) -> None:
        """Pass a better point (``best``: ``(x, fx)``, found by optimizer ``source`` or by
        another manager of the study) to every other running optimizer."""
        if best is not None and self.settings.share_best_solutions and self._sup is not None:
            for oid, other in self._sup.children.items():
                if oid != source and self.ledger.records[oid].alive:
                    other.send(m.Inject(best[0].copy(), best[1]))

    def _checked(self) -> bool:
        """Ask the convergence checker whether the run is over (then it ends)."""
        decision = self.settings.convergence_checker(self.view)
        if decision:
            self._end_run(EndCause.CHECKER, decision.reason or str(self.settings.convergence_checker))
        return bool(decision)

    def _on_end(self, child: Child) -> None:
        """A child (thread or process) has ended; an optimizer that said nothing crashed."""
        opt_id = child.opt_id
        self.checkpointer.forget(opt_id)
        self._acks.forget(opt_id)
        self._deadlines.clear(("timeout", opt_id))
        rec = self.ledger.records[opt_id]
        code = getattr(child, "exitcode_final", None)
        if rec.alive:  # died without saying why
            self._ended_by(incidents.died(self.ledger, rec, child, code))
        self.ledger.closed(rec, code)
        self._callbacks.optimizer_ended(self.view, rec)

    def _stop_optimizer(self, rec: OptimizerRecord, kind: EndKind, reason: str) -> None:
        """End a running optimizer: recorded at once, while its runner hears of it at its
        next check and keeps its credit until then (it may use it, and the budget must
        still count it)."""
        if self.ledger.stop(rec, kind, reason):
            log.info("optimizer %d %s", rec.opt_id, reason)
        self._sup.stop(rec.opt_id, reason)

    def _evaluation_timed_out(self, opt_id: int, x: np.ndarray, t_wall: float) -> None:
        child = self._sup.children.get(opt_id)
        if child is not None:
            self._ended_by(incidents.timed_out(self.ledger, self.ledger.records[opt_id], child,
                                               self.settings.task_timeout, x, t_wall))

    # ------------------------------------------------------------------ steering, status
    def _steer(self) -> None:
        """The steering files in the working directory (see :mod:`.control.steering`)."""
        req = SteeringFiles(self.settings.working_dir).look()
        for opt_id in req.stop_optimizers:
            rec = self.ledger.records.get(opt_id)
            if rec is not None and rec.alive:
                self._stop_optimizer(rec, EndKind.STOPPED, f"STOP_{opt_id} file")
        if req.checkpoint:
            if self.checkpointer.enabled:
                self.checkpointer.requested.set()
            else:
                log.warning("CHKPT file ignored: this run has no checkpoint_control")
        if req.stop_run:
            self._end_run(EndCause.STOP_FILE, "STOP file in the working directory")
        if req.stop_study:
            if self._study is not None:
                self._study.stop_study(f"STOP_STUDY file in the working directory of manager "
                                       f"{self.study_manager_id}")
            self._end_run(EndCause.STOP_FILE, "STOP_STUDY file in the working directory")

    # ------------------------------------------------------------------ checkpoints
    def _take_checkpoint(self, why: str, timeout: float | None = None, ending: bool = False) -> Path | None:
        sup, records = self._sup, self.ledger.records
        running = {i: c for i, c in sup.children.items() if records[i].alive and i not in sup.stopping}
        return self.checkpointer.take(running, self._poll, self._checkpoint_record, why, timeout, ending)

    def _checkpoint_record(self, states: dict[int, m.StateReply]) -> dict[str, Any]:
        led, sp = self.ledger, self._spawner
        t_used = led.view.t_total if self.state is RunState.RUNNING else led.counters.t_used_before
        return ckpt.Checkpointer.record(settings=self.settings, ledger=led, spawner=sp, hunt_at=self._hunt.next_at,
                                   t_used=t_used, plan=self.plan, states=states)

    def _describe(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **describe_run(self.settings, self.plan, self._spawner.entropy)}

    def __repr__(self) -> str:
        s = self.settings
        return (f"GloMPOManager(task={getattr(s.task, '__qualname__', s.task)!r}, dim={s.dim}, "
                f"backend={s.backend!r}, max_jobs={s.max_jobs})")


document_settings(GloMPOManager)  # its signature and parameter docs come from the one table
