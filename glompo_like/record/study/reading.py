"""Reading a study with the run tools (``read_log``, ``export``, ``report``).

A SQLite study is one file with the tables of a run's log (and more): the tools read the
file itself (:func:`study_file`).  A study on a database server is copied, in one read
transaction (a consistent snapshot, even while managers write), into an in-memory SQLite
database with the same tables (:func:`snapshot`), which the tools then read as they read a
run's log.  The copy holds the whole study in memory.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .storage import StudyError, _engine, normalise_url

__all__ = ["is_url", "study_file", "snapshot"]

#: the study's tables, with the column that orders their rows (their SQLite rowid)
_TABLES = {"meta": None, "managers": None, "optimizers": "opt_id", "evaluations": "eval_id"}


def is_url(where: Any) -> bool:
    """Whether ``where`` names a study by its storage URL (rather than a run's path)."""
    return isinstance(where, str) and "://" in where


def study_file(url: str) -> Path | None:
    """The file of a SQLite study (``None`` for a study on a database server)."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return None
    import sqlalchemy as sa

    return Path(sa.engine.make_url(url).database or "")


def snapshot(url: str) -> sqlite3.Connection:
    """An in-memory SQLite copy of the study at ``url`` (its ``meta``, ``managers``,
    ``optimizers`` and ``evaluations`` tables, rows in id order), read in one transaction."""
    import sqlalchemy as sa
    import sqlalchemy.exc as sx

    engine = _engine(url)
    copied: dict[str, tuple[list[str], list[tuple]]] = {}
    try:
        with engine.connect() as conn:
            if not url.startswith("sqlite"):  # every table from the same snapshot
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                for table, key in _TABLES.items():
                    res = conn.execute(sa.text(f"SELECT * FROM {table}" + (f" ORDER BY {key}" if key else "")))
                    copied[table] = (list(res.keys()), [tuple(r) for r in res.all()])
    except (sx.OperationalError, sx.ProgrammingError, sx.InterfaceError) as e:
        raise StudyError(f"cannot read the study at {url}: {e}") from e
    finally:
        engine.dispose()
    db = sqlite3.connect(":memory:")
    for table, (names, rows) in copied.items():
        key = _TABLES[table]
        cols = ", ".join(f'"{n}" INTEGER PRIMARY KEY' if n == key else f'"{n}"' for n in names)
        db.execute(f"CREATE TABLE {table} ({cols})")
        db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})",
                       [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows])
    db.commit()
    return db
