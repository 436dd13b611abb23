"""A. Executor (issue 3): trigger-to-``execute()`` latency and executions per second with
history, for the fork server and for a cold interpreter spawn, side by side.

- Latency: one execution at a time. The trigger is ``time.time()`` just before
  ``Executor.run(Job(...))`` (fork server) or just before ``trio.run_process([python, "-c",
  ...])`` (cold spawn); the task returns ``time.time()`` taken at the entry of ``execute()``.
- Throughput: ``open_daemon`` (default settings, fake load source) with N one-shot CRITICAL
  tasks added while stopped; ``daemon.start()`` lets them all run under the default
  concurrency limit. Executions per second = succeeded records in the store / (last
  record's ``finished_at`` - start). The cold-spawn column runs the very same daemon with
  its executor wrapped so that ``run`` spawns ``python -c`` per execution (checked: the
  wrapper must have run every execution).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import trio

from omnimind_trio import FakeSource, Priority, Settings, TaskSpec, open_daemon
from omnimind_trio.daemon import _open as daemon_module
from omnimind_trio.execution import Executor, Job, RunResult, open_executor

from .common import (
    PASSWORD,
    TRIVIAL_CODE,
    USER,
    Figure,
    Mode,
    log,
    percentile,
    query,
    ratio,
    result_time,
    temp_home,
)

COLD_REPORT = (
    "\nimport json as _json, sys as _sys\n"
    "_sys.stdout.write(_json.dumps({'ok': True, 'result': execute()}))\n"
)


class ColdExecutor:
    """The executor the daemon uses, except that ``run`` spawns a fresh interpreter per
    execution (what a daemon without a fork server would do). Everything else (code
    checks, pids) goes to the real executor it wraps."""

    def __init__(self, real: Executor, python: str = sys.executable) -> None:
        self._real = real
        self.python = python
        self.runs = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def run(
        self,
        job: Job,
        *,
        cancel: trio.Event | None = None,
        on_started: Callable[[int], None] | None = None,
        **_: Any,
    ) -> RunResult:
        self.runs += 1
        env = {**os.environ, **job.env}
        done = await trio.run_process(
            [self.python, "-c", job.code + COLD_REPORT],
            cwd=job.cwd,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        result = RunResult(wait_status=0 if done.returncode == 0 else 1 << 8)
        result.stderr = done.stderr.decode(errors="replace")
        try:
            result.report = json.loads(done.stdout)
        except ValueError:
            result.report_error = "the result could not be read"
        return result


@contextlib.contextmanager
def cold_executors() -> Iterator[list[ColdExecutor]]:
    """While active, ``open_daemon`` gets a :class:`ColdExecutor` around its real
    executor; the list collects them, so the caller can check they were used."""
    made: list[ColdExecutor] = []

    @contextlib.asynccontextmanager
    async def open_cold(python: str, **options: Any) -> AsyncIterator[ColdExecutor]:
        async with open_executor(python, **options) as real:
            cold = ColdExecutor(real)
            made.append(cold)
            yield cold

    with mock.patch.object(daemon_module, "open_executor", open_cold):
        yield made


def settings_for(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "workspace": home,
        "dashboard_user": USER,
        "dashboard_pass": PASSWORD,
        "timezone": "UTC",
    }
    values.update(overrides)
    return Settings(**values)


async def fork_latencies(n: int) -> list[float]:
    """Milliseconds from just before ``Executor.run`` to ``execute()`` entry."""
    out: list[float] = []
    with temp_home() as work:
        async with open_executor(sys.executable) as executor:
            job = Job(code=TRIVIAL_CODE, filename="<bench>", cwd=str(work))
            # The first run waits for the fork server to be ready: warm up once.
            await executor.run(job)
            for _ in range(n):
                trigger = time.time()
                result = await executor.run(job)
                assert result.report is not None and result.report["ok"], result
                out.append((result.report["result"] - trigger) * 1000)
    return out


async def cold_latencies(n: int) -> list[float]:
    """Milliseconds from just before spawning ``python -c`` to ``execute()`` entry."""
    out: list[float] = []
    code = TRIVIAL_CODE + "print(repr(execute()))\n"
    for _ in range(n):
        trigger = time.time()
        done = await trio.run_process([sys.executable, "-c", code], capture_stdout=True)
        out.append((float(done.stdout) - trigger) * 1000)
    return out


async def daemon_throughput(n: int, *, cold: bool) -> dict[str, float]:
    """Executions/s with history through ``open_daemon``; dispatch-to-entry times; CPU
    per execution in the daemon process and in its children (fork server + tasks)."""
    with temp_home() as home, cold_executors() if cold else contextlib.nullcontext([]) as made:
        settings = settings_for(home)
        async with open_daemon(settings, autostart=False, metrics_source=FakeSource(5.0)) as d:
            for i in range(n):
                spec = TaskSpec(
                    task_id=f"t{i:05d}",
                    name=f"t{i}",
                    description="",
                    priority=Priority.CRITICAL,
                    code=TRIVIAL_CODE,
                )
                await d.add_task(spec)
            entries = [d._scheduler.tasks[f"t{i:05d}"] for i in range(n)]  # polled cheaply
            cpu_before = os.times()
            started = time.time()
            await d.start()
            waiting = 0
            with trio.move_on_after(120):
                while waiting < n:
                    # Mostly in order: skip the finished prefix, so the poll stays cheap.
                    while waiting < n and entries[waiting].counters.execution_count:
                        waiting += 1
                    await trio.sleep(0.005)
        # The fork server has been reaped here: its children's CPU is in ours.
        cpu_after = os.times()
        rows = query(
            settings.database_path,
            "SELECT started_at, finished_at, result FROM executions"
            " WHERE outcome = 'succeeded' AND task_id LIKE 't%'",
        )
    if cold and sum(c.runs for c in made) < len(rows):
        raise RuntimeError(
            "the cold-spawn executor was not used: open_daemon no longer takes its executor"
            " from omnimind_trio.daemon._open.open_executor; update bench/executor.py"
        )
    if not rows:
        return {"rate": float("nan"), "p50": float("nan"), "p99": float("nan")}
    last = max(r[1] for r in rows)
    entry_delays = [
        ((result_time(r[2]) or float("nan")) - r[0]) * 1000 for r in rows if r[2] is not None
    ]
    own = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    children = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    return {
        "rate": len(rows) / (last - started),
        "p50": percentile(entry_delays, 50),
        "p99": percentile(entry_delays, 99),
        "records": float(len(rows)),
        "cpu_daemon_ms": own / len(rows) * 1000,
        "cpu_children_ms": children / len(rows) * 1000,
    }


def run(mode: Mode) -> list[Figure]:
    fork_p50, fork_p99, cold_p50, cold_p99 = [], [], [], []
    for rep in range(mode.repeats):
        lat = trio.run(fork_latencies, mode.exec_latency_n)
        fork_p50.append(percentile(lat, 50))
        fork_p99.append(percentile(lat, 99))
        lat = trio.run(cold_latencies, mode.cold_latency_n)
        cold_p50.append(percentile(lat, 50))
        cold_p99.append(percentile(lat, 99))
        log(
            f"A latency run {rep + 1}: fork p50 {fork_p50[-1]:.2f} p99 {fork_p99[-1]:.2f} ms,"
            f" cold p50 {cold_p50[-1]:.2f} p99 {cold_p99[-1]:.2f} ms"
        )
    fork_rate, cold_rate, fork_d50, fork_d99, cpu_own, cpu_kids = [], [], [], [], [], []
    for rep in range(mode.repeats):
        fork = trio.run(lambda: daemon_throughput(mode.exec_throughput_n, cold=False))
        cold = trio.run(lambda: daemon_throughput(mode.cold_throughput_n, cold=True))
        fork_rate.append(fork["rate"])
        fork_d50.append(fork["p50"])
        fork_d99.append(fork["p99"])
        cpu_own.append(fork["cpu_daemon_ms"])
        cpu_kids.append(fork["cpu_children_ms"])
        cold_rate.append(cold["rate"])
        log(
            f"A throughput run {rep + 1}: fork {fork['rate']:.0f}/s"
            f" ({fork.get('records', 0):.0f} records), cold {cold['rate']:.0f}/s"
        )
    latency_ratio = [ratio(c, f) for c, f in zip(cold_p50, fork_p50, strict=True)]
    rate_ratio = [ratio(f, c) for f, c in zip(fork_rate, cold_rate, strict=True)]
    n_lat, n_cold = mode.exec_latency_n, mode.cold_latency_n
    return [
        Figure(
            "A1",
            "fork server: Executor.run -> execute() p50",
            "ms",
            fork_p50,
            ("<", 5.0),
            note=f"{n_lat} sequential runs per rep",
        ),
        Figure("A2", "fork server: Executor.run -> execute() p99", "ms", fork_p99, ("<", 20.0)),
        Figure(
            "A3",
            "cold spawn: python -c -> execute() p50",
            "ms",
            cold_p50,
            note=f"{n_cold} sequential spawns per rep",
        ),
        Figure("A4", "cold spawn: python -c -> execute() p99", "ms", cold_p99),
        Figure("A5", "latency p50 ratio cold / fork server", "x", latency_ratio),
        Figure(
            "A6",
            "fork server: executions/s with history (open_daemon)",
            "/s",
            fork_rate,
            (">=", 200.0),
            note=f"{mode.exec_throughput_n} CRITICAL one-shots, default concurrency",
        ),
        Figure(
            "A7",
            "cold spawn: executions/s with history (same daemon)",
            "/s",
            cold_rate,
            note=f"{mode.cold_throughput_n} tasks; executor swapped for python -c spawns",
        ),
        Figure("A8", "throughput ratio fork server / cold spawn", "x", rate_ratio),
        Figure(
            "A9",
            "daemon dispatch -> execute() p50 during A6",
            "ms",
            fork_d50,
            note="record started_at to entry: store write + queueing + fork",
        ),
        Figure("A10", "daemon dispatch -> execute() p99 during A6", "ms", fork_d99),
        Figure(
            "A11",
            "CPU per execution during A6: daemon process",
            "ms",
            cpu_own,
            note="scheduler, store writes, pipes; user + system",
        ),
        Figure(
            "A12",
            "CPU per execution during A6: fork server + task process",
            "ms",
            cpu_kids,
            note="fork, copy-on-write faults, child set-up, exit; 2 cores / (A11 + A12) bounds A6",
        ),
    ]
