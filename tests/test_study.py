"""Several managers, one study (#19): managers in separate processes on one SQLite study
(and on a real PostgreSQL server, see tests/_postgres.py), one of them SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")

from glompo_like import ConfigError, GloMPOManager, read_log
from glompo_like.control.callbacks import StopRun
from glompo_like.optimizers import CMAOptimizer, RandomOptimizer
from glompo_like.policies.base import Decision
from glompo_like.policies.checkers import MaxFuncCalls, MaxSeconds, TargetCost
from glompo_like.policies.generators import RandomGenerator
from glompo_like.policies.hunters import BaseHunter
from glompo_like.policies.selectors import CycleSelector
from glompo_like.record.study import StudyMismatch, open_existing

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "_study_script.py"


def sphere(x):
    return float(np.sum(x ** 2))


def _start(url: str, wd: Path, max_evals: int, timeout: float = 2.0) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), url, str(wd), str(max_evals), str(timeout)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline().split()
    if not line or line[0] != "ID":
        proc.kill()
        out, err = proc.communicate(timeout=20)
        raise AssertionError(f"the manager did not start: {line} {out} {err}")
    return proc, line[1]


def _wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline().strip()
    if line != "READY":
        proc.kill()
        out, err = proc.communicate(timeout=20)
        raise AssertionError(f"the manager was not under way: {line!r} {out} {err}")


def _cols(table, order: str | None = None, **where) -> dict[str, np.ndarray]:
    """A table of read_log (a DataFrame or a structured array) as numpy columns, the rows
    where each ``column == value`` of ``where``, sorted by ``order``."""
    names = list(table.columns) if hasattr(table, "columns") else list(table.dtype.names)
    cols = {n: np.asarray(table[n]) for n in names}
    keep = np.ones(len(table), dtype=bool)
    for k, v in where.items():
        keep &= cols[k] == v
    cols = {n: c[keep] for n, c in cols.items()}
    if order is not None:
        i = np.argsort(cols[order], kind="stable")
        cols = {n: c[i] for n, c in cols.items()}
    return cols


def _x(cols: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([cols[f"x_{i}"].astype(float) for i in range(3)], axis=1)


def three_managers_one_killed(url: str, tmp_path: Path) -> None:
    """Three managers (processes) work one study; one is SIGKILLed mid-run.  The others
    finish the study's budget; every evaluation is in the study exactly once, with unique,
    gap-free study-wide ids; the killed manager and its optimizers are marked lost."""
    budget = 4000
    procs = [_start(url, tmp_path / f"m{i}", budget) for i in range(3)]
    try:
        for p, _ in procs:
            _wait_ready(p)
        victim, victim_id = procs[1]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=20)
        ends = {}
        for p, mid in (procs[0], procs[2]):
            out, err = p.communicate(timeout=100)
            assert p.returncode == 0, err
            ends[mid] = out
    finally:
        for p, _ in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    evals = _cols(read_log(url))
    ids = evals["eval_id"]
    assert np.array_equal(ids, np.arange(1, len(ids) + 1))  # unique, none missing
    assert len(ids) >= budget
    managers = {r["manager_id"]: r for r in _managers(url)}
    assert managers[victim_id]["state"] == "lost", managers[victim_id]
    assert "no heartbeat" in managers[victim_id]["end_reason"]
    for (_p, mid), i in zip((procs[0], procs[2]), (0, 2), strict=True):
        assert managers[mid]["state"] == "ended"
        assert "MaxFuncCalls" in ends[mid]
        mine = _cols(read_log(url), "local_eval_id", manager_id=mid)
        local = _cols(read_log(tmp_path / f"m{i}"))
        # every evaluation of a manager that finished is in the study exactly once
        assert list(mine["local_eval_id"]) == list(local["eval_id"])
        assert np.array_equal(_x(mine), _x(local))
        assert np.array_equal(mine["fx"].astype(float), local["fx"].astype(float))
    # the killed manager's rows stored before it died are its own log's first rows
    lost = _cols(read_log(url), "local_eval_id", manager_id=victim_id)
    local = _cols(read_log(tmp_path / "m1"))
    n = len(lost["eval_id"])
    assert n >= 30 and list(lost["local_eval_id"]) == list(range(1, n + 1))
    assert np.array_equal(_x(lost), _x(local)[:n])
    opts = _cols(read_log(url, optimizers=True))
    assert all(k is not None for k in opts["end_kind"])  # none left "running"
    assert set(opts["end_kind"][opts["manager_id"] == victim_id]) == {"lost"}
    assert len(set(opts["opt_id"])) == len(opts["opt_id"])


def _managers(url: str) -> list[dict]:
    study = open_existing(url)
    try:
        names, rows = study.read_rows("managers")
    finally:
        study.close()
    return [dict(zip(names, r, strict=True)) for r in rows]


@pytest.mark.timeout(240)
def test_three_managers_on_one_sqlite_study_one_killed(tmp_path):
    three_managers_one_killed(f"sqlite:///{tmp_path}/study.db", tmp_path)


def test_a_manager_whose_setup_differs_is_refused_with_the_difference(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    GloMPOManager(sphere, [(-1, 1)] * 2, study=url, status=None).close()
    with pytest.raises(StudyMismatch, match=r"bounds: the study has \[\[-1.0, 1.0\]"):
        GloMPOManager(sphere, [(-2, 2)] * 2, study=url, status=None)
    with pytest.raises(StudyMismatch, match="dim"):
        GloMPOManager(sphere, [(-1, 1)] * 3, study=url, status=None)


def test_study_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="storage URL"):
        GloMPOManager(sphere, [(-1, 1)] * 2, study=str(tmp_path / "x.db"))
    with pytest.raises(ConfigError, match="sqlite:///path"):
        GloMPOManager(sphere, [(-1, 1)] * 2, study="mysql://h/db")


def test_managers_in_turn_share_budget_best_and_end(tmp_path):
    """The second manager sees the first one's evaluations (the budget is the study's) and
    best; a study whose checker fired is over for a manager that joins later."""
    url = f"sqlite:///{tmp_path}/s.db"
    kw = dict(backend="threads", max_jobs=2, study=url, status=None, thread_slice=None,
              convergence_checker=MaxFuncCalls(3000) | TargetCost(1e-12))
    with GloMPOManager(sphere, [(-2, 2)] * 3, **kw) as m1:
        r1 = m1.start_manager()
    with GloMPOManager(sphere, [(-2, 2)] * 3, **kw) as m2:
        r2 = m2.start_manager()
    assert r2.stats["f_evals"] == 0  # nothing left to do
    assert r2.stats["study"]["f_evals"] == r1.stats["f_evals"]
    assert r2.stats["study"]["best_fx"] == r1.fx
    assert str(r1.stats["end_cond"]) in str(_managers(url)[0]["end_reason"])
    # a SQLite study is one file that the run tools read as they read a run's log
    from glompo_like.cli import main

    assert main(["export", "--csv", "--out", str(tmp_path / "csv"), str(tmp_path / "s.db")]) == 0
    lines = (tmp_path / "csv" / "evaluations.csv").read_text().splitlines()
    assert len(lines) == 1 + r1.stats["f_evals"] and "manager_id" in lines[0]


@pytest.mark.timeout(180)
def test_cli_status_shows_every_manager_and_stop_ends_the_study(tmp_path, capsys):
    from glompo_like.cli import main

    url = f"sqlite:///{tmp_path}/study.db"
    procs = [_start(url, tmp_path / f"m{i}", 10_000_000, timeout=5.0) for i in range(2)]
    try:
        for p, _ in procs:
            _wait_ready(p)
        assert main(["status", url]) == 0
        out = capsys.readouterr().out
        for _, mid in procs:
            assert f"{mid}  running" in out
        assert "optimizer" in out
        assert main(["stop", url, "--reason", "enough"]) == 0
        for p, _ in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert "END the study ended: enough" in out
    finally:
        for p, _ in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    assert main(["status", url]) == 0
    assert "stopped: enough" in capsys.readouterr().out
    assert {m["state"] for m in _managers(url)} == {"ended"}


@pytest.fixture(scope="module")
def postgres():
    from _postgres import postgres_server

    with postgres_server() as server:
        yield server


@pytest.mark.timeout(300)
def test_three_managers_on_one_postgresql_study_one_killed(postgres, tmp_path):
    from _postgres import new_database

    three_managers_one_killed(new_database(*postgres, "study3"), tmp_path)


def test_postgresql_study_refuses_a_different_setup(postgres):
    from _postgres import new_database

    url = new_database(*postgres, "mismatch")
    GloMPOManager(sphere, [(-1, 1)] * 2, study=url, status=None).close()
    with pytest.raises(StudyMismatch, match="bounds"):
        GloMPOManager(sphere, [(-2, 2)] * 2, study=url, status=None)


CALLS = []


def counted_sphere(x):
    CALLS.append(1)
    return float(np.sum(x ** 2))


@pytest.mark.timeout(120)
def test_a_manager_joining_an_ended_study_evaluates_nothing_not_even_a_probe(tmp_path):
    """backend='auto' and thread_slice='auto' measure the task before the run; a manager
    that joins a study that has ended must not (it starts nothing)."""
    url = f"sqlite:///{tmp_path}/s.db"
    kw = dict(study=url, status=None, convergence_checker=MaxFuncCalls(200))
    with GloMPOManager(counted_sphere, [(-2, 2)] * 3, backend="threads", max_jobs=2, thread_slice=None,
                       **kw) as m1:
        m1.start_manager()
    assert CALLS  # (the first manager did evaluate)
    CALLS.clear()
    with GloMPOManager(counted_sphere, [(-2, 2)] * 3, backend="auto", thread_slice="auto", max_jobs=2,
                       working_dir=tmp_path / "late", **kw) as m2:
        r2 = m2.start_manager()
    assert CALLS == []
    assert r2.stats["f_evals"] == 0 and "MaxFuncCalls" in str(r2.stats["end_cond"])
    assert len(read_log(tmp_path / "late")) == 0
    assert len(read_log(tmp_path / "late", optimizers=True)) == 0
    # and one that joins a study stopped by hand (its budget not spent) starts nothing either
    url2 = f"sqlite:///{tmp_path}/s2.db"
    GloMPOManager(counted_sphere, [(-2, 2)] * 3, study=url2, status=None,
                  convergence_checker=MaxFuncCalls(200)).close()
    study = open_existing(url2)
    try:
        study.request_stop("by hand", "test")
    finally:
        study.close()
    with GloMPOManager(counted_sphere, [(-2, 2)] * 3, backend="auto", thread_slice="auto", max_jobs=2,
                       study=url2, status=None, convergence_checker=MaxFuncCalls(200)) as m3:
        r3 = m3.start_manager()
    assert CALLS == [] and r3.stats["f_evals"] == 0
    assert "the study ended: by hand" in str(r3.stats["end_cond"])


def sleepy_sphere(x):
    import time

    time.sleep(0.002)
    return float(np.sum(x ** 2))


class HistoryRecorder(RandomGenerator):
    """Random starts; notes what the run's history holds at each call."""

    def __init__(self) -> None:
        self.seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (x of others, all x, all fx)

    def generate(self, run, rng):
        x, fx = run.history()
        self.seen.append((run.study.history.x.copy(), x.copy(), fx.copy()))
        return super().generate(run, rng)


