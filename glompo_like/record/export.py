"""Export a run's evaluation log to CSV (standard library) or HDF5 (h5py, optional).

The evaluation log (``evaluations.sqlite``, see :mod:`glompo_like.record.log`) is the record of a
run; this module copies its two tables into formats other tools read directly::

    from glompo_like.record.export import export_log

    export_log("run1")                          # run1/evaluations.csv, run1/optimizers.csv
    export_log("run1", csv=False, hdf5=True)    # run1/evaluations.h5 (needs h5py)

or, from the shell, ``glompo-like export run1 [--csv] [--hdf5] [--out DIR]``.

The log is opened read-only and both tables are read in one transaction, so exporting the
log of a run that is still going (or was killed) is safe and gives a consistent snapshot.
The columns are those of :func:`~glompo_like.read_log`: wide problems, whose points are
stored as one BLOB column, are exported with one ``x_i`` column per parameter, and
``meta`` is written as the JSON text the log stores.
"""

from __future__ import annotations

import csv as _csv
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, GlompoError
from .log import LOG_NAME, _log_path, connect

__all__ = ["export_log", "CSV_NAMES", "HDF5_NAME"]

#: file names written by ``export_log(csv=True)``: one per table of the log
CSV_NAMES = {"evaluations": "evaluations.csv", "optimizers": "optimizers.csv"}
#: file name written by ``export_log(hdf5=True)``: both tables in one file
HDF5_NAME = "evaluations.h5"

_TABLES = ("evaluations", "optimizers")


# --------------------------------------------------------------------------- reading
def source(where: str | os.PathLike) -> Path | str:
    """What the tools read: a path (a run's directory or log file, or a SQLite study's
    file, for ``sqlite:///...``), or the URL of a study on a database server."""
    if isinstance(where, str) and "://" in where:
        from .study.reading import study_file

        return study_file(where) or where
    return Path(where)


def default_out(where: Path | str, out_dir: str | os.PathLike | None, option: str = "out_dir") -> Path:
    """Where the tools write: ``out_dir``, or beside the log (the run's directory, or the
    directory of the log's file); a study on a server has none, so ``out_dir`` is needed."""
    if out_dir is not None:
        return Path(out_dir)
    if isinstance(where, str):
        raise ConfigError(f"{where} is a study on a database server: give {option} (--out on the command "
                          "line), where to write the files")
    return where if where.is_dir() else where.parent


