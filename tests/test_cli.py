"""The ``omnimind`` client commands against a real ``omnimind serve``, and the log formats.

One daemon serves the whole module (started with ``--log-format json``); each test uses
its own task ids. Commands run in-process through ``main()`` (output captured with
capsys) or, where the process boundary matters (the entry point, stdin, Ctrl-C), as
subprocesses. ``logs -f`` is tested against a stand-in speaking the WebSocket protocol as
specified, and against the daemon's own endpoint.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

from omnimind_trio.cli._client import ApiError, ConnectionLost, OmniMindClient
from omnimind_trio.cli._follow import follow_events
from omnimind_trio.cli._logs import JsonFormatter, TextFormatter
from omnimind_trio.cli._main import main, resolve_auth
from omnimind_trio.cli._password import VISIBLE_WARNING
from omnimind_trio.cli._render import format_event

from .conftest import SLEEP_WINDOW
from .test_process import Served, free_port, launch, wait_for

SERVE = [sys.executable, "-m", "omnimind_trio", "serve"]
USER = "cli-user"
PASS = "cli-pass-5678"
QUICK = "def execute():\n    print('hello from the task')\n    return {'answer': 42}\n"
FAILING = "def execute():\n    1 / 0\n"
SLEEPY = "def execute():\n    import time\n    time.sleep(60)\n"


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials or URL leak in from the outer environment; the default home (the
    current directory) holds no credentials file."""
    for name in list(os.environ):
        if name.startswith("OMNIMIND_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``omnimind serve --log-format json`` for the module, killed with its tasks."""
    root = tmp_path_factory.mktemp("cli")
    home = root / "home"
    workspace = home / "workspace"
    workspace.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    env.update(
        OMNIMIND_HOME=str(home),
        OMNIMIND_WORKSPACE=str(workspace),
        OMNIMIND_DASHBOARD_USER=USER,
        OMNIMIND_DASHBOARD_PASS=PASS,
        # LOW tasks never run here: the sleep window is a minute, twelve hours away.
        OMNIMIND_SLEEP_WINDOW=SLEEP_WINDOW,
    )
    json_logs = ("--log-format", "json")
    daemon = launch(home, env, *json_logs, workspace=workspace, credentials=(USER, PASS))
    try:
        daemon.wait_serving()
        yield daemon
    finally:
        daemon.kill_all()


@pytest.fixture
def api(served: Served) -> Iterator[OmniMindClient]:
    with OmniMindClient(served.url, auth=(USER, PASS)) as client:
        yield client


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """``omnimind ARGS`` in-process; the URL and credentials are the caller's to give."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return Ran(code, out, err)


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    ran = cli(capsys, *args)
    assert ran.code == 0, (args, ran)
    return ran


def block(out: str) -> dict[str, str]:
    """A printed ``key: value`` block as a dict (first lines of values only)."""
    fields = {}
    for line in out.splitlines():
        if line.startswith((" ", "---")) or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def at(served: Served, *args: str) -> list[str]:
    """``ARGS`` for the module's daemon; the password from a file (--password warns)."""
    password_file = served.home.parent / "password"
    if not password_file.exists():
        password_file.write_text(PASS + "\n")
    return ["--url", served.url, "--user", USER, "--password-file", str(password_file), *args]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    env.update(extra)
    return env


def wait_runs(api: OmniMindClient, task_id: str, count: int) -> dict[str, Any]:
    """Wait until ``task_id`` has ``count`` finished runs; returns its detail."""

    def done() -> dict[str, Any] | None:
        task = api.get_task(task_id)
        return task if task["execution_count"] >= count and task["status"] != "running" else None

    return dict(wait_for(done, 10.0, f"{task_id} to finish {count} run(s)", interval=0.02))


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def cells(line: str) -> list[str]:
    """A table row's cells (cells hold single spaces, columns are two or more apart)."""
    return re.split(r"\s{2,}", line.strip())


# -- the client commands against a real daemon -------------------------------------------------


@pytest.mark.slow
def test_status_prints_a_block_and_json(capsys: pytest.CaptureFixture[str], served: Served) -> None:
    ran = cli(capsys, *at(served, "status"))
    assert ran.code == 0, ran.err
    assert ran.out.startswith("state:")
    fields = block(ran.out)
    assert fields["running"] == "yes"
    assert float(fields["cpu percent"]) >= 0
    assert fields["cloud enabled"] == "no"
    assert fields["workspace"] == str(served.workspace)

    ran = cli(capsys, *at(served, "--json", "status"))
    assert ran.code == 0
    status = ran.json()
    assert status["running"] is True
    assert status["workspace"] == str(served.workspace)
    # --json after the command works too
    assert cli(capsys, *at(served, "status", "--json")).json().keys() == status.keys()


@pytest.mark.slow
def test_add_from_a_file_and_stdin_then_tasks_and_show(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    served: Served,
    tmp_path: Path,
    api: OmniMindClient,
) -> None:
    code_file = write(tmp_path / "task.py", QUICK)
    ran = cli(
        capsys,
        *at(served, "add", code_file, "--id", "add_file", "--name", "From a file"),
        *("--description", "added by the CLI test", "--priority", "low"),
        *("--repeat-hours", "24", "--timeout-seconds", "12.5"),
        *("--max-memory-mb", "512", "--max-cpu-seconds", "30"),
    )
    assert (ran.code, ran.out) == (0, "Task 'From a file' added successfully\n"), ran.err

    monkeypatch.setattr(sys, "stdin", io.StringIO(QUICK))
    ran = cli(capsys, *at(served, "--json", "add", "-", "--id", "add_stdin", "--priority", "LOW"))
    assert ran.code == 0, ran.err
    assert ran.json() == {
        "status": "task_added",
        "task_id": "add_stdin",
        "message": "Task 'add_stdin' added successfully",  # the name defaults to the id
    }

    ran = cli(capsys, *at(served, "tasks", "--q", "add_"))
    assert ran.code == 0, ran.err
    rows = {row[0]: row for row in map(cells, ran.out.splitlines())}
    assert rows["ID"] == [
        *("ID", "PRIORITY", "STATUS", "NEXT", "RUNS", "OK", "FAIL", "LAST RUN", "SCHEDULE")
    ]
    # Both LOW tasks are due and wait for the sleep window, twelve hours from now.
    opening = rf"(today|tonight|tomorrow) {SLEEP_WINDOW[:5]}"
    for task_id, schedule in (("add_file", "every 1d"), ("add_stdin", "once")):
        status, next_run = rows[task_id][2:4]
        assert rows[task_id][:3] == [task_id, "LOW", "waiting: sleep window"]
        assert re.fullmatch(opening, next_run), (status, next_run)
        assert rows[task_id][4:] == ["0", "0", "0", "-", schedule]
    # Columns stay aligned: every row's cells start where the header's do.
    lines = ran.out.splitlines()
    starts = [lines[0].index(header) for header in ("PRIORITY", "STATUS", "NEXT", "SCHEDULE")]
    for line in lines[1:3]:
        assert [line[start - 2 : start] for start in starts] == ["  "] * 4
        assert all(line[start] != " " for start in starts)

    ran = cli(capsys, *at(served, "--json", "tasks", "--priority", "low,high", "--sort", "name"))
    listed = ran.json()
    assert [t["task_id"] for t in listed["tasks"]] == ["add_stdin", "add_file"]
    ran = cli(capsys, *at(served, "--json", "tasks", "--q", "add_", "--sort=-task_id"))
    assert [t["task_id"] for t in ran.json()["tasks"]] == ["add_stdin", "add_file"]
    ran = cli(capsys, *at(served, "tasks", "--q", "add_", "--limit", "1", "--offset", "1"))
    assert "add_stdin" in ran.out and "add_file" not in ran.out
    assert ran.out.splitlines()[-1] == "(1 of 2 tasks)"

    ran = cli(capsys, *at(served, "show", "add_file"))
    assert ran.code == 0, ran.err
    fields = block(ran.out)
    assert fields["task id"] == "add_file"
    assert fields["name"] == "From a file"
    assert fields["description"] == "added by the CLI test"
    assert fields["priority"] == "LOW"
    assert fields["repeat hours"] == "24"
    assert fields["timeout seconds"] == "12.5"
    assert fields["max memory mb"] == "512"
    assert fields["max cpu seconds"] == "30"
    assert fields["paused"] == "no"
    assert fields["last execution"] == "-"
    # Why it waits, in one sentence with the expected start in local time (not JSON).
    assert fields["waiting"].startswith(f"waiting for the sleep window ({SLEEP_WINDOW})")
    assert re.search(
        rf"expected to start .* \(\d{{4}}-\d\d-\d\d {SLEEP_WINDOW[:5]}\)$", fields["waiting"]
    )
    assert "waiting reason" not in fields
    assert ran.out.endswith("\ncode:\n" + "".join(f"    {line}\n" for line in QUICK.splitlines()))

    detail = cli(capsys, *at(served, "--json", "show", "add_stdin")).json()
    assert detail == api.get_task("add_stdin")
    assert detail["code"] == QUICK


@pytest.mark.slow
def test_api_errors_exit_1_with_the_servers_detail(
    capsys: pytest.CaptureFixture[str], served: Served, tmp_path: Path
) -> None:
    code_file = write(tmp_path / "task.py", SLEEPY)
    ok(capsys, *at(served, "add", code_file, "--id", "err_twice", "--priority", "LOW"))

    cases = [
        (["add", code_file, "--id", "err_twice"], "Task already exists: err_twice (HTTP 409)"),
        (
            ["add", write(tmp_path / "bad.py", "def run():\n    pass\n"), "--id", "err_bad"],
            "Code must define an 'execute()' function (HTTP 400)",
        ),
        (["show", "err_nope"], "Task not found: err_nope (HTTP 404)"),
        (["run", "err_nope"], "(HTTP 404)"),
        (["rm", "err_nope"], "(HTTP 404)"),
        (["history", "err_nope"], "(HTTP 404)"),
        (["tasks", "--sort", "bogus"], "Invalid sort: bogus"),
        (["tasks", "--priority", "urgent"], "Invalid priority: URGENT"),
        (["history", "--outcome", "great"], "Invalid outcome: great"),
        (["cancel", "err_twice"], "(HTTP 409)"),  # not running: a conflict
        (["logs", "err_nope"], "No task or execution with id 'err_nope' (HTTP 404)"),
    ]
    for args, detail in cases:
        ran = cli(capsys, *at(served, *args))
        assert ran.code == 1, (args, ran)
        assert ran.out == "", args
        first = ran.err.splitlines()[0]
        assert first.startswith("omnimind: ") and detail in first, (args, ran.err)
        assert first.endswith(")"), args

    ran = cli(capsys, "--url", served.url, "--user", USER, "--password", "wrong", "status")
    assert ran.code == 1
    assert "(HTTP 401)" in ran.err and "OMNIMIND_DASHBOARD_USER" in ran.err


@pytest.mark.slow
def test_run_history_and_logs(
    capsys: pytest.CaptureFixture[str], served: Served, tmp_path: Path, api: OmniMindClient
) -> None:
    quick, failing = write(tmp_path / "q.py", QUICK), write(tmp_path / "f.py", FAILING)
    ok(capsys, *at(served, "add", quick, "--id", "hist_ok", "--priority", "CRITICAL"))
    ok(capsys, *at(served, "add", failing, "--id", "hist_bad", "--priority", "CRITICAL"))
    wait_runs(api, "hist_ok", 1)
    ran = cli(capsys, *at(served, "run", "hist_ok"))
    assert (ran.code, ran.out) == (0, "Task 'hist_ok' will run now\n"), ran.err
    wait_runs(api, "hist_ok", 2)
    wait_runs(api, "hist_bad", 1)

    ran = cli(capsys, *at(served, "history", "hist_ok"))
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].split() == ["ID", "TASK", "OUTCOME", "STARTED", "DURATION", "REASON"]
    assert len(lines) == 3
    assert all(line.split()[1:3] == ["hist_ok", "succeeded"] for line in lines[1:])
    records = cli(capsys, *at(served, "--json", "history", "hist_ok")).json()
    assert records["total"] == 2
    newest = records["executions"][0]
    assert lines[1].split()[0] == newest["execution_id"]

    ran = cli(capsys, *at(served, "history", "--outcome", "failed", "--limit", "1"))
    bad_row = ran.out.splitlines()[1]
    assert bad_row.split()[1:3] == ["hist_bad", "failed"]
    assert bad_row.endswith("ZeroDivisionError: division by zero")  # the reason's first line
    ran = cli(capsys, *at(served, "history", "hist_ok", "--limit", "1"))
    assert ran.out.splitlines()[-1] == "(1 of 2 executions)"
    since = newest["scheduled_at"]
    ran = cli(capsys, *at(served, "--json", "history", "hist_ok", "--since", since))
    assert [r["execution_id"] for r in ran.json()["executions"]] == [newest["execution_id"]]
    ran = cli(capsys, *at(served, "--json", "history", "hist_ok", "--until", since))
    assert ran.json()["total"] == 1

    # logs TASK_ID: the latest run, with its output
    ran = ok(capsys, *at(served, "logs", "hist_ok"))
    fields = block(ran.out)
    assert fields["execution id"] == newest["execution_id"]
    assert fields["task id"] == "hist_ok"
    assert fields["trigger"] == "run_now"
    assert fields["outcome"] == "succeeded"
    assert fields["result"] == '{"answer": 42}'
    assert fields["reason"] == "-"
    assert "--- stdout ---\nhello from the task\n--- stderr (empty) ---\n" in ran.out

    # logs EXECUTION_ID: that run
    oldest = records["executions"][1]["execution_id"]
    record = cli(capsys, *at(served, "--json", "logs", oldest)).json()
    assert record["execution_id"] == oldest
    assert record["stdout"] == "hello from the task\n"

    ran = ok(capsys, *at(served, "logs", "hist_bad"))
    assert block(ran.out)["outcome"] == "failed"
    assert block(ran.out)["reason"] == "ZeroDivisionError: division by zero"
    assert "Traceback (most recent call last):" in ran.out

    # a task that never ran: exit 1, said plainly
    ok(capsys, *at(served, "add", quick, "--id", "hist_never", "--priority", "LOW"))
    ran = cli(capsys, *at(served, "logs", "hist_never"))
    assert (ran.code, ran.err) == (1, "omnimind: task 'hist_never' has not run yet\n")


