"""The storage of a study: one database that several managers share, through SQLAlchemy.

``sqlite:///path/to/study.db`` (managers on one machine: the file is in WAL mode, every
write transaction takes the write lock at its start, ``BEGIN IMMEDIATE``, and waits for it
up to ``busy_timeout``; a transaction that still fails is retried) or
``postgresql://user@host/dbname`` (managers on several machines, through psycopg 3; the
study-wide counters are one row that each write transaction locks by updating it first).

Every write is one transaction: a manager's new evaluations get their study-wide ids from
the ``study_state`` row in the same transaction that inserts them, so ids are unique and
increasing, and a retried push never stores a row twice (``(manager_id, local_eval_id)`` is
unique, and a push skips what an earlier, committed attempt stored).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ...errors import ConfigError, GlompoError
from .fingerprint import differences
from .schema import MAX_X_COLUMNS, SCHEMA_VERSION, tables

__all__ = ["Study", "StudyError", "StudyMismatch", "Snapshot", "normalise_url", "is_study_url",
           "LOST", "RUNNING", "ENDED"]

log = logging.getLogger("glompo_like.study")

RUNNING, ENDED, LOST = "running", "ended", "lost"
#: how long a SQLite write waits for another manager's transaction (seconds)
BUSY_TIMEOUT = 30.0
#: seconds a connection to a database server may take
CONNECT_TIMEOUT = 5
#: attempts of one transaction before a storage error is raised
ATTEMPTS = 8
#: the other managers' evaluations a manager keeps (the newest), for its generators
HISTORY_ROWS = 10_000

_T = TypeVar("_T")


class StudyError(GlompoError):
    """The study's database could not be used (after retries)."""


class StudyMismatch(ConfigError):
    """A manager's setup differs from the study it tries to join."""


def is_study_url(text: Any) -> bool:
    return isinstance(text, str) and "://" in text and text.split("://", 1)[0].split("+")[0] in (
        "sqlite", "postgresql", "postgres")


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL of a study: ``postgresql://`` and ``postgres://`` use psycopg 3."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"study must be a storage URL such as 'sqlite:///path/to/study.db' or "
                          f"'postgresql://user@host/dbname'; got {url!r}")
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest
    if scheme in ("sqlite", "postgresql+psycopg"):
        if scheme == "sqlite" and rest in ("", "/", "/:memory:"):
            raise ConfigError(f"study {url!r}: an SQLite study must be a file that the managers share "
                              "(sqlite:///path/to/study.db)")
        return url
    raise ConfigError(f"study {url!r}: the storage must be 'sqlite:///path/to/study.db' (managers on one "
                      "machine) or 'postgresql://user@host/dbname' (a database server)")


def _engine(url: str, busy_timeout: float = BUSY_TIMEOUT) -> Any:
    """A SQLAlchemy engine for the study at ``url`` (imported here: the ``study`` extra)."""
    try:
        import sqlalchemy as sa
    except ImportError as e:  # pragma: no cover - the extra is missing
        raise ConfigError("a study needs SQLAlchemy (and psycopg for PostgreSQL): "
                          "pip install 'glompo_like[study]'") from e
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout, "check_same_thread": False},
                                  poolclass=sa.pool.NullPool)

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None  # the driver starts no transaction: we do
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            dbapi_connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
        return engine
    try:
        # (a server that does not answer fails a connection in 5 s, not libpq's default: never)
        return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2,
                                connect_args={"connect_timeout": CONNECT_TIMEOUT})
    except ImportError as e:  # pragma: no cover - psycopg is missing
        raise ConfigError("a PostgreSQL study needs psycopg 3: pip install 'glompo_like[study]'") from e


@dataclass
class Snapshot:
    """What a manager learns from the study at a sync."""

    n_evals: int
    best_fx: float
    best_x: np.ndarray | None
    best_manager: str | None
    stop_reason: str | None
    my_state: str | None
    managers_running: int
    #: the other managers' evaluations stored since the last sync (at most
    #: :data:`HISTORY_ROWS`, the newest): ``(eval_id, x, fx)``, fx NaN where it failed
    news: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


