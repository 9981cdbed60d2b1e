"""Level 2 on Dask: real clusters on 127.0.0.1, no mocks.

The embedded cluster (started by the manager), an external one (the ``dask scheduler`` and
``dask worker`` command-line tools, started here), a worker SIGKILLed mid-evaluation,
task_timeout on a hanging evaluation, an unreachable scheduler, and a SIGKILLed manager.
The autouse fixture in conftest.py checks that no process started by a test survives it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

pytest.importorskip("distributed")

from glompo_like import ConfigError, GloMPOManager, read_log
from glompo_like.evaluation.dask_cluster import start_local_cluster
from glompo_like.evaluation.dask_pool import SEND_INTERVAL, DaskPool, DaskUnavailable, quicken
from glompo_like.optimizers import CMAOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import sphere

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).parent


# ----------------------------------------------------------------------------- tasks
# Module level: the workers import this module (the embedded cluster gets the manager's
# sys.path; the external workers get PYTHONPATH).
def kills_its_worker_once(x, trigger):
    """A slow sphere; the first evaluation that finds ``trigger`` SIGKILLs its own worker."""
    time.sleep(0.01)
    try:
        os.rename(trigger, trigger + ".done")  # atomic: exactly one evaluation wins
    except FileNotFoundError:
        return float(np.sum(np.square(x)))
    time.sleep(0.05)  # the evaluation is under way when its worker dies
    os.kill(os.getpid(), signal.SIGKILL)


def kills_its_worker(x):
    os.kill(os.getpid(), signal.SIGKILL)


def hangs_twice(x, folder):
    """Two evaluations start an external program (like a simulator) that hangs, record its
    pid and wait for it; every other evaluation is a sphere."""
    for k in range(2):
        try:
            fd = os.open(os.path.join(folder, f"hang{k}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        proc = subprocess.Popen(["sleep", "60"])
        os.write(fd, str(proc.pid).encode())
        os.close(fd)
        proc.wait()
    return float(np.sum(np.square(x)))


def _selector(task_workers=2, popsize=6):
    return CycleSelector([(CMAOptimizer, {"popsize": popsize, "workers": task_workers, "backend": "dask"})])


def _manager(task, l1="threads", budget=200, **kw):
    return GloMPOManager(task=task, bounds=[(-1, 1)] * 3, opt_selector=kw.pop("opt_selector", None) or _selector(),
                         backend=l1, max_jobs=2, convergence_checker=MaxFuncCalls(budget), seed=3,
                         status=None, **kw)


def _gone(pids, within=5.0):
    deadline = time.monotonic() + within
    while True:
        alive = []
        for p in pids:
            try:
                if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


# ----------------------------------------------------------------------------- embedded cluster
def test_embedded_cluster_solves_a_sphere(tmp_path):
    r = _manager(sphere, "threads", budget=400, working_dir=tmp_path).start_manager()
    assert r.fx < 1e-4
    assert "MaxFuncCalls" in r.stats["end_cond"]
    log = read_log(tmp_path)
    assert len(log) == r.stats["f_evals"]
    assert set(log["status"]) == {"ok"}
    workers = {w.split("@", 1)[1] for w in log["worker"]}
    assert len(workers) == 2 and all(w.startswith("127.0.0.1:") for w in workers)


@pytest.mark.parametrize("l1", ["processes", "processes_forced"])
def test_embedded_cluster_with_process_level1_backends(l1, tmp_path):
    """Optimizer processes connect to the (embedded) scheduler by address: nothing is pickled."""
    r = _manager(sphere, l1, budget=240, working_dir=tmp_path).start_manager()
    assert r.fx < 1e-2 and "MaxFuncCalls" in r.stats["end_cond"]
    log = read_log(tmp_path)
    assert len(log) == r.stats["f_evals"] and set(log["status"]) == {"ok"}
    assert all("@127.0.0.1:" in w for w in log["worker"])


def slow_sphere(x):
    time.sleep(0.02)
    return float(np.sum(np.square(x)))


def test_losing_the_scheduler_mid_run_ends_the_run_cleanly(tmp_path):
    from glompo_like import GlompoError

    with _external(tmp_path) as (address, procs):
        m = _manager(slow_sphere, "threads", budget=100_000, working_dir=tmp_path / "run", dask_address=address)

        def lose_the_scheduler():
            _wait_for(lambda: m.ledger.counters.f_evals >= 20, "the first evaluations")
            procs[0].kill()  # the scheduler, SIGKILL

        t = threading.Thread(target=lose_the_scheduler)
        t.start()
        with pytest.raises(GlompoError):  # optimizers cannot reach a scheduler any more
            m.start_manager()
        t.join()
    assert m.result is not None and m.result.stats["f_evals"] < 100_000
    assert (tmp_path / "run" / "summary.yml").exists()
    assert len(read_log(tmp_path / "run")) == m.result.stats["f_evals"]  # nothing told was lost


# ----------------------------------------------------------------------------- external cluster
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Drain(threading.Thread):
    """Reads a process's stderr (so it never blocks) and counts lines matching a pattern."""

    def __init__(self, stream, pattern: str) -> None:
        super().__init__(daemon=True)
        self.stream, self.pattern = stream, re.compile(pattern)
        self.lines: list[str] = []
        self.hits = 0
        self.start()

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)
            if self.pattern.search(line):
                self.hits += 1


