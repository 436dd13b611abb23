"""The SQLite database's schema, its migrations, and opening a connection to it.

The tables derive from the models (``_schema.py``); ``PRAGMA user_version`` numbers the
steps that are more than adding the columns of new fields.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ._schema import EXECUTION_COLUMNS, PROCESS_COLUMNS, TASK_COLUMNS, create_table

SCHEMA_VERSION = 3
"""``PRAGMA user_version`` of a database this code wrote: 2 stores priorities by name, 3 the
process of each running execution."""


SCHEMA = (
    create_table("tasks", TASK_COLUMNS, "task_id")
    + create_table("executions", (*EXECUTION_COLUMNS, *PROCESS_COLUMNS), "execution_id")
    + """
CREATE INDEX IF NOT EXISTS tasks_by_seq ON tasks (seq);
CREATE INDEX IF NOT EXISTS executions_by_task ON executions (task_id, scheduled_at);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (scheduled_at);
CREATE INDEX IF NOT EXISTS executions_by_outcome ON executions (outcome);
"""
)


def migrate(db: sqlite3.Connection) -> None:
    """Bring an older database up to :data:`SCHEMA_VERSION`: columns added to a model since
    it was written are added (with their defaults), then each numbered step runs once."""
    for table, columns in (
        ("tasks", TASK_COLUMNS),
        ("executions", (*EXECUTION_COLUMNS, *PROCESS_COLUMNS)),
    ):
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column in columns:
            if column.name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column.declaration}")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version < 2:
        # Version 1 stored priorities as 0-3. (The column keeps its INTEGER declaration in
        # such a database; SQLite stores the names as TEXT in it all the same.)
        db.execute(
            "UPDATE tasks SET priority = CASE priority WHEN 0 THEN 'CRITICAL' WHEN 1 THEN"
            " 'HIGH' WHEN 2 THEN 'MEDIUM' WHEN 3 THEN 'LOW' END"
            " WHERE typeof(priority) = 'integer'"
        )
    # Version 3 added the process columns of the executions (PROCESS_COLUMNS), which the
    # loop above adds; rows written before have none (NULL): nothing else to change.
    if version != SCHEMA_VERSION:  # a write only when it changes (a full disk may refuse it)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    try:
        db.commit()
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA busy_timeout = 5000")
        db.executescript(SCHEMA)
        migrate(db)
        db.commit()
    except BaseException:
        db.close()
        raise
    return db
