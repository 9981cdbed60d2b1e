"""A run's membership of a study, in the run's terms.

:class:`~glompo_like.record.study.link.StudyLink` stores and reads the study; this module
says what that means for the run: when the run starts it joins the study (its log writes
through the study's tee), every :data:`SYNC_EVERY` seconds it syncs and learns whether a
better point than its own was found elsewhere (to share with its optimizers), whether the
study ended or marked it lost (then its run ends), and when the run ends it leaves (ending
the whole study when its convergence checker ended the run).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ..record.ledger import Ledger
from ..record.study.timing import SYNC_EVERY
from ..states import EndCause, RunEnd

if TYPE_CHECKING:
    from ..record.study.link import StudyLink

__all__ = ["StudyMember", "SYNC_EVERY"]

log = logging.getLogger("glompo_like.manager")

#: seconds between two warnings that the study's database does not answer
WARN_EVERY = 60.0
#: attempts of a sync's transaction (the next sync tries again: a run's loop never waits long)
SYNC_ATTEMPTS = 2
#: the longest wait between two syncs while the database does not answer (seconds)
MAX_BACKOFF = 5.0


class StudyMember:
    """The manager's side of the study ``settings.study`` (created with the manager: the
    study is created, or checked to agree with this manager's settings, at once)."""

    def __init__(self, settings: Any, ledger: Ledger, resuming: bool) -> None:
        if settings.checkpoint_control is not None or resuming:
            raise ConfigError("GloMPOManager: a manager of a study cannot checkpoint or resume (the study "
                              "is the shared record: start another manager on it instead); drop "
                              "checkpoint_control or study")
        self.clock = settings.clock
        from ..record.study.link import StudyLink  # (SQLAlchemy: the 'study' extra)

        self.link: StudyLink = StudyLink(settings)
        ledger.share = self.link.share  # the run's view reads the study's numbers
        self._warned_at = -float("inf")
        self._shared_fx = float("inf")  # the study's best already passed to the optimizers
        self._backoff = 0.0  # while the database does not answer: seconds between attempts
        self._retry_at = -float("inf")

    def start(self, ledger: Ledger, resources: contextlib.ExitStack) -> None:
        """The run starts: its log writes through the study from now on (the probe's
        evaluations included); register and learn the study's state."""
        ledger.log = self.link.tee(ledger.log)
        self.link.join()
        resources.callback(self.link.close)  # (idempotent: after the run has left the study)
        self.sync(ledger)

    def sync(self, ledger: Ledger) -> tuple[np.ndarray, float] | None:
        """Store this run's news and learn the study's.  Returns the study's best point if it
        is better than this run's and than any shared before (the optimizers should hear of
        it).  A database that does not answer is tried again later (after a back-off that
        doubles up to :data:`MAX_BACKOFF` seconds); the rows wait, the run goes on."""
        from ..record.study.storage import StudyError
        c = ledger.counters
        now = self.clock()
        if now < self._retry_at:
            return None
        try:
            self.link.sync(c, attempts=SYNC_ATTEMPTS)
        except StudyError as e:
            self._backoff = min(MAX_BACKOFF, max(2 * self._backoff, SYNC_EVERY))
            self._retry_at = now + self._backoff
            if now - self._warned_at > WARN_EVERY:
                self._warned_at = now
                log.warning("study %s: could not sync; the run goes on and keeps its %d new evaluation(s) "
                            "for the study (trying again): %s", self.link.url, len(self.link.rows), e)
            return None
        if self._backoff:
            self._backoff, self._warned_at = 0.0, -float("inf")
            log.info("study %s: the database answers again; stored the evaluations kept meanwhile",
                     self.link.url)
        sh = self.link.share
        if sh.best_x is not None and sh.best_fx < c.best_fx and sh.best_fx < self._shared_fx:
            self._shared_fx = sh.best_fx
            return sh.best_x.copy(), sh.best_fx
        return None

    def ended(self) -> RunEnd | None:
        """Why this run must end because of the study (it ended, or marked this manager
        lost), if it must."""
        link = self.link
        if link.lost:
            return RunEnd(EndCause.STUDY, f"this manager ({link.manager_id}) was marked lost by the study "
                                          f"(no heartbeat for over {link.timeout:g} s)")
        if link.share.stop_reason is not None:
            return RunEnd(EndCause.STUDY, f"the study ended: {link.share.stop_reason}")
        return None

    def over(self, budget: int | None) -> bool:
        """Whether the run will start nothing: the study has ended (or marked this manager
        lost), or its budget is spent (``budget``: the evaluations the checker leaves)."""
        return self.ended() is not None or budget == 0

    def stop_study(self, reason: str) -> None:
        """End the whole study (every manager of it ends at its next sync)."""
        from ..record.study.storage import StudyError
        try:
            self.link.request_stop(reason)
        except StudyError as e:
            log.warning("study %s: could not stop the study: %s", self.link.url, e)

    def leave(self, ledger: Ledger, end: RunEnd) -> dict[str, Any]:
        """The run has ended (its last batches are booked): store the rest, end the study
        too when the convergence checker ended the run, and leave.  Returns the study's
        numbers for the result's ``stats["study"]``."""
        link = self.link
        stop = f"manager {link.manager_id}: {end}" if end.cause is EndCause.CHECKER else None
        link.leave(ledger.counters, str(end), stop)
        sh = link.share
        # not_stored: evaluations of this run that the study's database did not take (they
        # are in the run's own log, if it has a working_dir)
        return {"url": link.url, "manager_id": link.manager_id, "f_evals": sh.n_evals,
                "best_fx": sh.best_fx, "best_manager": sh.best_manager, "not_stored": len(link.rows)}

    def close(self) -> None:
        self.link.close()
