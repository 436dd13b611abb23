"""The SQLite database's schema, its migrations, and opening a connection to it.

The tables derive from the models (``_schema.py``); ``PRAGMA user_version`` numbers the
steps that are more than adding the columns of new fields.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ._schema import (
    EXECUTION_COLUMNS,
    PROCESS_COLUMNS,
    TASK_COLUMNS,
    create_table,
    newer_version,
)

SCHEMA_VERSION = 5
"""``PRAGMA user_version`` of a database this code wrote: 2 stores priorities by name, 3 the
process of each running execution, 4 the registration of each task and of each run, 5 the
node (daemon) of each run."""


TABLES = create_table("tasks", TASK_COLUMNS, "task_id") + create_table(
    "executions", (*EXECUTION_COLUMNS, *PROCESS_COLUMNS), "execution_id"
)

INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_by_seq ON tasks (seq);
CREATE INDEX IF NOT EXISTS executions_by_task ON executions (task_id, scheduled_at);
CREATE INDEX IF NOT EXISTS executions_by_registration ON executions (registration_id, scheduled_at);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (scheduled_at);
CREATE INDEX IF NOT EXISTS executions_by_outcome ON executions (outcome);
CREATE INDEX IF NOT EXISTS executions_by_node ON executions (node, scheduled_at);
"""
"""Made after :func:`migrate`: an index may name a column an older database gains there."""


def migrate(db: sqlite3.Connection) -> None:
    """Bring an older database up to :data:`SCHEMA_VERSION`: columns added to a model since
    it was written are added (with their defaults), then each numbered step runs once."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise newer_version(version, SCHEMA_VERSION)
    if version < 4:
        _add_registrations(db)
    for table, columns in (
        ("tasks", TASK_COLUMNS),
        ("executions", (*EXECUTION_COLUMNS, *PROCESS_COLUMNS)),
    ):
        present = _columns(db, table)
        for column in columns:
            if column.name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column.declaration}")
    if version < 2:
        # Version 1 stored priorities as 0-3. (The column keeps its INTEGER declaration in
        # such a database; SQLite stores the names as TEXT in it all the same.)
        db.execute(
            "UPDATE tasks SET priority = CASE priority WHEN 0 THEN 'CRITICAL' WHEN 1 THEN"
            " 'HIGH' WHEN 2 THEN 'MEDIUM' WHEN 3 THEN 'LOW' END"
            " WHERE typeof(priority) = 'integer'"
        )
    # Version 3 added the process columns of the executions (PROCESS_COLUMNS), and version
    # 5 their node (the daemon that ran or skipped the run), which the loop above adds;
    # rows written before have none (NULL, "not known"): nothing else to change.
    if version != SCHEMA_VERSION:  # a write only when it changes (a full disk may refuse it)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _add_registrations(db: sqlite3.Connection) -> None:
    """Version 4: each task is one registration of its id, and each run names the
    registration it belonged to (a task deleted and added again under its id is a new
    one). Before, runs were known by task id only, and a re-added id took the runs of the
    task deleted before it into its history.

    - Each stored task gets a new registration (a random id, as an add makes).
    - A run of a stored task that became due at or after the task's ``created_at`` is its
      run: it gets the task's registration (and ``registered_at``, its ``created_at``).
    - Any other run (of a task deleted since, or due before the stored task of its id was
      added, so of an earlier task under that id) keeps NULL in both: it belonged to a
      registration that is gone, and which one (one or several) is not known.

    (The tasks' column is added here without NOT NULL, which SQLite cannot add to rows that
    exist without a default; every row has a value, and the store always writes one.)"""
    if "registration_id" not in _columns(db, "tasks"):
        db.execute("ALTER TABLE tasks ADD COLUMN registration_id TEXT")
    db.execute(
        "UPDATE tasks SET registration_id = lower(hex(randomblob(16)))"
        " WHERE registration_id IS NULL"
    )
    present = _columns(db, "executions")
    for name, declaration in (("registration_id", "TEXT"), ("registered_at", "REAL")):
        if name not in present:
            db.execute(f"ALTER TABLE executions ADD COLUMN {name} {declaration}")
    db.execute(
        "UPDATE executions SET (registration_id, registered_at) ="
        " (SELECT registration_id, created_at FROM tasks WHERE tasks.task_id = executions.task_id)"
        " WHERE registration_id IS NULL AND EXISTS (SELECT 1 FROM tasks"
        " WHERE tasks.task_id = executions.task_id AND executions.scheduled_at >= tasks.created_at)"
    )


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    try:
        db.commit()
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA busy_timeout = 5000")
        db.executescript(TABLES)
        migrate(db)
        db.executescript(INDEXES)
        db.commit()
    except BaseException:
        db.close()
        raise
    return db
