"""The evaluation models of issue 17: noisy objectives (samples), isolated evaluation,
async def objectives, per-evaluation metadata, GPUs and Dask resources, workers="auto",
asynchronous evaluation of every population optimizer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from glompo_like import ConfigError, ConfigTypeError, GloMPOManager, read_log
from glompo_like.cli import main as cli_main
from glompo_like.evaluation import AsyncioPool, IsolatedPool, ProcessPool, is_coroutine_task
from glompo_like.evaluation.memory import parse_size
from glompo_like.evaluation.options import auto_workers
from glompo_like.execution import plan as plan_module
from glompo_like.optimizers import (
    CMAOptimizer,
    DEOptimizer,
    PSOOptimizer,
    SNESOptimizer,
    XNESOptimizer,
)
from glompo_like.policies import CycleSelector, MaxFuncCalls
from glompo_like.problems import sphere
from glompo_like.record.export import export_log
from glompo_like.settings import Settings

pytestmark = pytest.mark.timeout(120)
MiB = 1 << 20


# ----------------------------------------------------------------------------- tasks
class Noisy:
    """A bowl so flat that the noise (sd 1) dwarfs the differences between points."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def truth(x) -> float:
        return 0.01 * float(np.sum(np.asarray(x) ** 2))

    def __call__(self, x) -> float:
        return self.truth(x) + float(self.rng.normal())


_LEAK: list[bytearray] = []


def leaky(x):
    """Keeps 4 MiB per call (touched, so resident) and says how much its process holds."""
    import psutil

    block = bytearray(4 * MiB)
    block[::4096] = b"x" * len(block[::4096])
    _LEAK.append(block)
    return float(np.sum(np.asarray(x) ** 2)), {"rss": psutil.Process().memory_info().rss}


def hog(x):
    block = bytearray(300 * MiB)
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(2.0)
    return 1.0


def sleeper(x):
    time.sleep(30)
    return 1.0


def sees_cuda(x):
    return float(np.sum(np.asarray(x) ** 2)), {"cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}


async def waits(x):
    await asyncio.sleep(0.05)
    return float(np.sum(np.asarray(x) ** 2))


class AsyncCallable:
    async def __call__(self, x):
        await asyncio.sleep(0)
        return float(np.sum(np.asarray(x) ** 2))


def with_meta(x):
    return float(np.sum(np.asarray(x) ** 2)), {"iterations": 3, "note": "ok"}


def bad_meta(x):
    return float(np.sum(np.asarray(x) ** 2)), {"handle": object()}


def _manager(task, entry, budget, **kw):
    kw.setdefault("status", None)
    kw.setdefault("killing_conditions", False)
    return GloMPOManager(task, [(-2.0, 2.0)] * 2, opt_selector=CycleSelector([entry]),
                         convergence_checker=MaxFuncCalls(budget), **kw)


# ----------------------------------------------------------------------------- 1. samples
def test_noisy_objective_reported_best_is_close_to_the_truth_with_samples(tmp_path):
    """Without samples the best is the luckiest draw, far below the truth; with samples the
    reported value is an aggregate of fresh samples of a confirmed point."""
    entry = (CMAOptimizer, {"popsize": 8, "sigma0": 1.0})
    common = dict(backend="threads", max_jobs=1, seed=3)
    r1 = _manager(Noisy(1), entry, 1600, **common).start_manager()
    r4 = _manager(Noisy(1), entry, 1600, samples=4, incumbent_samples=32, working_dir=tmp_path,
                  **common).start_manager()
    off1 = abs(r1.fx - Noisy.truth(r1.x))
    off4 = abs(r4.fx - Noisy.truth(r4.x))
    assert off1 > 1.5, off1  # the minimum of ~1600 draws of the noise
    assert off4 < 0.6 * off1 and off4 < 1.0, (off1, off4)
    assert r1.n_samples == 1 and r1.fx_std is None
    assert r4.n_samples == 32 and 0.5 < r4.fx_std < 1.5  # the noise's sd is 1
    log = read_log(tmp_path)
    assert len(log) == r4.stats["f_evals"]  # every sample is a row, and counts for the budget
    samples = np.asarray(log["sample"])
    assert set(samples[:32].tolist()) == {0, 1, 2, 3}  # the first generation: 4 samples of each point
    assert samples.max() >= 4 + 32 - 1  # the confirmation samples follow
    best = np.all(np.isclose(np.column_stack([log["x_0"], log["x_1"]]), r4.x), axis=1)
    assert best.sum() >= 32  # the reported point was measured at least incumbent_samples times


def test_samples_with_asynchronous_evaluation_and_failures(tmp_path):
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] % 7 == 0:
            raise RuntimeError("flaky")
        return Noisy.truth(x) + 0.1 * np.sin(1000 * calls["n"])

    entry = (DEOptimizer, {"popsize": 6, "async_eval": True, "workers": 2, "backend": "threads"})
    r = _manager(flaky, entry, 400, backend="threads", max_jobs=2, samples=3, on_error="resample",
                 working_dir=tmp_path).start_manager()
    log = read_log(tmp_path)
    assert len(log) == r.stats["f_evals"] >= 400
    assert (np.asarray(log["status"]) == "failed").any()
    assert r.n_samples == 12 and np.isfinite(r.fx)