class Study:
    """One manager's (or a reader's) connection to a study.

    ``Study(url, dim)`` connects; :meth:`join` creates the study or checks that it agrees,
    and registers a manager.
    """

    def __init__(self, url: str, dim: int, manager_id: str | None = None,
                 busy_timeout: float = BUSY_TIMEOUT, attempts: int = ATTEMPTS) -> None:
        self.url = url
        self.attempts = attempts  # of each transaction (see :meth:`transaction`)
        self.dim = dim
        self.manager_id = manager_id
        self.engine = _engine(url, busy_timeout)
        self.md, self.t = tables(dim)
        self.x_columns = dim <= MAX_X_COLUMNS
        self._opt_ids: dict[int, int] = {}  # this manager's local opt_id -> study-wide opt_id
        self.pushed_rows = 0  # this manager's evaluations stored in the study
        self.seen_eval_id = 0  # the other managers' evaluations read up to this study-wide id

    # ------------------------------------------------------------------ transactions
    def transaction(self, fn: Callable[[Any], _T], what: str, attempts: int | None = None) -> _T:
        """Run ``fn(connection)`` in one transaction, retried (with a random back-off) when
        the database is busy or the connection breaks."""
        import sqlalchemy.exc as sx

        attempts = self.attempts if attempts is None else attempts
        delay = 0.05
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except (sx.OperationalError, sx.InterfaceError) as e:
                if attempt == attempts - 1:
                    raise StudyError(f"study {self.url}: {what} failed {attempts} times: {e}") from e
                log.debug("study %s: %s failed (%s); retrying", self.url, what, e)
                time.sleep(delay * (1 + random.random()))
                delay = min(2 * delay, 2.0)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ creating and joining
    def create_or_check(self, fp: dict[str, Any]) -> bool:
        """Create the study with fingerprint ``fp``, or check that the existing one has the
        same (:class:`StudyMismatch` names the differences).  Returns whether it was
        created."""
        import sqlalchemy as sa
        import sqlalchemy.exc as sx

        for attempt in range(3):  # two managers creating the tables at once: one wins
            try:
                self.md.create_all(self.engine, checkfirst=True)
                break
            except (sx.IntegrityError, sx.ProgrammingError, sx.OperationalError):
                if attempt == 2:
                    raise
                time.sleep(0.1 + random.random() * 0.2)
        meta, state = self.t["meta"], self.t["state"]

        def create(conn: Any) -> tuple[bool, dict[str, Any]]:
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "fingerprint")).first()
            if row is not None:
                return False, json.loads(row[0])
            conn.execute(sa.insert(meta), [
                {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                {"key": "dim", "value": str(self.dim)},
                {"key": "fingerprint", "value": json.dumps(fp)},
                {"key": "created_at", "value": repr(time.time())},
            ])
            conn.execute(sa.insert(state).values(id=1, next_eval_id=1, next_opt_id=0, n_evals=0))
            return True, fp

        try:
            created, theirs = self.transaction(create, "creating the study")
        except sx.IntegrityError:  # another manager created it in between
            created, theirs = self.transaction(create, "reading the study")
        diff = differences(theirs, fp)
        if diff:
            raise StudyMismatch(f"GloMPOManager: study {self.url} was created with another setup; this manager "
                                "cannot join it. What differs: " + "; ".join(diff))
        return created

    def fingerprint(self) -> dict[str, Any]:
        import sqlalchemy as sa

        meta = self.t["meta"]
        row = self.transaction(lambda c: c.execute(sa.select(meta.c.value).where(
            meta.c.key == "fingerprint")).first(), "reading the fingerprint")
        return {} if row is None else json.loads(row[0])

    def register(self, manager_id: str, working_dir: str | None, max_jobs: int) -> None:
        """This manager joins the study (state ``running``, heartbeat now)."""
        import sqlalchemy as sa

        self.manager_id = manager_id
        now = time.time()
        self.transaction(lambda c: c.execute(sa.insert(self.t["managers"]).values(
            manager_id=manager_id, host=socket.gethostname(), pid=os.getpid(), working_dir=working_dir,
            max_jobs=max_jobs, started_at=now, heartbeat_at=now, state=RUNNING, n_evals=0)), "joining")

    # ------------------------------------------------------------------ a manager's sync
    def push(self, ops: list[tuple[str, dict[str, Any]]], rows: list[dict[str, Any]],
             best: tuple[float, np.ndarray, int] | None, n_evals: int, best_fx: float,
             attempts: int | None = None) -> Snapshot:
        """Store this manager's news in one transaction and read the study's state, with
        the other managers' evaluations stored since the last push (``Snapshot.news``).

        ``ops``: ``("start", optimizer row)`` and ``("end", optimizer row)`` in order;
        ``rows``: new evaluation rows (``local_eval_id``, ``local_opt_id``, the log's
        columns); ``best``: ``(fx, x, local_opt_id)`` of this manager's best if it improved;
        ``n_evals``, ``best_fx``: this manager's totals for its ``managers`` row;
        ``attempts``: of the transaction (default: the study's)."""
        import sqlalchemy as sa

        t, me = self.t, self.manager_id
        st, ev, opt = t["state"], t["evaluations"], t["optimizers"]

        def work(conn: Any) -> Snapshot:
            opt_ids = dict(self._opt_ids)
            for kind, d in ops:
                local = d["local_opt_id"]
                if kind == "start":
                    gid = conn.execute(sa.select(opt.c.opt_id).where(
                        opt.c.manager_id == me, opt.c.local_opt_id == local)).scalar()
                    if gid is None:
                        conn.execute(sa.update(st).where(st.c.id == 1).values(next_opt_id=st.c.next_opt_id + 1))
                        gid = conn.execute(sa.select(st.c.next_opt_id).where(st.c.id == 1)).scalar_one()
                        conn.execute(sa.insert(opt).values(opt_id=gid, manager_id=me, **d))
                    opt_ids[local] = gid
                else:
                    conn.execute(sa.update(opt).where(opt.c.manager_id == me, opt.c.local_opt_id == local)
                                 .values(**{k: v for k, v in d.items() if k != "local_opt_id"}))
            done = conn.execute(sa.select(sa.func.max(ev.c.local_eval_id)).where(ev.c.manager_id == me)).scalar()
            new = [r for r in rows if done is None or r["local_eval_id"] > done]
            if new:
                n = len(new)
                conn.execute(sa.update(st).where(st.c.id == 1).values(
                    next_eval_id=st.c.next_eval_id + n, n_evals=st.c.n_evals + n))
                first = conn.execute(sa.select(st.c.next_eval_id).where(st.c.id == 1)).scalar_one() - n
                batch = []
                for i, r in enumerate(new):
                    r = dict(r)
                    r["eval_id"] = first + i
                    r["opt_id"] = opt_ids.get(r.pop("local_opt_id"))
                    r["manager_id"] = me
                    batch.append(r)
                conn.execute(sa.insert(ev), batch)
            if best is not None:
                fx, x, local = best
                conn.execute(sa.update(st).where(st.c.id == 1, sa.or_(st.c.best_fx.is_(None), st.c.best_fx > fx))
                             .values(best_fx=fx, best_x=json.dumps(np.asarray(x, dtype=float).tolist()),
                                     best_manager=me, best_opt_id=opt_ids.get(local)))
            conn.execute(sa.update(t["managers"]).where(t["managers"].c.manager_id == me).values(
                n_evals=n_evals, best_fx=best_fx if np.isfinite(best_fx) else None))
            snap = self._snapshot(conn)
            snap.news = self._news(conn)
            self._opt_ids = opt_ids
            # local ids are 1, 2, ... in order: the last one stored is how many are
            self.pushed_rows = new[-1]["local_eval_id"] if new else (done or 0)
            return snap

        snap = self.transaction(work, "storing evaluations", attempts)
        # every id up to the study's count was visible to this transaction (ids are taken
        # in commit order): the next read starts after them, whoever's they were
        self.seen_eval_id = max(snap.n_evals, 0 if snap.news is None else int(snap.news[0][-1]))
        return snap

    def _news(self, conn: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The other managers' evaluations after :attr:`seen_eval_id` (the newest
        :data:`HISTORY_ROWS` of them, oldest first), or ``None`` if there are none.  Ids
        are taken under the lock of the counter row, so rows become visible in id order
        and none is skipped."""
        import sqlalchemy as sa

        ev = self.t["evaluations"]
        xcols = [ev.c[f"x_{i}"] for i in range(self.dim)] if self.x_columns else [ev.c.x]
        rows = conn.execute(sa.select(ev.c.eval_id, ev.c.fx, *xcols)
                            .where(ev.c.eval_id > self.seen_eval_id, ev.c.manager_id != self.manager_id)
                            .order_by(ev.c.eval_id.desc()).limit(HISTORY_ROWS)).all()
        if not rows:
            return None
        rows.reverse()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        fx = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=float)
        if self.x_columns:
            x = np.array([r[2:] for r in rows], dtype=float).reshape(len(rows), self.dim)
        else:
            x = np.stack([np.frombuffer(bytes(r[2]), dtype=float) for r in rows])
        return ids, x, fx

    def _snapshot(self, conn: Any) -> Snapshot:
        import sqlalchemy as sa

        st, mg = self.t["state"], self.t["managers"]
        s = conn.execute(sa.select(st).where(st.c.id == 1)).mappings().one()
        mine = conn.execute(sa.select(mg.c.state).where(mg.c.manager_id == self.manager_id)).scalar()
        running = conn.execute(sa.select(sa.func.count()).select_from(mg).where(mg.c.state == RUNNING)).scalar_one()
        return Snapshot(
            n_evals=s["n_evals"], best_fx=float("inf") if s["best_fx"] is None else float(s["best_fx"]),
            best_x=None if s["best_x"] is None else np.array(json.loads(s["best_x"]), dtype=float),
            best_manager=s["best_manager"], stop_reason=s["stop_reason"], my_state=mine,
            managers_running=running)

    def snapshot(self) -> Snapshot:
        return self.transaction(self._snapshot, "reading the study")

    def end_manager(self, state: str, reason: str) -> None:
        """This manager leaves the study (``state``: ended)."""
        import sqlalchemy as sa

        mg = self.t["managers"]
        self.transaction(lambda c: c.execute(sa.update(mg).where(mg.c.manager_id == self.manager_id,
                                                                  mg.c.state == RUNNING)
                                             .values(state=state, end_reason=reason, heartbeat_at=time.time())),
                         "leaving the study")

    def request_stop(self, reason: str, by: str) -> bool:
        """End the study (every manager ends at its next sync).  Returns whether this call
        set the reason (the first one wins)."""
        import sqlalchemy as sa

        st = self.t["state"]
        res = self.transaction(lambda c: c.execute(sa.update(st).where(st.c.id == 1, st.c.stop_reason.is_(None))
                                                   .values(stop_reason=reason, stop_by=by)), "stopping the study")
        return bool(res.rowcount)

    # ------------------------------------------------------------------ liveness
    def heartbeat(self) -> bool:
        """Note that this manager is alive.  Returns ``False`` when the study has marked it
        lost (or ended) meanwhile."""
        import sqlalchemy as sa

        mg = self.t["managers"]
        res = self.transaction(lambda c: c.execute(sa.update(mg).where(mg.c.manager_id == self.manager_id,
                                                                        mg.c.state == RUNNING)
                                                   .values(heartbeat_at=time.time())), "heartbeat")
        return bool(res.rowcount)

    def mark_lost(self, timeout: float) -> list[str]:
        """Managers whose last heartbeat is older than ``timeout`` seconds are marked lost,
        and their optimizers that had not ended too.  Returns the managers marked now."""
        import sqlalchemy as sa

        mg, opt = self.t["managers"], self.t["optimizers"]

        def work(conn: Any) -> list[str]:
            now = time.time()
            late = conn.execute(sa.select(mg.c.manager_id, mg.c.heartbeat_at).where(
                mg.c.state == RUNNING, mg.c.heartbeat_at < now - timeout)).all()
            for manager_id, beat in late:
                reason = f"no heartbeat for {now - beat:.0f} s (study_timeout={timeout:g} s)"
                conn.execute(sa.update(mg).where(mg.c.manager_id == manager_id, mg.c.state == RUNNING)
                             .values(state=LOST, end_reason=reason))
                conn.execute(sa.update(opt).where(opt.c.manager_id == manager_id, opt.c.end_kind.is_(None))
                             .values(end_kind="lost", end_reason=f"its manager {manager_id} was lost: {reason}",
                                     t_end=now))
            return [m for m, _ in late]

        lost = self.transaction(work, "marking lost managers")
        for m in lost:
            log.warning("study %s: manager %s marked lost (no heartbeat for over %g s)", self.url, m, timeout)
        return lost

    # ------------------------------------------------------------------ reading
    def read_rows(self, name: str) -> tuple[list[str], list[tuple]]:
        import sqlalchemy as sa

        table = self.t[name]
        key = table.c.eval_id if name == "evaluations" else (
            table.c.opt_id if name == "optimizers" else table.c.started_at)

        def work(conn: Any) -> tuple[list[str], list[tuple]]:
            res = conn.execute(sa.select(table).order_by(key))
            return list(res.keys()), [tuple(r) for r in res.all()]

        return self.transaction(work, f"reading {name}")

    def close(self) -> None:
        self.engine.dispose()


def open_existing(url: str) -> Study:
    """A reader's connection to an existing study (its dimension read from it)."""
    import sqlalchemy as sa

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            dim = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'dim'")).scalar()
    except Exception as e:
        raise StudyError(f"no study at {url}: {e}") from e
    finally:
        engine.dispose()
    if dim is None:
        raise StudyError(f"no study at {url}")
    return Study(url, int(dim))


def evaluation_rows(batch: Any, first_local: int, local_opt_id: int, x_columns: bool) -> Iterable[dict[str, Any]]:
    """The study rows of an :class:`~glompo_like.evaluation.core.EvalBatch` whose first
    evaluation has the manager's local id ``first_local``."""
    n = len(batch)
    status = batch.status_texts()
    fx = batch.fx.tolist()
    sample = [0] * n if batch.sample is None else batch.sample.tolist()
    meta = batch.meta if batch.meta is not None else (None,) * n
    t0, dur = batch.t_start.tolist(), batch.duration.tolist()
    xs = batch.x.tolist() if x_columns else [r.tobytes() for r in np.asarray(batch.x, dtype=float)]
    for i in range(n):
        row: dict[str, Any] = {"local_eval_id": first_local + i, "local_opt_id": local_opt_id}
        if x_columns:
            row.update({f"x_{k}": v for k, v in enumerate(xs[i])})
        else:
            row["x"] = xs[i]
        f = fx[i]
        row.update(fx=None if f != f else f, status=status[i], error=batch.error[i], t_start=t0[i],
                   duration=dur[i], worker=batch.worker[i], sample=sample[i], meta=meta[i])
        yield row
