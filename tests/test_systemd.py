"""systemd: the notify protocol of ``omnimind serve`` (READY, STATUS, STOPPING, the watchdog)
and the units shipped in ``contrib/systemd/``.

The watchdog's rules run on a fake clock with the real scheduler; the protocol runs against
real datagram sockets (a path and an abstract name), the real daemon process included.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from omnimind_trio import FakeSource, open_daemon
from omnimind_trio.cli._systemd import Notifier, Systemd, Watchdog, status_line
from omnimind_trio.scheduling import GateSet, Scheduler, SleepWindow, TrioWallClock

from .conftest import SLEEP_WINDOW, make_settings
from .test_process import Served, spawn, task_body, wait_for

__all__ = ["spawn"]  # the fixture, shared with test_process

NOON = 1_767_268_800.0  # 2026-01-01 12:00 UTC


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[float, tuple[str, ...]]] = []

    def send(self, *fields: str) -> bool:
        self.sent.append((trio.current_time(), fields))
        return True

    def close(self) -> None:
        pass

    def pings(self) -> list[float]:
        return [when for when, fields in self.sent if fields == ("WATCHDOG=1",)]


def idle_scheduler() -> Scheduler:
    """A real scheduler with no task: it sleeps 60 s at a time unless woken."""

    async def never_runs(*args: Any) -> Any:
        raise AssertionError("no task to run")

    gates = GateSet.create(
        idle_cpu_percent=20,
        low_activity_cpu_percent=50,
        window=SleepWindow.parse("00:00-06:00", "UTC"),
        open_seconds=0,
        close_seconds=0,
    )
    return Scheduler(
        clock=TrioWallClock(NOON),
        gates=gates,
        runner=never_runs,
        node="laptop",
        max_concurrent=1,
        max_concurrent_critical=1,
    )


# -- the watchdog's rules, on a fake clock -----------------------------------------------------


async def test_no_ping_while_the_scheduler_is_wedged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Pings every interval while the scheduler's loop answers the watchdog's wake-ups
    (though with nothing due it would sleep 60 s); none once its loop is stuck, although
    the event loop still runs the watchdog; pings again when it answers again."""
    scheduler = idle_scheduler()
    notifier = FakeNotifier()

    def scheduler_pass() -> int:  # as Daemon.scheduler_pass does while running
        scheduler.wake()
        return scheduler.passes

    watchdog = Watchdog(notifier, 15.0, scheduler_pass)  # type: ignore[arg-type]
    scheduler_scope = trio.CancelScope()

    async def run_scheduler() -> None:
        with scheduler_scope:
            await scheduler.run()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_scheduler)
        nursery.start_soon(watchdog.run)
        await trio.sleep(150.5)
        assert notifier.pings() == [15.0 * i for i in range(11)]

        # Wedged: the scheduler's loop no longer answers (here: its task is gone while
        # the daemon still counts it as running). The tick at 165 still pings (the pass
        # that answered the tick at 150 was made); from 180 on, none.
        scheduler_scope.cancel()
        await trio.sleep(150.0)
        assert notifier.pings()[-1] == 165.0
        withheld = [r for r in caplog.records if "no watchdog ping" in r.getMessage()]
        assert len(withheld) == 1  # said once, not at every tick
        assert withheld[0].levelno == logging.ERROR
        assert "the scheduler has made no pass for 15.0 s" in withheld[0].getMessage()

        # Unwedged: it answers again, so the pings resume.
        scheduler_scope = trio.CancelScope()
        nursery.start_soon(run_scheduler)
        await trio.sleep(30.0)
        assert notifier.pings()[-3:] == [165.0, 315.0, 330.0]
        nursery.cancel_scope.cancel()
    assert "pings resume" in caplog.text


async def test_a_tick_the_event_loop_ran_late_sends_no_ping(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = FakeNotifier()
    watchdog = Watchdog(notifier, 10.0, lambda: None)  # type: ignore[arg-type]
    assert watchdog.tick(late=0.0, now=0.0)
    assert watchdog.tick(late=9.9, now=19.9)
    assert not watchdog.tick(late=10.5, now=30.5)
    assert "the event loop was stalled for 10.5 s: no watchdog ping" in caplog.text
    assert watchdog.tick(late=0.0, now=40.5)
    assert len(notifier.pings()) == 3

    # Through run(): a stall moves the grid, it does not make up the missed ticks.
    notifier = FakeNotifier()
    watchdog = Watchdog(notifier, 10.0, lambda: None)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watchdog.run)
        await trio.sleep(25.0)  # pings at 0, 10, 20
        autojump_clock.jump(30.0)  # the loop "was blocked" from 25 to 55: the 30-s tick is late
        await trio.sleep(31.0)
        nursery.cancel_scope.cancel()
    assert notifier.pings() == [0.0, 10.0, 20.0, 65.0, 75.0, 85.0]