@pytest.mark.parametrize("bad, error", [
    (dict(samples=0), ConfigError), (dict(samples="3"), ConfigTypeError), (dict(aggregate="mode"), ConfigError),
    (dict(incumbent_samples=0), ConfigError), (dict(memory_limit="2 parsecs"), ConfigError),
    (dict(memory_limit=-5), ConfigError), (dict(memory_limit=[1]), ConfigTypeError),
])
def test_new_settings_are_checked_at_construction(bad, error):
    name = next(iter(bad))
    with pytest.raises(error, match=name):
        GloMPOManager(sphere, [(-1, 1)] * 2, **bad)


def test_sizes_parse_with_units():
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_size("512 MiB") == 512 * MiB
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size(None) is None


def test_new_settings_appear_in_the_summary(tmp_path):
    import yaml

    m = _manager(sphere, (CMAOptimizer, {"popsize": 4}), 80, backend="threads", max_jobs=1, samples=2,
                 aggregate="median", working_dir=tmp_path)
    m.start_manager()
    summary = yaml.safe_load((tmp_path / "summary.yml").read_text())
    text = str(summary)
    assert "'samples': 2" in text and "'aggregate': 'median'" in text and "n_samples" in text


# ----------------------------------------------------------------------------- 2. isolated
def _rss(tmp_path):
    return np.array([m["rss"] for m in read_log(tmp_path)["meta"]], dtype=float)


@pytest.mark.timeout(240)
def test_a_leaking_objective_stays_bounded_with_recycled_or_isolated_workers(tmp_path):
    def run(where, **entry):
        _manager(leaky, (CMAOptimizer, {"popsize": 4, **entry}), 40, backend="threads", max_jobs=entry["workers"],
                 working_dir=tmp_path / where).start_manager()
        return _rss(tmp_path / where)

    grows = run("plain", workers=1, backend="processes")
    recycled = run("recycled", workers=1, backend="processes", max_evals_per_worker=5)
    isolated = run("isolated", workers=2, backend="isolated")
    assert grows.max() - grows.min() > 30 * 4 * MiB  # 40 calls, one worker: it keeps everything
    assert recycled.max() - recycled.min() < 5 * 4 * MiB + 16 * MiB
    assert isolated.max() - isolated.min() < 4 * MiB + 16 * MiB
    pids = {m["where"]["pid"] for m in read_log(tmp_path / "isolated")["meta"]}
    assert len(pids) == 40  # a fresh process per evaluation


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["processes", "isolated"])
def test_memory_limit_ends_the_evaluation(backend, tmp_path):
    r = _manager(hog, (CMAOptimizer, {"popsize": 2, "workers": 2, "backend": backend}), 2, backend="threads",
                 max_jobs=2, memory_limit="150MiB", working_dir=tmp_path).start_manager()
    log = read_log(tmp_path)
    assert list(log["status"]) == ["memory_exceeded"] * len(log) and r.stats["f_evals"] >= 2
    assert "over memory_limit=150 MiB" in log["error"][0]
    assert log["meta"][0]["where"]["pid"] > 0


@pytest.mark.timeout(60)
def test_task_timeout_kills_an_isolated_evaluation(tmp_path):
    _manager(sleeper, (CMAOptimizer, {"popsize": 2, "workers": 2, "backend": "isolated"}), 2,
             backend="processes_forced", max_jobs=2, task_timeout=1.0, working_dir=tmp_path).start_manager()
    assert set(read_log(tmp_path)["status"]) == {"timed_out"}


