"""Runs one manager of a study in its own process (tests/test_study.py).

usage: python _study_script.py STUDY_URL WORKING_DIR MAX_EVALS [TIMEOUT]

Prints ``ID <manager_id>`` once the manager is built, ``READY`` once it has made 30
evaluations of its own, and ``END <end_cond>`` and ``CAUSE <EndCause name>`` when its run
is over.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

from glompo_like import GloMPOManager
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls, MaxSeconds
from glompo_like.policies.selectors import CycleSelector
from glompo_like.states import RunState


def slow_sphere(x: np.ndarray) -> float:
    time.sleep(0.004)
    return float(np.sum((x - 0.5) ** 2))


def announce(m: GloMPOManager) -> None:
    while m.state is not RunState.ENDED:
        if m.ledger.counters.f_evals >= 30:
            print("READY", flush=True)
            return
        time.sleep(0.02)


def main() -> None:
    url, working_dir, max_evals = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
    sel = CycleSelector([(CMAOptimizer, {"popsize": 6})])
    m = GloMPOManager(slow_sphere, [(-2, 2)] * 3, opt_selector=sel, backend="threads", max_jobs=2,
                      convergence_checker=MaxFuncCalls(max_evals) | MaxSeconds(90), working_dir=working_dir,
                      study=url, study_timeout=timeout, status=None, thread_slice=None,
                      killing_conditions=False)
    print("ID", m.study_manager_id, flush=True)
    threading.Thread(target=announce, args=(m,), daemon=True).start()
    result = m.start_manager()
    print("END", result.stats["end_cond"], flush=True)
    print("CAUSE", m.end.cause.name, flush=True)


if __name__ == "__main__":
    main()
