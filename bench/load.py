"""J. Load: 50 clients for 60 s of mixed reads and writes against a real daemon.

``omnimind serve`` (8 tasks seeded) and 50 keep-alive HTTP/1.1 connections
(:mod:`bench._loadgen`), each sending, request after request, one of: status, the task
list, one task, the execution list, the metrics (reads, 60 %), or adding a task, changing,
pausing, resuming or deleting one of its own, or running a seeded task now (writes, 40 %).
Every answer must be a 2xx: an error is any other status or a dropped connection.

``python -m bench --only J`` (20 s; ``--full``: 60 s), or on its own:
``python -m bench.load [--clients 50] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import trio

from ._loadgen import connection
from .common import (
    AUTH_HEADER,
    HOST,
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

CLIENTS = 50
SEEDED = 8
CODE = "def execute():\n    return 1\n"
READS = [
    ("status", 20),
    ("tasks", 12),
    ("task", 12),
    ("executions", 10),
    ("metrics", 6),
]
WRITES = [("add", 12), ("patch", 10), ("pause", 6), ("resume", 6), ("delete", 4), ("run", 2)]


def http_request(host: str, method: str, path: str, body: Any = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {AUTH_HEADER}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return (head + "\r\n").encode() + data


class Client:
    """One connection's request mix: it writes only to the tasks it added itself (and runs
    the seeded ones), so every request is valid and every answer should be a 2xx."""

    def __init__(self, number: int, host: str, rng: random.Random, counts: Counter[str]) -> None:
        self.number = number
        self.host = host
        self.rng = rng
        self.counts = counts
        self.own: list[str] = []
        self.paused: set[str] = set()
        self.made = 0
        ops, weights = zip(*(READS + WRITES), strict=True)
        self.ops: tuple[str, ...] = ops
        self.weights: tuple[int, ...] = weights

    def __call__(self) -> bytes:
        op = self.rng.choices(self.ops, self.weights)[0]
        if op in ("patch", "pause", "resume", "delete") and not self.own:
            op = "add"
        if op == "resume" and not self.paused:
            op = "pause"
        self.counts[op] += 1
        return self._make(op)

    def _make(self, op: str) -> bytes:
        req = partial_request(self.host)
        if op == "status":
            return req("GET", "/daemon/status")
        if op == "tasks":
            return req("GET", "/daemon/tasks?limit=50")
        if op == "task":
            return req("GET", f"/daemon/tasks/seed{self.rng.randrange(SEEDED)}")
        if op == "executions":
            return req("GET", "/daemon/executions?limit=20")
        if op == "metrics":
            return req("GET", "/metrics")
        if op == "run":
            return req("POST", f"/daemon/tasks/seed{self.rng.randrange(SEEDED)}/run")
        if op == "add":
            self.made += 1
            task_id = f"c{self.number}-{self.made}"
            self.own.append(task_id)
            body = {
                "task_id": task_id,
                "name": task_id,
                "description": "load",
                "priority": "LOW",
                "code": CODE,
                "repeat_hours": 24,
            }
            return req("POST", "/daemon/tasks/add", body)
        task_id = self.rng.choice(self.own)
        if op == "patch":
            return req("PATCH", f"/daemon/tasks/{task_id}", {"description": f"v{self.made}"})
        if op == "pause":
            self.paused.add(task_id)
            return req("POST", f"/daemon/tasks/{task_id}/pause")
        if op == "resume":
            task_id = self.paused.pop()
            return req("POST", f"/daemon/tasks/{task_id}/resume")
        self.own.remove(task_id)
        self.paused.discard(task_id)
        return req("DELETE", f"/daemon/tasks/{task_id}")


def partial_request(host: str) -> Callable[..., bytes]:
    def make(method: str, path: str, body: Any = None) -> bytes:
        return http_request(host, method, path, body)

    return make


async def generate(port: int, clients: int, seconds: float) -> dict[str, Any]:
    host = f"{HOST}:{port}"
    latencies: list[float] = []
    counts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    def failed(head: bytes) -> None:
        failures[head.split(b"\r\n", 1)[0].decode(errors="replace")] += 1

    async def one(number: int) -> None:
        nonlocal errors
        make = Client(number, host, random.Random(number), counts)
        errors += await connection(HOST, port, make, deadline, latencies, failed)

    with trio.move_on_after(seconds + 30):
        async with trio.open_nursery() as nursery:
            for number in range(clients):
                nursery.start_soon(one, number)
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "errors": errors,
        "failures": dict(failures),
        "mix": dict(counts),
    }


def load(clients: int, seconds: float) -> dict[str, Any]:
    with temp_home() as home:
        port = free_port()
        env = base_env(home, port, OMNIMIND_MAX_CONCURRENT="4")
        with running_server(omnimind_command("--log-level", "WARNING"), env, port) as server:
            with httpx.Client(base_url=server.url, headers={"Authorization": AUTH_HEADER}) as h:
                for i in range(SEEDED):
                    body = {
                        "task_id": f"seed{i}",
                        "name": f"seed{i}",
                        "description": "",
                        "priority": "LOW",
                        "code": CODE,
                        "repeat_hours": 24,
                        "overlap": "allow",
                    }
                    h.post("/daemon/tasks/add", json=body).raise_for_status()
            result = trio.run(generate, port, clients, seconds)
    log(f"J {json.dumps(result)}")
    return result


def run(mode: Mode) -> list[Figure]:
    seconds = 60.0 if mode.name == "full" else 20.0
    result = load(CLIENTS, seconds)
    note = (
        f"{CLIENTS} clients, {seconds:.0f} s, 60 % reads / 40 % writes; "
        f"{result['requests']} requests, p50 {result['p50_ms']} ms"
    )
    return [
        Figure("J1", "Mixed load: requests/s", "req/s", [result["requests_per_second"]], note=note),
        Figure("J2", "Mixed load: errors", "", [float(result["errors"])], ("<=", 0.0)),
        Figure("J3", "Mixed load: p99 latency", "ms", [result["p99_ms"]]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    result = load(args.clients, args.seconds)
    print(json.dumps(result, indent=2))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
