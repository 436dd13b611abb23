"""Node names: the settings, a task's ``machines`` through the API, the ``node`` of
execution records, ``GET /daemon/nodes`` and the CLI's words for them. (The scheduler's
side, on a fake clock, is tests/test_machines.py.)"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pydantic
import pytest

from omnimind_trio import Settings, __version__
from omnimind_trio.cli._render import _render_nodes, _render_task
from omnimind_trio.cli._waiting import ago, next_words, status_words
from omnimind_trio.daemon import Daemon

from .conftest import task_ids
from .test_api import TASK, call, client, wait_for
from .test_api_tasks import SLEEPER, add, get

__all__ = ["client"]  # the fixture, re-used

QUICK = "def execute():\n    return 1\n"

# -- the settings ------------------------------------------------------------------------------


def test_the_node_name_defaults_to_the_host_name_up_to_its_first_dot(tmp_path: Path) -> None:
    with mock.patch("socket.gethostname", return_value="desktop.home.lan"):
        assert Settings(home=tmp_path).node_name == "desktop"
    assert Settings(home=tmp_path, node_name="nas_2.b-3").node_name == "nas_2.b-3"
    assert Settings(home=tmp_path).lease_seconds == 30


@pytest.mark.parametrize("name", ["", "a b", "é", "x" * 65, "a/b"])
def test_a_bad_node_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="is not a node name: 1 to 64"):
        Settings(home=tmp_path, node_name=name)


def test_a_host_name_that_is_not_a_node_name_says_to_set_one(tmp_path: Path) -> None:
    with (
        mock.patch("socket.gethostname", return_value="my laptop"),
        pytest.raises(pydantic.ValidationError, match="by default the host name"),
    ):
        Settings(home=tmp_path)


@pytest.mark.parametrize("seconds", ["4", "3601"])
def test_lease_seconds_are_bounded(tmp_path: Path, seconds: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(home=tmp_path, lease_seconds=seconds)


def test_serve_with_a_bad_node_name_says_so_and_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnimind_trio", "serve"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMNIMIND_NODE_NAME": "my laptop"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "omnimind: invalid settings:\n"
        "  OMNIMIND_NODE_NAME='my laptop': 'my laptop' is not a node name: 1 to 64 letters, "
        "digits, '.', '_' or '-' (by default the host name, up to its first dot)\n"
    )


# -- machines through the API -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machines", "detail"),
    [
        (["desk top"], "machines: 'desk top' is not a node name: 1 to 64 letters, digits, "
         "'.', '_' or '-'"),
        (["laptop", "x" * 65], f"machines: '{'x' * 65}' is not a node name: 1 to 64 letters, "
         "digits, '.', '_' or '-'"),
        (["laptop", "desktop", "laptop"], "machines: 'laptop' is listed twice"),
        ([], "machines: List should have at least 1 item after validation, not 0"),
        ([f"n{i}" for i in range(33)],
         "machines: List should have at most 32 items after validation, not 33"),
        ("laptop", "machines: Input should be a list"),
        ([7], "machines.0: Input should be a valid string"),
    ],
)  # fmt: skip
async def test_bad_machines_are_a_400_naming_the_problem(
    client: Any, daemon: Daemon, machines: Any, detail: str
) -> None:
    response = await call(client, "POST", "/daemon/tasks/add", {**TASK, "machines": machines})
    assert response.status_code == 400
    assert await response.get_json() == {"detail": detail}
    assert "my_custom_task" not in task_ids(daemon)
    await add(client)
    patched = await call(client, "PATCH", "/daemon/tasks/my_custom_task", {"machines": machines})
    assert patched.status_code == 400
    assert await patched.get_json() == {"detail": detail}
    assert (await get(client, "/daemon/tasks/my_custom_task"))["machines"] is None


async def test_a_task_for_another_machine_says_so_and_refuses_run_now(
    client: Any, daemon: Daemon
) -> None:
    await add(client, priority="CRITICAL", code=QUICK, machines=["desktop", "server"])
    body = await get(client, "/daemon/tasks/my_custom_task")
    assert body["machines"] == ["desktop", "server"]
    assert body["status"] == "scheduled"
    assert body["waiting"] == {
        "reason": "machine",
        "detail": "runs only on desktop or server (this daemon is laptop)",
        "machines": ["desktop", "server"],
        "node": "laptop",
        "expected_start": None,
    }
    response = await call(client, "POST", "/daemon/tasks/my_custom_task/run")
    assert response.status_code == 409
    assert await response.get_json() == {
        "detail": "Task my_custom_task runs only on desktop or server, and this daemon is "
        "laptop: nothing was started"
    }
    assert (await get(client, "/daemon/executions?task_id=my_custom_task"))["total"] == 0
    assert daemon.get_task("my_custom_task").status == "scheduled"
    # Made this machine's, the CRITICAL task (due since it was added) runs at once, here.
    patched = await call(
        client, "PATCH", "/daemon/tasks/my_custom_task", {"machines": ["desktop", "laptop"]}
    )
    assert patched.status_code == 200
    await wait_for(lambda: daemon.get_task("my_custom_task").execution_count == 1)
    cleared = await call(client, "PATCH", "/daemon/tasks/my_custom_task", {"machines": None})
    assert (await cleared.get_json())["task"]["machines"] is None


async def test_records_name_the_node_and_the_history_filters_by_it(
    client: Any, daemon: Daemon
) -> None:
    await add(client, priority="LOW", code=QUICK)
    requested = await call(client, "POST", "/daemon/tasks/my_custom_task/run")
    execution_id = (await requested.get_json())["execution_id"]
    await wait_for(lambda: daemon.get_task("my_custom_task").execution_count == 1)
    record = await get(client, f"/daemon/executions/{execution_id}")
    assert record["node"] == "laptop" and record["outcome"] == "succeeded"
    mine = await get(client, "/daemon/executions?node=laptop&task_id=my_custom_task")
    assert [r["execution_id"] for r in mine["executions"]] == [execution_id]
    assert mine["executions"][0]["node"] == "laptop"
    assert await get(client, "/daemon/executions?node=desktop") == {"executions": [], "total": 0}
    own = await get(client, "/daemon/tasks/my_custom_task/executions?node=laptop")
    assert own["total"] == 1


async def test_nodes_lists_this_daemon(client: Any, daemon: Daemon) -> None:
    await wait_for(lambda: daemon.executions_running == 0)  # the built-in task's first run
    await add(client, priority="CRITICAL", code=SLEEPER)
    await wait_for(lambda: daemon.executions_running == 1)
    body = await get(client, "/daemon/nodes")
    (node,) = body["nodes"]
    assert node.pop("last_heartbeat").endswith("Z") and node.pop("started_at").endswith("Z")
    assert node == {
        "node": "laptop",
        "state": daemon.state.value,
        "running_count": 1,
        "version": __version__,
        "alive": True,
        "this": True,
    }
    refused = await call(client, "GET", "/daemon/nodes", headers={})
    assert refused.status_code == 401


# -- the CLI's words ----------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_ago_says_how_long_since() -> None:
    assert ago(NOW, NOW) == "now"
    assert ago(datetime(2026, 3, 2, 11, 59, 48, tzinfo=UTC), NOW) == "12 s ago"
    assert ago(datetime(2026, 3, 2, 11, 55, tzinfo=UTC), NOW) == "5 min ago"
    assert ago(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), NOW) == "3 h ago"
    assert ago(datetime(2026, 2, 27, 9, 0, tzinfo=UTC), NOW.astimezone(UTC)).startswith("2026-02-2")


def test_the_nodes_table(capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [
        {"node": "desktop", "state": "working", "running_count": 2, "this": False,
         "last_heartbeat": "2026-03-02T11:59:55Z", "version": "0.1.0"},
        {"node": "laptop", "state": "idle", "running_count": 0, "this": True,
         "last_heartbeat": "2026-03-02T12:00:00Z", "version": "0.1.0"},
        {"node": "nas", "state": "busy", "running_count": 1, "this": False, "alive": False,
         "last_heartbeat": "2026-03-02T11:55:00Z", "version": "0.1.0"},
    ]  # fmt: skip
    _render_nodes({"nodes": nodes}, NOW)
    assert capsys.readouterr().out.splitlines() == [
        "NODE           STATE          RUNNING  LAST HEARTBEAT  VERSION",
        "desktop        working              2  5 s ago         0.1.0",
        "laptop (this)  idle                 0  now             0.1.0",
        "nas            silent (busy)        1  5 min ago       0.1.0",
    ]


def test_a_task_for_other_machines_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    task = {
        "task_id": "backup",
        "status": "scheduled",
        "next_execution": "2026-03-02T11:00:00Z",
        "waiting": {
            "reason": "machine",
            "detail": "runs only on desktop (this daemon is laptop)",
            "machines": ["desktop"],
            "node": "laptop",
            "expected_start": None,
        },
        "machines": ["desktop"],
    }
    assert status_words(task) == "scheduled: not this machine"
    assert next_words(task, NOW) == "on desktop"
    _render_task(task, NOW)
    out = capsys.readouterr().out.splitlines()
    assert "waiting:        runs only on desktop (this daemon is laptop)" in out
    assert "machines:       desktop" in out