def _study_kw(url: str) -> dict:
    return dict(backend="threads", max_jobs=1, study=url, status=None, thread_slice=None,
                killing_conditions=False, convergence_checker=MaxFuncCalls(1_000_000) | MaxSeconds(60),
                opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 5, "max_evals": 10})]))


@pytest.mark.timeout(120)
def test_a_generator_of_one_manager_sees_the_points_another_manager_evaluated(tmp_path):
    """Manager A runs in a thread; manager B, started once A has stored evaluations, starts
    optimizer after optimizer (each stops after 10 evaluations).  B's generator sees A's
    evaluations in ``run.study.history`` and ``run.history()`` from its first call, and more
    of them at later calls (the history is read again at each sync)."""
    url = f"sqlite:///{tmp_path}/s.db"
    a = GloMPOManager(sleepy_sphere, [(-2, 2)] * 3, **_study_kw(url))
    a_result: list = []
    thread = threading.Thread(target=lambda: a_result.append(a.start_manager()), name="manager-A")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while _stored(url, a.study_manager_id) < 50:
            assert time.monotonic() < deadline and thread.is_alive(), "manager A stored nothing"
            time.sleep(0.05)
        gen = HistoryRecorder()
        stop = [lambda run, event: StopRun("enough") if run.t_elapsed > 1.5 else None]
        with GloMPOManager(sleepy_sphere, [(-2, 2)] * 3, x0_generator=gen, callbacks=stop,
                           **_study_kw(url)) as b:
            b.start_manager()
            b_id = b.study_manager_id
    finally:
        study = open_existing(url)
        try:
            study.request_stop("the test is over", "test")
        finally:
            study.close()
        thread.join(30)
    assert not thread.is_alive() and a_result
    _no_study_threads()
    log = read_log(url)
    of_a = _cols(log, "eval_id", manager_id=a.study_manager_id)
    of_b = _cols(log, "eval_id", manager_id=b_id)
    a_points = {tuple(p) for p in _x(of_a)}
    assert len(gen.seen) >= 3
    first_others, first_x, _ = gen.seen[0]
    assert len(first_others) >= 50  # A's evaluations, already at B's first start
    assert {tuple(p) for p in first_others} <= a_points
    assert {tuple(p) for p in first_others} <= {tuple(p) for p in first_x}  # run.history() has them too
    last_others, last_x, last_fx = gen.seen[-1]
    assert len(last_others) > len(first_others)  # refreshed as A went on
    assert {tuple(p) for p in last_others} <= a_points
    # run.history(): B's own evaluations so far and A's, each with its value
    assert len(last_x) == len(last_fx) and len(last_x) >= len(last_others) + 10
    assert np.allclose(last_fx, np.sum(last_x ** 2, axis=1))
    assert not {tuple(p) for p in last_others} & {tuple(p) for p in _x(of_b)}


