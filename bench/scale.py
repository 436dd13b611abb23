"""C. Scale (issue 6.2): 1k, 10k and 100k registered tasks.

- Start-up, RSS, page: the tasks are written to the database before the start (one
  transaction; the daemon loads them at start like any stored task): repeating every
  24 h, priorities mixed, first due spread over the next day, so none runs. Start-up is
  from spawning ``omnimind serve`` to its first ``200`` on ``GET /daemon/status`` (and the
  status must count every task). RSS is the daemon process's (the fork server, about
  20 MB, does not grow with tasks). The page is ``GET /daemon/tasks?limit=100``,
  sequential requests from this process, bounded in count and time; the last page
  (``offset=n-100``) is reported beside it.
- Scheduler cost per dispatch: the ``Scheduler`` class alone, a fake runner, the real
  clock: n idle tasks (due in a day) plus 1,000 due ones; time from starting the
  scheduler until the runner has been entered 1,000 times, divided by 1,000. The heap
  makes this O(log n); the 100k / 1k ratio is checked against that.
"""

from __future__ import annotations

import gc
import math
import shutil
import time
from pathlib import Path

import trio

from omnimind_trio.models import Priority, TaskCounters, TaskSpec
from omnimind_trio.scheduling import (
    GateSet,
    Running,
    Scheduler,
    SleepWindow,
    SystemClock,
    TaskEntry,
)

from .common import (
    Figure,
    Mode,
    base_env,
    fill_tasks,
    free_port,
    log,
    omnimind_command,
    percentile,
    ratio,
    rss_mb,
    running_server,
    temp_home,
    window_excluding_now,
)


def build_database(directory: Path, n: int) -> Path:
    path = directory / f"tasks-{n}.db"
    start = time.time() + 3600
    fill_tasks(
        path,
        n,
        priority=lambda i: list(Priority)[i % 4],
        next_due=lambda i: start + (i * 86400.0 / n),
        repeat_hours=24,
    )
    return path


def measure_server(db: Path, n: int, mode: Mode) -> dict[str, float]:
    with temp_home() as home:
        shutil.copy(db, home / "omnimind.db")
        port = free_port()
        env = base_env(home, port, OMNIMIND_SLEEP_WINDOW=window_excluding_now())
        with running_server(
            omnimind_command("--log-level", "WARNING"), env, port, ready_timeout=120
        ) as server:
            startup = server.ready_seconds
            rss = rss_mb(server.tree()[:1])
            first: list[float] = []
            last: list[float] = []
            returned = 0
            with server.client() as http:
                status = http.get("/daemon/status").json()
                if status["tasks_registered"] != n + 1:
                    raise RuntimeError(
                        f"daemon loaded {status['tasks_registered']} tasks, expected {n + 1}"
                    )
                budget = time.perf_counter() + mode.scale_page_seconds
                for _ in range(mode.scale_page_requests[n]):
                    t0 = time.perf_counter()
                    response = http.get("/daemon/tasks", params={"limit": 100})
                    first.append((time.perf_counter() - t0) * 1000)
                    response.raise_for_status()
                    returned = len(response.json()["tasks"])
                    t0 = time.perf_counter()
                    response = http.get("/daemon/tasks", params={"limit": 100, "offset": n - 100})
                    last.append((time.perf_counter() - t0) * 1000)
                    if time.perf_counter() > budget:
                        break
            rss = max(rss, rss_mb(server.tree()[:1]))
    return {
        "startup": startup,
        "rss": rss,
        "page_p99": percentile(first, 99),
        "last_p99": percentile(last, 99),
        "returned": float(returned),
        "requests": float(len(first)),
    }


