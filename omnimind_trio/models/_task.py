"""A task: its definition (:class:`TaskSpec`, the one place a task field is declared) and
the counters kept beside it.

Everything else derives from :class:`TaskSpec`'s fields: the add body (:data:`TaskCreate`),
the patch body (:data:`TaskPatch`), the store's columns, the detail view, the OpenAPI
document and the CLI's ``add``/``edit`` options. To add a field, declare it here (with its
constraints and a description), then document it; see CONTRIBUTING.md.

``TaskSpec`` is a frozen, slotted dataclass that pydantic validates (a stdlib dataclass
with ``Field`` metadata), not a ``BaseModel``: the scheduler holds one per task, and 100,000
of them as models would cost about 1.2 KB each instead of about 0.2 KB.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from pydantic_core import PydanticCustomError

from ..exceptions import InvalidInput
from ._enums import OnBusy, OnMissed, Overlap, Priority
from ._fields import (
    NODE_NAME_RULE,
    Conditions,
    Cron,
    Environment,
    NodeName,
    NotifySpec,
    PythonPath,
    Secrets,
    TimeZoneName,
)

TASK_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
RESERVED_TASK_IDS: Final = frozenset({"add", "batch"})
"""Path words under /daemon/tasks/: a task of that name could not be addressed."""


def _check_task_id(value: Any) -> Any:
    if isinstance(value, str) and not value:
        raise PydanticCustomError("task_id", "task_id must not be empty")
    if isinstance(value, str) and len(value) > 128:
        raise PydanticCustomError("task_id", "task_id must be at most 128 characters")
    if isinstance(value, str) and value in RESERVED_TASK_IDS:
        raise PydanticCustomError("task_id", "task_id '{value}' is reserved", {"value": value})
    return value


TaskId = Annotated[str, BeforeValidator(_check_task_id), Field(pattern=TASK_ID_PATTERN)]
"""A task id, as ``after`` names one."""


def _check_priority(value: Any) -> Any:
    if isinstance(value, Priority) or (isinstance(value, str) and value in Priority.__members__):
        return Priority(value)
    raise PydanticCustomError("priority", "Invalid priority: {value}", {"value": value})


def _choice(description: str) -> Any:
    """A policy field: an enum read from its JSON string (lax, so ``"queue"`` is accepted
    while the body stays strict elsewhere: ``"4"`` is not an integer)."""
    return Field(strict=False, description=description)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task's definition: what ``POST /daemon/tasks/add`` carries and ``PATCH`` changes."""

    # No NaN or infinity in any float field: "Input should be a finite number".
    __pydantic_config__ = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    task_id: Annotated[
        str,
        BeforeValidator(_check_task_id),
        Field(pattern=TASK_ID_PATTERN, description="Unique id: letters, digits, _ - ."),
    ]
    name: Annotated[str, Field(min_length=1, max_length=200, description="Human-readable name")]
    description: Annotated[str, Field(max_length=4000, description="What the task does")]
    priority: Annotated[
        Priority,
        BeforeValidator(_check_priority),
        Field(description="CRITICAL, HIGH, MEDIUM or LOW"),
    ]
    code: Annotated[
        str | None,
        Field(description="Python source defining execute(); null for an in-process task"),
    ]
    repeat_hours: Annotated[
        int | None, Field(ge=1, le=24 * 366, description="Run every N hours (null: once)")
    ] = None
    repeat_minutes: Annotated[
        int | None, Field(ge=1, le=527040, description="Run every N minutes (null: once)")
    ] = None
    cron: Annotated[
        Cron | None,
        Field(description="Run at the times of a cron expression (five fields, or @daily...)"),
    ] = None
    timezone: Annotated[
        TimeZoneName | None,
        Field(description="IANA time zone of cron (default: the daemon's, OMNIMIND_TIMEZONE)"),
    ] = None
    after: Annotated[
        tuple[TaskId, ...] | None,
        Field(
            strict=False,  # a JSON array
            min_length=1,
            max_length=64,
            description="Run once each of these tasks has succeeded since this one last started",
        ),
    ] = None
    timeout_seconds: Annotated[
        float | None,
        Field(gt=0, le=7 * 86400, description="Kill a run after this long"),
    ] = None
    max_memory_mb: Annotated[
        int | None, Field(ge=16, le=1024 * 1024, description="Address-space cap of a run")
    ] = None
    max_cpu_seconds: Annotated[
        int | None, Field(ge=1, le=10**7, description="CPU-time cap of a run")
    ] = None
    on_busy: Annotated[OnBusy, _choice("What a run does when the user comes back")] = OnBusy.FREEZE
    overlap: Annotated[Overlap, _choice("What a run due while one runs does")] = Overlap.SKIP
    on_missed: Annotated[OnMissed, _choice("What runs missed while down do")] = OnMissed.ONCE
    max_retries: Annotated[
        int, Field(ge=0, le=100, description="Retry a failed run up to N times")
    ] = 0
    max_delay_hours: Annotated[
        float | None,
        Field(
            gt=0,
            le=24 * 366,
            description="Run anyway after waiting this long for its gate",
        ),
    ] = None
    conditions: Annotated[
        Conditions | None,
        Field(description="Run only while these hold: user_away, on_ac_power, unmetered_network"),
    ] = None
    machines: Annotated[
        tuple[NodeName, ...] | None,
        Field(
            strict=False,  # a JSON array
            min_length=1,
            max_length=32,
            description="Run only on the daemons of these node names (OMNIMIND_NODE_NAME); "
            "null: on any",
        ),
    ] = None
    notify: Annotated[
        NotifySpec | None,
        Field(description="Notifications: on failure, recovery, success; webhook, desktop"),
    ] = None
    env: Annotated[
        Environment | None, Field(description="Environment variables of a run (name: value)")
    ] = None
    secrets: Annotated[
        Secrets | None,
        Field(
            description="Environment variables whose values are write-only and masked "
            "(*** in output); reads show their names",
            json_schema_extra={"writeOnly": True},  # the dashboard's form never shows them
        ),
    ] = None
    python: Annotated[
        PythonPath | None,
        Field(description="Absolute path of the Python 3.8+ interpreter that runs it"),
    ] = None

    @property
    def repeat_seconds(self) -> float | None:
        """The interval of a repeating task (``repeat_hours`` or ``repeat_minutes``)."""
        if self.repeat_hours is not None:
            return self.repeat_hours * 3600.0
        if self.repeat_minutes is not None:
            return self.repeat_minutes * 60.0
        return None

    @property
    def max_delay_seconds(self) -> float | None:
        return None if self.max_delay_hours is None else self.max_delay_hours * 3600.0

    def as_dict(self) -> dict[str, Any]:
        """Every field by name (enums as themselves)."""
        return {name: getattr(self, name) for name in TASK_FIELDS}

    def replace(self, **changes: Any) -> TaskSpec:
        return dataclasses.replace(self, **changes)


