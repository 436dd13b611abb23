"""Notifications: which finished runs are told (failure, recovery, success), to which
webhook or desktop, and that telling never holds up the daemon.

The event logic runs against a fake webhook sender (it keeps what it is given); the
webhook sender against httpx's mock transport on a virtual clock (its timeouts and
backoff, exactly); the whole daemon against a real HTTP receiver on loopback, and the
desktop notifications against a private ``dbus-daemon`` with a fake notification server.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from jeepney import MatchRule, message_bus, new_method_return
from jeepney.io.trio import open_dbus_router
from jeepney.low_level import HeaderFields

from omnimind_trio import FakeSource, open_daemon
from omnimind_trio.daemon import Daemon
from omnimind_trio.models import (
    ExecutionRecord,
    NotifyEvent,
    NotifySpec,
    Outcome,
    Priority,
    TaskSpec,
    Trigger,
    new_registration_id,
)
from omnimind_trio.notify import (
    STDERR_TAIL_BYTES,
    STDERR_TAIL_LINES,
    DeliveryFailed,
    DesktopNotifier,
    Notifier,
    WebhookBody,
    WebhookSender,
    failing_before,
    stderr_tail,
)

from .conftest import leave_a_running_record, make_settings
from .dbus_fakes import private_bus

DOCS = Path(__file__).parent.parent / "docs"
HOOK = "http://127.0.0.1:9/hook"
FAILS = "import sys\ndef execute():\n    print('disk almost full', file=sys.stderr)\n    1 / 0\n"
WORKS = "def execute():\n    return 1\n"

# -- fakes and helpers ---------------------------------------------------------------


def spec(task_id: str = "backup", notify: NotifySpec | None = None, **fields: Any) -> TaskSpec:
    values = {"task_id": task_id, "name": task_id.title(), "description": "",
              "priority": Priority.CRITICAL, "code": WORKS, "notify": notify}  # fmt: skip
    return TaskSpec(**{**values, **fields})


class Runs:
    """Finished records of one task (one registration of it), one second apart."""

    def __init__(self, task_id: str = "backup") -> None:
        self.task_id = task_id
        self.registration_id = new_registration_id()
        self.at = 1000.0
        self.records: list[ExecutionRecord] = []

    def __call__(
        self, outcome: Outcome, trigger: Trigger = Trigger.SCHEDULE, attempt: int = 0
    ) -> ExecutionRecord:
        self.at += 1
        record = ExecutionRecord(
            execution_id=f"e{len(self.records)}",
            task_id=self.task_id,
            registration_id=self.registration_id,
            registered_at=1000.0,
            trigger=trigger,
            outcome=outcome,
            reason=None if outcome is Outcome.SUCCEEDED else f"it {outcome.value}",
            scheduled_at=self.at - 0.5,
            started_at=self.at - 0.5,
            finished_at=self.at,
            attempt=attempt,
        )
        self.records.append(record)
        return record


class FakeSender:
    """A webhook sender that keeps the bodies (or fails, or waits, when told to)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.release: trio.Event | None = None
        self.error: Exception | None = None

    async def post(self, url: str, body: bytes) -> int:
        if self.release is not None:
            await self.release.wait()
        if self.error is not None:
            raise self.error
        self.urls.append(url)
        self.bodies.append(json.loads(body))
        return 1

    async def aclose(self) -> None:
        pass

    @property
    def events(self) -> list[str]:
        return [body["event"] for body in self.bodies]


def no_history(record: ExecutionRecord) -> Any:
    async def read() -> list[ExecutionRecord]:
        return []

    return read()


@pytest.fixture
async def notifier() -> AsyncIterator[tuple[Notifier, FakeSender]]:
    sender = FakeSender()
    notifier = Notifier(defaults=None, history=no_history, sender=sender)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        yield notifier, sender
        nursery.cancel_scope.cancel()


async def settled(notifier: Notifier) -> None:
    """Until everything queued is delivered (or failed)."""
    with trio.fail_after(5):
        while (s := notifier.statistics()).queued or s.in_flight:
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0)


