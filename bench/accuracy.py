"""E. Scheduling accuracy (issue 6.4): 1,000 one-shot CRITICAL code tasks due at known
times spread evenly over a few seconds; lateness = ``execute()`` entry - due time.

The tasks are written to the database before the start with their ``next_due`` set (an
added task is first due at once, so adds cannot place it in the future). ``open_daemon``
(default settings, fake load source: CRITICAL does not look at load anyway) loads them at
start and dispatches each when its due time comes, through the real scheduler, store and
fork server. Each run is a fresh Python process (``python -m bench.accuracy N SPREAD``),
so that the daemon's process holds nothing but the daemon and this driver. Each task
returns ``time.time()`` taken at the entry of ``execute()``; the due time is the record's
``scheduled_at``, checked against the planned one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import trio

from omnimind_trio import FakeSource, Priority, open_daemon

from .common import (
    Figure,
    Mode,
    fill_tasks,
    log,
    percentile,
    query,
    result_time,
    temp_home,
    with_repo_on_path,
)
from .executor import settings_for

LEAD_SECONDS = 1.5
"""The first task is due this long after the database is written (start-up fits in it)."""


async def one_run(count: int, spread: float) -> dict[str, float]:
    with temp_home() as home:
        settings = settings_for(home)
        first = time.time() + LEAD_SECONDS
        planned = {f"bench-{i:06d}": first + i * spread / count for i in range(count)}
        fill_tasks(
            settings.database_path,
            count,
            priority=Priority.CRITICAL,
            next_due=lambda i: first + i * spread / count,
        )
        async with open_daemon(settings, metrics_source=FakeSource(5.0)) as daemon:
            entries = [daemon._scheduler.tasks[task_id] for task_id in planned]
            if time.time() > first:
                log("E: the daemon started after the first due time; raise LEAD_SECONDS")
            with trio.move_on_after(LEAD_SECONDS + spread + 60):
                while any(e.counters.execution_count == 0 for e in entries):
                    await trio.sleep(0.05)
        rows = query(
            settings.database_path,
            "SELECT task_id, scheduled_at, result FROM executions"
            " WHERE outcome = 'succeeded' AND task_id LIKE 'bench-%'",
        )
    late = []
    for task_id, scheduled_at, result in rows:
        entered = result_time(result)
        if entered is None or abs(scheduled_at - planned[task_id]) > 1e-3:
            raise RuntimeError(f"{task_id}: scheduled_at {scheduled_at} != planned")
        late.append((entered - planned[task_id]) * 1000)
    return {
        "p50": percentile(late, 50),
        "p99": percentile(late, 99),
        "max": max(late) if late else float("nan"),
        "min": min(late) if late else float("nan"),
        "ran": float(len(late)),
    }


def fresh_run(count: int, spread: float) -> dict[str, float]:
    """:func:`one_run` in a fresh interpreter: the daemon's process holds the daemon and
    this small driver only, not what earlier sections left in the benchmark's heap."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.accuracy", str(count), str(spread)],
        env=with_repo_on_path(dict(os.environ)),
        capture_output=True,
        text=True,
        timeout=LEAD_SECONDS + spread + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"accuracy run failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def series(count: int, spread: float, repeats: int) -> list[dict[str, float]]:
    results = []
    for rep in range(repeats):
        result = fresh_run(count, spread)
        results.append(result)
        log(
            f"E run {rep + 1} ({count} over {spread:g} s): {result['ran']:.0f} ran; lateness"
            f" p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms,"
            f" min {result['min']:.1f} ms, max {result['max']:.1f} ms"
        )
    return results


def describe(count: int, spread: float, results: list[dict[str, float]]) -> str:
    rate = count / spread
    note = (
        f"{count} CRITICAL one-shots due every {1000 / rate:.1f} ms ({rate:.0f}/s)"
        f" over {spread:g} s, default concurrency"
    )
    missing = [count - r["ran"] for r in results]
    if any(missing):
        note += f"; did not run in time: {missing}"
    return note


def run(mode: Mode) -> list[Figure]:
    count, spread = mode.accuracy_tasks, mode.accuracy_spread
    results = series(count, spread, mode.repeats)
    figures = [
        Figure("E1", "lateness due -> execute() p50", "ms", [r["p50"] for r in results]),
        Figure(
            "E2",
            "lateness due -> execute() p99",
            "ms",
            [r["p99"] for r in results],
            ("<", 20.0),
            note=describe(count, spread, results),
        ),
        Figure("E3", "lateness max", "ms", [r["max"] for r in results]),
    ]
    if mode.accuracy_slow_spread:
        slow = series(count, mode.accuracy_slow_spread, mode.repeats)
        figures += [
            Figure(
                "E4",
                f"lateness p50 at half the rate ({mode.accuracy_slow_spread:g} s spread)",
                "ms",
                [r["p50"] for r in slow],
            ),
            Figure(
                "E5",
                "lateness p99 at half the rate",
                "ms",
                [r["p99"] for r in slow],
                note=describe(count, mode.accuracy_slow_spread, slow),
            ),
        ]
    return figures


if __name__ == "__main__":
    print(json.dumps(trio.run(one_run, int(sys.argv[1]), float(sys.argv[2]))))