@pytest.mark.slow
def test_cancel_pause_resume_rm(
    capsys: pytest.CaptureFixture[str], served: Served, tmp_path: Path, api: OmniMindClient
) -> None:
    sleepy = write(tmp_path / "s.py", SLEEPY)
    ran = cli(capsys, *at(served, "add", sleepy, "--id", "ctl_sleep", "--priority", "CRITICAL"))
    assert ran.code == 0, ran.err
    wait_for(lambda: api.get_task("ctl_sleep")["status"] == "running", 10.0, "the run to start")
    ran = cli(capsys, *at(served, "cancel", "ctl_sleep"))
    assert (ran.code, ran.out) == (0, "Task 'ctl_sleep' is being cancelled\n"), ran.err
    wait_runs(api, "ctl_sleep", 1)
    ran = cli(capsys, *at(served, "history", "ctl_sleep"))
    assert ran.out.splitlines()[1].split()[1:3] == ["ctl_sleep", "cancelled"]

    quick = write(tmp_path / "q.py", QUICK)
    ok(capsys, *at(served, "add", quick, "--id", "ctl_daily", "--priority", "LOW"))
    ran = cli(capsys, *at(served, "pause", "ctl_daily"))
    assert (ran.code, ran.out) == (0, "Task 'ctl_daily' paused\n"), ran.err
    assert api.get_task("ctl_daily")["paused"] is True
    ran = cli(capsys, *at(served, "--json", "resume", "ctl_daily"))
    assert ran.json() == {
        "status": "resumed",
        "task_id": "ctl_daily",
        "message": "Task 'ctl_daily' resumed",
    }
    assert api.get_task("ctl_daily")["paused"] is False

    for task_id in ("ctl_daily", "ctl_sleep"):
        ran = cli(capsys, *at(served, "rm", task_id))
        assert (ran.code, ran.out) == (0, f"Task '{task_id}' deleted\n"), ran.err
        assert cli(capsys, *at(served, "show", task_id)).code == 1
    # The history of a deleted task stays readable through logs.
    ran = ok(capsys, *at(served, "logs", "ctl_sleep"))
    assert block(ran.out)["outcome"] == "cancelled"
    old_run = block(ran.out)["execution id"]
    ran = ok(capsys, *at(served, "history", "ctl_sleep"))  # and through history
    assert [cells(line)[:3] for line in ran.out.splitlines()[1:]] == [
        [old_run, "ctl_sleep", "cancelled"]
    ]
    # Added again, the id is a new task: its logs start empty; the old run stays readable.
    ok(capsys, *at(served, "add", quick, "--id", "ctl_sleep", "--priority", "LOW"))
    ran = cli(capsys, *at(served, "logs", "ctl_sleep"))
    assert (ran.code, ran.err) == (1, "omnimind: task 'ctl_sleep' has not run yet\n")
    assert block(ok(capsys, *at(served, "logs", old_run)).out)["outcome"] == "cancelled"
    assert ok(capsys, *at(served, "history", "ctl_sleep")).out == "no executions\n"
    ran = cli(capsys, *at(served, "logs", "never_was"))
    assert ran.code == 1 and "No task or execution with id 'never_was'" in ran.err
    ran = cli(capsys, *at(served, "history", "never_was"))
    assert ran.code == 1 and "No task or execution history with id 'never_was'" in ran.err


