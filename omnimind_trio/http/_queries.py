"""Query strings of the list endpoints, parsed by pydantic into the daemon's query models.

Unknown parameters, unknown values and malformed numbers or times are :class:`InvalidInput`
(400) naming the parameter, never silently ignored. The parameter models here describe the
query string as it is written (``priority=HIGH,LOW``, ``sort=-name``); the OpenAPI document
lists their fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from ..exceptions import InvalidInput
from ..models import (
    PAGE_BOUNDS,
    ExecutionQuery,
    Limit,
    Offset,
    Outcome,
    Priority,
    TaskQuery,
    TaskSortKey,
    TaskStatus,
)


def _one_of(name: str, kind: type[StrEnum]) -> Any:
    """A value of ``kind``, or the error ``Invalid <name>: <value> (one of: ...)``."""
    options = [member.value for member in kind]

    def check(value: Any) -> Any:
        if value not in options:
            raise PydanticCustomError(
                "one_of",
                "Invalid {name}: {value} (one of: {options})",
                {"name": name, "value": value, "options": ", ".join(options)},
            )
        return value

    return BeforeValidator(check)


def _csv(name: str, kind: type[StrEnum] | None = None) -> Any:
    """A comma-separated list of ``kind``'s values (of any words without ``kind``)."""
    one = (lambda value: value) if kind is None else _one_of(name, kind).func

    def split(value: Any) -> Any:
        values = [v.strip() for v in str(value).split(",") if v.strip()]
        if not values:
            raise PydanticCustomError("empty", "{name} must not be empty", {"name": name})
        return [one(v) for v in values]

    return BeforeValidator(split)


def _moment(value: Any) -> Any:
    """ISO-8601 (``2025-11-19T02:30:00Z``; no zone means UTC) or epoch seconds."""
    raw = str(value).strip()
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise PydanticCustomError("finite", "must be a finite time")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise PydanticCustomError(
            "moment",
            "must be an ISO-8601 time like 2025-11-19T02:30:00Z, not {raw!r}",
            {"raw!r": repr(raw)},
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _integer(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PydanticCustomError(
            "integer", "must be an integer, not {raw!r}", {"raw!r": repr(value)}
        ) from None


_MOMENT_SCHEMA = {
    "type": "string",
    "pattern": r"^(\d{1,12}(\.\d+)?|\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])"
    r"(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?)?)$",
    "description": "ISO-8601 (UTC unless zoned) or epoch seconds",
}
Moment = Annotated[float, BeforeValidator(_moment), WithJsonSchema(_MOMENT_SCHEMA)]
# The daemon's own page types (one definition of their bounds), read from a query string.
LimitParameter = Annotated[Limit, BeforeValidator(_integer)]
OffsetParameter = Annotated[Offset, BeforeValidator(_integer)]
_SORT_SCHEMA = {
    "type": "string",
    "enum": [f"{sign}{key.value}" for key in TaskSortKey for sign in ("", "-")],
}
_PARAMETERS = ConfigDict(extra="forbid", frozen=True)


class TaskListParameters(BaseModel):
    """``GET /daemon/tasks?...``"""

    model_config = _PARAMETERS

    priority: Annotated[list[Priority], _csv("priority", Priority)] | None = Field(
        default=None, description="Comma-separated: only these priorities"
    )
    status: Annotated[list[TaskStatus], _csv("status", TaskStatus)] | None = Field(
        default=None, description="Comma-separated: only these statuses"
    )
    q: str | None = Field(default=None, description="Text in the id, name or description")
    after: Annotated[list[str], _csv("after")] | None = Field(
        default=None, description="Comma-separated task ids: only the tasks that run after one"
    )
    sort: (
        Annotated[str, BeforeValidator(lambda v: _sort_key(v)), WithJsonSchema(_SORT_SCHEMA)] | None
    ) = Field(
        default=None,
        description="Sort field, descending with a - prefix: "
        + ", ".join(key.value for key in TaskSortKey),
    )
    limit: LimitParameter | None = None
    offset: OffsetParameter = 0

    def to_query(self) -> TaskQuery:
        descending = self.sort is not None and self.sort.startswith("-")
        return TaskQuery(
            priority=None if self.priority is None else frozenset(self.priority),
            status=None if self.status is None else frozenset(self.status),
            q=self.q or None,
            after=None if self.after is None else frozenset(self.after),
            sort=None if self.sort is None else TaskSortKey(self.sort.lstrip("-")),
            descending=descending,
            limit=self.limit,
            offset=self.offset,
        )


def _sort_key(value: Any) -> Any:
    _one_of("sort", TaskSortKey).func(str(value).lstrip("-"))
    return value


class ExecutionListParameters(BaseModel):
    """``GET /daemon/tasks/{task_id}/executions?...``"""

    model_config = _PARAMETERS

    outcome: Annotated[Outcome, _one_of("outcome", Outcome)] | None = None
    node: str | None = Field(
        default=None, description="Only the runs of the daemon of this node name"
    )
    since: Moment | None = Field(default=None, description="Scheduled at or after")
    until: Moment | None = Field(default=None, description="Scheduled before")
    limit: LimitParameter = 100
    offset: OffsetParameter = 0

    def to_query(
        self, task_id: str | None = None, registration_id: str | None = None
    ) -> ExecutionQuery:
        return ExecutionQuery(task_id=task_id, registration_id=registration_id, **self.model_dump())


class AllExecutionsParameters(ExecutionListParameters):
    """``GET /daemon/executions?...``"""

    task_id: str | None = Field(
        default=None, description="Only this task id's (every registration of it)"
    )
    registration_id: str | None = Field(
        default=None, description="Only the runs of this registration (a task detail's)"
    )

    def to_query(
        self, task_id: str | None = None, registration_id: str | None = None
    ) -> ExecutionQuery:
        return ExecutionQuery(**self.model_dump())


TAIL_BOUNDS = (0, 1_000_000)
BOUNDS = {**PAGE_BOUNDS, "tail": TAIL_BOUNDS}
"""Each bounded query parameter's (lowest, highest)."""


class LogParameters(BaseModel):
    """``GET /daemon/executions/{execution_id}/log?...``"""

    model_config = _PARAMETERS

    tail: (
        Annotated[int, Field(ge=TAIL_BOUNDS[0], le=TAIL_BOUNDS[1]), BeforeValidator(_integer)]
        | None
    ) = Field(default=None, description="Only the last N lines")


P = TypeVar("P", bound=BaseModel)


def parse_parameters(model: type[P], args: Mapping[str, str]) -> P:
    """``args`` as ``model``, or InvalidInput naming the first problem."""
    try:
        return model.model_validate(dict(args))
    except ValidationError as exc:
        raise InvalidInput(_describe(exc, model)) from None


def _describe(exc: ValidationError, model: type[BaseModel]) -> str:
    error = exc.errors(include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(model.model_fields))
        return f"Unknown query parameter: {name} (allowed: {allowed})"
    if kind in ("one_of", "empty"):
        return str(error["msg"])
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = BOUNDS[name]
        return f"{name} must be between {low} and {high}"
    return f"{name} {error['msg']}"
