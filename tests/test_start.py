"""How Level 2 process-pool workers start (glompo_like.procs.start)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import types

import numpy as np
import pytest

from glompo_like import ConfigError, GloMPOManager
from glompo_like.optimizers.cma import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.procs.start import (
    main_module_guarded,
    pool_preload_modules,
    resolve_pool_start_method,
)
from glompo_like.record.log import read_log

pytestmark = pytest.mark.timeout(120)

HAS_FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()
needs_forkserver = pytest.mark.skipif(not HAS_FORKSERVER, reason="this platform has no forkserver")


@pytest.fixture
def main_script(tmp_path, monkeypatch):
    """Make ``__main__`` a module whose file holds the given source."""

    def install(source: str | None) -> None:
        main = types.ModuleType("__main__")
        if source is not None:
            path = tmp_path / "script.py"
            path.write_text(source, encoding="utf-8")
            main.__file__ = str(path)
        monkeypatch.setitem(sys.modules, "__main__", main)

    return install


GUARDED = """
import glompo_like

def run():
    pass

if __name__ == "__main__":
    run()
"""

UNGUARDED = """
import glompo_like

manager = "a run at the top level"
"""


@pytest.mark.parametrize("source", [GUARDED, GUARDED.replace('__name__ == "__main__"', '"__main__" == __name__')])
def test_a_guarded_main_script_is_safe_to_import(main_script, source):
    main_script(source)
    safe, why = main_module_guarded()
    assert safe
    assert "guard" in why


@pytest.mark.parametrize("source", [
    UNGUARDED,
    # a guard that is not at the top level does not protect the top level
    "def f():\n    if __name__ == '__main__':\n        pass\nrun = 1\n",
    # another comparison is not the guard
    "if __name__ != '__main__':\n    pass\n",
])
def test_a_main_script_without_a_top_level_guard_is_not(main_script, source):
    main_script(source)
    safe, why = main_module_guarded()
    assert not safe
    assert "no `if __name__" in why


def test_no_main_script_is_safe(main_script):
    main_script(None)  # an interactive session, python -c, a notebook
    assert main_module_guarded() == (True, "no main script to import")


def test_an_unreadable_main_script_is_not_trusted(main_script, tmp_path):
    main_script(GUARDED)
    os.remove(tmp_path / "script.py")
    safe, why = main_module_guarded()
    assert not safe
    assert "could not be read" in why


def test_explicit_start_methods_win(main_script):
    main_script(UNGUARDED)
    assert resolve_pool_start_method("spawn", "fork") == ("spawn", "pool_start_method")
    method, reason = resolve_pool_start_method(None, "spawn")
    assert method == "spawn"
    assert reason.startswith("start_method")


@needs_forkserver
def test_the_default_is_a_forkserver_for_a_guarded_script(main_script):
    main_script(GUARDED)
    method, reason = resolve_pool_start_method(None, None)
    assert method == "forkserver"
    assert "busy optimizer process" in reason


@needs_forkserver
def test_an_unguarded_script_keeps_the_platform_default(main_script):
    main_script(UNGUARDED)
    method, reason = resolve_pool_start_method(None, None)
    default = multiprocessing.get_context().get_start_method()
    assert method == default
    if default != "forkserver":
        assert "no `if __name__" in reason


def test_preload_modules_follow_blas_threads():
    assert "threadpoolctl" in pool_preload_modules(1)
    assert "threadpoolctl" not in pool_preload_modules(None)
    assert pool_preload_modules(None)[:2] == ["__main__", "glompo_like.evaluation.processes"]


def test_bad_pool_start_method_is_refused():
    with pytest.raises(ConfigError, match="pool_start_method must be one of"):
        GloMPOManager(task=_sphere, bounds=[(-1, 1)] * 2, pool_start_method="vfork")


# ----------------------------------------------------------------------------- runs
def _sphere(x):
    return float(np.dot(x, x))


def _parent_pid(x):
    """The value is the pid of the evaluating process's parent."""
    return float(os.getppid())


