"""The PostgreSQL database's schema, its version, the text it cannot hold, and the
statements and rows of the executions table.

The tables derive from the models (``_schema.py``), as SQLite's do, with PostgreSQL's types
for them (:data:`TYPES`); a new field is a new column, added to older databases at open.
The table ``omnimind_schema`` holds the schema's version (:data:`SCHEMA_VERSION`): a
database a newer omnimind wrote is refused, untouched.

Two columns no model holds: ``tasks.position`` (insertion order, for tasks of equal
``seq``) and ``executions.written`` (the order records were last written, for records of
equal ``scheduled_at``; SQLite's ``rowid`` plays both parts).

PostgreSQL's ``text`` cannot hold U+0000 (a task may print a NUL byte). The columns of
plain text store it escaped (:func:`escape`): U+0001 is the escape character, U+0001
U+0001 stands for U+0001 and U+0001 U+0002 for U+0000. Text without either character (all
but a handful of rows) is stored as it is, and ids are escaped in queries as in rows.
"""

from __future__ import annotations

import re
from typing import Any, Final

import psycopg

from ..exceptions import StartupError
from ..models import ExecutionRecord, Outcome
from ._schema import (
    EXECUTION_COLUMNS,
    PROCESS_COLUMNS,
    SPEC_COLUMNS,
    TASK_COLUMNS,
    Column,
    create_table,
    execution_from_row,
    execution_row,
    marks,
    names,
    newer_version,
)

Db = psycopg.Connection[Any]
"""A connection, as the store's PostgreSQL modules type it."""

RUNNING: Final = Outcome.RUNNING.value
"""The outcome of a record still running, as stored."""

SCHEMA_VERSION = 2
"""The version of the schema this code writes (``omnimind_schema.version``). 2: the
fleet's tables, ``claims`` and ``nodes``."""

TYPES: Final = {"TEXT": "TEXT", "INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION"}
"""PostgreSQL's types for the columns' (SQLite's) type names: a pid, a count or a
``bool`` in BIGINT; a time in DOUBLE PRECISION, which holds a Python float exactly."""

OWN_TABLES: Final = ("tasks", "executions", "space_probe", "omnimind_schema", "claims", "nodes")

TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS omnimind_schema (version INTEGER NOT NULL);\n"
    + create_table(
        "tasks",
        TASK_COLUMNS,
        "task_id",
        types=TYPES,
        extra=("position BIGINT GENERATED ALWAYS AS IDENTITY",),
    )
    + "CREATE SEQUENCE IF NOT EXISTS executions_written;\n"
    + create_table(
        "executions",
        (*EXECUTION_COLUMNS, *PROCESS_COLUMNS),
        "execution_id",
        types=TYPES,
        extra=("written BIGINT NOT NULL DEFAULT nextval('executions_written')",),
    )
    + "CREATE TABLE IF NOT EXISTS space_probe (data BYTEA NOT NULL);\n"
    # The fleet (``_postgres_fleet``): one row per occurrence of a task claimed by a daemon
    # (``occurrence``: the registration and what makes the run one, its due time or a
    # request's id), and one per daemon that ever used the database. Times are the
    # server's (now()), never a machine's.
    + """CREATE TABLE IF NOT EXISTS claims (
    occurrence TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    registration_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    scheduled_at DOUBLE PRECISION NOT NULL,
    node TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    execution_id TEXT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ NOT NULL,
    finished BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS nodes (
    node TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    running_count INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL
);
"""
)

INDEXES: Final = """
CREATE INDEX IF NOT EXISTS tasks_by_seq ON tasks (seq, position);
CREATE INDEX IF NOT EXISTS executions_by_task ON executions (task_id, scheduled_at, written);
CREATE INDEX IF NOT EXISTS executions_by_registration
    ON executions (registration_id, scheduled_at, written);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (scheduled_at, written);
CREATE INDEX IF NOT EXISTS executions_by_outcome ON executions (outcome);
CREATE INDEX IF NOT EXISTS claims_open ON claims (lease_until) WHERE NOT finished;
"""

MIGRATION_LOCK: Final = (0x6F6D6E69, 0)
"""Held (for its transaction) by the daemon creating or migrating the tables: daemons of a
fleet started together do it one after the other."""


