"""I. Soak: does a daemon run by run-now for a year keep its memory and descriptors flat?

A real ``omnimind serve`` with 8 tasks. The driver asks each task to run now, waits for the
8 runs to end (seen on a WebSocket that stays open), and repeats; between batches it lists
tasks and executions, reads the status and the metrics, and opens and closes WebSocket
clients (by header and by token). Every ``sample_every`` executions it reads, from outside,
the daemon's RSS and anonymous memory (``/proc/PID/status``: ``VmRSS``, ``RssAnon``) and its
open descriptors (``/proc/PID/fd``), with the daemon quiet (no run in flight).

Verdict: RSS growth over the last half under 2 MB, and the descriptor count steady.

``python -m bench --only I`` (6,000 executions; ``--full``: 100,000), or on its own:
``python -m bench.soak --executions 100000 [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import CloseConnection, Request, TextMessage

from .common import (
    AUTH_HEADER,
    HOST,
    Figure,
    Mode,
    base_env,
    free_port,
    log,
    omnimind_command,
    running_server,
    temp_home,
)

TASKS = 8
CODE = "def execute():\n    return 1\n"
QUICK_EXECUTIONS = 6_000
FULL_EXECUTIONS = 100_000
GROWTH_LIMIT_MB = 2.0
FD_SPREAD_LIMIT = 2
"""Descriptors may differ by this much between quiet samples (a keep-alive socket)."""


@dataclass
class Sample:
    executions: int
    seconds: float
    rss_mb: float
    anon_mb: float
    fds: int


def read_process(pid: int) -> tuple[float, float, int]:
    """RSS and anonymous memory (MB) and the open descriptor count of ``pid``."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["RssAnon"], len(os.listdir(f"/proc/{pid}/fd"))


class Driver:
    def __init__(self, port: int, pid: int, executions: int, sample_every: int) -> None:
        self.base = f"http://{HOST}:{port}"
        self.ws_url = f"ws://{HOST}:{port}/daemon/ws"
        self.pid = pid
        self.executions = executions
        self.sample_every = sample_every
        self.finished = 0
        self.changed = trio.Event()
        self.samples: list[Sample] = []
        self.conflicts = 0
        self.errors = 0

    async def run(self) -> None:
        headers = {"Authorization": AUTH_HEADER}
        async with (
            httpx.AsyncClient(base_url=self.base, headers=headers, timeout=30) as http,
            trio.open_nursery() as nursery,
        ):
            ready = trio.Event()
            nursery.start_soon(self._watch, ready)
            await ready.wait()
            for i in range(TASKS):
                body = {
                    "task_id": f"soak{i}",
                    "name": f"soak{i}",
                    "description": "",
                    "priority": "CRITICAL",
                    "code": CODE,
                    "repeat_hours": 24,
                }
                (await http.post("/daemon/tasks/add", json=body)).raise_for_status()
            await self._wait_finished(TASKS)  # their first, scheduled runs
            self.finished = 0
            started = time.perf_counter()
            self._sample(started)
            next_sample = self.sample_every
            while self.finished < self.executions:
                target = self.finished
                for i in range(TASKS):
                    target += await self._run_now(http, f"soak{i}")
                await self._wait_finished(target)
                if self.finished >= next_sample:
                    await self._between(http)
                    await trio.sleep(0.05)  # the last records' writes
                    self._sample(started)
                    next_sample += self.sample_every
                elif self.finished % (TASKS * 25) == 0:
                    await self._between(http)
            nursery.cancel_scope.cancel()

    async def _run_now(self, http: httpx.AsyncClient, task_id: str) -> int:
        for _ in range(200):
            answer = await http.post(f"/daemon/tasks/{task_id}/run")
            if answer.status_code == 200:
                return 1
            if answer.status_code != 409:
                self.errors += 1
                return 0
            self.conflicts += 1  # its last run is still being closed
            await trio.sleep(0.002)
        self.errors += 1
        return 0

    async def _watch(self, ready: trio.Event) -> None:
        async with open_websocket_url(
            self.ws_url, extra_headers=[("Authorization", AUTH_HEADER)]
        ) as ws:
            await ws.get_message()  # the status
            ready.set()
            while True:
                message = json.loads(await ws.get_message())
                if message["type"] == "execution_finished":
                    self.finished += 1
                    self.changed.set()
                    self.changed = trio.Event()

    async def _wait_finished(self, target: int) -> None:
        with trio.fail_after(60):
            while self.finished < target:
                await self.changed.wait()

    async def _between(self, http: httpx.AsyncClient) -> None:
        """What a dashboard does: lists, status, metrics, and WebSocket clients that come
        and go (by header, and by single-use token)."""
        for path in (
            "/daemon/status",
            "/daemon/tasks",
            "/daemon/executions?limit=50",
            "/daemon/tasks/soak0/executions?limit=20",
            "/metrics",
        ):
            if (await http.get(path)).status_code != 200:
                self.errors += 1
        token = (await http.post("/daemon/ws/token")).json()["token"]
        await self._ws_visit(f"/daemon/ws?token={token}", [])
        await self._ws_visit("/daemon/ws", [("Authorization", AUTH_HEADER)])

    async def _ws_visit(self, target: str, headers: list[tuple[str, str]]) -> None:
        """A WebSocket client that connects, reads its first message and leaves. (With
        wsproto directly: trio-websocket turns a ping that crosses its close into a
        cancellation of the caller's nursery.)"""
        host, port = self.ws_url.split("/")[2].split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            ws = WSConnection(ConnectionType.CLIENT)
            request = Request(host=f"{host}:{port}", target=target, extra_headers=headers)
            await stream.send_all(ws.send(request))
            with trio.fail_after(10):
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        self.errors += 1
                        return
                    ws.receive_data(data)
                    if any(isinstance(e, TextMessage) for e in ws.events()):
                        break
            await stream.send_all(ws.send(CloseConnection(code=1000)))

    def _sample(self, started: float) -> None:
        rss, anon, fds = read_process(self.pid)
        sample = Sample(self.finished, time.perf_counter() - started, rss, anon, fds)
        self.samples.append(sample)
        rate = sample.executions / sample.seconds if sample.seconds else 0.0
        log(
            f"I {sample.executions:>7} executions {sample.seconds:7.0f} s ({rate:.0f}/s): "
            f"RSS {rss:.1f} MB, anon {anon:.1f} MB, {fds} fds"
        )