# -- which runs are told -----------------------------------------------------------


async def test_recovery_is_the_first_success_after_a_failure(
    notifier: tuple[Notifier, FakeSender],
) -> None:
    told, sender = notifier
    task, run = spec(notify=NotifySpec(webhook=HOOK)), Runs()
    for outcome in ["succeeded", "failed", "succeeded", "succeeded", "timed_out", "killed",
                    "succeeded"]:  # fmt: skip
        told.finished(run(Outcome(outcome)), task, retrying=False)
    await settled(told)
    # The default ``on``: failure and recovery; a success after a success says nothing.
    assert sender.events == ["failure", "recovery", "failure", "failure", "recovery"]
    assert [b["outcome"] for b in sender.bodies] == [
        "failed", "succeeded", "timed_out", "killed", "succeeded"
    ]  # fmt: skip
    assert sender.urls == [HOOK] * 5


@pytest.mark.parametrize(
    ("on", "told"),
    [
        (["success"], ["success", "success", "success"]),
        (["failure"], ["failure"]),
        (["recovery"], ["recovery"]),
        (["recovery", "success"], ["success", "recovery", "success"]),
        (["failure", "recovery", "success"], ["success", "failure", "recovery", "success"]),
    ],
)
async def test_on_chooses_the_events_told(
    notifier: tuple[Notifier, FakeSender], on: list[str], told: list[str]
) -> None:
    notifying, sender = notifier
    task = spec(notify=NotifySpec.model_validate({"on": on, "webhook": HOOK}))
    run = Runs()
    for outcome in [Outcome.SUCCEEDED, Outcome.FAILED, Outcome.SUCCEEDED, Outcome.SUCCEEDED]:
        notifying.finished(run(outcome), task, retrying=False)
    await settled(notifying)
    # A recovery is told once: as ``recovery`` when asked for, else as a ``success``.
    assert sender.events == told


async def test_a_cancel_or_a_skip_is_not_told_and_changes_nothing(
    notifier: tuple[Notifier, FakeSender],
) -> None:
    told, sender = notifier
    task = spec(notify=NotifySpec(on=tuple(NotifyEvent), webhook=HOOK))
    run = Runs()
    for outcome in [Outcome.FAILED, Outcome.CANCELLED, Outcome.SKIPPED, Outcome.SUCCEEDED,
                    Outcome.CANCELLED]:  # fmt: skip
        told.finished(run(outcome), task, retrying=False)
    await settled(told)
    # The user's own cancel (or a stop, or on_busy=cancel) is not a failure, and does not
    # hide the recovery of the failure before it.
    assert sender.events == ["failure", "recovery"]


async def test_a_failure_is_told_once_its_retries_are_spent(
    notifier: tuple[Notifier, FakeSender],
) -> None:
    told, sender = notifier
    task = spec(notify=NotifySpec(webhook=HOOK), max_retries=2)
    run = Runs()
    # A failure whose retry succeeds: never told, so its success is no recovery.
    told.finished(run(Outcome.FAILED), task, retrying=True)
    told.finished(run(Outcome.SUCCEEDED, Trigger.RETRY, 1), task, retrying=False)
    # Three attempts that fail: one failure, the last attempt's.
    told.finished(run(Outcome.FAILED), task, retrying=True)
    told.finished(run(Outcome.TIMED_OUT, Trigger.RETRY, 1), task, retrying=True)
    told.finished(run(Outcome.FAILED, Trigger.RETRY, 2), task, retrying=False)
    # Then a run that fails, and its retry that succeeds: the task recovered.
    told.finished(run(Outcome.FAILED), task, retrying=True)
    told.finished(run(Outcome.SUCCEEDED, Trigger.RETRY, 1), task, retrying=False)
    await settled(told)
    assert sender.events == ["failure", "recovery"]
    assert (sender.bodies[0]["attempt"], sender.bodies[1]["attempt"]) == (2, 1)


