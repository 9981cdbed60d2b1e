"""A manager's side of a study: what it sends, what it learns, and its heartbeat.

The manager keeps its own run (its ``working_dir`` and log, if it has one).  Its ledger
writes through a :class:`StudyTee`, which passes everything on to the run's own log and
keeps the new rows for the study; at each sync (every :data:`SYNC_EVERY` seconds, when the
manager's loop wakes up, and when the run ends) :meth:`StudyLink.sync` stores them in one
transaction and reads back the study's count of evaluations, best point and stop flag, and
the other managers' evaluations stored since the sync before (:class:`StudyHistory`), into
the :class:`StudyShare` that the run's view reads.

The :class:`Heartbeat` thread, with its own database connection, updates the manager's
``heartbeat_at`` every ``study_timeout / 4`` seconds (at most 5) and marks lost the
managers whose heartbeat is older than ``study_timeout``.  It runs beside the manager's
loop, so an objective that keeps the manager busy does not starve it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ledger import LogWriter
from .fingerprint import fingerprint
from .storage import ENDED, HISTORY_ROWS, LOST, Snapshot, Study, StudyError, evaluation_rows
from .timing import SYNC_EVERY

__all__ = ["StudyShare", "StudyHistory", "StudyLink", "StudyTee", "Heartbeat", "SYNC_EVERY"]

log = logging.getLogger("glompo_like.study")



_Rows = tuple[np.ndarray, np.ndarray, np.ndarray]  # (eval_id, x, fx)


class StudyHistory:
    """The other managers' evaluations, as of the last sync: the newest ``limit`` of them
    (oldest first), read at each sync from the rows stored since the one before.

    ``x`` (shape ``(n, dim)``), ``fx`` (``nan`` where the evaluation failed) and
    ``eval_id`` (study-wide ids) are read-only arrays (a sync that brings news makes new
    ones; those handed out before do not change).
    """

    def __init__(self, dim: int, limit: int = HISTORY_ROWS) -> None:
        self.dim = dim
        self.limit = limit
        self.n_read = 0  # rows read from the study since the manager joined
        self._parts: list[_Rows] = []
        self._joined = self._join([])

    def _join(self, parts: list[_Rows]) -> _Rows:
        ids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, dtype=np.int64)
        x = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, self.dim))
        fx = np.concatenate([p[2] for p in parts]) if parts else np.empty(0)
        out: _Rows = (ids[-self.limit:], x[-self.limit:], fx[-self.limit:])
        for a in out:
            a.flags.writeable = False
        return out

    def add(self, news: _Rows) -> None:
        """Rows new since the last sync (joined lazily, at the next read)."""
        self._parts.append(news)
        self.n_read += len(news[0])
        if sum(len(p[0]) for p in self._parts) > 2 * self.limit:
            self._parts = [self._join(self._parts)]

    def _current(self) -> _Rows:
        if self._parts:
            self._joined = self._join([self._joined, *self._parts])
            self._parts = []
        return self._joined

    eval_id = property(lambda self: self._current()[0], doc="study-wide ids of the evaluations")
    x = property(lambda self: self._current()[1], doc="their points, shape (n, dim)")
    fx = property(lambda self: self._current()[2], doc="their values (nan: failed)")

    def __len__(self) -> int:
        return len(self._current()[0])

    def __repr__(self) -> str:
        return f"<StudyHistory {len(self)} evaluations of other managers (newest {self.limit} kept)>"


@dataclass
class StudyShare:
    """What the run's view knows of the study (updated at each sync)."""

    url: str
    manager_id: str
    history: StudyHistory
    others_evals: int = 0  # evaluations of the other managers stored in the study
    n_evals: int = 0  # the study's evaluations at the last sync
    best_fx: float = float("inf")
    best_x: np.ndarray | None = None
    best_manager: str | None = None
    managers_running: int = 1
    stop_reason: str | None = None


