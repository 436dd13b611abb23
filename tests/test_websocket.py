"""Live updates over /daemon/ws: a status snapshot first, then events, each with state."""

from __future__ import annotations

import json
from typing import Any

import trio
from quart.testing.connections import WebsocketResponseError

from omnimind_trio.daemon import Daemon
from omnimind_trio.daemon._events import EventBus
from omnimind_trio.models import DaemonState

from .conftest import SLEEP_WINDOW
from .test_api import AUTH, TASK, call, client

__all__ = ["client"]


async def next_of(ws: Any, kind: str, seconds: float = 5.0) -> dict[str, Any]:
    with trio.fail_after(seconds):
        while True:
            message = json.loads(await ws.receive())
            assert "state" in message  # the API document's example reads it from every message
            if message["type"] == kind:
                return message


async def test_snapshot_then_task_and_execution_events(client: Any, daemon: Daemon) -> None:
    async with client.websocket("/daemon/ws", headers=AUTH) as ws:
        first = json.loads(await ws.receive())
        assert first["type"] == "status"
        assert first["running"] is True and first["tasks_registered"] == 1
        await call(client, "POST", "/daemon/tasks/add", {**TASK, "priority": "CRITICAL"})
        added = await next_of(ws, "task_added")
        assert added["data"]["task_id"] == "my_custom_task"
        started = await next_of(ws, "execution_started")
        assert started["state"] == "working"
        assert started["data"]["outcome"] == "running"
        finished = await next_of(ws, "execution_finished")
        while finished["data"]["task_id"] != "my_custom_task":
            finished = await next_of(ws, "execution_finished")
        assert finished["data"]["outcome"] == "succeeded"
        assert finished["data"]["result"] == {"status": "done", "result": 42}
        assert finished["data"]["execution_id"] == started["data"]["execution_id"]
        changed = await next_of(ws, "state_changed")
        assert changed["data"] == {"state": "idle", "previous": "working", "reason": None}
        metrics = await next_of(ws, "metrics")
        assert {"cpu_percent", "is_idle", "external_cpu_percent"} <= set(metrics["data"])


async def test_stop_and_start_are_state_changes(client: Any, daemon: Daemon) -> None:
    async with client.websocket("/daemon/ws", headers=AUTH) as ws:
        await ws.receive()
        await call(client, "POST", "/daemon/stop")
        assert (await next_of(ws, "state_changed"))["data"]["state"] == "shutting_down"
        assert (await next_of(ws, "state_changed"))["data"]["state"] == "stopped"
        await call(client, "POST", "/daemon/start")
        assert (await next_of(ws, "state_changed"))["data"]["state"] == "initializing"


async def rejected(client: Any, **kwargs: Any) -> int:
    """The HTTP status with which the upgrade was refused (the test client raises it
    inside an exception group)."""
    statuses: list[int] = []
    try:
        async with client.websocket("/daemon/ws", **kwargs) as ws:
            await ws.receive()
    except* WebsocketResponseError as group:
        statuses += [e.response.status_code for e in group.exceptions]  # type: ignore[attr-defined]
    assert statuses, "the upgrade was accepted"
    return statuses[0]


async def test_websocket_needs_credentials(client: Any) -> None:
    assert await rejected(client) == 401
    assert await rejected(client, headers={"Authorization": "Basic eDp5"}) == 401
    assert await rejected(client, query_string={"token": "forged"}) == 401


async def test_a_browser_authenticates_with_a_single_use_token(client: Any) -> None:
    response = await call(client, "POST", "/daemon/ws/token")
    token = (await response.get_json())["token"]
    async with client.websocket("/daemon/ws", query_string={"token": token}) as ws:
        assert json.loads(await ws.receive())["type"] == "status"
    assert await rejected(client, query_string={"token": token}) == 401  # used up
    token_without_auth = await call(client, "POST", "/daemon/ws/token", headers={})
    assert token_without_auth.status_code == 401


async def test_a_slow_subscriber_is_dropped_and_never_blocks_publishing() -> None:
    bus = EventBus(lambda: DaemonState.IDLE, buffer_messages=3)
    with bus.subscribe() as slow, bus.subscribe() as fast:
        for i in range(10):
            bus.publish("tick", {"i": i})  # never blocks, even with nobody reading
            with trio.move_on_after(0):
                pass
            if i < 3:
                assert fast.receive_nowait().data == {"i": i}
        assert bus.dropped == 2
        received = [m.data["i"] async for m in slow]
        assert received == [0, 1, 2]  # then the channel ended: disconnected


async def test_waiting_tasks_and_gate_changes_are_explained_live(
    client: Any, daemon: Daemon, source: Any
) -> None:
    async with client.websocket("/daemon/ws", headers=AUTH) as ws:
        await ws.receive()
        await call(client, "POST", "/daemon/tasks/add", {**TASK, "priority": "LOW"})
        waiting = await next_of(ws, "task_waiting")
        assert waiting["data"]["task_id"] == "my_custom_task"
        assert waiting["data"]["reason"] == "gate"
        assert waiting["data"]["gate"] == "sleep_window"
        assert waiting["data"]["expected_start"].endswith(f"T{SLEEP_WINDOW[:5]}:00Z")
        source.cpu_percent = 95.0
        changed = await next_of(ws, "gates_changed")
        assert changed["data"]["is_idle"] is False
        assert changed["data"]["open_priorities"] == ["CRITICAL"]


async def test_a_websocket_from_another_site_is_refused(client: Any) -> None:
    headers = {**AUTH, "Origin": "http://evil.example"}
    assert await rejected(client, headers=headers) == 403
