"""Review findings of issue 11: what a client, a failing sampler, or an operator's mistake
must not do to a daemon meant to run for a year."""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from omnimind_trio import FakeSource, open_daemon
from omnimind_trio.credentials import Credentials
from omnimind_trio.daemon import Daemon
from omnimind_trio.execution import Job, open_executor
from omnimind_trio.http import create_app
from omnimind_trio.models import DaemonState, Priority

from .conftest import make_settings
from .test_api import AUTH
from .test_daemon import code_task, history, wait_for
from .test_process import Served, spawn  # noqa: F401  (spawn: the fixture)

GRACE = 1.0
SEND_TIMEOUT = 5.0  # omnimind_trio.http._connection.SEND_TIMEOUT
BACKSTOP = 10.0  # omnimind_trio.cli._serve.STOP_BACKSTOP_SECONDS


def stuff_without_reading(served: Served) -> socket.socket:
    """An unauthenticated connection that pipelines ``GET /x`` until the daemon stops
    reading (its answers fill the socket buffers), and never reads an answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", served.port))
    sock.settimeout(1.0)
    request = b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 1000
    sent = 0
    deadline = time.monotonic() + 30
    try:
        while sent < 4_000_000 and time.monotonic() < deadline:
            sent += sock.send(request)
    except TimeoutError:
        pass  # the daemon no longer reads: its writes are blocked
    else:
        pytest.fail(f"the daemon still read after {sent} bytes of requests")
    return sock


def stop_seconds(served: Served, signals: int = 1, timeout: float = 30.0) -> float:
    t0 = time.monotonic()
    for _ in range(signals):
        served.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    served.proc.wait(timeout=timeout)
    return time.monotonic() - t0


@pytest.mark.slow
def test_a_client_that_reads_nothing_cannot_hold_a_stop(
    spawn: Callable[..., Served],  # noqa: F811 (the fixture)
) -> None:
    served = spawn(env={"OMNIMIND_STOP_GRACE_SECONDS": str(GRACE)})
    sock = stuff_without_reading(served)
    try:
        seconds = stop_seconds(served)
    finally:
        sock.close()
    print(f"\nSIGTERM with a client that reads nothing: exited in {seconds:.1f} s")
    assert served.proc.returncode == 0, served.stderr()[-3000:]
    assert seconds < GRACE + SEND_TIMEOUT + 3
    assert "without a clean stop" not in served.stderr()


@pytest.mark.slow
def test_hypercorns_own_class_hangs_until_the_backstop(
    spawn: Callable[..., Served],  # noqa: F811 (the fixture)
) -> None:
    # With the connection fix off, hypercorn's unbounded shielded write holds the stop:
    # the process ends by itself anyway, BACKSTOP seconds after the grace period.
    served = spawn(
        env={"OMNIMIND_STOP_GRACE_SECONDS": str(GRACE), "OMNIMIND_HTTP_CONNECTION_FIX": "false"}
    )
    sock = stuff_without_reading(served)
    try:
        seconds = stop_seconds(served)
    finally:
        sock.close()
    print(f"\nSIGTERM, hypercorn's class, a client that reads nothing: exited in {seconds:.1f} s")
    assert served.proc.returncode == 1
    assert GRACE + BACKSTOP - 1 < seconds < GRACE + BACKSTOP + 4
    assert "still running 10 s after the stop's grace period" in served.stderr()


@pytest.mark.slow
def test_a_third_signal_ends_a_stop_that_hangs(
    spawn: Callable[..., Served],  # noqa: F811 (the fixture)
) -> None:
    served = spawn(
        env={"OMNIMIND_STOP_GRACE_SECONDS": "30", "OMNIMIND_HTTP_CONNECTION_FIX": "false"}
    )
    sock = stuff_without_reading(served)
    try:
        seconds = stop_seconds(served, signals=3)
    finally:
        sock.close()
    assert served.proc.returncode == 1
    assert seconds < 4
    assert "SIGTERM received while stopping now" in served.stderr()


# -- 2. HTTP metrics: the method label is bounded ---------------------------------------------


async def test_made_up_methods_share_one_series(daemon: Daemon) -> None:
    app = create_app(daemon, Credentials("tester", "secret-pass", "environment"))
    client = app.test_client()
    for index in range(50):
        await client.open("/daemon/status", method=f"BREW{index}")
    await client.open("/daemon/status", method="GET")
    response = await client.get("/metrics", headers=AUTH)
    methods = {
        sample.labels["method"]
        for family in text_string_to_metric_families((await response.get_data()).decode())
        if family.name == "omnimind_http_requests"
        for sample in family.samples
        if sample.name == "omnimind_http_requests_total"
    }
    assert methods == {"GET", "other"}


# -- 3. Daemon metrics: a deleted task leaves no series ----------------------------------------


def series_of(daemon: Daemon, task_id: str) -> list[str]:
    return [
        line for line in daemon.prometheus().decode().splitlines() if f'task_id="{task_id}"' in line
    ]


async def test_a_deleted_task_leaves_no_series(daemon: Daemon, tmp_path: Path) -> None:
    await daemon.add_task(code_task("quick", "def execute():\n    return 1"))
    await daemon.add_task(code_task("broken", "def execute():\n    1 / 0"))
    marker = tmp_path / "started"
    sleeper = f"def execute():\n    open({str(marker)!r}, 'w').close()\n    import time\n"
    await daemon.add_task(code_task("sleeper", sleeper + "    time.sleep(300)"))
    await wait_for(
        lambda: daemon.get_task("quick").success_count and daemon.get_task("broken").failure_count
    )
    await wait_for(marker.exists)
    assert series_of(daemon, "quick") and series_of(daemon, "broken")
    for task_id in ("quick", "broken", "sleeper"):
        await daemon.delete_task(task_id)
    # The sleeper's run, cancelled by the delete, ends after it: it must not count.
    await wait_for(lambda: daemon._scheduler.running_count == 0)
    await trio.sleep(0.1)
    for task_id in ("quick", "broken", "sleeper"):
        assert series_of(daemon, task_id) == [], task_id


# -- 4. A load that cannot be sampled ----------------------------------------------------------


async def test_a_machine_that_cannot_be_measured_counts_as_busy(
    tmp_path: Path, daemon_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    source = FakeSource(cpu_percent=5.0)
    async with open_daemon(make_settings(tmp_path), metrics_source=source) as daemon:
        await trio.sleep(2)
        assert daemon._gates.is_open(Priority.HIGH) and daemon.state is DaemonState.IDLE
        source.error = OSError(24, "Too many open files")
        await trio.sleep(5)  # a short outage: the last good sample still holds
        assert daemon.state is DaemonState.IDLE
        assert daemon._gates.is_open(Priority.HIGH)
        await trio.sleep(60)
        assert daemon.state is DaemonState.ERROR
        assert daemon.error == (
            "cannot sample the machine's load: OSError(24, 'Too many open files')"
        )
        assert not daemon._gates.is_open(Priority.HIGH)
        assert not daemon._gates.is_open(Priority.MEDIUM)
        assert daemon._gates.is_open(Priority.CRITICAL)
        await daemon.add_task(code_task("heavy", "def execute():\n    return 1", Priority.HIGH))
        await trio.sleep(30)
        assert daemon.get_task("heavy").execution_count == 0
        failures = [r for r in caplog.records if "load sample failed" in r.getMessage()]
        assert len(failures) == 1  # once per outage, not once a second
        assert failures[0].exc_info is not None
        source.error = None
        await wait_for(lambda: daemon.get_task("heavy").success_count == 1, 30)
        assert daemon.state is not DaemonState.ERROR and daemon.error is None
        assert any("load sampling works again" in r.getMessage() for r in caplog.records)


# -- 5. A task worker that cannot be restarted -------------------------------------------------


async def test_a_worker_that_cannot_be_restarted_fails_runs_not_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_open_process = trio.lowlevel.open_process
    refusing = True

    async def open_process(*args: Any, **kwargs: Any) -> Any:
        if refusing:
            raise OSError(errno.EMFILE, "Too many open files")
        return await real_open_process(*args, **kwargs)

    job = Job(code="def execute():\n    return 7", filename="<task t>", cwd=str(tmp_path))
    async with open_executor(sys.executable) as executor:
        monkeypatch.setattr(trio.lowlevel, "open_process", open_process)
        first_worker = executor.worker_pid
        assert first_worker is not None
        os.kill(first_worker, signal.SIGKILL)
        await wait_for(lambda: executor._start_failure is not None)
        assert executor.worker_pid is None  # reaped: never signalled again
        with trio.fail_after(10):
            result = await executor.run(job)
        assert result.error == (
            "the execution could not be started in 3 attempts: the task worker cannot be"
            " restarted: [Errno 24] Too many open files"
        )
        refusing = False  # the next attempt of the backoff starts it
        await wait_for(lambda: executor._start_failure is None and executor._ready.is_set())
        with trio.fail_after(15):
            result = await executor.run(job)
        assert result.report is not None and result.error is None, result
        assert executor.worker_pid not in (None, first_worker)
        failures = [r for r in caplog.records if "cannot be restarted" in r.getMessage()]
        assert len(failures) == 1  # once per outage
        assert any("restarted again" in r.getMessage() for r in caplog.records)


# -- 6. History retention does not depend on the built-in task ---------------------------------


async def test_retention_goes_on_with_the_builtin_task_paused(
    tmp_path: Path, daemon_clock: trio.testing.MockClock
) -> None:
    settings = make_settings(tmp_path, history_max_per_task=2)
    async with open_daemon(settings, metrics_source=FakeSource(cpu_percent=5.0)) as daemon:
        await daemon.pause_task("database_optimization")
        runs = 0

        async def job() -> int:
            nonlocal runs
            runs += 1
            return runs

        await daemon.register("job", job, name="Job", priority=Priority.CRITICAL)
        await wait_for(lambda: daemon.get_task("job").success_count == 1)
        for count in range(2, 6):
            daemon.run_task_now("job")
            await wait_for(lambda c=count: daemon.get_task("job").success_count == c)  # type: ignore[misc]
        assert len(await history(daemon, "job")) == 5
        daemon_clock.jump(3600)  # not trio.sleep: 3600 samples, 20 ms of real time each
        with trio.fail_after(60):
            while len(await history(daemon, "job")) != 2:
                await trio.sleep(1)
        assert daemon.get_task("database_optimization").paused
