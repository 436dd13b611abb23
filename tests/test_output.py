"""Live output: a run's output readable while it runs, as events, and in its log file.

Real runs in the fork server (a task printing a line every few milliseconds); the log file
itself is tested on its own at sizes far beyond its limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from omnimind_trio import Daemon
from omnimind_trio.config import Settings
from omnimind_trio.daemon import open_daemon
from omnimind_trio.daemon._logfile import LogFile, read_parts
from omnimind_trio.models import ExecutionQuery, Outcome, Priority, TaskSpec

from .conftest import make_settings
from .test_api import call, client

__all__ = ["client"]  # the fixture, re-used

TICKER = """
import sys, time
def execute():
    for i in range(int(COUNT)):
        print(f"line {i}", flush=True)
        if i % 3 == 0:
            print(f"warn {i}", file=sys.stderr, flush=True)
        time.sleep(PAUSE)
    return {"done": True}
"""


def ticker(task_id: str = "ticker", count: int = 40, pause: float = 0.02) -> TaskSpec:
    code = TICKER.replace("COUNT", str(count)).replace("PAUSE", str(pause))
    return TaskSpec(
        task_id=task_id, name="Ticker", description="", priority=Priority.CRITICAL, code=code
    )


async def started_run(daemon: Daemon, task_id: str) -> str:
    with trio.fail_after(10):
        while (run := daemon.get_task(task_id).running_execution_id) is None:
            await trio.sleep(0.01)
    return run


async def first_run(daemon: Daemon, task_id: str) -> str:
    """The id of the task's first execution, once it is recorded."""
    with trio.fail_after(10):
        while not (page := await daemon.list_executions(ExecutionQuery(task_id=task_id))).total:
            await trio.sleep(0.01)
    return page.executions[-1].execution_id


async def test_the_output_so_far_is_readable_while_the_run_goes_on(daemon: Daemon) -> None:
    await daemon.add_task(ticker(count=200, pause=0.02))
    execution_id = await started_run(daemon, "ticker")
    with trio.fail_after(10):
        while "line 5\n" not in (await daemon.get_execution(execution_id)).stdout:
            await trio.sleep(0.02)
    so_far = await daemon.get_execution(execution_id)
    assert so_far.outcome is Outcome.RUNNING
    assert so_far.stdout.startswith("line 0\nline 1\n")
    assert "warn 0" in so_far.stderr
    log = await daemon.execution_log(execution_id)
    # Both streams, each in its order (two pipes: a line of one may pass the other's).
    assert [x for x in log.splitlines() if x.startswith("line")][:6] == [
        f"line {i}" for i in range(6)
    ]
    assert "warn 0\nwarn 3\n" in "".join(x + "\n" for x in log.splitlines() if "warn" in x)
    assert (await daemon.execution_log(execution_id, 1)).count("\n") == 1
    daemon.cancel_task("ticker")
    final = await daemon.wait_execution(execution_id)
    assert final.outcome is Outcome.CANCELLED
    assert final.stdout.startswith("line 0\n") and "line 5\n" in final.stdout


async def test_output_events_are_coalesced_and_complete(daemon: Daemon) -> None:
    received: list[dict[str, Any]] = []
    with daemon.subscribe() as events:
        await daemon.add_task(ticker(count=60, pause=0.005))
        with trio.fail_after(20):
            async for event in events:
                if event.type == "execution_output":
                    received.append(event.data)
                if event.type == "execution_finished" and event.data["task_id"] == "ticker":
                    break
    stdout = "".join(e["data"] for e in received if e["stream"] == "stdout")
    assert stdout == "".join(f"line {i}\n" for i in range(60))
    assert {e["task_id"] for e in received} == {"ticker"}
    assert set(received[0]) == {"execution_id", "task_id", "stream", "data"}
    # 60 lines over ~0.3 s: coalesced every 0.1 s, far fewer events than lines.
    assert len([e for e in received if e["stream"] == "stdout"]) < 20


