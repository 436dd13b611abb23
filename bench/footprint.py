"""B. Idle footprint (issue 6.1): ``omnimind serve`` with 1,000 registered tasks, none of
which may run.

The tasks are LOW priority, due now, and the sleep window (``OMNIMIND_SLEEP_WINDOW``, UTC)
is set to an hour that excludes now, so they all wait for their gate: the daemon holds them
in its ready queue and has nothing to do. They are written to the database before the
start (the daemon loads them as stored tasks). After the start the built-in
``database_optimization`` (MEDIUM, due at start, waiting for calm) is paused through
the API, so that nothing at all can become runnable during the windows.

- CPU: ``psutil`` ``cpu_times`` (user + system, with reaped children) of the daemon process
  and its descendants (the fork server), over a window, as a percent of one core.
- Memory: the RSS of the daemon process (``omnimind serve``); the proportional set size
  (PSS) of the daemon plus its fork server, which is what the whole service costs the
  machine (pages the two interpreters share are split between them); and, for reference,
  the sum of their RSS (which counts those shared pages twice).

Quick mode: one server, three consecutive windows of a few seconds (psutil reads CPU in
10 ms ticks, so a 5 s window resolves 0.2 %). Full mode: a fresh server per run and 60 s
windows.
"""

from __future__ import annotations

import contextlib
import time

import psutil

from omnimind_trio import Priority

from .common import (
    Figure,
    Mode,
    Server,
    base_env,
    cpu_clock_seconds,
    fill_tasks,
    free_port,
    log,
    omnimind_command,
    rss_mb,
    running_server,
    temp_home,
    tree_cpu_seconds,
    window_excluding_now,
)

SETTLE_SECONDS = 2.0


def settle(server: Server, expected: int) -> str:
    """Check the daemon loaded every task; pause the built-in ``database_optimization``
    (MEDIUM, due at start: it would run once whenever the machine is calm enough)."""
    note = ""
    with server.client() as http:
        status = http.get("/daemon/status").json()
        if status["tasks_registered"] != expected:
            raise RuntimeError(
                f"daemon loaded {status['tasks_registered']} tasks, expected {expected}"
            )
        response = http.post("/daemon/tasks/database_optimization/pause")
        if response.status_code != 200:
            note = f"could not pause database_optimization ({response.status_code})"
    time.sleep(SETTLE_SECONDS)  # start-up garbage, thread hand-offs, first samples
    return note


def window(server: Server, seconds: float) -> dict[str, float]:
    """CPU percent of one core over ``seconds`` (psutil ticks and the kernel's ns clock);
    RSS of daemon + fork server, of the daemon alone, and PSS of both (MB)."""
    processes = server.tree()
    ticks0, clock0 = tree_cpu_seconds(processes), cpu_clock_seconds(processes)
    wall0 = time.perf_counter()
    time.sleep(seconds)
    after = server.tree()
    ticks1, clock1 = tree_cpu_seconds(after), cpu_clock_seconds(after)
    wall = time.perf_counter() - wall0
    if {p.pid for p in after} != {p.pid for p in processes}:
        log("B: the process tree changed during the window (a task ran?)")
    pss = 0.0
    for process in after:
        with contextlib.suppress(psutil.Error):
            pss += process.memory_full_info().pss / 2**20
    return {
        "cpu": 100.0 * (ticks1 - ticks0) / wall,
        "cpu_ns": 100.0 * (clock1 - clock0) / wall,
        "rss": rss_mb(after),
        "rss_daemon": rss_mb(after[:1]),
        "pss": pss,
    }


def run(mode: Mode) -> list[Figure]:
    samples: list[dict[str, float]] = []
    notes: list[str] = []
    servers = mode.repeats if mode.footprint_separate_servers else 1
    windows_per_server = 1 if mode.footprint_separate_servers else mode.repeats
    for _ in range(servers):
        with temp_home() as home:
            fill_tasks(
                home / "omnimind.db",
                mode.footprint_tasks,
                priority=Priority.LOW,
                next_due=lambda _i: time.time(),
                repeat_hours=24,
            )
            port = free_port()
            env = base_env(home, port, OMNIMIND_SLEEP_WINDOW=window_excluding_now())
            with running_server(omnimind_command("--log-level", "WARNING"), env, port) as server:
                note = settle(server, mode.footprint_tasks + 1)
                if note:
                    notes.append(note)
                for _ in range(windows_per_server):
                    sample = window(server, mode.footprint_window)
                    samples.append(sample)
                    log(
                        "B window: CPU {cpu:.3f} % of a core ({cpu_ns:.3f} % by the ns clock),"
                        " RSS {rss:.1f} MB (daemon {rss_daemon:.1f} MB), PSS {pss:.1f} MB".format(
                            **sample
                        )
                    )
    how = (
        f"{servers} servers x {mode.footprint_window:g} s"
        if mode.footprint_separate_servers
        else f"one server, {windows_per_server} windows x {mode.footprint_window:g} s"
        " (quick mode; full mode: 60 s windows)"
    )
    extra = "; ".join(sorted(set(notes)))

    def series(key: str) -> list[float]:
        return [sample[key] for sample in samples]

    return [
        Figure(
            "B1",
            f"idle CPU, {mode.footprint_tasks} tasks, none due (daemon + fork server)",
            "%",
            series("cpu"),
            ("<", 0.5),
            note=how + (f"; {extra}" if extra else ""),
        ),
        Figure(
            "B1b",
            "idle CPU, same windows, kernel CPU clock (ns resolution)",
            "%",
            series("cpu_ns"),
            note="psutil cpu_times count 10 ms ticks; this is the same CPU time, in ns",
        ),
        Figure(
            "B2",
            "idle RSS, daemon process (omnimind serve)",
            "MB",
            series("rss_daemon"),
            ("<", 55.0),
        ),
        Figure(
            "B3",
            "idle PSS, daemon + fork server (the whole service)",
            "MB",
            series("pss"),
            ("<", 80.0),
            note="PSS shares the pages both interpreters map between them",
        ),
        Figure(
            "B4",
            "idle RSS summed, daemon + fork server",
            "MB",
            series("rss"),
            note="counts the shared pages (python binary, libraries) twice",
        ),
    ]
