"""GET /daemon/export and ``omnimind export``: every code task as a batch body that
``POST /daemon/tasks/batch`` (``omnimind batch``) restores on another daemon, field by
field, secret values left out and named; in an order a single atomic batch applies (a task
after the tasks it runs after), paused tasks paused again without a run in between.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnimind_trio import Daemon, FakeSource, open_daemon
from omnimind_trio.credentials import Credentials
from omnimind_trio.daemon._export import after_order
from omnimind_trio.http import create_app
from omnimind_trio.models import TASK_FIELDS, TaskCreate

from .conftest import make_settings
from .test_api import TASK, call, client
from .test_cli import clean_env, cli, ok
from .test_env_secrets import SECRET
from .test_process import Served, spawn

__all__ = ["clean_env", "client", "spawn"]  # the fixtures, re-used

CODE = "def execute():\n    return 1\n"


def body(task_id: str, **fields: Any) -> dict[str, Any]:
    """An add body: one-shot unless ``fields`` say otherwise."""
    base = {k: v for k, v in TASK.items() if k != "repeat_hours"}
    return {**base, "task_id": task_id, "name": task_id.title(), "code": CODE, **fields}


async def get(client: Any, path: str) -> Any:
    response = await call(client, "GET", path)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def post(client: Any, path: str, data: Any = None) -> Any:
    response = await call(client, "POST", path, data)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def patch(client: Any, task_id: str, changes: dict[str, Any]) -> None:
    response = await call(client, "PATCH", f"/daemon/tasks/{task_id}", changes)
    assert response.status_code == 200, await response.get_json()


async def populate(client: Any) -> None:
    """Tasks of every kind of definition; the after chain against insertion order."""
    for task_id in ("zulu", "yankee", "xray"):  # zulu after yankee after xray, in the end
        await post(client, "/daemon/tasks/add", body(task_id, priority="LOW"))
    await patch(client, "yankee", {"after": ["xray"]})
    await patch(client, "zulu", {"after": ["yankee", "xray"]})
    await post(
        client,
        "/daemon/tasks/add",
        body(
            "full",
            priority="LOW",
            cron="30 2 * * 1-5",
            timezone="Europe/Paris",
            timeout_seconds=12.5,
            max_memory_mb=256,
            max_cpu_seconds=30,
            on_busy="cancel",
            overlap="queue",
            on_missed="skip",
            max_retries=2,
            max_delay_hours=3.0,
            notify={"on": ["failure"], "webhook": "http://127.0.0.1:9/hook"},
            env={"MODE": "prod", "EMPTY": ""},
            secrets={"TOKEN": SECRET, "API_KEY": "another-secret"},
            python=sys.executable,
        ),
    )
    await post(client, "/daemon/tasks/add", body("nightly", priority="CRITICAL", repeat_minutes=5))
    await post(client, "/daemon/tasks/nightly/pause")
    await post(client, "/daemon/tasks/add", body("after_builtin", after=["database_optimization"]))


def definitions(daemon: Daemon) -> dict[str, dict[str, Any]]:
    """Every code task's definition (secrets apart) and whether it is paused."""
    return {
        task_id: {
            **{k: v for k, v in entry.spec.as_dict().items() if k != "secrets"},
            "paused": entry.paused,
        }
        for task_id, entry in daemon._scheduler.tasks.items()
        if entry.spec.code is not None
    }


async def test_an_export_restores_on_a_fresh_daemon_field_by_field(
    client: Any, daemon: Daemon, tmp_path: Path
) -> None:
    await populate(client)
    exported = await get(client, "/daemon/export")
    text = json.dumps(exported)
    assert SECRET not in text and "another-secret" not in text
    assert exported["atomic"] is True
    assert exported["omitted_secrets"] == {"full": ["API_KEY", "TOKEN"]}
    operations = exported["operations"]
    order = [(op["op"], op.get("task_id") or op["task"]["task_id"]) for op in operations]
    assert order == [
        ("add", "xray"),
        ("add", "yankee"),
        ("add", "zulu"),
        ("add", "full"),
        ("add", "nightly"),
        ("pause", "nightly"),
        ("add", "after_builtin"),
    ]  # the in-process database_optimization is left out: its program registers it
    full = next(op["task"] for op in exported["operations"] if op["op"] == "add"
                and op["task"]["task_id"] == "full")  # fmt: skip
    assert "secrets" not in full and full["env"] == {"MODE": "prod", "EMPTY": ""}
    assert "repeat_hours" not in full  # null fields are left out: null is their default

    settings = make_settings(tmp_path / "other")
    (tmp_path / "other").mkdir()
    async with open_daemon(settings, metrics_source=FakeSource(cpu_percent=5.0)) as fresh:
        other = create_app(fresh, Credentials("tester", "secret-pass", "environment"))
        answer = await post(other.test_client(), "/daemon/tasks/batch", exported)
        assert answer["applied"] == len(exported["operations"]), answer
        assert definitions(fresh) == definitions(daemon)
        assert fresh.get_task("full").secrets is None  # to be set again
        # Added paused: it did not start in between (a CRITICAL task starts once due).
        assert not fresh._scheduler.tasks["nightly"].runs
        assert (await fresh._store.list_executions(task_id="nightly"))[1] == 0
        assert fresh._scheduler.tasks["nightly"].next_due is not None
        again = await post(other.test_client(), "/daemon/tasks/batch", exported)
        assert again["applied"] == 0  # atomic: every task exists already, nothing changes
        assert {r["status"] for r in again["results"]} == {409, 424}