def test_whether_a_task_was_failing_is_read_from_its_history() -> None:
    run = Runs()
    failed, succeeded = run(Outcome.FAILED), run(Outcome.SUCCEEDED)
    assert failing_before(succeeded, [succeeded, failed]) is True
    assert failing_before(run(Outcome.SUCCEEDED), run.records) is False
    run(Outcome.INTERRUPTED)
    run(Outcome.CANCELLED)  # changes nothing
    run(Outcome.SKIPPED)
    assert failing_before(run(Outcome.SUCCEEDED), reversed(run.records)) is True
    # A failed attempt that was retried was never told: not failing, unless a failure
    # before it was the last attempt of its run.
    chain = Runs()
    chain(Outcome.SUCCEEDED)
    chain(Outcome.FAILED)
    chain(Outcome.FAILED, Trigger.RETRY, 1)
    assert failing_before(chain(Outcome.SUCCEEDED, Trigger.RETRY, 2), chain.records) is False
    chain(Outcome.FAILED)  # told: the task has no retries left now
    chain(Outcome.FAILED)
    assert failing_before(chain(Outcome.SUCCEEDED, Trigger.RETRY, 1), chain.records) is True
    # Records finished after it (read late) do not count; a first run has no past.
    first = Runs()
    current = first(Outcome.SUCCEEDED)
    assert failing_before(current, [first(Outcome.FAILED), current]) is False


async def test_a_restarted_notifier_reads_the_history_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = Runs()
    past = [run(Outcome.SUCCEEDED), run(Outcome.FAILED)]
    reads: list[str] = []
    broken = False

    async def history(record: ExecutionRecord) -> list[ExecutionRecord]:
        reads.append(record.task_id)
        if broken:
            raise OSError("disk I/O error")
        return [*reversed(past)]

    sender = FakeSender()
    told = Notifier(defaults=None, history=history, sender=sender)
    task = spec(notify=NotifySpec(webhook=HOOK))
    async with trio.open_nursery() as nursery:
        await nursery.start(told.run)
        told.finished(run(Outcome.SUCCEEDED), task, retrying=False)
        told.finished(run(Outcome.SUCCEEDED), task, retrying=False)
        await settled(told)
        assert sender.events == ["recovery"]
        assert reads == ["backup"]  # the second success is known to follow a success
        # A history that cannot be read: no recovery claimed, and a WARNING says why.
        broken = True
        other = spec("mirror", notify=NotifySpec(webhook=HOOK))
        told.finished(Runs("mirror")(Outcome.SUCCEEDED), other, retrying=False)
        await settled(told)
        nursery.cancel_scope.cancel()
    assert sender.events == ["recovery"]
    [line] = [r for r in caplog.records if "mirror" in r.getMessage()]
    assert line.levelno == logging.WARNING and "history cannot be read" in line.getMessage()


# -- defaults and a task's own ------------------------------------------------------


def test_the_daemon_wide_defaults_are_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, notify_webhook="https://hooks.example/x",
                             notify_on=" success , FAILURE,success")  # fmt: skip
    assert settings.notify_on == "success,failure"
    assert settings.notify_defaults == NotifySpec(
        on=(NotifyEvent.SUCCESS, NotifyEvent.FAILURE), webhook="https://hooks.example/x"
    )
    assert make_settings(tmp_path).notify_defaults is None  # no webhook: nothing to tell
    assert make_settings(tmp_path, notify_webhook="").notify_defaults is None
    with pytest.raises(ValueError, match="unknown event 'fail' \\(known: failure, recovery"):
        make_settings(tmp_path, notify_on="fail")
    with pytest.raises(ValueError, match="'ftp://x' is not an http:// or https:// URL"):
        make_settings(tmp_path, notify_webhook="ftp://x")