@pytest.mark.slow
def test_client_endpoints_the_cli_does_not_use(api: OmniMindClient) -> None:
    api.add_task("cl_patch", code=QUICK, priority="LOW", description="before")
    changed = api.update_task("cl_patch", {"description": "after", "repeat_hours": 2})
    assert changed["status"] == "task_updated"
    assert changed["task"]["description"] == "after"
    assert changed["task"]["repeat_interval"] == "2:00:00"

    batch = api.batch(
        [{"op": "pause", "task_id": "cl_patch"}, {"op": "delete", "task_id": "cl_nope"}]
    )
    assert [r["status"] for r in batch["results"]] == [200, 404]
    assert api.get_task("cl_patch")["paused"] is True

    assert "omnimind" in api.metrics()
    assert "/daemon/status" in api.openapi()["paths"]
    assert api.ws_token()["token"]
    with pytest.raises(ApiError) as missing:
        api.get_execution("no-such-execution")
    assert missing.value.status_code == 404 and missing.value.detail


@pytest.mark.slow
def test_stop_and_start(capsys: pytest.CaptureFixture[str], served: Served) -> None:
    try:
        ran = cli(capsys, *at(served, "stop"))
        assert (ran.code, ran.out) == (0, "Daemon stopped successfully\n"), ran.err
        assert cli(capsys, *at(served, "stop")).out == "Daemon is not running\n"
        fields = block(cli(capsys, *at(served, "status")).out)
        assert (fields["state"], fields["running"]) == ("stopped", "no")
    finally:
        ran = cli(capsys, *at(served, "start"))
    assert (ran.code, ran.out) == (0, "Daemon started successfully\n"), ran.err
    ran = cli(capsys, *at(served, "--json", "start"))
    assert ran.json() == {"status": "already_running", "message": "Daemon is already running"}


