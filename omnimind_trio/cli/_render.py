"""How the CLI shows the daemon's JSON to people: key/value blocks, aligned tables, and
one line per live event. ``--json`` bypasses all of it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from ._waiting import ago, next_words, parse_time, status_words, waiting_sentence

EXECUTION_EVENTS: Final = ("execution_started", "execution_finished")
_TIME_KEYS: Final = frozenset({"last_execution", "next_execution", "waiting_since", "time"})
_REASON_WIDTH: Final = 60
_SHOW_FIRST: Final = (
    *("task_id", "name", "description", "priority", "status", "schedule", "next_execution"),
    *("upcoming", "last_execution", "execution_count", "success_count", "failure_count"),
)
"""The fields ``omnimind show`` leads with (the waiting sentence goes after the status)."""


def format_event(message: Mapping[str, Any], ident: str | None = None) -> str | None:
    """One line for an ``execution_started`` / ``execution_finished`` message, None for
    any other message or for an execution of another task than ``ident`` (a task id or an
    execution id). Columns: time, task, execution, outcome, duration, first reason line."""
    if message.get("type") not in EXECUTION_EVENTS or not is_wanted_event(message, ident):
        return None
    data = message["data"]
    reason = _first_line(data.get("reason"))
    return (
        f"{_when(message.get('time'))}  {data.get('task_id', '-')}  "
        f"{data.get('execution_id', '-')}  {data.get('outcome') or '-':<11}  "
        f"{_duration(data.get('duration_seconds')):>8}  {reason}"
    ).rstrip()


def render_message(data: Mapping[str, Any]) -> None:
    print(data.get("message") or data.get("status") or json.dumps(data))


def _render_status(data: Mapping[str, Any]) -> None:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    print(_block(flat.items()))


def _render_task(data: Mapping[str, Any], now: datetime | None = None) -> None:
    """A task's detail: its fields in local time, the waiting data as one sentence (with
    the expected start where it differs from the due time), then its code."""
    now = now or datetime.now(UTC)  # shown in local time (_waiting.shown)
    # Where it stands first, then its counters, then its definition as the daemon sent it.
    fields: list[tuple[str, Any]] = [(key, data.get(key)) for key in _SHOW_FIRST if key in data]
    if "waiting" in data:
        after_status = 1 + next((i for i, (key, _) in enumerate(fields) if key == "status"), 0)
        fields.insert(after_status, ("waiting", waiting_sentence(data, now)))
    hidden = {*_SHOW_FIRST, "code", "waiting", "waiting_reason"}
    fields += [(key, value) for key, value in data.items() if key not in hidden]
    print(_block(fields))
    code = data.get("code")
    if code:
        print("code:")
        for line in code.rstrip("\n").splitlines():
            print(f"    {line}".rstrip())


def _render_tasks(data: Mapping[str, Any], now: datetime | None = None) -> None:
    """The task table. With the tasks' state (``omnimind tasks`` reads the dashboard's
    rows), STATUS says what a waiting task waits for and NEXT when it should start."""
    tasks = data.get("tasks", [])
    if not tasks:
        print("no tasks")
        return
    now = now or datetime.now(UTC)  # shown in local time (_waiting.shown)
    with_state = "status" in tasks[0]
    rows = []
    for task in tasks:
        state = [status_words(task), next_words(task, now)] if with_state else []
        rows.append(
            [
                task["task_id"],
                task["priority"],
                *state,
                str(task["execution_count"]),
                str(task["success_count"]),
                str(task["failure_count"]),
                _when(task["last_execution"]),
                _schedule(task),
            ]
        )
    state_headers = ["STATUS", "NEXT"] if with_state else []
    headers = ["ID", "PRIORITY", *state_headers, "RUNS", "OK", "FAIL", "LAST RUN", "SCHEDULE"]
    counters = len(state_headers) + 2
    print(_table(headers, rows, right={counters, counters + 1, counters + 2}))
    total = data.get("total_tasks", len(tasks))
    if total != len(tasks):
        print(f"({len(tasks)} of {total} tasks)")


def _schedule(task: Mapping[str, Any]) -> str:
    """``every 4h`` for an interval, else the schedule in the daemon's words (a cron
    time, ``after backup``, ``once``)."""
    if task.get("repeat_interval") is not None:
        return "every " + _every(task["repeat_interval"])
    return str(task.get("schedule") or "once")


def _render_history(data: Mapping[str, Any]) -> None:
    executions = data.get("executions", [])
    if not executions:
        print("no executions")
        return
    rows = [
        [
            record["execution_id"],
            record["task_id"],
            record["outcome"],
            _when(record["started_at"] or record["scheduled_at"]),
            _duration(record["duration_seconds"]),
            _first_line(record["reason"]),
        ]
        for record in executions
    ]
    headers = ["ID", "TASK", "OUTCOME", "STARTED", "DURATION", "REASON"]
    print(_table(headers, rows, right={4}))
    total = data.get("total", len(executions))
    if total != len(executions):
        print(f"({len(executions)} of {total} executions)")


def _render_nodes(data: Mapping[str, Any], now: datetime | None = None) -> None:
    """The daemons sharing the database; ``(this)`` marks the one that answered."""
    now = now or datetime.now(UTC)
    rows = []
    for node in data.get("nodes", []):
        heartbeat = parse_time(node.get("last_heartbeat"))
        rows.append(
            [
                node["node"] + (" (this)" if node.get("this") else ""),
                # A daemon killed or cut off keeps the state of its last heartbeat: say so.
                str(node["state"]) if node.get("alive", True) else f"silent ({node['state']})",
                str(node["running_count"]),
                "-" if heartbeat is None else ago(heartbeat, now),
                str(node["version"]),
            ]
        )
    print(_table(["NODE", "STATE", "RUNNING", "LAST HEARTBEAT", "VERSION"], rows, right={2}))


def _render_execution(data: Mapping[str, Any]) -> None:
    skip = {"stdout", "stderr", "reason"}
    fields = [(k, v) for k, v in data.items() if k not in skip]
    fields.append(("reason", data.get("reason")))
    print(_block(fields))
    for stream in ("stdout", "stderr"):
        text = data.get(stream) or ""
        if text:
            print(f"--- {stream} ---")
            print(text.rstrip("\n"))
        else:
            print(f"--- {stream} (empty) ---")


def _render_batch(data: Mapping[str, Any]) -> None:
    for item in data["results"]:
        text = item.get("detail") or item.get("result", {}).get("message", "")
        print(f"{item['index']:>4}  {item['status']}  {text}")
    print(f"{data['applied']} of {len(data['results'])} operations applied")


RENDER: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "batch": _render_batch,
    "status": _render_status,
    "tasks": _render_tasks,
    "show": _render_task,
    "history": _render_history,
    "nodes": _render_nodes,
    "logs": _render_execution,
}


def _block(items: Iterable[tuple[str, Any]]) -> str:
    """``key: value`` lines, values aligned; later lines of a value under its first."""
    pairs = [(key.replace("_", " ") + ":", _value(key, value)) for key, value in items]
    width = max((len(label) for label, _ in pairs), default=0)
    lines = []
    for label, text in pairs:
        first, *rest = text.splitlines() or [""]
        lines.append(f"{label:<{width}} {first}".rstrip())
        lines.extend(f"{'':<{width}} {line}".rstrip() for line in rest)
    return "\n".join(lines)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and (key in _TIME_KEYS or key.endswith("_at")):
        return _when(value)
    if key == "upcoming" and isinstance(value, list):  # due times, in local time
        return ", ".join(_when(item) for item in value) or "-"
    if key == "conditions" and isinstance(value, dict):  # the ones asked for
        return ", ".join(name for name, asked in value.items() if asked) or "none"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value) or "-"  # ids and names (after, followed_by, secrets)
    if key == "conditions_status" and isinstance(value, list):  # one line each
        lines = [f"{'holds' if c['holds'] else 'waits'}  {c['detail']}" for c in value]
        return "\n".join(lines) or "-"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _when(iso: str | None) -> str:
    """An API time (ISO-8601 UTC) in local time, to the second."""
    moment = parse_time(iso)
    if moment is None:
        return iso or "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_INTERVAL = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)$")


def _every(interval: str | None) -> str:
    """``repeat_interval`` (``"1 day, 0:00:00"``, ``"4:00:00"``) as ``1d``, ``4h``."""
    if interval is None:
        return "once"
    match = _INTERVAL.match(interval)
    if match is None:
        return interval
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    if seconds:
        return interval
    if minutes:
        return f"{(days * 24 + hours) * 60 + minutes}m"
    total = days * 24 + hours
    if total % 24 == 0:
        return f"{total // 24}d"
    return f"{total}h"


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _REASON_WIDTH else line[: _REASON_WIDTH - 1] + "…"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:.3f}".rstrip("0")


def is_wanted_event(message: Mapping[str, Any], ident: str | None) -> bool:
    """An execution's start or end (of ``ident``, a task or execution id, if given); with
    ``ident``, its output events too."""
    data = message.get("data")
    kinds = EXECUTION_EVENTS if ident is None else (*EXECUTION_EVENTS, "execution_output")
    if message.get("type") not in kinds or not isinstance(data, dict):
        return False
    return ident is None or ident in (data.get("task_id"), data.get("execution_id"))
