"""When a task runs next and why it waits, in words for people: the STATUS and NEXT
columns of ``omnimind tasks`` and the waiting sentence of ``omnimind show``.

Everything here reads a task detail as the daemon sends it (``status``, ``next_execution``
and the ``waiting`` data) and a "now", so it is tested without a daemon or a clock.
Times are shown in the zone of ``now`` (the local zone for the commands)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

# A condition a task waits for, by name: what stands in its way, in two or three words.
_CONDITION_WORDS: Final = {
    "user_away": "person present",
    "on_ac_power": "on battery",
    "unmetered_network": "metered network",
}
# A load gate a task waits for: what it waits for, as the NEXT column says it.
_GATE_WAIT: Final = {
    "idle": ("machine busy", "when idle"),
    "low_activity": ("machine busy", "when activity is low"),
    "sleep_window": ("sleep window", "in the sleep window"),
}


def parse_time(iso: str | None) -> datetime | None:
    """An API time (ISO-8601 UTC), or None."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None


def status_words(task: Mapping[str, Any]) -> str:
    """The STATUS column: the task's status, and for a waiting or frozen task what it
    waits for (``waiting: sleep window``, ``frozen: person present``); for a task this
    daemon does not run (its ``machines``), ``scheduled: not this machine``."""
    status = str(task.get("status") or "-")
    waiting = task.get("waiting")
    if isinstance(waiting, Mapping) and waiting.get("reason") == "stopped":
        return f"{status}: daemon stopped"
    if isinstance(waiting, Mapping) and waiting.get("reason") == "machine":
        return f"{status}: not this machine"
    if status not in ("waiting", "frozen") or not isinstance(waiting, Mapping):
        return status
    why = _obstacle(waiting)
    return f"{status}: {why}" if why else status


def next_words(task: Mapping[str, Any], now: datetime) -> str:
    """The NEXT column: when the task should start, relative to ``now`` ("in 3 h",
    "tonight 00:00"), or what it waits for when no time can be said ("when idle")."""
    status = task.get("status")
    if status in ("running", "done", "paused"):
        return "-"
    waiting = task.get("waiting")
    waiting = waiting if isinstance(waiting, Mapping) else {}
    start = expected_start(task)
    if start is not None:
        return relative(start, now)
    return _open_ended(waiting) or "-"


def expected_start(task: Mapping[str, Any]) -> datetime | None:
    """The start the daemon expects (for a LOW task due at 18:06: the sleep window's
    opening), else the next due time."""
    waiting = task.get("waiting")
    if not isinstance(waiting, Mapping) or waiting.get("reason") == "scheduled":
        # Not due yet: the expected start, else the due time (a load gate may open by then).
        expected = waiting.get("expected_start") if isinstance(waiting, Mapping) else None
        return parse_time(expected) or parse_time(task.get("next_execution"))
    return parse_time(waiting.get("expected_start"))


def waiting_sentence(task: Mapping[str, Any], now: datetime) -> str | None:
    """Why the task is not running and when it should, in one sentence with local times;
    hints name the commands that change it. None for a running task."""
    waiting = task.get("waiting")
    if not isinstance(waiting, Mapping):
        return None
    reason = waiting.get("reason")
    task_id = task.get("task_id", "ID")
    if reason == "paused":
        return f"paused: it runs again once resumed (omnimind resume {task_id})"
    if reason == "done":
        return f"done: a one-shot task that has run (omnimind run {task_id} runs it again)"
    if reason == "stopped":
        return "the daemon is stopped: nothing runs until it starts (omnimind start)"
    if reason == "machine":  # nothing here starts it: no time to expect
        return str(waiting.get("detail") or reason)
    detail = str(waiting.get("detail") or reason or "")
    if reason == "scheduled":
        detail = "not due yet"
    parts = [detail]
    start = expected_start(task)
    run_by = parse_time(waiting.get("run_by"))
    if start is not None and start == run_by:  # max_delay_hours forces the start
        parts.append(
            f"runs anyway {relative(start, now)} ({local(start, now)}), as max_delay_hours says"
        )
    elif start is not None:
        parts.append(f"expected to start {relative(start, now)} ({local(start, now)})")
    else:
        open_ended = _open_ended(waiting)
        if open_ended:
            parts.append(f"expected to start {open_ended}")
    if run_by is not None and run_by != start:
        parts.append(f"runs anyway by {local(run_by, now)}, as max_delay_hours says")
    return "; ".join(part for part in parts if part)