@pytest.mark.slow
def test_credentials_from_the_environment_or_the_home_file(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    served: Served,
    tmp_path: Path,
) -> None:
    # No runtime file (it would give the served daemon's home) and nothing else: 401.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "no-runtime"))
    assert cli(capsys, "--url", served.url, "status").code == 1

    monkeypatch.setenv("OMNIMIND_URL", served.url)  # the default --url
    monkeypatch.setenv("OMNIMIND_DASHBOARD_USER", USER)
    monkeypatch.setenv("OMNIMIND_DASHBOARD_PASS", PASS)
    assert cli(capsys, "status").code == 0
    monkeypatch.delenv("OMNIMIND_DASHBOARD_USER")
    monkeypatch.delenv("OMNIMIND_DASHBOARD_PASS")

    home = tmp_path / "other_home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "dashboard_auth.json").write_text(json.dumps({"user": USER, "pass": PASS}))
    (home / "config" / "dashboard_auth.json").chmod(0o600)
    monkeypatch.setenv("OMNIMIND_HOME", str(home))
    assert cli(capsys, "status").code == 0
    # The home defaults to the current directory.
    monkeypatch.delenv("OMNIMIND_HOME")
    monkeypatch.chdir(home)
    assert cli(capsys, "status").code == 0


@pytest.mark.slow
def test_unreachable_daemon_exits_3_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["tasks"], ["run", "x"], ["stop"], ["logs", "-f"]):
        ran = cli(capsys, "--url", url, "--user", USER, "--password", PASS, *args)
        assert ran.code == 3, (args, ran)
        assert url in ran.err and "omnimind serve" in ran.err, args
        assert ran.out == ""