def _stored(url: str, manager_id: str | None) -> int:
    try:
        return int(np.sum(_cols(read_log(url))["manager_id"] == manager_id))
    except Exception:  # the study's tables are not there yet
        return 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_history_of_other_managers_is_bounded_and_read_incrementally(backend, tmp_path, monkeypatch,
                                                                          request):
    """Two links to one study: each reads only the rows new since its last sync, keeps the
    newest HISTORY_ROWS, and never its own rows."""
    from glompo_like.record.study import link as link_mod
    from glompo_like.record.study import storage

    monkeypatch.setattr(storage, "HISTORY_ROWS", 7)
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/s.db"
    else:
        from _postgres import new_database

        url = new_database(*request.getfixturevalue("postgres"), "history")
    fp = {"task": "t"}
    studies = [storage.Study(url, 2, f"m{i}") for i in range(2)]
    try:
        for s in studies:
            s.create_or_check(fp)
            s.register(s.manager_id, None, 1)
        hist = link_mod.StudyHistory(2, limit=7)
        pushes = []

        def push(study, rows):
            return study.push([], rows, None, 0, float("inf"))

        local = 0
        for n in (3, 5, 10):  # m0 stores n rows, then m1 syncs
            rows = [{"local_eval_id": local + i + 1, "local_opt_id": 1, "x_0": float(local + i), "x_1": 0.0,
                     "fx": float(local + i)} for i in range(n)]
            local += n
            push(studies[0], rows)
            snap = push(studies[1], [{"local_eval_id": len(pushes) + 1, "local_opt_id": 1, "x_0": -1.0,
                                      "x_1": -1.0, "fx": -1.0}])
            pushes.append(snap.news)
            hist.add(snap.news)
        assert [len(n[0]) for n in pushes] == [3, 5, 7]  # only what is new; at most 7 (the newest)
        assert pushes[2][2].tolist() == [float(v) for v in range(11, 18)]
        assert len(hist) == 7 and hist.fx.tolist() == [float(v) for v in range(11, 18)]
        assert hist.n_read == 15 and not hist.x.flags.writeable
        assert (hist.x[:, 0] >= 0).all()  # never its own rows (x_0 = -1)
        assert push(studies[1], []).news is None  # nothing new
    finally:
        for s in studies:
            s.close()