TASK_FIELDS: Final = tuple(field.name for field in dataclasses.fields(TaskSpec))
"""Every field of a task's definition, in declaration order."""
TASK_FIELD_TYPES: Final[dict[str, Any]] = {
    name: hint
    for name, hint in typing.get_type_hints(TaskSpec, include_extras=True).items()
    if name in TASK_FIELDS
}
"""Each field's annotated type (with its constraints)."""


def base_type(hint: Any) -> tuple[Any, bool]:
    """(the base type, whether None is allowed) of an annotation: ``Annotated[int | None,
    ...]`` gives ``(int, True)``; a union of several types gives ``(Any, True)``."""
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return (base_type(options[0])[0] if len(options) == 1 else Any), True
    return hint, False


def field_description(name: str) -> str:
    """A field's one-line description (from its ``Field``)."""
    for meta in typing.get_args(TASK_FIELD_TYPES[name])[1:]:
        description = getattr(meta, "description", None)
        if description:
            return str(description)
    return name.replace("_", " ")


SCHEDULE_FIELDS: Final = ("cron", "repeat_hours", "repeat_minutes", "after")
"""What makes a task run again; at most one of them per task."""

PROCESS_FIELDS: Final = ("env", "secrets", "python")
"""What only a task that runs in a process of its own (code) can use."""

IDENTITY_FIELDS: Final = ("task_id", "name", "description", "priority", "code")
"""The fields every task states; the others are options with defaults."""
OPTION_FIELDS: Final = tuple(name for name in TASK_FIELDS if name not in IDENTITY_FIELDS)


def _field_default(name: str) -> Any:
    field = next(f for f in dataclasses.fields(TaskSpec) if f.name == name)
    return ... if field.default is dataclasses.MISSING else field.default


_BODY_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

TaskCreate: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "TaskCreate",
    __config__=_BODY_CONFIG,
    __doc__="The body of ``POST /daemon/tasks/add``.",
    **{
        name: (TASK_FIELD_TYPES[name], _field_default(name))
        if name != "code"
        # A task added over the API is code; a null ``code`` is an in-process task, which
        # only the program embedding the daemon can register.
        else (Annotated[str, Field(description="Python source defining execute()")], ...)
        for name in TASK_FIELDS
    },
)
"""The add body: every field of :class:`TaskSpec`, with code required."""

TaskPatch: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "TaskPatch",
    __config__=_BODY_CONFIG,
    __doc__="The body of ``PATCH /daemon/tasks/{task_id}``: the fields to change; null "
    "clears an optional one. task_id may be given only unchanged.",
    **{name: (TASK_FIELD_TYPES[name] | None, None) for name in TASK_FIELDS},
)
"""The patch body, for the OpenAPI document: every field optional. A patch is validated by
laying it over the current definition and validating the result as an add."""


@dataclass(slots=True)
class TaskCounters:
    execution_count: int = 0
    success_count: int = 0
    failure_count: int = 0
    last_execution: float | None = None
    """Epoch seconds of the last run's start."""


