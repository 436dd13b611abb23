"""Real-process tests: ``python -m omnimind_trio serve`` as a user runs it, driven over HTTP.

Every daemon is started in its own session and killed in the fixture finalizer, with every
process that carries its workspace in ``OMNIMIND_WORKSPACE`` (the fork server and the task
processes included), even when the test fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio
from trio_websocket import ConnectionClosed, wrap_client_stream

pytestmark = pytest.mark.slow

USER = "proc-user"
PASS = "proc-pass-1234"
START_DEADLINE = 15.0

STATUS_KEYS = {
    "state",
    "running",
    "tasks_registered",
    "tasks_pending",
    "metrics",
    "cloud_enabled",
    "workspace",
}
METRICS_KEYS = {"cpu_percent", "memory_percent", "is_idle", "is_sleep_time"}
TASK_KEYS = {
    "task_id",
    "name",
    "description",
    "priority",
    "execution_count",
    "success_count",
    "failure_count",
    "last_execution",
    "repeat_interval",
}
STATES = {"initializing", "idle", "working", "sleeping", "shutting_down", "error", "stopped"}

QUICK_CODE = "def execute():\n    return {'status': 'completed'}\n"
ASYNC_EXAMPLE = (
    "async def execute():\n"
    "    import asyncio\n"
    "    await asyncio.sleep(1)\n"
    '    return {"status": "completed", "waited": "1 second"}\n'
)


def long_code(marker: str) -> str:
    """The brief's long task, which first records its pid, process group and child."""
    return (
        "def execute():\n"
        " import subprocess,time\n"
        " import json, os\n"
        " child = subprocess.Popen(['sleep','300'])\n"
        f" with open({marker + '.tmp'!r}, 'w') as f:\n"
        "  json.dump({'pid': os.getpid(), 'pgid': os.getpgid(0), 'child': child.pid}, f)\n"
        f" os.replace({marker + '.tmp'!r}, {marker!r})\n"
        " time.sleep(300)\n"
    )