async def test_a_flood_is_bounded_per_event_and_kept_whole_in_the_log(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, max_output_bytes=4096)
    flood = (
        "def execute():\n"
        "    import sys\n"
        "    for i in range(20000):\n"
        "        sys.stdout.write(f'{i:09d}\\n')\n"
    )
    spec = TaskSpec(
        task_id="flood", name="F", description="", priority=Priority.CRITICAL, code=flood
    )
    async with open_daemon(settings) as daemon:
        biggest = 0
        skipped = False
        with daemon.subscribe() as events:
            await daemon.add_task(spec)
            with trio.fail_after(30):
                async for event in events:
                    if event.type == "execution_output":
                        biggest = max(biggest, len(event.data["data"]))
                        skipped = skipped or "bytes skipped" in event.data["data"]
                    if event.type == "execution_finished" and event.data["task_id"] == "flood":
                        execution_id = event.data["execution_id"]
                        break
        assert biggest < 17 * 1024
        record = await daemon.get_execution(execution_id)
        assert "bytes truncated" in record.stdout and len(record.stdout) < 4200
        log = await daemon.execution_log(execution_id)
        assert log == "".join(f"{i:09d}\n" for i in range(20000))  # 200 KB, whole
        assert await daemon.execution_log(execution_id, 2) == "000019998\n000019999\n"
        assert (settings.logs_dir / f"{execution_id}.log").stat().st_mode & 0o777 == 0o600
    assert skipped


async def test_retention_removes_log_files_with_their_history_rows(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, history_max_per_task=1)
    async with open_daemon(settings) as daemon:
        await daemon.add_task(ticker(count=2, pause=0))
        first = await first_run(daemon, "ticker")
        await daemon.wait_execution(first)
        second = await daemon.request_run("ticker")
        await daemon.wait_execution(second)
        logs = settings.logs_dir
        assert {p.name for p in logs.iterdir()} == {f"{first}.log", f"{second}.log"}
        assert await daemon.apply_retention() == 1
        assert {p.name for p in logs.iterdir()} == {f"{second}.log"}


async def test_a_run_with_no_log_file_serves_its_record(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_log_bytes=0)
    async with open_daemon(settings) as daemon:
        await daemon.add_task(ticker(count=3, pause=0))
        execution_id = await first_run(daemon, "ticker")
        await daemon.wait_execution(execution_id)
        assert not settings.logs_dir.exists()
        log = await daemon.execution_log(execution_id)
        assert log == "line 0\nline 1\nline 2\nwarn 0\n"  # stdout, then stderr


async def test_the_log_route_serves_text_and_tails(client: Any, daemon: Daemon) -> None:
    await daemon.add_task(ticker(count=5, pause=0))
    execution_id = await first_run(daemon, "ticker")
    await daemon.wait_execution(execution_id)
    answer = await call(client, "GET", f"/daemon/executions/{execution_id}/log")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert sorted((await answer.get_data(as_text=True)).splitlines()) == sorted(
        [f"line {i}" for i in range(5)] + ["warn 0", "warn 3"]
    )
    tail = await call(client, "GET", f"/daemon/executions/{execution_id}/log?tail=2")
    assert (await tail.get_data(as_text=True)).count("\n") == 2
    for bad, word in (("tail=-1", "tail"), ("tail=x", "tail"), ("lines=2", "lines")):
        answer = await call(client, "GET", f"/daemon/executions/{execution_id}/log?{bad}")
        assert answer.status_code == 400 and word in (await answer.get_json())["detail"]
    missing = await call(client, "GET", "/daemon/executions/nope/log")
    assert missing.status_code == 404
    assert (
        await call(client, "GET", f"/daemon/executions/{execution_id}/log", headers={})
    ).status_code == 401