def _wait_for(cond, what: str, timeout: float = 30.0, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            assert p.poll() is None, f"{what}: {p.args[:3]} exited with {p.returncode}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def external_cluster(tmp_path):
    """``dask scheduler`` and ``dask worker --nworkers 2`` as separate processes on 127.0.0.1."""
    with _external(tmp_path) as (address, _procs):
        yield address


@contextlib.contextmanager
def _external(tmp_path):
    """The external cluster; yields its address and [scheduler, workers] processes."""
    dask_cli = shutil.which("dask", path=os.path.dirname(sys.executable)) or "dask"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    common = dict(stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    procs, drains = [], []
    try:
        sched = subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], **common)
        procs.append(sched)
        s_log = _Drain(sched.stderr, r"Scheduler at:")
        drains.append(s_log)
        _wait_for(lambda: s_log.hits, "the scheduler", procs=procs)
        work = subprocess.Popen([dask_cli, "worker", address, "--nworkers", "2", "--nthreads", "1",
                                 "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0",
                                 "--local-directory", str(tmp_path / "dask-worker-space")], **common)
        procs.append(work)
        w_log = _Drain(work.stderr, r"Registered to:")
        drains.append(w_log)
        _wait_for(lambda: w_log.hits >= 2, "two workers", procs=procs)
        yield address, procs
    finally:
        for p in reversed(procs):  # workers first, then the scheduler
            if p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        for d in drains:
            d.join(5)
        for p in procs:
            p.stderr.close()


def test_an_external_cluster_via_dask_address(external_cluster, tmp_path):
    m = _manager(sphere, "processes", budget=240, working_dir=tmp_path, dask_address=external_cluster)
    r = m.start_manager()
    assert r.fx < 1e-2 and "MaxFuncCalls" in r.stats["end_cond"]
    log = read_log(tmp_path)
    assert len(log) == r.stats["f_evals"] and set(log["status"]) == {"ok"}
    assert {w.split("@", 1)[1].rsplit(":", 1)[0] for w in log["worker"]} == {"127.0.0.1"}
    assert len({w.split("@", 1)[1] for w in log["worker"]}) == 2  # both external workers


# ----------------------------------------------------------------------------- faults
@pytest.mark.parametrize("cluster", ["embedded", "external"])
def test_a_worker_sigkilled_mid_evaluation_is_resubmitted(cluster, tmp_path, request):
    """Embedded: the scheduler gives up at once (allowed-failures 0) and the pool resubmits.
    External (default allowed-failures 3): the scheduler re-runs it; the pool observes that."""
    address = request.getfixturevalue("external_cluster") if cluster == "external" else None
    trigger = tmp_path / "kill-a-worker"
    task = functools.partial(kills_its_worker_once, trigger=str(trigger))
    m = _manager(task, "threads", budget=150, working_dir=tmp_path / "run", dask_address=address)

    def arm():  # once the run is under way, the next evaluation kills its worker
        deadline = time.monotonic() + 30
        while m.ledger.counters.f_evals < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        trigger.touch()

    t = threading.Thread(target=arm)
    t.start()
    r = m.start_manager()
    t.join()
    assert (tmp_path / "kill-a-worker.done").exists(), "no worker was killed"
    assert "MaxFuncCalls" in r.stats["end_cond"] and r.stats["opts_crashed"] == 0
    log = read_log(tmp_path / "run")
    assert len(log) == r.stats["f_evals"]
    assert set(log["status"]) == {"ok"}  # the lost evaluation ran again, elsewhere
    rerun = [w for w in log["worker"] if "re-run after 1 worker death" in w]
    assert rerun, sorted(set(log["worker"]))