def test_pool_options_are_checked_when_the_entry_is_built():
    with pytest.raises(ConfigError, match="max_evals_per_worker replaces worker processes"):
        CycleSelector([(CMAOptimizer, {"workers": 2, "backend": "threads", "max_evals_per_worker": 5})])
    with pytest.raises(ConfigTypeError, match="max_evals_per_worker must be an integer"):
        CycleSelector([(CMAOptimizer, {"workers": 2, "backend": "processes", "max_evals_per_worker": 2.5})])
    with pytest.raises(ConfigError, match="gpus has 1 ids for workers=2"):
        CycleSelector([(CMAOptimizer, {"workers": 2, "backend": "processes", "gpus": [0]})])
    with pytest.raises(ConfigError, match="declare resources"):
        CycleSelector([(CMAOptimizer, {"workers": 2, "backend": "dask", "gpus": [0, 1]})])
    with pytest.raises(ConfigError, match="resources are Dask worker resources"):
        CycleSelector([(CMAOptimizer, {"workers": 2, "backend": "processes", "resources": {"GPU": 1}})])
    with pytest.raises(ConfigError, match="daemonic"):
        _manager(sphere, (CMAOptimizer, {"workers": 2, "backend": "isolated"}), 10, backend="processes")
    with pytest.raises(ConfigError, match="memory_limit cannot be enforced"):
        _manager(sphere, (CMAOptimizer, {"workers": 2, "backend": "threads"}), 10, backend="threads",
                 memory_limit="1GiB")
    with pytest.raises(ConfigError, match="embedded cluster"):
        _manager(sphere, (CMAOptimizer, {"workers": 2, "backend": "dask", "resources": {"GPU": 1}}), 10,
                 backend="threads")


# ----------------------------------------------------------------------------- 5. GPUs
@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["processes", "isolated"])
def test_each_worker_sees_its_own_gpu(backend, tmp_path):
    entry = (CMAOptimizer, {"popsize": 4, "workers": 2, "backend": backend, "gpus": [0, "GPU-7"]})
    _manager(sees_cuda, entry, 16, backend="threads", max_jobs=2, working_dir=tmp_path).start_manager()
    metas = list(read_log(tmp_path)["meta"])
    assert metas and {m["cuda"] for m in metas} <= {"0", "GPU-7"}  # (a busy machine may start one late)
    assert all(m["cuda"] == m["where"]["gpu"] for m in metas)
    by_worker = {}
    for m in metas:
        by_worker.setdefault(m["where"]["worker"], set()).add(m["cuda"])
    assert all(len(g) == 1 for g in by_worker.values())  # one GPU per worker, replacements included
    assert by_worker.get("opt1/w1", {"0"}) == {"0"} and by_worker.get("opt1/w2", {"GPU-7"}) == {"GPU-7"}


def test_dask_pool_passes_resources_to_the_scheduler():
    from glompo_like.evaluation import DaskPool

    seen = {}

    class Client:
        def map(self, fn, xs, **kw):
            seen.update(kw)
            return []

    pool = DaskPool(b"task", 2, "tcp://127.0.0.1:1", "opt1", resources={"GPU": 1.0})
    pool._blob = object()
    pool._submit(Client(), [np.zeros(2)])
    assert seen["resources"] == {"GPU": 1.0}


# ----------------------------------------------------------------------------- 3. asyncio
def test_async_objective_overlaps_its_evaluations(tmp_path):
    entry = (CMAOptimizer, {"popsize": 16, "workers": 16, "backend": "asyncio"})
    _manager(waits, entry, 64, backend="threads", max_jobs=16, working_dir=tmp_path).start_manager()
    log = read_log(tmp_path)
    start = np.asarray(log["t_start"])
    end = start + np.asarray(log["duration"])
    overlap = max(int(np.sum((start <= t) & (end > t))) for t in start)
    assert overlap >= 8, overlap  # evaluations of a generation are awaited together
    assert (np.asarray(log["duration"]) >= 0.045).all()


def test_async_objectives_are_recognised_and_refused_elsewhere():
    assert is_coroutine_task(waits) and is_coroutine_task(AsyncCallable())
    assert not is_coroutine_task(sphere) and not is_coroutine_task(Noisy())
    with pytest.raises(ConfigError, match="backend='asyncio'"):
        _manager(waits, (CMAOptimizer, {"workers": 2, "backend": "threads"}), 10, backend="threads")
    with pytest.raises(ConfigError, match="async def"):
        _manager(sphere, (CMAOptimizer, {"workers": 2, "backend": "asyncio"}), 10, backend="threads")


