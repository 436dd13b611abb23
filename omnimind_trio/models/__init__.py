"""The records the daemon keeps and answers with: one definition each.

- :class:`TaskSpec` declares a task's fields once; the add and patch bodies, the store's
  columns, the task detail, the OpenAPI document and the CLI's options derive from it.
- :class:`ExecutionRecord` is one run: stored as is, answered as its JSON dump.
- The response bodies and events (:mod:`._views`), and the named values (:mod:`._enums`).

Imports: the standard library, pydantic, and :mod:`omnimind_trio.exceptions`.
"""

from ._enums import (
    DaemonState,
    OnBusy,
    OnMissed,
    Outcome,
    Overlap,
    Priority,
    TaskStatus,
    Trigger,
)
from ._execution import (
    EXECUTION_FIELDS,
    OUTPUT_FIELDS,
    ExecutionRecord,
    ExecutionSummary,
    Pause,
)
from ._queries import MAX_LIMIT, MAX_OFFSET, ExecutionQuery, TaskQuery, TaskSortKey
from ._system import SystemMetrics
from ._task import (
    IDENTITY_FIELDS,
    OPTION_FIELDS,
    TASK_FIELD_TYPES,
    TASK_FIELDS,
    TASK_ID_PATTERN,
    TaskCounters,
    TaskCreate,
    TaskPatch,
    TaskSpec,
    base_type,
    check_code_size,
    describe_validation_error,
    field_description,
    parse_task_patch,
    parse_task_spec,
)
from ._time import Instant, Measure, PreciseInstant, iso_utc
from ._views import (
    ActionResult,
    DaemonAction,
    ErrorBody,
    Event,
    ExecutionList,
    Response,
    RunRequested,
    Status,
    StatusMetrics,
    TaskDefinitionView,
    TaskDetail,
    TaskList,
    TaskState,
    TaskSummary,
    TaskUpdated,
    Waiting,
    WebSocketToken,
)

__all__ = [
    "EXECUTION_FIELDS",
    "IDENTITY_FIELDS",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "OPTION_FIELDS",
    "OUTPUT_FIELDS",
    "TASK_FIELDS",
    "TASK_FIELD_TYPES",
    "TASK_ID_PATTERN",
    "ActionResult",
    "DaemonAction",
    "DaemonState",
    "ErrorBody",
    "Event",
    "ExecutionList",
    "ExecutionQuery",
    "ExecutionRecord",
    "ExecutionSummary",
    "Instant",
    "Measure",
    "OnBusy",
    "OnMissed",
    "Outcome",
    "Overlap",
    "Pause",
    "PreciseInstant",
    "Priority",
    "Response",
    "RunRequested",
    "Status",
    "StatusMetrics",
    "SystemMetrics",
    "TaskCounters",
    "TaskCreate",
    "TaskDefinitionView",
    "TaskDetail",
    "TaskList",
    "TaskPatch",
    "TaskQuery",
    "TaskSortKey",
    "TaskSpec",
    "TaskState",
    "TaskStatus",
    "TaskSummary",
    "TaskUpdated",
    "Trigger",
    "Waiting",
    "WebSocketToken",
    "base_type",
    "check_code_size",
    "describe_validation_error",
    "field_description",
    "iso_utc",
    "parse_task_patch",
    "parse_task_spec",
]