@pytest.mark.slow
def test_entry_point_as_a_subprocess(served: Served, tmp_path: Path) -> None:
    env = cli_env(
        OMNIMIND_URL=served.url, OMNIMIND_DASHBOARD_USER=USER, OMNIMIND_DASHBOARD_PASS=PASS
    )
    command = [sys.executable, "-m", "omnimind_trio"]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args],
            input=stdin,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )

    done = run("--json", "add", "-", "--id", "sub_stdin", "--priority", "LOW", stdin=QUICK)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task_id"] == "sub_stdin"
    done = run("add", "-", "--id", "sub_stdin", stdin=QUICK)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "omnimind: Task already exists: sub_stdin (HTTP 409)\n"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # never contacted: usage is checked first
    cases = [
        [],
        ["frobnicate"],
        ["--url", url, "add", "-", "--id", "x", "--priority", "URGENT"],
        ["--url", url, "add", str(tmp_path / "missing.py"), "--id", "x"],
        ["--url", url, "--user", "someone", "status"],
        ["--url", "localhost:8000", "status"],
        ["--url", url, "tasks", "--limit", "many"],
        ["--url", url, "show"],
    ]
    for args in cases:
        ran = cli(capsys, *args)
        assert ran.code == 2, (args, ran)
        assert ran.err and ran.out == "", args
    home = tmp_path / "config"
    home.mkdir()
    (home / "dashboard_auth.json").write_text("{not json")
    (home / "dashboard_auth.json").chmod(0o600)
    ran = cli(capsys, "--url", url, "status")
    assert ran.code == 2 and "dashboard_auth.json" in ran.err
    assert cli(capsys, "--help").code == 0


def test_resolve_auth_order(tmp_path: Path) -> None:
    env = {"OMNIMIND_DASHBOARD_USER": "env-user", "OMNIMIND_DASHBOARD_PASS": "env-pass"}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dashboard_auth.json").write_text('{"user": "f", "pass": "p"}')
    (tmp_path / "config" / "dashboard_auth.json").chmod(0o600)
    home = {"OMNIMIND_HOME": str(tmp_path)}
    assert resolve_auth("a", "b", {**env, **home}) == ("a", "b")
    assert resolve_auth(None, None, {**env, **home}) == ("env-user", "env-pass")
    assert resolve_auth(None, None, home) == ("f", "p")
    assert resolve_auth(None, None, {"OMNIMIND_HOME": str(tmp_path / "none")}) is None