class StudyTee:
    """A :class:`~glompo_like.record.ledger.LogWriter` that writes to the run's own log
    and keeps a copy of every new row for the study."""

    def __init__(self, inner: LogWriter, link: StudyLink) -> None:
        self.inner = inner
        self.link = link

    def add_batch(self, first_eval_id: int, opt_id: int, batch: Any) -> None:
        self.inner.add_batch(first_eval_id, opt_id, batch)
        self.link.rows.extend(evaluation_rows(batch, first_eval_id, opt_id, self.link.study.x_columns))

    def group(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.group()  # (the study's rows are stored together at each sync anyway)

    def describe_run(self, description: dict[str, Any]) -> None:
        self.inner.describe_run(description)

    def start_optimizer(self, opt_id: int, opt_type: str, settings: str, slots: int,
                        x0: np.ndarray, t_start: float) -> None:
        import json

        self.inner.start_optimizer(opt_id, opt_type, settings, slots, x0, t_start)
        self.link.ops.append(("start", {"local_opt_id": opt_id, "type": opt_type, "settings": settings,
                                        "slots": slots, "x0": json.dumps(np.asarray(x0).tolist()),
                                        "t_start": t_start}))

    def end_optimizer(self, opt_id: int, t_end: float, n_evals: int, best_fx: float,
                      end_kind: str, end_reason: str, exitcode: int | None) -> None:
        self.inner.end_optimizer(opt_id, t_end, n_evals, best_fx, end_kind, end_reason, exitcode)
        best = float(best_fx) if np.isfinite(best_fx) else None
        self.link.ops.append(("end", {"local_opt_id": opt_id, "t_end": t_end, "n_evals": n_evals,
                                      "best_fx": best, "end_kind": end_kind, "end_reason": end_reason,
                                      "exitcode": exitcode}))

    def rollback(self, last_eval_id: int, next_opt_id: int, alive: list[int]) -> int:
        return self.inner.rollback(last_eval_id, next_opt_id, alive)

    def close(self) -> None:
        self.inner.close()


class Heartbeat:
    """Beats for one manager, and marks the late ones lost (see the module docstring)."""

    def __init__(self, url: str, dim: int, manager_id: str, timeout: float) -> None:
        self.timeout = timeout
        self.interval = max(0.1, min(5.0, timeout / 4))
        # (each beat tries twice at most: the next beat is the retry)
        self.study = Study(url, dim, manager_id, busy_timeout=min(5.0, self.interval), attempts=2)
        self.lost = False  # the study marked this manager lost (it had stopped beating too long)
        self._stop = threading.Event()
        self._warned = 0.0
        self._thread = threading.Thread(target=self._run, name="glompo-study-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        try:
            if not self.study.heartbeat():
                self.lost = True
            self.study.mark_lost(self.timeout)
        except Exception as e:  # the database is unreachable for now: the next beat tries again
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("study %s: heartbeat failed: %s", self.study.url, e)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.study.close()


class StudyLink:
    """One manager's membership of a study (created with the manager: the study is
    created, or checked to agree, at once)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.manager_id = f"{uuid.uuid4().hex[:12]}"
        self.url: str = settings.study
        self.study = Study(self.url, settings.dim, self.manager_id)
        self.timeout = float(settings.study_timeout)
        try:
            self.created = self.study.create_or_check(fingerprint(settings))
        except BaseException:
            self.study.close()
            raise
        self.share = StudyShare(self.url, self.manager_id, StudyHistory(settings.dim))
        self.rows: list[dict[str, Any]] = []
        self.ops: list[tuple[str, dict[str, Any]]] = []
        self.heartbeat: Heartbeat | None = None
        self._best_sent = float("inf")
        self.joined = False

    def join(self) -> None:
        """The run starts: register, beat, and learn the study's state."""
        s = self.settings
        self.study.register(self.manager_id, None if s.working_dir is None else str(s.working_dir), s.max_jobs)
        self.joined = True
        self.heartbeat = Heartbeat(self.url, s.dim, self.manager_id, self.timeout)
        log.info("manager %s joined study %s%s", self.manager_id, self.url, " (created it)" if self.created else "")

    def tee(self, inner: LogWriter) -> StudyTee:
        return StudyTee(inner, self)

    @property
    def lost(self) -> bool:
        return self.heartbeat is not None and self.heartbeat.lost

    def sync(self, counters: Any, attempts: int | None = None) -> Snapshot:
        """Store what is new in one transaction, and read the study's state (and the other
        managers' new evaluations) into :attr:`share`; ``attempts``: of the transaction
        (default: the study's)."""
        rows, ops = self.rows, self.ops
        best = None
        if counters.best_fx < self._best_sent and counters.best_x is not None:
            best = (float(counters.best_fx), counters.best_x, counters.best_opt_id)
        snap = self.study.push(ops, rows, best, counters.f_evals, counters.best_fx, attempts)
        del rows[:]  # (only once they are stored)
        del ops[:]
        if best is not None:
            self._best_sent = best[0]
        sh = self.share
        sh.n_evals = snap.n_evals
        sh.others_evals = max(0, snap.n_evals - self.study.pushed_rows)
        sh.best_fx, sh.best_x, sh.best_manager = snap.best_fx, snap.best_x, snap.best_manager
        sh.managers_running = snap.managers_running
        sh.stop_reason = snap.stop_reason
        if snap.news is not None:
            sh.history.add(snap.news)
        if snap.my_state == LOST and self.heartbeat is not None:
            self.heartbeat.lost = True
        return snap

    def request_stop(self, reason: str) -> None:
        self.study.request_stop(reason, self.manager_id)

    def leave(self, counters: Any, reason: str, stop_study: str | None = None) -> None:
        """The run has ended: store what is left, leave the study (``stop_study``: end it
        too, with that reason), stop beating."""
        try:
            if self.joined:
                try:
                    self.sync(counters)
                    if stop_study is not None:
                        self.request_stop(stop_study)
                    self.study.end_manager(ENDED, reason)
                except StudyError as e:
                    log.warning("manager %s could not store its last evaluations in study %s (they are "
                                "in its own log, if it has a working_dir): %s", self.manager_id, self.url, e)
        finally:
            self.close()

    def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
        self.study.close()

