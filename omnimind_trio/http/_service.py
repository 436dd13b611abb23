"""The daemon's own routes: status, start and stop, live updates, metrics, the API document."""

from __future__ import annotations

import json
from typing import Any

import trio
from quart import Response, request, websocket

from ..daemon import Daemon
from ..models import DaemonAction, Status, WebSocketToken
from ._auth import WebSocketTokens
from ._body import respond
from ._metrics import CONTENT_TYPE, RequestMetrics
from ._routing import Routes


def add_service_routes(
    routes: Routes, daemon: Daemon, tokens: WebSocketTokens, requests: RequestMetrics
) -> None:
    route = routes.route

    @route("GET", "/daemon/status", "The daemon's state and load", response=Status)
    async def status() -> Response:
        return respond(daemon.status())

    @route("POST", "/daemon/start", "Start running tasks", response=DaemonAction)
    async def start() -> dict[str, Any]:
        if await daemon.start():
            return {"status": "started", "message": "Daemon started successfully"}
        return {"status": "already_running", "message": "Daemon is already running"}

    @route(
        "POST",
        "/daemon/stop",
        "Stop running tasks; running executions are killed (the API keeps serving)",
        response=DaemonAction,
    )
    async def stop() -> dict[str, Any]:
        if not daemon.stop():
            return {"status": "not_running", "message": "Daemon is not running"}
        await daemon.wait_stopped()
        return {"status": "stopped", "message": "Daemon stopped successfully"}

    @route(
        "POST",
        "/daemon/ws/token",
        "A single-use token for /daemon/ws?token=... (browsers cannot send a header)",
        response=WebSocketToken,
    )
    async def websocket_token() -> dict[str, Any]:
        return {"token": tokens.issue(), "expires_in": tokens.lifetime_seconds}

    @route(
        "GET",
        "/metrics",
        "Prometheus metrics",
        response=None,
        content_type="text/plain",
    )
    async def metrics() -> Response:
        return Response(daemon.prometheus() + requests.render(), content_type=CONTENT_TYPE)

    @routes.app.websocket("/daemon/ws")
    async def live() -> None:
        """A status snapshot, then every event until the client leaves or falls behind."""
        with daemon.subscribe() as events:
            await websocket.accept()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ignore_incoming)
                snapshot = {"type": "status", **daemon.status().json_body()}
                await websocket.send(json.dumps(snapshot))
                async for event in events:
                    await websocket.send(event.as_json())
                nursery.cancel_scope.cancel()
        if daemon.events_closed:
            await websocket.close(1001, "the daemon is shutting down")
        else:  # the bus dropped us: we fell more than a buffer behind
            await websocket.close(1013, "too slow: more than the buffer behind; reconnect")

    @route("GET", "/openapi.json", "This document", response=None)
    async def openapi() -> dict[str, Any]:
        from ._openapi import openapi_document  # generated on the first request only

        return openapi_document(routes.operations, request.host_url.rstrip("/"))


async def _ignore_incoming() -> None:
    """Read and drop what a WebSocket client sends (a browser's keep-alive messages, say):
    this API only talks. Unread, 20 messages fill quart's and hypercorn's queues, and the
    connection stops reading: the client's close, and its going away, go unseen."""
    while True:
        await websocket.receive()