async def test_a_task_s_notify_replaces_the_defaults() -> None:
    sender = FakeSender()
    defaults = NotifySpec(on=(NotifyEvent.SUCCESS,), webhook="http://127.0.0.1:9/default")
    told = Notifier(defaults=defaults, history=no_history, sender=sender)
    own = NotifySpec(webhook="http://127.0.0.1:9/own")  # on: failure, recovery
    silent = NotifySpec(desktop=False)  # no channel: this task tells nothing
    async with trio.open_nursery() as nursery:
        await nursery.start(told.run)
        for task in [spec("plain"), spec("own", own), spec("silent", silent)]:
            run = Runs(task.task_id)
            for outcome in [Outcome.SUCCEEDED, Outcome.FAILED]:
                told.finished(run(outcome), task, retrying=False)
        await settled(told)
        nursery.cancel_scope.cancel()
    assert [(b["task_id"], b["event"]) for b in sender.bodies] == [
        ("plain", "success"),
        ("own", "failure"),
    ]
    assert sender.urls == ["http://127.0.0.1:9/default", "http://127.0.0.1:9/own"]


# -- never in the way ----------------------------------------------------------------


async def test_a_full_queue_drops_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    sender = FakeSender()
    sender.release = trio.Event()
    told = Notifier(
        defaults=None,
        history=no_history,
        queue_size=2,
        concurrency=1,
        sender=sender,
    )
    task, run = spec(notify=NotifySpec(webhook=HOOK)), Runs()
    async with trio.open_nursery() as nursery:
        await nursery.start(told.run)
        for _ in range(5):  # at once: one is taken, two wait, the other two are dropped
            told.finished(run(Outcome.FAILED), task, retrying=False)
        assert told.statistics().dropped == 2
        sender.release.set()
        await settled(told)
        nursery.cancel_scope.cancel()
    assert told.statistics().delivered == 3
    assert [b["execution_id"] for b in sender.bodies] == ["e0", "e1", "e2"]
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert [r.levelno for r in dropped] == [logging.WARNING] * 2
    assert dropped[0].getMessage() == (
        "notification dropped (failure of backup, execution e3): 2 are waiting already"
    )
    assert dropped[0].task_id == "backup"  # type: ignore[attr-defined]


async def test_a_failed_delivery_is_a_warning_never_an_error_of_the_daemon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = FakeSender()
    told = Notifier(defaults=None, history=no_history, sender=sender)
    task, run = spec(notify=NotifySpec(webhook="https://user:pw@hooks.example/T0/secret")), Runs()
    async with trio.open_nursery() as nursery:
        await nursery.start(told.run)
        sender.error = DeliveryFailed("HTTP 503 (attempt 3 of 3)")
        told.finished(run(Outcome.FAILED), task, retrying=False)
        await settled(told)
        sender.error = RuntimeError("a bug")  # even a bug: logged, and the next one goes
        told.finished(run(Outcome.SUCCEEDED), task, retrying=False)
        await settled(told)
        sender.error = None
        told.finished(run(Outcome.FAILED), task, retrying=False)
        await settled(told)
        nursery.cancel_scope.cancel()
    assert sender.events == ["failure"]
    assert (told.statistics().failed, told.statistics().delivered) == (2, 1)
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.getMessage() == (
        "webhook to https://hooks.example for backup (failure) not delivered: "
        "HTTP 503 (attempt 3 of 3)"
    )  # the path of a chat webhook is its secret: never logged, nor the credentials
    assert warning.task_id == "backup"  # type: ignore[attr-defined]
    assert any(r.levelno == logging.ERROR and "a bug" in r.exc_text for r in caplog.records)  # type: ignore[operator]


# -- the webhook sender: timeout, retries, backoff (virtual time) ------------------------


