"""G. Stop (issue 6.6): with 50 executions in flight, how long until every task process
is gone, after ``POST /daemon/stop`` and after SIGTERM to ``omnimind serve``.

Each run starts a fresh ``omnimind serve`` (``OMNIMIND_MAX_CONCURRENT_CRITICAL=64`` so 50
CRITICAL tasks can run at once), adds 50 one-shot CRITICAL tasks that sleep for a minute
through the API, and waits until 50 task processes (children of the fork server) are
alive. Then it sends the stop and polls, every millisecond, until each of those processes
has exited (a zombie counts as exited: it no longer runs; it is dead and not yet
reaped). For SIGTERM, the time until the server process itself has exited is reported
beside it. Any task process left at the end is killed by the benchmark.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import psutil

from .common import (
    Figure,
    Mode,
    Server,
    base_env,
    free_port,
    log,
    omnimind_command,
    running_server,
    temp_home,
)

SLEEPER = "def execute():\n    import time\n    time.sleep(60)\n"
WAIT_SECONDS = 30.0


def task_processes(server: Server) -> list[psutil.Process]:
    """The running task processes: children of the fork server (the ``_worker.py`` child)."""
    found: list[psutil.Process] = []
    try:
        root = psutil.Process(server.pid)
        for child in root.children():
            with contextlib.suppress(psutil.Error):
                if any("_worker.py" in part for part in child.cmdline()):
                    found += [p for p in child.children() if _alive(p)]
    except psutil.NoSuchProcess:
        pass
    return found


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start_in_flight(server: Server, count: int) -> list[psutil.Process]:
    with server.client() as http:
        for i in range(count):
            response = http.post(
                "/daemon/tasks/add",
                json={
                    "task_id": f"sleeper-{i:03d}",
                    "name": f"Sleeper {i}",
                    "description": "sleeps a minute",
                    "priority": "CRITICAL",
                    "code": SLEEPER,
                },
            )
            response.raise_for_status()
    deadline = time.perf_counter() + WAIT_SECONDS
    while time.perf_counter() < deadline:
        processes = task_processes(server)
        if len(processes) >= count:
            return processes
        time.sleep(0.01)
    raise RuntimeError(f"only {len(task_processes(server))} of {count} tasks started")


def wait_gone(processes: list[psutil.Process], started: float, timeout: float) -> float:
    """Seconds from ``started`` until none of ``processes`` runs (nan on timeout)."""
    deadline = started + timeout
    pending = list(processes)
    while pending and time.perf_counter() < deadline:
        pending = [p for p in pending if _alive(p)]
        if pending:
            time.sleep(0.001)
    return time.perf_counter() - started if not pending else float("nan")


def kill_leftovers(processes: list[psutil.Process]) -> int:
    left = 0
    for process in processes:
        if _alive(process):
            left += 1
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
    return left


def one_run(count: int, how: str) -> dict[str, float]:
    with temp_home() as home:
        port = free_port()
        env = base_env(home, port, OMNIMIND_MAX_CONCURRENT_CRITICAL=str(max(64, count + 8)))
        with running_server(omnimind_command("--log-level", "WARNING"), env, port) as server:
            processes = start_in_flight(server, count)
            try:
                result: dict[str, float] = {}
                if how == "api":
                    answered: list[float] = []

                    def post_stop() -> None:
                        with server.client() as http:
                            http.post("/daemon/stop").raise_for_status()
                        answered.append(time.perf_counter())

                    poster = threading.Thread(target=post_stop)
                    started = time.perf_counter()
                    poster.start()
                    result["gone"] = wait_gone(processes, started, 10.0)
                    poster.join(15)
                    result["answered"] = answered[0] - started if answered else float("nan")
                else:
                    started = time.perf_counter()
                    server.process.send_signal(signal.SIGTERM)
                    result["gone"] = wait_gone(processes, started, 10.0)
                    try:
                        server.process.wait(15)
                        result["exited"] = time.perf_counter() - started
                    except Exception:
                        result["exited"] = float("nan")
            finally:
                left = kill_leftovers(processes)
                if left:
                    log(f"G: {left} task processes were still alive; killed them")
    return result


def run(mode: Mode) -> list[Figure]:
    api_gone, api_answer, term_gone, term_exit = [], [], [], []
    n = mode.stop_in_flight
    for rep in range(mode.repeats):
        api = one_run(n, "api")
        term = one_run(n, "sigterm")
        api_gone.append(api["gone"] * 1000)
        api_answer.append(api["answered"] * 1000)
        term_gone.append(term["gone"] * 1000)
        term_exit.append(term["exited"] * 1000)
        log(
            f"G run {rep + 1}: POST /daemon/stop: all gone in {api_gone[-1]:.0f} ms,"
            f" answered in {api_answer[-1]:.0f} ms; SIGTERM: all gone in"
            f" {term_gone[-1]:.0f} ms, server exited in {term_exit[-1]:.0f} ms"
        )
    return [
        Figure(
            "G1",
            f"POST /daemon/stop, {n} in flight: until all task processes gone",
            "ms",
            api_gone,
            ("<", 1000.0),
            note=f"{n} sleeping CRITICAL tasks added through the API; fresh server per run",
        ),
        Figure("G2", "POST /daemon/stop: until the response", "ms", api_answer),
        Figure(
            "G3",
            f"SIGTERM to omnimind serve, {n} in flight: until all gone",
            "ms",
            term_gone,
            ("<", 1000.0),
        ),
        Figure("G4", "SIGTERM: until the server process exited", "ms", term_exit),
    ]
