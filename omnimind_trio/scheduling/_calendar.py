"""Calendar schedules: the due times of a cron expression in a time zone.

cronsim does the walking, with Vixie cron's rules on DST nights: a job whose time falls in
the spring-forward gap runs once, right after it; a job at a fixed time in the repeated
fall-back hour runs once; a job that fires every so many minutes of that hour runs in both
of its passes. Due times leave here as epoch seconds (UTC), which is what the scheduler and
the store keep.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim
from cronsim.explain import explain

from ..models import SCHEDULE_FIELDS, TaskSpec, cron_fields


@lru_cache(maxsize=1)
def local_zone() -> tzinfo:
    """The machine's time zone with its DST rules: ``$TZ`` if it names a zone, else
    ``/etc/localtime``, else UTC. (``datetime.astimezone()`` would give a fixed offset,
    wrong on the far side of a DST change.)"""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    target = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in target:  # a link into the zone database names the zone
        try:
            return ZoneInfo(target.rpartition("/zoneinfo/")[2])
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return UTC


def zone(name: str | None, default: tzinfo | None = None) -> tzinfo:
    """The zone called ``name``; without one, ``default`` (the daemon's), else local."""
    if name:
        return ZoneInfo(name)
    return default if default is not None else local_zone()


def cron_after(expression: str, after: float, tz: tzinfo, count: int = 1) -> list[float]:
    """The next ``count`` due times of ``expression`` strictly after ``after`` (epoch
    seconds), read in ``tz``."""
    start = datetime.fromtimestamp(after, tz=UTC).astimezone(tz)
    # cronsim walks wall-clock time for a fixed-time expression: from 01:10 in the second
    # pass of a fall-back hour it answers 01:30 of the first pass, which is over. Keep
    # what is really after ``after`` (else a task would run at once, and the scheduler
    # would compute the same past time again and again). An expression that never
    # matches (the 31st of February) gives nothing after cronsim's 50-year search.
    times = (moment.timestamp() for moment in CronSim(cron_fields(expression), start))
    return list(itertools.islice((t for t in times if t > after), count))


def next_due_after(spec: TaskSpec, after: float, tz: tzinfo | None) -> float | None:
    """When a task that last became due (or started) at ``after`` is due next: by its cron
    expression, or its interval; None for a one-shot or an ``after`` task."""
    if spec.cron is not None:
        times = cron_after(spec.cron, after, zone(spec.timezone, tz))
        return times[0] if times else None
    repeat = spec.repeat_seconds
    return None if repeat is None else after + repeat


def repeats(spec: TaskSpec) -> bool:
    """Whether the task has a clock of its own (cron or an interval)."""
    return spec.cron is not None or spec.repeat_seconds is not None


def schedule_key(spec: TaskSpec) -> tuple[object, ...]:
    """What decides a task's due times: its schedule fields, and ``timezone`` for a cron
    task (it means nothing to the others)."""
    zone_name = spec.timezone if spec.cron is not None else None
    return (*(getattr(spec, name) for name in SCHEDULE_FIELDS), zone_name)


def first_due(spec: TaskSpec, now: float, tz: tzinfo | None) -> float | None:
    """When a new task is first due: a one-shot or an interval at once, a cron task at its
    first time after now, an ``after`` task when its upstream tasks have succeeded."""
    if spec.cron is not None:
        return next_due_after(spec, now, tz)
    return None if spec.after is not None else now


def rescheduled(
    spec: TaskSpec,
    next_due: float | None,
    last_start: float | None,
    now: float,
    tz: tzinfo | None,
) -> float | None:
    """The next due time of a task whose schedule fields changed: an interval counts from
    the last start; a cron or ``after`` task is due as a new one would be; a one-shot or
    interval task that has not started yet keeps the due time it had."""
    if spec.cron is not None or spec.after is not None:
        return first_due(spec, now, tz)
    if last_start is None:
        return next_due if next_due is not None else now
    repeat = spec.repeat_seconds
    return None if repeat is None else last_start + repeat


def upcoming(
    spec: TaskSpec, next_due: float | None, tz: tzinfo | None, count: int = 5
) -> list[float]:
    """The next ``count`` due times, from ``next_due`` on (fewer for a one-shot, none for
    a task that runs after others or has nothing due)."""
    if next_due is None:
        return []
    if spec.cron is not None:
        return [next_due, *cron_after(spec.cron, next_due, zone(spec.timezone, tz), count - 1)]
    repeat = spec.repeat_seconds
    if repeat is None:
        return [next_due]
    return [next_due + i * repeat for i in range(count)]


def describe(spec: TaskSpec) -> str:
    """A task's schedule in words: "every 2 hours", "every day", "every 90 minutes", "At
    02:30 every day", "At 02:30 every day (Europe/Paris)" (a cron task's own zone; none:
    the daemon's), "after backup, sync", "once"."""
    if spec.cron is not None:
        words = describe_cron(spec.cron)
        return words if spec.timezone is None else f"{words} ({spec.timezone})"
    if spec.after is not None:
        return "after " + ", ".join(spec.after)
    if spec.repeat_seconds is None:
        return "once"
    minutes = int(spec.repeat_seconds) // 60
    size, unit = next(
        (size, unit)
        for size, unit in ((7 * 24 * 60, "week"), (24 * 60, "day"), (60, "hour"), (1, "minute"))
        if minutes % size == 0  # the largest unit it is a whole number of
    )
    count = minutes // size
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


@lru_cache(maxsize=1024)
def describe_cron(expression: str) -> str:
    """A cron expression in words ("At 02:30 every day"); cached: about 50 µs each, and
    the dashboard's table may hold 10,000 tasks."""
    return explain(cron_fields(expression))