def _run(task, l1, tmp_path, name, budget=48, **kw):
    sel = CycleSelector([(CMAOptimizer, {"popsize": 8, "workers": 2, "backend": "processes"})])
    m = GloMPOManager(task=task, bounds=[(-3, 3)] * 3, opt_selector=sel, backend=l1, max_jobs=2,
                      convergence_checker=MaxFuncCalls(budget), killing_conditions=False,
                      working_dir=tmp_path / name, seed=1, **kw)
    return m, m.start_manager()


@needs_forkserver
def test_workers_of_a_threads_run_do_not_fork_from_the_manager(tmp_path):
    """pytest's main script is guarded, so the default applies: the workers' parent is a
    forkserver, not this (busy, multi-threaded) process."""
    m, r = _run(_parent_pid, "threads", tmp_path, "fs")
    assert m.plan.pool_start_method == "forkserver"
    parents = set(np.asarray(read_log(tmp_path / "fs")["fx"]).tolist())
    assert r.stats["f_evals"] == 48
    assert float(os.getpid()) not in parents
    # asked for: fork, and the workers are this process's children
    m, r = _run(_parent_pid, "threads", tmp_path, "fork", pool_start_method="fork")
    assert (m.plan.pool_start_method, m.plan.reasons["pool_start_method"]) == ("fork", "pool_start_method")
    assert set(np.asarray(read_log(tmp_path / "fork")["fx"]).tolist()) == {float(os.getpid())}


@needs_forkserver
def test_forked_optimizer_processes_start_their_own_forkserver(tmp_path):
    """A ``processes_forced`` optimizer process forked from a manager process that already
    runs a forkserver inherits that server's client state, which it cannot use (the server
    is not its child).  It starts its own, and every run completes."""
    _run(_sphere, "threads", tmp_path, "a")  # this process now has a forkserver
    from multiprocessing import forkserver

    assert forkserver._forkserver._forkserver_pid is not None
    m, r = _run(_parent_pid, "processes_forced", tmp_path, "b", start_method="fork",
               pool_start_method="forkserver")
    assert m.plan.pool_start_method == "forkserver"
    assert r.stats["f_evals"] == 48
    assert r.stats["opts_crashed"] == 0
    parents = set(np.asarray(read_log(tmp_path / "b")["fx"]).tolist())
    assert float(forkserver._forkserver._forkserver_pid) not in parents  # not the manager's server
    assert float(os.getpid()) not in parents


def test_the_choice_is_in_the_summary_and_checkpoint_config(tmp_path):
    m, _ = _run(_sphere, "threads", tmp_path, "s", pool_start_method="fork")
    text = (tmp_path / "s" / "summary.yml").read_text(encoding="utf-8")
    assert "pool_start_method: fork" in text
    assert m._checkpoint_record({})["settings"]["pool_start_method"] == "fork"
    assert m._checkpoint_record({})["manager"]["plan"].pool_start_method == "fork"


def test_pycma_is_imported_without_its_optional_heavy_modules():
    """Importing pycma for a run does without scipy.stats and matplotlib (most of its
    import time); both stay importable, and a process that has them keeps them."""
    import subprocess

    code = (
        "import sys\n"
        "from glompo_like.optimizers.cma import _import_cma\n"
        "cma = _import_cma()\n"
        "assert 'scipy.stats' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)\n"
        "es = cma.CMAEvolutionStrategy([0.0, 0.0], 0.5, {'verbose': -9, 'seed': 1})\n"
        "es.tell(es.ask(), [1.0] * es.popsize)\n"
        "import scipy.stats, matplotlib\n"
        "assert scipy.stats.kendalltau is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    before = "import scipy.stats\nimport sys\nfrom glompo_like.optimizers.cma import _import_cma\n_import_cma()\n" \
             "assert sys.modules['scipy.stats'] is not None\nimport cma.fitness_models as f\n" \
             "assert f._kendalltau is sys.modules['scipy.stats'].kendalltau\n"
    subprocess.run([sys.executable, "-c", before], check=True, timeout=60)
