"""M. Calendar schedules (issue 13): cron lateness on a fake clock and on the real one.

M1-M2 run the real scheduler on Trio's MockClock (virtual time, autojump) with a runner
that only records: 1,000 cron tasks of mixed expressions and zones over a virtual week,
beside 1,000 interval tasks in the same run. Lateness is start - due in virtual time; the
CPU cost per dispatch of a cron task is compared with an interval task's, as a ratio (a
cron task computes its next time with cronsim at each start).

M3-M5 run the whole daemon (fork server, SQLite) on the real clock: tasks with
``cron: "* * * * *"`` fire together at each minute boundary; lateness = ``execute()``
entry - the record's ``scheduled_at`` (the cron time). Target p99 < 20 ms, as for
intervals (E2).
"""

from __future__ import annotations

import random
import time
from typing import Any

import trio
import trio.testing

from omnimind_trio import FakeSource, open_daemon
from omnimind_trio.models import Outcome, Priority, TaskCounters, TaskSpec, parse_task_spec
from omnimind_trio.scheduling import (
    GateSet,
    Running,
    Scheduler,
    SleepWindow,
    TaskEntry,
    calendar,
)
from omnimind_trio.scheduling import TrioWallClock as WallClock

from .common import (
    TRIVIAL_CODE,
    Figure,
    Mode,
    fill_tasks,
    log,
    percentile,
    query,
    result_time,
    temp_home,
)
from .executor import settings_for

EXPRESSIONS = ("*/5 * * * *", "30 2 * * *", "0 */3 * * *", "15 9 * * 1-5", "*/30 1 * * *")
ZONES = ("UTC", "America/New_York", "Europe/Paris", "Asia/Tokyo", "Asia/Kathmandu")
WEEK = 7 * 86400.0


def _fake_clock_run(tasks: int) -> dict[str, float]:
    late: list[float] = []
    cpu = {"cron": 0.0, "interval": 0.0}
    counts = {"cron": 0, "interval": 0}

    async def main() -> None:
        wall = WallClock(1_780_000_000.0)  # a Monday in 2026, 08:26 UTC
        gates = GateSet.create(
            idle_cpu_percent=20,
            low_activity_cpu_percent=50,
            window=SleepWindow.parse("00:00-06:00", "UTC"),
            open_seconds=0,
            close_seconds=0,
        )

        async def runner(entry: TaskEntry, run: Running) -> Outcome:
            late.append((run.started_at - run.scheduled_at) * 1000)
            return Outcome.SUCCEEDED

        scheduler = Scheduler(
            clock=wall,
            gates=gates,
            runner=runner,
            node="bench",
            max_concurrent=64,
            max_concurrent_critical=64,
        )
        rng = random.Random(13)
        for i in range(2 * tasks):
            kind = "cron" if i % 2 == 0 else "interval"
            fields: dict[str, Any] = (
                {"cron": rng.choice(EXPRESSIONS), "timezone": rng.choice(ZONES)}
                if kind == "cron"
                else {"repeat_minutes": rng.choice((5, 60, 180, 1440))}
            )
            spec = TaskSpec(f"{kind}-{i}", "t", "", Priority.CRITICAL, "", **fields)
            first = calendar.first_due(spec, wall.now(), scheduler.timezone)  # as an add does
            scheduler.add(TaskEntry(spec, TaskCounters(), i, wall.now(), first))
        # What a start costs, by kind: time the scheduler's next-due computation as the
        # scheduler calls it at each start (the rest of a dispatch is the same for both).
        for kind in cpu:
            entries = [e for e in scheduler.tasks.values() if e.task_id.startswith(kind)]
            started = time.process_time()
            for entry in entries * 20:
                scheduler.next_due_after(entry.spec, wall.now())
            cpu[kind] = (time.process_time() - started) / (len(entries) * 20) * 1e6
            counts[kind] = len(entries)
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run)
            await trio.sleep(WEEK)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return {
        "p99": percentile(late, 99),
        "max": max(late),
        "runs": float(len(late)),
        "cron_us": cpu["cron"],
        "interval_us": cpu["interval"],
    }


