"""A task's own ``python``: checked when named (it exists, runs, is 3.8+, parses the code),
and the task runs in it, a cold start per run, with everything else as for any task:
output, live output, secrets masked, timeouts, caps, cancel killing the whole tree. The
fork server stays for the other tasks.

Real interpreters: a virtualenv made in a temporary folder, and the other Pythons of this
machine where there are (pyenv's 2.7, 3.7 and 3.8; skipped where missing).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from omnimind_trio import Daemon, FakeSource, InvalidInput, open_daemon
from omnimind_trio.execution import _interpreter
from omnimind_trio.models import ExecutionRecord, Outcome, Priority, TaskSpec

from .conftest import assert_gone, make_settings
from .test_api import TASK, call, client
from .test_env_secrets import SECRET, finished

__all__ = ["client"]  # the fixture, re-used

pytestmark = pytest.mark.slow

PYENV = Path(os.path.expanduser("~/.pyenv/versions"))
PY27, PY37, PY38 = (PYENV / v / "bin" / "python" for v in ("2.7.18", "3.7.16", "3.8.18"))
EXECUTION = Path(__file__).parents[1] / "omnimind_trio" / "execution"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv's ``bin/python`` (of this machine's system Python, else ours)."""
    base = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    folder = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True)
    return folder / "bin" / "python"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with open_daemon(make_settings(tmp_path), metrics_source=FakeSource()) as running:
        yield running


def spec(task_id: str, code: str, python: Path | str, **fields: Any) -> TaskSpec:
    return TaskSpec(task_id, task_id, "", Priority.CRITICAL, code, python=str(python), **fields)


WHERE = """
import os, sys
def execute():
    print("running in", sys.executable, flush=True)
    print("token", os.environ["TOKEN"], file=sys.stderr)
    return {"executable": sys.executable, "prefix": sys.prefix,
            "version": list(sys.version_info[:2]), "mode": os.environ["MODE"],
            "workspace": os.environ["OMNIMIND_WORKSPACE"], "cwd": os.getcwd()}
"""


# -- checked when named ----------------------------------------------------------------------


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