@pytest.mark.parametrize("l1", ["threads", "processes"])
def test_an_async_callable_object_with_task_timeout(l1, tmp_path):
    entry = (CMAOptimizer, {"popsize": 4, "workers": 4, "backend": "asyncio"})
    r = _manager(AsyncCallable(), entry, 40, backend=l1, max_jobs=4, task_timeout=5.0).start_manager()
    assert r.fx < 2.0


def test_asyncio_pool_cancels_at_the_deadline():
    async def slow(x):
        await asyncio.sleep(10)
        return 1.0

    pool = AsyncioPool(slow, 2, "opt1", timeout=0.1)
    try:
        out = pool.evaluate(np.zeros((2, 2)))
    finally:
        pool.close()
    assert [o.status.value for o in out] == ["timed_out", "timed_out"]


# ----------------------------------------------------------------------------- 4. metadata
def test_metadata_is_stored_read_exported_and_shown(tmp_path, capsys):
    _manager(with_meta, (CMAOptimizer, {"popsize": 4}), 20, backend="threads", max_jobs=1,
             working_dir=tmp_path).start_manager()
    meta = read_log(tmp_path)["meta"][0]
    assert meta["iterations"] == 3 and meta["note"] == "ok"
    assert meta["where"]["worker"] == "opt1" and meta["where"]["pid"] == os.getpid()
    export_log(tmp_path)
    header = (tmp_path / "evaluations.csv").read_text().splitlines()[0].split(",")
    assert "meta" in header and "sample" in header
    assert cli_main(["log", str(tmp_path), "--last", "3"]) == 0
    out = capsys.readouterr().out
    assert '"iterations": 3' in out and "sample" in out


def test_metadata_that_is_not_json_is_a_failed_evaluation_not_a_lost_run(tmp_path):
    r = _manager(bad_meta, (CMAOptimizer, {"popsize": 4}), 12, backend="threads", max_jobs=1,
                 working_dir=tmp_path).start_manager()
    log = read_log(tmp_path)
    assert set(log["status"]) == {"failed"} and r.stats["f_evals"] >= 12
    assert "cannot be stored as JSON" in log["error"][0]


def test_a_log_of_schema_version_1_is_still_readable(tmp_path):
    db = sqlite3.connect(tmp_path / "evaluations.sqlite")
    db.execute("CREATE TABLE evaluations (eval_id INTEGER PRIMARY KEY, opt_id INTEGER, x_0 REAL, fx REAL, "
               "status TEXT, error TEXT, t_start REAL, duration REAL, worker TEXT)")
    db.execute("INSERT INTO evaluations VALUES (1, 1, 0.5, 0.25, 'ok', NULL, 0.0, 0.1, 'opt1')")
    db.commit()
    db.close()
    log = read_log(tmp_path)
    assert list(log["sample"]) == [0] and list(log["meta"]) == [None]


# ----------------------------------------------------------------------------- 6. workers="auto"
def _settings(max_jobs, backend="processes", **kw):
    sel = CycleSelector([(CMAOptimizer, {"workers": "auto", "backend": backend})])
    return Settings.build(task=sphere, bounds=[(-1, 1)] * 2, opt_selector=sel, backend="threads",
                          max_jobs=max_jobs, **kw)


def test_auto_workers_divides_the_cpus_among_the_optimizers(monkeypatch):
    assert auto_workers(16, 2) == (7, auto_workers(16, 2)[1])
    monkeypatch.setattr(plan_module, "_cpus", lambda: 16)
    plan, _ = plan_module.resolve(_settings(2), b"", np.random.default_rng(0))
    assert plan.workers == (7,) and plan.level2 == ("processes",)
    assert "(16 - 2) // 2 = 7" in plan.reasons["workers"]
    plan, _ = plan_module.resolve(_settings(8), b"", np.random.default_rng(0))
    assert plan.workers == (1,) and plan.level2 == ("serial",)  # (16 - 8) // 8 = 1: below the threshold
    assert "serial evaluation" in plan.reasons["workers"]
    assert CycleSelector([(CMAOptimizer, {"workers": "auto", "backend": "threads"})]).entries[0].workers == 1