def burn_code(marker: str) -> str:
    return (
        "def execute():\n"
        " import os\n"
        f" open({marker!r}, 'w').write(str(os.getpid()))\n"
        " while True: pass\n"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.01
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
    return members


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Served:
    """One ``omnimind serve`` process."""

    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    workspace: Path
    auth: tuple[str, str] | None
    stdout_path: Path
    stderr_path: Path
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def client(self, auth: Any = "default", **kwargs: Any) -> httpx.Client:
        client = httpx.Client(
            base_url=self.url,
            auth=self.auth if auth == "default" else auth,
            timeout=10.0,
            **kwargs,
        )
        self.clients.append(client)
        return client

    def wait_serving(self) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"omnimind serve exited with {self.proc.returncode} before serving:\n"
                    + self.stderr()[-4000:]
                )
            try:
                httpx.get(f"{self.url}/daemon/status", timeout=1.0)
                return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"omnimind serve did not serve within {START_DEADLINE} s")
            time.sleep(0.02)

    def own_processes(self) -> list[psutil.Process]:
        """Every process started for this daemon: it carries our workspace in its env."""
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if proc.environ().get("OMNIMIND_WORKSPACE") == str(self.workspace):
                    found.append(proc)
        return found

    def kill_all(self) -> None:
        for client in self.clients:
            client.close()
        victims = []
        with contextlib.suppress(psutil.Error):
            victims = psutil.Process(self.pid).children(recursive=True)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        for proc in [*victims, *self.own_processes()]:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def launch(
    cwd: Path,
    env: dict[str, str],
    *args: str,
    port: int | None = None,
    workspace: Path | None = None,
    credentials: tuple[str, str] | None = None,
    logs: Path | None = None,
) -> Served:
    """``omnimind serve --port PORT ARGS`` run in ``cwd`` with exactly ``env``, in a session
    of its own, its output in ``LOGS.stdout`` and ``LOGS.stderr`` (``LOGS`` defaults to
    ``cwd/../serve``); not waited for (``Served.wait_serving``)."""
    port = port or free_port()
    logs = logs or cwd.parent / "serve"
    stdout_path, stderr_path = logs.with_suffix(".stdout"), logs.with_suffix(".stderr")
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "omnimind_trio", "serve", "--port", str(port), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    return Served(proc, port, cwd, workspace or cwd, credentials, stdout_path, stderr_path)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``omnimind serve`` in a subprocess and wait until it serves."""
    started: list[Served] = []

    def start(
        home: Path | None = None,
        *,
        credentials: bool = True,
        env: dict[str, str] | None = None,
    ) -> Served:
        home = home or tmp_path / "home"
        home.mkdir(parents=True, exist_ok=True)
        workspace = home / "workspace"
        workspace.mkdir(exist_ok=True)
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
        env.update(OMNIMIND_HOME=str(home), OMNIMIND_WORKSPACE=str(workspace), **extra)
        if credentials:
            env.update(OMNIMIND_DASHBOARD_USER=USER, OMNIMIND_DASHBOARD_PASS=PASS)
        index = len(started)
        served = launch(
            home, env, workspace=workspace, logs=tmp_path / f"serve-{index}",
            credentials=(USER, PASS) if credentials else None,
        )  # fmt: skip
        started.append(served)
        served.wait_serving()
        return served

    yield start
    for index, served in enumerate(started):
        served.kill_all()
        # Shown by pytest only when the test failed.
        print(f"--- omnimind serve #{index} (exit {served.proc.returncode}) stderr ---")
        print(served.stderr()[-60000:])


def task_body(task_id: str, code: str, priority: str = "CRITICAL", **extra: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "name": f"Task {task_id}",
        "description": f"the {task_id} task",
        "priority": priority,
        "code": code,
        **extra,
    }


def add(client: httpx.Client, task_id: str, code: str, **kwargs: Any) -> None:
    response = client.post("/daemon/tasks/add", json=task_body(task_id, code, **kwargs))
    assert response.status_code == 200, response.text


def tasks_by_id(client: httpx.Client) -> dict[str, dict[str, Any]]:
    response = client.get("/daemon/tasks")
    assert response.status_code == 200, response.text
    return {task["task_id"]: task for task in response.json()["tasks"]}


def wait_counts(client: httpx.Client, task_id: str, timeout: float, **counts: int) -> float:
    """Poll the task list until ``task_id`` shows ``counts``; returns the time it took."""
    t0 = time.perf_counter()

    def reached() -> bool:
        task = tasks_by_id(client).get(task_id)
        return task is not None and all(task[k] == v for k, v in counts.items())

    wait_for(reached, timeout, f"{task_id} to reach {counts}", interval=0.005)
    return time.perf_counter() - t0


def read_marker(path: Path, timeout: float = 5.0) -> dict[str, int]:
    def written() -> dict[str, int] | None:
        try:
            return dict(json.loads(path.read_text()))
        except (FileNotFoundError, ValueError):
            return None  # not there yet, or half written

    return dict(wait_for(written, timeout, f"the task to write {path.name}"))


# -- 1. credentials ----------------------------------------------------------------------------


def test_generated_credentials_are_printed_once_stored_0600_and_reused(
    spawn: Callable[..., Served],
) -> None:
    first = spawn(credentials=False)
    auth_file = first.home / "config" / "dashboard_auth.json"
    assert auth_file.exists()
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    stored = json.loads(auth_file.read_text())
    assert set(stored) == {"user", "pass"}
    assert stored["user"] and stored["pass"]

    # Printed once start-up has succeeded: a moment after the port first answers.
    wait_for(lambda: "pass: " in first.stdout(), 10, "the credentials")
    printed = first.stdout()
    assert f"user: {stored['user']}" in printed
    assert f"pass: {stored['pass']}" in printed
    assert printed.count(stored["pass"]) == 1

    good = first.client(auth=(stored["user"], stored["pass"]))
    assert good.get("/daemon/status").status_code == 200
    assert first.client(auth=(stored["user"], "nope")).get("/daemon/status").status_code == 401

    for client in first.clients:
        client.close()
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=10) == 0

    second = spawn(first.home, credentials=False)
    assert json.loads(auth_file.read_text()) == stored
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    response = second.client(auth=(stored["user"], stored["pass"])).get("/daemon/status")
    assert response.status_code == 200
    for client in second.clients:
        client.close()
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=10) == 0
    assert second.stdout() == ""  # nothing new printed: the password is not shown again


# -- 2. authentication -------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/daemon/status"),
    ("GET", "/daemon/tasks"),
    ("POST", "/daemon/tasks/add"),
    ("POST", "/daemon/start"),
    ("POST", "/daemon/stop"),
    ("GET", "/metrics"),
]


def test_every_endpoint_answers_401_without_or_with_wrong_credentials(
    spawn: Callable[..., Served],
) -> None:
    # 18 wrong attempts from one address: without the throttle, to see every 401 (the
    # throttle has its own tests).
    served = spawn(env={"OMNIMIND_AUTH_FAILURE_LIMIT": "0"})
    body = task_body("sneaky", QUICK_CODE)
    for auth in (None, (USER, "wrong-pass"), ("wrong-user", PASS), ("", "")):
        for method, path in PROTECTED:
            # A fresh connection per request: reusing one after a 401 to a POST is the
            # subject of test_connection_still_answers_after_a_401_to_a_post.
            with httpx.Client(base_url=served.url, auth=auth, timeout=10.0) as client:
                response = client.request(method, path, json=body if path.endswith("add") else None)
            label = f"{method} {path} with auth={auth}"
            assert response.status_code == 401, label
            assert response.headers["WWW-Authenticate"].startswith("Basic"), label
            assert response.headers["content-type"].startswith("application/json"), label
            detail = response.json()["detail"]
            assert isinstance(detail, str) and detail, label

    # None of the rejected requests did anything.
    good = served.client()
    status = good.get("/daemon/status").json()
    assert status["running"] is True
    assert "sneaky" not in tasks_by_id(good)


# -- 3. documented shapes ----------------------------------------------------------------------


def test_documented_endpoints_return_documented_shapes(spawn: Callable[..., Served]) -> None:
    served = spawn()
    client = served.client()

    status = client.get("/daemon/status")
    assert status.status_code == 200
    body = status.json()
    assert set(body) == STATUS_KEYS
    assert set(body["metrics"]) == METRICS_KEYS
    assert body["state"] in STATES - {"stopped"}
    assert body["running"] is True
    assert isinstance(body["tasks_registered"], int)
    assert isinstance(body["tasks_pending"], int)
    assert isinstance(body["metrics"]["cpu_percent"], int | float)
    assert isinstance(body["metrics"]["memory_percent"], int | float)
    assert isinstance(body["metrics"]["is_idle"], bool)
    assert isinstance(body["metrics"]["is_sleep_time"], bool)
    assert isinstance(body["cloud_enabled"], bool)
    assert body["workspace"] == str(served.workspace)

    example = {
        "task_id": "my_custom_task",
        "name": "My Custom Task",
        "description": "Does something useful",
        "priority": "MEDIUM",
        "code": (
            "def execute():\n    print('Running custom task')\n"
            "    return {'status': 'done', 'result': 42}"
        ),
        "repeat_hours": 4,
    }
    added = client.post("/daemon/tasks/add", json=example)
    assert added.status_code == 200
    assert added.json() == {
        "status": "task_added",
        "task_id": "my_custom_task",
        "message": "Task 'My Custom Task' added successfully",
    }

    listing = client.get("/daemon/tasks")
    assert listing.status_code == 200
    listed = listing.json()
    assert set(listed) == {"tasks", "total_tasks"}
    assert listed["total_tasks"] == len(listed["tasks"])
    for task in listed["tasks"]:
        assert set(task) == TASK_KEYS
    mine = next(t for t in listed["tasks"] if t["task_id"] == "my_custom_task")
    assert mine["name"] == "My Custom Task"
    assert mine["description"] == "Does something useful"
    assert mine["priority"] == "MEDIUM"
    assert mine["repeat_interval"] == "4:00:00"
    assert client.get("/daemon/status").json()["tasks_registered"] == listed["total_tasks"]

    assert client.post("/daemon/start").json() == {
        "status": "already_running",
        "message": "Daemon is already running",
    }
    assert client.post("/daemon/stop").json() == {
        "status": "stopped",
        "message": "Daemon stopped successfully",
    }
    stopped = client.get("/daemon/status").json()
    assert stopped["running"] is False
    assert client.post("/daemon/stop").json() == {
        "status": "not_running",
        "message": "Daemon is not running",
    }
    assert client.post("/daemon/start").json() == {
        "status": "started",
        "message": "Daemon started successfully",
    }
    assert client.get("/daemon/status").json()["running"] is True
    assert client.post("/daemon/start").json()["status"] == "already_running"

    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.text


# -- 4. CRITICAL runs at once; the async example works -----------------------------------------


def test_critical_task_runs_within_one_second(spawn: Callable[..., Served]) -> None:
    served = spawn()
    client = served.client()
    client.get("/daemon/status")  # connect first: time the daemon, not the TCP handshake
    t0 = time.perf_counter()
    add(client, "critical_now", QUICK_CODE)
    wait_counts(client, "critical_now", 3.0, execution_count=1, success_count=1)
    elapsed = time.perf_counter() - t0
    print(f"\nCRITICAL task: added -> first successful run seen in {elapsed * 1000:.1f} ms")
    assert elapsed < 1.0
    task = tasks_by_id(client)["critical_now"]
    assert task["failure_count"] == 0
    assert task["last_execution"] is not None


def test_async_example_task_succeeds(spawn: Callable[..., Served]) -> None:
    served = spawn()
    client = served.client()
    t0 = time.perf_counter()
    add(client, "async_example", ASYNC_EXAMPLE)
    wait_counts(client, "async_example", 5.0, execution_count=1)
    elapsed = time.perf_counter() - t0
    task = tasks_by_id(client)["async_example"]
    assert (task["success_count"], task["failure_count"]) == (1, 0)
    assert elapsed >= 1.0  # it really awaited asyncio.sleep(1)


# -- 5. stop kills the running task's whole process group --------------------------------------


def test_stop_kills_running_task_group_fast_and_start_works_again(
    spawn: Callable[..., Served],
) -> None:
    served = spawn()
    client = served.client()
    marker = served.workspace / "long.json"
    add(client, "long", long_code(str(marker)))
    pids = read_marker(marker)
    assert alive(pids["pid"]) and alive(pids["child"])
    assert client.get("/daemon/status").json()["state"] == "working"

    t0 = time.perf_counter()
    response = client.post("/daemon/stop")
    stop_seconds = time.perf_counter() - t0
    print(f"\nPOST /daemon/stop with a running task answered in {stop_seconds * 1000:.1f} ms")
    assert response.json() == {"status": "stopped", "message": "Daemon stopped successfully"}
    assert stop_seconds < 1.0

    # Nothing of the task is left: not the task, not the `sleep 300` it started.
    wait_for(lambda: not group_members(pids["pgid"]), 1.0, "the task's process group to die")
    assert not alive(pids["pid"])
    assert not alive(pids["child"])
    status = client.get("/daemon/status").json()
    assert status["running"] is False
    assert status["state"] != "working"

    assert client.post("/daemon/start").json()["status"] == "started"
    add(client, "after_restart", QUICK_CODE)
    wait_counts(client, "after_restart", 2.0, execution_count=1, success_count=1)


# -- 6. signals --------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_with_long_task_exits_zero_fast_and_leaves_no_process(
    spawn: Callable[..., Served], signum: signal.Signals
) -> None:
    served = spawn()
    client = served.client()
    marker = served.workspace / "long.json"
    add(client, "long", long_code(str(marker)))
    pids = read_marker(marker)
    children = psutil.Process(served.pid).children(recursive=True)
    child_pids = {proc.pid for proc in children}
    # The fork server, the task and its `sleep 300` are all there before the signal.
    assert {pids["pid"], pids["child"]} <= child_pids
    assert len(child_pids) >= 3

    t0 = time.perf_counter()
    served.proc.send_signal(signum)
    code = served.proc.wait(timeout=10)
    exit_seconds = time.perf_counter() - t0
    print(f"\n{signum.name} with a running task: exited {code} in {exit_seconds * 1000:.1f} ms")
    assert code == 0, served.stderr()
    assert exit_seconds < 2.0
    survivors = [proc.pid for proc in children if alive(proc.pid)]
    assert survivors == []
    assert group_members(pids["pgid"]) == []


LONG_GRACE = {"OMNIMIND_STOP_GRACE_SECONDS": "9"}


def test_sigterm_is_not_held_up_by_an_idle_keep_alive_connection(
    spawn: Callable[..., Served],
) -> None:
    """A dashboard left open (an idle keep-alive connection) must not delay the stop: it
    is idle, so the graceful shutdown can close it at once instead of waiting for hypercorn's
    graceful_timeout (two thirds of stop_grace_seconds: 6 s here)."""
    served = spawn(env=LONG_GRACE)
    client = served.client()
    assert client.get("/daemon/status").status_code == 200  # the connection stays open, idle
    t0 = time.perf_counter()
    served.proc.send_signal(signal.SIGTERM)
    code = served.proc.wait(timeout=10)
    exit_seconds = time.perf_counter() - t0
    print(
        f"\nSIGTERM, idle keep-alive connection open: exited {code} in {exit_seconds * 1000:.1f} ms"
    )
    assert code == 0
    assert exit_seconds < 3.0


def test_sigterm_is_not_held_up_by_a_websocket_client(spawn: Callable[..., Served]) -> None:
    """A live view left open (``omnimind logs -f``, a dashboard) is told 1001 at once, and
    its connection must not hold the stop either (for hypercorn's graceful_timeout: 6 s
    here)."""
    served = spawn(env=LONG_GRACE)
    auth = "Basic " + base64.b64encode(f"{USER}:{PASS}".encode()).decode()

    async def watch() -> tuple[int | None, float]:
        # Our own TCP stream: trio_websocket's client leaves its socket open when the
        # server closes first.
        async with (
            await trio.open_tcp_stream("127.0.0.1", served.port) as stream,
            trio.open_nursery() as nursery,
        ):
            ws = await wrap_client_stream(
                nursery, stream, "127.0.0.1", "/daemon/ws", extra_headers=[("Authorization", auth)]
            )
            await ws.get_message()
            t0 = time.perf_counter()
            served.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.get_message()
            code = await trio.to_thread.run_sync(lambda: served.proc.wait(timeout=10))
        assert closed.value.reason.code == 1001
        return code, time.perf_counter() - t0

    code, exit_seconds = trio.run(watch)
    print(f"\nSIGTERM, WebSocket client connected: exited {code} in {exit_seconds * 1000:.1f} ms")
    assert code == 0
    assert exit_seconds < 3.0


# -- 7. persistence across kill -9 -------------------------------------------------------------


def test_tasks_and_counters_survive_sigkill_and_the_open_run_is_interrupted(
    spawn: Callable[..., Served],
) -> None:
    served = spawn()
    client = served.client()
    add(client, "quick", QUICK_CODE)
    add(client, "daily", QUICK_CODE, repeat_hours=24)
    wait_counts(client, "quick", 3.0, execution_count=1, success_count=1)
    wait_counts(client, "daily", 3.0, execution_count=1, success_count=1)
    marker = served.workspace / "long.json"
    add(client, "long", long_code(str(marker)), timeout_seconds=600)
    pids = read_marker(marker)
    before = tasks_by_id(client)
    assert before["long"]["failure_count"] == 0

    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(timeout=5)
    t0 = time.perf_counter()
    # The fork server sees its control socket close and kills the task's group.
    wait_for(lambda: not group_members(pids["pgid"]), 2.0, "the orphaned task group to die")
    print(f"\ntask group gone {(time.perf_counter() - t0) * 1000:.1f} ms after kill -9")

    again = spawn(served.home)
    after = tasks_by_id(again.client())
    assert {"quick", "daily", "long"} <= set(after)
    assert after["quick"] == before["quick"]
    assert after["daily"] == before["daily"]
    assert after["daily"]["repeat_interval"] == "1 day, 0:00:00"
    long_after = after["long"]
    assert long_after["failure_count"] == before["long"]["failure_count"] + 1
    assert long_after["execution_count"] == before["long"]["execution_count"] + 1
    assert long_after["success_count"] == before["long"]["success_count"]
    assert long_after["last_execution"] == before["long"]["last_execution"] is not None

    with contextlib.closing(sqlite3.connect(served.home / "omnimind.db")) as db:
        outcomes = [
            row[0] for row in db.execute("SELECT outcome FROM executions WHERE task_id = 'long'")
        ]
    assert outcomes == ["interrupted"]


# -- 8. the API stays responsive while tasks burn the CPU --------------------------------------


def test_status_latency_while_two_tasks_burn_cpu(spawn: Callable[..., Served]) -> None:
    served = spawn()
    client = served.client()
    markers = [served.workspace / f"burn{i}.pid" for i in range(2)]
    for i, marker in enumerate(markers):
        add(client, f"burn{i}", burn_code(str(marker)), timeout_seconds=30)
    for marker in markers:
        # Written, not only created: the task opens the file, then writes its pid.
        wait_for(lambda m=marker: m.exists() and m.read_text() != "", 5.0, f"{marker.name}")
    burners = [int(marker.read_text()) for marker in markers]
    assert all(alive(pid) for pid in burners)
    for _ in range(5):  # warm up
        client.get("/daemon/status")

    samples = []
    for _ in range(50):
        t0 = time.perf_counter()
        response = client.get("/daemon/status")
        samples.append(time.perf_counter() - t0)
        assert response.status_code == 200
    p50, p99 = percentile(samples, 0.50) * 1000, percentile(samples, 0.99) * 1000
    print(f"\nGET /daemon/status under 2 CPU burners: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    assert response.json()["state"] == "working"
    assert all(alive(pid) for pid in burners)  # they really burned during the measurement
    # The 50 ms target is measured by bench/ on a quiet machine; here, on a shared CI
    # machine, the test only proves the API is never blocked by the burners.
    assert p99 < 250.0

    assert client.post("/daemon/stop").json()["status"] == "stopped"
    wait_for(lambda: not any(alive(pid) for pid in burners), 1.0, "the burners to die")


# -- 9. bad inputs -----------------------------------------------------------------------------


def definitions(client: httpx.Client) -> tuple[int, dict[str, Any]]:
    """The task list without the counters of tasks that may run meanwhile (the built-in)."""
    listing = client.get("/daemon/tasks").json()
    view = {}
    for task in listing["tasks"]:
        if task["task_id"] == "existing":
            view["existing"] = task
        else:
            view[task["task_id"]] = {
                k: task[k] for k in ("name", "description", "priority", "repeat_interval")
            }
    return listing["total_tasks"], view


def oversized_body(task_id: str) -> bytes:
    code = "def execute():\n    return 1\n#" + "x" * (1024 * 1024)
    return json.dumps(task_body(task_id, code)).encode()


def chunked(data: bytes, size: int = 65536) -> Iterator[bytes]:
    """A body without Content-Length: the limit must hold while streaming too."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_bad_inputs_get_documented_errors_and_change_nothing(spawn: Callable[..., Served]) -> None:
    served = spawn()
    client = served.client()
    add(client, "existing", QUICK_CODE)
    wait_counts(client, "existing", 3.0, execution_count=1, success_count=1)
    before = definitions(client)
    json_type = {"content-type": "application/json"}

    def post(body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return client.post("/daemon/tasks/add", **kwargs)

    response = post(task_body("bad_priority", QUICK_CODE, priority="INVALID"))
    assert (response.status_code, response.json()) == (400, {"detail": "Invalid priority: INVALID"})

    response = post(task_body("no_execute", "def run():\n    return 1\n"))
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Code must define an 'execute()' function"},
    )

    response = post(content=b'{"task_id": "broken", ', headers=json_type)
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)

    response = post(task_body("existing", QUICK_CODE, priority="LOW"))
    assert response.status_code == 409
    assert isinstance(response.json()["detail"], str)

    # Oversized bodies on fresh connections: what happens to a reused connection after a
    # 413 is the subject of test_connection_still_answers_after_a_rejected_large_body.
    for content in (oversized_body("huge"), chunked(oversized_body("huge_chunked"))):
        with httpx.Client(base_url=served.url, auth=served.auth, timeout=10.0) as fresh:
            response = fresh.post("/daemon/tasks/add", content=content, headers=json_type)
        assert response.status_code == 413
        assert isinstance(response.json()["detail"], str)

    assert definitions(client) == before
    assert served.proc.poll() is None