async def test_an_interpreter_that_cannot_run_tasks_is_refused_saying_why(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("not a program")
    sleeper = tmp_path / "sleeper.pid"
    cases = [
        (tmp_path / "nope" / "python", "does not exist"),
        (tmp_path, "is not a file"),
        (plain, "is not executable"),
        (
            executable(tmp_path / "true", "#!/bin/sh\nexit 0\n"),
            "is not a Python interpreter (it does not report a version)",
        ),
        (
            executable(tmp_path / "broken", "#!/bin/sh\necho 'no such module' >&2\nexit 3\n"),
            "failed the version check (exit status 3): no such module",
        ),
        (
            # It starts a child of its own: the timeout kills that too.
            executable(tmp_path / "slow", f"#!/bin/sh\nsleep 30 &\necho $! > {sleeper}\nwait\n"),
            "did not answer within 0.5 s",
        ),
        (
            executable(tmp_path / "nohash", "#!/nonexistent/interpreter\n"),
            "cannot be run (No such file or directory)",
        ),
    ]
    if PY27.exists():
        cases.append((PY27, "is Python 2.7; 3.8+ is needed"))
    if PY37.exists():
        cases.append((PY37, "is Python 3.7; 3.8+ is needed"))
    code = "def execute():\n    return 1\n"
    for python, problem in cases:
        # A short timeout for the one that hangs only: a real interpreter (a pyenv shim)
        # may take longer than that to start on a loaded machine.
        hangs = problem.startswith("did not answer")
        with monkeypatch.context() as patched, pytest.raises(InvalidInput) as caught:
            patched.setattr(_interpreter, "CHECK_SECONDS", 0.5 if hangs else 10.0)
            await daemon.add_task(spec(f"t{len(problem)}", code, python))
        assert caught.value.detail == f"python: {python} {problem}", python
    assert {t.task_id for t in daemon.list_tasks().tasks} == {"database_optimization"}
    assert_gone(int(sleeper.read_text()))


async def test_the_api_answers_400_and_a_relative_path_is_refused_first(
    client: Any, daemon: Daemon
) -> None:
    response = await call(client, "POST", "/daemon/tasks/add", {**TASK, "python": "bin/python"})
    assert response.status_code == 400
    assert (await response.get_json())["detail"] == "python: 'bin/python' is not an absolute path"
    response = await call(client, "POST", "/daemon/tasks/add", {**TASK, "python": "/no/python"})
    assert response.status_code == 400
    assert (await response.get_json())["detail"] == "python: /no/python does not exist"
    batch = await call(
        client,
        "POST",
        "/daemon/tasks/batch",
        {"atomic": True, "operations": [{"op": "add", "task": {**TASK, "python": "/no/py"}}]},
    )
    [result] = (await batch.get_json())["results"]
    assert result == {"index": 0, "status": 400, "detail": "python: /no/py does not exist"}


@pytest.mark.skipif(not PY38.exists(), reason="needs a Python 3.8")
async def test_the_code_is_parsed_by_the_tasks_own_interpreter(daemon: Daemon) -> None:
    # Valid for the daemon's Python (3.10+), not for 3.8: refused as 3.8 sees it.
    modern = "def execute(x=None):\n    match x:\n        case None:\n            return 1\n"
    with pytest.raises(InvalidInput, match=r"^Syntax error in code at line 2"):
        await daemon.add_task(spec("modern", modern, PY38))
    await daemon.add_task(TaskSpec("modern", "m", "", Priority.LOW, modern))  # the daemon's
    with pytest.raises(InvalidInput, match=r"^Syntax error in code at line 2"):
        await daemon.update_task("modern", {"python": str(PY38)})  # checked when it changes
    assert daemon.get_task("modern").python is None
    await daemon.add_task(spec("old", "def execute():\n    return 1\n", PY38, repeat_hours=1))
    with pytest.raises(InvalidInput, match=r"^Syntax error in code at line 2"):
        await daemon.update_task("old", {"code": modern})  # new code, the task's python
    with pytest.raises(InvalidInput, match=r"^python: /nope/python does not exist"):
        await daemon.update_task("old", {"python": "/nope/python"})
    assert daemon.get_task("old").python == str(PY38)


async def test_a_change_that_keeps_the_interpreter_does_not_check_it_again(
    daemon: Daemon, venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await daemon.add_task(spec("kept", "def execute():\n    return 1\n", venv, repeat_hours=1))
    checked: list[str] = []

    async def counted(python: str, code: str) -> None:
        checked.append(python)

    monkeypatch.setattr("omnimind_trio.daemon._registry.interpreter_problem", counted)
    await daemon.update_task("kept", {"name": "renamed", "env": {"A": "b"}})
    assert checked == []
    await daemon.update_task("kept", {"code": "def execute():\n    return 2\n"})
    assert checked == [str(venv)]


# -- running in it ---------------------------------------------------------------------------


async def test_a_task_runs_in_its_virtualenv_with_env_secrets_and_output(
    daemon: Daemon, venv: Path, tmp_path: Path
) -> None:
    output: list[dict[str, Any]] = []
    with daemon.subscribe() as events:
        await daemon.add_task(
            spec("where", WHERE, venv, env={"MODE": "venv"}, secrets={"TOKEN": SECRET})
        )
        with trio.fail_after(20):
            async for event in events:
                if event.type == "execution_output" and event.data["task_id"] == "where":
                    output.append(event.data)
                if event.type == "execution_finished" and event.data["task_id"] == "where":
                    break
    record = await finished(daemon, "where")
    assert record.outcome is Outcome.SUCCEEDED, record.reason
    assert record.result is not None
    assert record.result["executable"] == str(venv)
    assert record.result["prefix"] == str(venv.parent.parent)
    assert record.result["mode"] == "venv"
    assert record.result["workspace"] == record.result["cwd"] == str(tmp_path)
    assert record.stdout == f"running in {venv}\n"
    assert record.stderr == "token ***\n"
    assert "".join(e["data"] for e in output if e["stream"] == "stdout") == record.stdout
    assert SECRET not in str(output)
    # The default interpreter's tasks still go through the fork server, which never
    # restarted for the cold start.
    await daemon.add_task(TaskSpec("plain", "p", "", Priority.CRITICAL, WHERE.replace(
        'os.environ["TOKEN"]', "0").replace('os.environ["MODE"]', "0")))  # fmt: skip
    plain = await finished(daemon, "plain")
    assert plain.result is not None and plain.result["executable"] == sys.executable
    assert daemon._executor.restarts == 0 and daemon._executor.worker_pid is not None


@pytest.mark.skipif(not PY38.exists(), reason="needs a Python 3.8")
async def test_a_python_38_runs_sync_and_async_tasks(daemon: Daemon) -> None:
    asynchronous = (
        "import asyncio, sys\n"
        "async def execute():\n"
        "    await asyncio.sleep(0.01)\n"
        "    return list(sys.version_info[:2])\n"
    )
    await daemon.add_task(spec("async38", asynchronous, PY38))
    record = await finished(daemon, "async38")
    assert (record.outcome, record.result) == (Outcome.SUCCEEDED, [3, 8]), record.reason
    await daemon.add_task(spec("fails38", "def execute():\n    1 / 0\n", PY38))
    record = await finished(daemon, "fails38")
    assert record.outcome is Outcome.FAILED
    assert record.reason is not None
    assert record.reason.startswith("ZeroDivisionError: division by zero\nTraceback")


SPAWNS = """
import subprocess, sys, time
def execute():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    open(PIDFILE, "w").write(str(child.pid))
    time.sleep(300)
"""


async def pid_from(path: Path) -> int:
    with trio.fail_after(20):
        while not path.exists() or not path.read_text():
            await trio.sleep(0.01)
    return int(path.read_text())


async def test_timeout_and_cancel_kill_the_whole_tree(
    daemon: Daemon, venv: Path, tmp_path: Path
) -> None:
    timed = tmp_path / "timed.pid"
    code = SPAWNS.replace("PIDFILE", repr(str(timed)))
    await daemon.add_task(spec("timed", code, venv, timeout_seconds=1.5))
    grandchild = await pid_from(timed)
    record = await finished(daemon, "timed")
    assert (record.outcome, record.reason) == (Outcome.TIMED_OUT, "timed out after 1.5 s")
    assert_gone(grandchild)

    cancelled = tmp_path / "cancelled.pid"
    await daemon.add_task(spec("cancelled", SPAWNS.replace("PIDFILE", repr(str(cancelled))), venv))
    grandchild = await pid_from(cancelled)
    running = daemon._executor.running_pids()  # the load monitor counts it as ours
    assert len(running) == 1 and running[0] != daemon._executor.worker_pid
    daemon.cancel_task("cancelled")
    record = await finished(daemon, "cancelled")
    assert (record.outcome, record.reason) == (Outcome.CANCELLED, "cancelled by request")
    assert_gone(grandchild)
    assert daemon._executor.running_pids() == []


async def test_memory_and_cpu_caps_apply(daemon: Daemon, venv: Path) -> None:
    hog = "def execute():\n    return len(bytearray(512 * 1024 * 1024))\n"
    await daemon.add_task(spec("hog", hog, venv, max_memory_mb=256))
    record = await finished(daemon, "hog")
    assert record.outcome is Outcome.FAILED
    assert record.reason is not None and record.reason.startswith(
        "MemoryError (memory limit of 256 MB)"
    )
    spin = "def execute():\n    while True:\n        pass\n"
    await daemon.add_task(spec("spin", spin, venv, max_cpu_seconds=1))
    record = await finished(daemon, "spin")
    assert (record.outcome, record.reason) == (
        Outcome.KILLED,
        "CPU time limit of 1 s exceeded",
    )


async def test_an_interpreter_gone_after_the_add_fails_the_run_saying_why(
    daemon: Daemon, tmp_path: Path, venv: Path
) -> None:
    link = tmp_path / "python"
    link.symlink_to(venv)
    await daemon.add_task(spec("orphan", "def execute():\n    return 1\n", link))
    await finished(daemon, "orphan")
    link.unlink()
    daemon.run_task_now("orphan")
    record: ExecutionRecord = await finished(daemon, "orphan", 2)
    assert record.outcome is Outcome.FAILED
    assert record.reason == (
        f"the task interpreter {link} cannot be started: No such file or directory"
    )


def test_the_worker_is_python_38_code() -> None:
    """What a task's interpreter runs: the worker and the modules it imports."""
    for name in ("_worker.py", "_containment.py", "_cgroups.py"):
        source = (EXECUTION / name).read_text()
        tree = ast.parse(source, feature_version=(3, 8))
        assert "from __future__ import annotations" in source, name  # annotations unread
        imports = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert imports - {"_cgroups", "_containment"} <= sys.stdlib_module_names, name
    assert _interpreter.MIN_VERSION == (3, 8)
