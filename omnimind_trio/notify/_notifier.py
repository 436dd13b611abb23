"""The notifier: finished runs in, webhooks and desktop notifications out, off the
scheduler's path.

::

    notifier.run                # in the daemon's nursery (process lifetime)
    ├── queue consumer          # a bounded queue: finished() never waits; full: dropped
    └── deliveries              # at most CONCURRENCY at once, each bounded in time

:meth:`Notifier.finished` is called as a run's final record is written: it decides which
event the run is (failure, recovery, success) and queues it. The consumer reads the
history when a restarted daemon does not know yet whether the task was failing, and hands
each notification to a delivery task: a webhook POST with retries, a desktop
notification. A failed delivery is a WARNING line with the task id, never an error of the
daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import trio

from ..models import ExecutionRecord, NotifyEvent, NotifySpec, Outcome, TaskSpec
from ._desktop import DesktopNotifier
from ._message import (
    VERDICT_OUTCOMES,
    Notification,
    WebhookBody,
    desktop_markup,
    desktop_text,
    failing_before,
)
from ._webhook import DeliveryFailed, WebhookSender, where

log = logging.getLogger(__package__)

QUEUE_SIZE: Final = 256
"""Notifications waiting for delivery; beyond, new ones are dropped (WARNING)."""
CONCURRENCY: Final = 8
"""Deliveries at once: a receiver that hangs holds one of them, not the queue."""
CLOSE_SECONDS: Final = 1.0
"""Bound on closing the webhooks' HTTP connections as the notifier ends."""
HISTORY_RECORDS: Final = 50
"""How far back a restarted daemon looks for a task's last failure (``recovery``)."""

History = Callable[[ExecutionRecord], Awaitable[Sequence[ExecutionRecord]]]
"""The latest records of the registration a run belonged to (newest first): its task's
history, without the runs of a task deleted before it under its id."""


@dataclass(frozen=True, slots=True)
class _Queued:
    notification: Notification
    check_history: bool
    """A success of a task whose last verdict this daemon has not seen: a recovery only if
    its history says it was failing (else a success, if wanted)."""


@dataclass(frozen=True, slots=True)
class NotifierStatistics:
    queued: int
    """Waiting for a delivery slot."""
    in_flight: int
    delivered: int
    """Notifications sent on every channel they named."""
    failed: int
    """Notifications one of whose channels failed (logged), or skipped their desktop
    notification (no session bus)."""
    dropped: int
    """Not sent: the queue was full, or the daemon stopped first."""