def parse_task_spec(data: Any, *, max_code_bytes: int) -> TaskSpec:
    """Validate an add request body. Raises :class:`InvalidInput` naming the first problem."""
    if not isinstance(data, dict):
        raise InvalidInput("Request body must be a JSON object")
    try:
        body = TaskCreate.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
    spec = TaskSpec(**dict(body))
    check_code_size(spec.code or "", max_code_bytes=max_code_bytes)
    check_fields_together(spec)
    return spec


def check_fields_together(spec: TaskSpec) -> None:
    """The rules across fields: one way to repeat (a body with two of
    :data:`SCHEDULE_FIELDS` names both), ``after`` without the task itself or a duplicate,
    ``machines`` without a duplicate, a variable in ``env`` or in ``secrets``, not both."""
    given = [name for name in SCHEDULE_FIELDS if getattr(spec, name) is not None]
    if len(given) > 1:
        raise InvalidInput(
            f"{given[0]} and {given[1]} are mutually exclusive: give one "
            "(null clears the other in a PATCH)"
        )
    if spec.after is not None and spec.task_id in spec.after:
        raise InvalidInput(f"after: a task cannot wait for itself ({spec.task_id})")
    if spec.after is not None and len(set(spec.after)) != len(spec.after):
        raise InvalidInput("after: a task id is listed twice")
    if spec.machines is not None and len(set(spec.machines)) != len(spec.machines):
        twice = next(name for name in spec.machines if spec.machines.count(name) > 1)
        raise InvalidInput(f"machines: {twice!r} is listed twice")
    if spec.env and spec.secrets:
        both = sorted(set(spec.env) & set(spec.secrets))
        if both:
            raise InvalidInput(f"env: {both[0]} is also in secrets: give it in one")


_IN_PROCESS_PLACEHOLDER = "def execute():\n    pass\n"


def parse_task_patch(data: Any, current: TaskSpec, *, max_code_bytes: int) -> TaskSpec:
    """Validate a ``PATCH`` body against the task it changes; returns the new definition.

    The patch is laid over the current definition and the result validated like an add,
    so the same rules (and messages) apply. ``null`` clears an optional field.
    """
    if not isinstance(data, dict):
        raise InvalidInput("Request body must be a JSON object")
    if not data:
        raise InvalidInput("Nothing to update: give at least one field")
    if "task_id" in data and data["task_id"] != current.task_id:
        raise InvalidInput("task_id cannot be changed")
    if current.code is None and "code" in data:
        raise InvalidInput("code cannot be set on an in-process task")
    for name in PROCESS_FIELDS:
        if current.code is None and data.get(name) is not None:
            raise InvalidInput(
                f"{name} applies to code tasks only (an in-process task runs in the daemon)"
            )
    merged = current.as_dict()
    if current.code is None:
        merged["code"] = _IN_PROCESS_PLACEHOLDER
    merged.update(data)
    spec = parse_task_spec(merged, max_code_bytes=max_code_bytes)
    return spec.replace(code=None) if current.code is None else spec


def describe_validation_error(exc: ValidationError) -> str:
    """The first error as one sentence: our own messages verbatim, others as ``field: msg``."""
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] in ("priority", "task_id"):
        return str(error["msg"])
    if error["type"] == "string_pattern_mismatch" and field == "task_id":
        return (
            "task_id may hold only letters, digits, '_', '-' and '.', "
            "and must start with a letter or digit"
        )
    if error["type"] == "string_pattern_mismatch" and field.startswith("after."):
        return f"after: {error['input']!r} is not a task id"
    if error["type"] == "string_pattern_mismatch" and field.startswith("machines."):
        return f"machines: {error['input']!r} is not a node name: {NODE_NAME_RULE}"
    if error["type"] == "tuple_type" and field == "after":
        return "after: give a list of task ids"
    if error["type"] in ("model_type", "dict_type"):  # JSON speaks of objects
        return f"{field}: Input should be an object"
    if error["type"] == "tuple_type":
        return f"{field}: Input should be a list"
    if error["type"] in ("too_short", "too_long"):  # a JSON array is a list, not a tuple
        return f"{field}: {error['msg'].replace('Tuple should', 'List should')}"
    if error["type"] == "value_error":  # our validators' sentences, without pydantic's prefix
        message = str(error["msg"]).removeprefix("Value error, ")
        return f"{field}: {message}"
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 2:
        parent, name = (str(part) for part in error["loc"])
        record, _ = base_type(TASK_FIELD_TYPES.get(parent))
        if isinstance(record, type) and issubclass(record, BaseModel):  # notify, conditions
            return f"{parent}: unknown name {name!r} (known: {', '.join(record.model_fields)})"
    if error["type"] == "extra_forbidden":
        return f"Unknown field: {field}"
    if error["type"] == "missing":
        return f"Missing required field: {field}"
    return f"{field}: {error['msg']}" if field else str(error["msg"])


def check_code_size(code: str, *, max_code_bytes: int) -> None:
    if len(code.encode("utf-8", "surrogatepass")) > max_code_bytes:
        raise InvalidInput(f"code must be at most {max_code_bytes} bytes")