def test_an_evaluation_that_keeps_killing_workers_is_recorded_as_crashed():
    import cloudpickle

    address, close = start_local_cluster(2)
    try:
        pool = DaskPool(cloudpickle.dumps(kills_its_worker), 2, address, "opt1", retries=1)
        try:
            (o,) = pool.evaluate(np.zeros((1, 2)))
        finally:
            pool.close()
    finally:
        close()
    assert o.status.value == "crashed"
    assert "Dask workers died 2 times" in o.error and "retries=1" in o.error
    assert pool.resubmitted == 1


def test_task_timeout_kills_a_hanging_evaluation(tmp_path):
    folder = tmp_path / "hangs"
    folder.mkdir()
    task = functools.partial(hangs_twice, folder=str(folder))
    r = _manager(task, "processes", budget=120, working_dir=tmp_path / "run", task_timeout=1.0).start_manager()
    log = read_log(tmp_path / "run")
    assert len(log) == r.stats["f_evals"]
    timed_out = np.asarray(log["status"]) == "timed_out"
    assert timed_out.sum() == 2
    assert all("task_timeout=1" in e for e in np.asarray(log["error"])[timed_out])
    assert (np.asarray(log["status"])[~timed_out] == "ok").all()
    sims = [int((folder / f"hang{k}").read_text()) for k in range(2)]
    assert not _gone(sims, within=30.0), "the hanging external programs outlived the timeout"


def test_an_unreachable_scheduler_is_a_clear_and_fast_error():
    """A refused connection is reported at once, not after the connect timeout: the error
    comes from the refusal (its message says so), and a pool with an hour-long connect
    timeout still fails before the test's own timeout."""
    address = f"tcp://127.0.0.1:{_free_port()}"  # nobody listens there
    with pytest.raises(DaskUnavailable, match=re.escape(address)) as info:
        _manager(sphere, "threads", dask_address=address).start_manager()
    assert "refused" in str(info.value).lower()
    with pytest.raises(DaskUnavailable, match=re.escape(address)) as info:
        DaskPool(b"", 1, address, "opt1", connect_timeout=3600.0).evaluate(np.zeros((1, 2)))
    assert "refused" in str(info.value).lower()


@pytest.mark.parametrize("address", ["127.0.0.1:8786", "tcp://", "tcp://host", "tcp://host:port", 8786])
def test_a_malformed_dask_address_is_refused(address):
    with pytest.raises((ConfigError, TypeError), match="dask_address"):
        _manager(sphere, "threads", dask_address=address)


def test_dask_allows_task_timeout_with_every_level1_backend():
    for l1 in ("threads", "processes", "processes_forced"):
        _manager(sphere, l1, task_timeout=1.0)  # constructs: nothing is started


# ----------------------------------------------------------------------------- the manager dies
def _start_script(tmp_path):
    pidfile = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_manager_script.py"), "processes", "dask", "default", str(tmp_path / "run"),
         str(pidfile)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "READY", proc.stderr.read()
    pids = [int(p) for p in pidfile.read_text().split()]
    cmds = {p: " ".join(psutil.Process(p).cmdline()) for p in pids if psutil.pid_exists(p)}
    assert any("_keeper_main" in c for c in cmds.values()), cmds  # the embedded cluster is in the list
    assert sum("multiprocessing.spawn" in c for c in cmds.values()) >= 2, cmds  # and its workers
    return proc, pids


def test_the_embedded_cluster_does_not_outlive_a_sigkilled_manager(tmp_path):
    proc, pids = _start_script(tmp_path)
    proc.kill()
    proc.communicate(timeout=10)
    # they notice the manager's death (a signal from the kernel, a watchdog's poll) and end
    assert not _gone(pids, within=30.0), "processes outlived the manager"
    assert len(read_log(tmp_path / "run")) > 20


