"""The evaluation log: every attempted evaluation, crash-safe, in SQLite.

One writer (the manager) appends one transaction per turn of its event loop: the rows of
every report received in that turn, committed before any runner is answered.  The database
is in WAL mode with ``synchronous=NORMAL``: a committed batch survives the manager being
killed (SIGKILL included); only an operating-system crash or power loss can take the last
few batches.  A background thread checkpoints the WAL into the database file as rows come
in; :meth:`EvaluationLog.close` folds in the rest and leaves one self-contained file.
Read it while a run is going with :func:`read_log`, pandas
(``pd.read_sql("select * from evaluations", sqlite3.connect(path))``) or the ``sqlite3``
shell.

Tables
------
``evaluations``: ``eval_id`` (unique, increasing), ``opt_id``, ``x_0`` … ``x_{n-1}``, ``fx``,
``status`` (ok / failed / timed_out / crashed / memory_exceeded), ``error``, ``t_start`` (wall
clock, seconds since the epoch), ``duration`` (seconds), ``worker``, ``sample`` (which
measurement of its point: 0 unless the run sets ``samples``; the rows of one point share
``opt_id`` and ``x``), ``meta`` (a JSON object: what the task returned besides its value,
and under ``"where"`` the worker, host, pid and GPU the evaluation ran on).  Logs written
before ``sample`` and ``meta`` existed (schema version 1) are read with ``sample`` 0 and
``meta`` ``None``, and a resumed run adds the columns.

``optimizers``: ``opt_id``, ``type``, ``settings``, ``slots``, ``t_start``, ``t_end``,
``n_evals``, ``best_fx``, ``end_kind`` (converged / killed / crashed / stopped / failed),
``end_reason``, ``exitcode``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.core import EvalBatch

__all__ = ["EvaluationLog", "read_log", "read_points", "log_run_id", "connect", "LOG_NAME"]

LOG_NAME = "evaluations.sqlite"
SCHEMA_VERSION = 2
_MAX_X_COLUMNS = 1000  # above this, x is stored as one float64 BLOB column
_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999  # per statement


def connect(path: str | os.PathLike, readonly: bool = False, **kwargs: Any) -> sqlite3.Connection:
    """Open the SQLite database at ``path`` (read-only with ``readonly``); ``kwargs`` go to
    :func:`sqlite3.connect`.

    Every connection to a log goes through here, as a ``file:`` URI of the absolute path
    with every special character percent-encoded.  A path pasted into a URI unquoted would
    be cut at ``#`` or ``?`` (and the rest taken as URI syntax), ``%41`` in a name would
    open the file called ``A``, and SQLite builds that take every name starting with
    ``file:`` as a URI would misread such a relative name even without ``uri=True``.
    """
    uri = Path(os.path.abspath(path)).as_uri()
    if readonly:
        uri += "?mode=ro"
    return sqlite3.connect(uri, uri=True, **kwargs)


class EvaluationLog:
    """Append-only writer of the evaluation log (used by the manager only)."""

    ROWS_PER_INSERT = 32
    #: rows between two background checkpoints (about 0.1-1 MB of the WAL file)
    CHECKPOINT_ROWS = 2048

    def __init__(self, path: str | os.PathLike, dim: int, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.dim = dim
        self.x_columns = dim <= _MAX_X_COLUMNS
        self.db = connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread does it
        self._rows_since_checkpoint = 0
        self._closed = False
        self._group_depth = 0  # open group() blocks
        self._group_open = False  # a group's transaction has begun
        self._held: dict[bool, list[tuple[Any, ...]]] = {True: [], False: []}  # rows of the group
        xcols = [f"x_{i} REAL" for i in range(dim)] if self.x_columns else ["x BLOB"]
        with self._transaction():
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS evaluations (eval_id INTEGER PRIMARY KEY, opt_id INTEGER, "
                + ", ".join(xcols)
                + ", fx REAL, status TEXT DEFAULT 'ok', error TEXT, t_start REAL, duration REAL, worker TEXT, "
                "sample INTEGER DEFAULT 0, meta TEXT)"
            )
            have = {r[1] for r in self.db.execute("PRAGMA table_info(evaluations)")}
            for column, decl in (("sample", "INTEGER DEFAULT 0"), ("meta", "TEXT")):
                if column not in have:  # a log of schema version 1, continued by a resumed run
                    self.db.execute(f"ALTER TABLE evaluations ADD COLUMN {column} {decl}")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS optimizers (opt_id INTEGER PRIMARY KEY, type TEXT, "
                "settings TEXT, slots INTEGER, x0 TEXT, t_start REAL, t_end REAL, n_evals INTEGER, "
                "best_fx REAL, end_kind TEXT, end_reason TEXT, exitcode INTEGER)"
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("dim", str(dim))]
                + ([("run_id", run_id)] if run_id else []),
            )
        # Rows go in as multi-row INSERTs (a quarter cheaper per row than executemany),
        # ROWS_PER_INSERT at a time (within SQLite's limit on parameters per statement).
        # Batches in which every evaluation succeeded (nearly all) leave ``status`` and
        # ``error`` to the columns' defaults ('ok' and NULL): a fifth cheaper again.
        info = self.db.execute("PRAGMA table_info(evaluations)").fetchall()
        columns = [r[1] for r in info]
        defaults = {r[1]: r[4] for r in info}
        self._statements = {False: self._inserts(columns)}
        if defaults.get("status") == "'ok'":  # (a log written by an older version has no default)
            self._statements[True] = self._inserts([c for c in columns if c not in ("status", "error")])
        self._checkpointer = _Checkpointer(self.path)

    def _inserts(self, columns: list[str]) -> tuple[int, int, str, str]:
        """(parameters per row, rows per multi-row statement, one-row and multi-row
        INSERT statements) for the given columns."""
        per_row = len(columns)
        rows = max(1, min(self.ROWS_PER_INSERT, _MAX_PARAMS // per_row))
        one = "(" + ", ".join("?" * per_row) + ")"
        head = f"INSERT INTO evaluations ({', '.join(columns)}) VALUES "
        return per_row, rows, head + one, head + ", ".join([one] * rows)

    def add_batch(self, first_eval_id: int, opt_id: int, batch: EvalBatch) -> None:
        """Append a generation's rows (ids ``first_eval_id ...``) in one transaction."""
        n = len(batch)
        if not n:
            return
        xs = batch.x.tolist() if self.x_columns else [[r.tobytes()] for r in batch.x]
        fx = batch.fx.tolist()  # NaN is stored as NULL by SQLite itself
        sample = [0] * n if batch.sample is None else batch.sample.tolist()
        meta = batch.meta if batch.meta is not None else (None,) * n
        times = zip(batch.t_start.tolist(), batch.duration.tolist(), batch.worker, sample, meta, strict=True)
        all_ok = batch.all_ok and True in self._statements
        if all_ok:
            rows = [(first_eval_id + i, opt_id, *xs[i], fx[i], t, d, w, k, m)
                    for i, (t, d, w, k, m) in enumerate(times)]
        else:
            status = batch.status_texts()
            rows = [
                (first_eval_id + i, opt_id, *xs[i], fx[i], status[i], batch.error[i], t, d, w, k, m)
                for i, (t, d, w, k, m) in enumerate(times)
            ]
        if self._group_depth:  # written with the turn's other rows when the group ends
            self._held[all_ok].extend(rows)
        else:
            with self._transaction():
                self._insert(rows, all_ok)
        self._rows_since_checkpoint += n
        if not self._group_depth:
            self._maybe_checkpoint()

    def _insert(self, rows: list[tuple[Any, ...]], all_ok: bool) -> None:
        """INSERT ``rows`` (inside a transaction): multi-row statements, then the rest one
        by one.  Few calls matter: each call into SQLite releases the GIL, and with many
        runner threads getting it back can take a switch interval."""
        n = len(rows)
        per_row, per, insert_one, insert_many = self._statements[all_ok]
        full = n - n % per
        if full:
            params = list(chain.from_iterable(rows[:full]))
            step = per * per_row
            for k in range(0, len(params), step):
                self.db.execute(insert_many, params[k:k + step])
        if full < n:
            self.db.executemany(insert_one, rows[full:])

    def _maybe_checkpoint(self) -> None:
        if self._rows_since_checkpoint >= self.CHECKPOINT_ROWS:
            self._rows_since_checkpoint = 0
            self._checkpointer.request()

    @contextmanager
    def group(self) -> Iterator[None]:
        """Everything written inside is one transaction, committed when the block ends
        (also when it ends with an exception: what was written was counted).  The manager
        wraps each wake-up of its event loop in one, so the rows of every report received
        in it cost one commit, and it answers the runners only after that commit.  Nests:
        only the outermost block commits."""
        self._group_depth += 1
        try:
            yield
        finally:
            self._group_depth -= 1
            if self._group_depth == 0:
                self._end_group()

    def _end_group(self) -> None:
        """Write the rows held back by the group (the reports of one turn, all of them in
        few statements) and commit the group's transaction."""
        try:
            self._write_held()
        finally:
            if self._group_open:
                self._group_open = False
                self.db.execute("COMMIT")
        self._maybe_checkpoint()

    def _write_held(self) -> None:
        """INSERT the rows the group holds, in its transaction (not committed yet)."""
        held = [(ok, rows) for ok, rows in self._held.items() if rows]
        if held and not self._group_open:
            self.db.execute("BEGIN")
            self._group_open = True
        try:
            for ok, rows in held:
                rows.sort(key=lambda r: r[0])  # (eval_id order, as they were counted)
                self._insert(rows, ok)
        finally:
            for _, rows in held:
                rows.clear()

    def read_history(self, opt_id: int, first_eval_id: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Values (``nan`` where the evaluation failed) and points of optimizer ``opt_id``'s
        evaluations ``0 .. stop - 1`` (its own order; fewer if the log has fewer), read
        through the writer's connection: it sees the rows of the open group too.  Scans
        the log from ``first_eval_id`` (the optimizer's first evaluation) on: the manager
        reads what optimizers no longer keep in memory with it (see record/history.py)."""
        if self._group_depth:
            self._write_held()  # (still committed when the group ends, as before)
        xcols = ", ".join(f"x_{i}" for i in range(self.dim)) if self.x_columns else "x"
        query = (f"SELECT status, fx, {xcols} FROM evaluations WHERE eval_id >= ? AND opt_id = ? "
                 "ORDER BY eval_id LIMIT ?")
        if self._closed:  # (after the run: the file, read-only)
            db = connect(self.path, readonly=True)
            try:
                rows = db.execute(query, (first_eval_id, opt_id, stop)).fetchall()
            finally:
                db.close()
        else:
            rows = self.db.execute(query, (first_eval_id, opt_id, stop)).fetchall()
        fx = np.array([v if s in ("ok", None) and v is not None else np.nan for s, v, *_ in rows], dtype=float)
        if self.x_columns:
            xs = np.array([r[2:] for r in rows], dtype=float).reshape(-1, self.dim)
        else:
            xs = np.array([np.frombuffer(r[2]) for r in rows], dtype=float).reshape(-1, self.dim)
        return fx, xs

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One explicit transaction (the connection is in autocommit mode, where a bare
        ``executemany`` would commit every row separately).  Inside :meth:`group`, part of
        the group's transaction."""
        if self._group_depth:
            if not self._group_open:
                self.db.execute("BEGIN")
                self._group_open = True
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def describe_run(self, description: dict[str, Any]) -> None:
        """Store the run's settings (the summary's ``settings`` section) in the ``meta``
        table under ``run``, as JSON, so that readers of a running log (the dashboard)
        see them before ``summary.yml`` exists."""
        from .summary import _plain

        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('run', ?)", (json.dumps(_plain(description)),))

    def start_optimizer(self, opt_id: int, opt_type: str, settings: str, slots: int,
                        x0: np.ndarray, t_start: float) -> None:
        with self._transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO optimizers (opt_id, type, settings, slots, x0, t_start) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (opt_id, opt_type, settings, slots, json.dumps(np.asarray(x0).tolist()), t_start),
            )

    def end_optimizer(self, opt_id: int, t_end: float, n_evals: int, best_fx: float,
                      end_kind: str, end_reason: str, exitcode: int | None) -> None:
        best = None if not np.isfinite(best_fx) else float(best_fx)
        with self._transaction():
            self.db.execute(
                "UPDATE optimizers SET t_end=?, n_evals=?, best_fx=?, end_kind=?, end_reason=?, "
                "exitcode=? WHERE opt_id=?",
                (t_end, n_evals, best, end_kind, end_reason, exitcode, opt_id),
            )

    def rollback(self, last_eval_id: int, next_opt_id: int, alive: list[int]) -> int:
        """Resuming from a checkpoint: evaluations after ``last_eval_id`` and optimizers from
        ``next_opt_id`` on (a later session, killed after the checkpoint, made them) move to
        the tables ``evaluations_rolled_back`` and ``optimizers_rolled_back`` (nothing
        evaluated is deleted), and the optimizers that go on are reopened.  Returns how many
        evaluations moved."""
        with self._transaction():
            for table, where, value in (("evaluations", "eval_id >", last_eval_id),
                                        ("optimizers", "opt_id >=", next_opt_id)):
                self.db.execute(f"CREATE TABLE IF NOT EXISTS {table}_rolled_back AS SELECT * FROM {table} WHERE 0")
                self.db.execute(f"INSERT INTO {table}_rolled_back SELECT * FROM {table} WHERE {where} ?", (value,))
            n = self.db.execute("DELETE FROM evaluations WHERE eval_id > ?", (last_eval_id,)).rowcount
            self.db.execute("DELETE FROM optimizers WHERE opt_id >= ?", (next_opt_id,))
            self.db.executemany(
                "UPDATE optimizers SET t_end=NULL, end_kind=NULL, end_reason=NULL, exitcode=NULL WHERE opt_id=?",
                [(i,) for i in alive],
            )
        return n

    def close(self) -> None:
        """Fold the WAL into the database file (one self-contained file remains) and close."""
        self._checkpointer.close()
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.close()
        self._closed = True


# A process forked while the checkpointer is inside SQLite would inherit SQLite's locks as
# they were (held, by a thread that does not exist in the child).  Forks wait for a
# checkpoint in progress to end (a few milliseconds at most).
_NO_FORK = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_NO_FORK.acquire, after_in_parent=_NO_FORK.release,
                        after_in_child=_NO_FORK.release)


