"""What the API answers: one model per response body and per event.

The task detail derives its definition fields from :class:`~._task.TaskSpec`, so a new task
field shows in it (and in the OpenAPI document) with no edit here.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model

from ._enums import DaemonState, Priority, TaskStatus
from ._execution import ExecutionSummary, RegistrationId
from ._task import TASK_FIELD_TYPES, TASK_FIELDS
from ._time import Instant

_RESPONSE = ConfigDict(json_schema_serialization_defaults_required=True)


class Response(BaseModel):
    """Base of every response body: every field is always present."""

    model_config = _RESPONSE

    def json_body(self) -> dict[str, Any]:
        """The body as JSON values."""
        return self.model_dump(mode="json")

    def json_text(self) -> str:
        """The body as JSON text (serialized by pydantic-core in one pass)."""
        return self.model_dump_json()


class ErrorBody(Response):
    """Every error answer."""

    detail: str = Field(description="What is wrong, in one sentence")


class StatusMetrics(Response):
    cpu_percent: float
    memory_percent: float
    is_idle: bool
    is_sleep_time: bool


class Status(Response):
    """``GET /daemon/status``: the API document's shape, exactly."""

    state: DaemonState
    running: bool
    tasks_registered: int
    tasks_pending: int
    metrics: StatusMetrics
    cloud_enabled: bool
    workspace: str


class TaskSummary(Response):
    """A task as ``GET /daemon/tasks`` lists it: the API document's fields, exactly."""

    task_id: str
    name: str
    description: str
    priority: Priority
    execution_count: int
    success_count: int
    failure_count: int
    last_execution: Instant | None
    repeat_interval: str | None = Field(
        description="H:MM:SS between runs (repeat_hours, repeat_minutes); null otherwise "
        "(a one-shot, a cron or an after task: see the detail's schedule)"
    )


class TaskList(Response):
    tasks: list[TaskSummary]
    total_tasks: int = Field(description="Tasks matching the filters (before paging)")


class Waiting(BaseModel):
    """Why a task is not running and when it should; only the keys its ``reason`` uses
    are present."""

    reason: str = Field(
        description="stopped, paused, machine, done, scheduled, upstream, backoff, gate, "
        "condition, frozen, catch_up, slot or starting"
    )
    detail: str = Field(description="The same in words")
    until: Instant | None = None
    expected_start: Instant | None = None
    run_by: Instant | None = Field(default=None, description="When max_delay_hours forces a run")
    opens_at: Instant | None = None
    gate: str | None = None
    cpu_percent: float | None = None
    threshold_percent: float | None = None
    dwell_remaining_seconds: float | None = None
    in_use: int | None = None
    limit: int | None = None
    upstream: list[str] | None = Field(
        default=None, description="The tasks of after still to succeed (reason upstream)"
    )
    condition: str | None = Field(
        default=None, description="The condition that does not hold (reason condition, frozen)"
    )
    machines: list[str] | None = Field(
        default=None, description="The machines the task runs on (reason machine)"
    )
    node: str | None = Field(
        default=None, description="This daemon's node name, which they leave out (reason machine)"
    )
    value: float | bool | None = Field(
        default=None, description="Its measurement: idle seconds, on AC power, metered"
    )
    source: str | None = Field(default=None, description="Where the measurement came from")

    def json_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class ConditionStatus(Response):
    """One of a task's ``conditions`` and where it stands now."""

    name: str = Field(description="user_away, on_ac_power or unmetered_network")
    holds: bool = Field(description="True when it holds, or when it cannot be measured")
    value: float | bool | None = Field(
        description="The measurement: idle seconds, on AC power, metered (null: unknown)"
    )
    source: str | None = Field(description="Where the measurement came from")
    detail: str = Field(description="The same in words")


