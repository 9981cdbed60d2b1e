"""What happens when an optimizer goes wrong: it reports a crash, its thread or process
dies without a word, or one of its evaluations overruns ``task_timeout``.

Each function books the incident in the :class:`~glompo_like.record.ledger.Ledger` and
returns the :class:`~glompo_like.states.RunEnd` that ends the run when the incident is
fatal (``on_error="raise"``, or too many optimizers in a row crashed before evaluating
anything), else ``None``: the manager applies it, nothing here ends a run by itself.
"""

from __future__ import annotations

import logging
import pickle

import numpy as np

from ..errors import BrokenTaskError, EvaluationError
from ..evaluation.core import EvalBatch
from ..execution.handles import Child
from ..execution.messages import Crashed
from ..procs.hygiene import kill_group
from ..procs.terminate import signal_name
from ..record.ledger import Ledger, OptimizerRecord
from ..states import EndCause, EndKind, RunEnd

__all__ = ["broken_task", "crash_reported", "crashed", "died", "timed_out"]

log = logging.getLogger("glompo_like.manager")


def crashed(ledger: Ledger, rec: OptimizerRecord, reason: str, exitcode: int | None = None,
            cause: BaseException | None = None) -> RunEnd | None:
    """``rec`` crashed; the run ends when that makes too many barren crashes in a row."""
    fatal = ledger.crashed(rec, reason, exitcode, cause)
    return None if fatal is None else RunEnd(EndCause.FATAL, f"fatal error: {fatal}", fatal)


def crash_reported(ledger: Ledger, rec: OptimizerRecord, msg: Crashed) -> RunEnd | None:
    """Its runner reported an exception (with its pickled cause, when it could be sent)."""
    cause = None
    if msg.exc_pickle is not None:
        try:
            cause = pickle.loads(msg.exc_pickle)
        except Exception:
            cause = None
    if isinstance(cause, EvaluationError):  # on_error="raise": the run ends with it
        ledger.finish(rec, EndKind.FAILED, f"on_error='raise': {msg.message}")
        return RunEnd(EndCause.FATAL, f"fatal error: {cause}", cause)
    log.warning("optimizer %d crashed: %s\n%s", rec.opt_id, msg.message, msg.traceback)
    return crashed(ledger, rec, f"raised {msg.message}", None, cause)


def died(ledger: Ledger, rec: OptimizerRecord, child: Child, exitcode: int | None) -> RunEnd | None:
    """Its thread or process ended while it was still alive, without saying why."""
    what = (f"optimizer process died ({signal_name(exitcode)})" if child.pid is not None
            else "runner thread ended unexpectedly")
    log.warning("optimizer %d: %s", rec.opt_id, what)
    return crashed(ledger, rec, what, exitcode, None)


def timed_out(ledger: Ledger, rec: OptimizerRecord, child: Child, task_timeout: float,
              x: np.ndarray, t_wall: float) -> RunEnd | None:
    """An evaluation of an optimizer in its own process overran ``task_timeout``: the
    process (and its process group, so whatever the task started) is killed and the
    evaluation is logged as timed out."""
    if child.pid is not None:
        kill_group(child.pid)
    msg = (f"evaluation exceeded task_timeout={task_timeout:g} s; optimizer "
           f"process {child.pid} and its process group killed")
    ledger.record(rec, EvalBatch.timed_out(x, t_wall, f"opt{rec.opt_id}", msg), n_generations=0)
    log.warning("optimizer %d: %s", rec.opt_id, msg)
    return crashed(ledger, rec, msg, None, None)


def broken_task(ledger: Ledger, fail_fast: int) -> RunEnd:
    """Every evaluation so far failed (``fail_fast`` of them): the task looks broken."""
    n = ledger.counters.evals_failed
    err = BrokenTaskError(f"the first {n} evaluations of the run all failed (fail_fast={fail_fast}); "
                          f"the task looks broken. The first failure:\n{ledger.first_error}",
                          first_error=ledger.first_error, n_failed=n)
    return RunEnd(EndCause.FATAL, "fatal error: the task is broken", err)
