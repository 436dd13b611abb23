"""Logs for operators: levels of finished runs, tracebacks in the JSON format, the
journal's priority prefix, and hypercorn's own lines kept out of a normal start."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from omnimind_trio import Outcome, Priority, Settings, open_daemon
from omnimind_trio.cli import _main as cli_main
from omnimind_trio.cli import _serve as cli_serve
from omnimind_trio.cli._logs import (
    JournalPriorityFormatter,
    JsonFormatter,
    TextFormatter,
    is_journal,
)
from omnimind_trio.daemon import Daemon
from omnimind_trio.scheduling import FakeSource
from omnimind_trio.store import MemoryStore

from .test_daemon import code_task, history, wait_for
from .test_process import Served, add, spawn
from .test_process import wait_for as wait_until

__all__ = ["spawn"]

DAEMON_LOGGER = "omnimind_trio.daemon"


def finished(caplog: pytest.LogCaptureFixture, task_id: str) -> logging.LogRecord:
    [record] = [
        r
        for r in caplog.records
        if r.name == DAEMON_LOGGER and getattr(r, "task_id", None) == task_id
        and hasattr(r, "outcome")
    ]  # fmt: skip
    return record


async def test_failed_and_timed_out_runs_are_warnings_a_cancelled_one_is_info(
    settings: Settings,
    source: FakeSource,
    daemon_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise ValueError("no luck")

    async def slow() -> None:
        await trio.sleep(3600)

    caplog.set_level(logging.INFO, logger=DAEMON_LOGGER)
    # In memory: no thread for the clock to jump over while a record is written.
    async with open_daemon(settings, metrics_source=source, store=MemoryStore()) as daemon:
        await daemon.register("broken", broken, name="Broken", priority=Priority.CRITICAL)
        await daemon.register(
            "slow", slow, name="Slow", priority=Priority.CRITICAL, timeout_seconds=10
        )
        await daemon.register(
            "asked", slow, name="Asked", priority=Priority.CRITICAL, timeout_seconds=100
        )
        await trio.sleep(1)
        daemon.cancel_task("asked")
        await trio.sleep(10)
        [failed_record] = await history(daemon, "broken")

    failed = finished(caplog, "broken")
    assert failed.levelno == logging.WARNING
    assert failed.getMessage() == (
        f"execution {failed_record.execution_id} of broken: failed (ValueError: no luck)"
    )
    assert failed.__dict__["execution_id"] == failed_record.execution_id
    assert failed.__dict__["outcome"] == "failed"
    assert failed.__dict__["reason"] == "ValueError: no luck"
    traceback = failed.__dict__["traceback"]
    assert traceback.startswith("Traceback (most recent call last):")
    assert ", in broken\n" in traceback and traceback.endswith("ValueError: no luck")
    # The record's reason has the same shape as a code task's: the error, then where.
    assert failed_record.reason == "ValueError: no luck\n" + traceback

    timed_out = finished(caplog, "slow")
    assert timed_out.levelno == logging.WARNING
    assert timed_out.__dict__["outcome"] == "timed_out"
    assert timed_out.__dict__["reason"] == "timed out after 10 s"

    cancelled = finished(caplog, "asked")
    assert cancelled.levelno == logging.INFO
    assert cancelled.__dict__["outcome"] == "cancelled"
    assert cancelled.__dict__["reason"] == "cancelled by request"


async def test_a_killed_run_is_a_warning_with_the_last_line_of_its_stderr(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    code = (
        "def execute():\n    import os, sys\n"
        "    print('first', file=sys.stderr)\n    print('  out of disk  ', file=sys.stderr)\n"
        "    sys.stderr.flush()\n    os.kill(os.getpid(), 9)\n"
    )
    caplog.set_level(logging.INFO, logger=DAEMON_LOGGER)
    await daemon.add_task(code_task("doomed", code))
    await wait_for(lambda: daemon.get_task("doomed").execution_count == 1)
    [record] = await history(daemon, "doomed")
    assert record.outcome is Outcome.KILLED
    killed = finished(caplog, "doomed")
    assert killed.levelno == logging.WARNING
    assert killed.getMessage().endswith(
        ": killed (killed by signal 9 (SIGKILL)); stderr: out of disk"
    )
    assert killed.__dict__["stderr_tail"] == "out of disk"


class SlowStore(MemoryStore):
    """A store whose final records take a minute to write."""

    async def finish_execution(self, record: Any, counters: Any) -> None:
        await trio.sleep(60)
        await super().finish_execution(record, counters)


async def test_a_final_record_not_written_in_time_is_an_error_in_the_log(
    settings: Settings,
    source: FakeSource,
    daemon_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def quick() -> None:
        pass

    caplog.set_level(logging.INFO, logger=DAEMON_LOGGER)
    async with open_daemon(settings, metrics_source=source, store=SlowStore()) as daemon:
        await daemon.register("quick", quick, name="Quick", priority=Priority.CRITICAL)
        await trio.sleep(5)
    [lost] = [
        r
        for r in caplog.records
        if "was not written" in r.getMessage() and getattr(r, "task_id", None) == "quick"
    ]
    assert lost.levelno == logging.ERROR
    assert lost.getMessage().endswith(" of quick (succeeded) was not written within 2 s")


def failed_run_record() -> logging.LogRecord:
    logger = logging.getLogger(DAEMON_LOGGER)
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, "execution e1 of backup: failed", (),
        None, extra={"task_id": "backup", "reason": "ValueError: boom",
                     "traceback": 'Traceback (most recent call last):\n  File "x"\nValueError'},
    )  # fmt: skip


def test_the_json_log_keeps_a_failed_runs_traceback_the_text_log_one_line() -> None:
    record = failed_run_record()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING"
    assert entry["traceback"] == 'Traceback (most recent call last):\n  File "x"\nValueError'
    assert entry["reason"] == "ValueError: boom"
    text = TextFormatter().format(record)
    assert "\n" not in text
    assert text.endswith(
        "WARNING omnimind_trio.daemon: execution e1 of backup: failed task_id=backup"
        ' reason="ValueError: boom"'
    )


def test_the_json_log_keeps_the_traceback_of_a_logged_exception() -> None:
    stream = _Stream()
    logger = logging.getLogger("omnimind_trio.test_json_traceback")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        try:
            {}["missing"]
        except KeyError:
            logger.exception("lookup failed", extra={"task_id": "t"})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "ERROR" and entry["task_id"] == "t"
    assert entry["traceback"].startswith("Traceback (most recent call last):")
    assert (
        ", in test_the_json_log_keeps_the_traceback_of_a_logged_exception\n" in (entry["traceback"])
    )
    assert entry["traceback"].endswith("KeyError: 'missing'")


class _Stream:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.parts)


def test_each_line_carries_its_syslog_priority_for_the_journal() -> None:
    formatter = JournalPriorityFormatter(logging.Formatter("%(levelname)s %(message)s"))
    for level, prefix in [
        (logging.CRITICAL, "<2>"), (logging.ERROR, "<3>"), (logging.WARNING, "<4>"),
        (logging.INFO, "<6>"), (logging.DEBUG, "<7>"),
    ]:  # fmt: skip
        record = logging.makeLogRecord({"levelno": level, "levelname": "X", "msg": "a\nb"})
        assert formatter.format(record) == f"{prefix}X a\n{prefix}b"


def test_the_journal_is_recognised_only_by_its_own_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "journal").open("w") as stream, (tmp_path / "other").open("w") as other:
        status = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        assert is_journal(stream)
        assert not is_journal(other)  # inherited by a child whose stderr is elsewhere
        assert not is_journal(_Stream())  # type: ignore[arg-type]
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not is_journal(stream)


def test_a_crash_of_serve_is_logged_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    async def crash(settings: Settings, *, autostart: bool) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli_serve, "serve", crash)
    monkeypatch.setenv("OMNIMIND_HOME", str(tmp_path))
    assert cli_main.main(["serve", "--port", "0"]) == 1
    [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert record.getMessage() == "the daemon crashed"
    assert record.exc_info is not None
    entry = json.loads(JsonFormatter().format(record))
    assert "ZeroDivisionError: a bug" in entry["traceback"]
    assert "the daemon crashed; the log above has the traceback" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_start_shows_only_our_lines_with_journal_priorities(
    spawn: Callable[..., Served], tmp_path: Path
) -> None:
    # systemd names the stream it gives the service; spawn writes stderr to this file.
    stderr_path = tmp_path / "serve-0.stderr"
    stderr_path.touch()
    status = stderr_path.stat()
    served = spawn(env={"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
    add(served.client(), "fails", "def execute():\n    raise ValueError('no luck')\n")

    def warning_line() -> Any:
        return [line for line in served.stderr().splitlines() if line.startswith("<4>")]

    [line] = wait_until(warning_line, 15, "the failed run's warning line")
    assert " WARNING omnimind_trio.daemon: execution " in line
    assert " of fails: failed (ValueError: no luck) task_id=fails " in line
    lines = served.stderr().splitlines()
    assert any(
        line.startswith("<6>") and "omnimind_trio.cli: serving on http://127.0.0.1:" in line
        for line in lines
    )
    assert all(line[:3] in ("<4>", "<6>") for line in lines), lines
    assert not [line for line in lines if "hypercorn" in line], lines