def test_ctrl_c_closes_the_embedded_cluster(tmp_path):
    proc, pids = _start_script(tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "INTERRUPTED" in out
    # (the manager process's own multiprocessing helpers exit only after it has exited)
    assert not _gone(pids, within=30.0)
    summary = json.dumps(read_log(tmp_path / "run", optimizers=True)["end_kind"].tolist())
    assert "crashed" not in summary


def test_cheap_evaluations_are_batched_expensive_ones_are_not():
    pool = DaskPool(b"task", 2, "tcp://127.0.0.1:1", "opt1")
    assert pool.batches(5) == [[0], [1], [2], [3], [4]]  # first generation: nothing known yet
    pool._threads, pool._mean_duration = 2, 1e-5  # cheap: one task (another would cost more than it saves)
    assert pool.batches(16) == [list(range(16))]
    pool._threads = 64
    assert pool.batches(16) == [list(range(16))]
    pool._threads, pool._mean_duration = 2, 0.05  # expensive: one task each, as before
    assert pool.batches(3) == [[0], [1], [2]]
    pool._mean_duration = 0.005  # in between: one task per thread
    assert pool.batches(16) == [list(range(8)), list(range(8, 16))]
    pool._threads, pool._mean_duration = 8, 0.001  # 3 tasks: 3 * 2 ms + 16 ms / 3 is the least
    assert pool.batches(16) == [list(range(6)), list(range(6, 12)), list(range(12, 16))]


def test_a_batched_generation_comes_back_in_candidate_order():
    import cloudpickle

    address, close = start_local_cluster(2)
    try:
        pool = DaskPool(cloudpickle.dumps(sphere), 2, address, "opt1")
        try:
            xs = np.random.default_rng(0).uniform(-1, 1, (16, 3))
            for _ in range(3):
                out = pool.evaluate(xs)
                assert [o.fx for o in out] == [sphere(x) for x in xs]
            assert len(pool.batches(16)) < 16  # (it did batch)
        finally:
            pool.close()
    finally:
        close()


# ----------------------------------------------------------------------------- latency
def _intervals_on_scheduler(dask_scheduler):
    return {"workers": sorted(b.interval for b in dask_scheduler.stream_comms.values()),
            "clients": sorted(b.interval for b in dask_scheduler.client_comms.values())}


def _interval_on_worker(dask_worker):
    return dask_worker.batched_stream.interval


def test_quicken_shortens_only_a_longer_numeric_interval():
    class Stream:
        def __init__(self, interval):
            self.interval = interval

    slow, fast, odd = Stream(0.01), Stream(0.0001), Stream("10ms")
    assert quicken(slow) and slow.interval == SEND_INTERVAL
    assert not quicken(fast) and fast.interval == 0.0001  # never made longer
    assert not quicken(odd) and odd.interval == "10ms"  # another version's object: left alone
    assert not quicken(None) and not quicken(object()) and not quicken(Stream(True))


def test_the_connections_an_optimizer_waits_on_batch_for_at_most_send_interval():
    """distributed's stock intervals (10 ms client -> scheduler, 5 ms scheduler -> worker,
    2 ms the other ways) are shortened on the embedded cluster, for workers that joined
    before and clients that connect after the cluster started; a DaskPool quickens its own
    client on any cluster, and a plain client elsewhere keeps the stock interval."""
    import cloudpickle
    from distributed import Client

    address, close = start_local_cluster(2)
    try:
        pool = DaskPool(cloudpickle.dumps(sphere), 2, address, "opt1")
        try:
            pool.evaluate(np.zeros((4, 3)))
            assert pool._client.scheduler_comm.interval == SEND_INTERVAL
            with Client(address, set_as_default=False) as plain:
                assert plain.scheduler_comm.interval > SEND_INTERVAL  # its own side is not ours
                seen = plain.run_on_scheduler(_intervals_on_scheduler)
                assert len(seen["workers"]) == 2 and len(seen["clients"]) >= 2
                assert max(seen["workers"] + seen["clients"]) <= SEND_INTERVAL
                on_workers = plain.run(_interval_on_worker)
                assert len(on_workers) == 2 and max(on_workers.values()) <= SEND_INTERVAL
        finally:
            pool.close()
    finally:
        close()
