"""One execution in flight: its identity, how to cancel it, and how to freeze it.

Freezing stops the whole process group (SIGSTOP) and suspends the timeout; thawing sends
SIGCONT and gives the timeout back what was left of it, so frozen time never counts.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import uuid
from dataclasses import dataclass, field

import trio

from ..models import Trigger


@dataclass(eq=False)
class Running:
    """An execution in flight."""

    trigger: Trigger
    scheduled_at: float
    started_at: float
    execution_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    cancel: trio.Event = field(default_factory=trio.Event)
    cancel_reason: str | None = None
    pid: int | None = None
    attempt: int = 0
    gated: bool = False
    """Admitted through a gate that can close: ``on_busy`` applies to it."""
    critical_slot: bool = False
    """Holds a CRITICAL slot (decided at start: a PATCH of the priority must not move it)."""
    pauses: list[tuple[float, float | None]] = field(default_factory=list)
    _deadline: trio.CancelScope | None = None
    _remaining: float | None = None

    @property
    def frozen(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    def timeout_scope(self, seconds: float) -> trio.CancelScope:
        """The scope that enforces the timeout; frozen time does not count against it."""
        if self.frozen:
            self._deadline, self._remaining = trio.CancelScope(deadline=math.inf), seconds
        else:
            self._deadline = trio.CancelScope(deadline=trio.current_time() + seconds)
        return self._deadline

    def attach(self, pid: int) -> None:
        """The process has started: a freeze requested before it existed applies now."""
        self.pid = pid
        if self.frozen:
            self._signal(signal.SIGSTOP)

    def freeze(self, now: float) -> bool:
        if self.frozen:
            return False
        self.pauses.append((now, None))
        if self._deadline is not None:
            self._remaining = max(0.0, self._deadline.deadline - trio.current_time())
            self._deadline.deadline = math.inf
        self._signal(signal.SIGSTOP)
        return True

    def thaw(self, now: float) -> bool:
        if not self.frozen:
            return False
        self.pauses[-1] = (self.pauses[-1][0], now)
        if self._deadline is not None and self._remaining is not None:
            self._deadline.deadline = trio.current_time() + self._remaining
        self._signal(signal.SIGCONT)
        return True

    def _signal(self, signum: int) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)
