"""The execution history routes."""

from __future__ import annotations

from quart import Response, request

from ..daemon import Daemon
from ..models import ExecutionList, ExecutionRecord
from ._body import respond
from ._queries import (
    AllExecutionsParameters,
    ExecutionListParameters,
    LogParameters,
    parse_parameters,
)
from ._routing import Routes
from ._tasks import TASK


def add_execution_routes(routes: Routes, daemon: Daemon) -> None:
    route = routes.route

    @route(
        "GET",
        TASK + "/executions",
        "A task's executions, newest first",
        response=ExecutionList,
        query=ExecutionListParameters,
        errors=(400, 404),
    )
    async def task_executions(task_id: str) -> Response:
        task = daemon.get_task(task_id)  # 404 for an unknown task, not an empty list
        parameters = parse_parameters(ExecutionListParameters, request.args)
        # This task's runs: not those of a task deleted before it under its id.
        query = parameters.to_query(task_id, task.registration_id)
        return respond(await daemon.list_executions(query))

    @route(
        "GET",
        "/daemon/executions",
        "Every task's executions, newest first",
        response=ExecutionList,
        query=AllExecutionsParameters,
        errors=(400,),
    )
    async def executions() -> Response:
        parameters = parse_parameters(AllExecutionsParameters, request.args)
        return respond(await daemon.list_executions(parameters.to_query()))

    @route(
        "GET",
        "/daemon/executions/<execution_id>",
        "One execution with its output",
        response=ExecutionRecord,
        errors=(404,),
    )
    async def execution(execution_id: str) -> Response:
        return respond(await daemon.get_execution(execution_id))

    @route(
        "GET",
        "/daemon/executions/<execution_id>/log",
        "One execution's whole output as text (so far, while it runs)",
        response=None,
        query=LogParameters,
        content_type="text/plain",
        errors=(400, 404),
    )
    async def execution_log(execution_id: str) -> Response:
        parameters = parse_parameters(LogParameters, request.args)
        text = await daemon.execution_log(execution_id, parameters.tail)
        return Response(text, content_type="text/plain; charset=utf-8")