async def dispatch_cost(n_idle: int, n_due: int, specs: list[TaskSpec]) -> float:
    """Microseconds per dispatch of ``n_due`` due tasks among ``n_idle`` idle ones."""
    clock = SystemClock()
    gates = GateSet.create(
        idle_cpu_percent=20,
        low_activity_cpu_percent=50,
        window=SleepWindow.parse("00:00-06:00"),
        open_seconds=0,
        close_seconds=0,
    )
    entered = 0
    done = trio.Event()

    async def runner(entry: TaskEntry, running: Running) -> None:
        nonlocal entered
        entered += 1
        if entered == n_due:
            done.set()

    scheduler = Scheduler(
        clock=clock,
        gates=gates,
        runner=runner,
        node="bench",
        max_concurrent=n_due + 1,
        max_concurrent_critical=n_due + 1,
    )
    now = clock.now()
    # Due tasks are interleaved among idle ones (every k-th by insertion order).
    step = max(1, (n_idle + n_due) // n_due)
    due_left = n_due
    for seq, spec in enumerate(specs[: n_idle + n_due], start=1):
        due = due_left > 0 and seq % step == 0
        if due:
            due_left -= 1
        scheduler.add(
            TaskEntry(
                spec=spec,
                counters=TaskCounters(),
                seq=seq,
                created_at=now,
                next_due=now - 1.0 if due else now + 86400.0 + seq,
            )
        )
    gc.collect()
    async with trio.open_nursery() as nursery:
        t0 = time.perf_counter()
        await nursery.start(scheduler.run)
        with trio.fail_after(60):
            await done.wait()
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    if scheduler.dispatches != n_due:
        raise RuntimeError(f"scheduler dispatched {scheduler.dispatches}, expected {n_due}")
    return elapsed / n_due * 1e6


def run(mode: Mode) -> list[Figure]:
    figures: list[Figure] = []
    with temp_home("omnimind-bench-scale-") as scratch:
        for n in mode.scale_sizes:
            db = build_database(scratch, n)
            results = []
            for _ in range(mode.repeats):
                result = measure_server(db, n, mode)
                results.append(result)
                log(
                    f"C n={n}: start-up {result['startup']:.2f} s, RSS {result['rss']:.1f} MB,"
                    f" page p99 {result['page_p99']:.1f} ms (returned {result['returned']:.0f}),"
                    f" last page p99 {result['last_p99']:.1f} ms,"
                    f" {result['requests']:.0f} requests"
                )
            label = f"{n // 1000}k"
            returned = {int(r["returned"]) for r in results}
            honoured = "limit honoured" if returned == {100} else f"returned {sorted(returned)}"
            figures += [
                Figure(
                    f"C{label}-start",
                    f"{label} tasks: start-up to serving",
                    "s",
                    [r["startup"] for r in results],
                    ("<", 3.0),
                ),
                Figure(
                    f"C{label}-rss",
                    f"{label} tasks: daemon RSS after start",
                    "MB",
                    [r["rss"] for r in results],
                    ("<", 300.0),
                ),
                Figure(
                    f"C{label}-page",
                    f"{label} tasks: GET /daemon/tasks?limit=100 p99",
                    "ms",
                    [r["page_p99"] for r in results],
                    ("<", 50.0),
                    note=f"{honoured}; {int(results[0]['requests'])} requests per run",
                ),
                Figure(
                    f"C{label}-last",
                    f"{label} tasks: last page (offset n-100) p99",
                    "ms",
                    [r["last_p99"] for r in results],
                ),
            ]
    specs = [
        TaskSpec(
            task_id=f"s{i:07d}",
            name=f"s{i}",
            description="",
            priority=Priority.CRITICAL,
            code="def execute():\n    pass\n",
        )
        for i in range(max(mode.scale_sizes) + mode.sched_due)
    ]
    costs: dict[int, list[float]] = {}
    for _ in range(mode.repeats):
        for n in mode.scale_sizes:
            costs.setdefault(n, []).append(trio.run(dispatch_cost, n, mode.sched_due, specs))
    for n in mode.scale_sizes:
        log(f"C scheduler n={n}: " + ", ".join(f"{c:.1f}" for c in costs[n]) + " us/dispatch")
        figures.append(
            Figure(
                f"C{n // 1000}k-sched",
                f"scheduler: cost per dispatch, {mode.sched_due} due among {n // 1000}k idle",
                "us",
                costs[n],
                note="Scheduler class, fake runner" if n == mode.scale_sizes[0] else "",
            )
        )
    small, big = min(mode.scale_sizes), max(mode.scale_sizes)
    growth = [ratio(b, s) for b, s in zip(costs[big], costs[small], strict=True)]
    log_bound = math.log(big) / math.log(small)
    figures.append(
        Figure(
            "C-sched-growth",
            f"scheduler: cost per dispatch {big // 1000}k / {small // 1000}k",
            "x",
            growth,
            ("<", round(1.5 * log_bound, 2)),
            note=f"log n growth predicts {log_bound:.2f}x, linear {big // small}x;"
            " target 1.5x the log prediction",
        )
    )
    return figures
