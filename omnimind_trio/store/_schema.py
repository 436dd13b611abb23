"""The store's records and their columns, derived from the models.

A task row holds its definition (every :class:`~omnimind_trio.models.TaskSpec` field), its
counters (:class:`~omnimind_trio.models.TaskCounters`) and its schedule (the other fields
of :class:`StoredTask`); an execution row holds every stored field of
:class:`~omnimind_trio.models.ExecutionRecord`, and its process while it runs
(:class:`RunProcess`). Column names, SQL types, defaults and the
conversions both ways come from the fields' annotations: a new field is a new column, added
to older databases when they are opened.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from pydantic import TypeAdapter

from ..exceptions import StartupError
from ..models import (
    EXECUTION_FIELDS,
    TASK_FIELD_TYPES,
    ExecutionRecord,
    Outcome,
    TaskCounters,
    TaskSpec,
    base_type,
)
from ._protocol import RunProcess, StoredTask


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    """TEXT, INTEGER or REAL."""
    nullable: bool
    default: Any
    """The default (as stored) for rows that predate the column; MISSING when none."""
    to_db: Callable[[Any], Any] | None
    from_db: Callable[[Any], Any] | None
    """Conversions; None where the value is stored as it is."""

    @property
    def declaration(self) -> str:
        return self.declared()

    def declared(self, types: Mapping[str, str] | None = None) -> str:
        """The column's declaration in CREATE TABLE, with ``types`` naming the SQL types
        (default: TEXT, INTEGER and REAL as they are, SQLite's)."""
        text = f"{self.name} {types[self.sql_type] if types else self.sql_type}"
        if not self.nullable:
            text += " NOT NULL"
        if self.default is not dataclasses.MISSING and self.default is not None:
            text += f" DEFAULT {_literal(self.default)}"
        return text


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(int(value) if isinstance(value, bool) else value)


def _column(name: str, hint: Any, default: Any, *, typed: bool = False) -> Column:
    """A field's column. ``typed``: a JSON value is read back as the field's type (a list
    as a tuple, an object as its model), for fields built without validation."""
    base, nullable = base_type(hint)
    if isinstance(base, type) and issubclass(base, Enum):
        lookup = {member.value: member for member in base}
        return Column(name, "TEXT", nullable, _stored(default), _enum_value, lookup.__getitem__)
    if base is bool:
        return Column(name, "INTEGER", nullable, _stored(default), int, bool)
    simple = {str: "TEXT", int: "INTEGER", float: "REAL"}
    if base in simple:
        return Column(name, simple[base], nullable, default, None, None)
    # Anything else (a JSON result, a list of pauses, a task's env) is stored as JSON text.
    if typed:
        # A task field: NULL when unset (most rows: no JSON to parse at start-up).
        adapter: TypeAdapter[Any] = TypeAdapter(hint)
        return Column(
            name,
            "TEXT",
            nullable,
            None if nullable and default is None else _stored_json(default),
            lambda value: adapter.dump_json(value).decode(),
            adapter.validate_json,
        )
    return Column(name, "TEXT", False, _stored_json(default), json.dumps, json.loads)


def _enum_value(member: Enum) -> Any:
    return member.value


def _stored(default: Any) -> Any:
    if isinstance(default, Enum):
        return default.value
    if isinstance(default, bool):
        return int(default)
    return default


def _stored_json(default: Any) -> Any:
    return dataclasses.MISSING if default is dataclasses.MISSING else json.dumps(default)


def _dataclass_columns(cls: type, names: tuple[str, ...]) -> tuple[Column, ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    defaults = {field.name: field.default for field in dataclasses.fields(cls)}
    return tuple(_column(name, hints[name], defaults[name]) for name in names)


SPEC_COLUMNS: Final = tuple(
    _column(name, TASK_FIELD_TYPES[name], default, typed=True)
    for name, default in ((field.name, field.default) for field in dataclasses.fields(TaskSpec))
)
COUNTER_COLUMNS: Final = _dataclass_columns(
    TaskCounters, tuple(field.name for field in dataclasses.fields(TaskCounters))
)
SCHEDULE_COLUMNS: Final = _dataclass_columns(
    StoredTask,
    tuple(f.name for f in dataclasses.fields(StoredTask) if f.name not in ("spec", "counters")),
)
TASK_COLUMNS: Final = (*SPEC_COLUMNS, *COUNTER_COLUMNS, *SCHEDULE_COLUMNS)
"""Every column of a task row, in the order rows are written and read."""

EXECUTION_COLUMNS: Final = tuple(
    _column(
        name,
        ExecutionRecord.model_fields[name].annotation,
        ExecutionRecord.model_fields[name].get_default(call_default_factory=True)
        if not ExecutionRecord.model_fields[name].is_required()
        else dataclasses.MISSING,
    )
    for name in EXECUTION_FIELDS
)
"""Every column of an execution row that the record holds."""

PROCESS_COLUMNS: Final = _dataclass_columns(
    RunProcess, tuple(field.name for field in dataclasses.fields(RunProcess))
)
"""The other columns of an execution row: its process while it runs (not in the API)."""


def _converters(columns: tuple[Column, ...]) -> list[tuple[int, Callable[[Any], Any]]]:
    return [(i, c.from_db) for i, c in enumerate(columns) if c.from_db is not None]


_N_SPEC, _N_COUNTERS = len(SPEC_COLUMNS), len(COUNTER_COLUMNS)
_TASK_READERS: Final = _converters(TASK_COLUMNS)
_EXECUTION_READERS: Final = _converters(EXECUTION_COLUMNS)


def task_row(task: StoredTask) -> tuple[Any, ...]:
    """A task as the values of :data:`TASK_COLUMNS`."""
    values = [
        *(getattr(task.spec, c.name) for c in SPEC_COLUMNS),
        *(getattr(task.counters, c.name) for c in COUNTER_COLUMNS),
        *(getattr(task, c.name) for c in SCHEDULE_COLUMNS),
    ]
    return _written(values, TASK_COLUMNS)


def spec_row(spec: TaskSpec) -> tuple[Any, ...]:
    """A definition as the values of :data:`SPEC_COLUMNS`."""
    return _written([getattr(spec, c.name) for c in SPEC_COLUMNS], SPEC_COLUMNS)


def counters_row(counters: TaskCounters) -> tuple[Any, ...]:
    return _written([getattr(counters, c.name) for c in COUNTER_COLUMNS], COUNTER_COLUMNS)


def _written(values: list[Any], columns: tuple[Column, ...]) -> tuple[Any, ...]:
    for i, column in enumerate(columns):
        if column.to_db is not None and (values[i] is not None or not column.nullable):
            values[i] = column.to_db(values[i])
    return tuple(values)


def task_from_row(row: tuple[Any, ...]) -> StoredTask:
    """A task from the values of :data:`TASK_COLUMNS` (the start-up hot path: at 100k tasks
    this loop is most of the time, so it works on positions, not names)."""
    values = list(row)
    for i, read in _TASK_READERS:
        if values[i] is not None:
            values[i] = read(values[i])
    counters_end = _N_SPEC + _N_COUNTERS
    return StoredTask(
        TaskSpec(*values[:_N_SPEC]),
        TaskCounters(*values[_N_SPEC:counters_end]),
        *values[counters_end:],
    )


def execution_row(record: ExecutionRecord) -> tuple[Any, ...]:
    """A record as the values of :data:`EXECUTION_COLUMNS`."""
    return _written([getattr(record, c.name) for c in EXECUTION_COLUMNS], EXECUTION_COLUMNS)


def process_row(process: RunProcess) -> tuple[Any, ...]:
    return _written([getattr(process, c.name) for c in PROCESS_COLUMNS], PROCESS_COLUMNS)


def execution_from_row(row: tuple[Any, ...]) -> ExecutionRecord:
    values = list(row)
    for i, read in _EXECUTION_READERS:
        if values[i] is not None:
            values[i] = read(values[i])
    return ExecutionRecord.model_validate(dict(zip(EXECUTION_FIELDS, values, strict=True)))


# SQL fragments over columns: written from the same definitions.


def create_table(
    name: str,
    columns: tuple[Column, ...],
    key: str,
    *,
    types: Mapping[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> str:
    """``types``: see :meth:`Column.declared`; ``extra``: declarations of columns that no
    model holds (the backend's own)."""
    declarations = [*(c.declared(types) for c in columns), *extra, f"PRIMARY KEY ({key})"]
    body = ",\n    ".join(declarations)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {body}\n);\n"


def names(columns: tuple[Column, ...]) -> str:
    return ", ".join(column.name for column in columns)


def marks(columns: tuple[Column, ...], mark: str = "?") -> str:
    """A parameter placeholder per column (``?``: SQLite's; ``%s``: psycopg's)."""
    return ", ".join([mark] * len(columns))


def assignments(columns: tuple[Column, ...], mark: str = "?") -> str:
    return ", ".join(f"{column.name} = {mark}" for column in columns)


def execution_filter(
    mark: str,
    *,
    task_id: str | None,
    registration_id: str | None,
    outcome: Outcome | None,
    node: str | None,
    since: float | None,
    until: float | None,
) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (empty without filters) and its parameters that select the
    executions :meth:`Store.list_executions` asks for, with ``mark`` as the driver's
    placeholder (``?``, ``%s``)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, op, value in (
        ("task_id", "=", task_id),
        ("registration_id", "=", registration_id),
        ("outcome", "=", outcome.value if outcome else None),
        ("node", "=", node),
        ("scheduled_at", ">=", since),
        ("scheduled_at", "<", until),
    ):
        if value is not None:
            clauses.append(f"{column} {op} {mark}")
            params.append(value)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def newer_version(version: int, known: int) -> StartupError:
    """The refusal of a database a newer omnimind wrote (schema ``version``; this one
    knows up to ``known``): changing it would lose what that version stores."""
    return StartupError(
        f"the database was written by a newer omnimind (schema version {version}; this "
        f"one knows up to {known}): upgrade omnimind, or give it another "
        "database (OMNIMIND_DATABASE)"
    )


def pause_flag(paused: bool | None) -> int | None:
    """``set_schedule``'s ``paused`` as written: None leaves the column as it is."""
    return None if paused is None else int(paused)
