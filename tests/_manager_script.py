"""Runs a manager in its own process for the kill tests.

usage: python _manager_script.py L1 L2 START_METHOD WORKING_DIR PIDFILE [CHECKPOINT_EVERY]

After the run is well under way it writes the pids of all its descendants to PIDFILE and
prints READY; the test then kills it (SIGKILL or SIGINT).
"""

from __future__ import annotations

import sys
import threading
import time

import psutil

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from _faulty import slow

from glompo_like import CheckpointingControl, GloMPOManager
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies.checkers import MaxSeconds
from glompo_like.policies.selectors import CycleSelector
from glompo_like.states import RunState


def announce(m: GloMPOManager, pidfile: str, every: int | None) -> None:
    """Waits for a state, not for a time: until the run is well under way, however long
    that takes on a busy machine (the run itself ends after MaxSeconds(60))."""
    me = psutil.Process()
    while m.state is not RunState.ENDED:
        if m.ledger.counters.f_evals > 20 and (not every or every > 100 or len(m.checkpoints) >= 2):  # optimizers (and their pools) are up and evaluating
            kids = me.children(recursive=True)
            with open(pidfile, "w") as f:
                f.write("\n".join(str(k.pid) for k in kids))
            print("READY", flush=True)
            return
        time.sleep(0.05)
    print("the run ended before it was well under way", flush=True)


def main() -> None:
    l1, l2, start_method, working_dir, pidfile = sys.argv[1:6]
    every = int(sys.argv[6]) if len(sys.argv) > 6 else None
    chk = CheckpointingControl(every_evaluations=every, keep_last=None) if every else None
    workers = 2 if l2 != "serial" else 1
    sel = CycleSelector([(CMAOptimizer, {"popsize": 4, "workers": workers, "backend": l2})])
    m = GloMPOManager(task=slow, bounds=[(-2, 2)] * 3, opt_selector=sel, backend=l1, max_jobs=2 * workers,
                      convergence_checker=MaxSeconds(60), working_dir=working_dir,
                      start_method=None if start_method == "default" else start_method, seed=1,
                      checkpoint_control=chk)
    threading.Thread(target=announce, args=(m, pidfile, every), daemon=True).start()
    try:
        m.start_manager()
    except KeyboardInterrupt:
        print("INTERRUPTED", m.result.stats["end_cond"], m.result.stats["f_evals"], flush=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
