"""How Level 2 worker processes start.

By default a process pool's workers start from a forkserver: a small server process that
imports the workers' code once and forks each worker from itself.  Forking the workers
from the optimizer's own process (``fork``) is the other choice, and the worse one:

- that process is busy.  It runs the optimizer and, with ``backend="threads"``, the
  manager and other optimizers' threads.  ``fork`` in a process with threads can leave a
  lock held forever in the child, and Python 3.12 warns about it;
- the workers share the busy process's memory copy-on-write.  On the 2-core VM of the
  benchmarks, pure-Python evaluations ran 10-15% slower in such workers than in workers
  from a forkserver (``benchmarks/backends.py``; see ``docs/parallelism.rst``).

A forkserver imports the main script, as ``spawn`` does, so a script must keep its run
under ``if __name__ == "__main__":``.  A script without that guard keeps ``fork`` here.
The workers do not need the script itself: the task reaches them pickled.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import sys
from typing import Any

import psutil

__all__ = ["resolve_pool_start_method", "main_module_guarded", "forget_inherited_forkserver",
           "pool_preload_modules"]


def main_module_guarded() -> tuple[bool, str]:
    """Whether a child that imports the main module is safe: there is nothing to import
    (an interactive session, ``python -c``, a notebook), or the main script keeps its work
    under a top-level ``if __name__ == "__main__":``.  Returns ``(safe, why)``."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:
        return True, "no main script to import"
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return False, f"the main script {path!r} could not be read to look for its guard"
    if any(isinstance(node, ast.If) and _is_main_guard(node.test) for node in tree.body):
        return True, f"the main script {os.path.basename(path)!r} has an `if __name__ == \"__main__\":` guard"
    return False, (f"the main script {path!r} has no `if __name__ == \"__main__\":` guard, so a "
                   "forkserver importing it would run it")


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def resolve_pool_start_method(pool_start_method: str | None, start_method: str | None) -> tuple[str, str]:
    """The start method of Level 2 process-pool workers and why: ``pool_start_method`` if
    given, else ``start_method`` if given, else ``"forkserver"`` where there is one and the
    main script allows it (see the module docstring), else the platform default."""
    if pool_start_method is not None:
        return pool_start_method, "pool_start_method"
    if start_method is not None:
        return start_method, "start_method (pool_start_method not given)"
    default = multiprocessing.get_context().get_start_method()
    if default == "forkserver":
        return default, "the platform default"
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return default, "the platform default (no forkserver on this platform)"
    safe, why = main_module_guarded()
    if not safe:
        return default, f"the platform default: {why}"
    return "forkserver", f"workers start from a forkserver, not from the busy optimizer process ({why})"


def pool_preload_modules(blas_threads: int | None) -> list[str]:
    """What a forkserver imports once for the Level 2 workers it forks (missing modules are
    skipped by ``multiprocessing``)."""
    modules = ["__main__", "glompo_like.evaluation.processes"]  # the workers' code
    if blas_threads is not None:
        modules.append("threadpoolctl")  # used by every worker to limit BLAS threads
    return modules


def forget_inherited_forkserver() -> None:
    """A forked process inherits its parent's forkserver client state, which it cannot use:
    that server is not its child (``ensure_running`` fails with ``ChildProcessError``).
    Give this process a fresh state: its own forkserver starts when it is first needed,
    and the parent's server is left alone (only our copy of its descriptor is closed)."""
    from multiprocessing import forkserver as fs_module

    old: Any = fs_module._forkserver
    pid = getattr(old, "_forkserver_pid", None)
    if pid is None:
        return
    try:  # (not waitpid: that would reap a dead server multiprocessing still has to see)
        if psutil.Process(pid).ppid() == os.getpid():
            return  # our own child: usable
    except psutil.Error:
        pass
    alive_fd = getattr(old, "_forkserver_alive_fd", None)
    new = fs_module.ForkServer()
    fs_module._forkserver = new
    for name in ("ensure_running", "get_inherited_fds", "connect_to_new_process", "set_forkserver_preload"):
        if hasattr(fs_module, name):
            setattr(fs_module, name, getattr(new, name))
    if alive_fd is not None:
        try:
            os.close(alive_fd)
        except OSError:
            pass
