"""The REST API: thin Quart routes over :class:`~.daemon.Daemon`.

Every route requires HTTP Basic credentials. Errors are JSON ``{"detail": ...}``; the one
place that maps exceptions to status codes is :data:`STATUS_FOR`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from quart import Response, g, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, UnsupportedMediaType
from werkzeug.routing import BaseConverter

from ..credentials import Credentials
from ..daemon import CONTENT_TYPE, Daemon, execution_summary, task_action, task_detail, task_summary
from ..exceptions import (
    Conflict,
    ExecutorError,
    InvalidInput,
    NotFound,
    OmniMindError,
    StoreError,
)
from ..models import parse_task_patch, parse_task_spec
from ._auth import WebSocketTokens
from ._batch import run_batch
from ._openapi import openapi_document
from ._queries import ExecutionQuery, parse_execution_query, parse_task_query

log = logging.getLogger(__name__)

STATUS_FOR: dict[type[OmniMindError], int] = {
    InvalidInput: 400,
    NotFound: 404,
    Conflict: 409,
    ExecutorError: 503,
    StoreError: 503,
}


def status_for(error: OmniMindError) -> int:
    """The HTTP status of a domain error: the one place that decides it."""
    return next((code for kind, code in STATUS_FOR.items() if isinstance(error, kind)), 500)


REALM = 'Basic realm="omnimind", charset="UTF-8"'


def create_app(daemon: Daemon, credentials: Credentials) -> QuartTrio:
    """The ASGI app serving ``daemon``."""
    app = QuartTrio("omnimind_trio")
    app.url_map.converters["task_id"] = TaskIdConverter
    app.config["MAX_CONTENT_LENGTH"] = daemon.settings.max_body_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]

    tokens = WebSocketTokens()

    extra_origins = {o.strip().rstrip("/") for o in daemon.settings.allowed_origins.split(",")}

    def foreign_origin(headers: Any, host: str) -> Response | None:
        """Refuse a browser request from another site (CSRF: a page must not be able to
        drive the daemon with credentials the browser cached). Only browsers send Origin."""
        origin = headers.get("Origin")
        if origin is None or origin in extra_origins:
            return None
        if origin in (f"http://{host}", f"https://{host}"):
            return None
        return _error(
            403,
            f"Cross-origin request refused: {origin} is not allowed (OMNIMIND_ALLOWED_ORIGINS)",
        )

    @app.before_request
    async def authenticate() -> Response | None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            refused = foreign_origin(request.headers, request.host)
            if refused is not None:
                return refused
        if credentials.check_header(request.headers.get("Authorization")):
            return None
        return _unauthenticated()

    @app.before_websocket
    async def authenticate_websocket() -> Response | None:
        refused = foreign_origin(websocket.headers, websocket.host)
        if refused is not None:
            return refused
        if credentials.check_header(websocket.headers.get("Authorization")):
            return None
        if tokens.redeem(websocket.args.get("token")):
            return None
        return _unauthenticated()

    @app.after_request
    async def finish(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        daemon.prom.count_request(request.method, rule, response.status_code)
        if _has_body() and not g.get("body_read", False):
            # We answered without reading the body (401, 404, 405, 413...). Nobody will
            # read it now, and hypercorn would wait for it to be consumed before the next
            # request on this keep-alive connection: that client would hang. Close instead.
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(OmniMindError)
    async def domain_error(error: OmniMindError) -> Response:
        return _error(status_for(error), error.detail)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 413:
            detail = f"Request body is larger than {daemon.settings.max_body_bytes} bytes"
        elif status == 404:
            detail = f"Not found: {request.path}"
        elif status == 415:
            detail = "Content-Type must be application/json"
        elif status == 405:
            detail = f"Method {request.method} is not allowed on {request.path}"
        else:
            detail = error.description or error.name
        response = _error(status, detail)
        allowed = getattr(error, "valid_methods", None)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.errorhandler(Exception)
    async def internal_error(error: Exception) -> Response:
        log.error("unhandled error in %s %s", request.method, request.path, exc_info=error)
        return _error(500, "Internal server error")

    @app.get("/daemon/status")
    async def status() -> dict[str, Any]:
        return daemon.status()

    @app.get("/daemon/tasks")
    async def list_tasks() -> dict[str, Any]:
        query = parse_task_query(request.args)
        tasks = daemon.scheduler.tasks
        page, total = query.apply(tasks.values(), len(tasks))
        return {"tasks": [task_summary(entry) for entry in page], "total_tasks": total}

    @app.post("/daemon/tasks/add")
    async def add_task() -> dict[str, Any]:
        spec = parse_task_spec(await _json_body(), max_code_bytes=daemon.settings.max_code_bytes)
        await daemon.add_task(spec)
        return {
            "status": "task_added",
            "task_id": spec.task_id,
            "message": f"Task '{spec.name}' added successfully",
        }

    @app.post("/daemon/tasks/batch")
    async def batch() -> dict[str, Any]:
        return await run_batch(daemon, await _json_body(), status_for)

    @app.get("/daemon/tasks/<task_id:task_id>")
    async def show_task(task_id: str) -> dict[str, Any]:
        return task_detail(daemon, daemon.scheduler.get(task_id))

    @app.patch("/daemon/tasks/<task_id:task_id>")
    async def update_task(task_id: str) -> dict[str, Any]:
        current = daemon.scheduler.get(task_id).spec
        spec = parse_task_patch(
            await _json_body(), current, max_code_bytes=daemon.settings.max_code_bytes
        )
        entry = await daemon.update_task(task_id, spec)
        return {
            "status": "task_updated",
            "task_id": task_id,
            "message": f"Task '{spec.name}' updated successfully",
            "task": task_detail(daemon, entry),
        }

    @app.delete("/daemon/tasks/<task_id:task_id>")
    async def delete_task(task_id: str) -> dict[str, Any]:
        entry = await daemon.delete_task(task_id)
        return task_action("task_deleted", entry, "deleted")

    @app.post("/daemon/tasks/<task_id:task_id>/run")
    async def run_task(task_id: str) -> dict[str, Any]:
        return task_action("run_requested", daemon.run_task_now(task_id), "will run now")

    @app.post("/daemon/tasks/<task_id:task_id>/cancel")
    async def cancel_task(task_id: str) -> dict[str, Any]:
        entry = daemon.cancel_task(task_id)
        return task_action("cancel_requested", entry, "is being cancelled")

    @app.post("/daemon/tasks/<task_id:task_id>/pause")
    async def pause_task(task_id: str) -> dict[str, Any]:
        return task_action("paused", await daemon.pause_task(task_id), "paused")

    @app.post("/daemon/tasks/<task_id:task_id>/resume")
    async def resume_task(task_id: str) -> dict[str, Any]:
        return task_action("resumed", await daemon.resume_task(task_id), "resumed")

    @app.get("/daemon/tasks/<task_id:task_id>/executions")
    async def task_executions(task_id: str) -> dict[str, Any]:
        daemon.scheduler.get(task_id)  # 404 for an unknown task, not an empty list
        return await _executions(parse_execution_query(request.args, task_id=task_id))

    @app.get("/daemon/executions")
    async def executions() -> dict[str, Any]:
        return await _executions(parse_execution_query(request.args))

    @app.get("/daemon/executions/<execution_id>")
    async def execution(execution_id: str) -> dict[str, Any]:
        return (await daemon.get_execution(execution_id)).to_json()

    async def _executions(query: ExecutionQuery) -> dict[str, Any]:
        records, total = await daemon.store.list_executions(
            task_id=query.task_id,
            outcome=query.outcome,
            since=query.since,
            until=query.until,
            limit=query.page.limit or 100,
            offset=query.page.offset,
        )
        return {"executions": [execution_summary(r) for r in records], "total": total}

    @app.post("/daemon/start")
    async def start() -> dict[str, Any]:
        if await daemon.start():
            return {"status": "started", "message": "Daemon started successfully"}
        return {"status": "already_running", "message": "Daemon is already running"}

    @app.post("/daemon/stop")
    async def stop() -> dict[str, Any]:
        stopping = daemon.stop()
        await daemon.wait_stopped()  # answer once every record is written
        if stopping:
            return {"status": "stopped", "message": "Daemon stopped successfully"}
        return {"status": "not_running", "message": "Daemon is not running"}

    @app.post("/daemon/ws/token")
    async def websocket_token() -> dict[str, Any]:
        return {"token": tokens.issue(), "expires_in": tokens.lifetime_seconds}

    @app.websocket("/daemon/ws")
    async def live() -> None:
        """A status snapshot, then every event until the client leaves or falls behind."""
        with daemon.events.subscribe() as messages:
            await websocket.accept()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ignore_incoming)
                await websocket.send(json.dumps({"type": "status", **daemon.status()}))
                async for message in messages:
                    await websocket.send(message)
                nursery.cancel_scope.cancel()
        if daemon.events.closed:
            await websocket.close(1001, "the daemon is shutting down")
        else:  # the bus dropped us: we fell more than a buffer behind
            await websocket.close(1013, "too slow: more than the buffer behind; reconnect")

    @app.get("/openapi.json")
    async def openapi() -> dict[str, Any]:
        return openapi_document(request.host_url.rstrip("/"))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(daemon.prom.render(), content_type=CONTENT_TYPE)

    return app


class TaskIdConverter(BaseConverter):
    """A task id in a path; never ``add`` or ``batch``, so ``/daemon/tasks/add`` answers
    only to its own route (and a 405 lists the right methods)."""

    regex = r"(?!(?:add|batch)/?$)[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"


async def _ignore_incoming() -> None:
    """Read and drop what a WebSocket client sends (a browser's keep-alive messages, say):
    this API only talks. Unread, 20 messages fill quart's and hypercorn's queues, and the
    connection stops reading: the client's close, and its going away, go unseen."""
    while True:
        await websocket.receive()


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "")


async def _json_body() -> Any:
    # A JSON Content-Type is also what keeps a plain HTML form of another site out: a
    # browser sends it only after a CORS preflight, which this API never grants.
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    data = await request.get_data(cache=False)
    g.body_read = True
    if not data:
        raise InvalidInput("Request body is empty: a JSON object is required")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"Request body is not valid JSON: {exc}") from None


def _unauthenticated() -> Response:
    response = _error(401, "Not authenticated: valid HTTP Basic credentials are required")
    response.headers["WWW-Authenticate"] = REALM
    return response


def _error(status: int, detail: str) -> Response:
    return Response(json.dumps({"detail": detail}), status=status, content_type="application/json")