class TaskState(Response):
    """Where a task stands: the detail's fields beyond its summary and its definition."""

    status: TaskStatus
    kind: str = Field(description="code, or in_process for a task its embedding program runs")
    paused: bool
    registration_id: RegistrationId
    created_at: Instant = Field(description="When this registration was made (the task added)")
    next_execution: Instant | None
    waiting_since: Instant | None
    retry_attempt: int
    waiting_reason: str | None = Field(description="Why a due task waits, in words")
    waiting: Waiting | None = Field(description="Why it waits, as data")
    running_execution_id: str | None
    schedule: str = Field(
        description='The schedule in words: "every 2 hours", "At 02:30 every day '
        '(Europe/Paris)", "after backup", "once"'
    )
    followed_by: list[str] = Field(
        description="The tasks whose after names this one, in insertion order"
    )
    upcoming: list[Instant] = Field(
        description="The next five due times (none while paused, or for an after task)"
    )
    conditions_status: list[ConditionStatus] = Field(
        description="Each condition the task asks for, and where it stands now"
    )


_SUMMARY_FIELDS: Final = frozenset(TaskSummary.model_fields)
TaskDefinitionView: type[Response] = create_model(  # type: ignore[call-overload]
    "TaskDefinitionView",
    __base__=Response,
    **{
        name: (TASK_FIELD_TYPES[name], ...)
        for name in TASK_FIELDS
        if name not in _SUMMARY_FIELDS and name != "secrets"
    },
    # Secret values are write-only: a read shows their names.
    secrets=(
        list[str] | None,
        Field(description="The names of the task's secrets (their values are never shown)"),
    ),
)
"""The detail's definition fields: every :class:`TaskSpec` field beyond the summary's, with
the daemon's defaults filled in (``timeout_seconds``...)."""


class TaskDetail(TaskState, TaskDefinitionView, TaskSummary):  # type: ignore[misc, valid-type]
    """``GET /daemon/tasks/{task_id}``: the summary, the definition and the state."""

    # ``waiting`` holds only the keys its reason uses.
    def json_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)

    def json_text(self) -> str:
        return self.model_dump_json(exclude_unset=True)


class ActionResult(Response):
    """The answer to an action on one task."""

    status: str
    task_id: str
    message: str


class RunRequested(ActionResult):
    """The answer to a run-now request: the id the run's execution record will have."""

    execution_id: str = Field(
        description="The execution this request will run: GET /daemon/executions/{id}"
    )


class TaskUpdated(ActionResult):
    task: TaskDetail

    def json_text(self) -> str:
        return self.model_dump_json(exclude_unset=True)  # the task's ``waiting``


class DaemonAction(Response):
    status: str
    message: str


class ExecutionList(Response):
    executions: list[ExecutionSummary] = Field(description="Newest first")
    total: int


class WebSocketToken(Response):
    token: str
    expires_in: float


class WhoAmI(Response):
    """``GET /daemon/whoami``: the credential a request came with."""

    user: str
    role: Literal["admin", "viewer"] = Field(
        description="admin may do everything; viewer may only read"
    )


class Event(BaseModel):
    """One WebSocket message: the daemon's ``state`` rides on every one."""

    _json: str | None = PrivateAttr(None)

    type: str = Field(
        description="status (the first message), state_changed, task_added, task_updated, "
        "task_removed, task_waiting, execution_started, execution_finished, "
        "execution_frozen, execution_thawed, execution_output, gates_changed, metrics"
    )
    state: DaemonState
    time: str = Field(description="When it happened, ISO-8601 UTC")
    data: dict[str, Any]

    def as_json(self) -> str:
        """The message as sent: serialized once, whatever the number of subscribers."""
        if self._json is None:
            self._json = self.model_dump_json()
        return self._json


__all__ = [
    "ActionResult",
    "DaemonAction",
    "ErrorBody",
    "Event",
    "ExecutionList",
    "RunRequested",
    "Status",
    "StatusMetrics",
    "TaskDefinitionView",
    "TaskDetail",
    "TaskList",
    "TaskState",
    "TaskSummary",
    "TaskUpdated",
    "Waiting",
    "WebSocketToken",
    "WhoAmI",
]
