"""F. Peers (issue 6.5): the same trivial task (returns ``time.time()`` at entry) run by
omnimind, by APScheduler 3 and by RQ, side by side in the same run.

- Trigger-to-start latency, one job at a time: ``time.time()`` just before the call that
  asks for a run now (``daemon.add_task`` of a CRITICAL one-shot; APScheduler's
  ``add_job`` without a trigger; RQ's ``enqueue``) to the task's entry.
- Executions per second: N jobs asked for at once, until the last one finished
  (omnimind: the same measure as A6, on N tasks; APScheduler: its EVENT_JOB_EXECUTED
  times; RQ: the jobs' ``ended_at``).

What each one does per run differs, and the table should be read with it:
- omnimind: a fresh forked process per run, the run recorded in SQLite (start and end),
  default concurrency (8 CRITICAL at once), in-process (``open_daemon``, fake load source).
- APScheduler 3: ``BackgroundScheduler``, default thread pool (10 threads), in memory, in
  this process: no isolation and no history.
- RQ: ``redis-server`` (Debian package) on a free loopback port, started and stopped here,
  with persistence off; two ``rq worker`` processes (one per core), each forking a work
  horse per job; results kept in Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from omnimind_trio import FakeSource, Priority, TaskSpec, open_daemon

from . import _jobs
from .common import (
    HOST,
    TRIVIAL_CODE,
    Figure,
    Mode,
    free_port,
    log,
    percentile,
    query,
    ratio,
    result_time,
    skipped,
    temp_home,
    with_repo_on_path,
)
from .executor import daemon_throughput, settings_for

RQ_WORKERS = 2

# -- omnimind ----------------------------------------------------------------------


async def ours_latency(n: int) -> list[float]:
    with temp_home() as home:
        settings = settings_for(home)
        triggers: dict[str, float] = {}
        async with open_daemon(settings, metrics_source=FakeSource(5.0)) as daemon:
            for i in range(n):
                task_id = f"l{i:04d}"
                spec = TaskSpec(
                    task_id=task_id,
                    name=task_id,
                    description="",
                    priority=Priority.CRITICAL,
                    code=TRIVIAL_CODE,
                )
                triggers[task_id] = time.time()
                await daemon.add_task(spec)
                entry = daemon._scheduler.tasks[task_id]  # polled: cheaper than get_task
                with trio.move_on_after(10):
                    while entry.counters.execution_count == 0:
                        await trio.sleep(0.001)
        rows = query(
            settings.database_path,
            "SELECT task_id, result FROM executions WHERE task_id LIKE 'l%'",
        )
    return [((result_time(r) or 0.0) - triggers[t]) * 1000 for t, r in rows]


# -- APScheduler 3 -----------------------------------------------------------------


def apscheduler_run(n_latency: int, n_throughput: int) -> dict[str, Any]:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone="UTC")
    finished: dict[str, float] = {}
    values: dict[str, float] = {}
    condition = threading.Condition()

    def listener(event: Any) -> None:
        with condition:
            finished[event.job_id] = time.time()
            if event.retval is not None:
                values[event.job_id] = event.retval
            condition.notify_all()

    def wait_for(keys: list[str], timeout: float) -> None:
        with condition:
            condition.wait_for(lambda: all(k in finished for k in keys), timeout)

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    try:
        latencies = []
        for i in range(n_latency):
            key = f"l{i}"
            trigger = time.time()
            scheduler.add_job(_jobs.trivial, id=key, misfire_grace_time=None)
            wait_for([key], 10)
            latencies.append((values[key] - trigger) * 1000)
        keys = [f"t{i}" for i in range(n_throughput)]
        started = time.time()
        for key in keys:
            scheduler.add_job(_jobs.trivial, id=key, misfire_grace_time=None)
        wait_for(keys, 60)
        done = [finished[k] for k in keys if k in finished]
        rate = len(done) / (max(done) - started) if done else float("nan")
    finally:
        scheduler.shutdown(wait=True)
    return {"latencies": latencies, "rate": rate}


# -- RQ ----------------------------------------------------------------------------


@contextlib.contextmanager
def redis_and_workers(port: int, queue: str, workers: int) -> Any:
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        redis = Redis(host=HOST, port=port)
        deadline = time.perf_counter() + 10
        while True:
            try:
                redis.ping()
                break
            except RedisConnectionError:
                if time.perf_counter() > deadline:
                    raise
                time.sleep(0.02)
        rq = Path(sys.executable).with_name("rq")
        command = [str(rq)] if rq.exists() else [sys.executable, "-m", "rq.cli"]
        for index in range(workers):
            processes.append(
                subprocess.Popen(
                    [
                        *command,
                        "worker",
                        "--url",
                        f"redis://{HOST}:{port}",
                        "--quiet",
                        "--name",
                        f"bench-{index}",
                        queue,
                    ],
                    env=with_repo_on_path(dict(os.environ)),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        from rq import Worker

        deadline = time.perf_counter() + 30
        while len(Worker.all(connection=redis)) < workers:
            if time.perf_counter() > deadline:
                raise RuntimeError("rq workers did not register")
            time.sleep(0.05)
        yield redis
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def rq_run(n_latency: int, n_throughput: int) -> dict[str, Any]:
    from rq import Queue
    from rq.job import Job, JobStatus

    queue_name = "bench"
    with redis_and_workers(free_port(), queue_name, RQ_WORKERS) as redis:
        queue = Queue(queue_name, connection=redis)
        latencies = []
        for _ in range(n_latency):
            trigger = time.time()
            job = queue.enqueue(_jobs.trivial)
            deadline = time.perf_counter() + 10
            while job.get_status(refresh=True) != JobStatus.FINISHED:
                if time.perf_counter() > deadline:
                    raise RuntimeError("rq job did not finish")
                time.sleep(0.001)
            latencies.append((float(job.return_value()) - trigger) * 1000)
        started = time.time()
        jobs = [queue.enqueue(_jobs.trivial) for _ in range(n_throughput)]
        ids = [job.id for job in jobs]
        deadline = time.perf_counter() + 120
        ended: list[float] = []
        while time.perf_counter() < deadline:
            fetched = Job.fetch_many(ids, connection=redis)
            ended = [_epoch(j.ended_at) for j in fetched if j is not None and j.ended_at]
            if len(ended) == len(ids):
                break
            time.sleep(0.05)
        rate = len(ended) / (max(ended) - started) if ended else float("nan")
    return {"latencies": latencies, "rate": rate}


# -- the section -------------------------------------------------------------------


def run(mode: Mode) -> list[Figure]:
    have_redis = shutil.which("redis-server") is not None
    ours_rate, ours_p50, ours_p99 = [], [], []
    aps_rate, aps_p50, aps_p99 = [], [], []
    rq_rate, rq_p50, rq_p99 = [], [], []
    for rep in range(mode.repeats):
        lat = trio.run(ours_latency, mode.peers_latency_n)
        ours_p50.append(percentile(lat, 50))
        ours_p99.append(percentile(lat, 99))
        ours_rate.append(
            trio.run(lambda: daemon_throughput(mode.peers_throughput_n, cold=False))["rate"]
        )
        aps = apscheduler_run(mode.peers_latency_n, mode.peers_throughput_n)
        aps_rate.append(aps["rate"])
        aps_p50.append(percentile(aps["latencies"], 50))
        aps_p99.append(percentile(aps["latencies"], 99))
        line = (
            f"F run {rep + 1}: ours {ours_rate[-1]:.0f}/s p50 {ours_p50[-1]:.2f} ms;"
            f" APScheduler {aps_rate[-1]:.0f}/s p50 {aps_p50[-1]:.2f} ms"
        )
        if have_redis:
            rq = rq_run(mode.peers_latency_n, mode.peers_throughput_n)
            rq_rate.append(rq["rate"])
            rq_p50.append(percentile(rq["latencies"], 50))
            rq_p99.append(percentile(rq["latencies"], 99))
            line += f"; RQ {rq_rate[-1]:.0f}/s p50 {rq_p50[-1]:.2f} ms"
        log(line)

    def pair(a: list[float], b: list[float]) -> list[float]:
        return [ratio(x, y) for x, y in zip(a, b, strict=True)]

    n = mode.peers_throughput_n
    figures = [
        Figure(
            "F1",
            "omnimind: executions/s (fork + SQLite history)",
            "/s",
            ours_rate,
            note=f"{n} jobs at once; latency over {mode.peers_latency_n} sequential jobs",
        ),
        Figure("F2", "APScheduler 3: executions/s (threads, no isolation)", "/s", aps_rate),
        Figure("F3", "omnimind / APScheduler executions/s", "x", pair(ours_rate, aps_rate)),
    ]
    if have_redis:
        figures += [
            Figure("F4", f"RQ: executions/s ({RQ_WORKERS} forking workers)", "/s", rq_rate),
            Figure("F5", "omnimind / RQ executions/s", "x", pair(ours_rate, rq_rate)),
        ]
    else:
        reason = "redis-server not installed (apt-get install redis-server)"
        figures += [
            skipped("F4", "RQ: executions/s", "/s", reason),
            skipped("F5", "omnimind / RQ executions/s", "x", reason),
        ]
    figures += [
        Figure("F6", "omnimind: trigger -> start p50 (add_task)", "ms", ours_p50),
        Figure("F7", "omnimind: trigger -> start p99", "ms", ours_p99),
        Figure("F8", "APScheduler 3: trigger -> start p50 (add_job)", "ms", aps_p50),
        Figure("F9", "APScheduler 3: trigger -> start p99", "ms", aps_p99),
        Figure("F10", "latency p50 omnimind / APScheduler", "x", pair(ours_p50, aps_p50)),
    ]
    if have_redis:
        figures += [
            Figure("F11", "RQ: trigger -> start p50 (enqueue)", "ms", rq_p50),
            Figure("F12", "RQ: trigger -> start p99", "ms", rq_p99),
            Figure("F13", "latency p50 omnimind / RQ", "x", pair(ours_p50, rq_p50)),
        ]
    return figures
