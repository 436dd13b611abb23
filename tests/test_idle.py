"""Yielding to the user, for real: a CPU-bound HIGH task keeps its own gate open, is frozen
(process state T) when something else loads the machine, and resumes when it stops."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnimind_trio.models import SystemMetrics
from omnimind_trio.scheduling import LoadMonitor, PsutilSource
from omnimind_trio.scheduling import _load as load

from .test_process import Served, add, read_marker, spawn, wait_for

__all__ = ["spawn"]

pytestmark = pytest.mark.slow

OPEN, CLOSE, SAMPLE = 2.0, 2.0, 0.5
# "Idle" here means under 40 % of the machine outside the daemon, so that background noise
# on a shared machine does not close the gate; the user's load is both cores busy.
IDLE_PERCENT = 40
# Margins for a shared CI machine: the rule is "within the dwell plus a sample".
SLACK = 5.0


def burn_code(marker: str) -> str:
    return (
        "def execute():\n    import json, os\n"
        f"    open({marker!r}, 'w').write(json.dumps({{'pid': os.getpid()}}))\n"
        "    while True:\n        pass"
    )


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def detail(served: Served, task_id: str) -> dict[str, Any]:
    with served.client() as client:
        return dict(client.get(f"/daemon/tasks/{task_id}").json())


def test_a_busy_user_freezes_the_task_and_it_resumes_after(
    spawn: Callable[..., Served], tmp_path: Path
) -> None:
    served = spawn(
        env={
            "OMNIMIND_GATE_OPEN_SECONDS": str(OPEN),
            "OMNIMIND_GATE_CLOSE_SECONDS": str(CLOSE),
            "OMNIMIND_SAMPLE_SECONDS": str(SAMPLE),
            "OMNIMIND_IDLE_CPU_PERCENT": str(IDLE_PERCENT),
        }
    )
    marker = served.workspace / "burner.json"
    with served.client() as client:
        add(client, "heavy", burn_code(str(marker)), priority="HIGH", timeout_seconds=120)
    # The first start needs the machine quiet for OPEN seconds: allow for a noisy start.
    pid = read_marker(marker, timeout=OPEN + SLACK + 25)["pid"]

    # Alone, the CPU-bound task does not close its own gate: it keeps running.
    time.sleep(CLOSE + SAMPLE + 1.0)
    assert state(pid) == "R"
    seen = detail(served, "heavy")
    assert seen["status"] == "running" and seen["waiting"] is None

    # The user comes back: busy loops on every core, outside the daemon.
    users = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        started = time.monotonic()
        wait_for(lambda: state(pid) == "T", CLOSE + SAMPLE + SLACK, "the task to be frozen")
        frozen_after = time.monotonic() - started
        seen = detail(served, "heavy")
        assert seen["status"] == "frozen"
        assert seen["waiting"]["reason"] == "frozen"
        assert seen["waiting"]["gate"] == "idle"
        assert seen["waiting"]["cpu_percent"] >= IDLE_PERCENT
        time.sleep(1.0)
        assert state(pid) == "T"  # stays frozen while the user works
    finally:
        for user in users:
            user.kill()
            user.wait()

    started = time.monotonic()
    wait_for(lambda: state(pid) != "T", OPEN + SAMPLE + SLACK, "the task to resume")
    resumed_after = time.monotonic() - started
    seen = detail(served, "heavy")
    assert seen["status"] == "running"
    with served.client() as client:
        execution = client.get(f"/daemon/executions/{seen['running_execution_id']}").json()
    assert len(execution["pauses"]) == 1 and execution["pauses"][0]["thawed_at"] is not None
    print(
        f"\nfrozen {frozen_after:.2f} s after the load began, resumed {resumed_after:.2f} s"
        " after it ended"
    )
    # The task is not its process group's leader (its run's keeper is): kill it alone.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


BUILD = """
import subprocess, sys, time
# A build: short-lived children (compilers) that burn CPU and exit, one after another.
for _ in range(3):
    subprocess.run([sys.executable, "-c", "import time\\nt = time.process_time()\\n"
                    "while time.process_time() - t < 0.2: pass"], check=True)
print("built", flush=True)
time.sleep(60)
"""


def test_a_tasks_short_lived_children_are_its_own_load() -> None:
    """Their CPU is counted once they have exited (the kernel adds it to the parent's
    children times): a build's compilers must not read as the user's load."""
    with subprocess.Popen(
        [sys.executable, "-c", BUILD], stdout=subprocess.PIPE, text=True
    ) as build:
        source = PsutilSource(lambda: [build.pid])
        before = source.own_cpu_seconds()[build.pid]
        assert build.stdout is not None
        assert build.stdout.readline() == "built\n"
        after = source.own_cpu_seconds()[build.pid]
        build.kill()
    assert after - before >= 0.5  # 3 x 0.2 s, in processes gone by now


def test_one_sample_reads_the_process_table_once_whatever_the_number_of_tasks() -> None:
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(16)]
    try:
        source = PsutilSource(lambda: [p.pid for p in sleepers])
        calls = []
        real = load._ppid_map

        def counted() -> dict[int, int]:
            calls.append(1)
            return real()

        load._ppid_map = counted
        try:
            assert set(source.own_cpu_seconds()) >= {p.pid for p in sleepers}
        finally:
            load._ppid_map = real
        assert len(calls) == 1
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


async def test_the_monitor_reads_proc_in_a_worker_thread_only_while_tasks_run() -> None:
    """No task: the cheap sample stays in the event loop. Tasks: their process trees are
    read in a worker thread, while the pids are taken in the loop (the executor's state)."""
    running: list[int] = []
    threads: list[tuple[list[int], bool]] = []

    class Recording(PsutilSource):
        def measure(self, own_pids: list[int]) -> SystemMetrics:
            threads.append((own_pids, threading.current_thread() is threading.main_thread()))
            return super().measure(own_pids)

    samples: list[SystemMetrics] = []
    monitor = LoadMonitor(Recording(lambda: running), 0.01, samples.append)
    await monitor.sample_now()
    running.append(os.getpid())
    await monitor.sample_now()
    assert threads == [([], True), ([os.getpid()], False)]
    assert len(samples) == 2
