"""A task's env and secrets: they reach its process as variables, change without a
restart, and a secret's value is ``***`` in everything the daemon keeps or shows of a run
(the record, the live events, the log file, the result, the reason, the server's log).

The masking of a stream is tested on its own against masking the whole text at once, over
every way of cutting it into chunks; then end to end with real runs, one of which holds a
secret half-printed until the test has seen what the live stream let through.
"""

from __future__ import annotations

import logging
import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest
import trio

from omnimind_trio import Daemon, FakeSource, InvalidInput, open_daemon
from omnimind_trio.execution import Masker
from omnimind_trio.models import ExecutionRecord, Outcome, Priority, TaskSpec, parse_task_spec

from .conftest import make_settings
from .test_api import TASK, call, client

__all__ = ["client"]  # the fixture, re-used

SECRET = "hunter22-xyz"


def spec(task_id: str, code: str, **fields: Any) -> TaskSpec:
    return TaskSpec(task_id, task_id, "", Priority.CRITICAL, code, **fields)


async def finished(daemon: Daemon, task_id: str, runs: int = 1) -> ExecutionRecord:
    """The final record of the latest run of ``task_id`` once it has ``runs`` runs."""
    with trio.fail_after(20):
        while daemon.get_task(task_id).execution_count < runs:
            await trio.sleep(0.01)
    records, _ = await daemon._store.list_executions(task_id=task_id, limit=1)
    return await daemon.wait_execution(records[0].execution_id)


# -- masking, on its own ---------------------------------------------------------------------


def masked_in_chunks(masker: Masker, data: bytes, cuts: list[int]) -> tuple[list[bytes], bytes]:
    stream = masker.stream()
    pieces, start = [], 0
    for cut in [*cuts, len(data)]:
        pieces.append(stream.feed(data[start:cut]))
        start = cut
    return pieces, b"".join(pieces) + stream.flush()


def test_a_stream_cut_anywhere_is_masked_as_the_whole_text() -> None:
    rng = random.Random(13)
    for _ in range(3000):
        values = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 5))) for _ in range(3)]
        masker = Masker(values)
        text = "".join(rng.choice("abcx") for _ in range(rng.randint(0, 30)))
        cuts = sorted(rng.sample(range(len(text) + 1), rng.randint(0, min(6, len(text)))))
        _, streamed = masked_in_chunks(masker, text.encode(), cuts)
        assert streamed.decode() == masker.text(text), (values, text, cuts)


def test_a_secret_split_across_chunks_is_masked_and_nothing_else_waits() -> None:
    masker = Masker([SECRET, "other-value"])
    pieces, whole = masked_in_chunks(masker, b"token hunter22-xyz done\n", [8, 14])
    assert whole == b"token *** done\n"
    # "token " goes at once; "hu" may start the secret and waits for the next chunk.
    assert pieces[0] == b"token "
    assert b"hu" not in b"".join(pieces)
    # Output that cannot start a secret is never held (live output shows it at once).
    stream = masker.stream()
    assert stream.feed(b"progress 50%\n") == b"progress 50%\n"
    assert stream.feed(b"half: hunter") == b"half: "
    assert stream.flush() == b"hunter"  # the stream ended: it was not the secret


def test_masking_text_and_json() -> None:
    masker = Masker(["abcd", "abcdefgh", "p@ss.word*"])
    assert masker.text("x abcdefgh y abcd z p@ss.word*") == "x *** y *** z ***"
    assert masker.json({"abcd": ["key abcd", 3, None, {"n": "p@ss.word*"}]}) == {
        "***": ["key ***", 3, None, {"n": "***"}]
    }
    assert not Masker([]) and Masker([]).text("abcd") == "abcd"
    deep: Any = "abcd"
    for _ in range(5000):
        deep = [deep]
    masked = masker.json(deep)
    for _ in range(5000):
        masked = masked[0]
    assert masked == "***"


# -- validation -----------------------------------------------------------------------------


