"""The daemon's own routes: status, start and stop, live updates, metrics, the API document."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import trio
from quart import Response, g, request, websocket

from ..daemon import Daemon
from ..models import DaemonAction, Machine, NodeList, Status, WebSocketToken, WhoAmI
from ._auth import Guard
from ._body import respond
from ._metrics import CONTENT_TYPE, RequestMetrics
from ._routing import Routes


def add_service_routes(
    routes: Routes, daemon: Daemon, guard: Guard, requests: RequestMetrics
) -> None:
    route = routes.route
    tokens = guard.tokens

    @route("GET", "/daemon/status", "The daemon's state and load", response=Status)
    async def status() -> Response:
        return respond(daemon.status())

    @route("GET", "/daemon/machine", "The gates, the state and the CPU lately", response=Machine)
    async def machine() -> Response:
        return respond(daemon.machine())

    @route(
        "GET",
        "/daemon/nodes",
        "The daemons that share this one's database: state, running count, last heartbeat",
        response=NodeList,
    )
    async def nodes() -> Response:
        return respond(NodeList(nodes=await daemon.nodes()))

    @route(
        "GET",
        "/daemon/whoami",
        "The credential this request came with, and its role (viewer: read only)",
        response=WhoAmI,
    )
    async def whoami() -> Response:
        holder = g.holder
        return respond(WhoAmI(user=holder.user, role=holder.role.value))

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
        reads=True,  # it opens the WebSocket, which only reads: a viewer may have one
    )
    async def websocket_token() -> dict[str, Any]:
        return {"token": tokens.issue(g.holder), "expires_in": tokens.lifetime_seconds}

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
        """A status snapshot, then every event until the client leaves or falls behind,
        or the credential it came in with is replaced."""
        holder = g.holder
        with daemon.subscribe() as events:
            await websocket.accept()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ignore_incoming)
                revoked = trio.Event()

                async def close_when_revoked() -> None:
                    await guard.keyring.wait_revoked(holder.role, holder.fingerprint)
                    revoked.set()
                    # Ends the loop below between two sends: cancelling a send midway
                    # would leave the connection's stream in an unknown state.
                    events.close()

                nursery.start_soon(close_when_revoked)
                snapshot = {"type": "status", **daemon.status().json_body()}
                await websocket.send(json.dumps(snapshot))
                with contextlib.suppress(trio.ClosedResourceError):  # closed: revoked
                    async for event in events:
                        await websocket.send(event.as_json())
                nursery.cancel_scope.cancel()
        if revoked.is_set():
            await websocket.close(1008, "the credentials changed: reconnect with the new ones")
        elif daemon.events_closed:
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
