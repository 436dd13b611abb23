"""What the list endpoints can be asked: filters, order and page."""

from __future__ import annotations

import typing
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field

from ._enums import Outcome, Priority, TaskStatus

MAX_LIMIT: Final = 1000
MAX_OFFSET: Final = 10**9


class TaskSortKey(StrEnum):
    """The fields ``GET /daemon/tasks`` can sort on (``-`` before one: descending)."""

    TASK_ID = "task_id"
    NAME = "name"
    PRIORITY = "priority"
    STATUS = "status"
    EXECUTION_COUNT = "execution_count"
    SUCCESS_COUNT = "success_count"
    FAILURE_COUNT = "failure_count"
    LAST_EXECUTION = "last_execution"
    NEXT_EXECUTION = "next_execution"
    CREATED_AT = "created_at"


Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="At most this many")]
"""A page's size: the one definition the daemon's queries, the query strings and the OpenAPI
document share."""
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Skip this many")]
"""How many to skip before a page: shared like :data:`Limit`."""


def integer_bounds(annotated: Any) -> tuple[int | None, int | None]:
    """The inclusive (lowest, highest) an ``Annotated[int, Field(ge=..., le=...)]`` allows
    (None where it sets no bound)."""
    low: int | None = None
    high: int | None = None
    for meta in typing.get_args(annotated)[1:]:
        # A Field's constraints are annotated_types' Ge/Le (pydantic's own dependency).
        for item in getattr(meta, "metadata", [meta]):
            if isinstance(getattr(item, "ge", None), int):
                low = item.ge
            elif isinstance(getattr(item, "le", None), int):
                high = item.le
    return low, high


PAGE_BOUNDS: Final = {"limit": integer_bounds(Limit), "offset": integer_bounds(Offset)}
"""The bounds of ``limit`` and ``offset``, for the 400's wording."""


class TaskQuery(BaseModel):
    """Which tasks to list, in what order. Ties keep insertion order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: frozenset[Priority] | None = Field(default=None, description="Only these priorities")
    status: frozenset[TaskStatus] | None = Field(default=None, description="Only these statuses")
    q: str | None = Field(default=None, description="Text in the id, name or description")
    after: frozenset[str] | None = Field(
        default=None, description="Only the tasks whose after lists one of these"
    )
    sort: TaskSortKey | None = Field(
        default=None, description="Sort field (default: insertion order)"
    )
    descending: bool = False
    limit: Limit | None = None
    offset: Offset = 0


class ExecutionQuery(BaseModel):
    """Which execution records to list, newest first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_id: str | None = None
    registration_id: str | None = Field(
        default=None, description="Only the runs of this registration of their task"
    )
    outcome: Outcome | None = None
    node: str | None = Field(
        default=None, description="Only the runs of the daemon of this node name"
    )
    since: float | None = Field(default=None, description="Scheduled at or after (epoch seconds)")
    until: float | None = Field(default=None, description="Scheduled before (epoch seconds)")
    limit: Limit = 100
    offset: Offset = 0