class BehindTheStudy(BaseHunter):
    """Fires when another manager of the study has found better than this whole run, and
    the victim is behind that best (a hunter comparing with the study's best)."""

    def _settings(self) -> str:
        return ""

    def _check(self, run, hunter_id, victim_id):
        fv = run.optimizer(victim_id).best_fx
        fired = run.best_fx < run.local_best_fx and fv > run.best_fx
        return Decision(fired, f"opt {victim_id} best {fv!r}; study best {run.best_fx!r} by "
                               f"{run.study.best_manager}; this run's best {run.local_best_fx!r}")


@pytest.mark.timeout(120)
def test_hunters_compare_with_the_study_best_through_the_view(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    kw = _study_kw(url)
    stop_at = [lambda run, event: StopRun("enough") if run.local_f_evals >= 600 else None]
    cma = CycleSelector([(CMAOptimizer, {"popsize": 6})])
    with GloMPOManager(sphere, [(-2, 2)] * 3, **{**kw, "opt_selector": cma, "callbacks": stop_at}) as a:
        ra = a.start_manager()
    assert ra.fx < 1e-3
    stop_after = [lambda run, event: StopRun("enough") if run.t_elapsed > 1.0 else None]
    with GloMPOManager(sphere, [(-2, 2)] * 3, **{**kw, "max_jobs": 2, "killing_conditions": BehindTheStudy(),
                                                  "hunt_frequency": 10, "callbacks": stop_after,
                                                  "opt_selector": CycleSelector([(RandomOptimizer, {"popsize": 5})])}
                       ) as b:
        rb = b.start_manager()
        assert b.view.best_fx == ra.fx and b.view.local_best_fx > ra.fx
    _no_study_threads()
    opts = _cols(read_log(url, optimizers=True), manager_id=b.study_manager_id)
    killed = [r for k, r in zip(opts["end_kind"], opts["end_reason"], strict=True) if k == "killed"]
    assert killed, opts["end_reason"]
    for reason in killed:
        assert f"study best {ra.fx!r} by {a.study_manager_id}" in reason
    assert rb.fx > ra.fx  # B alone never got there: the kills came from A's best


def _one_manager_study(url: str, wd: Path) -> GloMPOManager:
    kw = dict(backend="threads", max_jobs=2, study=url, status=None, thread_slice=None, working_dir=wd,
              convergence_checker=MaxFuncCalls(300),
              opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 5, "max_evals": 60})]))
    with GloMPOManager(sphere, [(-2, 2)] * 3, **kw) as m:
        m.start_manager()
    _no_study_threads()
    return m