# -- logs -f -----------------------------------------------------------------------------------


def summary(task_id: str, execution_id: str, outcome: str, **extra: Any) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "task_id": task_id,
        "trigger": "schedule",
        "outcome": outcome,
        "reason": None,
        "result": None,
        "scheduled_at": "2025-11-19T02:30:00.000Z",
        "started_at": "2025-11-19T02:30:00.000Z",
        "finished_at": None,
        "duration_seconds": None,
        "cpu_seconds": None,
        "max_rss_mb": None,
        **extra,
    }


def event(kind: str, data: dict[str, Any], time: str = "2025-11-19T02:30:01.500Z") -> str:
    return json.dumps({"type": kind, "state": "working", "time": time, "data": data})


STATUS_MESSAGE = json.dumps({"type": "status", "state": "idle", "running": True})
STARTED = event("execution_started", summary("backup", "e1", "running"))
FINISHED = event(
    "execution_finished",
    summary(
        "backup",
        "e1",
        "failed",
        reason="RuntimeError: disk full\nTraceback (most recent call last):\n  ...",
        finished_at="2025-11-19T02:30:01.250Z",
        duration_seconds=1.25,
    ),
)
OTHER = event("execution_finished", summary("other", "e2", "succeeded", duration_seconds=75.0))


def local(iso: str) -> str:
    """What the CLI prints for an API time: local time, to the second."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def test_format_event_one_line_per_execution_event() -> None:
    when = local("2025-11-19T02:30:01.500Z")
    started = format_event(json.loads(STARTED))
    assert started is not None
    assert started.split() == [*when.split(), "backup", "e1", "running", "-"]
    finished = format_event(json.loads(FINISHED))
    assert finished is not None
    assert "\n" not in finished
    assert finished.split(None, 6)[2:] == [
        "backup",
        "e1",
        "failed",
        "1.25s",
        "RuntimeError: disk full",
    ]
    other = format_event(json.loads(OTHER))
    assert other is not None and other.split()[-2:] == ["succeeded", "1m15s"]

    assert format_event(json.loads(FINISHED), "backup") == finished  # by task id
    assert format_event(json.loads(FINISHED), "e1") == finished  # by execution id
    assert format_event(json.loads(OTHER), "backup") is None
    assert format_event(json.loads(STATUS_MESSAGE)) is None
    metrics = {"type": "metrics", "state": "idle", "time": "2025-11-19T02:30:00Z", "data": {}}
    assert format_event(metrics) is None


@dataclass
class FakeLive:
    """A stand-in for ``/daemon/ws`` that speaks the documented protocol."""

    messages: list[str]
    close_code: int = 1000

    async def handler(self, request: trio_websocket.WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        if headers.get("authorization") != basic(USER, PASS):
            await request.reject(401, body=b'{"detail": "Not authenticated"}')
            return
        ws = await request.accept()
        for message in self.messages:
            await ws.send_message(message)
        await ws.aclose(self.close_code, "bye")


async def serve_fake(nursery: trio.Nursery, live: FakeLive) -> str:
    server = await nursery.start(trio_websocket.serve_websocket, live.handler, "127.0.0.1", 0, None)
    return f"http://127.0.0.1:{server.port}"


async def test_follow_events_reads_messages_reconnects_and_reports_rejection() -> None:
    async with trio.open_nursery() as nursery:
        live = FakeLive([STATUS_MESSAGE, STARTED, "not json", FINISHED])
        url = await serve_fake(nursery, live)
        seen: list[dict[str, Any]] = []
        await follow_events(url, (USER, PASS), seen.append)
        assert [m["type"] for m in seen] == ["status", "execution_started", "execution_finished"]

        # 1013: fell behind; reconnect (a fresh status first), then a clean close ends it.
        live.messages, live.close_code = [STATUS_MESSAGE], 1013
        gaps: list[str] = []

        def recover(reason: str) -> None:
            gaps.append(reason)
            live.close_code = 1000

        seen.clear()
        await follow_events(url, (USER, PASS), seen.append, on_reconnect=recover)
        assert gaps == ["bye"]
        assert [m["type"] for m in seen] == ["status", "status"]

        live.close_code = 1011
        with pytest.raises(ConnectionLost, match="1011"):
            await follow_events(url, (USER, PASS), seen.append)

        with pytest.raises(ApiError) as rejected:
            await follow_events(url, (USER, "wrong"), seen.append)
        assert (rejected.value.status_code, rejected.value.detail) == (401, "Not authenticated")
        nursery.cancel_scope.cancel()


@contextlib.contextmanager
def fake_live_in_a_thread(live: FakeLive) -> Iterator[str]:
    """Serve ``live`` from its own Trio loop in a thread, so ``main()`` can run here."""
    ready: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            url = await serve_fake(nursery, live)
            ready.put((url, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    thread = threading.Thread(target=trio.run, args=(run,), daemon=True)
    thread.start()
    url, token, scope = ready.get(timeout=10)
    try:
        yield url
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(timeout=10)


@pytest.mark.slow
def test_logs_follow_prints_one_line_per_execution_event(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI against the protocol as specified, whatever the daemon's state."""
    monkeypatch.setenv("OMNIMIND_DASHBOARD_USER", USER)
    monkeypatch.setenv("OMNIMIND_DASHBOARD_PASS", PASS)
    with fake_live_in_a_thread(FakeLive([STATUS_MESSAGE, STARTED, OTHER, FINISHED])) as url:
        ran = cli(capsys, "--url", url, "logs", "-f")
        assert ran.code == 0, ran.err  # the fake closes normally after its messages
        assert ran.out.splitlines() == [
            format_event(json.loads(m)) for m in (STARTED, OTHER, FINISHED)
        ]

        ran = cli(capsys, "--url", url, "--json", "logs", "-f", "backup")
        assert ran.code == 0, ran.err
        printed = [json.loads(line) for line in ran.out.splitlines()]
        assert printed == [json.loads(m) for m in (STARTED, FINISHED)]

        ran = cli(capsys, "--url", url, "--password", "wrong", "--user", USER, "logs", "-f")
        assert ran.code == 1
        assert ran.err.splitlines()[:2] == [
            VISIBLE_WARNING,
            "omnimind: Not authenticated (HTTP 401)",
        ]