class _Checkpointer:
    """Copies the WAL into the database file in a background thread, as the run goes.

    A checkpoint writes the pages and waits for the disk (``fsync``); SQLite would
    otherwise do it in the writer (the manager) every 1000 pages, and once more, over
    everything left, when the log is closed, which is when the caller is waiting for the
    run to end.  Checkpointing in passive mode never blocks the writer, and SQLite
    releases the GIL while it works.  The thread starts with the log, before the run's
    processes do: starting a thread waits until it runs, which on a machine busy with
    those processes can take milliseconds.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wanted = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="glompo-log-checkpoint", daemon=True
        )
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        try:
            db = connect(self.path, isolation_level=None)
        except sqlite3.Error:  # then the final checkpoint does it all
            return
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._closing:
                    return
                with _NO_FORK:
                    try:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    except sqlite3.Error:  # busy or gone: the final checkpoint does the rest
                        pass
        finally:
            db.close()

    def close(self) -> None:
        if self._thread is not None:
            self._closing = True
            self._wanted.set()
            self._thread.join()
            self._thread = None


def _log_path(where: str | os.PathLike) -> Path:
    p = Path(where)
    if p.is_dir():
        p = p / LOG_NAME
    if not p.exists():
        raise FileNotFoundError(f"no evaluation log at {p} (a run writes it into its working_dir)")
    return p


def read_log(where: str | os.PathLike, optimizers: bool = False) -> Any:
    """Read a run's evaluation log (``where``: its working directory or the database file),
    or a study's (``where``: its storage URL, ``"sqlite:///..."`` or ``"postgresql://..."``;
    the tables have the columns ``manager_id`` and ``local_eval_id`` or ``local_opt_id``
    besides, and ids are study-wide).

    Returns the ``evaluations`` table (or, with ``optimizers=True``, the ``optimizers``
    table) as a pandas DataFrame when pandas is installed, otherwise as a NumPy structured
    array with the same column names.  The ``meta`` column holds dicts (parsed from the
    JSON the log stores; ``None`` where there is none).  Safe to call while the run is going.
    """
    table = "optimizers" if optimizers else "evaluations"
    if isinstance(where, str) and "://" in where:  # a study's storage URL
        from .study.reading import study_file
        from .study.storage import open_existing

        where = study_file(where) or where  # a SQLite study is read as a file, as a log is
    if isinstance(where, str) and "://" in where:  # a study on a database server
        study = open_existing(where)
        try:
            names, rows = study.read_rows(table)
        finally:
            study.close()
    else:
        path = _log_path(where)
        db = connect(path, readonly=True)
        try:
            cur = db.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        finally:
            db.close()
    if not optimizers and "x" in names:  # wide problems: unpack the BLOB column
        i = names.index("x")
        dim = len(np.frombuffer(rows[0][i])) if rows else 0
        names = names[:i] + [f"x_{k}" for k in range(dim)] + names[i + 1:]
        rows = [r[:i] + tuple(np.frombuffer(r[i]).tolist()) + r[i + 1:] for r in rows]
    if not optimizers:
        names, rows = _with_sample_and_meta(names, rows)
    try:
        import pandas as pd
    except ImportError:
        return _structured(names, rows)
    return pd.DataFrame.from_records(rows, columns=names)


def log_run_id(where: str | os.PathLike) -> str | None:
    """The ``run_id`` of the run whose log is at ``where`` (``None``: no log, or an older
    one without it)."""
    try:
        path = _log_path(where)
    except FileNotFoundError:
        return None
    try:
        db = connect(path, readonly=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'run_id'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return None if row is None else row[0]


def read_points(where: str | os.PathLike, dim: int, last_eval_id: int,
                wanted: dict[int, int] | None = None) -> dict[int, np.ndarray]:
    """The evaluated points of each optimizer, ``{opt_id: (n, dim) array}`` in evaluation
    order, from evaluations ``1 .. last_eval_id`` of the log (used to rebuild optimizers'
    histories when a run resumes from a checkpoint, which does not carry them).  With
    ``wanted`` (``{opt_id: n}``), only the last ``n`` points of those optimizers, read
    backwards from ``last_eval_id`` until each has its ``n``."""
    path = _log_path(where)
    db = connect(path, readonly=True)
    try:
        names = [r[1] for r in db.execute("PRAGMA table_info(evaluations)")]
        cols = ", ".join(f"x_{i}" for i in range(dim)) if "x_0" in names or dim == 0 else "x"
        grouped: dict[int, list[Any]] = {}
        if wanted is None:
            cur = db.execute(f"SELECT opt_id, {cols} FROM evaluations WHERE eval_id <= ? ORDER BY eval_id",
                             (last_eval_id,))
            for r in cur:
                grouped.setdefault(r[0], []).append(np.frombuffer(r[1]) if cols == "x" else r[1:])
        else:
            left = {k: n for k, n in wanted.items() if n > 0}
            cur = db.execute(f"SELECT opt_id, {cols} FROM evaluations WHERE eval_id <= ? ORDER BY eval_id DESC",
                             (last_eval_id,))
            for r in cur if left else ():
                if left.get(r[0], 0) > 0:
                    grouped.setdefault(r[0], []).append(np.frombuffer(r[1]) if cols == "x" else r[1:])
                    left[r[0]] -= 1
                    if not left[r[0]]:
                        del left[r[0]]
                        if not left:
                            break
            for v in grouped.values():
                v.reverse()
    finally:
        db.close()
    return {k: np.array(v, dtype=float).reshape(-1, dim) for k, v in grouped.items()}


def _with_sample_and_meta(names: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """Evaluation rows with ``sample`` and ``meta`` (added for a log of schema version 1),
    ``meta`` parsed from its JSON text."""
    if "sample" not in names:
        names, rows = names + ["sample"], [(*r, 0) for r in rows]
    if "meta" not in names:
        return names + ["meta"], [(*r, None) for r in rows]
    j = names.index("meta")
    return names, [r[:j] + (None if r[j] is None else json.loads(r[j]),) + r[j + 1:] for r in rows]


def _structured(names: list[str], rows: list[tuple]) -> np.ndarray:
    text = {"status", "error", "worker", "type", "settings", "x0", "end_kind", "end_reason", "meta", "manager_id"}
    ints = {"eval_id", "opt_id", "slots", "n_evals", "exitcode", "sample", "local_eval_id", "local_opt_id"}
    dtype = [(n, object if n in text else (np.int64 if n in ints else float)) for n in names]
    out = np.empty(len(rows), dtype=dtype)
    for j, (n, _) in enumerate(dtype):
        col = [r[j] for r in rows]
        if n in ints:
            col = [-1 if v is None else v for v in col]
        elif n not in text:
            col = [np.nan if v is None else v for v in col]
        out[n] = col
    return out
