"""``GET /daemon/export``: the code tasks as a batch body (``POST /daemon/tasks/batch``)
that adds them again, on this daemon or another.

A task of the export is the add body (:data:`~._task.TaskCreate`) without ``secrets``: its
fields derive from it, so a new task field is exported with no edit here. Secret values
are never exported; ``omitted_secrets`` names the ones to set again.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from ._task import TaskCreate, TaskSpec
from ._views import Response

EXPORT_LEFT_OUT = frozenset({"secrets"})
"""The add body's fields an export leaves out: secret values never leave the daemon."""

TaskExport: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "TaskExport",
    __config__=TaskCreate.model_config,
    __doc__="A code task as an export adds it: the add body without secrets (fields at "
    "their default of null are left out).",
    **{
        name: (info.annotation, info)
        for name, info in TaskCreate.model_fields.items()
        if name not in EXPORT_LEFT_OUT
    },
)


def task_export(spec: TaskSpec) -> BaseModel:
    """A code task as an export adds it. Built without validating again: the definition
    is valid already, and its checks (cron, zones) would cost 80 µs a task."""
    fields = {k: v for k, v in spec.as_dict().items() if k not in EXPORT_LEFT_OUT}
    return TaskExport.model_construct(**fields)


class ExportAdd(Response):
    op: Literal["add"] = "add"
    task: TaskExport  # type: ignore[valid-type]


class ExportPause(Response):
    """After the add of a paused task: it stays paused where it is restored."""

    op: Literal["pause"] = "pause"
    task_id: str


class TaskExportBody(Response):
    """``GET /daemon/export``: a batch body (``POST /daemon/tasks/batch`` takes it as it
    is) that adds every code task, each after the tasks it runs after."""

    atomic: bool = Field(default=True, description="Restore all of it or nothing")
    operations: list[ExportAdd | ExportPause] = Field(
        description="An add per code task (a pause after a paused one), each after the "
        "tasks of its after list"
    )
    omitted_secrets: dict[str, list[str]] = Field(
        description="Per task id, the names of the secrets whose values are not exported: "
        "set them again after restoring (the batch ignores this field)"
    )

    def json_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def json_text(self) -> str:
        return self.model_dump_json(exclude_none=True)


__all__ = ["ExportAdd", "ExportPause", "TaskExport", "TaskExportBody", "task_export"]