def ws_status(served: Served) -> int | None:
    """The status that refused a WebSocket at /daemon/ws; None if it answered as specified
    (a status message first)."""

    async def probe() -> int | None:
        received: list[dict[str, Any]] = []
        with trio.move_on_after(10) as scope:

            def first(message: dict[str, Any]) -> None:
                received.append(message)
                scope.cancel()

            try:
                await follow_events(served.url, (USER, PASS), first)
            except ApiError as exc:
                return exc.status_code
        assert received, "no message from /daemon/ws within 10 s"
        assert received[0]["type"] == "status"
        assert received[0]["workspace"] == str(served.workspace)
        return None

    return trio.run(probe)


TICKING = """
import sys, time
def execute():
    for i in range(30):
        print(f"tick {i}", flush=True)
        if i == 2:
            print("half way", file=sys.stderr, flush=True)
        time.sleep(0.1)
"""


@pytest.mark.slow
def test_logs_follow_prints_a_running_tasks_output_as_it_comes(
    served: Served, tmp_path: Path, api: OmniMindClient
) -> None:
    """``logs -f TASK`` joins a run in flight: what it printed so far, then each line as it
    comes (stdout to stdout, stderr to stderr), and the run's end as a line on stderr."""
    status = ws_status(served)
    assert status is None
    api.add_task("ticking", code=TICKING, priority="CRITICAL")
    with contextlib.suppress(ApiError):  # already running: a conflict
        api.run_task("ticking")
    deadline = time.monotonic() + 15
    while api.get_task("ticking")["running_execution_id"] is None:
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.05)
    execution_id = api.get_task("ticking")["running_execution_id"]
    while "tick 1\n" not in api.execution_log(execution_id):
        assert time.monotonic() < deadline, "no output"
        time.sleep(0.05)
    env = cli_env(OMNIMIND_DASHBOARD_USER=USER, OMNIMIND_DASHBOARD_PASS=PASS)
    follower = subprocess.Popen(
        [sys.executable, "-m", "omnimind_trio", "--url", served.url, "logs", "-f", "ticking"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a suite started in the background (`make test &`) runs with
        # SIGINT ignored, which its children inherit, and Ctrl-C would not reach them.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: queue.Queue[str] = queue.Queue()

    errors: queue.Queue[str] = queue.Queue()

    def pump(stream: Any, into: queue.Queue[str]) -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    threading.Thread(target=pump, args=(follower.stdout, lines), daemon=True).start()
    threading.Thread(target=pump, args=(follower.stderr, errors), daemon=True).start()
    try:
        seen: list[str] = []
        while len(seen) < 30:
            seen.append(lines.get(timeout=15))
            if seen[-1] == "tick 20":  # printed live: the run is still going
                assert api.get_execution(execution_id)["outcome"] == "running"
        assert seen == [f"tick {i}" for i in range(30)]  # no line lost or repeated
        err: list[str] = []
        while not any(f"ticking  {execution_id}  succeeded" in x for x in err):
            err.append(errors.get(timeout=15))
        assert err[:2] == [f"(execution {execution_id} of ticking, running)", "half way"]
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        assert follower.stdout is not None and follower.stderr is not None
        follower.stdout.close()
        follower.stderr.close()


# -- log formats -------------------------------------------------------------------------------


def make_record(**extra: Any) -> logging.LogRecord:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    logger = logging.getLogger("omnimind_trio.daemon")
    return logger.makeRecord(
        logger.name,
        logging.ERROR,
        __file__,
        1,
        "execution %s failed",
        ("e1",),
        exc_info,
        extra=extra,
    )


def test_json_formatter_writes_one_object_per_line_with_extras_and_traceback() -> None:
    record = make_record(task_id="backup", execution_id="e1", path=Path("/tmp"))
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "omnimind_trio.daemon"
    assert entry["event"] == "execution e1 failed"
    assert entry["task_id"] == "backup"
    assert entry["execution_id"] == "e1"
    assert entry["path"] == "/tmp"  # not JSON: written as str()
    assert entry["traceback"].startswith("Traceback (most recent call last):")
    assert entry["traceback"].rstrip().endswith("ValueError: boom")
    assert entry["timestamp"].endswith("Z") and "T" in entry["timestamp"]
    stamp = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
    assert abs(stamp.timestamp() - record.created) < 0.001

    plain = json.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "hi"})))
    assert set(plain) == {"timestamp", "level", "logger", "event"}


