"""One definition per record: a task field declared once reaches every shape derived from
it. The proof adds a field for real, to a copy of the package, and uses it end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import omnimind_trio

FIELD = """
    colour: Annotated[str | None, Field(max_length=20, description="A test colour")] = None
"""

BEFORE = textwrap.dedent(
    """
    import trio
    from omnimind_trio import FakeSource, Priority, Settings, TaskSpec, open_daemon

    async def main():
        settings = Settings(home=HOME, workspace=HOME, dashboard_user="u", dashboard_pass="p")
        async with open_daemon(settings, metrics_source=FakeSource(), autostart=False) as d:
            code = "def execute():\\n    return 1\\n"
            await d.add_task(TaskSpec("old", "Old", "", Priority.LOW, code))

    trio.run(main)
    """
)

AFTER = textwrap.dedent(
    """
    import base64
    import trio
    from omnimind_trio import FakeSource, Settings, open_daemon
    from omnimind_trio.cli._parser import build_parser, given_options
    from omnimind_trio.credentials import Credentials
    from omnimind_trio.http import create_app
    from omnimind_trio.http._openapi import openapi_document

    AUTH = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    TASK = {"task_id": "new", "name": "New", "description": "", "priority": "LOW",
            "code": "def execute():\\n    return 1\\n", "colour": "red"}

    async def main():
        settings = Settings(home=HOME, workspace=HOME, dashboard_user="u", dashboard_pass="p")
        async with open_daemon(settings, metrics_source=FakeSource(), autostart=False) as d:
            app = create_app(d, Credentials("u", "p", "environment"))
            client = app.test_client()
            r = await client.post("/daemon/tasks/add", json=TASK, headers=AUTH)
            assert r.status_code == 200, await r.get_json()
            r = await client.get("/daemon/tasks/new", headers=AUTH)
            assert (await r.get_json())["colour"] == "red"
            r = await client.get("/daemon/tasks/old", headers=AUTH)
            assert (await r.get_json())["colour"] is None  # the migration added the column
            r = await client.patch("/daemon/tasks/new", json={"colour": "blue"}, headers=AUTH)
            assert (await r.get_json())["task"]["colour"] == "blue"
            r = await client.patch("/daemon/tasks/new", json={"colour": "x" * 21}, headers=AUTH)
            assert r.status_code == 400
            detail = (await r.get_json())["detail"]
            assert detail == "colour: String should have at most 20 characters", detail
            r = await client.get("/daemon/export", headers=AUTH)
            tasks = {op["task"]["task_id"]: op["task"] for op in (await r.get_json())["operations"]}
            assert tasks["new"]["colour"] == "blue"  # an export restores it
            doc = openapi_document(app.extensions["omnimind_routes"].operations, "http://x")
            for shape in ("TaskCreate", "TaskPatch", "TaskDetail", "TaskExport"):
                assert "colour" in doc["components"]["schemas"][shape]["properties"], shape
        async with open_daemon(settings, metrics_source=FakeSource(), autostart=False) as d:
            assert d.get_task("new").colour == "blue"  # stored, and read back
        args = build_parser().parse_args(["add", "f.py", "--id", "x", "--colour", "green"])
        assert given_options(args) == {"colour": "green"}
        print("every shape has it")

    trio.run(main)
    """
)


def run(script: str, home: Path, pythonpath: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    result = subprocess.run(
        [sys.executable, "-c", f"HOME = {str(home)!r}\n{script}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=pythonpath,  # not the project's folder: "-c" puts the cwd first on sys.path
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_a_new_task_field_is_declared_once_and_reaches_every_shape(tmp_path: Path) -> None:
    """Declared in TaskSpec only: the add and patch bodies take it (with its constraint
    and a clear 400), the detail shows it, the store keeps it (an older database gets the
    column when opened), the export carries it, the OpenAPI document lists it, and the CLI
    offers --colour."""
    package = Path(omnimind_trio.__file__).parent
    home, original, changed = tmp_path / "home", tmp_path / "original", tmp_path / "changed"
    home.mkdir()
    for root in (original, changed):
        shutil.copytree(package, root / "omnimind_trio", ignore=shutil.ignore_patterns("*.pyc"))
    task_module = changed / "omnimind_trio" / "models" / "_task.py"
    source = task_module.read_text()
    anchor = "\n    @property\n    def repeat_seconds"
    assert anchor in source
    task_module.write_text(source.replace(anchor, FIELD + anchor, 1))

    run(BEFORE, home, original)
    assert "every shape has it" in run(AFTER, home, changed)


def test_an_execution_query_is_the_filters_every_store_takes() -> None:
    """The daemon passes an ExecutionQuery's fields to ``Store.list_executions`` by name:
    every backend takes exactly those."""
    import inspect

    from omnimind_trio.models import ExecutionQuery
    from omnimind_trio.store import MemoryStore, Store
    from omnimind_trio.store._postgres import PostgresStore
    from omnimind_trio.store._sqlite import SQLiteStore

    for backend in (Store, MemoryStore, SQLiteStore, PostgresStore):
        parameters = inspect.signature(backend.list_executions).parameters
        assert [name for name in parameters if name != "self"] == list(
            ExecutionQuery.model_fields
        ), backend