async def test_the_daemon_answers_the_watchdog_and_a_stopped_one_needs_only_the_loop(
    tmp_path: Path, daemon_clock: trio.testing.MockClock
) -> None:
    settings = make_settings(tmp_path, sample_seconds=60.0)  # few wake-ups: a quick test
    notifier = FakeNotifier()
    async with open_daemon(settings, metrics_source=FakeSource(cpu_percent=5.0)) as daemon:
        first = daemon.scheduler_pass()
        assert first is not None
        await trio.sleep(1.0)
        second = daemon.scheduler_pass()
        assert second is not None and second > first  # woken, it made a pass

        watchdog = Watchdog(notifier, 15.0, daemon.scheduler_pass)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watchdog.run)
            await trio.sleep(151.0)
            running_pings = len(notifier.pings())
            daemon.stop()
            await daemon.wait_stopped()
            assert daemon.scheduler_pass() is None
            await trio.sleep(150.0)
            nursery.cancel_scope.cancel()
    assert running_pings == 11
    assert len(notifier.pings()) == 21


# -- STATUS ---------------------------------------------------------------------------------


class FakeDaemon:
    def __init__(self) -> None:
        self.state, self.tasks, self.executions_running, self.error = "idle", 0, 0, None
        self._changed = trio.Event()

    def status(self) -> Any:
        return SimpleNamespace(
            state=SimpleNamespace(value=self.state), tasks_registered=self.tasks, tasks_pending=1
        )

    def change(self, **values: Any) -> None:
        vars(self).update(values)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()


async def test_status_is_sent_when_it_reads_differently_once_per_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    daemon = FakeDaemon()
    notifier = FakeNotifier()
    systemd = Systemd(notifier, None)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(systemd.run, daemon)
        await trio.sleep(1.0)
        systemd.ready(daemon)  # type: ignore[arg-type]
        await trio.sleep(1.0)
        for n in range(1, 13):  # a burst of changes: one STATUS
            daemon.change(tasks=n)
        daemon.change(state="working", executions_running=1)
        await trio.sleep(1.0)
        daemon.change()  # a change that reads the same: nothing sent
        await trio.sleep(1.0)
        daemon.change(state="error", executions_running=0, error="the database refuses writes")
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert [fields for _, fields in notifier.sent] == [
        ("READY=1", "STATUS=idle, 0 tasks, 0 running, 1 pending"),
        ("STATUS=working, 12 tasks, 1 running, 1 pending",),
        ("STATUS=error, 12 tasks, 0 running, 1 pending: the database refuses writes",),
    ]
    assert status_line(daemon) == (  # type: ignore[arg-type]
        "error, 12 tasks, 0 running, 1 pending: the database refuses writes"
    )


# -- the environment and the socket -------------------------------------------------------------


def test_the_environment_decides_and_is_removed(tmp_path: Path) -> None:
    assert Systemd.from_environment({}) is None  # no NOTIFY_SOCKET: nothing at all

    def link(**env: str) -> Systemd | None:
        environ = {"PATH": "/bin", **env}
        found = Systemd.from_environment(environ)
        assert environ == {"PATH": "/bin"}  # tasks inherit no NOTIFY_SOCKET, WATCHDOG_*
        if found is not None:
            found.notifier.close()
        return found

    sock = str(tmp_path / "notify")
    assert link(NOTIFY_SOCKET="vsock:2:1234") is None  # not a Unix socket: ignored
    plain = link(NOTIFY_SOCKET=sock)
    assert plain is not None and plain.watchdog_interval is None
    ours = link(NOTIFY_SOCKET=sock, WATCHDOG_USEC="30000000", WATCHDOG_PID=str(os.getpid()))
    assert ours is not None and ours.watchdog_interval == 15.0
    unset = link(NOTIFY_SOCKET="@abstract", WATCHDOG_USEC="500000")
    assert unset is not None and unset.watchdog_interval == 0.25
    # The watchdog was meant for another process (our parent, say): no pings from us.
    other = link(NOTIFY_SOCKET=sock, WATCHDOG_USEC="30000000", WATCHDOG_PID=str(os.getppid()))
    assert other is not None and other.watchdog_interval is None
    bad = link(NOTIFY_SOCKET=sock, WATCHDOG_USEC="thirty")
    assert bad is not None and bad.watchdog_interval is None


