"""H. Live updates (issue 4): how soon a WebSocket client sees an execution start and end.

A client subscribes to ``/daemon/ws`` of ``omnimind serve``, adds CRITICAL tasks one at a
time through the API, and for each notes when the ``execution_started`` and
``execution_finished`` events arrive. Latency is measured against the times the daemon put
in the record (``started_at``, ``finished_at``): from the moment it happened to the moment
the client read it, on the same clock (loopback, same machine).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from .common import (
    AUTH_HEADER,
    HOST,
    PASSWORD,
    USER,
    Figure,
    Mode,
    base_env,
    free_port,
    iso_epoch,
    log,
    omnimind_command,
    percentile,
    running_server,
    temp_home,
)

TASK = "def execute():\n    return 1"


async def _measure(port: int, count: int) -> tuple[list[float], list[float]]:
    started_ms: list[float] = []
    finished_ms: list[float] = []
    url = f"ws://{HOST}:{port}/daemon/ws"
    async with (
        open_websocket_url(url, extra_headers=[("Authorization", AUTH_HEADER)]) as ws,
        httpx.AsyncClient(base_url=f"http://{HOST}:{port}", auth=(USER, PASSWORD)) as http,
    ):
        await ws.get_message()  # the status snapshot
        for i in range(count):
            task_id = f"ws{i}"
            body = {"task_id": task_id, "name": task_id, "description": "",
                    "priority": "CRITICAL", "code": TASK}  # fmt: skip
            (await http.post("/daemon/tasks/add", json=body)).raise_for_status()
            seen: dict[str, tuple[float, dict[str, Any]]] = {}
            with trio.fail_after(10):
                while "execution_finished" not in seen:
                    message = json.loads(await ws.get_message())
                    received = time.time()
                    data = message.get("data", {})
                    if data.get("task_id") == task_id and message["type"] in (
                        "execution_started",
                        "execution_finished",
                    ):
                        seen[message["type"]] = (received, data)
            received, data = seen["execution_started"]
            started_ms.append((received - iso_epoch(data["started_at"])) * 1000)
            received, data = seen["execution_finished"]
            finished_ms.append((received - iso_epoch(data["finished_at"])) * 1000)
    return started_ms, finished_ms


def run(mode: Mode) -> list[Figure]:
    count = 30 if mode.repeats <= 3 else 100
    start_p99: list[float] = []
    finish_p99: list[float] = []
    worst: list[float] = []
    for rep in range(mode.repeats):
        with temp_home() as home:
            port = free_port()
            env = base_env(home, port)
            with running_server(omnimind_command("--log-level", "WARNING"), env, port):
                started, finished = trio.run(_measure, port, count)
        start_p99.append(percentile(started, 99))
        finish_p99.append(percentile(finished, 99))
        worst.append(max(started + finished))
        log(f"H run {rep + 1}: started p99 {start_p99[-1]:.1f} ms,"
            f" finished p99 {finish_p99[-1]:.1f} ms")  # fmt: skip
    note = f"{count} CRITICAL tasks, one at a time; event time to client read"
    return [
        Figure(
            "H1", "WebSocket: execution_started seen, p99", "ms", start_p99, ("<", 50.0), note=note
        ),
        Figure("H2", "WebSocket: execution_finished seen, p99", "ms", finish_p99, ("<", 50.0)),
        Figure("H3", "WebSocket: slowest event seen", "ms", worst),
    ]
