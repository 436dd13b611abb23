"""What ``omnimind tasks`` and ``omnimind show`` say about when a task runs and why it
waits: the daemon's waiting data in words, at a fixed "now" in a fixed zone."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omnimind_trio.cli._render import _render_task, _render_tasks
from omnimind_trio.cli._waiting import (
    local,
    next_words,
    relative,
    status_words,
    waiting_sentence,
)

ZONE = ZoneInfo("Europe/Paris")  # CET, UTC+1, in December
NOW = datetime(2026, 12, 1, 17, 0, tzinfo=ZONE)  # 16:00 UTC


def iso(hour: int, minute: int = 0, day: int = 1) -> str:
    """A time given in the local zone, as the API writes it (UTC)."""
    local = datetime(2026, 12, day, hour, minute, tzinfo=ZONE)
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def task(status: str, waiting: dict[str, Any] | None, **more: Any) -> dict[str, Any]:
    return {"task_id": "backup", "status": status, "waiting": waiting, **more}


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        (NOW - timedelta(minutes=5), "now"),
        (NOW + timedelta(seconds=40), "in 40 s"),
        (NOW + timedelta(minutes=25), "in 25 min"),
        (NOW + timedelta(hours=3), "in 3 h"),
        (NOW + timedelta(hours=4, minutes=20), "in 4 h"),
        (datetime(2026, 12, 1, 23, 30, tzinfo=ZONE), "today 23:30"),
        (datetime(2026, 12, 2, 0, 0, tzinfo=ZONE), "tonight 00:00"),
        (datetime(2026, 12, 2, 5, 59, tzinfo=ZONE), "tonight 05:59"),
        (datetime(2026, 12, 2, 9, 15, tzinfo=ZONE), "tomorrow 09:15"),
        (datetime(2026, 12, 4, 14, 0, tzinfo=ZONE), "Fri 14:00"),
        (datetime(2026, 12, 24, 14, 0, tzinfo=ZONE), "2026-12-24 14:00"),
    ],
)
def test_times_are_said_relative_to_now_in_local_time(moment: datetime, words: str) -> None:
    assert relative(moment.astimezone(UTC), NOW) == words


def test_a_low_task_due_in_the_evening_is_expected_at_the_sleep_windows_opening() -> None:
    # The case: LOW, every 4 h, due at 18:06, and it can only start at 00:00.
    waiting = {
        "reason": "scheduled",
        "detail": "not due yet",
        "until": iso(18, 6),
        "expected_start": iso(0, 0, day=2),
    }
    low = task("scheduled", waiting, next_execution=iso(18, 6))
    assert status_words(low) == "scheduled"
    assert next_words(low, NOW) == "tonight 00:00"
    assert waiting_sentence(low, NOW) == (
        "not due yet; expected to start tonight 00:00 (2026-12-02 00:00)"
    )


def test_a_task_not_due_while_its_gate_is_closed_shows_its_due_time() -> None:
    # A HIGH task due at 19:00 while the machine is busy: no expected start, the due time.
    waiting = {"reason": "scheduled", "detail": "not due yet", "expected_start": None}
    high = task("scheduled", waiting, next_execution=iso(19))
    assert next_words(high, NOW) == "in 2 h"


@pytest.mark.parametrize(
    ("waiting", "status", "next_run"),
    [
        ({"reason": "gate", "gate": "idle", "expected_start": None}, "machine busy", "when idle"),
        (
            {"reason": "gate", "gate": "low_activity", "expected_start": None},
            "machine busy",
            "when activity is low",
        ),
        (
            {"reason": "gate", "gate": "sleep_window", "expected_start": iso(0, 0, day=2)},
            "sleep window",
            "tonight 00:00",
        ),
        (
            {"reason": "condition", "condition": "user_away", "expected_start": None},
            "person present",
            "when away",
        ),
        (
            {"reason": "condition", "condition": "on_ac_power", "expected_start": None},
            "on battery",
            "on mains power",
        ),
        ({"reason": "slot", "expected_start": None}, "no free slot", "when a slot is free"),
        (
            {"reason": "backoff", "until": iso(17, 30), "expected_start": iso(17, 30)},
            "retry after failure",
            "in 30 min",
        ),
    ],
)
def test_a_waiting_task_says_what_it_waits_for(
    waiting: dict[str, Any], status: str, next_run: str
) -> None:
    due = task("waiting", {"detail": "...", **waiting}, next_execution=iso(16))
    assert status_words(due) == f"waiting: {status}"
    assert next_words(due, NOW) == next_run


def test_a_frozen_run_names_what_froze_it() -> None:
    frozen = {"reason": "frozen", "condition": "user_away", "expected_start": None}
    assert status_words(task("frozen", frozen)) == "frozen: person present"
    frozen = {"reason": "frozen", "gate": "idle", "expected_start": None}
    assert status_words(task("frozen", frozen)) == "frozen: machine busy"


def test_paused_done_and_running_tasks_have_no_next_and_hints_name_commands() -> None:
    paused = task("paused", {"reason": "paused", "detail": "paused until resumed"})
    assert next_words(paused, NOW) == "-"
    assert waiting_sentence(paused, NOW) == (
        "paused: it runs again once resumed (omnimind resume backup)"
    )
    done = task("done", {"reason": "done", "detail": "a one-shot task that has run"})
    assert next_words(done, NOW) == "-"
    assert "omnimind run backup" in (waiting_sentence(done, NOW) or "")
    running = task("running", None)
    assert (status_words(running), next_words(running, NOW)) == ("running", "-")
    assert waiting_sentence(running, NOW) is None


def test_a_forced_run_time_is_said_with_the_wait() -> None:
    waiting = {
        "reason": "gate",
        "gate": "idle",
        "detail": "waiting for the machine to be idle: CPU outside the daemon 80 %",
        "expected_start": iso(20),
        "run_by": iso(20),
    }
    # The forced time is the expected start: said once, as what it is.
    assert waiting_sentence(task("waiting", waiting), NOW) == (
        "waiting for the machine to be idle: CPU outside the daemon 80 %; "
        "runs anyway in 3 h (2026-12-01 20:00), as max_delay_hours says"
    )
    waiting["expected_start"] = None
    assert waiting_sentence(task("waiting", waiting), NOW) == (
        "waiting for the machine to be idle: CPU outside the daemon 80 %; "
        "expected to start when idle; runs anyway by 2026-12-01 20:00, as max_delay_hours says"
    )


def test_the_table_keeps_columns_aligned_with_long_ids(capsys: pytest.CaptureFixture[str]) -> None:
    common = {"execution_count": 0, "success_count": 0, "failure_count": 0}
    rows = [
        {
            "priority": "LOW",
            "last_execution": None,
            "repeat_interval": "4:00:00",
            "schedule": "every 4 hours",
            **task(
                "waiting",
                {"reason": "gate", "gate": "sleep_window", "expected_start": iso(0, 0, day=2)},
            ),
            **common,
            "task_id": "a-very-long-task-identifier-that-goes-on-and-on-for-a-while",
        },
        {
            "priority": "HIGH",
            "last_execution": None,
            "repeat_interval": None,
            "schedule": "At 02:30 every day",
            **task("scheduled", {"reason": "scheduled", "expected_start": iso(2, 30, day=2)}),
            **common,
            "task_id": "x",
        },
    ]
    _render_tasks({"tasks": rows, "total_tasks": 2}, now=NOW)
    lines = capsys.readouterr().out.splitlines()
    header = lines[0]
    for column in ("PRIORITY", "STATUS", "NEXT", "RUNS", "LAST RUN", "SCHEDULE"):
        assert {line[header.index(column) - 2 : header.index(column)] for line in lines} == {"  "}
    assert lines[1].endswith("every 4h")
    assert "tonight 00:00" in lines[1] and "waiting: sleep window" in lines[1]
    assert lines[2].endswith("At 02:30 every day") and "tonight 02:30" in lines[2]


def test_show_leads_with_the_state_and_has_no_json_blob(capsys: pytest.CaptureFixture[str]) -> None:
    waiting = {
        "reason": "gate",
        "gate": "sleep_window",
        "detail": "waiting for the sleep window (00:00-06:00)",
        "expected_start": iso(0, 0, day=2),
    }
    detail = {
        "task_id": "backup",
        "name": "Backup",
        "priority": "LOW",
        "status": "waiting",
        "waiting_reason": waiting["detail"],
        "waiting": waiting,
        "schedule": "every 4 hours",
        "next_execution": iso(16),
        "timeout_seconds": 600.0,
        "after": ["fetch", "report"],
        "followed_by": [],
        "code": "def execute():\n    pass\n",
    }
    _render_task(detail, now=NOW)
    lines = capsys.readouterr().out.splitlines()
    assert [re.sub(r":\s+", ": ", line, count=1) for line in lines[:6]] == [
        "task id: backup",
        "name: Backup",
        "priority: LOW",
        "status: waiting",
        "waiting: waiting for the sleep window (00:00-06:00); "
        "expected to start tonight 00:00 (2026-12-02 00:00)",
        "schedule: every 4 hours",
    ]
    # Values start in one column.
    fields = lines[: lines.index("code:")]
    assert len({len(re.match(r"[^:]*:\s*", line)[0]) for line in fields}) == 1
    assert "{" not in "\n".join(fields) and "[" not in "\n".join(fields)
    assert re.sub(r":\s+", ": ", fields[-2], count=1) == "after: fetch, report"
    assert re.sub(r":\s+", ": ", fields[-1], count=1) == "followed by: -"


def test_times_across_a_daylight_saving_change_keep_their_own_offset() -> None:
    # Saturday 28 March 2026, 16:00 in Berlin; the clocks go forward that night. A task due
    # on Sunday at 12:00 (10:00 UTC) is at 12:00 local, not at 11:00 (Saturday's offset).
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 3, 28, 16, 0, tzinfo=berlin)
    noon = datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    assert relative(noon, now) == "tomorrow 12:00"
    assert local(noon, now) == "2026-03-29 12:00"
    # In autumn (25 October), back: a task at 00:00 local on Monday is 23:00 UTC on Sunday.
    now = datetime(2026, 10, 24, 20, 0, tzinfo=berlin)
    midnight = datetime(2026, 10, 25, 23, 0, tzinfo=UTC)
    assert relative(midnight, now) == "Mon 00:00"


def test_the_system_zone_is_used_with_its_rules_when_now_has_no_named_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        now = datetime(2026, 3, 28, 15, 0, tzinfo=UTC)  # as the CLI passes it
        assert local(datetime(2026, 3, 29, 10, 0, tzinfo=UTC), now) == "2026-03-29 12:00"
        assert relative(datetime(2026, 3, 29, 10, 0, tzinfo=UTC), now) == "tomorrow 12:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_tonight_is_only_the_coming_night() -> None:
    # At 02:00, 05:00 the next day is 27 h away: tomorrow, not tonight.
    early = datetime(2026, 12, 1, 2, 0, tzinfo=ZONE)
    assert relative(datetime(2026, 12, 2, 5, 0, tzinfo=ZONE), early) == "tomorrow 05:00"
    assert relative(datetime(2026, 12, 1, 5, 0, tzinfo=ZONE), early) == "in 3 h"


def test_a_stopped_daemon_is_said_with_the_command_that_starts_it() -> None:
    waiting = {"reason": "stopped", "detail": "the daemon is stopped: nothing runs until it starts"}
    stopped = task("scheduled", waiting)
    assert status_words(stopped) == "scheduled: daemon stopped"
    assert next_words(stopped, NOW) == "once started"
    assert waiting_sentence(stopped, NOW) == (
        "the daemon is stopped: nothing runs until it starts (omnimind start)"
    )