def test_connection_still_answers_after_a_rejected_large_body(
    spawn: Callable[..., Served],
) -> None:
    """A keep-alive client (requests.Session, httpx.Client, a browser) must get an answer to
    its next request after the daemon rejected a large body without reading it."""
    served = spawn()
    json_type = {"content-type": "application/json"}
    cases: dict[str, Callable[[], dict[str, Any]]] = {
        "413, Content-Length body over 1 MiB": lambda: {"content": oversized_body("a")},
        "413, chunked body of 5 MiB": lambda: {"content": chunked(b"y" * 5 * 2**20)},
        "401, 900 kB body with wrong credentials": lambda: {
            "content": json.dumps(task_body("b", QUICK_CODE + "#" + "z" * 900_000)).encode(),
            "auth": (USER, "wrong"),
        },
    }
    hung = []
    for label, make in cases.items():
        with httpx.Client(base_url=served.url, auth=served.auth, timeout=1.0) as client:
            first = client.post("/daemon/tasks/add", headers=json_type, **make())
            assert first.status_code in (401, 413), label
            try:
                status = client.get("/daemon/status").status_code
            except httpx.TimeoutException:
                hung.append(label)
            else:
                assert status == 200, label
    assert hung == [], f"the next request on the same connection got no answer after: {hung}"


def test_connection_still_answers_after_a_401_to_a_post(spawn: Callable[..., Served]) -> None:
    """The same, for the everyday case: a client that POSTs a task with a typo in its
    password, then retries on the same connection (the hang was intermittent: 60 tries)."""
    served = spawn(env={"OMNIMIND_AUTH_FAILURE_LIMIT": "0"})  # 60 typos: no throttle
    body = task_body("typo", QUICK_CODE)
    for attempt in range(1, 61):
        with httpx.Client(base_url=served.url, timeout=0.5) as client:
            rejected = client.post("/daemon/tasks/add", json=body, auth=(USER, "typo"))
            assert rejected.status_code == 401
            try:
                status = client.get("/daemon/status", auth=(USER, PASS)).status_code
            except httpx.TimeoutException:
                pytest.fail(f"attempt {attempt}: the request after the 401 got no answer")
            assert status == 200
