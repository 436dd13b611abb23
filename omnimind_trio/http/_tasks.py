"""The task routes: list, add, show, change, delete, and the actions on one task."""

from __future__ import annotations

from quart import Response, request

from ..daemon import Daemon
from ..models import (
    ActionResult,
    RunRequested,
    TaskCreate,
    TaskDetail,
    TaskExportBody,
    TaskList,
    TaskPatch,
    TaskRows,
    TaskSummary,
    TaskUpdated,
    parse_task_spec,
)
from ._body import json_object, respond
from ._queries import TaskListParameters, parse_parameters
from ._routing import Routes

TASK = "/daemon/tasks/<task_id:task_id>"


def action(status: str, task: TaskSummary, verb: str) -> ActionResult:
    """The answer to an action on one task: ``{"status", "task_id", "message"}``."""
    return ActionResult(status=status, task_id=task.task_id, message=f"Task '{task.name}' {verb}")


async def run_requested(daemon: Daemon, task_id: str) -> RunRequested:
    """Request a run now; the answer names the execution it will be, and comes once its
    start record is committed when it starts at once (so a crash cannot lose it)."""
    execution_id = await daemon.request_run(task_id)
    task = daemon.get_task(task_id)
    return RunRequested(
        status="run_requested",
        task_id=task_id,
        message=f"Task '{task.name}' will run now",
        execution_id=execution_id,
    )


def add_task_routes(routes: Routes, daemon: Daemon) -> None:
    route = routes.route

    @route(
        "GET",
        "/daemon/tasks",
        "List tasks",
        response=TaskList,
        query=TaskListParameters,
        errors=(400,),
    )
    async def list_tasks() -> Response:
        query = parse_parameters(TaskListParameters, request.args).to_query()
        return respond(daemon.list_tasks(query))

    @route(
        "GET",
        "/daemon/dashboard/tasks",
        "The dashboard's task table: tasks with their state and latest runs",
        response=TaskRows,
        query=TaskListParameters,
        errors=(400,),
    )
    async def task_rows() -> Response:
        query = parse_parameters(TaskListParameters, request.args).to_query()
        return respond(await daemon.task_rows(query))

    @route(
        "POST",
        "/daemon/tasks/add",
        "Add a task",
        response=ActionResult,
        body=TaskCreate,
        errors=(400, 409, 413, 415, 503),
    )
    async def add_task() -> Response:
        spec = parse_task_spec(await json_object(), max_code_bytes=daemon.settings.max_code_bytes)
        task = await daemon.add_task(spec)
        return respond(action("task_added", task, "added successfully"))

    @route(
        "GET",
        "/daemon/export",
        "Every code task as a batch body that adds it again (secret values left out)",
        response=TaskExportBody,
    )
    async def export_tasks() -> Response:
        return respond(daemon.export_tasks())

    @route("GET", TASK, "Show a task", response=TaskDetail, errors=(404,))
    async def show_task(task_id: str) -> Response:
        return respond(daemon.get_task(task_id))

    @route(
        "PATCH",
        TASK,
        "Change a task",
        response=TaskUpdated,
        body=TaskPatch,
        errors=(400, 404, 413, 415, 503),
    )
    async def update_task(task_id: str) -> Response:
        daemon.get_task(task_id)  # an unknown task is a 404 before its body is read
        task = await daemon.update_task(task_id, await json_object())
        answer = TaskUpdated(
            status="task_updated",
            task_id=task_id,
            message=f"Task '{task.name}' updated successfully",
            task=task,
        )
        return respond(answer)

    @route(
        "DELETE",
        TASK,
        "Delete a task (its history stays)",
        response=ActionResult,
        errors=(404, 409, 503),
    )
    async def delete_task(task_id: str) -> Response:
        return respond(action("task_deleted", await daemon.delete_task(task_id), "deleted"))

    @route(
        "POST",
        TASK + "/run",
        "Run a task now, whatever the load or hour",
        response=RunRequested,
        errors=(404, 409),
    )
    async def run_task(task_id: str) -> Response:
        return respond(await run_requested(daemon, task_id))

    @route(
        "POST",
        TASK + "/cancel",
        "Kill a task's running execution",
        response=ActionResult,
        errors=(404, 409),
    )
    async def cancel_task(task_id: str) -> Response:
        task = daemon.cancel_task(task_id)
        return respond(action("cancel_requested", task, "is being cancelled"))

    @route(
        "POST", TASK + "/pause", "Stop scheduling a task", response=ActionResult, errors=(404, 503)
    )
    async def pause_task(task_id: str) -> Response:
        return respond(action("paused", await daemon.pause_task(task_id), "paused"))

    @route(
        "POST",
        TASK + "/resume",
        "Schedule a paused task again",
        response=ActionResult,
        errors=(404, 503),
    )
    async def resume_task(task_id: str) -> Response:
        return respond(action("resumed", await daemon.resume_task(task_id), "resumed"))
