"""The evaluation log: every attempted evaluation, crash-safe, in SQLite.

One writer (the manager) appends one transaction per generation batch.  The database is in
WAL mode with ``synchronous=NORMAL``: a committed batch survives the manager being killed
(SIGKILL included); only an operating-system crash or power loss can take the last few
batches.  Read it while a run is going with :func:`read_log`, pandas
(``pd.read_sql("select * from evaluations", sqlite3.connect(path))``) or the ``sqlite3``
shell.

Tables
------
``evaluations``: ``eval_id`` (unique, increasing), ``opt_id``, ``x_0`` … ``x_{n-1}``, ``fx``,
``status`` (ok / failed / timed_out / crashed), ``error``, ``t_start`` (wall clock, seconds
since the epoch), ``duration`` (seconds), ``worker``.

``optimizers``: ``opt_id``, ``type``, ``settings``, ``slots``, ``t_start``, ``t_end``,
``n_evals``, ``best_fx``, ``end_kind`` (converged / killed / crashed / stopped / failed),
``end_reason``, ``exitcode``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from .evaluation.core import EvalBatch

__all__ = ["EvaluationLog", "read_log", "read_points", "LOG_NAME"]

LOG_NAME = "evaluations.sqlite"
SCHEMA_VERSION = 1
_MAX_X_COLUMNS = 1000  # above this, x is stored as one float64 BLOB column
_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999  # per statement


class EvaluationLog:
    """Append-only writer of the evaluation log (used by the manager only)."""

    ROWS_PER_INSERT = 32

    def __init__(self, path: str | os.PathLike, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self.x_columns = dim <= _MAX_X_COLUMNS
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        xcols = [f"x_{i} REAL" for i in range(dim)] if self.x_columns else ["x BLOB"]
        with self._transaction():
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS evaluations (eval_id INTEGER PRIMARY KEY, opt_id INTEGER, "
                + ", ".join(xcols)
                + ", fx REAL, status TEXT, error TEXT, t_start REAL, duration REAL, worker TEXT)"
            )
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS optimizers (opt_id INTEGER PRIMARY KEY, type TEXT, "
                "settings TEXT, slots INTEGER, x0 TEXT, t_start REAL, t_end REAL, n_evals INTEGER, "
                "best_fx REAL, end_kind TEXT, end_reason TEXT, exitcode INTEGER)"
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("dim", str(dim))],
            )
        self._row_params = (dim if self.x_columns else 1) + 8
        # Rows go in as multi-row INSERTs (a quarter cheaper per row than executemany),
        # ROWS_PER_INSERT at a time (within SQLite's limit on parameters per statement).
        self._rows_per_insert = max(1, min(self.ROWS_PER_INSERT, _MAX_PARAMS // self._row_params))
        one = "(" + ", ".join("?" * self._row_params) + ")"
        self._insert_one = f"INSERT INTO evaluations VALUES {one}"
        self._insert_many = f"INSERT INTO evaluations VALUES {', '.join([one] * self._rows_per_insert)}"

    def add_batch(self, first_eval_id: int, opt_id: int, batch: EvalBatch) -> None:
        """Append a generation's rows (ids ``first_eval_id ...``) in one transaction."""
        n = len(batch)
        if not n:
            return
        xs = batch.x.tolist() if self.x_columns else [[r.tobytes()] for r in batch.x]
        fx = batch.fx.tolist()  # NaN is stored as NULL by SQLite itself
        status = batch.status_texts()
        rows = [
            (first_eval_id + i, opt_id, *xs[i], fx[i], status[i], batch.error[i], t, d, batch.worker[i])
            for i, (t, d) in enumerate(zip(batch.t_start.tolist(), batch.duration.tolist(), strict=True))
        ]
        per = self._rows_per_insert
        full = n - n % per
        with self._transaction():
            if full:
                params = list(chain.from_iterable(rows[:full]))
                step = per * self._row_params
                for k in range(0, len(params), step):
                    self.db.execute(self._insert_many, params[k:k + step])
            if full < n:
                self.db.executemany(self._insert_one, rows[full:])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One explicit transaction (the connection is in autocommit mode, where a bare
        ``executemany`` would commit every row separately)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

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
        """Resuming from a checkpoint: forget evaluations after ``last_eval_id`` and
        optimizers from ``next_opt_id`` on (a later, killed session made them), and reopen
        the optimizers that go on.  Returns how many evaluations were dropped."""
        with self._transaction():
            n = self.db.execute("DELETE FROM evaluations WHERE eval_id > ?", (last_eval_id,)).rowcount
            self.db.execute("DELETE FROM optimizers WHERE opt_id >= ?", (next_opt_id,))
            self.db.executemany(
                "UPDATE optimizers SET t_end=NULL, end_kind=NULL, end_reason=NULL, exitcode=NULL WHERE opt_id=?",
                [(i,) for i in alive],
            )
        return n

    def set_meta(self, **items: Any) -> None:
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in items.items()]
            )

    def close(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.close()


def _log_path(where: str | os.PathLike) -> Path:
    p = Path(where)
    if p.is_dir():
        p = p / LOG_NAME
    if not p.exists():
        raise FileNotFoundError(f"no evaluation log at {p} (a run writes it into its working_dir)")
    return p


def read_log(where: str | os.PathLike, optimizers: bool = False) -> Any:
    """Read a run's evaluation log (``where``: its working directory or the database file).

    Returns the ``evaluations`` table (or, with ``optimizers=True``, the ``optimizers``
    table) as a pandas DataFrame when pandas is installed, otherwise as a NumPy structured
    array with the same column names.  Safe to call while the run is going.
    """
    path = _log_path(where)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        table = "optimizers" if optimizers else "evaluations"
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
    try:
        import pandas as pd
    except ImportError:
        return _structured(names, rows)
    return pd.DataFrame.from_records(rows, columns=names)


def read_points(where: str | os.PathLike, dim: int, last_eval_id: int) -> dict[int, np.ndarray]:
    """The evaluated points of each optimizer, ``{opt_id: (n, dim) array}`` in evaluation
    order, from evaluations ``1 .. last_eval_id`` of the log (used to rebuild optimizers'
    histories when a run resumes from a checkpoint, which does not carry them)."""
    path = _log_path(where)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[1] for r in db.execute("PRAGMA table_info(evaluations)")]
        cols = ", ".join(f"x_{i}" for i in range(dim)) if "x_0" in names or dim == 0 else "x"
        rows = db.execute(
            f"SELECT opt_id, {cols} FROM evaluations WHERE eval_id <= ? ORDER BY eval_id", (last_eval_id,)
        ).fetchall()
    finally:
        db.close()
    grouped: dict[int, list[Any]] = {}
    for r in rows:
        grouped.setdefault(r[0], []).append(np.frombuffer(r[1]) if cols == "x" else r[1:])
    return {k: np.array(v, dtype=float).reshape(-1, dim) for k, v in grouped.items()}


def _structured(names: list[str], rows: list[tuple]) -> np.ndarray:
    text = {"status", "error", "worker", "type", "settings", "x0", "end_kind", "end_reason"}
    ints = {"eval_id", "opt_id", "slots", "n_evals", "exitcode"}
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