def read_version(db: psycopg.Connection[Any]) -> int | None:
    """The schema version the database holds; None when omnimind never wrote it.

    Error handling: a database that holds tables of omnimind's names but no version
    (another program's) raises StartupError: omnimind does not write into them."""
    if db.execute("SELECT to_regclass('omnimind_schema')").fetchone() == (None,):
        found = [
            name
            for name in OWN_TABLES
            if db.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,)
        ]
        if found:
            raise StartupError(
                f"the database holds tables omnimind did not make ({', '.join(found)}):"
                " give omnimind a database of its own (createdb); it was not changed"
            )
        return None
    row = db.execute("SELECT max(version) FROM omnimind_schema").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def check_version(version: int | None) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise newer_version(version, SCHEMA_VERSION)


def prepare(db: psycopg.Connection[Any]) -> None:
    """Create the tables, or bring those of an older version up to :data:`SCHEMA_VERSION`
    (columns of fields added to a model since), in one transaction: all or nothing.

    Error handling: a database of a newer version, or another program's tables, raise
    StartupError and nothing is changed."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
        version = read_version(db)
        check_version(version)
        db.execute(TABLES)
        for table, columns in (
            ("tasks", TASK_COLUMNS),
            ("executions", (*EXECUTION_COLUMNS, *PROCESS_COLUMNS)),
        ):
            present = {
                row[0]
                for row in db.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name = %s",
                    (table,),
                )
            }
            for column in columns:
                if column.name not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column.declared(TYPES)}")
        db.execute(INDEXES)
        if version is None:
            db.execute("INSERT INTO omnimind_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            db.execute("UPDATE omnimind_schema SET version = %s", (SCHEMA_VERSION,))


# -- text PostgreSQL cannot hold ---------------------------------------------------------------

_SPECIAL = re.compile("[\x00\x01]")
_ESCAPED = re.compile("\x01(.)", re.DOTALL)


def escape(text: str) -> str:
    """``text`` as a ``text`` column can hold it (see the module's docstring)."""
    if "\x00" not in text and "\x01" not in text:
        return text
    return _SPECIAL.sub(lambda m: "\x01\x02" if m.group() == "\x00" else "\x01\x01", text)


def unescape(text: str) -> str:
    if "\x01" not in text:
        return text
    return _ESCAPED.sub(lambda m: "\x00" if m.group(1) == "\x02" else "\x01", text)


def _plain_text(columns: tuple[Column, ...]) -> tuple[int, ...]:
    """Where ``columns`` hold text as it is (JSON text escapes U+0000 itself)."""
    return tuple(i for i, c in enumerate(columns) if c.sql_type == "TEXT" and c.to_db is None)


_TEXT_AT: Final = {
    columns: _plain_text(columns) for columns in (TASK_COLUMNS, SPEC_COLUMNS, EXECUTION_COLUMNS)
}


def escaped(row: tuple[Any, ...], columns: tuple[Column, ...]) -> tuple[Any, ...]:
    """A row of ``columns``' values as written: its plain text escaped."""
    values = list(row)
    for i in _TEXT_AT[columns]:
        if values[i] is not None:
            values[i] = escape(values[i])
    return tuple(values)


def unescaped(row: tuple[Any, ...], columns: tuple[Column, ...]) -> tuple[Any, ...]:
    """A row of ``columns`` as read, its plain text as it was written."""
    values: list[Any] | None = None
    for i in _TEXT_AT[columns]:
        value = row[i]
        if value is not None and "\x01" in value:
            if values is None:
                values = list(row)
            values[i] = unescape(value)
    return row if values is None else tuple(values)


# -- statements and rows of the executions ----------------------------------------------------

EXECUTIONS = names(EXECUTION_COLUMNS)
UPSERT = (
    f"INSERT INTO executions ({EXECUTIONS}) VALUES ({marks(EXECUTION_COLUMNS, '%s')})"
    " ON CONFLICT (execution_id) DO UPDATE SET "
    + ", ".join(f"{c.name} = EXCLUDED.{c.name}" for c in EXECUTION_COLUMNS)
    + ", "
    + ", ".join(f"{c.name} = NULL" for c in PROCESS_COLUMNS)
    + ", written = EXCLUDED.written"
)
"""Write a record, new or in place of the one with its id: it becomes the last written
(``written``), and forgets its process."""
ORDER = "ORDER BY scheduled_at DESC, written DESC"
MINE = "WHERE task_id = %s AND registration_id = %s"


def record_values(record: ExecutionRecord) -> tuple[Any, ...]:
    return escaped(execution_row(record), EXECUTION_COLUMNS)


def whose(record: ExecutionRecord) -> tuple[str, str | None]:
    """The task a record may change: its id and registration (none when it names none)."""
    registration = record.registration_id
    return escape(record.task_id), None if registration is None else escape(registration)


def record_from(row: tuple[Any, ...]) -> ExecutionRecord:
    return execution_from_row(unescaped(row, EXECUTION_COLUMNS))