@contextmanager
def open_log_readonly(where: str | os.PathLike) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a run's log (``where``: the run directory or the
    ``.sqlite`` file, or a study's URL) inside one read transaction: everything read
    through it comes from the same committed state, even while the manager goes on
    writing.  A study on a database server is read into an in-memory copy first (see
    :mod:`glompo_like.record.study.reading`)."""
    src = source(where)
    if isinstance(src, str):
        from .study.reading import snapshot

        db = snapshot(src)
        db.isolation_level = None
        path: Path | str = src
    else:
        path = _log_path(src)
        db = connect(path, readonly=True, isolation_level=None)
    try:
        db.execute("BEGIN")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            raise GlompoError(
                f"{path} has no {' and no '.join(missing)} table: the run has only just "
                "started (try again in a moment), or this is not a glompo_like evaluation log"
            )
        yield db
    finally:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        db.close()


def _blob_index(names: list[str]) -> int | None:
    return names.index("x") if "x" in names else None


def _expand(names: list[str], first_row: tuple | None, i: int) -> list[str]:
    """Column names with the BLOB column ``x`` (at ``i``) replaced by ``x_0 ... x_{n-1}``."""
    dim = len(np.frombuffer(first_row[i])) if first_row is not None else 0
    return names[:i] + [f"x_{k}" for k in range(dim)] + names[i + 1:]


def iter_table(db: sqlite3.Connection, table: str) -> tuple[list[str], Iterator[tuple]]:
    """Column names and a row iterator of ``table`` (``evaluations`` or ``optimizers``),
    in the order written, with SQL NULL as ``None`` and BLOB points unpacked."""
    if table not in _TABLES:
        raise ValueError(f"table must be one of {_TABLES}, got {table!r}")
    cur = db.execute(f"SELECT * FROM {table} ORDER BY rowid")
    names = [d[0] for d in cur.description]
    i = _blob_index(names) if table == "evaluations" else None
    if i is None:
        return names, iter(cur)
    first = cur.fetchone()
    names = _expand(names, first, i)

    def rows() -> Iterator[tuple]:
        if first is None:
            return
        for r in _chain(first, cur):
            yield r[:i] + tuple(np.frombuffer(r[i]).tolist()) + r[i + 1:]

    return names, rows()


def _chain(first: tuple, rest: Any) -> Iterator[tuple]:
    yield first
    yield from rest


def read_columns(db: sqlite3.Connection, table: str,
                 columns: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """``table`` as ``{column: array}``: numbers as float64 (NULL as NaN), text as
    object arrays (NULL as ``None``).  ``columns`` selects columns by name (cheaper: for
    the report, the points are not needed)."""
    if columns is not None:
        cur = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")
        names = list(columns)
        rows: Any = cur.fetchall()
    else:
        names, it = iter_table(db, table)
        rows = list(it)
    return _to_columns(names, rows)


_TEXT = {"status", "error", "worker", "type", "settings", "x0", "end_kind", "end_reason", "meta", "manager_id"}


def _to_columns(names: list[str], rows: list[tuple]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for j, n in enumerate(names):
        col = [r[j] for r in rows]
        if n in _TEXT:
            arr = np.empty(len(col), dtype=object)
            arr[:] = col
            out[n] = arr
        else:
            out[n] = np.array([np.nan if v is None else v for v in col], dtype=float)
    return out


# --------------------------------------------------------------------------- writing
def _out_dir(where: Path | str, out_dir: str | os.PathLike | None) -> Path:
    out = default_out(where, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_csv(path: Path, names: list[str], rows: Iterator[tuple]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = _csv.writer(fh)
        w.writerow(names)
        w.writerows(rows)  # None -> empty field; floats as repr (exact round trip)
    os.replace(tmp, path)


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "HDF5 export needs h5py, which is not installed: pip install 'glompo_like[hdf5]'"
        ) from e
    return h5py


def _write_hdf5(path: Path, db: sqlite3.Connection, h5py: Any) -> None:
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if _has_table(db, "meta") else {}
    tmp = path.with_name(path.name + ".tmp")
    text = h5py.string_dtype(encoding="utf-8")
    with h5py.File(tmp, "w") as f:
        f.attrs["source"] = LOG_NAME
        for k, v in meta.items():
            f.attrs[str(k)] = "" if v is None else str(v)
        for table in _TABLES:
            names, it = iter_table(db, table)
            rows = list(it)
            g = f.create_group(table)
            g.attrs["columns"] = np.array(names, dtype=object).astype(text) if names else []
            g.attrs["n_rows"] = len(rows)
            for j, n in enumerate(names):
                col = [r[j] for r in rows]
                if n in _TEXT:
                    g.create_dataset(n, data=["" if v is None else str(v) for v in col], dtype=text)
                elif all(isinstance(v, int) for v in col) and col:
                    g.create_dataset(n, data=np.array(col, dtype=np.int64))
                else:  # floats, and integer columns with missing values (NaN)
                    g.create_dataset(n, data=np.array([np.nan if v is None else v for v in col], dtype=float))
    os.replace(tmp, path)


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def export_log(run_dir: str | os.PathLike, csv: bool = True, hdf5: bool = False,
               out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Export the evaluation log of a run.

    Parameters
    ----------
    run_dir
        The run's working directory (or its ``evaluations.sqlite`` file), or a study's
        storage URL (``"sqlite:///..."``, ``"postgresql://..."``; the tables have the
        study's columns ``manager_id`` and ``local_eval_id`` or ``local_opt_id`` besides).
        The log is only read; the run may still be going.
    csv
        Write ``evaluations.csv`` and ``optimizers.csv`` (one header row with the column
        names of :func:`~glompo_like.read_log`, then one row per evaluation / optimizer;
        missing values are empty fields).
    hdf5
        Write ``evaluations.h5`` with the groups ``/evaluations`` and ``/optimizers``,
        one dataset per column (text as UTF-8 strings, missing text as ``""``, missing
        numbers as NaN; the log's ``meta`` entries as file attributes).  Needs h5py
        (``pip install 'glompo_like[hdf5]'``).
    out_dir
        Where to write (created if needed; default: the run directory, or the directory
        of the SQLite file; needed for a study on a database server).

    Returns
    -------
    list of Path
        The files written.  Existing files of the same name are replaced atomically.
    """
    where = source(run_dir)
    h5py = _import_h5py() if hdf5 else None  # fail before writing anything
    default_out(where, out_dir)
    written: list[Path] = []
    with open_log_readonly(where) as db:  # FileNotFoundError before anything is created
        out = _out_dir(where, out_dir)
        if csv:
            for table in _TABLES:
                names, rows = iter_table(db, table)
                path = out / CSV_NAMES[table]
                _write_csv(path, names, rows)
                written.append(path)
        if hdf5:
            path = out / HDF5_NAME
            _write_hdf5(path, db, h5py)
            written.append(path)
    return written
