"""What a run leaves behind and shows: report plots, CSV/HDF5 export, live status, CLI."""

from __future__ import annotations

import csv
import io
import logging
import math
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from glompo_like import ConfigError, GlompoError, GloMPOManager, read_log
from glompo_like.cli import main
from glompo_like.evaluation.core import EvalBatch, EvalStatus, Outcome
from glompo_like.optimizers import CMAOptimizer, RandomOptimizer
from glompo_like.policies.checkers import MaxFuncCalls
from glompo_like.policies.hunters import MinFuncCalls
from glompo_like.policies.selectors import CycleSelector
from glompo_like.problems.functions import rastrigin, sphere
from glompo_like.record.export import CSV_NAMES, HDF5_NAME, export_log
from glompo_like.record.ledger import OptimizerRecord, RunCounters
from glompo_like.record.log import LOG_NAME, EvaluationLog
from glompo_like.record.report import REPORT_NAMES, make_report
from glompo_like.record.status import LogStatus, RichStatus, StatusReporter, make_status
from glompo_like.record.view import RunView
from glompo_like.states import EndKind

pytestmark = pytest.mark.timeout(60)

DIM = 4
BUDGET = 600


def _run(working_dir, budget=BUDGET, **kw) -> GloMPOManager:
    args = dict(
        task=rastrigin,
        bounds=[(-5.0, 5.0)] * DIM,
        backend="threads",
        max_jobs=3,
        opt_selector=CycleSelector([(CMAOptimizer, {"popsize": 8})]),
        convergence_checker=MaxFuncCalls(budget),
        killing_conditions=MinFuncCalls(40),  # every hunt kills: the plots show kills
        hunt_frequency=20,
        working_dir=working_dir,
        seed=2,
    )
    args.update(kw)
    return GloMPOManager(**args)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run of a few hundred evaluations (shared, never modified by tests)."""
    d = tmp_path_factory.mktemp("run")
    with _run(d) as m:
        m.start_manager()
    return d


def _columns(table) -> list[str]:
    """Column names of what read_log returns: a DataFrame or a NumPy structured array."""
    return list(table.columns) if hasattr(table, "columns") else list(table.dtype.names)


def _floats(table, name: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in table[name]], dtype=float)


def _read_csv(path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _check_pngs(files, where) -> None:
    from matplotlib.image import imread

    assert [f.name for f in files] == list(REPORT_NAMES)
    for f in files:
        assert f.parent == where
        assert f.stat().st_size > 1000, f
        img = imread(f)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert not list(where.glob("*.tmp*"))


# --------------------------------------------------------------------------- report
def test_report_writes_readable_pngs(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    backend, rc = matplotlib.get_backend(), dict(matplotlib.rcParams)
    files = make_report(run_dir, tmp_path / "figs")
    _check_pngs(files, tmp_path / "figs")
    assert matplotlib.get_backend() == backend and dict(matplotlib.rcParams) == rc


def test_report_does_not_use_pyplot(run_dir, tmp_path):
    """In a fresh interpreter, making a report imports no pyplot and warns about nothing
    (pyplot may be in this test process anyway: pycma imports it when it can)."""
    pytest.importorskip("matplotlib")
    code = (
        "import sys\n"
        "from glompo_like.record.report import make_report\n"
        f"make_report({str(run_dir)!r}, {str(tmp_path)!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code],
                          capture_output=True, text=True, timeout=50, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_report_defaults_to_the_run_dir_and_accepts_the_log_file(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    _check_pngs(make_report(copy), copy)
    _check_pngs(make_report(copy / LOG_NAME), copy)


def test_report_on_a_killed_run_without_end_times(run_dir, tmp_path):
    """A run killed hard leaves optimizers with no t_end / end_kind: still plotted (their
    bars reach the last evaluation) and the log is not modified."""
    pytest.importorskip("matplotlib")
    copy = tmp_path / "killed"
    shutil.copytree(run_dir, copy)
    db = sqlite3.connect(copy / LOG_NAME)
    with db:
        db.execute("UPDATE optimizers SET t_end=NULL, end_kind=NULL, end_reason=NULL, "
                   "n_evals=NULL, best_fx=NULL, exitcode=NULL WHERE opt_id % 2 = 1")
    db.close()
    opts = read_log(copy, optimizers=True)
    assert np.isnan(_floats(opts, "t_end")).any()
    before = (copy / LOG_NAME).read_bytes()

    _check_pngs(make_report(copy, tmp_path / "figs"), tmp_path / "figs")
    assert (copy / LOG_NAME).read_bytes() == before
    files = export_log(copy, out_dir=tmp_path / "csv")
    header, rows = _read_csv(files[1])
    t_end = [r[header.index("t_end")] for r in rows]
    assert "" in t_end  # missing values are empty fields


def test_report_and_export_while_the_run_is_going(tmp_path):
    """The log of a run that is still going: read-only snapshot, optimizers with no end."""
    pytest.importorskip("matplotlib")
    gate = threading.Event()
    lock = threading.Lock()
    count = [0]

    def task(x):
        with lock:
            count[0] += 1
            n = count[0]
        if n > 200:
            gate.wait(30)  # hold the run here until the test has looked at the log
        return sphere(x)

    d = tmp_path / "running"
    # report_interval=0: every generation is reported before the next one starts, so all
    # that ran before the task blocks is in the log
    manager = _run(d, budget=400, task=task, killing_conditions=False, report_interval=0)
    errors: list[BaseException] = []

    def go():
        try:
            with manager:
                manager.start_manager()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if len(read_log(d)) >= 100:
                    break
            except (FileNotFoundError, sqlite3.OperationalError):  # not created yet
                pass
            assert time.monotonic() < deadline, "the run did not log 100 evaluations in 30 s"
            time.sleep(0.02)
        _check_pngs(make_report(d, tmp_path / "figs"), tmp_path / "figs")
        files = export_log(d, out_dir=tmp_path / "csv")
        header, rows = _read_csv(files[1])
        assert any(r[header.index("t_end")] == "" for r in rows)  # still running
        n_csv = len(_read_csv(files[0])[1])
        assert 100 <= n_csv <= 200 + 3 * 8
        assert t.is_alive()
    finally:
        gate.set()
        t.join(30)
    assert not errors, errors
    assert len(read_log(d)) >= 400


def test_report_on_an_empty_log(tmp_path):
    pytest.importorskip("matplotlib")
    EvaluationLog(tmp_path / LOG_NAME, dim=2).close()
    _check_pngs(make_report(tmp_path), tmp_path)


def test_report_names_the_extra_when_matplotlib_is_missing(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"pip install 'glompo_like\[plots\]'"):
        make_report(run_dir, tmp_path)
    assert not list(tmp_path.iterdir())


def test_report_of_a_missing_log(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(FileNotFoundError, match="no evaluation log"):
        make_report(tmp_path / "nothing")
    sqlite3.connect(tmp_path / LOG_NAME).close()  # a file with no tables (yet)
    with pytest.raises(GlompoError, match="has no evaluations and no optimizers table"):
        make_report(tmp_path, tmp_path / "out")
    with pytest.raises(GlompoError, match="only just started"):
        export_log(tmp_path, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- export
def test_export_csv_matches_read_log(run_dir, tmp_path):
    files = export_log(run_dir, out_dir=tmp_path)
    assert [f.name for f in files] == [CSV_NAMES["evaluations"], CSV_NAMES["optimizers"]]

    evals = read_log(run_dir)
    header, rows = _read_csv(files[0])
    assert header == _columns(evals)
    assert len(rows) == len(evals) >= BUDGET
    fx = np.array([float(r[header.index("fx")]) if r[header.index("fx")] else np.nan for r in rows])
    np.testing.assert_array_equal(fx, _floats(evals, "fx"))  # exact: floats round-trip
    x0 = np.array([float(r[header.index("x_0")]) for r in rows])
    np.testing.assert_array_equal(x0, _floats(evals, "x_0"))
    assert {r[header.index("status")] for r in rows} == {"ok"}

    opts = read_log(run_dir, optimizers=True)
    header, rows = _read_csv(files[1])
    assert header == _columns(opts)
    assert len(rows) == len(opts)
    assert [int(r[0]) for r in rows] == [int(i) for i in opts["opt_id"]]
    assert "killed" in {r[header.index("end_kind")] for r in rows}


def test_export_of_a_wide_problem_unpacks_the_points(tmp_path):
    """Above 1000 parameters the log stores x as one BLOB: exported as x_0 ... x_{n-1}."""
    dim = 1001
    log = EvaluationLog(tmp_path / LOG_NAME, dim=dim)
    xs = np.arange(3 * dim, dtype=float).reshape(3, dim) / 7
    now = time.time()
    outcomes = [Outcome(1.5, EvalStatus.OK, now, 0.1, "w"),
                Outcome(math.nan, EvalStatus.FAILED, now, 0.1, "w", "boom"),
                Outcome(0.5, EvalStatus.OK, now, 0.1, "w")]
    log.start_optimizer(1, "RandomOptimizer", "RandomOptimizer()", 1, xs[0], now)
    log.add_batch(1, 1, EvalBatch.from_outcomes(xs, outcomes))
    log.close()

    files = export_log(tmp_path, out_dir=tmp_path / "out")
    header, rows = _read_csv(files[0])
    assert header == _columns(read_log(tmp_path))
    assert header[2] == "x_0" and header[2 + dim - 1] == f"x_{dim - 1}"
    assert len(rows) == 3
    assert float(rows[2][2 + dim - 1]) == xs[2, -1]
    assert rows[1][header.index("fx")] == "" and rows[1][header.index("error")] == "boom"


def test_export_hdf5(run_dir, tmp_path):
    h5py = pytest.importorskip("h5py")
    files = export_log(run_dir, csv=False, hdf5=True, out_dir=tmp_path)
    assert [f.name for f in files] == [HDF5_NAME]
    evals = read_log(run_dir)
    opts = read_log(run_dir, optimizers=True)
    with h5py.File(files[0], "r") as f:
        g = f["evaluations"]
        assert [str(c) for c in g.attrs["columns"]] == _columns(evals)
        assert len(g["fx"]) == len(evals)
        np.testing.assert_array_equal(g["fx"][:], _floats(evals, "fx"))
        assert g["status"].asstr()[0] == "ok"
        assert len(f["optimizers"]["opt_id"]) == len(opts)
        assert f.attrs["dim"] == str(DIM)


def test_export_names_the_extra_when_h5py_is_missing(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install 'glompo_like\[hdf5\]'"):
        export_log(run_dir, hdf5=True, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


# --------------------------------------------------------------------------- status
class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _fake_view():
    """A RunView of two optimizers (1 killed, 2 alive and best), with a scripted clock."""
    clock = FakeClock()
    counters = RunCounters()
    records: dict[int, OptimizerRecord] = {}
    view = RunView(counters, records, 0.0, clock=clock)

    def add(opt_id: int, fx: list[float], opt_type: str = "CMAOptimizer") -> None:
        rec = records.get(opt_id)
        if rec is None:
            rec = records[opt_id] = OptimizerRecord(opt_id, opt_type, f"{opt_type}()", 1, 0.0, np.zeros(2), 2)
            counters.opts_started += 1
        f = np.array(fx, dtype=float)
        rec.add_batch(np.zeros((len(f), 2)), f, np.ones(len(f), bool))
        counters.f_evals += len(f)
        if rec.best_fx < counters.best_fx:
            counters.best_fx, counters.best_opt_id = rec.best_fx, opt_id

    return view, clock, counters, records, add


def test_log_status_lines(caplog):
    view, clock, counters, records, add = _fake_view()
    status = LogStatus()
    caplog.set_level(logging.INFO, logger="glompo_like.status")

    status.update(view)  # nothing evaluated yet, no time passed
    add(1, [5.0] * 50, "RandomOptimizer")
    add(2, [3.0, 0.25] * 25)
    clock.t = 2.0
    status.update(view)
    records[1].decide_end(EndKind.KILLED, "test", 2.0, finished=True)
    counters.opts_killed += 1
    add(2, [0.125] * 100)
    clock.t = 3.0
    status.update(view)
    status.close(view)

    recs = [r for r in caplog.records if r.name == "glompo_like.status"]
    assert len(recs) == 4 and all(r.levelno == logging.INFO for r in recs)
    first, second, third, final = (r.getMessage() for r in recs)
    assert first.startswith("0 evaluations (-/s) | best none yet")
    assert "100 evaluations (50.0/s)" in second
    assert "best 0.25 by optimizer 2 (CMAOptimizer)" in second
    assert "optimizers: 2 alive, 0 killed, 0 converged, 0 crashed" in second
    assert "200 evaluations (100.0/s)" in third  # rate since the last update
    assert "best 0.125 by optimizer 2" in third
    assert "optimizers: 1 alive, 1 killed, 0 converged, 0 crashed" in third
    assert final.startswith("finished: 200 evaluations (66.7/s)")  # whole-run average


def test_rich_status_draws_a_table():
    pytest.importorskip("rich")
    from rich.console import Console

    out = io.StringIO()
    status = RichStatus(console=Console(file=out, force_terminal=True, width=140, color_system=None))
    view, clock, counters, records, add = _fake_view()
    add(1, [5.0] * 10, "RandomOptimizer")
    add(7, [2.0] * 10)
    clock.t = 1.0
    status.update(view)
    add(7, [0.5] * 10)
    clock.t = 2.0
    status.update(view)
    records[7].decide_end(EndKind.CONVERGED, "test", 2.0, finished=True)
    status.close(view)
    status.close(view)  # idempotent

    text = out.getvalue()
    assert "running after 1.0 s" in text
    assert "finished after 2.0 s" in text
    assert "RandomOptimizer" in text and "CMAOptimizer" in text
    assert "0.5 by optimizer 7 (CMAOptimizer)" in text
    assert "20 (20.0/s)" in text  # evaluations, rate since the start
    assert "30 (10.0/s)" in text  # ... since the last update
    assert "30 (average 15.0/s)" in text
    assert "converged" in text  # the final table lists how optimizers ended


def test_rich_status_close_without_update_prints_once():
    pytest.importorskip("rich")
    from rich.console import Console

    out = io.StringIO()
    status = RichStatus(console=Console(file=out, width=140, color_system=None))
    view, *_ = _fake_view()
    status.close(view)
    assert "finished" in out.getvalue() and "no optimizer" in out.getvalue()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_status_kinds():
    assert make_status(None) is None
    assert isinstance(make_status("log"), LogStatus)
    assert isinstance(make_status("auto", stream=io.StringIO()), LogStatus)  # not a terminal
    try:
        import rich  # noqa: F401
    except ImportError:
        assert isinstance(make_status("auto", stream=_Tty()), LogStatus)
        with pytest.raises(ImportError, match=r"glompo_like\[progress\]"):
            make_status("rich")
    else:
        assert isinstance(make_status("auto", stream=_Tty()), RichStatus)
        assert isinstance(make_status("rich"), RichStatus)

    class Mine(StatusReporter):
        def show(self, view):
            pass

    mine = Mine()
    assert make_status(mine) is mine
    with pytest.raises(ConfigError, match="status must be one of"):
        make_status("fancy")
    with pytest.raises(ConfigError, match="update"):
        make_status(42)


def test_rich_status_names_the_extra_when_rich_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setitem(sys.modules, "rich.live", None)
    with pytest.raises(ImportError, match=r"pip install 'glompo_like\[progress\]'"):
        RichStatus()
    assert isinstance(make_status("auto", stream=_Tty()), LogStatus)


# --------------------------------------------------------------------------- CLI
def test_cli_report(run_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["report", str(run_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in REPORT_NAMES:
        assert (tmp_path / name).stat().st_size > 1000
        assert name in out


def test_cli_export(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "a")]) == 0  # default: CSV
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["evaluations.csv", "optimizers.csv"]
    assert len(_read_csv(tmp_path / "a" / "evaluations.csv")[1]) == len(read_log(run_dir))
    if _has("h5py"):
        assert main(["export", str(run_dir), "--hdf5", "--out", str(tmp_path / "b")]) == 0
        assert [p.name for p in (tmp_path / "b").iterdir()] == [HDF5_NAME]
        assert main(["export", str(run_dir), "--csv", "--hdf5", "--out", str(tmp_path / "c")]) == 0
        assert len(list((tmp_path / "c").iterdir())) == 3
    capsys.readouterr()


def test_cli_errors_exit_1(tmp_path, capsys, monkeypatch):
    assert main(["export", str(tmp_path / "nothing")]) == 1
    assert "no evaluation log" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 1
    monkeypatch.setitem(sys.modules, "h5py", None)
    EvaluationLog(tmp_path / LOG_NAME, dim=2).close()
    assert main(["export", str(tmp_path), "--hdf5"]) == 1
    assert "glompo_like[hdf5]" in capsys.readouterr().err


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_cli_help_lists_report_and_export():
    proc = subprocess.run([sys.executable, "-m", "glompo_like", "--help"],
                          capture_output=True, text=True, timeout=50, check=False)
    assert proc.returncode == 0, proc.stderr
    for cmd in ("demo", "report", "export"):
        assert cmd in proc.stdout
    for cmd in ("report", "export"):
        proc = subprocess.run([sys.executable, "-m", "glompo_like", cmd, "--help"],
                              capture_output=True, text=True, timeout=50, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "RUN_DIR" in proc.stdout and "--out" in proc.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_prints_of_each_optimizer_go_to_its_own_files(backend, tmp_path, capsys):
    import sys as _sys

    from glompo_like import GloMPOManager
    from glompo_like.policies.checkers import MaxFuncCalls
    from glompo_like.policies.selectors import CycleSelector

    original = (_sys.stdout, _sys.stderr)
    m = GloMPOManager(task=_chatty, bounds=[(-1, 1)] * 2, backend=backend, max_jobs=2, seed=1,
                      opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 4})]),
                      convergence_checker=MaxFuncCalls(40), working_dir=tmp_path, status=None)
    m.start_manager()
    assert (_sys.stdout, _sys.stderr) == original  # restored after the run
    assert "evaluating" not in capsys.readouterr().out  # nothing leaked to the terminal
    outs = sorted((tmp_path / "prints").glob("opt_*.out"))
    assert len(outs) >= 2
    for out in outs:
        text = out.read_text()
        assert text.count("evaluating") >= 4
    assert "warning from the task" in (tmp_path / "prints" / "opt_1.err").read_text()


def test_summary_has_resource_use(tmp_path):
    import yaml

    from glompo_like import GloMPOManager
    from glompo_like.policies.checkers import MaxFuncCalls

    GloMPOManager(task=_chatty, bounds=[(-1, 1)] * 2, backend="threads", max_jobs=1, seed=1,
                  convergence_checker=MaxFuncCalls(20), working_dir=tmp_path, status=None,
                  capture_prints=False).start_manager()
    summary = yaml.safe_load((tmp_path / "summary.yml").read_text())
    assert summary["resources"]["manager_cpu_s"] > 0
    assert not (tmp_path / "prints").exists()


def _chatty(x):
    import sys as _sys

    print("evaluating", list(x))
    print("warning from the task", file=_sys.stderr)
    return float(sum(v * v for v in x))


@pytest.mark.parametrize("old_schema", [False, True], ids=["new", "older-log"])
@pytest.mark.parametrize("dim", [3, 1001], ids=["columns", "blob"])
def test_log_keeps_every_row_whatever_the_batch_size(tmp_path, dim, old_schema):
    """Rows go in as multi-row INSERTs of ROWS_PER_INSERT rows plus single rows for the
    rest: batch sizes around that boundary, with and without failures (a batch without
    leaves status and error to the columns' defaults), read back exactly.  A log written
    before those defaults existed (resumed runs) gets every status written out."""
    rng = np.random.default_rng(4)
    if old_schema:
        xcols = ", ".join(f"x_{i} REAL" for i in range(dim)) if dim <= 1000 else "x BLOB"
        db = sqlite3.connect(tmp_path / LOG_NAME)
        db.execute(f"CREATE TABLE evaluations (eval_id INTEGER PRIMARY KEY, opt_id INTEGER, {xcols}, fx REAL, "
                   "status TEXT, error TEXT, t_start REAL, duration REAL, worker TEXT)")
        db.commit()
        db.close()
    log = EvaluationLog(tmp_path / LOG_NAME, dim)
    per = log.ROWS_PER_INSERT
    xs, rows, first = [], [], 1
    for k, n in enumerate((1, per - 1, per, per + 1, 2 * per + 7, per + 1, 2 * per + 7)):
        x = rng.uniform(-1, 1, (n, dim))
        outs = []
        for i in range(n):
            t = 1.7e9 + first + i
            if i % 5 == 2 and k % 2:
                outs.append(Outcome(math.nan, EvalStatus.FAILED, t, 0.5, f"w{i % 3}", f"boom {first + i}"))
            else:
                outs.append(Outcome(float(x[i, 0]), EvalStatus.OK, t, 0.25, f"w{i % 3}"))
        log.add_batch(first, 7, EvalBatch.from_outcomes(x, outs))
        xs.append(x)
        rows += outs
        first += n
    log.close()
    got = read_log(tmp_path)
    assert list(got["eval_id"]) == list(range(1, first))
    assert (got["opt_id"] == 7).all()
    col = lambda name: np.asarray(got[name])  # noqa: E731  (a DataFrame, or a structured array)
    np.testing.assert_array_equal(np.column_stack([col(f"x_{k}") for k in range(dim)]), np.concatenate(xs))
    np.testing.assert_array_equal(col("fx").astype(float), [o.fx for o in rows])  # NaN where failed
    assert list(got["status"]) == [o.status.value for o in rows]
    assert [e if isinstance(e, str) else None for e in got["error"]] == [o.error for o in rows]
    assert list(got["worker"]) == [o.worker for o in rows]
    np.testing.assert_array_equal(col("t_start").astype(float), [o.t_start for o in rows])
    np.testing.assert_array_equal(col("duration").astype(float), [o.duration for o in rows])


@pytest.mark.timeout(60)
def test_the_log_is_checkpointed_in_the_background_and_closes_into_one_file(tmp_path, monkeypatch):
    """While rows come in, a background thread folds the WAL into the database file (so
    closing has little left to do); a reader sees every committed row meanwhile; after
    close one self-contained file is left."""
    monkeypatch.setattr(EvaluationLog, "CHECKPOINT_ROWS", 100)
    path = tmp_path / LOG_NAME
    log = EvaluationLog(path, 3)
    size0 = path.stat().st_size
    rng = np.random.default_rng(0)
    first = 1
    for _ in range(30):
        x = rng.uniform(-1, 1, (50, 3))
        outs = [Outcome(float(v), EvalStatus.OK, 1.7e9, 0.1, "w") for v in x[:, 0]]
        log.add_batch(first, 1, EvalBatch.from_outcomes(x, outs))
        first += 50
    deadline = time.monotonic() + 20
    while path.stat().st_size <= size0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.stat().st_size > size0  # pages reached the database file before close
    assert len(read_log(path)) == 1500  # a reader meanwhile sees every row
    assert any(t.name == "glompo-log-checkpoint" for t in threading.enumerate())
    log.close()
    assert not any(t.name == "glompo-log-checkpoint" for t in threading.enumerate())
    assert not (tmp_path / (LOG_NAME + "-wal")).exists()
    assert list(read_log(path)["eval_id"]) == list(range(1, 1501))