async def test_dashboard_rows_and_machine(client: Any, daemon: Daemon) -> None:
    await daemon.add_task(ticker(count=1, pause=0))
    await daemon.wait_execution(await first_run(daemon, "ticker"))
    for _ in range(3):
        await daemon.wait_execution(await daemon.request_run("ticker"))
    answer = await call(client, "GET", "/daemon/dashboard/tasks?q=tick")
    body = await answer.get_json()
    assert body["total_tasks"] == 1
    [row] = body["tasks"]
    assert "code" not in row and row["task_id"] == "ticker" and row["status"] == "done"
    assert [r["outcome"] for r in row["recent"]] == ["succeeded"] * 4
    assert row["last_outcome"] == "succeeded" and row["last_duration_seconds"] >= 0
    assert (await call(client, "GET", "/daemon/dashboard/tasks?sort=bogus")).status_code == 400
    machine = await (await call(client, "GET", "/daemon/machine")).get_json()
    assert machine["state"] in ("idle", "working") and machine["running"] is True
    idle = machine["gates"]["idle"]
    assert idle["threshold_percent"] == daemon.settings.idle_cpu_percent
    assert idle["open"] is daemon.status().metrics.is_idle
    assert machine["cpu_history"] and set(machine["cpu_history"][0]) == {
        "time",
        "cpu_percent",
        "external_cpu_percent",
    }
    json.dumps(machine)


def test_the_log_file_keeps_head_and_tail_within_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    log = LogFile(path, 1000)
    lines = [f"{i:05d}\n".encode() for i in range(2000)]  # 12,000 bytes
    for line in lines:
        log.write(line)
    running = read_parts(log.parts())
    assert running.startswith(b"".join(lines)[:500])
    assert running.endswith(lines[-1])
    assert b"bytes omitted" in running
    assert len(running) <= 1000 + 40
    assert read_parts(log.parts(), 3) == b"".join(lines[-3:])
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.log"]  # segments folded in
    final = path.read_bytes()
    assert final == running
    omitted = int(final.split(b"[... ")[1].split(b" ")[0])
    kept = len(final) - len(f"\n[... {omitted} bytes omitted ...]\n")
    assert kept + omitted == 12000


def test_a_tail_of_a_10_mb_log_reads_only_its_end(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with path.open("wb") as file:
        for i in range(100_000):
            file.write(f"{i:099d}\n".encode())  # 10 MB
    assert read_parts([path], 2) == f"{99998:099d}\n{99999:099d}\n".encode()
    assert read_parts([path], 0) == b""
    assert read_parts([b"a\nb"], 1) == b"b"


def test_settings_default_log_limit() -> None:
    assert Settings().max_log_bytes == 10 * 1024 * 1024


async def test_a_log_that_cannot_be_written_never_fails_the_run(
    tmp_path: Path, monkeypatch: Any, caplog: Any
) -> None:
    def full(self: LogFile, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LogFile, "write", full)
    settings = make_settings(tmp_path)
    async with open_daemon(settings) as daemon:
        await daemon.add_task(ticker(count=3, pause=0))
        record = await daemon.wait_execution(await first_run(daemon, "ticker"))
        assert record.outcome is Outcome.SUCCEEDED
        assert record.stdout == "line 0\nline 1\nline 2\n"
        # No file: the log is the record's output.
        assert await daemon.execution_log(record.execution_id) == record.stdout + record.stderr
    assert any("No space left on device" in r.getMessage() for r in caplog.records)


async def test_a_print_without_flush_shows_while_the_run_goes_on(daemon: Daemon) -> None:
    """stdout is line-buffered, as on a terminal: no ``flush=True`` needed."""
    code = "import time\ndef execute():\n    print('started')\n    time.sleep(30)\n"
    await daemon.add_task(
        TaskSpec(task_id="quiet", name="Q", description="", priority=Priority.CRITICAL, code=code)
    )
    execution_id = await started_run(daemon, "quiet")
    with trio.fail_after(10):
        while (await daemon.get_execution(execution_id)).stdout != "started\n":
            await trio.sleep(0.02)
    daemon.cancel_task("quiet")