def _no_study_threads() -> None:
    """No thread of a manager (runners, heartbeat) outlives its run."""
    assert not [t.name for t in threading.enumerate() if t.name.startswith("glompo")]


def check_the_run_tools_read_a_study_by_its_url(url: str, tmp_path: Path, capsys) -> None:
    """read_log, export and report (functions and commands) and the log command read the
    study at ``url`` as they read a run: every evaluation of its manager, with the study's
    columns."""
    pytest.importorskip("matplotlib")
    import csv

    from glompo_like.cli import main
    from glompo_like.record.export import export_log
    from glompo_like.record.report import REPORT_NAMES, make_report

    m = _one_manager_study(url, tmp_path / "run")
    local = _cols(read_log(tmp_path / "run"))
    study = _cols(read_log(url), "eval_id")
    assert len(study["eval_id"]) == len(local["eval_id"]) >= 300
    assert set(study["manager_id"]) == {m.study_manager_id}
    assert np.array_equal(_x(study), _x(local)) and np.array_equal(study["fx"], local["fx"])
    opts = _cols(read_log(url, optimizers=True))
    assert len(opts["opt_id"]) == len(_cols(read_log(tmp_path / "run", optimizers=True))["opt_id"])

    files = export_log(url, out_dir=tmp_path / "csv")
    assert [f.name for f in files] == ["evaluations.csv", "optimizers.csv"]
    with open(files[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(local["eval_id"]) and {r["manager_id"] for r in rows} == {m.study_manager_id}
    assert [float(r["fx"]) for r in rows] == [float(v) for v in local["fx"]]
    assert main(["export", "--out", str(tmp_path / "csv2"), url]) == 0
    assert (tmp_path / "csv2" / "evaluations.csv").read_text() == files[0].read_text()

    capsys.readouterr()
    assert main(["log", "--last", "5", url]) == 0  # the last evaluations, the newest last
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and int(lines[-1].split()[0]) == int(study["eval_id"][-1])

    # the dashboard follows the study (its state, and served over HTTP)
    import json
    import urllib.request

    from glompo_like.record.dashboard import Dashboard, RunFollower

    state = RunFollower(url).state()
    assert state["run_dir"] == url and state["status"] == "finished", state.get("message")
    assert state["evaluations"] == len(local["eval_id"])
    assert state["best"]["fx"] == pytest.approx(float(np.nanmin(local["fx"])))
    assert [o["opt_id"] for o in state["optimizers"]] == sorted(int(i) for i in opts["opt_id"])
    study_ids = {int(i) for i in opts["opt_id"]}
    assert all(o["hunted_by"] in study_ids for o in state["optimizers"] if o["hunted_by"] is not None)
    with Dashboard(url, port=0) as board, urllib.request.urlopen(board.url + "api/state", timeout=30) as r:
        assert json.loads(r.read())["evaluations"] == len(local["eval_id"])

    pngs = make_report(url, tmp_path / "png")
    assert [p.name for p in pngs] == list(REPORT_NAMES) and all(p.stat().st_size > 1000 for p in pngs)
    assert main(["report", "--out", str(tmp_path / "png2"), url]) == 0
    assert all((tmp_path / "png2" / n).stat().st_size > 1000 for n in REPORT_NAMES)
    if url.startswith("sqlite"):  # the HTML report reads a SQLite study's file
        pytest.importorskip("plotly")
        assert main(["report", "--html", "--out", str(tmp_path / "html"), url]) == 0
        assert "RandomOptimizer" in (tmp_path / "html" / "report.html").read_text()


@pytest.mark.timeout(120)
def test_the_run_tools_read_a_sqlite_study_by_its_url(tmp_path, capsys):
    check_the_run_tools_read_a_study_by_its_url(f"sqlite:///{tmp_path}/study.db", tmp_path, capsys)


@pytest.mark.timeout(180)
def test_the_run_tools_read_a_postgresql_study_by_its_url(postgres, tmp_path, capsys):
    from _postgres import new_database

    from glompo_like.cli import main

    url = new_database(*postgres, "tools")
    check_the_run_tools_read_a_study_by_its_url(url, tmp_path, capsys)
    capsys.readouterr()
    # a study on a server has no directory to write beside: the commands ask for --out
    assert main(["export", url]) == 1 and main(["report", url]) == 1
    err = capsys.readouterr().err
    assert err.count("give out_dir (--out on the command line)") == 2
    assert main(["report", "--html", "--out", str(tmp_path / "h"), url]) == 1
    assert "not a study on a database server" in capsys.readouterr().err


def _outage_run(url: str, wd: Path, socket_dir: str, port: int, back_after: float | None):
    """One manager (threads) on the study at ``url``; once it has stored 50 evaluations the
    server is stopped, and started again after ``back_after`` seconds (``None``: after the
    run).  The run ends (a callback) 1.5 s after the server is back, or after 2 s of outage.
    Returns the manager, its result and the evaluations it made while the server was down."""
    from _postgres import start_server, stop_server

    down, back = threading.Event(), threading.Event()
    counts: dict[str, int] = {}
    marks: dict[str, float] = {}
    holder: dict[str, GloMPOManager] = {}

    def outage() -> None:
        deadline = time.monotonic() + 60
        while _stored(url, holder["m"].study_manager_id) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_server(socket_dir)
        counts["down"] = holder["m"].ledger.counters.f_evals
        marks["down"] = time.monotonic()
        down.set()
        if back_after is not None:
            time.sleep(back_after)
            counts["back"] = holder["m"].ledger.counters.f_evals
            start_server(socket_dir, port)
            marks["back"] = time.monotonic()
            back.set()

    def stop(run, event):
        if back.is_set() and time.monotonic() - marks["back"] > 1.5:
            return StopRun("enough")
        if back_after is None and down.is_set() and time.monotonic() - marks["down"] > 2.0:
            return StopRun("enough")
        return None

    kw = {**_study_kw(url), "max_jobs": 2, "working_dir": wd, "callbacks": [stop],
          "opt_selector": CycleSelector([(RandomOptimizer, {"popsize": 5})])}
    m = holder["m"] = GloMPOManager(sleepy_sphere, [(-2, 2)] * 3, **kw)
    driver = threading.Thread(target=outage, name="outage")
    driver.start()
    try:
        with m:
            result = m.start_manager()
    finally:
        driver.join(90)
    assert down.is_set()
    _no_study_threads()
    return m, result, counts


@pytest.mark.timeout(240)
def test_the_database_unreachable_mid_run_the_run_goes_on_and_stores_its_rows_later(tmp_path, caplog):
    """The PostgreSQL server is stopped mid-run for 3 s (its connections broken) and
    started again: the run keeps evaluating, warns, and once the server answers stores
    every evaluation it made, none twice."""
    import logging

    from _postgres import new_database, postgres_server

    caplog.set_level(logging.INFO, logger="glompo_like")
    with postgres_server() as (socket_dir, port):
        url = new_database(socket_dir, port, "outage")
        m, result, counts = _outage_run(url, tmp_path / "run", socket_dir, port, back_after=3.0)
        assert counts["back"] - counts["down"] >= 100  # it went on while the server was down
        assert "could not sync" in caplog.text and "answers again" in caplog.text
        assert result.stats["study"]["not_stored"] == 0
        assert "callback" in str(result.stats["end_cond"])
        local = _cols(read_log(tmp_path / "run"))
        stored = _cols(read_log(url), "local_eval_id", manager_id=m.study_manager_id)
        assert list(stored["local_eval_id"]) == list(local["eval_id"])  # each once, none missing
        assert np.array_equal(_x(stored), _x(local)) and np.array_equal(stored["fx"], local["fx"])
        assert {r["manager_id"]: r["state"] for r in _managers(url)} == {m.study_manager_id: "ended"}


@pytest.mark.timeout(240)
def test_the_database_still_unreachable_at_the_end_the_result_says_what_was_not_stored(tmp_path, caplog):
    from _postgres import new_database, postgres_server, start_server

    with postgres_server() as (socket_dir, port):
        url = new_database(socket_dir, port, "gone")
        m, result, counts = _outage_run(url, tmp_path / "run", socket_dir, port, back_after=None)
        n_local = len(read_log(tmp_path / "run"))
        start_server(socket_dir, port)
        n_stored = _stored(url, m.study_manager_id)
        assert result.stats["study"]["not_stored"] == n_local - n_stored > 0
        assert "could not store its last evaluations" in caplog.text


def gil_hog(x):
    """Pure Python for 2.5 s: holds the GIL but for the interpreter's switch interval."""
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 2.5:
        n += 1
    return float(np.sum(x ** 2))


@pytest.mark.timeout(120)
def test_the_heartbeat_goes_on_beside_an_objective_that_holds_the_gil(tmp_path):
    """Evaluations of 2.5 s of pure Python in two runner threads (threads backend), with
    study_timeout=2 s: the heartbeat thread still beats (an observer checks every 50 ms
    that it is never older than the timeout, and marks late managers lost as another
    manager would), so the manager is never marked lost and ends by its budget."""
    url = f"sqlite:///{tmp_path}/s.db"
    sel = CycleSelector([(RandomOptimizer, {"popsize": 1})])
    m = GloMPOManager(gil_hog, [(-2, 2)] * 3, backend="threads", max_jobs=2, thread_slice=None, study=url,
                      study_timeout=2.0, status=None, opt_selector=sel, killing_conditions=False,
                      convergence_checker=MaxFuncCalls(4))
    done = threading.Event()
    ages: list[float] = []
    lost: list[str] = []

    def observe() -> None:
        study = open_existing(url)
        try:
            while not done.is_set():
                lost.extend(study.mark_lost(2.0))
                names, rows = study.read_rows("managers")
                for r in rows:
                    row = dict(zip(names, r, strict=True))
                    if row["state"] == "running":
                        ages.append(time.time() - row["heartbeat_at"])
                time.sleep(0.05)
        finally:
            study.close()

    observer = threading.Thread(target=observe, name="observer")
    observer.start()
    try:
        with m:
            result = m.start_manager()
    finally:
        done.set()
        observer.join(30)
    assert result.stats["f_evals"] >= 4 and "MaxFuncCalls" in str(result.stats["end_cond"])
    assert m.end.cause.name == "CHECKER"
    assert result.stats["t_used"] > 4.0  # (the evaluations did keep the run busy)
    assert not lost and len(ages) >= 3 and max(ages) < 2.0, (lost, ages)  # (the observer, too, waits for the GIL)
    assert [r["state"] for r in _managers(url)] == ["ended"]
    _no_study_threads()


@pytest.mark.timeout(240)
def test_a_manager_frozen_longer_than_the_timeout_finds_itself_lost_and_ends(tmp_path):
    """Two managers (processes) on one study, study_timeout=2 s; one is frozen (SIGSTOP)
    until the other has marked it lost, then thawed (SIGCONT): it ends its run with
    EndCause.STUDY (saying it was marked lost), stays lost in the study, and the other
    goes on to the study's budget."""
    url = f"sqlite:///{tmp_path}/study.db"
    budget = 6000
    procs = [_start(url, tmp_path / f"m{i}", budget, timeout=2.0) for i in range(2)]
    try:
        for p, _ in procs:
            _wait_ready(p)
        (frozen, frozen_id), (other, other_id) = procs
        os.killpg(frozen.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 30
            while {r["manager_id"]: r["state"] for r in _managers(url)}[frozen_id] != "lost":
                assert time.monotonic() < deadline, "the frozen manager was not marked lost"
                time.sleep(0.1)
        finally:
            os.killpg(frozen.pid, signal.SIGCONT)
        out, err = frozen.communicate(timeout=60)
        assert frozen.returncode == 0, err
        assert "CAUSE STUDY" in out and f"this manager ({frozen_id}) was marked lost" in out, out
        out_other, err = other.communicate(timeout=120)
        assert other.returncode == 0, err
        assert "MaxFuncCalls" in out_other and "CAUSE CHECKER" in out_other
    finally:
        for p, _ in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    states = {r["manager_id"]: r for r in _managers(url)}
    assert states[frozen_id]["state"] == "lost" and states[other_id]["state"] == "ended"
    assert len(read_log(url)) >= budget
    for _, pgid in ((p, p.pid) for p, _ in procs):  # nothing of either process group is left
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)


@pytest.mark.timeout(120)
def test_without_the_study_extra_a_run_works_and_study_names_the_extra(tmp_path):
    """SQLAlchemy is the 'study' extra: `pip install glompo_like` alone must run (the README's
    demo), and asking for a study then names the extra."""
    code = (
        "import sys\n"
        "sys.modules['sqlalchemy'] = None  # as if it were not installed\n"
        "from glompo_like import ConfigError, GloMPOManager\n"
        "from glompo_like.policies import MaxFuncCalls\n"
        "from glompo_like.problems import sphere\n"
        f"r = GloMPOManager(sphere, [(-1, 1)] * 2, backend='threads', max_jobs=1, status=None,\n"
        f"                  convergence_checker=MaxFuncCalls(50), working_dir={str(tmp_path / 'run')!r}).start_manager()\n"
        "assert r.stats['f_evals'] >= 50\n"
        "try:\n"
        "    GloMPOManager(sphere, [(-1, 1)] * 2, study='sqlite:///x.db')\n"
        "except ConfigError as e:\n"
        "    print('REFUSED', e)\n"
        "print('SQLALCHEMY', [m for m, v in sys.modules.items() if m.startswith('sqlalchemy') and v is not None])\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "REFUSED" in p.stdout and "glompo_like[study]" in p.stdout
    assert "SQLALCHEMY []" in p.stdout