async def _real_clock_run(tasks: int, minutes: int) -> dict[str, list[float]]:
    """Per run of the cron tasks: ``start`` (the scheduler's start - the cron time),
    ``entry`` (execute() entry - the cron time), ``first`` (entry of the first run of each
    minute). ``control``: the same as ``first`` for as many one-shot interval tasks, due
    30 s after each cron minute in the same daemon, in the same bursts: the side-by-side
    reference."""
    with temp_home() as home:
        settings = settings_for(home)
        first_minute = (time.time() // 60 + 2) * 60  # start-up fits in the minute before
        fill_tasks(
            settings.database_path,
            tasks * minutes,
            priority=Priority.CRITICAL,
            next_due=lambda i: first_minute + 30 + 60 * (i // tasks),
            prefix="ctrl",
        )
        async with open_daemon(settings, metrics_source=FakeSource(5.0)) as daemon:
            for i in range(tasks):
                body = {
                    "task_id": f"cron-{i}",
                    "name": "cron bench",
                    "description": "",
                    "priority": "CRITICAL",
                    "code": TRIVIAL_CODE,
                    "cron": "* * * * *",
                }
                await daemon.add_task(parse_task_spec(body, max_code_bytes=10_000))
            with trio.move_on_at(trio.current_time() + first_minute + 60 * minutes - time.time()):
                await trio.sleep_forever()
            await trio.sleep(5)  # the last bursts end
        rows = query(
            settings.database_path,
            "SELECT task_id, scheduled_at, started_at, result FROM executions"
            " WHERE outcome = 'succeeded'",
        )
    late: dict[str, list[float]] = {"start": [], "entry": [], "first": [], "control": []}
    bursts: dict[tuple[bool, float], list[float]] = {}
    for task_id, scheduled_at, started_at, result in rows:
        entered = result_time(result)
        if entered is None or not first_minute <= scheduled_at < first_minute + 60 * minutes:
            continue  # a burst before the first minute, or cut by the end
        cron = task_id.startswith("cron-")
        if cron:
            late["start"].append((started_at - scheduled_at) * 1000)
            late["entry"].append((entered - scheduled_at) * 1000)
        bursts.setdefault((cron, scheduled_at), []).append((entered - scheduled_at) * 1000)
    for (cron, _), entries in bursts.items():
        late["first" if cron else "control"].append(min(entries))
    return late


def run(mode: Mode) -> list[Figure]:
    fake = _fake_clock_run(1000)
    log(
        f"M fake clock: {fake['runs']:.0f} runs over a virtual week; lateness p99 "
        f"{fake['p99']:.3f} ms; next-due CPU cron {fake['cron_us']:.1f} us, "
        f"interval {fake['interval_us']:.2f} us"
    )
    tasks, minutes = (5, 2) if mode.name == "quick" else (5, 6)
    late = trio.run(_real_clock_run, tasks, minutes)
    log(
        "M first of each burst, ms: cron "
        + ", ".join(f"{v:.1f}" for v in sorted(late["first"]))
        + "; interval "
        + ", ".join(f"{v:.1f}" for v in sorted(late["control"]))
    )
    log(
        f"M real clock: {len(late['entry'])} runs; start lateness p99 "
        f"{percentile(late['start'], 99):.1f} ms; execute() entry p50 "
        f"{percentile(late['entry'], 50):.1f} ms"
    )
    note = f"{tasks} cron tasks '* * * * *' fire together at each of {minutes} minutes"
    return [
        Figure(
            "M1",
            "cron lateness p99, fake clock (virtual week)",
            "ms",
            [fake["p99"]],
            ("<", 20.0),
            note=f"{fake['runs']:.0f} runs of 1,000 cron tasks in 5 zones",
        ),
        Figure(
            "M2",
            "next due time CPU: cron / interval",
            "x",
            [fake["cron_us"] / max(fake["interval_us"], 1e-9)],
            note=f"cron {fake['cron_us']:.1f} us (cronsim), interval {fake['interval_us']:.2f} us",
        ),
        Figure(
            "M3",
            "cron lateness p99, real clock: cron time -> start",
            "ms",
            [percentile(late["start"], 99)],
            ("<", 20.0),
            note=note,
        ),
        Figure(
            "M4",
            "cron lateness p99, real clock: cron time -> execute(), first of a minute",
            "ms",
            [percentile(late["first"], 99)],
            ("<", 20.0),
        ),
        Figure(
            "M5",
            "cron lateness p99, real clock: cron time -> execute(), all",
            "ms",
            [percentile(late["entry"], 99)],
            note="the runs of one minute start together: forks queue behind each other",
        ),
        Figure(
            "M6",
            "the same as M4 for interval tasks in the same bursts (reference)",
            "ms",
            [percentile(late["control"], 99)],
            note="one-shots due 30 s after each cron minute, in the same daemon",
        ),
        Figure(
            "M7",
            "first-of-a-burst lateness ratio cron / interval (p50)",
            "x",
            [percentile(late["first"], 50) / max(percentile(late["control"], 50), 1e-9)],
        ),
    ]