def add_body(**fields: Any) -> dict[str, Any]:
    return {**TASK, **fields}


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"env": {"OMNIMIND_WORKSPACE": "/tmp"}},
            "env: OMNIMIND_WORKSPACE: names starting with OMNIMIND_ are the daemon's own "
            "(it sets OMNIMIND_WORKSPACE for every run)",
        ),
        (
            {"secrets": {"OMNIMIND_URL": "long enough"}},
            "secrets: OMNIMIND_URL: names starting with OMNIMIND_ are the daemon's own "
            "(it sets OMNIMIND_WORKSPACE for every run)",
        ),
        (
            {"secrets": {"PIN": "123"}},
            "secrets: the value of PIN is shorter than 4 characters: too short to be masked "
            "in output (a value that is not secret goes in env)",
        ),
        (
            {"env": {"1X": "a"}},
            "env: '1X' is not a variable name (letters, digits and _, not first a digit)",
        ),
        (
            {"env": {"A": "x"}, "secrets": {"A": "long enough"}},
            "env: A is also in secrets: give it in one",
        ),
        ({"env": {"A": 1}}, "env.A: Input should be a valid string"),
    ],
)
def test_bad_env_and_secrets_are_refused_saying_why(fields: dict[str, Any], detail: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_task_spec(add_body(**fields), max_code_bytes=100_000)
    assert caught.value.detail == detail


async def test_the_api_refuses_them_and_changes_nothing(client: Any, daemon: Daemon) -> None:
    body = add_body(secrets={"PIN": "123"})
    response = await call(client, "POST", "/daemon/tasks/add", body)
    assert response.status_code == 400
    assert "PIN is shorter than 4 characters" in (await response.get_json())["detail"]
    assert TASK["task_id"] not in {t.task_id for t in daemon.list_tasks().tasks}
    response = await call(client, "POST", "/daemon/tasks/add", add_body(secrets={"K": SECRET}))
    assert response.status_code == 200
    patch = await call(
        client, "PATCH", f"/daemon/tasks/{TASK['task_id']}", {"env": {"OMNIMIND_HOME": "/"}}
    )
    assert patch.status_code == 400
    shown = await call(client, "GET", f"/daemon/tasks/{TASK['task_id']}")
    detail = await shown.get_json()
    assert (detail["env"], detail["secrets"]) == (None, ["K"])
    assert SECRET not in str(detail)


async def test_an_in_process_task_takes_no_env_secrets_or_python(daemon: Daemon) -> None:
    for field, value in (("env", {"A": "1"}), ("secrets", {"A": SECRET}), ("python", "/x/py")):
        with pytest.raises(InvalidInput, match=f"^{field} applies to code tasks only"):
            await daemon.update_task("database_optimization", {field: value})


# -- real runs -------------------------------------------------------------------------------

HELD = """
import os
def execute():
    os.write(1, b"before " + os.environ["TOKEN"][:3].encode())
    with open(os.environ["GO"]) as go:  # the test reads the live output meanwhile
        go.read()
    os.write(1, os.environ["TOKEN"][3:].encode() + b" after\\n")
    return {
        "token": os.environ["TOKEN"],
        "plain": os.environ["PLAIN"],
        "workspace": os.environ["OMNIMIND_WORKSPACE"],
    }
"""


async def test_a_run_sees_env_and_secrets_and_nothing_shows_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    go = tmp_path / "go"
    os.mkfifo(go)
    settings = make_settings(tmp_path)
    async with open_daemon(settings, metrics_source=FakeSource(cpu_percent=5.0)) as daemon:
        live: list[dict[str, Any]] = []
        with daemon.subscribe() as events:
            env = {"PLAIN": "shown", "GO": str(go)}
            await daemon.add_task(spec("held", HELD, env=env, secrets={"TOKEN": SECRET}))
            with trio.fail_after(20):
                async for event in events:
                    if event.type == "execution_output" and event.data["task_id"] == "held":
                        live.append(event.data)
                        if "".join(e["data"] for e in live) == "before ":
                            # The first three characters of the secret are held back:
                            # they may begin it. Now let the task print the rest.
                            await trio.to_thread.run_sync(go.write_text, "go")
                    if event.type == "execution_finished" and event.data["task_id"] == "held":
                        break
        record = await finished(daemon, "held")
        log_text = await daemon.execution_log(record.execution_id)
        detail = daemon.get_task("held")
        log_file = (settings.logs_dir / f"{record.execution_id}.log").read_bytes()
    assert record.outcome is Outcome.SUCCEEDED, record.reason
    assert record.result == {"token": "***", "plain": "shown", "workspace": str(tmp_path)}
    assert [e["data"] for e in live] == ["before ", "*** after\n"]
    assert record.stdout == log_text == log_file.decode() == "before *** after\n"
    assert detail.env == {"PLAIN": "shown", "GO": str(go)} and detail.secrets == ["TOKEN"]
    assert not any(SECRET in r.getMessage() or SECRET in str(r.__dict__) for r in caplog.records)


FAILING = """
import os, sys
def execute():
    print("stderr has", os.environ["TOKEN"], file=sys.stderr)
    raise RuntimeError("cannot log in with " + os.environ["TOKEN"])
"""


async def test_a_failure_quoting_the_secret_is_masked_in_reason_stderr_and_log(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await daemon.add_task(spec("fails", FAILING, secrets={"TOKEN": SECRET}))
    record = await finished(daemon, "fails")
    assert record.outcome is Outcome.FAILED
    assert record.reason is not None
    assert record.reason.startswith("RuntimeError: cannot log in with ***\nTraceback")
    assert record.stderr == "stderr has ***\n"
    logged = [r for r in caplog.records if "execution" in r.getMessage()]
    assert any("cannot log in with ***" in r.getMessage() for r in logged)
    assert not any(SECRET in r.getMessage() or SECRET in str(r.__dict__) for r in caplog.records)


ECHO = """
import os
def execute():
    return {"mode": os.environ.get("MODE"), "key": os.environ.get("KEY")}
"""


async def test_env_and_secrets_change_without_a_restart(daemon: Daemon) -> None:
    await daemon.add_task(spec("echo", ECHO, env={"MODE": "one"}, secrets={"KEY": SECRET}))
    assert (await finished(daemon, "echo")).result == {"mode": "one", "key": "***"}

    await daemon.update_task("echo", {"env": {"MODE": "two"}})  # secrets not mentioned: kept
    assert daemon.get_task("echo").secrets == ["KEY"]
    daemon.run_task_now("echo")
    assert (await finished(daemon, "echo", 2)).result == {"mode": "two", "key": "***"}

    await daemon.update_task("echo", {"name": "renamed", "secrets": {"KEY": "rotated-value"}})
    daemon.run_task_now("echo")
    assert (await finished(daemon, "echo", 3)).result == {"mode": "two", "key": "***"}

    await daemon.update_task("echo", {"secrets": None, "env": None})  # null clears them
    assert (daemon.get_task("echo").secrets, daemon.get_task("echo").env) == (None, None)
    daemon.run_task_now("echo")
    assert (await finished(daemon, "echo", 4)).result == {"mode": None, "key": None}


async def test_env_cannot_override_what_the_daemon_sets_and_pythonpath_applies(
    daemon: Daemon, tmp_path: Path
) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "helper_for_env_test.py").write_text("VALUE = 'imported'\n")
    code = (
        "import os\n"
        "def execute():\n"
        "    import helper_for_env_test\n"
        "    return [os.environ['OMNIMIND_WORKSPACE'], helper_for_env_test.VALUE]\n"
    )
    await daemon.add_task(spec("paths", code, env={"PYTHONPATH": str(library)}))
    record = await finished(daemon, "paths")
    assert record.result == [str(tmp_path), "imported"], record.reason


# -- secrets at rest -------------------------------------------------------------------------


async def test_the_database_keeping_secrets_is_private_even_if_it_was_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    names = ("omnimind.db", "omnimind.db-wal", "omnimind.db-shm")
    async with open_daemon(settings, metrics_source=FakeSource(), autostart=False) as daemon:
        await daemon.add_task(spec("s", "def execute():\n    pass\n", secrets={"K": SECRET}))
        for name in names:  # SQLite made its -wal and -shm with the database's mode
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    # As an older version, a copy or a crash with another umask may leave them:
    for name in names:
        (tmp_path / name).touch()
        (tmp_path / name).chmod(0o644)
    async with open_daemon(settings, metrics_source=FakeSource(), autostart=False) as daemon:
        assert daemon.get_task("s").secrets == ["K"]
        for name in names:
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    made = [r.getMessage() for r in caplog.records if "made 0600" in r.getMessage()]
    assert len(made) == 3 and "mode 0644" in made[0]