def test_auto_workers_runs_and_says_why_in_the_summary(tmp_path):
    import yaml

    sel = CycleSelector([(CMAOptimizer, {"popsize": 4, "workers": "auto", "backend": "processes"})])
    GloMPOManager(sphere, [(-1, 1)] * 2, opt_selector=sel, backend="threads", max_jobs=2, status=None,
                  convergence_checker=MaxFuncCalls(40), working_dir=tmp_path).start_manager()
    summary = yaml.safe_load((tmp_path / "summary.yml").read_text())
    assert "workers='auto'" in str(summary)


def test_auto_workers_and_too_many_workers_are_refused_clearly():
    with pytest.raises(ConfigError, match="workers='auto' sizes a pool"):
        CycleSelector([(CMAOptimizer, {"workers": "auto"})])
    with pytest.raises(ConfigError, match=r"workers=5 but max_jobs=2.*raise max_jobs or lower workers"):
        _manager(sphere, (CMAOptimizer, {"workers": 5, "backend": "threads"}), 10, backend="threads", max_jobs=2)


# ----------------------------------------------------------------------------- 7. async_eval
@pytest.mark.parametrize("cls", [CMAOptimizer, XNESOptimizer, SNESOptimizer])
def test_generational_optimizers_give_the_same_seeded_result_with_async_eval(cls, tmp_path):
    def run(async_eval):
        entry = (cls, {"popsize": 6, "workers": 3, "backend": "threads", "async_eval": async_eval})
        return _manager(sphere, entry, 600, backend="threads", max_jobs=3, seed=5,
                        working_dir=tmp_path / str(async_eval)).start_manager()

    a, b = run(False), run(True)
    assert a.fx == b.fx and np.array_equal(a.x, b.x)
    la, lb = read_log(tmp_path / "False"), read_log(tmp_path / "True")
    xa = np.sort(np.column_stack([la["x_0"], la["x_1"]]), axis=0)
    xb = np.sort(np.column_stack([lb["x_0"], lb["x_1"]]), axis=0)
    assert np.array_equal(xa, xb)  # the same points were evaluated


@pytest.mark.parametrize("cls, kw", [(DEOptimizer, {"popsize": 6}), (PSOOptimizer, {"swarm_size": 6})])
def test_steady_state_is_reproducible_when_evaluations_come_back_in_order(cls, kw):
    def run():
        entry = (cls, {**kw, "async_eval": True})  # serial: one evaluation at a time, in order
        return _manager(sphere, entry, 300, backend="threads", max_jobs=1, seed=9).start_manager()

    a, b = run(), run()
    assert a.fx == b.fx and np.array_equal(a.x, b.x)


def hangs_near_zero(x):
    if abs(x[0]) < 0.5:
        time.sleep(60)
    return float(np.sum(np.asarray(x) ** 2))


@pytest.mark.timeout(90)
def test_async_eval_on_serial_evaluation_in_a_process_is_killed_at_its_deadline(tmp_path):
    """The defect: asynchronous optimizers evaluate through submit/collect, which did not
    announce, so the manager never killed a hung evaluation."""
    entry = (DEOptimizer, {"popsize": 6, "async_eval": True})
    r = _manager(hangs_near_zero, entry, 60, backend="processes", max_jobs=1, task_timeout=1.0,
                 working_dir=tmp_path).start_manager()
    log = read_log(tmp_path)
    assert "timed_out" in set(log["status"])
    assert r.stats["opts_crashed"] >= 1 and len(log) == r.stats["f_evals"]


def test_process_pool_recycles_after_max_evals_per_worker():
    import multiprocessing

    import cloudpickle

    ctx = multiprocessing.get_context("fork")
    pool = ProcessPool(cloudpickle.dumps(os.getpid.__call__ and (lambda x: float(os.getpid()))), 1, ctx, "o",
                       max_evals_per_worker=3)
    try:
        out = pool.evaluate(np.zeros((9, 2)))
    finally:
        pool.close()
    assert len({o.fx for o in out}) == 3 and pool.recycled >= 2
    iso = IsolatedPool(cloudpickle.dumps(lambda x: float(os.getpid())), 2, ctx, "i")
    try:
        out = iso.evaluate(np.zeros((4, 2)))
    finally:
        iso.close()
    assert len({o.fx for o in out}) == 4


def test_cli_log_command_on_a_missing_run(tmp_path):
    assert subprocess.run([sys.executable, "-m", "glompo_like", "log", str(tmp_path / "nothing")],
                          capture_output=True).returncode != 0
