"""The start of a run, in its one safe order: the clock, an embedded Dask cluster (if the
plan needs one), the evaluation log (rolled back to the checkpoint when resuming; written
through the study, if the run joins one), the execution plan (probing the task if it must,
never when the run joined a study that has ended: it starts nothing), print capture, and
the supervisor.

Everything started here is registered with the caller's :class:`contextlib.ExitStack`,
which closes it when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from ..evaluation.dask_cluster import dask_for_run
from ..execution.plan import ExecutionPlan, preload, resolve
from ..execution.supervisor import Supervisor, make_supervisor
from ..policies.base import remaining_evals
from ..record import workspace
from ..record.history import keep_for
from ..record.ledger import Ledger
from ..record.prints import ThreadRoutedStreams
from . import checkpointer as ckpt
from .spawner import Spawner
from .study import StudyMember

__all__ = ["start_run"]


def start_run(s: Any, ledger: Ledger, spawner: Spawner, space: workspace.Workspace,
              checkpointer: ckpt.Checkpointer, resources: contextlib.ExitStack,
              study: StudyMember | None = None) -> tuple[ExecutionPlan, Supervisor]:
    """Open what the run needs, for the run's settings ``s``, and return its execution plan
    and its supervisor (``study``: the run joins it)."""
    ledger.start_clock()
    address, security, close_dask = dask_for_run(s)  # the embedded cluster, if one is needed
    resources.callback(close_dask)
    ledger.log = space.start(s.overwrite, checkpointer.run_id)
    if study is not None:
        study.start(ledger, resources)
    ledger.keep_recent(keep_for(s.killing_conditions))  # (the rest of each history: in the log)
    if checkpointer.resumed:
        ckpt.rollback_log(ledger, spawner)
    budget = remaining_evals(s.convergence_checker, ledger.view)
    plan, probes = resolve(s, spawner.task_bytes, spawner.rng, previous=checkpointer.previous_plan,
                           budget=budget, resumed=0 in ledger.records,
                           measure=budget != 0 and (study is None or not study.over(budget)))
    for profile, description in probes:  # its evaluations are real: optimizer 0
        ledger.record_probe(profile.probes, description)
    preload(plan, s.opt_selector.entries)
    plan = replace(plan, dask_address=address, dask_security=security)
    print_dir = str(s.working_dir / workspace.PRINTS_DIR) if s.capture_prints and s.working_dir else None
    spawner.print_dir = print_dir
    streams = None
    if print_dir is not None and plan.level1 == "threads":
        streams = resources.enter_context(ThreadRoutedStreams(print_dir))
    sup = make_supervisor(plan.level1, s.task, s.start_method, streams, plan.thread_slice,
                          s.reuse_processes, s.max_jobs)
    resources.callback(sup.close)
    return plan, sup
