"""The embedded Dask cluster, and how a run finds its scheduler.

``start_local_cluster(n)`` starts a *keeper* subprocess that runs a
``distributed.LocalCluster`` (scheduler and nannies in the keeper, one worker process per
nanny), everything bound to 127.0.0.1 with no dashboard, and returns the scheduler's
address and a function that stops it.

The cluster never outlives the manager, SIGKILL of the manager included::

    manager ──(stdin pipe)──► keeper: own session/process group; scheduler + nannies
                                 ├── worker 1   (same process group as the keeper)
                                 └── worker 2        └── task_timeout helper (own group)

- the keeper asks Linux for SIGTERM when the manager dies (``PR_SET_PDEATHSIG``), runs a
  watchdog thread that notices the manager's death on any POSIX system, and treats the
  end of its standard input (the manager's end of the pipe closes when it dies) the same
  way; on any of these it SIGKILLs its whole process group: scheduler, nannies, workers;
- a worker exits at once when its nanny (the keeper) dies (``distributed`` watches that
  through a pipe), and a task_timeout helper dies with its worker (PDEATHSIG + watchdog);
- an orderly :func:`start_local_cluster` closer asks the keeper to close the cluster, kills
  whatever is left of its process tree, and waits for it.

:func:`dask_for_run` is what the manager calls: no Dask entry → nothing; ``dask_address``
given → check that something listens there (fast, clear :class:`DaskUnavailable`); else →
the embedded cluster.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, ConfigTypeError
from .dask_pool import _ADDRESS, _SOCKET_SCHEMES, DaskUnavailable
from .dask_pool import _check_reachable as check_reachable

__all__ = ["start_local_cluster", "dask_for_run", "validate_address", "embedded_workers", "check_reachable",
           "DaskUnavailable"]

#: seconds the embedded cluster may take to start
STARTUP_TIMEOUT = 60.0
#: seconds an orderly close may take before the keeper's process group is killed
CLOSE_TIMEOUT = 10.0

_KEEPER_CMD = "from glompo_like.evaluation.dask_cluster import _keeper_main; _keeper_main()"


def validate_address(address: Any) -> str | None:
    """``None`` or a scheduler address such as ``"tcp://host:8786"``; else a ConfigError."""
    if address is None:
        return None
    if not isinstance(address, str):
        raise ConfigTypeError(f"dask_address must be a string like 'tcp://scheduler-host:8786' or None, "
                              f"got {type(address).__name__}")
    m = _ADDRESS.fullmatch(address.strip())
    if m is None:
        raise ConfigError(f"dask_address must look like 'tcp://scheduler-host:8786' (protocol://host:port), "
                          f"got {address!r}")
    if m["scheme"] in _SOCKET_SCHEMES:
        host, _, port = m["rest"].rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"dask_address {address!r} needs a host and a port, e.g. 'tcp://scheduler-host:8786'")
    return address.strip()


def distributed_available() -> bool:
    return importlib.util.find_spec("distributed") is not None


def embedded_workers(max_jobs: int, dask_workers: list[int]) -> int:
    """Workers of the embedded cluster: one per slot the Dask optimizers can occupy at
    once (the largest ``workers`` times how many Dask optimizers fit into ``max_jobs``)."""
    largest = max(dask_workers)
    return max(largest, min(max_jobs, largest * (max_jobs // min(dask_workers))))


def dask_for_run(config: Any) -> tuple[str | None, Any, Callable[[], None]]:
    """For the manager: the scheduler address its Dask optimizers use, its security, and a
    closer.

    No entry with ``backend="dask"``: ``(config.dask_address, None, no-op)``.  An address
    given: check that the scheduler listens there and has a worker within
    ``config.dask_worker_timeout`` seconds (:class:`DaskUnavailable` otherwise), with
    ``config.dask_security``.  No address: start the embedded cluster (see
    :func:`embedded_workers`), private to this process (TLS with certificates made for the
    run) when ``cryptography`` is installed.
    """
    entries = [e for e in config.opt_selector.entries if e.backend == "dask"]
    if not entries:
        return config.dask_address, None, _nothing
    if config.dask_address is not None:
        check_reachable(config.dask_address)
        wait_for_a_worker(config.dask_address, config.dask_security, config.dask_worker_timeout)
        return config.dask_address, config.dask_security, _nothing
    security = private_security()
    address, close = start_local_cluster(embedded_workers(config.max_jobs, [e.workers for e in entries]),
                                         security=security)
    return address, security, close


def private_security() -> Any:
    """TLS certificates made for one run (``distributed.Security.temporary``), so only this
    process (and the optimizers it hands them to) can use the embedded cluster; ``None``,
    with a warning, when ``cryptography`` is missing."""
    from distributed.security import Security

    try:
        return Security.temporary()
    except ImportError:
        import logging

        logging.getLogger("glompo_like.manager").warning(
            "the embedded Dask cluster accepts connections from any local user: install cryptography "
            "(pip install 'glompo_like[dask]') to make it private (TLS)")
        return None


def wait_for_a_worker(address: str, security: Any, timeout: float) -> None:
    """Raise :class:`DaskUnavailable` unless the cluster at ``address`` has a worker within
    ``timeout`` seconds."""
    import distributed

    from .dask_pool import CONNECT_TIMEOUT, no_workers_message

    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False, security=security)
    except Exception as e:
        raise DaskUnavailable(f"cannot connect to the Dask scheduler at {address!r} ({type(e).__name__}: {e}); "
                              "check the address and, for a TLS cluster, dask_security") from e
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise DaskUnavailable(no_workers_message(address, timeout)) from None
    finally:
        client.close()


def _nothing() -> None:
    return None


# ----------------------------------------------------------------------------- manager side
class _Closer:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        atexit.unregister(self)
        _stop_keeper(self.proc, CLOSE_TIMEOUT)


def _stop_keeper(proc: subprocess.Popen, timeout: float) -> None:
    from ..procs.hygiene import kill_group

    try:
        proc.stdin.write(b"stop\n")
        proc.stdin.flush()
    except (OSError, ValueError):
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)  # not yet reaped: the group id cannot have been reused
        proc.wait(5)
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()
        except OSError:
            pass


def start_local_cluster(n_workers: int, threads_per_worker: int = 1,
                        startup_timeout: float = STARTUP_TIMEOUT,
                        security: Any = None) -> tuple[str, Callable[[], None]]:
    """Start a Dask cluster on 127.0.0.1 that dies with this process.

    ``security``: a ``distributed.Security`` (TLS; the keeper gets it through its private
    standard input, never its command line), or ``None`` for plain TCP.  Returns
    ``(scheduler address, close)``; ``close()`` is idempotent and also runs at interpreter
    exit.  Raises :class:`DaskUnavailable` if the cluster does not start.
    """
    if not distributed_available():
        raise DaskUnavailable("the embedded Dask cluster needs the distributed package: "
                              "pip install 'glompo_like[dask]'")
    env = dict(os.environ)
    # the workers import what the manager can import (the task may live in a script's folder)
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in sys.path if p)
    env.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KEEPER_CMD, str(int(n_workers)), str(int(threads_per_worker))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True, start_new_session=True,
    )
    import base64
    import pickle

    proc.stdin.write(b"SECURITY " + base64.b64encode(pickle.dumps(security)) + b"\n")
    proc.stdin.flush()
    line = b""
    deadline = time.monotonic() + startup_timeout
    try:
        fd = proc.stdout.fileno()
        while not line.startswith(b"ADDRESS "):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = proc.stdout.readline()
            if not line:  # the keeper ended
                break
    finally:
        if not line.startswith(b"ADDRESS "):
            exited = proc.poll()
            _stop_keeper(proc, 0.1)
    if not line.startswith(b"ADDRESS "):
        why = (f"its keeper process ended ({signal_text(exited)})" if exited is not None
               else f"it did not start within {startup_timeout:g} s")
        raise DaskUnavailable(
            f"the embedded Dask cluster ({n_workers} workers on 127.0.0.1) could not be started: "
            f"{why}; see the messages above"
        )
    address = line.split()[1].decode()
    closer = _Closer(proc)
    atexit.register(closer)
    return address, closer


def signal_text(code: int | None) -> str:
    from ..procs.terminate import signal_name

    return signal_name(code)


# ----------------------------------------------------------------------------- keeper side
def _keeper_main() -> None:
    """The keeper subprocess: ``python -c ... N_WORKERS THREADS_PER_WORKER``."""
    from ..procs.hygiene import become_child

    become_child()  # own process group; SIGTERM / the manager's death -> kill the group
    n_workers, threads = int(sys.argv[1]), int(sys.argv[2])
    import base64
    import logging
    import pickle

    first = sys.stdin.readline().split()
    security = pickle.loads(base64.b64decode(first[1])) if len(first) == 2 and first[0] == "SECURITY" else None

    import dask
    from distributed import LocalCluster

    # A worker that dies while running an evaluation: the scheduler does not re-run it by
    # itself; the DaskPool sees KilledWorker, logs it and resubmits (bounded by its retries).
    dask.config.set({"distributed.scheduler.allowed-failures": 0})

    code = 0
    try:
        from .dask_latency import QuickSchedulerStreams, QuickWorkerStream

        tls = {} if security is None else {"security": security, "protocol": "tls://"}
        # (shorter message batching: an optimizer waits on every generation's round trip)
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
            scheduler_port=0, dashboard_address=None, silence_logs=logging.WARNING,
            plugins={QuickWorkerStream()}, **tls,
        )
        streams = QuickSchedulerStreams()
        cluster.scheduler.add_plugin(streams)
        cluster.scheduler.loop.add_callback(streams.quicken_all, cluster.scheduler)  # workers already in
        sys.stdout.write(f"ADDRESS {cluster.scheduler_address}\n")
        sys.stdout.flush()
        while True:
            line = sys.stdin.readline()
            if not line or line.strip() == "stop":  # EOF: the manager is gone
                break
        if not line:  # become_child's SIGTERM handler kills the whole process group
            os.kill(os.getpid(), signal.SIGTERM)
        cluster.close(timeout=CLOSE_TIMEOUT / 2)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import psutil

        for p in psutil.Process().children(recursive=True):
            try:
                p.kill()
            except psutil.Error:
                pass
        sys.stderr.flush()
        os._exit(code)
