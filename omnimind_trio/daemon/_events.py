"""The event bus: live updates for WebSocket subscribers.

Publishing never blocks and never fails: each message is serialized once and offered to
every subscriber's bounded buffer; a subscriber whose buffer is full is too slow and is
disconnected (its channel closed), so no client can hold up the scheduler.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from ..models import DaemonState, Event, iso_utc
from ..scheduling import Running

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators


class EventBus:
    """Every message is ``{"type", "state", "time", "data"}``: ``state`` is the daemon's
    state when the event happened, so a client can read it from any message."""

    def __init__(self, state: Callable[[], DaemonState], buffer_messages: int = 256) -> None:
        self._state = state
        self._buffer = buffer_messages
        self._subscribers: set[trio.MemorySendChannel[Event]] = set()
        self.dropped = 0
        """Subscribers disconnected for being too slow."""
        self.closed = False

    def close(self) -> None:
        """End every subscription (the daemon process is shutting down)."""
        self.closed = True
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        if not self._subscribers or self.closed:
            return
        message = Event.model_construct(
            type=kind, state=self._state(), time=iso_utc(time.time(), millis=True), data=data
        )
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(message)
            except trio.WouldBlock:
                self._subscribers.discard(channel)
                channel.close()
                self.dropped += 1
            except trio.BrokenResourceError:
                self._subscribers.discard(channel)

    @contextmanager
    def subscribe(self) -> Iterator[trio.MemoryReceiveChannel[Event]]:
        """A channel of events; it ends when the subscriber is too slow (or the bus closes)."""
        send, receive = trio.open_memory_channel[Event](self._buffer)
        if self.closed:
            send.close()
        else:
            self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
            receive.close()


def publish_run_event(events: EventBus, kind: str, task_id: str, run: Running) -> None:
    """An execution was frozen or thawed (``kind``) because its gate closed or reopened:
    published with its pauses, and logged."""
    events.publish(
        kind,
        {
            "execution_id": run.execution_id,
            "task_id": task_id,
            "pauses": [
                {"frozen_at": iso_utc(a, millis=True), "thawed_at": iso_utc(b, millis=True)}
                for a, b in run.pauses
            ],
            "reason": run.freeze_reason,
        },
    )
    verb = f"frozen: {run.freeze_reason}" if kind == "execution_frozen" else "thawed"
    ids = {"task_id": task_id, "execution_id": run.execution_id}
    log.info("execution %s of %s %s", run.execution_id, task_id, verb, extra=ids)
