"""Turning untrusted request data into a :class:`~.models.TaskSpec`, or a clear 400.

The code itself is checked by the daemon (:meth:`~.daemon.Daemon.add_task`), with the task
interpreter's own parser; see ``_worker.describe_code_problem``.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from ..exceptions import InvalidInput
from ._records import OnBusy, OnMissed, Overlap, Priority, TaskSpec

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
RESERVED_TASK_IDS = frozenset({"add", "batch"})
"""Path words under /daemon/tasks/: a task of that name could not be addressed."""


class TaskCreate(BaseModel):
    """The body of ``POST /daemon/tasks/add``. Strict: ``"4"`` is not an integer."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    task_id: Annotated[str, Field(pattern=TASK_ID_PATTERN)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=4000)]
    priority: Priority
    code: str
    repeat_hours: Annotated[int, Field(ge=1, le=24 * 366)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] | None = None
    max_memory_mb: Annotated[int, Field(ge=16, le=1024 * 1024)] | None = None
    max_cpu_seconds: Annotated[int, Field(ge=1, le=10**7)] | None = None
    # Enums from JSON strings: lax here, so "queue" is accepted (and 1 still is not).
    on_busy: Annotated[OnBusy, Field(strict=False)] = OnBusy.FREEZE
    overlap: Annotated[Overlap, Field(strict=False)] = Overlap.SKIP
    on_missed: Annotated[OnMissed, Field(strict=False)] = OnMissed.ONCE
    max_retries: Annotated[int, Field(ge=0, le=100)] = 0
    max_delay_hours: Annotated[float, Field(gt=0, le=24 * 366)] | None = None

    @field_validator("task_id", mode="before")
    @classmethod
    def _task_id(cls, value: Any) -> Any:
        if isinstance(value, str) and not value:
            raise PydanticCustomError("task_id", "task_id must not be empty")
        if isinstance(value, str) and len(value) > 128:
            raise PydanticCustomError("task_id", "task_id must be at most 128 characters")
        if isinstance(value, str) and value in RESERVED_TASK_IDS:
            raise PydanticCustomError("task_id", "task_id '{value}' is reserved", {"value": value})
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Priority:
        if isinstance(value, str) and value in Priority.__members__:
            return Priority[value]
        raise PydanticCustomError("priority", "Invalid priority: {value}", {"value": value})

    def to_spec(self) -> TaskSpec:
        return TaskSpec(
            task_id=self.task_id,
            name=self.name,
            description=self.description,
            priority=self.priority,
            code=self.code,
            repeat_hours=self.repeat_hours,
            timeout_seconds=self.timeout_seconds,
            max_memory_mb=self.max_memory_mb,
            max_cpu_seconds=self.max_cpu_seconds,
            on_busy=self.on_busy,
            overlap=self.overlap,
            on_missed=self.on_missed,
            max_retries=self.max_retries,
            max_delay_hours=self.max_delay_hours,
        )


def parse_task_spec(data: Any, *, max_code_bytes: int) -> TaskSpec:
    """Validate an add request body. Raises :class:`InvalidInput` naming the first problem."""
    if not isinstance(data, dict):
        raise InvalidInput("Request body must be a JSON object")
    try:
        body = TaskCreate.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
    check_code_size(body.code, max_code_bytes=max_code_bytes)
    return body.to_spec()


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
    if error["type"] == "extra_forbidden":
        return f"Unknown field: {field}"
    if error["type"] == "missing":
        return f"Missing required field: {field}"
    return f"{field}: {error['msg']}" if field else str(error["msg"])


def check_code_size(code: str, *, max_code_bytes: int) -> None:
    if len(code.encode("utf-8", "surrogatepass")) > max_code_bytes:
        raise InvalidInput(f"code must be at most {max_code_bytes} bytes")


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
    merged = {
        "task_id": current.task_id,
        "name": current.name,
        "description": current.description,
        "priority": current.priority.name,
        "code": current.code if current.code is not None else _IN_PROCESS_PLACEHOLDER,
        "repeat_hours": current.repeat_hours,
        "timeout_seconds": current.timeout_seconds,
        "max_memory_mb": current.max_memory_mb,
        "max_cpu_seconds": current.max_cpu_seconds,
        "on_busy": current.on_busy.value,
        "overlap": current.overlap.value,
        "on_missed": current.on_missed.value,
        "max_retries": current.max_retries,
        "max_delay_hours": current.max_delay_hours,
        **data,
    }
    spec = parse_task_spec(merged, max_code_bytes=max_code_bytes)
    if current.code is None:
        spec = dataclasses.replace(spec, code=None)
    return spec