def test_text_formatter_appends_extras() -> None:
    record = make_record(task_id="backup")
    text = TextFormatter().format(record)
    first = text.splitlines()[0]
    assert first.endswith(" ERROR omnimind_trio.daemon: execution e1 failed task_id=backup")
    assert "ValueError: boom" in text


@pytest.mark.slow
def test_serve_log_format_json_writes_only_json_lines(
    capsys: pytest.CaptureFixture[str], served: Served
) -> None:
    # Some activity first, so there is more than the start-up to read.
    cli(capsys, *at(served, "status"))
    entries = [json.loads(line) for line in served.stderr().splitlines()]
    assert entries, "the daemon logged nothing"
    for entry in entries:
        assert {"timestamp", "level", "logger", "event"} <= set(entry)
    assert any(e["event"].startswith("serving on http://127.0.0.1:") for e in entries)


@pytest.mark.slow
def test_edit_changes_only_what_is_given_and_batch_reports_each_operation(
    capsys: pytest.CaptureFixture[str], served: Served, api: OmniMindClient, tmp_path: Path
) -> None:
    code = write(tmp_path / "policy.py", "def execute():\n    return 1\n")
    ok(capsys, *at(served, "add", code, "--id", "policy", "--priority", "LOW",
                   "--repeat-hours", "6", "--overlap", "queue", "--max-retries", "2"))  # fmt: skip
    ok(capsys, *at(served, "edit", "policy", "--on-busy", "cancel", "--max-delay-hours", "2"))
    task = api.get_task("policy")
    assert (task["priority"], task["repeat_hours"], task["overlap"]) == ("LOW", 6, "queue")
    assert (task["on_busy"], task["max_delay_hours"], task["max_retries"]) == ("cancel", 2.0, 2)
    ok(capsys, *at(served, "edit", "policy", "--once"))
    assert api.get_task("policy")["repeat_hours"] is None
    ran = cli(capsys, *at(served, "edit", "policy"))
    assert ran.code == 2 and "at least one option" in ran.err
    ran = cli(capsys, *at(served, "edit", "policy", "--max-retries", "-1"))
    assert ran.code == 1 and "max_retries: Input should be greater than or equal to 0" in ran.err

    operations = write(
        tmp_path / "ops.json",
        '[{"op": "pause", "task_id": "policy"}, {"op": "delete", "task_id": "nope"}]',
    )
    ran = cli(capsys, *at(served, "batch", operations))
    assert ran.code == 1  # not everything applied
    assert "Task not found: nope" in ran.out and "1 of 2 operations applied" in ran.out
    assert api.get_task("policy")["paused"] is True
    ran = cli(capsys, *at(served, "--json", "batch", "--atomic", operations))
    assert ran.code == 1 and ran.json()["applied"] == 0


def test_the_default_url_is_where_serve_listens_by_default() -> None:
    from omnimind_trio.cli import _client, _parser

    assert _parser.DEFAULT_URL == "http://127.0.0.1:8000"
    assert OmniMindClient().base_url == _client.DEFAULT_URL == _parser.DEFAULT_URL