class Notifier:
    """Tells the user about finished runs, as each task's ``notify`` (or the daemon's
    defaults, for a task without one) asks."""

    def __init__(
        self,
        *,
        defaults: NotifySpec | None,
        history: History,
        queue_size: int = QUEUE_SIZE,
        concurrency: int = CONCURRENCY,
        sender: WebhookSender | None = None,
        desktop: DesktopNotifier | None = None,
    ) -> None:
        self.defaults = defaults
        self._history = history
        self._send, self._receive = trio.open_memory_channel[_Queued](queue_size)
        self._slots = trio.Semaphore(concurrency)
        self._webhook = sender or WebhookSender()
        self.desktop = desktop or DesktopNotifier()
        self._failing: dict[str, tuple[str | None, bool]] = {}
        """Per task id, the registration of its last verdict (a success, or a failure not
        retried) and whether it was a failure. Unknown (absent, or another registration's:
        a task added again under a deleted one's id is a new task): its history tells, so
        a new registration's first success is no recovery."""
        self._closed = trio.Event()
        self._pending = 0
        """Queued, being resolved or being delivered."""
        self._delivered = self._failed = self._dropped = 0

    def statistics(self) -> NotifierStatistics:
        queued = self._receive.statistics().current_buffer_used
        return NotifierStatistics(
            queued=queued,
            in_flight=self._pending - queued,
            delivered=self._delivered,
            failed=self._failed,
            dropped=self._dropped,
        )

    def forget(self, task_id: str) -> None:
        """The task was deleted: drop its last verdict (a daemon that runs for a year sees
        many tasks come and go). A run of it that ends later is judged from its history."""
        self._failing.pop(task_id, None)

    # -- what the runner tells -----------------------------------------------------------

    def finished(self, record: ExecutionRecord, spec: TaskSpec, *, retrying: bool) -> None:
        """A run's final record was written: queue what it is worth telling. Returns at
        once (never waits for a delivery); ``retrying``: a retry of this failure follows,
        so it is not told (the last attempt's failure is)."""
        if record.outcome not in VERDICT_OUTCOMES:
            return  # running, skipped, cancelled: nothing to tell, nothing changes
        succeeded = record.outcome is Outcome.SUCCEEDED
        registration_id, failing = self._failing.get(record.task_id, (None, None))
        was_failing = failing if registration_id == record.registration_id else None
        if succeeded or not retrying:
            self._failing[record.task_id] = (record.registration_id, not succeeded)
        notify = spec.notify if spec.notify is not None else self.defaults
        if notify is None or (notify.webhook is None and not notify.desktop):
            return
        check_history = False
        if not succeeded:
            if retrying or not notify.wants(NotifyEvent.FAILURE):
                return
            event = NotifyEvent.FAILURE
        elif notify.wants(NotifyEvent.RECOVERY) and was_failing is not False:
            event, check_history = NotifyEvent.RECOVERY, was_failing is None
        elif notify.wants(NotifyEvent.SUCCESS):
            event = NotifyEvent.SUCCESS
        else:
            return
        queued = _Queued(Notification(event, record, spec.name, notify), check_history)
        try:
            self._send.send_nowait(queued)
            self._pending += 1
        except trio.WouldBlock:
            self._dropped += 1
            log.warning(
                "notification dropped (%s of %s, execution %s): %d are waiting already",
                event.value,
                record.task_id,
                record.execution_id,
                self._receive.statistics().current_buffer_used,
                extra={"task_id": record.task_id, "execution_id": record.execution_id},
            )
        except trio.ClosedResourceError:
            self._dropped += 1  # the daemon is exiting

    # -- the consumer ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver queued notifications until :meth:`close`, then finish those queued and
        in flight and return.

        Cancellation: what is left undelivered is counted as dropped, in one WARNING."""
        try:
            async with trio.open_nursery() as deliveries:
                task_status.started()
                async for queued in self._receive:
                    notification = await self._resolve(queued)
                    if notification is None:
                        self._pending -= 1
                        continue
                    await self._slots.acquire()
                    deliveries.start_soon(self._deliver, notification)
        finally:
            left = self._pending
            if left:
                self._dropped += left
                log.warning("%d notification(s) not sent: the daemon stopped first", left)
            try:
                with trio.move_on_after(CLOSE_SECONDS, shield=True):
                    await self._webhook.aclose()
            finally:
                self._closed.set()

    def close(self) -> None:
        """No more notifications: :meth:`run` returns once those queued are delivered."""
        self._send.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def aclose(self) -> None:
        """:meth:`close`, then wait until what was queued is sent (bound it: an unanswered
        webhook takes about half a minute)."""
        self.close()
        await self.wait_closed()

    async def _resolve(self, queued: _Queued) -> Notification | None:
        notification = queued.notification
        if not queued.check_history:
            return notification
        record = notification.record
        try:
            history = await self._history(record)
        except Exception as exc:
            log.warning(
                "whether %s recovered is unknown: its history cannot be read (%s)",
                record.task_id,
                exc,
                extra={"task_id": record.task_id},
            )
            history = ()
        if failing_before(record, history):
            return notification
        if notification.notify.wants(NotifyEvent.SUCCESS):
            return Notification(
                NotifyEvent.SUCCESS, record, notification.task_name, notification.notify
            )
        return None

    async def _deliver(self, notification: Notification) -> None:
        record = notification.record
        ids = {"task_id": record.task_id, "execution_id": record.execution_id}
        ok = True
        try:
            url = notification.notify.webhook
            if url is not None:
                body = WebhookBody.of(notification).model_dump_json().encode()
                try:
                    await self._webhook.post(url, body)
                except DeliveryFailed as exc:
                    ok = False
                    log.warning(
                        "webhook to %s for %s (%s) not delivered: %s",
                        where(url),
                        record.task_id,
                        notification.event.value,
                        exc,
                        extra=ids,
                    )
            if notification.notify.desktop:
                summary, text = desktop_text(notification)
                urgent = notification.event is NotifyEvent.FAILURE
                ok &= await self.desktop.notify(summary, desktop_markup(text), urgent=urgent)
        except Exception:  # a bug here must not take the daemon down
            ok = False
            log.exception("notification of %s failed", record.task_id, extra=ids)
        finally:
            self._slots.release()
        self._pending -= 1  # not when cancelled: run() counts it as not sent
        if ok:
            self._delivered += 1
        else:
            self._failed += 1