async def test_an_empty_daemon_exports_an_empty_batch(client: Any) -> None:
    assert await get(client, "/daemon/export") == {
        "atomic": True,
        "operations": [],
        "omitted_secrets": {},
    }


def test_after_order_keeps_insertion_order_and_puts_upstream_first() -> None:
    class Entry:
        def __init__(self, task_id: str, *after: str) -> None:
            self.task_id = task_id
            self.spec = type("Spec", (), {"after": after or None})()

    chain = [Entry(f"t{i}", f"t{i + 1}") for i in range(3000)] + [Entry("t3000")]
    ordered = [e.task_id for e in after_order(chain)]  # type: ignore[arg-type]
    assert ordered == [f"t{i}" for i in range(3000, -1, -1)]
    mixed = [Entry("a"), Entry("b", "d", "builtin"), Entry("c"), Entry("d", "a")]
    assert [e.task_id for e in after_order(mixed)] == ["a", "d", "b", "c"]  # type: ignore[arg-type]


async def test_the_openapi_document_derives_the_exported_task_from_the_add_body(
    client: Any,
) -> None:
    document = await get(client, "/openapi.json")
    operation = document["paths"]["/daemon/export"]["get"]
    assert "403" not in operation["responses"]  # a read: a viewer may export too
    schemas = document["components"]["schemas"]
    exported = schemas["TaskExport"]["properties"]
    assert set(exported) == set(TASK_FIELDS) - {"secrets"}
    assert exported["cron"] == schemas["TaskCreate"]["properties"]["cron"]
    assert set(TaskCreate.model_fields) == set(TASK_FIELDS)
    assert "omitted_secrets" in schemas["BatchRequest"]["properties"]


# -- the command line ------------------------------------------------------------------------


def at(served: Served, *args: str) -> list[str]:
    assert served.auth is not None
    user, password = served.auth
    return ["--url", served.url, "--user", user, "--password", password, *args]


@pytest.mark.slow
def test_omnimind_export_and_batch_restore_on_another_daemon(
    capsys: pytest.CaptureFixture[str],
    spawn: Callable[..., Served],
    tmp_path: Path,
) -> None:
    source = spawn(tmp_path / "source")
    target = spawn(tmp_path / "target")
    code = tmp_path / "task.py"
    code.write_text(CODE)
    ok(capsys, *at(source, "add", str(code), "--id", "second", "--priority", "LOW"))
    ok(capsys, *at(source, "add", str(code), "--id", "first", "--priority", "LOW",
                   "--secrets", f"TOKEN={SECRET}", "--env", "MODE=x"))  # fmt: skip
    ok(capsys, *at(source, "edit", "second", "--after", "first"))

    printed = ok(capsys, *at(source, "export"))
    exported = json.loads(printed.out)
    assert [op["task"]["task_id"] for op in exported["operations"]] == ["first", "second"]
    assert "omnimind: exported 2 task(s)" in printed.err
    assert "set them again after restoring (first: TOKEN)" in printed.err
    assert SECRET not in printed.out + printed.err

    saved = tmp_path / "export.json"
    written = ok(capsys, *at(source, "export", "-o", str(saved)))
    assert written.out == "" and f"exported 2 task(s) to {saved}" in written.err
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == exported

    restored = cli(capsys, *at(target, "--json", "batch", str(saved)))
    assert restored.code == 0, restored
    assert restored.json()["applied"] == 2
    with target.client() as http:
        second = http.get("/daemon/tasks/second").json()
        first = http.get("/daemon/tasks/first").json()
    assert second["after"] == ["first"] and first["env"] == {"MODE": "x"}
    assert first["secrets"] is None

    again = cli(capsys, *at(target, "--json", "batch", str(saved)))  # "atomic": true
    assert again.code == 1 and again.json()["applied"] == 0
