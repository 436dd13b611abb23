"""What a finished run is worth telling, and the words that tell it.

Which outcomes are failures, how a restarted daemon finds whether a task was failing
(:func:`failing_before`, from its history), and the two shapes of a notification: the
webhook's JSON body (:class:`WebhookBody`, the one definition of its keys) and the desktop
notification's summary and body.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from ..models import ExecutionRecord, NotifyEvent, NotifySpec, Outcome, Trigger, iso_utc

FAILURE_OUTCOMES: Final = frozenset(
    {Outcome.FAILED, Outcome.TIMED_OUT, Outcome.KILLED, Outcome.INTERRUPTED}
)
"""A finished run that did not succeed. ``cancelled`` is not one: someone asked for it (a
cancel, a stop of the daemon, ``on_busy=cancel``, ``overlap=replace``)."""
VERDICT_OUTCOMES: Final = FAILURE_OUTCOMES | {Outcome.SUCCEEDED}
"""The outcomes that say how a task is doing; the others (running, skipped, cancelled)
neither notify nor change whether a task is failing."""

STDERR_TAIL_LINES: Final = 20
STDERR_TAIL_BYTES: Final = 4096
REASON_CHARS: Final = 500
"""The desktop body and the webhook's ``text`` quote the first line of the reason, up to
this long."""

_VERBS: Final = {
    Outcome.FAILED: "failed",
    Outcome.TIMED_OUT: "timed out",
    Outcome.KILLED: "was killed",
    Outcome.INTERRUPTED: "was interrupted",
    Outcome.SUCCEEDED: "succeeded",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One event of one finished run, with where to send it."""

    event: NotifyEvent
    record: ExecutionRecord
    """The final record, as stored (secrets already masked in its output and reason)."""
    task_name: str
    notify: NotifySpec


def failing_before(current: ExecutionRecord, history: Iterable[ExecutionRecord]) -> bool:
    """Whether the task was failing before ``current``, read from its history (any order,
    ``current`` itself may be in it): its last failure that was not retried came after its
    last success.

    A failed attempt followed by a retry was never notified (only the last attempt is), so
    it does not make the task failing; a cancelled or skipped run changes nothing."""
    earlier = sorted(
        (
            r
            for r in history
            if r.execution_id != current.execution_id
            and r.outcome in VERDICT_OUTCOMES
            and r.finished_at is not None
            and current.finished_at is not None
            and r.finished_at <= current.finished_at
        ),
        key=lambda r: r.finished_at or 0.0,
        reverse=True,
    )
    retried = current.trigger is Trigger.RETRY  # the run just before it was retried
    for record in earlier:
        if record.outcome is Outcome.SUCCEEDED:
            return False
        if not retried:
            return True
        retried = record.trigger is Trigger.RETRY
    return False


def stderr_tail(text: str) -> str:
    """The last STDERR_TAIL_LINES lines of ``text``, at most STDERR_TAIL_BYTES of UTF-8."""
    lines = text.rstrip("\n").splitlines()[-STDERR_TAIL_LINES:]
    tail = "\n".join(lines).encode("utf-8", "replace")[-STDERR_TAIL_BYTES:]
    return tail.decode("utf-8", "ignore")  # a character cut in two at the start goes


class WebhookBody(BaseModel):
    """The JSON body a webhook receives: one event of one finished run."""

    model_config = ConfigDict(frozen=True)

    event: NotifyEvent = Field(description="failure, recovery or success")
    task_id: str
    task_name: str
    execution_id: str
    outcome: Outcome = Field(description="failed, timed_out, killed, interrupted or succeeded")
    reason: str | None = Field(description="Why it ended so (null for a success)")
    trigger: str = Field(description="What started the run: schedule, run_now, retry...")
    attempt: int = Field(description="0 for a first run; n for the n-th retry")
    started_at: str | None = Field(description="ISO-8601, UTC")
    finished_at: str = Field(description="ISO-8601, UTC")
    duration_seconds: float | None
    stderr_tail: str = Field(
        description=f"The last {STDERR_TAIL_LINES} lines of stderr (at most "
        f"{STDERR_TAIL_BYTES} bytes)"
    )
    text: str = Field(
        description="One line for people: what a chat webhook (Slack, Mattermost) shows"
    )

    @classmethod
    def of(cls, notification: Notification) -> WebhookBody:
        record = notification.record
        summary, body = desktop_text(notification)
        duration = None
        if record.started_at is not None and record.finished_at is not None:
            duration = round(max(0.0, record.finished_at - record.started_at), 4)
        return cls(
            event=notification.event,
            task_id=record.task_id,
            task_name=notification.task_name,
            execution_id=record.execution_id,
            outcome=record.outcome,
            reason=record.reason,
            trigger=record.trigger.value,
            attempt=record.attempt,
            started_at=iso_utc(record.started_at, millis=True),
            finished_at=iso_utc(record.finished_at, millis=True) or "",
            duration_seconds=duration,
            stderr_tail=stderr_tail(record.stderr),
            text=f"{summary}: {body}",
        )


def desktop_text(notification: Notification) -> tuple[str, str]:
    """(summary, body) in plain text: ``omnimind: backup failed`` and the first line of
    the reason, or how long a success took."""
    record = notification.record
    if notification.event is NotifyEvent.RECOVERY:
        summary = f"omnimind: {notification.task_name} recovered"
    else:
        summary = f"omnimind: {notification.task_name} {_VERBS.get(record.outcome, 'ended')}"
    if record.outcome is Outcome.SUCCEEDED:
        took = ""
        if record.started_at is not None and record.finished_at is not None:
            took = f" in {max(0.0, record.finished_at - record.started_at):.1f} s"
        after = " after a failure" if notification.event is NotifyEvent.RECOVERY else ""
        return summary, f"succeeded{took}{after}"
    first = (record.reason or "").strip().splitlines()
    reason = first[0] if first else record.outcome.value
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return summary, reason


def desktop_markup(text: str) -> str:
    """``text`` for a notification body, which servers may read as simple markup."""
    return html.escape(text, quote=False)