@pytest.fixture
def notify_socket(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, socket.socket]]:
    """A listening datagram socket as systemd has: ``(NOTIFY_SOCKET value, socket)``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if getattr(request, "param", "path") == "abstract":
        name = f"@omnimind-test-{uuid.uuid4().hex}"
        listener.bind(b"\0" + name[1:].encode())
    else:
        name = str(tmp_path / "notify.sock")
        listener.bind(name)
    with listener:
        yield name, listener


def receive(listener: socket.socket, seconds: float) -> list[tuple[float, str]]:
    """Every datagram that arrives within ``seconds``, with its arrival time."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        listener.settimeout(left)
        try:
            got.append((time.monotonic(), listener.recv(4096).decode()))
        except TimeoutError:
            break
    return got


@pytest.mark.slow
@pytest.mark.parametrize("notify_socket", ["path", "abstract"], indirect=True)
def test_the_notifier_reaches_a_path_or_an_abstract_socket(
    notify_socket: tuple[str, socket.socket],
) -> None:
    name, listener = notify_socket
    notifier = Notifier(name)
    assert notifier.send("READY=1", "STATUS=idle, 0 tasks, 0 running, 0 pending")
    notifier.close()
    listener.settimeout(5.0)
    assert listener.recv(4096) == b"READY=1\nSTATUS=idle, 0 tasks, 0 running, 0 pending"


@pytest.mark.slow
def test_a_failed_send_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert not notifier.send("READY=1")
    assert not notifier.send("WATCHDOG=1")
    notifier.close()
    failures = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING


# -- the real process ---------------------------------------------------------------------------

ENV_CODE = (
    "import os\n"
    "def execute():\n"
    "    return {k: os.environ.get(k) for k in ('NOTIFY_SOCKET', 'WATCHDOG_USEC')}\n"
)


@pytest.mark.slow
def test_serve_tells_systemd_ready_status_watchdog_and_stopping(
    spawn: Any, notify_socket: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, listener = notify_socket
    monkeypatch.delenv("WATCHDOG_PID", raising=False)  # unset: the watchdog is ours
    served: Served = spawn(
        env={
            "NOTIFY_SOCKET": name,
            "WATCHDOG_USEC": "300000",
            "OMNIMIND_SLEEP_WINDOW": SLEEP_WINDOW,
        }
    )
    client = served.client()

    (ready,) = wait_for(
        lambda: [m for m in receive(listener, 0.1) if "READY=1" in m[1]], 10.0, "READY=1"
    )
    # The one task is the built-in database_optimization.
    assert re.fullmatch(r"READY=1\nSTATUS=(idle|working), 1 task, \d running, \d pending", ready[1])

    # WATCHDOG=1 every 0.15 s (half of WATCHDOG_USEC): about 13 in 2 s.
    pings = [when for when, text in receive(listener, 2.0) if text == "WATCHDOG=1"]
    assert 7 <= len(pings) <= 15, pings

    # STATUS follows the tasks; a task process sees none of systemd's variables.
    client.post("/daemon/tasks/add", json=task_body("env", ENV_CODE)).raise_for_status()
    wait_for(
        lambda: any(re.match(r"STATUS=\w+, 2 tasks", t) for _, t in receive(listener, 0.1)),
        10.0,
        "STATUS with 2 tasks",
    )
    executions = wait_for(
        lambda: client.get("/daemon/executions", params={"task_id": "env"}).json()["executions"],
        10.0,
        "the env task's run",
    )
    path = f"/daemon/executions/{executions[0]['execution_id']}"
    record = wait_for(
        lambda: (r := client.get(path).json())["outcome"] != "running" and r, 10.0, "its end"
    )
    assert record["result"] == {"NOTIFY_SOCKET": None, "WATCHDOG_USEC": None}

    # POST /daemon/stop: the event loop alone proves liveness; the pings go on.
    client.post("/daemon/stop").raise_for_status()
    stopped = receive(listener, 1.0)
    assert any(t.startswith("STATUS=stopped, 2 tasks") for _, t in stopped)
    assert sum(t == "WATCHDOG=1" for _, t in stopped) >= 3

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=10) == 0
    assert "STOPPING=1" in [t for _, t in receive(listener, 0.2)]


@pytest.mark.slow
@pytest.mark.parametrize("notify_socket", ["abstract"], indirect=True)
def test_no_watchdog_pings_when_watchdog_pid_names_another_process(
    spawn: Any, notify_socket: tuple[str, socket.socket]
) -> None:
    """Through an abstract socket (``@name``) this time."""
    name, listener = notify_socket
    served: Served = spawn(
        env={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    )
    got = [text for _, text in receive(listener, 1.0)]
    assert any(text.startswith("READY=1\nSTATUS=") for text in got)
    assert "WATCHDOG=1" not in got
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=10) == 0
    assert "STOPPING=1" in [t for _, t in receive(listener, 0.2)]