def relative(moment: datetime, now: datetime) -> str:
    """``now``, ``in 40 s``, ``in 25 min``, ``in 3 h``, then a day and a time: ``today
    21:00``, ``tonight 00:30`` (after midnight, before 06:00, less than 18 h ahead),
    ``tomorrow 14:00``, ``Fri 14:00`` within a week, else the date."""
    moment, now = shown(moment, now), shown(now, now)
    seconds = (moment - now).total_seconds()
    if seconds < 1:
        return "now"
    if seconds < 90:
        return f"in {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"in {seconds / 60:.0f} min"
    clock = moment.strftime("%H:%M")
    days = (moment.date() - now.date()).days
    if seconds < 6 * 3600:
        return f"in {seconds / 3600:.0f} h"
    if days == 0:
        return f"today {clock}"
    if days == 1 and moment.hour < 6 and seconds < 18 * 3600:
        return f"tonight {clock}"
    if days == 1:
        return f"tomorrow {clock}"
    if seconds < 7 * 86400:
        return moment.strftime("%a %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def ago(moment: datetime, now: datetime) -> str:
    """A moment past, relative to ``now``: ``now``, ``12 s ago``, ``5 min ago``, ``3 h
    ago``, then the local time (:func:`local`)."""
    seconds = (now - moment).total_seconds()
    if seconds < 1:
        return "now"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 6 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return local(moment, now)


def local(moment: datetime, now: datetime) -> str:
    """``moment`` where ``now`` is shown (:func:`shown`), to the minute: ``2026-12-02 00:00``."""
    return shown(moment, now).strftime("%Y-%m-%d %H:%M")


def shown(moment: datetime, now: datetime) -> datetime:
    """``moment`` in the zone times are shown in: ``now``'s when it is a named zone (a
    ``ZoneInfo``, with its daylight-saving rules), else the system's local time, each moment
    with the offset its own date has (a fixed offset taken now would be an hour off across
    a daylight-saving change)."""
    if isinstance(now.tzinfo, ZoneInfo):
        return moment.astimezone(now.tzinfo)
    return moment.astimezone()


def _obstacle(waiting: Mapping[str, Any]) -> str:
    reason = waiting.get("reason")
    if reason in ("gate", "frozen") and waiting.get("gate") in _GATE_WAIT:
        return _GATE_WAIT[waiting["gate"]][0]
    if reason in ("condition", "frozen") and waiting.get("condition") in _CONDITION_WORDS:
        return _CONDITION_WORDS[waiting["condition"]]
    if reason == "frozen":
        return "no free slot"
    if reason == "upstream":
        return "after " + ", ".join(waiting.get("upstream") or [])
    if reason == "backoff":
        return "retry after failure"
    if reason == "slot":
        return "no free slot"
    if reason == "catch_up":
        return "catch-up queue"
    return ""


def _open_ended(waiting: Mapping[str, Any]) -> str:
    """What a start with no foreseeable time waits for, as the NEXT column says it."""
    reason = waiting.get("reason")
    if reason == "gate" and waiting.get("gate") in _GATE_WAIT:
        return _GATE_WAIT[waiting["gate"]][1]
    if reason == "condition":
        return {
            "user_away": "when away",
            "on_ac_power": "on mains power",
            "unmetered_network": "on an unmetered network",
        }.get(str(waiting.get("condition")), "")
    if reason == "upstream":
        return "after " + ", ".join(waiting.get("upstream") or [])
    if reason in ("slot", "catch_up"):
        return "when a slot is free"
    if reason == "stopped":
        return "once started"
    if reason == "machine":
        return "on " + " or ".join(waiting.get("machines") or [])
    return ""
