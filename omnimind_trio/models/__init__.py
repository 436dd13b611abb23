"""The records the daemon keeps and answers with: one definition each.

Validation, the JSON views, the OpenAPI document, the store's columns and the CLI's choices
all derive from these models. Imports: the standard library, pydantic, and
:mod:`omnimind_trio.exceptions`.
"""

from ._records import (
    DaemonState,
    ExecutionRecord,
    OnBusy,
    OnMissed,
    Outcome,
    Overlap,
    Priority,
    SystemMetrics,
    TaskCounters,
    TaskSpec,
    Trigger,
    iso_utc,
)
from ._validation import TaskCreate, parse_task_patch, parse_task_spec

__all__ = [
    "DaemonState",
    "ExecutionRecord",
    "OnBusy",
    "OnMissed",
    "Outcome",
    "Overlap",
    "Priority",
    "SystemMetrics",
    "TaskCounters",
    "TaskCreate",
    "TaskSpec",
    "Trigger",
    "iso_utc",
    "parse_task_patch",
    "parse_task_spec",
]
