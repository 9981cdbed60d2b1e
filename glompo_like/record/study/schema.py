"""The tables of a study (SQLAlchemy Core), the same on SQLite and PostgreSQL.

``meta`` (``key``, ``value``): ``schema_version``, ``dim``, ``fingerprint`` (JSON: what
defines the study), ``created_at``.

``study_state``: one row (``id`` = 1): ``next_eval_id`` and ``next_opt_id`` (the next
study-wide ids), ``n_evals``, ``best_fx``, ``best_x`` (JSON), ``best_manager``,
``best_opt_id``, ``stop_reason`` (set once: the study ends) and ``stop_by``.

``managers``: one row per manager that joined: ``manager_id``, ``host``, ``pid``,
``working_dir``, ``max_jobs``, ``started_at``, ``heartbeat_at`` (seconds since the epoch),
``state`` (running / ended / lost), ``end_reason``, ``n_evals``, ``best_fx``.

``optimizers``: the columns of a run's log (``opt_id`` is study-wide) plus ``manager_id``
and ``local_opt_id`` (its id in its manager's own log).

``evaluations``: the columns of a run's log (``eval_id`` study-wide, unique and
increasing; ``opt_id`` study-wide) plus ``manager_id`` and ``local_eval_id`` (unique per
manager: a row is stored once, even if a push is retried).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["SCHEMA_VERSION", "MAX_X_COLUMNS", "tables"]

SCHEMA_VERSION = 1
MAX_X_COLUMNS = 1000  # above this, x is stored as one float64 BLOB column (as in a run's log)


def tables(dim: int) -> tuple[MetaData, dict[str, Table]]:
    """The study's tables for a problem of dimension ``dim``."""
    md = MetaData()
    meta = Table("meta", md, Column("key", String(64), primary_key=True), Column("value", Text))
    state = Table(
        "study_state", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("next_eval_id", Integer, nullable=False),
        Column("next_opt_id", Integer, nullable=False),
        Column("n_evals", Integer, nullable=False),
        Column("best_fx", Float), Column("best_x", Text), Column("best_manager", String(64)),
        Column("best_opt_id", Integer), Column("stop_reason", Text), Column("stop_by", String(64)),
    )
    managers = Table(
        "managers", md,
        Column("manager_id", String(64), primary_key=True),
        Column("host", Text), Column("pid", Integer), Column("working_dir", Text), Column("max_jobs", Integer),
        Column("started_at", Float), Column("heartbeat_at", Float), Column("state", String(16)),
        Column("end_reason", Text), Column("n_evals", Integer), Column("best_fx", Float),
    )
    optimizers = Table(
        "optimizers", md,
        Column("opt_id", Integer, primary_key=True, autoincrement=False),
        Column("type", Text), Column("settings", Text), Column("slots", Integer), Column("x0", Text),
        Column("t_start", Float), Column("t_end", Float), Column("n_evals", Integer), Column("best_fx", Float),
        Column("end_kind", String(16)), Column("end_reason", Text), Column("exitcode", Integer),
        Column("manager_id", String(64), nullable=False), Column("local_opt_id", Integer, nullable=False),
        UniqueConstraint("manager_id", "local_opt_id", name="optimizers_local"),
    )
    xcols = ([Column(f"x_{i}", Float) for i in range(dim)] if dim <= MAX_X_COLUMNS
             else [Column("x", LargeBinary)])
    evaluations = Table(
        "evaluations", md,
        Column("eval_id", Integer, primary_key=True, autoincrement=False),
        Column("opt_id", Integer),
        *xcols,
        Column("fx", Float), Column("status", String(32), server_default="ok"), Column("error", Text),
        Column("t_start", Float), Column("duration", Float), Column("worker", Text),
        Column("sample", Integer, server_default="0"), Column("meta", Text),
        Column("manager_id", String(64), nullable=False), Column("local_eval_id", Integer, nullable=False),
        UniqueConstraint("manager_id", "local_eval_id", name="evaluations_local"),
    )
    return md, {"meta": meta, "state": state, "managers": managers, "optimizers": optimizers,
                "evaluations": evaluations}
