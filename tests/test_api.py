"""The REST API through Quart's test client, against a real daemon on a fake load source."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from omnimind_trio.credentials import Credentials
from omnimind_trio.daemon import Daemon
from omnimind_trio.http import create_app

from .conftest import task_ids

AUTH = {"Authorization": "Basic " + base64.b64encode(b"tester:secret-pass").decode()}
TASK: dict[str, Any] = {
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
ROUTES = [
    ("GET", "/daemon/status"),
    ("GET", "/daemon/tasks"),
    ("POST", "/daemon/tasks/add"),
    ("POST", "/daemon/start"),
    ("POST", "/daemon/stop"),
    ("GET", "/metrics"),
    ("GET", "/no/such/route"),
]


@pytest.fixture
def client(daemon: Daemon) -> Any:
    app = create_app(daemon, Credentials("tester", "secret-pass", "environment"))
    return app.test_client()


async def call(client: Any, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    headers = dict(kw.pop("headers", AUTH))
    if body is not None and not isinstance(body, bytes | str):
        body = json.dumps(body)
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    return await client.open(path, method=method, headers=headers, data=body, **kw)


async def wait_for(predicate: Any, seconds: float = 5.0) -> None:
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(0.01)


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"tester:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"other:secret-pass").decode()},
        {"Authorization": "Basic not-base64!!"},
        {"Authorization": "Bearer secret-pass"},
    ],
)
async def test_every_route_requires_credentials(
    client: Any, daemon: Daemon, method: str, path: str, headers: dict[str, str]
) -> None:

    response = await call(client, method, path, TASK, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert "detail" in await response.get_json()
    assert daemon.running  # an unauthenticated stop did nothing
    assert "my_custom_task" not in task_ids(daemon)


async def test_status_has_the_documented_shape(client: Any, daemon: Daemon) -> None:
    response = await call(client, "GET", "/daemon/status")
    assert response.status_code == 200
    body = await response.get_json()
    assert list(body) == [
        "state",
        "running",
        "tasks_registered",
        "tasks_pending",
        "metrics",
        "cloud_enabled",
        "workspace",
    ]
    assert list(body["metrics"]) == ["cpu_percent", "memory_percent", "is_idle", "is_sleep_time"]
    assert body["running"] is True
    assert body["cloud_enabled"] is False
    assert body["workspace"] == str(daemon.settings.workspace)
    assert body["tasks_registered"] == 1  # the built-in database_optimization
    assert body["state"] in {"idle", "working", "sleeping"}


async def test_add_then_list_with_the_documented_strings(client: Any, daemon: Daemon) -> None:
    response = await call(client, "POST", "/daemon/tasks/add", TASK)
    assert response.status_code == 200
    assert await response.get_json() == {
        "status": "task_added",
        "task_id": "my_custom_task",
        "message": "Task 'My Custom Task' added successfully",
    }
    await wait_for(lambda: daemon.get_task("my_custom_task").execution_count)
    body = await (await call(client, "GET", "/daemon/tasks")).get_json()
    assert body["total_tasks"] == 2
    task = next(t for t in body["tasks"] if t["task_id"] == "my_custom_task")
    assert task == {
        "task_id": "my_custom_task",
        "name": "My Custom Task",
        "description": "Does something useful",
        "priority": "MEDIUM",
        "execution_count": 1,
        "success_count": 1,
        "failure_count": 0,
        "last_execution": task["last_execution"],
        "repeat_interval": "4:00:00",
    }
    assert task["last_execution"].endswith("Z") and len(task["last_execution"]) == 20


async def test_repeat_interval_renders_like_python_timedelta(client: Any) -> None:
    for task_id, hours in (("daily", 24), ("once", None), ("two", 2)):
        body = {**TASK, "task_id": task_id, "priority": "LOW", "repeat_hours": hours}
        assert (await call(client, "POST", "/daemon/tasks/add", body)).status_code == 200
    tasks = (await (await call(client, "GET", "/daemon/tasks")).get_json())["tasks"]
    intervals = {t["task_id"]: t["repeat_interval"] for t in tasks}
    assert intervals["daily"] == "1 day, 0:00:00"
    assert intervals["two"] == "2:00:00"
    assert intervals["once"] is None


BAD_BODIES: list[tuple[Any, str]] = [
    ({**TASK, "priority": "INVALID"}, "Invalid priority: INVALID"),
    ({**TASK, "priority": "medium"}, "Invalid priority: medium"),
    ({**TASK, "code": "print('no function here')"}, "Code must define an 'execute()' function"),
    ({**TASK, "code": "def run():\n    return 1"}, "Code must define an 'execute()' function"),
    ({**TASK, "code": "def execute(:\n    pass"}, "Syntax error in code at line 1: invalid syntax"),
    (
        {**TASK, "code": "x = 1\n\ndef execute()\n    pass"},
        "Syntax error in code at line 3: expected ':'",
    ),
    ({**TASK, "code": "def execute(a):\n    pass"}, "execute() must be callable without arguments"),
    (
        {**TASK, "code": "def execute():\n    return '\x00'\x00"},
        "Syntax error in code: source code string cannot contain null bytes",
    ),
    (
        {**TASK, "code": "x = " + "-" * 100_000 + "1\ndef execute(): pass"},
        "Code cannot be parsed: it is nested too deeply",
    ),
    ({**TASK, "timeout_seconds": "5"}, "timeout_seconds: Input should be a valid number"),
    ({**TASK, "repeat_hours": -1}, "repeat_hours: Input should be greater than or equal to 1"),
    ({**TASK, "repeat_hours": 1.5}, "repeat_hours: Input should be a valid integer"),
    ({**TASK, "repeat_hours": "4"}, "repeat_hours: Input should be a valid integer"),
    ({**TASK, "task_id": ""}, "task_id must not be empty"),
    ({**TASK, "task_id": "x" * 129}, "task_id must be at most 128 characters"),
    (
        {**TASK, "task_id": "../etc/passwd"},
        "task_id may hold only letters, digits, '_', '-' and '.', and must start with a letter"
        " or digit",
    ),
    ({k: v for k, v in TASK.items() if k != "code"}, "Missing required field: code"),
    ({**TASK, "name": 42}, "name: Input should be a valid string"),
    ({**TASK, "task_id": {"a": 1}}, "task_id: Input should be a valid string"),
    ({**TASK, "surprise": 1}, "Unknown field: surprise"),
    ([TASK], "Request body must be a JSON object"),
    (
        "{not json",
        "Request body is not valid JSON: Expecting property name enclosed in double"
        " quotes: line 1 column 2 (char 1)",
    ),
    ("", "Request body is empty: a JSON object is required"),
]


@pytest.mark.parametrize(("body", "detail"), BAD_BODIES)
async def test_bad_input_gets_400_with_a_clear_detail_and_changes_nothing(
    client: Any, daemon: Daemon, body: Any, detail: str
) -> None:
    before = task_ids(daemon)
    response = await call(client, "POST", "/daemon/tasks/add", body)
    assert response.status_code == 400
    assert await response.get_json() == {"detail": detail}
    assert task_ids(daemon) == before
    assert len(await daemon._store.load_tasks()) == len(before)


async def test_task_code_is_never_executed_at_add_time(client: Any, daemon: Daemon) -> None:
    marker = daemon.settings.workspace / "ran"
    code = f"open({str(marker)!r}, 'w').close()\ndef execute():\n    return 1"
    body = {**TASK, "priority": "LOW", "code": code}  # LOW: not run in daytime
    assert (await call(client, "POST", "/daemon/tasks/add", body)).status_code == 200
    await trio.sleep(0.2)
    assert not marker.exists()


async def test_duplicate_task_id_is_409_and_keeps_the_first(client: Any, daemon: Daemon) -> None:
    assert (await call(client, "POST", "/daemon/tasks/add", TASK)).status_code == 200
    response = await call(client, "POST", "/daemon/tasks/add", {**TASK, "name": "Other"})
    assert response.status_code == 409
    assert await response.get_json() == {"detail": "Task already exists: my_custom_task"}
    assert daemon.get_task("my_custom_task").name == "My Custom Task"


async def test_body_over_the_limit_is_413(client: Any, daemon: Daemon) -> None:
    big = {**TASK, "description": "x" * (daemon.settings.max_body_bytes + 1)}
    response = await call(client, "POST", "/daemon/tasks/add", big)
    assert response.status_code == 413
    assert await response.get_json() == {
        "detail": f"Request body is larger than {daemon.settings.max_body_bytes} bytes"
    }
    assert "my_custom_task" not in task_ids(daemon)


async def test_unknown_route_and_wrong_method(client: Any) -> None:
    response = await call(client, "GET", "/daemon/nothing")
    assert response.status_code == 404
    assert await response.get_json() == {"detail": "Not found: /daemon/nothing"}
    response = await call(client, "GET", "/daemon/stop")
    assert response.status_code == 405
    assert await response.get_json() == {"detail": "Method GET is not allowed on /daemon/stop"}


async def test_stop_and_start_with_the_documented_messages(client: Any, daemon: Daemon) -> None:
    async def post(path: str) -> Any:
        return await (await call(client, "POST", path)).get_json()

    assert await post("/daemon/start") == {
        "status": "already_running",
        "message": "Daemon is already running",
    }
    assert await post("/daemon/stop") == {
        "status": "stopped",
        "message": "Daemon stopped successfully",
    }
    status = await (await call(client, "GET", "/daemon/status")).get_json()
    assert status["state"] == "stopped" and status["running"] is False
    assert await post("/daemon/stop") == {
        "status": "not_running",
        "message": "Daemon is not running",
    }
    assert await post("/daemon/start") == {
        "status": "started",
        "message": "Daemon started successfully",
    }
    assert (await (await call(client, "GET", "/daemon/status")).get_json())["running"] is True


async def test_tasks_added_while_stopped_run_after_start(client: Any, daemon: Daemon) -> None:
    await call(client, "POST", "/daemon/stop")
    body = {**TASK, "priority": "CRITICAL"}
    assert (await call(client, "POST", "/daemon/tasks/add", body)).status_code == 200
    await trio.sleep(0.2)
    assert daemon.get_task("my_custom_task").execution_count == 0
    await call(client, "POST", "/daemon/start")
    await wait_for(lambda: daemon.get_task("my_custom_task").success_count == 1)


async def test_metrics_is_prometheus_text(client: Any, daemon: Daemon) -> None:
    await call(client, "POST", "/daemon/tasks/add", {**TASK, "priority": "CRITICAL"})
    await wait_for(lambda: daemon.get_task("my_custom_task").execution_count)
    await call(client, "GET", "/daemon/status")
    response = await call(client, "GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {
        f.name: f for f in text_string_to_metric_families((await response.get_data()).decode())
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    key = (("outcome", "succeeded"), ("task_id", "my_custom_task"))
    assert samples[("omnimind_executions_total", key)] == 1
    assert samples[("omnimind_up", ())] == 1
    assert samples[("omnimind_gate_open", (("priority", "CRITICAL"),))] == 1
    assert samples[("omnimind_execution_duration_seconds_count", ())] >= 1
    assert (
        samples[
            (
                "omnimind_http_requests_total",
                (("method", "GET"), ("route", "/daemon/status"), ("status", "200")),
            )
        ]
        == 1
    )


async def test_reserved_path_words_are_not_task_ids(client: Any) -> None:
    response = await call(client, "POST", "/daemon/tasks/add", {**TASK, "task_id": "batch"})
    assert response.status_code == 400
    assert await response.get_json() == {"detail": "task_id 'batch' is reserved"}
    response = await call(client, "GET", "/daemon/tasks/add")
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"


async def test_a_body_that_is_not_json_is_415(client: Any, daemon: Daemon) -> None:
    response = await call(
        client, "POST", "/daemon/tasks/add", json.dumps(TASK),
        headers={**AUTH, "Content-Type": "text/plain"},
    )  # fmt: skip
    assert response.status_code == 415
    assert await response.get_json() == {"detail": "Content-Type must be application/json"}
    assert "my_custom_task" not in task_ids(daemon)


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/daemon/stop"), ("POST", "/daemon/tasks/add")]
)
async def test_a_page_of_another_site_cannot_drive_the_daemon(
    client: Any, daemon: Daemon, method: str, path: str
) -> None:
    """CSRF: the browser may hold the user's Basic credentials for the daemon."""
    headers = {**AUTH, "Origin": "http://evil.example"}
    response = await call(client, method, path, TASK, headers=headers)
    assert response.status_code == 403
    detail = (await response.get_json())["detail"]
    assert detail.startswith("Cross-origin request refused: http://evil.example")
    assert daemon.running and "my_custom_task" not in task_ids(daemon)
    same_site = {**AUTH, "Origin": "http://localhost"}  # the test client's own host
    assert (await call(client, "GET", "/daemon/status", headers=same_site)).status_code == 200