# -- the units in contrib/systemd ---------------------------------------------------------------

CONTRIB = Path(__file__).resolve().parent.parent / "contrib" / "systemd"
SYSTEM_UNIT = CONTRIB / "omnimind-daemon.service"
USER_UNIT = CONTRIB / "user" / "omnimind.service"
HARDENING = CONTRIB / "user" / "omnimind.service.d" / "hardening.conf"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian's systemd package; .ci/run installs it)",
)


def settings_of(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_the_units_are_notify_services_with_a_watchdog_and_no_hard_coded_paths(
    unit: Path,
) -> None:
    found = settings_of(unit)
    for key, value in {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "KillMode": "mixed",
        "Delegate": "yes",
        "UMask": "0077",
        "NoNewPrivileges": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "WorkingDirectory": "%S/omnimind",
    }.items():
        assert found.get(key) == [value], key
    assert "StateDirectory" in found
    assert "OMNIMIND_HOME=%S/omnimind" in found["Environment"]
    assert "ProtectControlGroups" not in found  # /sys/fs/cgroup stays writable: Delegate=yes
    text = unit.read_text()
    for leftover in ("/home/", "alice", "/path/to", "Type=simple"):
        assert leftover not in text
    # The values an operator must check are marked: the block holding them says "# EDIT".
    blocks = [block.splitlines() for block in text.split("\n\n")]
    for key in ("ExecStart", "User", "Group"):
        for block in blocks:
            if any(line.startswith(f"{key}=") for line in block):
                assert block[0].startswith("# EDIT"), (key, block)


def test_the_namespace_options_of_the_user_unit_are_an_opt_in_drop_in() -> None:
    unit, drop_in = settings_of(USER_UNIT), settings_of(HARDENING)
    namespaced = {"PrivateUsers", "ProtectSystem", "PrivateTmp", "PrivateDevices"}
    assert namespaced <= drop_in.keys()
    assert not namespaced & unit.keys()
    assert drop_in["PrivateUsers"] == ["yes"]  # a user manager needs it for the others
    system = settings_of(SYSTEM_UNIT)
    assert system["ProtectSystem"] == ["strict"] and system["PrivateTmp"] == ["yes"]


def installed(unit: Path, into: Path) -> Path:
    """The unit as an operator installs it: ExecStart= is this venv's omnimind (verify wants
    a program that exists), and the drop-in directory, if any, beside it."""
    omnimind = Path(sys.executable).with_name("omnimind")
    assert omnimind.exists()
    text, count = re.subn(
        r"^ExecStart=\S+/omnimind serve$",
        f"ExecStart={omnimind} serve",
        unit.read_text(),
        flags=re.M,
    )
    assert count == 1
    into.mkdir()
    copy = into / unit.name
    copy.write_text(text)
    drop_ins = unit.with_name(unit.name + ".d")
    if drop_ins.is_dir():
        shutil.copytree(drop_ins, into / drop_ins.name)
    return copy


def analyze(tmp_path: Path, unit: Path, *args: str) -> str:
    assert SYSTEMD_ANALYZE is not None
    user = ["--user"] if unit.parent.name == "user" else []
    runtime = tmp_path / "runtime"  # a user manager's paths need an XDG_RUNTIME_DIR
    runtime.mkdir(mode=0o700, exist_ok=True)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, *user, *args, str(installed(unit, tmp_path / uuid.uuid4().hex))],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_PAGER": ""},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@needs_systemd_analyze
@pytest.mark.slow
@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path, unit: Path) -> None:
    output = analyze(tmp_path, unit, "verify")
    # verify warns (exit 0) about unknown keys or bad values: none may name our files.
    ours = [line for line in output.splitlines() if unit.name in line or "hardening" in line]
    assert ours == []


@needs_systemd_analyze
@pytest.mark.slow
@pytest.mark.parametrize(
    ("unit", "at_most"), [(SYSTEM_UNIT, 2.5), (USER_UNIT, 5.0)], ids=["system", "user"]
)
def test_the_units_exposure_stays_as_documented(tmp_path: Path, unit: Path, at_most: float) -> None:
    """docs/operations.md records the figures (1.7 and 4.2 on systemd 252); a bound here, as
    systemd's weights change from version to version."""
    output = analyze(tmp_path, unit, "security", "--offline=yes", "--no-pager")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", output)
    assert match is not None, output
    assert float(match.group(1)) <= at_most
