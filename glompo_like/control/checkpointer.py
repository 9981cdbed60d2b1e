"""Taking checkpoints of a running manager, and reading them back to resume.

Taking one (:meth:`Checkpointer.take`):

1. every running optimizer is asked for its state; each answers at its next clean point
   (between tell and ask, or while waiting for credit) and pauses there, so nothing is
   evaluated past the checkpoint and the counters match the log exactly;
2. the manager's record of the run (:meth:`Checkpointer.record`: settings, counters, every
   optimizer's record, RNG states, the execution plan, each paused optimizer's own state)
   is written atomically (:func:`~glompo_like.record.checkpoint.write_checkpoint`);
3. the paused optimizers go on (unless the run is ending).

Resuming (:func:`read_for_resume`) turns a checkpoint into the manager's constructor
arguments plus a :class:`Resumed` record that the new manager takes over.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, GlompoError
from ..execution.messages import RequestState, Resume, StateReply
from ..record import workspace
from ..record.checkpoint import (
    CheckpointingControl,
    newest_checkpoint,
    read_checkpoint,
    remove_partial_files,
    run_checkpoints,
    write_checkpoint,
)
from ..record.ledger import Ledger
from ..record.log import LOG_NAME, log_run_id, read_points
from ..states import EndKind
from .hunting import Hunt
from .spawner import Spawner

__all__ = ["Checkpointer", "Resumed", "read_for_resume", "check_control", "restore_run", "restore_points",
           "rollback_log"]

log = logging.getLogger("glompo_like.manager")


def check_control(control: CheckpointingControl | None, working_dir: Path | None, policies: tuple) -> None:
    """At construction: a checkpointing run needs a directory and policies that pickle."""
    if control is None:
        return
    if control.directory is None and working_dir is None:
        raise ConfigError("checkpoint_control needs a directory: set working_dir, or "
                          "CheckpointingControl(directory=...)")
    try:
        pickle.dumps(policies)
    except Exception as e:
        raise ConfigError(
            f"checkpoint_control: the run's policies cannot be saved ({type(e).__name__}: {e}); define "
            "custom optimizers and policies at module level and avoid user-owned executors"
        ) from e


@dataclass(frozen=True)
class Resumed:
    """What a resumed manager takes over from its checkpoint."""

    run_id: str
    seq: int  # the checkpoint's number in its run
    entropy: int
    policy_rng: dict[str, Any]
    counters: Any
    records: dict[int, Any]
    next_opt_id: int
    next_hunt: int
    t_used: float
    plan: Any  # the ExecutionPlan of the run, or None
    optimizers: list[dict[str, Any]]  # the paused optimizers' states, to start again


class Checkpointer:
    """The manager's checkpoints (see the module docstring).

    Parameters
    ----------
    control:
        When to take them (``None``: only on request is an error).
    directory:
        Where they go.
    """

    def __init__(self, control: CheckpointingControl | None, directory: Path | None, run_id: str) -> None:
        self.control = control
        self.directory = directory
        self.run_id = run_id
        self.seq = 0  # the last checkpoint's number
        self.requested = threading.Event()  # set from any thread: take one at the next turn
        #: paths of the checkpoints written, oldest first
        self.written: list[Path] = []
        #: seconds each checkpoint paused the run (collecting states, writing, resuming)
        self.pauses: list[float] = []
        #: what went wrong with checkpoints (the run went on); also in the summary
        self.warnings: list[str] = []
        self.next_evals: int | None = None
        self._states: dict[int, StateReply] = {}
        self._collecting: set[int] = set()
        #: whether this run goes on from a checkpoint, and the execution plan it had then
        self.resumed = False
        self.previous_plan: Any = None

    @classmethod
    def for_run(cls, s: Any, run_id: str | None) -> Checkpointer:
        """The checkpointer of a run with settings ``s`` (checked: a checkpointing run needs
        a directory and policies that pickle); ``run_id``: the resumed run's, or ``None``
        for a new run."""
        ctl, wd = s.checkpoint_control, s.working_dir
        check_control(ctl, wd, (s.opt_selector, s.convergence_checker, s.killing_conditions, s.x0_generator))
        directory = None if ctl is None else Path(ctl.directory or wd / workspace.CHECKPOINTS_DIR)
        return cls(ctl, directory, run_id or uuid.uuid4().hex[:16])

    @property
    def enabled(self) -> bool:
        return self.control is not None

    def start(self, f_evals: int) -> float | None:
        """The run (re)starts at ``f_evals`` evaluations; returns the seconds until the first
        timed checkpoint (``None``: none).  Files a killed writer left half-written go, and
        so do this run's checkpoints newer than the one it resumes from: the log has been
        rolled back past them."""
        ctl = self.control
        if ctl is None:
            return None
        for p in remove_partial_files(self.directory):
            log.info("removed %s, a checkpoint file cut short by a writer that was killed", p)
        later = [p for seq, p in run_checkpoints(self.directory, self.run_id).get(self.run_id, []) if seq > self.seq]
        for p in later:
            p.unlink(missing_ok=True)
        if later:
            log.warning("resuming from checkpoint %d: removed this run's later checkpoints %s (the log was "
                        "rolled back past them)", self.seq, [p.name for p in later])
        if ctl.every_evaluations:
            self.next_evals = f_evals + ctl.every_evaluations
        return ctl.every_seconds

    def due_by_evaluations(self, f_evals: int) -> bool:
        if self.next_evals is None or f_evals < self.next_evals:
            return False
        while self.next_evals <= f_evals:
            self.next_evals += self.control.every_evaluations
        return True

    # ------------------------------------------------------------------ states
    def got_state(self, msg: StateReply) -> bool:
        """A state arrived.  Returns ``False`` if it came too late for its checkpoint: the
        optimizer paused for nothing and must be told to go on."""
        if msg.opt_id not in self._collecting:
            return False
        self._states[msg.opt_id] = msg
        self._collecting.discard(msg.opt_id)
        return True

    def forget(self, opt_id: int) -> None:
        """``opt_id`` has ended: it will send no state."""
        self._collecting.discard(opt_id)

    def collect(self, handles: Mapping[int, Any], poll: Callable[[float | None], None],
                timeout: float | None) -> dict[int, StateReply]:
        """Ask the optimizers of ``handles`` for their states and wait (calling ``poll``,
        which delivers messages) until all are in or ``timeout`` seconds have passed; those
        still busy then are left out (with a warning), and their states, when they come,
        are answered with ``Resume``."""
        self._states = {}
        self._collecting = set(handles)
        for handle in handles.values():
            handle.send(RequestState())
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._collecting:
            # No acknowledgements go out meanwhile: what is pending is sent after the
            # checkpoint (not at all if the run is ending), so nobody evaluates past it.
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.warn(f"optimizer(s) {sorted(self._collecting)} did not reach a clean point within "
                          f"{timeout:g} s (a long evaluation?): they are not in this checkpoint")
                self._collecting = set()
                break
            poll(left)
        for msg in self._states.values():
            if msg.problem:
                self.warn(f"optimizer {msg.opt_id}: {msg.problem}; it is not in this checkpoint (a run "
                          "resumed from it starts another optimizer in its place)")
        return dict(self._states)

    def warn(self, text: str) -> None:
        """A checkpoint problem: logged, and listed in the summary (``checkpoint_warnings``)."""
        log.warning("checkpoint: %s", text)
        self.warnings.append(text)

    def take(self, handles: Mapping[int, Any], poll: Callable[[float | None], None],
             record: Callable[[dict[int, StateReply]], dict[str, Any]], why: str,
             timeout: float | None = None, ending: bool = False) -> Path | None:
        """Collect states, write the record, let the optimizers go on (not if ``ending``:
        the log then ends exactly where the checkpoint does).  Returns the file, or ``None``
        if it could not be written: that is a warning (log and summary), never the end of
        the run."""
        t0 = time.perf_counter()
        states = self.collect(handles, poll, self.control.timeout if timeout is None else timeout)
        path = None
        try:
            path = self.write(record(states))
        except Exception as e:
            self.warn(f"could not be written ({why}): {type(e).__name__}: {e}")
        finally:
            for opt_id in states if not ending else ():
                handle = handles.get(opt_id)
                if handle is not None:
                    handle.send(Resume())
        pause = time.perf_counter() - t0
        self.pauses.append(pause)
        if path is not None:
            log.info("checkpoint (%s) written in %.1f ms: %s", why, 1e3 * pause, path)
        return path

    def write(self, data: dict[str, Any]) -> Path:
        if self.control is None or self.directory is None:
            raise GlompoError("checkpoint() needs checkpoint_control=CheckpointingControl(...)")
        self.seq += 1
        data = {**data, "run_id": self.run_id, "seq": self.seq}
        path = write_checkpoint(self.directory, data, self.control.keep_last)
        self.written = [p for p in self.written if p.exists()] + [path]
        return path

    # ------------------------------------------------------------------ the record
    @staticmethod
    def record(*, settings: Any, ledger: Ledger, spawner: Spawner, hunt_at: int, t_used: float, plan: Any,
               states: dict[int, StateReply]) -> dict[str, Any]:
        """The explicit state record of a run (the file format is in
        :mod:`glompo_like.record.checkpoint`): its settings, the task, the manager's books
        and randomness, and the state of each paused optimizer."""
        from .._version import __version__
        from ..execution.plan import pickle_task

        task_bytes = spawner.task_bytes
        if task_bytes is None:
            try:
                task_bytes = pickle_task(settings.task)
            except GlompoError:
                task_bytes = None  # load_checkpoint(..., task=...) must supply it
        optimizers = []
        for opt_id, reply in sorted(states.items()):
            if reply.state is None:  # not checkpointable: a resumed run starts another one
                continue
            entry, l2 = spawner.launched[opt_id]
            optimizers.append({
                "opt_id": opt_id, "cls": entry.cls, "kwargs": dict(entry.kwargs), "workers": entry.workers, "pool": entry.pool,
                "backend": l2, "generation": reply.generation, "state": reply.state,
            })
        return {
            "format": "glompo_like-checkpoint",
            "library_version": __version__,
            "created": time.time(),
            "settings": settings.saved(),
            "task": task_bytes,
            "manager": {
                "entropy": spawner.entropy, "policy_rng": spawner.rng.bit_generator.state,
                "counters": ledger.counters, "next_opt_id": spawner.next_opt_id,
                "records": {k: r.for_checkpoint() for k, r in ledger.records.items()},
                "next_hunt": hunt_at, "t_used": t_used, "plan": plan,
            },
            "optimizers": optimizers,
        }


def read_for_resume(path: str | Path, task: Callable | None, overrides: dict[str, Any],
                    allowed: frozenset[str]) -> tuple[Callable, dict[str, Any], Resumed]:
    """A checkpoint as ``(task, settings to build the manager with, Resumed)``; ``overrides``
    replace saved settings (only those in ``allowed``)."""
    path = Path(path)
    if path.is_dir():  # the run of the log beside it, if there is one; else the latest run
        run_id = log_run_id(path.parent)
        path = newest_checkpoint(path, run_id if run_id in run_checkpoints(path) else None)
    data = read_checkpoint(path)
    unknown = set(overrides) - allowed
    if unknown:
        raise ConfigError(f"load_checkpoint cannot override {sorted(unknown)}; it can override {sorted(allowed)}")
    if task is None:
        if data["task"] is None:
            raise CheckpointError("this checkpoint does not hold the task (it could not be pickled); "
                                  "pass it again: load_checkpoint(path, task=...)")
        task = pickle.loads(data["task"])
    settings = {**data["settings"], **overrides}
    m = data["manager"]
    resumed = Resumed(run_id=data["run_id"], seq=data["seq"], entropy=m["entropy"], policy_rng=m["policy_rng"], counters=m["counters"],
                      records=m["records"], next_opt_id=m["next_opt_id"], next_hunt=m["next_hunt"],
                      t_used=m["t_used"], plan=m.get("plan"), optimizers=list(data["optimizers"]))
    return task, settings, resumed


def restore_run(r: Resumed, ledger: Ledger, spawner: Spawner, hunt: Hunt, checkpointer: Checkpointer) -> None:
    """A resumed manager takes over its checkpoint's books.  Optimizers that were running
    without a saved state (stopping, or not checkpointable) end as ``stopped``."""
    spawner.restore(r.entropy, r.policy_rng, r.next_opt_id, r.optimizers)
    checkpointer.seq = r.seq
    checkpointer.resumed, checkpointer.previous_plan = True, r.plan
    r.counters.t_used_before = r.t_used
    ledger.restore(r.counters, r.records)
    hunt.next_at = r.next_hunt
    saved = {o["opt_id"] for o in r.optimizers}
    for rec in ledger.records.values():
        if rec.alive and rec.opt_id not in saved:
            ledger.finish(rec, EndKind.STOPPED, "not resumed: the checkpoint holds no state for it "
                          "(it was stopping, or its optimizer is not checkpointable)")
        elif not rec.alive:
            ledger.finish(rec, EndKind.STOPPED, "ended")  # told to stop before: it has ended


def restore_points(ledger: Ledger, working_dir: Path | None) -> None:
    """Checkpoints do not carry each optimizer's evaluated points (they are in the log, and
    would make every checkpoint grow with the run): read them back."""
    import sqlite3

    points: dict[int, np.ndarray] = {}
    if working_dir is not None and (working_dir / LOG_NAME).exists():
        try:
            wanted = {r.opt_id: len(r.fx) for r in ledger.records.values() if r.xs is None}
            points = read_points(working_dir, ledger.bounds.dim, ledger.counters.f_evals, wanted)
        except sqlite3.Error as e:
            log.warning("resuming: could not read evaluated points from the log (%s)", e)
    missing = [r.opt_id for r in ledger.records.values() if not r.restore_points(points.get(r.opt_id))]
    if missing:
        log.warning("resuming: the evaluated points of optimizer(s) %s are not in %s; their point "
                    "histories (x_history) are NaN before the checkpoint", missing, working_dir)


def rollback_log(ledger: Ledger, spawner: Spawner) -> None:
    """Resuming: rows a later, killed session wrote after the checkpoint go, and the
    optimizers that go on are reopened in the log."""
    going_on = [o["opt_id"] for o in spawner.resume_queue]
    dropped = ledger.log.rollback(ledger.counters.f_evals, spawner.next_opt_id, going_on)
    if dropped:
        log.info("resuming: rolled back %d evaluation(s) logged after the checkpoint", dropped)
