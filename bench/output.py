"""K. Live output (issue 12): a run printing in a tight loop, its log and its events.

One ``omnimind serve``. A CRITICAL task writes numbered lines as fast as it can for 3 s
(hundreds of MB) while a WebSocket client follows every event:

- the ``execution_output`` events the client got per second, and the largest one: the
  coalescing bounds both, whatever the task prints;
- the daemon's CPU (its own process, not the task's) while the flood goes on;
- ``GET /daemon/executions/{id}/log?tail=500`` on the finished log (10 MB: its head and
  tail kept), and the whole log: the tail must not cost what the file costs;
- the log file's size against ``OMNIMIND_MAX_LOG_BYTES`` (here 10 MiB: the default).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import psutil
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
    log,
    omnimind_command,
    percentile,
    running_server,
    temp_home,
)

LINES = 100_000
FLOOD = f"""
import sys
def execute():
    write = sys.stdout.write
    for i in range({LINES}):
        write(f"{{i:099d}}\\n")  # 100 bytes a line: 10 MB
    return {LINES}
"""
"""10 MB flat out, in about 0.1 s (the dashboard's 10 MB log: section L)."""
SECONDS = 3
FLAT_OUT = f"""
import sys, time
def execute():
    write, end, i = sys.stdout.write, time.monotonic() + {SECONDS}, 0
    while time.monotonic() < end:  # 100-byte lines, flat out, for {SECONDS} s
        write(f"{{i:099d}}\\n")
        i += 1
    return i
"""


async def _flood(port: int, task_id: str) -> dict[str, Any]:
    """Add the flood task, follow its events to its end; what the client saw."""
    url = f"ws://{HOST}:{port}/daemon/ws"
    events: list[tuple[float, int]] = []
    async with (
        open_websocket_url(url, extra_headers=[("Authorization", AUTH_HEADER)]) as ws,
        httpx.AsyncClient(base_url=f"http://{HOST}:{port}", auth=(USER, PASSWORD)) as http,
    ):
        await ws.get_message()
        body = {"task_id": task_id, "name": task_id, "description": "",
                "priority": "CRITICAL", "code": FLAT_OUT}  # fmt: skip
        (await http.post("/daemon/tasks/add", json=body)).raise_for_status()
        with trio.fail_after(120):
            while True:
                message = json.loads(await ws.get_message())
                data = message.get("data", {})
                if data.get("task_id") != task_id:
                    continue
                if message["type"] == "execution_output":
                    events.append((time.monotonic(), len(data["data"])))
                if message["type"] == "execution_finished":
                    return {"execution_id": data["execution_id"], "events": events,
                            "outcome": data["outcome"]}  # fmt: skip


def _timed_get(http: httpx.Client, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = http.get(path)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000, len(response.content)


def run(mode: Mode) -> list[Figure]:
    tail_ms: list[float] = []
    whole_ms: list[float] = []
    per_second: list[float] = []
    counts: list[tuple[int, float]] = []
    biggest: list[float] = []
    daemon_cpu: list[float] = []
    log_mb: list[float] = []
    for attempt in range(max(1, min(mode.repeats, 3))):
        port = free_port()
        with (
            temp_home() as home,
            running_server(omnimind_command(), base_env(home, port), port) as server,
        ):
            daemon = psutil.Process(server.pid)
            cpu_before = sum(daemon.cpu_times()[:2])
            wall_before = time.monotonic()
            seen = trio.run(_flood, port, f"flood{attempt}")
            cpu = sum(daemon.cpu_times()[:2]) - cpu_before
            wall = time.monotonic() - wall_before
            assert seen["outcome"] == "succeeded", seen["outcome"]
            events = seen["events"]
            span = max(events[-1][0] - events[0][0], 1e-3) if len(events) > 1 else 1.0
            # N events span N - 1 intervals: N / span overstates the rate, by 2x for two.
            per_second.append((len(events) - 1) / span if len(events) > 1 else float(len(events)))
            counts.append((len(events), span))
            biggest.append(max(size for _, size in events) / 1024)
            daemon_cpu.append(cpu / wall * 100)
            path = f"/daemon/executions/{seen['execution_id']}/log"
            with server.client() as http:
                samples = [_timed_get(http, f"{path}?tail=500")[0] for _ in range(10)]
                tail_ms.append(percentile(samples, 50))
                elapsed, size = _timed_get(http, path)
                whole_ms.append(elapsed)
                log_mb.append(size / 1e6)
            log(
                f"K run {attempt}: {len(events)} events over {span:.2f} s,"
                f" tail {tail_ms[-1]:.1f} ms"
            )
    return [
        Figure(
            "K1",
            "Output tail of a 10 MB log (GET .../log?tail=500, p50)",
            "ms",
            tail_ms,
            ("<", 1000.0),
        ),
        Figure("K2", "The whole 10 MB log (GET .../log)", "ms", whole_ms),
        Figure(
            "K3",
            "execution_output events per second (a task printing flat out for 3 s)",
            "/s",
            per_second,
            ("<", 25.0),
            note="(events - 1) / time from the first to the last; events and span per run: "
            + ", ".join(f"{n} in {span:.2f} s" for n, span in counts),
        ),
        Figure("K4", "Largest execution_output event", "KiB", biggest, ("<", 17.0)),
        Figure(
            "K5", "Daemon CPU while a task prints flat out for 3 s (own process)", "%", daemon_cpu
        ),
        Figure("K6", "Log kept of 3 s flat out (head and tail, limit 10 MiB)", "MB", log_mb),
    ]
