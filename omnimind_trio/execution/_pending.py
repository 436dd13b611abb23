"""One request in flight with the fork server, as the daemon tracks it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio


@dataclass(eq=False)
class Pending:
    """One request to the worker, as the daemon tracks it."""

    key: str
    started: trio.Event = field(default_factory=trio.Event)
    """Its ``started``, ``checked`` or ``failed`` message came, or it was lost."""
    settled: trio.Event = field(default_factory=trio.Event)
    """The worker will say nothing more of it: its last message came, or the worker died."""
    pid: int | None = None
    pidfd: int | None = None
    """Lets its run see the child end even if the fork server (its parent) dies first."""
    exit: dict[str, Any] | None = None
    checked: dict[str, Any] | None = None
    failure: str | None = None
    """Why no child was started."""
    lost: bool = False
    """No child was started for it, and none will be (the worker died or was stuck before):
    it may be sent again."""
    orphaned: bool = False
    """The worker died while the child ran: no exit message will come."""
    ended: bool = False
    """The child is known to have ended."""
    abandoned: bool = False
    """Its run is over: a child that starts now is killed, and forgotten when it ends."""

    def lose(self, failure: str) -> None:
        """Mark it lost, ``failure`` saying why, and wake whoever waits for it."""
        self.lost, self.failure = True, failure
        self.started.set()
        self.settled.set()

    async def wait_ended(self) -> None:
        """Return once the child has ended: its exit message came, or, for an orphan, its
        pidfd says so (an orphan without one was killed)."""
        await self.settled.wait()
        if self.orphaned and self.pidfd is not None:
            await trio.lowlevel.wait_readable(self.pidfd)
        self.ended = True
