"""N. Notifications (issue 13): how soon a webhook hears of a finished run.

``omnimind serve`` with ``OMNIMIND_NOTIFY_WEBHOOK`` pointing at a small HTTP receiver in
the benchmark's process (loopback) and ``OMNIMIND_NOTIFY_ON=success``, so every run is
told. One CRITICAL task is run again and again (run-now, one at a time); for each run, the
delay from its end (``finished_at`` of the body, the daemon's record) to the moment the
receiver has read the whole POST, on the same clock.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import trio

from .common import (
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


async def _receive(
    stream: trio.SocketStream, bodies: trio.MemorySendChannel[tuple[float, dict[str, Any]]]
) -> None:
    """One keep-alive connection: each POST's body, with when it was read whole."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        match = re.search(rb"(?i)content-length: *(\d+)", head)
        length = int(match[1]) if match else 0
        while len(buffer) < length:
            buffer += await stream.receive_some(65536)
        body, buffer = buffer[:length], buffer[length:]
        received = time.time()
        await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        await bodies.send((received, json.loads(body)))


async def _measure(count: int) -> list[float]:
    delays: list[float] = []
    send, bodies = trio.open_memory_channel[tuple[float, dict[str, Any]]](count)
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        hook = f"http://{HOST}:{listeners[0].socket.getsockname()[1]}/hook"

        async def serve() -> None:
            await trio.serve_listeners(lambda stream: _receive(stream, send), listeners)

        nursery.start_soon(serve)
        with temp_home() as home:
            port = free_port()
            env = base_env(home, port, OMNIMIND_NOTIFY_WEBHOOK=hook, OMNIMIND_NOTIFY_ON="success")
            command = omnimind_command("--log-level", "WARNING")
            with running_server(command, env, port):  # (a blocking start: fine, nothing waits)
                async with httpx.AsyncClient(
                    base_url=f"http://{HOST}:{port}", auth=(USER, PASSWORD)
                ) as http:
                    # overlap=queue: a run-now sent as the webhook arrives, while the run
                    # is being closed, is queued rather than refused.
                    body = {"task_id": "told", "name": "Told", "description": "",
                            "priority": "CRITICAL", "code": TASK, "overlap": "queue"}  # fmt: skip
                    (await http.post("/daemon/tasks/add", json=body)).raise_for_status()
                    for i in range(count):
                        if i:
                            (await http.post("/daemon/tasks/told/run")).raise_for_status()
                        with trio.fail_after(10):
                            received, told = await bodies.receive()
                        delays.append((received - iso_epoch(told["finished_at"])) * 1000)
        nursery.cancel_scope.cancel()
    return delays


def run(mode: Mode) -> list[Figure]:
    count = 200 if mode.repeats <= 3 else 1000
    p50: list[float] = []
    p99: list[float] = []
    for rep in range(mode.repeats):
        delays = trio.run(_measure, count)
        p50.append(percentile(delays, 50))
        p99.append(percentile(delays, 99))
        log(f"N run {rep + 1}: webhook p50 {p50[-1]:.1f} ms, p99 {p99[-1]:.1f} ms")
    note = f"{count} runs of one CRITICAL task, one at a time; run end to the POST read"
    return [
        Figure("N1", "Webhook delivered after the run's end, p50", "ms", p50, note=note),
        Figure("N2", "Webhook delivered after the run's end, p99", "ms", p99, ("<", 50.0)),
    ]