@dataclass
class Verdict:
    executions: int
    seconds: float
    rate: float
    rss_first_mb: float
    rss_half_mb: float
    rss_last_mb: float
    anon_first_mb: float
    anon_half_mb: float
    anon_last_mb: float
    rss_growth_last_half_mb: float
    anon_kb_per_execution_last_half: float
    fds_last_half: tuple[int, int]
    conflicts: int
    errors: int
    ok: bool


def judge(driver: Driver) -> Verdict:
    samples = driver.samples
    last = samples[-1]
    half = min(samples, key=lambda s: abs(s.executions - last.executions / 2))
    tail = [s for s in samples if s.executions >= half.executions]
    growth = last.rss_mb - half.rss_mb
    done = max(1, last.executions - half.executions)
    fds = (min(s.fds for s in tail), max(s.fds for s in tail))
    ok = growth < GROWTH_LIMIT_MB and fds[1] - fds[0] <= FD_SPREAD_LIMIT and not driver.errors
    return Verdict(
        executions=last.executions,
        seconds=round(last.seconds, 1),
        rate=round(last.executions / last.seconds, 1),
        rss_first_mb=round(samples[0].rss_mb, 1),
        rss_half_mb=round(half.rss_mb, 1),
        rss_last_mb=round(last.rss_mb, 1),
        anon_first_mb=round(samples[0].anon_mb, 1),
        anon_half_mb=round(half.anon_mb, 1),
        anon_last_mb=round(last.anon_mb, 1),
        rss_growth_last_half_mb=round(growth, 2),
        anon_kb_per_execution_last_half=round((last.anon_mb - half.anon_mb) * 1024 / done, 4),
        fds_last_half=fds,
        conflicts=driver.conflicts,
        errors=driver.errors,
        ok=ok,
    )


def soak(executions: int, sample_every: int) -> tuple[Verdict, list[Sample]]:
    with temp_home() as home:
        port = free_port()
        env = base_env(home, port, OMNIMIND_MAX_CONCURRENT="8")
        with running_server(omnimind_command("--log-level", "WARNING"), env, port) as server:
            driver = Driver(port, server.pid, executions, sample_every)
            trio.run(driver.run)
    return judge(driver), driver.samples


def run(mode: Mode) -> list[Figure]:
    executions = FULL_EXECUTIONS if mode.name == "full" else QUICK_EXECUTIONS
    verdict, _ = soak(executions, max(TASKS * 10, executions // 20))
    note = (
        f"{verdict.executions} run-now executions of {TASKS} tasks, {verdict.rate:.0f}/s; RSS "
        f"{verdict.rss_first_mb}->{verdict.rss_half_mb}->{verdict.rss_last_mb} MB, anon "
        f"{verdict.anon_first_mb}->{verdict.anon_last_mb} MB; fds {verdict.fds_last_half}; "
        f"{verdict.errors} errors"
    )
    fd_spread = verdict.fds_last_half[1] - verdict.fds_last_half[0]
    return [
        Figure(
            "I1",
            "Soak: RSS growth over the last half",
            "MB",
            [verdict.rss_growth_last_half_mb],
            ("<", GROWTH_LIMIT_MB),
            note=note,
        ),
        Figure(
            "I2",
            "Soak: anonymous memory per execution, last half",
            "KB",
            [verdict.anon_kb_per_execution_last_half],
        ),
        Figure(
            "I3",
            "Soak: descriptor spread over the last half",
            "fds",
            [float(fd_spread)],
            ("<=", float(FD_SPREAD_LIMIT)),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--executions", type=int, default=QUICK_EXECUTIONS)
    parser.add_argument("--full", action="store_true", help=f"{FULL_EXECUTIONS} executions")
    parser.add_argument("--sample-every", type=int, default=0, help="default: 1/20 of the run")
    parser.add_argument("--json", type=Path, help="write the samples and the verdict here")
    args = parser.parse_args(argv)
    executions = FULL_EXECUTIONS if args.full else args.executions
    verdict, samples = soak(executions, args.sample_every or max(TASKS * 10, executions // 20))
    report: dict[str, Any] = {"verdict": asdict(verdict), "samples": [asdict(s) for s in samples]}
    print(json.dumps(report["verdict"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("PASS" if verdict.ok else "FAIL", file=sys.stderr)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
