"""P. Getting out of the way (issue 14): how soon a running task is frozen when the person
comes back, measured on a real daemon and a real CPU-bound task.

``omnimind serve`` reads the person's idle time from the command source
(``OMNIMIND_USER_IDLE_COMMAND="cat <file>"``, xprintidle's format). A CRITICAL task with
``conditions: {"user_away": true}`` burns CPU; the benchmark writes a fresh input (``40``
ms idle) to the file and times until the task's process is in state ``T`` (frozen), then
writes "gone for 200 s" and times until it runs again. Side by side, in the same daemon: a
HIGH task without conditions frozen by the CPU-load gate, when busy loops on every core
stand for the person (the freeze that existed before, through the gate's dwell).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

# The test suite's own helpers: the CPU-bound task, its process state, an atomic write.
from tests.test_conditions_process import write
from tests.test_idle import burn_code, state
from tests.test_process import read_marker

from .common import (
    PASSWORD,
    USER,
    Figure,
    Mode,
    base_env,
    free_port,
    log,
    omnimind_command,
    percentile,
    ratio,
    running_server,
    temp_home,
)


def _until(predicate: Any, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError("the task's process did not change state in time")
        time.sleep(0.002)
    return time.monotonic() - started


def _burner(http: httpx.Client, workspace: Path, task_id: str, **fields: Any) -> int:
    marker = workspace / f"{task_id}.json"
    body = {"task_id": task_id, "name": task_id, "description": "", "timeout_seconds": 600,
            "code": burn_code(str(marker)), **fields}  # fmt: skip
    http.post("/daemon/tasks/add", json=body).raise_for_status()
    return int(read_marker(marker, timeout=60)["pid"])


def _measure(cycles: int) -> tuple[list[float], list[float], list[float], list[float]]:
    freeze, thaw, cpu_freeze, cpu_thaw = [], [], [], []
    rng = random.Random(14)
    with temp_home() as home:
        idle = home / "idle_ms"
        write(idle, "600000\n")
        workspace = home / "workspace"
        workspace.mkdir(exist_ok=True)
        port = free_port()
        env = base_env(
            home,
            port,
            OMNIMIND_USER_IDLE_SOURCES="command",
            OMNIMIND_USER_IDLE_COMMAND=f"cat {idle}",
            OMNIMIND_WORKSPACE=str(workspace),
        )
        with (
            running_server(omnimind_command("--log-level", "WARNING"), env, port),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(USER, PASSWORD)) as http,
        ):
            pid = _burner(http, workspace, "away", priority="CRITICAL",
                          conditions={"user_away": True})  # fmt: skip
            for _ in range(cycles):
                time.sleep(rng.uniform(0.3, 0.8))  # a random phase against the 0.5 s grid
                write(idle, "40\n")
                freeze.append(_until(lambda: state(pid) == "T", 10) * 1000)
                time.sleep(rng.uniform(0.3, 0.8))
                write(idle, "200000\n")
                thaw.append(_until(lambda: state(pid) != "T", 10) * 1000)
            http.post("/daemon/tasks/away/cancel")
            # The reference: the CPU-load gate, with busy loops standing for the person.
            pid = _burner(http, workspace, "busy", priority="HIGH")
            for _ in range(max(1, cycles // 4)):
                time.sleep(1.0)
                users = [
                    subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    for _ in range(os.cpu_count() or 2)
                ]
                try:
                    cpu_freeze.append(_until(lambda: state(pid) == "T", 30) * 1000)
                finally:
                    for user in users:
                        user.kill()
                        user.wait()
                cpu_thaw.append(_until(lambda: state(pid) != "T", 30) * 1000)
    return freeze, thaw, cpu_freeze, cpu_thaw


def run(mode: Mode) -> list[Figure]:
    cycles = 12 if mode.repeats <= 3 else 40
    p50, worst, thaw50, cpu50, ratios = [], [], [], [], []
    for rep in range(mode.repeats if mode.repeats <= 3 else 3):
        freeze, thaw, cpu_freeze, _ = _measure(cycles)
        p50.append(percentile(freeze, 50))
        worst.append(max(freeze))
        thaw50.append(percentile(thaw, 50))
        cpu50.append(percentile(cpu_freeze, 50))
        ratios.append(ratio(cpu50[-1], p50[-1]))
        log(
            f"P run {rep + 1}: user_away freeze p50 {p50[-1]:.0f} ms, max {worst[-1]:.0f} ms,"
            f" thaw p50 {thaw50[-1]:.0f} ms; CPU-gate freeze p50 {cpu50[-1]:.0f} ms"
        )
    note = f"{cycles} input/leave cycles, command source, 0.5 s samples; real CPU-bound task"
    return [
        Figure("P1", "user_away: frozen after the first input, p50", "ms", p50, note=note),
        Figure("P2", "user_away: frozen after the first input, max", "ms", worst, ("<", 1000.0)),
        Figure("P3", "user_away: thawed after the person left, p50", "ms", thaw50, ("<", 1000.0)),
        Figure(
            "P4",
            "CPU-load gate: frozen after the load began, p50",
            "ms",
            cpu50,
            note="the reference: busy loops on every core, the gate's 3 s dwell",
        ),
        Figure(
            "P5",
            "CPU-gate freeze / user_away freeze",
            "x",
            ratios,
            note="how much sooner a user_away task gets out of the way",
        ),
    ]