async def post_through(handler: Any, **options: Any) -> tuple[int | str, float, int]:
    """(attempts, or the failure), the virtual seconds it took, and the requests made."""
    calls = 0

    async def counting(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return await handler(request, calls)

    sender = WebhookSender(transport=httpx.MockTransport(counting), **options)
    start = trio.current_time()
    try:
        result: int | str = await sender.post("http://hooks.example/x", b"{}")
    except DeliveryFailed as exc:
        result = str(exc)
    finally:
        await sender.aclose()
    return result, trio.current_time() - start, calls


async def test_a_webhook_is_retried_with_backoff(autojump_clock: trio.testing.MockClock) -> None:
    async def two_500s(request: httpx.Request, call: int) -> httpx.Response:
        return httpx.Response(500 if call < 3 else 204)

    assert await post_through(two_500s) == (3, 1.0 + 2.0, 3)

    async def not_found(request: httpx.Request, call: int) -> httpx.Response:
        return httpx.Response(404)

    # Asking again would get the same answer: one attempt.
    assert await post_through(not_found) == ("HTTP 404 (attempt 1 of 3)", 0.0, 1)


async def test_a_webhook_that_never_answers_costs_a_bounded_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def hangs(request: httpx.Request, call: int) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError

    # Three attempts of 10 s, 1 s and 2 s apart.
    assert await post_through(hangs) == ("no answer within 10 s (attempt 3 of 3)", 33.0, 3)
    assert await post_through(hangs, timeout_seconds=2, attempts=2, backoff_seconds=5) == (
        "no answer within 2 s (attempt 2 of 2)", 9.0, 2
    )  # fmt: skip


def test_stderr_tail_is_bounded() -> None:
    lines = [f"line {i}" for i in range(100)]
    assert stderr_tail("\n".join(lines) + "\n") == "\n".join(lines[-STDERR_TAIL_LINES:])
    long = stderr_tail("é" * 10_000)
    assert len(long.encode()) <= STDERR_TAIL_BYTES and set(long) == {"é"}
    assert stderr_tail("") == ""


# -- the whole daemon, a real receiver on loopback ------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps each POST's JSON body; it answers with the
    statuses queued in ``statuses`` (then 200), or never while ``hang`` is set."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: deque[int] = deque()
        self.hang = False
        self.url = ""
        self._arrived = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/hooks/T0/secret"
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        with trio.fail_after(10):
            while len(self.bodies) < count:
                await self._arrived.wait()
        return self.bodies

    async def _connection(self, stream: trio.SocketStream) -> None:
        buffer = b""
        while True:  # requests on a keep-alive connection
            while b"\r\n\r\n" not in buffer:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
            while len(buffer) < length:
                buffer += await stream.receive_some(65536)
            body, buffer = buffer[:length], buffer[length:]
            assert head.startswith(b"POST /hooks/T0/secret HTTP/1.1")
            assert re.search(rb"(?i)content-type: application/json", head)
            self.bodies.append(json.loads(body))
            self._arrived.set()
            self._arrived = trio.Event()
            if self.hang:
                await trio.sleep_forever()
            status = self.statuses.popleft() if self.statuses else 200
            await stream.send_all(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        yield receiver
        nursery.cancel_scope.cancel()


async def finished(daemon: Daemon, task_id: str, count: int) -> list[ExecutionRecord]:
    """The task's finished records, once there are ``count`` (newest first)."""
    with trio.fail_after(10):
        while True:
            records, _ = await daemon._store.list_executions(task_id=task_id)
            done = [r for r in records if r.outcome is not Outcome.RUNNING]
            if len(done) >= count:
                return done
            await daemon.wait_changed()


@pytest.mark.slow
async def test_a_webhook_gets_every_documented_key_and_the_recovery_after_a_restart(
    tmp_path: Path, source: FakeSource, receiver: Receiver
) -> None:
    settings = make_settings(tmp_path, notify_webhook=receiver.url)  # failure, recovery
    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.add_task(spec("backup", code=FAILS, description="nightly"))
        [body] = await receiver.wait_for(1)
        [record] = await finished(daemon, "backup", 1)
    assert set(body) == set(WebhookBody.model_fields)
    assert body["event"] == "failure" and body["outcome"] == "failed"
    assert (body["task_id"], body["task_name"]) == ("backup", "Backup")
    assert body["execution_id"] == record.execution_id
    assert body["reason"] == record.reason and body["reason"].startswith("ZeroDivisionError")
    assert body["stderr_tail"] == "disk almost full"  # (the traceback is the reason's)
    finished_at = datetime.fromisoformat(body["finished_at"])
    assert body["finished_at"].endswith("Z") and finished_at.utcoffset() is not None
    assert finished_at.timestamp() == pytest.approx(record.finished_at, abs=0.001)
    assert body["duration_seconds"] == pytest.approx(record.duration_seconds, abs=0.001)
    assert (body["trigger"], body["attempt"]) == ("schedule", 0)
    assert body["text"] == "omnimind: Backup failed: ZeroDivisionError: division by zero"
    api = (DOCS / "api.md").read_text()
    assert all(f"`{key}`" in api for key in body), "docs/api.md documents every key"

    # A new daemon does not remember the failure: the history tells it this is a recovery.
    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.update_task("backup", {"code": WORKS})
        daemon.run_task_now("backup")
        await finished(daemon, "backup", 2)
        [_, recovery] = await receiver.wait_for(2)
        daemon.run_task_now("backup")
        await finished(daemon, "backup", 3)  # a success after a success: nothing
        await settled(daemon._notifier)
        assert daemon._notifier.statistics().delivered == 1
    assert (recovery["event"], recovery["outcome"], recovery["reason"]) == (
        "recovery", "succeeded", None
    )  # fmt: skip
    assert recovery["text"].startswith("omnimind: Backup recovered: succeeded in ")
    assert len(receiver.bodies) == 2


@pytest.mark.slow
async def test_the_last_attempt_of_a_retried_run_is_told(
    tmp_path: Path, source: FakeSource, receiver: Receiver
) -> None:
    settings = make_settings(tmp_path, retry_base_seconds=0.01)
    notify = NotifySpec(webhook=receiver.url)
    async with open_daemon(settings, metrics_source=source) as daemon:
        await daemon.add_task(spec("flaky", notify, code=FAILS, max_retries=2))
        await finished(daemon, "flaky", 3)
        [body] = await receiver.wait_for(1)
        await settled(daemon._notifier)
    assert (body["event"], body["trigger"], body["attempt"]) == ("failure", "retry", 2)
    assert len(receiver.bodies) == 1


@pytest.mark.slow
async def test_a_hanging_webhook_holds_up_neither_runs_nor_the_exit(
    tmp_path: Path,
    source: FakeSource,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bound at exit, shortened from 2 s: the test waits it out on the real clock.
    monkeypatch.setattr("omnimind_trio.daemon._open.EXIT_NOTIFY_SECONDS", 0.3)
    receiver.hang = True
    async with open_daemon(make_settings(tmp_path), metrics_source=source) as daemon:
        await daemon.add_task(spec("stuck", NotifySpec(webhook=receiver.url), code=FAILS))
        await receiver.wait_for(1)  # the POST of the first run hangs...
        daemon.run_task_now("stuck")
        await daemon.add_task(spec("other", code=WORKS))
        with trio.fail_after(5):  # ...while the next runs are recorded as they end
            await finished(daemon, "stuck", 2)
            await finished(daemon, "other", 1)
        await receiver.wait_for(2)  # a second delivery beside the one that hangs
        exiting = trio.current_time()
    # The exit gives the deliveries still hanging EXIT_NOTIFY_SECONDS (here 0.3 s), no more.
    assert trio.current_time() - exiting < 1.8
    [line] = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == "2 notification(s) not sent: the daemon stopped first"


@pytest.mark.slow
async def test_a_run_a_crash_interrupted_is_told_at_the_next_start(
    tmp_path: Path, source: FakeSource, receiver: Receiver
) -> None:
    settings = make_settings(tmp_path)
    async with open_daemon(settings, metrics_source=source, autostart=False) as daemon:
        notify = NotifySpec(webhook=receiver.url)
        await daemon.add_task(spec("victim", notify, priority=Priority.LOW))
    await leave_a_running_record(settings, "victim", "dead")
    async with open_daemon(settings, metrics_source=source, autostart=False):
        [body] = await receiver.wait_for(1)
    assert (body["event"], body["outcome"], body["execution_id"]) == (
        "failure", "interrupted", "dead"
    )  # fmt: skip
    assert body["reason"] == "the daemon ended unexpectedly while this execution ran"


# -- the desktop ---------------------------------------------------------------------


async def test_without_a_session_bus_one_line_then_a_retry_later(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "omnimind_trio.notify")
    environ: dict[str, str] = {}
    desktop = DesktopNotifier(environ=environ, retry_seconds=300)
    for _ in range(3):
        assert await desktop.notify("omnimind: backup failed", "boom", urgent=True) is False
    [line] = caplog.records
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (
        "desktop notifications are skipped: no session bus (DBUS_SESSION_BUS_ADDRESS is "
        "not set); trying the session bus again every 300 s"
    )
    assert (desktop.skipped, desktop.available) == (3, False)
    # Five minutes later the bus is tried again (here: an address with nothing there).
    environ["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/bus"
    await trio.sleep(300)
    assert await desktop.notify("omnimind: backup failed", "boom", urgent=True) is False
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG]
    assert desktop.skipped == 4


@pytest.fixture
def session_bus(tmp_path: Path) -> Iterator[str]:
    """A private session bus (no service activation): its address."""
    with private_bus(tmp_path / "session") as address:
        yield address


class FakeNotificationServer:
    """``org.freedesktop.Notifications`` on a bus: keeps each Notify call's arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.arrived = trio.Event()

    async def serve(self, address: str, *, task_status: trio.TaskStatus[None]) -> None:
        rule = MatchRule(type="method_call", interface="org.freedesktop.Notifications")
        async with open_dbus_router(bus=address) as router:
            # Not closed by us: jeepney's router closes it as it stops (closing both at
            # once changes its filters while it iterates them).
            calls = router.filter(rule, bufsize=10).receive_channel
            reply = await router.send_and_get_reply(
                message_bus.RequestName("org.freedesktop.Notifications")
            )
            assert reply.body == (1,)  # the primary owner
            task_status.started()
            async for call in calls:
                assert call.header.fields[HeaderFields.member] == "Notify"
                self.calls.append(call.body)
                await router.send(new_method_return(call, "u", (len(self.calls),)))
                self.arrived.set()


async def test_a_desktop_notification_reaches_the_session_bus(
    session_bus: str, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"DBUS_SESSION_BUS_ADDRESS": session_bus}
    desktop = DesktopNotifier(environ=environ)
    # Nobody serves org.freedesktop.Notifications yet: skipped, with one line.
    assert await desktop.notify("omnimind: backup failed", "boom", urgent=True) is False
    [line] = caplog.records
    assert line.getMessage().startswith(
        "desktop notifications are skipped: org.freedesktop.DBus.Error.ServiceUnknown (The "
        "name org.freedesktop.Notifications was not provided by any .service files)"
    )
    server = FakeNotificationServer()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, session_bus)
        desktop = DesktopNotifier(environ=environ)
        assert await desktop.notify("omnimind: backup failed", "a &lt; b", urgent=True)
        nursery.cancel_scope.cancel()
    [(app, replaces, icon, summary, body, actions, hints, expire)] = server.calls
    assert (app, replaces, summary, body) == ("omnimind", 0, "omnimind: backup failed", "a &lt; b")
    assert (icon, actions, hints, expire) == ("dialog-error", [], {"urgency": ("y", 2)}, -1)


@pytest.mark.slow
async def test_a_task_with_desktop_notify_shows_its_failure(
    tmp_path: Path, source: FakeSource, session_bus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    server = FakeNotificationServer()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, session_bus)
        async with open_daemon(make_settings(tmp_path), metrics_source=source) as daemon:
            await daemon.add_task(spec("backup", NotifySpec(desktop=True), code=FAILS))
            with trio.fail_after(10):
                await server.arrived.wait()
        nursery.cancel_scope.cancel()
    [call] = server.calls
    assert call[3:5] == ("omnimind: Backup failed", "ZeroDivisionError: division by zero")


def test_the_settings_are_documented() -> None:
    configuration = (DOCS / "configuration.md").read_text()
    assert "OMNIMIND_NOTIFY_WEBHOOK" in configuration and "OMNIMIND_NOTIFY_ON" in configuration
    assert "## Notifications" in (DOCS / "operations.md").read_text()
